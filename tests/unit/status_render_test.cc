// The operator's view: judging (roles, lag, heartbeat ages, problems, exit codes), the text table,
// the JSON, the history rendering, and ReadClusterStatus / publishers::WriteControl on FakeZk.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "clients/status/render.h"
#include "tests/support/fake_zk.h"
#include "common/model/voucher.h"
#include "publishers/view/cluster_view.h"
#include "publishers/zk_publisher.h"
#include "tests/unit/hostile_payloads.h"
#include "common/model/zk_paths.h"

namespace pgherald::status {
namespace {

const model::ClusterPaths kMain("/ph", "main");

using namespace ::pgherald::view;  // NOLINT: the view is what these tests judge

using json = nlohmann::json;
constexpr std::int64_t kNow = 1'790'000'000'000;

model::NodeObservation Obs(const std::string& node, bool in_recovery, model::Lsn lsn,
                           std::uint32_t timeline = 2) {
  model::NodeObservation o;
  o.node = node;
  o.host = "127.0.0.1";
  o.port = node == "node1" ? 5432 : node == "node2" ? 5433 : 5434;
  o.reachable = true;
  o.in_recovery = in_recovery;
  o.timeline = timeline;
  if (in_recovery) {
    o.receive_lsn = lsn;
    o.replay_lsn = lsn;
    o.upstream_node = "node1";
  } else {
    o.current_lsn = lsn;
  }
  o.system_identifier = "7000000000000000001";
  o.repmgrd_running = true;
  o.seq = 7;
  o.observed_at_ms = kNow - 300;
  for (int i = 1; i <= 3; ++i) {
    o.repmgr_nodes.push_back({i, "node" + std::to_string(i), i == 1 ? "primary" : "standby", true,
                              i == 1 ? std::nullopt : std::optional<int>(1)});
  }
  return o;
}

model::MasterRecord Master(const std::string& node) {
  model::MasterRecord m;
  m.state = model::MasterState::kOk;
  m.node = node;
  m.host = "127.0.0.1";
  m.port = 5432;
  m.timeline = 2;
  m.lsn = 0x3000060;
  m.epoch = 4;
  m.verified_at_ms = kNow - 1000;
  m.decided_by = "orch-a";
  m.reason = "later_timeline";
  return m;
}

NodeStatus Node(model::NodeObservation o, std::int64_t age_ms) {
  NodeStatus n;
  n.node = o.node;
  n.observation = std::move(o);
  n.mtime_ms = kNow - age_ms;
  return n;
}

ClusterStatus Healthy() {
  ClusterStatus c;
  c.name = "main";
  c.master = Master("node1");
  c.master_present = true;
  c.vouchers = {"orch-a"};
  c.nodes.push_back(Node(Obs("node1", false, 0x3000060), 400));
  c.nodes.push_back(Node(Obs("node2", true, 0x3000000), 1200));
  c.nodes.push_back(Node(Obs("node3", true, 0x3000060), 90));
  return c;
}

TEST(StatusJudge, HealthyClusterHasRolesLagAgesAndExitZero) {
  ClusterStatus c = Healthy();
  Judge(c, 10000, kNow);
  ASSERT_EQ(c.nodes.size(), 3u);
  EXPECT_TRUE(c.healthy()) << c.problems[0];
  EXPECT_EQ(c.nodes[0].role, "primary");
  EXPECT_TRUE(c.nodes[0].is_master);
  EXPECT_EQ(c.nodes[0].lag_bytes, 0u);
  EXPECT_EQ(c.nodes[1].role, "standby");
  EXPECT_EQ(c.nodes[1].lag_bytes, 0x60u);
  EXPECT_EQ(c.nodes[1].heartbeat_age_ms, 1200);
  EXPECT_EQ(c.nodes[2].heartbeat_age_ms, 90);
  EXPECT_EQ(ExitCodeFor({c}), kExitHealthy);
}

TEST(StatusJudge, NoVoucherMeansUnverifiedAndExitOne) {
  ClusterStatus c = Healthy();
  c.vouchers.clear();
  Judge(c, 10000, kNow);
  EXPECT_FALSE(c.verified());
  EXPECT_EQ(c.nodes[0].role, "stale-primary");  // writable, but nobody vouches for it
  EXPECT_EQ(ExitCodeFor({c}), kExitUnhealthy);
  ASSERT_FALSE(c.problems.empty());
  EXPECT_NE(c.problems[0].find("unverified"), std::string::npos);
}

TEST(StatusJudge, NoMasterYetIsUnhealthy) {
  ClusterStatus c = Healthy();
  c.master = model::MasterRecord{};
  Judge(c, 10000, kNow);
  EXPECT_EQ(ExitCodeFor({c}), kExitUnhealthy);
  EXPECT_EQ(c.problems[0], "no master has been verified yet");
}

TEST(StatusJudge, OldHeartbeatIsStaleAndMissingPollerIsListed) {
  ClusterStatus c = Healthy();
  c.nodes[1].mtime_ms = kNow - 15000;
  c.nodes.pop_back();  // node3's poller is gone; repmgr still lists node3
  Judge(c, 10000, kNow);
  ASSERT_EQ(c.nodes.size(), 3u);
  EXPECT_EQ(c.nodes[1].role, "stale");
  EXPECT_FALSE(c.nodes[1].lag_bytes.has_value());
  EXPECT_EQ(c.nodes[2].node, "node3");
  EXPECT_EQ(c.nodes[2].role, "missing");
  EXPECT_EQ(c.nodes[2].heartbeat_age_ms, -1);
  EXPECT_EQ(ExitCodeFor({c}), kExitUnhealthy);
  EXPECT_EQ(c.problems.size(), 2u);
}

TEST(StatusJudge, UnreachablePostgresIsDownAndAFutureMtimeIsAgeZero) {
  ClusterStatus c = Healthy();
  c.nodes[2].observation->reachable = false;
  c.nodes[2].observation->error = "connection refused";
  c.nodes[1].mtime_ms = kNow + 50;  // the ZooKeeper server's clock runs ahead of ours
  Judge(c, 10000, kNow);
  EXPECT_EQ(c.nodes[2].role, "down");
  EXPECT_NE(c.nodes[2].problem.find("connection refused"), std::string::npos);
  EXPECT_EQ(c.nodes[1].heartbeat_age_ms, 0);
}

TEST(StatusRender, TableShowsMasterVouchersAndEveryColumn) {
  ClusterStatus c = Healthy();
  c.control.paused = true;
  c.control.reason = "kernel upgrade";
  Judge(c, 10000, kNow);
  const std::string t = RenderStatusTable({c});
  EXPECT_NE(t.find("Cluster: main\n"), std::string::npos) << t;
  EXPECT_NE(
      t.find("Master:  node1 (127.0.0.1:5432, timeline 2, epoch 4) verified, 1 voucher (orch-a)"),
      std::string::npos)
      << t;
  EXPECT_NE(t.find("Paused:  yes (kernel upgrade)\nOwner:   none\n"), std::string::npos) << t;
  EXPECT_NE(t.find("Node   Role     Master  Host            TL  LSN        Lag  Heartbeat  repmgrd "
                   " Poller  Fencing"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("node1  primary  *       127.0.0.1:5432  2   0/3000060  0B   400ms      running "
                   " up      none"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("node2  standby          127.0.0.1:5433  2   0/3000000  96B  1.2s"),
            std::string::npos)
      << t;
  EXPECT_EQ(t.find("Problems"), std::string::npos);
}

TEST(StatusRender, TableListsProblems) {
  ClusterStatus c = Healthy();
  c.vouchers.clear();
  Judge(c, 10000, kNow);
  const std::string t = RenderStatusTable({c});
  EXPECT_NE(t.find("UNVERIFIED: no voucher"), std::string::npos) << t;
  EXPECT_NE(t.find("Problems:\n  - master node1 is unverified"), std::string::npos) << t;
}

TEST(StatusRender, JsonCarriesEveryField) {
  ClusterStatus c = Healthy();
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.chosen = "node1";
  h.epoch = 4;
  h.decided_at_ms = kNow - 5000;
  h.reasons.push_back({"later_timeline", "node1", "node1 is on timeline 2"});
  c.history.push_back(h);
  Judge(c, 10000, kNow);
  const json j = json::parse(RenderStatusJson({c}));
  EXPECT_TRUE(j["healthy"].get<bool>());
  const json& cj = j["clusters"][0];
  EXPECT_EQ(cj["name"], "main");
  EXPECT_EQ(cj["master"]["node"], "node1");
  EXPECT_EQ(cj["master"]["verified"], true);
  EXPECT_EQ(cj["master"]["vouchers"], json::array({"orch-a"}));
  EXPECT_EQ(cj["paused"], false);
  ASSERT_EQ(cj["nodes"].size(), 3u);
  EXPECT_EQ(cj["nodes"][1]["role"], "standby");
  EXPECT_EQ(cj["nodes"][1]["lag_bytes"], 0x60);
  EXPECT_EQ(cj["nodes"][1]["heartbeat_age_ms"], 1200);
  EXPECT_EQ(cj["nodes"][1]["lsn"], "0/3000000");
  EXPECT_EQ(cj["nodes"][1]["repmgrd_running"], true);
  EXPECT_EQ(cj["nodes"][1]["fencing"], "none");
  EXPECT_EQ(cj["nodes"][1]["poller"], "up");
  EXPECT_EQ(cj["history"][0]["reasons"][0]["code"], "later_timeline");
}

TEST(StatusRender, JsonSurvivesInvalidUtf8InAnError) {
  ClusterStatus c = Healthy();
  c.nodes[2].observation->reachable = false;
  c.nodes[2].observation->error = std::string("bad \xff byte");
  Judge(c, 10000, kNow);
  const json j = json::parse(RenderStatusJson({c}));
  EXPECT_EQ(j["clusters"][0]["nodes"][2]["role"], "down");
}

TEST(StatusRender, HistoryShowsReasonsEvidenceAndDataLoss) {
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.chosen = "node2";
  h.epoch = 5;
  h.decided_at_ms = 1'790'000'000'123;
  h.decided_by = "orch-a";
  h.previous = Master("node1");
  h.master = Master("node2");
  h.master->timeline = 3;
  h.reasons.push_back({"later_timeline", "node2", "node2 is on a later timeline"});
  model::NodeEvidence e;
  e.node = "node2";
  e.role = "master";
  e.probed = true;
  e.reachable = true;
  e.writable = true;
  e.timeline = 3;
  e.lsn = 0x3000100;
  e.write_check = model::WriteCheck::kPassed;
  e.notes = {"later_timeline"};
  h.evidence.push_back(e);
  h.data_loss = model::DataLossEstimate{"node1", 0x3000200, "node2", 0x3000100, 0x100};
  const std::string t = RenderHistoryText("main", {h});
  EXPECT_NE(t.find("2026-09-21T14:13:20.123Z  epoch 5  publish node2 (was node1, timeline 2) -> "
                   "timeline 3 lsn 0/3000060  by orch-a"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("  reason later_timeline [node2]: node2 is on a later timeline"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("data loss estimate: node1 last seen at 0/3000200, node2 took over at "
                   "0/3000100: 256 bytes"),
            std::string::npos)
      << t;
  EXPECT_NE(
      t.find("    node2  master  no        yes     yes        yes       3   0/3000100  passed"),
      std::string::npos)
      << t;
  const json j = json::parse(RenderHistoryJson("main", {h}));
  EXPECT_EQ(j["history"][0]["data_loss"]["gap_bytes"], 256);
  EXPECT_EQ(RenderHistoryText("main", {}), "Cluster main: no decisions recorded\n");
}

model::SwitchoverRecord SwitchoverOf(model::SwitchoverPhase phase) {
  model::SwitchoverRecord r;
  r.id = "sw-1-abc";
  r.from = "node1";
  r.to = "node2";
  r.siblings = {"node3"};
  r.phase = phase;
  r.base_epoch = 4;
  r.started_at_ms = kNow - 3000;
  r.phase_at_ms = 1'790'000'000'123;
  r.deadline_at_ms = kNow + 60000;
  return r;
}

// `pgherald status` shows an active switchover (and its `from`, stopped on purpose, is no
// problem), an expired one, and the last finished one briefly.
TEST(StatusRender, SwitchoverLine) {
  ClusterStatus c = Healthy();
  EXPECT_EQ(SwitchoverLine(c), "");
  c.switchover = SwitchoverOf(model::SwitchoverPhase::kStop);
  c.nodes[0].observation->reachable = false;
  c.vouchers.clear();
  Judge(c, 10000, kNow);
  EXPECT_TRUE(c.switchover_active);
  EXPECT_EQ(c.nodes[0].role, "down");
  EXPECT_EQ(c.nodes[0].problem, "") << "from stopped by the switchover is no problem";
  std::string t = RenderStatusTable({c});
  EXPECT_NE(t.find("Switchover: sw-1-abc node1 -> node2 phase stop since "
                   "2026-09-21T14:13:20.123Z (deadline 2026-09-21T14:14:20.000Z)\n"),
            std::string::npos)
      << t;
  EXPECT_EQ(json::parse(RenderStatusJson({c}))["clusters"][0]["switchover"]["phase"], "stop");

  // Past its deadline: expired, and then node1 down is a problem again.
  Judge(c, 10000, kNow + 61000);
  EXPECT_FALSE(c.switchover_active);
  EXPECT_NE(c.nodes[0].problem, "");
  t = SwitchoverLine(c);
  EXPECT_NE(t.find("phase stop EXPIRED at 2026-09-21T14:14:20.000Z"), std::string::npos) << t;
  EXPECT_NE(t.find("--abort"), std::string::npos) << t;

  c.switchover = SwitchoverOf(model::SwitchoverPhase::kFailed);
  c.switchover->error = "rejoin failed on node1\x1b[2J";
  Judge(c, 10000, kNow);
  t = SwitchoverLine(c);
  EXPECT_EQ(t.rfind("last sw-1-abc node1 -> node2 failed at 2026-09-21T14:13:20.123Z: rejoin failed "
                    "on node1", 0),
            0u)
      << t;
  EXPECT_EQ(t.find('\x1b'), std::string::npos);

  // A corrupt record is a problem (the orchestrator ignores it).
  c.switchover.reset();
  c.switchover_error = "/ph/clusters/main/control/switchover: phase is missing";
  Judge(c, 10000, kNow);
  EXPECT_FALSE(c.healthy());
  EXPECT_EQ(json::parse(RenderStatusJson({c}))["clusters"][0]["switchover"]["error_record"],
            c.switchover_error);
}

TEST(StatusRender, HistoryShowsSwitchoverEntries) {
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "switchover";
  h.chosen = "node2";
  h.epoch = 4;
  h.decided_at_ms = 1'790'000'000'123;
  h.decided_by = "orch-a";
  h.reasons.push_back({"switchover", "", "switchover sw-1-abc node1 -> node2 in phase hold"});
  h.switchover = model::HistorySwitchover{"sw-1-abc", "hold", "node1", "node2", ""};
  model::HistoryEntry f = h;
  f.switchover->phase = "failed";
  f.switchover->error = "promote timed out";
  const std::string t = RenderHistoryText("main", {h, f});
  EXPECT_NE(t.find("epoch 4  switchover node2  by orch-a"), std::string::npos) << t;
  EXPECT_NE(t.find("  switchover sw-1-abc: node1 -> node2 phase hold\n"), std::string::npos) << t;
  EXPECT_NE(t.find("  switchover sw-1-abc: node1 -> node2 phase failed: promote timed out\n"),
            std::string::npos)
      << t;
  const json j = json::parse(RenderHistoryJson("main", {h}));
  EXPECT_EQ(j["history"][0]["switchover"]["id"], "sw-1-abc");
  // An entry of an older writer (no switchover object) still reads; one of a newer writer with an
  // unknown phase too.
  json older = json::parse(h.ToJson());
  older.erase("switchover");
  auto back = model::HistoryEntry::FromJson(older.dump());
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->switchover.has_value());
  json newer = json::parse(h.ToJson());
  newer["switchover"]["phase"] = "some_later_phase";
  newer["switchover"]["extra"] = 1;
  back = model::HistoryEntry::FromJson(newer.dump());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->switchover->phase, "some_later_phase");
}

TEST(StatusRender, AgesAndTimes) {
  EXPECT_EQ(FormatAge(-1), "-");
  EXPECT_EQ(FormatAge(999), "999ms");
  EXPECT_EQ(FormatAge(12345), "12.3s");
  EXPECT_EQ(FormatAge(245000), "4m05s");
  EXPECT_EQ(FormatWallMs(0), "-");
}

// ReadClusterStatus and publishers::WriteControl on FakeZk: the real znode layout, the stat mtime as heartbeat.
TEST(StatusRead, ReadsTheContractLayoutAndPauseWritesControl) {
  auto server = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> session = server->NewSession();
  zk::FakeZk& fake = *session;
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.Nodes()).ok());
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.History()).ok());
  ASSERT_TRUE(
      fake.Create(kMain.Master(), Master("node1").ToJson(), zk::CreateMode::kPersistent)
          .ok());
  const std::string master_bytes = Master("node1").ToJson();
  ASSERT_TRUE(fake.Create(kMain.Voucher(model::VoucherName(4, model::RecordDigest(master_bytes), "orch-a")),
                          "{}", zk::CreateMode::kEphemeral)
                  .ok());
  ASSERT_TRUE(fake.Create(kMain.Node("node1"), Obs("node1", false, 0x3000060).ToJson(),
                          zk::CreateMode::kEphemeral)
                  .ok());
  ASSERT_TRUE(
      fake.Create(kMain.Node("node2"), "not json", zk::CreateMode::kEphemeral).ok());
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.epoch = 1;
  h.decided_at_ms = kNow;
  h.chosen = "node1";
  h.reasons.push_back({"first_master", "node1", "x"});
  for (int i = 0; i < 3; ++i) {
    h.epoch = static_cast<std::uint64_t>(i + 2);
    h.master = Master("node1");
    h.master->epoch = h.epoch;
    ASSERT_TRUE(fake.Create(kMain.HistoryPrefix(), h.ToJson(),
                            zk::CreateMode::kPersistentSequential)
                    .ok());
  }
  // The ownership queue: the lowest sequence owns; a name that does not parse is ignored.
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.Owners()).ok());
  ASSERT_TRUE(fake.Create(kMain.OwnerCandidate("o-zz-0000000005"), R"({"id":"orch-b","guid":"zz"})",
                          zk::CreateMode::kEphemeral).ok());
  ASSERT_TRUE(fake.Create(kMain.OwnerCandidate("o-aa-0000000002"), R"({"id":"orch-a","guid":"aa"})",
                          zk::CreateMode::kEphemeral).ok());
  ASSERT_TRUE(fake.Create(kMain.OwnerCandidate("o-EVIL-0000000001"), R"({"id":"mallory"})",
                          zk::CreateMode::kEphemeral).ok());
  auto names = ListClusters(fake, "/ph");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"main"});
  HistoryCache cache;
  auto s = ReadClusterStatus(fake, "/ph", "main", ReadOptions{10000, 2}, WallNowMs(), &cache);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->verified());
  EXPECT_EQ(s->vouchers, std::vector<std::string>{"orch-a"});
  EXPECT_EQ(s->owner, "orch-a");
  EXPECT_EQ(s->owner_guid, "aa");
  EXPECT_NE(RenderStatusTable({*s}).find("Owner:   orch-a (guid aa)\n"), std::string::npos);
  EXPECT_EQ(json::parse(RenderStatusJson({*s}))["clusters"][0]["owner"]["id"], "orch-a");
  ASSERT_EQ(s->history.size(), 2u);
  EXPECT_EQ(s->history[1].epoch, 4u);
  EXPECT_TRUE(s->history_checked);
  EXPECT_TRUE(s->backed());
  EXPECT_TRUE(s->unbound_vouchers.empty());
  EXPECT_EQ(cache.size(), 2u);
  ASSERT_GE(s->nodes.size(), 1u);
  EXPECT_EQ(s->nodes[0].role, "primary");
  EXPECT_GE(s->nodes[0].heartbeat_age_ms, 0);
  bool corrupt_named = false;
  for (const std::string& p : s->problems) {
    corrupt_named |= p.find(kMain.Node("node2")) != std::string::npos;
  }
  EXPECT_TRUE(corrupt_named);

  auto missing = ReadClusterStatus(fake, "/ph", "mian", ReadOptions{}, kNow);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("\"mian\""), std::string::npos);

  publishers::ControlState pause;
  pause.paused = true;
  pause.reason = "upgrade";
  pause.changed_by = "alice";
  pause.changed_at_ms = kNow;
  ASSERT_TRUE(publishers::WriteControl(fake, model::ClusterPaths("/ph", "main"), pause).ok());
  auto control = fake.Get(kMain.Control());
  ASSERT_TRUE(control.ok());
  auto parsed = publishers::ParseControl(control->data);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->paused);
  EXPECT_EQ(parsed->reason, "upgrade");
  pause.paused = false;
  ASSERT_TRUE(publishers::WriteControl(fake, model::ClusterPaths("/ph", "main"), pause).ok());
  auto again = ReadClusterStatus(fake, "/ph", "main", ReadOptions{}, kNow);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->control.paused);
  EXPECT_EQ(publishers::WriteControl(fake, model::ClusterPaths("/ph", "nope"), pause).code(), StatusCode::kNotFound);
  EXPECT_FALSE(fake.Exists("/ph/clusters/nope").value().has_value());
}

