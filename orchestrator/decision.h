// The orchestrator's decision function: which node of one cluster is the verified, writable master.
//
// Decide() is PURE: no I/O, no clock reads, no logging, no randomness. Everything it needs comes in
// DecisionInput (time included); everything it remembers between rounds lives in DecisionMemory,
// which the caller owns, keeps per cluster and passes back each round. The same input and memory
// always give the same verdict and the same new memory. That is what lets the rules be tested as a
// table of scenarios and by randomized simulation (tests/unit/decision_test.cc).
//
// The I/O shell around it, per cluster and per round (every watch event and every tick):
//   1. read the observations (clusters/<c>/nodes/*), the master record and clusters/<c>/control;
//   2. probe every known node directly (role, timeline, LSN, system_identifier);
//   3. run the write check on the nodes WriteCheckTargets() names (usually one, never a node that
//      cannot win, so a stale primary is not written to);
//   4. Decide(), then carry the verdict out (see Action), log one line per change of action or
//      master, and write a history entry (ToHistoryEntry) with every publish.
// The rules are documented with their reason codes in docs/decision-rules.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/model/cluster_model.h"

namespace pgherald::orchestrator {

// Stable, machine-readable reason codes (ReasonCodeName gives the spelling stored in history and
// logs; alerting may key on it, so a spelling never changes meaning).
enum class ReasonCode {
  // Why the verdict is what it is.
  kPaused,               // "paused": the cluster is in maintenance; nothing changes
  kMasterVerified,       // "master_verified": the published master passed this round's checks
  kFirstMaster,          // "first_master": nothing was published; the candidate held the window
  kLaterTimeline,        // "later_timeline": the winner's timeline is above the published one
  kCandidateConfirmed,   // "candidate_confirmed": the candidate held the confirmation window
  kCandidatePending,     // "candidate_pending": the candidate has not held the window yet
  kCandidateUnverified,  // "candidate_unverified": the winner is not publishable this round
  kMasterUnverified,     // "master_unverified": the published master failed this round's checks
  kNoWritableNode,       // "no_writable_node": no node of the cluster accepts writes
  kSplitBrain,           // "split_brain": two or more nodes of the cluster accept writes
  kSplitBrainUndecided,  // "split_brain_undecided": writable nodes tie on every rule
  kAwaitingFence,        // "awaiting_fence": strict mode, a stale primary is not fenced yet
  kIdentityConflict,     // "identity_conflict": identity unknown and nodes disagree on it
  kIdentityAdopted,      // "identity_adopted": identity unknown, the new master's is recorded
  kMasterRepaired,       // "master_repaired": the record read was not trusted; rewritten from
                         // this round's verified winner with an epoch above every epoch used
  kOperatorAcceptedLowerTimeline,  // "operator_accepted_lower_timeline": `pgherald
                                   // accept-timeline` let a lower timeline replace the record
  kEpochExhausted,  // "epoch_exhausted": the epoch to go above is 2^64-1; nothing is published
  kSwitchover,      // "switchover": an active switchover (clusters/<c>/control/switchover) in
                    // hold, stop, promote or publish: `from` is not vouched, nobody but `to` is
                    // published, and `to` is published as soon as it is verified on a later
                    // timeline (the text names the switchover's id and phase)
  // Facts about one node (Reason::node says which).
  kStalePrimary,            // "stale_primary": writable but lost to the winner: fence it
  kSameTimelineStalePrimary,  // "same_timeline_stale_primary": writable on the timeline of the
                              // published master, which passed its write check: fence it
  kBelowPublishedTimeline,  // "below_published_timeline": writable on a timeline below the record's
  kBelowClusterTimeline,    // "below_cluster_timeline": writable on a timeline below one another
                            // node of the cluster (probed or observed, standby or not) reports
  kForeignIdentity,         // "foreign_system_identifier": another cluster's database
  kIdentityUnknown,         // "system_identifier_unknown": no identifier reported for the node
  kInRecovery,              // "in_recovery": the probe found a standby
  kWriteCheckFailed,        // "write_check_failed"
  kWriteCheckMissing,       // "write_check_missing": no passed write check in this round's probe
  kProbeMissing,            // "probe_missing": no fresh probe (none, or older than probe_max_age)
  kUnreachable,             // "unreachable": the probe could not connect
  kPollerMissing,           // "poller_missing": no fresh observation (poller dead or stale)
  kTimelineUnknown,         // "timeline_unknown": timeline 0
  kFenced,                  // "fenced": the node's poller reports it fenced
  kSelfFenceElapsed,        // "self_fence_elapsed": unreachable past the self-fence deadline
};
const char* ReasonCodeName(ReasonCode code);

struct Reason {
  ReasonCode code;
  std::string node;  // "" when the reason concerns the cluster
  std::string text;  // for people; wording may change
};

struct Policy {
  // How long a winner that does not replace an earlier timeline must stay the winner (and
  // publishable) before it is published. Anti-flapping.
  Millis confirmation_window{5000};
  // Strict split-brain mode: a new master is published only once every other node that may still
  // accept writes (visible stale primaries, the previously published master, any node last seen
  // writable) is fenced, seen in recovery, or unreachable for self_fence_deadline.
  bool strict_split_brain = false;
  // How long a poller may be cut off from ZooKeeper before it fences its own PostgreSQL.
  Millis self_fence_deadline{30000};
  // Probes and observations older than this (by the orchestrator's monotonic clock) are ignored.
  Millis probe_max_age{3000};
  Millis observation_max_age{10000};
  // clusters/<c>/control says paused (maintenance): the verdict is always kNone.
  bool paused = false;
};

// A probe with the orchestrator's monotonic time of when it was taken.
struct ProbeInput {
  model::Probe probe;
  MonoTime taken_at;
};

// An observation with the orchestrator's monotonic time of when its content last changed (seq
// moved). The poller's observed_at is its own wall clock and is never used for freshness.
struct ObservationInput {
  model::NodeObservation observation;
  MonoTime received_at;
};

struct DecisionInput {
  std::string cluster;
  std::string orchestrator_id;  // goes into decided_by
  // clusters/<c>/identity; "" while unknown (then the new master's identifier is adopted, see
  // Verdict::identity_to_record, unless the nodes disagree).
  std::string identity;
  std::map<std::string, ObservationInput> observations;  // by node name; a dead poller is absent
  std::map<std::string, ProbeInput> probes;              // by node name; this round's probes
  std::optional<model::MasterRecord> published;          // absent: no master znode yet
  // The master znode's content is not trusted (unreadable, missing, unbacked; the shell decides:
  // docs/decision-rules.md, "Trust"). Then `published` is the last record history backs (for the
  // ranking and the timeline floor; absent when history has none) and a publishable winner is
  // published at once (kMasterRepaired), even the published node itself.
  bool repair = false;
  // The new record's epoch is max(published epoch, epoch_floor) + 1 (the shell's epoch rule). When
  // that maximum is 2^64-1 nothing is published (kEpochExhausted): an epoch never wraps.
  std::uint64_t epoch_floor = 0;
  // An operator's one-shot acceptance of a lower timeline (clusters/<c>/control): it applies only
  // while the published record is trusted, in state ok, on exactly `timeline`.
  struct Acceptance {
    std::uint32_t timeline = 0;
    std::string by;
    std::string reason;
    std::int64_t at_ms = 0;
  };
  std::optional<Acceptance> acceptance;
  // clusters/<c>/control/switchover as read (absent: none, or unreadable, which is ignored). Decide
  // expects the change only while the record is active at wall_now (model::SwitchoverActive) and
  // in hold, stop, promote or publish (ExpectedSwitchover); otherwise the rules are the normal ones.
  std::optional<model::SwitchoverRecord> switchover;
  Policy policy;
  MonoTime now;
  WallTime wall_now;
};

// What Decide remembers about one node between rounds.
struct NodeMemory {
  std::optional<model::Lsn> last_primary_lsn;  // its LSN the last time it was seen writable
  std::optional<model::Lsn> last_standby_lsn;  // its LSN the last time it was seen in recovery
  // Seen writable and not since seen in recovery or fenced: it may still accept writes.
  bool maybe_writable = false;
  // Since when neither the probe nor the poller has reached it; absent while one does.
  std::optional<MonoTime> unreachable_since;
};

struct DecisionMemory {
  std::string candidate;  // the publishable winner being timed; "" for none
  std::uint32_t candidate_timeline = 0;
  MonoTime candidate_since{};
  std::map<std::string, NodeMemory> nodes;
  // The highest timeline this process has seen a node of the cluster report, or in force as
  // published: no writable node below it is published (kBelowClusterTimeline), also after the
  // record and history are lost. Timelines never go down.
  std::uint32_t max_timeline = 0;
};

enum class Action {
  // Change nothing: neither the record nor the voucher (paused, or nothing published and nothing
  // publishable yet).
  kNone,
  // Write `record` (compare-and-set on the version read, with a history entry), then vouch.
  kPublish,
  // The published master is verified this round: keep the record, make sure the voucher exists.
  kKeep,
  // Keep the record (consumers may keep the last route) but remove the voucher: the published
  // master is not verified (down, read-only, write check failed, stale, or being replaced).
  kWithdraw,
};
const char* ActionName(Action action);

struct StalePrimary {
  std::string node;
  ReasonCode code;  // kStalePrimary, kSameTimelineStalePrimary, kBelowPublishedTimeline or
                    // kBelowClusterTimeline
};

struct Verdict {
  Action action = Action::kNone;
  // The winner of this round (the node that is or would be master), even when not published; ""
  // when there is none.
  std::string chosen;
  std::optional<model::MasterRecord> record;  // set exactly when action == kPublish
  // Writable nodes of this cluster that must not take writes: report them and have their pollers
  // fence them. Empty while paused and on an identity conflict.
  std::vector<StalePrimary> stale_primaries;
  std::vector<Reason> reasons;                // the first one is the main reason for the action
  std::vector<model::NodeEvidence> evidence;  // one per node known this round, by name
  std::optional<model::DataLossEstimate> data_loss;  // on a publish that changes the node
  // Set when the identity was unknown and this publish adopts the new master's: the shell writes
  // it to clusters/<c>/identity (create; if it exists meanwhile, re-read and decide again).
  std::optional<std::string> identity_to_record;
  // Set when this publish uses the operator's acceptance: the shell clears it in the same multi.
  bool acceptance_used = false;

