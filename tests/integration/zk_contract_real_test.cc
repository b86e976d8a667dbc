// ZkClient against real ZooKeeper 3.8: the shared contract suite on a standalone server and on a
// 3-server ensemble (both brought up once for the binary by the lab), plus what only real
// servers can show: a leader failover that the session survives, and a frozen server that the
// lease notices before the C client does. A missing server fails every test, loudly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <mutex>

#include "common/zk/zk_client.h"
#include "tests/lab/lab.h"
#include "tests/support/expire_session.h"
#include "tests/zk_contract/zk_contract.h"

namespace pgherald::zk {
namespace {

using contract::EventRecorder;
using contract::StateRecorder;
using contract::ZkContractTest;
using contract::ZkTarget;
using contract::ZkTargetParam;
using std::chrono::milliseconds;

constexpr milliseconds kSessionTimeout{5000};

// The C library's log lines: kept quietly, shown only when a test fails.
class ZkLogCapture {
 public:
  static ZkLogCapture& Instance() {
    static ZkLogCapture* capture = new ZkLogCapture;
    return *capture;
  }
  ZkLogSink sink() {
    return [this](ZkLogLevel level, const std::string& line) {
      std::lock_guard lock(mu_);
      lines_.push_back(std::string(ZkLogLevelName(level)) + " " + line);
      if (lines_.size() > 200) lines_.pop_front();
    };
  }
  // Prints the lines if the test failed; forgets them either way.
  void EndTest(bool failed) {
    std::lock_guard lock(mu_);
    if (failed && !lines_.empty()) {
      std::fprintf(stderr, "--- last %zu ZooKeeper C client log lines ---\n", lines_.size());
      for (const auto& line : lines_) std::fprintf(stderr, "%s\n", line.c_str());
    }
    lines_.clear();
  }

 private:
  std::mutex mu_;
  std::deque<std::string> lines_;
};

class PrintZkLogOnFailure : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    ZkLogCapture::Instance().EndTest(info.result()->Failed());
  }
};

// One lab (ensemble + standalone) for the whole binary, brought up on first use.
class LabEnvironment : public ::testing::Environment {
 public:
  static StatusOr<lab::Lab*> Get() {
    static std::mutex mu;
    std::lock_guard lock(mu);
    if (lab_ == nullptr && up_error_.ok()) {
      auto up = lab::Lab::Up({.zk_ensemble = true, .zk_standalone = true});
      if (up.ok()) {
        lab_ = std::move(up).value();
      } else {
        up_error_ = up.status();
      }
    }
    if (lab_ == nullptr) return up_error_;
    return lab_.get();
  }
  void TearDown() override { lab_.reset(); }

 private:
  static inline std::unique_ptr<lab::Lab> lab_;
  static inline Status up_error_;
};

ZkClientOptions OptionsFor(const std::string& connect) {
  ZkClientOptions options;
  options.connect = connect;
  options.session_timeout = kSessionTimeout;
  options.connect_timeout = milliseconds(15000);
  options.log_sink = ZkLogCapture::Instance().sink();
  return options;
}

class RealTarget : public ZkTarget {
 public:
  explicit RealTarget(std::string connect) : connect_(std::move(connect)) {}

  StatusOr<std::unique_ptr<ZkSession>> NewSession() override {
    auto client = ZkClient::Connect(OptionsFor(connect_));
    if (!client.ok()) return client.status();
    return std::unique_ptr<ZkSession>(std::move(client).value());
  }

  Status ExpireSession(ZkSession& session) override {
    auto* client = dynamic_cast<ZkClient*>(&session);
    if (client == nullptr) return InvalidArgument("not a ZkClient");
    auto credentials = client->credentials();
    if (!credentials.ok()) return credentials.status();
    return zk::ExpireSessionFromOutside(connect_, *credentials, milliseconds(15000));
  }

  const std::string& connect() const { return connect_; }

 private:
  std::string connect_;
};

StatusOr<std::shared_ptr<ZkTarget>> Standalone() {
  auto lab = LabEnvironment::Get();
  if (!lab.ok()) return lab.status();
  const std::string connect = (*lab)->zk_standalone_connect();
  if (connect.empty()) return FailedPrecondition("the lab has no ZK_STANDALONE_CONNECT");
  return std::shared_ptr<ZkTarget>(std::make_shared<RealTarget>(connect));
}

