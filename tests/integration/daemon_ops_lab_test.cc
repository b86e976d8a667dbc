// SIGHUP, --check and /metrics of every daemon on the real lab (ZooKeeper ensemble, 3-node
// PostgreSQL 15 + repmgr/repmgrd, HAProxy): three `pgherald poller` (each with /metrics), two
// `pgherald orchestrator` and one `pgherald watch` driving HAProxy from a template.
//   - each daemon reloads a changed configuration on SIGHUP (log format/level, the orchestrator's
//     cluster list, the watch's template, applied without a new master), names what needs a
//     restart, and keeps running on a broken one with the error's file:line: key in its log;
//   - the poller's and the watch's /metrics follow a kill -9 failover (reachability, route, route
//     changes, sink apply latency); every daemon exports pgherald_build_info.
// The tests run in order and share one lab.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "tests/integration/observability_lab_util.h"

namespace pgherald::observability_lab {
namespace {

using std::chrono::seconds;

struct Shared {
  std::unique_ptr<ObservabilityLab> lab;
  std::vector<int> poller_ports;  // node n at [n - 1]
  std::unique_ptr<Process> watch;
  std::string watch_config;
  std::string template_path;
  std::string good_template;
  int watch_port = 0;
  int primary = 1;
};
Shared* g = nullptr;

// The port a daemon's log says its HTTP server listens on (0: not yet).
int ListeningPort(const Process& p) {
  std::smatch m;
  const std::string text = p.Log();
  static const std::regex re("http_listening .*port=([0-9]+)");
  return std::regex_search(text, m, re) ? std::stoi(m[1]) : 0;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    g = new Shared();
    LabExtras extras;
    extras.haproxy = true;
    extras.poller_http = true;
    auto lab = ObservabilityLab::Up(2, extras);
    // A server that cannot start is a failure, never a skip.
    ASSERT_TRUE(lab.ok()) << lab.status().ToString();
    g->lab = std::move(*lab);
    for (int n = 1; n <= 3; ++n) {
      int port = 0;
      ASSERT_TRUE(WaitUntil([&] { return (port = ListeningPort(g->lab->poller(n))) > 0; },
                            seconds(20)))
          << g->lab->poller(n).LogTail();
      g->poller_ports.push_back(port);
    }
    lab::Lab& l = g->lab->lab();
    g->template_path = l.dir() + "/ops-haproxy.cfg.tmpl";
    g->good_template = ReadFile(std::string(PGHERALD_SOURCE_DIR) + "/haproxy/examples/haproxy.cfg.tmpl");
    ASSERT_FALSE(g->good_template.empty());
    WriteText(g->template_path, g->good_template);
    g->watch_config = l.dir() + "/ops-watch.yaml";
    WriteText(g->watch_config, WatchConfig("info"));
    g->watch = Process::Start({Bin(), "watch", "--config", g->watch_config}, l.dir() + "/ops-watch.log");
    ASSERT_NE(g->watch, nullptr);
    ASSERT_TRUE(WaitUntil([&] { return (g->watch_port = ListeningPort(*g->watch)) > 0; },
                          seconds(20)))
        << g->watch->LogTail();
  }
  void TearDown() override {
    if (g == nullptr) return;
    if (::testing::UnitTest::GetInstance()->failed_test_count() > 0 && g->lab) {
      std::fprintf(stderr, "%s\n--- watch ---\n%s\n", g->lab->Logs().c_str(),
                   g->watch ? g->watch->LogTail(6000).c_str() : "");
    }
    if (g->watch) g->watch->Signal(SIGTERM);
    delete g;
    g = nullptr;
  }

