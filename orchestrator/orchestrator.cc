#include "orchestrator/orchestrator.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "common/model/zk_paths.h"
#include "common/logging.h"
#include "common/model/untrusted.h"
#include "common/model/voucher.h"
#include "orchestrator/cluster_round.h"

namespace pgherald::orchestrator {
namespace {

const log::Logger& Log() {
  static const log::Logger logger("orchestrator");
  return logger;
}

// "node1:master:tl2:0/3000060:passed node2:standby:tl2:0/3000060:not-run"
std::string EvidenceSummary(const std::vector<model::NodeEvidence>& evidence) {
  std::string out;
  for (const model::NodeEvidence& e : evidence) {
    if (!out.empty()) out += ' ';
    out += e.node + ":" + e.role + ":tl" + std::to_string(e.timeline) + ":" +
           (e.lsn ? model::FormatLsn(*e.lsn) : "-") + ":" + model::WriteCheckName(e.write_check);
  }
  return out;
}

}  // namespace

Orchestrator::Orchestrator(OrchestratorOptions options, std::vector<ClusterSpec> clusters,
                           SessionFactory session_factory, NodeProber* prober, const Clock* clock,
                           std::vector<publishers::Publisher*> mirrors, std::string guid)
    : options_(std::move(options)),
      clusters_(std::move(clusters)),
      session_factory_(std::move(session_factory)),
      prober_(prober),
      clock_(clock),
      mirrors_(std::move(mirrors)),
      guid_(guid.empty() ? LeaderElection::NewGuid() : std::move(guid)) {
  grid_epoch_ = clock_->Now();
  IndexClusters();
}

Orchestrator::~Orchestrator() {
  // Close the session first so no watcher runs against a half-destroyed object.
  if (session_ != nullptr) session_->Close();
  ownership_.reset();
  election_.reset();
  publisher_.reset();
  session_.reset();
}

const std::string& Orchestrator::election_znode() const {
  static const std::string kNone;
  return election_ != nullptr ? election_->own_path() : kNone;
}

std::string Orchestrator::owner_znode(const std::string& cluster) const {
  return ownership_ != nullptr ? ownership_->CandidatePath(cluster) : "";
}

zk::Watcher Orchestrator::WatchOnce(const std::string& cluster, const std::string& key,
                                    bool urgent) {
  {
    std::lock_guard lock(mu_);
    if (!armed_.insert(key).second) return nullptr;  // one pending watch per path is enough
  }
  return [this, cluster, key, urgent](const zk::WatchEvent& event) {
    {
      std::lock_guard lock(mu_);
      armed_.erase(key);
    }
    if (cluster.empty()) {
      Wake();  // a global key (the members): every cluster may have a new owner
    } else {
      // A vanished znode (a poller's ephemeral observation: the poller or its session is gone) is
      // urgent whatever watched it.
      WakeCluster(cluster, urgent || event.type == zk::EventType::kDeleted);
    }
  };
}

void Orchestrator::WatchEvents(ClusterRound& round) {
  const std::string key = "events:" + round.c;
  if (Armed(key)) return;
  // The names are not used: the watch is what matters (the round probes the nodes itself). It is
  // re-armed only after it fired, so this read costs one per event, not one per round.
  auto children = session_->GetChildren(round.paths.Events(), WatchOnce(round.c, key, true));
  if (children.ok()) return;
  Disarm(key);
  if (children.status().code() != StatusCode::kNotFound) return;  // retried next round
  // No events yet (no poller published one): its creation wakes the cluster.
  auto exists = session_->Exists(round.paths.Events(), WatchOnce(round.c, key, true));
  if (!exists.ok()) {
    Disarm(key);
  } else if (exists->has_value()) {
    Disarm(key);  // created meanwhile: a spurious wake arms the children watch next round
    WakeCluster(round.c);
  }
}

bool Orchestrator::Armed(const std::string& key) {
  std::lock_guard lock(mu_);
  return armed_.count(key) > 0;
}

void Orchestrator::Disarm(const std::string& key) {
  std::lock_guard lock(mu_);
  armed_.erase(key);
}

bool Orchestrator::EnsureSession() {
  if (session_ != nullptr) {
    const zk::SessionState st = session_->state();
    if (st == zk::SessionState::kConnected || st == zk::SessionState::kConnecting) return true;
    Log().Warn("session_lost", {{"state", zk::SessionStateName(st)},
                                {"session_id", session_->session_id()},
                                {"action", "rebuilding the session and rejoining the election"}});
    StepDown();
    ownership_.reset();
    election_.reset();
    publisher_.reset();
    session_->Close();
    session_.reset();
  }
  auto made = session_factory_();
  if (!made.ok()) {
    Log().Warn("session_create_failed", {{"error", made.status()}});
    return false;
  }
  session_ = std::move(*made);
  {
    std::lock_guard lock(mu_);
    armed_.clear();  // watches died with the old session
  }
  ++interruptions_;  // a new session: nothing verified before it vouches
  session_->SetStateListener([this](zk::SessionState, int64_t) {
    ++interruptions_;  // disconnect, reconnect, expiry: verifications before it vouch for nothing
    Wake();
  });
  ownership_ = std::make_unique<ClusterOwnership>(
      session_.get(), options_.root, guid_, options_.id,
      // A cluster's queue ("owners:<c>") wakes that cluster; the members wake every cluster. The
      // queue of a cluster this member is next in line for when it fires wakes it urgently: its
      // owner may have crashed or handed it over, and a takeover must not wait behind routine
      // rounds (a queue changes only when ownership moves, so these are few).
      WatchHooks{[this](const std::string& key) -> zk::Watcher {
                   const std::string prefix = "owners:";
                   const std::string cluster =
                       key.rfind(prefix, 0) == 0 ? key.substr(prefix.size()) : "";
                   zk::Watcher wake = WatchOnce(cluster, key);
                   if (wake == nullptr || cluster.empty()) return wake;
                   return [this, cluster, wake](const zk::WatchEvent& event) {
                     bool urgent = false;
                     {
                       std::lock_guard lock(mu_);
                       urgent = next_in_line_.count(cluster) != 0;
                     }
                     wake(event);
                     if (urgent) WakeCluster(cluster, true);
                   };
                 },
                 [this](const std::string& key) { return Armed(key); },
                 [this](const std::string& key) { Disarm(key); }});
  // The member znode carries the same {"id","guid"} as the ownership candidates.
  election_ = std::make_unique<LeaderElection>(
      session_.get(), model::RootPaths(options_.root).Election(), guid_,
      [this] { Wake(); }, ownership_->CandidateData());
  publisher_ = std::make_unique<publishers::ZkPublisher>(session_.get(), options_.root, options_.id,
                                                         options_.history_limit);
  for (auto& [name, rt] : runtime_) {
    rt.ensured = false;
    rt.affirmed = false;
    rt.history_cache.reset();
    rt.control_cache.reset();
    rt.switchover_cache.reset();
    rt.switchover_corrupt.clear();
    rt.children_cache.reset();
    rt.observation_cache.clear();
    rt.master_cache.reset();
    rt.voucher = publishers::HeldVoucher{};
  }
  Log().Info("session_started", {{"session_id", session_->session_id()}, {"guid", guid_}});
  return true;
}

// Every cluster is lost at once (the session is not usable, or the membership unknown).
void Orchestrator::StepDown() {
  if (owned_.empty()) return;
  // One line, not one per cluster (a disconnect of an owner of 1,000 clusters).
  Log().Info("ownership_lost",
             {{"id", options_.id}, {"clusters", owned_.size()}, {"why", "session or membership lost"},
              {"session_state", session_ != nullptr ? zk::SessionStateName(session_->state()) : "none"}});
  ownership_changes_ += owned_.size();
  owned_.clear();
}

void Orchestrator::LoseOwnership(const std::string& cluster, const char* why) {
  if (owned_.erase(cluster) == 0) return;
  ++ownership_changes_;
  Log().Info("ownership_lost",
             {{"id", options_.id}, {"cluster", cluster}, {"why", why},
              {"session_state", session_ != nullptr ? zk::SessionStateName(session_->state()) : "none"}});
}

bool Orchestrator::TakeOwnership(const std::string& cluster, ClusterRuntime& rt,
                                 bool* next_in_line) {
  *next_in_line = false;
  // Dry-run writes nothing: it decides for every cluster and owns none.
  if (options_.dry_run) return true;
  // Never resign with a publish whose outcome is unknown: it is settled first, as the owner.
  auto plan = ownership_->Refresh(cluster, !publisher_->HasPending(cluster));
  const bool owner = plan.ok() && ownership_->Owns(cluster);
  *next_in_line = !owner && plan.ok() && (plan->picked == guid_ || plan->successor == guid_);
  {
    std::lock_guard lock(mu_);
    if (*next_in_line) {
      next_in_line_.insert(cluster);
    } else {
      next_in_line_.erase(cluster);
    }
  }
  if (!plan.ok()) Log().Debug("ownership_refresh_failed", {{"cluster", cluster}, {"error", plan.status()}});
  if (owner && owned_.insert(cluster).second) {
    ++ownership_changes_;
    Log().Info("ownership_acquired", {{"id", options_.id}, {"cluster", cluster},
                                      {"znode", ownership_->CandidatePath(cluster)},
                                      {"members", ownership_->members().size()},
                                      {"lease_ms", session_->lease_remaining()}});
  } else if (!owner) {
    LoseOwnership(cluster, !plan.ok() ? "ownership queue unreadable"
                           : plan->step == OwnerStep::kResign ? "handed over"
                           : plan->step == OwnerStep::kOwn    ? "session not connected or lease expired"
                                                              : "another member owns it");
    // A non-owner never vouches. Remove what an earlier ownership of ours left (best effort).
    if (rt.vouched) {
      rt.master_cache.reset();
      if (publisher_->Unvouch(cluster).ok()) rt.vouched = false;
    }
  }
  return owner;
}

void Orchestrator::KeepConnections(const ClusterSpec& spec, ClusterRuntime& rt,
                                   bool next_in_line) {
  if (next_in_line && options_.successor_connections) {
    warm_.insert(warm_.end(), spec.nodes.begin(), spec.nodes.end());
    warm_.insert(warm_.end(), rt.learned.begin(), rt.learned.end());
    rt.connected = true;
    return;
  }
  if (!rt.connected) return;
  std::vector<NodeTarget> nodes = spec.nodes;
  nodes.insert(nodes.end(), rt.learned.begin(), rt.learned.end());
  prober_->Forget(nodes);
  rt.connected = false;
}

void Orchestrator::RunPass(PassKind kind) {
  member_ok_ = false;
  TakePendingClusters();
  if (!EnsureSession()) return;
  const zk::SessionState st = session_->state();
  if (st != zk::SessionState::kConnected) {
    // CONNECTING: the server may have expired us and elected someone else. Act on nothing.
    StepDown();
    return;
  }
  // Membership: our member znode, then the members (read again only when they changed). A dry-run
  // instance is no member: the hash never picks it, so it takes no cluster from the others.
  Status s = options_.dry_run ? Status::Ok() : election_->Refresh();
  if (s.ok() && !options_.dry_run) s = ownership_->RefreshMembers();
  if (!s.ok()) {
    Log().Debug("membership_refresh_failed", {{"error", s}});
    StepDown();
    return;
  }
  // A member in good standing: every cluster is scheduled; each round starts with the cluster's
  // ownership step (RunCluster -> TakeOwnership), so a cluster we do not own costs a cached read.
  member_ok_ = true;
  RunClusters(kind);
}

double Orchestrator::MillisSince(MonoTime t) const {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock_->Now() - t).count() / 1000.0;
}

