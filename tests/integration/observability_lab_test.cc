// Observability on the real lab (ZooKeeper ensemble, 3-node PostgreSQL 15 + repmgr/repmgrd, three
// `pgherald poller` and two `pgherald orchestrator` processes with the HTTP API on):
// `pgherald status` shows the right master before and after a kill -9 failover, `history` shows
// the failover decision with its evidence, /metrics parses as Prometheus text and its
// master-change counter increases across the failover, POST pause/resume refuse a missing or
// wrong token and the right one (and the CLI) change the control znode.
// The cases share one lab and its processes, and each starts from the same known state whatever the
// case before left (ObservabilityLabTest's SetUp): the lab restored (Lab::Restore: one primary P,
// the two others streaming from it), every poller and orchestrator running, the cluster not paused,
// and `pgherald status` showing P verified with every node healthy. Waits are on conditions (their
// deadlines are safety nets); heartbeat ages and latencies are printed, never bounded.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "publishers/zk_publisher.h"
#include "tests/integration/observability_lab_util.h"

namespace pgherald::observability_lab {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

struct Shared {
  std::unique_ptr<ObservabilityLab> lab;
  std::unique_ptr<zk::ZkClient> zk;
  int primary = 0;  // P of the case running
};
Shared* g = nullptr;

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    g = new Shared();
    auto lab = ObservabilityLab::Up(2);
    // A server that cannot start is a failure, never a skip.
    ASSERT_TRUE(lab.ok()) << lab.status().ToString();
    g->lab = std::move(*lab);
    g->zk = orchestrator_lab::Reader(g->lab->lab());
    ASSERT_NE(g->zk, nullptr);
  }
  void TearDown() override {
    if (g == nullptr) return;
    if (::testing::UnitTest::GetInstance()->failed_test_count() > 0 && g->lab) {
      std::fprintf(stderr, "%s\n", g->lab->Logs().c_str());
    }
    delete g;
    g = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new Environment);

std::string Node(int n) { return "node" + std::to_string(n); }

// `pgherald status --cluster main --json`, parsed; null on failure.
json StatusJson(int* exit_code = nullptr) {
  CommandResult r = g->lab->Cli({"status", "--cluster", kCluster, "--json"});
  if (exit_code != nullptr) *exit_code = r.exit_code;
  json j = json::parse(r.out, nullptr, false);
  return j.is_discarded() ? json() : j;
}

bool StatusShowsMaster(int node, int* exit_code = nullptr) {
  json j = StatusJson(exit_code);
  if (j.is_null() || j["clusters"].empty()) return false;
  const json& m = j["clusters"][0]["master"];
  return m.value("node", "") == Node(node) && m.value("verified", false);
}

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// A strict parser of the text format: HELP/TYPE before samples, escaped label values, numeric
// values. Returns nullopt (and records a failure) on a malformed line.
std::optional<std::vector<PromSample>> ParseProm(const std::string& text) {
  std::vector<PromSample> out;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  const std::regex type_re(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  const std::regex help_re(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
  const std::regex sample_re(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$)");
  const std::regex label_re(R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)\")");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.rfind("# TYPE", 0) == 0) {
      if (!std::regex_match(line, m, type_re)) {
        ADD_FAILURE() << "bad TYPE line: " << line;
        return std::nullopt;
      }
      types[m[1]] = m[2];
      continue;
    }
    if (line.rfind("# HELP", 0) == 0) {
      if (!std::regex_match(line, help_re)) {
        ADD_FAILURE() << "bad HELP line: " << line;
        return std::nullopt;
      }
      continue;
    }
    if (!std::regex_match(line, m, sample_re)) {
      ADD_FAILURE() << "bad sample line: " << line;
      return std::nullopt;
    }
    PromSample s;
    s.name = m[1];
    const std::string labels = m[3];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label_re);
         it != std::sregex_iterator(); ++it) {
      std::string raw = (*it)[2], value;
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\\' && i + 1 < raw.size()) {
          ++i;
          value += raw[i] == 'n' ? '\n' : raw[i];
        } else {
          value += raw[i];
        }
      }
      s.labels[(*it)[1]] = value;
    }
    const std::string v = m[4];
    try {
      s.value = v == "+Inf" ? INFINITY : v == "-Inf" ? -INFINITY : std::stod(v);
    } catch (...) {
      ADD_FAILURE() << "bad value: " << line;
      return std::nullopt;
    }
    std::string family = s.name;
    for (const std::string sfx : {"_bucket", "_sum", "_count"}) {
      if (types.count(family) == 0 && family.size() > sfx.size() &&
          family.compare(family.size() - sfx.size(), sfx.size(), sfx) == 0) {
        family.resize(family.size() - sfx.size());
      }
    }
    if (types.count(family) == 0) {
      ADD_FAILURE() << "sample without a TYPE: " << line;
      return std::nullopt;
    }
    out.push_back(std::move(s));
  }
  return out;
}

