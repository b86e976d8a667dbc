// Orchestrator rounds on FakeZk with a scripted prober and a ManualClock: dry-run decides and logs
// but writes nothing to ZooKeeper; a voucher withdrawn after a failed write check leaves a history
// entry saying why (once per withdrawal), fenced by the election znode.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <map>
#include <functional>
#include <set>
#include <sstream>

#include "tests/support/fake_zk.h"
#include "common/logging.h"
#include "common/model/voucher.h"
#include "common/model/zk_paths.h"
#include "orchestrator/accept_timeline.h"
#include "orchestrator/orchestrator.h"
#include "tests/support/manual_clock.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;

constexpr char kSysid[] = "7000000000000000001";
const model::ClusterPaths kPaths("/pgherald", "main");

// Node states the test sets; probes and write checks answer from them.
struct ScriptedNode {
  bool up = true;
  bool in_recovery = true;
  bool write_fails = false;  // reachable and out of recovery, but the write check fails
  std::uint32_t timeline = 1;
};

class ScriptedProber final : public NodeProber {
 public:
  std::map<std::string, ScriptedNode> nodes;

  model::Probe ProbeOf(const std::string& name) {
    model::Probe p;
    p.node = name;
    p.host = "127.0.0.1";
    p.port = 5432;
    if (nodes.count(name) == 0) {  // a learned node the script does not know: down
      p.error = "connection refused";
      return p;
    }
    const ScriptedNode& n = nodes.at(name);
    p.reachable = n.up;
    if (!n.up) {
      p.error = "connection refused";
      return p;
    }
    p.in_recovery = n.in_recovery;
    p.timeline = n.timeline;
    p.lsn = 0x3000000;
    p.system_identifier = kSysid;
    return p;
  }
  std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets, MonoTime) override {
    probed = targets;
    std::vector<model::Probe> out;
    for (const NodeTarget& t : targets) out.push_back(ProbeOf(t.name));
    return out;
  }
  std::vector<model::Probe> WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                           MonoTime) override {
    ++write_checks;
    if (during_write_check) during_write_check();
    std::vector<model::Probe> out;
    for (const WriteCheckRequest& r : requests) {
      const NodeTarget& t = r.target;
      model::Probe p = ProbeOf(t.name);
      if (p.reachable) {
        const bool fails = p.in_recovery || nodes.at(t.name).write_fails;
        p.write_check = fails ? model::WriteCheck::kFailed : model::WriteCheck::kPassed;
        if (fails) p.write_error = "ERROR: could not extend file (disk full)";
      }
      out.push_back(p);
    }
    return out;
  }
  void Forget(const std::vector<NodeTarget>& targets) override {
    for (const NodeTarget& t : targets) forgotten.push_back(t.name);
  }
  const NodeTarget* Probed(const std::string& name) const {
    for (const NodeTarget& t : probed) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  int write_checks = 0;
  std::function<void()> during_write_check;  // e.g. a session interruption mid-round
  std::vector<NodeTarget> probed;       // the last ProbeAll's targets
  std::vector<std::string> forgotten;   // every Forget, in order
};

class OrchestratorRoundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::LoggingConfig lc;
    lc.level = config::LogLevel::kInfo;
    log::Init(lc, std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    prober_.nodes["node1"] = ScriptedNode{true, false, false, 1};
    prober_.nodes["node2"] = ScriptedNode{};
  }
  void TearDown() override { log::Init(config::LoggingConfig{}); }

  std::unique_ptr<Orchestrator> Make(bool dry_run, LearnPolicy learn = {},
                                     std::map<std::string, std::string> pg_options = {},
                                     milliseconds reaffirm = milliseconds(1000)) {
    OrchestratorOptions o;
    o.id = "orch-a";
    o.dry_run = dry_run;
    o.voucher_reaffirm = reaffirm;
    o.policy.confirmation_window = milliseconds(0);
    ClusterSpec spec;
    spec.name = "main";
    spec.defaults.password = "s3cret";
    spec.defaults.options = pg_options;
    spec.learn = std::move(learn);
    for (const auto& [name, n] : prober_.nodes) spec.nodes.push_back(NodeTarget{name, spec.defaults});
    SessionFactory factory = [this]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
      zk::FakeZkOptions zo;
      zo.dispatch = zk::DispatchMode::kManual;
      zo.answer_inline = true;  // the orchestrator awaits its pipelined reads' answers
      zo.session_timeout = milliseconds(6000);
      return std::unique_ptr<zk::ZkSession>(server_->NewSession(zo));
    };
    return std::make_unique<Orchestrator>(o, std::vector<ClusterSpec>{spec}, factory, &prober_,
                                          &clock_, std::vector<publishers::Publisher*>{}, "g1");
  }
  // A few rounds, time moving on, watches delivered.
  void Rounds(Orchestrator& orch, int n) {
    for (int i = 0; i < n; ++i) {
      server_->DispatchAllPending();
      orch.RunRound();
      clock_.Advance(milliseconds(200));
    }
  }
  // The master znode's children that vouch for its current record (model::BoundVouchers).
  std::vector<std::string> Bound() {
    auto m = server_->Peek(kPaths.Master());
    if (!m) return {};
    auto r = model::MasterRecord::FromJson(m->data);
    if (!r.ok()) return {};
    return model::BoundVouchers(server_->PeekChildren(kPaths.Master()), *r, m->data);
  }
  std::vector<std::string> Children() {
    return server_->PeekChildren(kPaths.Master());
  }
  model::MasterRecord Record() {
    auto m = server_->Peek(kPaths.Master());
    EXPECT_TRUE(m.has_value());
    auto r = model::MasterRecord::FromJson(m->data);
    EXPECT_TRUE(r.ok()) << m->data;
    return r.ok() ? *r : model::MasterRecord{};
  }
  std::vector<model::HistoryEntry> History() {
    std::vector<model::HistoryEntry> out;
    for (const std::string& h : server_->PeekChildren(kPaths.History())) {
      auto e = model::HistoryEntry::FromJson(server_->Peek(kPaths.HistoryEntry(h))->data);
      EXPECT_TRUE(e.ok());
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }

  // Publishes an observation of `name` at host:port as a poller would (ephemeral) or as a leftover
  // or forgery would (persistent), from its own session.
  void Observe(const std::string& name, const std::string& host, int port, bool ephemeral,
               bool in_recovery = true, std::uint32_t timeline = 1) {
    if (poller_ == nullptr) {
      zk::FakeZkOptions zo;
      zo.dispatch = zk::DispatchMode::kManual;
      poller_ = server_->NewSession(zo);
    }
    model::NodeObservation o;
    o.node = name;
    o.host = host;
    o.port = port;
    o.reachable = true;
    o.in_recovery = in_recovery;
    o.timeline = timeline;
    o.system_identifier = kSysid;
    o.seq = 1;
    o.observed_at_ms = 1;
    auto made = poller_->Create(kPaths.Node(name), o.ToJson(),
                                ephemeral ? zk::CreateMode::kEphemeral : zk::CreateMode::kPersistent);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
  }

  // `pgherald accept-timeline --timeline <timeline>` by alice@ops.
  void Accept(std::uint32_t timeline, const std::string& reason) {
    auto op = server_->NewSession(zk::FakeZkOptions{});
    publishers::ControlState accept;
    accept.accept_below_timeline = timeline;
    accept.accept_by = "alice@ops";
    accept.accept_reason = reason;
    accept.accept_at_ms = 1700000000000;
    ASSERT_TRUE(AcceptLowerTimeline(*op, "/pgherald", "main", accept).ok());
  }

  std::ostringstream log_;
  ManualClock clock_;
  std::unique_ptr<zk::FakeZk> poller_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  ScriptedProber prober_;
};

