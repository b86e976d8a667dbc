// `pgherald orchestrator [--config FILE] [--check]`: parse flags, load the config, wire the real
// ZooKeeper client, the libpq prober and the mirrors, and run the loop until SIGINT/SIGTERM
// (SIGHUP reloads).
#include "orchestrator/orchestrator_command.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"
#include "common/reload.h"
#include "common/sd_notify.h"
#include "common/zk_acl.h"
#include "common/zk/zk_client.h"
#include "orchestrator/http_server.h"
#include "orchestrator/metrics.h"
#include "orchestrator/orchestrator.h"
#include "orchestrator/orchestrator_config.h"
#include "publishers/file_publisher.h"

namespace pgherald::orchestrator {
namespace {

// Forwards every call to `inner` (the HTTP API's board) and tells systemd the daemon serves after
// the first round that ran on a connected ZooKeeper session (it has then joined the election).
class ReadyAfterConnectedRound : public RoundObserver {
 public:
  ReadyAfterConnectedRound(RoundObserver* inner, const log::Logger* log)
      : inner_(inner), log_(log), ready_({}, "deciding") {}
  void OnDecision(const std::string& cluster, const DecisionInput& input,
                  const Verdict& verdict) override {
    inner_->OnDecision(cluster, input, verdict);
  }
  void AfterRound(Orchestrator& orchestrator) override {
    inner_->AfterRound(orchestrator);
    const zk::ZkSession* session = orchestrator.session();
    if (ready_.ready() || session == nullptr || session->state() != zk::SessionState::kConnected) {
      return;
    }
    if (Status s = ready_.MarkUp(""); !s.ok()) log_->Warn("sd_notify_failed", {{"error", s}});
  }
  void OnPayloadProblem(const std::string& cluster, const std::string& kind) override {
    inner_->OnPayloadProblem(cluster, kind);
  }

