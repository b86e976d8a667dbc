// The poller's ZooKeeper side against FakeZk with fault injection (connection loss with an applied
// write, session expiry, another owner of the ephemeral), the master read with its bound vouchers,
// its config parser, the fence action and the notify hand-over (the fencing rule:
// poller_fence_test.cc).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/fake_zk.h"
#include "common/model/voucher.h"
#include "pollers/fencing.h"
#include "pollers/notify.h"
#include "pollers/poller_config.h"
#include "pollers/publisher.h"
#include "common/model/zk_paths.h"
#include "tests/support/manual_clock.h"

namespace pgherald::pollers {
namespace {

const model::ClusterPaths kMain("/pgherald", "main");
const std::string kNode = kMain.Node("node1");
const std::string kEvents = kMain.Events();

class PublisherTest : public ::testing::Test {
 protected:
  PublisherTest()
      : server_(zk::FakeZkServer::Create(&clock_)),
        publisher_(
            [this]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
              ++sessions_made_;
              auto s = server_->NewSession();
              last_ = s.get();
              return std::unique_ptr<zk::ZkSession>(std::move(s));
            },
            "/pgherald", "main", "node1", /*events_retention=*/3) {}

  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_;
  ObservationPublisher publisher_;
  zk::FakeZk* last_ = nullptr;
  int sessions_made_ = 0;
};

TEST_F(PublisherTest, ObservationIsAnEphemeralOfThePublishersSession) {
  ASSERT_TRUE(publisher_.Publish("v1").ok());
  auto node = server_->Peek(kNode);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->data, "v1");
  EXPECT_EQ(node->stat.ephemeral_owner, publisher_.session_id());
  ASSERT_TRUE(publisher_.Publish("v2").ok());
  EXPECT_EQ(server_->Peek(kNode)->data, "v2");
  EXPECT_EQ(sessions_made_, 1);
}

TEST_F(PublisherTest, ConnectionLossAfterAnAppliedCreateIsReconciledNotRetriedBlind) {
  ASSERT_TRUE(publisher_.Publish("v1").ok());
  // The Set is applied but its answer is lost.
  last_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/true);
  EXPECT_EQ(publisher_.Publish("v3").code(), StatusCode::kConnectionLoss);
  EXPECT_EQ(server_->Peek(kNode)->data, "v3");
  // The next write re-reads first (Get sees our own ephemeral) and then sets.
  ASSERT_TRUE(publisher_.Publish("v4").ok());
  EXPECT_EQ(server_->Peek(kNode)->data, "v4");
  // A lost answer to the reconciling read changes nothing and is read again next time.
  last_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/false);
  EXPECT_EQ(publisher_.Publish("v5").code(), StatusCode::kConnectionLoss);
  last_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/false);
  EXPECT_EQ(publisher_.Publish("v6").code(), StatusCode::kConnectionLoss);
  ASSERT_TRUE(publisher_.Publish("v7").ok());
  EXPECT_EQ(server_->Peek(kNode)->data, "v7");
  EXPECT_EQ(server_->Peek(kNode)->stat.ephemeral_owner, publisher_.session_id());
}

TEST_F(PublisherTest, SessionExpiryRecreatesTheEphemeralInANewSession) {
  ASSERT_TRUE(publisher_.Publish("v1").ok());
  const auto first = publisher_.session_id();
  ASSERT_TRUE(server_->ExpireSession(first).ok());
  EXPECT_FALSE(server_->Peek(kNode));  // the ephemeral went with the session
  Status s = publisher_.Publish("v2");
  if (!s.ok()) {
    EXPECT_EQ(s.code(), StatusCode::kSessionExpired);
    s = publisher_.Publish("v2");
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_NE(publisher_.session_id(), first);
  EXPECT_TRUE(publisher_.TakeNewSession());
  auto node = server_->Peek(kNode);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->stat.ephemeral_owner, publisher_.session_id());
}

TEST_F(PublisherTest, AnotherSessionsEphemeralIsNeverTakenOver) {
  auto other = server_->NewSession();
  ASSERT_TRUE(zk::EnsurePath(*other, kMain.Nodes()).ok());
  ASSERT_TRUE(other->Create(kNode, "theirs", zk::CreateMode::kEphemeral).ok());
  Status s = publisher_.Publish("mine");
  if (s.code() == StatusCode::kAlreadyExists) s = publisher_.Publish("mine");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("held by session"), std::string::npos);
  EXPECT_EQ(server_->Peek(kNode)->data, "theirs");
  other->Close();  // the earlier poller's session ends: the znode is ours to create
  ASSERT_TRUE(publisher_.Publish("mine").ok());
  EXPECT_EQ(server_->Peek(kNode)->data, "mine");
}