// Only ephemeral znodes on allowed hosts are learned, and a learned node gets no password unless
// its connection authenticates the server.
TEST_F(OrchestratorRoundTest, LearnedNodesAreBoundedAndGetNoPasswordBlindly) {
  auto orch = Make(/*dry_run=*/false);  // default policy: configured hosts (127.0.0.1) only
  Rounds(*orch, 2);
  ASSERT_TRUE(orch->leading()) << log_.str();
  Observe("node3", "127.0.0.1", 5444, /*ephemeral=*/true);
  Observe("node4", "127.0.0.1", 5445, /*ephemeral=*/false);  // a leftover or a forgery
  Observe("evil", "203.0.113.9", 5432, /*ephemeral=*/true);  // not a configured host
  Rounds(*orch, 2);
  const NodeTarget* n3 = prober_.Probed("node3");
  ASSERT_NE(n3, nullptr) << log_.str();
  EXPECT_EQ(n3->params.port, 5444);
  EXPECT_TRUE(n3->params.withhold_password);
  EXPECT_FALSE(n3->params.password.has_value());
  EXPECT_EQ(prober_.Probed("node4"), nullptr);
  EXPECT_EQ(prober_.Probed("evil"), nullptr);
  // Configured nodes keep their password.
  ASSERT_NE(prober_.Probed("node1"), nullptr);
  EXPECT_EQ(prober_.Probed("node1")->params.password.value_or(""), "s3cret");
  EXPECT_FALSE(prober_.Probed("node1")->params.withhold_password);
  const std::string log = log_.str();
  EXPECT_NE(log.find("node_learned"), std::string::npos) << log;
  EXPECT_NE(log.find("learn_password_withheld"), std::string::npos) << log;
  EXPECT_NE(log.find("learn_not_ephemeral"), std::string::npos) << log;
  EXPECT_NE(log.find("learn_host_not_allowed"), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cret"), std::string::npos) << log;

  // The learned node goes away: its connection is closed.
  poller_->Close();
  poller_.reset();
  Rounds(*orch, 2);
  EXPECT_EQ(prober_.Probed("node3"), nullptr);
  EXPECT_NE(std::find(prober_.forgotten.begin(), prober_.forgotten.end(), "node3"),
            prober_.forgotten.end());
}

TEST_F(OrchestratorRoundTest, LearnedNodeGetsThePasswordWhenTheServerIsAuthenticated) {
  auto orch = Make(/*dry_run=*/false, {}, {{"sslmode", "verify-full"}});
  Rounds(*orch, 2);
  Observe("node3", "127.0.0.1", 5444, /*ephemeral=*/true);
  Rounds(*orch, 2);
  const NodeTarget* n3 = prober_.Probed("node3");
  ASSERT_NE(n3, nullptr) << log_.str();
  EXPECT_FALSE(n3->params.withhold_password);
  EXPECT_EQ(n3->params.password.value_or(""), "s3cret");
}

TEST_F(OrchestratorRoundTest, LearnedNodesFollowTheAllowlistAndTheMax) {
  LearnPolicy learn;
  learn.networks = {*Network::Parse("10.1.0.0/16")};
  learn.names = {"db-*"};
  learn.max = 2;
  auto orch = Make(/*dry_run=*/false, learn);
  Rounds(*orch, 2);
  Observe("db-c", "10.1.0.3", 5432, true);
  Observe("db-a", "10.1.0.1", 5432, true);
  Observe("db-b", "10.1.0.2", 5432, true);    // third in name order: over the max
  Observe("web-1", "10.1.0.9", 5432, true);   // name not allowed
  Observe("db-x", "127.0.0.1", 5432, true);   // outside the networks (configured hosts do not count)
  Observe("db-y", "db.example", 5432, true);  // a name, not an address: never matches a network
  Rounds(*orch, 2);
  EXPECT_NE(prober_.Probed("db-a"), nullptr);
  EXPECT_NE(prober_.Probed("db-b"), nullptr);
  EXPECT_EQ(prober_.Probed("db-c"), nullptr);
  EXPECT_EQ(prober_.Probed("web-1"), nullptr);
  EXPECT_EQ(prober_.Probed("db-x"), nullptr);
  EXPECT_EQ(prober_.Probed("db-y"), nullptr);
  const std::string log = log_.str();
  EXPECT_NE(log.find("learn_over_max"), std::string::npos) << log;
  EXPECT_NE(log.find("learn_name_not_allowed"), std::string::npos) << log;
}

TEST_F(OrchestratorRoundTest, LearningOffProbesOnlyConfiguredNodes) {
  LearnPolicy learn;
  learn.enabled = false;
  auto orch = Make(/*dry_run=*/false, learn);
  Rounds(*orch, 2);
  Observe("node3", "127.0.0.1", 5444, true);
  Rounds(*orch, 2);
  EXPECT_EQ(prober_.Probed("node3"), nullptr);
  EXPECT_EQ(prober_.probed.size(), 2u);
}

TEST_F(OrchestratorRoundTest, DryRunDecidesAndLogsButPublishesNothing) {
  auto orch = Make(/*dry_run=*/true);
  Rounds(*orch, 5);
  // A dry-run instance is no member and owns nothing (it takes no cluster from real instances);
  // it decides for every cluster.
  EXPECT_FALSE(orch->leading()) << log_.str();
  EXPECT_TRUE(server_->PeekChildren("/pgherald/orchestrators/election").empty());
  // It decided to publish node1 (and wrote the heartbeat row of the write check: that is a probe
  // of the node, not a publication) ...
  const std::string log = log_.str();
  EXPECT_NE(log.find("decision cluster=main action=publish chosen=node1"), std::string::npos) << log;
  EXPECT_NE(log.find("dry_run=true"), std::string::npos) << log;
  EXPECT_GT(prober_.write_checks, 0);
  // ... and ZooKeeper holds nothing of the cluster: no master, voucher, history or identity.
  EXPECT_FALSE(server_->Peek(kPaths.Master()).has_value());
  EXPECT_FALSE(server_->Peek(kPaths.History()).has_value());
  EXPECT_FALSE(server_->Peek(kPaths.Identity()).has_value());
  EXPECT_FALSE(server_->Peek(kPaths.Cluster()).has_value());
  EXPECT_EQ(log.find("master_published"), std::string::npos) << log;
  EXPECT_EQ(log.find("vouched"), std::string::npos) << log;

  // The same rounds without dry-run publish: the dry-run result above is the mode, not the input.
  auto real = Make(/*dry_run=*/false);
  orch.reset();
  Rounds(*real, 5);
  auto m = server_->Peek(kPaths.Master());
  ASSERT_TRUE(m.has_value()) << log_.str();
  EXPECT_EQ(model::MasterRecord::FromJson(m->data)->node, "node1");
}

TEST_F(OrchestratorRoundTest, DryRunOverAPublishedMasterChangesNothing) {
  {
    auto real = Make(/*dry_run=*/false);
    Rounds(*real, 5);
    real->Resign();
  }
  ASSERT_TRUE(server_->Peek(kPaths.Master()).has_value());
  const auto before = server_->Peek(kPaths.Master());
  const auto history_before = server_->PeekChildren(kPaths.History());
  // A failover that a real leader would publish at once (later timeline).
  prober_.nodes["node1"].up = false;
  prober_.nodes["node2"] = ScriptedNode{true, false, false, 2};
  auto dry = Make(/*dry_run=*/true);
  Rounds(*dry, 5);
  EXPECT_NE(log_.str().find("action=publish chosen=node2"), std::string::npos) << log_.str();
  const auto after = server_->Peek(kPaths.Master());
  EXPECT_EQ(after->data, before->data);
  EXPECT_EQ(after->stat.version, before->stat.version);
  EXPECT_EQ(server_->PeekChildren(kPaths.History()), history_before);
  EXPECT_TRUE(server_->PeekChildren(kPaths.Master()).empty()) << "dry-run vouched";
}

TEST_F(OrchestratorRoundTest, WithdrawnVoucherLeavesOneHistoryEntryWithTheReason) {
  auto orch = Make(/*dry_run=*/false);
  Rounds(*orch, 5);
  ASSERT_EQ(Bound().size(), 1u);
  ASSERT_EQ(Children(), Bound());
  ASSERT_EQ(History().size(), 1u);
  // The first publish recorded the cluster's identity (a foreign database is never published).
  EXPECT_TRUE(server_->Peek(kPaths.Identity()).has_value());

  // The master still answers but its write check fails: the voucher goes, with an entry.
  prober_.nodes["node1"].write_fails = true;
  Rounds(*orch, 5);
  EXPECT_TRUE(server_->PeekChildren(kPaths.Master()).empty());
  auto h = History();
  ASSERT_EQ(h.size(), 2u) << "one entry per withdrawal, not one per round";
  const model::HistoryEntry& w = h[1];
  EXPECT_EQ(w.action, "withdraw");
  EXPECT_EQ(w.epoch, h[0].epoch);  // the record it stopped vouching for
  EXPECT_FALSE(w.master.has_value());
  ASSERT_TRUE(w.previous.has_value());
  EXPECT_EQ(w.previous->node, "node1");
  ASSERT_FALSE(w.reasons.empty());
  EXPECT_EQ(w.reasons[0].code, "master_unverified");
  bool write_check_named = false;
  for (const auto& r : w.reasons) write_check_named |= r.code == "write_check_failed" && r.node == "node1";
  EXPECT_TRUE(write_check_named) << w.ToJson();
  EXPECT_NE(log_.str().find("voucher_withdrawn cluster=main node=node1"), std::string::npos) << log_.str();
  // The record itself is kept (consumers may keep the last route).
  EXPECT_EQ(model::MasterRecord::FromJson(server_->Peek(kPaths.Master())->data)->node,
            "node1");

  // Verified again: vouched again, and the next withdrawal is recorded again.
  prober_.nodes["node1"].write_fails = false;
  Rounds(*orch, 3);
  EXPECT_EQ(Bound().size(), 1u);
  EXPECT_EQ(Children(), Bound());
  prober_.nodes["node1"].up = false;
  Rounds(*orch, 3);
  h = History();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[2].action, "withdraw");
}

