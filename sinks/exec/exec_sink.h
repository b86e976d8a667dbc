// The exec sink of `pgherald watch`: runs a command on every new target (docs/watch.md).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "clients/watch/sink.h"
#include "common/config.h"
#include "common/subprocess.h"

namespace pgherald::watch {

// The environment an exec sink's command gets for `target`:
//   PGHERALD_CLUSTER, PGHERALD_ACTION (route|block), PGHERALD_MASTER_STATUS (vouched, unverified,
//   no-master, disconnected), PGHERALD_MASTER_NODE, PGHERALD_MASTER_HOST, PGHERALD_MASTER_PORT,
//   PGHERALD_MASTER_EPOCH, PGHERALD_MASTER_TIMELINE, PGHERALD_REASON.
// With action=block the master fields name the last vouched master (empty if none).
std::map<std::string, std::string> ExecEnvironment(const RouteTarget& target);

struct ExecSinkConfig {
  std::string name = "exec";
  std::vector<std::string> command;   // argv; argv[0] looked up in PATH
  Millis timeout{10000};              // then its process group is killed
};

// Reads a `type: exec` sink's keys (registered by app/ with watch::SinkRegistry): `command`
// (required, not empty), `timeout_ms`, `name`; mistakes are recorded in `node`.
ExecSinkConfig ParseExecSinkConfig(config::ConfigNode& node);

// Runs the command once per target; a non-zero exit, a signal or a timeout is a failure (retried
// with backoff by the worker), reported with the command's output.
class ExecSink final : public Sink {
 public:
  explicit ExecSink(ExecSinkConfig config) : config_(std::move(config)) {}
  const std::string& name() const override { return config_.name; }
  Status Apply(const RouteTarget& target) override;

 private:
  const ExecSinkConfig config_;
};

}  // namespace pgherald::watch
