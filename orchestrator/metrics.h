// What the orchestrator shows through its HTTP API (http_server.h): a snapshot that the loop
// publishes after every round, and its rendering in Prometheus' text exposition format (0.0.4).
//
// StatusBoard is the loop's RoundObserver: OnDecision and AfterRound run on the loop's thread and
// are the only writers; AfterRound re-reads the clusters from ZooKeeper through the loop's own
// session (view::ReadClusterStatus, the same view as `pgherald status`) and then publishes an
// immutable snapshot under a mutex. HTTP threads only take a reference to the latest snapshot
// (Snapshot()); they never call into the loop or its session.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <optional>
#include <string>
#include <string_view>
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

  // RoundObserver (the loop's thread).
  void OnDecision(const std::string& cluster, const DecisionInput& input,
                  const Verdict& verdict) override;
  void AfterRound(Orchestrator& orchestrator) override;
  void OnPayloadProblem(const std::string& cluster, const std::string& kind) override;

  // Any thread: the latest published snapshot (never null).
  std::shared_ptr<const ObservabilitySnapshot> Snapshot() const;

  // The loop's thread, for tests: refresh from `zk` as AfterRound does.
  void Refresh(zk::ZkSession* zk, bool leading, std::int64_t now_ms);
  // Any thread (SIGHUP): the clusters to show from the next refresh on.
  void SetClusters(std::vector<std::string> clusters);

 private:
  void CountSwitchoverEnd(const view::ClusterStatus& cluster);

 private:
  std::string root_;
  std::vector<std::string> cluster_names_;
  view::ReadOptions read_options_;
  ObservabilitySnapshot working_;  // the loop's thread only
  std::map<std::string, view::HistoryCache> history_caches_;
  std::map<std::string, std::uint64_t> last_epoch_;
  std::map<std::string, std::string> last_switchover_;  // cluster -> "<id>/<phase or expired>"
  std::map<std::string, std::set<std::string>> round_problems_;  // since the last Refresh
  // Set by AfterRound: the clusters that ran a round since the last snapshot (Refresh then updates
  // only their active problems); unset (tests calling Refresh) every cluster ran.
  std::optional<std::set<std::string>> ran_since_;

  mutable std::mutex mu_;
  std::shared_ptr<const ObservabilitySnapshot> published_;
  std::optional<std::vector<std::string>> pending_clusters_;  // guarded by mu_
};

}  // namespace pgherald::orchestrator