std::unique_ptr<Orchestrator::ClusterRound> Orchestrator::PrepareRound(const ClusterSpec& spec,
                                                                       ClusterRuntime& rt) {
  // Ownership changes only here, between two rounds of the cluster (no publish in flight).
  bool next_in_line = false;
  if (!TakeOwnership(spec.name, rt, &next_in_line)) {
    KeepConnections(spec, rt, next_in_line);
    return nullptr;
  }
  rt.connected = true;
  auto round = std::make_unique<ClusterRound>(spec, publisher_->Paths(spec.name), rt, clock_->Now(),
                                              interruptions_.load());
  if (!SettleEarlierPublish(*round)) return nullptr;
  // 1. Read the published state and the pollers' observations, arming watches.
  if (!ReadControl(*round) || !ReadSwitchover(*round) || !ReadMaster(*round) ||
      !JudgeTrust(*round) || !ReadIdentity(*round)) {
    return nullptr;
  }
  RecordSwitchoverPhase(*round);
  FillInput(*round);
  ReadObservations(*round);
  WatchEvents(*round);
  round->read_ms = MillisSince(round->start);
  return round;
}

void Orchestrator::FinishRound(ClusterRound& round) {
  // 4. Decide and log.
  const Verdict verdict = DecideAndLog(round);
  if (options_.dry_run) return;
  // 5. Act, only while still owning (probing took time; the lease may have run out).
  if (!ownership_->Owns(round.c)) {
    Log().Info("decision_not_acted",
               {{"cluster", round.c}, {"why", "no longer owner or lease expired"}});
    return;
  }
  switch (verdict.action) {
    case Action::kNone: return;
    case Action::kKeep: Keep(round); return;
    case Action::kWithdraw: Withdraw(round, verdict); return;
    case Action::kPublish: Publish(round, verdict); return;
  }
}

