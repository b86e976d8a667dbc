// Time is injected: daemons use SystemClock, unit tests a ManualClock they advance
// (tests/support/manual_clock.h, test support only).
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

}  // namespace pgherald
