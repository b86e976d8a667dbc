// The orchestrator's observability: the Prometheus text format (checked by a strict little parser,
// including label escaping and histogram invariants), the StatusBoard's counters on FakeZk, and the
// HTTP handler's routes, health and token checks (HandleHttp, no socket).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "tests/support/fake_zk.h"
#include "common/model/voucher.h"
#include "orchestrator/http_server.h"
#include "orchestrator/metrics.h"
#include "orchestrator/orchestrator_config.h"
#include "common/model/zk_paths.h"

namespace pgherald::orchestrator {
namespace {

const model::ClusterPaths kMain("/ph", "main");

using json = nlohmann::json;

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the text exposition format strictly: every sample belongs to a family announced by
// # HELP and # TYPE before it; label values are unescaped. Fails the test on a bad line.
std::vector<PromSample> ParseProm(const std::string& text,
                                  std::map<std::string, std::string>* types) {
  std::vector<PromSample> out;
  std::size_t pos = 0;
  const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  const std::regex type(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  const std::regex name_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*))");
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    EXPECT_NE(end, std::string::npos) << "the last line must end with a line feed";
    if (end == std::string::npos) break;
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    std::smatch m;
    if (line.rfind("# HELP", 0) == 0) {
      EXPECT_TRUE(std::regex_match(line, m, help)) << line;
      continue;
    }
    if (line.rfind("# TYPE", 0) == 0) {
      EXPECT_TRUE(std::regex_match(line, m, type)) << line;
      if (!m.empty()) (*types)[m[1]] = m[2];
      continue;
    }
    PromSample s;
    EXPECT_TRUE(std::regex_search(line, m, name_re)) << line;
    if (m.empty()) continue;
    s.name = m[1];
    std::size_t i = s.name.size();
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        const std::string key = line.substr(i, eq - i);
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            EXPECT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << line;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;
    }
    EXPECT_EQ(line[i], ' ') << line;
    const std::string v = line.substr(i + 1);
    s.value = v == "+Inf" ? INFINITY : v == "-Inf" ? -INFINITY : v == "NaN" ? NAN : std::stod(v);
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string sfx = suffix;
      if (types->count(family) == 0 && family.size() > sfx.size() &&
          family.compare(family.size() - sfx.size(), sfx.size(), sfx) == 0) {
        family = family.substr(0, family.size() - sfx.size());
      }
    }
    EXPECT_EQ(types->count(family), 1u) << "sample before its # TYPE: " << line;
    out.push_back(std::move(s));
  }
  return out;
}

const PromSample* FindSample(const std::vector<PromSample>& samples, const std::string& name,
                             const std::map<std::string, std::string>& labels) {
  for (const PromSample& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all &= s.labels.count(k) > 0 && s.labels.at(k) == v;
    if (all) return &s;
  }
  return nullptr;
}

TEST(MetricsFormat, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  PromText t;
  t.Family("x_total", "counter", "Help with a \\ and a\nline feed.");
  t.Sample("x_total", {{"cluster", "we\"ird\\\nname"}}, 3);
  EXPECT_EQ(t.text(),
            "# HELP x_total Help with a \\\\ and a\\nline feed.\n# TYPE x_total counter\n"
            "x_total{cluster=\"we\\\"ird\\\\\\nname\"} 3\n");
  std::map<std::string, std::string> types;
  auto samples = ParseProm(t.text(), &types);
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].labels["cluster"], "we\"ird\\\nname");
}

TEST(MetricsFormat, SampleValues) {
  EXPECT_EQ(FormatSampleValue(3), "3");
  EXPECT_EQ(FormatSampleValue(-2), "-2");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatSampleValue(NAN), "NaN");
}

