// FakeZk: the shared contract suite, plus the fault injection only the fake has.
#include "tests/support/fake_zk.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/zk_contract/zk_contract.h"
#include "tests/support/manual_clock.h"

namespace pgherald::zk {
namespace {

using contract::EventRecorder;
using contract::StateRecorder;
using contract::ZkTarget;
using contract::ZkContractTest;
using contract::ZkTargetParam;
using std::chrono::milliseconds;

class FakeTarget : public ZkTarget {
 public:
  StatusOr<std::unique_ptr<ZkSession>> NewSession() override {
    return std::unique_ptr<ZkSession>(server_->NewSession());
  }
  Status ExpireSession(ZkSession& session) override {
    return server_->ExpireSession(session.session_id());
  }

 private:
  std::shared_ptr<FakeZkServer> server_ = FakeZkServer::Create();
};

INSTANTIATE_TEST_SUITE_P(
    Fake, ZkContractTest,
    ::testing::Values(ZkTargetParam{
        "fake", []() -> StatusOr<std::shared_ptr<ZkTarget>> {
          return std::shared_ptr<ZkTarget>(std::make_shared<FakeTarget>());
        }}),
    contract::ZkTargetParamName);

// Fake-only fault injection, on a manual clock.
class FakeZkFaultTest : public ::testing::Test {
 protected:
  FakeZkOptions Options(DispatchMode mode = DispatchMode::kThread) {
    FakeZkOptions options;
    options.session_timeout = milliseconds(10000);
    options.lease_fraction = 0.6;
    options.dispatch = mode;
    return options;
  }