// Sets the cluster's znodes up once, and settles an unknown outcome before anything else. False:
// leave the cluster alone this round.
bool Orchestrator::SettleEarlierPublish(ClusterRound& round) {
  const std::string& c = round.c;
  publishers::ZkPublisher& pub = *publisher_;
  if (!round.rt.ensured && !options_.dry_run) {
    if (Status s = pub.EnsureCluster(c); !s.ok()) {
      Log().Warn("cluster_setup_failed", {{"cluster", c}, {"error", s}});
      return false;
    }
    round.rt.ensured = true;
  }
  // 0. An unknown outcome is settled before anything else.
  if (pub.HasPending(c)) {
    const publishers::WriteOutcome outcome = pub.Reconcile(c);
    round.rt.master_cache.reset();
    Log().Info("publish_reconciled", {{"cluster", c}, {"outcome", publishers::WriteOutcomeName(outcome)}});
    if (outcome == publishers::WriteOutcome::kUnknown) return false;
  }
  return true;
}

bool Orchestrator::ReadControl(ClusterRound& round) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  const std::string control_key = "control:" + c;
  StatusOr<publishers::ControlState> control = publishers::ControlState{};
  if (rt.control_cache && Armed(control_key)) {
    control = *rt.control_cache;
  } else {
    control = publisher_->ReadControl(c, WatchOnce(c, control_key, true));
    rt.control_cache.reset();
    if (control.ok()) {
      rt.control_cache = *control;
    } else if (control.status().code() != StatusCode::kInvalidArgument) {
      Disarm(control_key);  // the read failed: no watch armed
    }
  }
  if (!control.ok()) {
    // A corrupt control znode: keep the cluster untouched rather than guess what the operator meant.
    Log().Error("control_unreadable", {{"cluster", c}, {"error", control.status()},
                                       {"effect", "treated as paused"}});
    if (control.status().code() != StatusCode::kInvalidArgument) return false;
    publishers::ControlState paused;
    paused.paused = true;
    control = paused;
  }
  round.control = *control;
  return true;
}

// clusters/<c>/control/switchover, re-read only when its watch fired (as control). A corrupt record
// is reported once per change and ignored: the normal rules apply.
bool Orchestrator::ReadSwitchover(ClusterRound& round) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  const std::string key = "switchover:" + c;
  if (!rt.switchover_cache || !Armed(key)) {
    auto got = publisher_->ReadSwitchover(c, WatchOnce(c, key, true));
    rt.switchover_cache.reset();
    rt.switchover_corrupt.clear();
    if (!got.ok() && got.status().code() != StatusCode::kInvalidArgument) {
      Disarm(key);  // the read failed: no watch armed
      Log().Warn("switchover_unreadable", {{"cluster", c}, {"error", got.status()}});
      return false;  // never act without knowing whether a switchover expects the change
    }
    rt.switchover_cache = got.ok() ? *got : std::optional<model::SwitchoverRecord>();
    if (!got.ok()) rt.switchover_corrupt = got.status().message();
  }
  if (!rt.switchover_corrupt.empty()) {
    ReportProblem(c, rt, "switchover", "switchover_corrupt", round.paths.Switchover(),
                  rt.switchover_corrupt, "ignored: the normal rules apply");
  } else {
    ClearProblem(c, rt, "switchover");
  }
  round.switchover = *rt.switchover_cache;
  return true;
}

// One history entry per switchover state the owner sees change (action "switchover", fenced by
// its ownership candidate), logged with the record. A record first seen when it is over already
// (an owner that starts or takes over later) is remembered without an entry.
void Orchestrator::RecordSwitchoverPhase(ClusterRound& round) {
  ClusterRuntime& rt = round.rt;
  if (!round.switchover) {
    rt.switchover_seen.clear();
    return;
  }
  const model::SwitchoverRecord& sw = *round.switchover;
  const std::int64_t now_ms = model::ToWallMillis(clock_->WallNow());
  const bool expired = !model::IsTerminal(sw.phase) && now_ms > sw.deadline_at_ms;
  const std::string phase = expired ? "expired" : model::SwitchoverPhaseName(sw.phase);
  const std::string seen = sw.id + "/" + phase;
  if (seen == rt.switchover_seen) return;
  const bool first_sight = rt.switchover_seen.rfind(sw.id + "/", 0) != 0;
  if (first_sight && !model::SwitchoverActive(sw, now_ms)) {
    rt.switchover_seen = seen;  // over before we saw it: nothing to record
    return;
  }
  const log::Fields fields = {{"cluster", round.c}, {"id", sw.id},         {"phase", phase},
                              {"from", sw.from},    {"to", sw.to},         {"error", sw.error},
                              {"epoch", round.published ? round.published->record.epoch : 0}};
  if (options_.dry_run) {
    Log().Info("switchover_phase", fields);
    rt.switchover_seen = seen;
    return;
  }
  model::HistoryEntry h;
  h.cluster = round.c;
  h.action = "switchover";
  h.chosen = sw.to;
  h.epoch = round.published ? round.published->record.epoch : 0;
  h.decided_at_ms = now_ms;
  h.decided_by = options_.id;
  if (round.published) h.previous = round.published->record;
  std::string text = sw.from + " -> " + sw.to + " in phase " + phase;
  if (!sw.error.empty()) text += ": " + sw.error;
  h.reasons.push_back({ReasonCodeName(ReasonCode::kSwitchover), "", "switchover " + sw.id + " " + text});
  h.switchover = model::HistorySwitchover{sw.id, phase, sw.from, sw.to, sw.error};
  std::string history_path;
  if (Status st = publisher_->RecordHistory(round.c, ownership_->CandidatePath(round.c), h,
                                            &history_path);
      !st.ok()) {
    Log().Warn("switchover_history_failed", {{"cluster", round.c}, {"id", sw.id}, {"error", st}});
    return;  // tried again next round
  }
  Log().Info("switchover_phase", fields);
  rt.switchover_seen = seen;
  (void)publisher_->TrimHistory(round.c);
}

bool Orchestrator::ReadMaster(ClusterRound& round) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  publishers::ZkPublisher& pub = *publisher_;
  const std::string master_key = "master:" + c;
  const std::string vouchers_key = "vouchers:" + c;
  if (MasterCacheFresh(c, rt)) {
    round.published = *rt.master_cache;
    return true;
  }
  rt.master_cache.reset();
  rt.voucher = publishers::HeldVoucher{};
  // Not urgent: the orchestrator's own publishes fire them (a deletion is urgent all the same).
  auto master = pub.ReadMasterZnode(c, WatchOnce(c, master_key), WatchOnce(c, vouchers_key));
  if (!master.ok()) {
    // Neither watch is armed by a failed read (Get arms nothing on an absent znode either).
    Disarm(master_key);
    Disarm(vouchers_key);
  }
  if (!master.ok() && master.status().code() == StatusCode::kNotFound && !options_.dry_run) {
    // Deleted: whatever our voucher vouched for is not what consumers read now. Withdraw it at
    // once, recreate the znode (the initial record: its fresh mzxid is above every epoch ever
    // used) and repair it from this round's decision.
    const bool withdrawn = pub.Unvouch(c).ok();
    if (withdrawn) rt.vouched = false;
    ReportProblem(c, rt, "master", "master_missing", round.paths.Master(), master.status().message(),
                  withdrawn ? "vouchers withdrawn; the record is recreated and rewritten from the "
                              "next verified decision"
                            : "voucher withdrawal failed; retried next round");
    rt.repair = true;
    if (Status s = pub.EnsureCluster(c); !s.ok()) {
      Log().Warn("cluster_setup_failed", {{"cluster", c}, {"error", s}});
      return false;
    }
    master = pub.ReadMasterZnode(c, WatchOnce(c, master_key), WatchOnce(c, vouchers_key));
  }
  if (master.ok()) {
    if (!options_.dry_run) rt.master_cache = *master;
    round.published = std::move(*master);
  } else if (master.status().code() == StatusCode::kNotFound && options_.dry_run) {
    // Dry-run creates nothing; decide as if nothing were published.
    Disarm(master_key);
    Disarm(vouchers_key);
  } else {
    Disarm(master_key);
    Disarm(vouchers_key);
    Log().Debug("master_read_failed", {{"cluster", c}, {"error", master.status()}});
    return false;
  }
  return true;
}

