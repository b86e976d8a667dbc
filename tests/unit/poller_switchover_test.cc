// The poller's side of the switchover (pollers/switchover.h): the pure decision, the repmgr
// command lines, the parser of `node status --is-shutdown-cleanly`, the executor with a fake step
// runner, and the poller's loop on FakeZk (record read and watched, ack published at once).
#include "pollers/switchover.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/zk/zk_session.h"
#include "pollers/poller_metrics.h"
#include "tests/unit/poller_fixture.h"

namespace pgherald::pollers {
namespace {

using model::SwitchoverPhase;
using model::SwitchoverStepState;
using Kind = SwitchoverDecision::Kind;

constexpr std::int64_t kNow = 1'000'000;

model::SwitchoverRecord SwRecord(SwitchoverPhase phase, std::string id = "sw-1-ab") {
  model::SwitchoverRecord r;
  r.id = std::move(id);
  r.from = "node1";
  r.to = "node2";
  r.siblings = {"node3"};
  r.phase = phase;
  r.started_at_ms = kNow - 1000;
  r.phase_at_ms = kNow - 10;
  r.deadline_at_ms = kNow + 120000;
  return r;
}

SwitchoverSelf Self(const std::string& node, bool in_recovery, bool answering = true) {
  SwitchoverSelf s;
  s.node = node;
  s.enabled = true;
  s.started_ms = kNow - 60000;
  s.answering = answering;
  s.in_recovery = in_recovery;
  return s;
}

struct DecisionCase {
  const char* name;
  SwitchoverPhase phase;
  std::string node;
  bool in_recovery;
  bool answering;
  Kind kind;
  SwitchoverStep step;
};

TEST(SwitchoverDecisionTest, EachNodeActsInItsOwnPhasesWithItsOwnRole) {
  const std::vector<DecisionCase> cases = {
      {"prepare from", SwitchoverPhase::kPrepare, "node1", false, true, Kind::kRun,
       SwitchoverStep::kReadiness},
      {"prepare to pauses", SwitchoverPhase::kPrepare, "node2", true, true, Kind::kRun,
       SwitchoverStep::kPause},
      {"prepare sibling", SwitchoverPhase::kPrepare, "node3", true, true, Kind::kRun,
       SwitchoverStep::kReadiness},
      {"prepare from in recovery", SwitchoverPhase::kPrepare, "node1", true, true, Kind::kFail,
       SwitchoverStep::kReadiness},
      {"prepare to writable", SwitchoverPhase::kPrepare, "node2", false, true, Kind::kFail,
       SwitchoverStep::kPause},
      {"prepare sibling down", SwitchoverPhase::kPrepare, "node3", true, false, Kind::kFail,
       SwitchoverStep::kReadiness},
      {"prepare stranger", SwitchoverPhase::kPrepare, "node4", true, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"hold from", SwitchoverPhase::kHold, "node1", false, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"hold to", SwitchoverPhase::kHold, "node2", true, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"stop from", SwitchoverPhase::kStop, "node1", false, true, Kind::kRun,
       SwitchoverStep::kStop},
      {"stop from already down", SwitchoverPhase::kStop, "node1", false, false, Kind::kFail,
       SwitchoverStep::kStop},
      {"stop to", SwitchoverPhase::kStop, "node2", true, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"stop sibling", SwitchoverPhase::kStop, "node3", true, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"promote to", SwitchoverPhase::kPromote, "node2", true, true, Kind::kRun,
       SwitchoverStep::kPromote},
      {"promote to writable", SwitchoverPhase::kPromote, "node2", false, true, Kind::kFail,
       SwitchoverStep::kPromote},
      {"promote from", SwitchoverPhase::kPromote, "node1", false, false, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"publish to", SwitchoverPhase::kPublish, "node2", false, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"rejoin from (down)", SwitchoverPhase::kRejoin, "node1", false, false, Kind::kRun,
       SwitchoverStep::kRejoin},
      {"rejoin sibling follows", SwitchoverPhase::kRejoin, "node3", true, true, Kind::kRun,
       SwitchoverStep::kFollow},
      {"rejoin sibling writable", SwitchoverPhase::kRejoin, "node3", false, true, Kind::kFail,
       SwitchoverStep::kFollow},
      {"rejoin to", SwitchoverPhase::kRejoin, "node2", false, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"unpause to (now primary)", SwitchoverPhase::kUnpause, "node2", false, true, Kind::kRun,
       SwitchoverStep::kUnpause},
      {"unpause to (still standby)", SwitchoverPhase::kUnpause, "node2", true, true, Kind::kRun,
       SwitchoverStep::kUnpause},
      {"unpause from", SwitchoverPhase::kUnpause, "node1", false, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
      {"rollback from (down)", SwitchoverPhase::kRollback, "node1", false, false, Kind::kRun,
       SwitchoverStep::kRollback},
      {"rollback to", SwitchoverPhase::kRollback, "node2", true, true, Kind::kNothing,
       SwitchoverStep::kReadiness},
  };
  for (const auto& c : cases) {
    const auto d = DecideSwitchoverStep(SwRecord(c.phase), Self(c.node, c.in_recovery, c.answering),
                                        kNow);
    EXPECT_EQ(d.kind, c.kind) << c.name;
    if (d.kind != Kind::kNothing) {
      EXPECT_EQ(d.step, c.step) << c.name;
      EXPECT_EQ(d.phase, c.phase) << c.name;
    }
    if (d.kind == Kind::kFail) {
      EXPECT_NE(d.error.find(c.node), std::string::npos) << c.name;
    }
  }
}

TEST(SwitchoverDecisionTest, OnlyAnActiveRecordOfAnEnabledPollerCounts) {
  const auto run = [](const std::optional<model::SwitchoverRecord>& r, const SwitchoverSelf& s,
                      std::int64_t now) { return DecideSwitchoverStep(r, s, now).kind; };
  EXPECT_EQ(run(SwRecord(SwitchoverPhase::kStop), Self("node1", false), kNow), Kind::kRun);
  EXPECT_EQ(run(std::nullopt, Self("node1", false), kNow), Kind::kNothing);
  SwitchoverSelf disabled = Self("node1", false);
  disabled.enabled = false;
  EXPECT_EQ(run(SwRecord(SwitchoverPhase::kStop), disabled, kNow), Kind::kNothing);
  // Expired: past deadline_at, nobody acts (the coordinator died).
  EXPECT_EQ(run(SwRecord(SwitchoverPhase::kStop), Self("node1", false), kNow + 120001),
            Kind::kNothing);
  for (SwitchoverPhase terminal :
       {SwitchoverPhase::kDone, SwitchoverPhase::kAborted, SwitchoverPhase::kFailed}) {
    EXPECT_EQ(run(SwRecord(terminal), Self("node1", false), kNow), Kind::kNothing);
    EXPECT_EQ(run(SwRecord(terminal), Self("node2", true), kNow), Kind::kNothing);
  }
  // An empty own name matches nothing (not even an empty sibling).
  EXPECT_EQ(run(SwRecord(SwitchoverPhase::kPrepare), Self("", true), kNow), Kind::kNothing);
}

TEST(SwitchoverDecisionTest, EachIdAndPhaseRunsAtMostOnce) {
  SwitchoverSelf s = Self("node1", false);
  s.last_started = std::make_pair(std::string("sw-1-ab"), SwitchoverPhase::kStop);
  EXPECT_EQ(DecideSwitchoverStep(SwRecord(SwitchoverPhase::kStop), s, kNow).kind, Kind::kNothing);
  // Another phase of the same switchover, or the same phase of another one, runs.
  EXPECT_EQ(DecideSwitchoverStep(SwRecord(SwitchoverPhase::kPrepare), s, kNow).kind, Kind::kRun);
  EXPECT_EQ(DecideSwitchoverStep(SwRecord(SwitchoverPhase::kStop, "sw-2-cd"), s, kNow).kind,
            Kind::kRun);
}

TEST(SwitchoverDecisionTest, APhaseThatBeganBeforeThePollerStartedIsAckedFailed) {
  SwitchoverSelf s = Self("node1", false);
  s.started_ms = kNow - 5;  // after the phase began (kNow - 10)
  const auto d = DecideSwitchoverStep(SwRecord(SwitchoverPhase::kStop), s, kNow);
  EXPECT_EQ(d.kind, Kind::kFail);
  EXPECT_EQ(d.error, "poller restarted during the switchover");
  EXPECT_EQ(d.phase, SwitchoverPhase::kStop);
  // Not its phase: nothing, restart or not.
  EXPECT_EQ(DecideSwitchoverStep(SwRecord(SwitchoverPhase::kPromote), s, kNow).kind,
            Kind::kNothing);
}

SwitchoverConfig Config() {
  SwitchoverConfig c;
  c.enabled = true;
  c.repmgr = "/usr/bin/repmgr";
  c.repmgr_conf = "/etc/repmgr.conf";
  c.config_archive_dir = "/var/lib/postgresql/rejoin";
  return c;
}

TEST(SwitchoverArgvTest, EachStepRunsRepmgrsOwnCommand) {
  const SwitchoverConfig c = Config();
  const std::vector<std::string> base = {"/usr/bin/repmgr", "-f", "/etc/repmgr.conf"};
  const auto with = [&](std::vector<std::string> rest) {
    std::vector<std::string> v = base;
    v.insert(v.end(), rest.begin(), rest.end());
    return v;
  };
  StepRequest r;
  r.target = {2, "host=10.0.0.2 port=5432 user=repmgr dbname=repmgr"};
  const auto argv = [&](SwitchoverStep step) {
    r.step = step;
    return StepArgv(c, r);
  };
  EXPECT_TRUE(argv(SwitchoverStep::kReadiness).empty());
  EXPECT_EQ(argv(SwitchoverStep::kPause), with({"service", "pause"}));
  EXPECT_EQ(argv(SwitchoverStep::kStop),
            with({"node", "service", "--action=stop"}));
  EXPECT_EQ(argv(SwitchoverStep::kPromote), with({"standby", "promote"}));
  EXPECT_EQ(argv(SwitchoverStep::kRejoin),
            with({"node", "rejoin", "-d", "host=10.0.0.2 port=5432 user=repmgr dbname=repmgr",
                  "--force-rewind", "--config-archive-dir=/var/lib/postgresql/rejoin"}));
  EXPECT_EQ(argv(SwitchoverStep::kFollow),
            with({"standby", "follow", "--upstream-node-id=2"}));
  EXPECT_EQ(argv(SwitchoverStep::kUnpause), with({"service", "unpause"}));
  EXPECT_EQ(argv(SwitchoverStep::kRollback), with({"node", "service", "--action=start"}));
  EXPECT_EQ(ShutdownCheckArgv(c), with({"node", "status", "--is-shutdown-cleanly"}));
}

TEST(SwitchoverArgvTest, TheDescriptionMasksAPassword) {
  const std::string line =
      DescribeArgv(RejoinArgv(Config(), "host=h port=5432 user=r password=s3cret dbname=r"));
  EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
  EXPECT_NE(line.find("node rejoin -d 'host=h"), std::string::npos) << line;
  const std::string uri = DescribeArgv(RejoinArgv(Config(), "postgresql://r:s3cret@h/r"));
  EXPECT_EQ(uri.find("s3cret"), std::string::npos) << uri;
}

TEST(ShutdownCleanlyTest, StatesAndTheCheckpointLsn) {
  auto down = ParseShutdownCleanly("--state=SHUTDOWN --last-checkpoint-lsn=0/5000028\n");
  ASSERT_TRUE(down.ok()) << down.status().ToString();
  EXPECT_EQ(down->state, "SHUTDOWN");
  ASSERT_TRUE(down->lsn.has_value());
  EXPECT_EQ(*down->lsn, 0x5000028u);
  auto running = ParseShutdownCleanly("--state=RUNNING\n");
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, "RUNNING");
  EXPECT_FALSE(running->lsn.has_value());
  auto unclean = ParseShutdownCleanly("--state=UNCLEAN_SHUTDOWN");
  ASSERT_TRUE(unclean.ok());
  EXPECT_EQ(unclean->state, "UNCLEAN_SHUTDOWN");
  // repmgr's own log lines (stderr, captured with stdout) around the answer.
  auto noisy = ParseShutdownCleanly(
      "NOTICE: using provided configuration file\r\n\n--state=SHUTDOWN "
      "--last-checkpoint-lsn=16/B374D848\nDETAIL: whatever\n");
  ASSERT_TRUE(noisy.ok()) << noisy.status().ToString();
  EXPECT_EQ(model::FormatLsn(*noisy->lsn), "16/B374D848");
}

TEST(ShutdownCleanlyTest, GarbageIsRefusedWithTheOutputQuoted) {
  for (const char* garbage : {"", "\n\n", "hello", "--state=", "--state=shutdown",
                              "--state=SHUTDOWN", "--state=SHUTDOWN --last-checkpoint-lsn=",
                              "--state=SHUTDOWN --last-checkpoint-lsn=zz/1",
                              "--state=SHUTDOWN --last-checkpoint-lsn=0/1 extra",
                              "--state=SHUTDOWN --lsn=0/1",
                              "--state=RUNNING\n--state=SHUTDOWN --last-checkpoint-lsn=0/1",
                              "state=SHUTDOWN --last-checkpoint-lsn=0/1",
                              " --state=RUNNING"}) {
    auto r = ParseShutdownCleanly(garbage);
    EXPECT_FALSE(r.ok()) << "accepted: " << garbage;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find("--is-shutdown-cleanly"), std::string::npos);
    }
  }
  // Control characters are escaped and a long answer is cut.
  auto r = ParseShutdownCleanly("\x1b[2J" + std::string(5000, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find('\x1b'), std::string::npos);
  EXPECT_LT(r.status().message().size(), 700u);
}

// A runner that records each request and holds the step until the test releases it.
class FakeRunner final : public StepRunner {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<StepRequest> requests;
    bool release = false;
    StepOutcome outcome{true, std::nullopt, ""};
  };
  explicit FakeRunner(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  StepOutcome Run(const StepRequest& request, const std::atomic<bool>& cancel) override {
    std::unique_lock lock(shared_->mu);
    shared_->requests.push_back(request);
    shared_->cv.notify_all();
    shared_->cv.wait(lock, [&] { return shared_->release || cancel.load(); });
    shared_->release = false;
    return shared_->outcome;
  }

 private:
  std::shared_ptr<Shared> shared_;
};

class SwitchoverExecutorTest : public ::testing::Test {
 protected:
  SwitchoverExecutorTest() {
    clock_.Advance(Millis(1000));  // records' phases begin after the executor started
  }
  void Make(const std::string& node) {
    executor_ = std::make_unique<SwitchoverExecutor>(
        node, Config(), std::make_unique<FakeRunner>(shared_), clock_, [this] {
          std::lock_guard lock(mu_);
          ++changes_;
        });
    executor_->set_metrics(&metrics_);
  }
  model::SwitchoverRecord Active(SwitchoverPhase phase) {
    model::SwitchoverRecord r = SwRecord(phase);
    const std::int64_t now = model::ToWallMillis(clock_.WallNow());
    r.started_at_ms = now;
    r.phase_at_ms = now + 1;
    r.deadline_at_ms = now + 120000;
    return r;
  }
  std::optional<SwitchoverStep> Consider(const model::SwitchoverRecord& r, bool in_recovery,
                                         bool answering = true) {
    return executor_->Consider(r, answering, in_recovery, [this](const std::string& node) {
      targets_asked_.push_back(node);
      return std::optional<SwitchoverTarget>(SwitchoverTarget{7, "host=10.0.0.2 port=5432"});
    });
  }
  void Release(StepOutcome outcome) {
    {
      std::lock_guard lock(shared_->mu);
      shared_->outcome = std::move(outcome);
      shared_->release = true;
    }
    shared_->cv.notify_all();
    executor_->WaitIdle();
  }
  int changes() {
    std::lock_guard lock(mu_);
    return changes_;
  }

