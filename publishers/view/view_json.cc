// The cluster view as JSON objects (cluster_view.h). Key order is nlohmann's (sorted), so the
// serialized text is the same whoever builds it.
#include <algorithm>

#include "common/model/payload_json.h"
#include "publishers/view/cluster_view.h"

namespace pgherald::view {
namespace {

using json = nlohmann::json;

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

}  // namespace

std::string PollerState(const NodeStatus& n) {
  if (!n.observation) return "gone";
  if (n.role == "stale") return "stale";
  return "up";
}

json SwitchoverJson(const ClusterStatus& c) {
  if (!c.switchover) {
    return c.switchover_error.empty() ? json(nullptr) : json{{"error_record", c.switchover_error}};
  }
  const model::SwitchoverRecord& r = *c.switchover;
  return {{"id", r.id},
          {"from", r.from},
          {"to", r.to},
          {"siblings", r.siblings},
          {"phase", model::SwitchoverPhaseName(r.phase)},
          {"active", c.switchover_active},
          {"base_epoch", r.base_epoch},
          {"max_hold_ms", r.max_hold_ms},
          {"started_at", r.started_at_ms},
          {"phase_at", r.phase_at_ms},
          {"deadline_at", r.deadline_at_ms},
          {"stop_lsn", r.stop_lsn ? json(model::FormatLsn(*r.stop_lsn)) : json(nullptr)},
          {"requested_by", r.requested_by},
          {"error", r.error}};
}

json ClusterJson(const ClusterStatus& c) {
  json master = model::ToJsonValue(c.master);
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
  for (const model::HistoryEntry& h : c.history) history.push_back(model::ToJsonValue(h));
  return {{"name", c.name},         {"healthy", c.healthy()},
          {"problems", c.problems}, {"paused", c.control.paused},
          {"control", control},     {"master", master},
          {"switchover", SwitchoverJson(c)},
          {"owner", c.owner_guid.empty() ? json(nullptr)
                                         : json{{"id", c.owner}, {"guid", c.owner_guid}}},
          {"nodes", nodes},         {"history", history},
          {"read_at", c.read_at_ms}};
}

json StatusJson(const std::vector<ClusterStatus>& clusters) {
  json arr = json::array();
  for (const ClusterStatus& c : clusters) arr.push_back(ClusterJson(c));
  const bool healthy = std::all_of(clusters.begin(), clusters.end(),
                                   [](const ClusterStatus& c) { return c.healthy(); });
  return json{{"clusters", arr}, {"healthy", healthy}};
}

json HistoryJson(const std::string& cluster, const std::vector<model::HistoryEntry>& history) {
  json arr = json::array();
  for (const model::HistoryEntry& h : history) arr.push_back(model::ToJsonValue(h));
  return json{{"cluster", cluster}, {"history", arr}};
}

}  // namespace pgherald::view
