#include "haproxy/config_persister.h"

#include "common/atomic_file.h"
#include "common/backoff.h"
#include "common/bounded_file.h"
#include "common/subprocess.h"
#include "common/template.h"

namespace pgherald::haproxy {

using watch::RouteTarget;
using SteadyClock = std::chrono::steady_clock;

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

}  // namespace

ConfigPersister::ConfigPersister(const HaproxySinkConfig& config, RuntimeSwitch& runtime)
    : config_(config), runtime_(runtime), thread_([this] { Loop(); }) {}

ConfigPersister::~ConfigPersister() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stopping_ = true;
  cv_.notify_all();
  thread_.join();
}

void ConfigPersister::Hand(const RouteTarget& target) {
  {
    std::lock_guard lock(mu_);
    queue_.Put(target);
    ++handed_;
  }
  cv_.notify_all();
}

Status ConfigPersister::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

Status ConfigPersister::WaitSettled(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const std::uint64_t want = handed_;
  if (!cv_.wait_for(lock, timeout, [&] { return settled_ >= want; })) {
    return Status(StatusCode::kTimeout, "the config step of sink " + config_.name +
                                            " did not settle within " +
                                            std::to_string(timeout.count()) + " ms");
  }
  return status_;
}

void ConfigPersister::Loop() {
  std::unique_lock lock(mu_);
  Backoff backoff(config_.config_retry_initial, config_.config_retry_max);
  while (true) {
    // The latest target, or the failed one once its backoff passed.
    std::optional<RouteTarget> next = queue_.Take(lock, cv_, stop_);
    if (!next.has_value()) return;  // stop
    const RouteTarget target = std::move(*next);
    const bool retrying = queue_.failed().has_value();
    const std::uint64_t handed = handed_;
    lock.unlock();
    const auto start = SteadyClock::now();
    auto written = Persist(target);
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
    lock.lock();
    settled_ = handed;
    status_ = written.ok() ? Status::Ok() : written.status();
    if (written.ok()) {
      if (*written || retrying) {
        log_.Info(retrying ? "haproxy_config_recovered" : "haproxy_config_applied",
                  {{"sink", config_.name},
                   {"file", config_.config_file},
                   {"action", watch::ActionName(target.action)},
                   {"node", target.master.node},
                   {"epoch", target.master.epoch},
                   {"reloaded", reload_ == Reload::kNone},
                   {"elapsed", elapsed}});
      }
      queue_.Forget();
      backoff.Reset();
    } else {
      log_.Error("haproxy_config_failed", {{"sink", config_.name},
                                           {"file", config_.config_file},
                                           {"action", watch::ActionName(target.action)},
                                           {"node", target.master.node},
                                           {"epoch", target.master.epoch},
                                           {"retry_in", backoff.next()},
                                           {"error", written.status()}});
      queue_.Failed(target, backoff.Failed());
    }
    cv_.notify_all();
  }
}

StatusOr<bool> ConfigPersister::Persist(const RouteTarget& target) {
  auto rendered = Render(target);
  if (!rendered.ok()) return rendered.status();
  // Our own file, but read as any path: a regular file under the cap, or "differs" (rewritten).
  auto on_disk = ReadBoundedFile(config_.config_file, "config_file", kMaxTemplateFileBytes,
                                 /*follow_symlinks=*/false);
  const bool same = on_disk.ok() && on_disk->content == *rendered;
  if (same && reload_ == Reload::kNone) return false;  // nothing to write, nothing to reload
  if (!same) {
    if (Status s = SwapIn(*rendered); !s.ok()) return s;
    if (reload_ == Reload::kNone && !config_.master_socket.empty()) {
      reload_ = Reload::kDue;
      reload_due_ = SteadyClock::now() + config_.reload_delay;
    }
  }
  if (reload_ == Reload::kDue) {
    auto reloaded = ReloadWhenDue();
    if (!reloaded.ok()) return reloaded.status();
    if (*reloaded) reload_ = Reload::kNone;
  }
  return true;
}

StatusOr<std::string> ConfigPersister::Render(const RouteTarget& target) const {
  auto rendered =
      RenderTemplateFile(config_.template_file, HaproxyTemplateVars(target, config_.vars),
                         HaproxyTemplateRules(target.action));
  if (!rendered.ok()) {
    return Status(rendered.status().code(), "template " + config_.template_file +
                                                " does not render, " + config_.config_file +
                                                " left untouched: " + rendered.status().message());
  }
  return rendered;
}

Status ConfigPersister::SwapIn(const std::string& rendered) {
  // A new config file may hold secrets (stats auth, userlists): 0600. An existing one keeps its
  // owner and mode.
  auto pending = PendingFile::Create(config_.config_file, rendered, 0600);
  if (!pending.ok()) return pending.status();
  ProcessOptions check;
  // Not -q: it silences the [ALERT] lines that say what is wrong.
  check.argv = {config_.haproxy_bin, "-c", "-f", pending->path()};
  check.timeout = config_.validate_timeout;
  // The route is already live through the runtime API: the validation (about 70 ms of CPU here)
  // must not compete with the reconnections that follow a switch.
  check.nice = 10;
  auto result = RunProcess(check);
  if (!result.ok() || !result->success()) {
    pending->Discard();
    std::string why = result.ok() ? result->Describe() + ": " + AlertLines(result->output)
                                  : result.status().ToString();
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return InvalidArgument("haproxy -c rejected the config rendered from " + config_.template_file +
                           ", " + config_.config_file + " left untouched: " + why);
  }
  return pending->Commit();
}

StatusOr<bool> ConfigPersister::ReloadWhenDue() {
  // The file already names the target (a restart or someone else's reload keeps the route) and
  // the workers route to it through the runtime API: the reload only brings the rest of the
  // rendered config in, so it waits reload_delay, away from the reconnections that follow a switch
  // (connections opened while HAProxy reloads take longer). A newer target is persisted first; the
  // reload still happens at most reload_delay after the first unreloaded swap.
  {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, reload_due_, [&] { return stop_ || queue_.has_new(); });
    if (stop_) return false;
    if (queue_.has_new() && SteadyClock::now() < reload_due_) return false;
  }
  Status s = [&]() -> Status {
    // The worker serving now, which the reload must replace. The fast path may run meanwhile: it
    // keeps applying to this worker, which serves new connections until the new one takes over.
    auto old_pid = runtime_.ServingWorker(stopping_);
    if (!old_pid.ok()) return old_pid.status();
    auto answer = SendCommandRetrying(config_.master_socket, "reload", config_.command_timeout,
                                      config_.command_timeout);
    if (!answer.ok()) return answer.status();
    return runtime_.AdoptNewWorker(*old_pid, stopping_);
  }();
  if (!s.ok()) {
    return Status(s.code(),
                  config_.config_file + " was updated but the reload failed: " + s.message());
  }
  return true;
}

}  // namespace pgherald::haproxy