TEST(MetricsFormat, HistogramIsCumulativeWithInf) {
  Histogram h;
  h.Observe(0.0005);
  h.Observe(0.003);
  h.Observe(0.003);
  h.Observe(30);
  PromText t;
  t.Family("d_seconds", "histogram", "d");
  h.Render(t, "d_seconds", {{"node", "n1"}});
  std::map<std::string, std::string> types;
  auto samples = ParseProm(t.text(), &types);
  EXPECT_EQ(FindSample(samples, "d_seconds_bucket", {{"le", "0.001"}})->value, 1);
  EXPECT_EQ(FindSample(samples, "d_seconds_bucket", {{"le", "0.005"}})->value, 3);
  EXPECT_EQ(FindSample(samples, "d_seconds_bucket", {{"le", "10"}})->value, 3);
  EXPECT_EQ(FindSample(samples, "d_seconds_bucket", {{"le", "+Inf"}})->value, 4);
  EXPECT_EQ(FindSample(samples, "d_seconds_count", {})->value, 4);
  EXPECT_NEAR(FindSample(samples, "d_seconds_sum", {})->value, 30.0065, 1e-9);
  double last = 0;
  for (const PromSample& s : samples) {
    if (s.name != "d_seconds_bucket") continue;
    EXPECT_GE(s.value, last);
    last = s.value;
  }
}

model::MasterRecord Record(const std::string& node, std::uint64_t epoch) {
  model::MasterRecord m;
  m.state = model::MasterState::kOk;
  m.node = node;
  m.host = "127.0.0.1";
  m.port = 5432;
  m.timeline = static_cast<std::uint32_t>(epoch);
  m.epoch = epoch;
  m.verified_at_ms = 1;
  return m;
}

model::NodeObservation Obs(const std::string& node, bool primary) {
  model::NodeObservation o;
  o.node = node;
  o.host = "127.0.0.1";
  o.port = 5432;
  o.reachable = true;
  o.in_recovery = !primary;
  o.timeline = 1;
  if (primary)
    o.current_lsn = 0x5000;
  else
    o.replay_lsn = 0x4000;
  o.seq = 1;
  o.observed_at_ms = 1;
  return o;
}

class BoardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(zk::EnsurePath(*zk_, kMain.Nodes()).ok());
    ASSERT_TRUE(zk_->Create(kMain.Master(), Record("node1", 1).ToJson(),
                            zk::CreateMode::kPersistent)
                    .ok());
    // A voucher bound to that exact record (common/model/voucher.h): the only kind the view counts.
    const std::string bytes = Record("node1", 1).ToJson();
    ASSERT_TRUE(zk_->Create(kMain.Voucher(model::VoucherName(1, model::RecordDigest(bytes), "orch-a")),
                            "{}", zk::CreateMode::kEphemeral)
                    .ok());
    ASSERT_TRUE(zk_->Create(kMain.Node("node1"), Obs("node1", true).ToJson(),
                            zk::CreateMode::kEphemeral)
                    .ok());
    ASSERT_TRUE(zk_->Create(kMain.Node("node2"), Obs("node2", false).ToJson(),
                            zk::CreateMode::kEphemeral)
                    .ok());
  }
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> zk_ = server_->NewSession();
  StatusBoard board_{"orch-a", "/ph", {"main"}, 200};
};

