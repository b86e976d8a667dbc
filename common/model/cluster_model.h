// The payloads of the ZooKeeper contract (docs/zookeeper-contract.md, fields and examples in
// docs/decision-rules.md). Plain value types: no I/O, no clocks, no ZooKeeper.
//
// Codec contract, the same for every payload:
//   - ToJson() writes compact JSON that always carries "format": 1 (kFormat); free text (error,
//     write_error, reasons[].text) is written sanitized and cut as FromJson would read it. It never
//     throws:
//     strings that are not valid UTF-8 (a PostgreSQL error message can be anything) are written
//     with U+FFFD in place of the bad bytes.
//   - FromJson() never throws and never recurses into the input beyond the depth limit: payloads
//     are untrusted (docs/zookeeper-contract.md, "Validation"). It returns kInvalidArgument for
//     text over untrusted::kMaxPayloadBytes or nested deeper than untrusted::kMaxJsonDepth (checked
//     on the raw text before parsing), for text that is not JSON, for a "format" other than 1, for
//     a missing required field and for a field of the wrong type or out of range (integers are
//     range-checked, never narrowed); names must pass untrusted::IsValidName, hosts
//     untrusted::IsValidHost, codes and versions must be short printable tokens; free text (error,
//     write_error, reasons[].text) is sanitized (untrusted::SanitizeForDisplay) and cut to
//     untrusted::kMaxTextLength instead of refused. The message names the payload, the field (with
//     its path inside arrays, e.g. "repmgr_nodes[1].node_id") and what was expected, and shows
//     the bad value only as its type and a short sanitized preview. Unknown fields are ignored so
//     that a newer writer can add fields without breaking older readers; a change that would
//     mislead an older reader bumps the format number instead.
//   - Equality operators (for tests) exist in C++20 only: the header stays C++17 so that the
//     embeddable client library can parse the master record.
//   - Every payload has exactly one codec, here or in common/model/voucher.h (the voucher's data), all
//     built on common/model/json_fields.h (FieldReader to read, jsonf::Dump to write); the paths they
//     live at are in common/model/zk_paths.h. Together these files are the contract module.
//   - LSNs travel as PostgreSQL's text "X/Y" (hex), system identifiers as decimal strings: both are
//     uint64 values beyond the 2^53 that many JSON readers hold exactly.
#pragma once

#if __cplusplus >= 202002L
#include <compare>
#endif
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/clock.h"
#include "common/base/status.h"