// A flood under nodes/ (anyone who may write there) is read only up to kMaxNodesRead, in name
// order, and the rest is a problem line naming how many and from where.
TEST(StatusRead, AFloodUnderNodesIsReadOnlyUpToTheBoundAndIsAProblem) {
  auto server = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> session = server->NewSession();
  zk::FakeZk& fake = *session;
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.Nodes()).ok());
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.History()).ok());
  const std::size_t total = kMaxNodesRead + 10;
  for (std::size_t i = 0; i < total; ++i) {
    const std::string name = "n" + std::to_string(1000 + i);
    ASSERT_TRUE(fake.Create(kMain.Node(name), Obs(name, true, 0x3000060).ToJson(),
                            zk::CreateMode::kEphemeral)
                    .ok());
  }
  auto s = ReadClusterStatus(fake, "/ph", "main", ReadOptions{}, kNow);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // (Judge adds the repmgr nodes the observations name, node1..node3, without a poller.)
  const auto read = std::count_if(s->nodes.begin(), s->nodes.end(), [](const NodeStatus& n) {
    return n.node.rfind('n', 0) == 0 && n.node.rfind("node", 0) != 0;
  });
  EXPECT_EQ(static_cast<std::size_t>(read), kMaxNodesRead);
  EXPECT_EQ(s->nodes_not_read, 10u);
  EXPECT_EQ(s->first_node_not_read, "n" + std::to_string(1000 + kMaxNodesRead));
  const std::string expected = "10 znodes under nodes/ not read (more than " +
                               std::to_string(kMaxNodesRead) + "; from n" +
                               std::to_string(1000 + kMaxNodesRead) + " on)";
  EXPECT_TRUE(std::any_of(s->problems.begin(), s->problems.end(), [&](const std::string& p) {
    return p.rfind(expected, 0) == 0;
  })) << RenderStatusTable({*s});
}

