#include "orchestrator/accept_timeline.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/cli.h"
#include "common/config.h"
#include "common/zk_config.h"
#include "common/model/untrusted.h"
#include "common/model/zk_paths.h"
#include "common/zk/zk_client.h"

namespace pgherald::orchestrator {

Status AcceptLowerTimeline(zk::ZkSession& zk, const std::string& root, const std::string& cluster,
                           const publishers::ControlState& acceptance) {
  if (acceptance.accept_below_timeline == 0) return InvalidArgument("--timeline must be above 0");
  if (acceptance.accept_reason.empty()) return InvalidArgument("--reason must say why");
  publishers::ZkPublisher reader(&zk, root, "accept-timeline", 1);
  const model::ClusterPaths paths(root, cluster);
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> cluster_exists, zk.Exists(paths.Cluster()));
  if (!cluster_exists.has_value()) {
    return NotFound("cluster \"" + cluster + "\" not found (no " + paths.Cluster() + ")");
  }
  const std::string path = paths.Control();
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto control = reader.ReadControl(cluster);
    if (!control.ok()) return control.status();  // corrupt: named, not overwritten
    publishers::ControlState next = *control;
    next.accept_below_timeline = acceptance.accept_below_timeline;
    next.accept_by = untrusted::SanitizeForDisplay(acceptance.accept_by, publishers::kMaxControlTextLength);
    next.accept_reason =
        untrusted::SanitizeForDisplay(acceptance.accept_reason, publishers::kMaxControlTextLength);
    next.accept_at_ms = acceptance.accept_at_ms;
    const std::string data = publishers::ControlToJson(next);
    if (control->version < 0) {
      auto created = zk.Create(path, data, zk::CreateMode::kPersistent);
      if (created.ok()) return Status::Ok();
      if (created.status().code() != StatusCode::kAlreadyExists) return created.status();
      continue;  // raced with another writer: read again
    }
    auto set = zk.Set(path, data, control->version);
    if (set.ok()) return Status::Ok();
    if (set.status().code() != StatusCode::kBadVersion && set.status().code() != StatusCode::kNotFound) {
      return set.status();
    }
  }
  return Status(StatusCode::kUnavailable, path + " keeps changing; try again");
}

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitZooKeeper = 3;
constexpr int kExitNotFound = 4;

}  // namespace

int RunAcceptTimelineCommand(const std::vector<std::string>& argv) {
  static const char kCommand[] = "accept-timeline";
  const std::vector<cli::OptionSpec> specs = {
      {"config", "FILE", "any pgherald config file: its zookeeper: section is used"},
      {"zookeeper", "HOSTS", "ZooKeeper connect string (overrides the config's)"},
      {"root", "PATH", "pgherald's root znode (default /pgherald, or the config's)"},
      {"cluster", "NAME", "the cluster (required)"},
      {"timeline", "N", "the published master's timeline, given up (required)"},
      {"reason", "TEXT", "why, recorded in the history entry (required)"},
      {"by", "WHO", "who accepts (default $USER@host)"},
  };
  const char* summary =
      "Let the orchestrator publish a verified master on a timeline below the published one, "
      "whose node nobody reaches (one-shot; recorded in history with who and why).";
  auto parsed = cli::Parse(argv, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "pgherald %s: %s\n", kCommand, parsed.status().message().c_str());
    return kExitUsage;
  }
  if (parsed->help) {
    std::printf("%s", cli::Usage(kCommand, summary, specs).c_str());
    return kExitOk;
  }
  const auto cluster = parsed->Get("cluster");
  const auto timeline = parsed->Get("timeline");
  const auto reason = parsed->Get("reason");
  std::uint32_t tl = 0;
  if (timeline) {
    const auto [p, ec] = std::from_chars(timeline->data(), timeline->data() + timeline->size(), tl);
    if (ec != std::errc() || p != timeline->data() + timeline->size()) tl = 0;
  }
  if (!parsed->positional.empty() || !cluster || cluster->empty() || tl == 0 || !reason ||
      reason->empty()) {
    std::fprintf(stderr,
                 "pgherald %s: --cluster NAME, --timeline N (> 0) and --reason TEXT are required "
                 "(see pgherald %s --help)\n",
                 kCommand, kCommand);
    return kExitUsage;
  }
  config::ZooKeeperConfig zk_config;
  if (auto path = parsed->Get("config")) {
    auto root = config::ConfigNode::LoadFile(*path);
    if (!root.ok()) {
      std::fprintf(stderr, "pgherald %s: %s\n", kCommand, root.status().message().c_str());
      return kExitUsage;
    }
    (void)root->Keys();  // other sections belong to other commands
    zk_config = config::ParseZooKeeper(root->Child("zookeeper"));
    if (Status s = root->Finish(); !s.ok()) {
      std::fprintf(stderr, "pgherald %s: %s\n", kCommand, s.message().c_str());
      return kExitUsage;
    }
  }
  if (auto hosts = parsed->Get("zookeeper")) zk_config.connect = *hosts;
  if (auto r = parsed->Get("root")) zk_config.root = *r;
  if (zk_config.connect.empty() || zk_config.root.empty() || zk_config.root[0] != '/') {
    std::fprintf(stderr, "pgherald %s: pass --config FILE or --zookeeper HOSTS (and an absolute "
                 "--root)\n", kCommand);
    return kExitUsage;
  }
  zk::ZkClientOptions options = config::ToZkClientOptions(zk_config);
  options.log_sink = [](zk::ZkLogLevel, const std::string&) {};
  auto client = zk::ZkClient::Connect(options);
  if (!client.ok()) {
    std::fprintf(stderr, "pgherald %s: cannot reach ZooKeeper: %s\n", kCommand,
                 untrusted::SanitizeForDisplay(client.status().message()).c_str());
    return kExitZooKeeper;
  }
  publishers::ControlState acceptance;
  acceptance.accept_below_timeline = tl;
  acceptance.accept_reason = *reason;
  if (auto by = parsed->Get("by")) {
    acceptance.accept_by = *by;
  } else {
    const char* user = std::getenv("USER");
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    acceptance.accept_by = std::string(user != nullptr ? user : "unknown") + "@" + host + " (cli)";
  }
  acceptance.accept_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  if (Status s = AcceptLowerTimeline(**client, zk_config.root, *cluster, acceptance); !s.ok()) {
    std::fprintf(stderr, "pgherald %s: %s\n", kCommand,
                 untrusted::SanitizeForDisplay(s.message()).c_str());
    return s.code() == StatusCode::kNotFound ? kExitNotFound
           : s.code() == StatusCode::kInvalidArgument ? kExitFailed
                                                      : kExitZooKeeper;
  }
  std::printf("cluster %s: timeline %u accepted to be replaced by a lower one; the orchestrator "
              "publishes the best verified candidate and records it in history\n",
              cluster->c_str(), tl);
  return kExitOk;
}

}  // namespace pgherald::orchestrator