TEST_F(BoardTest, SnapshotCountsMasterChangesDecisionsAndWriteChecks) {
  EXPECT_FALSE(board_.Snapshot()->published);
  const std::int64_t now = view::WallNowMs();
  board_.Refresh(zk_.get(), true, now);
  auto s1 = board_.Snapshot();
  ASSERT_TRUE(s1->published);
  EXPECT_TRUE(s1->leading);
  EXPECT_EQ(s1->session_state, "connected");
  EXPECT_EQ(s1->master_changes.at("main"), 0u);  // the first read is the baseline

  // A failover: the record moves to epoch 3 (two changes since the baseline).
  ASSERT_TRUE(zk_->Set(kMain.Master(), Record("node2", 3).ToJson()).ok());
  DecisionInput in;
  model::Probe p;
  p.node = "node1";
  p.write_check = model::WriteCheck::kFailed;
  p.latency_us = 1500;
  in.probes["node1"] = ProbeInput{p, MonoTime{}};
  p.node = "node2";
  p.write_check = model::WriteCheck::kPassed;
  p.latency_us = 4000;
  in.probes["node2"] = ProbeInput{p, MonoTime{}};
  Verdict v;
  v.action = Action::kPublish;
  v.reasons.push_back({ReasonCode::kLaterTimeline, "node2", "x"});
  board_.OnDecision("main", in, v);
  board_.Refresh(zk_.get(), true, now + 100);
  auto s2 = board_.Snapshot();
  EXPECT_EQ(s2->master_changes.at("main"), 2u);
  EXPECT_EQ(s1->master_changes.at("main"), 0u) << "a published snapshot never changes";

  std::map<std::string, std::string> types;
  const std::string text = RenderMetrics(*s2, now + 2100);
  auto samples = ParseProm(text, &types);
  EXPECT_EQ(types["pgherald_master_changes_total"], "counter");
  EXPECT_EQ(types["pgherald_write_check_duration_seconds"], "histogram");
  EXPECT_EQ(FindSample(samples, "pgherald_master_changes_total", {{"cluster", "main"}})->value, 2);
  EXPECT_EQ(FindSample(samples, "pgherald_decisions_total",
                       {{"cluster", "main"}, {"action", "publish"}, {"reason", "later_timeline"}})
                ->value,
            1);
  EXPECT_EQ(FindSample(samples, "pgherald_write_check_failures_total", {{"node", "node1"}})->value,
            1);
  EXPECT_EQ(
      FindSample(samples, "pgherald_write_check_duration_seconds_count", {{"node", "node2"}})
          ->value,
      1);
  EXPECT_EQ(FindSample(samples, "pgherald_write_check_duration_seconds_bucket",
                       {{"node", "node2"}, {"le", "0.005"}})
                ->value,
            1);
  // Heartbeat ages are computed at render time against the znode mtime.
  const PromSample* age =
      FindSample(samples, "pgherald_node_heartbeat_age_seconds", {{"node", "node2"}});
  ASSERT_NE(age, nullptr) << text;
  EXPECT_GE(age->value, 1.9);
  EXPECT_LT(age->value, 60);
  EXPECT_EQ(FindSample(samples, "pgherald_leader", {})->value, 1);
  EXPECT_EQ(
      FindSample(samples, "pgherald_zookeeper_session_state", {{"state", "connected"}})->value, 1);
  EXPECT_EQ(
      FindSample(samples, "pgherald_zookeeper_session_state", {{"state", "connecting"}})->value, 0);
  EXPECT_EQ(FindSample(samples, "pgherald_master_info", {{"node", "node2"}})->value, 1);
  EXPECT_NE(FindSample(samples, "pgherald_lease_remaining_seconds", {}), nullptr);
}

// Issue 12: the leader's problem kinds (master_unbacked, published_master_unreachable, ...) are
// counted per round, shown as active while they last, and listed by the HTTP API per cluster.
TEST_F(BoardTest, LeaderProblemsAreCountedShownActiveAndListedByTheApi) {
  const std::int64_t now = view::WallNowMs();
  board_.OnPayloadProblem("main", "master_unbacked");
  board_.OnPayloadProblem("main", "published_master_unreachable");
  board_.Refresh(zk_.get(), true, now);
  auto s = board_.Snapshot();
  std::map<std::string, std::string> types;
  auto samples = ParseProm(RenderMetrics(*s, now), &types);
  EXPECT_EQ(types["pgherald_problem_active"], "gauge");
  EXPECT_EQ(FindSample(samples, "pgherald_payload_problem_rounds_total",
                       {{"cluster", "main"}, {"kind", "master_unbacked"}})->value, 1);
  EXPECT_EQ(FindSample(samples, "pgherald_problem_active",
                       {{"cluster", "main"}, {"kind", "published_master_unreachable"}})->value, 1);
  http::HttpConfig config;
  HttpServer::ControlWriter writer = [](const std::string&, const publishers::ControlState&) {
    return Status::Ok();
  };
  auto list = HandleHttp(config, *s, writer, "GET", "/api/clusters", "", "", now);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(json::parse(list.body)["clusters"][0]["orchestrator_problems"],
            json::array({"master_unbacked", "published_master_unreachable"}));
  auto detail = HandleHttp(config, *s, writer, "GET", "/api/clusters/main", "", "", now);
  ASSERT_EQ(detail.status, 200);
  EXPECT_EQ(json::parse(detail.body)["orchestrator_problems"].size(), 2u);
  // Gone the next round: no longer active, still counted.
  board_.Refresh(zk_.get(), true, now + 1000);
  s = board_.Snapshot();
  samples = ParseProm(RenderMetrics(*s, now + 1000), &types);
  EXPECT_EQ(FindSample(samples, "pgherald_problem_active", {{"kind", "master_unbacked"}}), nullptr);
  EXPECT_EQ(FindSample(samples, "pgherald_payload_problem_rounds_total",
                       {{"kind", "master_unbacked"}})->value, 1);
  list = HandleHttp(config, *s, writer, "GET", "/api/clusters", "", "", now + 1000);
  EXPECT_TRUE(json::parse(list.body)["clusters"][0]["orchestrator_problems"].empty());
}

