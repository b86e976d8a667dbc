#include "haproxy/haproxy_sink.h"

#include "clients/watch/atomic_file.h"
#include "clients/watch/subprocess.h"

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
    if (Status s = RunSilentCommand(sock, "shutdown sessions server " + srv, timeout); !s.ok()) {
      return s;
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
  check.argv = {config_.haproxy_bin, "-c", "-q", "-f", tmp};
  check.timeout = config_.validate_timeout;
  auto result = watch::RunProcess(check);
  if (!result.ok() || !result->success()) {
    watch::DiscardTempFile(config_.config_file);
    std::string why = result.ok() ? result->Describe() + ": " + result->output
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
