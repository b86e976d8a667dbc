// The orchestrator's YAML configuration (docs/orchestrator.md has the reference):
//
//   zookeeper: {connect: "127.0.0.1:2181", root: /pgherald, session_timeout_ms: 6000}
//   logging: {level: info, format: text}
//   orchestrator:
//     id: orch-a                   # required: [A-Za-z0-9_.-], unique per instance
//     tick_ms: 1000                # the loop's granularity: session/election step, publish retries
//     verify_interval_ms: 1000     # each cluster verified this often, staggered (default: tick_ms)
//     confirmation_window_ms: 5000 # anti-flapping; a later timeline is published at once
//     strict: false                # strict split-brain mode
//     self_fence_deadline_ms: 30000
//     probe_timeout_ms: 2000       # how long a round waits for its probes
//     dry_run: false               # decide and log, publish nothing
//     history_limit: 1000          # history entries kept per cluster
//     learn_nodes: true            # master switch for learned nodes (learn_policy.h)
//     voucher_reaffirm_ms: 1000    # re-affirm the voucher at most this often (default:
//                                  # verify_interval_ms; sooner wakes the cluster for it)
//     batch_max: 64                # clusters whose rounds share one probe call (1..10000)
//     successor_connections: true  # keep connections to the clusters next in line to own
//     file_publisher_dir: /var/lib/pgherald   # optional mirror: <dir>/<cluster>.json
//   http: {address: 127.0.0.1, port: 8008, token_file: /etc/pgherald/http-token,  # optional
//          max_connections: 64, request_timeout_ms: 5000}
//   clusters:
//     - name: main
//       nodes: [{name: node1, host: 127.0.0.1, port: 5432}]
//       learn_nodes: {networks: [10.1.0.0/16], names: [db-*], max: 8, enabled: true}  # optional
//       postgres: {user: pgherald, dbname: pgherald, password_file: /etc/pgherald/pw,
//                  connect_timeout_ms: 1000, statement_timeout_ms: 1000}
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/zk_config.h"
#include "common/http_server.h"
#include "orchestrator/orchestrator.h"

namespace pgherald::orchestrator {

struct OrchestratorConfig {
  config::ZooKeeperConfig zookeeper;
  config::LoggingConfig logging;
  OrchestratorOptions options;
  std::optional<std::string> file_publisher_dir;
  std::vector<ClusterSpec> clusters;
  std::optional<::pgherald::http::HttpConfig> http;  // the `http:` section (absent: no HTTP server)
};

// Parses and validates the whole file; every error names file, line, key and the fix. Password
// and token files are read here, bounded (common/bounded_file.h; errors name the file, never its
// content). postgres.options keywords are checked (pg::CheckOptionKeyword), node hosts must pass
// untrusted::IsValidHost.
StatusOr<OrchestratorConfig> ParseOrchestratorConfig(config::ConfigNode root);
StatusOr<OrchestratorConfig> LoadOrchestratorConfig(const std::string& path);

}  // namespace pgherald::orchestrator
