// What the poller shows on /metrics (the optional `http:` section, common/http_server.h). The
// poller's loop records (any thread); the HTTP thread renders. Names (docs/poller.md):
//
//   pgherald_build_info{version,commit,build_type}                     1
//   pgherald_poller_tick_seconds{cluster,node}                        histogram, every tick
//   pgherald_poller_postgres_reachable{cluster,node}                  0/1 at the last tick
//   pgherald_poller_postgres_in_recovery{cluster,node}                0/1 (0 when unreachable)
//   pgherald_poller_observations_published_total{cluster,node}        counter
//   pgherald_poller_observation_publish_errors_total{cluster,node}    counter
//   pgherald_poller_last_publish_timestamp_seconds{cluster,node}      wall clock, 0 before the first
//   pgherald_poller_notify_events_total{cluster,node,event}           counter per repmgr event name
//   pgherald_poller_switchover_steps_total{cluster,node,phase,state}   counter: every switchover ack
//                                                                      (running, done, failed)
//
// Event names come from a socket: a name that is not [a-z0-9_]{1,64} is counted as "other", and
// beyond kMaxEventNames distinct names every new one is "other" too (bounded cardinality).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "common/prometheus.h"

namespace pgherald::pollers {

class PollerMetrics {
 public:
  static constexpr std::size_t kMaxEventNames = 64;

  PollerMetrics(std::string cluster, std::string node);

  void RecordTick(double seconds, bool reachable, bool in_recovery);
  // wall_ms: when it was published (ok only).
  void RecordPublish(bool ok, std::int64_t wall_ms);
  void RecordNotify(const std::string& event);
  // phase and state are the contract's names (model::SwitchoverPhaseName, ...StepStateName).
  void RecordSwitchoverStep(const std::string& phase, const std::string& state);

  std::string Render() const;

  // The label value a notify event name is counted under.
  static std::string EventLabel(const std::string& event);

 private:
  const prom::Labels labels_;
  mutable std::mutex mu_;
  prom::Histogram tick_seconds_;
  bool reachable_ = false;
  bool in_recovery_ = false;
  std::uint64_t published_ = 0;
  std::uint64_t publish_errors_ = 0;
  std::int64_t last_publish_ms_ = 0;
  std::map<std::string, std::uint64_t> notify_events_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> switchover_steps_;
};

}  // namespace pgherald::pollers