  ManualClock clock_;
  std::shared_ptr<FakeZkServer> server_ = FakeZkServer::Create(&clock_);
};

TEST_F(FakeZkFaultTest, DisconnectFailsCallsAndRunsTheLeaseDown) {
  auto zk = server_->NewSession(Options());
  StateRecorder states;
  zk->SetStateListener(states.listener());
  ASSERT_TRUE(zk->Create("/e", "", CreateMode::kEphemeral).ok());
  EXPECT_EQ(zk->lease_remaining(), milliseconds(6000));
  clock_.Advance(std::chrono::seconds(60));  // connected: pings keep the lease full
  EXPECT_EQ(zk->lease_remaining(), milliseconds(6000));

  zk->Disconnect();
  EXPECT_EQ(zk->state(), SessionState::kConnecting);
  ASSERT_TRUE(states.WaitFor(SessionState::kConnecting));
  EXPECT_EQ(zk->Get("/e").status().code(), StatusCode::kConnectionLoss);
  EXPECT_EQ(zk->Exists("/e").status().code(), StatusCode::kConnectionLoss);
  EXPECT_EQ(zk->WaitConnected(milliseconds(1)).code(), StatusCode::kTimeout);

  clock_.Advance(milliseconds(4000));
  EXPECT_EQ(zk->lease_remaining(), milliseconds(2000));
  clock_.Advance(milliseconds(2500));
  EXPECT_EQ(zk->lease_remaining(), milliseconds(0));
  EXPECT_FALSE(zk->has_lease());
  // Lease gone but the server has not expired the session yet: the ephemeral is still there.
  ASSERT_TRUE(server_->Peek("/e").has_value());

  zk->Reconnect();
  ASSERT_TRUE(states.WaitFor(SessionState::kConnected));
  EXPECT_EQ(zk->state(), SessionState::kConnected);
  EXPECT_EQ(zk->lease_remaining(), milliseconds(6000));
  EXPECT_TRUE(zk->Get("/e").ok());
  EXPECT_TRUE(zk->WaitConnected(milliseconds(1)).ok());
}

TEST_F(FakeZkFaultTest, WatchEventsWhileDisconnectedArriveAfterReconnect) {
  auto zk = server_->NewSession(Options(DispatchMode::kManual));
  auto other = server_->NewSession(Options(DispatchMode::kManual));
  ASSERT_TRUE(other->Create("/n", "", CreateMode::kPersistent).ok());
  std::vector<std::string> log;
  zk->SetStateListener(
      [&](SessionState state, int64_t) { log.push_back(SessionStateName(state)); });
  ASSERT_TRUE(zk->Get("/n", [&](const WatchEvent& e) { log.push_back(EventTypeName(e.type)); })
                  .ok());
  zk->Disconnect();
  ASSERT_TRUE(other->Set("/n", "changed").ok());
  zk->DispatchPending();
  EXPECT_EQ(log, std::vector<std::string>{"connecting"});
  zk->Reconnect();
  zk->DispatchPending();
  EXPECT_EQ(log, (std::vector<std::string>{"connecting", "connected", "data_changed"}));
}

TEST_F(FakeZkFaultTest, PartitionPastTheTimeoutExpiresOnTheServerFirst) {
  auto zk = server_->NewSession(Options());
  auto observer = server_->NewSession(Options());
  StateRecorder states;
  zk->SetStateListener(states.listener());
  ASSERT_TRUE(zk->Create("/e", "", CreateMode::kEphemeral).ok());
  EventRecorder gone;
  ASSERT_TRUE(observer->Exists("/e", gone.watcher()).ok());

  zk->Disconnect();
  clock_.Advance(milliseconds(9999));
  server_->ExpireOverdueSessions();
  EXPECT_TRUE(server_->Peek("/e").has_value());
  clock_.Advance(milliseconds(1));
  server_->ExpireOverdueSessions();
  // The server dropped the session and its ephemeral; the partitioned client cannot know yet.
  EXPECT_FALSE(server_->Peek("/e").has_value());
  ASSERT_TRUE(gone.WaitFor(1));
  EXPECT_EQ(gone.events()[0].type, EventType::kDeleted);
  EXPECT_EQ(zk->state(), SessionState::kConnecting);
  EXPECT_EQ(zk->Get("/").status().code(), StatusCode::kConnectionLoss);
  EXPECT_EQ(server_->LiveSessions(), std::vector<int64_t>{observer->session_id()});

  zk->Reconnect();
  EXPECT_EQ(zk->state(), SessionState::kExpired);
  ASSERT_TRUE(states.WaitFor(SessionState::kExpired));
  EXPECT_EQ(zk->Get("/").status().code(), StatusCode::kSessionExpired);
}

TEST_F(FakeZkFaultTest, ExpireWhileDisconnectedIsSeenOnReconnect) {
  auto zk = server_->NewSession(Options());
  ASSERT_TRUE(zk->Create("/e", "", CreateMode::kEphemeral).ok());
  zk->Disconnect();
  ASSERT_TRUE(server_->ExpireSession(zk->session_id()).ok());
  EXPECT_FALSE(server_->Peek("/e").has_value());
  EXPECT_EQ(zk->state(), SessionState::kConnecting);
  EXPECT_EQ(server_->ExpireSession(zk->session_id()).code(), StatusCode::kNotFound);
  zk->Reconnect();
  EXPECT_EQ(zk->state(), SessionState::kExpired);
  EXPECT_EQ(zk->WaitConnected(milliseconds(1)).code(), StatusCode::kSessionExpired);
}

TEST_F(FakeZkFaultTest, FailNextCallAfterApplyIsTheUnknownOutcome) {
  auto zk = server_->NewSession(Options());
  zk->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/true);
  zk->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/false);
  auto applied = zk->Create("/applied", "", CreateMode::kPersistent);
  EXPECT_EQ(applied.status().code(), StatusCode::kConnectionLoss);
  auto lost = zk->Create("/lost", "", CreateMode::kPersistent);
  EXPECT_EQ(lost.status().code(), StatusCode::kConnectionLoss);
  // Faults are consumed; the session itself is fine.
  EXPECT_EQ(zk->state(), SessionState::kConnected);
  EXPECT_TRUE(zk->Exists("/applied").value().has_value());
  EXPECT_FALSE(zk->Exists("/lost").value().has_value());
}

TEST_F(FakeZkFaultTest, FailNextCallOnMultiNamesNoOp) {
  auto zk = server_->NewSession(Options());
  zk->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/true);
  int failed_op = 7;
  auto result = zk->Multi({Op::Create("/a", ""), Op::Create("/b", "")}, &failed_op);
  EXPECT_EQ(result.status().code(), StatusCode::kConnectionLoss);
  EXPECT_EQ(failed_op, -1);
  EXPECT_TRUE(server_->Peek("/a").has_value());
  EXPECT_TRUE(server_->Peek("/b").has_value());
  EXPECT_EQ(server_->Peek("/a")->stat.czxid, server_->Peek("/b")->stat.czxid);
}

TEST_F(FakeZkFaultTest, ManualDispatchRunsOnTheCallersThreadOnlyWhenAsked) {
  auto a = server_->NewSession(Options(DispatchMode::kManual));
  auto b = server_->NewSession(Options(DispatchMode::kManual));
  std::vector<std::string> log;
  std::thread::id ran_on;
  auto watch = [&](const std::string& who) {
    return [&, who](const WatchEvent& e) {
      log.push_back(who + ":" + EventTypeName(e.type) + ":" + e.path);
      ran_on = std::this_thread::get_id();
    };
  };
  ASSERT_TRUE(a->Exists("/x", watch("a")).ok());
  ASSERT_TRUE(b->Exists("/x", watch("b")).ok());
  ASSERT_TRUE(b->Create("/x", "", CreateMode::kPersistent).ok());
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(b->DispatchPending(), 1u);
  EXPECT_EQ(log, std::vector<std::string>{"b:created:/x"});
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(server_->DispatchAllPending(), 1u);
  EXPECT_EQ(log, (std::vector<std::string>{"b:created:/x", "a:created:/x"}));
  EXPECT_EQ(server_->DispatchAllPending(), 0u);
}

