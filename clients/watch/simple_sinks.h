// The exec and file sinks of `pgherald watch`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "clients/watch/sink.h"
#include "clients/watch/subprocess.h"

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

// The JSON a file sink writes:
//   {"format":1,"cluster":"main","action":"route","status":"vouched","node":"node2",
//    "host":"10.0.0.2","port":5432,"epoch":7,"timeline":3,"reason":"vouched","seq":4,
//    "written_at_ms":1714560000123}
std::string TargetJson(const RouteTarget& target, std::int64_t written_at_ms);

struct FileSinkConfig {
  std::string name = "file";
  std::string path;
};

// Writes TargetJson atomically (temp, fsync, rename) for every target.
class FileSink final : public Sink {
 public:
  explicit FileSink(FileSinkConfig config) : config_(std::move(config)) {}
  const std::string& name() const override { return config_.name; }
  Status Apply(const RouteTarget& target) override;

 private:
  const FileSinkConfig config_;
};

}  // namespace pgherald::watch
