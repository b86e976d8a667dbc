#include "pollers/observation.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/model/json_fields.h"
#include "common/model/untrusted.h"

namespace pgherald::pollers {
namespace {

using jsonf::FieldReader;
using jsonf::Need;
using nlohmann::json;

// A double-quoted SQL identifier.
std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

bool ParseInt64(std::string_view text, std::int64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

StatusOr<model::Lsn> OptionalLsn(const pg::Row& row, std::string_view column,
                                 std::optional<model::Lsn>* out) {
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> text,
                       row.Get<std::optional<std::string>>(column));
  if (!text.has_value()) return model::Lsn{0};
  auto lsn = model::ParseLsn(*text);
  if (!lsn.ok()) {
    return InvalidArgument("column \"" + std::string(column) + "\": " + lsn.status().message());
  }
  *out = *lsn;
  return *lsn;
}

// The repmgr columns come from PostgreSQL's json_agg (two levels deep by construction); their
// content (names, details) is whatever repmgr or anyone with write access to its tables stored.
constexpr std::size_t kMaxColumnBytes = 16 << 20;

// Sanitized and cut to this, a token from repmgr always passes as a token (escapes and "..."
// included).
constexpr std::size_t kEventTokenCut = kMaxEventTokenLength;
static_assert(kEventTokenCut + 6 <= jsonf::kMaxTokenLength);

// A column holding a JSON array of objects: each element goes to `each` with its path
// ("rows[i].") named in errors, at most `max_items` of them.
template <typename Each>
Status ParseRows(const std::string& text, const std::string& payload, std::size_t max_items,
                 Each each) {
  json j;
  PGH_RETURN_IF_ERROR(jsonf::ParseValue(text, payload, &j, kMaxColumnBytes));
  if (!j.is_array()) return InvalidArgument(payload + ": expected a JSON array");
  json wrapped = {{"rows", std::move(j)}};
  FieldReader f(wrapped, payload, "");
  return f.Array("rows", Need::kRequired, each, max_items);
}

Status ParseNodes(const std::string& text, std::vector<RepmgrNodeRow>* out) {
  PGH_RETURN_IF_ERROR(ParseRows(
      text, "column \"nodes_json\"", /*max_items=*/4096,
      [&](FieldReader& n) {
        RepmgrNodeRow row;
        PGH_RETURN_IF_ERROR(n.I32("node_id", 0, std::numeric_limits<int>::max(), &row.node.node_id,
                                  Need::kRequired));
        PGH_RETURN_IF_ERROR(n.OptInt("upstream_node_id", &row.node.upstream_node_id));
        PGH_RETURN_IF_ERROR(n.Bool("active", &row.node.active, Need::kOptional));
        // repmgr's own rules (up to 63 bytes); BuildObservation sanitizes what it publishes.
        PGH_RETURN_IF_ERROR(n.String("node_name", &row.node.name, Need::kOptional));
        PGH_RETURN_IF_ERROR(n.Token("type", &row.node.type, Need::kOptional));
        // repmgr 3 calls the primary "master".
        if (row.node.type == "master") row.node.type = "primary";
        PGH_RETURN_IF_ERROR(n.String("conninfo", &row.conninfo, Need::kOptional));
        out->push_back(std::move(row));
        return Status::Ok();
      }));
  std::sort(out->begin(), out->end(), [](const RepmgrNodeRow& a, const RepmgrNodeRow& b) {
    return a.node.node_id < b.node.node_id;
  });
  return Status::Ok();
}

Status ParseEvents(const std::string& text, std::vector<RepmgrEvent>* out) {
  PGH_RETURN_IF_ERROR(ParseRows(
      text, "column \"events_json\"", /*max_items=*/100000,
      [&](FieldReader& e) {
        RepmgrEvent ev;
        // repmgr's row: the event fact's fields, but an odd event name is cut, not refused.
        PGH_RETURN_IF_ERROR(e.I64("ts_us", &ev.key.ts_us, Need::kRequired));
        PGH_RETURN_IF_ERROR(e.I32("node_id", 0, std::numeric_limits<int>::max(), &ev.key.node_id,
                                  Need::kRequired));
        PGH_RETURN_IF_ERROR(e.Text("event", &ev.key.event, Need::kRequired, kEventTokenCut));
        PGH_RETURN_IF_ERROR(e.Bool("successful", &ev.successful, Need::kOptional));
        PGH_RETURN_IF_ERROR(e.Text("details", &ev.details, Need::kOptional));
        PGH_RETURN_IF_ERROR(e.Text("ts", &ev.timestamp, Need::kOptional, kEventTokenCut));
        ev.source = "table";
        out->push_back(std::move(ev));
        return Status::Ok();
      }));
  std::sort(out->begin(), out->end(),
            [](const RepmgrEvent& a, const RepmgrEvent& b) { return a.key < b.key; });
  return Status::Ok();
}

Status ParsePromotions(const std::string& text, std::map<int, std::int64_t>* out) {
  static const std::string kPayload = "column \"promotions_json\"";
  json j;
  PGH_RETURN_IF_ERROR(jsonf::ParseValue(text, kPayload, &j, kMaxColumnBytes));
  if (!j.is_object()) return InvalidArgument(kPayload + ": expected a JSON object");
  FieldReader f(j, kPayload, "");
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::int64_t id = 0;
    if (!ParseInt64(it.key(), &id) || id < 0 || id > std::numeric_limits<int>::max()) {
      return InvalidArgument(kPayload + ": expected {node_id: ts_us}, got key \"" +
                             untrusted::SanitizeForDisplay(it.key(), 40) + "\"");
    }
    std::int64_t ts_us = 0;
    PGH_RETURN_IF_ERROR(f.I64(it.key().c_str(), &ts_us, Need::kRequired));
    (*out)[static_cast<int>(id)] = ts_us;
  }
  return Status::Ok();
}

}  // namespace