bool Orchestrator::ReadFacts(ClusterRound& round) {
  if (round.facts) return true;
  auto got = publisher_->ReadHistoryFacts(round.c, round.rt.history_cache);
  if (!got.ok()) {
    Log().Debug("history_read_failed", {{"cluster", round.c}, {"error", got.status()}});
    return false;
  }
  round.rt.history_cache = *got;
  round.facts = std::move(*got);
  return true;
}

// Trust (docs/decision-rules.md, "Trust"): a record is authoritative only in state ok and either
// vouched by a voucher bound to it or backed by history. Anything else is no one's verified
// decision: our vouchers go at once, the problem is reported once, and the record is repaired.
// Sets the round's repair, authoritative and epoch_floor. False: act on nothing this round.
bool Orchestrator::JudgeTrust(ClusterRound& round) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  publishers::ZkPublisher& pub = *publisher_;
  std::optional<publishers::MasterZnode>& published = round.published;
  std::string untrusted_kind;
  std::string untrusted_why;
  if (published) {
    const model::MasterRecord& rec = published->record;
    if (!published->corrupt.empty()) {
      untrusted_kind = "master_unreadable";
      untrusted_why = published->corrupt;
    } else if (rec.state == model::MasterState::kOk) {
      if (model::BoundVouchers(published->vouchers, rec, published->bytes).empty()) {
        if (!ReadFacts(round)) return false;  // cannot tell: act on nothing this round
        const std::optional<publishers::HistoryFacts>& facts = round.facts;
        if (!publishers::BackedByHistory(*facts, rec)) {
          untrusted_kind = "master_unbacked";
          untrusted_why =
              "record epoch " + std::to_string(rec.epoch) + " naming node " +
              untrusted::SanitizeForDisplay(rec.node, 255) + " on timeline " +
              std::to_string(rec.timeline) + " has no voucher bound to it and " +
              (facts->last_publish ? "is not the newest publish in history (epoch " +
                                         std::to_string(facts->last_publish->epoch) + ")"
                                   : "history holds no publish entry");
        }
      }
    } else if (!published->vouchers.empty()) {
      untrusted_kind = "master_unbacked";
      untrusted_why = "a no-master record with children under it (" +
                      std::to_string(published->vouchers.size()) + ")";
    } else if (rec.epoch != 0) {
      // No orchestrator writes a no-master record: only the initial one (epoch 0) is ever there.
      untrusted_kind = "master_unbacked";
      untrusted_why = "a no-master record with epoch " + std::to_string(rec.epoch) +
                      " is not the initial record (epoch 0)";
    } else {
      // The initial record (recreated, or its bytes wiped) says nothing was ever published; with
      // a publish in history that is false, and the published record stays in force.
      if (!ReadFacts(round)) return false;
      if (round.facts->last_publish) {
        untrusted_kind = "master_unbacked";
        untrusted_why = "a no-master record while history's newest publish is epoch " +
                        std::to_string(round.facts->last_publish->epoch) + " (node " +
                        untrusted::SanitizeForDisplay(round.facts->last_publish->chosen, 255) + ")";
      }
    }
  }
  // A no-master record after a repair began (e.g. the znode recreated) is still being repaired.
  round.repair = !untrusted_kind.empty() ||
                 (rt.repair && published && published->record.state != model::MasterState::kOk);
  if (!untrusted_kind.empty()) {
    bool withdrawn = true;
    if (!options_.dry_run) {
      withdrawn = pub.Unvouch(c).ok();
      rt.master_cache.reset();  // our own change; its watch event may not have come yet
      if (withdrawn) {
        rt.vouched = false;
        rt.affirmed = false;
        // Gone now: the repair's multi must not delete them again.
        const std::vector<std::string> own = model::VouchersOf(published->vouchers, options_.id);
        auto& children = published->vouchers;
        children.erase(std::remove_if(children.begin(), children.end(),
                                      [&own](const std::string& n) {
                                        return std::find(own.begin(), own.end(), n) != own.end();
                                      }),
                       children.end());
      }
      rt.repair = true;
    }
    ReportProblem(c, rt, "master", untrusted_kind, round.paths.Master(), untrusted_why,
                  withdrawn ? "vouchers withdrawn; the record is rewritten from the next verified "
                              "decision, never obeyed"
                            : "voucher withdrawal failed; retried next round");
  } else if (!round.repair) {
    ClearProblem(c, rt, "master");
    rt.repair = false;
  }
  // The new record's epoch: above the record's own (an authoritative one), above every epoch in
  // history, and, when the record is not authoritative, above the znode's mzxid (every epoch ever
  // written to it, or to an earlier znode of the path, is at most that: docs/decision-rules.md).
  round.authoritative =
      published && !round.repair && published->record.state == model::MasterState::kOk;
  if (published && !round.authoritative) {
    round.epoch_floor = static_cast<std::uint64_t>(std::max<std::int64_t>(0, published->mzxid));
    if (ReadFacts(round)) round.epoch_floor = std::max(round.epoch_floor, round.facts->newest_epoch);
  } else if (round.facts) {
    round.epoch_floor = round.facts->newest_epoch;
  }
  return true;
}

// The cluster's identity, once known, is kept; while unknown it is read every round.
bool Orchestrator::ReadIdentity(ClusterRound& round) {
  if (round.rt.identity) return true;
  auto identity = publisher_->ReadIdentity(round.c);
  if (!identity.ok()) {
    Log().Warn("identity_unreadable", {{"cluster", round.c}, {"error", identity.status()}});
    return false;
  }
  if (identity->has_value()) round.rt.identity = **identity;  // unknown: re-read next round
  return true;
}