// Issue 12: only vouchers bound to the record count; children that bind nothing, legacy
// vouchers and a record no publish entry backs are problem lines naming their kind.
TEST(StatusRead, UnboundLegacyVouchersAndUnbackedRecordAreProblems) {
  auto server = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> session = server->NewSession();
  zk::FakeZk& fake = *session;
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.History()).ok());
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.epoch = 4;
  h.chosen = "node1";
  h.master = Master("node1");
  ASSERT_TRUE(fake.Create(kMain.HistoryPrefix(), h.ToJson(),
                          zk::CreateMode::kPersistentSequential)
                  .ok());
  h.action = "keep";  // a newer entry that is no publish does not change what backs the record
  h.epoch = 9;
  h.chosen = "node2";
  ASSERT_TRUE(fake.Create(kMain.HistoryPrefix(), h.ToJson(),
                          zk::CreateMode::kPersistentSequential)
                  .ok());
  // A forged record naming node2 on a higher timeline, beside node1's voucher and a legacy one.
  model::MasterRecord forged = Master("node2");
  forged.timeline = 9;
  forged.epoch = 5;
  const std::string original = Master("node1").ToJson();
  ASSERT_TRUE(fake.Create(kMain.Master(), forged.ToJson(), zk::CreateMode::kPersistent)
                  .ok());
  const std::string old_voucher = model::VoucherName(4, model::RecordDigest(original), "orch-a");
  ASSERT_TRUE(fake.Create(kMain.Voucher(old_voucher), "{}",
                          zk::CreateMode::kEphemeral)
                  .ok());
  ASSERT_TRUE(
      fake.Create(kMain.Voucher("orch-b"), "{}", zk::CreateMode::kEphemeral).ok());

  auto s = ReadClusterStatus(fake, "/ph", "main", ReadOptions{}, kNow);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->verified());
  EXPECT_TRUE(s->vouchers.empty());
  EXPECT_EQ(s->unbound_vouchers.size(), 2u);
  EXPECT_EQ(s->legacy_vouchers, std::vector<std::string>{"orch-b"});
  ASSERT_TRUE(s->newest_publish.has_value());
  EXPECT_EQ(s->newest_publish->epoch, 4u);
  EXPECT_FALSE(s->backed());
  auto has = [&](const std::string& prefix, const std::string& what) {
    for (const std::string& p : s->problems) {
      if (p.rfind(prefix, 0) == 0 && p.find(what) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("voucher_unbound:", old_voucher));
  EXPECT_TRUE(has("voucher_legacy:", "orch-b"));
  EXPECT_TRUE(has("master_unbacked:", "epoch 5, node node2, timeline 9"));
  EXPECT_TRUE(has("master_unbacked:", "newest publish entry is epoch 4, node node1"));
  EXPECT_EQ(ExitCodeFor({*s}), kExitUnhealthy);
  EXPECT_NE(RenderStatusTable({*s}).find("UNVERIFIED"), std::string::npos);

  // The orchestrator's publish repairs it: bound voucher, backing entry; no problem line left.
  model::MasterRecord repaired = Master("node1");
  repaired.epoch = 10;
  h.action = "publish";
  h.epoch = 10;
  h.chosen = "node1";
  h.master = repaired;
  ASSERT_TRUE(fake.Create(kMain.HistoryPrefix(), h.ToJson(),
                          zk::CreateMode::kPersistentSequential)
                  .ok());
  ASSERT_TRUE(fake.Set(kMain.Master(), repaired.ToJson()).ok());
  ASSERT_TRUE(fake.Delete(kMain.Voucher(old_voucher)).ok());
  ASSERT_TRUE(fake.Delete(kMain.Voucher("orch-b")).ok());
  ASSERT_TRUE(fake.Create(kMain.Voucher(model::VoucherName(10, model::RecordDigest(repaired.ToJson()),
                                                 "orch-a")),
                          "{}", zk::CreateMode::kEphemeral)
                  .ok());
  auto fixed = ReadClusterStatus(fake, "/ph", "main", ReadOptions{}, kNow);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(fixed->verified());
  EXPECT_EQ(fixed->vouchers, std::vector<std::string>{"orch-a"});
  EXPECT_TRUE(fixed->backed());
  for (const std::string& p : fixed->problems) {
    EXPECT_EQ(p.find("voucher_"), std::string::npos) << p;
    EXPECT_EQ(p.find("master_unbacked"), std::string::npos) << p;
  }
}

// ---- untrusted content: what status shows of a hostile ZooKeeper ----

// No control character but the line ends: nothing from a znode can move the cursor, clear the
// screen, set the title or forge a line.
void ExpectTerminalSafe(const std::string& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    EXPECT_FALSE((c < 0x20 && c != '\n') || c == 0x7f)
        << "control byte " << int(c) << " at " << i << " in:\n"
        << out;
  }
}