// A steady round reads neither the master znode nor our voucher (docs/orchestrator.md, "Reads"):
// the children watch on the master is what keeps that honest. A voucher deleted by hand is
// recreated by the next round; one forged under the same name (deleted, then created again as a
// persistent znode with the same payload), which a round trusting what it last knew would go on
// counting as held, is replaced by our own ephemeral one.
TEST_F(OrchestratorRoundTest, AVoucherDeletedOrForgedByHandIsMadeOursAgain) {
  auto orch = Make(/*dry_run=*/false, {}, {}, /*reaffirm=*/milliseconds(60000));
  Rounds(*orch, 3);
  ASSERT_EQ(Bound().size(), 1u);
  const std::string voucher = kPaths.Voucher(Bound()[0]);
  const std::int64_t ours = orch->session()->session_id();
  ASSERT_EQ(server_->Peek(voucher)->stat.ephemeral_owner, ours);
  auto admin = server_->NewSession(zk::FakeZkOptions{});

  ASSERT_TRUE(admin->Delete(voucher).ok());
  Rounds(*orch, 1);
  ASSERT_TRUE(server_->Peek(voucher).has_value()) << log_.str();
  EXPECT_EQ(server_->Peek(voucher)->stat.ephemeral_owner, ours);

  const std::string payload = server_->Peek(voucher)->data;
  ASSERT_TRUE(admin->Delete(voucher).ok());
  ASSERT_TRUE(admin->Create(voucher, payload, zk::CreateMode::kPersistent).ok());
  Rounds(*orch, 1);
  ASSERT_TRUE(server_->Peek(voucher).has_value()) << log_.str();
  EXPECT_EQ(server_->Peek(voucher)->stat.ephemeral_owner, ours) << log_.str();
  EXPECT_EQ(Bound().size(), 1u);
}

