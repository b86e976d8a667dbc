// MasterWatch's state machine over FakeZk: ordering by mzxid, vouchers, no master, disconnects,
// expiry and corrupt payloads; plus the C API and the conninfo helper.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clients/src/master_watch_internal.h"
#include "common/model/cluster_model.h"
#include "tests/support/fake_zk.h"
#include "pgherald/master_watch.h"
#include "pgherald/master_watch_c.h"
#include "common/model/voucher.h"
#include "tests/bound_publish.h"
#include "tests/unit/hostile_payloads.h"
#include "common/model/zk_paths.h"
#include "tests/support/manual_clock.h"

namespace pgherald::client {
namespace {

const model::ClusterPaths kC1("/pgherald", "c1");

using std::chrono::milliseconds;
using zk::CreateMode;

constexpr milliseconds kWait(10000);
const std::string kPath = kC1.Master();

model::MasterRecord RecordOf(const std::string& node, int port, std::uint64_t epoch,
                            model::MasterState state = model::MasterState::kOk) {
  model::MasterRecord r;
  r.state = state;
  if (state == model::MasterState::kOk) {
    r.node = node;
    r.host = "127.0.0.1";
    r.port = port;
    r.timeline = static_cast<std::uint32_t>(epoch);
    r.lsn = 0x3000000 + epoch;
    r.verified_at_ms = 1700000000000;
  }
  r.epoch = epoch;
  r.decided_by = "test";
  return r;
}
std::string Record(const std::string& node, int port, std::uint64_t epoch,
                   model::MasterState state = model::MasterState::kOk) {
  return RecordOf(node, port, epoch, state).ToJson();
}

// A session that answers the first Get of the master with an older snapshot, as a follower that
// lags behind would after a reconnect. Everything else (watches included) goes to the real fake.
class LaggingSession final : public zk::ZkSession {
 public:
  LaggingSession(std::unique_ptr<zk::FakeZk> real, zk::NodeData stale)
      : real_(std::move(real)), stale_(std::move(stale)) {}
  zk::SessionState state() const override { return real_->state(); }
  int64_t session_id() const override { return real_->session_id(); }
  milliseconds session_timeout() const override { return real_->session_timeout(); }
  milliseconds lease_remaining() const override { return real_->lease_remaining(); }
  Status WaitConnected(milliseconds t) override { return real_->WaitConnected(t); }
  StatusOr<std::string> Create(const std::string& p, const std::string& d,
                               CreateMode m) override {
    return real_->Create(p, d, m);
  }
  StatusOr<zk::NodeData> Get(const std::string& p, zk::Watcher w) override {
    auto real = real_->Get(p, std::move(w));
    if (p == kPath && !served_stale_.exchange(true)) return stale_;
    return real;
  }
  StatusOr<std::optional<zk::Stat>> Exists(const std::string& p, zk::Watcher w) override {
    return real_->Exists(p, std::move(w));
  }
  // The watch reads this way: the first answer for the master is the stale snapshot.
  Status GetAsync(const std::string& p, zk::Watcher w, GetDone done,
                  WatchDelivery d) override {
    if (p != kPath) return real_->GetAsync(p, std::move(w), std::move(done), d);
    return real_->GetAsync(
        p, std::move(w),
        [this, callback = std::move(done)](StatusOr<zk::NodeData> got) {
          if (got.ok() && !served_stale_.exchange(true)) {
            callback(stale_);
          } else {
            callback(std::move(got));
          }
        },
        d);
  }
  Status ExistsAsync(const std::string& p, zk::Watcher w, ExistsDone done,
                     WatchDelivery d) override {
    return real_->ExistsAsync(p, std::move(w), std::move(done), d);
  }
  Status GetChildrenAsync(const std::string& p, zk::Watcher w, ChildrenDone done,
                          WatchDelivery d) override {
    return real_->GetChildrenAsync(p, std::move(w), std::move(done), d);
  }
  StatusOr<std::vector<std::string>> GetChildren(const std::string& p, zk::Watcher w) override {
    return real_->GetChildren(p, std::move(w));
  }
  StatusOr<zk::Stat> Set(const std::string& p, const std::string& d, int32_t v) override {
    return real_->Set(p, d, v);
  }
  Status Delete(const std::string& p, int32_t v) override { return real_->Delete(p, v); }
  StatusOr<zk::MultiResult> Multi(const std::vector<zk::Op>& ops, int* f) override {
    return real_->Multi(ops, f);
  }
  void SetStateListener(zk::StateListener l) override { real_->SetStateListener(std::move(l)); }
  void Close() override { real_->Close(); }

