// What the orchestrator shows through its HTTP API (http_server.h): a snapshot that the loop
// publishes after every round, and its rendering in Prometheus' text exposition format (0.0.4).
//
// StatusBoard is the loop's RoundObserver: OnDecision, OnPayloadProblem and AfterRound run on the
// loop's thread and record the loop's counters. The clusters' views (view::ReadClusterStatus, the
// same view as `pgherald status`) are read from ZooKeeper by the board's own reader thread through
// a session of its own (StartReader), never on the loop's thread: with 1,000 clusters, re-reading
// every cluster after each pass stalled the loop for seconds. Each reader pass (after each
// AfterRound, at most one per tick) re-reads the clusters whose rounds were triggered by a change
// (a watch, a sweep, a retry) first, then the least recently read ones, at most
// `max_clusters_per_pass` in all, and publishes an immutable snapshot under a mutex. Without a
// reader (tests), AfterRound re-reads every cluster through the loop's session, as before.
// HTTP threads only take a reference to the latest snapshot (Snapshot()); they never call into the
// loop or a session.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "publishers/view/cluster_view.h"
#include "common/prometheus.h"
#include "orchestrator/decision.h"
#include "orchestrator/orchestrator.h"

namespace pgherald::orchestrator {

// The text format lives in common/prometheus.h (every daemon serves /metrics).
using prom::Labels;
using prom::EscapeLabelValue;
using prom::FormatSampleValue;
using prom::PromText;
using prom::Histogram;

struct ObservabilitySnapshot {
  bool published = false;  // false until the loop's first round completed
  std::string id;          // the orchestrator's id
  bool leading = false;     // owns at least one cluster
  std::set<std::string> owned;  // the clusters this instance owned as of their last rounds
  std::size_t successor_clusters = 0;  // Orchestrator::successor_clusters()
  std::uint64_t ownership_changes = 0;  // clusters acquired or lost since start
  std::string session_state = "none";  // zk::SessionStateName, or "none" without a session
  std::int64_t lease_remaining_ms = 0;
  std::int64_t updated_at_ms = 0;  // wall clock of the round that published this
  std::int64_t tick_ms = 1000;
  std::uint64_t rounds = 0;
  std::vector<view::ClusterStatus> clusters;     // as last read; kept while ZooKeeper is away
  std::map<std::string, std::string> read_errors;  // cluster -> why its last read failed
  std::map<std::string, std::uint64_t> master_changes;  // cluster -> epoch increases seen
  // (cluster, action, main reason code) -> verdicts (one per round while leading).
  std::map<std::array<std::string, 3>, std::uint64_t> decisions;
  std::map<std::pair<std::string, std::string>, Histogram> write_check_latency;  // (cluster, node)
  std::map<std::pair<std::string, std::string>, std::uint64_t> write_check_failures;
  // (cluster, kind) -> rounds in which a znode could not be used (RoundObserver::OnPayloadProblem).
  std::map<std::pair<std::string, std::string>, std::uint64_t> payload_problems;
  // cluster -> the problem kinds the leader reported in the cluster's last round (master_unbacked,
  // published_master_unreachable, ...): what holds NOW, beside the counters above.
  std::map<std::string, std::set<std::string>> active_problems;
  // The scheduler (Orchestrator::cluster_rounds, verification_lag): rounds per (cluster, trigger),
  // and the longest a due verification waited since the previous snapshot.
  std::map<std::pair<std::string, std::string>, std::uint64_t> cluster_rounds;
  std::int64_t verification_lag_ms = 0;
  // Passes of the board's reader thread (StatusBoard::StartReader), 0 without one.
  std::uint64_t reader_passes = 0;
  // (cluster, result) -> switchovers this process saw end: done, aborted, failed, or expired (its
  // deadline passed before a terminal phase). As master_changes, the first read is the baseline.
  std::map<std::pair<std::string, std::string>, std::uint64_t> switchovers;

