// What `pgherald watch` shows on /metrics (the optional `http:` section, common/http_server.h),
// rendered from each ClusterController's snapshot. Names (docs/watch.md):
//
//   pgherald_build_info{version,commit,build_type}                        1
//   pgherald_watch_route_changes_total{cluster}                          targets sent to the sinks
//   pgherald_watch_route{cluster,action,node}                            1 for the current route
//   pgherald_watch_holding{cluster}                                      1 while held (policy hold)
//   pgherald_watch_holds_total{cluster}                                  holds begun
//   pgherald_watch_master_status{cluster,status}                         1 for the source's state
//   pgherald_watch_zookeeper_connected{cluster}                          0 while disconnected
//   pgherald_watch_sink_apply_seconds{cluster,sink}                      histogram of Apply()
//   pgherald_watch_sink_applied_total{cluster,sink}                      counter
//   pgherald_watch_sink_failures_total{cluster,sink}                     counter
//   pgherald_watch_sink_consecutive_failures{cluster,sink}               0 once applied
//   pgherald_watch_sink_last_error_timestamp_seconds{cluster,sink}       0 before any failure
//
// A reload (SIGHUP) builds new sinks: their counters start again at 0 (a counter reset).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "clients/watch/cluster_controller.h"

namespace pgherald::watch {

using ClusterSnapshots = std::vector<std::pair<std::string, ClusterController::Snapshot>>;

std::string RenderWatchMetrics(const ClusterSnapshots& clusters);

}  // namespace pgherald::watch