  ManualClock clock_;
  std::shared_ptr<FakeRunner::Shared> shared_ = std::make_shared<FakeRunner::Shared>();
  PollerMetrics metrics_{"main", "node"};
  std::unique_ptr<SwitchoverExecutor> executor_;
  std::vector<std::string> targets_asked_;
  std::mutex mu_;
  int changes_ = 0;
};

TEST_F(SwitchoverExecutorTest, AStepRunsOffTheCallerAndItsAckGoesRunningThenDone) {
  Make("node1");
  EXPECT_FALSE(executor_->ack().has_value());
  auto step = Consider(Active(SwitchoverPhase::kStop), /*in_recovery=*/false);
  ASSERT_EQ(step, SwitchoverStep::kStop);
  auto ack = executor_->ack();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->state, SwitchoverStepState::kRunning);
  EXPECT_EQ(ack->phase, SwitchoverPhase::kStop);
  EXPECT_EQ(ack->id, "sw-1-ab");
  EXPECT_EQ(changes(), 1);
  EXPECT_TRUE(executor_->busy());
  // One step at a time: while it runs, nothing else starts.
  EXPECT_FALSE(Consider(Active(SwitchoverPhase::kRollback), false, false).has_value());
  Release({true, 0x5000028, ""});
  ack = executor_->ack();
  EXPECT_EQ(ack->state, SwitchoverStepState::kDone);
  ASSERT_TRUE(ack->lsn.has_value());
  EXPECT_EQ(*ack->lsn, 0x5000028u);
  EXPECT_EQ(changes(), 2);
  EXPECT_FALSE(executor_->busy());
  // The same (id, phase) again: nothing.
  EXPECT_FALSE(Consider(Active(SwitchoverPhase::kStop), false).has_value());
  EXPECT_EQ(shared_->requests.size(), 1u);
  const std::string metrics = metrics_.Render();
  EXPECT_NE(metrics.find("pgherald_poller_switchover_steps_total{cluster=\"main\",node=\"node\","
                         "phase=\"stop\",state=\"done\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("phase=\"stop\",state=\"running\"} 1"), std::string::npos) << metrics;
}