// Decide's input from what was read: identity, policy, the record in force, the acceptance.
void Orchestrator::FillInput(ClusterRound& round) {
  const publishers::ControlState& control = round.control;
  DecisionInput& in = round.in;
  in.cluster = round.c;
  in.orchestrator_id = options_.id;
  in.identity = round.rt.identity.value_or("");
  in.policy = options_.policy;
  in.policy.paused = control.paused;
  in.repair = round.repair;
  in.epoch_floor = round.epoch_floor;
  if (round.authoritative) {
    in.published = round.published->record;
  } else if (ReadFacts(round) && round.facts->last_publish && round.facts->last_publish->master) {
    // Not the znode's content (no record that is not authoritative decides anything, its epoch
    // included): the last record history backs stays in force, for the ranking and the timeline
    // floor (docs/decision-rules.md, "Trust").
    in.published = *round.facts->last_publish->master;
  }
  if (control.accept_below_timeline != 0) {
    in.acceptance = DecisionInput::Acceptance{control.accept_below_timeline, control.accept_by,
                                              control.accept_reason, control.accept_at_ms};
  }
  in.switchover = round.switchover;
  round.targets = round.spec.nodes;
}

// The pollers' observations (clusters/<c>/nodes/*) into the round's input, re-reading only what
// changed; nodes not configured are learned from them (learn_policy.h) into the round's targets.
void Orchestrator::ReadObservations(ClusterRound& round) {
  const std::string& c = round.c;
  const ClusterSpec& spec = round.spec;
  ClusterRuntime& rt = round.rt;
  const std::string children_key = "nodes:" + c;
  StatusOr<std::vector<std::string>> children = std::vector<std::string>{};
  if (rt.children_cache && Armed(children_key)) {
    children = *rt.children_cache;
  } else {
    children = session_->GetChildren(round.paths.Nodes(), WatchOnce(c, children_key, true));
    rt.children_cache.reset();
    if (children.ok()) {
      rt.children_cache = *children;
    } else {
      Disarm(children_key);
    }
  }
  if (!children.ok()) {
    if (children.status().code() != StatusCode::kNotFound) {
      Log().Debug("observations_unreadable", {{"cluster", c}, {"error", children.status()}});
    }
    return;
  }
  std::map<std::string, ClusterRuntime::CachedObservation> still_there;
  std::vector<std::string> configured_hosts;
  for (const NodeTarget& t : spec.nodes) configured_hosts.push_back(t.params.host);
  // In name order: the max keeps the same nodes from round to round.
  ObservationSelection selected = SelectedObservations(spec, *children);
  const std::string nodes_path = round.paths.Nodes();
  if (selected.left_out > 0) {
    ReportProblem(c, rt, nodes_path, "observations_over_limit", nodes_path,
                  std::to_string(selected.left_out) + " znodes under nodes/ beyond the configured "
                  "nodes and " + std::to_string(spec.learn.max + kObservationsBeyondLearned) +
                  " others (learn_nodes.max + " + std::to_string(kObservationsBeyondLearned) +
                  "), from " + selected.first_left_out +
                  " on: delete the stray znodes (and find who wrote them) or configure the nodes",
                  "not read");
  } else {
    ClearProblem(c, rt, nodes_path);
  }
  std::vector<std::string>& names = selected.names;
  std::map<std::string, std::string> learn_state;
  for (const std::string& name : names) {
    const std::string path = round.paths.Node(name);
    const std::string key = "node:" + path;
    ClusterRuntime::CachedObservation got_obs;
    auto cached = rt.observation_cache.find(path);
    if (cached != rt.observation_cache.end() && Armed(key)) {
      got_obs = cached->second;
    } else {
      auto got = session_->Get(path, WatchOnce(c, key));
      if (!got.ok()) {
        Disarm(key);
        continue;  // gone meanwhile: the children watch tells us
      }
      got_obs = {std::move(got->data), got->stat.ephemeral_owner};
    }
    still_there[path] = got_obs;
    const bool configured = std::any_of(round.targets.begin(), round.targets.end(),
                                        [&](const NodeTarget& t) { return t.name == name; });
    const bool may_learn = !configured && options_.learn_nodes && spec.learn.enabled;
    if (got_obs.ephemeral_owner == 0) {
      // A persistent znode is no poller's: whatever it claims is no evidence.
      ReportProblem(c, rt, path, "observation_not_ephemeral", path,
                    "a persistent znode under nodes/ is not a poller's observation", "ignored");
      if (may_learn) learn_state[name] = kLearnNotEphemeral;
      continue;
    }
    auto obs = model::NodeObservation::FromZnode(name, got_obs.data);
    if (!obs.ok()) {
      ReportProblem(c, rt, path, "observation_corrupt", path, obs.status().message(), "ignored");
      continue;
    }
    ClearProblem(c, rt, path);
    auto& seen = rt.seen_seq[name];
    if (seen.second == MonoTime{} || seen.first != obs->seq) seen = {obs->seq, clock_->Now()};
    round.in.observations[name] = ObservationInput{*obs, seen.second};
    if (!may_learn) continue;
    learn_state[name] = Learn(round, configured_hosts, name, *obs);
  }
  // Problems of znodes that are gone end with them.
  const std::string nodes_prefix = round.paths.Node("");  // "<nodes>/": every observation's
  for (auto it = rt.problems.begin(); it != rt.problems.end();) {
    const bool gone = it->first.rfind(nodes_prefix, 0) == 0 && still_there.count(it->first) == 0;
    if (gone) {
      Log().Info(it->second.first + "_cleared", {{"cluster", c}, {"key", it->first}});
      it = rt.problems.erase(it);
    } else {
      ++it;
    }
  }
  rt.observation_cache = std::move(still_there);
  LogLearnChanges(round, learn_state);
  rt.learn_state = std::move(learn_state);
  ForgetUnlearned(round);
}

ObservationSelection Orchestrator::SelectedObservations(const ClusterSpec& spec,
                                                       std::vector<std::string> children) {
  std::vector<std::string> configured;
  configured.reserve(spec.nodes.size());
  for (const NodeTarget& t : spec.nodes) configured.push_back(t.name);
  return SelectObservations(std::move(children), configured, spec.learn.max);
}

// A node that is not configured, from its observation: the znode's content is untrusted
// (learn_policy.h). Adds it to the round's targets and returns "", or returns why not.
std::string Orchestrator::Learn(ClusterRound& round,
                                const std::vector<std::string>& configured_hosts,
                                const std::string& name, const model::NodeObservation& obs) {
  const LearnPolicy& policy = round.spec.learn;
  std::string reason =
      CheckLearnable(policy, configured_hosts, LearnCandidate{name, obs.host, obs.port, true});
  if (reason.empty() && static_cast<int>(round.learned.size()) >= policy.max) reason = kLearnOverMax;
  if (!reason.empty()) return reason;
  NodeTarget t{name, round.spec.defaults};
  t.params.host = obs.host;
  t.params.port = static_cast<int>(obs.port);
  if (!pg::AuthenticatesServer(t.params)) {
    // libpq 15 would answer a cleartext password request from whatever listens there.
    t.params.password.reset();
    t.params.withhold_password = true;
  }
  round.learned.push_back(t);
  round.targets.push_back(std::move(t));
  return reason;
}

