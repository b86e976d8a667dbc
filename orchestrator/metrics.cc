#include "orchestrator/metrics.h"

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <set>

namespace pgherald::orchestrator {

const view::ClusterStatus* ObservabilitySnapshot::Find(const std::string& cluster) const {
  for (const view::ClusterStatus& c : clusters) {
    if (c.name == cluster) return &c;
  }
  return nullptr;
}

std::string SwitchoverState(const view::ClusterStatus& c) {
  if (!c.switchover) return "";
  if (!c.switchover_active && !model::IsTerminal(c.switchover->phase)) return "expired";
  return model::SwitchoverPhaseName(c.switchover->phase);
}

std::string RenderMetrics(const ObservabilitySnapshot& s, std::int64_t now_ms) {
  PromText out;
  const Labels id = {{"orchestrator", s.id}};

  out.Family("pgherald_up", "gauge", "1 once the orchestrator's loop has completed a round.");
  out.Sample("pgherald_up", id, s.published ? 1 : 0);
  prom::RenderBuildInfo(out);
  out.Family("pgherald_leader", "gauge",
             "1 while this orchestrator owns (acts on) at least one cluster, 0 otherwise.");
  out.Sample("pgherald_leader", id, s.leading ? 1 : 0);
  out.Family("pgherald_orchestrator_owned_clusters", "gauge",
             "Clusters this orchestrator owns (acts on) as of their last rounds.");
  out.Sample("pgherald_orchestrator_owned_clusters", id, static_cast<double>(s.owned.size()));
  out.Family("pgherald_orchestrator_successor_clusters", "gauge",
             "Clusters this orchestrator does not own but would take over (next in line), whose "
             "nodes it keeps connections to.");
  out.Sample("pgherald_orchestrator_successor_clusters", id,
             static_cast<double>(s.successor_clusters));
  out.Family("pgherald_orchestrator_ownership_changes_total", "counter",
             "Clusters this orchestrator acquired or lost since it started.");
  out.Sample("pgherald_orchestrator_ownership_changes_total", id,
             static_cast<double>(s.ownership_changes));
  out.Family("pgherald_orchestrator_cluster_owned", "gauge",
             "1 for each configured cluster this orchestrator owns, 0 for the others.");
  for (const view::ClusterStatus& c : s.clusters) {
    Labels l = id;
    l.emplace_back("cluster", c.name);
    out.Sample("pgherald_orchestrator_cluster_owned", l, s.owned.count(c.name) > 0 ? 1 : 0);
  }
  out.Family("pgherald_zookeeper_connected", "gauge",
             "1 while the ZooKeeper session is connected.");
  out.Sample("pgherald_zookeeper_connected", id, s.zk_connected() ? 1 : 0);
  out.Family("pgherald_zookeeper_session_state", "gauge",
             "The ZooKeeper session's state (1 for the current one).");
  for (const char* st : {"none", "connecting", "connected", "expired", "auth-failed", "closed"}) {
    Labels l = id;
    l.emplace_back("state", st);
    out.Sample("pgherald_zookeeper_session_state", l, s.session_state == st ? 1 : 0);
  }
  out.Family("pgherald_lease_remaining_seconds", "gauge",
             "Time left on the session's local lease at the end of the last round (leadership "
             "acts only while it is positive).");
  out.Sample("pgherald_lease_remaining_seconds", id,
             static_cast<double>(s.lease_remaining_ms) / 1000.0);
  out.Family("pgherald_rounds_total", "counter",
             "Snapshots the orchestrator's loop has published (after its first pass, then at most "
             "once per tick).");
  out.Sample("pgherald_rounds_total", id, static_cast<double>(s.rounds));
  out.Family("pgherald_snapshot_age_seconds", "gauge",
             "Time since the loop last published this snapshot (a stuck loop grows it).");
  out.Sample("pgherald_snapshot_age_seconds", id,
             s.published
                 ? static_cast<double>(std::max<std::int64_t>(0, now_ms - s.updated_at_ms)) / 1000.0
                 : 0);

  out.Family("pgherald_master_changes_total", "counter",
             "Master record changes (epoch increases) this process has seen, per cluster.");
  for (const auto& [cluster, n] : s.master_changes) {
    out.Sample("pgherald_master_changes_total", {{"cluster", cluster}}, static_cast<double>(n));
  }
  out.Family("pgherald_master_verified", "gauge",
             "1 while the cluster's master record has at least one voucher.");
  out.Family("pgherald_master_epoch", "gauge", "The master record's epoch.");
  out.Family("pgherald_master_info", "gauge", "The published master node (value 1).");
  out.Family("pgherald_cluster_paused", "gauge", "1 while the cluster is paused (maintenance).");
  out.Family("pgherald_master_vouchers", "gauge", "Vouchers under the master record.");
  for (const view::ClusterStatus& c : s.clusters) {
    const Labels l = {{"cluster", c.name}};
    out.Sample("pgherald_master_verified", l, c.verified() ? 1 : 0);
    out.Sample("pgherald_master_epoch", l, static_cast<double>(c.master.epoch));
    if (c.master.state == model::MasterState::kOk) {
      out.Sample("pgherald_master_info", {{"cluster", c.name}, {"node", c.master.node}}, 1);
    }
    out.Sample("pgherald_cluster_paused", l, c.control.paused ? 1 : 0);
    out.Sample("pgherald_master_vouchers", l, static_cast<double>(c.vouchers.size()));
  }
  out.Family("pgherald_node_heartbeat_age_seconds", "gauge",
             "Now minus the node observation znode's mtime (ZooKeeper's clock of the poller's last "
             "write).");
  for (const view::ClusterStatus& c : s.clusters) {
    for (const view::NodeStatus& n : c.nodes) {
      if (!n.observation) continue;
      out.Sample("pgherald_node_heartbeat_age_seconds", {{"cluster", c.name}, {"node", n.node}},
                 static_cast<double>(std::max<std::int64_t>(0, now_ms - n.mtime_ms)) / 1000.0);
    }
  }
  out.Family("pgherald_node_lag_bytes", "gauge",
             "Bytes of WAL the node is behind the master (from the pollers' observations).");
  for (const view::ClusterStatus& c : s.clusters) {
    for (const view::NodeStatus& n : c.nodes) {
      if (!n.lag_bytes) continue;
      out.Sample("pgherald_node_lag_bytes", {{"cluster", c.name}, {"node", n.node}},
                 static_cast<double>(*n.lag_bytes));
    }
  }
  out.Family("pgherald_node_role", "gauge",
             "The node's role as judged from its observation (value 1): primary, standby, "
             "stale-primary, down, stale, missing.");
  for (const view::ClusterStatus& c : s.clusters) {
    for (const view::NodeStatus& n : c.nodes) {
      out.Sample("pgherald_node_role", {{"cluster", c.name}, {"node", n.node}, {"role", n.role}},
                 1);
    }
  }
  out.Family("pgherald_decisions_total", "counter",
             "Verdicts of the decision function (one per cluster per round while leading), by "
             "action and main reason code.");
  for (const auto& [key, n] : s.decisions) {
    out.Sample("pgherald_decisions_total",
               {{"cluster", key[0]}, {"action", key[1]}, {"reason", key[2]}},
               static_cast<double>(n));
  }
  out.Family("pgherald_write_check_duration_seconds", "histogram",
             "Round trip of the orchestrator's write checks (probe plus heartbeat transaction).");
  for (const auto& [key, h] : s.write_check_latency) {
    h.Render(out, "pgherald_write_check_duration_seconds",
             {{"cluster", key.first}, {"node", key.second}});
  }
  out.Family("pgherald_write_check_failures_total", "counter", "Write checks that did not commit.");
  for (const auto& [key, n] : s.write_check_failures) {
    out.Sample("pgherald_write_check_failures_total",
               {{"cluster", key.first}, {"node", key.second}}, static_cast<double>(n));
  }
  out.Family("pgherald_payload_problem_rounds_total", "counter",
             "Rounds in which a znode of the cluster could not be used or the published master "
             "is in doubt, by kind (master_unreadable, master_missing, master_unbacked, "
             "published_master_unreachable, observation_corrupt, observation_not_ephemeral, switchover_corrupt).");
  for (const auto& [key, n] : s.payload_problems) {
    out.Sample("pgherald_payload_problem_rounds_total", {{"cluster", key.first}, {"kind", key.second}},
               static_cast<double>(n));
  }
  out.Family("pgherald_problem_active", "gauge",
             "1 for each problem kind the leader reported in the cluster's last round.");
  for (const auto& [cluster, kinds] : s.active_problems) {
    for (const std::string& kind : kinds) {
      out.Sample("pgherald_problem_active", {{"cluster", cluster}, {"kind", kind}}, 1);
    }
  }
  out.Family("pgherald_orchestrator_cluster_rounds_total", "counter",
             "Cluster rounds this orchestrator ran, by trigger: watch (a watch of the cluster "
             "fired), sweep (a session, election or startup event ran every cluster), verify (its "
             "periodic verification or voucher re-affirmation was due), retry (an unsettled "
             "publish).");
  for (const auto& [key, n] : s.cluster_rounds) {
    out.Sample("pgherald_orchestrator_cluster_rounds_total",
               {{"cluster", key.first}, {"trigger", key.second}}, static_cast<double>(n));
  }
  out.Family("pgherald_orchestrator_switchover_phase", "gauge",
             "1 for the current phase of the cluster's active switchover (none while there is "
             "none: docs/switchover.md).");
  for (const view::ClusterStatus& c : s.clusters) {
    if (!c.switchover_active) continue;
    out.Sample("pgherald_orchestrator_switchover_phase",
               {{"cluster", c.name}, {"phase", model::SwitchoverPhaseName(c.switchover->phase)}}, 1);
  }
  out.Family("pgherald_orchestrator_switchovers_total", "counter",
             "Switchovers this process saw end, by result: done, aborted, failed, expired (the "
             "deadline passed before the coordinator wrote a terminal phase).");
  for (const auto& [key, n] : s.switchovers) {
    out.Sample("pgherald_orchestrator_switchovers_total",
               {{"cluster", key.first}, {"result", key.second}}, static_cast<double>(n));
  }
  out.Family("pgherald_orchestrator_verification_lag_seconds", "gauge",
             "The longest a cluster's due verification waited past its due time since the "
             "previous snapshot (an overloaded orchestrator grows it; 0 when on time).");
  out.Sample("pgherald_orchestrator_verification_lag_seconds", id,
             static_cast<double>(s.verification_lag_ms) / 1000.0);
  return out.text();
}

StatusBoard::StatusBoard(std::string id, std::string root, std::vector<std::string> clusters,
                         std::int64_t tick_ms, view::ReadOptions read_options)
    : root_(std::move(root)), read_options_(read_options), cluster_names_(std::move(clusters)) {
  working_.id = std::move(id);
  working_.tick_ms = tick_ms;
  if (read_options_.history_limit <= 0) read_options_.history_limit = 50;
  published_ = std::make_shared<const ObservabilitySnapshot>(working_);
}

StatusBoard::~StatusBoard() { StopReader(); }

std::shared_ptr<const ObservabilitySnapshot> StatusBoard::Snapshot() const {
  std::lock_guard lock(mu_);
  return published_;
}

void StatusBoard::OnDecision(const std::string& cluster, const DecisionInput& input,
                             const Verdict& verdict) {
  const std::string reason = verdict.reasons.empty() ? "" : ReasonCodeName(verdict.reasons[0].code);
  std::lock_guard lock(work_mu_);
  ++working_.decisions[{cluster, ActionName(verdict.action), reason}];
  for (const auto& [node, probe] : input.probes) {
    if (probe.probe.write_check == model::WriteCheck::kNotRun) continue;
    working_.write_check_latency[{cluster, node}].Observe(
        static_cast<double>(probe.probe.latency_us) / 1e6);
    if (probe.probe.write_check == model::WriteCheck::kFailed) {
      ++working_.write_check_failures[{cluster, node}];
    }
  }
}

void StatusBoard::OnPayloadProblem(const std::string& cluster, const std::string& kind) {
  std::lock_guard lock(work_mu_);
  ++working_.payload_problems[{cluster, kind}];
  round_problems_[cluster].insert(kind);
}

void StatusBoard::AfterRound(Orchestrator& orchestrator) {
  const std::set<std::string> owned = orchestrator.owned_clusters();
  const std::uint64_t ownership_changes = orchestrator.ownership_changes();
  const std::size_t successor_clusters = orchestrator.successor_clusters();
  const auto rounds = orchestrator.cluster_rounds();
  const std::int64_t lag_ms = orchestrator.verification_lag().count();
  zk::ZkSession* zk = orchestrator.session();
  const bool leading = orchestrator.leading();
  const std::string session_state = zk != nullptr ? zk::SessionStateName(zk->state()) : "none";
  const std::int64_t lease_ms = zk != nullptr ? zk->lease_remaining().count() : 0;
  bool with_reader = false;
  {
    std::lock_guard lock(work_mu_);
    working_.owned = owned;
    working_.ownership_changes = ownership_changes;
    working_.successor_clusters = successor_clusters;
    // The clusters whose round ran since the last snapshot: only their active problems are news
    // (the loop runs each cluster on its own schedule, not every cluster between two snapshots).
    // A round triggered by anything but its periodic verification means something changed in
    // ZooKeeper: the reader reads that cluster first.
    std::set<std::string> ran;
    for (const auto& [key, n] : rounds) {
      auto before = working_.cluster_rounds.find(key);
      if (before != working_.cluster_rounds.end() && before->second == n) continue;
      ran.insert(key.first);
      if (key.second != "verify") changed_.insert(key.first);  // orchestrator_schedule.cc's trigger
    }
    ran_since_ = std::move(ran);
    working_.cluster_rounds = rounds;
    working_.verification_lag_ms = lag_ms;
    working_.leading = leading;
    working_.session_state = session_state;
    working_.lease_remaining_ms = lease_ms;
    with_reader = reader_.joinable();
    if (with_reader) {
      ApplyProblemsLocked(leading);
      // The loop's liveness (pgherald_rounds_total, the snapshot's age) is the loop's, not the
      // reader's: a reader pass publishes what the loop reported last.
      ++working_.rounds;
      working_.updated_at_ms = view::WallNowMs();
      working_.published = true;
      reader_wanted_ = true;
    }
  }
  if (with_reader) {
    reader_cv_.notify_one();
    return;
  }
  Refresh(zk, leading, view::WallNowMs());
}

// A record that is over now and was not so at the last read (the first read is the baseline).
void StatusBoard::CountSwitchoverEnd(const view::ClusterStatus& c) {
  const std::string state = SwitchoverState(c);
  const std::string key = c.switchover ? c.switchover->id + "/" + state : "";
  auto last = last_switchover_.find(c.name);
  const bool first = last == last_switchover_.end();
  if (!first && last->second != key && !c.switchover_active && c.switchover) {
    ++working_.switchovers[{c.name, state}];
  }
  last_switchover_[c.name] = key;
}

void StatusBoard::SetClusters(std::vector<std::string> clusters) {
  std::lock_guard lock(mu_);
  pending_clusters_ = std::move(clusters);
}

void StatusBoard::ApplyPendingClustersLocked() {
  std::optional<std::vector<std::string>> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(pending_clusters_);
  }
  if (!pending) return;
  cluster_names_ = std::move(*pending);
  const std::set<std::string> keep(cluster_names_.begin(), cluster_names_.end());
  std::erase_if(working_.clusters,
                [&keep](const view::ClusterStatus& c) { return keep.count(c.name) == 0; });
  std::erase_if(working_.read_errors, [&keep](const auto& e) { return keep.count(e.first) == 0; });
  std::erase_if(changed_, [&keep](const std::string& c) { return keep.count(c) == 0; });
  std::erase_if(last_read_pass_, [&keep](const auto& e) { return keep.count(e.first) == 0; });
}

