// libpgherald's MasterWatch against a real 3-server ZooKeeper ensemble from the lab. The test
// writes the master znode and its vouchers itself, in the contract's format (cluster_model.h):
// the record and a voucher bound to it in one multi, as the orchestrator's publish does.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clients/src/master_watch_internal.h"
#include "common/model/cluster_model.h"
#include "common/zk/zk_client.h"
#include "pgherald/master_watch.h"
#include "common/model/voucher.h"
#include "tests/bound_publish.h"
#include "tests/lab/lab.h"
#include "tests/support/expire_session.h"

namespace pgherald::client {
namespace {

using std::chrono::milliseconds;
using zk::CreateMode;

constexpr milliseconds kWait(20000);

class LabEnvironment : public ::testing::Environment {
 public:
  static lab::Lab* Get() { return lab_.get(); }
  void SetUp() override {
    auto up = lab::Lab::Up({.zk_ensemble = true});
    ASSERT_TRUE(up.ok()) << "the lab did not come up: " << up.status().ToString();
    lab_ = std::move(up).value();
  }
  void TearDown() override { lab_.reset(); }

 private:
  static inline std::unique_ptr<lab::Lab> lab_;
};

model::MasterRecord RecordOf(const std::string& node, int port, std::uint64_t epoch) {
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = node;
  r.host = "127.0.0.1";
  r.port = port;
  r.timeline = 1;
  r.lsn = 0x3000000;
  r.epoch = epoch;
  r.verified_at_ms = 1700000000000;
  r.decided_by = "client_master_watch_test";
  return r;
}
std::string Record(const std::string& node, int port, std::uint64_t epoch) {
  return RecordOf(node, port, epoch).ToJson();
}
constexpr char kOrchestrator[] = "orch1";

class ClientMasterWatchTest : public ::testing::Test {
 protected:
  // Every case starts from the lab's known state (every ensemble member serving), whatever the
  // case before left (Lab::Restore), and gets its own cluster (its name).
  void SetUp() override {
    lab_ = LabEnvironment::Get();
    ASSERT_NE(lab_, nullptr);
    auto restored = lab_->Restore();
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    zk::ZkClientOptions options;
    options.connect = lab_->zk_connect();
    options.session_timeout = milliseconds(6000);
    options.connect_timeout = milliseconds(15000);
    auto writer = zk::ZkClient::Connect(options);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    writer_ = std::move(writer).value();
    cluster_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    path_ = internal::MasterPath("/pgherald", cluster_);
    ASSERT_TRUE(zk::EnsurePath(*writer_, zk::ParentPath(path_)).ok());
  }

