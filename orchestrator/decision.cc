#include "orchestrator/decision.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

namespace pgherald::orchestrator {
namespace {

using model::Lsn;

// Everything Decide knows about one node this round, merged from probe and observation.
struct View {
  std::string name;
  const model::NodeObservation* obs = nullptr;      // fresh observation, else null
  const model::NodeObservation* any_obs = nullptr;  // fresh or stale
  const model::Probe* probe = nullptr;              // fresh probe, else null
  bool reachable = false;                           // by the probe, else by the poller
  bool in_recovery = false;                         // meaningful only when reachable
  bool writable = false;                            // reachable && !in_recovery
  std::uint32_t timeline = 0;
  std::optional<Lsn> lsn;
  std::string sysid;
  bool foreign = false;
  int followers = 0;
  std::int64_t promoted_at = 0;  // 0: never promoted or unknown, which ranks as earliest
  bool is_published = false;
  model::NodeEvidence ev;

  void Note(ReasonCode code) {
    const std::string name_of_code = ReasonCodeName(code);
    if (std::find(ev.notes.begin(), ev.notes.end(), name_of_code) == ev.notes.end()) {
      ev.notes.push_back(name_of_code);
    }
  }
  bool Fenced() const { return obs != nullptr && obs->fencing == model::FencingState::kFenced; }
  // The published master, reached by this round's own probe, whose write check passed.
  bool VerifiedPublished() const {
    return is_published && probe != nullptr && probe->reachable && !probe->in_recovery &&
           probe->write_check == model::WriteCheck::kPassed;
  }
};

std::string Describe(const View& v) {
  if (!v.reachable) return "unreachable";
  std::string s = v.in_recovery ? "in recovery" : "writable";
  s += " on timeline " + std::to_string(v.timeline);
  if (v.lsn) s += " at " + model::FormatLsn(*v.lsn);
  return s;
}

// Ranking of writable nodes, best first: higher timeline; on the same timeline the published master
// that passes this round's write check (it holds acknowledged writes: never replace it with another
// node of its timeline); only then later promotion, more standbys following, and the published master
// (stability). The name only makes the order deterministic, it never decides (a tie on the keys
// before the last without the published master is undecided).
auto RankKey(const View& v) {
  return std::make_tuple(v.timeline, v.VerifiedPublished(), v.promoted_at, v.followers,
                         v.is_published);
}
bool SameRank(const View& a, const View& b) {
  return a.timeline == b.timeline && a.VerifiedPublished() == b.VerifiedPublished() &&
         a.promoted_at == b.promoted_at && a.followers == b.followers;
}

}  // namespace

const char* ReasonCodeName(ReasonCode code) {
  switch (code) {
    case ReasonCode::kPaused:
      return "paused";
    case ReasonCode::kMasterVerified:
      return "master_verified";
    case ReasonCode::kFirstMaster:
      return "first_master";
    case ReasonCode::kLaterTimeline:
      return "later_timeline";
    case ReasonCode::kCandidateConfirmed:
      return "candidate_confirmed";
    case ReasonCode::kCandidatePending:
      return "candidate_pending";
    case ReasonCode::kCandidateUnverified:
      return "candidate_unverified";
    case ReasonCode::kMasterUnverified:
      return "master_unverified";
    case ReasonCode::kNoWritableNode:
      return "no_writable_node";
    case ReasonCode::kSplitBrain:
      return "split_brain";
    case ReasonCode::kSplitBrainUndecided:
      return "split_brain_undecided";
    case ReasonCode::kAwaitingFence:
      return "awaiting_fence";
    case ReasonCode::kIdentityConflict:
      return "identity_conflict";
    case ReasonCode::kIdentityAdopted:
      return "identity_adopted";
    case ReasonCode::kEpochExhausted:
      return "epoch_exhausted";
    case ReasonCode::kBelowClusterTimeline:
      return "below_cluster_timeline";
    case ReasonCode::kMasterRepaired:
      return "master_repaired";
    case ReasonCode::kOperatorAcceptedLowerTimeline:
      return "operator_accepted_lower_timeline";
    case ReasonCode::kSameTimelineStalePrimary:
      return "same_timeline_stale_primary";
    case ReasonCode::kStalePrimary:
      return "stale_primary";
    case ReasonCode::kBelowPublishedTimeline:
      return "below_published_timeline";
    case ReasonCode::kForeignIdentity:
      return "foreign_system_identifier";
    case ReasonCode::kIdentityUnknown:
      return "system_identifier_unknown";
    case ReasonCode::kInRecovery:
      return "in_recovery";
    case ReasonCode::kWriteCheckFailed:
      return "write_check_failed";
    case ReasonCode::kWriteCheckMissing:
      return "write_check_missing";
    case ReasonCode::kProbeMissing:
      return "probe_missing";
    case ReasonCode::kUnreachable:
      return "unreachable";
    case ReasonCode::kPollerMissing:
      return "poller_missing";
    case ReasonCode::kTimelineUnknown:
      return "timeline_unknown";
    case ReasonCode::kFenced:
      return "fenced";
    case ReasonCode::kSelfFenceElapsed:
      return "self_fence_elapsed";
  }
  return "unknown";
}

const char* ActionName(Action action) {
  switch (action) {
    case Action::kNone:
      return "none";
    case Action::kPublish:
      return "publish";
    case Action::kKeep:
      return "keep";
    case Action::kWithdraw:
      return "withdraw";
  }
  return "none";
}

bool Verdict::HasReason(ReasonCode code, const std::string& node) const {
  return std::any_of(reasons.begin(), reasons.end(), [&](const Reason& r) {
    return r.code == code && (node.empty() || r.node == node);
  });
}

std::string FormatReasons(const std::vector<Reason>& reasons) {
  std::string out;
  for (const Reason& r : reasons) {
    if (!out.empty()) out += "; ";
    out += ReasonCodeName(r.code);
    if (!r.node.empty()) out += " " + r.node;
    if (!r.text.empty()) out += ": " + r.text;
  }
  return out;
}

namespace {

bool HavePublished(const DecisionInput& in) {
  return in.published && in.published->state == model::MasterState::kOk &&
         !in.published->node.empty();
}
// The operator accepted a lower timeline than the published one (DecisionInput::acceptance).
bool Accepting(const DecisionInput& in) {
  return HavePublished(in) && in.acceptance &&
         in.acceptance->timeline == in.published->timeline;
}
// No writable node below this timeline is a candidate: the published record's, unless accepted.
std::uint32_t TimelineFloor(const DecisionInput& in) {
  return HavePublished(in) && !Accepting(in) ? in.published->timeline : 0;
}

}  // namespace

std::uint32_t ClusterTimeline(const DecisionInput& in) {
  auto ours = [&](const std::string& sysid) {
    return in.identity.empty() || sysid.empty() || sysid == in.identity;
  };
  std::uint32_t best = 0;
  for (const auto& entry : in.probes) {
    const model::Probe& p = entry.second.probe;
    if (in.now - entry.second.taken_at > in.policy.probe_max_age) continue;
    if (p.reachable && ours(p.system_identifier)) best = std::max(best, p.timeline);
  }
  for (const auto& entry : in.observations) {
    const model::NodeObservation& o = entry.second.observation;
    if (in.now - entry.second.received_at > in.policy.observation_max_age) continue;
    if (o.reachable && ours(o.system_identifier)) best = std::max(best, o.timeline);
  }
  return best;
}

std::vector<std::string> WriteCheckTargets(const DecisionInput& in, const DecisionMemory* memory) {
  const std::uint32_t published_tl = TimelineFloor(in);
  const std::uint32_t cluster_tl =
      Accepting(in) ? 0
                    : std::max(ClusterTimeline(in), memory != nullptr ? memory->max_timeline : 0);
  std::vector<std::pair<std::uint32_t, std::string>> writable;
  for (const auto& [name, input] : in.probes) {
    const model::Probe& p = input.probe;
    if (in.now - input.taken_at > in.policy.probe_max_age) continue;
    if (!p.reachable || p.in_recovery || p.timeline == 0 || p.timeline < published_tl ||
        p.timeline < cluster_tl) {
      continue;
    }
    if (!in.identity.empty() && p.system_identifier != in.identity) continue;
    writable.emplace_back(p.timeline, name);
  }
  std::uint32_t best = 0;
  for (const auto& w : writable) best = std::max(best, w.first);
  std::vector<std::string> out;
  for (const auto& [timeline, name] : writable) {
    if (timeline == best) out.push_back(name);
  }
  return out;  // the map's order: sorted by name
}

Verdict Decide(const DecisionInput& in, DecisionMemory& memory) {
  Verdict verdict;
  const Policy& policy = in.policy;
  const bool have_published = HavePublished(in);
  const std::string published_node = have_published ? in.published->node : "";
  const bool accepting = Accepting(in);
  const std::uint32_t published_tl = TimelineFloor(in);
  // What any node reports now, and what this process saw before (DecisionMemory::max_timeline).
  // The operator's acceptance of a lower timeline lifts both (it names the timeline in force).
  if (accepting) memory.max_timeline = 0;
  memory.max_timeline = std::max({memory.max_timeline, ClusterTimeline(in), published_tl});
  const std::uint32_t cluster_tl = accepting ? 0 : memory.max_timeline;

  // ---- 1. One view per node known from any source, merged: a reachable fresh probe first (the
  // orchestrator's own evidence), else a reachable fresh observation (the poller can reach a node
  // the orchestrator cannot: its claim still counts against split brain, but never publishes).
  std::set<std::string> names;
  for (const auto& entry : in.observations) names.insert(entry.first);
  for (const auto& entry : in.probes) names.insert(entry.first);
  for (const auto& entry : memory.nodes) names.insert(entry.first);
  if (have_published) names.insert(published_node);

  std::vector<View> views;
  views.reserve(names.size());
  for (const std::string& name : names) {
    View v;
    v.name = name;
    v.ev.node = name;
    v.is_published = have_published && name == published_node;
    if (auto it = in.observations.find(name); it != in.observations.end()) {
      v.any_obs = &it->second.observation;
      if (in.now - it->second.received_at <= policy.observation_max_age) v.obs = v.any_obs;
    }
    if (auto it = in.probes.find(name); it != in.probes.end()) {
      if (in.now - it->second.taken_at <= policy.probe_max_age) v.probe = &it->second.probe;
    }
    if (v.obs == nullptr) v.Note(ReasonCode::kPollerMissing);
    if (v.probe == nullptr) v.Note(ReasonCode::kProbeMissing);
    if (v.probe != nullptr && !v.probe->reachable) v.Note(ReasonCode::kUnreachable);

    if (v.probe != nullptr && v.probe->reachable) {
      v.reachable = true;
      v.in_recovery = v.probe->in_recovery;
      v.timeline = v.probe->timeline;
      v.lsn = v.probe->lsn;
      v.sysid = v.probe->system_identifier;
    } else if (v.obs != nullptr && v.obs->reachable) {
      v.reachable = true;
      v.in_recovery = v.obs->in_recovery;
      v.timeline = v.obs->timeline;
      v.lsn = v.obs->Position();
    }
    if (v.reachable && v.sysid.empty() && v.obs != nullptr) v.sysid = v.obs->system_identifier;
    v.writable = v.reachable && !v.in_recovery;
    if (v.any_obs != nullptr && v.any_obs->promoted_at_ms)
      v.promoted_at = *v.any_obs->promoted_at_ms;
    views.push_back(std::move(v));
  }
  auto find_view = [&](const std::string& name) -> View* {
    for (View& v : views) {
      if (v.name == name) return &v;
    }
    return nullptr;
  };

  // ---- 2. Identity. Known: anything else is foreign. Unknown: adopt what the reachable nodes
  // agree on; if they disagree nobody can be published (we cannot tell which is ours).
  std::string identity = in.identity;
  bool identity_conflict = false;
  if (identity.empty()) {
    std::set<std::string> seen;
    for (const View& v : views) {
      if (v.reachable && !v.sysid.empty()) seen.insert(v.sysid);
    }
    if (seen.size() == 1) identity = *seen.begin();
    if (seen.size() > 1) identity_conflict = true;
  }
  for (View& v : views) {
    v.foreign = !identity.empty() && !v.sysid.empty() && v.sysid != identity;
    if (v.foreign) v.Note(ReasonCode::kForeignIdentity);
  }

  // ---- 3. Standbys vote with their upstream (the rule's last tie-breaker).
  for (const View& v : views) {
    if (v.obs != nullptr && v.reachable && v.in_recovery && !v.foreign &&
        !v.obs->upstream_node.empty()) {
      if (View* up = find_view(v.obs->upstream_node)) ++up->followers;
    }
  }

  // ---- 4. Memory of each node: LSNs for the data-loss estimate, whether it may still take
  // writes and since when nobody reaches it (strict mode).
  for (const View& v : views) {
    NodeMemory& m = memory.nodes[v.name];
    if (v.foreign) {
      m.maybe_writable = false;
    } else if (v.writable) {
      if (v.lsn) m.last_primary_lsn = v.lsn;
      m.maybe_writable = true;
    } else if (v.reachable && v.in_recovery) {
      if (v.lsn) m.last_standby_lsn = v.lsn;
      m.maybe_writable = false;
    } else if (v.Fenced()) {
      m.maybe_writable = false;
    }
    if (v.reachable) {
      m.unreachable_since.reset();
    } else if (!m.unreachable_since) {
      m.unreachable_since = in.now;
    }
  }

  // ---- 5. The contest between writable nodes of this cluster.
  std::vector<View*> contenders;
  for (View& v : views) {
    if (!v.writable || v.foreign) continue;
    if (v.timeline == 0) {
      v.Note(ReasonCode::kTimelineUnknown);
      continue;
    }
    contenders.push_back(&v);
  }
  std::vector<View*> stale;
  std::vector<View*> ranked;
  for (View* v : contenders) {
    if (v->timeline < published_tl) {
      v->Note(ReasonCode::kBelowPublishedTimeline);
      stale.push_back(v);
    } else {
      ranked.push_back(v);
    }
  }
  // A node of the cluster (standby or not) on a later timeline than every writable one: they were
  // all left behind (the record and history that would say so may be lost). None of them wins.
  const bool below_cluster =
      std::all_of(ranked.begin(), ranked.end(), [&](const View* v) { return v->timeline < cluster_tl; });
  if (below_cluster) {
    for (View* v : ranked) {
      v->Note(ReasonCode::kBelowClusterTimeline);
      stale.push_back(v);
    }
    ranked.clear();
  }
  std::sort(ranked.begin(), ranked.end(), [](const View* a, const View* b) {
    if (RankKey(*a) != RankKey(*b)) return RankKey(*a) > RankKey(*b);
    return a->name < b->name;
  });
  View* winner = nullptr;
  std::vector<View*> tied;
  if (!ranked.empty()) {
    const bool tie =
        ranked.size() > 1 && SameRank(*ranked[0], *ranked[1]) && !ranked[0]->is_published;
    std::size_t first_loser = 1;
    if (tie) {
      while (first_loser < ranked.size() && SameRank(*ranked[0], *ranked[first_loser])) {
        ++first_loser;
      }
      tied.assign(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(first_loser));
    } else {
      winner = ranked[0];
    }
    for (std::size_t i = first_loser; i < ranked.size(); ++i) {
      ranked[i]->Note(ReasonCode::kStalePrimary);
      stale.push_back(ranked[i]);
    }
  }
  // On an identity conflict we cannot tell our nodes from another cluster's: fence nothing.
  if (!policy.paused && !identity_conflict) {
    for (View* v : stale) {
      const bool below = v->timeline < published_tl;
      const bool left_behind = !below && below_cluster;
      // The loser on the timeline of a published master that passed its write check: the
      // published one holds the acknowledged writes (issue 12, finding 1).
      const bool same_tl = !below && !left_behind && winner != nullptr && winner->VerifiedPublished() &&
                           v->timeline == winner->timeline;
      if (same_tl) v->Note(ReasonCode::kSameTimelineStalePrimary);
      verdict.stale_primaries.push_back(
          {v->name, below           ? ReasonCode::kBelowPublishedTimeline
                    : left_behind   ? ReasonCode::kBelowClusterTimeline
                    : same_tl       ? ReasonCode::kSameTimelineStalePrimary
                                    : ReasonCode::kStalePrimary});
    }
    std::sort(verdict.stale_primaries.begin(), verdict.stale_primaries.end(),
              [](const StalePrimary& a, const StalePrimary& b) { return a.node < b.node; });
  }
  if (winner != nullptr) verdict.chosen = winner->name;

  // ---- 6. Can the winner be published this round? Only on the orchestrator's own fresh probe,
  // reachable, out of recovery, with a passed write check, and of this cluster.
  std::vector<Reason> winner_faults;
  if (winner != nullptr) {
    const model::Probe* p = winner->probe;
    auto fault = [&](ReasonCode code, std::string text) {
      winner->Note(code);
      winner_faults.push_back({code, winner->name, std::move(text)});
    };
    if (p == nullptr) {
      fault(ReasonCode::kProbeMissing, "no fresh probe of the node by the orchestrator");
    } else if (!p->reachable) {
      fault(ReasonCode::kUnreachable, "the orchestrator cannot reach it: " + p->error);
    } else if (p->in_recovery) {
      fault(ReasonCode::kInRecovery, "the probe found it in recovery");
    } else if (p->write_check == model::WriteCheck::kFailed) {
      fault(ReasonCode::kWriteCheckFailed, "write check failed: " + p->write_error);
    } else if (p->write_check != model::WriteCheck::kPassed) {
      fault(ReasonCode::kWriteCheckMissing, "no write check this round");
    }
    if (identity_conflict) {
      fault(ReasonCode::kIdentityConflict,
            "cluster identity unknown and the nodes report different system identifiers");
    } else if (winner->sysid.empty()) {
      fault(ReasonCode::kIdentityUnknown, "its system identifier is unknown");
    }
  }
  const bool publishable = winner != nullptr && winner_faults.empty();

  // Anti-flapping: the window runs while the same node, on the same timeline, stays the
  // publishable winner; any round where it is not restarts it.
  if (publishable && !policy.paused) {
    if (memory.candidate != winner->name || memory.candidate_timeline != winner->timeline) {
      memory.candidate = winner->name;
      memory.candidate_timeline = winner->timeline;
      memory.candidate_since = in.now;
    }
  } else {
    memory.candidate.clear();
    memory.candidate_timeline = 0;
  }

  // ---- 7. The verdict.
  std::vector<Reason>& reasons = verdict.reasons;
  const Action not_now = have_published ? Action::kWithdraw : Action::kNone;
  auto published_unverified = [&]() {
    if (!have_published) return;
    const View* pv = find_view(published_node);
    std::string text = "published master is " + (pv != nullptr ? Describe(*pv) : "unknown");
    if (pv != nullptr && pv->foreign) text += " with a foreign system identifier";
    reasons.push_back({ReasonCode::kMasterUnverified, published_node, std::move(text)});
  };

  if (policy.paused) {
    verdict.action = Action::kNone;
    reasons.push_back({ReasonCode::kPaused, "", "cluster is paused (maintenance): no change"});
  } else if (winner == nullptr) {
    verdict.action = not_now;
    if (!tied.empty()) {
      std::string names_tied;
      for (const View* v : tied) names_tied += (names_tied.empty() ? "" : ", ") + v->name;
      reasons.push_back({ReasonCode::kSplitBrainUndecided, "",
                         "writable nodes tie on timeline, promotion and followers: " + names_tied});
    } else {
      reasons.push_back({ReasonCode::kNoWritableNode, "", "no node of the cluster accepts writes"});
    }
    published_unverified();
  } else if (winner->is_published && !in.repair) {
    // A node of this cluster seen on a timeline above the published master's (a standby that
    // follows a promotion the orchestrator cannot reach, e.g. after a ZooKeeper outage): the
    // published master was left behind. Keeping it would re-affirm its voucher and reopen routes
    // to it; withdraw instead.
    const View* ahead = nullptr;
    for (const View& v : views) {
      if (v.reachable && !v.foreign && v.timeline > winner->timeline &&
          (ahead == nullptr || v.timeline > ahead->timeline)) {
        ahead = &v;
      }
    }
    if (!publishable) {
      verdict.action = Action::kWithdraw;
      published_unverified();
    } else if (ahead != nullptr) {
      verdict.action = Action::kWithdraw;
      reasons.push_back({ReasonCode::kMasterUnverified, winner->name,
                         "writable on timeline " + std::to_string(winner->timeline) + " but " +
                             ahead->name + " is " + Describe(*ahead) +
                             ": a promotion left it behind"});
    } else if (winner->timeline > published_tl) {
      verdict.action = Action::kPublish;
      reasons.push_back({ReasonCode::kLaterTimeline, winner->name,
                         "published master moved to timeline " + std::to_string(winner->timeline)});
    } else {
      verdict.action = Action::kKeep;
      reasons.push_back(
          {ReasonCode::kMasterVerified, winner->name,
           "writable, write check passed on timeline " + std::to_string(winner->timeline)});
    }
  } else if (!publishable) {
    verdict.action = not_now;
    reasons.push_back({ReasonCode::kCandidateUnverified, winner->name,
                       "winner is " + Describe(*winner) + " but cannot be published this round"});
    published_unverified();
  } else {
    // A publishable winner that is not the published master.
    std::vector<Reason> blockers;
    if (policy.strict_split_brain) {
      std::set<std::string> suspects;
      for (const auto& [name, m] : memory.nodes) {
        if (m.maybe_writable) suspects.insert(name);
      }
      for (const View* v : stale) suspects.insert(v->name);
      if (have_published) suspects.insert(published_node);
      suspects.erase(winner->name);
      for (const std::string& name : suspects) {
        View* v = find_view(name);
        if (v == nullptr || v->foreign) continue;
        if (v->writable) {
          blockers.push_back({ReasonCode::kAwaitingFence, name,
                              "still " + Describe(*v) + "; waiting for it to be fenced"});
        } else if (v->reachable && v->in_recovery) {
          continue;  // a standby now: it cannot take writes
        } else if (v->Fenced()) {
          v->Note(ReasonCode::kFenced);
        } else {
          const MonoTime since = memory.nodes[name].unreachable_since.value_or(in.now);
          if (in.now - since >= policy.self_fence_deadline) {
            v->Note(ReasonCode::kSelfFenceElapsed);
          } else {
            const auto left =
                std::chrono::duration_cast<Millis>(policy.self_fence_deadline - (in.now - since));
            blockers.push_back({ReasonCode::kAwaitingFence, name,
                                "unreachable, may still take writes; self-fence deadline in " +
                                    std::to_string(left.count()) + " ms"});
          }
        }
      }
    }
    const bool later_timeline = have_published && winner->timeline > published_tl;
    const bool window_held = in.now - memory.candidate_since >= policy.confirmation_window;
    const bool accepted_lower = accepting && winner->timeline < in.published->timeline;
    if (!blockers.empty()) {
      verdict.action = not_now;
      reasons = std::move(blockers);
      published_unverified();
    } else if (accepted_lower) {
      verdict.action = Action::kPublish;
      verdict.acceptance_used = true;
      reasons.push_back(
          {ReasonCode::kOperatorAcceptedLowerTimeline, winner->name,
           "timeline " + std::to_string(winner->timeline) + " replaces timeline " +
               std::to_string(in.published->timeline) + ", accepted by " + in.acceptance->by +
               " at " + std::to_string(in.acceptance->at_ms) + ": " + in.acceptance->reason});
    } else if (in.repair) {
      // The record read is nobody's verified decision: replace it with this one now.
      verdict.action = Action::kPublish;
      reasons.push_back({ReasonCode::kMasterRepaired, winner->name,
                         "the master record is not trusted; rewritten from this round's "
                         "verification"});
    } else if (later_timeline) {
      verdict.action = Action::kPublish;
      reasons.push_back({ReasonCode::kLaterTimeline, winner->name,
                         "timeline " + std::to_string(winner->timeline) +
                             " replaces the published timeline " + std::to_string(published_tl)});
    } else if (window_held) {
      verdict.action = Action::kPublish;
      if (have_published) {
        reasons.push_back({ReasonCode::kCandidateConfirmed, winner->name,
                           "winner for the whole confirmation window"});
      } else {
        reasons.push_back({ReasonCode::kFirstMaster, winner->name,
                           "nothing published; winner for the whole confirmation window"});
      }
    } else {
      verdict.action = not_now;
      const auto held = std::chrono::duration_cast<Millis>(in.now - memory.candidate_since);
      reasons.push_back({ReasonCode::kCandidatePending, winner->name,
                         "winner for " + std::to_string(held.count()) + " of " +
                             std::to_string(policy.confirmation_window.count()) + " ms"});
      published_unverified();
    }
  }

  // Supporting reasons after the main one.
  for (Reason& r : winner_faults) reasons.push_back(std::move(r));
  if (contenders.size() > 1) {
    reasons.push_back(
        {ReasonCode::kSplitBrain, "", std::to_string(contenders.size()) + " nodes accept writes"});
  }
  for (const StalePrimary& s : verdict.stale_primaries) {
    const View* v = find_view(s.node);
    std::string why;
    if (s.code == ReasonCode::kBelowPublishedTimeline) {
      why = ": below the published timeline " + std::to_string(published_tl);
    } else if (s.code == ReasonCode::kBelowClusterTimeline) {
      why = ": below timeline " + std::to_string(cluster_tl) + ", which another node reports";
    } else if (s.code == ReasonCode::kSameTimelineStalePrimary) {
      why = ": lost to the published master " + verdict.chosen +
            ", verified on the same timeline (it holds the acknowledged writes)";
    } else {
      why = ": lost to " + verdict.chosen;
    }
    reasons.push_back({s.code, s.node, (v != nullptr ? Describe(*v) : std::string()) + why});
  }
  for (const View& v : views) {
    if (v.foreign && v.reachable) {
      reasons.push_back({ReasonCode::kForeignIdentity, v.name,
                         "system identifier " + v.sysid + " is not the cluster's " + identity});
    }
  }

  // ---- 8. The record, identity and data-loss estimate of a publish. An epoch never wraps: with
  // nothing above the epoch to beat, nothing is published (a forged 2^64-1 reaches here only from
  // a record or history entry the shell trusted; docs/decision-rules.md, "Epochs").
  const std::uint64_t epoch_base = std::max(in.published ? in.published->epoch : 0, in.epoch_floor);
  if (verdict.action == Action::kPublish &&
      epoch_base == std::numeric_limits<std::uint64_t>::max()) {
    verdict.action = not_now;
    verdict.acceptance_used = false;
    reasons.insert(reasons.begin(),
                   {ReasonCode::kEpochExhausted, "",
                    "the epoch to go above is " + std::to_string(epoch_base) +
                        "; nothing is published until an operator resets it"});
  }
  if (verdict.action == Action::kPublish) {
    const model::Probe& p = *winner->probe;
    model::MasterRecord r;
    r.state = model::MasterState::kOk;
    r.node = winner->name;
    r.host = !p.host.empty() || winner->any_obs == nullptr ? p.host : winner->any_obs->host;
    r.port = p.port != 0 || winner->any_obs == nullptr ? p.port : winner->any_obs->port;
    r.timeline = winner->timeline;
    r.lsn = p.lsn;
    r.epoch = epoch_base + 1;
    r.verified_at_ms = p.taken_at_ms;
    r.decided_by = in.orchestrator_id;
    r.reason = ReasonCodeName(reasons.front().code);
    verdict.record = std::move(r);
    if (in.identity.empty()) {
      verdict.identity_to_record = winner->sysid;
      reasons.push_back({ReasonCode::kIdentityAdopted, winner->name,
                         "cluster identity recorded as " + winner->sysid});
    }
    if (have_published && published_node != winner->name) {
      model::DataLossEstimate loss;
      loss.old_master = published_node;
      loss.old_master_last_lsn =
          std::max(in.published->lsn, memory.nodes[published_node].last_primary_lsn.value_or(0));
      loss.new_master = winner->name;
      loss.new_master_lsn = memory.nodes[winner->name].last_standby_lsn.value_or(p.lsn);
      loss.gap_bytes = loss.old_master_last_lsn > loss.new_master_lsn
                           ? loss.old_master_last_lsn - loss.new_master_lsn
                           : 0;
      verdict.data_loss = loss;
    }
  }

  // ---- 9. Evidence, one entry per node.
  const bool chosen_is_master = verdict.action == Action::kPublish ||
                                verdict.action == Action::kKeep ||
                                (policy.paused && winner != nullptr && winner->is_published);
  for (View& v : views) {
    model::NodeEvidence& e = v.ev;
    e.observed = v.obs != nullptr;
    e.probed = v.probe != nullptr;
    e.reachable = v.reachable;
    e.writable = v.writable;
    e.timeline = v.timeline;
    e.lsn = v.lsn;
    e.system_identifier = v.sysid;
    e.write_check = v.probe != nullptr ? v.probe->write_check : model::WriteCheck::kNotRun;
    if (v.promoted_at != 0) e.promoted_at_ms = v.promoted_at;
    e.followers = v.followers;
    e.fencing = v.obs != nullptr ? v.obs->fencing : model::FencingState::kNone;
    const bool is_stale = std::find(stale.begin(), stale.end(), &v) != stale.end();
    const bool is_tied = std::find(tied.begin(), tied.end(), &v) != tied.end();
    if (v.foreign) {
      e.role = "foreign";
    } else if (&v == winner) {
      e.role = chosen_is_master ? "master" : "candidate";
    } else if (is_stale) {
      e.role = "stale-primary";
    } else if (is_tied || v.writable) {
      e.role = "contender";
    } else if (v.reachable) {
      e.role = "standby";
    } else {
      e.role = "down";
    }
    verdict.evidence.push_back(e);
  }
  return verdict;
}

model::HistoryEntry ToHistoryEntry(const DecisionInput& in, const Verdict& verdict) {
  model::HistoryEntry h;
  h.cluster = in.cluster;
  h.action = ActionName(verdict.action);
  h.chosen = verdict.chosen;
  h.epoch = verdict.record ? verdict.record->epoch : (in.published ? in.published->epoch : 0);
  h.decided_at_ms = model::ToWallMillis(in.wall_now);
  h.decided_by = in.orchestrator_id;
  h.previous = in.published;
  h.master = verdict.record;
  for (const Reason& r : verdict.reasons)
    h.reasons.push_back({ReasonCodeName(r.code), r.node, r.text});
  for (const StalePrimary& s : verdict.stale_primaries) h.stale_primaries.push_back(s.node);
  h.evidence = verdict.evidence;
  h.data_loss = verdict.data_loss;
  return h;
}

}  // namespace pgherald::orchestrator