// A re-affirmation goes out without a read of the voucher, on the version the last one left
// (docs/orchestrator.md, "Reads"). A voucher whose data someone rewrote meanwhile (its version
// moved; no child came or went, so no watch told us) makes that multi fail: the failure is logged,
// the cluster runs again at once, reads the voucher and re-affirms it.
TEST_F(OrchestratorRoundTest, AReaffirmationOnAStaleVersionFallsBackToReadingTheVoucher) {
  auto orch = Make(/*dry_run=*/false, {}, {}, /*reaffirm=*/milliseconds(1000));
  Rounds(*orch, 8);  // re-affirmed at least once: its version is known
  ASSERT_EQ(Bound().size(), 1u);
  const std::string voucher = kPaths.Voucher(Bound()[0]);
  auto admin = server_->NewSession(zk::FakeZkOptions{});
  ASSERT_TRUE(admin->Set(voucher, server_->Peek(voucher)->data).ok());
  const std::int64_t edited = server_->Peek(voucher)->stat.mzxid;
  clock_.Advance(milliseconds(1000));  // due
  server_->DispatchAllPending();
  orch->RunRound();
  EXPECT_NE(log_.str().find("vouch_failed cluster=main"), std::string::npos) << log_.str();
  EXPECT_EQ(server_->Peek(voucher)->stat.mzxid, edited);
  server_->DispatchAllPending();
  orch->RunDue();  // woken at once
  EXPECT_GT(server_->Peek(voucher)->stat.mzxid, edited) << log_.str();
  EXPECT_EQ(server_->Peek(voucher)->stat.ephemeral_owner, orch->session()->session_id());
}

TEST_F(OrchestratorRoundTest, NoHistoryEntryWhenThereWasNoVoucher) {
  // A deposed-then-restarted instance (no voucher of its own) that finds the master unverified
  // removes nothing and records nothing.
  {
    auto first = Make(/*dry_run=*/false);
    Rounds(*first, 5);
    first->Resign();
  }
  ASSERT_EQ(History().size(), 1u);
  prober_.nodes["node1"].write_fails = true;
  auto second = Make(/*dry_run=*/false);
  Rounds(*second, 5);
  EXPECT_EQ(History().size(), 1u);
}

}  // namespace
}  // namespace pgherald::orchestrator

namespace pgherald::orchestrator {
namespace {

// The real prober keeps one slot (connection) per node; Forget() drops those of vanished nodes.
TEST(PgNodeProberTest, ForgetDropsTheSlotsOfVanishedNodes) {
  PgNodeProber prober;
  NodeTarget a{"a", {}};
  a.params.port = 1;  // refused at once on loopback
  a.params.connect_timeout = std::chrono::milliseconds(500);
  NodeTarget b = a;
  b.name = "b";
  const auto deadline = SystemClock::Instance().Now() + std::chrono::seconds(5);
  auto probes = prober.ProbeAll({a, b}, deadline);
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_FALSE(probes[0].reachable);
  EXPECT_EQ(prober.kept(), 2u);
  prober.Forget({a});
  EXPECT_EQ(prober.kept(), 1u);
  prober.Forget({a});  // idempotent
  EXPECT_EQ(prober.kept(), 1u);
}

}  // namespace
}  // namespace pgherald::orchestrator

