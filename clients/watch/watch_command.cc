// `pgherald watch [--config FILE] [--check]`: follow each configured cluster's master and drive its
// sinks; SIGHUP rebuilds the sinks (and re-reads their templates), SIGINT/SIGTERM stop.
#include "clients/watch/watch_command.h"

#include <signal.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "clients/watch/cluster_controller.h"
#include "clients/watch/library_master_source.h"
#include "clients/watch/watch_config.h"
#include "clients/watch/watch_metrics.h"
#include "common/cli.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/prometheus.h"
#include "common/reload.h"
#include "common/sd_notify.h"
#include "common/zk_acl.h"

namespace pgherald::watch {
namespace {

std::vector<std::unique_ptr<SinkWorker>> MakeWorkers(const ClusterWatchConfig& cluster) {
  std::vector<std::unique_ptr<SinkWorker>> workers;
  for (const auto& sink : cluster.sinks) {
    workers.push_back(std::make_unique<SinkWorker>(cluster.name, sink.Make(), cluster.retry));
  }
  return workers;
}

bool SamePolicy(const PolicyConfig& a, const PolicyConfig& b) {
  return a.on_unverified == b.on_unverified && a.unverified_grace == b.unverified_grace &&
         a.on_disconnect == b.on_disconnect && a.disconnect_grace == b.disconnect_grace &&
         a.max_hold == b.max_hold;
}

// SIGHUP with a valid `next`: every running cluster gets the sinks `next` names (templates read
// again); what the watch cannot change live (the set of clusters, a cluster's policy) is logged as
// needing a restart.
void ApplyReload(const WatchConfig& running, const WatchConfig& next,
                 const std::vector<std::unique_ptr<ClusterController>>& controllers,
                 const log::Logger& logger) {
  log::Init(next.logging);
  auto restart = [&logger](const std::string& what) {
    logger.Warn("reload_needs_restart",
                {{"section", what},
                 {"note", "changed in the file, not applied: restart the daemon to apply it"}});
  };
  for (const auto& cluster : next.clusters) {
    bool found = false;
    for (const auto& old : running.clusters) {
      if (old.name != cluster.name) continue;
      found = true;
      if (!SamePolicy(old.policy, cluster.policy))
        restart("watch.clusters." + cluster.name + " policy");
    }
    if (!found) restart("watch.clusters." + cluster.name + " (added)");
  }
  for (const auto& old : running.clusters) {
    bool found = false;
    for (const auto& cluster : next.clusters) found = found || cluster.name == old.name;
    if (!found) restart("watch.clusters." + old.name + " (removed)");
  }
  for (const auto& controller : controllers) {
    for (const auto& cluster : next.clusters) {
      if (cluster.name != controller->cluster()) continue;
      controller->ReplaceWorkers(MakeWorkers(cluster));
      logger.Info("sinks_reloaded", {{"cluster", cluster.name}, {"sinks", cluster.sinks.size()}});
    }
  }
}

}  // namespace

int RunWatchCommand(const std::vector<std::string>& args, const SinkRegistry& sinks) {
  auto start = cli::ParseDaemonArgs(
      "watch", "Follow the published master and drive HAProxy, pgbouncer, commands or files.", {},
      args, "docs/watch.md");
  if (const int* exit_code = std::get_if<int>(&start)) return *exit_code;
  const cli::DaemonArgs& flags = std::get<cli::DaemonArgs>(start);
  const std::string& path = flags.config_path;
  auto config = LoadWatchConfig(path, sinks);
  if (auto done = cli::ConfigOutcome("watch", flags, config.status())) return *done;
  log::Init(config->logging);
  const log::Logger logger("watch");

  // SIGINT/SIGTERM stop, SIGHUP reloads: blocked in every thread, taken here.
  const sigset_t signals = cli::BlockDaemonSignals();

  // The watch only reads, but it trusts the master record: refuse a world-writable tree like
  // the writers do (common/zk_acl.h).
  {
    std::vector<std::string> names;
    for (const auto& cluster : config->clusters) names.push_back(cluster.name);
    if (Status s =
            zkacl::CheckAtStart(config::GuardedZkSessions(config->zookeeper, "watch", names));
        !s.ok()) {
      std::fprintf(stderr, "pgherald watch: %s\n", s.message().c_str());
      return cli::kExitStartFailed;
    }
  }
  // Serving once every cluster's source has heard from ZooKeeper (any state but disconnected).
  std::set<std::string> clusters;
  for (const auto& cluster : config->clusters) clusters.insert(cluster.name);
  sdnotify::Readiness ready(clusters, "following " + std::to_string(clusters.size()) + " clusters");
  std::vector<std::unique_ptr<ClusterController>> controllers;
  std::vector<std::unique_ptr<MasterSource>> sources;
  for (const auto& cluster : config->clusters) {
    auto controller = std::make_unique<ClusterController>(
        cluster.name, cluster.policy, SystemClock::Instance(), MakeWorkers(cluster));
    controller->Start();
    std::unique_ptr<MasterSource> source =
        std::make_unique<LibraryMasterSource>(config->zookeeper, cluster.name);
    ClusterController* c = controller.get();
    source->Start([c, &ready, &logger, name = cluster.name](const client::MasterInfo& info) {
      c->HandleState(info);
      if (info.status == client::MasterStatus::kDisconnected || ready.ready()) return;
      if (Status s = ready.MarkUp(name); !s.ok()) logger.Warn("sd_notify_failed", {{"error", s}});
    });
    logger.Info("watch_started", {{"cluster", cluster.name},
                                  {"sinks", cluster.sinks.size()},
                                  {"on_unverified", PolicyName(cluster.policy.on_unverified)},
                                  {"on_disconnect", PolicyName(cluster.policy.on_disconnect)}});
    controllers.push_back(std::move(controller));
    sources.push_back(std::move(source));
  }
  std::unique_ptr<http::Server> server;
  if (config->http) {
    const auto* list = &controllers;
    auto started = http::Server::Start(*config->http, [list](const http::Request& r) {
      if (r.method != "GET" && r.method != "HEAD") return http::ErrorResponse(405, "use GET");
      if (r.path == "/metrics") {
        ClusterSnapshots snapshots;
        for (const auto& c : *list) snapshots.emplace_back(c->cluster(), c->snapshot());
        return http::Response{200, prom::kContentType, RenderWatchMetrics(snapshots), ""};
      }
      if (r.path == "/health") return http::Response{200, "text/plain", "ok\n", ""};
      return http::ErrorResponse(404, "no such endpoint: " + r.path + " (try /metrics)");
    });
    if (!started.ok()) {
      std::fprintf(stderr, "pgherald watch: %s\n", started.status().message().c_str());
      for (auto& s : sources) s->Stop();
      return cli::kExitStartFailed;
    }
    server = std::move(*started);
  }

  // SIGHUP: logging and the sinks (with their templates) change live; "watch" is applied in part
  // (ApplyReload says what needs a restart), the other sections need a restart.
  config::Reloader reloader(path, {"logging", "watch"});
  WatchConfig running = *config;
  const int sig = cli::WaitForStop(signals, [&] {
    (void)reloader.Reload(logger, [&]() -> Status {
      auto next = LoadWatchConfig(path, sinks);
      if (!next.ok()) return next.status();
      ApplyReload(running, *next, controllers, logger);
      running.logging = next->logging;
      for (auto& cluster : running.clusters) {
        for (const auto& n : next->clusters) {
          if (n.name == cluster.name) cluster.sinks = n.sinks;
        }
      }
      return Status::Ok();
    });
  });
  logger.Info("watch_stopping", {{"signal", sig}});
  (void)sdnotify::Notify("STOPPING=1");
  server.reset();
  for (auto& s : sources) s->Stop();
  for (auto& c : controllers) c->Stop();
  controllers.clear();  // joins the sink workers
  return cli::kExitOk;
}

}  // namespace pgherald::watch