// One line per node whose learning outcome changed since the last round.
void Orchestrator::LogLearnChanges(const ClusterRound& round,
                                   const std::map<std::string, std::string>& learn_state) {
  for (const auto& entry : learn_state) {
    // Not a structured binding: clang 14 (the fuzz preset) cannot capture one in a lambda.
    const std::string& name = entry.first;
    const std::string& reason = entry.second;
    auto before = round.rt.learn_state.find(name);
    if (before != round.rt.learn_state.end() && before->second == reason) continue;
    const auto obs = round.in.observations.find(name);
    const std::string host =
        obs != round.in.observations.end()
            ? untrusted::SanitizeForDisplay(obs->second.observation.host, 255) + ":" +
                  std::to_string(obs->second.observation.port)
            : "";
    if (reason.empty()) {
      const bool withheld =
          std::any_of(round.learned.begin(), round.learned.end(), [&](const NodeTarget& t) {
            return t.name == name && t.params.withhold_password;
          });
      Log().Info("node_learned", {{"cluster", round.c},
                                  {"node", name},
                                  {"host", host},
                                  {"password", withheld ? "withheld" : "sent"},
                                  {"reason", withheld ? kLearnPasswordWithheld : ""}});
    } else {
      Log().Warn("node_not_learned",
                 {{"cluster", round.c}, {"node", name}, {"host", host}, {"reason", reason}});
    }
  }
}

// Connections to learned nodes that are gone (or moved, or no longer allowed) are closed. (Only
// after a read of the node list: a failed one says nothing about them, they are kept until the
// next one.)
void Orchestrator::ForgetUnlearned(ClusterRound& round) {
  std::vector<NodeTarget> gone;
  for (const NodeTarget& old : round.rt.learned) {
    const bool kept =
        std::any_of(round.learned.begin(), round.learned.end(), [&](const NodeTarget& t) {
          return t.name == old.name && t.params.host == old.params.host &&
                 t.params.port == old.params.port;
        });
    if (!kept) gone.push_back(old);
  }
  if (!gone.empty()) prober_->Forget(gone);
  round.rt.learned = round.learned;
}

namespace {

// The answer for `targets[i]` out of a prober's answers (by position): a prober that returned
// fewer answers than it was asked for leaves the rest unanswered.
model::Probe AnswerFor(std::vector<model::Probe>& answers, std::size_t i, const NodeTarget& t) {
  if (i < answers.size()) return std::move(answers[i]);
  model::Probe p;
  p.node = t.name;
  p.host = t.params.host;
  p.port = t.params.port;
  p.error = "no answer from the prober";
  return p;
}

}  // namespace

// 2-3. Every target of every round probed in one call, then the possible winners of every round
// write-checked in one call, each with its own cluster's context. The answers come back in the
// order of the targets: each round takes its own slice (node names repeat across clusters).
void Orchestrator::ProbeRounds(const std::vector<ClusterRound*>& rounds) {
  if (rounds.empty()) return;
  std::vector<NodeTarget> targets;
  for (const ClusterRound* round : rounds) {
    targets.insert(targets.end(), round->targets.begin(), round->targets.end());
  }
  const MonoTime probe_start = clock_->Now();
  std::vector<model::Probe> probes = prober_->ProbeAll(targets, clock_->Now() + options_.probe_timeout);
  MonoTime taken = clock_->Now();
  const double probe_ms = MillisSince(probe_start);
  std::size_t next = 0;
  std::vector<WriteCheckRequest> requests;
  std::vector<std::size_t> first_request;  // per round: its requests start here
  for (ClusterRound* round : rounds) {
    DecisionInput& in = round->in;
    for (const NodeTarget& t : round->targets) {
      in.probes[t.name] = ProbeInput{AnswerFor(probes, next++, t), taken};
    }
    for (const NodeTarget& t : round->rt.learned) {
      auto it = in.probes.find(t.name);
      if (t.params.withhold_password && it != in.probes.end() && !it->second.probe.reachable) {
        // Say why in the decision's evidence: the likely cause is the withheld password.
        it->second.probe.error += std::string(" [") + kLearnPasswordWithheld +
                                  ": a learned node gets no password unless postgres.options has "
                                  "sslmode=verify-full or channel_binding=require]";
      }
    }
    in.now = clock_->Now();
    in.wall_now = clock_->WallNow();
    round->probe_ms = probe_ms;
    first_request.push_back(requests.size());
    const std::vector<std::string> wc_names = WriteCheckTargets(in, &round->rt.memory);
    for (const NodeTarget& t : round->targets) {
      if (std::find(wc_names.begin(), wc_names.end(), t.name) != wc_names.end()) {
        requests.push_back({t, WriteCheckContext{round->c, options_.id}});
      }
    }
  }
  if (requests.empty()) return;
  const MonoTime wc_start = clock_->Now();
  std::vector<model::Probe> checked =
      prober_->WriteCheckEach(requests, clock_->Now() + options_.probe_timeout);
  taken = clock_->Now();
  const double write_check_ms = MillisSince(wc_start);
  for (std::size_t r = 0; r < rounds.size(); ++r) {
    ClusterRound& round = *rounds[r];
    const std::size_t end = r + 1 < rounds.size() ? first_request[r + 1] : requests.size();
    if (first_request[r] == end) continue;  // nothing to write-check in this cluster
    DecisionInput& in = round.in;
    for (std::size_t i = first_request[r]; i < end; ++i) {
      const std::string& name = requests[i].target.name;
      model::Probe p = AnswerFor(checked, i, requests[i].target);
      // Keep the identifier from the first probe if the write check's session did not read it.
      if (p.system_identifier.empty()) p.system_identifier = in.probes[name].probe.system_identifier;
      in.probes[name] = ProbeInput{std::move(p), taken};
    }
    in.now = clock_->Now();
    in.wall_now = clock_->WallNow();
    round.write_check_ms = write_check_ms;
  }
}