  static std::string WatchConfig(const std::string& level) {
    lab::Lab& l = g->lab->lab();
    return "zookeeper: {connect: '" + l.zk_connect() + "', root: " + kRoot +
           ", session_timeout_ms: 6000}\n"
           "logging: {level: " + level + "}\n"
           "http: {address: 127.0.0.1, port: 0}\n"
           "watch:\n"
           "  clusters:\n"
           "    main:\n"
           "      retry_initial_ms: 50\n"
           "      retry_max_ms: 500\n"
           "      sinks:\n"
           "        - type: haproxy\n"
           "          admin_socket: " + l.Env("HAPROXY_ADMIN_SOCKET") + "\n"
           "          master_socket: " + l.Env("HAPROXY_MASTER_SOCKET") + "\n"
           "          backend: " + l.Env("HAPROXY_BACKEND") + "\n"
           "          server: " + l.Env("HAPROXY_SERVER") + "\n"
           "          config_file: " + l.Env("HAPROXY_CONFIG") + "\n"
           "          template: " + g->template_path + "\n"
           "          vars:\n"
           "            listen: 127.0.0.1:" + l.Env("HAPROXY_PORT") + "\n"
           "            admin_socket: " + l.Env("HAPROXY_ADMIN_SOCKET") + "\n"
           "            master_socket: " + l.Env("HAPROXY_MASTER_SOCKET") + "\n"
           "            backend: " + l.Env("HAPROXY_BACKEND") + "\n"
           "            server: " + l.Env("HAPROXY_SERVER") + "\n";
  }
};
[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new Environment);

std::string Scrape(int port) {
  HttpResult r = Http(port, "GET", "/metrics");
  return r.status == 200 ? r.body : "";
}

// The value of the sample `name` whose labels include every `labels` pair; NaN when absent. Every
// sample line must be well formed.
double Sample(const std::string& text, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  static const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::smatch m;
    if (!std::regex_match(line, m, sample_re)) {
      ADD_FAILURE() << "malformed sample line: " << line;
      return NAN;
    }
    if (m[1] != name) continue;
    const std::string l = m[3];
    bool all = true;
    for (const auto& kv : labels) {
      all = all && l.find(kv.first + "=\"" + kv.second + "\"") != std::string::npos;
    }
    if (all) return std::stod(m[4]);
  }
  return NAN;
}

std::string Node(int n) { return "node" + std::to_string(n); }

bool WatchRoutesTo(int node) {
  return Sample(Scrape(g->watch_port), "pgherald_watch_route",
                {{"cluster", kCluster}, {"action", "route"}, {"node", Node(node)}}) == 1;
}

TEST(DaemonOpsLabTest, EveryDaemonServesMetricsWithBuildInfo) {
  // The watch routes to the master the orchestrators verified, and its sink has applied it (the
  // route gauge moves when the target is dispatched; the sink's counters when the sink is done).
  ASSERT_TRUE(WaitUntil(
      [] {
        return WatchRoutesTo(1) && Sample(Scrape(g->watch_port), "pgherald_watch_sink_applied_total",
                                          {{"cluster", kCluster}}) >= 1;
      },
      seconds(60)))
      << Scrape(g->watch_port) << g->watch->LogTail();
  const std::string w = Scrape(g->watch_port);
  EXPECT_EQ(Sample(w, "pgherald_watch_zookeeper_connected", {{"cluster", kCluster}}), 1) << w;
  EXPECT_EQ(Sample(w, "pgherald_watch_master_status", {{"status", "vouched"}}), 1) << w;
  EXPECT_GE(Sample(w, "pgherald_watch_sink_applied_total", {{"cluster", kCluster}}), 1) << w;
  EXPECT_GE(Sample(w, "pgherald_watch_sink_apply_seconds_count", {{"cluster", kCluster}}), 1) << w;
  EXPECT_EQ(Sample(w, "pgherald_watch_sink_consecutive_failures", {{"cluster", kCluster}}), 0) << w;
  EXPECT_EQ(Sample(w, "pgherald_build_info"), 1) << w;
  for (int n = 1; n <= 3; ++n) {
    const int port = g->poller_ports[static_cast<std::size_t>(n - 1)];
    ASSERT_TRUE(WaitUntil(
        [&] {
          return Sample(Scrape(port), "pgherald_poller_observations_published_total") >= 1;
        },
        seconds(20)));
    const std::string p = Scrape(port);
    const std::map<std::string, std::string> who = {{"cluster", kCluster}, {"node", Node(n)}};
    EXPECT_EQ(Sample(p, "pgherald_poller_postgres_reachable", who), 1) << p;
    EXPECT_EQ(Sample(p, "pgherald_poller_postgres_in_recovery", who), n == 1 ? 0 : 1) << p;
    EXPECT_GE(Sample(p, "pgherald_poller_tick_seconds_count", who), 1) << p;
    EXPECT_GT(Sample(p, "pgherald_poller_last_publish_timestamp_seconds", who), 1.6e9) << p;
    EXPECT_EQ(Sample(p, "pgherald_poller_observation_publish_errors_total", who), 0) << p;
    EXPECT_EQ(Sample(p, "pgherald_build_info"), 1) << p;
  }
  EXPECT_EQ(Sample(Scrape(g->lab->port(0)), "pgherald_build_info"), 1);
}