RepmgrEvent Ev(std::int64_t ts, const std::string& name) {
  RepmgrEvent e;
  e.key = {ts, 2, name};
  return e;
}

TEST_F(PublisherTest, EventsAreIdempotentFactsWithBoundedRetention) {
  std::vector<RepmgrEvent> pending = {Ev(1, "a"), Ev(2, "b")};
  ASSERT_TRUE(publisher_.PublishEvents(&pending).ok());
  EXPECT_TRUE(pending.empty());
  // A second poller publishing the same rows: kAlreadyExists is success.
  pending = {Ev(1, "a"), Ev(2, "b"), Ev(3, "c"), Ev(4, "d"), Ev(5, "e")};
  ASSERT_TRUE(publisher_.PublishEvents(&pending).ok());
  auto names = server_->PeekChildren(kEvents);
  ASSERT_EQ(names.size(), 3u);  // the two oldest were trimmed
  EXPECT_EQ(names[0], Ev(3, "c").ZnodeName());
  auto stored = RepmgrEvent::FromJson(server_->Peek(kEvents + "/" + names[2])->data);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->key.event, "e");
}

TEST_F(PublisherTest, UnwrittenEventsStayPendingAndAnAppliedLostCreateIsNotDuplicated) {
  ASSERT_TRUE(publisher_.Publish("v").ok());
  last_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/true);
  std::vector<RepmgrEvent> pending = {Ev(1, "a"), Ev(2, "b")};
  ASSERT_TRUE(publisher_.PublishEvents(&pending).ok());  // the re-read found "a"
  EXPECT_TRUE(pending.empty());
  last_->Disconnect();
  pending = {Ev(3, "c")};
  EXPECT_FALSE(publisher_.PublishEvents(&pending).ok());
  EXPECT_EQ(pending.size(), 1u);  // kept for the next tick
  last_->Reconnect();
  ASSERT_TRUE(publisher_.PublishEvents(&pending).ok());
  EXPECT_EQ(server_->PeekChildren(kEvents).size(), 3u);
}

TEST_F(PublisherTest, ReadsTheMasterRecord) {
  auto none = publisher_.ReadMaster();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->record.has_value());
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = "node2";
  r.host = "h";
  r.port = 5432;
  r.timeline = 2;
  r.epoch = 1;
  r.verified_at_ms = 1;
  auto s = server_->NewSession();
  ASSERT_TRUE(s->Create(kMain.Master(), r.ToJson(), zk::CreateMode::kPersistent).ok());
  auto got = publisher_.ReadMaster();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->record.has_value());
  EXPECT_EQ(got->record->node, "node2");
  EXPECT_FALSE(got->vouched());
  // A legacy voucher (named after the orchestrator) and a voucher bound to other bytes bind
  // nothing.
  const std::string master = kMain.Master();
  ASSERT_TRUE(s->Create(master + "/o1", "", zk::CreateMode::kEphemeral).ok());
  const std::string other = model::VoucherName(1, model::RecordDigest(r.ToJson() + " "), "o1");
  ASSERT_TRUE(s->Create(master + "/" + other, "", zk::CreateMode::kEphemeral).ok());
  got = publisher_.ReadMaster();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->bound.empty());
  const std::string bound = model::VoucherName(1, model::RecordDigest(r.ToJson()), "o2");
  ASSERT_TRUE(s->Create(master + "/" + bound, "", zk::CreateMode::kEphemeral).ok());
  got = publisher_.ReadMaster();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->bound, std::vector<std::string>{bound});
  EXPECT_TRUE(got->vouched());
}

TEST(FencingTest, CommandActionReportsExitStatusAndTimeout) {
  FenceConfig c;
  c.action = FenceAction::kCommand;
  c.command = "test \"$PGHERALD_MASTER_NODE\" = node2";
  EXPECT_EQ(RunFenceAction(c, "node1", "node2", "r").state, model::FencingState::kFenced);
  EXPECT_EQ(RunFenceAction(c, "node1", "node3", "r").state, model::FencingState::kFailed);
  c.command = "sleep 5";
  c.timeout = Millis(200);
  auto outcome = RunFenceAction(c, "node1", "node2", "r");
  EXPECT_EQ(outcome.state, model::FencingState::kFailed);
  EXPECT_NE(outcome.detail.find("timed out"), std::string::npos);
  c.action = FenceAction::kReport;
  EXPECT_EQ(RunFenceAction(c, "node1", "node2", "r").state, model::FencingState::kNone);
}

