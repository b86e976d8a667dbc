#include "app/commands.h"

#include <cstdio>

#include "clients/watch/watch_command.h"
#include "common/cli.h"
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
    std::printf("%s", cli::Usage("version", "Print the version.", {}).c_str());
    return 0;
  }
  std::printf("pgherald %s\n", PGHERALD_VERSION);
  return 0;
}

// A command whose implementation has not landed yet: --help works, running it says so and fails.
template <const char* kName, const char* kSummary>
int Pending(const std::vector<std::string>& args) {
  std::vector<cli::OptionSpec> specs = {{"config", "FILE", "YAML configuration file"}};
  auto parsed = cli::Parse(args, specs);
  if (parsed.ok() && parsed->help) {
    std::printf("%s", cli::Usage(kName, kSummary, specs).c_str());
    return 0;
  }
  std::fprintf(stderr, "pgherald %s: not available in this build yet\n", kName);
  return 3;
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
constexpr char kWatch[] = "watch";
constexpr char kWatchSummary[] =
    "Follow the published master and drive HAProxy, pgbouncer, commands or files.";
constexpr char kStatus[] = "status";
constexpr char kStatusSummary[] = "Show each cluster's nodes, master and heartbeats.";

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {kPoller, kPollerSummary, &pollers::RunPollerCommand},
      {kNotify, kNotifySummary, &pollers::RunNotifyCommand},
      {kOrchestrator, kOrchestratorSummary, &orchestrator::RunOrchestratorCommand},
      {kWatch, kWatchSummary, &watch::RunWatchCommand},
      {kStatus, kStatusSummary, &Pending<kStatus, kStatusSummary>},
      {"version", "Print the version.", &RunVersion},
  };
  return commands;
}

}  // namespace pgherald::app