  // The orchestrator's publish: the record and its bound voucher in one multi.
  Status PublishStatus(const std::string& node, int port, std::uint64_t epoch) {
    auto exists = writer_->Exists(path_);
    if (!exists.ok()) return exists.status();
    return testing::PublishBound(*writer_, path_, RecordOf(node, port, epoch), kOrchestrator,
                                 !exists->has_value());
  }
  void Publish(const std::string& node, int port, std::uint64_t epoch) {
    Status s = PublishStatus(node, port, epoch);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::string VoucherPath() {
    auto got = writer_->Get(path_);
    if (!got.ok()) return "";
    auto record = model::MasterRecord::FromJson(got->data);
    if (!record.ok()) return "";
    return path_ + "/" +
           model::VoucherName(record->epoch, model::RecordDigest(got->data), kOrchestrator);
  }
  void Unvouch() { ASSERT_TRUE(writer_->Delete(VoucherPath()).ok()); }
  // After an interruption of the watch's session: once it has read the current record again,
  // the orchestrator's re-affirmation (the voucher's data rewritten) opens it.
  void ReaffirmOnceRead(MasterWatch& watch) {
    const std::int64_t mzxid = writer_->Get(path_)->stat.mzxid;
    ASSERT_TRUE(watch.WaitFor(
        [&](const MasterInfo& i) {
          return i.status != MasterStatus::kDisconnected && i.mzxid == mzxid;
        },
        kWait))
        << Log();
    ASSERT_TRUE(writer_->Set(VoucherPath(), "{\"affirm_seq\":2}").ok());
  }

  MasterWatchOptions WatchOptions() {
    MasterWatchOptions o;
    o.zk_connect = lab_->zk_connect();
    o.cluster = cluster_;
    o.session_timeout = milliseconds(6000);
    o.log = [this](int, const std::string& line) {
      std::lock_guard lock(log_mu_);
      log_ += line + "\n";
    };
    return o;
  }
  std::string Log() {
    std::lock_guard lock(log_mu_);
    return log_;
  }

  // A member a case killed is started again here, whether or not the case got to the end.
  void TearDown() override {
    if (killed_member_ > 0) {
      Status started = lab_->ZkStart(killed_member_);
      EXPECT_TRUE(started.ok()) << "zk-start " << killed_member_ << ": " << started.ToString();
      killed_member_ = 0;
    }
  }
  // Kills ensemble member `member`; TearDown starts it again.
  void KillMember(int member) {
    killed_member_ = member;
    ASSERT_TRUE(lab_->ZkKill(member).ok());
  }

  static bool WaitVouched(MasterWatch& watch, const std::string& node) {
    return watch.WaitFor(
        [&](const MasterInfo& i) { return i.status == MasterStatus::kVouched && i.node == node; },
        kWait);
  }

  lab::Lab* lab_ = nullptr;
  int killed_member_ = 0;  // a member to start again in TearDown
  std::unique_ptr<zk::ZkClient> writer_;
  std::string cluster_;
  std::string path_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(ClientMasterWatchTest, AChangeOfMasterAndVouchersIsSeen) {
  Publish("n1", 5433, 1);
  std::string error;
  auto watch = MasterWatch::Start(WatchOptions(), &error);
  ASSERT_NE(watch, nullptr) << error;
  ASSERT_TRUE(WaitVouched(*watch, "n1")) << Log();
  EXPECT_EQ(watch->current().mzxid, writer_->Get(path_)->stat.mzxid);
  EXPECT_EQ(MasterConninfo(watch->current(), "dbname=postgres"),
            "host=127.0.0.1 port=5433 dbname=postgres");

  Unvouch();
  ASSERT_TRUE(watch->WaitFor(
      [](const MasterInfo& i) { return i.status == MasterStatus::kUnverified && i.node == "n1"; },
      kWait))
      << Log();
  // A record written without its bound voucher (by hand) gives no new master.
  ASSERT_TRUE(writer_->Set(path_, Record("n9", 5439, 9)).ok());
  const std::int64_t forged = writer_->Get(path_)->stat.mzxid;
  ASSERT_TRUE(watch->WaitFor([&](const MasterInfo& i) { return i.mzxid == forged; }, kWait));
  EXPECT_EQ(watch->current().status, MasterStatus::kUnverified);
  EXPECT_EQ(watch->current().node, "n1");
  Publish("n2", 5434, 2);
  ASSERT_TRUE(WaitVouched(*watch, "n2")) << Log();
  EXPECT_EQ(watch->current().port, 5434);
}

TEST_F(ClientMasterWatchTest, KillingTheZooKeeperLeaderDoesNotLoseTheWatch) {
  Publish("n1", 5433, 1);
  std::string error;
  auto watch = MasterWatch::Start(WatchOptions(), &error);
  ASSERT_NE(watch, nullptr) << error;
  ASSERT_TRUE(WaitVouched(*watch, "n1")) << Log();

  auto leader = lab_->ZkLeader();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  ASSERT_NO_FATAL_FAILURE(KillMember(*leader));
  // The ensemble elects a new leader (about 0.4 s here); the writer retries until it can write.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  Status published = Status(StatusCode::kConnectionLoss, "not tried");
  while (!published.ok() && std::chrono::steady_clock::now() < deadline) {
    if (writer_->WaitConnected(milliseconds(1000)).ok()) {
      Status set = PublishStatus("n2", 5434, 2);
      // A connection loss may have applied the write: re-read instead of retrying blind.
      auto now = writer_->Get(path_);
      published = (set.ok() || (now.ok() && now->data == Record("n2", 5434, 2))) ? Status::Ok()
                                                                                  : set;
    }
  }
  ASSERT_TRUE(published.ok()) << published.ToString();
  // The watch's session was interrupted (the ensemble lost its leader): vouched again only on a
  // re-affirmation made after it reconnected.
  ReaffirmOnceRead(*watch);
  ASSERT_TRUE(WaitVouched(*watch, "n2")) << Log();
  // TearDown starts the killed member again.
}

TEST_F(ClientMasterWatchTest, ASessionExpiryIsSurvived) {
  Publish("n1", 5433, 1);
  std::mutex mu;
  zk::ZkClient* latest = nullptr;
  int sessions = 0;
  zk::ZkClientOptions zk_options;
  zk_options.connect = lab_->zk_connect();
  zk_options.session_timeout = milliseconds(6000);
  zk_options.connect_timeout = milliseconds(0);
  internal::WatchSettings settings;
  settings.cluster = cluster_;
  settings.log = WatchOptions().log;
  auto watch = internal::StartWithFactory(
      settings, [&]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
        auto client = zk::ZkClient::Connect(zk_options);
        if (!client.ok()) return client.status();
        std::lock_guard lock(mu);
        latest = client->get();
        ++sessions;
        return std::unique_ptr<zk::ZkSession>(std::move(client).value());
      });
  ASSERT_TRUE(WaitVouched(*watch, "n1")) << Log();

  StatusOr<zk::ZkSessionCredentials> credentials = FailedPrecondition("no session");
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(sessions, 1);
    credentials = latest->credentials();  // alive: the watch is vouched through it
  }
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  ASSERT_TRUE(zk::ExpireSessionFromOutside(lab_->zk_connect(), *credentials, milliseconds(15000)).ok());
  // The old session learns it expired at its next ping; the watch builds a new one, and is
  // vouched again on the re-affirmation that follows.
  Publish("n2", 5434, 2);
  ReaffirmOnceRead(*watch);
  ASSERT_TRUE(WaitVouched(*watch, "n2")) << Log();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(sessions, 2) << Log();
  }
  EXPECT_NE(Log().find("event=session_ended"), std::string::npos) << Log();
  // And the new session's watches work.
  Publish("n3", 5435, 3);
  ASSERT_TRUE(WaitVouched(*watch, "n3")) << Log();
}

// MasterWatchOptions::share_session: several watches, one machine and session, each with its
// own callback; a member that goes (even the one that opened the session) does not stop the
// others; the last one closes it.
TEST_F(ClientMasterWatchTest, SharedSessionFansOutToEveryMember) {
  Publish("n1", 5433, 1);
  const int machines_before = internal::LiveMachinesForTesting();
  struct Member {
    std::unique_ptr<MasterWatch> watch;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> nodes;  // from its callback
  };
  std::vector<std::unique_ptr<Member>> members;
  for (int i = 0; i < 3; ++i) {
    auto member = std::make_unique<Member>();
    MasterWatchOptions o = WatchOptions();
    o.share_session = true;
    std::string error;
    member->watch = MasterWatch::Start(o, &error);
    ASSERT_NE(member->watch, nullptr) << error;
    Member* m = member.get();
    member->watch->OnChange([m](const MasterInfo& info) {
      std::lock_guard lock(m->mu);
      m->nodes.push_back(info.node);
      m->cv.notify_all();
    });
    members.push_back(std::move(member));
  }
  EXPECT_EQ(internal::LiveMachinesForTesting(), machines_before + 1);
  for (auto& m : members) ASSERT_TRUE(WaitVouched(*m->watch, "n1")) << Log();
  Publish("n2", 5434, 2);
  for (auto& m : members) {
    ASSERT_TRUE(WaitVouched(*m->watch, "n2")) << Log();
    // Its own callback saw n2 (the callbacks run right after the state is stored: wait).
    std::unique_lock lock(m->mu);
    ASSERT_TRUE(m->cv.wait_for(lock, kWait,
                               [&] { return !m->nodes.empty() && m->nodes.back() == "n2"; }));
  }
  members.erase(members.begin());  // the member that opened the session goes
  EXPECT_EQ(internal::LiveMachinesForTesting(), machines_before + 1);
  Publish("n3", 5435, 3);
  for (auto& m : members) ASSERT_TRUE(WaitVouched(*m->watch, "n3")) << Log();
  // A watch without the option has a machine of its own.
  std::string error;
  auto own = MasterWatch::Start(WatchOptions(), &error);
  ASSERT_NE(own, nullptr) << error;
  EXPECT_EQ(internal::LiveMachinesForTesting(), machines_before + 2);
  ASSERT_TRUE(WaitVouched(*own, "n3")) << Log();
  members.clear();
  own.reset();
  // Gone with their last handle (a runtime task may still hold one for an instant).
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (internal::LiveMachinesForTesting() != machines_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(internal::LiveMachinesForTesting(), machines_before);
}

// The asynchronous reads MasterWatch is built on (additive ZkClient API): answers on the
// completion thread, watches delivered there on request, errors without a call when not sent.
TEST_F(ClientMasterWatchTest, ZkClientAsyncReadsAnswerOnTheCompletionThread) {
  Publish("n1", 5433, 1);
  const std::string voucher = VoucherPath().substr(path_.size() + 1);
  zk::ZkClientOptions options;
  options.connect = lab_->zk_connect();
  options.connect_timeout = milliseconds(15000);
  options.resolve_delay = milliseconds(-1);
  options.lease_pings = false;
  auto made = zk::ZkClient::Connect(options);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::unique_ptr<zk::ZkClient> client = std::move(made).value();

  std::mutex mu;
  std::condition_variable cv;
  std::optional<StatusOr<zk::NodeData>> got;
  std::optional<StatusOr<std::vector<std::string>>> children;
  std::optional<StatusOr<std::optional<zk::Stat>>> absent;
  std::thread::id answer_thread;
  std::thread::id watch_thread;
  bool fired = false;
  auto notify = [&] { cv.notify_all(); };
  // Sent together: the children first, then the node; answered in that order.
  ASSERT_TRUE(client
                  ->GetChildrenAsync(path_, nullptr,
                                     [&](StatusOr<std::vector<std::string>> r) {
                                       std::lock_guard lock(mu);
                                       children = std::move(r);
                                       notify();
                                     })
                  .ok());
  ASSERT_TRUE(client
                  ->GetAsync(
                      path_,
                      [&](const zk::WatchEvent&) {
                        std::lock_guard lock(mu);
                        fired = true;
                        watch_thread = std::this_thread::get_id();
                        notify();
                      },
                      [&](StatusOr<zk::NodeData> r) {
                        std::lock_guard lock(mu);
                        EXPECT_TRUE(children.has_value()) << "answered out of order";
                        got = std::move(r);
                        answer_thread = std::this_thread::get_id();
                        notify();
                      },
                      zk::ZkClient::WatchDelivery::kCompletionThread)
                  .ok());
  ASSERT_TRUE(client
                  ->ExistsAsync(path_ + "/absent", nullptr,
                                [&](StatusOr<std::optional<zk::Stat>> r) {
                                  std::lock_guard lock(mu);
                                  absent = std::move(r);
                                  notify();
                                })
                  .ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return got && children && absent; }));
    ASSERT_TRUE(got->ok()) << got->status().ToString();
    EXPECT_EQ((*got)->data, Record("n1", 5433, 1));
    EXPECT_EQ((*got)->stat.num_children, 1);
    ASSERT_TRUE(children->ok());
    EXPECT_EQ(**children, std::vector<std::string>{voucher});
    ASSERT_TRUE(absent->ok());
    EXPECT_FALSE((*absent)->has_value());
    EXPECT_NE(answer_thread, std::this_thread::get_id());
  }
  Publish("n2", 5434, 2);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return fired; }));
    EXPECT_EQ(watch_thread, answer_thread);  // the completion thread, not the dispatch thread
  }
  // Not sent: the error comes back and `done` never runs.
  client->Close();
  bool ran = false;
  Status sent = client->GetAsync(path_, nullptr, [&](StatusOr<zk::NodeData>) { ran = true; });
  EXPECT_FALSE(sent.ok());
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace pgherald::client

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pgherald::client::LabEnvironment);
  return RUN_ALL_TESTS();
}