namespace pgherald::orchestrator {
namespace {

class CountingObserver final : public RoundObserver {
 public:
  void OnDecision(const std::string&, const DecisionInput&, const Verdict&) override {}
  void AfterRound(Orchestrator&) override {}
  void OnPayloadProblem(const std::string& cluster, const std::string& kind) override {
    ++problems[cluster + "/" + kind];
  }
  std::map<std::string, int> problems;
};

std::size_t Count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// Issue 12, finding 2: a master znode no orchestrator wrote (garbage) makes the leader withdraw its
// voucher at once, so that no consumer counts the old verification for it; the condition is logged
// once (not ten times a second) and counted every round. Nothing verifies: the garbage stays (no
// guess is written). Once a node verifies, the record is rewritten with an epoch above every epoch
// used (the forged content's own is ignored).
TEST_F(OrchestratorRoundTest, CorruptMasterWithdrawsAtOnceAndIsRepairedFromAVerifiedDecision) {
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  ASSERT_EQ(Bound().size(), 1u);
  const std::uint64_t first_epoch = Record().epoch;

  prober_.nodes["node1"].write_fails = true;  // nothing verifies for now
  auto vandal = server_->NewSession(zk::FakeZkOptions{});
  ASSERT_TRUE(vandal->Set(kPaths.Master(), "{\"format\":1,\"state\":[[[[", -1).ok());
  Rounds(*orch, 10);
  EXPECT_TRUE(Children().empty()) << "the voucher must not outlive the record it vouched for";
  EXPECT_EQ(server_->Peek(kPaths.Master())->data, "{\"format\":1,\"state\":[[[[");
  EXPECT_EQ(Count(log_.str(), "master_unreadable cluster=main"), 1u) << log_.str();
  EXPECT_GE(observer.problems["main/master_unreadable"], 9);

  prober_.nodes["node1"].write_fails = false;
  const std::int64_t mzxid = server_->Peek(kPaths.Master())->stat.mzxid;
  Rounds(*orch, 2);
  const model::MasterRecord r = Record();
  EXPECT_EQ(r.node, "node1");
  EXPECT_EQ(r.reason, "master_repaired");
  EXPECT_GT(r.epoch, static_cast<std::uint64_t>(mzxid));
  EXPECT_GT(r.epoch, first_epoch);
  EXPECT_EQ(Bound().size(), 1u);
  EXPECT_EQ(History().back().action, "publish");
  EXPECT_EQ(History().back().reasons[0].code, "master_repaired");
  EXPECT_NE(log_.str().find("master_unreadable_cleared"), std::string::npos) << log_.str();
}

// Deleted, and deleted with the whole history: recreated and repaired, with an epoch above every
// epoch ever used (the recreated znode's mzxid is above them all).
TEST_F(OrchestratorRoundTest, DeletedMasterAndHistoryAreRecreatedWithoutReusingAnEpoch) {
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  std::set<std::uint64_t> used = {Record().epoch};
  auto vandal = server_->NewSession(zk::FakeZkOptions{});
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool drop_history = attempt == 1;
    prober_.nodes["node1"].up = false;  // nothing verifies during the first rounds
    for (const std::string& v : Children()) {
      ASSERT_TRUE(vandal->Delete(kPaths.Voucher(v)).ok());
    }
    ASSERT_TRUE(vandal->Delete(kPaths.Master()).ok());
    if (drop_history) {
      for (const std::string& h : server_->PeekChildren(kPaths.History())) {
        ASSERT_TRUE(vandal->Delete(kPaths.HistoryEntry(h)).ok());
      }
    }
    Rounds(*orch, 3);
    EXPECT_GE(observer.problems["main/master_missing"], 1);
    EXPECT_TRUE(Children().empty());
    prober_.nodes["node1"].up = true;
    Rounds(*orch, 2);
    const model::MasterRecord r = Record();
    ASSERT_EQ(r.node, "node1") << log_.str();
    EXPECT_TRUE(used.insert(r.epoch).second) << "epoch " << r.epoch << " reused";
    EXPECT_GT(r.epoch, *used.begin());
    EXPECT_EQ(Bound().size(), 1u);
  }
  EXPECT_EQ(Count(log_.str(), "master_missing cluster=main"), 2u) << log_.str();
}

// Issue 12, finding 3: a well-formed record no orchestrator wrote (naming a standby on a higher
// timeline, beside our voucher; or a replay of an older record; or another orchestrator's record
// without backing) is not obeyed: our voucher goes at once, the problem is logged once, and the
// record is rewritten from the verified decision with an epoch above the znode's mzxid (the forged
// epoch, here the largest possible, is ignored).
TEST_F(OrchestratorRoundTest, UnbackedRecordIsNeverObeyedAndIsRepaired) {
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  const model::MasterRecord genuine = Record();
  ASSERT_EQ(genuine.node, "node1");
  auto vandal = server_->NewSession(zk::FakeZkOptions{});

  model::MasterRecord forged = genuine;
  forged.node = "node2";  // a standby
  forged.timeline = 7;
  forged.epoch = UINT64_MAX;
  forged.decided_by = "orch-z";
  model::MasterRecord replay = genuine;  // an older genuine record, replayed later
  std::vector<model::MasterRecord> attacks = {forged, replay};
  int round = 0;
  for (const model::MasterRecord& attack : attacks) {
    if (round++ == 1) {
      // Make the replay stale first: a newer genuine record is published meanwhile.
      prober_.nodes["node1"].timeline = 2;
      Rounds(*orch, 2);
      ASSERT_EQ(Record().timeline, 2u);
    }
    ASSERT_TRUE(vandal->Set(kPaths.Master(), attack.ToJson(), -1).ok());
    const std::int64_t mzxid = server_->Peek(kPaths.Master())->stat.mzxid;
    // One round: withdrawn, reported, and (node1 verifies) repaired.
    server_->DispatchAllPending();
    orch->RunRound();
    const model::MasterRecord r = Record();
    EXPECT_EQ(r.node, "node1") << log_.str();
    EXPECT_EQ(r.reason, "master_repaired");
    EXPECT_EQ(r.epoch, static_cast<std::uint64_t>(mzxid) + 1) << "max(history, mzxid) + 1";
    EXPECT_EQ(Bound().size(), 1u);
    EXPECT_EQ(Children(), Bound()) << "no voucher of ours bound to anything else";
    // The decision never counted the forged record's timeline against node1.
    EXPECT_EQ(log_.str().find("below_published_timeline"), std::string::npos) << log_.str();
    Rounds(*orch, 3);
    EXPECT_EQ(Record(), r) << "stable after the repair";
  }
  EXPECT_EQ(Count(log_.str(), "master_unbacked cluster=main"), 2u) << log_.str();
  EXPECT_GE(observer.problems["main/master_unbacked"], 2);

  // Nothing verifies: the forged record stays, without our voucher, reported once.
  prober_.nodes["node1"].up = false;
  ASSERT_TRUE(vandal->Set(kPaths.Master(), forged.ToJson(), -1).ok());
  Rounds(*orch, 5);
  EXPECT_EQ(Record().node, "node2");
  EXPECT_TRUE(Children().empty());
  EXPECT_EQ(Count(log_.str(), "master_unbacked cluster=main"), 3u) << log_.str();
}

// Issue 12, sim finding 1: a hand-written no-master record with the largest epoch is not the
// initial record: it is unbacked, repaired, and its epoch never counts (no wrap to 0).
TEST_F(OrchestratorRoundTest, HandWrittenNoMasterRecordWithTheLargestEpochNeverWrapsTheEpoch) {
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  const std::uint64_t first_epoch = Record().epoch;
  ASSERT_EQ(Record().node, "node1");
  auto vandal = server_->NewSession(zk::FakeZkOptions{});
  model::MasterRecord forged;  // state no-master, and no children (the voucher deleted too)
  forged.epoch = UINT64_MAX;
  for (const std::string& v : Children()) {
    ASSERT_TRUE(vandal->Delete(kPaths.Voucher(v)).ok());
  }
  ASSERT_TRUE(vandal->Set(kPaths.Master(), forged.ToJson(), -1).ok());
  const std::int64_t mzxid = server_->Peek(kPaths.Master())->stat.mzxid;
  server_->DispatchAllPending();
  orch->RunRound();
  const model::MasterRecord r = Record();
  EXPECT_EQ(r.node, "node1") << log_.str();
  EXPECT_EQ(r.reason, "master_repaired");
  EXPECT_EQ(r.epoch, static_cast<std::uint64_t>(mzxid) + 1);
  EXPECT_GT(r.epoch, first_epoch);
  EXPECT_EQ(Bound().size(), 1u);
  EXPECT_EQ(Count(log_.str(), "master_unbacked cluster=main"), 1u) << log_.str();
  for (const model::HistoryEntry& h : History()) {
    EXPECT_NE(h.epoch, UINT64_MAX) << h.ToJson();
    EXPECT_NE(h.epoch, 0u) << h.ToJson();
  }
}

// A corrupt control znode (hand-written) pauses the cluster rather than being guessed at, whether
// the batch's pipelined read or the round's own finds it: node1 dies and node2 is promoted on
// timeline 2, and nothing is published while the znode stays corrupt (logged as such every round);
// once the operator writes a valid one, node2 is published.
TEST_F(OrchestratorRoundTest, ACorruptControlZnodeIsTreatedAsPaused) {
  auto orch = Make(/*dry_run=*/false);
  Rounds(*orch, 3);
  ASSERT_EQ(Record().node, "node1");
  auto op = server_->NewSession(zk::FakeZkOptions{});
  ASSERT_TRUE(op->Create(kPaths.Control(), "{\"paused\":", zk::CreateMode::kPersistent).ok());
  prober_.nodes["node1"] = ScriptedNode{false, false, false, 1};
  prober_.nodes["node2"] = ScriptedNode{true, false, false, 2};
  Rounds(*orch, 4);
  EXPECT_EQ(Record().node, "node1") << "published through a corrupt control znode";
  EXPECT_GE(Count(log_.str(), "control_unreadable cluster=main"), 4u) << log_.str();
  EXPECT_NE(log_.str().find("effect=\"treated as paused\""), std::string::npos) << log_.str();

  ASSERT_TRUE(op->Set(kPaths.Control(), publishers::ControlToJson(publishers::ControlState{})).ok());
  Rounds(*orch, 3);
  EXPECT_EQ(Record().node, "node2") << log_.str();
}

// Issue 12, sim finding 2: the master znode deleted (and recreated as the initial record), wiped
// to an empty payload, or overwritten by a hand-written no-master record, with history intact:
// none of them says "nothing published". History's newest publish (node1, timeline 2) stays in
// force: node2, writable on timeline 1, is not published over it; the unreachable master is
// reported; only `pgherald accept-timeline` lowers it.
TEST_F(OrchestratorRoundTest, LostRecordDoesNotResetThePublishedTimelineHistoryHolds) {
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    server_ = zk::FakeZkServer::Create(&clock_);
    poller_.reset();
    log_.str("");
    prober_.nodes["node1"] = ScriptedNode{true, false, false, 2};
    prober_.nodes["node2"] = ScriptedNode{};
    auto orch = Make(/*dry_run=*/false);
    CountingObserver observer;
    orch->set_observer(&observer);
    Rounds(*orch, 5);
    ASSERT_EQ(Record().node, "node1");
    ASSERT_EQ(Record().timeline, 2u);
    const std::size_t entries = History().size();
    prober_.nodes["node1"].up = false;
    prober_.nodes["node2"] = ScriptedNode{true, false, false, 1};  // the old primary, writable
    auto vandal = server_->NewSession(zk::FakeZkOptions{});
    const std::string master = kPaths.Master();
    if (variant == 0) {
      for (const std::string& v : Children()) ASSERT_TRUE(vandal->Delete(master + "/" + v).ok());
      ASSERT_TRUE(vandal->Delete(master).ok());
    } else {
      ASSERT_TRUE(vandal->Set(master, variant == 1 ? "" : model::MasterRecord{}.ToJson(), -1).ok());
    }
    Rounds(*orch, 10);
    for (std::size_t i = entries; i < History().size(); ++i) {
      EXPECT_NE(History()[i].action, "publish") << History()[i].ToJson();
    }
    auto now = server_->Peek(master);
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ(now->data.find("node2"), std::string::npos) << now->data;
    EXPECT_TRUE(Children().empty());
    EXPECT_EQ(Count(log_.str(), "published_master_unreachable cluster=main"), 1u) << log_.str();
    EXPECT_NE(log_.str().find("below_published_timeline"), std::string::npos) << log_.str();
    // The operator accepts timeline 2's loss: node2 is published, once.
    Accept(2, "node1 is gone");
    Rounds(*orch, 2);
    EXPECT_EQ(Record().node, "node2") << log_.str();
    EXPECT_EQ(Record().reason, "operator_accepted_lower_timeline");
    EXPECT_EQ(Bound().size(), 1u);
    orch->Resign();
  }
}