 private:
  RoundObserver* inner_;
  const log::Logger* log_;
  sdnotify::Readiness ready_;
};

}  // namespace

int RunOrchestratorCommand(const std::vector<std::string>& args) {
  auto start = cli::ParseDaemonArgs(
      "orchestrator",
      "Decide and verify the master of each cluster and publish it to ZooKeeper. Run several "
      "instances: one leads.",
      {{"dry-run", "", "decide and log, publish nothing (overrides orchestrator.dry_run)"}}, args,
      "docs/orchestrator.md");
  if (const int* exit_code = std::get_if<int>(&start)) return *exit_code;
  const cli::DaemonArgs& flags = std::get<cli::DaemonArgs>(start);
  const std::string& path = flags.config_path;
  auto cfg = LoadOrchestratorConfig(path);
  if (auto done = cli::ConfigOutcome("orchestrator", flags, cfg.status())) return *done;
  if (flags.flags.Has("dry-run")) cfg->options.dry_run = true;
  log::Init(cfg->logging);
  const log::Logger logger("orchestrator");

  // SIGINT/SIGTERM stop, SIGHUP reloads: blocked in every thread, taken by one.
  const sigset_t set = cli::BlockDaemonSignals();

  std::vector<std::string> zk_clusters;
  for (const ClusterSpec& spec : cfg->clusters) zk_clusters.push_back(spec.name);
  SessionFactory factory = config::GuardedZkSessions(cfg->zookeeper, "orchestrator", zk_clusters);
  if (Status s = zkacl::CheckAtStart(factory); !s.ok()) {
    std::fprintf(stderr, "pgherald orchestrator: %s\n", s.message().c_str());
    return cli::kExitStartFailed;
  }

  PgNodeProber prober;
  std::unique_ptr<publishers::FilePublisher> file_publisher;
  std::vector<publishers::Publisher*> mirrors;
  if (cfg->file_publisher_dir) {
    file_publisher = std::make_unique<publishers::FilePublisher>(*cfg->file_publisher_dir);
    mirrors.push_back(file_publisher.get());
  }
  Orchestrator orchestrator(cfg->options, cfg->clusters, factory, &prober, &SystemClock::Instance(),
                            mirrors);
  // A kept connection the server closed (a crash, a kill, a shutdown) verifies its clusters at
  // once; the handler goes before the orchestrator does, on every way out.
  prober.SetConnectionLostHandler([&orchestrator](const std::string& host, int port) {
    orchestrator.NodeConnectionLost(host, port);
  });
  struct ClearLostHandler {
    PgNodeProber& prober;
    ~ClearLostHandler() { prober.SetConnectionLostHandler(nullptr); }
  } clear_lost_handler{prober};
  logger.Info("orchestrator_starting",
              {{"id", cfg->options.id},
               {"clusters", static_cast<int64_t>(cfg->clusters.size())},
               {"zookeeper", cfg->zookeeper.connect},
               {"root", cfg->zookeeper.root},
               {"dry_run", cfg->options.dry_run},
               {"tick_ms", cfg->options.tick},
               {"verify_interval_ms", cfg->options.verify_interval},
               {"batch_max", cfg->options.batch_max},
               {"successor_connections", cfg->options.successor_connections},
               {"confirmation_window_ms", cfg->options.policy.confirmation_window},
               {"strict", cfg->options.policy.strict_split_brain}});

  // The HTTP API reads the snapshot the loop publishes after each round (metrics.h).
  std::vector<std::string> cluster_names;
  for (const ClusterSpec& spec : cfg->clusters) cluster_names.push_back(spec.name);
  StatusBoard board(
      cfg->options.id, cfg->options.root, cluster_names, cfg->options.tick.count(),
      view::ReadOptions{
          std::max<std::int64_t>(10000, cfg->options.policy.observation_max_age.count()), 50});
  // The clusters' views are read by the board's own thread and session, never the loop's.
  board.StartReader(factory);
  ReadyAfterConnectedRound observer(&board, &logger);
  orchestrator.set_observer(&observer);
  std::unique_ptr<HttpServer> http;
  if (cfg->http) {
    // POSTs write the control znode through a session of their own, never the loop's.
    const std::string root = cfg->options.root;
    HttpServer::ControlWriter writer = [factory, root](const std::string& cluster,
                                                       const publishers::ControlState& control) {
      PGH_ASSIGN_OR_RETURN(const std::unique_ptr<zk::ZkSession> session, factory());
      Status s = publishers::WriteControl(*session, model::ClusterPaths(root, cluster), control);
      session->Close();
      return s;
    };
    auto started = HttpServer::Start(*cfg->http, &board, std::move(writer));
    if (!started.ok()) {
      std::fprintf(stderr, "pgherald orchestrator: %s\n", started.status().message().c_str());
      return cli::kExitStartFailed;
    }
    http = std::move(*started);
  }

  // SIGHUP: logging and the cluster list change live; the rest needs a restart.
  config::Reloader reloader(path, {"logging", "clusters"});
  std::atomic<bool> stop{false};
  std::thread signals([&] {
    const int sig = cli::WaitForStop(set, [&] {
      (void)reloader.Reload(logger, [&]() -> Status {
        PGH_ASSIGN_OR_RETURN(OrchestratorConfig next, LoadOrchestratorConfig(path));
        log::Init(next.logging);
        std::vector<std::string> names;
        for (const ClusterSpec& spec : next.clusters) names.push_back(spec.name);
        board.SetClusters(names);
        orchestrator.ReplaceClusters(std::move(next.clusters));
        return Status::Ok();
      });
    });
    logger.Info("orchestrator_stopping", {{"signal", sig}});
    (void)sdnotify::Notify("STOPPING=1");
    stop.store(true);
    orchestrator.Wake();
  });
  orchestrator.Run(stop);
  http.reset();  // stop serving before the loop's state goes away
  board.StopReader();
  orchestrator.Resign();
  signals.join();
  logger.Info("orchestrator_stopped", {{"id", cfg->options.id}});
  return cli::kExitOk;
}

}  // namespace pgherald::orchestrator