TEST_F(SwitchoverExecutorTest, AFailedStepIsAckedWithItsErrorSanitized) {
  Make("node2");
  model::SwitchoverRecord r = Active(SwitchoverPhase::kPromote);
  r.stop_lsn = 0x5000028;
  ASSERT_EQ(Consider(r, /*in_recovery=*/true), SwitchoverStep::kPromote);
  Release({false, std::nullopt, "repmgr said \x1b[31mno"});
  auto ack = executor_->ack();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->state, SwitchoverStepState::kFailed);
  EXPECT_EQ(ack->error.find('\x1b'), std::string::npos);
  EXPECT_NE(ack->error.find("repmgr said"), std::string::npos);
  ASSERT_EQ(shared_->requests.size(), 1u);
  EXPECT_EQ(shared_->requests[0].stop_lsn, std::optional<model::Lsn>(0x5000028));
}

TEST_F(SwitchoverExecutorTest, ARefusalIsAckedFailedWithoutRunningAnything) {
  Make("node1");
  // from is in recovery: the prepare readiness fails at once.
  EXPECT_FALSE(Consider(Active(SwitchoverPhase::kPrepare), /*in_recovery=*/true).has_value());
  auto ack = executor_->ack();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->state, SwitchoverStepState::kFailed);
  EXPECT_EQ(ack->phase, SwitchoverPhase::kPrepare);
  EXPECT_NE(ack->error.find("expected the primary"), std::string::npos);
  EXPECT_TRUE(shared_->requests.empty());
  EXPECT_EQ(changes(), 1);
  // Once only, even when the node answers as it should later.
  EXPECT_FALSE(Consider(Active(SwitchoverPhase::kPrepare), false).has_value());
  EXPECT_TRUE(shared_->requests.empty());
}

