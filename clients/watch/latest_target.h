// The hand-over from a producer to one worker thread that applies route targets with retries, as
// the sink workers (sink_worker.h) and the HAProxy sink's config thread (haproxy/
// config_persister.h) do: the latest target wins (one not yet taken is replaced), and a failed one
// is retried once its wait has passed unless a newer one comes first. How long that wait is
// (Backoff, common/backoff.h) stays with the caller.
//
// Not thread-safe by itself: the caller's mutex guards it (every call with that mutex held), so the
// caller keeps its own state under the same lock; the caller notifies its condition variable after
// Put().
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "clients/watch/route_policy.h"
#include "common/base/clock.h"

namespace pgherald::watch {

class LatestTarget {
 public:
  // Replaces any target not yet taken.
  void Put(const RouteTarget& target) { next_ = target; }
  // A target was put and not taken yet.
  bool has_new() const { return next_.has_value(); }
  // The target whose last attempt failed, awaiting its retry.
  const std::optional<RouteTarget>& failed() const { return failed_; }

  // Waits on `cv` (releasing `lock` meanwhile) until `stop` is true or a target is due: the one
  // last put, or else the failed one once its wait has passed. std::nullopt once `stop`.
  std::optional<RouteTarget> Take(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                                  const bool& stop) {
    while (true) {
      if (failed_.has_value() && !next_.has_value()) {
        cv.wait_until(lock, retry_at_, [&] { return stop || next_.has_value(); });
      } else {
        cv.wait(lock, [&] { return stop || next_.has_value(); });
      }
      if (stop) return std::nullopt;
      if (next_.has_value()) {
        std::optional<RouteTarget> target = std::move(next_);
        next_.reset();
        return target;
      }
      if (failed_.has_value() && std::chrono::steady_clock::now() >= retry_at_) return failed_;
    }
  }
  // The attempt at `target` failed: it is retried `wait` from now (unless a newer one comes).
  void Failed(const RouteTarget& target, Millis wait) {
    failed_ = target;
    retry_at_ = std::chrono::steady_clock::now() + wait;
  }
  // Nothing to retry: the last attempt succeeded, or its target is refused for good.
  void Forget() { failed_.reset(); }

 private:
  std::optional<RouteTarget> next_;
  std::optional<RouteTarget> failed_;
  MonoTime retry_at_{};
};

}  // namespace pgherald::watch