const std::string kEvil = "x\x1b]0;pwned\x07\x1b[2J\r\nFAKE LINE\x7f";

TEST(StatusUntrusted, TableAndHistoryTextSanitizeEverythingFromZooKeeper) {
  ClusterStatus c = Healthy();
  c.name = "main" + kEvil;
  c.master.node = "node1" + kEvil;
  c.master.host = "h" + kEvil;
  c.vouchers = {"orch" + kEvil};
  c.control.paused = true;
  c.control.reason = kEvil;
  c.control.changed_by = kEvil;
  c.nodes[1].observation->error = kEvil;
  c.nodes[1].observation->host = kEvil;
  c.nodes[2].node = "node3" + kEvil;
  c.nodes[2].observation->node = "node3" + kEvil;
  Judge(c, 10000, kNow);
  c.problems.push_back("corrupt payload ignored: " + kEvil);
  const std::string table = RenderStatusTable({c});
  ExpectTerminalSafe(table);
  EXPECT_NE(table.find("\\x1b]0;pwned\\x07"), std::string::npos) << table;
  EXPECT_EQ(table.find("\nFAKE LINE"), std::string::npos);

  model::HistoryEntry h;
  h.cluster = kEvil;
  h.action = "publish" + kEvil;
  h.chosen = kEvil;
  h.decided_by = kEvil;
  h.previous = Master(kEvil);
  h.master = Master(kEvil);
  h.reasons = {{kEvil, kEvil, kEvil}};
  h.stale_primaries = {kEvil};
  h.data_loss = model::DataLossEstimate{kEvil, 1, kEvil, 0, 1};
  model::NodeEvidence e;
  e.node = kEvil;
  e.role = kEvil;
  e.notes = {kEvil};
  h.evidence = {e};
  const std::string history = RenderHistoryText(kEvil, {h});
  ExpectTerminalSafe(history);
  EXPECT_EQ(history.find("\nFAKE LINE"), std::string::npos);
  ExpectTerminalSafe(RenderHistoryText(kEvil, {}));
}

