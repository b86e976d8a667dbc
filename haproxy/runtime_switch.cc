#include "haproxy/runtime_switch.h"

#include <algorithm>
#include <chrono>

#include "common/backoff.h"
#include "common/model/untrusted.h"

namespace pgherald::haproxy {

using watch::RouteTarget;

namespace {

// Pacing between attempts at a socket that refused us or a worker on its way out: HAProxy needs
// a few ms to finish a reload, and each attempt costs well under 1 ms.
constexpr Millis kRetryPause{1};
// How long the fast path retries the master CLI (it refuses connections while a reload is in
// flight) before reporting the cut of old workers' sessions as failed: the route is already live,
// and a longer wait would hold up the next route; the retry of the cut alone follows.
constexpr Millis kMasterRetryWindow{20};
constexpr size_t kRetiredMax = 64;

MonoTime DeadlineIn(Millis window) { return std::chrono::steady_clock::now() + window; }

// The PIDs of HAProxy's workers, current and old, from the master CLI's `show proc`. Old workers
// keep serving the sessions they had before a reload; the admin socket reaches only the current
// one, so cutting sessions must address each worker (`@!<pid> ...`).
StatusOr<std::vector<std::string>> WorkerPids(const std::string& master_socket, Millis window,
                                              Millis timeout) {
  auto answer = SendCommandRetrying(master_socket, "show proc", window, timeout);
  if (!answer.ok()) return answer.status();
  return ParseShowProc(*answer);  // runtime_api.h: fuzzed (tests/fuzz/fuzz_haproxy_answers.cc)
}

// The master CLI's answers when the worker exited (or is exiting) since `show proc`: its sessions
// are gone too.
bool WorkerGone(const std::string& answer) {
  return answer.find("Can't find the target PID") != std::string::npos ||
         answer.find("Can't connect to the target CLI") != std::string::npos;
}

// Cuts the sessions of `ref` in worker `pid`. An old worker (left by a reload) has its proxies
// stopped and answers "Proxy is disabled." to `shutdown sessions server`: there each session of
// the server is found with `show sess` and cut with `shutdown session <id>`.
Status CutWorkerSessions(const std::string& master_socket, const std::string& pid,
                         const ServerRef& ref, std::chrono::milliseconds timeout) {
  const std::string prefix = "@!" + pid + " ";
  auto answer =
      SendCommand(master_socket, prefix + "shutdown sessions server " + ref.Name(), timeout);
  if (!answer.ok()) return answer.status();
  if (answer->find_first_not_of("\r\n ") == std::string::npos || WorkerGone(*answer)) {
    return Status::Ok();
  }
  if (answer->find("Proxy is disabled") == std::string::npos) {
    return FailedPrecondition("haproxy worker " + pid + " refused to cut the sessions of " +
                              ref.Name() + ": " + *answer);
  }
  auto sessions = SendCommand(master_socket, prefix + "show sess", timeout);
  if (!sessions.ok()) return sessions.status();
  if (WorkerGone(*sessions)) return Status::Ok();
  // Only ids of the form 0x<hex> come back (runtime_api.h, fuzzed): nothing else is sent on.
  for (const std::string& id : ParseShowSessIds(*sessions, ref)) {
    auto cut = SendCommand(master_socket, prefix + "shutdown session " + id, timeout);
    if (!cut.ok()) return cut.status();
  }
  return Status::Ok();
}

std::string Describe(const RouteTarget& target) {
  if (target.action == RouteTarget::Action::kBlock) return "block";
  return target.master.node + " (" + target.master.host + ":" + std::to_string(target.master.port) +
         ")";
}

// The admin socket's answer came from a worker a reload replaced (or one on its way out).
Status OldWorkerAnswered(const std::string& pid, const std::string& socket) {
  return Unavailable("only an old haproxy worker (pid " + pid +
                     ", replaced by a reload) answered on " + socket);
}

}  // namespace

bool RuntimeSwitch::IsRetiredLocked(const std::string& pid) const {
  return std::find(retired_pids_.begin(), retired_pids_.end(), pid) != retired_pids_.end();
}

StatusOr<std::string> RuntimeSwitch::SwitchCurrentWorker(const RouteTarget& target) {
  const Runtime want{target.action, target.master.host, target.master.port};
  std::lock_guard lock(mu_);
  latest_ = want;
  if (applied_ == want && !applied_pid_.empty() && !IsRetiredLocked(applied_pid_)) {
    return applied_pid_;
  }
  auto worker = ApplyToWorkerLocked(want);
  if (!worker.ok()) {
    applied_.reset();  // partly applied, maybe: redo it all
    return worker.status();
  }
  applied_ = want;
  applied_pid_ = worker->pid;
  old_workers_ = OldWorkers::kNeedState;
  if (want.action == RouteTarget::Action::kBlock ||
      (worker->changed && config_.shutdown_sessions)) {
    cut_ = Cut::kCurrentWorker;  // blocking cuts every session, whatever the option says
    cut_done_pid_.clear();
  }
  return applied_pid_;
}

Status RuntimeSwitch::FinishOldSessions(const RouteTarget& target, const std::string& current_pid) {
  if (cut_ == Cut::kCurrentWorker) {
    std::lock_guard lock(mu_);
    auto pid = CutInCurrentWorkerLocked();
    if (!pid.ok()) {
      return Status(pid.status().code(),
                    "the route to " + Describe(target) +
                        " is live, but cutting the old sessions failed: " + pid.status().message());
    }
    cut_ = Cut::kOtherWorkers;
    cut_done_pid_ = *pid;
  }
  if (config_.master_socket.empty()) {
    old_workers_ = OldWorkers::kInStep;
    cut_ = Cut::kNone;
  } else if (old_workers_ == OldWorkers::kNeedState || cut_ != Cut::kNone) {
    const Runtime want{target.action, target.master.host, target.master.port};
    if (Status s = OtherWorkersStep(want, current_pid); !s.ok()) {
      return Status(s.code(), "the route to " + Describe(target) + " is live in worker " +
                                  current_pid + ", not yet in older workers" +
                                  (cut_ != Cut::kNone ? " (nor are their old sessions cut)" : "") +
                                  ": " + s.message());
    }
  }
  return Status::Ok();
}

StatusOr<RuntimeSwitch::Worker> RuntimeSwitch::ApplyToWorkerLocked(const Runtime& want) {
  auto built = RuntimeCommands(want);
  if (!built.ok()) return built.status();
  const std::vector<std::string>& commands = *built;
  const bool route = want.action == RouteTarget::Action::kRoute;
  Status last;
  int attempts = 0;
  auto done = RetryUntil(DeadlineIn(config_.command_timeout), kRetryPause, nullptr,
                         [&](Millis left) -> std::optional<StatusOr<Worker>> {
                           ++attempts;
                           auto answer = SendBatch(config_.admin_socket, commands, left);
                           if (!answer.ok()) {
                             if (answer.status().code() != StatusCode::kUnavailable)
                               return answer.status();
                             last = answer.status();
                             return std::nullopt;
                           }
                           if (answer->stopping || IsRetiredLocked(answer->pid)) {
                             last = OldWorkerAnswered(answer->pid, config_.admin_socket);
                             return std::nullopt;
                           }
                           Worker worker{answer->pid};
                           size_t first_silent = 0;
                           if (route) {
                             auto changed = ParseSetAddrAnswer(commands[0], answer->answers[0]);
                             if (!changed.ok()) return changed.status();
                             worker.changed = *changed;
                             first_silent = 1;
                           }
                           for (size_t i = first_silent; i < commands.size(); ++i) {
                             if (!answer->answers[i].empty()) {
                               return FailedPrecondition("haproxy refused \"" + commands[i] +
                                                         "\": " + answer->answers[i]);
                             }
                           }
                           return worker;
                         });
  if (done.has_value()) return std::move(*done);
  return Status(last.ok() ? StatusCode::kTimeout : last.code(),
                (last.ok() ? "no answer" : last.message()) + " (" + std::to_string(attempts) +
                    " attempts in " + std::to_string(config_.command_timeout.count()) + " ms)");
}

StatusOr<std::string> RuntimeSwitch::CutInCurrentWorkerLocked() {
  const std::string cut = "shutdown sessions server " + config_.server.Name();
  Status last;
  auto done = RetryUntil(
      DeadlineIn(config_.command_timeout), kRetryPause, nullptr,
      [&](Millis left) -> std::optional<StatusOr<std::string>> {
        auto answer = SendBatch(config_.admin_socket, {cut}, left);
        if (!answer.ok()) {
          if (answer.status().code() != StatusCode::kUnavailable) return answer.status();
          last = answer.status();
          return std::nullopt;
        }
        if (answer->stopping || IsRetiredLocked(answer->pid)) {
          last = OldWorkerAnswered(answer->pid, config_.admin_socket);
          return std::nullopt;
        }
        if (!answer->answers[0].empty()) {
          return FailedPrecondition("haproxy refused \"" + cut + "\": " + answer->answers[0]);
        }
        return answer->pid;
      });
  if (done.has_value()) return std::move(*done);
  return last.ok() ? Status(StatusCode::kTimeout, "no answer to \"" + cut + "\"") : last;
}

Status RuntimeSwitch::OtherWorkersStep(const Runtime& want, const std::string& current_pid) {
  // The master CLI refuses connections while a reload is in flight: retried briefly.
  auto pids = WorkerPids(config_.master_socket, kMasterRetryWindow, config_.command_timeout);
  if (!pids.ok()) return pids.status();
  if (old_workers_ == OldWorkers::kNeedState) {
    // An old worker may still accept new connections for a while after the new one answers on
    // the admin socket: it gets the same state. Its answers do not matter (it is on its way out,
    // or gone: "Can't find the target PID"); only an unreachable master fails the step.
    for (const auto& pid : *pids) {
      if (pid == current_pid) continue;
      auto commands = RuntimeCommands(want);
      if (!commands.ok()) return commands.status();
      std::string line;
      for (const auto& c : *commands) line += (line.empty() ? "" : ";") + ("@!" + pid + " " + c);
      auto answer = SendCommand(config_.master_socket, line, config_.command_timeout);
      if (!answer.ok()) return answer.status();
    }
    old_workers_ = OldWorkers::kInStep;
  }
  if (cut_ == Cut::kOtherWorkers) {
    for (const auto& pid : *pids) {
      if (pid == cut_done_pid_) continue;
      if (Status s = CutWorkerSessions(config_.master_socket, pid, config_.server,
                                       config_.command_timeout);
          !s.ok()) {
        return s;
      }
    }
    cut_ = Cut::kNone;
  }
  return Status::Ok();
}

StatusOr<std::vector<std::string>> RuntimeSwitch::RuntimeCommands(const Runtime& want) const {
  const std::string srv = config_.server.Name();
  if (want.action == RouteTarget::Action::kRoute) {
    auto addr = SetAddrCommand(config_.server, want.host, want.port);
    if (!addr.ok()) return addr.status();
    return std::vector<std::string>{*addr, "set server " + srv + " state ready",
                                    "set server " + srv + " health up"};
  }
  if (!untrusted::IsValidName(config_.server.backend) ||
      !untrusted::IsValidName(config_.server.server)) {
    return InvalidArgument("haproxy server \"" + untrusted::SanitizeForDisplay(srv, 200) +
                           "\": backend and server must each be " + untrusted::kNameRule);
  }
  return std::vector<std::string>{"set server " + srv + " state maint"};
}

StatusOr<std::string> RuntimeSwitch::ServingWorker(const std::atomic<bool>& stopping) {
  Status last;
  auto pid = RetryUntil(DeadlineIn(config_.command_timeout), kRetryPause, &stopping,
                        [&](Millis) -> std::optional<StatusOr<std::string>> {
                          auto info = SendBatch(config_.admin_socket, {}, config_.command_timeout);
                          if (info.ok()) {
                            std::lock_guard lock(mu_);
                            if (!info->stopping && !IsRetiredLocked(info->pid)) return info->pid;
                          } else if (info.status().code() != StatusCode::kUnavailable) {
                            return info.status();
                          } else {
                            last = info.status();
                          }
                          return std::nullopt;
                        });
  if (pid.has_value()) return std::move(*pid);
  if (stopping) return Unavailable("the sink is stopping");
  return last.ok() ? Unavailable("no worker answered") : last;
}

Status RuntimeSwitch::AdoptNewWorker(const std::string& old_pid,
                                     const std::atomic<bool>& stopping) {
  // The new worker: the first pid on the admin socket that is neither the old one nor retired.
  auto new_pid = RetryUntil(DeadlineIn(config_.reload_timeout), kRetryPause, &stopping,
                            [&](Millis) -> std::optional<std::string> {
                              auto info =
                                  SendBatch(config_.admin_socket, {}, config_.command_timeout);
                              if (info.ok() && info->pid != old_pid && !info->stopping) {
                                std::lock_guard lock(mu_);
                                if (!IsRetiredLocked(info->pid)) return info->pid;
                              }
                              return std::nullopt;
                            });
  if (!new_pid.has_value()) {
    if (stopping) return Unavailable("the sink is stopping");
    return Status(StatusCode::kTimeout, "no new haproxy worker answered on " +
                                            config_.admin_socket + " within " +
                                            std::to_string(config_.reload_timeout.count()) +
                                            " ms of the reload (worker " + old_pid +
                                            " still serving; see HAProxy's log)");
  }
  // The new worker runs the config as it was on disk when the master parsed it: a change applied
  // by the fast path since went to the old worker only. Apply the latest state to the new worker.
  std::lock_guard lock(mu_);
  retired_pids_.push_back(old_pid);
  while (retired_pids_.size() > kRetiredMax) retired_pids_.pop_front();
  if (!latest_.has_value()) return Status::Ok();
  auto worker = ApplyToWorkerLocked(*latest_);
  if (!worker.ok()) {
    applied_.reset();  // the next Apply redoes it
    return Status(worker.status().code(),
                  "the new worker did not take the latest route: " + worker.status().message());
  }
  applied_ = latest_;
  applied_pid_ = worker->pid;
  if (latest_->action == RouteTarget::Action::kBlock ||
      (worker->changed && config_.shutdown_sessions)) {
    auto cut = CutInCurrentWorkerLocked();
    if (!cut.ok()) {
      return Status(cut.status().code(), "the new worker " + worker->pid +
                                             " took the latest route but cutting its old sessions "
                                             "failed: " +
                                             cut.status().message());
    }
  }
  if (worker->changed) {
    log_.Info("haproxy_route_reapplied",
              {{"sink", config_.name}, {"old_worker", old_pid}, {"new_worker", worker->pid}});
  }
  return Status::Ok();
}

}  // namespace pgherald::haproxy