  bool served_stale() const { return served_stale_; }

 private:
  std::unique_ptr<zk::FakeZk> real_;
  zk::NodeData stale_;
  std::atomic<bool> served_stale_{false};
};

class MasterWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    writer_ = server_->NewSession();
    ASSERT_TRUE(zk::EnsurePath(*writer_, kC1.Cluster()).ok());
  }

  void TearDown() override { watch_.reset(); }

  // The factory hands out FakeZk sessions (or, when lagging_ is set, one LaggingSession).
  // `system_clock`: confirmed_at on the steady clock (the C API computes ages with it).
  void StartWatch(bool system_clock = false) {
    internal::WatchSettings settings;
    settings.cluster = "c1";
    settings.clock = system_clock ? nullptr : &clock_;
    settings.retry_interval = milliseconds(20);
    settings.log = [this](int level, const std::string& line) {
      std::lock_guard lock(mu_);
      logs_.push_back(std::to_string(level) + " " + line);
      cv_.notify_all();
    };
    // mu_ is held until the callback is set: the factory (on the library's runtime thread) waits
    // for it, so the first change is never missed.
    std::lock_guard start_lock(mu_);
    watch_ = internal::StartWithFactory(settings, [this]() {
      std::lock_guard lock(mu_);
      ++sessions_made_;
      cv_.notify_all();
      auto session = server_->NewSession(zk::FakeZkOptions{});
      last_session_ = session.get();
      if (lagging_) {
        auto lagging = std::make_unique<LaggingSession>(std::move(session), *lagging_);
        lagging_session_ = lagging.get();
        lagging_.reset();
        return StatusOr<std::unique_ptr<zk::ZkSession>>(std::move(lagging));
      }
      return StatusOr<std::unique_ptr<zk::ZkSession>>(std::move(session));
    });
    watch_->OnChange([this](const MasterInfo& info) {
      std::lock_guard lock(mu_);
      changes_.push_back(info);
      cv_.notify_all();
    });
  }

  bool WaitStatus(MasterStatus status, const std::string& node = "") {
    return watch_->WaitFor(
        [&](const MasterInfo& i) { return i.status == status && (node.empty() || i.node == node); },
        kWait);
  }

  void Publish(const std::string& node, int port, std::uint64_t epoch) {
    if (server_->Peek(kPath)) {
      ASSERT_TRUE(writer_->Set(kPath, Record(node, port, epoch)).ok());
    } else {
      ASSERT_TRUE(writer_->Create(kPath, Record(node, port, epoch), CreateMode::kPersistent).ok());
    }
  }
  // A voucher of orchestrator `orch` BOUND to the record stored now (common/model/voucher.h).
  void Vouch(const std::string& orch = "orch1") {
    const auto node = server_->Peek(kPath);
    ASSERT_TRUE(node.has_value());
    auto record = model::MasterRecord::FromJson(node->data);
    ASSERT_TRUE(record.ok());
    const std::string name =
        model::VoucherName(record->epoch, model::RecordDigest(node->data), orch);
    ASSERT_TRUE(writer_->Create(std::string(kPath) + "/" + name, "", CreateMode::kEphemeral).ok());
    vouchers_[orch] = name;
  }
  void Unvouch(const std::string& orch = "orch1") {
    ASSERT_TRUE(writer_->Delete(std::string(kPath) + "/" + vouchers_[orch]).ok());
    vouchers_.erase(orch);
  }
  // The leader's publish: the record and its bound voucher in one multi (old vouchers deleted).
  void PublishVouched(const std::string& node, int port, std::uint64_t epoch) {
    ASSERT_TRUE(testing::PublishBound(*writer_, kPath, RecordOf(node, port, epoch), "orch1",
                                      !server_->Peek(kPath).has_value())
                    .ok());
    auto children = writer_->GetChildren(kPath);
    ASSERT_TRUE(children.ok());
    vouchers_.clear();
    vouchers_["orch1"] = children->front();
  }
  // The leader's re-affirmation: the voucher's data rewritten (its mzxid moves).
  void Reaffirm(const std::string& orch = "orch1") {
    ASSERT_TRUE(writer_->Set(std::string(kPath) + "/" + vouchers_[orch], "{\"affirm_seq\":2}").ok());
  }

