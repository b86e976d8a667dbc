// The poller's pure core: what one tick asks PostgreSQL (BuildTickSql), how the answer is read
// (ParseTickResult), how it becomes the published NodeObservation (BuildObservation), and the
// cursor over repmgr's events table (EventCursor). No I/O, no clocks: tests feed recorded rows.
//
// One statement per tick. It returns one row: recovery state, LSNs, the live timeline (a
// primary's from pg_walfile_name(pg_current_wal_lsn()), a standby's from
// pg_stat_wal_receiver.received_tli; pg_control_checkpoint() lags after a promotion and is only a
// fallback for a standby that streams from nobody), system_identifier, the WAL sender of a
// standby, which repmgr tables exist (so the layout is re-detected every tick), when a primary's
// timeline began (its <TLI>.history file's mtime, see TimelineStart), and, for the
// detected layout, repmgr's nodes, its new events after the cursor and each node's latest
// promotion, as JSON aggregates.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/pg_connection.h"
#include "common/base/status.h"

namespace pgherald::pollers {

// Where repmgr keeps its tables on this node.
struct RepmgrLayout {
  enum class Kind {
    kNone,     // neither layout: the observation carries an error, the rest is still published
    kRepmgr4,  // repmgr 4.x/5.x: repmgr.nodes, repmgr.events
    kRepmgr3,  // repmgr 3.x: repmgr_<cluster>.repl_nodes, repl_events; role "master"
  };
  Kind kind = Kind::kNone;
  std::string schema;  // "repmgr" or "repmgr_<cluster>"; empty for kNone

  // "repmgr 4/5 (repmgr.nodes)", "repmgr 3 (repmgr_x.repl_nodes)", "none".
  std::string Describe() const;
  bool operator==(const RepmgrLayout&) const = default;
};

// Picks the layout from the "schema.table" names the tick found in the catalog. repmgr 4/5 wins
// when repmgr.nodes and repmgr.events both exist. Otherwise repmgr 3 when a schema repmgr_<x> has
// both repl_nodes and repl_events: `repmgr3_schema` (config poller.repmgr3_schema) chooses among
// several, and is required when there are several. Otherwise kFailedPrecondition saying what is
// missing and how to fix it.
StatusOr<RepmgrLayout> DetectLayout(const std::vector<std::string>& tables,
                                    const std::string& repmgr3_schema = "");

// repmgr's events travel as the contract's event facts (common/model/cluster_model.h).
using model::EventKey;
using model::kMaxEventTokenLength;
using model::RepmgrEvent;

// Parses repmgr's timestamp text ("2026-11-22 03:54:13.958093+00", also "+05:30", "-08", "Z",
// without fraction, or with 'T') into microseconds since the epoch. kInvalidArgument otherwise.
StatusOr<std::int64_t> ParseRepmgrTimestamp(std::string_view text);

// Which events of repmgr.events the poller has seen. Rows may commit out of timestamp order
// (event_timestamp is the inserting transaction's start), so the cursor reads back over a
// look-back window before its high-water mark and drops the keys it has already seen there.
class EventCursor {
 public:
  explicit EventCursor(std::int64_t lookback_us = 30'000'000) : lookback_us_(lookback_us) {}

  // The lower bound (exclusive, microseconds) the next query must read from; nullopt before the
  // first batch (the query then takes the newest rows only, see BuildTickSql).
  std::optional<std::int64_t> QueryFromUs() const;
  // Keeps the rows not seen before, in key order, and remembers them. Rows at or below the
  // look-back bound that were not seen are accepted too (late commits are exactly those).
  std::vector<RepmgrEvent> Accept(std::vector<RepmgrEvent> rows);
  // Forget everything (after a failover the poller may read a table with another history).
  void Reset();
  bool started() const { return high_.has_value(); }
  std::optional<EventKey> high_water() const { return high_; }

