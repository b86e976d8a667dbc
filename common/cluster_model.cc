#include "common/cluster_model.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

namespace pgherald::model {
namespace {

using nlohmann::json;

// Unique variable names (via __COUNTER__) because calls nest: a decoding lambda passed to
// FieldReader::Array runs inside the outer macro's initializer.
#define PGH_CONCAT_INNER(a, b) a##b
#define PGH_CONCAT(a, b) PGH_CONCAT_INNER(a, b)
#define PGH_RETURN_IF_ERROR(expr) PGH_RETURN_IF_ERROR_IMPL(PGH_CONCAT(status_, __COUNTER__), expr)
#define PGH_RETURN_IF_ERROR_IMPL(var, expr) \
  do {                                      \
    ::pgherald::Status var = (expr);        \
    if (!var.ok()) return var;              \
  } while (false)

enum class Need { kRequired, kOptional };

// Reads fields of one JSON object and names the payload and the field path in every error.
// Optional fields that are absent or null leave the output untouched (its default).
class FieldReader {
 public:
  FieldReader(const json& object, std::string payload, std::string prefix)
      : object_(object), payload_(std::move(payload)), prefix_(std::move(prefix)) {}

  Status Bool(const char* key, bool* out, Need need) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_boolean()) return WrongType(key, "a boolean", *v);
    *out = v->get<bool>();
    return Status::Ok();
  }