// 4. Decide(); the verdict logged at info when it changed (debug otherwise); a published master
// nobody reaches reported once.
Verdict Orchestrator::DecideAndLog(ClusterRound& round) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  const DecisionInput& in = round.in;
  const std::optional<publishers::MasterZnode>& published = round.published;
  Verdict verdict = Decide(in, rt.memory);
  if (observer_ != nullptr) observer_->OnDecision(c, in, verdict);
  const std::string evidence = EvidenceSummary(verdict.evidence);
  std::string summary = std::string(ActionName(verdict.action)) + "|" + verdict.chosen + "|" +
                              (published ? published->record.node + "@" +
                                               std::to_string(published->record.epoch)
                                         : "") +
                              "|" + (verdict.reasons.empty() ? "" : ReasonCodeName(verdict.reasons[0].code));
  // A node turning into (or out of) a stale primary is a transition worth an info line too.
  std::string stale;
  for (const StalePrimary& sp : verdict.stale_primaries) {
    stale += (stale.empty() ? "" : ",") + sp.node;
    summary += "|" + sp.node + ":" + ReasonCodeName(sp.code);
  }
  const model::SwitchoverRecord* expected = ExpectedSwitchover(in);
  if (expected != nullptr) {
    summary += std::string("|switchover:") + expected->id + ":" +
               model::SwitchoverPhaseName(expected->phase);
  }
  const log::Fields fields = {{"cluster", c},
                              {"action", ActionName(verdict.action)},
                              {"chosen", verdict.chosen},
                              {"stale_primaries", stale},
                              {"published", published ? published->record.node : ""},
                              {"epoch", published ? published->record.epoch : 0},
                              {"dry_run", options_.dry_run},
                              {"reasons", FormatReasons(verdict.reasons)},
                              {"evidence", evidence},
                              {"switchover", expected != nullptr ? expected->id : ""},
                              {"switchover_phase",
                               expected != nullptr ? model::SwitchoverPhaseName(expected->phase) : ""}};
  if (summary != rt.last_summary || verdict.action == Action::kPublish) {
    Log().Info("decision", fields);
    rt.last_summary = summary;
  } else {
    Log().Debug("decision", fields);
  }
  // A record backed by history whose node nobody reaches stays in force (it may be the real
  // master behind a partition); say so once, with the way out.
  // In force is the authoritative record, or else history's newest publish (DecisionInput).
  // Not while a switchover expects it: its `from` stopped on purpose (its poller acknowledged).
  bool unreachable = false;
  if (in.published && in.published->state == model::MasterState::kOk &&
      !(expected != nullptr && expected->from == in.published->node)) {
    for (const model::NodeEvidence& e : verdict.evidence) {
      if (e.node == in.published->node) unreachable = !e.reachable;
    }
  }
  if (unreachable) {
    const model::MasterRecord& r = *in.published;
    ReportProblem(c, rt, "published_master", "published_master_unreachable",
                  round.paths.Master(),
                  "published master " + untrusted::SanitizeForDisplay(r.node, 255) + " (epoch " +
                      std::to_string(r.epoch) + ", timeline " + std::to_string(r.timeline) +
                      ") is reached neither by the orchestrator nor by its poller",
                  "record kept without voucher; no lower timeline is published over it unless "
                  "an operator runs `pgherald accept-timeline`");
  } else {
    ClearProblem(c, rt, "published_master");
  }
  return verdict;
}

// A verification that began before a session interruption vouches for nothing: a consumer that
// reconnected must see a verification made after the interruption (docs/zookeeper-contract.md).
bool Orchestrator::InterruptedSince(const ClusterRound& round) const {
  return interruptions_.load() != round.count_at_start;
}

// kKeep: our voucher bound to the published record exists (re-affirmed when due).
void Orchestrator::Keep(ClusterRound& round) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  const publishers::MasterZnode& published = *round.published;
  if (InterruptedSince(round)) {
    Log().Debug("vouch_skipped", {{"cluster", c}, {"why", "session interrupted during the round"}});
    WakeCluster(c);
    return;
  }
  const auto probe = round.in.probes.find(published.record.node);
  const std::int64_t verified_at = probe != round.in.probes.end()
                                       ? probe->second.probe.taken_at_ms
                                       : model::ToWallMillis(round.in.wall_now);
  if (!VouchFor(c, rt, ownership_->CandidatePath(c), published, verified_at, round.count_at_start)) {
    return;
  }
  if (!rt.vouched) {
    Log().Info("vouched", {{"cluster", c}, {"node", published.record.node},
                           {"epoch", published.record.epoch}});
  }
  rt.vouched = true;
  Mirror(c, rt, published.record, true);
}

// kWithdraw: a voucher this instance held goes with a history entry saying why (the same multi);
// otherwise there is nothing to record and only a leftover voucher is removed. While the record
// is being repaired our vouchers are gone already and nothing is recorded.
void Orchestrator::Withdraw(ClusterRound& round, const Verdict& verdict) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  publishers::ZkPublisher& pub = *publisher_;
  const std::optional<publishers::MasterZnode>& published = round.published;
  std::string history_path;
  rt.master_cache.reset();  // our own change; its watch event may not have come yet
  const Status s = rt.vouched && published && !round.repair
                       ? pub.Withdraw(c, ownership_->CandidatePath(c), ToHistoryEntry(round.in, verdict),
                                      &history_path)
                       : pub.Unvouch(c);
  if (!s.ok()) {
    Log().Warn("unvouch_failed", {{"cluster", c}, {"error", s}});
    return;
  }
  if (rt.vouched) {
    Log().Info("voucher_withdrawn", {{"cluster", c}, {"node", published ? published->record.node : ""},
                                     {"epoch", published ? published->record.epoch : 0},
                                     {"history", history_path},
                                     {"reasons", FormatReasons(verdict.reasons)}});
    if (!history_path.empty()) (void)pub.TrimHistory(c);
  }
  rt.vouched = false;
  rt.affirmed = false;
  if (published) Mirror(c, rt, published->record, false);
}