  bool zk_connected() const { return session_state == "connected"; }
  const view::ClusterStatus* Find(const std::string& cluster) const;
};

// How a switchover record stands: its phase name while active, "expired" past its deadline
// unfinished, else its terminal phase ("done", "aborted", "failed").
std::string SwitchoverState(const view::ClusterStatus& cluster);

// The /metrics body at wall time now_ms (heartbeat ages are computed against now_ms).
std::string RenderMetrics(const ObservabilitySnapshot& snapshot, std::int64_t now_ms);

class StatusBoard : public RoundObserver {
 public:
  StatusBoard(std::string id, std::string root, std::vector<std::string> clusters,
              std::int64_t tick_ms, view::ReadOptions read_options = {});
  ~StatusBoard() override;

  // RoundObserver (the loop's thread).
  void OnDecision(const std::string& cluster, const DecisionInput& input,
                  const Verdict& verdict) override;
  void AfterRound(Orchestrator& orchestrator) override;
  void OnPayloadProblem(const std::string& cluster, const std::string& kind) override;

  // Any thread: the latest published snapshot (never null).
  std::shared_ptr<const ObservabilitySnapshot> Snapshot() const;

  // Before the loop runs: from now on the clusters are read by a thread of the board's own,
  // through a session made by `factory` (remade when it dies), at most `max_clusters_per_pass`
  // clusters per pass. StopReader (also the destructor) ends it.
  void StartReader(zk::SessionFactory factory, int max_clusters_per_pass = 100);
  void StopReader();

  // For tests (any thread, no reader running): refresh every cluster from `zk` and publish.
  void Refresh(zk::ZkSession* zk, bool leading, std::int64_t now_ms);
  // Any thread (SIGHUP): the clusters to show from the next refresh on.
  void SetClusters(std::vector<std::string> clusters);

 private:
  struct ReadResult {
    std::string name;
    StatusOr<view::ClusterStatus> status;
  };
  // Reads `names` through `zk` (no lock held).
  std::vector<ReadResult> ReadClusters(zk::ZkSession& zk, const std::vector<std::string>& names,
                                       std::int64_t now_ms);
  // Under work_mu_: applies a pending SetClusters.
  void ApplyPendingClustersLocked();
  // Under work_mu_: folds read results into working_.
  void MergeLocked(std::vector<ReadResult> results);
  // Under work_mu_: the loop's problem sets of the clusters that ran (see ran_since_).
  void ApplyProblemsLocked(bool leading);
  // Under work_mu_: publishes working_; a loop round (Refresh) also counts and stamps it.
  void PublishLocked(std::int64_t now_ms, bool loop_round);
  // Under work_mu_: the clusters the next reader pass reads, changed ones first.
  std::vector<std::string> PickLocked();
  void ReaderMain();

  // Under work_mu_: counts a switchover that ended (switchovers).
  void CountSwitchoverEnd(const view::ClusterStatus& cluster);

  std::string root_;
  view::ReadOptions read_options_;

  std::mutex work_mu_;  // everything below up to mu_
  std::vector<std::string> cluster_names_;
  ObservabilitySnapshot working_;
  std::map<std::string, view::HistoryCache> history_caches_;  // the reading thread's only
  std::map<std::string, std::uint64_t> last_epoch_;
  std::map<std::string, std::string> last_switchover_;  // cluster -> "<id>/<phase or expired>"
  std::map<std::string, std::set<std::string>> round_problems_;  // since the last AfterRound
  // Set by AfterRound: the clusters that ran a round since the last snapshot (only their active
  // problems change); unset (tests calling Refresh): every cluster ran.
  std::optional<std::set<std::string>> ran_since_;
  std::set<std::string> changed_;                      // to read first (reader mode)
  std::map<std::string, std::uint64_t> last_read_pass_;  // cluster -> reader pass of its last read
  std::uint64_t reader_pass_ = 0;
  bool reader_wanted_ = false;  // AfterRound asked for a pass
  bool reader_stop_ = false;
  std::condition_variable reader_cv_;
  std::thread reader_;
  zk::SessionFactory reader_factory_;
  int max_per_pass_ = 100;

  mutable std::mutex mu_;
  std::shared_ptr<const ObservabilitySnapshot> published_;
  std::optional<std::vector<std::string>> pending_clusters_;  // guarded by mu_
};

}  // namespace pgherald::orchestrator