// A switchover (docs/switchover.md): the gauge names the active record's phase, the counter
// counts the ends this process saw (the first read is the baseline), and the API shows the record.
TEST_F(BoardTest, SwitchoverPhaseGaugeEndsCounterAndApiObject) {
  const std::int64_t now = view::WallNowMs();
  model::SwitchoverRecord r;
  r.id = "sw-1-abc";
  r.from = "node1";
  r.to = "node2";
  r.phase = model::SwitchoverPhase::kDone;  // an old one: the baseline, not counted
  r.base_epoch = 1;
  r.started_at_ms = now - 1000;
  r.phase_at_ms = now - 500;
  r.deadline_at_ms = now + 60000;
  ASSERT_TRUE(zk_->Create(kMain.Control(), "", zk::CreateMode::kPersistent).ok());
  ASSERT_TRUE(zk_->Create(kMain.Switchover(), r.ToJson(), zk::CreateMode::kPersistent).ok());
  board_.Refresh(zk_.get(), true, now);
  std::map<std::string, std::string> types;
  auto samples = ParseProm(RenderMetrics(*board_.Snapshot(), now), &types);
  EXPECT_EQ(types["pgherald_orchestrator_switchover_phase"], "gauge");
  EXPECT_EQ(types["pgherald_orchestrator_switchovers_total"], "counter");
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchover_phase", {}), nullptr);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchovers_total", {}), nullptr);

  // A new one in stop: gauge 1 for stop.
  r.id = "sw-2-def";
  r.phase = model::SwitchoverPhase::kStop;
  ASSERT_TRUE(zk_->Set(kMain.Switchover(), r.ToJson()).ok());
  board_.Refresh(zk_.get(), true, now + 100);
  auto s = board_.Snapshot();
  samples = ParseProm(RenderMetrics(*s, now + 100), &types);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchover_phase",
                       {{"cluster", "main"}, {"phase", "stop"}})->value, 1);
  http::HttpConfig config;
  HttpServer::ControlWriter writer = [](const std::string&, const publishers::ControlState&) {
    return Status::Ok();
  };
  auto detail = HandleHttp(config, *s, writer, "GET", "/api/clusters/main", "", "", now + 100);
  ASSERT_EQ(detail.status, 200);
  const json sw = json::parse(detail.body)["switchover"];
  EXPECT_EQ(sw["id"], "sw-2-def");
  EXPECT_EQ(sw["from"], "node1");
  EXPECT_EQ(sw["to"], "node2");
  EXPECT_EQ(sw["phase"], "stop");
  EXPECT_EQ(sw["active"], true);
  EXPECT_EQ(sw["phase_at"], now - 500);
  auto list = HandleHttp(config, *s, writer, "GET", "/api/clusters", "", "", now + 100);
  EXPECT_EQ(json::parse(list.body)["clusters"][0]["switchover"]["phase"], "stop");

  // It fails: counted once, however many snapshots follow; the gauge is gone.
  r.phase = model::SwitchoverPhase::kFailed;
  r.error = "rejoin failed on node1";
  ASSERT_TRUE(zk_->Set(kMain.Switchover(), r.ToJson()).ok());
  board_.Refresh(zk_.get(), true, now + 200);
  board_.Refresh(zk_.get(), true, now + 300);
  samples = ParseProm(RenderMetrics(*board_.Snapshot(), now + 300), &types);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchover_phase", {}), nullptr);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchovers_total",
                       {{"cluster", "main"}, {"result", "failed"}})->value, 1);
  // A third one expires unfinished: result "expired".
  r.id = "sw-3-ghi";
  r.phase = model::SwitchoverPhase::kHold;
  r.error.clear();
  r.deadline_at_ms = now + 350;
  ASSERT_TRUE(zk_->Set(kMain.Switchover(), r.ToJson()).ok());
  board_.Refresh(zk_.get(), true, now + 300);
  board_.Refresh(zk_.get(), true, now + 400);
  samples = ParseProm(RenderMetrics(*board_.Snapshot(), now + 400), &types);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchovers_total",
                       {{"result", "expired"}})->value, 1);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_switchovers_total",
                       {{"result", "failed"}})->value, 1);
  // Corrupt: no gauge, the API says why.
  ASSERT_TRUE(zk_->Set(kMain.Switchover(), "{\"format\":1").ok());
  board_.Refresh(zk_.get(), true, now + 500);
  s = board_.Snapshot();
  detail = HandleHttp(config, *s, writer, "GET", "/api/clusters/main", "", "", now + 500);
  EXPECT_TRUE(json::parse(detail.body)["switchover"].contains("error_record"));
}

