// Fencing on ZooKeeper loss (issue 12, finding 5): the pure rule ShouldSelfFence as a table, its
// config keys, and the Poller's loop on FakeZk with a ManualClock (the node's observation comes
// from a test source; the fence action is a command that appends to a marker file).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pollers/fencing.h"
#include "pollers/poller.h"
#include "pollers/poller_config.h"
#include "tests/unit/poller_fixture.h"
#include "tests/support/manual_clock.h"

namespace pgherald::pollers {
namespace {

using std::chrono::milliseconds;

// ---- The pure rule --------------------------------------------------------------------------

struct SelfFenceCase {
  const char* name;
  bool enabled;
  bool writable;
  bool usable;
  std::optional<int> confirmed_ago_ms;  // nullopt: never confirmed
  int answer_ago_ms;
  bool fence;
};

TEST(ShouldSelfFenceTest, Table) {
  const MonoTime now = MonoTime{} + std::chrono::hours(5);
  const Millis deadline(3000);
  const std::vector<SelfFenceCase> cases = {
      {"lost past the deadline, last confirmed then", true, true, false, 3000, 3000, true},
      {"lost well past the deadline", true, true, false, 60000, 60000, true},
      {"lost just short of the deadline", true, true, false, 2999, 2999, false},
      {"never confirmed (orchestrator down), lost past the deadline", true, true, false,
       std::nullopt, 3000, true},
      {"unvouched for long, then a short loss: measured from the last answer", true, true, false,
       600000, 100, false},
      {"a confirmation later than the last answer counts", true, true, false, 10, 5000, false},
      {"opted out", false, true, false, 60000, 60000, false},
      {"in recovery or not answering", true, false, false, 60000, 60000, false},
      {"usable session, never vouched: not a ZooKeeper loss", true, true, true, std::nullopt, 60000,
       false},
      {"usable session, unvouched for long", true, true, true, 600000, 600000, false},
  };
  for (const auto& c : cases) {
    SelfFenceInput in;
    in.enabled = c.enabled;
    in.node_writable = c.writable;
    in.session_usable = c.usable;
    if (c.confirmed_ago_ms) in.last_confirmed = now - milliseconds(*c.confirmed_ago_ms);
    in.last_answer = now - milliseconds(c.answer_ago_ms);
    in.now = now;
    in.deadline = deadline;
    const SelfFenceVerdict v = ShouldSelfFence(in);
    EXPECT_EQ(v.fence, c.fence) << c.name;
    if (v.fence) {
      EXPECT_NE(v.reason.find("ZooKeeper lost"), std::string::npos) << c.name;
      EXPECT_GE(v.cut_off_for, deadline) << c.name;
    }
  }
}

// ---- Config ----------------------------------------------------------------------------------

TEST(SelfFenceConfigTest, DefaultsMatchTheOrchestratorsDeadline) {
  auto c = ParsePollerConfig(
      "zookeeper: {connect: x}\npoller: {cluster: c, node: n}\npostgres: {host: h, user: u}\n",
      "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->poller.fence.on_zookeeper_loss);
  EXPECT_EQ(c->poller.fence.self_fence_deadline, Millis(30000));
}

TEST(SelfFenceConfigTest, KeysAreReadAndBadValuesNamed) {
  auto c = ParsePollerConfig(
      "zookeeper: {connect: x}\npoller:\n  cluster: c\n  node: n\n  fence:\n"
      "    on_zookeeper_loss: false\n    self_fence_deadline_ms: 5000\n"
      "postgres: {host: h, user: u}\n",
      "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->poller.fence.on_zookeeper_loss);
  EXPECT_EQ(c->poller.fence.self_fence_deadline, Millis(5000));
  auto bad = ParsePollerConfig(
      "zookeeper: {connect: x}\npoller:\n  cluster: c\n  node: n\n  fence:\n"
      "    on_zookeeper_loss: maybe\n    self_fence_deadline_ms: 10\n"
      "postgres: {host: h, user: u}\n",
      "p.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string& m = bad.status().message();
  EXPECT_NE(m.find("p.yaml:6: poller.fence.on_zookeeper_loss"), std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:7: poller.fence.self_fence_deadline_ms"), std::string::npos) << m;
}

// ---- The Poller's loop on FakeZk --------------------------------------------------------------

using SelfFencePollerTest = PollerOnFakeZkTest;

TEST_F(SelfFencePollerTest, VouchedPrimaryCutOffFromZooKeeperIsFencedOnceAtTheDeadline) {
  Publish("node1", /*vouched=*/true);
  MakePoller();
  TickFor(Millis(2000));
  ASSERT_NE(session_, nullptr);
  ASSERT_EQ(Published()->fencing, model::FencingState::kNone);

  session_->Disconnect();  // the last answered call was the tick just before
  TickFor(Millis(2500));   // 2.5 s cut off: not yet
  EXPECT_EQ(FenceRuns(), 0);
  TickFor(Millis(500));  // 3 s: the deadline
  EXPECT_EQ(FenceRuns(), 1);
  EXPECT_NE(ReadFile(marker_).find("ZooKeeper lost"), std::string::npos) << ReadFile(marker_);
  EXPECT_EQ(poller_->fencing(), model::FencingState::kFenced);
  TickFor(Millis(3000));
  EXPECT_EQ(FenceRuns(), 1) << "the fence runs once per loss, not every tick";

  // ZooKeeper back: the observation tells the fence, and keeps telling it while the node (which a
  // command left running) stays writable and vouched.
  session_->Reconnect();
  TickFor(Millis(500));
  auto o = Published();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->fencing, model::FencingState::kFenced);
  EXPECT_NE(o->error.find("ZooKeeper lost"), std::string::npos) << o->error;
  TickFor(Millis(2000));
  EXPECT_EQ(Published()->fencing, model::FencingState::kFenced);
  EXPECT_EQ(FenceRuns(), 1);

  // A second loss fences again, once.
  session_->Disconnect();
  TickFor(Millis(3500));
  EXPECT_EQ(FenceRuns(), 2);

  // Seen in recovery (the operator or repmgr rejoined it): the record clears.
  session_->Reconnect();
  node_.in_recovery = true;
  TickFor(Millis(500));
  EXPECT_EQ(Published()->fencing, model::FencingState::kNone);
}

TEST_F(SelfFencePollerTest, ExpiredSessionStillReportingConnectingIsALoss) {
  Publish("node1", /*vouched=*/true);
  MakePoller();
  TickFor(Millis(1000));
  ASSERT_NE(session_, nullptr);
  session_->Disconnect();
  ASSERT_TRUE(server_->ExpireSession(session_->session_id()).ok());  // partitioned: kConnecting
  TickFor(Millis(3500));
  EXPECT_EQ(FenceRuns(), 1);
}

TEST_F(SelfFencePollerTest, OptedOutNeverFences) {
  Publish("node1", /*vouched=*/true);
  MakePoller(/*on_zookeeper_loss=*/false);
  TickFor(Millis(1000));
  session_->Disconnect();
  TickFor(Millis(9000));  // three deadlines, short of the session timeout
  EXPECT_EQ(FenceRuns(), 0);
  EXPECT_EQ(poller_->fencing(), model::FencingState::kNone);
}

TEST_F(SelfFencePollerTest, ReachableZooKeeperWithoutAVoucherDoesNotFence) {
  // Orchestrator down or paused, a fresh cluster: ZooKeeper answers, nothing vouches node1.
  Publish("node1", /*vouched=*/false);
  MakePoller();
  TickFor(Millis(60000));
  EXPECT_EQ(FenceRuns(), 0);
  // ... and the clock of a later loss starts at the last answer, not at the last confirmation
  // (there was none): a one-second loss does not fence.
  session_->Disconnect();
  TickFor(Millis(1000));
  EXPECT_EQ(FenceRuns(), 0);
  TickFor(Millis(2500));
  EXPECT_EQ(FenceRuns(), 1);
}

TEST_F(SelfFencePollerTest, NodeInRecoveryIsNeverFenced) {
  Publish("node2", /*vouched=*/true);
  node_.in_recovery = true;
  MakePoller();
  TickFor(Millis(1000));
  session_->Disconnect();
  TickFor(Millis(9000));
  EXPECT_EQ(FenceRuns(), 0);
}

TEST_F(SelfFencePollerTest, ShortLossesDoNotAddUp) {
  Publish("node1", /*vouched=*/true);
  MakePoller();
  TickFor(Millis(1000));
  for (int i = 0; i < 4; ++i) {
    session_->Disconnect();
    TickFor(Millis(2000));
    session_->Reconnect();
    TickFor(Millis(1000));
  }
  EXPECT_EQ(FenceRuns(), 0);
}

TEST_F(SelfFencePollerTest, ReportActionLogsButChangesNothing) {
  Publish("node1", /*vouched=*/true);
  MakePoller(/*on_zookeeper_loss=*/true, FenceAction::kReport);
  TickFor(Millis(1000));
  session_->Disconnect();
  TickFor(Millis(4000));
  EXPECT_EQ(FenceRuns(), 0);
  EXPECT_EQ(poller_->fencing(), model::FencingState::kNone);
  EXPECT_NE(poller_->last_observation().error.find("fence action report: not fenced"),
            std::string::npos)
      << poller_->last_observation().error;
}

// The hook systemd's readiness hangs on (pollers/poller_command.cc): it runs for observations
// ZooKeeper took, never for a publish that failed.
TEST_F(SelfFencePollerTest, OnPublishedRunsOnlyWhenZooKeeperTookTheObservation) {
  MakePoller(/*on_zookeeper_loss=*/false);
  int published = 0;
  poller_->set_on_published([&published] { ++published; });
  poller_->Tick({});
  ASSERT_NE(session_, nullptr);
  EXPECT_EQ(published, 1);
  session_->Disconnect();
  node_.current_lsn = 200;  // a change: the poller tries to publish at once
  TickFor(Millis(1000));
  EXPECT_EQ(published, 1);
  session_->Reconnect();
  TickFor(Millis(500));
  EXPECT_EQ(published, 2);
  EXPECT_EQ(Published()->current_lsn, 200u);
}

}  // namespace
}  // namespace pgherald::pollers