  zk::FakeZk* session() {
    std::lock_guard lock(mu_);
    return last_session_;
  }
  int sessions_made() {
    std::lock_guard lock(mu_);
    return sessions_made_;
  }
  std::vector<MasterInfo> changes() {
    std::lock_guard lock(mu_);
    return changes_;
  }
  // Waits until `pred` holds; it runs with mu_ held (use the *Locked helpers) and is re-checked
  // whenever a log line, a callback or a new session is recorded.
  bool Await(const std::function<bool()>& pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, pred);
  }
  bool LoggedLocked(const std::string& needle) {
    return std::any_of(logs_.begin(), logs_.end(),
                       [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  }
  bool Logged(const std::string& needle) {
    std::lock_guard lock(mu_);
    return std::any_of(logs_.begin(), logs_.end(),
                       [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  }
  std::string AllLogs() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const auto& l : logs_) all += l + "\n";
    return all;
  }

  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  std::unique_ptr<zk::FakeZk> writer_;
  std::unique_ptr<MasterWatch> watch_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> logs_;
  std::vector<MasterInfo> changes_;
  int sessions_made_ = 0;
  zk::FakeZk* last_session_ = nullptr;
  std::optional<zk::NodeData> lagging_;
  LaggingSession* lagging_session_ = nullptr;
  std::map<std::string, std::string> vouchers_;  // orchestrator -> its voucher's name
};

TEST_F(MasterWatchTest, VouchedMasterIsReportedWithItsZnodeFields) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1")) << AllLogs();
  MasterInfo info = watch_->current();
  EXPECT_EQ(info.cluster, "c1");
  EXPECT_EQ(info.host, "127.0.0.1");
  EXPECT_EQ(info.port, 5433);
  EXPECT_EQ(info.epoch, 1u);
  EXPECT_EQ(info.timeline, 1u);
  EXPECT_EQ(info.vouchers, 1);
  EXPECT_EQ(info.mzxid, server_->Peek(kPath)->stat.mzxid);
  EXPECT_EQ(info.confirmed_at, clock_.Now());
  EXPECT_TRUE(info.writable());
  EXPECT_TRUE(Logged("event=transition cluster=c1 status=vouched node=n1"));
}

TEST_F(MasterWatchTest, VoucherLossIsUnverifiedAndItsReturnVouchedAgain) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  Unvouch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kUnverified, "n1"));
  MasterInfo info = watch_->current();
  EXPECT_EQ(info.vouchers, 0);
  EXPECT_EQ(info.port, 5433);  // the last master is kept
  EXPECT_FALSE(info.writable());
  EXPECT_EQ(MasterConninfo(info), "");
  Vouch("orch2");
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  // Each re-armed child watch keeps working: a second loss is seen too.
  Unvouch("orch2");
  ASSERT_TRUE(WaitStatus(MasterStatus::kUnverified, "n1"));
}

TEST_F(MasterWatchTest, AbsentRecordAndNoMasterStateAreNoMaster) {
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kNoMaster));  // absent record
  ASSERT_TRUE(
      writer_->Create(kPath, Record("", 0, 0, model::MasterState::kNoMaster), CreateMode::kPersistent)
          .ok());
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) { return i.status == MasterStatus::kNoMaster && i.mzxid > 0; },
      kWait));
  Publish("n1", 5433, 1);  // the exists watch was turned into a data watch
  Vouch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
}