TEST_F(SwitchoverExecutorTest, APollerThatRestartedMidPhaseAcksFailed) {
  Make("node1");
  model::SwitchoverRecord r = Active(SwitchoverPhase::kStop);
  r.phase_at_ms -= 5000;  // the phase began before this executor (the poller) started
  EXPECT_FALSE(Consider(r, false).has_value());
  auto ack = executor_->ack();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->state, SwitchoverStepState::kFailed);
  EXPECT_EQ(ack->error, "poller restarted during the switchover");
  EXPECT_TRUE(shared_->requests.empty());
}

TEST_F(SwitchoverExecutorTest, HostileRecordFieldsNeverReachTheCommandLine) {
  const std::vector<std::string> hostile = {"--upstream-node-id=666", "--force", "x.y_z-1"};
  for (const std::string node : {"node1", "node3"}) {
    shared_->requests.clear();
    targets_asked_.clear();
    Make(node);
    model::SwitchoverRecord r = Active(SwitchoverPhase::kRejoin);
    r.id = "sw-9-ff";
    r.to = "--upstream-node-id=666";
    r.siblings = {"-d", "--force", "node3"};
    if (node == "node1") r.siblings = {"-d", "--force", "x.y_z-1"};
    r.requested_by = "'; rm -rf / #";
    r.error = "$(reboot)";
    r.stop_lsn = 1;
    ASSERT_TRUE(Consider(r, node != "node1", node != "node1").has_value()) << node;
    Release({true, std::nullopt, ""});
    ASSERT_EQ(shared_->requests.size(), 1u);
    // The record's `to` is only a key into this node's own repmgr.nodes.
    EXPECT_EQ(targets_asked_, std::vector<std::string>{"--upstream-node-id=666"});
    const auto argv = StepArgv(Config(), shared_->requests[0]);
    ASSERT_FALSE(argv.empty());
    EXPECT_LE(std::count(argv.begin(), argv.end(), "-d"), 1) << node;  // the rejoin's own
    for (const auto& word : argv) {
      for (const auto& h : hostile) EXPECT_NE(word, h) << node;
      EXPECT_EQ(word.find("rm -rf"), std::string::npos);
      EXPECT_EQ(word.find("reboot"), std::string::npos);
      EXPECT_EQ(word.find("666"), std::string::npos) << word;
    }
    // What the target lookup (this node's database) gave is what reaches argv.
    if (node == "node1") {
      EXPECT_EQ(argv[5], "-d");
      EXPECT_EQ(argv[6], "host=10.0.0.2 port=5432");
    } else {
      EXPECT_EQ(argv.back(), "--upstream-node-id=7");
    }
  }
}