namespace pgherald::model {

// The payload format number every payload carries and every reader requires.
inline constexpr int kFormat = 1;

// A WAL position (pg_lsn). 0 is "0/0", used only where the field says "unknown".
using Lsn = std::uint64_t;

// Parses PostgreSQL's "X/Y" (1 to 8 hex digits each side, either case). Anything else, including
// surrounding spaces, is kInvalidArgument.
StatusOr<Lsn> ParseLsn(std::string_view text);
// The inverse of ParseLsn, in PostgreSQL's spelling: upper-case hex, no leading zeros
// ("16/B374D848").
std::string FormatLsn(Lsn lsn);

// Wall-clock timestamps travel as milliseconds since the Unix epoch.
std::int64_t ToWallMillis(WallTime t);
WallTime FromWallMillis(std::int64_t ms);

// Where a node's poller stands in fencing its own PostgreSQL (it fences when the orchestrator
// reports the node as a stale primary, or when it loses ZooKeeper past the self-fence deadline).
enum class FencingState {
  kNone,     // "none": not fenced, nothing asked
  kFencing,  // "fencing": the fence action is running
  kFenced,   // "fenced": the node can no longer accept writes (stopped, or made read-only)
  kFailed,   // "failed": the fence action failed; the node may still accept writes
};
const char* FencingStateName(FencingState state);
std::optional<FencingState> ParseFencingState(std::string_view name);

// clusters/<c>/identity: {"format": 1, "system_identifier": "<decimal>"}, written once by the
// first orchestrator. ParseIdentity returns the system identifier (1-20 decimal digits) or
// kInvalidArgument under the codec contract above.
StatusOr<std::string> ParseIdentity(std::string_view text);
std::string IdentityToJson(const std::string& system_identifier);

// One row of repmgr.nodes as seen from a node: repmgr's opinion, which is evidence, not proof.
struct RepmgrNode {
  int node_id = 0;
  std::string name;
  std::string type;  // "primary", "standby", "witness" (as repmgr spells it)
  bool active = false;
  std::optional<int> upstream_node_id;  // absent for a primary

#if __cplusplus >= 202002L
  bool operator==(const RepmgrNode&) const = default;
#endif
};

// ---- Switchover (docs/switchover.md) ----
// A planned switchover, coordinated by `pgherald switchover` through one record at
// clusters/<c>/control/switchover (SwitchoverRecord, written only by the operator's command) and
// carried out by the pollers on their own nodes, each of which acknowledges the step it ran in its
// observation (NodeObservation::switchover). The owning orchestrator reads the record and expects
// the change (SwitchoverExpects). The phases, in order, and who acts in each:
enum class SwitchoverPhase {
  kPrepare,   // `to`'s poller: `repmgr service pause` (no repmgrd failover while the primary stops)
  kHold,      // the owner: withdraws its vouchers of `from` (consumers hold: pgbouncer PAUSE)
  kStop,      // `from`'s poller: waits until no client transaction runs, then
              // `repmgr node service --action=stop --checkpoint`; acks the shutdown checkpoint LSN
  kPromote,   // `to`'s poller: waits until it has received stop_lsn, `repmgr standby promote`
  kPublish,   // the owner: verifies and publishes `to` (it publishes nobody else meanwhile)
  kRejoin,    // `from`'s poller: `repmgr node rejoin`; each sibling's: `repmgr standby follow`
  kUnpause,   // `to`'s poller: `repmgr service unpause`
  kDone,      // terminal: `to` is the published master
  kRollback,  // `from`'s poller: `repmgr node service --action=start`; the owner may vouch `from`
  kAborted,   // terminal: ended with `from` still (or again) the primary
  kFailed,    // terminal: stopped with a message (error) for an operator
};
const char* SwitchoverPhaseName(SwitchoverPhase phase);  // "prepare", "hold", ... "failed"
std::optional<SwitchoverPhase> ParseSwitchoverPhase(std::string_view name);
bool IsTerminal(SwitchoverPhase phase);  // done, aborted, failed

enum class SwitchoverStepState { kRunning, kDone, kFailed };
const char* SwitchoverStepStateName(SwitchoverStepState state);  // "running", "done", "failed"
std::optional<SwitchoverStepState> ParseSwitchoverStepState(std::string_view name);

// A poller's acknowledgement of the step it runs (or ran last) for switchover `id`, published in
// its observation as "switchover":{"id","phase","state","at"[,"lsn","error"]}.
struct SwitchoverAck {
  std::string id;  // the record's id (a token)
  SwitchoverPhase phase = SwitchoverPhase::kPrepare;
  SwitchoverStepState state = SwitchoverStepState::kRunning;
  std::optional<Lsn> lsn;  // stop: the shutdown checkpoint LSN; promote: the LSN it had received
  std::string error;       // failed: why (free text, sanitized and cut)
  std::int64_t at_ms = 0;  // the poller's wall clock when the state was reached

#if __cplusplus >= 202002L
  bool operator==(const SwitchoverAck&) const = default;
#endif
};

// What a node's poller publishes at clusters/<c>/nodes/<node> (ephemeral: it vanishes with the
// poller's session). Required fields: format, node, host, port, reachable, in_recovery, timeline,
// system_identifier, seq, observed_at. Everything else may be absent and then has the default
// below.
struct NodeObservation {
  std::string node;                // pgherald's node name (the znode name)
  int node_id = 0;                 // repmgr's node_id; 0 while repmgr's tables cannot be read
  std::string host;                // how clients reach this PostgreSQL
  int port = 0;                    // 1..65535
  bool reachable = false;          // the poller could query its PostgreSQL this tick
  std::string error;               // why not, or a partial failure ("repmgr schema missing")
  bool in_recovery = false;        // pg_is_in_recovery(); meaningful only when reachable
  std::uint32_t timeline = 0;      // the live timeline (see STACK-NOTES); 0 when unknown
  std::optional<Lsn> current_lsn;  // pg_current_wal_lsn(), primaries only
  std::optional<Lsn> receive_lsn;  // pg_last_wal_receive_lsn(), standbys only
  std::optional<Lsn> replay_lsn;   // pg_last_wal_replay_lsn(), standbys only
  std::string system_identifier;   // decimal; "" when unknown
  std::string upstream_node;       // standbys: the node name they stream from, "" when unknown
  std::string sender_host;         // standbys: pg_stat_wal_receiver.sender_host
  int sender_port = 0;             // standbys: pg_stat_wal_receiver.sender_port, 0 when unknown
  // Wall ms of this node's latest promotion (repmgr's standby_promote or repmgrd_failover_promote
  // event for this node), absent when it was never promoted (an original primary) or is unknown.
  std::optional<std::int64_t> promoted_at_ms;
  std::vector<RepmgrNode> repmgr_nodes;  // repmgr.nodes as this node sees it
  bool repmgrd_running = false;
  FencingState fencing = FencingState::kNone;
  std::uint64_t seq = 0;            // grows with every write by this poller
  std::int64_t observed_at_ms = 0;  // poller's wall clock; for people, never for freshness
  std::string poller_version;
  // The switchover step this poller runs or ran last (absent: none since it started).
  std::optional<SwitchoverAck> switchover;

