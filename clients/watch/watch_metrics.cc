#include "clients/watch/watch_metrics.h"

#include "common/prometheus.h"

namespace pgherald::watch {

std::string RenderWatchMetrics(const ClusterSnapshots& clusters) {
  prom::PromText out;
  prom::RenderBuildInfo(out);
  using client::MasterStatus;
  const MasterStatus kStatuses[] = {MasterStatus::kVouched, MasterStatus::kUnverified,
                                    MasterStatus::kNoMaster, MasterStatus::kDisconnected};

  out.Family("pgherald_watch_route_changes_total", "counter",
             "Route targets (route or block) sent to the cluster's sinks.");
  for (const auto& c : clusters) {
    out.Sample("pgherald_watch_route_changes_total", {{"cluster", c.first}},
               static_cast<double>(c.second.route_changes));
  }
  out.Family("pgherald_watch_route", "gauge",
             "1 for the cluster's current route: action route (to node) or block.");
  for (const auto& c : clusters) {
    if (!c.second.current) continue;
    out.Sample("pgherald_watch_route",
               {{"cluster", c.first},
                {"action", ActionName(c.second.current->action)},
                {"node", c.second.current->master.node}},
               1);
  }
  out.Family("pgherald_watch_holding", "gauge",
             "1 while the cluster's route is held (policy hold: no vouched master, clients of "
             "sinks that can hold wait for the next one).");
  for (const auto& c : clusters) {
    out.Sample("pgherald_watch_holding", {{"cluster", c.first}},
               c.second.current && c.second.current->hold ? 1 : 0);
  }
  out.Family("pgherald_watch_holds_total", "counter", "Holds begun (policy hold).");
  for (const auto& c : clusters) {
    out.Sample("pgherald_watch_holds_total", {{"cluster", c.first}},
               static_cast<double>(c.second.holds));
  }
  out.Family("pgherald_watch_master_status", "gauge",
             "1 for the master state the watch last received (vouched, unverified, no-master, "
             "disconnected), 0 for the others.");
  for (const auto& c : clusters) {
    for (MasterStatus s : kStatuses) {
      out.Sample("pgherald_watch_master_status",
                 {{"cluster", c.first}, {"status", client::MasterStatusName(s)}},
                 c.second.status == s ? 1 : 0);
    }
  }
  out.Family("pgherald_watch_zookeeper_connected", "gauge",
             "1 while the cluster's ZooKeeper session is connected (a state other than "
             "disconnected was received last).");
  for (const auto& c : clusters) {
    const bool connected = c.second.status && *c.second.status != MasterStatus::kDisconnected;
    out.Sample("pgherald_watch_zookeeper_connected", {{"cluster", c.first}}, connected ? 1 : 0);
  }

  out.Family("pgherald_watch_sink_apply_seconds", "histogram",
             "How long each sink's Apply() took, failed or not.");
  for (const auto& c : clusters) {
    for (const auto& sink : c.second.sinks) {
      sink.second.apply_seconds.Render(out, "pgherald_watch_sink_apply_seconds",
                                       {{"cluster", c.first}, {"sink", sink.first}});
    }
  }
  struct Counter {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const SinkReport&);
  };
  const Counter kCounters[] = {
      {"pgherald_watch_sink_applied_total", "counter", "Targets the sink applied.",
       [](const SinkReport& r) { return static_cast<double>(r.total_applied); }},
      {"pgherald_watch_sink_failures_total", "counter",
       "Failed attempts (each retry counts) and refused targets.",
       [](const SinkReport& r) { return static_cast<double>(r.total_failures); }},
      {"pgherald_watch_sink_consecutive_failures", "gauge",
       "Failures since the sink last applied a target (0: healthy).",
       [](const SinkReport& r) { return static_cast<double>(r.consecutive_failures); }},
      {"pgherald_watch_sink_last_error_timestamp_seconds", "gauge",
       "Unix time of the sink's last failure (0: none since start or reload).",
       [](const SinkReport& r) { return static_cast<double>(r.last_error_at_ms) / 1000.0; }},
  };
  for (const Counter& counter : kCounters) {
    out.Family(counter.name, counter.type, counter.help);
    for (const auto& c : clusters) {
      for (const auto& sink : c.second.sinks) {
        out.Sample(counter.name, {{"cluster", c.first}, {"sink", sink.first}},
                   counter.value(sink.second));
      }
    }
  }
  return out.text();
}

}  // namespace pgherald::watch
