// ManualClock: a Clock (common/base/clock.h) that moves only when a test advances it. Test
// support only (pgherald_test_support): the product wires SystemClock.
#pragma once

#include <chrono>
#include <mutex>

#include "common/base/clock.h"

namespace pgherald {

// Starts an hour after the monotonic epoch and about 56 years after the wall epoch. Thread-safe.
class ManualClock final : public Clock {
 public:
  ManualClock() : mono_(std::chrono::steady_clock::time_point{} + std::chrono::hours(1)),
                  wall_(std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 56)) {}
  MonoTime Now() const override {
    std::lock_guard lock(mu_);
    return mono_;
  }
  WallTime WallNow() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }
  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    mono_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  mutable std::mutex mu_;
  MonoTime mono_;
  WallTime wall_;
};

}  // namespace pgherald