// Issue 12, sim finding 3: master and history both deleted. node2, a standby on timeline 2,
// shows that node1, still writable on timeline 1, was left behind: the repair waits rather than
// publish node1, and says why.
TEST_F(OrchestratorRoundTest, LostRecordAndHistoryNeverPublishANodeBelowTheClusterTimeline) {
  auto orch = Make(/*dry_run=*/false);
  Rounds(*orch, 5);
  ASSERT_EQ(Record().node, "node1");
  auto vandal = server_->NewSession(zk::FakeZkOptions{});
  const std::string master = kPaths.Master();
  for (const std::string& v : Children()) ASSERT_TRUE(vandal->Delete(master + "/" + v).ok());
  ASSERT_TRUE(vandal->Delete(master).ok());
  for (const std::string& h : server_->PeekChildren(kPaths.History())) {
    ASSERT_TRUE(vandal->Delete(kPaths.HistoryEntry(h)).ok());
  }
  prober_.nodes["node2"].timeline = 2;  // promoted meanwhile, now a standby of someone else
  const int checks = prober_.write_checks;
  Rounds(*orch, 10);
  auto now = server_->Peek(master);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->data.find("node1"), std::string::npos) << now->data;
  EXPECT_TRUE(History().empty());
  EXPECT_EQ(prober_.write_checks, checks) << "node1 cannot win: not written to";
  EXPECT_NE(log_.str().find("below_cluster_timeline"), std::string::npos) << log_.str();
  // node2 is promoted (writable on timeline 2): it is published.
  prober_.nodes["node2"].in_recovery = false;
  Rounds(*orch, 2);
  EXPECT_EQ(Record().node, "node2") << log_.str();
  EXPECT_EQ(Record().timeline, 2u);
}

// A record backed by history whose node nobody reaches stays in force (it may be the real master
// behind a partition): a writable node on a lower timeline is not published over it, the problem
// is shown once. `pgherald accept-timeline` writes a one-shot acceptance: the leader publishes
// the lower timeline with a history entry naming who and why, and clears the acceptance.
TEST_F(OrchestratorRoundTest, UnreachableBackedMasterStaysUntilAnOperatorAcceptsALowerTimeline) {
  prober_.nodes["node1"].timeline = 2;
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  ASSERT_EQ(Record().node, "node1");
  ASSERT_EQ(Record().timeline, 2u);
  // A new leader instance (no voucher of its own: the record is trusted by its history).
  orch->Resign();
  orch = Make(/*dry_run=*/false);
  orch->set_observer(&observer);
  prober_.nodes["node1"].up = false;
  prober_.nodes["node2"] = ScriptedNode{true, false, false, 1};  // writable, lower timeline
  Rounds(*orch, 10);
  EXPECT_EQ(Record().node, "node1");
  EXPECT_TRUE(Children().empty());
  EXPECT_EQ(Count(log_.str(), "published_master_unreachable cluster=main"), 1u) << log_.str();
  EXPECT_GE(observer.problems["main/published_master_unreachable"], 9);
  EXPECT_NE(log_.str().find("below_published_timeline"), std::string::npos);
  EXPECT_EQ(log_.str().find("master_unbacked"), std::string::npos) << log_.str();

  // An acceptance for another timeline does nothing.
  Accept(5, "node1's disk is gone");
  Rounds(*orch, 3);
  EXPECT_EQ(Record().node, "node1");
  Accept(2, "node1's disk is gone");
  Rounds(*orch, 2);
  const model::MasterRecord r = Record();
  EXPECT_EQ(r.node, "node2") << log_.str();
  EXPECT_EQ(r.timeline, 1u);
  EXPECT_EQ(r.reason, "operator_accepted_lower_timeline");
  EXPECT_EQ(Bound().size(), 1u);
  const model::HistoryEntry h = History().back();
  ASSERT_FALSE(h.reasons.empty());
  EXPECT_EQ(h.reasons[0].code, "operator_accepted_lower_timeline");
  EXPECT_NE(h.reasons[0].text.find("alice@ops"), std::string::npos) << h.reasons[0].text;
  EXPECT_NE(h.reasons[0].text.find("node1's disk is gone"), std::string::npos);
  auto control = publishers::ParseControl(server_->Peek(kPaths.Control())->data);
  ASSERT_TRUE(control.ok());
  EXPECT_EQ(control->accept_below_timeline, 0u) << "one-shot";
  EXPECT_NE(log_.str().find("published_master_unreachable_cleared"), std::string::npos);
}

