// The configuration of `pgherald watch` (reference: docs/watch.md).
//
//   zookeeper: {connect: "127.0.0.1:2181", root: /pgherald, session_timeout_ms: 6000}
//   logging: {level: info}
//   watch:
//     clusters:
//       main:
//         on_unverified: keep        # keep | block: an unverified master or none
//         unverified_grace_ms: 5000
//         on_disconnect: keep        # keep | block: ZooKeeper unreachable
//         disconnect_grace_ms: 10000
//         retry_initial_ms: 200      # a failed sink is retried with backoff, doubling
//         retry_max_ms: 10000
//         sinks:                     # each parsed by its type's plug-in (sink_registry.h)
//           - type: haproxy          # haproxy/haproxy_sink_config.h
//             admin_socket: /run/haproxy/admin.sock
//             backend: pg_primary
//             server: primary
//             config_file: /etc/haproxy/haproxy.cfg
//             template: /etc/pgherald/haproxy.cfg.tmpl
//             master_socket: /run/haproxy/master.sock
//           - type: pgbouncer
//             databases_file: /etc/pgbouncer/databases.ini
//             admin: {host: 127.0.0.1, port: 6432, user: pgbouncer}
//           - type: exec
//             command: [/usr/local/bin/on-master, --quiet]
//             timeout_ms: 10000
//           - type: file
//             path: /run/pgherald/main.json
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clients/watch/route_policy.h"
#include "clients/watch/sink_registry.h"
#include "clients/watch/sink_worker.h"
#include "common/config.h"
#include "common/zk_config.h"
#include "common/http_server.h"

namespace pgherald::watch {

struct ClusterWatchConfig {
  std::string name;
  PolicyConfig policy;
  RetryConfig retry;
  std::vector<SinkConfig> sinks;
};

struct WatchConfig {
  config::ZooKeeperConfig zookeeper;
  config::LoggingConfig logging;
  std::optional<http::ListenConfig> http;  // `http:` (/metrics, /health); absent: no server
  std::vector<ClusterWatchConfig> clusters;
};

// Parses and validates the whole file: every mistake at once, each naming file:line and the key.
// Each sink's keys are read by the parser `sinks` registers for its type (a sink type it does not
// know is an error naming the known ones); those parsers render their templates with sample
// values, so a typo in a variable name fails at start-up, not at the first failover.
// `watch.source: internal` (a second ZooKeeper watcher, removed) is refused, naming the fix.
StatusOr<WatchConfig> LoadWatchConfig(const std::string& path, const SinkRegistry& sinks);
StatusOr<WatchConfig> ParseWatchConfig(config::ConfigNode root, const SinkRegistry& sinks);

}  // namespace pgherald::watch