std::string RepmgrLayout::Describe() const {
  switch (kind) {
    case Kind::kNone: return "none";
    case Kind::kRepmgr4: return "repmgr 4/5 (" + schema + ".nodes)";
    case Kind::kRepmgr3: return "repmgr 3 (" + schema + ".repl_nodes)";
  }
  return "none";
}

StatusOr<RepmgrLayout> DetectLayout(const std::vector<std::string>& tables,
                                    const std::string& repmgr3_schema) {
  auto has = [&](const std::string& t) {
    return std::find(tables.begin(), tables.end(), t) != tables.end();
  };
  if (has("repmgr.nodes") && has("repmgr.events")) {
    return RepmgrLayout{RepmgrLayout::Kind::kRepmgr4, "repmgr"};
  }
  std::vector<std::string> v3;
  for (const auto& t : tables) {
    const auto dot = t.find('.');
    if (dot == std::string::npos) continue;
    const std::string schema = t.substr(0, dot);
    if (schema.rfind("repmgr_", 0) == 0 && t.substr(dot + 1) == "repl_nodes" &&
        has(schema + ".repl_events") && std::find(v3.begin(), v3.end(), schema) == v3.end()) {
      v3.push_back(schema);
    }
  }
  if (!repmgr3_schema.empty()) {
    if (std::find(v3.begin(), v3.end(), repmgr3_schema) != v3.end()) {
      return RepmgrLayout{RepmgrLayout::Kind::kRepmgr3, repmgr3_schema};
    }
    if (v3.empty() && has("repmgr.nodes") == has("repmgr.events")) {
      return FailedPrecondition("repmgr 3 schema \"" + repmgr3_schema +
                                "\" (poller.repmgr3_schema) has no repl_nodes and repl_events "
                                "tables in this database");
    }
  }
  if (v3.size() == 1 && repmgr3_schema.empty()) {
    return RepmgrLayout{RepmgrLayout::Kind::kRepmgr3, v3.front()};
  }
  if (v3.size() > 1) {
    std::string names;
    for (const auto& s : v3) names += (names.empty() ? "" : ", ") + s;
    return FailedPrecondition("several repmgr 3 schemas (" + names +
                              "): set poller.repmgr3_schema to the one of this cluster");
  }
  if (has("repmgr.nodes") != has("repmgr.events")) {
    return FailedPrecondition(std::string("repmgr schema incomplete: repmgr.") +
                              (has("repmgr.nodes") ? "events" : "nodes") + " is missing");
  }
  return FailedPrecondition(
      "no repmgr schema in this database: neither repmgr.nodes/repmgr.events (repmgr 4/5) nor "
      "repmgr_<cluster>.repl_nodes/repl_events (repmgr 3); point postgres.dbname at repmgr's "
      "database");
}

