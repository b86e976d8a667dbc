#include "haproxy/haproxy_sink.h"

#include <algorithm>
#include <sstream>

#include "clients/watch/subprocess.h"
#include "common/atomic_file.h"
#include "common/bounded_file.h"
#include "common/untrusted.h"

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

bool EmptyOrName(std::string_view v) { return v.empty() || untrusted::IsValidName(v); }
bool EmptyOrHost(std::string_view v) { return v.empty() || untrusted::IsValidHost(v); }

}  // namespace

watch::TemplateRules HaproxyTemplateRules(RouteTarget::Action action) {
  watch::TemplateRules rules = {
      {"cluster", watch::NameValue()},     {"node", watch::NameValue()},
      {"host", watch::HostValue()},        {"port", watch::PortValue()},
      {"epoch", watch::NumberValue()},     {"timeline", watch::NumberValue()},
      {"status", watch::WordValue()},      {"action", watch::WordValue()},
      {"server_state", watch::WordValue()}};
  if (action == RouteTarget::Action::kBlock) {
    rules["cluster"] = {untrusted::kNameRule, EmptyOrName};
    rules["node"] = {untrusted::kNameRule, EmptyOrName};
    rules["host"] = {untrusted::kHostRule, EmptyOrHost};
    rules["port"] = {"a port number, 1-65535, or 0", watch::NumberValue().allows};
  }
  return rules;
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
  auto answer = SendCommand(master_socket, prefix + "shutdown sessions server " + ref.Name(), timeout);
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

using SteadyClock = std::chrono::steady_clock;

// Pacing between attempts at a socket that refused us or a worker on its way out: HAProxy needs
// a few ms to finish a reload, and each attempt costs well under 1 ms.
constexpr std::chrono::milliseconds kRetryPause{1};
// How long the fast path retries the master CLI (it refuses connections while a reload is in
// flight) before reporting the cut of old workers' sessions as failed: the route is already live,
// and a longer wait would hold up the next route; the retry of the cut alone follows.
constexpr std::chrono::milliseconds kMasterRetryWindow{20};
constexpr size_t kRetiredMax = 64;

std::chrono::milliseconds Left(SteadyClock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
}

// Sends `command` to the socket, retrying a refused connection (kUnavailable) until `window`.
StatusOr<std::string> SendRetrying(const std::string& socket, const std::string& command,
                                   std::chrono::milliseconds window,
                                   std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + window;
  while (true) {
    auto answer = SendCommand(socket, command, timeout);
    if (answer.ok() || answer.status().code() != StatusCode::kUnavailable ||
        Left(deadline).count() <= 0) {
      return answer;
    }
    std::this_thread::sleep_for(kRetryPause);  // retry pacing
  }
}

std::string Describe(const RouteTarget& target) {
  if (target.action == RouteTarget::Action::kBlock) return "block";
  return target.master.node + " (" + target.master.host + ":" + std::to_string(target.master.port) +
         ")";
}

}  // namespace

HaproxySink::HaproxySink(HaproxySinkConfig config) : config_(std::move(config)) {
  if (!config_.config_file.empty()) config_thread_ = std::thread([this] { ConfigLoop(); });
}

HaproxySink::~HaproxySink() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stopping_ = true;
  cv_.notify_all();
  if (config_thread_.joinable()) config_thread_.join();
}

bool HaproxySink::IsRetiredLocked(const std::string& pid) const {
  return std::find(retired_pids_.begin(), retired_pids_.end(), pid) != retired_pids_.end();
}

StatusOr<HaproxySink::Worker> HaproxySink::ApplyToWorkerLocked(const Runtime& want) {
  auto built = RuntimeCommands(want);
  if (!built.ok()) return built.status();
  const std::vector<std::string>& commands = *built;
  const bool route = want.action == RouteTarget::Action::kRoute;
  const auto deadline = SteadyClock::now() + config_.command_timeout;
  Status last;
  int attempts = 0;
  while (true) {
    const auto left = Left(deadline);
    if (left.count() <= 0) break;
    ++attempts;
    auto answer = SendBatch(config_.admin_socket, commands, left);
    if (answer.ok()) {
      if (!answer->stopping && !IsRetiredLocked(answer->pid)) {
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
            return FailedPrecondition("haproxy refused \"" + commands[i] + "\": " +
                                      answer->answers[i]);
          }
        }
        return worker;
      }
      last = Unavailable("only an old haproxy worker (pid " + answer->pid +
                         ", replaced by a reload) answered on " + config_.admin_socket);
    } else if (answer.status().code() != StatusCode::kUnavailable) {
      return answer.status();
    } else {
      last = answer.status();
    }
    std::this_thread::sleep_for(kRetryPause);  // retry pacing
  }
  return Status(last.ok() ? StatusCode::kTimeout : last.code(),
                (last.ok() ? "no answer" : last.message()) + " (" + std::to_string(attempts) +
                    " attempts in " + std::to_string(config_.command_timeout.count()) + " ms)");
}