// kPublish: the cluster's identity first (when adopted), then the record, the history entry and
// the bound voucher in one fenced multi.
void Orchestrator::Publish(ClusterRound& round, const Verdict& verdict) {
  const std::string& c = round.c;
  ClusterRuntime& rt = round.rt;
  publishers::ZkPublisher& pub = *publisher_;
  if (!round.published) return;  // dry-run only: the master znode always exists otherwise
  const publishers::MasterZnode& published = *round.published;
  if (InterruptedSince(round)) {
    Log().Info("decision_not_acted", {{"cluster", c}, {"why", "session interrupted during the round"}});
    WakeCluster(c);
    return;
  }
  // The cluster's identity is recorded before its first master: a node of another database is
  // never published afterwards.
  if (verdict.identity_to_record) {
    if (Status s = pub.RecordIdentity(c, *verdict.identity_to_record); !s.ok()) {
      Log().Warn("identity_record_failed", {{"cluster", c}, {"error", s}});
      rt.identity.reset();  // re-read next round and decide again
      WakeCluster(c);
      return;
    }
    rt.identity = *verdict.identity_to_record;
    Log().Info("identity_recorded", {{"cluster", c}, {"system_identifier", *verdict.identity_to_record}});
  }
  const model::HistoryEntry history = ToHistoryEntry(round.in, verdict);
  const MonoTime publish_start = clock_->Now();
  std::optional<publishers::ControlState> control_after;
  if (verdict.acceptance_used) {
    // The acceptance is one-shot: cleared in the same multi (which fails if control changed).
    control_after = round.control;
    control_after->accept_below_timeline = 0;
    control_after->accept_by.clear();
    control_after->accept_reason.clear();
    control_after->accept_at_ms = 0;
  }
  rt.master_cache.reset();  // our own change; its watch event may not have come yet
  publishers::PublishResult result =
      pub.Publish(c, ownership_->CandidatePath(c), published.version, *verdict.record, history,
                  published.vouchers, control_after);
  const double publish_ms = MillisSince(publish_start);
  if (result.outcome == publishers::WriteOutcome::kUnknown) {
    Log().Warn("publish_outcome_unknown", {{"cluster", c}, {"node", verdict.record->node},
                                           {"epoch", verdict.record->epoch}, {"error", result.status}});
    const publishers::WriteOutcome settled = pub.Reconcile(c);
    Log().Info("publish_reconciled", {{"cluster", c}, {"outcome", publishers::WriteOutcomeName(settled)}});
    if (settled != publishers::WriteOutcome::kApplied) {
      WakeCluster(c);
      return;
    }
  } else if (result.outcome == publishers::WriteOutcome::kRejected) {
    Log().Warn("publish_rejected", {{"cluster", c}, {"node", verdict.record->node},
                                    {"epoch", verdict.record->epoch}, {"error", result.status}});
    WakeCluster(c);  // re-read and decide again at once
    return;
  }
  const model::MasterRecord& r = *verdict.record;
  // Each node's last probe (or write check) round trip, connection included: "node1:1.2,node2:0.8".
  std::string latencies;
  for (const auto& [name, p] : round.in.probes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(p.probe.latency_us) / 1000.0);
    latencies += (latencies.empty() ? "" : ",") + name + ":" + buf;
  }
  Log().Info("master_published", {{"cluster", c},
                                  {"node", r.node},
                                  {"host", r.host},
                                  {"port", r.port},
                                  {"timeline", r.timeline},
                                  {"lsn", model::FormatLsn(r.lsn)},
                                  {"epoch", r.epoch},
                                  {"previous", published.record.node},
                                  {"reason", r.reason},
                                  {"history", result.history_path},
                                  {"round_ms", MillisSince(round.start)},
                                  {"read_ms", round.read_ms},
                                  {"probe_ms", round.probe_ms},
                                  {"write_check_ms", round.write_check_ms},
                                  {"publish_ms", publish_ms},
                                  {"node_ms", latencies}});
  if (verdict.data_loss) {
    const model::DataLossEstimate& d = *verdict.data_loss;
    Log().Info("failover", {{"cluster", c},
                            {"old_master", d.old_master},
                            {"old_master_last_lsn", model::FormatLsn(d.old_master_last_lsn)},
                            {"new_master", d.new_master},
                            {"new_master_lsn", model::FormatLsn(d.new_master_lsn)},
                            {"gap_bytes", d.gap_bytes}});
  }
  // The multi created the bound voucher with the record (none for a no-master record).
  rt.vouched = r.state == model::MasterState::kOk;
  rt.affirmed = rt.vouched;
  rt.last_affirm = clock_->Now();
  rt.affirm_interruptions = round.count_at_start;
  rt.repair = false;
  if (Status s = pub.TrimHistory(c); !s.ok()) {
    Log().Debug("history_trim_failed", {{"cluster", c}, {"error", s}});
  }
  Mirror(c, rt, r, rt.vouched);
}

bool Orchestrator::VouchFor(const std::string& cluster, ClusterRuntime& rt,
                            const std::string& owner_path, const publishers::MasterZnode& master,
                            std::int64_t verified_at_ms, std::uint64_t verified_at_count) {
  const MonoTime now = clock_->Now();
  const bool due = !rt.affirmed || rt.affirm_interruptions != verified_at_count ||
                   now - rt.last_affirm >= options_.voucher_reaffirm;
  // What our last Vouch left held stands while the master's children are unchanged since.
  const std::string name = publisher_->BoundVoucherName(master);
  const bool known = rt.voucher.name == name && MasterCacheFresh(cluster, rt) &&
                     std::find(rt.master_cache->vouchers.begin(), rt.master_cache->vouchers.end(),
                               name) != rt.master_cache->vouchers.end();
  if (!known) rt.voucher = publishers::HeldVoucher{};
  if (known && due) {
    // Held, and only its re-affirmation is due: it goes with the batch's others
    // (SendReaffirmations), fenced the same way.
    reaffirms_.push_back({cluster,
                          publisher_->PrepareReaffirm(cluster, owner_path, master, verified_at_ms,
                                                      rt.voucher),
                          verified_at_count, now});
    return true;
  }
  auto vouched = publisher_->Vouch(cluster, owner_path, master, verified_at_ms, due, &rt.voucher);
  if (!vouched.ok()) {
    Log().Warn("vouch_failed", {{"cluster", cluster}, {"error", vouched.status()}});
    return false;
  }
  // A new voucher changed the children: our own change, whose watch event may not have come yet.
  if (*vouched == publishers::VouchOutcome::kCreated) rt.master_cache.reset();
  if (*vouched != publishers::VouchOutcome::kHeld) {
    rt.affirmed = true;
    rt.last_affirm = now;
    rt.affirm_interruptions = verified_at_count;
  }
  if (*vouched == publishers::VouchOutcome::kCreated) {
    Log().Debug("voucher_created", {{"cluster", cluster}, {"voucher", publisher_->BoundVoucherName(master)}});
  }
  return true;
}

void Orchestrator::Mirror(const std::string& cluster, ClusterRuntime& rt,
                          const model::MasterRecord& record, bool vouched) {
  if (mirrors_.empty()) return;
  const std::string key = record.ToJson() + (vouched ? "+" : "-");
  if (key == rt.last_mirrored) return;
  bool all_ok = true;
  for (publishers::Publisher* m : mirrors_) {
    if (Status s = m->Publish({cluster, record, vouched}); !s.ok()) {
      all_ok = false;
      Log().Warn("mirror_failed", {{"cluster", cluster}, {"publisher", m->name()}, {"error", s}});
    }
  }
  if (all_ok) rt.last_mirrored = key;
}

void Orchestrator::Resign() {
  if (publisher_ != nullptr && session_ != nullptr &&
      session_->state() == zk::SessionState::kConnected) {
    for (auto& [name, rt] : runtime_) {
      if (rt.vouched) (void)publisher_->Unvouch(name);
    }
  }
  // The candidates before the member znode: a successor queues as soon as the members change.
  if (ownership_ != nullptr) ownership_->ResignAll();
  if (election_ != nullptr) election_->Resign();
  StepDown();
}


void Orchestrator::ReportProblem(const std::string& cluster, ClusterRuntime& rt,
                                 const std::string& key, const std::string& kind,
                                 const std::string& path, const std::string& message,
                                 const std::string& effect) {
  if (observer_ != nullptr) observer_->OnPayloadProblem(cluster, kind);
  auto it = rt.problems.find(key);
  if (it != rt.problems.end() && it->second == std::make_pair(kind, message)) return;
  rt.problems[key] = {kind, message};
  Log().Warn(kind, {{"cluster", cluster}, {"path", path}, {"error", message}, {"effect", effect}});
}

void Orchestrator::ClearProblem(const std::string& cluster, ClusterRuntime& rt,
                                const std::string& key) {
  auto it = rt.problems.find(key);
  if (it == rt.problems.end()) return;
  Log().Info(it->second.first + "_cleared", {{"cluster", cluster}, {"key", key}});
  rt.problems.erase(it);
}

}  // namespace pgherald::orchestrator