double Metric(const std::vector<PromSample>& samples, const std::string& name,
              const std::map<std::string, std::string>& labels) {
  for (const PromSample& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all &= s.labels.count(k) > 0 && s.labels.at(k) == v;
    if (all) return s.value;
  }
  return -1;
}

// The leader's HTTP port (either orchestrator may lead), awaited; 0 when none leads.
int LeaderPort() {
  int port = 0;
  WaitUntil(
      [&] {
        for (int i = 0; i < 2; ++i) {
          HttpResult h = Http(g->lab->port(i), "GET", "/health");
          json j = json::parse(h.body, nullptr, false);
          if (!j.is_discarded() && j["role"] == "leader") {
            port = g->lab->port(i);
            return true;
          }
        }
        return false;
      },
      seconds(60), std::chrono::milliseconds(200));
  return port;
}

// The node heartbeat ages `pgherald status --json` reports, "node=age" joined ("" if unreadable).
std::string HeartbeatAges() {
  json j = StatusJson();
  if (j.is_null() || j["clusters"].empty()) return "";
  std::string out;
  for (const json& n : j["clusters"][0]["nodes"]) {
    if (!n.contains("heartbeat_age_ms") || !n["heartbeat_age_ms"].is_number_integer()) return "";
    out += n.value("node", "?") + "=" + std::to_string(n["heartbeat_age_ms"].get<std::int64_t>()) + " ";
  }
  return out;
}

// The known state every case starts from (the comment at the top).
class ObservabilityLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(g, nullptr);
    auto primary = g->lab->lab().Restore(g->primary);
    ASSERT_TRUE(primary.ok()) << primary.status().ToString();
    g->primary = *primary;
    for (int n = 1; n <= 3; ++n) {
      ASSERT_TRUE(g->lab->poller(n).Running()) << "poller " << n << " exited\n" << g->lab->Logs();
    }
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(g->lab->orchestrator(i).Running()) << "orchestrator " << i << " exited\n"
                                                     << g->lab->Logs();
    }
    json j = StatusJson();
    if (!j.is_null() && !j["clusters"].empty() && j["clusters"][0].value("paused", false)) {
      CommandResult r = g->lab->Cli({"resume", "--cluster", kCluster});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    int exit_code = -1;
    // Healthy: the master is verified and every node's poller heartbeats (exit code 0).
    ASSERT_TRUE(WaitUntil(
        [&] { return StatusShowsMaster(g->primary, &exit_code) && exit_code == 0; }, seconds(90),
        std::chrono::milliseconds(300)))
        << StatusJson().dump(2) << g->lab->Logs();
  }
};