// Ownership (docs/orchestrator.md, "Ownership"): owned clusters, per-cluster 0/1, changes; the API
// lists what this instance owns.
TEST(MetricsFormat, OwnershipIsShown) {
  ObservabilitySnapshot s;
  s.published = true;
  s.id = "orch-1";
  s.leading = true;
  s.owned = {"main"};
  s.ownership_changes = 3;
  s.successor_clusters = 4;
  s.clusters.resize(2);
  s.clusters[0].name = "main";
  s.clusters[0].owner = "orch-1";
  s.clusters[0].owner_guid = "aa";
  s.clusters[1].name = "other";
  std::map<std::string, std::string> types;
  const auto samples = ParseProm(RenderMetrics(s, 0), &types);
  EXPECT_EQ(types["pgherald_orchestrator_owned_clusters"], "gauge");
  EXPECT_EQ(types["pgherald_orchestrator_ownership_changes_total"], "counter");
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_owned_clusters", {})->value, 1);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_ownership_changes_total", {})->value, 3);
  EXPECT_EQ(types["pgherald_orchestrator_successor_clusters"], "gauge");
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_successor_clusters", {})->value, 4);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_cluster_owned", {{"cluster", "main"}})->value, 1);
  EXPECT_EQ(FindSample(samples, "pgherald_orchestrator_cluster_owned", {{"cluster", "other"}})->value, 0);
  http::HttpConfig config;
  HttpServer::ControlWriter writer = [](const std::string&, const publishers::ControlState&) {
    return Status::Ok();
  };
  const json list = json::parse(HandleHttp(config, s, writer, "GET", "/api/clusters", "", "", 0).body);
  EXPECT_EQ(list["orchestrator"]["owned_clusters"], json::array({"main"}));
  EXPECT_EQ(list["orchestrator"]["ownership_changes"], 3);
  EXPECT_EQ(list["orchestrator"]["successor_clusters"], 4);
  EXPECT_EQ(list["clusters"][0]["owner"]["id"], "orch-1");
  EXPECT_EQ(list["clusters"][0]["owned"], true);
  EXPECT_TRUE(list["clusters"][1]["owner"].is_null());
  EXPECT_EQ(list["clusters"][1]["owned"], false);
}

// The reader thread reads the clusters through sessions of its own, at most its budget per pass,
// and never through the caller: with 1,000 clusters, re-reading all of them on the loop's thread
// after every pass stalled the loop (docs/benchmarks.md, "Scale").
TEST(StatusBoardReaderTest, ReadsEveryClusterWithinItsBudgetThroughItsOwnSession) {
  auto server = zk::FakeZkServer::Create();
  auto writer = server->NewSession();
  std::vector<std::string> names;
  for (int i = 0; i < 7; ++i) {
    const std::string name = "c" + std::to_string(i);
    names.push_back(name);
    const model::ClusterPaths paths{"/ph", name};
    ASSERT_TRUE(zk::EnsurePath(*writer, paths.Nodes()).ok());
    ASSERT_TRUE(writer->Create(paths.Master(), "{}", zk::CreateMode::kPersistent).ok());
  }
  std::atomic<int> sessions{0};
  StatusBoard board{"orch-a", "/ph", names, /*tick_ms=*/5};
  board.StartReader(
      [&]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
        sessions.fetch_add(1);
        return std::unique_ptr<zk::ZkSession>(server->NewSession());
      },
      /*max_clusters_per_pass=*/2);
  // Every cluster shows within a few passes (each pass reads at most 2 of the 7).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::size_t seen = 0;
  std::uint64_t passes_when_complete = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto snap = board.Snapshot();
    seen = snap->clusters.size() + snap->read_errors.size();
    if (seen == names.size()) {
      passes_when_complete = snap->reader_passes;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling a condition
  }
  board.StopReader();
  ASSERT_EQ(seen, names.size());
  EXPECT_GE(passes_when_complete, 4u) << "7 clusters at 2 per pass take at least 4 passes";
  EXPECT_EQ(sessions.load(), 1) << "one session of its own, kept while it lives";
}