// A master znode deleted after a master was verified is not "no master": it is unverified, the
// last verified master kept; a record re-created without a bound voucher gives no new master.
TEST_F(MasterWatchTest, DeletedMasterZnodeIsUnverifiedWithTheLastVerifiedMaster) {
  PublishVouched("n1", 5433, 1);
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  Unvouch();
  ASSERT_TRUE(writer_->Delete(kPath).ok());
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) { return i.status == MasterStatus::kUnverified && i.mzxid == 0; },
      kWait));
  EXPECT_EQ(watch_->current().node, "n1");
  EXPECT_FALSE(watch_->current().writable());
  Publish("n2", 5434, 2);  // re-created by hand, no voucher: seen, but no new master
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) { return i.status == MasterStatus::kUnverified && i.mzxid > 0; },
      kWait));
  EXPECT_EQ(watch_->current().node, "n1");
  Vouch();  // bound to it: vouched
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n2"));
}

// Finding 3 and 4 of issue 12: children that do not bind THIS record -- a legacy voucher (named
// after an orchestrator), the voucher of the previous record, a name with the right epoch and a
// wrong digest -- count for nothing; the state is unverified and carries the last VERIFIED
// master, never the forged record's.
TEST_F(MasterWatchTest, UnboundLegacyAndReplayedVouchersAreUnverifiedAndKeepTheLastVerified) {
  PublishVouched("n1", 5433, 1);
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  const std::string forged = Record("standby9", 6000, 7);
  ASSERT_TRUE(writer_->Create(std::string(kPath) + "/orch1", "", CreateMode::kEphemeral).ok());
  ASSERT_TRUE(writer_->Create(std::string(kPath) + "/" +
                                  model::VoucherName(7, model::RecordDigest("other"), "orch1"),
                              "", CreateMode::kEphemeral)
                  .ok());
  ASSERT_TRUE(writer_->Set(kPath, forged).ok());  // n1's bound voucher stays beside it
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) {
        return i.status == MasterStatus::kUnverified && i.mzxid == server_->Peek(kPath)->stat.mzxid;
      },
      kWait))
      << AllLogs();
  MasterInfo info = watch_->current();
  EXPECT_EQ(info.node, "n1");
  EXPECT_EQ(info.port, 5433);
  EXPECT_EQ(info.epoch, 1u);
  EXPECT_EQ(info.vouchers, 0);
  EXPECT_EQ(MasterConninfo(info), "");
  for (const MasterInfo& seen : changes()) EXPECT_NE(seen.node, "standby9");
  EXPECT_TRUE(Logged("cause=voucher_unbound")) << AllLogs();
  // The same bytes written back (a replay of n1's record): n1's voucher binds them again.
  ASSERT_TRUE(writer_->Set(kPath, Record("n1", 5433, 1)).ok());
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
}

// The failover path: a new record and its bound voucher in one multi are vouched at once, with
// no unverified state in between.
TEST_F(MasterWatchTest, NewRecordAndBoundVoucherInOneMultiAreVouchedAtOnce) {
  PublishVouched("n1", 5433, 1);
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  // The callback runs right after the state is stored: wait for it.
  ASSERT_TRUE(Await([&] { return !changes_.empty() && changes_.back().node == "n1"; }));
  const size_t before = changes().size();
  PublishVouched("n2", 5434, 2);
  ASSERT_TRUE(Await([&] { return !changes_.empty() && changes_.back().node == "n2"; }));
  std::vector<MasterInfo> seen = changes();
  ASSERT_GT(seen.size(), before);
  EXPECT_EQ(seen[before].status, MasterStatus::kVouched) << MasterStatusName(seen[before].status);
  EXPECT_EQ(seen[before].node, "n2");
  EXPECT_EQ(seen[before].vouchers, 1);
}

