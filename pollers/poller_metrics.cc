#include "pollers/poller_metrics.h"

namespace pgherald::pollers {

PollerMetrics::PollerMetrics(std::string cluster, std::string node)
    : labels_{{"cluster", std::move(cluster)}, {"node", std::move(node)}} {}

void PollerMetrics::RecordTick(double seconds, bool reachable, bool in_recovery) {
  std::lock_guard lock(mu_);
  tick_seconds_.Observe(seconds);
  reachable_ = reachable;
  in_recovery_ = reachable && in_recovery;
}

void PollerMetrics::RecordPublish(bool ok, std::int64_t wall_ms) {
  std::lock_guard lock(mu_);
  if (ok) {
    ++published_;
    last_publish_ms_ = wall_ms;
  } else {
    ++publish_errors_;
  }
}

std::string PollerMetrics::EventLabel(const std::string& event) {
  if (event.empty() || event.size() > 64) return "other";
  for (char c : event) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return "other";
  }
  return event;
}

void PollerMetrics::RecordNotify(const std::string& event) {
  std::lock_guard lock(mu_);
  std::string label = EventLabel(event);
  if (notify_events_.count(label) == 0 && notify_events_.size() >= kMaxEventNames) label = "other";
  ++notify_events_[label];
}

void PollerMetrics::RecordSwitchoverStep(const std::string& phase, const std::string& state) {
  std::lock_guard lock(mu_);
  ++switchover_steps_[{phase, state}];
}

std::string PollerMetrics::Render() const {
  std::lock_guard lock(mu_);
  prom::PromText out;
  prom::RenderBuildInfo(out);
  out.Family("pgherald_poller_tick_seconds", "histogram",
             "How long each tick took: the PostgreSQL/repmgr read, fencing and the ZooKeeper "
             "writes.");
  tick_seconds_.Render(out, "pgherald_poller_tick_seconds", labels_);
  out.Family("pgherald_poller_postgres_reachable", "gauge",
             "1 when the last tick could read the local PostgreSQL node.");
  out.Sample("pgherald_poller_postgres_reachable", labels_, reachable_ ? 1 : 0);
  out.Family("pgherald_poller_postgres_in_recovery", "gauge",
             "1 when the node was a standby (in recovery) at the last tick.");
  out.Sample("pgherald_poller_postgres_in_recovery", labels_, in_recovery_ ? 1 : 0);
  out.Family("pgherald_poller_observations_published_total", "counter",
             "Observations written to ZooKeeper.");
  out.Sample("pgherald_poller_observations_published_total", labels_,
             static_cast<double>(published_));
  out.Family("pgherald_poller_observation_publish_errors_total", "counter",
             "Observation writes to ZooKeeper that failed.");
  out.Sample("pgherald_poller_observation_publish_errors_total", labels_,
             static_cast<double>(publish_errors_));
  out.Family("pgherald_poller_last_publish_timestamp_seconds", "gauge",
             "Unix time of the last observation written (0: none yet). The poller rewrites it at "
             "least every heartbeat_ms.");
  out.Sample("pgherald_poller_last_publish_timestamp_seconds", labels_,
             static_cast<double>(last_publish_ms_) / 1000.0);
  out.Family("pgherald_poller_notify_events_total", "counter",
             "repmgr events received on the notify socket, by event name.");
  for (const auto& entry : notify_events_) {
    prom::Labels l = labels_;
    l.emplace_back("event", entry.first);
    out.Sample("pgherald_poller_notify_events_total", l, static_cast<double>(entry.second));
  }
  out.Family("pgherald_poller_switchover_steps_total", "counter",
             "Switchover steps this poller acknowledged, by phase and state (running when it "
             "started one, then done or failed).");
  for (const auto& entry : switchover_steps_) {
    prom::Labels l = labels_;
    l.emplace_back("phase", entry.first.first);
    l.emplace_back("state", entry.first.second);
    out.Sample("pgherald_poller_switchover_steps_total", l, static_cast<double>(entry.second));
  }
  return out.text();
}

}  // namespace pgherald::pollers