TEST_F(BoardTest, HttpRoutesHealthAndTokens) {
  http::HttpConfig config;
  std::vector<std::pair<std::string, publishers::ControlState>> written;
  HttpServer::ControlWriter writer = [&](const std::string& c, const publishers::ControlState& s) {
    written.emplace_back(c, s);
    return Status::Ok();
  };
  const std::int64_t now = view::WallNowMs();
  ObservabilitySnapshot empty;
  EXPECT_EQ(HandleHttp(config, empty, writer, "GET", "/health", "", "", now).status, 503);
  board_.Refresh(zk_.get(), false, now);
  auto s = board_.Snapshot();
  auto health = HandleHttp(config, *s, writer, "GET", "/health", "", "", now + 50);
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(json::parse(health.body)["role"], "follower");
  // A loop that stopped publishing is unhealthy.
  EXPECT_EQ(HandleHttp(config, *s, writer, "GET", "/health", "", "", now + 60000).status, 503);

  auto list = HandleHttp(config, *s, writer, "GET", "/api/clusters", "", "", now);
  ASSERT_EQ(list.status, 200);
  const json lj = json::parse(list.body);
  EXPECT_EQ(lj["clusters"][0]["name"], "main");
  EXPECT_EQ(lj["clusters"][0]["master"], "node1");
  EXPECT_EQ(lj["clusters"][0]["verified"], true);
  auto detail = HandleHttp(config, *s, writer, "GET", "/api/clusters/main?x=1", "", "", now);
  ASSERT_EQ(detail.status, 200);
  EXPECT_EQ(json::parse(detail.body)["nodes"].size(), 2u);
  EXPECT_EQ(HandleHttp(config, *s, writer, "GET", "/api/clusters/other", "", "", now).status, 404);
  auto metrics = HandleHttp(config, *s, writer, "GET", "/metrics", "", "", now);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto page = HandleHttp(config, *s, writer, "GET", "/", "", "", now);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("/dashboard.js"), std::string::npos);
  EXPECT_EQ(HandleHttp(config, *s, writer, "GET", "/dashboard.js", "", "", now).content_type,
            "text/javascript; charset=utf-8");
  EXPECT_EQ(page.body.find("http://"), std::string::npos) << "no CDN";
  EXPECT_EQ(HandleHttp(config, *s, writer, "GET", "/nope", "", "", now).status, 404);

  // POST: disabled without a token, then 401 / 403 / 200.
  EXPECT_EQ(HandleHttp(config, *s, writer, "POST", "/api/clusters/main/pause", "Bearer x", "", now)
                .status,
            403);
  config.token = "0123456789abcdef-secret";
  auto missing = HandleHttp(config, *s, writer, "POST", "/api/clusters/main/pause", "", "", now);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.www_authenticate, "Bearer realm=\"pgherald\"");
  EXPECT_EQ(HandleHttp(config, *s, writer, "POST", "/api/clusters/main/pause",
                       "Bearer 0123456789abcdef-secreT", "", now)
                .status,
            403);
  EXPECT_EQ(HandleHttp(config, *s, writer, "POST", "/api/clusters/main/pause",
                       "Bearer 0123456789abcdef", "", now)
                .status,
            403);
  EXPECT_TRUE(written.empty());
  EXPECT_EQ(HandleHttp(config, *s, writer, "GET", "/api/clusters/main/pause", "", "", now).status,
            405);
  EXPECT_EQ(HandleHttp(config, *s, writer, "POST", "/api/clusters/main/pause",
                       "Bearer 0123456789abcdef-secret", "not json", now)
                .status,
            400);
  auto ok = HandleHttp(config, *s, writer, "POST", "/api/clusters/main/pause",
                       "Bearer 0123456789abcdef-secret", R"({"reason":"kernel upgrade"})", now);
  EXPECT_EQ(ok.status, 200) << ok.body;
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].first, "main");
  EXPECT_TRUE(written[0].second.paused);
  EXPECT_EQ(written[0].second.reason, "kernel upgrade");
  EXPECT_EQ(written[0].second.changed_by, "orch-a (http)");
  EXPECT_EQ(HandleHttp(config, *s, writer, "POST", "/api/clusters/main/resume",
                       "Bearer 0123456789abcdef-secret", "", now)
                .status,
            200);
  ASSERT_EQ(written.size(), 2u);
  EXPECT_FALSE(written[1].second.paused);
  EXPECT_EQ(HandleHttp(config, *s, writer, "POST", "/api/clusters/other/pause",
                       "Bearer 0123456789abcdef-secret", "", now)
                .status,
            404);
}