// "A voucher means verified now": after a disconnect, the watch stays unverified (last verified
// master kept) until the bound voucher's mzxid moves after the reconnect -- the leader's
// re-affirmation -- even though the record and its voucher are unchanged.
TEST_F(MasterWatchTest, AfterReconnectUnverifiedUntilTheVoucherIsReaffirmed) {
  PublishVouched("n1", 5433, 1);
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  session()->Disconnect();
  ASSERT_TRUE(WaitStatus(MasterStatus::kDisconnected, "n1"));
  const size_t before = changes().size();
  session()->Reconnect();
  ASSERT_TRUE(WaitStatus(MasterStatus::kUnverified, "n1")) << AllLogs();
  EXPECT_TRUE(Logged("cause=awaiting_reaffirmation")) << AllLogs();
  EXPECT_EQ(watch_->current().vouchers, 1);  // bound, but not re-affirmed since the reconnect
  Reaffirm();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1")) << AllLogs();
  std::vector<MasterInfo> seen = changes();
  for (size_t i = before; i + 1 < seen.size(); ++i) {
    EXPECT_NE(seen[i].status, MasterStatus::kVouched) << "vouched before the re-affirmation";
  }
  // Back to normal: a failover is vouched at once again.
  PublishVouched("n2", 5434, 2);
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n2"));
}

TEST_F(MasterWatchTest, DisconnectKeepsTheLastMasterWithItsAgeAndResyncsOnReconnect) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  clock_.Advance(milliseconds(100));
  const MonoTime lost_at = clock_.Now();
  session()->Disconnect();
  ASSERT_TRUE(WaitStatus(MasterStatus::kDisconnected, "n1"));
  MasterInfo info = watch_->current();
  EXPECT_EQ(info.port, 5433);
  EXPECT_EQ(info.confirmed_at, lost_at);
  EXPECT_FALSE(info.writable());
  clock_.Advance(milliseconds(2000));  // below the session timeout: the session lives
  EXPECT_EQ(watch_->current().confirmed_at, lost_at);  // the age grows
  // A failover while disconnected: seen once the connection is back (same session), and
  // routed only after a re-affirmation made after the reconnect.
  PublishVouched("n2", 5434, 2);
  session()->Reconnect();
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) { return i.status == MasterStatus::kUnverified && i.vouchers == 1; },
      kWait))
      << AllLogs();
  EXPECT_EQ(watch_->current().node, "n1");  // the last verified master, not the new record's
  Reaffirm();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n2")) << AllLogs();
  EXPECT_EQ(sessions_made(), 1);
  PublishVouched("n3", 5435, 3);  // watches still armed after the reconnect, and not doubled
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n3"));
}

TEST_F(MasterWatchTest, ExpiryBuildsANewSessionAndTheStateRecovers) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  const int64_t first = session()->session_id();
  ASSERT_TRUE(server_->ExpireSession(first).ok());
  ASSERT_TRUE(Await([&] { return sessions_made_ == 2; }));
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) { return i.status == MasterStatus::kUnverified && i.vouchers == 1; },
      kWait));  // a new session is an interruption: re-affirmation needed
  Reaffirm();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  // The new session's watches work.
  PublishVouched("n2", 5434, 2);
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n2"));
  std::vector<int64_t> live = server_->LiveSessions();
  EXPECT_EQ(std::count(live.begin(), live.end(), first), 0);
  EXPECT_TRUE(Logged("event=session_ended"));
}

TEST_F(MasterWatchTest, ExpiryDuringAPartitionIsSeenOnReconnect) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  zk::FakeZk* old = session();
  old->Disconnect();
  ASSERT_TRUE(WaitStatus(MasterStatus::kDisconnected, "n1"));
  clock_.Advance(milliseconds(11000));  // past the 10 s session timeout
  server_->ExpireOverdueSessions();
  EXPECT_EQ(watch_->current().status, MasterStatus::kDisconnected);  // still partitioned
  PublishVouched("n2", 5434, 2);
  old->Reconnect();  // -> kExpired: a new session is built
  ASSERT_TRUE(Await([&] { return sessions_made_ == 2; }));
  ASSERT_TRUE(watch_->WaitFor(
      [&](const MasterInfo& i) { return i.status == MasterStatus::kUnverified && i.vouchers == 1; },
      kWait))
      << AllLogs();
  EXPECT_EQ(watch_->current().node, "n1");
  Reaffirm();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n2")) << AllLogs();
  EXPECT_EQ(sessions_made(), 2);
}

