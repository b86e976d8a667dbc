#include "common/model/cluster_model.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/model/json_fields.h"
#include "common/model/payload_json.h"

namespace pgherald::model {
namespace {

using jsonf::FieldReader;
using jsonf::Need;
using nlohmann::json;

// The envelope every payload shares: shape checked before parsing, an object, "format": 1.
Status ParseEnvelope(std::string_view text, const std::string& payload, json* out) {
  return jsonf::ParseObject(text, payload, out);
}

// An LSN string "X/Y" (ParseLsn).
Status LsnField(FieldReader& f, const char* key, Lsn* out, Need need) {
  const auto it = f.object().find(key);
  if (it == f.object().end() || it->is_null()) {
    return need == Need::kOptional ? Status::Ok() : f.Error(key, " is missing (required)");
  }
  const json& v = *it;
  const std::string expected = ": expected an LSN string \"X/Y\", got " + jsonf::Describe(v);
  if (!v.is_string()) return f.Error(key, expected);
  StatusOr<Lsn> lsn = ParseLsn(v.get_ref<const std::string&>());
  if (!lsn.ok()) return f.Error(key, expected);
  *out = *lsn;
  return Status::Ok();
}

Status OptLsn(FieldReader& f, const char* key, std::optional<Lsn>* out) {
  const auto it = f.object().find(key);
  if (it == f.object().end() || it->is_null()) return Status::Ok();
  Lsn lsn = 0;
  PGH_RETURN_IF_ERROR(LsnField(f, key, &lsn, Need::kRequired));
  *out = lsn;
  return Status::Ok();
}

using jsonf::Dump;

// Writers keep free text within what readers accept unchanged (sanitized, cut): what a reader
// decodes is what was meant to be written. Idempotent.
std::string FreeText(const std::string& text) {
  return untrusted::IsPrintableText(text) ? text : untrusted::SanitizeForDisplay(text);
}

void PutOptLsn(json& j, const char* key, const std::optional<Lsn>& lsn) {
  if (lsn) j[key] = FormatLsn(*lsn);
}

json SwitchoverAckJson(const SwitchoverAck& a);
Status ReadSwitchoverAck(FieldReader& a, SwitchoverAck* out);

// ---- element encoders/decoders shared by several payloads ----

json MasterRecordJson(const MasterRecord& r) {
  json j = {{"format", kFormat}, {"state", MasterStateName(r.state)}, {"epoch", r.epoch}};
  // Any field the reader accepted is written back, so FromJson(ToJson(r)) == r also for a
  // "no-master" record that names a host or port (found by tests/fuzz/fuzz_master_record).
  const bool has_master = !r.node.empty() || !r.host.empty() || r.port != 0 || r.timeline != 0 ||
                          r.lsn != 0 || r.verified_at_ms != 0;
  if (r.state == MasterState::kOk || has_master) {
    j["node"] = r.node;
    j["host"] = r.host;
    j["port"] = r.port;
    j["timeline"] = r.timeline;
    j["lsn"] = FormatLsn(r.lsn);
    j["verified_at"] = r.verified_at_ms;
  }
  j["decided_by"] = r.decided_by;
  j["reason"] = r.reason;
  return j;
}

Status DecodeMasterRecord(FieldReader& f, MasterRecord* r) {
  PGH_RETURN_IF_ERROR(
      f.Enum("state", &r->state, Need::kRequired, ParseMasterState, "\"ok\" or \"no-master\""));
  PGH_RETURN_IF_ERROR(f.U64("epoch", &r->epoch, Need::kRequired));
  const Need if_ok = r->state == MasterState::kOk ? Need::kRequired : Need::kOptional;
  PGH_RETURN_IF_ERROR(
      f.Name("node", &r->node, if_ok, /*allow_empty=*/r->state != MasterState::kOk));
  PGH_RETURN_IF_ERROR(
      f.Host("host", &r->host, if_ok, /*allow_empty=*/r->state != MasterState::kOk));
  PGH_RETURN_IF_ERROR(f.I32("port", r->state == MasterState::kOk ? 1 : 0, 65535, &r->port, if_ok));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &r->timeline, if_ok));
  PGH_RETURN_IF_ERROR(LsnField(f, "lsn", &r->lsn, if_ok));
  PGH_RETURN_IF_ERROR(f.I64("verified_at", &r->verified_at_ms, if_ok));
  PGH_RETURN_IF_ERROR(f.Name("decided_by", &r->decided_by, Need::kOptional, /*allow_empty=*/true));
  PGH_RETURN_IF_ERROR(f.Token("reason", &r->reason, Need::kOptional));
  return Status::Ok();
}