std::vector<StatusBoard::ReadResult> StatusBoard::ReadClusters(
    zk::ZkSession& zk, const std::vector<std::string>& names, std::int64_t now_ms) {
  std::vector<ReadResult> results;
  results.reserve(names.size());
  for (const std::string& name : names) {
    view::HistoryCache* cache = nullptr;
    {
      std::lock_guard lock(work_mu_);
      cache = &history_caches_[name];  // std::map: the node stays put
    }
    results.push_back({name, view::ReadClusterStatus(zk, root_, name, read_options_, now_ms, cache)});
  }
  return results;
}

void StatusBoard::MergeLocked(std::vector<ReadResult> results) {
  std::map<std::string, view::ClusterStatus> by_name;
  for (view::ClusterStatus& c : working_.clusters) by_name.emplace(c.name, std::move(c));
  for (ReadResult& r : results) {
    if (!r.status.ok()) {
      working_.read_errors[r.name] = r.status.status().message();
      continue;
    }
    working_.read_errors.erase(r.name);
    view::ClusterStatus& read = *r.status;
    if (read.master_present) {
      // The first read only sets the baseline: changes before this process started are not ours.
      auto last = last_epoch_.find(r.name);
      if (last == last_epoch_.end()) {
        last_epoch_[r.name] = read.master.epoch;
      } else if (read.master.epoch > last->second) {
        working_.master_changes[r.name] += read.master.epoch - last->second;
        last->second = read.master.epoch;
      }
    }
    working_.master_changes.try_emplace(r.name, 0);
    CountSwitchoverEnd(read);
    by_name[r.name] = std::move(read);
  }
  // In the configured order; a cluster not read yet is not shown yet.
  std::vector<view::ClusterStatus> merged;
  merged.reserve(cluster_names_.size());
  for (const std::string& name : cluster_names_) {
    auto it = by_name.find(name);
    if (it != by_name.end()) merged.push_back(std::move(it->second));
  }
  working_.clusters = std::move(merged);
}

