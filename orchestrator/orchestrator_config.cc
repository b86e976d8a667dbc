#include "orchestrator/orchestrator_config.h"

#include <cctype>
#include <set>

#include "common/bounded_file.h"
#include "common/pg_config.h"
#include "common/logging.h"
#include "common/model/untrusted.h"

namespace pgherald::orchestrator {
namespace {

using untrusted::IsValidName;
constexpr char kNameRule[] = "must be 1-64 characters of [A-Za-z0-9_.-], not '.' or '..' (it becomes a znode name)";

// A cluster's `learn_nodes:` map (learn_policy.h); absent: learn only on the configured hosts.
LearnPolicy ParseLearnPolicy(config::ConfigNode n) {
  LearnPolicy p;
  if (!n.present()) return p;
  p.enabled = n.Optional<bool>("enabled", true);
  p.max = n.Optional<int>("max", p.max, {.min = 0, .max = 1000});
  for (const std::string& text : n.Optional<std::vector<std::string>>("networks", {})) {
    auto net = Network::Parse(text);
    if (!net.ok()) {
      n.Fail("networks", net.status().message());
    } else {
      p.networks.push_back(*net);
    }
  }
  for (const std::string& glob : n.Optional<std::vector<std::string>>("names", {})) {
    bool ok = !glob.empty() && glob.size() <= untrusted::kMaxNameLength;
    for (char ch : glob) {
      const bool allowed = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' ||
                           ch == '-' || ch == '*';
      if (!allowed) ok = false;
    }
    if (!ok) {
      n.Fail("names", "\"" + glob + "\" is not a name pattern: use [A-Za-z0-9_.-] and '*', e.g. db-*");
    } else {
      p.names.push_back(glob);
    }
  }
  return p;
}

}  // namespace

StatusOr<OrchestratorConfig> ParseOrchestratorConfig(config::ConfigNode root) {
  OrchestratorConfig out;
  out.zookeeper = config::ParseZooKeeper(root.Child("zookeeper"));
  out.logging = config::ParseLogging(root.Child("logging"));
  out.options.root = out.zookeeper.root;

  config::ConfigNode o = root.Child("orchestrator");
  OrchestratorOptions& opt = out.options;
  opt.id = o.Required<std::string>("id");
  if (!opt.id.empty() && !IsValidName(opt.id)) o.Fail("id", kNameRule);
  opt.tick = o.Optional<Millis>("tick_ms", opt.tick, {.min = Millis(10), .max = Millis(600000)});
  // Default: the tick (every cluster verified once per tick, as before the scheduler had a cadence).
  opt.verify_interval = o.Optional<Millis>("verify_interval_ms", opt.tick,
                                           {.min = Millis(10), .max = Millis(600000)});
  opt.policy.confirmation_window = o.Optional<Millis>(
      "confirmation_window_ms", opt.policy.confirmation_window, {.min = Millis(0), .max = Millis(3600000)});
  opt.policy.strict_split_brain = o.Optional<bool>("strict", false);
  opt.policy.self_fence_deadline = o.Optional<Millis>(
      "self_fence_deadline_ms", opt.policy.self_fence_deadline, {.min = Millis(0), .max = Millis(3600000)});
  opt.probe_timeout = o.Optional<Millis>("probe_timeout_ms", opt.probe_timeout,
                                         {.min = Millis(50), .max = Millis(600000)});
  opt.dry_run = o.Optional<bool>("dry_run", false);
  opt.history_limit = o.Optional<int>("history_limit", opt.history_limit, {.min = 1, .max = 1000000});
  opt.learn_nodes = o.Optional<bool>("learn_nodes", true);
  // Default: the verification cadence (a re-affirmation at most once per verification).
  opt.voucher_reaffirm = o.Optional<Millis>("voucher_reaffirm_ms", opt.verify_interval,
                                            {.min = Millis(10), .max = Millis(600000)});
  opt.batch_max = o.Optional<int>("batch_max", opt.batch_max, {.min = 1, .max = 10000});
  opt.successor_connections = o.Optional<bool>("successor_connections", true);
  out.file_publisher_dir = o.Optional<std::string>("file_publisher_dir");
  // A probe older than a few verifications is no evidence; an observation older than the session
  // timeout belongs to a poller that is gone.
  opt.policy.probe_max_age = std::max(Millis(3000), 3 * std::max(opt.tick, opt.verify_interval));
  opt.policy.observation_max_age = std::max(Millis(10000), out.zookeeper.session_timeout);

  std::vector<config::ConfigNode> clusters = root.List("clusters");
  if (clusters.empty() && !root.Has("clusters")) {
    root.Fail("clusters", "missing required value (expected a list of clusters, each with name, "
                          "nodes and postgres)");
  }
  std::set<std::string> cluster_names;
  std::vector<config::PostgresConfig> pg_configs;
  std::vector<int> pg_lines;  // each cluster's postgres section, for errors found after Finish()
  for (config::ConfigNode& cn : clusters) {
    ClusterSpec spec;
    spec.name = cn.Required<std::string>("name");
    if (!spec.name.empty() && !IsValidName(spec.name)) cn.Fail("name", kNameRule);
    if (!spec.name.empty() && !cluster_names.insert(spec.name).second) {
      cn.Fail("name", "duplicate cluster name \"" + spec.name + "\"");
    }
    config::ConfigNode pgn = cn.Child("postgres");
    config::PostgresConfig pg;
    pg.user = pgn.Required<std::string>("user");
    pg.dbname = pgn.Optional<std::string>("dbname", pg.user);
    pg.password = pgn.Optional<std::string>("password");
    pg.password_file = pgn.Optional<std::string>("password_file");
    if (pg.password && pg.password_file) {
      pgn.Fail("password_file", "set either password or password_file, not both");
    }
    pg.connect_timeout = pgn.Optional<Millis>("connect_timeout_ms", Millis(1000),
                                              {.min = Millis(100), .max = Millis(600000)});
    pg.statement_timeout = pgn.Optional<Millis>("statement_timeout_ms", Millis(1000),
                                                {.min = Millis(0), .max = Millis(3600000)});
    pg.application_name = pgn.Optional<std::string>("application_name", "pgherald-orchestrator");
    pg.options = pgn.Optional<std::map<std::string, std::string>>("options", {});
    config::CheckPostgresOptions(pgn, pg.options);
    spec.learn = ParseLearnPolicy(cn.Child("learn_nodes"));
    std::set<std::string> node_names;
    std::vector<std::pair<std::string, std::pair<std::string, int>>> nodes;
    for (config::ConfigNode& nn : cn.List("nodes")) {
      const std::string name = nn.Required<std::string>("name");
      if (!name.empty() && !IsValidName(name)) nn.Fail("name", kNameRule);
      if (!name.empty() && !node_names.insert(name).second) {
        nn.Fail("name", "duplicate node name \"" + name + "\" in this cluster");
      }
      const std::string host = nn.Required<std::string>("host");
      if (!host.empty() && !untrusted::IsValidHost(host)) {
        nn.Fail("host", std::string("must be ") + untrusted::kHostRule);
      }
      const int port = nn.Optional<int>("port", 5432, {.min = 1, .max = 65535});
      nodes.push_back({name, {host, port}});
    }
    // Validate the rest before reading password files, so every key error is reported at once.
    pg.host = "127.0.0.1";
    pg_configs.push_back(pg);
    pg_lines.push_back(pgn.line());
    for (const auto& [name, hp] : nodes) {
      NodeTarget t;
      t.name = name;
      t.params.host = hp.first;
      t.params.port = hp.second;
      spec.nodes.push_back(std::move(t));
    }
    out.clusters.push_back(std::move(spec));
  }
  if (root.Has("http")) {  // the HTTP API (http_server.h); absent: no server
    config::ConfigNode h = root.Child("http");
    http::HttpConfig web;
    static_cast<http::ListenConfig&>(web) = http::ParseListen(h);
    web.threads = h.Optional<int>("threads", web.threads, {.min = 1, .max = 64});
    web.token_file = h.Optional<std::string>("token_file", "");
    out.http = web;
  }
  PGH_RETURN_IF_ERROR(root.Finish());
  if (out.http && !out.http->token_file.empty()) {
    // The token is a secret: errors name the file, never its content.
    auto file = ReadBoundedFile(out.http->token_file, "http.token_file", kMaxSecretFileBytes);
    if (!file.ok()) {
      return InvalidArgument(file.status().message() +
                             " (fix: a regular file with the bearer token on one line, mode 0600)");
    }
    if (file->group_or_world_readable) {
      static const log::Logger logger("config");
      logger.Warn("secret_file_readable_by_others", {{"key", "http.token_file"},
                                                     {"path", out.http->token_file},
                                                     {"fix", "chmod 600 " + out.http->token_file}});
    }
    std::string token = std::move(file->content);
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
      token.pop_back();
    }
    if (token.size() < 16) {
      return InvalidArgument("http.token_file: \"" + out.http->token_file +
                             "\" holds fewer than 16 characters: use a long random token");
    }
    out.http->token = token;
  }
  for (std::size_t i = 0; i < out.clusters.size(); ++i) {
    auto params = config::ToPgParams(pg_configs[i]);
    if (!params.ok()) {
      // A password file that cannot be read or is empty: name where it is configured and the fix
      // (never the file's content).
      return InvalidArgument(root.file() + ":" + std::to_string(pg_lines[i]) + ": clusters[" +
                             std::to_string(i) + "].postgres.password_file: " +
                             params.status().message() +
                             " (fix: put the password on the file's first line, readable by the "
                             "orchestrator's user, or set postgres.password)");
    }
    ClusterSpec& spec = out.clusters[i];
    spec.defaults = *params;
    for (NodeTarget& t : spec.nodes) {
      const std::string host = t.params.host;
      const int port = t.params.port;
      t.params = *params;
      t.params.host = host;
      t.params.port = port;
    }
  }
  return out;
}

StatusOr<OrchestratorConfig> LoadOrchestratorConfig(const std::string& path) {
  PGH_ASSIGN_OR_RETURN(const config::ConfigNode root, config::ConfigNode::LoadFile(path));
  return ParseOrchestratorConfig(root);
}

}  // namespace pgherald::orchestrator