// The loop: the record is read (and watched) on FakeZk, the ack is published in the observation.
class PollerSwitchoverTest : public PollerOnFakeZkTest {
 protected:
  void MakeSwitchoverPoller(const std::string& node, bool in_recovery) {
    PollerSection s;
    s.cluster = "main";
    s.node = node;
    s.host = "127.0.0.1";
    s.port = 5432;
    s.switchover = Config();
    poller_ = std::make_unique<Poller>(
        s, pg::PgParams{},
        [this]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
          return std::unique_ptr<zk::ZkSession>(server_->NewSession());
        },
        "/pgherald", clock_, "test");
    node_ = Writable();
    node_.node = node;
    node_.in_recovery = in_recovery;
    node_.current_lsn.reset();
    poller_->SetObservationSourceForTest([this] { return node_; });
    poller_->SetSwitchoverRunnerForTest(std::make_unique<FakeRunner>(shared_));
    model::RepmgrNode n2;
    n2.node_id = 2;
    n2.name = "node2";
    poller_->SetRepmgrRowsForTest({{n2, "host=127.0.0.2 port=5433 user=repmgr"}});
    clock_.Advance(Millis(1000));
  }
  void WriteRecord(model::SwitchoverRecord r) {
    const std::int64_t now = model::ToWallMillis(clock_.WallNow());
    r.started_at_ms = now;
    r.phase_at_ms = now;
    r.deadline_at_ms = now + 120000;
    const std::string path = kMain.Switchover();
    ASSERT_TRUE(zk::EnsurePath(*orchestrator_, kMain.Control()).ok());
    if (server_->Peek(path)) {
      ASSERT_TRUE(orchestrator_->Set(path, r.ToJson()).ok());
    } else {
      ASSERT_TRUE(orchestrator_->Create(path, r.ToJson(), zk::CreateMode::kPersistent).ok());
    }
  }
  std::optional<model::NodeObservation> PublishedBy(const std::string& node) {
    auto data = server_->Peek(kMain.Node(node));
    if (!data) return std::nullopt;
    auto o = model::NodeObservation::FromJson(data->data);
    if (!o.ok()) return std::nullopt;
    return *o;
  }
  void Release(StepOutcome outcome) {
    {
      std::lock_guard lock(shared_->mu);
      shared_->outcome = std::move(outcome);
      shared_->release = true;
    }
    shared_->cv.notify_all();
    poller_->switchover_for_test()->WaitIdle();
  }
  // Watches fire on the session's dispatch thread: waits (a safety net of 10 s) for the wake.
  bool AwaitWake() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (poller_->TakeWake()) return true;
      std::this_thread::yield();
    }
    return false;
  }
  std::shared_ptr<FakeRunner::Shared> shared_ = std::make_shared<FakeRunner::Shared>();
};

