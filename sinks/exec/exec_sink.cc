#include "sinks/exec/exec_sink.h"

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
      {"PGHERALD_HOLD", target.hold ? "1" : "0"},
  };
}

ExecSinkConfig ParseExecSinkConfig(config::ConfigNode& node) {
  ExecSinkConfig c;
  c.name = node.Optional<std::string>("name", "exec");
  c.command = node.Required<std::vector<std::string>>("command");
  if (node.Has("command") && c.command.empty()) {
    node.Fail("command", "empty: give the program and its arguments, e.g. [/usr/local/bin/x]");
  }
  c.timeout = node.Optional<Millis>("timeout_ms", Millis(10000),
                                    {.min = Millis(1), .max = Millis(3600000)});
  return c;
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

}  // namespace pgherald::watch