json ReasonJson(const Reason& r) {
  json j = {{"code", r.code}, {"text", FreeText(r.text)}};
  if (!r.node.empty()) j["node"] = r.node;
  return j;
}

json EvidenceJson(const NodeEvidence& e) {
  json j = {{"node", e.node},
            {"observed", e.observed},
            {"probed", e.probed},
            {"reachable", e.reachable},
            {"writable", e.writable},
            {"timeline", e.timeline},
            {"system_identifier", e.system_identifier},
            {"write_check", WriteCheckName(e.write_check)},
            {"followers", e.followers},
            {"fencing", FencingStateName(e.fencing)},
            {"role", e.role},
            {"notes", e.notes}};
  PutOptLsn(j, "lsn", e.lsn);
  if (e.promoted_at_ms) j["promoted_at"] = *e.promoted_at_ms;
  return j;
}

Status DecodeEvidence(FieldReader& f, NodeEvidence* e) {
  PGH_RETURN_IF_ERROR(f.Name("node", &e->node, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Bool("observed", &e->observed, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("probed", &e->probed, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("reachable", &e->reachable, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("writable", &e->writable, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &e->timeline, Need::kOptional));
  PGH_RETURN_IF_ERROR(OptLsn(f, "lsn", &e->lsn));
  PGH_RETURN_IF_ERROR(
      f.SystemIdentifier("system_identifier", &e->system_identifier, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Enum("write_check", &e->write_check, Need::kOptional, ParseWriteCheck,
                             "\"not-run\", \"passed\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.OptI64("promoted_at", &e->promoted_at_ms));
  PGH_RETURN_IF_ERROR(
      f.I32("followers", 0, std::numeric_limits<int>::max(), &e->followers, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Enum("fencing", &e->fencing, Need::kOptional, ParseFencingState,
                             "\"none\", \"fencing\", \"fenced\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.Token("role", &e->role, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Tokens("notes", &e->notes, Need::kOptional));
  return Status::Ok();
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

// ---- LSN and time ----

StatusOr<Lsn> ParseLsn(std::string_view text) {
  const auto slash = text.find('/');
  auto bad = [&] {
    return InvalidArgument("not an LSN (expected \"X/Y\" with 1-8 hex digits each): \"" +
                           untrusted::SanitizeForDisplay(text, 40) + "\"");
  };
  if (slash == std::string_view::npos) return bad();
  const std::string_view hi = text.substr(0, slash);
  const std::string_view lo = text.substr(slash + 1);
  for (std::string_view part : {hi, lo}) {
    if (part.empty() || part.size() > 8) return bad();
    for (char c : part) {
      if (!IsHex(c)) return bad();
    }
  }
  std::uint32_t h = 0;
  std::uint32_t l = 0;
  std::from_chars(hi.data(), hi.data() + hi.size(), h, 16);
  std::from_chars(lo.data(), lo.data() + lo.size(), l, 16);
  return (static_cast<Lsn>(h) << 32) | l;
}

std::string FormatLsn(Lsn lsn) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%" PRIX32 "/%" PRIX32, static_cast<std::uint32_t>(lsn >> 32),
                static_cast<std::uint32_t>(lsn & 0xFFFFFFFFu));
  return buf;
}

std::int64_t ToWallMillis(WallTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

WallTime FromWallMillis(std::int64_t ms) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(Millis(ms)));
}

// ---- enums ----

const char* FencingStateName(FencingState state) {
  switch (state) {
    case FencingState::kNone:
      return "none";
    case FencingState::kFencing:
      return "fencing";
    case FencingState::kFenced:
      return "fenced";
    case FencingState::kFailed:
      return "failed";
  }
  return "none";
}

std::optional<FencingState> ParseFencingState(std::string_view name) {
  if (name == "none") return FencingState::kNone;
  if (name == "fencing") return FencingState::kFencing;
  if (name == "fenced") return FencingState::kFenced;
  if (name == "failed") return FencingState::kFailed;
  return std::nullopt;
}

const char* MasterStateName(MasterState state) {
  switch (state) {
    case MasterState::kNoMaster:
      return "no-master";
    case MasterState::kOk:
      return "ok";
  }
  return "no-master";
}

std::optional<MasterState> ParseMasterState(std::string_view name) {
  if (name == "ok") return MasterState::kOk;
  if (name == "no-master") return MasterState::kNoMaster;
  return std::nullopt;
}

const char* WriteCheckName(WriteCheck check) {
  switch (check) {
    case WriteCheck::kNotRun:
      return "not-run";
    case WriteCheck::kPassed:
      return "passed";
    case WriteCheck::kFailed:
      return "failed";
  }
  return "not-run";
}

std::optional<WriteCheck> ParseWriteCheck(std::string_view name) {
  if (name == "not-run") return WriteCheck::kNotRun;
  if (name == "passed") return WriteCheck::kPassed;
  if (name == "failed") return WriteCheck::kFailed;
  return std::nullopt;
}

// ---- identity ----

StatusOr<std::string> ParseIdentity(std::string_view text) {
  static const std::string kPayload = "identity";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  std::string sysid;
  PGH_RETURN_IF_ERROR(f.SystemIdentifier("system_identifier", &sysid, Need::kRequired));
  if (sysid.empty())
    return f.Error("system_identifier", ": expected 1-20 decimal digits, got \"\"");
  return sysid;
}

std::string IdentityToJson(const std::string& system_identifier) {
  return Dump(json{{"format", kFormat}, {"system_identifier", system_identifier}});
}

// ---- NodeObservation ----

std::optional<Lsn> NodeObservation::Position() const {
  if (!in_recovery) return current_lsn;
  if (receive_lsn && replay_lsn) return std::max(*receive_lsn, *replay_lsn);
  return receive_lsn ? receive_lsn : replay_lsn;
}

std::string NodeObservation::ToJson() const {
  json j = {{"format", kFormat},
            {"node", node},
            {"node_id", node_id},
            {"host", host},
            {"port", port},
            {"reachable", reachable},
            {"in_recovery", in_recovery},
            {"timeline", timeline},
            {"system_identifier", system_identifier},
            {"repmgrd_running", repmgrd_running},
            {"fencing", FencingStateName(fencing)},
            {"seq", seq},
            {"observed_at", observed_at_ms},
            {"poller_version", poller_version}};
  if (!error.empty()) j["error"] = FreeText(error);
  PutOptLsn(j, "current_lsn", current_lsn);
  PutOptLsn(j, "receive_lsn", receive_lsn);
  PutOptLsn(j, "replay_lsn", replay_lsn);
  if (!upstream_node.empty()) j["upstream_node"] = upstream_node;
  if (!sender_host.empty()) j["sender_host"] = sender_host;
  if (sender_port != 0) j["sender_port"] = sender_port;
  if (promoted_at_ms) j["promoted_at"] = *promoted_at_ms;
  json view = json::array();
  for (const RepmgrNode& n : repmgr_nodes) {
    json row = {{"node_id", n.node_id}, {"name", n.name}, {"type", n.type}, {"active", n.active}};
    if (n.upstream_node_id) row["upstream_node_id"] = *n.upstream_node_id;
    view.push_back(std::move(row));
  }
  j["repmgr_nodes"] = std::move(view);
  if (switchover) j["switchover"] = SwitchoverAckJson(*switchover);
  return Dump(j);
}

StatusOr<NodeObservation> NodeObservation::FromJson(std::string_view text) {
  static const std::string kPayload = "NodeObservation";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  NodeObservation o;
  PGH_RETURN_IF_ERROR(f.Name("node", &o.node, Need::kRequired));
  PGH_RETURN_IF_ERROR(
      f.I32("node_id", 0, std::numeric_limits<int>::max(), &o.node_id, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Host("host", &o.host, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I32("port", 1, 65535, &o.port, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Bool("reachable", &o.reachable, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Text("error", &o.error, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("in_recovery", &o.in_recovery, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &o.timeline, Need::kRequired));
  PGH_RETURN_IF_ERROR(OptLsn(f, "current_lsn", &o.current_lsn));
  PGH_RETURN_IF_ERROR(OptLsn(f, "receive_lsn", &o.receive_lsn));
  PGH_RETURN_IF_ERROR(OptLsn(f, "replay_lsn", &o.replay_lsn));
  PGH_RETURN_IF_ERROR(
      f.SystemIdentifier("system_identifier", &o.system_identifier, Need::kRequired));
  PGH_RETURN_IF_ERROR(
      f.Name("upstream_node", &o.upstream_node, Need::kOptional, /*allow_empty=*/true));
  // pg_stat_wal_receiver.sender_host may be a unix socket directory: a printable token, not a host.
  PGH_RETURN_IF_ERROR(
      f.Token("sender_host", &o.sender_host, Need::kOptional, untrusted::kMaxHostLength));
  PGH_RETURN_IF_ERROR(f.I32("sender_port", 0, 65535, &o.sender_port, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.OptI64("promoted_at", &o.promoted_at_ms));
  PGH_RETURN_IF_ERROR(f.Array("repmgr_nodes", Need::kOptional, [&](FieldReader& row) {
    RepmgrNode n;
    PGH_RETURN_IF_ERROR(
        row.I32("node_id", 0, std::numeric_limits<int>::max(), &n.node_id, Need::kRequired));
    // repmgr's node_name (up to 63 bytes, repmgr's own rules): shown, compared, never a path.
    PGH_RETURN_IF_ERROR(row.Token("name", &n.name, Need::kRequired));
    PGH_RETURN_IF_ERROR(row.Token("type", &n.type, Need::kRequired));
    PGH_RETURN_IF_ERROR(row.Bool("active", &n.active, Need::kRequired));
    PGH_RETURN_IF_ERROR(row.OptInt("upstream_node_id", &n.upstream_node_id));
    o.repmgr_nodes.push_back(std::move(n));
    return Status::Ok();
  }));
  PGH_RETURN_IF_ERROR(f.Bool("repmgrd_running", &o.repmgrd_running, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Enum("fencing", &o.fencing, Need::kOptional, ParseFencingState,
                             "\"none\", \"fencing\", \"fenced\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.U64("seq", &o.seq, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I64("observed_at", &o.observed_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Token("poller_version", &o.poller_version, Need::kOptional));
  bool has_ack = false;
  SwitchoverAck ack;
  PGH_RETURN_IF_ERROR(f.Object("switchover", Need::kOptional, &has_ack,
                               [&](FieldReader& a) { return ReadSwitchoverAck(a, &ack); }));
  if (has_ack) o.switchover = std::move(ack);
  return o;
}

StatusOr<NodeObservation> NodeObservation::FromZnode(std::string_view znode_name,
                                                     std::string_view text) {
  StatusOr<NodeObservation> o = FromJson(text);
  if (!o.ok()) return o;
  if (o->node != znode_name) {
    return InvalidArgument("NodeObservation: field 'node': \"" + o->node +
                           "\" differs from its znode name \"" +
                           untrusted::SanitizeForDisplay(znode_name, 80) +
                           "\" (a poller publishes only under its own node name)");
  }
  return o;
}

// ---- MasterRecord ----

std::string MasterRecord::ToJson() const { return Dump(ToJsonValue(*this)); }

json ToJsonValue(const MasterRecord& record) { return MasterRecordJson(record); }

StatusOr<MasterRecord> MasterRecord::FromJson(std::string_view text) {
  static const std::string kPayload = "MasterRecord";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  MasterRecord r;
  PGH_RETURN_IF_ERROR(DecodeMasterRecord(f, &r));
  return r;
}

// ---- Probe ----

std::string Probe::ToJson() const {
  json j = {{"format", kFormat},
            {"node", node},
            {"host", host},
            {"port", port},
            {"reachable", reachable},
            {"in_recovery", in_recovery},
            {"timeline", timeline},
            {"lsn", FormatLsn(lsn)},
            {"system_identifier", system_identifier},
            {"write_check", WriteCheckName(write_check)},
            {"latency_us", latency_us},
            {"taken_at", taken_at_ms}};
  if (!error.empty()) j["error"] = FreeText(error);
  if (!write_error.empty()) j["write_error"] = FreeText(write_error);
  return Dump(j);
}

StatusOr<Probe> Probe::FromJson(std::string_view text) {
  static const std::string kPayload = "Probe";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  Probe p;
  PGH_RETURN_IF_ERROR(f.Name("node", &p.node, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Host("host", &p.host, Need::kOptional, /*allow_empty=*/true));
  PGH_RETURN_IF_ERROR(f.I32("port", 0, 65535, &p.port, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("reachable", &p.reachable, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Text("error", &p.error, Need::kOptional));
  const Need if_up = p.reachable ? Need::kRequired : Need::kOptional;
  PGH_RETURN_IF_ERROR(f.Bool("in_recovery", &p.in_recovery, if_up));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &p.timeline, if_up));
  PGH_RETURN_IF_ERROR(LsnField(f, "lsn", &p.lsn, if_up));
  PGH_RETURN_IF_ERROR(f.SystemIdentifier("system_identifier", &p.system_identifier, if_up));
  PGH_RETURN_IF_ERROR(f.Enum("write_check", &p.write_check, if_up, ParseWriteCheck,
                             "\"not-run\", \"passed\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.Text("write_error", &p.write_error, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.I64("latency_us", &p.latency_us, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.I64("taken_at", &p.taken_at_ms, Need::kRequired));
  return p;
}

// ---- HistoryEntry ----

std::string HistoryEntry::ToJson() const { return Dump(ToJsonValue(*this)); }

json ToJsonValue(const HistoryEntry& h) {
  json j = {{"format", kFormat},         {"cluster", h.cluster}, {"action", h.action},
            {"chosen", h.chosen},        {"epoch", h.epoch},     {"decided_at", h.decided_at_ms},
            {"decided_by", h.decided_by}};
  if (h.previous) j["previous"] = MasterRecordJson(*h.previous);
  if (h.master) j["master"] = MasterRecordJson(*h.master);
  json reason_list = json::array();
  for (const Reason& r : h.reasons) reason_list.push_back(ReasonJson(r));
  j["reasons"] = std::move(reason_list);
  j["stale_primaries"] = h.stale_primaries;
  json evidence_list = json::array();
  for (const NodeEvidence& e : h.evidence) evidence_list.push_back(EvidenceJson(e));
  j["evidence"] = std::move(evidence_list);
  if (h.data_loss) {
    j["data_loss"] = {{"old_master", h.data_loss->old_master},
                      {"old_master_last_lsn", FormatLsn(h.data_loss->old_master_last_lsn)},
                      {"new_master", h.data_loss->new_master},
                      {"new_master_lsn", FormatLsn(h.data_loss->new_master_lsn)},
                      {"gap_bytes", h.data_loss->gap_bytes}};
  }
  if (h.switchover) {
    const HistorySwitchover& s = *h.switchover;
    j["switchover"] = {{"id", s.id}, {"phase", s.phase}, {"from", s.from}, {"to", s.to}};
    if (!s.error.empty()) j["switchover"]["error"] = FreeText(s.error);
  }
  return j;
}

StatusOr<HistoryEntry> HistoryEntry::FromJson(std::string_view text) {
  static const std::string kPayload = "HistoryEntry";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  HistoryEntry h;
  PGH_RETURN_IF_ERROR(f.Name("cluster", &h.cluster, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Token("action", &h.action, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Name("chosen", &h.chosen, Need::kOptional, /*allow_empty=*/true));
  PGH_RETURN_IF_ERROR(f.U64("epoch", &h.epoch, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I64("decided_at", &h.decided_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Name("decided_by", &h.decided_by, Need::kOptional, /*allow_empty=*/true));
  bool present = false;
  MasterRecord previous;
  PGH_RETURN_IF_ERROR(f.Object("previous", Need::kOptional, &present,
                               [&](FieldReader& r) { return DecodeMasterRecord(r, &previous); }));
  if (present) h.previous = previous;
  MasterRecord master;
  PGH_RETURN_IF_ERROR(f.Object("master", Need::kOptional, &present,
                               [&](FieldReader& r) { return DecodeMasterRecord(r, &master); }));
  if (present) h.master = master;
  PGH_RETURN_IF_ERROR(f.Array("reasons", Need::kRequired, [&](FieldReader& r) {
    Reason reason;
    PGH_RETURN_IF_ERROR(r.Token("code", &reason.code, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.Name("node", &reason.node, Need::kOptional, /*allow_empty=*/true));
    PGH_RETURN_IF_ERROR(r.Text("text", &reason.text, Need::kOptional));
    h.reasons.push_back(std::move(reason));
    return Status::Ok();
  }));
  PGH_RETURN_IF_ERROR(f.Names("stale_primaries", &h.stale_primaries, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Array("evidence", Need::kOptional, [&](FieldReader& r) {
    NodeEvidence e;
    PGH_RETURN_IF_ERROR(DecodeEvidence(r, &e));
    h.evidence.push_back(std::move(e));
    return Status::Ok();
  }));
  DataLossEstimate loss;
  PGH_RETURN_IF_ERROR(f.Object("data_loss", Need::kOptional, &present, [&](FieldReader& r) {
    PGH_RETURN_IF_ERROR(r.Name("old_master", &loss.old_master, Need::kRequired));
    PGH_RETURN_IF_ERROR(
        LsnField(r, "old_master_last_lsn", &loss.old_master_last_lsn, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.Name("new_master", &loss.new_master, Need::kRequired));
    PGH_RETURN_IF_ERROR(LsnField(r, "new_master_lsn", &loss.new_master_lsn, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.U64("gap_bytes", &loss.gap_bytes, Need::kRequired));
    return Status::Ok();
  }));
  if (present) h.data_loss = loss;
  HistorySwitchover sw;
  PGH_RETURN_IF_ERROR(f.Object("switchover", Need::kOptional, &present, [&](FieldReader& r) {
    PGH_RETURN_IF_ERROR(r.Token("id", &sw.id, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.Token("phase", &sw.phase, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.Name("from", &sw.from, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.Name("to", &sw.to, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.Text("error", &sw.error, Need::kOptional, kMaxControlTextLength));
    return Status::Ok();
  }));
  if (present) h.switchover = sw;
  return h;
}

// ---- control ----

StatusOr<ControlState> ParseControl(std::string_view text) {
  static const std::string kPayload = "control";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  ControlState c;
  PGH_RETURN_IF_ERROR(f.Bool("paused", &c.paused, Need::kOptional));
  // For people only: sanitized and cut, never refused.
  PGH_RETURN_IF_ERROR(f.Text("reason", &c.reason, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(f.Text("changed_by", &c.changed_by, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(f.I64("changed_at", &c.changed_at_ms, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.U32("accept_below_timeline", &c.accept_below_timeline, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Text("accept_by", &c.accept_by, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(
      f.Text("accept_reason", &c.accept_reason, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(f.I64("accept_at", &c.accept_at_ms, Need::kOptional));
  return c;
}

std::string ControlToJson(const ControlState& control) {
  json j;
  j["format"] = kFormat;
  j["paused"] = control.paused;
  if (!control.reason.empty()) j["reason"] = control.reason;
  if (!control.changed_by.empty()) j["changed_by"] = control.changed_by;
  if (control.changed_at_ms != 0) j["changed_at"] = control.changed_at_ms;
  if (control.accept_below_timeline != 0) {
    j["accept_below_timeline"] = control.accept_below_timeline;
    j["accept_by"] = control.accept_by;
    j["accept_reason"] = control.accept_reason;
    j["accept_at"] = control.accept_at_ms;
  }
  return Dump(j);
}


// ---- Switchover ----

const char* SwitchoverPhaseName(SwitchoverPhase phase) {
  switch (phase) {
    case SwitchoverPhase::kPrepare: return "prepare";
    case SwitchoverPhase::kHold: return "hold";
    case SwitchoverPhase::kStop: return "stop";
    case SwitchoverPhase::kPromote: return "promote";
    case SwitchoverPhase::kPublish: return "publish";
    case SwitchoverPhase::kRejoin: return "rejoin";
    case SwitchoverPhase::kUnpause: return "unpause";
    case SwitchoverPhase::kDone: return "done";
    case SwitchoverPhase::kRollback: return "rollback";
    case SwitchoverPhase::kAborted: return "aborted";
    case SwitchoverPhase::kFailed: return "failed";
  }
  return "?";
}

std::optional<SwitchoverPhase> ParseSwitchoverPhase(std::string_view name) {
  for (SwitchoverPhase p :
       {SwitchoverPhase::kPrepare, SwitchoverPhase::kHold, SwitchoverPhase::kStop,
        SwitchoverPhase::kPromote, SwitchoverPhase::kPublish, SwitchoverPhase::kRejoin,
        SwitchoverPhase::kUnpause, SwitchoverPhase::kDone, SwitchoverPhase::kRollback,
        SwitchoverPhase::kAborted, SwitchoverPhase::kFailed}) {
    if (name == SwitchoverPhaseName(p)) return p;
  }
  return std::nullopt;
}

bool IsTerminal(SwitchoverPhase phase) {
  return phase == SwitchoverPhase::kDone || phase == SwitchoverPhase::kAborted ||
         phase == SwitchoverPhase::kFailed;
}

const char* SwitchoverStepStateName(SwitchoverStepState state) {
  switch (state) {
    case SwitchoverStepState::kRunning: return "running";
    case SwitchoverStepState::kDone: return "done";
    case SwitchoverStepState::kFailed: return "failed";
  }
  return "?";
}

std::optional<SwitchoverStepState> ParseSwitchoverStepState(std::string_view name) {
  if (name == "running") return SwitchoverStepState::kRunning;
  if (name == "done") return SwitchoverStepState::kDone;
  if (name == "failed") return SwitchoverStepState::kFailed;
  return std::nullopt;
}

namespace {

json SwitchoverAckJson(const SwitchoverAck& a) {
  json j = {{"id", a.id},
            {"phase", SwitchoverPhaseName(a.phase)},
            {"state", SwitchoverStepStateName(a.state)},
            {"at", a.at_ms}};
  PutOptLsn(j, "lsn", a.lsn);
  if (!a.error.empty()) j["error"] = FreeText(a.error);
  return j;
}

Status ReadSwitchoverAck(FieldReader& a, SwitchoverAck* out) {
  PGH_RETURN_IF_ERROR(a.Token("id", &out->id, Need::kRequired));
  PGH_RETURN_IF_ERROR(a.Enum("phase", &out->phase, Need::kRequired, ParseSwitchoverPhase,
                             "a switchover phase (\"prepare\" ... \"failed\")"));
  PGH_RETURN_IF_ERROR(a.Enum("state", &out->state, Need::kRequired, ParseSwitchoverStepState,
                             "\"running\", \"done\" or \"failed\""));
  PGH_RETURN_IF_ERROR(OptLsn(a, "lsn", &out->lsn));
  PGH_RETURN_IF_ERROR(a.Text("error", &out->error, Need::kOptional));
  PGH_RETURN_IF_ERROR(a.I64("at", &out->at_ms, Need::kRequired));
  if (out->id.empty()) return a.Error("id", ": expected a non-empty token");
  return Status::Ok();
}

}  // namespace

std::string SwitchoverRecord::ToJson() const {
  json j = {{"format", kFormat},         {"id", id},
            {"from", from},              {"to", to},
            {"siblings", siblings},      {"phase", SwitchoverPhaseName(phase)},
            {"base_epoch", base_epoch},  {"max_hold_ms", max_hold_ms},
            {"started_at", started_at_ms}, {"phase_at", phase_at_ms},
            {"deadline_at", deadline_at_ms}};
  PutOptLsn(j, "stop_lsn", stop_lsn);
  if (!requested_by.empty()) j["requested_by"] = FreeText(requested_by);
  if (!error.empty()) j["error"] = FreeText(error);
  return Dump(j);
}

StatusOr<SwitchoverRecord> SwitchoverRecord::FromJson(std::string_view text) {
  static const std::string kPayload = "switchover";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  SwitchoverRecord r;
  PGH_RETURN_IF_ERROR(f.Token("id", &r.id, Need::kRequired));
  if (r.id.empty()) return f.Error("id", ": expected a non-empty token");
  PGH_RETURN_IF_ERROR(f.Name("from", &r.from, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Name("to", &r.to, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Names("siblings", &r.siblings, Need::kOptional, 64));
  PGH_RETURN_IF_ERROR(f.Enum("phase", &r.phase, Need::kRequired, ParseSwitchoverPhase,
                             "a switchover phase (\"prepare\" ... \"failed\")"));
  PGH_RETURN_IF_ERROR(f.U64("base_epoch", &r.base_epoch, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Int("max_hold_ms", 0, 3600000, &r.max_hold_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I64("started_at", &r.started_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I64("phase_at", &r.phase_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I64("deadline_at", &r.deadline_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(OptLsn(f, "stop_lsn", &r.stop_lsn));
  PGH_RETURN_IF_ERROR(
      f.Text("requested_by", &r.requested_by, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(f.Text("error", &r.error, Need::kOptional, kMaxControlTextLength));
  if (r.from == r.to) return f.Error("to", ": expected another node than 'from'");
  for (const std::string& s : r.siblings) {
    if (s == r.from || s == r.to) {
      return f.Error("siblings", ": expected the standbys other than 'from' and 'to'");
    }
  }
  return r;
}

bool SwitchoverActive(const SwitchoverRecord& record, std::int64_t now_ms) {
  return !IsTerminal(record.phase) && now_ms <= record.deadline_at_ms;
}

// ---- RepmgrEvent ----

std::string RepmgrEvent::ZnodeName() const {
  char prefix[48];
  std::snprintf(prefix, sizeof prefix, "e-%016" PRId64 "-%d-", key.ts_us, key.node_id);
  std::string name = prefix;
  for (char c : key.event) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    name += ok ? c : '_';
  }
  return name;
}

std::string RepmgrEvent::ToJson() const {
  json j = {{"format", kFormat},      {"ts_us", key.ts_us}, {"timestamp", timestamp},
            {"node_id", key.node_id}, {"event", key.event}, {"successful", successful},
            {"details", details},     {"source", source}};
  return Dump(j);
}

StatusOr<RepmgrEvent> RepmgrEvent::FromJson(std::string_view text) {
  static const std::string kPayload = "event";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  RepmgrEvent e;
  PGH_RETURN_IF_ERROR(f.I64("ts_us", &e.key.ts_us, Need::kRequired));
  PGH_RETURN_IF_ERROR(
      f.I32("node_id", 0, std::numeric_limits<int>::max(), &e.key.node_id, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Token("event", &e.key.event, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Bool("successful", &e.successful, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Text("details", &e.details, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Token("timestamp", &e.timestamp, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Enum(
      "source", &e.source, Need::kOptional,
      [](const std::string& v) -> std::optional<std::string> {
        if (v == "table" || v == "notify") return v;
        return std::nullopt;
      },
      "\"table\" or \"notify\""));
  return e;
}

}  // namespace pgherald::model
