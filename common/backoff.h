// Retrying, in two shapes (header-only, pgherald::base):
//  - Backoff: the wait after a failure starts at `initial`, doubles after each further failure and
//    is capped at `max`; a success (or a new piece of work) starts over. The sink workers, the
//    HAProxy config step and the poller's reconnection pace their retries with it.
//  - RetryUntil: attempts paced by a short fixed pause until an answer or a deadline, for a peer
//    that is about to answer (HAProxy's sockets during a reload).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "common/base/clock.h"

namespace pgherald {

class Backoff {
 public:
  Backoff(Millis initial, Millis max) : initial_(initial), max_(max), next_(initial) {}

  // The wait the next failure gets (for a log line announcing it).
  Millis next() const { return next_; }
  // A failure: returns the wait before the retry; the failure after it waits twice as long.
  Millis Failed() {
    const Millis wait = next_;
    next_ = std::min(next_ * 2, max_);
    return wait;
  }
  // A success or new work: the next failure waits `initial` again.
  void Reset() { next_ = initial_; }

 private:
  Millis initial_;
  Millis max_;
  Millis next_;
};

// The same rule for a caller that keeps only the current wait: zero (no failure yet) gives
// `initial`, any other wait is doubled, at most `max`.
inline Millis NextBackoff(Millis previous, Millis initial, Millis max) {
  return previous.count() == 0 ? initial : std::min(previous * 2, max);
}

// Calls `attempt(left)` -- `left`: the time until `deadline`, always positive -- until it returns
// a final answer (a non-empty std::optional), sleeping `pause` after each empty one. std::nullopt
// once the deadline passed, or `stop` (when given) became true, before an answer.
template <class Attempt>
auto RetryUntil(MonoTime deadline, Millis pause, const std::atomic<bool>* stop, Attempt attempt)
    -> decltype(attempt(Millis{})) {
  while (stop == nullptr || !stop->load()) {
    const auto left =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (auto answer = attempt(left)) return answer;
    std::this_thread::sleep_for(pause);  // retry pacing
  }
  return std::nullopt;
}

}  // namespace pgherald