StatusOr<std::string> HaproxySink::CutInCurrentWorkerLocked() {
  const std::string cut = "shutdown sessions server " + config_.server.Name();
  const auto deadline = SteadyClock::now() + config_.command_timeout;
  Status last;
  while (true) {
    const auto left = Left(deadline);
    if (left.count() <= 0) break;
    auto answer = SendBatch(config_.admin_socket, {cut}, left);
    if (answer.ok()) {
      if (!answer->stopping && !IsRetiredLocked(answer->pid)) {
        if (!answer->answers[0].empty()) {
          return FailedPrecondition("haproxy refused \"" + cut + "\": " + answer->answers[0]);
        }
        return answer->pid;
      }
      last = Unavailable("only an old haproxy worker (pid " + answer->pid +
                         ", replaced by a reload) answered on " + config_.admin_socket);
    } else if (answer.status().code() != StatusCode::kUnavailable) {
      return answer.status();
    } else {
      last = answer.status();
    }
    std::this_thread::sleep_for(kRetryPause);  // retry pacing
  }
  return last.ok() ? Status(StatusCode::kTimeout, "no answer to \"" + cut + "\"") : last;
}

Status HaproxySink::OtherWorkersStep(const Runtime& want, const std::string& current_pid) {
  auto pids = WorkerPids(config_.master_socket, config_.command_timeout);
  if (!pids.ok() && pids.status().code() == StatusCode::kUnavailable) {
    const auto deadline = SteadyClock::now() + kMasterRetryWindow;
    while (!pids.ok() && pids.status().code() == StatusCode::kUnavailable &&
           Left(deadline).count() > 0) {
      std::this_thread::sleep_for(kRetryPause);  // retry pacing
      pids = WorkerPids(config_.master_socket, config_.command_timeout);
    }
  }
  if (!pids.ok()) return pids.status();
  if (pending_old_route_) {
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
    pending_old_route_ = false;
  }
  if (pending_cut_) {
    for (const auto& pid : *pids) {
      if (pid == pending_cut_done_pid_) continue;
      if (Status s = CutWorkerSessions(config_.master_socket, pid, config_.server,
                                       config_.command_timeout);
          !s.ok()) {
        return s;
      }
    }
    pending_cut_ = false;
  }
  return Status::Ok();
}

StatusOr<std::vector<std::string>> HaproxySink::RuntimeCommands(const Runtime& want) const {
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

Status HaproxySink::Apply(const RouteTarget& target) {
  // Untrusted input: an invalid field stops everything here (no runtime command, no rendering).
  if (Status s = watch::CheckTarget(target); !s.ok()) return s;
  const Runtime want{target.action, target.master.host, target.master.port};
  std::string current_pid;
  {
    std::lock_guard lock(runtime_mu_);
    latest_ = want;
    if (!(applied_ == want && !applied_pid_.empty() && !IsRetiredLocked(applied_pid_))) {
      auto worker = ApplyToWorkerLocked(want);
      if (!worker.ok()) {
        applied_.reset();  // partly applied, maybe: redo it all
        return worker.status();
      }
      applied_ = want;
      applied_pid_ = worker->pid;
      pending_old_route_ = true;
      if (want.action == RouteTarget::Action::kBlock ||
          (worker->changed && config_.shutdown_sessions)) {
        pending_cut_ = true;  // blocking cuts every session, whatever the option says
        pending_cut_done_pid_.clear();
      }
    }
    current_pid = applied_pid_;
  }
  if (config_thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      next_ = target;
      ++handed_;
    }
    cv_.notify_all();
  }
  if (pending_cut_ && pending_cut_done_pid_.empty()) {
    std::lock_guard lock(runtime_mu_);
    auto pid = CutInCurrentWorkerLocked();
    if (!pid.ok()) {
      return Status(pid.status().code(), "the route to " + Describe(target) +
                                             " is live, but cutting the old sessions failed: " +
                                             pid.status().message());
    }
    pending_cut_done_pid_ = *pid;
  }
  if (config_.master_socket.empty()) {
    pending_old_route_ = false;
    pending_cut_ = false;
  } else if (pending_old_route_ || pending_cut_) {
    if (Status s = OtherWorkersStep(want, current_pid); !s.ok()) {
      return Status(s.code(), "the route to " + Describe(target) + " is live in worker " +
                                  current_pid + ", not yet in older workers" +
                                  (pending_cut_ ? " (nor are their old sessions cut)" : "") +
                                  ": " + s.message());
    }
  }
  std::lock_guard lock(mu_);
  return config_status_;
}