TEST_F(MasterWatchTest, OlderStateDeliveredLateIsNotApplied) {
  Publish("n1", 5433, 1);
  Vouch();
  const zk::NodeData state_a = *server_->Peek(kPath);
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  PublishVouched("n2", 5434, 2);
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n2"));
  {
    std::lock_guard lock(mu_);
    lagging_ = state_a;  // the next session reads from a follower that still has n1
  }
  ASSERT_TRUE(server_->ExpireSession(session()->session_id()).ok());
  // The lagging session served n1 and the watch refused it.
  ASSERT_TRUE(Await([&] { return LoggedLocked("event=stale_state_ignored"); })) << AllLogs();
  EXPECT_TRUE(lagging_session_->served_stale());
  EXPECT_EQ(watch_->current().node, "n2");
  // The follower catches up with a newer write: that one is applied (vouched once re-affirmed:
  // the new session is an interruption).
  PublishVouched("n3", 5435, 3);
  ASSERT_TRUE(watch_->WaitFor([&](const MasterInfo& i) { return i.vouchers == 1 &&
                                                                i.mzxid == server_->Peek(kPath)->stat.mzxid; },
                              kWait)) << AllLogs();
  Reaffirm();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n3")) << AllLogs();
  std::vector<MasterInfo> seen = changes();
  auto first_n2 = std::find_if(seen.begin(), seen.end(),
                               [](const MasterInfo& i) { return i.node == "n2"; });
  ASSERT_NE(first_n2, seen.end());
  for (auto it = first_n2; it != seen.end(); ++it) {
    EXPECT_NE(it->node, "n1") << "a state older than one applied was applied: "
                              << MasterStatusName(it->status) << " mzxid=" << it->mzxid;
  }
}

// Finding 2 of issue 12: a record that does not decode is unverified (writes stop), carrying the
// last verified master; it never stays "vouched".
TEST_F(MasterWatchTest, CorruptPayloadIsUnverifiedWithTheLastVerifiedMasterAndNamesPathAndField) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  ASSERT_TRUE(writer_->Set(kPath, R"({"format":1,"state":"ok","node":"n2","host":"h","port":"x",)"
                                  R"("timeline":2,"lsn":"0/1","epoch":2,"verified_at":1})")
                  .ok());
  ASSERT_TRUE(Await([&] { return LoggedLocked("corrupt_payload"); }));
  EXPECT_TRUE(Logged(std::string("path=") + kPath)) << AllLogs();
  EXPECT_TRUE(Logged("port")) << AllLogs();
  EXPECT_TRUE(Logged("3 master_watch event=corrupt_payload_ignored")) << AllLogs();  // error level
  ASSERT_TRUE(WaitStatus(MasterStatus::kUnverified, "n1"));
  MasterInfo info = watch_->current();
  EXPECT_EQ(info.port, 5433);
  EXPECT_EQ(info.epoch, 1u);
  EXPECT_FALSE(info.writable());
  // The watch is re-armed after the corrupt write: a good one is applied.
  PublishVouched("n3", 5435, 3);
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n3"));
}