StatusOr<std::shared_ptr<ZkTarget>> Ensemble() {
  auto lab = LabEnvironment::Get();
  if (!lab.ok()) return lab.status();
  const std::string connect = (*lab)->zk_connect();
  if (connect.empty()) return FailedPrecondition("the lab has no ZK_CONNECT");
  return std::shared_ptr<ZkTarget>(std::make_shared<RealTarget>(connect));
}

INSTANTIATE_TEST_SUITE_P(Real, ZkContractTest,
                         ::testing::Values(ZkTargetParam{"standalone", &Standalone},
                                           ZkTargetParam{"ensemble", &Ensemble}),
                         contract::ZkTargetParamName);

// Runs `undo` at scope exit, so a failed assertion still restores the lab.
class Cleanup {
 public:
  explicit Cleanup(std::function<void()> undo) : undo_(std::move(undo)) {}
  ~Cleanup() {
    if (undo_) undo_();
  }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;

 private:
  std::function<void()> undo_;
};

std::string UniqueRoot(const std::string& name) {
  return "/zk_real/" + name + "-" + std::to_string(getpid());
}

TEST(ZkEnsembleFailover, KillingTheLeaderKeepsTheSessionItsEphemeralAndItsWatches) {
  auto lab = LabEnvironment::Get();
  ASSERT_TRUE(lab.ok()) << lab.status().ToString();
  auto client = ZkClient::Connect(OptionsFor((*lab)->zk_connect()));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ZkClient& zk = **client;
  const std::string root = UniqueRoot("failover");
  ASSERT_TRUE(EnsurePath(zk, root).ok());
  ASSERT_TRUE(zk.Create(root + "/eph", "mine", CreateMode::kEphemeral).ok());
  ASSERT_TRUE(zk.Create(root + "/data", "0", CreateMode::kPersistent).ok());
  EventRecorder watch;
  ASSERT_TRUE(zk.Get(root + "/data", watch.watcher()).ok());
  StateRecorder states;
  zk.SetStateListener(states.listener());
  const int64_t id = zk.session_id();

  auto leader = (*lab)->ZkLeader();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  ASSERT_TRUE((*lab)->ZkKill(*leader).ok());
  Cleanup restart([&] { EXPECT_TRUE((*lab)->ZkStart(*leader).ok()); });

  // Every member drops its clients when the leader goes; the client reconnects elsewhere.
  ASSERT_TRUE(states.WaitFor(SessionState::kConnecting)) << "the leader's death went unnoticed";
  ASSERT_TRUE(contract::Eventually([&] {
    auto s = states.states();
    return !s.empty() && s.back().first == SessionState::kConnected;
  })) << "did not reconnect";
  EXPECT_EQ(zk.session_id(), id);
  EXPECT_EQ(zk.state(), SessionState::kConnected);
  for (const auto& [state, sid] : states.states()) {
    EXPECT_NE(state, SessionState::kExpired);
    EXPECT_EQ(sid, id);
  }
  ASSERT_TRUE(contract::Eventually([&] { return zk.Exists("/").ok(); }));
  EXPECT_TRUE(zk.has_lease());

  // Its ephemeral is still there, seen from a new session too.
  auto observer = ZkClient::Connect(OptionsFor((*lab)->zk_connect()));
  ASSERT_TRUE(observer.ok()) << observer.status().ToString();
  auto eph = (*observer)->Get(root + "/eph");
  ASSERT_TRUE(eph.ok()) << eph.status().ToString();
  EXPECT_EQ(eph->stat.ephemeral_owner, id);

  // The watch armed before the failover was re-registered and fires.
  ASSERT_TRUE((*observer)->Set(root + "/data", "1").ok());
  ASSERT_TRUE(watch.WaitFor(1));
  EXPECT_EQ(watch.events()[0].type, EventType::kDataChanged);
  EXPECT_EQ(watch.events()[0].session_id, id);

  EXPECT_TRUE(contract::DeleteRecursive(**observer, root).ok());
}