void StatusBoard::ApplyProblemsLocked(bool leading) {
  if (ran_since_ && leading) {
    for (const std::string& cluster : *ran_since_) {
      auto now = round_problems_.find(cluster);
      if (now == round_problems_.end()) {
        working_.active_problems.erase(cluster);
      } else {
        working_.active_problems[cluster] = std::move(now->second);
      }
    }
  } else {
    working_.active_problems = std::move(round_problems_);
  }
  ran_since_.reset();
  round_problems_.clear();
}

void StatusBoard::PublishLocked(std::int64_t now_ms, bool loop_round) {
  if (loop_round) {
    ++working_.rounds;
    working_.updated_at_ms = now_ms;
    working_.published = true;
  }
  auto snapshot = std::make_shared<const ObservabilitySnapshot>(working_);
  std::lock_guard lock(mu_);
  published_ = std::move(snapshot);
}

void StatusBoard::Refresh(zk::ZkSession* zk, bool leading, std::int64_t now_ms) {
  std::vector<std::string> names;
  {
    std::lock_guard lock(work_mu_);
    ApplyPendingClustersLocked();
    working_.leading = leading;
    working_.session_state = zk != nullptr ? zk::SessionStateName(zk->state()) : "none";
    working_.lease_remaining_ms = zk != nullptr ? zk->lease_remaining().count() : 0;
    names = cluster_names_;
  }
  std::vector<ReadResult> results;
  if (zk != nullptr && zk->state() == zk::SessionState::kConnected) {
    results = ReadClusters(*zk, names, now_ms);
  }
  std::lock_guard lock(work_mu_);
  MergeLocked(std::move(results));
  ApplyProblemsLocked(leading);
  PublishLocked(now_ms, /*loop_round=*/true);
}