// Untrusted master znode: a 200 KB nested array (the stack overflow seen on the lab), a host
// that would reach a config file, and control characters: each is ignored with one log line that
// holds no control character, and the verified master stays.
TEST_F(MasterWatchTest, HostilePayloadsKeepTheStateAndTheLogLineIsSanitized) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  const std::string good = Record("n2", 5434, 2);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string(200 * 1024 / 2, '[') + std::string(200 * 1024 / 2, ']'), "exceeds the limit"},
      {std::string(1 << 20, '['), "exceeds the limit"},
      {testing::ReplaceField(good, "host", "\"db1;reboot\""), "field 'host'"},
      {testing::ReplaceField(good, "node", "\"n2\\u001b]0;pwned\\u0007\""), "field 'node'"},
      {testing::ReplaceField(good, "format", "4294967297"), "field 'format'"},
  };
  for (const auto& [data, why] : cases) {
    {
      std::lock_guard lock(mu_);
      logs_.clear();
    }
    ASSERT_TRUE(writer_->Set(kPath, data).ok());
    ASSERT_TRUE(Await([&] { return LoggedLocked("corrupt_payload_ignored"); })) << why;
    EXPECT_TRUE(Logged(why)) << AllLogs();
    for (char c : AllLogs()) {
      const auto u = static_cast<unsigned char>(c);
      EXPECT_FALSE((u < 0x20 && c != '\n') || u == 0x7f) << AllLogs();
    }
    EXPECT_LT(AllLogs().size(), 1000u) << why;
    ASSERT_TRUE(WaitStatus(MasterStatus::kUnverified, "n1")) << why;
  }
  for (const MasterInfo& seen : changes()) EXPECT_TRUE(seen.node.empty() || seen.node == "n1");
  PublishVouched("n3", 5435, 3);
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n3"));
}

TEST_F(MasterWatchTest, CallbackRunsOnALibraryThreadAndMayCallTheWatch) {
  Publish("n1", 5433, 1);
  StartWatch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kUnverified));
  EXPECT_EQ(watch_->current().node, "");  // never vouched: no master taken from the record
  std::atomic<bool> called{false};
  std::atomic<bool> other_thread{false};
  const auto test_thread = std::this_thread::get_id();
  watch_->OnChange([&](const MasterInfo& info) {
    other_thread = std::this_thread::get_id() != test_thread;
    EXPECT_EQ(watch_->current().status, info.status);  // no lock held: no deadlock
    std::lock_guard lock(mu_);
    called = true;
    cv_.notify_all();
  });
  Vouch();
  ASSERT_TRUE(WaitStatus(MasterStatus::kVouched, "n1"));
  ASSERT_TRUE(Await([&] { return called.load(); }));
  EXPECT_TRUE(other_thread.load());
  watch_->OnChange(nullptr);
}

TEST(MasterWatchOptionsTest, BadOptionsAreRefusedWithTheFix) {
  MasterWatchOptions o;
  std::string error;
  o.cluster = "c1";
  EXPECT_EQ(MasterWatch::Start(o, &error), nullptr);
  EXPECT_NE(error.find("zk_connect"), std::string::npos) << error;
  o.zk_connect = "127.0.0.1:32001";
  o.cluster = "a/b";
  EXPECT_EQ(MasterWatch::Start(o, &error), nullptr);
  EXPECT_NE(error.find("cluster 'a/b'"), std::string::npos) << error;
  o.cluster = "c1";
  o.root = "pgherald";
  EXPECT_EQ(MasterWatch::Start(o, &error), nullptr);
  EXPECT_NE(error.find("root"), std::string::npos) << error;
  o.root = "/pgherald";
  o.zk_auth = "secretwithoutcolon";
  EXPECT_EQ(MasterWatch::Start(o, &error), nullptr);
  EXPECT_EQ(error.find("secretwithoutcolon"), std::string::npos) << "password leaked: " << error;
  EXPECT_EQ(model::ClusterPaths("/pgherald", "c1").Master(), kPath);
  EXPECT_EQ(model::ClusterPaths("/", "c1").Master(), "/clusters/c1/master");
}

TEST(MasterConninfoTest, QuotesValuesAndIsEmptyUnlessWritable) {
  MasterInfo info;
  info.status = MasterStatus::kVouched;
  info.host = "db1.example";
  info.port = 5432;
  EXPECT_EQ(MasterConninfo(info), "host=db1.example port=5432");
  EXPECT_EQ(MasterConninfo(info, "dbname=app user=app"),
            "host=db1.example port=5432 dbname=app user=app");
  info.host = "it's here";
  EXPECT_EQ(MasterConninfo(info), R"(host='it\'s here' port=5432)");
  info.status = MasterStatus::kDisconnected;
  EXPECT_EQ(MasterConninfo(info), "");
}