  // The LSN that says how far this node got: current_lsn when writable, else the larger of
  // receive_lsn and replay_lsn. Absent when none is known.
  std::optional<Lsn> Position() const;

  std::string ToJson() const;
  static StatusOr<NodeObservation> FromJson(std::string_view text);
  // FromJson for the payload of clusters/<c>/nodes/<znode_name>: also kInvalidArgument when its
  // "node" is not `znode_name` (a poller writes only its own znode; anything else is forged or
  // misfiled and must not count for another node).
  static StatusOr<NodeObservation> FromZnode(std::string_view znode_name, std::string_view text);
#if __cplusplus >= 202002L
  bool operator==(const NodeObservation&) const = default;
#endif
};

enum class MasterState {
  kNoMaster,  // "no-master": no master has been verified yet (the record's initial state)
  kOk,        // "ok": node/host/port name the master pgherald verified last
};
const char* MasterStateName(MasterState state);
std::optional<MasterState> ParseMasterState(std::string_view name);

// clusters/<c>/master: persistent, never deleted, written only by the orchestrator leader with a
// version check. Whether the master is verified *now* is told by the voucher children, not by this
// record: a record stays when verification is withdrawn, so that consumers can keep the last route.
// Required: format, state, epoch; with state "ok" also node, host, port, timeline, lsn,
// verified_at.
struct MasterRecord {
  MasterState state = MasterState::kNoMaster;
  std::string node;
  std::string host;
  int port = 0;
  std::uint32_t timeline = 0;
  Lsn lsn = 0;              // the master's LSN when it was verified for this record
  std::uint64_t epoch = 0;  // +1 with every change of the record; 0 only for the initial record
  std::int64_t verified_at_ms = 0;  // wall ms of the write check that verified it
  std::string decided_by;           // orchestrator id
  std::string reason;               // the main reason code of the decision that wrote it

  std::string ToJson() const;
  static StatusOr<MasterRecord> FromJson(std::string_view text);
#if __cplusplus >= 202002L
  bool operator==(const MasterRecord&) const = default;
#endif
};

// The orchestrator's write check on a node: a short transaction that updates a heartbeat row.
enum class WriteCheck {
  kNotRun,  // "not-run": not attempted this round (a standby, or the probe failed first)
  kPassed,  // "passed": committed, and pg_is_in_recovery() was false in the same session
  kFailed,  // "failed": did not commit; write_error says why
};
const char* WriteCheckName(WriteCheck check);
std::optional<WriteCheck> ParseWriteCheck(std::string_view name);

// The orchestrator's own direct probe of one node. Required: format, node, reachable, taken_at;
// with reachable true also in_recovery, timeline, lsn, system_identifier, write_check.
struct Probe {
  std::string node;
  std::string host;
  int port = 0;
  bool reachable = false;
  std::string error;  // why unreachable, or what else went wrong
  bool in_recovery = false;
  std::uint32_t timeline = 0;
  Lsn lsn = 0;  // current LSN of a primary; last replayed/received of a standby
  std::string system_identifier;
  WriteCheck write_check = WriteCheck::kNotRun;
  std::string write_error;
  std::int64_t latency_us = 0;   // the probe's round trip (write check included)
  std::int64_t taken_at_ms = 0;  // wall ms