StatusOr<std::int64_t> ParseRepmgrTimestamp(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("timestamp \"" + std::string(text) +
                           "\": expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]");
  };
  // YYYY-MM-DD HH:MM:SS
  if (text.size() < 19 || text[4] != '-' || text[7] != '-' || (text[10] != ' ' && text[10] != 'T') ||
      text[13] != ':' || text[16] != ':') {
    return bad();
  }
  std::int64_t y, mo, d, h, mi, s;
  if (!ParseInt64(text.substr(0, 4), &y) || !ParseInt64(text.substr(5, 2), &mo) ||
      !ParseInt64(text.substr(8, 2), &d) || !ParseInt64(text.substr(11, 2), &h) ||
      !ParseInt64(text.substr(14, 2), &mi) || !ParseInt64(text.substr(17, 2), &s) || mo < 1 ||
      mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return bad();
  }
  size_t pos = 19;
  std::int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 6) {
        micros = micros * 10 + (text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return bad();
    for (; digits < 6; ++digits) micros *= 10;
  }
  std::int64_t offset_s = 0;
  if (pos < text.size()) {
    if (text[pos] == 'Z' && pos + 1 == text.size()) {
      pos = text.size();
    } else if (text[pos] == '+' || text[pos] == '-') {
      const std::int64_t sign = text[pos] == '-' ? -1 : 1;
      std::string_view rest = text.substr(pos + 1);
      std::int64_t oh = 0, om = 0;
      if (rest.size() == 2 && ParseInt64(rest, &oh)) {
      } else if (rest.size() == 5 && rest[2] == ':' && ParseInt64(rest.substr(0, 2), &oh) &&
                 ParseInt64(rest.substr(3, 2), &om)) {
      } else if (rest.size() == 4 && ParseInt64(rest.substr(0, 2), &oh) &&
                 ParseInt64(rest.substr(2, 2), &om)) {
      } else {
        return bad();
      }
      offset_s = sign * (oh * 3600 + om * 60);
      pos = text.size();
    } else {
      return bad();
    }
  }
  const std::int64_t days =
      DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - offset_s;
  return secs * 1'000'000 + micros;
}

std::optional<std::int64_t> EventCursor::QueryFromUs() const {
  if (!high_) return std::nullopt;
  return high_->ts_us - lookback_us_;
}

std::vector<RepmgrEvent> EventCursor::Accept(std::vector<RepmgrEvent> rows) {
  std::sort(rows.begin(), rows.end(),
            [](const RepmgrEvent& a, const RepmgrEvent& b) { return a.key < b.key; });
  std::vector<RepmgrEvent> fresh;
  for (auto& row : rows) {
    if (seen_.count(row.key) > 0) continue;
    if (!fresh.empty() && fresh.back().key == row.key) continue;  // duplicate row in one batch
    seen_.insert(row.key);
    if (!high_ || *high_ < row.key) high_ = row.key;
    fresh.push_back(std::move(row));
  }
  if (high_) {
    const std::int64_t bound = high_->ts_us - lookback_us_;
    for (auto it = seen_.begin(); it != seen_.end() && it->ts_us <= bound;) it = seen_.erase(it);
  }
  return fresh;
}

void EventCursor::Reset() {
  high_.reset();
  seen_.clear();
}

