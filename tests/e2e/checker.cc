#include "tests/e2e/checker.h"

#include <map>

namespace pgherald::e2e {

std::string CheckResult::Summary() const {
  std::string s = "acked=" + std::to_string(acked) +
                  " acked_after_publish=" + std::to_string(acked_after_publish) +
                  " lost_after_publish=" + std::to_string(lost_after_publish) +
                  " acked_by_old_after_publish=" + std::to_string(acked_by_old_after_publish) +
                  " lost_before_promotion=" + std::to_string(lost_before_promotion) +
                  " gap_bytes=" + std::to_string(gap_bytes) +
                  " new_master_published=" + (new_master_published ? "yes" : "no") +
                  " epoch=" + std::to_string(new_epoch);
  for (const auto& v : violations) s += "\n  VIOLATION: " + v;
  return s;
}

CheckResult Check(const DrillFacts& f) {
  CheckResult r;
  // 3. Epochs grow and name one node each.
  std::map<std::uint64_t, std::string> node_of_epoch;
  std::uint64_t last_epoch = 0;
  for (const auto& e : f.history) {
    if (e.epoch < last_epoch) {
      r.violations.push_back("history epoch went back from " + std::to_string(last_epoch) + " to " +
                             std::to_string(e.epoch) + " (decided by " + e.decided_by + ")");
    }
    last_epoch = std::max(last_epoch, e.epoch);
    if (e.action != "publish" || !e.master) continue;
    if (e.master->epoch != e.epoch) {
      r.violations.push_back("history entry epoch " + std::to_string(e.epoch) +
                             " carries a record of epoch " + std::to_string(e.master->epoch));
    }
    if (e.previous && e.master->epoch <= e.previous->epoch) {
      r.violations.push_back("epoch " + std::to_string(e.master->epoch) + " does not exceed the " +
                             "previous record's " + std::to_string(e.previous->epoch));
    }
    auto [it, inserted] = node_of_epoch.emplace(e.master->epoch, e.master->node);
    if (!inserted && it->second != e.master->node) {
      r.violations.push_back("epoch " + std::to_string(e.master->epoch) + " published two nodes: " +
                             it->second + " and " + e.master->node);
    }
  }
  if (f.final_master && f.final_master->epoch < last_epoch) {
    r.violations.push_back("the master record's epoch " + std::to_string(f.final_master->epoch) +
                           " is below history's " + std::to_string(last_epoch));
  }

  // The publication of a new master during this drill: the first publish after epoch_before that
  // names a node on another port than the old primary.
  for (const auto& e : f.history) {
    if (e.action == "publish" && e.master && e.epoch > f.epoch_before &&
        e.master->port != f.old_primary_port) {
      r.new_master_published = true;
      r.publish_ns = (e.decided_at_ms - f.wall_minus_mono_ms) * 1000000;
      r.new_epoch = e.epoch;
      if (e.data_loss) r.gap_bytes = e.data_loss->gap_bytes;
      break;
    }
  }

  // 4. Convergence.
  if (f.writable_ports.size() != 1) {
    r.violations.push_back("not converged: " + std::to_string(f.writable_ports.size()) +
                           " writable nodes at the end");
  } else if (!f.final_master || f.final_master->state != model::MasterState::kOk ||
             f.final_master->port != f.writable_ports[0] || f.final_vouchers == 0) {
    r.violations.push_back("not converged: the master record (" +
                           (f.final_master ? f.final_master->ToJson() : std::string("none")) +
                           ", vouchers " + std::to_string(f.final_vouchers) +
                           ") does not name the writable node on port " +
                           std::to_string(f.writable_ports[0]));
  }

  // 1, 2, 5. The writes.
  for (const auto& op : f.ops) {
    if (!op.acked) continue;
    ++r.acked;
    const bool present = f.rows_on_final.count({op.client, op.seq}) > 0;
    const bool after = !r.new_master_published || op.invoke_ns >= r.publish_ns;
    if (r.new_master_published && op.port == f.old_primary_port && op.done_ns >= r.publish_ns) {
      ++r.acked_by_old_after_publish;
      if (r.acked_by_old_after_publish <= 3) {
        r.violations.push_back("write (" + std::to_string(op.client) + "," + std::to_string(op.seq) +
                               ") via " + RouteName(op.route) + " acknowledged by the old master " +
                               std::to_string((op.done_ns - r.publish_ns) / 1000) +
                               " us after the new master was published");
      }
    }
    if (after) {
      ++r.acked_after_publish;
      if (!present) {
        ++r.lost_after_publish;
        if (r.lost_after_publish <= 3) {
          r.violations.push_back("write (" + std::to_string(op.client) + "," +
                                 std::to_string(op.seq) + ") via " + RouteName(op.route) +
                                 " acknowledged by port " + std::to_string(op.port) +
                                 " after the publication is missing on the final primary");
        }
      }
    } else if (!present) {
      if (op.port == f.old_primary_port) {
        ++r.lost_before_promotion;
      } else {
        r.violations.push_back("write (" + std::to_string(op.client) + "," +
                               std::to_string(op.seq) + ") acknowledged by port " +
                               std::to_string(op.port) +
                               " (not the old primary) before the publication is missing");
      }
    }
  }
  return r;
}

}  // namespace pgherald::e2e
