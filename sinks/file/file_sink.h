// The file sink of `pgherald watch`: writes the target as JSON to a file (docs/watch.md).
#pragma once

#include <cstdint>
#include <string>

#include "clients/watch/sink.h"
#include "common/config.h"

namespace pgherald::watch {

// The JSON a file sink writes:
//   {"format":1,"cluster":"main","action":"route","status":"vouched","node":"node2",
//    "host":"10.0.0.2","port":5432,"epoch":7,"timeline":3,"reason":"vouched","seq":4,
//    "written_at_ms":1714560000123}
std::string TargetJson(const RouteTarget& target, std::int64_t written_at_ms);

struct FileSinkConfig {
  std::string name = "file";
  std::string path;
};

// Reads a `type: file` sink's keys (registered by app/ with watch::SinkRegistry): `path`
// (required), `name`; mistakes are recorded in `node`.
FileSinkConfig ParseFileSinkConfig(config::ConfigNode& node);

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
