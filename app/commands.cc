#include "app/commands.h"

#include <cstdio>

#include "app/builtin_sinks.h"
#include "app/zk_init.h"
#include "clients/status/status_command.h"
#include "clients/switchover/switchover_command.h"
#include "clients/watch/watch_command.h"
#include "common/build_info.h"
#include "common/cli.h"
#include "orchestrator/accept_timeline.h"
#include "orchestrator/orchestrator_command.h"
#include "pollers/poller_command.h"

namespace pgherald::app {
namespace {

int RunVersion(const std::vector<std::string>& args) {
  auto parsed = cli::Parse(args, {});
  if (!parsed.ok()) {
    std::fprintf(stderr, "pgherald version: %s\n", parsed.status().message().c_str());
    return 2;
  }
  if (parsed->help) {
    std::printf("%s", cli::Usage("version", "Print the version, git commit and build type.", {})
                          .c_str());
    return 0;
  }
  std::printf("%s\n", build::Describe().c_str());
  return 0;
}

constexpr char kPoller[] = "poller";
constexpr char kPollerSummary[] =
    "Run beside a PostgreSQL node: publish its observations and repmgr's events to ZooKeeper.";
constexpr char kNotify[] = "notify";
constexpr char kNotifySummary[] =
    "repmgr's event_notification_command: hand an event to the local poller at once.";
constexpr char kOrchestrator[] = "orchestrator";
constexpr char kOrchestratorSummary[] =
    "Decide and verify the master of each cluster and publish it to ZooKeeper.";
int RunWatch(const std::vector<std::string>& args) {
  return watch::RunWatchCommand(args, BuiltinSinks());
}

constexpr char kWatch[] = "watch";
constexpr char kWatchSummary[] =
    "Follow the published master and drive HAProxy, pgbouncer, commands or files.";

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {kPoller, kPollerSummary, &pollers::RunPollerCommand},
      {kNotify, kNotifySummary, &pollers::RunNotifyCommand},
      {kOrchestrator, kOrchestratorSummary, &orchestrator::RunOrchestratorCommand},
      {kWatch, kWatchSummary, &RunWatch},
      {"status", "Show each cluster's nodes, master and heartbeats.", &status::RunStatusCommand},
      {"history", "Show a cluster's decision log with reasons and evidence.",
       &status::RunHistoryCommand},
      {"pause", "Put a cluster in maintenance: the orchestrator changes nothing.",
       &status::RunPauseCommand},
      {"resume", "End a cluster's maintenance.", &status::RunResumeCommand},
      {"accept-timeline",
       "Accept a lower timeline over a published master nobody reaches (one-shot, in history).",
       &orchestrator::RunAcceptTimelineCommand},
      {"switchover",
       "Switch the primary over to a standby through the pollers (checks, plan, --dry-run, "
       "--abort).",
       &switchover::RunSwitchoverCommand},
      {"zk-init", "Create or migrate the ZooKeeper tree with per-role ACLs (docs/security.md).",
       &RunZkInitCommand},
      {"version", "Print the version, git commit and build type (also --version).", &RunVersion},
  };
  return commands;
}

}  // namespace pgherald::app