 private:
  std::int64_t lookback_us_;
  std::optional<EventKey> high_;
  std::set<EventKey> seen_;  // keys with ts_us > high_->ts_us - lookback_us_
};

// How the tick learns when a primary's current timeline began (the mtime of pg_wal/<TLI>.history):
// PostgreSQL checks the right to call every function of a statement when it starts it (a CASE
// does not avoid that), so the poller asks once per connection which function its role may call
// (TimelineStartProbeSql) and builds the tick with that one only.
enum class TimelineStart {
  kNone,      // neither: promoted_at falls back to repmgr's events
  kStatFile,  // pg_stat_file(path, missing_ok): superusers, or GRANT EXECUTE (one stat per tick)
  kLsWaldir,  // pg_ls_waldir(): members of pg_monitor (lists pg_wal each tick)
};
const char* TimelineStartName(TimelineStart source);
// One row: stat_file, ls_waldir (booleans: the role may call the function).
std::string TimelineStartProbeSql();
StatusOr<TimelineStart> ParseTimelineStartProbe(const pg::PgResult& result);

struct TickSqlOptions {
  int initial_events = 100;  // the first tick reads only the newest N events (retention)
  int max_events = 500;      // later ticks read at most N events after the cursor
  // repmgr 4/5: ask repmgr.repmgrd_is_running(); off for an extension that lacks it.
  bool repmgrd_function = true;
  TimelineStart timeline_start = TimelineStart::kNone;
};

// The tick's one statement for `layout` (kNone: without the repmgr columns) reading events after
// `from_us` (nullopt: the newest options.initial_events).
std::string BuildTickSql(const RepmgrLayout& layout, std::optional<std::int64_t> from_us,
                         const TickSqlOptions& options = {});

// A repmgr.nodes row with the conninfo it names (kept local: a conninfo may hold a password, so it
// is never published).
struct RepmgrNodeRow {
  model::RepmgrNode node;
  std::string conninfo;
};

// The tick's answer, parsed.
struct TickResult {
  bool in_recovery = false;
  std::optional<model::Lsn> current_lsn;
  std::optional<model::Lsn> receive_lsn;
  std::optional<model::Lsn> replay_lsn;
  std::string walfile_tli_hex;  // primary: first 8 hex digits of the current WAL file name
  std::optional<std::int64_t> received_tli;
  std::optional<std::int64_t> checkpoint_tli;
  std::string system_identifier;
  std::string sender_host;
  int sender_port = 0;
  std::vector<std::string> repmgr_tables;  // "schema.table"
  bool repmgr_columns = false;  // the statement was built for a layout (nodes/events read)
  std::vector<RepmgrNodeRow> nodes;  // sorted by node_id; role "master" already "primary"
  std::vector<RepmgrEvent> events;   // in key order
  std::map<int, std::int64_t> promoted_us;  // node_id -> latest successful promotion
  // A primary's <TLI>.history mtime (microseconds): when its current timeline began. nullopt on a
  // standby, on timeline 1, without TickSqlOptions::timeline_start, or from an older statement.
  std::optional<std::int64_t> timeline_started_us;
  std::optional<bool> repmgrd_running;      // repmgr 4/5 only
};

// Reads the row of BuildTickSql's statement. kInvalidArgument naming the column on a malformed
// value (never expected from a real server; a test can feed one).
StatusOr<TickResult> ParseTickResult(const pg::PgResult& result);

// Who this poller is.
struct NodeIdentity {
  std::string node;                    // pgherald's node name (the znode name)
  std::string host;                    // advertised to clients
  int port = 0;                        // advertised to clients
  std::optional<int> repmgr_node_id;   // else: the repmgr.nodes row whose node_name == node
  std::string version;
};

// The observation of a reachable node. promoted_at_ms is the start of a primary's current
// timeline (TickResult::timeline_started_us), or, when that is unknown, the node's latest repmgr
// promotion; none for a standby or timeline 1. `layout_error` (from DetectLayout) goes into
// `error`, as does a node missing from repmgr.nodes; everything else is still filled in.
// upstream_node is the repmgr node whose conninfo host/port equals the WAL sender's (who the
// standby really streams from), never repmgr's upstream_node_id alone; "" when no sender or no
// match.
model::NodeObservation BuildObservation(const NodeIdentity& identity, const TickResult& tick,
                                        const std::string& layout_error);

// The observation of a node the poller could not query: reachable=false with `error`. Facts that
// do not change while PostgreSQL is down (system_identifier, node_id, promoted_at) are kept from
// `last` so the orchestrator still recognises the node.
model::NodeObservation BuildUnreachable(const NodeIdentity& identity, const std::string& error,
                                        const model::NodeObservation* last);

// True when the two observations differ in anything but seq and observed_at: a change is published
// at once, anything else waits for the heartbeat.
bool ObservationChanged(const model::NodeObservation& a, const model::NodeObservation& b);

}  // namespace pgherald::pollers
