// Part 1 of the HAProxy sink (haproxy_sink.h): the runtime switch. Puts one backend server's
// address and state into every HAProxy worker through the runtime API and cuts the sessions left
// on the old master; no file is touched here.
//
// Steps, in order, on the sink's Apply thread:
//   SwitchCurrentWorker  the worker answering on the admin socket takes the target, on ONE
//                        connection (SendBatch + `show info` to learn which worker ran it);
//   FinishOldSessions    the current worker's old sessions are cut (when the address changed, or
//                        always when blocking), then, through the master CLI, every older worker
//                        left by reloads gets the same state and its sessions cut.
// After a reload (ConfigPersister's thread): ServingWorker names the worker the reload replaces,
// AdoptNewWorker waits for the new one and applies the latest state to it.
//
// One mutex serialises every runtime command of both threads, so the last one sent always
// carries the latest target. Workers replaced by a reload are remembered (bounded) and never
// taken for the current one again, even if they still answer on the admin socket.
#pragma once

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clients/watch/sink.h"
#include "common/logging.h"
#include "haproxy/haproxy_sink_config.h"

namespace pgherald::haproxy {

class RuntimeSwitch {
 public:
  // `config` must outlive the switch.
  explicit RuntimeSwitch(const HaproxySinkConfig& config) : config_(config) {}

  // Step 1: the current worker serves `target` (nothing is sent when it already does); returns its
  // pid. A refused or closed admin socket, or an answer from a retired or stopping worker, is
  // retried at once for up to command_timeout. `target` must have passed watch::CheckTarget.
  StatusOr<std::string> SwitchCurrentWorker(const watch::RouteTarget& target);
  // Step 2: what step 1 left to do, for `target` (live in `current_pid`): the cut in the current
  // worker, then the older workers' state and cut. A failure does not undo the route; the next
  // call redoes only what is missing.
  Status FinishOldSessions(const watch::RouteTarget& target, const std::string& current_pid);

  // The worker serving now (not retired, not stopping), retrying as step 1 does; kUnavailable
  // once `stopping` is set.
  StatusOr<std::string> ServingWorker(const std::atomic<bool>& stopping);
  // After `reload` replaced `old_pid`: waits up to reload_timeout for a new worker on the admin
  // socket, retires `old_pid` and applies the latest target to the new worker (a change that
  // arrived while the reload was in flight went to the old worker only), cutting its old
  // sessions as step 2 would.
  Status AdoptNewWorker(const std::string& old_pid, const std::atomic<bool>& stopping);

 private:
  // The runtime state of the server, as every worker must have it.
  struct Runtime {
    watch::RouteTarget::Action action;
    std::string host;
    int port;
    bool operator==(const Runtime&) const = default;
  };
  struct Worker {
    std::string pid;
    bool changed = false;  // the server's address changed there (its sessions need a cut)
  };
  // What the workers other than the current one still need (Apply thread only).
  enum class OldWorkers {
    kInStep,     // they have the applied state (or there is no master CLI to reach them)
    kNeedState,  // the state changed: they must get it through the master CLI
  };
  // Where the old master's sessions still have to be cut (Apply thread only).
  enum class Cut {
    kNone,           // nothing to cut
    kCurrentWorker,  // everywhere, starting with the current worker
    kOtherWorkers,   // done in cut_done_pid_; the other workers remain
  };

  // Applies `want` on the admin socket (see SwitchCurrentWorker). Requires mu_.
  StatusOr<Worker> ApplyToWorkerLocked(const Runtime& want);
  // `shutdown sessions server B/S` in the first current worker that answers; its pid.
  // Requires mu_.
  StatusOr<std::string> CutInCurrentWorkerLocked();
  // Through the master CLI, in every worker but the current one: the state (kNeedState) and the
  // cut (kOtherWorkers, skipping cut_done_pid_).
  Status OtherWorkersStep(const Runtime& want, const std::string& current_pid);
  // Built from checked values only (SetAddrCommand); kInvalidArgument otherwise.
  StatusOr<std::vector<std::string>> RuntimeCommands(const Runtime& want) const;
  bool IsRetiredLocked(const std::string& pid) const;

  const HaproxySinkConfig& config_;
  const log::Logger log_{"watch"};

  std::mutex mu_;
  std::optional<Runtime> latest_;         // guarded by mu_: the state every worker must have
  std::optional<Runtime> applied_;        // guarded by mu_: what applied_pid_ has
  std::string applied_pid_;               // guarded by mu_
  std::deque<std::string> retired_pids_;  // guarded by mu_: replaced by a reload (bounded)

  OldWorkers old_workers_ = OldWorkers::kInStep;  // Apply thread only
  Cut cut_ = Cut::kNone;                          // Apply thread only
  std::string cut_done_pid_;                      // Apply thread only: with Cut::kOtherWorkers
};

}  // namespace pgherald::haproxy