Status HaproxySink::WaitConfigSettled(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const std::uint64_t want = handed_;
  if (!cv_.wait_for(lock, timeout, [&] { return settled_ >= want; })) {
    return Status(StatusCode::kTimeout, "the config step of sink " + config_.name +
                                            " did not settle within " +
                                            std::to_string(timeout.count()) + " ms");
  }
  return config_status_;
}

void HaproxySink::ConfigLoop() {
  std::unique_lock lock(mu_);
  std::optional<RouteTarget> failed;  // the target whose config step failed, awaiting its retry
  auto backoff = config_.config_retry_initial;
  SteadyClock::time_point retry_at;
  while (true) {
    if (failed.has_value() && !next_.has_value()) {
      cv_.wait_until(lock, retry_at, [&] { return stop_ || next_.has_value(); });
    } else {
      cv_.wait(lock, [&] { return stop_ || next_.has_value(); });
    }
    if (stop_) return;
    RouteTarget target;
    if (next_.has_value()) {
      target = std::move(*next_);
      next_.reset();
    } else if (failed.has_value() && SteadyClock::now() >= retry_at) {
      target = *failed;
    } else {
      continue;
    }
    const std::uint64_t handed = handed_;
    lock.unlock();
    const auto start = SteadyClock::now();
    auto written = PersistConfig(target);
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        SteadyClock::now() - start);
    lock.lock();
    settled_ = handed;
    config_status_ = written.ok() ? Status::Ok() : written.status();
    if (written.ok()) {
      if (*written || failed.has_value()) {
        log_.Info(failed.has_value() ? "haproxy_config_recovered" : "haproxy_config_applied",
                  {{"sink", config_.name}, {"file", config_.config_file},
                   {"action", watch::ActionName(target.action)}, {"node", target.master.node},
                   {"epoch", target.master.epoch}, {"reloaded", !reload_pending_},
                   {"elapsed", elapsed}});
      }
      failed.reset();
      backoff = config_.config_retry_initial;
    } else {
      log_.Error("haproxy_config_failed",
                 {{"sink", config_.name}, {"file", config_.config_file},
                  {"action", watch::ActionName(target.action)}, {"node", target.master.node},
                  {"epoch", target.master.epoch}, {"retry_in", backoff},
                  {"error", written.status()}});
      failed = target;
      retry_at = SteadyClock::now() + backoff;
      backoff = std::min(backoff * 2, config_.config_retry_max);
    }
    cv_.notify_all();
  }
}

StatusOr<bool> HaproxySink::PersistConfig(const RouteTarget& target) {
  auto rendered =
      watch::RenderTemplateFile(config_.template_file, HaproxyTemplateVars(target, config_.vars),
                                HaproxyTemplateRules(target.action));
  if (!rendered.ok()) {
    return Status(rendered.status().code(),
                  "template " + config_.template_file + " does not render, " + config_.config_file +
                      " left untouched: " + rendered.status().message());
  }
  // Our own file, but read as any path: a regular file under the cap, or "differs" (rewritten).
  auto on_disk = ReadBoundedFile(config_.config_file, "config_file", kMaxTemplateFileBytes,
                                 /*follow_symlinks=*/false);
  const bool same = on_disk.ok() && on_disk->content == *rendered;
  if (same && !reload_pending_) return false;  // nothing to write, nothing to reload
  if (!same) {
    // A new config file may hold secrets (stats auth, userlists): 0600. An existing one keeps
    // its owner and mode.
    auto pending = PendingFile::Create(config_.config_file, *rendered, 0600);
    if (!pending.ok()) return pending.status();
    const std::string tmp = pending->path();
    watch::ProcessOptions check;
    // Not -q: it silences the [ALERT] lines that say what is wrong.
    check.argv = {config_.haproxy_bin, "-c", "-f", tmp};
    check.timeout = config_.validate_timeout;
    // The route is already live through the runtime API: the validation (about 70 ms of CPU
    // here) must not compete with the reconnections that follow a switch.
    check.nice = 10;
    auto result = watch::RunProcess(check);
    if (!result.ok() || !result->success()) {
      pending->Discard();
      std::string why = result.ok() ? result->Describe() + ": " + AlertLines(result->output)
                                    : result.status().ToString();
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      return InvalidArgument("haproxy -c rejected the config rendered from " +
                             config_.template_file + ", " + config_.config_file +
                             " left untouched: " + why);
    }
    if (Status s = pending->Commit(); !s.ok()) return s;
    if (!reload_pending_ && !config_.master_socket.empty()) {
      reload_pending_ = true;
      reload_due_ = SteadyClock::now() + config_.reload_delay;
    }
  }
  if (reload_pending_) {
    // The file already names the target (a restart or someone else's reload keeps the route) and
    // the workers route to it through the runtime API: the reload only brings the rest of the
    // rendered config in, so it waits reload_delay, away from the reconnections that follow a
    // switch (connections opened while HAProxy reloads take longer). A newer target is persisted
    // first; the reload still happens at most reload_delay after the first unreloaded swap.
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, reload_due_, [&] { return stop_ || next_.has_value(); });
      if (stop_) return true;
      if (next_.has_value() && SteadyClock::now() < reload_due_) return true;
    }
    if (Status s = ReloadAndReapply(); !s.ok()) {
      return Status(s.code(), config_.config_file + " was updated but the reload failed: " +
                                  s.message());
    }
    reload_pending_ = false;
  }
  return true;
}

