// The logic of `pgherald switchover` (docs/switchover.md), pure: what ZooKeeper showed in, a
// verdict out. No I/O, no clock (now is an input); switchover_command.cc is the thin ZooKeeper
// shell around it.
//
//   - Preflight: the checks before anything is written (a verified master, a target fit to be
//     promoted, nothing paused or running) and the record they lead to.
//   - Plan: who does what in each phase (for --dry-run and the phase lines).
//   - Advance: the coordinator's state machine. Given the record as last read, the live
//     observations (with the pollers' acks), the master record, whether a voucher binds it, and
//     now, it returns the next record to write (a compare-and-set on the version read), "wait"
//     (until an event, or wake_at_ms at the latest), or "finished" with the exit code. Every
//     decision it takes is a function of these inputs alone: a coordinator that re-reads after any
//     event (or after a write whose outcome is unknown) computes the same step again.
//
// Everything read from ZooKeeper is hostile: the inputs are decoded payloads (model codecs,
// consumer_rules' judgement), and an ack counts only for the record's id and current phase.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/model/cluster_model.h"

namespace pgherald::switchover {

// Exit codes of `pgherald switchover`.
inline constexpr int kExitDone = 0;     // done (or --dry-run: every check passed; --abort: aborted)
inline constexpr int kExitRefused = 1;  // a check failed, bad usage, ZooKeeper unreachable:
                                        // nothing was written
inline constexpr int kExitFailed = 2;   // the switchover ended aborted or failed

// What ZooKeeper showed of one cluster (decoded; the shell reads it).
struct ClusterSnapshot {
  // The master record as consumer_rules judged it: absent when the znode is missing or its
  // payload does not decode (master_error says why).
  std::optional<model::MasterRecord> master;
  bool master_bound = false;  // a voucher binds the record (model::BoundVouchers)
  std::string master_error;
  model::ControlState control;  // the default when the znode is absent
  std::string control_error;    // a corrupt control znode
  std::optional<model::SwitchoverRecord> record;  // with its znode version
  std::string record_error;                       // a switchover znode that does not decode
  std::int32_t record_znode_version = -1;  // the switchover znode's version, -1 when absent
  // Live observations (ephemeral znodes whose payload decodes), by node name.
  std::map<std::string, model::NodeObservation> nodes;
  // Znodes under nodes/ that are not live observations: "<name>: why" (persistent, corrupt).
  std::vector<std::string> bad_nodes;
};

struct PreflightOptions {
  std::string to;                            // "" : pick the standby with the smallest lag
  std::uint64_t max_lag_bytes = 16u << 20;   // from.current_lsn - to.receive_lsn
};

struct CheckLine {
  bool ok = false;
  std::string subject;  // the node (or "master", "control", "switchover")
  std::string text;     // what was seen, and for a failure the fix
};

struct Preflight {
  std::vector<CheckLine> checks;  // in the order made; failures and passes
  std::string from;
  std::string to;
  std::vector<std::string> siblings;
  std::uint64_t base_epoch = 0;
  std::optional<std::uint64_t> lag_bytes;  // of `to`
  bool ok() const;
};

Preflight RunPreflight(const ClusterSnapshot& snapshot, const PreflightOptions& options,
                       std::int64_t now_ms);

// One phase of the plan: who acts and what it runs.
struct PlanStep {
  model::SwitchoverPhase phase;
  std::vector<std::string> actors;  // node names, or "orchestrator" (the cluster's owner)
  std::string action;
};
// The phases of a switchover from `from` to `to` (prepare ... unpause, then rollback, which runs
// only on failure).
std::vector<PlanStep> Plan(const std::string& from, const std::string& to,
                           const std::vector<std::string>& siblings);
// The actors of `phase` ("coordinator" for the terminal phases).
std::vector<std::string> ActorsOf(const model::SwitchoverRecord& record,
                                  model::SwitchoverPhase phase);

struct CoordinatorOptions {
  std::int64_t step_timeout_ms = 60000;    // each acknowledged step, and the wait for publish
  std::int64_t withdraw_timeout_ms = 5000;  // hold: the owner withdraws its voucher within this
};

struct CoordinatorInput {
  model::SwitchoverRecord record;  // as last read, with its version
  std::map<std::string, model::NodeObservation> nodes;  // live observations
  std::optional<model::MasterRecord> master;
  bool master_bound = false;
  std::int64_t now_ms = 0;  // wall ms (the record's clock)
};

struct CoordinatorStep {
  enum class Kind { kWait, kWrite, kFinished };
  Kind kind = Kind::kWait;
  model::SwitchoverRecord record;  // kWrite: the record to write (version: the one to compare)
  std::int64_t wake_at_ms = 0;     // kWait: decide again at this time even without an event
  int exit_code = 0;               // kFinished
};
const char* StepKindName(CoordinatorStep::Kind kind);

// The next step. Rules (docs/switchover.md, "Failures"):
//   - a terminal record: finished (0 done, 2 aborted/failed);
//   - past deadline_at: failed;
//   - prepare: every involved poller acks done -> hold. A failure, or the step timeout: unpause
//     when `to` acked its pause running or done (it may have paused repmgrd; `to` running and time
//     left: wait for it to settle), else aborted. The master changing away from `from`: the same.
//   - hold: no voucher binds the master record -> stop, unless max_hold_ms has passed since the
//     hold began; the voucher still bound after min(withdraw_timeout, max_hold) -> unpause.
//   - stop: `from` acks done with its LSN -> promote (stop_lsn set). Failed or timed out: unpause
//     when `from` still answers writable, else rollback.
//   - promote: `to` acks done -> publish. Failed or timed out: publish when `to` answers writable
//     (promoted; the ack is what failed), else rollback.
//   - publish: the master record names `to` at an epoch above base_epoch with a bound voucher ->
//     rejoin. Not within the step timeout: failed.
//   - rejoin: `from` and every sibling settle (done or failed) or the step times out -> unpause,
//     with the failures in `error`.
//   - unpause: `to` acks done -> done when no error was recorded, else failed when `to` has been
//     published (the new master stands) and aborted when not. Failed or timed out: failed.
//   - rollback: `from` acks done -> unpause (error kept, so it ends aborted); else failed.
// `error` carries the failures along the failure path (unpause, rollback) and into the terminal
// phase.
CoordinatorStep Advance(const CoordinatorInput& input, const CoordinatorOptions& options);

// The acknowledgement `node` published for (record.id, phase), if any.
std::optional<model::SwitchoverAck> AckOf(const std::map<std::string, model::NodeObservation>& nodes,
                                          const std::string& node, const std::string& id,
                                          model::SwitchoverPhase phase);

}  // namespace pgherald::switchover