TEST_F(ObservabilityLabTest, StatusShowsTheMasterWithHeartbeatsAndExitsZero) {
  json c = StatusJson()["clusters"][0];
  ASSERT_EQ(c["nodes"].size(), 3u);
  for (const json& n : c["nodes"]) {
    ASSERT_TRUE(n.contains("heartbeat_age_ms") && n["heartbeat_age_ms"].is_number_integer())
        << n.dump();
    EXPECT_GE(n["heartbeat_age_ms"].get<std::int64_t>(), 0) << n.dump();
    EXPECT_EQ(n["role"], n["node"] == Node(g->primary) ? "primary" : "standby") << n.dump();
    EXPECT_EQ(n.value("repmgrd_running", false), true) << n.dump();
  }
  // The ages are live: they move from one look to a later one (printed, not bounded).
  const std::string first = HeartbeatAges();
  std::string later;
  EXPECT_TRUE(WaitUntil(
      [&] {
        later = HeartbeatAges();
        return !later.empty() && later != first;
      },
      seconds(30), std::chrono::milliseconds(300)))
      << first;
  std::printf("heartbeat ages (ms): %s then %s\n", first.c_str(), later.c_str());
  CommandResult text = g->lab->Cli({"status"});
  EXPECT_EQ(text.exit_code, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("Master:  " + Node(g->primary) +
                          " (127.0.0.1:" + std::to_string(g->lab->lab().pg_port(g->primary))),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("verified, "), std::string::npos) << text.out;
  // Usage and not-found exit codes.
  EXPECT_EQ(g->lab->Cli({"status", "--bogus"}).exit_code, 2);
  CommandResult missing = g->lab->Cli({"status", "--cluster", "nope"});
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.err.find("\"nope\""), std::string::npos) << missing.err;
  EXPECT_EQ(
      RunCommand({Bin(), "status", "--zookeeper", "127.0.0.1:1", "--connect-timeout-ms", "300"},
                 g->lab->lab().dir())
          .exit_code,
      3);
}

