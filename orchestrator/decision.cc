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
    case ReasonCode::kSwitchover:
      return "switchover";
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

const model::SwitchoverRecord* ExpectedSwitchover(const DecisionInput& in) {
  if (!in.switchover || !model::SwitchoverActive(*in.switchover, model::ToWallMillis(in.wall_now))) {
    return nullptr;
  }
  switch (in.switchover->phase) {
    case model::SwitchoverPhase::kHold:
    case model::SwitchoverPhase::kStop:
    case model::SwitchoverPhase::kPromote:
    case model::SwitchoverPhase::kPublish:
      return &*in.switchover;
    default:
      return nullptr;
  }
}

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
  const model::SwitchoverRecord* expected = ExpectedSwitchover(in);
  std::vector<std::pair<std::uint32_t, std::string>> writable;
  for (const auto& [name, input] : in.probes) {
    const model::Probe& p = input.probe;
    if (in.now - input.taken_at > in.policy.probe_max_age) continue;
    if (expected != nullptr && name == expected->from) continue;
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

namespace {

// One call of Decide: the input, the caller's memory, the verdict being built and what the steps
// work out on the way. Decide runs the steps in order (docs/decision-rules.md, "The rules, as
// implemented", says what each rule does); a step reads what the earlier ones set.
// Views are built once and never move (the steps hold pointers to them).
class Round {
 public:
  Round(const DecisionInput& in, DecisionMemory& memory)
      : in_(in),
        policy_(in.policy),
        memory_(memory),
        have_published_(HavePublished(in)),
        published_node_(have_published_ ? in.published->node : ""),
        accepting_(Accepting(in)),
        published_tl_(TimelineFloor(in)),
        switchover_(ExpectedSwitchover(in)) {}

  // What any node reports now, and what this process saw before (DecisionMemory::max_timeline).
  // The operator's acceptance of a lower timeline lifts both (it names the timeline in force).
  void UpdateTimelines() {
    if (accepting_) memory_.max_timeline = 0;
    memory_.max_timeline = std::max({memory_.max_timeline, ClusterTimeline(in_), published_tl_});
    cluster_tl_ = accepting_ ? 0 : memory_.max_timeline;
  }

  // ---- 1. One view per node known from any source, merged: a reachable fresh probe first (the
  // orchestrator's own evidence), else a reachable fresh observation (the poller can reach a node
  // the orchestrator cannot: its claim still counts against split brain, but never publishes).
  void BuildViews() {
    std::set<std::string> names;
    for (const auto& entry : in_.observations) names.insert(entry.first);
    for (const auto& entry : in_.probes) names.insert(entry.first);
    for (const auto& entry : memory_.nodes) names.insert(entry.first);
    if (have_published_) names.insert(published_node_);
    views_.reserve(names.size());
    for (const std::string& name : names) views_.push_back(ViewOf(name));
  }

  // ---- 2. Identity. Known: anything else is foreign. Unknown: adopt what the reachable nodes
  // agree on; if they disagree nobody can be published (we cannot tell which is ours).
  void ResolveIdentity() {
    identity_ = in_.identity;
    if (identity_.empty()) {
      std::set<std::string> seen;
      for (const View& v : views_) {
        if (v.reachable && !v.sysid.empty()) seen.insert(v.sysid);
      }
      if (seen.size() == 1) identity_ = *seen.begin();
      if (seen.size() > 1) identity_conflict_ = true;
    }
    for (View& v : views_) {
      v.foreign = !identity_.empty() && !v.sysid.empty() && v.sysid != identity_;
      if (v.foreign) v.Note(ReasonCode::kForeignIdentity);
    }
  }

  // ---- 3. Standbys vote with their upstream (the rule's last tie-breaker).
  void CountFollowers() {
    for (const View& v : views_) {
      if (v.obs != nullptr && v.reachable && v.in_recovery && !v.foreign &&
          !v.obs->upstream_node.empty()) {
        if (View* up = FindView(v.obs->upstream_node)) ++up->followers;
      }
    }
  }

  // ---- 4. Memory of each node: LSNs for the data-loss estimate, whether it may still take
  // writes and since when nobody reaches it (strict mode).
  void RememberNodes() {
    for (const View& v : views_) {
      NodeMemory& m = memory_.nodes[v.name];
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
        m.unreachable_since = in_.now;
      }
    }
  }

  // ---- 5. The contest between writable nodes of this cluster: a winner, or writable nodes tied
  // on every rule; the losers are stale primaries.
  void RunContest() {
    for (View& v : views_) {
      if (!v.writable || v.foreign) continue;
      if (v.timeline == 0) {
        v.Note(ReasonCode::kTimelineUnknown);
        continue;
      }
      contenders_.push_back(&v);
    }
    std::vector<View*> ranked = SetAsideBelowTimelines();
    std::sort(ranked.begin(), ranked.end(), [](const View* a, const View* b) {
      if (RankKey(*a) != RankKey(*b)) return RankKey(*a) > RankKey(*b);
      return a->name < b->name;
    });
    if (ranked.empty()) return;
    const bool tie =
        ranked.size() > 1 && SameRank(*ranked[0], *ranked[1]) && !ranked[0]->is_published;
    std::size_t first_loser = 1;
    if (tie) {
      while (first_loser < ranked.size() && SameRank(*ranked[0], *ranked[first_loser])) {
        ++first_loser;
      }
      tied_.assign(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(first_loser));
    } else {
      winner_ = ranked[0];
    }
    for (std::size_t i = first_loser; i < ranked.size(); ++i) {
      ranked[i]->Note(ReasonCode::kStalePrimary);
      stale_.push_back(ranked[i]);
    }
  }

  // The stale primaries to fence, each with why. On an identity conflict we cannot tell our nodes
  // from another cluster's: fence nothing; nor while paused.
  void ListStalePrimaries() {
    if (!policy_.paused && !identity_conflict_) {
      for (View* v : stale_) {
        const bool below = v->timeline < published_tl_;
        const bool left_behind = !below && below_cluster_;
        // The loser on the timeline of a published master that passed its write check: the
        // published one holds the acknowledged writes.
        const bool same_tl = !below && !left_behind && winner_ != nullptr &&
                             winner_->VerifiedPublished() && v->timeline == winner_->timeline;
        if (same_tl) v->Note(ReasonCode::kSameTimelineStalePrimary);
        verdict_.stale_primaries.push_back(
            {v->name, below         ? ReasonCode::kBelowPublishedTimeline
                      : left_behind ? ReasonCode::kBelowClusterTimeline
                      : same_tl     ? ReasonCode::kSameTimelineStalePrimary
                                    : ReasonCode::kStalePrimary});
      }
      std::sort(verdict_.stale_primaries.begin(), verdict_.stale_primaries.end(),
                [](const StalePrimary& a, const StalePrimary& b) { return a.node < b.node; });
    }
    if (winner_ != nullptr) verdict_.chosen = winner_->name;
  }

  // ---- 6. Can the winner be published this round? Only on the orchestrator's own fresh probe,
  // reachable, out of recovery, with a passed write check, and of this cluster.
  void CheckWinner() {
    if (winner_ != nullptr) {
      const model::Probe* p = winner_->probe;
      auto fault = [&](ReasonCode code, std::string text) {
        winner_->Note(code);
        winner_faults_.push_back({code, winner_->name, std::move(text)});
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
      if (identity_conflict_) {
        fault(ReasonCode::kIdentityConflict,
              "cluster identity unknown and the nodes report different system identifiers");
      } else if (winner_->sysid.empty()) {
        fault(ReasonCode::kIdentityUnknown, "its system identifier is unknown");
      }
    }
    publishable_ = winner_ != nullptr && winner_faults_.empty();
  }

  // Anti-flapping: the window runs while the same node, on the same timeline, stays the
  // publishable winner; any round where it is not restarts it.
  void TimeCandidate() {
    if (publishable_ && !policy_.paused) {
      if (memory_.candidate != winner_->name || memory_.candidate_timeline != winner_->timeline) {
        memory_.candidate = winner_->name;
        memory_.candidate_timeline = winner_->timeline;
        memory_.candidate_since = in_.now;
      }
    } else {
      memory_.candidate.clear();
      memory_.candidate_timeline = 0;
    }
  }

  // ---- 7. The verdict: the action and its main reason, then the supporting reasons.
  void ChooseAction() {
    if (policy_.paused) {
      verdict_.action = Action::kNone;
      Add({ReasonCode::kPaused, "", "cluster is paused (maintenance): no change"});
    } else if (switchover_ != nullptr) {
      ChooseDuringSwitchover();
    } else if (winner_ == nullptr) {
      ChooseWithoutWinner();
    } else if (winner_->is_published && !in_.repair) {
      ChooseForPublishedWinner();
    } else if (!publishable_) {
      verdict_.action = NotNow();
      Add({ReasonCode::kCandidateUnverified, winner_->name,
           "winner is " + Describe(*winner_) + " but cannot be published this round"});
      PublishedUnverified();
    } else {
      ChooseForNewWinner();
    }
  }

  void AddSupportingReasons() {
    for (Reason& r : winner_faults_) Add(std::move(r));
    if (contenders_.size() > 1) {
      Add({ReasonCode::kSplitBrain, "", std::to_string(contenders_.size()) + " nodes accept writes"});
    }
    for (const StalePrimary& s : verdict_.stale_primaries) {
      const View* v = FindView(s.node);
      std::string why;
      if (s.code == ReasonCode::kBelowPublishedTimeline) {
        why = ": below the published timeline " + std::to_string(published_tl_);
      } else if (s.code == ReasonCode::kBelowClusterTimeline) {
        why = ": below timeline " + std::to_string(cluster_tl_) + ", which another node reports";
      } else if (s.code == ReasonCode::kSameTimelineStalePrimary) {
        why = ": lost to the published master " + verdict_.chosen +
              ", verified on the same timeline (it holds the acknowledged writes)";
      } else {
        why = ": lost to " + verdict_.chosen;
      }
      Add({s.code, s.node, (v != nullptr ? Describe(*v) : std::string()) + why});
    }
    for (const View& v : views_) {
      if (v.foreign && v.reachable) {
        Add({ReasonCode::kForeignIdentity, v.name,
             "system identifier " + v.sysid + " is not the cluster's " + identity_});
      }
    }
  }

  // ---- 8. The record, identity and data-loss estimate of a publish. An epoch never wraps: with
  // nothing above the epoch to beat, nothing is published (a forged 2^64-1 reaches here only from
  // a record or history entry the shell trusted; docs/decision-rules.md, "Epochs").
  void BuildRecord() {
    const std::uint64_t epoch_base =
        std::max(in_.published ? in_.published->epoch : 0, in_.epoch_floor);
    std::vector<Reason>& reasons = verdict_.reasons;
    if (verdict_.action == Action::kPublish &&
        epoch_base == std::numeric_limits<std::uint64_t>::max()) {
      verdict_.action = NotNow();
      verdict_.acceptance_used = false;
      reasons.insert(reasons.begin(),
                     {ReasonCode::kEpochExhausted, "",
                      "the epoch to go above is " + std::to_string(epoch_base) +
                          "; nothing is published until an operator resets it"});
    }
    if (verdict_.action != Action::kPublish) return;
    const model::Probe& p = *winner_->probe;
    model::MasterRecord r;
    r.state = model::MasterState::kOk;
    r.node = winner_->name;
    r.host = !p.host.empty() || winner_->any_obs == nullptr ? p.host : winner_->any_obs->host;
    r.port = p.port != 0 || winner_->any_obs == nullptr ? p.port : winner_->any_obs->port;
    r.timeline = winner_->timeline;
    r.lsn = p.lsn;
    r.epoch = epoch_base + 1;
    r.verified_at_ms = p.taken_at_ms;
    r.decided_by = in_.orchestrator_id;
    r.reason = ReasonCodeName(reasons.front().code);
    verdict_.record = std::move(r);
    if (in_.identity.empty()) {
      verdict_.identity_to_record = winner_->sysid;
      Add({ReasonCode::kIdentityAdopted, winner_->name,
           "cluster identity recorded as " + winner_->sysid});
    }
    if (have_published_ && published_node_ != winner_->name) {
      model::DataLossEstimate loss;
      loss.old_master = published_node_;
      loss.old_master_last_lsn = std::max(
          in_.published->lsn, memory_.nodes[published_node_].last_primary_lsn.value_or(0));
      loss.new_master = winner_->name;
      loss.new_master_lsn = memory_.nodes[winner_->name].last_standby_lsn.value_or(p.lsn);
      loss.gap_bytes = loss.old_master_last_lsn > loss.new_master_lsn
                           ? loss.old_master_last_lsn - loss.new_master_lsn
                           : 0;
      verdict_.data_loss = loss;
    }
  }

  // ---- 9. Evidence, one entry per node.
  void FillEvidence() {
    const bool chosen_is_master =
        verdict_.action == Action::kPublish || verdict_.action == Action::kKeep ||
        (policy_.paused && winner_ != nullptr && winner_->is_published);
    for (View& v : views_) {
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
      e.role = RoleOf(v, chosen_is_master);
      verdict_.evidence.push_back(e);
    }
  }

  Verdict TakeVerdict() { return std::move(verdict_); }

 private:
  View ViewOf(const std::string& name) const {
    View v;
    v.name = name;
    v.ev.node = name;
    v.is_published = have_published_ && name == published_node_;
    if (auto it = in_.observations.find(name); it != in_.observations.end()) {
      v.any_obs = &it->second.observation;
      if (in_.now - it->second.received_at <= policy_.observation_max_age) v.obs = v.any_obs;
    }
    if (auto it = in_.probes.find(name); it != in_.probes.end()) {
      if (in_.now - it->second.taken_at <= policy_.probe_max_age) v.probe = &it->second.probe;
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
    if (v.any_obs != nullptr && v.any_obs->promoted_at_ms) {
      v.promoted_at = *v.any_obs->promoted_at_ms;
    }
    return v;
  }

  View* FindView(const std::string& name) {
    for (View& v : views_) {
      if (v.name == name) return &v;
    }
    return nullptr;
  }

  // The contenders below the published timeline are stale; if every other one is below the
  // cluster's timeline (a node of the cluster, standby or not, on a later timeline: they were all
  // left behind, and the record and history that would say so may be lost), they are stale too.
  // Returns the contenders left to rank.
  std::vector<View*> SetAsideBelowTimelines() {
    std::vector<View*> ranked;
    for (View* v : contenders_) {
      if (v->timeline < published_tl_) {
        v->Note(ReasonCode::kBelowPublishedTimeline);
        stale_.push_back(v);
      } else {
        ranked.push_back(v);
      }
    }
    below_cluster_ = std::all_of(ranked.begin(), ranked.end(),
                                 [&](const View* v) { return v->timeline < cluster_tl_; });
    if (below_cluster_) {
      for (View* v : ranked) {
        v->Note(ReasonCode::kBelowClusterTimeline);
        stale_.push_back(v);
      }
      ranked.clear();
    }
    return ranked;
  }

  // Withdraw when something is published, else change nothing.
  Action NotNow() const { return have_published_ ? Action::kWithdraw : Action::kNone; }

  void Add(Reason reason) { verdict_.reasons.push_back(std::move(reason)); }

  void PublishedUnverified() {
    if (!have_published_) return;
    const View* pv = FindView(published_node_);
    std::string text = "published master is " + (pv != nullptr ? Describe(*pv) : "unknown");
    if (pv != nullptr && pv->foreign) text += " with a foreign system identifier";
    Add({ReasonCode::kMasterUnverified, published_node_, std::move(text)});
  }

  void ChooseWithoutWinner() {
    verdict_.action = NotNow();
    if (!tied_.empty()) {
      std::string names_tied;
      for (const View* v : tied_) names_tied += (names_tied.empty() ? "" : ", ") + v->name;
      Add({ReasonCode::kSplitBrainUndecided, "",
           "writable nodes tie on timeline, promotion and followers: " + names_tied});
    } else {
      Add({ReasonCode::kNoWritableNode, "", "no node of the cluster accepts writes"});
    }
    PublishedUnverified();
  }

  // The winner is the published master (and the record is trusted).
  void ChooseForPublishedWinner() {
    // A node of this cluster seen on a timeline above the published master's (a standby that
    // follows a promotion the orchestrator cannot reach, e.g. after a ZooKeeper outage): the
    // published master was left behind. Keeping it would re-affirm its voucher and reopen routes
    // to it; withdraw instead.
    const View* ahead = nullptr;
    for (const View& v : views_) {
      if (v.reachable && !v.foreign && v.timeline > winner_->timeline &&
          (ahead == nullptr || v.timeline > ahead->timeline)) {
        ahead = &v;
      }
    }
    if (!publishable_) {
      verdict_.action = Action::kWithdraw;
      PublishedUnverified();
    } else if (ahead != nullptr) {
      verdict_.action = Action::kWithdraw;
      Add({ReasonCode::kMasterUnverified, winner_->name,
           "writable on timeline " + std::to_string(winner_->timeline) + " but " + ahead->name +
               " is " + Describe(*ahead) + ": a promotion left it behind"});
    } else if (winner_->timeline > published_tl_) {
      verdict_.action = Action::kPublish;
      Add({ReasonCode::kLaterTimeline, winner_->name,
           "published master moved to timeline " + std::to_string(winner_->timeline)});
    } else {
      verdict_.action = Action::kKeep;
      Add({ReasonCode::kMasterVerified, winner_->name,
           "writable, write check passed on timeline " + std::to_string(winner_->timeline)});
    }
  }

  // Strict split-brain mode: every other node that may still take writes (seen writable and not
  // since in recovery or fenced, a stale primary, the published master) blocks the publish until
  // it is fenced, a standby, or unreachable past the self-fence deadline.
  // `stopped`: a node known to be stopped cleanly (an expected switchover's `from` past its stop
  // step): while unreachable it blocks nothing (no self-fence deadline to wait for).
  std::vector<Reason> StrictBlockers(const std::string& stopped = "") {
    std::vector<Reason> blockers;
    if (!policy_.strict_split_brain) return blockers;
    std::set<std::string> suspects;
    for (const auto& [name, m] : memory_.nodes) {
      if (m.maybe_writable) suspects.insert(name);
    }
    for (const View* v : stale_) suspects.insert(v->name);
    if (have_published_) suspects.insert(published_node_);
    suspects.erase(winner_->name);
    for (const std::string& name : suspects) {
      View* v = FindView(name);
      if (v == nullptr || v->foreign) continue;
      if (v->writable) {
        blockers.push_back({ReasonCode::kAwaitingFence, name,
                            "still " + Describe(*v) + "; waiting for it to be fenced"});
      } else if (v->reachable && v->in_recovery) {
        continue;  // a standby now: it cannot take writes
      } else if (v->Fenced()) {
        v->Note(ReasonCode::kFenced);
      } else if (name == stopped) {
        continue;  // stopped by the switchover's stop step, which its poller acknowledged
      } else {
        const MonoTime since = memory_.nodes[name].unreachable_since.value_or(in_.now);
        if (in_.now - since >= policy_.self_fence_deadline) {
          v->Note(ReasonCode::kSelfFenceElapsed);
        } else {
          const auto left =
              std::chrono::duration_cast<Millis>(policy_.self_fence_deadline - (in_.now - since));
          blockers.push_back({ReasonCode::kAwaitingFence, name,
                              "unreachable, may still take writes; self-fence deadline in " +
                                  std::to_string(left.count()) + " ms"});
        }
      }
    }
    return blockers;
  }

  // A publishable winner that is not the published master (or the record is being repaired).
  void ChooseForNewWinner() {
    std::vector<Reason> blockers = StrictBlockers();
    const bool later_timeline = have_published_ && winner_->timeline > published_tl_;
    const bool window_held = in_.now - memory_.candidate_since >= policy_.confirmation_window;
    const bool accepted_lower = accepting_ && winner_->timeline < in_.published->timeline;
    if (!blockers.empty()) {
      verdict_.action = NotNow();
      verdict_.reasons = std::move(blockers);
      PublishedUnverified();
    } else if (accepted_lower) {
      verdict_.action = Action::kPublish;
      verdict_.acceptance_used = true;
      Add({ReasonCode::kOperatorAcceptedLowerTimeline, winner_->name,
           "timeline " + std::to_string(winner_->timeline) + " replaces timeline " +
               std::to_string(in_.published->timeline) + ", accepted by " + in_.acceptance->by +
               " at " + std::to_string(in_.acceptance->at_ms) + ": " + in_.acceptance->reason});
    } else if (in_.repair) {
      // The record read is nobody's verified decision: replace it with this one now.
      verdict_.action = Action::kPublish;
      Add({ReasonCode::kMasterRepaired, winner_->name,
           "the master record is not trusted; rewritten from this round's verification"});
    } else if (later_timeline) {
      verdict_.action = Action::kPublish;
      Add({ReasonCode::kLaterTimeline, winner_->name,
           "timeline " + std::to_string(winner_->timeline) +
               " replaces the published timeline " + std::to_string(published_tl_)});
    } else if (window_held) {
      verdict_.action = Action::kPublish;
      if (have_published_) {
        Add({ReasonCode::kCandidateConfirmed, winner_->name,
             "winner for the whole confirmation window"});
      } else {
        Add({ReasonCode::kFirstMaster, winner_->name,
             "nothing published; winner for the whole confirmation window"});
      }
    } else {
      verdict_.action = NotNow();
      const auto held = std::chrono::duration_cast<Millis>(in_.now - memory_.candidate_since);
      Add({ReasonCode::kCandidatePending, winner_->name,
           "winner for " + std::to_string(held.count()) + " of " +
               std::to_string(policy_.confirmation_window.count()) + " ms"});
      PublishedUnverified();
    }
  }

  // An expected switchover (hold, stop, promote, publish): `from` is never vouched nor published,
  // nobody but `to` is published, and no no-master record is written (a withdrawal keeps the
  // record: consumers hold); `to` is published as soon as it is the publishable winner on a later
  // timeline than the published one, without the confirmation window, and in strict mode without
  // waiting for `from`'s self-fence deadline once `from` stopped.
  void ChooseDuringSwitchover() {
    const model::SwitchoverRecord& sw = *switchover_;
    const std::string what = "switchover " + sw.id + " (" + sw.from + " -> " + sw.to +
                             ") in phase " + model::SwitchoverPhaseName(sw.phase);
    auto hold = [&](const std::string& node, const std::string& why) {
      verdict_.action = NotNow();
      Add({ReasonCode::kSwitchover, node, what + ": " + why});
      PublishedUnverified();
    };
    if (winner_ == nullptr) {
      hold(sw.to, tied_.empty() ? "no node accepts writes; waiting for " + sw.to
                                : "writable nodes tie on every rule; waiting for " + sw.to);
      return;
    }
    if (winner_->name != sw.to) {
      hold(winner_->name, winner_->name + " is " + Describe(*winner_) +
                              "; nobody but " + sw.to + " is published meanwhile");
      return;
    }
    if (winner_->is_published && !in_.repair) {
      ChooseForPublishedWinner();  // `to` is published already: vouch for it as usual
      return;
    }
    if (!publishable_) {
      hold(sw.to, sw.to + " is " + Describe(*winner_) + " but cannot be published this round");
      return;
    }
    if (!have_published_ || in_.repair) {
      ChooseForNewWinner();  // nothing (trusted) to replace: the normal rules, for `to` only
      return;
    }
    if (winner_->timeline <= published_tl_) {
      hold(sw.to, sw.to + " is " + Describe(*winner_) + ", not above the published timeline " +
                      std::to_string(published_tl_));
      return;
    }
    const bool from_stopped = sw.phase == model::SwitchoverPhase::kPromote ||
                              sw.phase == model::SwitchoverPhase::kPublish || FromAckedStop(sw);
    std::vector<Reason> blockers = StrictBlockers(from_stopped ? sw.from : "");
    if (!blockers.empty()) {
      verdict_.action = NotNow();
      verdict_.reasons = std::move(blockers);
      PublishedUnverified();
      return;
    }
    verdict_.action = Action::kPublish;
    Add({ReasonCode::kSwitchover, sw.to,
         what + ": " + sw.to + " is " + Describe(*winner_) + ", write check passed"});
  }

  // `from`'s poller acknowledged its stop step of this switchover (its observation, fresh or not:
  // the acknowledgement does not age).
  bool FromAckedStop(const model::SwitchoverRecord& sw) {
    const View* v = FindView(sw.from);
    if (v == nullptr || v->any_obs == nullptr || !v->any_obs->switchover) return false;
    const model::SwitchoverAck& ack = *v->any_obs->switchover;
    return ack.id == sw.id && ack.phase == model::SwitchoverPhase::kStop &&
           ack.state == model::SwitchoverStepState::kDone;
  }

  const char* RoleOf(const View& v, bool chosen_is_master) const {
    const bool is_stale = std::find(stale_.begin(), stale_.end(), &v) != stale_.end();
    const bool is_tied = std::find(tied_.begin(), tied_.end(), &v) != tied_.end();
    if (v.foreign) return "foreign";
    if (&v == winner_) return chosen_is_master ? "master" : "candidate";
    if (is_stale) return "stale-primary";
    if (is_tied || v.writable) return "contender";
    if (v.reachable) return "standby";
    return "down";
  }

  const DecisionInput& in_;
  const Policy& policy_;
  DecisionMemory& memory_;
  const bool have_published_;
  const std::string published_node_;
  const bool accepting_;
  const std::uint32_t published_tl_;  // TimelineFloor
  const model::SwitchoverRecord* switchover_;  // ExpectedSwitchover: null for the normal rules
  std::uint32_t cluster_tl_ = 0;      // UpdateTimelines
  std::vector<View> views_;           // BuildViews; never reallocated after
  std::string identity_;              // ResolveIdentity
  bool identity_conflict_ = false;
  std::vector<View*> contenders_;     // RunContest: writable, of this cluster, timeline known
  std::vector<View*> stale_;          //   the losers
  std::vector<View*> tied_;           //   writable nodes tied on every rule (then no winner)
  View* winner_ = nullptr;
  bool below_cluster_ = false;        //   every contender left below the cluster's timeline
  std::vector<Reason> winner_faults_;  // CheckWinner
  bool publishable_ = false;
  Verdict verdict_;
};

}  // namespace

Verdict Decide(const DecisionInput& in, DecisionMemory& memory) {
  Round round(in, memory);
  round.UpdateTimelines();
  round.BuildViews();
  round.ResolveIdentity();
  round.CountFollowers();
  round.RememberNodes();
  round.RunContest();
  round.ListStalePrimaries();
  round.CheckWinner();
  round.TimeCandidate();
  round.ChooseAction();
  round.AddSupportingReasons();
  round.BuildRecord();
  round.FillEvidence();
  return round.TakeVerdict();
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
  if (verdict.action == Action::kPublish && !verdict.reasons.empty() &&
      verdict.reasons.front().code == ReasonCode::kSwitchover && in.switchover) {
    const model::SwitchoverRecord& sw = *in.switchover;
    h.switchover = model::HistorySwitchover{sw.id, model::SwitchoverPhaseName(sw.phase), sw.from,
                                            sw.to, sw.error};
  }
  return h;
}

}  // namespace pgherald::orchestrator