const char* kMinimal =
    "zookeeper: {connect: \"127.0.0.1:2181\"}\n"
    "poller: {cluster: main, node: node1}\n"
    "postgres: {host: 127.0.0.1, user: pgherald}\n";

TEST(PollerConfigTest, DefaultsAreDocumented) {
  auto c = ParsePollerConfig(kMinimal, "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->poller.tick, Millis(1000));
  EXPECT_EQ(c->poller.heartbeat, Millis(3000));
  EXPECT_EQ(c->poller.host, "127.0.0.1");
  EXPECT_EQ(c->poller.port, 5432);
  EXPECT_EQ(c->poller.fence.action, FenceAction::kReport);
  EXPECT_EQ(c->poller.events_retention, 1000);
  EXPECT_EQ(c->poller.notify_socket, "");
  EXPECT_EQ(c->poller.promotion_watch, Millis(120000));
  EXPECT_EQ(c->poller.promotion_poll, Millis(5));
}

TEST(PollerConfigTest, PromotionWatchKeys) {
  auto c = ParsePollerConfig(
      "zookeeper: {connect: x}\npoller: {cluster: c, node: n, promotion_watch_ms: 0, "
      "promotion_poll_ms: 20}\npostgres: {host: h, user: u}\n",
      "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->poller.promotion_watch, Millis(0));  // off
  EXPECT_EQ(c->poller.promotion_poll, Millis(20));
  auto bad = ParsePollerConfig(
      "zookeeper: {connect: x}\npoller:\n  cluster: c\n  node: n\n  promotion_watch_ms: -1\n"
      "  promotion_poll_ms: 0\npostgres: {host: h, user: u}\n",
      "p.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string& m = bad.status().message();
  EXPECT_NE(m.find("p.yaml:5: poller.promotion_watch_ms"), std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:6: poller.promotion_poll_ms"), std::string::npos) << m;
}

TEST(PollerConfigTest, BadInputIsNamedPrecisely) {
  auto c = ParsePollerConfig(
      "zookeeper: {connect: \"127.0.0.1:2181\"}\n"
      "poller:\n"
      "  cluster: main\n"
      "  node: a/b\n"
      "  tick_ms: fast\n"
      "  notify_socket_mode: \"999\"\n"
      "  fence: {action: stop}\n"
      "  hearbeat_ms: 5\n"
      "postgres: {host: 127.0.0.1, user: pgherald}\n",
      "p.yaml");
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("p.yaml:4: poller.node: must not contain '/'"), std::string::npos) << m;
  EXPECT_NE(m.find("poller.tick_ms"), std::string::npos) << m;
  EXPECT_NE(m.find("poller.notify_socket_mode"), std::string::npos) << m;
  EXPECT_NE(m.find("poller.fence.data_dir"), std::string::npos) << m;
  EXPECT_NE(m.find("hearbeat_ms"), std::string::npos) << m;
  auto missing = ParsePollerConfig("zookeeper: {connect: x}\npostgres: {host: h, user: u}\n", "q.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("poller"), std::string::npos);
  auto command = ParsePollerConfig(std::string(kMinimal) + "", "p.yaml");
  ASSERT_TRUE(command.ok());
}

TEST(PollerConfigTest, HeartbeatBelowTickIsRejected) {
  auto c = ParsePollerConfig(
      "zookeeper: {connect: x}\npoller: {cluster: c, node: n, tick_ms: 2000, heartbeat_ms: 500}\n"
      "postgres: {host: h, user: u}\n",
      "p.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("poller.heartbeat_ms: must be at least tick_ms"),
            std::string::npos)
      << c.status().message();
}

TEST(PollerConfigTest, SwitchoverIsOffByDefault) {
  auto c = ParsePollerConfig(kMinimal, "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const SwitchoverConfig& sw = c->poller.switchover;
  EXPECT_FALSE(sw.enabled);
  EXPECT_EQ(sw.repmgr, "/usr/lib/postgresql/15/bin/repmgr");
  EXPECT_EQ(sw.repmgr_conf, "");
  EXPECT_EQ(sw.config_archive_dir, "/var/lib/postgresql/pgherald-rejoin");
  EXPECT_EQ(sw.step_timeout, Millis(60000));
  EXPECT_EQ(sw.drain_timeout, Millis(5000));
  EXPECT_EQ(sw.drain_quiet, Millis(200));
}

// A poller file whose poller.switchover section (line 5) holds `keys` (from line 6 on).
std::string WithSwitchover(const std::string& keys) {
  return "zookeeper: {connect: x}\npoller:\n  cluster: c\n  node: n\n  switchover:\n" + keys +
         "postgres: {host: h, user: u}\n";
}

TEST(PollerConfigTest, SwitchoverKeys) {
  auto c = ParsePollerConfig(WithSwitchover(
      "    enabled: true\n"
      "    repmgr: /usr/bin/repmgr\n"
      "    repmgr_conf: /etc/repmgr/15/repmgr.conf\n"
      "    config_archive_dir: /tmp/rejoin\n"
      "    step_timeout_ms: 30000\n"
      "    drain_timeout_ms: 2000\n"
      "    drain_quiet_ms: 50\n"),
      "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const SwitchoverConfig& sw = c->poller.switchover;
  EXPECT_TRUE(sw.enabled);
  EXPECT_EQ(sw.repmgr, "/usr/bin/repmgr");
  EXPECT_EQ(sw.repmgr_conf, "/etc/repmgr/15/repmgr.conf");
  EXPECT_EQ(sw.config_archive_dir, "/tmp/rejoin");
  EXPECT_EQ(sw.step_timeout, Millis(30000));
  EXPECT_EQ(sw.drain_timeout, Millis(2000));
  EXPECT_EQ(sw.drain_quiet, Millis(50));
}

TEST(PollerConfigTest, SwitchoverMistakesAreNamed) {
  auto c = ParsePollerConfig(WithSwitchover(
      "    enabled: true\n"
      "    repmgr: repmgr\n"
      "    config_archive_dir: -rf\n"
      "    step_timeout_ms: 10\n"
      "    drain_timeout_ms: 100\n"
      "    drain_quiet_ms: 500\n"
      "    enable: true\n"),
      "p.yaml");
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("poller.switchover.repmgr_conf"), std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:7: poller.switchover.repmgr: expected an absolute path"),
            std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:8: poller.switchover.config_archive_dir: expected an absolute path"),
            std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:9: poller.switchover.step_timeout_ms"), std::string::npos) << m;
  EXPECT_NE(m.find("poller.switchover.drain_quiet_ms: must not exceed"), std::string::npos) << m;
  EXPECT_NE(m.find("enable"), std::string::npos) << m;  // the unknown key, with a suggestion
}

TEST(NotifyTest, ArgumentsBecomeADatagramAndAFactWithTheTablesKey) {
  auto m = ParseNotifyArgs({"2", "standby_promote", "1", "2026-11-22 03:59:27.802585+00", "d"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto back = NotifyMessage::Decode(m->Encode());
  ASSERT_TRUE(back.ok());
  auto e = back->ToEvent(0);
  EXPECT_EQ(e.ZnodeName(), "e-1795319967802585-2-standby_promote");
  EXPECT_EQ(e.source, "notify");
  EXPECT_FALSE(ParseNotifyArgs({"x", "e", "1", "t"}).ok());
  EXPECT_FALSE(ParseNotifyArgs({"1", "e", "yes", "t"}).ok());
  EXPECT_FALSE(ParseNotifyArgs({"1", "e"}).ok());
  // An unparsable %t falls back to the time of receipt.
  auto odd = ParseNotifyArgs({"1", "e", "0", "someday"});
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->ToEvent(42).key.ts_us, 42);
}

TEST(NotifyTest, SendReachesTheListenerAndFailsFastWithoutOne) {
  const std::string path = "/tmp/pgherald-poller-unit-" + std::to_string(::getpid()) + ".sock";
  NotifyMessage m;
  m.node_id = 3;
  m.event = "repmgrd_upstream_disconnect";
  EXPECT_EQ(SendNotify(path, m).code(), StatusCode::kUnavailable);  // nobody listens
  auto listener = NotifyListener::Bind(path, 0600);
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  ASSERT_TRUE(SendNotify(path, m).ok());
  std::vector<std::string> bad;
  auto got = (*listener)->Receive(std::chrono::milliseconds(2000), &bad);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event, "repmgrd_upstream_disconnect");
  EXPECT_TRUE(bad.empty());
}

}  // namespace
}  // namespace pgherald::pollers
