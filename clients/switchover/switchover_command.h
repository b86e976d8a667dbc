// `pgherald switchover`: the coordinator of a planned switchover (docs/switchover.md). The pure
// logic is coordinator.h; this is its ZooKeeper shell:
//
//   - ReadSnapshot reads (and decodes, hostile input) what the checks and the state machine need:
//     the master znode and its children (consumer_rules), control, control/switchover and every
//     observation under nodes/.
//   - RunSwitchover runs the checks, prints them and the plan (--dry-run stops there), creates the
//     record (an existing terminal or expired record is replaced by compare-and-set on its
//     version), then loops: reads (arming one-shot watches on the record, the master znode's data
//     and children, nodes/ children and each observation; a fired watch is re-armed by the next
//     read), feeds coordinator.h's Advance and writes the record it returns by compare-and-set on
//     the version read. It waits on the watches, at most `poll_ms` (a bounded poll fallback) or
//     until the machine's next timeout. A write that fails (lost version race, connection loss)
//     is never retried blind: the loop reads again and decides again.
//   - RunAbort marks an active record aborted (compare-and-set) and says what it did.
//
// Output: one line per phase written ("phase=stop elapsed_ms=812 by=node1"), then a summary; with
// json, the summary is one JSON object on `out` and everything else goes to `err`.
// Threads: everything runs on the caller's thread; the watchers only wake it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "clients/switchover/coordinator.h"
#include "common/base/status.h"
#include "common/model/zk_paths.h"
#include "common/zk/zk_session.h"

namespace pgherald::switchover {

struct RunOptions {
  std::string root = "/pgherald";
  std::string cluster;
  std::string to;  // "": the standby with the smallest lag
  std::int64_t max_hold_ms = 2000;
  std::int64_t timeout_ms = 120000;  // the record's deadline: started + timeout
  std::int64_t step_timeout_ms = 60000;
  std::uint64_t max_lag_bytes = 16u << 20;
  bool dry_run = false;
  bool json = false;
  std::string requested_by;
  std::int64_t poll_ms = 1000;  // the longest wait without an event
  std::int64_t withdraw_timeout_ms = 5000;
  std::function<std::int64_t()> now_ms;  // wall ms; the system clock when empty
  // After the session expires the run goes on in a new session from this factory (watches armed
  // again); without one it ends (exit 2, the record left to its deadline or to --abort).
  zk::SessionFactory reconnect;
};

// Wakes the coordinator when a one-shot watch fires. Arm(key) gives a watcher for a read unless
// that key's watch is still pending (nullptr then: ZooKeeper would only stack duplicates).
class Wakeup {
 public:
  Wakeup();
  zk::Watcher Arm(const std::string& key);
  // The call given Arm(key)'s watcher failed: no watch was left, arm it again next time.
  void Disarm(const std::string& key);
  // A state listener that wakes the waiter on every session state change (an expiry drops the
  // pending watches without firing them).
  zk::StateListener OnStateChange();
  // Forgets every pending watch (after a new session: the old one's watches are gone).
  void Reset();
  // Returns at once when a watch fired since the last call, else waits up to `timeout_ms`.
  void WaitFor(std::int64_t timeout_ms);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Reads one cluster. `wake` (may be null) arms the watches. kNotFound when the cluster does not
// exist; a ZooKeeper error otherwise. Corrupt payloads are not errors: the snapshot says what was
// wrong.
StatusOr<ClusterSnapshot> ReadSnapshot(zk::ZkSession& zk, const model::ClusterPaths& paths,
                                       Wakeup* wake);

// Exit codes: coordinator.h's kExit*.
int RunSwitchover(zk::ZkSession& zk, const RunOptions& options, std::FILE* out, std::FILE* err);
int RunAbort(zk::ZkSession& zk, const RunOptions& options, std::FILE* out, std::FILE* err);

int RunSwitchoverCommand(const std::vector<std::string>& args);

}  // namespace pgherald::switchover
