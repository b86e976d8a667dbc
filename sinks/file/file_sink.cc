#include "sinks/file/file_sink.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/model/json_fields.h"

namespace pgherald::watch {

FileSinkConfig ParseFileSinkConfig(config::ConfigNode& node) {
  FileSinkConfig c;
  c.name = node.Optional<std::string>("name", "file");
  c.path = node.Required<std::string>("path");
  return c;
}

std::string TargetJson(const RouteTarget& target, std::int64_t written_at_ms) {
  const auto& m = target.master;
  nlohmann::ordered_json j;
  j["format"] = 1;
  j["cluster"] = m.cluster;
  j["action"] = ActionName(target.action);
  j["status"] = StatusName(target.status);
  j["node"] = m.node;
  j["host"] = m.host;
  j["port"] = m.port;
  j["epoch"] = m.epoch;
  j["timeline"] = m.timeline;
  j["reason"] = target.reason;
  j["hold"] = target.hold;
  j["seq"] = target.seq;
  j["written_at_ms"] = written_at_ms;
  return jsonf::Dump(j) + "\n";
}

Status FileSink::Apply(const RouteTarget& target) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return WriteFileAtomically(config_.path, TargetJson(target, now));
}

}  // namespace pgherald::watch
