#include "clients/status/render.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/untrusted.h"

namespace pgherald::status {
namespace {

using json = nlohmann::json;

// Everything read from ZooKeeper is untrusted: in text output it goes through this, so that no
// control character (an escape sequence, a newline faking a line) reaches the terminal. The
// decoders sanitize free text already; znode names and anything added later pass here too. JSON
// output needs no such step: the serializer escapes control characters.
std::string Safe(const std::string& text) { return untrusted::SanitizeForDisplay(text); }

std::string Lsn(const std::optional<model::Lsn>& lsn) { return lsn ? model::FormatLsn(*lsn) : "-"; }

std::string PollerState(const NodeStatus& n) {
  if (!n.observation) return "gone";
  if (n.role == "stale") return "stale";
  return "up";
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json NodeJson(const NodeStatus& n) {
  json j = {{"node", n.node},
            {"role", n.role},
            {"is_master", n.is_master},
            {"poller", PollerState(n)},
            {"heartbeat_age_ms", n.heartbeat_age_ms},
            {"mtime", n.mtime_ms},
            {"problem", n.problem}};
  j["lag_bytes"] = n.lag_bytes ? json(*n.lag_bytes) : json(nullptr);
  if (n.observation) {
    const model::NodeObservation& o = *n.observation;
    j["host"] = o.host;
    j["port"] = o.port;
    j["reachable"] = o.reachable;
    j["in_recovery"] = o.in_recovery;
    j["timeline"] = o.timeline;
    j["lsn"] = o.Position() ? json(model::FormatLsn(*o.Position())) : json(nullptr);
    j["upstream"] = o.upstream_node;
    j["repmgrd_running"] = o.repmgrd_running;
    j["fencing"] = model::FencingStateName(o.fencing);
    j["seq"] = o.seq;
    j["observed_at"] = o.observed_at_ms;
    j["error"] = o.error;
    j["poller_version"] = o.poller_version;
  }
  return j;
}

json ClusterObject(const ClusterStatus& c) {
  json master = json::parse(c.master.ToJson(), nullptr, false);
  if (master.is_discarded()) master = json::object();
  master.erase("format");
  master["present"] = c.master_present;
  master["verified"] = c.verified();
  master["vouchers"] = c.vouchers;
  master["unbound_vouchers"] = c.unbound_vouchers;
  master["legacy_vouchers"] = c.legacy_vouchers;
  master["backed"] = c.history_checked ? json(c.backed()) : json(nullptr);
  master["mzxid"] = c.master_mzxid;
  json control = {{"paused", c.control.paused},
                  {"reason", c.control.reason},
                  {"changed_by", c.control.changed_by},
                  {"changed_at", c.control.changed_at_ms},
                  {"error", c.control_error}};
  json nodes = json::array();
  for (const NodeStatus& n : c.nodes) nodes.push_back(NodeJson(n));
  json history = json::array();
  for (const model::HistoryEntry& h : c.history) {
    json e = json::parse(h.ToJson(), nullptr, false);
    if (!e.is_discarded()) history.push_back(std::move(e));
  }
  return {{"name", c.name},         {"healthy", c.healthy()},
          {"problems", c.problems}, {"paused", c.control.paused},
          {"control", control},     {"master", master},
          {"nodes", nodes},         {"history", history},
          {"read_at", c.read_at_ms}};
}

}  // namespace

int ExitCodeFor(const std::vector<ClusterStatus>& clusters) {
  for (const ClusterStatus& c : clusters) {
    if (!c.healthy()) return kExitUnhealthy;
  }
  return kExitHealthy;
}

std::string FormatWallMs(std::int64_t ms) {
  if (ms <= 0) return "-";
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string FormatAge(std::int64_t ms) {
  if (ms < 0) return "-";
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else {
    const long long s = ms / 1000;
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  }
  return buf;
}

std::string AlignTable(const std::vector<std::vector<std::string>>& rows) {
  std::size_t columns = 0;
  for (const auto& r : rows) columns = std::max(columns, r.size());
  std::vector<std::size_t> width(columns, 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) {
      width[i] = std::max(width[i], Safe(r[i]).size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < columns; ++i) {
      const std::string cell = i < r.size() ? Safe(r[i]) : "";
      line += cell;
      if (i + 1 < columns) line += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string RenderStatusTable(const std::vector<ClusterStatus>& clusters) {
  std::string out;
  for (const ClusterStatus& c : clusters) {
    if (!out.empty()) out += "\n";
    std::string master;
    if (c.master.state != model::MasterState::kOk) {
      master = "none verified yet";
    } else {
      master = Safe(c.master.node) + " (" + Safe(c.master.host) + ":" +
               std::to_string(c.master.port) + ", timeline " + std::to_string(c.master.timeline) +
               ", epoch " + std::to_string(c.master.epoch) + ")";
      if (c.vouchers.empty() && !c.unbound_vouchers.empty()) {
        master += " UNVERIFIED: no voucher bound to this record";
      } else if (c.vouchers.empty()) {
        master += " UNVERIFIED: no voucher";
      } else {
        std::string who;
        for (const std::string& v : c.vouchers) who += (who.empty() ? "" : ",") + Safe(v);
        master += " verified, " + std::to_string(c.vouchers.size()) + " voucher" +
                  (c.vouchers.size() == 1 ? "" : "s") + " (" + who + ")";
      }
    }
    out += "Cluster: " + Safe(c.name) + "\n";
    out += "Master:  " + master + "\n";
    std::string paused = c.control.paused ? "yes" : "no";
    if (c.control.paused && !c.control.reason.empty()) {
      paused += " (" + Safe(c.control.reason) + ")";
    }
    if (c.control.paused && !c.control.changed_by.empty()) {
      paused +=
          " by " + Safe(c.control.changed_by) + " at " + FormatWallMs(c.control.changed_at_ms);
    }
    out += "Paused:  " + paused + "\n\n";
    std::vector<std::vector<std::string>> rows = {{"Node", "Role", "Master", "Host", "TL", "LSN",
                                                   "Lag", "Heartbeat", "repmgrd", "Poller",
                                                   "Fencing"}};
    for (const NodeStatus& n : c.nodes) {
      std::vector<std::string> row = {n.node, n.role, n.is_master ? "*" : ""};
      if (n.observation) {
        const model::NodeObservation& o = *n.observation;
        row.push_back(o.host + ":" + std::to_string(o.port));
        row.push_back(o.timeline != 0 ? std::to_string(o.timeline) : "-");
        row.push_back(Lsn(o.reachable ? o.Position() : std::nullopt));
        row.push_back(n.lag_bytes ? std::to_string(*n.lag_bytes) + "B" : "-");
        row.push_back(FormatAge(n.heartbeat_age_ms));
        row.push_back(o.repmgrd_running ? "running" : "not running");
        row.push_back(PollerState(n));
        row.push_back(model::FencingStateName(o.fencing));
      } else {
        row.insert(row.end(), {"-", "-", "-", "-", "-", "-", PollerState(n), "-"});
      }
      rows.push_back(std::move(row));
    }
    out += AlignTable(rows);
    if (!c.problems.empty()) {
      out += "\nProblems:\n";
      for (const std::string& p : c.problems) out += "  - " + Safe(p) + "\n";
    }
  }
  return out;
}

std::string ClusterJson(const ClusterStatus& cluster) { return Dump(ClusterObject(cluster)); }

std::string RenderStatusJson(const std::vector<ClusterStatus>& clusters) {
  json arr = json::array();
  for (const ClusterStatus& c : clusters) arr.push_back(ClusterObject(c));
  return Dump(json{{"clusters", arr}, {"healthy", ExitCodeFor(clusters) == kExitHealthy}}) + "\n";
}

std::string RenderHistoryText(const std::string& cluster,
                              const std::vector<model::HistoryEntry>& history) {
  if (history.empty()) return "Cluster " + Safe(cluster) + ": no decisions recorded\n";
  std::string out;
  for (const model::HistoryEntry& h : history) {
    if (!out.empty()) out += "\n";
    std::string line = FormatWallMs(h.decided_at_ms) + "  epoch " + std::to_string(h.epoch) + "  " +
                       Safe(h.action);
    if (!h.chosen.empty()) line += " " + Safe(h.chosen);
    if (h.previous && h.previous->state == model::MasterState::kOk) {
      line += " (was " + Safe(h.previous->node) + ", timeline " +
              std::to_string(h.previous->timeline) + ")";
    } else if (h.previous) {
      line += " (was none)";
    }
    if (h.master)
      line += " -> timeline " + std::to_string(h.master->timeline) + " lsn " +
              model::FormatLsn(h.master->lsn);
    line += "  by " + Safe(h.decided_by);
    out += line + "\n";
    for (const model::Reason& r : h.reasons) {
      out += "  reason " + Safe(r.code) + (r.node.empty() ? "" : " [" + Safe(r.node) + "]") + ": " +
             Safe(r.text) + "\n";
    }
    if (!h.stale_primaries.empty()) {
      std::string s;
      for (const std::string& n : h.stale_primaries) s += (s.empty() ? "" : ", ") + Safe(n);
      out += "  stale primaries: " + s + "\n";
    }
    if (h.data_loss) {
      const model::DataLossEstimate& d = *h.data_loss;
      out += "  data loss estimate: " + Safe(d.old_master) + " last seen at " +
             model::FormatLsn(d.old_master_last_lsn) + ", " + Safe(d.new_master) +
             " took over at " + model::FormatLsn(d.new_master_lsn) + ": " +
             std::to_string(d.gap_bytes) + " bytes\n";
    }
    if (!h.evidence.empty()) {
      std::vector<std::vector<std::string>> rows = {{"    node", "role", "observed", "probed",
                                                     "reachable", "writable", "TL", "LSN",
                                                     "write check", "followers", "notes"}};
      for (const model::NodeEvidence& e : h.evidence) {
        std::string notes;
        for (const std::string& n : e.notes) notes += (notes.empty() ? "" : ",") + n;
        rows.push_back({"    " + e.node, e.role, e.observed ? "yes" : "no", e.probed ? "yes" : "no",
                        e.reachable ? "yes" : "no", e.writable ? "yes" : "no",
                        std::to_string(e.timeline), Lsn(e.lsn),
                        model::WriteCheckName(e.write_check), std::to_string(e.followers), notes});
      }
      out += "  evidence:\n" + AlignTable(rows);
    }
  }
  return out;
}

std::string RenderHistoryJson(const std::string& cluster,
                              const std::vector<model::HistoryEntry>& history) {
  json arr = json::array();
  for (const model::HistoryEntry& h : history) {
    json e = json::parse(h.ToJson(), nullptr, false);
    if (!e.is_discarded()) arr.push_back(std::move(e));
  }
  return Dump(json{{"cluster", cluster}, {"history", arr}}) + "\n";
}

}  // namespace pgherald::status