// SIGSTOP of the standalone server: nothing answers, yet the C client keeps reporting connected
// for 2/3 of the timeout. The lease must run out first, within lease_fraction x timeout of the
// freeze, since the server may expire the session timeout after it last heard from it.
TEST(ZkLease, RunsOutWhenTheServerStopsAnsweringBeforeTheServerCouldExpireTheSession) {
  auto lab = LabEnvironment::Get();
  ASSERT_TRUE(lab.ok()) << lab.status().ToString();
  ZkClientOptions options = OptionsFor((*lab)->zk_standalone_connect());
  options.session_timeout = milliseconds(4000);
  options.lease_fraction = 0.5;
  auto client = ZkClient::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ZkClient& zk = **client;
  const auto lease = milliseconds(zk.session_timeout().count() / 2);
  ASSERT_TRUE(contract::Eventually([&] { return zk.lease_remaining() > lease / 2; }));

  ASSERT_TRUE((*lab)->Run("zk-stop", {"s"}).ok());
  // The server is frozen by now: labctl returns after its SIGSTOP. Measured from here, not from
  // before labctl ran: on a busy machine labctl itself takes hundreds of ms, while the client's
  // pings are still answered, and each answer moves the anchor (seen: 2,650 ms against 2,500).
  const auto frozen_by = std::chrono::steady_clock::now();
  Cleanup thaw([&] { EXPECT_TRUE((*lab)->Run("zk-cont", {"s"}).ok()); });
  ASSERT_TRUE(contract::Eventually([&] { return !zk.has_lease(); }, zk.session_timeout() * 2));
  const auto ran_out_after = std::chrono::steady_clock::now() - frozen_by;
  // The anchor is the send time of the last answered request, at or before the freeze, so the
  // lease ends at most `lease` after the freeze (plus the polling), well before the server could
  // expire the session (session_timeout after it last heard from the client).
  EXPECT_LE(ran_out_after, lease + milliseconds(500))
      << std::chrono::duration_cast<milliseconds>(ran_out_after).count() << " ms";
  EXPECT_NE(zk.state(), SessionState::kExpired);  // nothing final was reported yet
}

TEST(ZkConnect, AnUnreachableServerTimesOut) {
  ZkClientOptions options = OptionsFor("127.0.0.1:1");  // nothing listens on port 1
  options.connect_timeout = milliseconds(300);
  auto client = ZkClient::Connect(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kTimeout) << client.status().ToString();
}

TEST(ZkConnect, BadOptionsAreRejected) {
  ZkClientOptions options = OptionsFor("");
  EXPECT_EQ(ZkClient::Connect(options).status().code(), StatusCode::kInvalidArgument);
  options = OptionsFor("127.0.0.1:1");
  options.lease_fraction = 1.5;
  EXPECT_EQ(ZkClient::Connect(options).status().code(), StatusCode::kInvalidArgument);
  options.lease_fraction = 0.6;
  options.acl = ZkAclPolicy::kCreatorAllWorldRead;  // without credentials
  EXPECT_EQ(ZkClient::Connect(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(ZkAuth, CreatorOnlyNodesRefuseOtherIdentitiesButAllowReading) {
  auto lab = LabEnvironment::Get();
  ASSERT_TRUE(lab.ok()) << lab.status().ToString();
  ZkClientOptions owner_options = OptionsFor((*lab)->zk_standalone_connect());
  owner_options.auth = ZkDigestAuth{"orchestrator", "s3cret"};
  owner_options.acl = ZkAclPolicy::kCreatorAllWorldRead;
  auto owner = ZkClient::Connect(owner_options);
  ASSERT_TRUE(owner.ok()) << owner.status().ToString();
  auto stranger = ZkClient::Connect(OptionsFor((*lab)->zk_standalone_connect()));
  ASSERT_TRUE(stranger.ok()) << stranger.status().ToString();
  const std::string path = UniqueRoot("acl");
  ASSERT_TRUE(EnsurePath(**stranger, ParentPath(path)).ok());
  ASSERT_TRUE((*owner)->Create(path, "v0", CreateMode::kPersistent).ok());
  auto read = (*stranger)->Get(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->data, "v0");
  EXPECT_EQ((*stranger)->Set(path, "hijack").status().code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE((*owner)->Set(path, "v1").ok());
  EXPECT_TRUE((*owner)->Delete(path).ok());
}

}  // namespace
}  // namespace pgherald::zk

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new pgherald::zk::PrintZkLogOnFailure);
  pgherald::zk::ZkClient::SetDefaultLogSink(pgherald::zk::ZkLogCapture::Instance().sink());
  ::testing::AddGlobalTestEnvironment(new pgherald::zk::LabEnvironment);
  return RUN_ALL_TESTS();
}
