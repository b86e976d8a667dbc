// LeaderElection on FakeZk (manual dispatch, ManualClock): order, predecessor watches, the
// connection-loss create found by its guid, CONNECTING and lease loss, expiry and rejoin.
#include "orchestrator/election.h"

#include <gtest/gtest.h>

#include "tests/support/fake_zk.h"
#include "tests/support/manual_clock.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;
using zk::FakeZk;
using zk::FakeZkServer;

constexpr char kPath[] = "/pgherald/orchestrators/election";

class ElectionTest : public ::testing::Test {
 protected:
  std::unique_ptr<FakeZk> NewSession() {
    zk::FakeZkOptions o;
    o.session_timeout = milliseconds(10000);
    o.lease_fraction = 0.6;
    o.dispatch = zk::DispatchMode::kManual;
    return server_->NewSession(o);
  }

  ManualClock clock_;
  std::shared_ptr<FakeZkServer> server_ = FakeZkServer::Create(&clock_);
};

TEST_F(ElectionTest, FirstCandidateLeadsOthersFollowInOrder) {
  auto s1 = NewSession(), s2 = NewSession(), s3 = NewSession();
  int wakes2 = 0, wakes3 = 0;
  LeaderElection e1(s1.get(), kPath, "aaaa", nullptr);
  LeaderElection e2(s2.get(), kPath, "bbbb", [&] { ++wakes2; });
  LeaderElection e3(s3.get(), kPath, "cccc", [&] { ++wakes3; });
  ASSERT_TRUE(e1.Refresh().ok());
  ASSERT_TRUE(e2.Refresh().ok());
  ASSERT_TRUE(e3.Refresh().ok());
  EXPECT_TRUE(e1.IsLeader());
  EXPECT_FALSE(e2.IsLeader());
  EXPECT_FALSE(e3.IsLeader());
  EXPECT_EQ(server_->PeekChildren(kPath).size(), 3u);

  // The leader goes: only its successor is woken (no herd), and it leads after its refresh.
  s1->Close();
  server_->DispatchAllPending();
  EXPECT_EQ(wakes2, 1);
  EXPECT_EQ(wakes3, 0);
  ASSERT_TRUE(e2.Refresh().ok());
  ASSERT_TRUE(e3.Refresh().ok());
  EXPECT_TRUE(e2.IsLeader());
  EXPECT_FALSE(e3.IsLeader());
}