  Status String(const char* key, std::string* out, Need need) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_string()) return WrongType(key, "a string", *v);
    *out = v->get<std::string>();
    return Status::Ok();
  }

  // A JSON integer within [lo, hi]; floats (even 3.0) are refused.
  Status Int(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t* out, Need need) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    const std::string expected =
        "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (v->is_number_unsigned()) {
      const auto u = v->get<std::uint64_t>();
      if (hi < 0 || u > static_cast<std::uint64_t>(hi) || static_cast<std::int64_t>(u) < lo) {
        return WrongType(key, expected, *v);
      }
      *out = static_cast<std::int64_t>(u);
    } else if (v->is_number_integer()) {
      const auto i = v->get<std::int64_t>();
      if (i < lo || i > hi) return WrongType(key, expected, *v);
      *out = i;
    } else {
      return WrongType(key, expected, *v);
    }
    return Status::Ok();
  }

  Status U64(const char* key, std::uint64_t* out, Need need) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_number_unsigned()) return WrongType(key, "an unsigned integer", *v);
    *out = v->get<std::uint64_t>();
    return Status::Ok();
  }

  Status U32(const char* key, std::uint32_t* out, Need need) {
    std::int64_t wide = *out;
    PGH_RETURN_IF_ERROR(Int(key, 0, std::numeric_limits<std::uint32_t>::max(), &wide, need));
    *out = static_cast<std::uint32_t>(wide);
    return Status::Ok();
  }

  Status I32(const char* key, std::int32_t lo, std::int32_t hi, int* out, Need need) {
    std::int64_t wide = *out;
    PGH_RETURN_IF_ERROR(Int(key, lo, hi, &wide, need));
    *out = static_cast<int>(wide);
    return Status::Ok();
  }

  Status I64(const char* key, std::int64_t* out, Need need) {
    return Int(key, std::numeric_limits<std::int64_t>::min(),
               std::numeric_limits<std::int64_t>::max(), out, need);
  }

  Status OptI64(const char* key, std::optional<std::int64_t>* out) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, Need::kOptional, &v));
    if (v == nullptr) return Status::Ok();
    std::int64_t value = 0;
    PGH_RETURN_IF_ERROR(I64(key, &value, Need::kRequired));
    *out = value;
    return Status::Ok();
  }

  Status OptInt(const char* key, std::optional<int>* out) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, Need::kOptional, &v));
    if (v == nullptr) return Status::Ok();
    int value = 0;
    PGH_RETURN_IF_ERROR(I32(key, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(),
                            &value, Need::kRequired));
    *out = value;
    return Status::Ok();
  }

  Status LsnField(const char* key, Lsn* out, Need need) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_string()) return WrongType(key, "an LSN string \"X/Y\"", *v);
    StatusOr<Lsn> lsn = ParseLsn(v->get<std::string>());
    if (!lsn.ok()) return WrongType(key, "an LSN string \"X/Y\"", *v);
    *out = *lsn;
    return Status::Ok();
  }

  Status OptLsn(const char* key, std::optional<Lsn>* out) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, Need::kOptional, &v));
    if (v == nullptr) return Status::Ok();
    Lsn lsn = 0;
    PGH_RETURN_IF_ERROR(LsnField(key, &lsn, Need::kRequired));
    *out = lsn;
    return Status::Ok();
  }

  // An enum spelled as one of its names; `parse` maps a name to a value or nullopt.
  template <typename E, typename Parse>
  Status Enum(const char* key, E* out, Need need, Parse parse, const char* expected) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_string()) return WrongType(key, expected, *v);
    std::optional<E> value = parse(v->get<std::string>());
    if (!value) return WrongType(key, expected, *v);
    *out = *value;
    return Status::Ok();
  }

  // An array of objects; `each(reader, index)` decodes one element with its own path prefix.
  template <typename Each>
  Status Array(const char* key, Need need, Each each) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_array()) return WrongType(key, "an array", *v);
    for (std::size_t i = 0; i < v->size(); ++i) {
      const std::string path = prefix_ + key + "[" + std::to_string(i) + "]";
      const json& element = (*v)[i];
      if (!element.is_object()) {
        return InvalidArgument(payload_ + ": field '" + path + "': expected an object, got " +
                               Describe(element));
      }
      FieldReader reader(element, payload_, path + ".");
      PGH_RETURN_IF_ERROR(each(reader));
    }
    return Status::Ok();
  }

  // An array of strings.
  Status Strings(const char* key, std::vector<std::string>* out, Need need) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_array()) return WrongType(key, "an array of strings", *v);
    out->clear();
    for (std::size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) {
        return InvalidArgument(payload_ + ": field '" + prefix_ + key + "[" + std::to_string(i) +
                               "]': expected a string, got " + Describe((*v)[i]));
      }
      out->push_back((*v)[i].get<std::string>());
    }
    return Status::Ok();
  }

  // A nested object; `decode(reader)` reads it with the path prefix "key.".
  template <typename Decode>
  Status Object(const char* key, Need need, bool* present, Decode decode) {
    const json* v = nullptr;
    *present = false;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_object()) return WrongType(key, "an object", *v);
    *present = true;
    FieldReader reader(*v, payload_, prefix_ + key + ".");
    return decode(reader);
  }

  const json& object() const { return object_; }

 private:
  Status Find(const char* key, Need need, const json** out) {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) {
      if (need == Need::kRequired) {
        return InvalidArgument(payload_ + ": field '" + prefix_ + key + "' is missing (required)");
      }
      *out = nullptr;
      return Status::Ok();
    }
    *out = &*it;
    return Status::Ok();
  }

  static std::string Describe(const json& v) {
    std::string shown = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
    return std::string(v.type_name()) + " " + shown;
  }

  Status WrongType(const char* key, const std::string& expected, const json& v) const {
    return InvalidArgument(payload_ + ": field '" + prefix_ + key + "': expected " + expected +
                           ", got " + Describe(v));
  }

  const json& object_;
  std::string payload_;
  std::string prefix_;
};

// Parses `text` as a JSON object with "format": 1. The JSON library throws on syntax errors; the
// exception is kept inside this adapter (STYLE.md) because its message carries the position.
Status ParseEnvelope(std::string_view text, const std::string& payload, json* out) {
  try {
    *out = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return InvalidArgument(payload + ": not valid JSON: " + e.what());
  }
  if (!out->is_object()) {
    return InvalidArgument(payload + ": expected a JSON object, got " +
                           std::string(out->type_name()));
  }
  FieldReader reader(*out, payload, "");
  std::int64_t format = 0;
  PGH_RETURN_IF_ERROR(reader.Int("format", std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max(), &format,
                                 Need::kRequired));
  if (format != kFormat) {
    return InvalidArgument(payload + ": field 'format': expected " + std::to_string(kFormat) +
                           ", got " + std::to_string(format) + " (written by a newer pgherald?)");
  }
  return Status::Ok();
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void PutOptLsn(json& j, const char* key, const std::optional<Lsn>& lsn) {
  if (lsn) j[key] = FormatLsn(*lsn);
}

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
  PGH_RETURN_IF_ERROR(f.String("node", &r->node, if_ok));
  PGH_RETURN_IF_ERROR(f.String("host", &r->host, if_ok));
  PGH_RETURN_IF_ERROR(f.I32("port", r->state == MasterState::kOk ? 1 : 0, 65535, &r->port, if_ok));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &r->timeline, if_ok));
  PGH_RETURN_IF_ERROR(f.LsnField("lsn", &r->lsn, if_ok));
  PGH_RETURN_IF_ERROR(f.I64("verified_at", &r->verified_at_ms, if_ok));
  PGH_RETURN_IF_ERROR(f.String("decided_by", &r->decided_by, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.String("reason", &r->reason, Need::kOptional));
  if (r->state == MasterState::kOk && r->node.empty()) {
    return InvalidArgument("MasterRecord: field 'node': expected a node name with state \"ok\"");
  }
  return Status::Ok();
}