// The C API over a FakeZk-backed watch: state, callback with user data, conninfo, stop.
struct CCallbackLog {
  std::mutex mu;
  std::vector<std::string> nodes;
  std::vector<pgherald_status> statuses;
};

TEST_F(MasterWatchTest, CApiRoundTrip) {
  Publish("n1", 5433, 1);
  Vouch();
  StartWatch(/*system_clock=*/true);
  pgherald_watch* handle = internal::WrapForC(std::move(watch_));
  ASSERT_EQ(pgherald_watch_wait_status(handle, PGHERALD_VOUCHED, 10000), 1);
  pgherald_master_info info;
  ASSERT_EQ(pgherald_watch_current(handle, &info), 0);
  EXPECT_STREQ(info.cluster, "c1");
  EXPECT_STREQ(info.node, "n1");
  EXPECT_STREQ(info.host, "127.0.0.1");
  EXPECT_EQ(info.port, 5433);
  EXPECT_EQ(info.writable, 1);
  EXPECT_EQ(info.vouchers, 1);
  EXPECT_GE(info.age_ms, 0);
  EXPECT_STREQ(pgherald_status_name(info.status), "vouched");

  char buf[64];
  const size_t n = pgherald_master_conninfo(&info, "dbname=app", buf, sizeof buf);
  EXPECT_STREQ(buf, "host=127.0.0.1 port=5433 dbname=app");
  EXPECT_EQ(n, std::string(buf).size());
  char small[10];
  EXPECT_EQ(pgherald_master_conninfo(&info, "dbname=app", small, sizeof small), n);  // cut
  EXPECT_STREQ(small, "host=127.");

  CCallbackLog log;
  pgherald_watch_set_callback(
      handle,
      [](const pgherald_master_info* i, void* user) {
        auto* l = static_cast<CCallbackLog*>(user);
        std::lock_guard lock(l->mu);
        l->nodes.emplace_back(i->node);
        l->statuses.push_back(i->status);
      },
      &log);
  Unvouch();
  ASSERT_EQ(pgherald_watch_wait_status(handle, PGHERALD_UNVERIFIED, 10000), 1);
  ASSERT_EQ(pgherald_watch_current(handle, &info), 0);
  EXPECT_EQ(info.writable, 0);
  EXPECT_EQ(pgherald_master_conninfo(&info, nullptr, buf, sizeof buf), 0u);
  EXPECT_STREQ(buf, "");
  pgherald_watch_stop(handle);  // waits for a running callback: it has run by now
  std::lock_guard lock(log.mu);
  ASSERT_FALSE(log.statuses.empty());
  EXPECT_EQ(log.statuses.back(), PGHERALD_UNVERIFIED);
  EXPECT_EQ(log.nodes.back(), "n1");
}

TEST(MasterWatchCApiTest, StartRefusesBadOptionsAndStartsDisconnectedWithoutAServer) {
  pgherald_watch_options o;
  pgherald_watch_options_init(&o);
  char err[256] = "";
  EXPECT_EQ(pgherald_watch_start(&o, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("zk_connect"), std::string::npos) << err;
  EXPECT_EQ(pgherald_watch_start(nullptr, err, sizeof err), nullptr);

  o.zk_connect = "127.0.0.1:32001";  // nothing listens there: disconnected, not an error
  o.cluster = "c1";
  pgherald_watch* handle = pgherald_watch_start(&o, err, sizeof err);
  ASSERT_NE(handle, nullptr) << err;
  pgherald_master_info info;
  ASSERT_EQ(pgherald_watch_current(handle, &info), 0);
  EXPECT_EQ(info.status, PGHERALD_DISCONNECTED);
  EXPECT_STREQ(info.cluster, "c1");
  EXPECT_EQ(info.age_ms, -1);
  EXPECT_EQ(info.writable, 0);
  pgherald_watch_stop(handle);
  pgherald_watch_stop(nullptr);
}

}  // namespace
}  // namespace pgherald::client