  bool HasReason(ReasonCode code, const std::string& node = "") const;
};

// One round. Updates `memory` (anti-flapping candidate, per-node LSNs and reachability).
Verdict Decide(const DecisionInput& in, DecisionMemory& memory);

// The nodes worth a write check this round, from the probes already in `in` (write checks not yet
// run): reachable, out of recovery, not foreign, not below the published timeline nor below the
// cluster's timeline (ClusterTimeline, and `memory`'s max_timeline), not the `from` of an expected
// switchover (never published meanwhile; no write-check transaction while it drains), and on the
// highest timeline among those. Sorted by name.
std::vector<std::string> WriteCheckTargets(const DecisionInput& in,
                                           const DecisionMemory* memory = nullptr);

// The highest timeline any reachable node of the cluster reports this round, standby or not, by a
// fresh probe or a fresh observation (a node whose system identifier is known and not the
// cluster's does not count). No writable node below it is published (kBelowClusterTimeline): a
// node on a later timeline means this one was left behind, even when the record and history that
// would say so are lost.
std::uint32_t ClusterTimeline(const DecisionInput& in);

// The switchover Decide expects this round (DecisionInput::switchover), or null: an active record
// (not terminal, wall_now not past its deadline) in hold, stop, promote or publish.
const model::SwitchoverRecord* ExpectedSwitchover(const DecisionInput& in);

// The history entry for a verdict (clusters/<c>/history/h-<seq>). A publish whose main reason is
// kSwitchover names the switchover (HistoryEntry::switchover).
model::HistoryEntry ToHistoryEntry(const DecisionInput& in, const Verdict& verdict);

// "code node: text; ..." for a log line.
std::string FormatReasons(const std::vector<Reason>& reasons);

}  // namespace pgherald::orchestrator
