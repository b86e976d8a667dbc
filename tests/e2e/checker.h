// The drills' checker: given what the workload saw, what the ZooKeeper history says and what the
// nodes hold at the end, it states the safety properties pgherald promises and reports the rest.
// Pure (no I/O): the drill runner collects the facts. Test code only.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/model/cluster_model.h"
#include "tests/e2e/workload.h"

namespace pgherald::e2e {

struct DrillFacts {
  std::string drill;
  int old_primary_port = 0;          // the primary when the drill started
  std::uint64_t epoch_before = 0;    // the master record's epoch when the drill started
  std::int64_t wall_minus_mono_ms = 0;  // converts history's wall ms to the workload's clock
  std::vector<WriteOp> ops;          // the workload's history (this drill's clients only)
  std::vector<model::HistoryEntry> history;  // clusters/<c>/history, in sequence order
  std::optional<model::MasterRecord> final_master;
  int final_vouchers = 0;
  std::vector<int> writable_ports;   // nodes that answer and are not in recovery, at the end
  int final_primary_port = 0;        // where rows were read
  std::set<std::pair<int, std::int64_t>> rows_on_final;  // (client, seq) on the final primary
};

struct CheckResult {
  std::vector<std::string> violations;  // empty: every property held
  bool new_master_published = false;
  std::int64_t publish_ns = 0;  // MonoNs of the decision that published the new master (0: none)
  std::uint64_t new_epoch = 0;
  std::int64_t acked = 0;
  std::int64_t acked_after_publish = 0;
  std::int64_t lost_after_publish = 0;     // must be 0
  std::int64_t acked_by_old_after_publish = 0;  // must be 0
  std::int64_t lost_before_promotion = 0;  // acked by the old primary, not replicated in time
  std::uint64_t gap_bytes = 0;             // the orchestrator's data-loss estimate for the failover
  std::string Summary() const;
};

// The properties:
//  1. every write acknowledged and invoked after the new master was published exists on the final
//     primary;
//  2. no write was acknowledged by the old master after the new master was published;
//  3. at most one node per epoch among published records, and epochs only grow in history order;
//  4. convergence: the master record names the one writable node, state ok, vouched;
//  5. a write acknowledged before the publication and missing at the end is allowed only if the
//     old master acknowledged it (async replication): counted as lost before promotion, with the
//     LSN gap of the history entry that published the new master.
// "Published" is the history entry's decided_at (converted to the monotonic clock), which precedes
// the znode write: the earliest, hence strictest, instant.
CheckResult Check(const DrillFacts& facts);

}  // namespace pgherald::e2e
