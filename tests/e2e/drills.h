// The fault-injection drills on a running Stack. Each drill starts from one primary + two
// streaming standbys with the master znode naming the primary, runs the workload through both
// proxies, injects its fault, waits (with deadlines) for the system to converge and for both
// routes to acknowledge writes on the final primary, collects the facts and runs the checker.
// RestoreCluster() then brings the cluster back (rejoin, restarts) for the next drill. Test code.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "tests/e2e/checker.h"
#include "tests/e2e/stack.h"
#include "tests/e2e/workload.h"

namespace pgherald::e2e {

enum class DrillKind {
  kKillPrimary,              // kill -9 of the primary
  kFreezeShort,              // SIGSTOP of the primary, shorter than repmgrd's detection window
  kFreezeLong,               // SIGSTOP longer than the window: failover, then the old one thaws
  kRestartWritable,          // kill -9, failover, then the old primary restarted writable
  kKillLeadingOrchestrator,  // kill -9 of the primary and of the leading orchestrator
  kKillZkLeader,             // kill -9 of the primary and of the ZooKeeper ensemble's leader
};
const char* DrillName(DrillKind kind);
std::vector<DrillKind> AllDrills();

// What the clients of one route saw around the fault.
struct ClientImpact {
  int failed_in_flight = 0;     // statements sent before the fault that failed after it
  int failed_after_fault = 0;   // statements sent at or after the fault that failed
  int failed_after_hold = 0;    // of those, sent once the watch's hold was applied (0 if none)
  // Of all the failed ones: those whose server connection broke under them (the statement was on
  // the dying server: pgbouncer's "server conn crashed?", libpq's "server closed the connection
  // unexpectedly", a backend's "terminating connection ..."). The rest found no server at all
  // (pgbouncer's "server login has been failing", a refused connect): a hold avoids those.
  int failed_server_lost = 0;
  int failed_without_server() const {
    return failed_in_flight + failed_after_fault - failed_server_lost;
  }
  double longest_wait_ms = 0;   // the longest statement (acked or not) sent within [fault -
                                // op_timeout, first ack on the final primary]
  std::string first_errors;     // up to 3 distinct errors of the failed ones
};
// True when `error` says the statement's server connection broke under it (ClientImpact).
bool ServerLostUnderStatement(const std::string& error);
// The ClientImpact of `route` in `ops` for a fault at `fault_ns`, until `routed_ns`; `hold_ns`
// (0: none) is when the watch's hold was applied.
ClientImpact ImpactOf(const std::vector<WriteOp>& ops, Route route, std::int64_t fault_ns,
                      std::int64_t routed_ns, std::chrono::milliseconds op_timeout,
                      std::int64_t hold_ns = 0);

struct DrillOptions {
  // The clients' deadline per statement and connect: a statement that pgbouncer holds longer
  // counts as failed (the hold measurements raise it above max_hold_ms).
  std::chrono::milliseconds op_timeout{1000};
};

struct DrillReport {
  std::string drill;
  int old_primary = 0;
  int final_primary = 0;
  bool failover = false;
  // Fault to the decision that published the final primary (its history entry's decided_at); with
  // no failover, to the runner seeing the master znode vouched again.
  double convergence_ms = 0;
  double haproxy_reroute_ms = 0;   // fault to the first write acked on it through HAProxy
  double pgbouncer_reroute_ms = 0;  // same through pgbouncer
  double haproxy_unavailable_ms = 0;  // last ack before the fault to the first after, HAProxy
  double pgbouncer_unavailable_ms = 0;
  // Fault to the watch's pgbouncer sink applying a hold (its log line); -1 when it did not hold.
  double pgbouncer_hold_ms = -1;
  ClientImpact haproxy_clients;
  ClientImpact pgbouncer_clients;
  CheckResult check;
  std::string Summary() const;
};

// Runs one drill; `index` makes the workload's client ids unique. An error means the drill could
// not run to the end (no convergence within its deadline, a lab action failed): it says what.
StatusOr<DrillReport> RunDrill(Stack& stack, DrillKind kind, int index,
                               const DrillOptions& options = {});

// One planned switchover (docs/switchover.md) under the same workload: `pgherald switchover --to
// node<to>` run from the stack's operator config while clients write through both proxies. The
// fault instant is the command's start. With expect_done the runner then waits for the master
// znode to name `to` (epoch above the one before), for both routes to acknowledge writes on it and
// for the old primary to stream from it; without, for the old primary to stay (or be again) the
// vouched master and both routes to acknowledge writes on it after the command ended.
struct SwitchoverReport {
  DrillReport drill;  // old_primary, final_primary, routes, client impact, checker
  SwitchoverRun run;
  // The watch's pgbouncer sink: hold applied -> the next route applied (its log); -1: no hold.
  double watch_hold_ms = -1;
  bool old_streams_from_new = false;  // expect_done: the old primary streams from `to`
  // Nodes whose repmgrd reports itself paused at the end (repmgr.repmgrd_is_paused()), and nodes
  // that did not answer that question.
  std::vector<int> repmgrd_paused;
  std::vector<int> repmgrd_unknown;
  std::string Summary() const;
};
StatusOr<SwitchoverReport> RunSwitchover(Stack& stack, int to, bool expect_done, int index,
                                         const DrillOptions& options = {});

// The facts the checker judges at the end of a drill: the workload's history, ZooKeeper's history,
// master record and vouchers, the writable nodes (read again for up to 10 s until exactly one is),
// and the rows of clients client_base..client_base+99 on `final_node`. `old` is the primary when
// the drill began, `epoch_before` the record's epoch then.
StatusOr<DrillFacts> CollectFacts(Stack& stack, const Workload& workload, const std::string& drill,
                                  int old, std::uint64_t epoch_before, int final_node,
                                  int client_base);

// Rejoins every node that is not a streaming standby of the primary, restarts stopped daemons and
// ZooKeeper members, and waits until the cluster is healthy, the master znode names the primary
// vouched and both proxies route to it.
Status RestoreCluster(Stack& stack);

}  // namespace pgherald::e2e
