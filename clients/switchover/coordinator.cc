#include "clients/switchover/coordinator.h"

#include <algorithm>
#include <limits>

namespace pgherald::switchover {
namespace {

using model::NodeObservation;
using model::SwitchoverAck;
using model::SwitchoverPhase;
using model::SwitchoverRecord;
using model::SwitchoverStepState;

std::string PhaseName(SwitchoverPhase phase) { return model::SwitchoverPhaseName(phase); }

bool Writable(const std::map<std::string, NodeObservation>& nodes, const std::string& node) {
  auto it = nodes.find(node);
  return it != nodes.end() && it->second.reachable && !it->second.in_recovery;
}

std::string Lag(std::uint64_t bytes) { return std::to_string(bytes) + " bytes"; }

// The record moved to `phase` at `now`, with `error` appended to the failures already recorded.
SwitchoverRecord To(const SwitchoverRecord& r, SwitchoverPhase phase, std::int64_t now,
                    const std::string& error = "") {
  SwitchoverRecord next = r;
  next.phase = phase;
  next.phase_at_ms = now;
  if (!error.empty()) next.error = next.error.empty() ? error : next.error + "; " + error;
  return next;
}

CoordinatorStep Write(SwitchoverRecord record) {
  CoordinatorStep s;
  s.kind = CoordinatorStep::Kind::kWrite;
  s.record = std::move(record);
  return s;
}

CoordinatorStep Wait(std::int64_t wake_at_ms) {
  CoordinatorStep s;
  s.kind = CoordinatorStep::Kind::kWait;
  s.wake_at_ms = wake_at_ms;
  return s;
}

CoordinatorStep Finished(int code) {
  CoordinatorStep s;
  s.kind = CoordinatorStep::Kind::kFinished;
  s.exit_code = code;
  return s;
}

// "node2 failed: <error>" / "node2 timed out (running)" / "node2 timed out (no acknowledgement)".
std::string Failure(const std::string& node, const std::optional<SwitchoverAck>& ack,
                    SwitchoverPhase phase) {
  const std::string head = PhaseName(phase) + " on " + node;
  if (!ack) return head + " timed out (no acknowledgement: is its poller up, switchover enabled?)";
  if (ack->state == SwitchoverStepState::kFailed) {
    return head + " failed: " + (ack->error.empty() ? "(no reason given)" : ack->error);
  }
  return head + " timed out (still running)";
}

bool Published(const CoordinatorInput& in) {
  return in.master && in.master->state == model::MasterState::kOk &&
         in.master->node == in.record.to && in.master->epoch > in.record.base_epoch;
}

}  // namespace

bool Preflight::ok() const {
  return std::all_of(checks.begin(), checks.end(), [](const CheckLine& c) { return c.ok; });
}

Preflight RunPreflight(const ClusterSnapshot& snap, const PreflightOptions& options,
                       std::int64_t now_ms) {
  Preflight p;
  auto pass = [&p](const std::string& subject, const std::string& text) {
    p.checks.push_back({true, subject, text});
  };
  auto fail = [&p](const std::string& subject, const std::string& text) {
    p.checks.push_back({false, subject, text});
  };

  // The master: verified, naming a live, writable `from`.
  const NodeObservation* from = nullptr;
  if (!snap.master) {
    fail("master", "no readable master record (" +
                       (snap.master_error.empty() ? std::string("absent") : snap.master_error) +
                       "): wait until the orchestrator publishes one (pgherald status)");
  } else if (snap.master->state != model::MasterState::kOk) {
    fail("master", "no master published (state no-master): wait until the orchestrator "
                   "verifies one (pgherald status)");
  } else if (!snap.master_bound) {
    fail("master", "the record names " + snap.master->node +
                       " but no voucher binds it (unverified): wait until the orchestrator "
                       "verifies it again (pgherald status)");
  } else {
    p.from = snap.master->node;
    p.base_epoch = snap.master->epoch;
    pass("master", p.from + " verified at epoch " + std::to_string(p.base_epoch));
    auto it = snap.nodes.find(p.from);
    if (it == snap.nodes.end()) {
      fail(p.from, "the master has no live observation (its poller is gone): start its poller");
    } else if (!it->second.reachable) {
      fail(p.from, "its poller cannot reach PostgreSQL (" + it->second.error +
                       "): the master must be up");
    } else if (it->second.in_recovery) {
      fail(p.from, "the published master is in recovery: let the orchestrator settle first");
    } else if (!it->second.current_lsn) {
      fail(p.from, "the master's observation has no current LSN: wait for its next heartbeat");
    } else {
      from = &it->second;
      pass(p.from, "writable primary at " + model::FormatLsn(*from->current_lsn) +
                       ", timeline " + std::to_string(from->timeline));
    }
  }

  // Control and an earlier switchover.
  if (!snap.control_error.empty()) {
    fail("control", "the control znode does not decode (" + snap.control_error +
                        "): rewrite it with pgherald resume");
  } else if (snap.control.paused) {
    fail("control", "the cluster is paused (" +
                        (snap.control.reason.empty() ? std::string("no reason given")
                                                     : snap.control.reason) +
                        "): pgherald resume first");
  } else {
    pass("control", "not paused");
  }
  if (snap.record && model::SwitchoverActive(*snap.record, now_ms)) {
    const auto& r = *snap.record;
    fail("switchover", "switchover " + r.id + " (" + r.from + " -> " + r.to + ") is in phase " +
                           PhaseName(r.phase) + " since " +
                           std::to_string(now_ms - r.phase_at_ms) +
                           " ms: wait for it, or pgherald switchover --abort");
  } else if (!snap.record_error.empty()) {
    pass("switchover", "the earlier record does not decode (" + snap.record_error +
                           "): it will be replaced");
  } else {
    pass("switchover", snap.record ? "the earlier switchover " + snap.record->id + " ended (" +
                                         PhaseName(snap.record->phase) + ")"
                                   : "none running");
  }

  for (const std::string& bad : snap.bad_nodes) {
    fail("nodes", bad + ": not a live observation; fix or remove it (pgherald status)");
  }

  // The target: given, or the streaming standby closest to `from`.
  auto target_problem = [&](const NodeObservation& n,
                            std::optional<std::uint64_t>* lag) -> std::string {
    if (!n.reachable) return "its poller cannot reach PostgreSQL (" + n.error + ")";
    if (!n.in_recovery) return "it is not in recovery (writable: a second primary?)";
    if (from == nullptr) return "";
    if (n.upstream_node != p.from) {
      return "it streams from \"" + n.upstream_node + "\", not from " + p.from +
             ": repmgr standby follow it first";
    }
    if (n.timeline != from->timeline) {
      return "timeline " + std::to_string(n.timeline) + ", the master's is " +
             std::to_string(from->timeline);
    }
    if (!n.receive_lsn) return "no receive LSN (not streaming)";
    const std::uint64_t l =
        *from->current_lsn > *n.receive_lsn ? *from->current_lsn - *n.receive_lsn : 0;
    *lag = l;
    if (l > options.max_lag_bytes) {
      return "lag " + Lag(l) + " above --max-lag-bytes " + std::to_string(options.max_lag_bytes) +
             ": wait until it catches up";
    }
    return "";
  };
  if (!options.to.empty()) {
    p.to = options.to;
    auto it = snap.nodes.find(p.to);
    if (p.to == p.from) {
      fail(p.to, "it is the master already: name a standby with --to");
    } else if (it == snap.nodes.end()) {
      fail(p.to, "no live observation of this node (unknown name, or its poller is down)");
    } else {
      std::string problem = target_problem(it->second, &p.lag_bytes);
      if (problem.empty()) {
        pass(p.to, "target: streaming from " + p.from +
                       (p.lag_bytes ? ", lag " + Lag(*p.lag_bytes) : std::string()));
      } else {
        fail(p.to, "cannot be the target: " + problem);
      }
    }
  } else if (from != nullptr) {
    std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
    std::vector<std::string> why_not;
    for (const auto& [name, n] : snap.nodes) {
      if (name == p.from) continue;
      std::optional<std::uint64_t> lag;
      std::string problem = target_problem(n, &lag);
      if (!problem.empty()) {
        why_not.push_back(name + ": " + problem);
      } else if (lag && *lag < best) {
        best = *lag;
        p.to = name;
        p.lag_bytes = lag;
      }
    }
    if (p.to.empty()) {
      std::string text = "no standby fit to be promoted";
      for (const std::string& w : why_not) text += "; " + w;
      fail("target", text + (why_not.empty() ? ": the cluster has no live standby" : ""));
    } else {
      pass(p.to, "target (smallest lag): streaming from " + p.from + ", lag " + Lag(best));
    }
  }

  // Every live node: repmgrd running; the others are the siblings.
  for (const auto& [name, n] : snap.nodes) {
    if (!n.repmgrd_running) {
      fail(name, "repmgrd is not running: start it (the switchover pauses and unpauses it)");
    }
    if (name != p.from && name != p.to) p.siblings.push_back(name);
  }
  // Every node repmgr knows on the master's side must have a live poller, or it is left behind.
  if (from != nullptr) {
    for (const model::RepmgrNode& rn : from->repmgr_nodes) {
      if (!rn.active || rn.type == "witness") continue;
      const bool live = std::any_of(snap.nodes.begin(), snap.nodes.end(), [&rn](const auto& kv) {
        return kv.second.node_id == rn.node_id;
      });
      if (!live) {
        fail(rn.name, "repmgr node_id " + std::to_string(rn.node_id) +
                          " has no live observation: start its poller (it must follow the new "
                          "primary)");
      }
    }
  }
  if (!p.siblings.empty()) {
    std::string s;
    for (const std::string& n : p.siblings) s += (s.empty() ? "" : ", ") + n;
    pass("siblings", s + " will follow the new primary");
  }
  return p;
}

std::vector<PlanStep> Plan(const std::string& from, const std::string& to,
                           const std::vector<std::string>& siblings) {
  std::vector<std::string> involved = {from, to};
  involved.insert(involved.end(), siblings.begin(), siblings.end());
  std::vector<std::string> rejoiners = {from};
  rejoiners.insert(rejoiners.end(), siblings.begin(), siblings.end());
  const std::vector<std::string> owner = {"orchestrator"};
  using P = SwitchoverPhase;
  return {
      {P::kPrepare, involved,
       "each poller checks its readiness (switchover enabled, repmgr.conf readable, expected "
       "role); " + to + ": repmgr -f CONF service pause"},
      {P::kHold, owner, "the owner withdraws its vouchers of " + from +
                            " (pgbouncer watches with on_unverified: hold PAUSE)"},
      {P::kStop, {from},
       "waits until no client transaction is open, then repmgr -f CONF node service "
       "--action=stop --checkpoint; repmgr -f CONF node status --is-shutdown-cleanly (its "
       "last checkpoint LSN is the stop LSN)"},
      {P::kPromote, {to},
       "waits until it has received the stop LSN, then repmgr -f CONF standby promote; "
       "CHECKPOINT"},
      {P::kPublish, owner, "the owner verifies " + to + " with its write check and publishes it"},
      {P::kRejoin, rejoiners,
       from + ": repmgr -f CONF node rejoin -d '<" + to +
           "'s conninfo>' --force-rewind --config-archive-dir=DIR" +
           (siblings.empty() ? std::string()
                             : "; siblings: repmgr -f CONF standby follow "
                               "--upstream-node-id=<" + to + "'s node_id>")},
      {P::kUnpause, {to}, "repmgr -f CONF service unpause"},
      {P::kRollback, {from},
       "only on failure while " + to + " is not writable: repmgr -f CONF node service "
       "--action=start"},
  };
}

std::vector<std::string> ActorsOf(const SwitchoverRecord& r, SwitchoverPhase phase) {
  if (model::IsTerminal(phase)) return {"coordinator"};
  for (const PlanStep& step : Plan(r.from, r.to, r.siblings)) {
    if (step.phase == phase) return step.actors;
  }
  return {};
}

const char* StepKindName(CoordinatorStep::Kind kind) {
  switch (kind) {
    case CoordinatorStep::Kind::kWait: return "wait";
    case CoordinatorStep::Kind::kWrite: return "write";
    case CoordinatorStep::Kind::kFinished: return "finished";
  }
  return "?";
}

std::optional<SwitchoverAck> AckOf(const std::map<std::string, NodeObservation>& nodes,
                                   const std::string& node, const std::string& id,
                                   SwitchoverPhase phase) {
  auto it = nodes.find(node);
  if (it == nodes.end() || !it->second.switchover) return std::nullopt;
  const SwitchoverAck& ack = *it->second.switchover;
  if (ack.id != id || ack.phase != phase) return std::nullopt;
  return ack;
}

CoordinatorStep Advance(const CoordinatorInput& in, const CoordinatorOptions& options) {
  const SwitchoverRecord& r = in.record;
  const std::int64_t now = in.now_ms;
  if (model::IsTerminal(r.phase)) {
    return Finished(r.phase == SwitchoverPhase::kDone ? kExitDone : kExitFailed);
  }
  if (now > r.deadline_at_ms) {
    return Write(To(r, SwitchoverPhase::kFailed, now,
                    "the deadline passed in phase " + PhaseName(r.phase) +
                        ": the nodes are as they are (pgherald status)"));
  }
  const std::int64_t step_deadline = std::min(r.phase_at_ms + options.step_timeout_ms,
                                              r.deadline_at_ms + 1);
  const bool step_timed_out = now >= r.phase_at_ms + options.step_timeout_ms;
  auto ack = [&](const std::string& node) { return AckOf(in.nodes, node, r.id, r.phase); };
  auto settled = [](const std::optional<SwitchoverAck>& a) {
    return a && a->state != SwitchoverStepState::kRunning;
  };
  auto done = [](const std::optional<SwitchoverAck>& a) {
    return a && a->state == SwitchoverStepState::kDone;
  };
  auto failed = [](const std::optional<SwitchoverAck>& a) {
    return a && a->state == SwitchoverStepState::kFailed;
  };
  const bool master_moved = in.master && in.master->state == model::MasterState::kOk &&
                            in.master->node != r.from;

  switch (r.phase) {
    case SwitchoverPhase::kPrepare: {
      std::vector<std::string> involved = {r.from, r.to};
      involved.insert(involved.end(), r.siblings.begin(), r.siblings.end());
      std::string errors;
      bool all_done = true;
      for (const std::string& n : involved) {
        auto a = ack(n);
        if (!done(a)) all_done = false;
        if (failed(a) || (step_timed_out && !settled(a))) {
          errors += (errors.empty() ? "" : "; ") + Failure(n, a, r.phase);
        }
      }
      if (master_moved) {
        errors += (errors.empty() ? "" : "; ") + std::string("the master changed to ") +
                  in.master->node + " meanwhile";
      }
      if (errors.empty() && all_done) return Write(To(r, SwitchoverPhase::kHold, now));
      if (errors.empty()) return Wait(step_deadline);
      auto to_ack = ack(r.to);
      if (to_ack && to_ack->state == SwitchoverStepState::kRunning && !step_timed_out) {
        return Wait(step_deadline);  // let `to` settle: it may be pausing repmgrd right now
      }
      const bool may_have_paused = to_ack && to_ack->state != SwitchoverStepState::kFailed;
      return Write(To(r, may_have_paused ? SwitchoverPhase::kUnpause : SwitchoverPhase::kAborted,
                      now, errors));
    }

    case SwitchoverPhase::kHold: {
      const std::int64_t held = now - r.phase_at_ms;
      if (master_moved) {
        return Write(To(r, SwitchoverPhase::kUnpause, now,
                        "hold: the master changed to " + in.master->node + " meanwhile"));
      }
      if (!in.master_bound && held <= r.max_hold_ms) {
        return Write(To(r, SwitchoverPhase::kStop, now));
      }
      if (held > r.max_hold_ms) {
        return Write(To(r, SwitchoverPhase::kUnpause, now,
                        "hold: not ready to stop within --max-hold-ms " +
                            std::to_string(r.max_hold_ms) + " (held " + std::to_string(held) +
                            " ms); the owner vouches for " + r.from + " again"));
      }
      if (held > options.withdraw_timeout_ms) {
        return Write(To(r, SwitchoverPhase::kUnpause, now,
                        "hold: the owner did not withdraw its voucher within " +
                            std::to_string(options.withdraw_timeout_ms) +
                            " ms (no owner, or an orchestrator without switchover support)"));
      }
      return Wait(std::min(r.phase_at_ms + std::min(r.max_hold_ms, options.withdraw_timeout_ms) + 1,
                           step_deadline));
    }

    case SwitchoverPhase::kStop: {
      auto a = ack(r.from);
      if (done(a) && a->lsn) {
        SwitchoverRecord next = To(r, SwitchoverPhase::kPromote, now);
        next.stop_lsn = a->lsn;
        return Write(next);
      }
      std::string error;
      if (done(a)) {
        error = "stop on " + r.from + " acknowledged without its checkpoint LSN";
      } else if (failed(a) || step_timed_out) {
        error = Failure(r.from, a, r.phase);
      } else {
        return Wait(step_deadline);
      }
      if (Writable(in.nodes, r.from)) {
        return Write(To(r, SwitchoverPhase::kUnpause, now, error + "; " + r.from +
                                                               " still answers writable"));
      }
      return Write(To(r, SwitchoverPhase::kRollback, now, error));
    }

    case SwitchoverPhase::kPromote: {
      auto a = ack(r.to);
      if (done(a)) return Write(To(r, SwitchoverPhase::kPublish, now));
      if (!failed(a) && !step_timed_out) return Wait(step_deadline);
      if (!failed(a) && !Writable(in.nodes, r.to)) {
        // Timed out while the target's poller may still be promoting it: starting the old
        // primary now could make two primaries. Stop here; an operator decides.
        return Write(To(r, SwitchoverPhase::kFailed, now,
                        "promote: " + r.to + "'s poller did not finish within " +
                            std::to_string(options.step_timeout_ms) + " ms and " + r.to +
                            " is not writable yet; " + r.from +
                            " stays stopped (no rollback while a promotion may still complete): "
                            "check " + r.to + " with pgherald status, then start " + r.from +
                            " or let " + r.to + " finish"));
      }
      if (Writable(in.nodes, r.to)) {
        // Promoted after all (the ack is what failed): rolling back now would make two primaries.
        return Write(To(r, SwitchoverPhase::kPublish, now));
      }
      return Write(To(r, SwitchoverPhase::kRollback, now,
                      Failure(r.to, a, r.phase) + "; " + r.to + " is not writable"));
    }

    case SwitchoverPhase::kPublish: {
      if (Published(in) && in.master_bound) return Write(To(r, SwitchoverPhase::kRejoin, now));
      if (!step_timed_out) return Wait(step_deadline);
      std::string seen = in.master ? "the master record names " + in.master->node + " at epoch " +
                                         std::to_string(in.master->epoch) +
                                         (in.master_bound ? "" : ", unverified")
                                   : std::string("no readable master record");
      return Write(To(r, SwitchoverPhase::kFailed, now,
                      "publish: the orchestrator did not publish " + r.to + " within " +
                          std::to_string(options.step_timeout_ms) + " ms (" + seen + "); " +
                          r.from + " is stopped and " + r.to +
                          " promoted: the nodes are as they are, decide with pgherald status"));
    }

    case SwitchoverPhase::kRejoin: {
      std::vector<std::string> involved = {r.from};
      involved.insert(involved.end(), r.siblings.begin(), r.siblings.end());
      bool all_settled = true;
      std::string errors;
      for (const std::string& n : involved) {
        auto a = ack(n);
        if (!settled(a)) all_settled = false;
        if (failed(a) || (step_timed_out && !settled(a))) {
          errors += (errors.empty() ? "" : "; ") + Failure(n, a, r.phase);
        }
      }
      if (!all_settled && !step_timed_out) return Wait(step_deadline);
      return Write(To(r, SwitchoverPhase::kUnpause, now, errors));
    }

    case SwitchoverPhase::kUnpause: {
      auto a = ack(r.to);
      if (done(a)) {
        if (r.error.empty()) return Write(To(r, SwitchoverPhase::kDone, now));
        return Write(To(r, Published(in) ? SwitchoverPhase::kFailed : SwitchoverPhase::kAborted,
                        now));
      }
      if (!failed(a) && !step_timed_out) return Wait(step_deadline);
      return Write(To(r, SwitchoverPhase::kFailed, now,
                      Failure(r.to, a, r.phase) +
                          " (repmgrd stays paused: run repmgr service unpause)"));
    }

    case SwitchoverPhase::kRollback: {
      auto a = ack(r.from);
      if (done(a)) return Write(To(r, SwitchoverPhase::kUnpause, now));
      if (!failed(a) && !step_timed_out) return Wait(step_deadline);
      return Write(To(r, SwitchoverPhase::kFailed, now,
                      Failure(r.from, a, r.phase) + ": no node may be writable now"));
    }

    case SwitchoverPhase::kDone:
    case SwitchoverPhase::kAborted:
    case SwitchoverPhase::kFailed:
      break;
  }
  return Finished(kExitFailed);
}

}  // namespace pgherald::switchover