TEST_F(BoardTest, ServerServesOverASocket) {
  http::HttpConfig config;
  board_.Refresh(zk_.get(), true, view::WallNowMs());
  // A free port of this test area's range (30000-30399).
  StatusOr<std::unique_ptr<HttpServer>> server = Unavailable("no free port");
  for (int i = 0; i < 400 && !server.ok(); ++i) {
    config.port = 30000 + static_cast<int>((::getpid() + i) % 400);
    server = HttpServer::Start(config, &board_, nullptr);
  }
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_GT((*server)->port(), 0);
  // A second server on the same port fails with a message naming it.
  http::HttpConfig same = config;
  same.port = (*server)->port();
  auto clash = HttpServer::Start(same, &board_, nullptr);
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find(std::to_string(same.port)), std::string::npos);
}

// --- The server under hostile clients ---------------------------------------------------------

// A connected TCP socket to 127.0.0.1:port (-1 on failure); reads time out after `timeout`.
int Connect(int port, std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Everything the server sends until it closes (or the read times out: then "" + "TIMEOUT").
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return out;
    } else {
      return out + "TIMEOUT";
    }
  }
}

// One request on a fresh connection; the whole response.
std::string Request(int port, const std::string& raw) {
  const int fd = Connect(port);
  if (fd < 0) return "CONNECT FAILED";
  (void)!::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  std::string out = ReadAll(fd);
  ::close(fd);
  return out;
}

class HttpTransportTest : public BoardTest {
 protected:
  std::unique_ptr<HttpServer> StartServer(http::HttpConfig config) {
    board_.Refresh(zk_.get(), true, view::WallNowMs());
    StatusOr<std::unique_ptr<HttpServer>> server = Unavailable("no free port");
    for (int i = 0; i < 400 && !server.ok(); ++i) {
      config.port = 30000 + static_cast<int>((::getpid() + 7 * i) % 400);
      server = HttpServer::Start(config, &board_, nullptr);
    }
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    return server.ok() ? std::move(*server) : nullptr;
  }
};