  std::string ToJson() const;
  static StatusOr<Probe> FromJson(std::string_view text);
#if __cplusplus >= 202002L
  bool operator==(const Probe&) const = default;
#endif
};

// A machine-readable reason code (stable: alerting keys on it), the node it concerns ("" for the
// cluster) and a sentence for people.
struct Reason {
  std::string code;
  std::string node;
  std::string text;

#if __cplusplus >= 202002L
  bool operator==(const Reason&) const = default;
#endif
};

// What the decision function knew about one node when it decided.
struct NodeEvidence {
  std::string node;
  bool observed = false;  // a fresh poller observation was used
  bool probed = false;    // a fresh orchestrator probe was used
  bool reachable = false;
  bool writable = false;  // reachable and out of recovery (probe first, else observation)
  std::uint32_t timeline = 0;
  std::optional<Lsn> lsn;
  std::string system_identifier;
  WriteCheck write_check = WriteCheck::kNotRun;
  std::optional<std::int64_t> promoted_at_ms;
  int followers = 0;  // standbys whose observation names this node as upstream
  FencingState fencing = FencingState::kNone;
  // "master" (published or kept), "candidate" (the winner, not published this round),
  // "stale-primary", "contender" (writable, in an undecided tie), "standby", "foreign", "down".
  std::string role;
  std::vector<std::string> notes;  // reason codes concerning this node

#if __cplusplus >= 202002L
  bool operator==(const NodeEvidence&) const = default;
#endif
};

// The estimated data loss of a failover: what the old master had written (its last LSN pgherald
// saw) against where the new master stood when it took over. gap_bytes = max(0, old - new).
struct DataLossEstimate {
  std::string old_master;
  Lsn old_master_last_lsn = 0;
  std::string new_master;
  Lsn new_master_lsn = 0;
  std::uint64_t gap_bytes = 0;

#if __cplusplus >= 202002L
  bool operator==(const DataLossEstimate&) const = default;
#endif
};

// clusters/<c>/history/h-<seq>: one decision with its evidence. Required: format, cluster, action,
// epoch, decided_at, reasons.
// The switchover a history entry is about (HistoryEntry::switchover): an owner's entry per phase
// change it saw (action "switchover"), and its publish of `to` (reason "switchover").
//   "switchover":{"id":tok,"phase":tok,"from":name,"to":name[,"error":text]}
// The phase is a token, not checked against the phases known to this build (a newer writer's
// phase still reads).
struct HistorySwitchover {
  std::string id;
  std::string phase;
  std::string from;
  std::string to;
  std::string error;  // aborted/failed: the record's error (sanitized, cut)

#if __cplusplus >= 202002L
  bool operator==(const HistorySwitchover&) const = default;
#endif
};

struct HistoryEntry {
  std::string cluster;
  std::string action;       // the verdict's action name: "publish", "keep", "withdraw", "none",
                            // or "switchover" (a switchover's phase change; see `switchover`)
  std::string chosen;       // the winner node, "" when none
  std::uint64_t epoch = 0;  // the master record's epoch after this decision
  std::int64_t decided_at_ms = 0;
  std::string decided_by;
  std::optional<MasterRecord> previous;  // the record before (absent: there was none)
  std::optional<MasterRecord> master;    // the record written (publish only)
  std::vector<Reason> reasons;
  std::vector<std::string> stale_primaries;
  std::vector<NodeEvidence> evidence;
  std::optional<DataLossEstimate> data_loss;
  // Optional (absent in entries written before switchovers; readers that predate it ignore it).
  std::optional<HistorySwitchover> switchover;