TEST_F(PollerSwitchoverTest, TheAckIsPublishedAtOnceAndARecordChangeWakesTheLoop) {
  MakeSwitchoverPoller("node1", /*in_recovery=*/false);
  poller_->Tick({});  // no record yet: the watch waits for its creation
  EXPECT_FALSE(PublishedBy("node1")->switchover.has_value());
  EXPECT_FALSE(poller_->TakeWake());
  clock_.Advance(Millis(10));
  WriteRecord(SwRecord(SwitchoverPhase::kStop));
  EXPECT_TRUE(AwaitWake());  // the creation fired the watch
  poller_->Tick({});
  auto o = PublishedBy("node1");
  ASSERT_TRUE(o && o->switchover);
  EXPECT_EQ(o->switchover->state, SwitchoverStepState::kRunning);
  EXPECT_EQ(o->switchover->phase, SwitchoverPhase::kStop);
  Release({true, 0x3000060, ""});
  EXPECT_TRUE(poller_->TakeWake());  // the step's end asked for a tick at once (synchronously)
  poller_->Tick({});
  o = PublishedBy("node1");
  ASSERT_TRUE(o && o->switchover);
  EXPECT_EQ(o->switchover->state, SwitchoverStepState::kDone);
  EXPECT_EQ(o->switchover->lsn, std::optional<model::Lsn>(0x3000060));
  // The watch was re-armed: the next change wakes the loop again.
  clock_.Advance(Millis(10));
  WriteRecord(SwRecord(SwitchoverPhase::kPromote));
  EXPECT_TRUE(AwaitWake());
}

