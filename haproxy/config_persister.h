// Part 2 of the HAProxy sink (haproxy_sink.h): config persistence. Makes haproxy.cfg, and then the
// running HAProxy, follow the latest target, on its own thread so that it never delays a route.
//
// Steps for each target taken (latest wins: targets handed over meanwhile are skipped):
//   Render    the config from the {{var}} template (HaproxyTemplateRules for every variable);
//   SwapIn    unless the file on disk already says the same: a temporary file beside it, checked
//             with `haproxy -c -f <temp>` (niced: the route is already live), then renamed over it
//             (common/atomic_file.h: owner and mode kept, 0600 when new);
//   Reload    reload_delay after the first swap not yet reloaded (swaps within it share it),
//             through the master CLI; then RuntimeSwitch::AdoptNewWorker gives the new worker the
//             latest runtime state.
// A failed step leaves the running config as it is, is logged (`haproxy_config_failed`) and
// retried with backoff (config_retry_initial, doubling up to config_retry_max) until it succeeds or
// a newer target replaces it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "clients/watch/latest_target.h"
#include "clients/watch/sink.h"
#include "common/logging.h"
#include "haproxy/haproxy_sink_config.h"
#include "haproxy/runtime_switch.h"

namespace pgherald::haproxy {

class ConfigPersister {
 public:
  // Starts the thread. `config` and `runtime` must outlive the persister.
  ConfigPersister(const HaproxySinkConfig& config, RuntimeSwitch& runtime);
  // Stops the thread after its current step (a reload delay or a wait for a worker ends at once).
  ~ConfigPersister();
  ConfigPersister(const ConfigPersister&) = delete;
  ConfigPersister& operator=(const ConfigPersister&) = delete;

  // Hands `target` over and returns at once.
  void Hand(const watch::RouteTarget& target);
  // The outcome of the latest attempt (Ok before the first).
  Status status() const;
  // Waits until an attempt was made for every target handed over so far and returns its outcome
  // (kTimeout if none within `timeout`).
  Status WaitSettled(std::chrono::milliseconds timeout);

 private:
  // Whether a swapped config still waits for its reload.
  enum class Reload {
    kNone,  // HAProxy runs the file on disk (or no reload was needed)
    kDue,   // swapped, not reloaded: reload at reload_due_
  };

  void Loop();
  // One attempt for `target`: whether the file was written (and HAProxy reloaded).
  StatusOr<bool> Persist(const watch::RouteTarget& target);
  StatusOr<std::string> Render(const watch::RouteTarget& target) const;
  Status SwapIn(const std::string& rendered);
  // The reload once it is due; false when it was put off (a newer target came first, or stop).
  StatusOr<bool> ReloadWhenDue();

  const HaproxySinkConfig& config_;
  RuntimeSwitch& runtime_;
  const log::Logger log_{"watch"};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  watch::LatestTarget queue_;               // guarded by mu_: the targets handed over
  std::uint64_t handed_ = 0;                // guarded by mu_: targets handed over
  std::uint64_t settled_ = 0;               // guarded by mu_: handed_ as of the last attempt
  Status status_;                           // guarded by mu_: the last attempt's outcome
  bool stop_ = false;                       // guarded by mu_
  std::atomic<bool> stopping_{false};       // stop_, for the polling waits for a worker
  Reload reload_ = Reload::kNone;           // the thread only
  std::chrono::steady_clock::time_point reload_due_;  // the thread only, with Reload::kDue
  std::thread thread_;                                // last: started once the rest is built
};

}  // namespace pgherald::haproxy