json ReasonJson(const Reason& r) {
  json j = {{"code", r.code}, {"text", r.text}};
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
  PGH_RETURN_IF_ERROR(f.String("node", &e->node, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Bool("observed", &e->observed, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("probed", &e->probed, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("reachable", &e->reachable, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("writable", &e->writable, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &e->timeline, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.OptLsn("lsn", &e->lsn));
  PGH_RETURN_IF_ERROR(f.String("system_identifier", &e->system_identifier, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Enum("write_check", &e->write_check, Need::kOptional, ParseWriteCheck,
                             "\"not-run\", \"passed\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.OptI64("promoted_at", &e->promoted_at_ms));
  PGH_RETURN_IF_ERROR(
      f.I32("followers", 0, std::numeric_limits<int>::max(), &e->followers, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Enum("fencing", &e->fencing, Need::kOptional, ParseFencingState,
                             "\"none\", \"fencing\", \"fenced\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.String("role", &e->role, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Strings("notes", &e->notes, Need::kOptional));
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
                           std::string(text.substr(0, 40)) + "\"");
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
  if (!error.empty()) j["error"] = error;
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
  return Dump(j);
}

StatusOr<NodeObservation> NodeObservation::FromJson(std::string_view text) {
  static const std::string kPayload = "NodeObservation";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  NodeObservation o;
  PGH_RETURN_IF_ERROR(f.String("node", &o.node, Need::kRequired));
  PGH_RETURN_IF_ERROR(
      f.I32("node_id", 0, std::numeric_limits<int>::max(), &o.node_id, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.String("host", &o.host, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I32("port", 1, 65535, &o.port, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Bool("reachable", &o.reachable, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("error", &o.error, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("in_recovery", &o.in_recovery, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &o.timeline, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.OptLsn("current_lsn", &o.current_lsn));
  PGH_RETURN_IF_ERROR(f.OptLsn("receive_lsn", &o.receive_lsn));
  PGH_RETURN_IF_ERROR(f.OptLsn("replay_lsn", &o.replay_lsn));
  PGH_RETURN_IF_ERROR(f.String("system_identifier", &o.system_identifier, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("upstream_node", &o.upstream_node, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.String("sender_host", &o.sender_host, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.I32("sender_port", 0, 65535, &o.sender_port, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.OptI64("promoted_at", &o.promoted_at_ms));
  PGH_RETURN_IF_ERROR(f.Array("repmgr_nodes", Need::kOptional, [&](FieldReader& row) {
    RepmgrNode n;
    PGH_RETURN_IF_ERROR(
        row.I32("node_id", 0, std::numeric_limits<int>::max(), &n.node_id, Need::kRequired));
    PGH_RETURN_IF_ERROR(row.String("name", &n.name, Need::kRequired));
    PGH_RETURN_IF_ERROR(row.String("type", &n.type, Need::kRequired));
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
  PGH_RETURN_IF_ERROR(f.String("poller_version", &o.poller_version, Need::kOptional));
  return o;
}

// ---- MasterRecord ----

std::string MasterRecord::ToJson() const { return Dump(MasterRecordJson(*this)); }

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
  if (!error.empty()) j["error"] = error;
  if (!write_error.empty()) j["write_error"] = write_error;
  return Dump(j);
}

StatusOr<Probe> Probe::FromJson(std::string_view text) {
  static const std::string kPayload = "Probe";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  Probe p;
  PGH_RETURN_IF_ERROR(f.String("node", &p.node, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("host", &p.host, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.I32("port", 0, 65535, &p.port, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Bool("reachable", &p.reachable, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("error", &p.error, Need::kOptional));
  const Need if_up = p.reachable ? Need::kRequired : Need::kOptional;
  PGH_RETURN_IF_ERROR(f.Bool("in_recovery", &p.in_recovery, if_up));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &p.timeline, if_up));
  PGH_RETURN_IF_ERROR(f.LsnField("lsn", &p.lsn, if_up));
  PGH_RETURN_IF_ERROR(f.String("system_identifier", &p.system_identifier, if_up));
  PGH_RETURN_IF_ERROR(f.Enum("write_check", &p.write_check, if_up, ParseWriteCheck,
                             "\"not-run\", \"passed\" or \"failed\""));
  PGH_RETURN_IF_ERROR(f.String("write_error", &p.write_error, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.I64("latency_us", &p.latency_us, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.I64("taken_at", &p.taken_at_ms, Need::kRequired));
  return p;
}

// ---- HistoryEntry ----

std::string HistoryEntry::ToJson() const {
  json j = {{"format", kFormat},       {"cluster", cluster}, {"action", action},
            {"chosen", chosen},        {"epoch", epoch},     {"decided_at", decided_at_ms},
            {"decided_by", decided_by}};
  if (previous) j["previous"] = MasterRecordJson(*previous);
  if (master) j["master"] = MasterRecordJson(*master);
  json reason_list = json::array();
  for (const Reason& r : reasons) reason_list.push_back(ReasonJson(r));
  j["reasons"] = std::move(reason_list);
  j["stale_primaries"] = stale_primaries;
  json evidence_list = json::array();
  for (const NodeEvidence& e : evidence) evidence_list.push_back(EvidenceJson(e));
  j["evidence"] = std::move(evidence_list);
  if (data_loss) {
    j["data_loss"] = {{"old_master", data_loss->old_master},
                      {"old_master_last_lsn", FormatLsn(data_loss->old_master_last_lsn)},
                      {"new_master", data_loss->new_master},
                      {"new_master_lsn", FormatLsn(data_loss->new_master_lsn)},
                      {"gap_bytes", data_loss->gap_bytes}};
  }
  return Dump(j);
}

StatusOr<HistoryEntry> HistoryEntry::FromJson(std::string_view text) {
  static const std::string kPayload = "HistoryEntry";
  json j;
  PGH_RETURN_IF_ERROR(ParseEnvelope(text, kPayload, &j));
  FieldReader f(j, kPayload, "");
  HistoryEntry h;
  PGH_RETURN_IF_ERROR(f.String("cluster", &h.cluster, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("action", &h.action, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("chosen", &h.chosen, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.U64("epoch", &h.epoch, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.I64("decided_at", &h.decided_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.String("decided_by", &h.decided_by, Need::kOptional));
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
    PGH_RETURN_IF_ERROR(r.String("code", &reason.code, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.String("node", &reason.node, Need::kOptional));
    PGH_RETURN_IF_ERROR(r.String("text", &reason.text, Need::kOptional));
    h.reasons.push_back(std::move(reason));
    return Status::Ok();
  }));
  PGH_RETURN_IF_ERROR(f.Strings("stale_primaries", &h.stale_primaries, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Array("evidence", Need::kOptional, [&](FieldReader& r) {
    NodeEvidence e;
    PGH_RETURN_IF_ERROR(DecodeEvidence(r, &e));
    h.evidence.push_back(std::move(e));
    return Status::Ok();
  }));
  DataLossEstimate loss;
  PGH_RETURN_IF_ERROR(f.Object("data_loss", Need::kOptional, &present, [&](FieldReader& r) {
    PGH_RETURN_IF_ERROR(r.String("old_master", &loss.old_master, Need::kRequired));
    PGH_RETURN_IF_ERROR(
        r.LsnField("old_master_last_lsn", &loss.old_master_last_lsn, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.String("new_master", &loss.new_master, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.LsnField("new_master_lsn", &loss.new_master_lsn, Need::kRequired));
    PGH_RETURN_IF_ERROR(r.U64("gap_bytes", &loss.gap_bytes, Need::kRequired));
    return Status::Ok();
  }));
  if (present) h.data_loss = loss;
  return h;
}

}  // namespace pgherald::model
