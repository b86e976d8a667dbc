// `pgherald poller --config FILE`: the YAML sections the poller reads (docs/poller.md has the
// reference with every key, default and range).
#pragma once

#include <optional>
#include <string>

#include "common/config.h"
#include "common/pg_config.h"
#include "common/zk_config.h"
#include "common/http_server.h"
#include "common/base/status.h"

namespace pgherald::pollers {

enum class FenceAction {
  kReport,   // "report": log at error level and record it in the observation; do nothing else
  kStop,     // "stop": pg_ctl stop -m immediate -D data_dir (as the data directory's owner)
  kCommand,  // "command": run fence.command through /bin/sh
};
const char* FenceActionName(FenceAction action);

struct FenceConfig {
  FenceAction action = FenceAction::kReport;
  std::string command;   // kCommand (required); kStop: replaces pg_ctl when set
  std::string data_dir;  // kStop (required unless command is set)
  std::string pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl";
  Millis timeout{30000};  // timeout_ms: the action is killed after this long (counted as failed)
  // Fencing on ZooKeeper loss (fencing.h ShouldSelfFence): a writable node whose poller has had no
  // usable ZooKeeper session for self_fence_deadline is fenced with `action`, once per loss. The
  // deadline must not exceed the orchestrators' own self_fence_deadline_ms (same default).
  bool on_zookeeper_loss = true;      // on_zookeeper_loss
  Millis self_fence_deadline{30000};  // self_fence_deadline_ms, 1000..3600000
};

// poller.switchover (docs/poller.md "Switchover steps"; the design in docs/switchover.md): the
// repmgr commands this poller runs on its own node when `pgherald switchover` asks for a step.
struct SwitchoverConfig {
  bool enabled = false;  // off: the poller never acts on a switchover record
  std::string repmgr = "/usr/lib/postgresql/15/bin/repmgr";
  std::string repmgr_conf;  // required when enabled
  std::string config_archive_dir = "/var/lib/postgresql/pgherald-rejoin";  // node rejoin
  Millis step_timeout{60000};  // step_timeout_ms: each repmgr command and each wait
  Millis drain_timeout{5000};  // drain_timeout_ms: the stop step's wait for open transactions
  Millis drain_quiet{200};     // drain_quiet_ms: how long none must be open in a row
};

struct PollerSection {
  std::string cluster;                // required
  std::string node;                   // required: the znode name; repmgr's node_name by default
  std::string host;                   // advertised; default postgres.host
  int port = 0;                       // advertised; default postgres.port
  std::optional<int> repmgr_node_id;  // default: the repmgr.nodes row named `node`
  std::string repmgr3_schema;         // only when several repmgr_<x> schemas exist
  Millis tick{1000};                  // tick_ms, 50..600000
  Millis heartbeat{3000};             // heartbeat_ms, >= tick_ms
  std::string notify_socket;          // "" : no notify listener
  int notify_socket_mode = 0660;      // notify_socket_mode, octal text ("0660")
  int events_retention = 1000;        // 10..100000 event znodes kept
  Millis backoff_max{10000};          // backoff_max_ms: reconnect backoff cap (PostgreSQL, ZK)
  // The promotion watch (docs/poller.md): when its standby loses its WAL sender, or a notify
  // arrives while the node is in recovery, the poller reads pg_is_in_recovery() every
  // promotion_poll_ms over its held connection for at most promotion_watch_ms, and runs a tick the
  // moment the node leaves recovery. promotion_watch_ms 0 turns it off.
  Millis promotion_watch{120000};     // promotion_watch_ms, 0..3600000
  Millis promotion_poll{5};           // promotion_poll_ms, 1..1000
  FenceConfig fence;
  SwitchoverConfig switchover;
};

struct PollerConfig {
  config::ZooKeeperConfig zookeeper;
  config::LoggingConfig logging;
  PollerSection poller;
  config::PostgresConfig postgres;
  std::optional<http::ListenConfig> http;  // `http:` (/metrics, /health); absent: no server
};

// Reads and validates the whole file. kInvalidArgument listing every problem ("file:line: key:
// what is wrong"), kNotFound when the file cannot be read.
StatusOr<PollerConfig> LoadPollerConfig(const std::string& path);
StatusOr<PollerConfig> ParsePollerConfig(std::string_view yaml, const std::string& file_name);

}  // namespace pgherald::pollers
