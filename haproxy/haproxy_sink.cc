#include "haproxy/haproxy_sink.h"

#include "clients/watch/atomic_file.h"
#include "clients/watch/subprocess.h"

#include <sstream>

namespace pgherald::haproxy {

using watch::RouteTarget;

const std::vector<std::string>& HaproxyBuiltinVars() {
  static const std::vector<std::string> names = {"cluster", "node",   "host",   "port",
                                                 "epoch",   "timeline", "status", "action",
                                                 "server_state"};
  return names;
}

watch::TemplateVars HaproxyTemplateVars(const RouteTarget& target,
                                        const watch::TemplateVars& extra) {
  watch::TemplateVars vars = extra;
  vars["cluster"] = target.master.cluster;
  vars["node"] = target.master.node;
  vars["host"] = target.master.host;
  vars["port"] = std::to_string(target.master.port);
  vars["epoch"] = std::to_string(target.master.epoch);
  vars["timeline"] = std::to_string(target.master.timeline);
  vars["status"] = watch::StatusName(target.status);
  vars["action"] = watch::ActionName(target.action);
  vars["server_state"] = target.action == RouteTarget::Action::kBlock ? "disabled" : "";
  return vars;
}

namespace {

// haproxy -c's complaints without its [NOTICE] banner lines.
std::string AlertLines(const std::string& output) {
  std::string out;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string line = output.substr(start, end - start);
    if (line.find("[NOTICE]") == std::string::npos && !line.empty()) {
      out += (out.empty() ? "" : " | ") + line;
    }
    start = end + 1;
  }
  return out;
}

// The PIDs of HAProxy's workers, current and old, from the master CLI's `show proc`. Old workers
// keep serving the sessions they had before a reload; the admin socket reaches only the current
// one, so cutting sessions must address each worker (`@!<pid> ...`).
StatusOr<std::vector<std::string>> WorkerPids(const std::string& master_socket,
                                              std::chrono::milliseconds timeout) {
  auto answer = SendCommand(master_socket, "show proc", timeout);
  if (!answer.ok()) return answer.status();
  std::vector<std::string> pids;
  size_t start = 0;
  while (start < answer->size()) {
    size_t end = answer->find('\n', start);
    if (end == std::string::npos) end = answer->size();
    std::istringstream line(answer->substr(start, end - start));
    std::string pid;
    std::string type;
    line >> pid >> type;
    if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
        type == "worker") {
      pids.push_back(pid);
    }
    start = end + 1;
  }
  return pids;
}

// Cuts the sessions of `ref` in worker `pid`. An old worker (left by a reload) has its proxies
// stopped and answers "Proxy is disabled." to `shutdown sessions server`: there each session of
// the server is found with `show sess` and cut with `shutdown session <id>`.
Status CutWorkerSessions(const std::string& master_socket, const std::string& pid,
                         const ServerRef& ref, std::chrono::milliseconds timeout) {
  const std::string prefix = "@!" + pid + " ";
  auto answer = SendCommand(master_socket, prefix + "shutdown sessions server " + ref.Name(), timeout);
  if (!answer.ok()) return answer.status();
  if (answer->find_first_not_of("\r\n ") == std::string::npos) return Status::Ok();
  if (answer->find("Proxy is disabled") == std::string::npos) {
    return FailedPrecondition("haproxy worker " + pid + " refused to cut the sessions of " +
                              ref.Name() + ": " + *answer);
  }
  auto sessions = SendCommand(master_socket, prefix + "show sess", timeout);
  if (!sessions.ok()) return sessions.status();
  std::istringstream lines(*sessions);
  std::string line;
  const std::string be = " be=" + ref.backend + " ";
  const std::string srv = " srv=" + ref.server + " ";
  while (std::getline(lines, line)) {
    if (line.find(be) == std::string::npos || line.find(srv) == std::string::npos) continue;
    const std::string id = line.substr(0, line.find(':'));
    auto cut = SendCommand(master_socket, prefix + "shutdown session " + id, timeout);
    if (!cut.ok()) return cut.status();
  }
  return Status::Ok();
}

}  // namespace

