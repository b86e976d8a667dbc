// Time is injected: daemons use SystemClock, unit tests a ManualClock they advance.
#pragma once

#include <chrono>
#include <mutex>

namespace pgherald {

using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic: for leases, timeouts, latencies. Never goes back.
  virtual MonoTime Now() const = 0;
  // Wall clock: only for timestamps shown to people and written into payloads.
  virtual WallTime WallNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  MonoTime Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
  // A process-wide instance for production wiring.
  static const Clock& Instance() {
    static const SystemClock clock;
    return clock;
  }
};

// A clock that moves only when told to. Thread-safe.
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