// The finding: with 4 worker threads and no short timeouts, 4 idle connections stopped /health.
// Idle and half-sent requests hold no thread now: /health answers at once (well before any
// request timeout could have freed something), with the defaults.
TEST_F(HttpTransportTest, HealthAnswersWhileSixteenConnectionsIdle) {
  auto server = StartServer(http::HttpConfig{});
  ASSERT_NE(server, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    const int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    if (i % 2 == 1) (void)!::send(fd, "GET /heal", 9, MSG_NOSIGNAL);  // a slowloris head
    idle.push_back(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string r = Request(server->port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 "), std::string::npos) << r;
  EXPECT_NE(r.find("\"status\""), std::string::npos) << r;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
  const std::string m = Request(server->port(), "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_NE(m.find("HTTP/1.1 200 OK"), std::string::npos) << m;
  for (int fd : idle) ::close(fd);
}

// More hostile connections than the limit: the oldest still-reading one is dropped for each new
// one, so a fresh client is still served; idle ones are closed after the request timeout.
TEST_F(HttpTransportTest, ConnectionsAreBoundedAndIdleOnesTimeOut) {
  http::HttpConfig config;
  config.max_connections = 4;
  config.request_timeout = std::chrono::milliseconds(300);
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < 12; ++i) idle.push_back(Connect(server->port()));
  const std::string r = Request(server->port(), "GET /health HTTP/1.1\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 "), std::string::npos) << r;
  // Every idle socket is closed by the server (evicted, or timed out): recv returns 0, not a
  // timeout of our own 3 s read deadline.
  for (int fd : idle) {
    EXPECT_EQ(ReadAll(fd), "");
    ::close(fd);
  }
}

TEST_F(HttpTransportTest, OversizedOrMalformedRequestsGetAClearStatus) {
  auto server = StartServer(http::HttpConfig{});
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  EXPECT_NE(Request(port, "GET /health HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n")
                .find("431"),
            std::string::npos);
  EXPECT_NE(Request(port, "POST /api/clusters/main/pause HTTP/1.1\r\nContent-Length: 999999\r\n\r\n")
                .find("413"),
            std::string::npos);
  EXPECT_NE(Request(port, "POST /api/clusters/main/pause HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .find("411"),
            std::string::npos);
  EXPECT_NE(Request(port, "NONSENSE\r\n\r\n").find("400"), std::string::npos);
  EXPECT_NE(Request(port, "GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n").find("400"),
            std::string::npos);
  // HEAD: the headers with the length, no body.
  const std::string head = Request(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: "), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  // A POST body that arrives in pieces is read whole (no token configured: 403 after reading).
  const int fd = Connect(port);
  const std::string part1 = "POST /api/clusters/main/pause HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}";
  (void)!::send(fd, part1.data(), part1.size(), MSG_NOSIGNAL);
  (void)!::send(fd, "  ", 2, MSG_NOSIGNAL);
  EXPECT_NE(ReadAll(fd).find("403"), std::string::npos);
  ::close(fd);
}

}  // namespace
}  // namespace pgherald::orchestrator

namespace pgherald::orchestrator {
namespace {

StatusOr<OrchestratorConfig> ParseYaml(const std::string& http_section) {
  const std::string yaml =
      "zookeeper: {connect: \"127.0.0.1:2181\"}\norchestrator: {id: orch-a}\n"
      "clusters:\n  - name: main\n    postgres: {user: u, password: p}\n"
      "    nodes: [{name: node1, host: 127.0.0.1}]\n" +
      http_section;
  auto root = config::ConfigNode::LoadString(yaml, "orch.yaml");
  if (!root.ok()) return root.status();
  return ParseOrchestratorConfig(*root);
}

TEST(HttpConfigSection, AbsentMeansNoServerAndErrorsNameTheKeyOrFile) {
  auto none = ParseYaml("");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->http.has_value());

  auto bad_port = ParseYaml("http: {port: 99999}\n");
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(bad_port.status().message().find("http.port"), std::string::npos)
      << bad_port.status().ToString();
  auto typo = ParseYaml("http: {port: 8008, tokenfile: /x}\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("http.tokenfile"), std::string::npos)
      << typo.status().ToString();

  auto missing = ParseYaml("http: {port: 8008, token_file: /nonexistent/pgherald-token}\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/pgherald-token"), std::string::npos);

  const std::string dir = ::testing::TempDir();
  const std::string short_file = dir + "/short-token";
  std::ofstream(short_file) << "abc\n";
  auto too_short = ParseYaml("http: {port: 8008, token_file: " + short_file + "}\n");
  ASSERT_FALSE(too_short.ok());
  EXPECT_NE(too_short.status().message().find("fewer than 16"), std::string::npos);
  EXPECT_EQ(too_short.status().message().find("abc"), std::string::npos) << "never the secret";

  const std::string good_file = dir + "/good-token";
  std::ofstream(good_file) << "0123456789abcdef-long-token\n";
  auto good = ParseYaml("http: {port: 8008, token_file: " + good_file + "}\n");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  ASSERT_TRUE(good->http.has_value());
  EXPECT_EQ(good->http->address, "127.0.0.1");
  EXPECT_EQ(good->http->port, 8008);
  EXPECT_EQ(good->http->token, "0123456789abcdef-long-token");
}

}  // namespace
}  // namespace pgherald::orchestrator