std::string BuildTickSql(const RepmgrLayout& layout, std::optional<std::int64_t> from_us,
                         const TickSqlOptions& options) {
  std::string sql =
      "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
      " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"
      " ELSE pg_catalog.pg_current_wal_lsn()::text END AS current_lsn,"
      " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"
      " ELSE substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8) END"
      " AS walfile_tli,"
      " pg_catalog.pg_last_wal_receive_lsn()::text AS receive_lsn,"
      " pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn,"
      " (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS system_identifier,"
      " w.received_tli, w.sender_host, w.sender_port,"
      " CASE WHEN pg_catalog.pg_is_in_recovery() THEN"
      " (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) END AS checkpoint_tli,"
      " (SELECT string_agg(n.nspname || '.' || c.relname, ',' ORDER BY n.nspname, c.relname)"
      " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
      " WHERE c.relkind IN ('r', 'p', 'v') AND ((n.nspname = 'repmgr' AND c.relname IN"
      " ('nodes', 'events')) OR (n.nspname LIKE 'repmgr\\_%' AND c.relname IN"
      " ('repl_nodes', 'repl_events')))) AS repmgr_tables";
  // When this node's current timeline began: PostgreSQL writes <TLI>.history when a promotion
  // creates the timeline (none on timeline 1: NULL).
  const std::string history =
      "substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8) || '.history'";
  std::string started;
  if (options.timeline_start == TimelineStart::kStatFile) {
    started = "(pg_catalog.pg_stat_file('pg_wal/' || " + history + ", true)).modification";
  } else if (options.timeline_start == TimelineStart::kLsWaldir) {
    started = "(SELECT modification FROM pg_catalog.pg_ls_waldir() WHERE name = " + history + ")";
  }
  if (!started.empty()) {
    sql += ", CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN (extract(epoch FROM " + started +
           ") * 1000000)::bigint END AS timeline_started_us";
  }
  if (layout.kind != RepmgrLayout::Kind::kNone) {
    const bool v3 = layout.kind == RepmgrLayout::Kind::kRepmgr3;
    const std::string schema = QuoteIdent(layout.schema);
    const std::string nodes = schema + (v3 ? ".repl_nodes" : ".nodes");
    const std::string events = schema + (v3 ? ".repl_events" : ".events");
    const std::string ts_us = "(extract(epoch FROM event_timestamp) * 1000000)::bigint";
    sql += ", (SELECT json_agg(json_build_object('node_id', " + std::string(v3 ? "id" : "node_id") +
           ", 'upstream_node_id', upstream_node_id, 'active', active, 'node_name', " +
           (v3 ? "name" : "node_name") + ", 'type', type, 'conninfo', conninfo)) FROM " + nodes +
           ") AS nodes_json";
    std::string window;
    if (from_us) {
      window = " WHERE " + ts_us + " > " + std::to_string(*from_us) +
               " ORDER BY 1, 2, 3 LIMIT " + std::to_string(options.max_events);
    } else {
      window = " ORDER BY 1 DESC, 2 DESC, 3 DESC LIMIT " + std::to_string(options.initial_events);
    }
    sql += ", (SELECT json_agg(json_build_object('ts_us', e.ts_us, 'node_id', e.node_id,"
           " 'event', e.event, 'successful', e.successful, 'details', e.details, 'ts', e.ts))"
           " FROM (SELECT " +
           ts_us + " AS ts_us, node_id, event, successful, details, event_timestamp::text AS ts"
           " FROM " + events + window + ") e) AS events_json";
    sql += ", (SELECT json_object_agg(p.node_id, p.ts_us) FROM (SELECT node_id, max(" + ts_us +
           ") AS ts_us FROM " + events +
           " WHERE event IN ('standby_promote', 'repmgrd_failover_promote') AND successful"
           " GROUP BY node_id) p) AS promotions_json";
    if (!v3 && options.repmgrd_function) sql += ", repmgr.repmgrd_is_running() AS repmgrd_running";
  }
  sql += " FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver w ON true";
  return sql;
}

const char* TimelineStartName(TimelineStart source) {
  switch (source) {
    case TimelineStart::kStatFile:
      return "pg_stat_file";
    case TimelineStart::kLsWaldir:
      return "pg_ls_waldir";
    case TimelineStart::kNone:
      break;
  }
  return "none";
}

std::string TimelineStartProbeSql() {
  return "SELECT pg_catalog.has_function_privilege('pg_catalog.pg_stat_file(text, boolean)',"
         " 'EXECUTE') AS stat_file,"
         " pg_catalog.has_function_privilege('pg_catalog.pg_ls_waldir()', 'EXECUTE') AS ls_waldir";
}

StatusOr<TimelineStart> ParseTimelineStartProbe(const pg::PgResult& result) {
  if (result.num_rows() != 1) {
    return InvalidArgument("privilege probe: expected one row, got " +
                           std::to_string(result.num_rows()));
  }
  PGH_ASSIGN_OR_RETURN(const bool stat_file, result.row(0).GetBool("stat_file"));
  if (stat_file) return TimelineStart::kStatFile;
  PGH_ASSIGN_OR_RETURN(const bool ls_waldir, result.row(0).GetBool("ls_waldir"));
  return ls_waldir ? TimelineStart::kLsWaldir : TimelineStart::kNone;
}