  std::string ToJson() const;
  static StatusOr<HistoryEntry> FromJson(std::string_view text);
#if __cplusplus >= 202002L
  bool operator==(const HistoryEntry&) const = default;
#endif
};

// clusters/<c>/control: operators' pause and one-shot acceptance, written by `pgherald pause`,
// `pgherald accept-timeline` and the HTTP API; read by the orchestrator. An absent znode is the
// default (not paused).
//   {"format":1,"paused":bool[,"reason":str,"changed_by":str,"changed_at":ms,
//    "accept_below_timeline":u32,"accept_by":str,"accept_reason":str,"accept_at":ms]}
// Free text (reason, changed_by, accept_by, accept_reason) is sanitized and cut to
// kMaxControlTextLength, never refused.
inline constexpr std::size_t kMaxControlTextLength = 1024;
struct ControlState {
  bool paused = false;
  // Optional, for people (written by `pgherald pause` and the HTTP API; "" / 0 when absent).
  std::string reason;
  std::string changed_by;
  std::int64_t changed_at_ms = 0;
  // A one-shot operator acceptance (`pgherald accept-timeline`): the published master's timeline
  // is `accept_below_timeline` (> 0) and the operator accepts publishing a verified candidate on a
  // lower timeline. 0: none. The leader clears it in the publish multi that uses it.
  std::uint32_t accept_below_timeline = 0;
  std::string accept_by = {};  // (initializers: aggregate users may list only the fields before)
  std::string accept_reason = {};
  std::int64_t accept_at_ms = 0;
  // The znode's version when read (-1: absent or not read): the compare-and-set of a rewrite.
  // Not part of the payload.
  std::int32_t version = -1;
};
StatusOr<ControlState> ParseControl(std::string_view text);
std::string ControlToJson(const ControlState& control);


// clusters/<c>/control/switchover: one switchover, written only by `pgherald switchover` (the
// operators' identity; the compare-and-set on `version`), read by the owner and the pollers.
//   {"format":1,"id":tok,"from":name,"to":name,"siblings":[name...],"phase":tok,
//    "base_epoch":u64,"max_hold_ms":i64,"started_at":ms,"phase_at":ms,"deadline_at":ms
//    [,"stop_lsn":"X/Y","requested_by":text,"error":text]}
// Nobody acts on a record whose phase is terminal, or whose deadline_at (the coordinator's wall
// clock) has passed (SwitchoverActive).
struct SwitchoverRecord {
  std::string id;                     // a token, unique per switchover ("sw-<ms>-<hex>")
  std::string from;                   // the primary being replaced (a node name)
  std::string to;                     // the standby being promoted (a node name, != from)
  std::vector<std::string> siblings;  // the other standbys, which follow `to`
  SwitchoverPhase phase = SwitchoverPhase::kPrepare;
  std::uint64_t base_epoch = 0;       // the master record's epoch when it began
  std::int64_t max_hold_ms = 0;       // the longest consumers may be held (hold -> publish)
  std::int64_t started_at_ms = 0;
  std::int64_t phase_at_ms = 0;       // when `phase` began
  std::int64_t deadline_at_ms = 0;    // after this, the record is dead (nobody acts on it)
  std::optional<Lsn> stop_lsn;        // from `from`'s stop ack
  std::string requested_by;           // for people (sanitized, cut)
  std::string error;                  // failed/aborted: why (sanitized, cut)
  // The znode's version when read (-1: not read). Not part of the payload.
  std::int32_t version = -1;

  std::string ToJson() const;
  // Also kInvalidArgument when from == to, or from/to appears among the siblings.
  static StatusOr<SwitchoverRecord> FromJson(std::string_view text);
};
// The record is in force: not terminal and `now_ms` (wall) not past its deadline.
bool SwitchoverActive(const SwitchoverRecord& record, std::int64_t now_ms);

// The position of one repmgr event. repmgr.events has no key; (event_timestamp, node_id, event)
// is the closest thing. ts_us is event_timestamp in microseconds since the Unix epoch (exact: the
// column has microsecond precision).
struct EventKey {
  std::int64_t ts_us = 0;
  int node_id = 0;
  std::string event;

#if __cplusplus >= 202002L
  auto operator<=>(const EventKey&) const = default;
  bool operator==(const EventKey&) const = default;
#endif
};

// One repmgr event as a fact at clusters/<c>/events/<ZnodeName()>, published by pollers:
//   {"format":1,"ts_us":...,"timestamp":"2026-11-22 03:54:13.958093+00","node_id":1,
//    "event":"standby_promote","successful":true,"details":"...","source":"table"}
// source is "table" (read from repmgr's events table) or "notify" (handed over by
// `pgherald notify`; the only way to learn of events that never reach the table).
//
// Validation: event and timestamp are printable tokens of at most 64 bytes, details free text
// (sanitized, cut to untrusted::kMaxTextLength). Read from repmgr (its table or a notify datagram)
// an odd event name or timestamp is sanitized and cut to kMaxEventTokenLength rather than
// refused, so that one row never stops the poller's tick.
inline constexpr std::size_t kMaxEventTokenLength = 48;
struct RepmgrEvent {
  EventKey key;
  bool successful = true;
  std::string timestamp;  // as repmgr wrote it (also %t of event_notification_command)
  std::string details;
  std::string source = "table";

  // "e-<ts_us, 16 digits>-<node_id>-<event>": sorts by time, and the same row read by several
  // pollers, or handed over by notify with the same %t, gets the same name. Characters outside
  // [A-Za-z0-9_.-] in the event name become '_'.
  std::string ZnodeName() const;
  std::string ToJson() const;
  static StatusOr<RepmgrEvent> FromJson(std::string_view text);
#if __cplusplus >= 202002L
  bool operator==(const RepmgrEvent&) const = default;
#endif
};

}  // namespace pgherald::model