// Re-affirmation: the voucher's mzxid moves after rounds whose write check of the published
// master passed, at most every voucher_reaffirm_ms; never with a verification begun before a
// session interruption (the next round, verified after it, re-affirms at once).
TEST_F(OrchestratorRoundTest, VoucherIsReaffirmedOnlyByAVerificationAfterTheLastInterruption) {
  auto orch = Make(/*dry_run=*/false, {}, {}, /*reaffirm=*/milliseconds(1000));
  Rounds(*orch, 3);
  ASSERT_EQ(Bound().size(), 1u);
  const std::string voucher = kPaths.Voucher(Bound()[0]);
  auto mzxid = [&] { return server_->Peek(voucher)->stat.mzxid; };
  auto seq = [&] { return model::VoucherPayload::FromJson(server_->Peek(voucher)->data)->affirm_seq; };
  // 200 ms per round: a re-affirmation every 5 rounds, not every round.
  const std::uint64_t seq0 = seq();
  Rounds(*orch, 10);
  EXPECT_GE(seq(), seq0 + 1);
  EXPECT_LE(seq(), seq0 + 2);

  // The write check fails: no re-affirmation, the voucher is withdrawn.
  prober_.nodes["node1"].write_fails = true;
  Rounds(*orch, 1);
  EXPECT_TRUE(Children().empty());
  prober_.nodes["node1"].write_fails = false;
  Rounds(*orch, 1);
  ASSERT_EQ(Bound().size(), 1u);
  const std::string voucher2 = kPaths.Voucher(Bound()[0]);
  clock_.Advance(milliseconds(2000));  // due

  // The session is interrupted (disconnect, reconnect) while the round verifies.
  auto* session = dynamic_cast<zk::FakeZk*>(orch->session());
  ASSERT_NE(session, nullptr);
  prober_.during_write_check = [session] {
    session->Disconnect();
    session->Reconnect();
    session->DispatchPending();  // the state events reach the orchestrator
  };
  const auto before = server_->Peek(voucher2)->stat.mzxid;
  server_->DispatchAllPending();
  orch->RunRound();
  EXPECT_EQ(server_->Peek(voucher2)->stat.mzxid, before)
      << "re-affirmed with a verification begun before the interruption";
  prober_.during_write_check = nullptr;
  server_->DispatchAllPending();
  orch->RunRound();  // verified after the reconnect: re-affirmed at once
  EXPECT_GT(server_->Peek(voucher2)->stat.mzxid, before);
  (void)mzxid;
}

// A persistent znode under nodes/ (a leftover or a forgery) is never taken as a poller's
// observation, and says so once.
TEST_F(OrchestratorRoundTest, PersistentObservationIsIgnoredAndLoggedOnce) {
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 2);
  Observe("node2", "127.0.0.1", 5432, /*ephemeral=*/false);
  Rounds(*orch, 5);
  EXPECT_EQ(Count(log_.str(), "observation_not_ephemeral cluster=main"), 1u) << log_.str();
  EXPECT_GE(observer.problems["main/observation_not_ephemeral"], 4);
}

// A flood of znodes under nodes/ (a compromised poller) is read only up to a bound, is reported
// once, and never pushes a configured node's observation out: node2, which the orchestrator cannot
// reach, is seen by its poller on timeline 2 (it follows a promotion the orchestrator cannot see),
// and that evidence must still withdraw node1's voucher although 100 forged names sort before it.
TEST_F(OrchestratorRoundTest, AFloodOfObservationsIsBoundedAndNeverHidesAConfiguredNode) {
  prober_.nodes["node2"].up = false;
  auto orch = Make(/*dry_run=*/false);
  Rounds(*orch, 2);  // the cluster's znodes exist; node1 is published
  ASSERT_FALSE(Bound().empty());
  Observe("node2", "127.0.0.1", 5432, /*ephemeral=*/true, /*in_recovery=*/true, /*timeline=*/2);
  for (int i = 0; i < 100; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "a%03d", i);
    Observe(name, "10.9.9.9", 5432, /*ephemeral=*/true);
  }
  Rounds(*orch, 4);
  EXPECT_TRUE(Bound().empty()) << "node1 still vouched for although node2 is seen on a later timeline";
  // 24 others (learn_nodes.max 8 + 16) are read; 76 are not.
  EXPECT_EQ(Count(log_.str(), "observations_over_limit cluster=main"), 1u) << log_.str();
  EXPECT_NE(log_.str().find("76 znodes under nodes/"), std::string::npos) << log_.str();
  EXPECT_NE(log_.str().find("from a024 on"), std::string::npos) << log_.str();

  for (int i = 0; i < 100; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "a%03d", i);
    ASSERT_TRUE(poller_->Delete(kPaths.Node(name)).ok());
  }
  Rounds(*orch, 2);
  EXPECT_EQ(Count(log_.str(), "observations_over_limit_cleared cluster=main"), 1u) << log_.str();
}

// `pgherald switchover`'s record, as the operator's command writes it (its own session).
class SwitchoverRoundTest : public OrchestratorRoundTest {
 protected:
  void WriteSwitchover(model::SwitchoverPhase phase, std::int64_t deadline_in_ms = 60000) {
    if (operator_ == nullptr) operator_ = server_->NewSession(zk::FakeZkOptions{});
    const std::int64_t now = model::ToWallMillis(clock_.WallNow());
    model::SwitchoverRecord r;
    r.id = "sw-1-abc";
    r.from = "node1";
    r.to = "node2";
    r.phase = phase;
    r.base_epoch = 1;
    r.max_hold_ms = 2000;
    r.started_at_ms = now;
    r.phase_at_ms = now;
    r.deadline_at_ms = now + deadline_in_ms;
    if (phase == model::SwitchoverPhase::kFailed) r.error = "rejoin failed on node1";
    WriteRaw(r.ToJson());
  }
  void WriteRaw(const std::string& data) {
    if (operator_ == nullptr) operator_ = server_->NewSession(zk::FakeZkOptions{});
    // The parents (a dry-run orchestrator creates nothing).
    std::string path;
    for (const char* part : {"pgherald", "clusters", "main", "control"}) {
      path += std::string("/") + part;
      if (!server_->Peek(path)) {
        ASSERT_TRUE(operator_->Create(path, "", zk::CreateMode::kPersistent).ok()) << path;
      }
    }
    if (server_->Peek(kPaths.Switchover())) {
      ASSERT_TRUE(operator_->Set(kPaths.Switchover(), data, -1).ok());
    } else {
      ASSERT_TRUE(
          operator_->Create(kPaths.Switchover(), data, zk::CreateMode::kPersistent).ok());
    }
  }
  std::vector<model::HistoryEntry> SwitchoverEntries() {
    std::vector<model::HistoryEntry> out;
    for (const model::HistoryEntry& h : History()) {
      if (h.action == "switchover") out.push_back(h);
    }
    return out;
  }
  std::unique_ptr<zk::FakeZk> operator_;
};