TEST(DaemonOpsLabTest, CheckValidatesTheRunningConfigsAndNamesEveryError) {
  const CommandResult ok = RunCommand({Bin(), "watch", "--check", "--config", g->watch_config},
                                      g->lab->lab().dir());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, g->watch_config + ": configuration ok\n");
  const CommandResult p = RunCommand({Bin(), "poller", "--check", "--config", g->lab->poller_config(1)},
                                     g->lab->lab().dir());
  EXPECT_EQ(p.exit_code, 0) << p.err;
  const std::string broken = g->lab->lab().dir() + "/ops-broken-orch.yaml";
  std::string text = ReadFile(g->lab->orchestrator_config(0));
  text = std::regex_replace(text, std::regex("tick_ms: [0-9]+"), "tick_ms: soon");
  WriteText(broken, text + "htp: {}\n");
  const CommandResult o = RunCommand({Bin(), "orchestrator", "--check", "--config", broken},
                                     g->lab->lab().dir());
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find(broken + ":"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("orchestrator.tick_ms"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("htp"), std::string::npos) << o.err;
}

TEST(DaemonOpsLabTest, PollerReloadsLoggingKeepsABrokenConfigAndSaysWhatNeedsARestart) {
  Process& poller = g->lab->poller(2);
  const std::string path = g->lab->poller_config(2);
  const std::string original = ReadFile(path);
  std::string changed = std::regex_replace(original, std::regex("logging:\n  level: info\n"),
                                           "logging:\n  level: info\n  format: json\n");
  changed = std::regex_replace(changed, std::regex("session_timeout_ms: 4000"),
                               "session_timeout_ms: 5000");
  ASSERT_NE(changed, original);
  WriteFileMode(path, changed, 0600);
  poller.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return poller.Log().find("\"event\":\"reload_applied\"") != std::string::npos; },
                        seconds(10)))
      << poller.LogTail();
  const std::string log = poller.Log();
  EXPECT_NE(log.find("\"event\":\"reload_needs_restart\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"section\":\"zookeeper\""), std::string::npos) << log;

  // Broken: an unknown level. The running configuration stays (json lines go on).
  WriteFileMode(path, std::regex_replace(changed, std::regex("level: info"), "level: loud"), 0600);
  poller.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return poller.Log().find("reload_failed") != std::string::npos; },
                        seconds(10)))
      << poller.LogTail();
  const std::string failed = poller.Log().substr(poller.Log().find("reload_failed"));
  EXPECT_NE(failed.find(path + ":"), std::string::npos) << failed;
  EXPECT_NE(failed.find("logging.level"), std::string::npos) << failed;
  EXPECT_TRUE(poller.Running());
  const int port = g->poller_ports[1];
  const double ticks = Sample(Scrape(port), "pgherald_poller_tick_seconds_count");
  EXPECT_TRUE(WaitUntil([&] { return Sample(Scrape(port), "pgherald_poller_tick_seconds_count") > ticks; },
                        seconds(10)));
  WriteFileMode(path, original, 0600);
  poller.Send(SIGHUP);
  // Fixed: applied, and the lines are text again.
  ASSERT_TRUE(WaitUntil([&] { return poller.Log().find("reload_applied config=") != std::string::npos; },
                        seconds(10)))
      << poller.LogTail();
}

TEST(DaemonOpsLabTest, OrchestratorReloadsItsClusterListAndKeepsABrokenConfig) {
  Process& orch = g->lab->orchestrator(0);
  const std::string path = g->lab->orchestrator_config(0);
  const std::string original = ReadFile(path);
  const std::string added = std::regex_replace(
      original, std::regex("\nhttp:\n"),
      "\n  - name: extra\n    postgres: {user: nobody}\n    nodes: [{name: e1, host: 127.0.0.1, "
      "port: 1}]\nhttp:\n");
  ASSERT_NE(added, original);
  WriteText(path, added);
  orch.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return orch.Log().find("cluster_added cluster=extra") != std::string::npos; },
                        seconds(10)))
      << orch.LogTail();
  EXPECT_NE(orch.Log().find("reload_applied"), std::string::npos);
  // The API lists it (its znodes do not exist: a read error, not a crash).
  ASSERT_TRUE(WaitUntil([&] {
    return Http(g->lab->port(0), "GET", "/api/clusters").body.find("extra") != std::string::npos;
  }, seconds(10)));

  WriteText(path, added + "clusters_typo: 1\n");
  orch.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return orch.Log().find("reload_failed") != std::string::npos; },
                        seconds(10)))
      << orch.LogTail();
  EXPECT_NE(orch.Log().find("clusters_typo"), std::string::npos) << orch.LogTail();
  EXPECT_TRUE(orch.Running());

  WriteText(path, original);
  orch.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return orch.Log().find("cluster_removed cluster=extra") != std::string::npos; },
                        seconds(10)))
      << orch.LogTail();
  EXPECT_EQ(Http(g->lab->port(0), "GET", "/health").status, 200);
}