Status HaproxySink::Apply(const RouteTarget& target) {
  if (Status s = ApplyRuntime(target); !s.ok()) return s;
  if (config_.config_file.empty()) return Status::Ok();
  return ApplyConfig(target);
}

Status HaproxySink::ApplyRuntime(const RouteTarget& target) {
  const Runtime want{target.action, target.master.host, target.master.port};
  const std::string& sock = config_.admin_socket;
  const std::string srv = config_.server.Name();
  const auto timeout = config_.command_timeout;
  if (runtime_applied_ == want && !pending_shutdown_) return Status::Ok();
  if (runtime_applied_ != want) {
    if (target.action == RouteTarget::Action::kRoute) {
      auto changed = SetServerAddr(sock, config_.server, want.host, want.port, timeout);
      if (!changed.ok()) return changed.status();
      if (*changed) pending_shutdown_ = config_.shutdown_sessions;
      if (Status s = RunSilentCommand(sock, "set server " + srv + " state ready", timeout); !s.ok()) {
        return s;
      }
      if (Status s = RunSilentCommand(sock, "set server " + srv + " health up", timeout); !s.ok()) {
        return s;
      }
    } else {
      if (Status s = RunSilentCommand(sock, "set server " + srv + " state maint", timeout); !s.ok()) {
        return s;
      }
      pending_shutdown_ = true;  // blocking cuts every session, whatever the option says
    }
    runtime_applied_ = want;
  }
  if (pending_shutdown_) {
    const std::string cut = "shutdown sessions server " + srv;
    if (config_.master_socket.empty()) {
      if (Status s = RunSilentCommand(sock, cut, timeout); !s.ok()) return s;
    } else {
      auto pids = WorkerPids(config_.master_socket, timeout);
      if (!pids.ok()) return pids.status();
      for (const auto& pid : *pids) {
        if (Status s = CutWorkerSessions(config_.master_socket, pid, config_.server, timeout);
            !s.ok()) {
          return s;
        }
      }
    }
    pending_shutdown_ = false;
  }
  return Status::Ok();
}

Status HaproxySink::ApplyConfig(const RouteTarget& target) {
  auto rendered = watch::RenderTemplateFile(config_.template_file,
                                            HaproxyTemplateVars(target, config_.vars));
  if (!rendered.ok()) {
    return Status(rendered.status().code(),
                  "template " + config_.template_file + " does not render, " + config_.config_file +
                      " left untouched: " + rendered.status().message());
  }
  if (config_applied_ == *rendered) {
    auto on_disk = watch::ReadFile(config_.config_file);
    if (on_disk.ok() && *on_disk == *rendered) return Status::Ok();
  }
  if (Status s = watch::WriteTempFile(config_.config_file, *rendered); !s.ok()) {
    watch::DiscardTempFile(config_.config_file);
    return s;
  }
  const std::string tmp = watch::TempPathFor(config_.config_file);
  watch::ProcessOptions check;
  // Not -q: it silences the [ALERT] lines that say what is wrong.
  check.argv = {config_.haproxy_bin, "-c", "-f", tmp};
  check.timeout = config_.validate_timeout;
  auto result = watch::RunProcess(check);
  if (!result.ok() || !result->success()) {
    watch::DiscardTempFile(config_.config_file);
    std::string why = result.ok() ? result->Describe() + ": " + AlertLines(result->output)
                                  : result.status().ToString();
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return InvalidArgument("haproxy -c rejected the config rendered from " +
                           config_.template_file + ", " + config_.config_file +
                           " left untouched: " + why);
  }
  if (Status s = watch::CommitTempFile(config_.config_file); !s.ok()) return s;
  config_applied_ = *rendered;
  if (!config_.master_socket.empty()) {
    auto answer = SendCommand(config_.master_socket, "reload", config_.command_timeout);
    if (!answer.ok()) {
      return Status(answer.status().code(), config_.config_file +
                                                " was updated but the reload failed: " +
                                                answer.status().message());
    }
  }
  return Status::Ok();
}

}  // namespace pgherald::haproxy
