// Orchestrator::ClusterRound: what one cluster's round works out on the way. Internal to the
// orchestrator's sources (orchestrator.cc runs a round's steps, orchestrator_schedule.cc holds
// the rounds of a batch between them); not part of any interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/model/zk_paths.h"
#include "orchestrator/orchestrator.h"

namespace pgherald::orchestrator {

// What one round of one cluster works out on the way, step by step (PrepareRound, ProbeRounds,
// FinishRound).
struct Orchestrator::ClusterRound {
  ClusterRound(const ClusterSpec& of, model::ClusterPaths znodes, ClusterRuntime& runtime,
               MonoTime at, std::uint64_t count)
      : spec(of), c(of.name), paths(std::move(znodes)), rt(runtime), start(at), count_at_start(count) {}

  const ClusterSpec& spec;
  const std::string& c;
  const model::ClusterPaths paths;  // the cluster's znodes (common/model/zk_paths.h)
  ClusterRuntime& rt;
  // Where a round's time goes (logged with a publish): reads, probes, write checks, the multi.
  // probe_ms and write_check_ms are the batch's calls, which every round of the batch waited for.
  const MonoTime start;
  double read_ms = 0;
  double probe_ms = 0;
  double write_check_ms = 0;
  // A verification of this round may vouch only if the session is not interrupted meanwhile.
  const std::uint64_t count_at_start;

  publishers::ControlState control;                   // ReadControl
  std::optional<model::SwitchoverRecord> switchover;  // ReadSwitchover (absent: none or corrupt)
  std::optional<publishers::MasterZnode> published;   // ReadMaster; absent only in dry-run
  std::optional<publishers::HistoryFacts> facts;      // ReadFacts, at most once a round
  bool repair = false;                                // JudgeTrust
  bool authoritative = false;
  std::uint64_t epoch_floor = 0;
  DecisionInput in;                                   // FillInput, ReadObservations, ProbeRounds
  std::vector<NodeTarget> targets;                    // configured + learned this round
  std::vector<NodeTarget> learned;                    // ReadObservations
};

}  // namespace pgherald::orchestrator