StatusOr<TickResult> ParseTickResult(const pg::PgResult& result) {
  if (result.num_rows() != 1) {
    return InvalidArgument("tick: expected one row, got " + std::to_string(result.num_rows()));
  }
  const pg::Row row = result.row(0);
  TickResult t;
  PGH_ASSIGN_OR_RETURN(t.in_recovery, row.GetBool("in_recovery"));
  for (auto [column, out] : {std::pair{"current_lsn", &t.current_lsn},
                             std::pair{"receive_lsn", &t.receive_lsn},
                             std::pair{"replay_lsn", &t.replay_lsn}}) {
    PGH_RETURN_IF_ERROR(OptionalLsn(row, column, out).status());
  }
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> tli_hex,
                       row.Get<std::optional<std::string>>("walfile_tli"));
  t.walfile_tli_hex = tli_hex.value_or("");
  PGH_ASSIGN_OR_RETURN(t.received_tli, row.Get<std::optional<std::int64_t>>("received_tli"));
  PGH_ASSIGN_OR_RETURN(t.checkpoint_tli, row.Get<std::optional<std::int64_t>>("checkpoint_tli"));
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> sysid,
                       row.Get<std::optional<std::string>>("system_identifier"));
  t.system_identifier = sysid.value_or("");
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> sender_host,
                       row.Get<std::optional<std::string>>("sender_host"));
  t.sender_host = sender_host.value_or("");
  PGH_ASSIGN_OR_RETURN(const std::optional<std::int32_t> sender_port,
                       row.Get<std::optional<std::int32_t>>("sender_port"));
  t.sender_port = sender_port.value_or(0);
  if (result.ColumnIndex("timeline_started_us") >= 0) {
    PGH_ASSIGN_OR_RETURN(t.timeline_started_us,
                         row.Get<std::optional<std::int64_t>>("timeline_started_us"));
  }
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> tables,
                       row.Get<std::optional<std::string>>("repmgr_tables"));
  if (tables.has_value()) {
    std::string_view rest = *tables;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      t.repmgr_tables.emplace_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (result.ColumnIndex("nodes_json") >= 0) {
    t.repmgr_columns = true;
    PGH_ASSIGN_OR_RETURN(const std::optional<std::string> nodes,
                         row.Get<std::optional<std::string>>("nodes_json"));
    if (nodes.has_value()) PGH_RETURN_IF_ERROR(ParseNodes(*nodes, &t.nodes));
    PGH_ASSIGN_OR_RETURN(const std::optional<std::string> events,
                         row.Get<std::optional<std::string>>("events_json"));
    if (events.has_value()) PGH_RETURN_IF_ERROR(ParseEvents(*events, &t.events));
    PGH_ASSIGN_OR_RETURN(const std::optional<std::string> promotions,
                         row.Get<std::optional<std::string>>("promotions_json"));
    if (promotions.has_value()) PGH_RETURN_IF_ERROR(ParsePromotions(*promotions, &t.promoted_us));
    if (result.ColumnIndex("repmgrd_running") >= 0) {
      PGH_ASSIGN_OR_RETURN(t.repmgrd_running, row.Get<std::optional<bool>>("repmgrd_running"));
    }
  }
  return t;
}