TEST(StatusUntrusted, JsonEscapesControlCharacters) {
  ClusterStatus c = Healthy();
  c.name = "main\x1b[2J\n";
  c.control.reason = "r\x07";
  c.nodes[0].observation->error = "e\x1b";
  Judge(c, 10000, kNow);
  const std::string out = RenderStatusJson({c});
  ASSERT_EQ(out.back(), '\n');
  for (char ch : out.substr(0, out.size() - 1)) {
    EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20) << out;
  }
  const json j = json::parse(out);
  EXPECT_EQ(j["clusters"][0]["name"], "main\x1b[2J\n");  // escaped, not lost
}

// A 200 KB nested array in master and in a nodes/ znode (the lab's crash), a persistent znode
// under nodes/ and an observation filed under another node's name: status reads on, names each.
TEST(StatusUntrusted, HostileZnodesBecomeProblemsNamingThem) {
  auto server = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> session = server->NewSession();
  zk::FakeZk& fake = *session;
  ASSERT_TRUE(zk::EnsurePath(fake, kMain.Nodes()).ok());
  const std::string nested = testing::NestedArrays(200 * 1024);
  ASSERT_TRUE(fake.Create(kMain.Master(), nested, zk::CreateMode::kPersistent).ok());
  ASSERT_TRUE(fake.Create(kMain.Node("node1"), Obs("node1", false, 0x3000060).ToJson(),
                          zk::CreateMode::kEphemeral)
                  .ok());
  ASSERT_TRUE(
      fake.Create(kMain.Node("node2"), nested, zk::CreateMode::kEphemeral).ok());
  // Persistent, and otherwise a perfect writable observation: never a live poller.
  ASSERT_TRUE(fake.Create(kMain.Node("node3"), Obs("node3", false, 0x3000060).ToJson(),
                          zk::CreateMode::kPersistent)
                  .ok());
  // node1's observation again, filed as node4.
  ASSERT_TRUE(fake.Create(kMain.Node("node4"), Obs("node1", false, 0x3000060).ToJson(),
                          zk::CreateMode::kEphemeral)
                  .ok());
  ASSERT_TRUE(fake.Create(kMain.Control(), testing::OpenBrackets(1 << 20),
                          zk::CreateMode::kPersistent)
                  .ok());

  auto s = ReadClusterStatus(fake, "/ph", "main", ReadOptions{}, kNow);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->healthy());
  auto mentions = [&](const std::string& a, const std::string& b) {
    for (const std::string& p : s->problems) {
      if (p.find(a) != std::string::npos && p.find(b) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(mentions(kMain.Master(), "exceeds the limit of 65536 bytes"));
  EXPECT_TRUE(mentions(kMain.Node("node2"), "exceeds the limit"));
  EXPECT_TRUE(mentions(kMain.Node("node3"), "persistent znode"));
  EXPECT_TRUE(mentions(kMain.Node("node4"), "differs from its znode name"));
  EXPECT_TRUE(mentions("control znode corrupt", "exceeds the limit"));
  for (const NodeStatus& n : s->nodes) {
    EXPECT_NE(n.node, "node4");
    if (n.node == "node3" || n.node == "node2") {
      EXPECT_FALSE(n.observation.has_value()) << n.node;
      EXPECT_EQ(n.role, "missing") << n.node;
    }
  }
  for (const std::string& p : s->problems) EXPECT_LT(p.size(), 500u) << p;
  ExpectTerminalSafe(RenderStatusTable({*s}));
  EXPECT_EQ(ExitCodeFor({*s}), kExitUnhealthy);
}

}  // namespace
}  // namespace pgherald::status
