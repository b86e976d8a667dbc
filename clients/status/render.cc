#include "clients/status/render.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/model/json_fields.h"
#include "common/model/untrusted.h"

namespace pgherald::status {
namespace {

using json = nlohmann::json;
using view::ClusterStatus;
using view::NodeStatus;
using view::PollerState;
using jsonf::Dump;

// Everything read from ZooKeeper is untrusted: in text output it goes through this, so that no
// control character (an escape sequence, a newline faking a line) reaches the terminal. The
// decoders sanitize free text already; znode names and anything added later pass here too. JSON
// output needs no such step: the serializer escapes control characters.
std::string Safe(const std::string& text) { return untrusted::SanitizeForDisplay(text); }

std::string Lsn(const std::optional<model::Lsn>& lsn) { return lsn ? model::FormatLsn(*lsn) : "-"; }

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

std::string SwitchoverLine(const ClusterStatus& c) {
  if (!c.switchover) return "";
  const model::SwitchoverRecord& r = *c.switchover;
  std::string line = Safe(r.id) + " " + Safe(r.from) + " -> " + Safe(r.to);
  const std::string phase = model::SwitchoverPhaseName(r.phase);
  if (c.switchover_active) {
    return line + " phase " + phase + " since " + FormatWallMs(r.phase_at_ms) + " (deadline " +
           FormatWallMs(r.deadline_at_ms) + ")";
  }
  if (!model::IsTerminal(r.phase)) {
    return line + " phase " + phase + " EXPIRED at " + FormatWallMs(r.deadline_at_ms) +
           " (nobody acts on it; `pgherald switchover --cluster " + Safe(c.name) + " --abort` ends it)";
  }
  line = "last " + line + " " + phase + " at " + FormatWallMs(r.phase_at_ms);
  if (!r.error.empty()) line += ": " + Safe(r.error);
  return line;
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
    out += "Paused:  " + paused + "\n";
    if (const std::string sw = SwitchoverLine(c); !sw.empty()) out += "Switchover: " + sw + "\n";
    // The orchestrator acting on the cluster (docs/orchestrator.md, "Ownership").
    out += "Owner:   " +
           (c.owner_guid.empty() ? std::string("none")
                                 : (c.owner.empty() ? std::string("?") : Safe(c.owner)) + " (guid " +
                                       Safe(c.owner_guid) + ")") +
           "\n\n";
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

std::string RenderStatusJson(const std::vector<ClusterStatus>& clusters) {
  return Dump(view::StatusJson(clusters)) + "\n";
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
    if (h.switchover) {
      const model::HistorySwitchover& sw = *h.switchover;
      out += "  switchover " + Safe(sw.id) + ": " + Safe(sw.from) + " -> " + Safe(sw.to) +
             " phase " + Safe(sw.phase) + (sw.error.empty() ? "" : ": " + Safe(sw.error)) + "\n";
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
  return Dump(view::HistoryJson(cluster, history)) + "\n";
}

}  // namespace pgherald::status
