#include "clients/status/status_command.h"

#include <cstdio>
#include <memory>
#include <optional>

#include "clients/status/operator_cli.h"
#include "clients/status/render.h"
#include "common/cli.h"
#include "common/model/untrusted.h"
#include "common/zk/zk_client.h"
#include "common/model/zk_paths.h"
#include "publishers/view/cluster_view.h"
#include "publishers/zk_publisher.h"

namespace pgherald::status {
namespace {

using view::ClusterStatus;
using view::ListClusters;
using view::ReadClusterStatus;
using view::ReadHistory;
using view::ReadOptions;
using view::WallNowMs;

int RunPauseOrResume(const char* command, bool paused, const std::vector<std::string>& argv) {
  const char* summary = paused ? "Put a cluster in maintenance: the orchestrator changes nothing "
                                 "(no publish, no withdrawal) until `pgherald resume`."
                               : "End a cluster's maintenance: the orchestrator decides again.";
  const auto specs = With({{"cluster", "NAME", "the cluster (required)"},
                           {"reason", "TEXT", "why, for the other operators (shown by status)"}});
  cli::ParsedArgs args;
  if (int rc = ParseFlags(command, summary, argv, specs, &args); rc >= 0) return rc;
  auto cluster = args.Get("cluster");
  if (!cluster || cluster->empty()) {
    std::fprintf(stderr, "pgherald %s: --cluster NAME is required\n", command);
    return kExitUsage;
  }
  Connection conn;
  if (int rc = Connect(command, args, &conn); rc != kExitHealthy) return rc;
  model::ControlState control;
  control.paused = paused;
  control.reason = args.Get("reason").value_or("");
  control.changed_by = OperatorIdentity();
  control.changed_at_ms = WallNowMs();
  if (Status s = publishers::WriteControl(*conn.zk, model::ClusterPaths(conn.root, *cluster), control);
      !s.ok())
    return Failure(command, s);
  std::printf(
      "cluster %s: %s\n", cluster->c_str(),
      paused ? "paused (the orchestrator will not change its master until resumed)" : "resumed");
  return kExitHealthy;
}

}  // namespace

int RunStatusCommand(const std::vector<std::string>& argv) {
  const auto specs =
      With({{"cluster", "NAME", "only this cluster (default: every cluster)"},
            {"json", "", "machine-readable output"},
            {"stale-after-ms", "MS", "a heartbeat older than this is stale (default 10000)"}});
  cli::ParsedArgs args;
  if (int rc =
          ParseFlags("status",
                     "Show each cluster's nodes, master and heartbeats. Exit codes: 0 healthy, "
                     "1 a cluster has no verified master or a node is stale/down/missing, "
                     "2 usage, 3 ZooKeeper unreachable, 4 no such cluster.",
                     argv, specs, &args);
      rc >= 0) {
    return rc;
  }
  ReadOptions options;
  if (auto t = args.Get("stale-after-ms")) {
    auto v = ParseInt(*t);
    if (!v || *v < 1) {
      std::fprintf(stderr,
                   "pgherald status: --stale-after-ms: expected a positive integer, got \"%s\"\n",
                   t->c_str());
      return kExitUsage;
    }
    options.stale_after_ms = *v;
  }
  Connection conn;
  if (int rc = Connect("status", args, &conn); rc != kExitHealthy) return rc;
  std::vector<std::string> names;
  if (auto c = args.Get("cluster")) {
    names.push_back(*c);
  } else {
    auto listed = ListClusters(*conn.zk, conn.root);
    if (!listed.ok()) return Failure("status", listed.status());
    names = *listed;
  }
  std::vector<ClusterStatus> clusters;
  for (const std::string& name : names) {
    auto s = ReadClusterStatus(*conn.zk, conn.root, name, options, WallNowMs());
    if (!s.ok()) return Failure("status", s.status());
    clusters.push_back(std::move(*s));
  }
  if (args.Has("json")) {
    std::printf("%s", RenderStatusJson(clusters).c_str());
  } else if (clusters.empty()) {
    std::printf("no clusters under %s/clusters\n", conn.root.c_str());
  } else {
    std::printf("%s", RenderStatusTable(clusters).c_str());
  }
  return ExitCodeFor(clusters);
}

int RunHistoryCommand(const std::vector<std::string>& argv) {
  const auto specs = With({{"cluster", "NAME", "the cluster (required)"},
                           {"limit", "N", "the latest N decisions (default 20)"},
                           {"json", "", "machine-readable output (the history payloads)"}});
  cli::ParsedArgs args;
  if (int rc = ParseFlags("history",
                          "Show the orchestrator's published decisions with their reasons and "
                          "evidence, oldest first.",
                          argv, specs, &args);
      rc >= 0) {
    return rc;
  }
  auto cluster = args.Get("cluster");
  if (!cluster || cluster->empty()) {
    std::fprintf(stderr, "pgherald history: --cluster NAME is required\n");
    return kExitUsage;
  }
  int limit = 20;
  if (auto l = args.Get("limit")) {
    auto v = ParseInt(*l);
    if (!v || *v < 1 || *v > 100000) {
      std::fprintf(stderr, "pgherald history: --limit: expected an integer 1..100000, got \"%s\"\n",
                   l->c_str());
      return kExitUsage;
    }
    limit = static_cast<int>(*v);
  }
  Connection conn;
  if (int rc = Connect("history", args, &conn); rc != kExitHealthy) return rc;
  auto exists = conn.zk->Exists(model::ClusterPaths(conn.root, *cluster).Cluster());
  if (!exists.ok()) return Failure("history", exists.status());
  if (!exists->has_value()) {
    return Failure("history", NotFound("cluster \"" + *cluster + "\" not found under " +
                                       model::RootPaths(conn.root).Clusters() +
                                       "; `pgherald status` lists the clusters"));
  }
  std::vector<std::string> corrupt;
  auto history = ReadHistory(*conn.zk, conn.root, *cluster, limit, nullptr, &corrupt);
  if (!history.ok()) return Failure("history", history.status());
  for (const std::string& c : corrupt)
    std::fprintf(stderr, "pgherald history: skipped %s\n",
                 untrusted::SanitizeForDisplay(c).c_str());
  std::printf("%s", args.Has("json") ? RenderHistoryJson(*cluster, *history).c_str()
                                     : RenderHistoryText(*cluster, *history).c_str());
  return kExitHealthy;
}

int RunPauseCommand(const std::vector<std::string>& args) {
  return RunPauseOrResume("pause", true, args);
}
int RunResumeCommand(const std::vector<std::string>& args) {
  return RunPauseOrResume("resume", false, args);
}

}  // namespace pgherald::status