std::vector<std::string> StatusBoard::PickLocked() {
  const std::size_t budget = static_cast<std::size_t>(std::max(1, max_per_pass_));
  std::vector<std::string> pick;
  std::set<std::string> picked;
  // Changed clusters first, those read longest ago before the others.
  std::vector<std::string> changed(changed_.begin(), changed_.end());
  const auto by_last_read = [this](const std::string& a, const std::string& b) {
    const auto ia = last_read_pass_.find(a);
    const auto ib = last_read_pass_.find(b);
    const std::uint64_t pa = ia == last_read_pass_.end() ? 0 : ia->second + 1;
    const std::uint64_t pb = ib == last_read_pass_.end() ? 0 : ib->second + 1;
    return pa < pb;
  };
  std::stable_sort(changed.begin(), changed.end(), by_last_read);
  for (const std::string& c : changed) {
    if (pick.size() >= budget) break;
    if (std::find(cluster_names_.begin(), cluster_names_.end(), c) == cluster_names_.end()) continue;
    if (picked.insert(c).second) pick.push_back(c);
  }
  if (pick.size() < budget) {
    std::vector<std::string> rest = cluster_names_;
    std::stable_sort(rest.begin(), rest.end(), by_last_read);
    for (const std::string& c : rest) {
      if (pick.size() >= budget) break;
      if (picked.insert(c).second) pick.push_back(c);
    }
  }
  for (const std::string& c : pick) changed_.erase(c);
  return pick;
}