model::NodeObservation BuildObservation(const NodeIdentity& identity, const TickResult& tick,
                                        const std::string& layout_error) {
  model::NodeObservation o;
  o.node = identity.node;
  o.host = identity.host;
  o.port = identity.port;
  o.poller_version = identity.version;
  o.reachable = true;
  o.in_recovery = tick.in_recovery;
  o.system_identifier = tick.system_identifier;
  std::vector<std::string> errors;
  if (!layout_error.empty()) errors.push_back(layout_error);

  if (!tick.in_recovery) {
    o.current_lsn = tick.current_lsn;
    std::uint32_t tli = 0;
    const std::string& hex = tick.walfile_tli_hex;
    auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), tli, 16);
    if (hex.size() == 8 && ec == std::errc() && ptr == hex.data() + hex.size()) {
      o.timeline = tli;
    } else {
      errors.push_back("cannot read the timeline from WAL file name prefix \"" + hex + "\"");
    }
  } else {
    o.receive_lsn = tick.receive_lsn;
    o.replay_lsn = tick.replay_lsn;
    o.sender_host = tick.sender_host;
    o.sender_port = tick.sender_port;
    // received_tli is live; the checkpoint's lags a promotion upstream, but it is all there is
    // while the standby streams from nobody.
    if (tick.received_tli && *tick.received_tli > 0) {
      o.timeline = static_cast<std::uint32_t>(*tick.received_tli);
    } else if (tick.checkpoint_tli && *tick.checkpoint_tli > 0) {
      o.timeline = static_cast<std::uint32_t>(*tick.checkpoint_tli);
    }
  }

  // promoted_at: the promotion that produced the node's CURRENT timeline (docs/poller.md,
  // "promoted_at"). A standby was not promoted into its timeline, and a primary on timeline 1 was
  // never promoted: none. A primary's timeline began when PostgreSQL wrote its <TLI>.history
  // (the file's mtime, whole seconds). Only when that is unknown (no function the role may call,
  // no file) does the latest successful repmgr promotion event of the node stand in.
  bool timeline_start_known = true;
  if (!tick.in_recovery && o.timeline > 1 && tick.timeline_started_us &&
      *tick.timeline_started_us > 0) {
    o.promoted_at_ms = *tick.timeline_started_us / 1000;
  } else if (!tick.in_recovery && o.timeline > 1) {
    timeline_start_known = false;
  }

  // repmgr's names and types are repmgr's: publish them as short printable tokens.
  for (const auto& row : tick.nodes) {
    model::RepmgrNode n = row.node;
    if (!untrusted::IsPrintableText(n.name, jsonf::kMaxTokenLength)) {
      n.name = untrusted::SanitizeForDisplay(n.name, kEventTokenCut);
    }
    if (!untrusted::IsPrintableText(n.type, jsonf::kMaxTokenLength)) {
      n.type = untrusted::SanitizeForDisplay(n.type, kEventTokenCut);
    }
    o.repmgr_nodes.push_back(std::move(n));
  }
  o.repmgrd_running = tick.repmgrd_running.value_or(false);

  if (tick.repmgr_columns) {
    const RepmgrNodeRow* self = nullptr;
    for (const auto& row : tick.nodes) {
      if (identity.repmgr_node_id ? row.node.node_id == *identity.repmgr_node_id
                                  : row.node.name == identity.node) {
        self = &row;
      }
    }
    if (self != nullptr) {
      o.node_id = self->node.node_id;
      if (!timeline_start_known) {
        auto promoted = tick.promoted_us.find(self->node.node_id);
        if (promoted != tick.promoted_us.end()) o.promoted_at_ms = promoted->second / 1000;
      }
    } else if (identity.repmgr_node_id) {
      errors.push_back("repmgr node_id " + std::to_string(*identity.repmgr_node_id) +
                       " (poller.repmgr_node_id) is not in repmgr's nodes table");
    } else {
      errors.push_back("node \"" + identity.node +
                       "\" is not in repmgr's nodes table by name: set poller.repmgr_node_id");
    }
    // Who the standby really streams from: the node whose conninfo names the sender.
    if (tick.in_recovery && !tick.sender_host.empty()) {
      for (const auto& row : tick.nodes) {
        auto params = pg::ParseConninfo(row.conninfo);
        if (params.ok() && params->host == tick.sender_host && params->port == tick.sender_port) {
          if (untrusted::IsValidName(row.node.name)) {
            o.upstream_node = row.node.name;
          } else {
            errors.push_back(
                "upstream node \"" + untrusted::SanitizeForDisplay(row.node.name, 64) +
                "\" (repmgr node_name) is not a valid pgherald node name: " + untrusted::kNameRule);
          }
          break;
        }
      }
    }
  }
  for (const auto& e : errors) o.error += (o.error.empty() ? "" : "; ") + e;
  o.error = untrusted::SanitizeForDisplay(o.error);
  if (!untrusted::IsPrintableText(o.sender_host, untrusted::kMaxHostLength)) {
    o.sender_host = untrusted::SanitizeForDisplay(o.sender_host, untrusted::kMaxHostLength - 16);
  }
  return o;
}

model::NodeObservation BuildUnreachable(const NodeIdentity& identity, const std::string& error,
                                        const model::NodeObservation* last) {
  model::NodeObservation o;
  o.node = identity.node;
  o.host = identity.host;
  o.port = identity.port;
  o.poller_version = identity.version;
  o.reachable = false;
  o.error = untrusted::SanitizeForDisplay(error);
  if (last != nullptr) {
    o.system_identifier = last->system_identifier;
    o.node_id = last->node_id;
    o.promoted_at_ms = last->promoted_at_ms;
    o.fencing = last->fencing;
  }
  return o;
}

bool ObservationChanged(const model::NodeObservation& a, const model::NodeObservation& b) {
  model::NodeObservation x = a;
  model::NodeObservation y = b;
  x.seq = y.seq = 0;
  x.observed_at_ms = y.observed_at_ms = 0;
  return !(x == y);
}

}  // namespace pgherald::pollers