TEST_F(PollerSwitchoverTest, TheFollowUsesTheNodeIdFromThisNodesOwnRepmgrNodes) {
  MakeSwitchoverPoller("node3", /*in_recovery=*/true);
  WriteRecord(SwRecord(SwitchoverPhase::kRejoin));
  poller_->Tick({});
  Release({true, std::nullopt, ""});
  ASSERT_EQ(shared_->requests.size(), 1u);
  EXPECT_EQ(shared_->requests[0].step, SwitchoverStep::kFollow);
  EXPECT_EQ(shared_->requests[0].target.node_id, 2);
  // The conninfo stays in the poller: never in what it publishes.
  auto data = server_->Peek(kMain.Node("node3"));
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->data.find("127.0.0.2"), std::string::npos) << data->data;
}

TEST_F(PollerSwitchoverTest, ADisabledPollerNeitherReadsNorActs) {
  PollerSection s;
  s.cluster = "main";
  s.node = "node1";
  s.host = "127.0.0.1";
  s.port = 5432;
  poller_ = std::make_unique<Poller>(
      s, pg::PgParams{},
      [this]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
        return std::unique_ptr<zk::ZkSession>(server_->NewSession());
      },
      "/pgherald", clock_, "test");
  poller_->SetObservationSourceForTest([this] { return node_; });
  poller_->SetSwitchoverRunnerForTest(std::make_unique<FakeRunner>(shared_));
  EXPECT_EQ(poller_->switchover_for_test(), nullptr);
  clock_.Advance(Millis(1000));
  WriteRecord(SwRecord(SwitchoverPhase::kStop));
  poller_->Tick({});
  EXPECT_TRUE(shared_->requests.empty());
  EXPECT_FALSE(PublishedBy("node1")->switchover.has_value());
}

}  // namespace
}  // namespace pgherald::pollers