void StatusBoard::StartReader(zk::SessionFactory factory, int max_clusters_per_pass) {
  std::lock_guard lock(work_mu_);
  if (reader_.joinable()) return;
  reader_factory_ = std::move(factory);
  max_per_pass_ = std::max(1, max_clusters_per_pass);
  reader_stop_ = false;
  reader_ = std::thread([this] { ReaderMain(); });
}

void StatusBoard::StopReader() {
  {
    std::lock_guard lock(work_mu_);
    if (!reader_.joinable()) return;
    reader_stop_ = true;
  }
  reader_cv_.notify_one();
  reader_.join();
  std::lock_guard lock(work_mu_);
  reader_ = std::thread();
}

void StatusBoard::ReaderMain() {
  std::unique_ptr<zk::ZkSession> session;
  std::int64_t tick_ms = 1000;
  {
    std::lock_guard lock(work_mu_);
    tick_ms = std::max<std::int64_t>(1, working_.tick_ms);
  }
  while (true) {
    std::vector<std::string> names;
    {
      std::unique_lock lock(work_mu_);
      // One pass per AfterRound (the loop calls it at most once per tick), and one per tick
      // anyway so that a silent loop does not freeze the views.
      reader_cv_.wait_for(lock, std::chrono::milliseconds(tick_ms),
                          [this] { return reader_wanted_ || reader_stop_; });
      if (reader_stop_) break;
      reader_wanted_ = false;
      ApplyPendingClustersLocked();
      names = PickLocked();
      ++reader_pass_;
      for (const std::string& n : names) last_read_pass_[n] = reader_pass_;
    }
    if (session != nullptr && zk::IsFinal(session->state())) session.reset();
    if (session == nullptr) {
      auto made = reader_factory_();
      if (made.ok()) session = std::move(*made);
    }
    std::vector<ReadResult> results;
    if (session != nullptr && session->state() == zk::SessionState::kConnected) {
      results = ReadClusters(*session, names, view::WallNowMs());
    } else {
      // Not read: read again first next time.
      std::lock_guard lock(work_mu_);
      for (const std::string& n : names) {
        changed_.insert(n);
        last_read_pass_.erase(n);
      }
    }
    std::lock_guard lock(work_mu_);
    MergeLocked(std::move(results));
    working_.reader_passes = reader_pass_;
    PublishLocked(view::WallNowMs(), /*loop_round=*/false);
  }
  if (session != nullptr) session->Close();
}

}  // namespace pgherald::orchestrator
