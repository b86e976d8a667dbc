// Runs one Sink on its own thread, so that a slow or failing sink never delays the others.
//
// Latest state wins: Submit() replaces any target not yet started; a target that arrives while
// one is being applied is applied next, and the intermediate ones are skipped. A failed Apply()
// is retried with exponential backoff (initial, doubling, capped at max) until it succeeds or a
// newer target replaces it (which is tried at once). Each failure and each success after a failure
// is logged with the sink's name; report() gives the latest outcome for status output and tests.
// A target that fails CheckTarget (an invalid master record: untrusted input) never reaches the
// sink: it is reported as a failure, logged once (`sink_refused`) and not retried. A block is
// never refused: its invalid master fields are cleared (`sink_block_without_master`) and it is
// applied as a block with nothing vouched.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "clients/watch/latest_target.h"
#include "clients/watch/sink.h"
#include "common/logging.h"
#include "common/prometheus.h"

namespace pgherald::watch {

struct RetryConfig {
  Millis initial{200};
  Millis max{10000};
};

struct SinkReport {
  std::uint64_t applied_seq = 0;    // the seq of the last target applied successfully (0: none)
  std::uint64_t pending_seq = 0;    // the seq of the target being applied or retried (0: none)
  int consecutive_failures = 0;
  std::uint64_t total_failures = 0;
  std::uint64_t total_applied = 0;
  std::string last_error;           // empty after a success
  std::int64_t last_error_at_ms = 0;  // wall clock of the last failure (0: none yet)
  prom::Histogram apply_seconds;      // every Apply(), failed or not (/metrics)
};

class SinkWorker {
 public:
  // Starts the thread. `cluster` is for log lines.
  SinkWorker(std::string cluster, std::unique_ptr<Sink> sink, RetryConfig retry);
  // Stops after the Apply() in progress, if any; pending targets are dropped.
  ~SinkWorker();
  SinkWorker(const SinkWorker&) = delete;
  SinkWorker& operator=(const SinkWorker&) = delete;

  // Never blocks on the sink.
  void Submit(const RouteTarget& target);
  SinkReport report() const;
  const std::string& name() const { return sink_->name(); }
  // Blocks until the target with `seq` (or a newer one) was applied, or the timeout passes.
  bool WaitApplied(std::uint64_t seq, Millis timeout) const;

 private:
  void Run();

  const std::string cluster_;
  const std::unique_ptr<Sink> sink_;
  const RetryConfig retry_;
  const log::Logger log_{"watch"};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  LatestTarget queue_;               // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  SinkReport report_;                // guarded by mu_
  std::thread thread_;
};

}  // namespace pgherald::watch
