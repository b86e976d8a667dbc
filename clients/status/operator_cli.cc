#include "clients/status/operator_cli.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "clients/status/render.h"
#include "common/config.h"
#include "common/model/untrusted.h"
#include "common/zk_config.h"

namespace pgherald::status {

namespace {

const std::vector<cli::OptionSpec> kConnectSpecs = {
    {"config", "FILE", "any pgherald config file: its zookeeper: section is used"},
    {"zookeeper", "HOSTS", "ZooKeeper connect string (overrides the config's)"},
    {"root", "PATH", "pgherald's root znode (default /pgherald, or the config's)"},
    {"connect-timeout-ms", "MS", "how long to wait for ZooKeeper (default 5000)"},
};

}  // namespace

std::vector<cli::OptionSpec> With(std::vector<cli::OptionSpec> extra) {
  std::vector<cli::OptionSpec> all = kConnectSpecs;
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

std::optional<std::int64_t> ParseInt(const std::string& text) {
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

// Fills *out or returns the exit code of the failure (message printed).
int Connect(const char* command, const cli::ParsedArgs& args, Connection* out) {
  config::ZooKeeperConfig zk_config;
  if (auto path = args.Get("config")) {
    auto root = config::ConfigNode::LoadFile(*path);
    if (!root.ok()) {
      std::fprintf(stderr, "pgherald %s: %s\n", command, root.status().message().c_str());
      return kExitUsage;
    }
    (void)root->Keys();  // other sections belong to other commands: not ours to judge
    zk_config = config::ParseZooKeeper(root->Child("zookeeper"));
    if (Status s = root->Finish(); !s.ok()) {
      std::fprintf(stderr, "pgherald %s: %s\n", command, s.message().c_str());
      return kExitUsage;
    }
  }
  if (auto hosts = args.Get("zookeeper")) zk_config.connect = *hosts;
  if (auto r = args.Get("root")) zk_config.root = *r;
  if (zk_config.connect.empty()) {
    std::fprintf(stderr,
                 "pgherald %s: no ZooKeeper to read: pass --config FILE (a pgherald config with a "
                 "zookeeper: section) or --zookeeper HOST:PORT[,HOST:PORT]\n",
                 command);
    return kExitUsage;
  }
  if (zk_config.root.empty() || zk_config.root[0] != '/') {
    std::fprintf(stderr, "pgherald %s: --root must be an absolute znode path such as /pgherald\n",
                 command);
    return kExitUsage;
  }
  std::int64_t timeout_ms = 5000;
  if (auto t = args.Get("connect-timeout-ms")) {
    auto v = ParseInt(*t);
    if (!v || *v < 1) {
      std::fprintf(stderr,
                   "pgherald %s: --connect-timeout-ms: expected a positive integer, got \"%s\"\n",
                   command, t->c_str());
      return kExitUsage;
    }
    timeout_ms = *v;
  }
  zk::ZkClientOptions options = config::ToZkClientOptions(zk_config);
  options.connect_timeout = std::chrono::milliseconds(timeout_ms);
  // The C library's retry chatter is noise for a one-shot command; failures are reported below.
  options.log_sink = [](zk::ZkLogLevel, const std::string&) {};
  auto client = zk::ZkClient::Connect(options);
  if (!client.ok()) {
    std::fprintf(stderr, "pgherald %s: cannot reach ZooKeeper at %s: %s\n", command,
                 zk_config.connect.c_str(), client.status().message().c_str());
    return kExitZooKeeper;
  }
  out->zk = std::move(*client);
  out->root = zk_config.root;
  out->reconnect = zk::ZkClient::Factory(options);
  return kExitHealthy;
}

int Failure(const char* command, const Status& s) {
  // Messages may carry znode names and ZooKeeper's words: never a control character on a terminal.
  std::fprintf(stderr, "pgherald %s: %s\n", command,
               untrusted::SanitizeForDisplay(s.message()).c_str());
  return s.code() == StatusCode::kNotFound ? kExitNotFound : kExitZooKeeper;
}

// Parses the flags; returns -1 to go on, else the exit code (help printed, or usage error).
int ParseFlags(const char* command, const char* summary, const std::vector<std::string>& argv,
               const std::vector<cli::OptionSpec>& specs, cli::ParsedArgs* out) {
  auto parsed = cli::Parse(argv, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "pgherald %s: %s (see pgherald %s --help)\n", command,
                 parsed.status().message().c_str(), command);
    return kExitUsage;
  }
  if (parsed->help) {
    std::printf("%s", cli::Usage(command, summary, specs).c_str());
    return kExitHealthy;
  }
  if (!parsed->positional.empty()) {
    std::fprintf(stderr, "pgherald %s: unexpected argument \"%s\" (see pgherald %s --help)\n",
                 command, parsed->positional[0].c_str(), command);
    return kExitUsage;
  }
  *out = std::move(*parsed);
  return -1;
}

std::string OperatorIdentity() {
  const char* user = std::getenv("USER");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return std::string(user != nullptr ? user : "unknown") + "@" + host + " (cli)";
}

}  // namespace pgherald::status