Status HaproxySink::ReloadAndReapply() {
  // The worker serving now, which the reload must replace. The fast path may run meanwhile: it
  // keeps applying to this worker, which serves new connections until the new one takes over.
  std::string old_pid;
  {
    const auto deadline = SteadyClock::now() + config_.command_timeout;
    Status last;
    while (old_pid.empty()) {
      if (stopping_) return Unavailable("the sink is stopping");
      if (Left(deadline).count() <= 0) return last.ok() ? Unavailable("no worker answered") : last;
      auto info = SendBatch(config_.admin_socket, {}, config_.command_timeout);
      if (info.ok()) {
        std::lock_guard lock(runtime_mu_);
        if (!info->stopping && !IsRetiredLocked(info->pid)) old_pid = info->pid;
      } else if (info.status().code() != StatusCode::kUnavailable) {
        return info.status();
      } else {
        last = info.status();
      }
      if (old_pid.empty()) std::this_thread::sleep_for(kRetryPause);  // retry pacing
    }
  }
  auto answer = SendRetrying(config_.master_socket, "reload", config_.command_timeout,
                             config_.command_timeout);
  if (!answer.ok()) return answer.status();
  // The new worker: the first pid on the admin socket that is neither the old one nor retired.
  const auto deadline = SteadyClock::now() + config_.reload_timeout;
  std::string new_pid;
  while (new_pid.empty()) {
    if (stopping_) return Unavailable("the sink is stopping");
    if (Left(deadline).count() <= 0) {
      return Status(StatusCode::kTimeout,
                    "no new haproxy worker answered on " + config_.admin_socket + " within " +
                        std::to_string(config_.reload_timeout.count()) +
                        " ms of the reload (worker " + old_pid +
                        " still serving; see HAProxy's log)");
    }
    auto info = SendBatch(config_.admin_socket, {}, config_.command_timeout);
    if (info.ok() && info->pid != old_pid && !info->stopping) {
      std::lock_guard lock(runtime_mu_);
      if (!IsRetiredLocked(info->pid)) new_pid = info->pid;
    }
    if (new_pid.empty()) std::this_thread::sleep_for(kRetryPause);  // retry pacing
  }
  // The new worker runs the config as it was on disk when the master parsed it: a change applied
  // by the fast path since went to the old worker only. Apply the latest state to the new worker.
  std::lock_guard lock(runtime_mu_);
  retired_pids_.push_back(old_pid);
  while (retired_pids_.size() > kRetiredMax) retired_pids_.pop_front();
  if (!latest_.has_value()) return Status::Ok();
  auto worker = ApplyToWorkerLocked(*latest_);
  if (!worker.ok()) {
    applied_.reset();  // the next Apply redoes it
    return Status(worker.status().code(), "the new worker did not take the latest route: " +
                                              worker.status().message());
  }
  applied_ = latest_;
  applied_pid_ = worker->pid;
  if (latest_->action == RouteTarget::Action::kBlock ||
      (worker->changed && config_.shutdown_sessions)) {
    auto cut = CutInCurrentWorkerLocked();
    if (!cut.ok()) {
      return Status(cut.status().code(), "the new worker " + worker->pid +
                                             " took the latest route but cutting its old sessions "
                                             "failed: " + cut.status().message());
    }
  }
  if (worker->changed) {
    log_.Info("haproxy_route_reapplied", {{"sink", config_.name}, {"old_worker", old_pid},
                                          {"new_worker", worker->pid}});
  }
  return Status::Ok();
}

}  // namespace pgherald::haproxy
