// `pgherald poller --config FILE` and `pgherald notify ...`: flags, config, wiring, the loop.
#include "pollers/poller_command.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"
#include "common/sd_notify.h"
#include "common/zk_acl.h"
#include "common/zk_client.h"
#include "pollers/notify.h"
#include "pollers/poller.h"
#include "pollers/poller_config.h"

#ifndef PGHERALD_VERSION
#define PGHERALD_VERSION "dev"
#endif

namespace pgherald::pollers {
namespace {

const std::vector<cli::OptionSpec> kPollerOptions = {
    {"config", "FILE", "YAML configuration (see docs/poller.md)"},
};

const std::vector<cli::OptionSpec> kNotifyOptions = {
    {"socket", "PATH", "the poller's poller.notify_socket (else $PGHERALD_NOTIFY_SOCKET)"},
    {"config", "FILE", "read poller.notify_socket from the poller's config file instead"},
};

}  // namespace

int RunPollerCommand(const std::vector<std::string>& args) {
  auto parsed = cli::Parse(args, kPollerOptions);
  if (!parsed.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", parsed.status().message().c_str());
    return 2;
  }
  if (parsed->help) {
    std::printf("%s", cli::Usage("poller",
                                 "Publishes this node's PostgreSQL/repmgr observation and repmgr's "
                                 "events to ZooKeeper, and fences a stale primary.",
                                 kPollerOptions)
                          .c_str());
    return 0;
  }
  auto path = parsed->Get("config");
  if (!path) {
    std::fprintf(stderr, "pgherald poller: --config FILE is required\n");
    return 2;
  }
  auto cfg = LoadPollerConfig(*path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", cfg.status().message().c_str());
    return 2;
  }
  auto pg_params = config::ToPgParams(cfg->postgres);
  if (!pg_params.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", pg_params.status().message().c_str());
    return 2;
  }
  log::Init(cfg->logging);
  const log::Logger logger("poller");

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  SessionFactory factory =
      config::GuardedZkSessions(cfg->zookeeper, "poller", {cfg->poller.cluster});
  if (Status s = zkacl::CheckAtStart(factory); !s.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", s.message().c_str());
    return 2;
  }

  Poller poller(cfg->poller, *pg_params, factory, cfg->zookeeper.root, SystemClock::Instance(),
                PGHERALD_VERSION);
  if (Status s = poller.Start(); !s.ok()) {
    std::fprintf(stderr, "pgherald poller: %s\n", s.message().c_str());
    return 2;
  }
  logger.Info("poller_starting", {{"cluster", cfg->poller.cluster},
                                  {"node", cfg->poller.node},
                                  {"postgres", pg_params->Describe()},
                                  {"zookeeper", cfg->zookeeper.connect},
                                  {"root", cfg->zookeeper.root},
                                  {"tick_ms", cfg->poller.tick},
                                  {"heartbeat_ms", cfg->poller.heartbeat},
                                  {"fence", FenceActionName(cfg->poller.fence.action)}});
  // Serving once ZooKeeper has taken the first observation (PostgreSQL down is an observation).
  sdnotify::Readiness ready({}, "publishing " + cfg->poller.cluster + "/" + cfg->poller.node);
  poller.set_on_published([&ready, &logger] {
    if (Status s = ready.MarkUp("zookeeper"); !s.ok()) logger.Warn("sd_notify_failed", {{"error", s}});
  });
  std::atomic<bool> stop{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    logger.Info("poller_stopping", {{"signal", sig}});
    (void)sdnotify::Notify("STOPPING=1");
    stop.store(true);
  });
  poller.Run(stop);
  signals.join();
  logger.Info("poller_stopped", {{"node", cfg->poller.node}});
  return 0;
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
                           "/run/pgherald/notify.sock %n %e %s \"%t\" \"%d\"'",
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
