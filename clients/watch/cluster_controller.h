// One cluster of `pgherald watch`: its RoutePolicy and its sinks, each on its own SinkWorker.
//
// HandleState() and HandleTick() are synchronous (unit tests call them with a ManualClock);
// Start() adds the thread that runs HandleTick() at the policy's deadlines (the grace periods).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clients/watch/route_policy.h"
#include "clients/watch/sink_worker.h"
#include "common/logging.h"

namespace pgherald::watch {

class ClusterController {
 public:
  ClusterController(std::string cluster, PolicyConfig policy, const Clock& clock,
                    std::vector<std::unique_ptr<SinkWorker>> workers);
  ~ClusterController();  // Stop()
  ClusterController(const ClusterController&) = delete;
  ClusterController& operator=(const ClusterController&) = delete;

  // Feeds a state from the MasterSource (any thread). Sinks receive any new target.
  void HandleState(const client::MasterInfo& info);
  // Re-evaluates the grace periods against the clock.
  void HandleTick();

  // Starts / stops the grace-period timer thread (it waits on the real steady clock until the
  // policy's next deadline, so use it only with a clock that follows steady_clock).
  void Start();
  void Stop();

  std::optional<RouteTarget> current() const;
  // For tests: not while ReplaceWorkers() may run.
  const std::vector<std::unique_ptr<SinkWorker>>& workers() const { return workers_; }

  // SIGHUP: the new sinks take over and are given the current target at once (so a changed
  // template is applied now, not at the next failover); the old ones stop after the Apply() in
  // progress. The policy and its state are kept.
  void ReplaceWorkers(std::vector<std::unique_ptr<SinkWorker>> workers);

  // What /metrics shows (clients/watch/watch_metrics.h).
  struct Snapshot {
    std::optional<RouteTarget> current;
    std::optional<client::MasterStatus> status;  // the last state from the source
    std::uint64_t route_changes = 0;             // targets dispatched to the sinks
    std::uint64_t holds = 0;                     // holds begun (policy hold)
    std::vector<std::pair<std::string, SinkReport>> sinks;  // name, report
  };
  Snapshot snapshot() const;
  const std::string& cluster() const { return cluster_; }

 private:
  void Dispatch(const RouteTarget& target);  // requires mu_
  void TimerLoop();

  const std::string cluster_;
  const Clock& clock_;
  const log::Logger log_{"watch"};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  RoutePolicy policy_;  // guarded by mu_
  std::optional<client::MasterStatus> last_status_;  // guarded by mu_, for transition logs
  bool stop_ = false;   // guarded by mu_
  std::uint64_t route_changes_ = 0;  // guarded by mu_
  std::uint64_t holds_ = 0;          // guarded by mu_
  bool holding_ = false;             // guarded by mu_: the last target dispatched held
  std::thread timer_;
  std::vector<std::unique_ptr<SinkWorker>> workers_;  // replaced under mu_
};

}  // namespace pgherald::watch