TEST(DaemonOpsLabTest, WatchAppliesAChangedTemplateOnReloadAndKeepsABrokenOne) {
  Process& watch = *g->watch;
  const std::string haproxy_cfg = g->lab->lab().Env("HAPROXY_CONFIG");
  // No new master: only the reload can put the marker into HAProxy's config.
  WriteText(g->template_path, g->good_template + "# reload-marker-1\n");
  WriteText(g->watch_config, Environment::WatchConfig("debug"));
  watch.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(haproxy_cfg).find("reload-marker-1") != std::string::npos; },
                        seconds(15)))
      << watch.LogTail();
  EXPECT_NE(watch.Log().find("sinks_reloaded cluster=main"), std::string::npos);
  EXPECT_NE(watch.Log().find("changed=logging"), std::string::npos) << watch.LogTail();
  EXPECT_TRUE(WatchRoutesTo(1));
  // Fresh sinks start their counters again (a counter reset), and applied the route once.
  EXPECT_TRUE(WaitUntil([&] {
    return Sample(Scrape(g->watch_port), "pgherald_watch_sink_applied_total") >= 1;
  }, seconds(10)));

  // Broken: a template with an unknown variable. The running sinks stay; the config file too.
  const std::string before = ReadFile(haproxy_cfg);
  WriteText(g->template_path, g->good_template + "# {{nope}}\n");
  watch.Send(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return watch.Log().find("reload_failed") != std::string::npos; },
                        seconds(10)))
      << watch.LogTail();
  const std::string failed = watch.Log().substr(watch.Log().find("reload_failed"));
  EXPECT_NE(failed.find(g->watch_config + ":"), std::string::npos) << failed;
  EXPECT_NE(failed.find("template"), std::string::npos) << failed;
  EXPECT_NE(failed.find("nope"), std::string::npos) << failed;
  EXPECT_EQ(ReadFile(haproxy_cfg), before);
  EXPECT_TRUE(watch.Running());
  WriteText(g->template_path, g->good_template + "# reload-marker-1\n");
}

TEST(DaemonOpsLabTest, MetricsFollowAFailover) {
  const double changes = Sample(Scrape(g->watch_port), "pgherald_watch_route_changes_total");
  ASSERT_FALSE(std::isnan(changes));
  ASSERT_TRUE(g->lab->lab().PgKill(1).ok());
  // The old primary's poller sees it unreachable.
  EXPECT_TRUE(WaitUntil([] {
    return Sample(Scrape(g->poller_ports[0]), "pgherald_poller_postgres_reachable") == 0;
  }, seconds(20)));
  int primary = 0;
  ASSERT_TRUE(WaitUntil([&] {
    for (int n = 2; n <= 3; ++n) {
      if (WatchRoutesTo(n)) primary = n;
    }
    return primary != 0;
  }, seconds(90))) << Scrape(g->watch_port) << g->watch->LogTail();
  const std::string w = Scrape(g->watch_port);
  EXPECT_GT(Sample(w, "pgherald_watch_route_changes_total"), changes) << w;
  EXPECT_TRUE(std::isnan(Sample(w, "pgherald_watch_route", {{"node", "node1"}}))) << w;
  EXPECT_TRUE(WaitUntil([&] {
    return Sample(Scrape(g->poller_ports[static_cast<std::size_t>(primary - 1)]),
                  "pgherald_poller_postgres_in_recovery") == 0;
  }, seconds(20)));
  EXPECT_GE(Sample(w, "pgherald_watch_sink_apply_seconds_count"), 2) << w;
}

}  // namespace
}  // namespace pgherald::observability_lab
