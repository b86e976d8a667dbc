#include "clients/watch/sink_worker.h"

#include <algorithm>
#include <chrono>

#include "common/backoff.h"
#include "common/model/untrusted.h"

namespace pgherald::watch {
namespace {

std::int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SinkWorker::SinkWorker(std::string cluster, std::unique_ptr<Sink> sink, RetryConfig retry)
    : cluster_(std::move(cluster)), sink_(std::move(sink)), retry_(retry) {
  thread_ = std::thread([this] { Run(); });
}

SinkWorker::~SinkWorker() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SinkWorker::Submit(const RouteTarget& target) {
  {
    std::lock_guard lock(mu_);
    queue_.Put(target);
  }
  cv_.notify_all();
}

SinkReport SinkWorker::report() const {
  std::lock_guard lock(mu_);
  return report_;
}

bool SinkWorker::WaitApplied(std::uint64_t seq, Millis timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return report_.applied_seq >= seq; });
}

void SinkWorker::Run() {
  std::unique_lock lock(mu_);
  Backoff backoff(retry_.initial, retry_.max);
  while (true) {
    // The latest target, or the failed one once its backoff passed.
    std::optional<RouteTarget> next = queue_.Take(lock, cv_, stop_);
    if (!next.has_value()) return;  // stop
    RouteTarget target = std::move(*next);
    const std::optional<RouteTarget>& failed = queue_.failed();
    if (!failed.has_value() || failed->seq != target.seq) backoff.Reset();  // new work
    // A block must never be lost to a bad record: it goes on without the master's fields (they
    // only name what is blocked), as when nothing was ever vouched.
    if (target.action == RouteTarget::Action::kBlock && !CheckTarget(target).ok()) {
      log_.Warn("sink_block_without_master",
                {{"cluster", cluster_}, {"sink", sink_->name()}, {"error", CheckTarget(target)}});
      const std::string cluster = target.master.cluster;
      target.master.node.clear();
      target.master.host.clear();
      target.master.port = 0;
      if (!untrusted::IsValidName(cluster)) target.master.cluster.clear();
    }
    // A target built from an invalid master record is refused for every sink, logged once and
    // not retried: only a newer record can change it (the sinks check again themselves).
    if (Status refused = CheckTarget(target); !refused.ok()) {
      report_.consecutive_failures++;
      report_.total_failures++;
      report_.last_error = refused.ToString();
      report_.last_error_at_ms = WallMs();
      queue_.Forget();
      log_.Error("sink_refused", {{"cluster", cluster_},
                                  {"sink", sink_->name()},
                                  {"action", ActionName(target.action)},
                                  {"epoch", target.master.epoch},
                                  {"error", refused}});
      cv_.notify_all();
      continue;
    }
    report_.pending_seq = target.seq;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    Status status = sink_->Apply(target);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    lock.lock();
    report_.pending_seq = 0;
    report_.apply_seconds.Observe(std::chrono::duration<double>(elapsed).count());
    if (status.ok()) {
      const bool recovered = report_.consecutive_failures > 0;
      report_.applied_seq = std::max(report_.applied_seq, target.seq);
      report_.consecutive_failures = 0;
      report_.total_applied++;
      report_.last_error.clear();
      queue_.Forget();
      backoff.Reset();
      log_.Info(recovered ? "sink_recovered" : "sink_applied",
                {{"cluster", cluster_},
                 {"sink", sink_->name()},
                 {"action", ActionName(target.action)},
                 {"node", untrusted::SanitizeForDisplay(target.master.node, 200)},
                 {"host", untrusted::SanitizeForDisplay(target.master.host, 300)},
                 {"port", target.master.port},
                 {"epoch", target.master.epoch},
                 {"hold", target.hold},
                 {"reason", target.reason},
                 {"elapsed", elapsed}});
      cv_.notify_all();
    } else {
      report_.consecutive_failures++;
      report_.total_failures++;
      report_.last_error = status.ToString();
      report_.last_error_at_ms = WallMs();
      log_.Error("sink_failed", {{"cluster", cluster_},
                                 {"sink", sink_->name()},
                                 {"action", ActionName(target.action)},
                                 {"node", untrusted::SanitizeForDisplay(target.master.node, 200)},
                                 {"attempt", report_.consecutive_failures},
                                 {"retry_in", backoff.next()},
                                 {"error", status}});
      queue_.Failed(target, backoff.Failed());
      cv_.notify_all();
    }
  }
}

}  // namespace pgherald::watch