TEST_F(ElectionTest, RefreshDoesNotPileUpWatches) {
  auto s1 = NewSession(), s2 = NewSession();
  int wakes = 0;
  LeaderElection e1(s1.get(), kPath, "aaaa", nullptr);
  LeaderElection e2(s2.get(), kPath, "bbbb", [&] { ++wakes; });
  ASSERT_TRUE(e1.Refresh().ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(e2.Refresh().ok());
  e1.Resign();
  server_->DispatchAllPending();
  EXPECT_EQ(wakes, 1);
}

// Forwards to a FakeZk; the next sequential Create lands but answers kConnectionLoss (the unknown outcome).
class LosingCreateSession final : public zk::ZkSession {
 public:
  explicit LosingCreateSession(zk::ZkSession* inner) : inner_(inner) {}
  bool lose_next_create = false;

  zk::SessionState state() const override { return inner_->state(); }
  int64_t session_id() const override { return inner_->session_id(); }
  milliseconds session_timeout() const override { return inner_->session_timeout(); }
  milliseconds lease_remaining() const override { return inner_->lease_remaining(); }
  Status WaitConnected(milliseconds t) override { return inner_->WaitConnected(t); }
  StatusOr<std::string> Create(const std::string& path, const std::string& data,
                               zk::CreateMode mode) override {
    auto r = inner_->Create(path, data, mode);
    if (lose_next_create && mode == zk::CreateMode::kEphemeralSequential) {
      lose_next_create = false;
      return Status(StatusCode::kConnectionLoss, "lost");
    }
    return r;
  }
  StatusOr<zk::NodeData> Get(const std::string& p, zk::Watcher w) override { return inner_->Get(p, std::move(w)); }
  StatusOr<std::optional<zk::Stat>> Exists(const std::string& p, zk::Watcher w) override {
    return inner_->Exists(p, std::move(w));
  }
  StatusOr<std::vector<std::string>> GetChildren(const std::string& p, zk::Watcher w) override {
    return inner_->GetChildren(p, std::move(w));
  }
  StatusOr<zk::Stat> Set(const std::string& p, const std::string& d, int32_t v) override {
    return inner_->Set(p, d, v);
  }
  Status Delete(const std::string& p, int32_t v) override { return inner_->Delete(p, v); }
  StatusOr<zk::MultiResult> Multi(const std::vector<zk::Op>& ops, int* f) override {
    return inner_->Multi(ops, f);
  }
  void SetStateListener(zk::StateListener l) override { inner_->SetStateListener(std::move(l)); }
  void Close() override { inner_->Close(); }

 private:
  zk::ZkSession* inner_;
};

TEST_F(ElectionTest, CreateLostToConnectionLossIsFoundByGuidNotDuplicated) {
  auto fake = NewSession();
  ASSERT_TRUE(zk::EnsurePath(*fake, kPath).ok());
  LosingCreateSession s(fake.get());
  LeaderElection e(&s, kPath, "dddd", nullptr);
  s.lose_next_create = true;
  EXPECT_EQ(e.Refresh().code(), StatusCode::kConnectionLoss);
  EXPECT_FALSE(e.IsLeader());
  ASSERT_EQ(server_->PeekChildren(kPath).size(), 1u);  // it did land
  ASSERT_TRUE(e.Refresh().ok());
  EXPECT_EQ(server_->PeekChildren(kPath).size(), 1u);  // found by its guid, not created twice
  EXPECT_EQ(e.own_path(), std::string(kPath) + "/" + server_->PeekChildren(kPath)[0]);
  EXPECT_TRUE(e.IsLeader());
}

TEST_F(ElectionTest, ConnectingOrOutOfLeaseIsNotLeading) {
  auto s = NewSession();
  LeaderElection e(s.get(), kPath, "aaaa", nullptr);
  ASSERT_TRUE(e.Refresh().ok());
  ASSERT_TRUE(e.IsLeader());
  s->Disconnect();
  EXPECT_FALSE(e.IsLeader());  // CONNECTING: stop acting at once, even with lease left
  s->Reconnect();
  EXPECT_TRUE(e.IsLeader());
}

TEST_F(ElectionTest, ExpiryDeposesAndANewSessionRejoinsBehindTheNewLeader) {
  auto s1 = NewSession(), s2 = NewSession();
  int wakes2 = 0;
  LeaderElection e1(s1.get(), kPath, "aaaa", nullptr);
  LeaderElection e2(s2.get(), kPath, "bbbb", [&] { ++wakes2; });
  ASSERT_TRUE(e1.Refresh().ok());
  ASSERT_TRUE(e2.Refresh().ok());
  // A partition: s1 keeps saying CONNECTING while the server expires it past the timeout.
  s1->Disconnect();
  clock_.Advance(milliseconds(10001));
  server_->ExpireOverdueSessions();
  EXPECT_EQ(s1->state(), zk::SessionState::kConnecting);
  EXPECT_FALSE(e1.IsLeader());
  server_->DispatchAllPending();
  EXPECT_EQ(wakes2, 1);
  ASSERT_TRUE(e2.Refresh().ok());
  EXPECT_TRUE(e2.IsLeader());
  s1->Reconnect();
  EXPECT_EQ(s1->state(), zk::SessionState::kExpired);
  EXPECT_EQ(e1.Refresh().code(), StatusCode::kSessionExpired);
  EXPECT_FALSE(e1.IsLeader());
  // Rejoin on a new session (same guid): it queues behind the new leader.
  auto s1b = NewSession();
  LeaderElection e1b(s1b.get(), kPath, "aaaa", nullptr);
  ASSERT_TRUE(e1b.Refresh().ok());
  EXPECT_FALSE(e1b.IsLeader());
  EXPECT_TRUE(e2.IsLeader());
}

TEST(ElectionNames, SequenceOf) {
  EXPECT_EQ(LeaderElection::SequenceOf("n-abc-0000000012"), 12);
  EXPECT_EQ(LeaderElection::SequenceOf("x-abc-0000000012"), -1);
  EXPECT_EQ(LeaderElection::SequenceOf("n-abc-"), -1);
  EXPECT_EQ(LeaderElection::NewGuid().size(), 16u);
}

}  // namespace
}  // namespace pgherald::orchestrator