// The owner expects the change: the hold withdraws node1's voucher at once (the record's watch
// wakes the cluster), nothing is vouched or published but node2, which is published as soon as it
// is writable on a later timeline; one history entry per phase change seen; node1 stopped is no
// published_master_unreachable problem.
TEST_F(SwitchoverRoundTest, OwnerExpectsTheChangeAndRecordsEachPhase) {
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  ASSERT_EQ(Record().node, "node1");
  ASSERT_EQ(Bound().size(), 1u);
  const std::uint64_t epoch = Record().epoch;

  // hold: the watch on the record wakes the cluster, which withdraws at once.
  for (int i = 0; i < 2; ++i) {  // nothing else pending
    server_->DispatchAllPending();
    orch->RunDue();
  }
  const auto woken_before = orch->cluster_rounds();
  WriteSwitchover(model::SwitchoverPhase::kHold);
  server_->DispatchAllPending();
  orch->RunDue();
  const auto key = std::make_pair(std::string("main"), std::string("watch"));
  EXPECT_GT(orch->cluster_rounds().count(key) ? orch->cluster_rounds().at(key) : 0,
            woken_before.count(key) ? woken_before.at(key) : 0);
  EXPECT_TRUE(Children().empty()) << "node1's voucher outlived the hold";
  Rounds(*orch, 3);
  EXPECT_TRUE(Children().empty()) << "node1 vouched again during the hold";
  EXPECT_EQ(Record().node, "node1") << "the record is kept: consumers hold";

  // stop: node1 drains and stops (its poller stays up and says so).
  WriteSwitchover(model::SwitchoverPhase::kStop);
  Rounds(*orch, 2);
  prober_.nodes["node1"].up = false;
  Rounds(*orch, 3);
  EXPECT_TRUE(Children().empty());
  EXPECT_EQ(Record().node, "node1");

  // promote: node2 writable on timeline 2 is published at once, with the switchover's reason.
  WriteSwitchover(model::SwitchoverPhase::kPromote);
  prober_.nodes["node2"] = ScriptedNode{true, false, false, 2};
  Rounds(*orch, 2);
  const model::MasterRecord r = Record();
  EXPECT_EQ(r.node, "node2") << log_.str();
  EXPECT_EQ(r.epoch, epoch + 1);
  EXPECT_EQ(r.reason, "switchover");
  EXPECT_EQ(Bound().size(), 1u);

  // publish, then done: node2 stays vouched.
  WriteSwitchover(model::SwitchoverPhase::kPublish);
  Rounds(*orch, 2);
  EXPECT_EQ(Bound().size(), 1u);
  WriteSwitchover(model::SwitchoverPhase::kDone);
  Rounds(*orch, 3);
  EXPECT_EQ(Record().node, "node2");
  EXPECT_EQ(Bound().size(), 1u);

  const std::vector<model::HistoryEntry> entries = SwitchoverEntries();
  std::vector<std::string> phases;
  for (const model::HistoryEntry& h : entries) {
    ASSERT_TRUE(h.switchover.has_value()) << h.ToJson();
    EXPECT_EQ(h.switchover->id, "sw-1-abc");
    EXPECT_EQ(h.switchover->from, "node1");
    EXPECT_EQ(h.switchover->to, "node2");
    EXPECT_EQ(h.decided_by, "orch-a");
    phases.push_back(h.switchover->phase);
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"hold", "stop", "promote", "publish", "done"}));
  bool publish_named = false;
  for (const model::HistoryEntry& h : History()) {
    if (h.action != "publish" || !h.master || h.master->node != "node2") continue;
    publish_named = h.switchover && h.switchover->id == "sw-1-abc" && !h.reasons.empty() &&
                    h.reasons[0].code == "switchover";
  }
  EXPECT_TRUE(publish_named);
  EXPECT_EQ(Count(log_.str(), "published_master_unreachable cluster=main"), 0u) << log_.str();
  EXPECT_EQ(Count(log_.str(), "switchover_phase cluster=main"), 5u);
  EXPECT_NE(log_.str().find("switchover=sw-1-abc switchover_phase=hold"), std::string::npos)
      << log_.str();
}

// A corrupt record is ignored (the normal rules: the master stays vouched) and logged once per
// change; an expired one too; a record that was over before the owner saw it gets no entry.
TEST_F(SwitchoverRoundTest, CorruptExpiredAndOldRecordsLeaveTheNormalRules) {
  WriteSwitchover(model::SwitchoverPhase::kDone);
  auto orch = Make(/*dry_run=*/false);
  CountingObserver observer;
  orch->set_observer(&observer);
  Rounds(*orch, 5);
  ASSERT_EQ(Bound().size(), 1u);
  EXPECT_TRUE(SwitchoverEntries().empty()) << "a switchover over before the owner started";

  WriteRaw("{\"format\":1,\"id\":\"sw-2\",\"phase\":\"hold\"");
  Rounds(*orch, 5);
  EXPECT_EQ(Bound().size(), 1u) << "a corrupt record must not hold the cluster";
  EXPECT_EQ(Count(log_.str(), "switchover_corrupt cluster=main"), 1u) << log_.str();
  EXPECT_GE(observer.problems["main/switchover_corrupt"], 4);

  // A hold whose deadline passed (the coordinator died): nobody acts on it.
  WriteSwitchover(model::SwitchoverPhase::kHold, /*deadline_in_ms=*/-1);
  Rounds(*orch, 3);
  EXPECT_EQ(Bound().size(), 1u);
  EXPECT_NE(log_.str().find("switchover_corrupt_cleared"), std::string::npos);
  EXPECT_TRUE(SwitchoverEntries().empty());

  // An active hold, then it expires: withdrawn, then vouched again, with an "expired" entry.
  WriteSwitchover(model::SwitchoverPhase::kHold, /*deadline_in_ms=*/1000);
  Rounds(*orch, 1);
  EXPECT_TRUE(Children().empty());
  Rounds(*orch, 6);
  EXPECT_EQ(Bound().size(), 1u);
  std::vector<std::string> phases;
  for (const model::HistoryEntry& h : SwitchoverEntries()) phases.push_back(h.switchover->phase);
  EXPECT_EQ(phases, (std::vector<std::string>{"hold", "expired"}));
}

// A dry-run instance logs the phase it sees and writes nothing.
TEST_F(SwitchoverRoundTest, DryRunLogsThePhaseAndWritesNothing) {
  auto orch = Make(/*dry_run=*/true);
  WriteSwitchover(model::SwitchoverPhase::kHold);
  Rounds(*orch, 3);
  EXPECT_EQ(Count(log_.str(), "switchover_phase cluster=main"), 1u) << log_.str();
  EXPECT_TRUE(SwitchoverEntries().empty());
}

}  // namespace
}  // namespace pgherald::orchestrator
