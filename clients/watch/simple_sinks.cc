#include "clients/watch/simple_sinks.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"

namespace pgherald::watch {

std::map<std::string, std::string> ExecEnvironment(const RouteTarget& target) {
  const auto& m = target.master;
  return {
      {"PGHERALD_CLUSTER", m.cluster},
      {"PGHERALD_ACTION", ActionName(target.action)},
      {"PGHERALD_MASTER_STATUS", StatusName(target.status)},
      {"PGHERALD_MASTER_NODE", m.node},
      {"PGHERALD_MASTER_HOST", m.host},
      {"PGHERALD_MASTER_PORT", m.port > 0 ? std::to_string(m.port) : ""},
      {"PGHERALD_MASTER_EPOCH", std::to_string(m.epoch)},
      {"PGHERALD_MASTER_TIMELINE", std::to_string(m.timeline)},
      {"PGHERALD_REASON", target.reason},
  };
}

Status ExecSink::Apply(const RouteTarget& target) {
  // The environment reaches a script (which may splice it into a shell line or a file).
  if (Status s = CheckTarget(target); !s.ok()) return s;
  ProcessOptions options;
  options.argv = config_.command;
  options.env = ExecEnvironment(target);
  options.timeout = config_.timeout;
  auto result = RunProcess(options);
  if (!result.ok()) return result.status();
  if (result->success()) return Status::Ok();
  std::string output = result->output;
  if (output.size() > 500) output = "..." + output.substr(output.size() - 500);
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return Status(result->timed_out ? StatusCode::kTimeout : StatusCode::kFailedPrecondition,
                "command " + config_.command.front() + " failed: " + result->Describe() +
                    (output.empty() ? "" : ": " + output));
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
  j["seq"] = target.seq;
  j["written_at_ms"] = written_at_ms;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Status FileSink::Apply(const RouteTarget& target) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return WriteFileAtomically(config_.path, TargetJson(target, now));
}

}  // namespace pgherald::watch
