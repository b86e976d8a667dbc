// `pgherald watch --config FILE`: follow each configured cluster's master and drive its sinks.
#include "clients/watch/watch_command.h"

#include <signal.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "clients/watch/cluster_controller.h"
#include "clients/watch/library_master_source.h"
#include "clients/watch/watch_config.h"
#include "clients/watch/zk_master_source.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/sd_notify.h"
#include "common/zk_acl.h"

namespace pgherald::watch {

int RunWatchCommand(const std::vector<std::string>& args) {
  const std::vector<cli::OptionSpec> specs = {
      {"config", "FILE", "YAML configuration file (docs/watch.md)"},
      {"check", "", "validate the configuration (and templates) and exit"}};
  auto start = cli::ParseDaemonArgs(
      "watch", "Follow the published master and drive HAProxy, pgbouncer, commands or files.",
      specs, args, "see docs/watch.md");
  if (const int* exit_code = std::get_if<int>(&start)) return *exit_code;
  const auto& [flags, path] = std::get<cli::DaemonArgs>(start);
  auto config = LoadWatchConfig(path);
  if (!config.ok()) {
    std::fprintf(stderr, "pgherald watch: invalid configuration:\n%s\n",
                 config.status().message().c_str());
    return 2;
  }
  if (flags.Has("check")) {
    std::printf("%s: ok\n", path.c_str());
    return 0;
  }
  log::Init(config->logging);
  const log::Logger logger("watch");

  // SIGINT/SIGTERM end the daemon: block them in every thread, wait for them here.
  const sigset_t signals = cli::BlockStopSignals();

  // The watch only reads, but it trusts the master record: refuse a world-writable tree like
  // the writers do (common/zk_acl.h).
  {
    std::vector<std::string> names;
    for (const auto& cluster : config->clusters) names.push_back(cluster.name);
    if (Status s =
            zkacl::CheckAtStart(config::GuardedZkSessions(config->zookeeper, "watch", names));
        !s.ok()) {
      std::fprintf(stderr, "pgherald watch: %s\n", s.message().c_str());
      return 2;
    }
  }
  // Serving once every cluster's source has heard from ZooKeeper (any state but disconnected).
  std::set<std::string> clusters;
  for (const auto& cluster : config->clusters) clusters.insert(cluster.name);
  sdnotify::Readiness ready(clusters, "following " + std::to_string(clusters.size()) + " clusters");
  std::vector<std::unique_ptr<ClusterController>> controllers;
  std::vector<std::unique_ptr<MasterSource>> sources;
  for (const auto& cluster : config->clusters) {
    std::vector<std::unique_ptr<SinkWorker>> workers;
    for (const auto& sink : cluster.sinks) {
      workers.push_back(std::make_unique<SinkWorker>(cluster.name, MakeSink(sink), cluster.retry));
    }
    auto controller = std::make_unique<ClusterController>(
        cluster.name, cluster.policy, SystemClock::Instance(), std::move(workers));
    controller->Start();
    std::unique_ptr<MasterSource> source;
    if (config->source == "internal") {
      source = std::make_unique<ZkMasterSource>(config->zookeeper.root, cluster.name,
                                                ZkMasterSource::RealSessions(config->zookeeper));
    } else {
      source = std::make_unique<LibraryMasterSource>(config->zookeeper, cluster.name);
    }
    ClusterController* c = controller.get();
    source->Start([c, &ready, &logger, name = cluster.name](const client::MasterInfo& info) {
      c->HandleState(info);
      if (info.status == client::MasterStatus::kDisconnected || ready.ready()) return;
      if (Status s = ready.MarkUp(name); !s.ok()) logger.Warn("sd_notify_failed", {{"error", s}});
    });
    logger.Info("watch_started",
                {{"cluster", cluster.name}, {"source", config->source},
                 {"sinks", cluster.sinks.size()},
                 {"on_unverified", PolicyName(cluster.policy.on_unverified)},
                 {"on_disconnect", PolicyName(cluster.policy.on_disconnect)}});
    controllers.push_back(std::move(controller));
    sources.push_back(std::move(source));
  }
  int sig = 0;
  sigwait(&signals, &sig);
  logger.Info("watch_stopping", {{"signal", sig}});
  (void)sdnotify::Notify("STOPPING=1");
  for (auto& s : sources) s->Stop();
  for (auto& c : controllers) c->Stop();
  controllers.clear();  // joins the sink workers
  return 0;
}

}  // namespace pgherald::watch
