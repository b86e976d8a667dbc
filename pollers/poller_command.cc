// `pgherald poller [--config FILE] [--check]` and `pgherald notify ...`: flags, config, wiring,
// the loop, SIGHUP.
#include "pollers/poller_command.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "common/build_info.h"
#include "common/cli.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/prometheus.h"
#include "common/reload.h"
#include "common/sd_notify.h"
#include "common/zk_acl.h"
#include "common/zk/zk_client.h"
#include "pollers/notify.h"
#include "pollers/poller.h"
#include "pollers/poller_config.h"
#include "pollers/poller_metrics.h"

namespace pgherald::pollers {
namespace {

const std::vector<cli::OptionSpec> kNotifyOptions = {
    {"socket", "PATH", "the poller's poller.notify_socket (else $PGHERALD_NOTIFY_SOCKET)"},
    {"config", "FILE", "read poller.notify_socket from the poller's config file instead"},
};

}  // namespace

int RunPollerCommand(const std::vector<std::string>& args) {
  auto start = cli::ParseDaemonArgs("poller",
                                    "Publishes this node's PostgreSQL/repmgr observation and "
                                    "repmgr's events to ZooKeeper, and fences a stale primary.",
                                    {}, args, "docs/poller.md");
  if (const int* exit_code = std::get_if<int>(&start)) return *exit_code;
  const cli::DaemonArgs& flags = std::get<cli::DaemonArgs>(start);
  const std::string& path = flags.config_path;
  auto cfg = LoadPollerConfig(path);
  StatusOr<pg::PgParams> pg_params =
      cfg.ok() ? config::ToPgParams(cfg->postgres) : StatusOr<pg::PgParams>(cfg.status());
  if (auto done = cli::ConfigOutcome("poller", flags, pg_params.status())) return *done;
  log::Init(cfg->logging);
  const log::Logger logger("poller");

  // SIGINT/SIGTERM stop, SIGHUP reloads: blocked in every thread, taken by one.
  const sigset_t signals = cli::BlockDaemonSignals();

  SessionFactory factory =
      config::GuardedZkSessions(cfg->zookeeper, "poller", {cfg->poller.cluster});
  if (Status s = zkacl::CheckAtStart(factory); !s.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", s.message().c_str());
    return cli::kExitStartFailed;
  }

  Poller poller(cfg->poller, *pg_params, factory, cfg->zookeeper.root, SystemClock::Instance(),
                build::Version());
  PollerMetrics metrics(cfg->poller.cluster, cfg->poller.node);
  poller.set_metrics(&metrics);
  if (Status s = poller.Start(); !s.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", s.message().c_str());
    return cli::kExitStartFailed;
  }
  std::unique_ptr<http::Server> server;
  if (cfg->http) {
    auto started = http::Server::Start(*cfg->http, [&metrics](const http::Request& r) {
      if (r.method != "GET" && r.method != "HEAD") return http::ErrorResponse(405, "use GET");
      if (r.path == "/metrics")
        return http::Response{200, prom::kContentType, metrics.Render(), ""};
      if (r.path == "/health") return http::Response{200, "text/plain", "ok\n", ""};
      return http::ErrorResponse(404, "no such endpoint: " + r.path + " (try /metrics)");
    });
    if (!started.ok()) {
      std::fprintf(stderr, "pgherald poller: %s\n", started.status().message().c_str());
      return cli::kExitStartFailed;
    }
    server = std::move(*started);
  }
  logger.Info("poller_starting", {{"cluster", cfg->poller.cluster},
                                  {"node", cfg->poller.node},
                                  {"postgres", pg_params->Describe()},
                                  {"zookeeper", cfg->zookeeper.connect},
                                  {"root", cfg->zookeeper.root},
                                  {"tick_ms", cfg->poller.tick},
                                  {"heartbeat_ms", cfg->poller.heartbeat},
                                  {"fence", FenceActionName(cfg->poller.fence.action)},
                                  {"version", build::Version()},
                                  {"commit", build::Commit()}});
  // Only logging changes live; the rest (node, PostgreSQL, ZooKeeper, fencing, http) needs a
  // restart, which reload_needs_restart says.
  config::Reloader reloader(path, {"logging"});
  // Serving once ZooKeeper has taken the first observation (PostgreSQL down is an observation).
  sdnotify::Readiness ready({}, "publishing " + cfg->poller.cluster + "/" + cfg->poller.node);
  poller.set_on_published([&ready, &logger] {
    if (Status s = ready.MarkUp("zookeeper"); !s.ok())
      logger.Warn("sd_notify_failed", {{"error", s}});
  });
  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    const int sig = cli::WaitForStop(signals, [&] {
      (void)reloader.Reload(logger, [&]() -> Status {
        PGH_ASSIGN_OR_RETURN(const PollerConfig next, LoadPollerConfig(path));
        log::Init(next.logging);
        return Status::Ok();
      });
    });
    logger.Info("poller_stopping", {{"signal", sig}});
    (void)sdnotify::Notify("STOPPING=1");
    stop.store(true);
  });
  poller.Run(stop);
  signal_thread.join();
  server.reset();
  logger.Info("poller_stopped", {{"node", cfg->poller.node}});
  return cli::kExitOk;
}

// Always exits 0 (except for --help): repmgr runs this synchronously during a failover, and a
// failing or slow notification must never hold it up. Problems go to stderr only.
int RunNotifyCommand(const std::vector<std::string>& args) {
  auto parsed = cli::Parse(args, kNotifyOptions);
  if (!parsed.ok()) {
    std::fprintf(stderr, "pgherald notify: %s\n", parsed.status().message().c_str());
    return 0;
  }
  if (parsed->help) {
    std::printf("%s",
                cli::Usage("notify [--socket PATH | --config FILE] NODE_ID EVENT SUCCESS TIMESTAMP "
                           "[DETAILS]",
                           "Hands a repmgr event to the local poller at once. For repmgr.conf:\n"
                           "  event_notification_command='/usr/bin/pgherald notify --socket "
                           "/run/pgherald/poller/notify.sock %n %e %s \"%t\" \"%d\"'",
                           kNotifyOptions)
                    .c_str());
    return 0;
  }
  auto message = ParseNotifyArgs(parsed->positional);
  if (!message.ok()) {
    std::fprintf(stderr, "pgherald notify: %s\n", message.status().message().c_str());
    return 0;
  }
  std::string socket = parsed->Get("socket").value_or("");
  if (socket.empty() && parsed->Has("config")) {
    auto cfg = LoadPollerConfig(*parsed->Get("config"));
    if (!cfg.ok()) {
      std::fprintf(stderr, "pgherald notify: %s\n", cfg.status().message().c_str());
      return 0;
    }
    socket = cfg->poller.notify_socket;
  }
  if (socket.empty()) {
    const char* env = std::getenv("PGHERALD_NOTIFY_SOCKET");
    if (env != nullptr) socket = env;
  }
  if (socket.empty()) {
    std::fprintf(stderr,
                 "pgherald notify: no socket: pass --socket PATH (poller.notify_socket), --config "
                 "FILE or set PGHERALD_NOTIFY_SOCKET\n");
    return 0;
  }
  if (Status s = SendNotify(socket, *message); !s.ok()) {
    std::fprintf(stderr, "pgherald notify: %s (event %s dropped)\n", s.message().c_str(),
                 message->event.c_str());
  }
  return 0;
}

}  // namespace pgherald::pollers