TEST_F(ObservabilityLabTest, HealthApiAndMetricsParse) {
  const int leader = LeaderPort();
  ASSERT_NE(leader, 0) << g->lab->Logs();
  const int follower = leader == g->lab->port(0) ? g->lab->port(1) : g->lab->port(0);
  HttpResult h = Http(leader, "GET", "/health");
  EXPECT_EQ(h.status, 200) << h.body << h.error;
  HttpResult hf = Http(follower, "GET", "/health");
  EXPECT_EQ(hf.status, 200) << hf.body;
  EXPECT_EQ(json::parse(hf.body, nullptr, false).value("role", ""), "follower") << hf.body;

  ASSERT_TRUE(WaitUntil(
      [&] {
        json j = json::parse(Http(leader, "GET", "/api/clusters/main").body, nullptr, false);
        return !j.is_discarded() && j["master"].value("node", "") == Node(g->primary) &&
               j["nodes"].size() == 3;
      },
      seconds(60)));
  json list = json::parse(Http(leader, "GET", "/api/clusters").body);
  EXPECT_EQ(list["clusters"][0]["master"], Node(g->primary));
  EXPECT_EQ(list["clusters"][0]["verified"], true);
  // The follower reads the same view from ZooKeeper.
  json flist = json::parse(Http(follower, "GET", "/api/clusters").body);
  EXPECT_EQ(flist["clusters"][0]["master"], Node(g->primary));

  // The leader's metrics, once a decision round has counted its write check of P (awaited).
  HttpResult m;
  std::optional<std::vector<PromSample>> samples;
  EXPECT_TRUE(WaitUntil(
      [&] {
        m = Http(leader, "GET", "/metrics");
        samples = m.status == 200 ? ParseProm(m.body) : std::nullopt;
        return samples && Metric(*samples, "pgherald_write_check_duration_seconds_count",
                                 {{"node", Node(g->primary)}}) > 0;
      },
      seconds(60)))
      << m.body;
  ASSERT_EQ(m.status, 200);
  ASSERT_TRUE(samples.has_value()) << m.body;
  EXPECT_EQ(Metric(*samples, "pgherald_leader", {}), 1);
  // Ownership (docs/orchestrator.md): the "leader" owns the one cluster.
  EXPECT_EQ(Metric(*samples, "pgherald_orchestrator_owned_clusters", {}), 1);
  EXPECT_EQ(Metric(*samples, "pgherald_orchestrator_cluster_owned", {{"cluster", "main"}}), 1);
  EXPECT_GE(Metric(*samples, "pgherald_orchestrator_ownership_changes_total", {}), 1);
  EXPECT_EQ(Metric(*samples, "pgherald_zookeeper_connected", {}), 1);
  EXPECT_GT(Metric(*samples, "pgherald_lease_remaining_seconds", {}), 0);
  EXPECT_EQ(Metric(*samples, "pgherald_master_verified", {{"cluster", "main"}}), 1);
  EXPECT_EQ(
      Metric(*samples, "pgherald_master_info", {{"cluster", "main"}, {"node", Node(g->primary)}}),
      1);
  // Reported for every node (printed, not bounded: a busy machine delays heartbeats).
  for (int n = 1; n <= 3; ++n) {
    const double age = Metric(*samples, "pgherald_node_heartbeat_age_seconds", {{"node", Node(n)}});
    EXPECT_GE(age, 0) << Node(n);
    std::printf("pgherald_node_heartbeat_age_seconds{node=\"%s\"} %.3f\n", Node(n).c_str(), age);
  }
  EXPECT_GT(
      Metric(*samples, "pgherald_write_check_duration_seconds_count", {{"node", Node(g->primary)}}),
      0)
      << m.body;
  EXPECT_GT(Metric(*samples, "pgherald_decisions_total", {{"action", "keep"}}), 0) << m.body;
  EXPECT_GE(Metric(*samples, "pgherald_master_changes_total", {{"cluster", "main"}}), 0);
  // Figures (printed, not asserted): request latency of the API and of the metrics endpoint.
  for (const char* path : {"/api/clusters/main", "/metrics"}) {
    std::vector<double> us;
    for (int i = 0; i < 200; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      HttpResult r = Http(leader, "GET", path);
      us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      ASSERT_EQ(r.status, 200);
    }
    std::sort(us.begin(), us.end());
    std::printf(
        "GET %s (new connection each): n=200 median=%.0fus p99=%.0fus (machine: %ld cores, "
        "shared)\n",
        path, us[100], us[197], ::sysconf(_SC_NPROCESSORS_ONLN));
  }
  {
    std::vector<double> ms;
    for (int i = 0; i < 20; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      CommandResult r = g->lab->Cli({"status", "--cluster", "main", "--json"});
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    std::sort(ms.begin(), ms.end());
    std::printf(
        "pgherald status (process start, connect, read, render): n=20 median=%.1fms "
        "p99(max)=%.1fms\n",
        ms[10], ms[19]);
  }
  // The dashboard is served.
  HttpResult page = Http(leader, "GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("dashboard.js"), std::string::npos);
}

// The mzxid of the control znode, -1 when it does not exist, -2 when it cannot be read.
std::int64_t ControlMzxid(const std::string& control) {
  auto e = g->zk->Exists(control);
  if (!e.ok()) return -2;
  return e->has_value() ? (*e)->mzxid : -1;
}

TEST_F(ObservabilityLabTest, PostNeedsTheTokenAndPauseReachesTheControlZnode) {
  const int a = g->lab->port(0);  // orch-a holds the token
  const int b = g->lab->port(1);  // orch-b has none: POST disabled
  const std::string control = std::string(kRoot) + "/clusters/main/control";
  const std::int64_t control_before = ControlMzxid(control);
  ASSERT_NE(control_before, -2);
  std::size_t log_from[2] = {g->lab->orchestrator(0).Log().size(),
                             g->lab->orchestrator(1).Log().size()};
  EXPECT_EQ(Http(a, "POST", "/api/clusters/main/pause").status, 401);
  EXPECT_EQ(Http(a, "POST", "/api/clusters/main/pause", "Bearer wrong-token-0123456789").status,
            403);
  EXPECT_EQ(Http(a, "POST", "/api/clusters/main/pause", std::string("Basic ") + kToken).status,
            401);
  EXPECT_EQ(Http(b, "POST", "/api/clusters/main/pause", std::string("Bearer ") + kToken).status,
            403);
  // Nothing was written by the refused requests.
  EXPECT_EQ(ControlMzxid(control), control_before);

  HttpResult ok = Http(a, "POST", "/api/clusters/main/pause", std::string("Bearer ") + kToken,
                       R"({"reason":"integration test"})");
  ASSERT_EQ(ok.status, 200) << ok.body << ok.error;
  auto got = g->zk->Get(control);
  ASSERT_TRUE(got.ok());
  auto parsed = publishers::ParseControl(got->data);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->paused);
  EXPECT_EQ(parsed->reason, "integration test");
  // The orchestrator honours it (the leader decides and logs; either instance may lead) and
  // status shows it.
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (int i : {0, 1}) {
          if (g->lab->orchestrator(i).Log().find("paused: cluster is paused", log_from[i]) !=
              std::string::npos)
            return true;
        }
        return false;
      },
      seconds(60)));
  CommandResult st = g->lab->Cli({"status", "--cluster", "main"});
  EXPECT_NE(st.out.find("Paused:  yes (integration test) by orch-a (http)"), std::string::npos)
      << st.out;
  ASSERT_EQ(Http(a, "POST", "/api/clusters/main/resume", std::string("Bearer ") + kToken).status,
            200);
  EXPECT_FALSE(publishers::ParseControl(g->zk->Get(control)->data)->paused);

  // The CLI does the same through ZooKeeper.
  CommandResult p = g->lab->Cli({"pause", "--cluster", "main", "--reason", "cli test"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  parsed = publishers::ParseControl(g->zk->Get(control)->data);
  EXPECT_TRUE(parsed->paused);
  EXPECT_EQ(parsed->reason, "cli test");
  EXPECT_NE(parsed->changed_by.find("(cli)"), std::string::npos);
  EXPECT_TRUE(WaitUntil(
      [] {
        json j = StatusJson();
        return !j.is_null() && !j["clusters"].empty() && j["clusters"][0]["paused"] == true;
      },
      seconds(60)));
  CommandResult r = g->lab->Cli({"resume", "--cluster", "main"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(publishers::ParseControl(g->zk->Get(control)->data)->paused);
  EXPECT_EQ(g->lab->Cli({"pause"}).exit_code, 2);  // --cluster is required
  EXPECT_EQ(g->lab->Cli({"pause", "--cluster", "typo"}).exit_code, 4);
  EXPECT_FALSE(g->zk->Exists(std::string(kRoot) + "/clusters/typo")->has_value());
}

// The master-change counter of orchestrator i's /metrics; -1 when unreadable.
double MasterChanges(int i) {
  auto samples = ParseProm(Http(g->lab->port(i), "GET", "/metrics").body);
  return samples ? Metric(*samples, "pgherald_master_changes_total", {{"cluster", "main"}}) : -1;
}

// The primary is killed; the next case's SetUp rejoins it (this case does too, when it gets there).
TEST_F(ObservabilityLabTest, KillNineFailoverShowsInStatusHistoryAndMetrics) {
  const int old_primary = g->primary;
  double master_changes_before[2] = {-1, -1};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          master_changes_before[i] = MasterChanges(i);
          return master_changes_before[i] >= 0;
        },
        seconds(60)))
        << "orchestrator " << i << "'s /metrics";
  }
  ASSERT_TRUE(g->lab->lab().PgKill(old_primary).ok());
  auto promoted = g->lab->lab().WaitForPrimary(old_primary, seconds(90));
  ASSERT_TRUE(promoted.ok()) << promoted.status().ToString();
  g->primary = *promoted;

  int exit_code = -1;
  // The orchestrator's own probe may publish the new master before the new primary's poller has
  // observed its promotion (roles come from the observations): wait for both.
  auto node_role = [](const json& cluster, int node) {
    for (const json& n : cluster["nodes"]) {
      if (n["node"] == Node(node)) return n.value("role", "");
    }
    return std::string();
  };
  ASSERT_TRUE(WaitUntil(
      [&] {
        if (!StatusShowsMaster(g->primary, &exit_code)) return false;
        json j = StatusJson();
        return !j.is_null() && !j["clusters"].empty() &&
               node_role(j["clusters"][0], g->primary) == "primary" &&
               node_role(j["clusters"][0], old_primary) == "down";
      },
      seconds(90), std::chrono::milliseconds(300)))
      << StatusJson().dump(2) << g->lab->Logs();
  // The killed node is down (its poller still runs and reports it): the exit code says so.
  json c = StatusJson(&exit_code)["clusters"][0];
  EXPECT_EQ(exit_code, 1);
  for (const json& n : c["nodes"]) {
    if (n["node"] == Node(old_primary)) {
      EXPECT_EQ(n["role"], "down") << n.dump();
    }
    if (n["node"] == Node(g->primary)) {
      EXPECT_EQ(n["role"], "primary") << n.dump();
    }
  }
  CommandResult text = g->lab->Cli({"status", "--cluster", "main"});
  std::printf("--- pgherald status after the failover ---\n%s", text.out.c_str());
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.out.find("Master:  " + Node(g->primary)), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(Node(old_primary) + ": PostgreSQL unreachable"), std::string::npos)
      << text.out;

  // History: the failover decision with its reason and evidence.
  CommandResult hist = g->lab->Cli({"history", "--cluster", "main", "--limit", "5"});
  ASSERT_EQ(hist.exit_code, 0) << hist.err;
  std::printf("--- pgherald history ---\n%s", hist.out.c_str());
  EXPECT_NE(hist.out.find("publish " + Node(g->primary) + " (was " + Node(old_primary)),
            std::string::npos)
      << hist.out;
  EXPECT_NE(hist.out.find("reason later_timeline"), std::string::npos) << hist.out;
  EXPECT_NE(hist.out.find("data loss estimate: " + Node(old_primary)), std::string::npos)
      << hist.out;
  EXPECT_NE(hist.out.find("evidence:"), std::string::npos) << hist.out;
  CommandResult hj = g->lab->Cli({"history", "--cluster", "main", "--json"});
  json h = json::parse(hj.out, nullptr, false);
  ASSERT_FALSE(h.is_discarded()) << hj.out;
  json last = h["history"].empty() ? json::object() : h["history"].back();
  EXPECT_EQ(last["chosen"], Node(g->primary));
  EXPECT_EQ(last["previous"]["node"], Node(old_primary));
  EXPECT_EQ(last["data_loss"]["old_master"], Node(old_primary));
  bool old_in_evidence = false;
  for (json e : last["evidence"]) old_in_evidence |= e["node"] == Node(old_primary);
  EXPECT_TRUE(old_in_evidence) << last.dump(2);

  // Metrics: the master-change counter grew, on the leader and on the follower alike.
  for (int i = 0; i < 2; ++i) {
    double after = -1;
    EXPECT_TRUE(WaitUntil(
        [&] {
          after = MasterChanges(i);
          return after >= master_changes_before[i] + 1;
        },
        seconds(60)))
        << "orchestrator " << i << ": " << after << " (before: " << master_changes_before[i] << ")";
  }
  ASSERT_TRUE(g->lab->lab().PgRejoin(old_primary).ok());
}

}  // namespace
}  // namespace pgherald::observability_lab