TEST_F(FakeZkFaultTest, ManualCallbacksMayCallTheSessionAndRearm) {
  auto zk = server_->NewSession(Options(DispatchMode::kManual));
  ASSERT_TRUE(zk->Create("/n", "0", CreateMode::kPersistent).ok());
  std::vector<std::string> seen;
  std::function<void(const WatchEvent&)> watcher = [&](const WatchEvent&) {
    auto got = zk->Get("/n", watcher);  // re-arm from inside the callback
    ASSERT_TRUE(got.ok());
    seen.push_back(got->data);
  };
  ASSERT_TRUE(zk->Get("/n", watcher).ok());
  ASSERT_TRUE(zk->Set("/n", "1").ok());
  server_->DispatchAllPending();
  ASSERT_TRUE(zk->Set("/n", "2").ok());
  server_->DispatchAllPending();
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2"}));
}

// The asynchronous reads: queued with the events (manual dispatch runs them when asked), an
// injected fault is the answer, nothing is sent while disconnected, and Close() answers what is
// still queued with kUnavailable on its caller.
TEST_F(FakeZkFaultTest, AsyncReadsQueueWithTheEventsAndFaultsAreTheirAnswer) {
  auto zk = server_->NewSession(Options(DispatchMode::kManual));
  auto other = server_->NewSession(Options(DispatchMode::kManual));
  ASSERT_TRUE(other->Create("/n", "0", CreateMode::kPersistent).ok());
  std::vector<std::string> log;
  ASSERT_TRUE(zk->GetAsync(
                    "/n", [&](const WatchEvent& e) { log.push_back(EventTypeName(e.type)); },
                    [&](StatusOr<NodeData> got) {
                      log.push_back(got.ok() ? "get:" + got->data : got.status().ToString());
                    })
                  .ok());
  ASSERT_TRUE(other->Set("/n", "1").ok());  // after the read: its event comes after the answer
  EXPECT_TRUE(log.empty());
  server_->DispatchAllPending();
  EXPECT_EQ(log, (std::vector<std::string>{"get:0", "data_changed"}));

  log.clear();
  zk->FailNextCall(StatusCode::kConnectionLoss);
  ASSERT_TRUE(zk->GetChildrenAsync("/n", nullptr, [&](StatusOr<std::vector<std::string>> got) {
                  log.push_back(StatusCodeName(got.status().code()));
                }).ok());
  zk->DispatchPending();
  EXPECT_EQ(log, std::vector<std::string>{StatusCodeName(StatusCode::kConnectionLoss)});

  zk->Disconnect();
  bool ran = false;
  EXPECT_EQ(zk->ExistsAsync("/n", nullptr, [&](StatusOr<std::optional<Stat>>) { ran = true; })
                .code(),
            StatusCode::kConnectionLoss);
  zk->Reconnect();
  zk->DispatchPending();
  EXPECT_FALSE(ran);

  log.clear();
  ASSERT_TRUE(zk->ExistsAsync("/n", nullptr, [&](StatusOr<std::optional<Stat>> got) {
                  log.push_back(got.ok() ? "exists" : StatusCodeName(got.status().code()));
                }).ok());
  zk->Close();  // not dispatched yet: answered here
  EXPECT_EQ(log, std::vector<std::string>{StatusCodeName(StatusCode::kUnavailable)});
}

TEST_F(FakeZkFaultTest, SessionIdsAndZxidsAreDeterministic) {
  auto a = server_->NewSession(Options());
  auto b = server_->NewSession(Options());
  EXPECT_EQ(b->session_id(), a->session_id() + 1);
  EXPECT_EQ(server_->last_zxid(), 0);
  ASSERT_TRUE(a->Create("/p", "", CreateMode::kPersistent).ok());
  ASSERT_TRUE(a->Create("/p/q", "", CreateMode::kPersistent).ok());
  EXPECT_EQ(server_->last_zxid(), 2);
  EXPECT_EQ(server_->Peek("/p")->stat.pzxid, 2);
  EXPECT_EQ(server_->PeekChildren("/p"), std::vector<std::string>{"q"});
  EXPECT_EQ(server_->LiveSessions().size(), 2u);
  a->Close();
  EXPECT_EQ(server_->LiveSessions(), std::vector<int64_t>{b->session_id()});
}

}  // namespace
}  // namespace pgherald::zk
