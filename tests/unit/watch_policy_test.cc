// The state handling of `pgherald watch`: RoutePolicy (keep/block, grace periods on a ManualClock,
// ordering by mzxid), SinkWorker (latest state wins, retry with backoff, one failing sink does not
// hold up another) and ClusterController wiring. No ZooKeeper: MasterInfo values are fed directly.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "clients/watch/cluster_controller.h"
#include "clients/watch/library_master_source.h"
#include "clients/watch/route_policy.h"
#include "clients/watch/sink_worker.h"
#include "tests/support/fake_zk.h"
#include "common/model/voucher.h"
#include "tests/bound_publish.h"
#include "clients/watch/watch_metrics.h"
#include "common/model/zk_paths.h"
#include "tests/support/manual_clock.h"

namespace pgherald::watch {
namespace {

const model::ClusterPaths kMain("/ph", "main");

using client::MasterInfo;
using client::MasterStatus;
using std::chrono::milliseconds;
using Action = RouteTarget::Action;

MasterInfo Info(MasterStatus status, const std::string& node, int port, std::int64_t mzxid,
                std::uint64_t epoch = 1) {
  MasterInfo i;
  i.status = status;
  i.cluster = "main";
  i.node = node;
  i.host = "127.0.0.1";
  i.port = port;
  i.mzxid = mzxid;
  i.epoch = epoch;
  i.vouchers = status == MasterStatus::kVouched ? 1 : 0;
  return i;
}

PolicyConfig Block(Millis grace) {
  PolicyConfig c;
  c.on_unverified = Policy::kBlock;
  c.unverified_grace = grace;
  c.on_disconnect = Policy::kBlock;
  c.disconnect_grace = grace * 2;
  return c;
}

TEST(RoutePolicyTest, VouchedMasterIsRoutedAtOnce) {
  ManualClock clock;
  RoutePolicy policy({}, clock);
  auto t = policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->action, Action::kRoute);
  EXPECT_EQ(t->master.port, 5001);
  EXPECT_EQ(t->reason, "vouched");
  // The same state again changes nothing.
  EXPECT_FALSE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  auto moved = policy.OnState(Info(MasterStatus::kVouched, "node2", 5002, 20, 2));
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->master.node, "node2");
  EXPECT_GT(moved->seq, t->seq);
}

TEST(RoutePolicyTest, OlderStateByMzxidIsDropped) {
  ManualClock clock;
  RoutePolicy policy({}, clock);
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node2", 5002, 20, 2)).has_value());
  // A late event about the previous master must not move the route back.
  EXPECT_FALSE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10, 1)).has_value());
  EXPECT_EQ(policy.current()->master.node, "node2");
}

TEST(RoutePolicyTest, UnverifiedNeverSeenVouchedIsNotRouted) {
  ManualClock clock;
  RoutePolicy policy({}, clock);
  EXPECT_FALSE(policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 10)).has_value());
  EXPECT_FALSE(policy.current().has_value());
}

TEST(RoutePolicyTest, KeepPolicyKeepsLastVouchedRouteForever) {
  ManualClock clock;
  RoutePolicy policy({}, clock);
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  // A new master is published but not vouched: the route stays on the vouched one.
  auto t = policy.OnState(Info(MasterStatus::kUnverified, "node2", 5002, 20, 2));
  ASSERT_TRUE(t.has_value());  // the status changed: sinks are told
  EXPECT_EQ(t->action, Action::kRoute);
  EXPECT_EQ(t->master.node, "node1");
  EXPECT_EQ(t->status, MasterStatus::kUnverified);
  EXPECT_FALSE(policy.NextDeadline().has_value());
  clock.Advance(std::chrono::hours(1));
  EXPECT_FALSE(policy.OnTick().has_value());
  EXPECT_EQ(policy.current()->action, Action::kRoute);
}

TEST(RoutePolicyTest, BlockPolicyBlocksOnlyAfterGrace) {
  ManualClock clock;
  RoutePolicy policy(Block(milliseconds(500)), clock);
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  auto kept = policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 11));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->action, Action::kRoute);
  EXPECT_EQ(kept->reason, "unverified-in-grace");
  ASSERT_TRUE(policy.NextDeadline().has_value());
  EXPECT_EQ(*policy.NextDeadline(), clock.Now() + milliseconds(500));
  clock.Advance(milliseconds(499));
  EXPECT_FALSE(policy.OnTick().has_value());
  clock.Advance(milliseconds(1));
  auto blocked = policy.OnTick();
  ASSERT_TRUE(blocked.has_value());
  EXPECT_EQ(blocked->action, Action::kBlock);
  EXPECT_EQ(blocked->reason, "unverified-grace-expired");
  EXPECT_EQ(blocked->master.node, "node1");  // names what is blocked
  EXPECT_FALSE(policy.NextDeadline().has_value());
  // Vouched again: routed at once.
  auto back = policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 12));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->action, Action::kRoute);
}

TEST(RoutePolicyTest, VoucherBackWithinGraceCancelsBlock) {
  ManualClock clock;
  RoutePolicy policy(Block(milliseconds(500)), clock);
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 11)).has_value());
  clock.Advance(milliseconds(300));
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 12)).has_value());
  clock.Advance(milliseconds(300));
  EXPECT_FALSE(policy.OnTick().has_value());
  EXPECT_EQ(policy.current()->action, Action::kRoute);
  // A second loss starts a fresh grace period.
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 13)).has_value());
  clock.Advance(milliseconds(400));
  EXPECT_FALSE(policy.OnTick().has_value());
  clock.Advance(milliseconds(100));
  ASSERT_TRUE(policy.OnTick().has_value());
  EXPECT_EQ(policy.current()->action, Action::kBlock);
}

TEST(RoutePolicyTest, DisconnectUsesItsOwnPolicyAndGrace) {
  ManualClock clock;
  PolicyConfig c;
  c.on_unverified = Policy::kKeep;
  c.on_disconnect = Policy::kBlock;
  c.disconnect_grace = milliseconds(1000);
  RoutePolicy policy(c, clock);
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  MasterInfo lost = Info(MasterStatus::kDisconnected, "node1", 5001, 10);
  ASSERT_TRUE(policy.OnState(lost).has_value());
  EXPECT_EQ(policy.current()->reason, "disconnected-in-grace");
  clock.Advance(milliseconds(1000));
  auto blocked = policy.OnTick();
  ASSERT_TRUE(blocked.has_value());
  EXPECT_EQ(blocked->reason, "disconnected-grace-expired");
  // Unverified after reconnecting is `keep`: the last vouched route comes back.
  auto kept = policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 11));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->action, Action::kRoute);
  EXPECT_EQ(kept->reason, "unverified-kept");
}

PolicyConfig Hold(Millis max_hold) {
  PolicyConfig c;
  c.on_unverified = Policy::kHold;
  c.max_hold = max_hold;
  return c;
}

// Issue 17: the verified master is gone (voucher withdrawn): the last route is held at once, so
// that a sink that can hold (pgbouncer) parks new statements; the next vouched master ends it.
TEST(RoutePolicyTest, HoldStartsAtOnceAndTheNextVouchedMasterEndsIt) {
  ManualClock clock;
  RoutePolicy policy(Hold(milliseconds(3000)), clock);
  auto first = policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10, 1));
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->hold);
  auto held = policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 11, 1));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->action, Action::kRoute);
  EXPECT_TRUE(held->hold);
  EXPECT_EQ(held->reason, "unverified-held");
  EXPECT_EQ(held->master.node, "node1");  // the last vouched master, as for a kept route
  ASSERT_TRUE(policy.NextDeadline().has_value());
  EXPECT_EQ(*policy.NextDeadline(), clock.Now() + milliseconds(3000));
  // The record names no master while the orchestrator fails over: still held, nothing new sent.
  clock.Advance(milliseconds(500));
  auto none = policy.OnState(Info(MasterStatus::kNoMaster, "", 0, 12, 1));
  ASSERT_TRUE(none.has_value());  // the status changed
  EXPECT_TRUE(none->hold);
  EXPECT_EQ(none->reason, "no-master-held");
  auto next = policy.OnState(Info(MasterStatus::kVouched, "node2", 5002, 13, 2));
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->hold);
  EXPECT_EQ(next->master.node, "node2");
  EXPECT_EQ(next->reason, "vouched");
  EXPECT_FALSE(policy.NextDeadline().has_value());
}

// A hold is bounded: after max_hold the last route is sent again without hold (clients see what
// the last master answers) and nothing more happens until a state changes.
TEST(RoutePolicyTest, HoldEndsAfterMaxHold) {
  ManualClock clock;
  RoutePolicy policy(Hold(milliseconds(2000)), clock);
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 11)).has_value());
  clock.Advance(milliseconds(1999));
  EXPECT_FALSE(policy.OnTick().has_value());
  clock.Advance(milliseconds(1));
  auto expired = policy.OnTick();
  ASSERT_TRUE(expired.has_value());
  EXPECT_EQ(expired->action, Action::kRoute);
  EXPECT_FALSE(expired->hold);
  EXPECT_EQ(expired->reason, "unverified-hold-expired");
  EXPECT_EQ(expired->master.node, "node1");
  EXPECT_FALSE(policy.NextDeadline().has_value());
  clock.Advance(milliseconds(10000));
  EXPECT_FALSE(policy.OnTick().has_value());
  // Vouched again and lost again: a fresh hold.
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 12)).has_value());
  auto again = policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 13));
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->hold);
}

// No hold on a disconnect from ZooKeeper (the master is most likely still serving), and none
// before anything was vouched (nothing to hold on to).
TEST(RoutePolicyTest, NoHoldOnDisconnectOrBeforeTheFirstVouchedMaster) {
  ManualClock clock;
  RoutePolicy policy(Hold(milliseconds(2000)), clock);
  EXPECT_FALSE(policy.OnState(Info(MasterStatus::kUnverified, "node1", 5001, 9)).has_value());
  ASSERT_TRUE(policy.OnState(Info(MasterStatus::kVouched, "node1", 5001, 10)).has_value());
  auto lost = policy.OnState(Info(MasterStatus::kDisconnected, "node1", 5001, 10));
  ASSERT_TRUE(lost.has_value());
  EXPECT_FALSE(lost->hold);
  EXPECT_EQ(lost->reason, "disconnected-kept");
}

TEST(RoutePolicyTest, BlockFromStartWhenNothingEverVouched) {
  ManualClock clock;
  RoutePolicy policy(Block(milliseconds(200)), clock);
  EXPECT_FALSE(policy.OnState(Info(MasterStatus::kNoMaster, "", 0, 5)).has_value());
  clock.Advance(milliseconds(200));
  auto t = policy.OnTick();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->action, Action::kBlock);
  EXPECT_EQ(t->reason, "no-master-grace-expired");
}

// A sink that records what it applied; it can be told to fail, or to block until released.
class RecordingSink final : public Sink {
 public:
  explicit RecordingSink(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  Status Apply(const RouteTarget& target) override {
    std::unique_lock lock(mu_);
    attempts_.push_back(target.seq);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !hold_; });
    if (fail_remaining_ > 0) {
      --fail_remaining_;
      return Unavailable("injected failure");
    }
    applied_.push_back(target.seq);
    cv_.notify_all();
    return Status::Ok();
  }
  void Hold(bool hold) {
    std::lock_guard lock(mu_);
    hold_ = hold;
    cv_.notify_all();
  }
  void FailNext(int n) {
    std::lock_guard lock(mu_);
    fail_remaining_ = n;
  }
  bool WaitAttempts(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return attempts_.size() >= n; });
  }
  std::vector<std::uint64_t> attempts() {
    std::lock_guard lock(mu_);
    return attempts_;
  }
  std::vector<std::uint64_t> applied() {
    std::lock_guard lock(mu_);
    return applied_;
  }

 private:
  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  int fail_remaining_ = 0;
  std::vector<std::uint64_t> attempts_;
  std::vector<std::uint64_t> applied_;
};

RouteTarget Target(std::uint64_t seq, int port) {
  RouteTarget t;
  t.seq = seq;
  t.master = Info(MasterStatus::kVouched, "n", port, static_cast<std::int64_t>(seq));
  return t;
}

TEST(SinkWorkerTest, LatestStateWinsWhileBusy) {
  auto sink = std::make_unique<RecordingSink>("rec");
  RecordingSink* rec = sink.get();
  SinkWorker worker("main", std::move(sink), {milliseconds(1), milliseconds(10)});
  rec->Hold(true);
  worker.Submit(Target(1, 5001));
  ASSERT_TRUE(rec->WaitAttempts(1));
  // While 1 is being applied, 2, 3 and 4 arrive: only 4 must follow.
  worker.Submit(Target(2, 5002));
  worker.Submit(Target(3, 5003));
  worker.Submit(Target(4, 5004));
  rec->Hold(false);
  ASSERT_TRUE(worker.WaitApplied(4, milliseconds(5000)));
  EXPECT_EQ(rec->applied(), (std::vector<std::uint64_t>{1, 4}));
}

TEST(SinkWorkerTest, FailureIsRetriedWithBackoffAndReported) {
  auto sink = std::make_unique<RecordingSink>("rec");
  RecordingSink* rec = sink.get();
  rec->FailNext(3);
  SinkWorker worker("main", std::move(sink), {milliseconds(5), milliseconds(20)});
  worker.Submit(Target(7, 5001));
  ASSERT_TRUE(worker.WaitApplied(7, milliseconds(5000)));
  EXPECT_EQ(rec->attempts(), (std::vector<std::uint64_t>{7, 7, 7, 7}));
  SinkReport r = worker.report();
  EXPECT_EQ(r.total_failures, 3u);
  EXPECT_EQ(r.consecutive_failures, 0);
  EXPECT_TRUE(r.last_error.empty());
}

TEST(SinkWorkerTest, NewerTargetReplacesOneInBackoff) {
  auto sink = std::make_unique<RecordingSink>("rec");
  RecordingSink* rec = sink.get();
  rec->FailNext(1);
  // A long backoff: the newer target must not wait for it.
  SinkWorker worker("main", std::move(sink), {milliseconds(60000), milliseconds(60000)});
  worker.Submit(Target(1, 5001));
  ASSERT_TRUE(rec->WaitAttempts(1));
  // Wait until the failure is recorded, then submit the newer one.
  for (int i = 0; i < 500 && worker.report().consecutive_failures == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(2));  // poll for the report, bounded
  }
  ASSERT_EQ(worker.report().consecutive_failures, 1);
  EXPECT_NE(worker.report().last_error.find("injected failure"), std::string::npos);
  worker.Submit(Target(2, 5002));
  ASSERT_TRUE(worker.WaitApplied(2, milliseconds(5000)));
  EXPECT_EQ(rec->applied(), (std::vector<std::uint64_t>{2}));
}

// The master record is untrusted: a target whose host would add commands or lines never reaches a
// sink, is reported, and is not retried; the next valid one goes through.
TEST(SinkWorkerTest, InvalidTargetIsRefusedOnceWithoutReachingTheSink) {
  auto sink = std::make_unique<RecordingSink>("rec");
  RecordingSink* rec = sink.get();
  SinkWorker worker("main", std::move(sink), {milliseconds(1), milliseconds(1)});
  RouteTarget hostile = Target(1, 5001);
  hostile.master.host = "127.0.0.1;shutdown frontend pg_write";
  worker.Submit(hostile);
  for (int i = 0; i < 2500 && worker.report().total_failures == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(2));  // poll for the report, bounded
  }
  SinkReport r = worker.report();
  ASSERT_EQ(r.total_failures, 1u);
  EXPECT_NE(r.last_error.find("master record refused"), std::string::npos) << r.last_error;
  EXPECT_NE(r.last_error.find("host \"127.0.0.1;shutdown frontend pg_write\""), std::string::npos);
  worker.Submit(Target(2, 5002));
  ASSERT_TRUE(worker.WaitApplied(2, milliseconds(5000)));
  EXPECT_EQ(rec->attempts(), (std::vector<std::uint64_t>{2}));  // 1 never reached it, nor retried
  EXPECT_EQ(worker.report().total_failures, 1u);
}

// Blocking must survive a bad record: the block goes through, without the master's fields.
TEST(SinkWorkerTest, BlockWithAnInvalidMasterIsAppliedWithoutIt) {
  auto sink = std::make_unique<RecordingSink>("rec");
  RecordingSink* rec = sink.get();
  SinkWorker worker("main", std::move(sink), {milliseconds(1), milliseconds(1)});
  RouteTarget block = Target(1, 5001);
  block.action = Action::kBlock;
  block.master.node = "n\nprogram x";
  worker.Submit(block);
  ASSERT_TRUE(worker.WaitApplied(1, milliseconds(5000)));
  EXPECT_EQ(rec->applied(), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(worker.report().total_failures, 0u);
}

TEST(ClusterControllerTest, OneStuckSinkDoesNotHoldUpAnother) {
  ManualClock clock;
  auto stuck = std::make_unique<RecordingSink>("stuck");
  auto fine = std::make_unique<RecordingSink>("fine");
  RecordingSink* stuck_ptr = stuck.get();
  RecordingSink* fine_ptr = fine.get();
  stuck_ptr->Hold(true);
  std::vector<std::unique_ptr<SinkWorker>> workers;
  workers.push_back(std::make_unique<SinkWorker>("main", std::move(stuck), RetryConfig{}));
  workers.push_back(std::make_unique<SinkWorker>("main", std::move(fine), RetryConfig{}));
  ClusterController controller("main", Block(milliseconds(100)), clock, std::move(workers));
  controller.HandleState(Info(MasterStatus::kVouched, "node1", 5001, 10));
  ASSERT_TRUE(controller.workers()[1]->WaitApplied(1, milliseconds(5000)));
  // The stuck sink is inside its first Apply before anything else happens (on a busy machine its
  // thread may not have started yet, and then it would rightly skip straight to the latest).
  ASSERT_TRUE(stuck_ptr->WaitAttempts(1));
  controller.HandleState(Info(MasterStatus::kUnverified, "node1", 5001, 11));
  clock.Advance(milliseconds(100));
  controller.HandleTick();
  ASSERT_EQ(controller.current()->action, Action::kBlock);
  ASSERT_TRUE(controller.workers()[1]->WaitApplied(controller.current()->seq, milliseconds(5000)));
  // Latest state wins: the in-grace route (seq 2) may be superseded before the worker sees it,
  // but the first route and the block both land while the other sink is stuck.
  ASSERT_GE(fine_ptr->applied().size(), 2u);
  EXPECT_EQ(fine_ptr->applied().front(), 1u);
  EXPECT_EQ(fine_ptr->applied().back(), 3u);
  EXPECT_TRUE(stuck_ptr->applied().empty());
  stuck_ptr->Hold(false);
  ASSERT_TRUE(controller.workers()[0]->WaitApplied(controller.current()->seq, milliseconds(5000)));
  // The stuck sink skipped the intermediate state: first target, then the latest.
  EXPECT_EQ(stuck_ptr->applied(), (std::vector<std::uint64_t>{1, 3}));
}

// `pgherald watch`'s master source (the client library's MasterWatch) applies the library's rules
// (consumer_rules.h): only a bound voucher vouches; forged, legacy-vouched, corrupt and deleted
// records are unverified with the last VERIFIED master; after a reconnect, unverified until the
// voucher is re-affirmed.
TEST(LibraryMasterSourceTest, AppliesTheLibrarysConsumerRules) {
  auto server = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> writer = server->NewSession();
  const std::string path = kMain.Master();
  ASSERT_TRUE(zk::EnsurePath(*writer, kMain.Cluster()).ok());
  auto record = [](const std::string& node, int port, std::uint64_t epoch) {
    model::MasterRecord r;
    r.state = model::MasterState::kOk;
    r.node = node;
    r.host = "127.0.0.1";
    r.port = port;
    r.timeline = 1;
    r.epoch = epoch;
    r.decided_by = "orch1";
    return r;
  };
  ASSERT_TRUE(testing::PublishBound(*writer, path, record("node1", 5001, 1), "orch1", true).ok());

  std::mutex mu;
  std::condition_variable cv;
  std::vector<MasterInfo> seen;
  zk::FakeZk* live = nullptr;
  LibraryMasterSource source("/ph", "main", [&]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    std::unique_ptr<zk::FakeZk> session = server->NewSession();
    std::lock_guard lock(mu);
    live = session.get();
    return std::unique_ptr<zk::ZkSession>(std::move(session));
  });
  source.Start([&](const MasterInfo& info) {
    std::lock_guard lock(mu);
    seen.push_back(info);
    cv.notify_all();
  });
  auto await = [&](const std::function<bool(const MasterInfo&)>& pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10),
                       [&] { return !seen.empty() && pred(seen.back()); });
  };
  auto last = [&] {
    std::lock_guard lock(mu);
    return seen.back();
  };
  auto mzxid = [&] { return server->Peek(path)->stat.mzxid; };
  ASSERT_TRUE(await([](const MasterInfo& i) {
    return i.status == MasterStatus::kVouched && i.node == "node1" && i.vouchers == 1;
  }));

  // Forged: another record beside node1's voucher and a legacy one.
  ASSERT_TRUE(writer->Create(path + "/orch1", "", zk::CreateMode::kEphemeral).ok());
  ASSERT_TRUE(writer->Set(path, record("node9", 5009, 99).ToJson()).ok());
  ASSERT_TRUE(await([&](const MasterInfo& i) {
    return i.status == MasterStatus::kUnverified && i.mzxid == mzxid();
  }));
  EXPECT_EQ(last().node, "node1");
  EXPECT_EQ(last().port, 5001);
  EXPECT_EQ(last().vouchers, 0);
  // Corrupt.
  ASSERT_TRUE(writer->Set(path, "{not json").ok());
  ASSERT_TRUE(await([&](const MasterInfo& i) {
    return i.status == MasterStatus::kUnverified && i.mzxid == mzxid();
  }));
  EXPECT_EQ(last().node, "node1");
  // The leader's publish: vouched at once.
  ASSERT_TRUE(testing::PublishBound(*writer, path, record("node2", 5002, 100), "orch1").ok());
  ASSERT_TRUE(await([](const MasterInfo& i) {
    return i.status == MasterStatus::kVouched && i.node == "node2";
  }));
  // Interrupted: unverified (node2 kept) until the voucher is re-affirmed.
  zk::FakeZk* session = nullptr;
  {
    std::lock_guard lock(mu);
    session = live;
  }
  session->Disconnect();
  ASSERT_TRUE(await([](const MasterInfo& i) { return i.status == MasterStatus::kDisconnected; }));
  session->Reconnect();
  ASSERT_TRUE(await([](const MasterInfo& i) {
    return i.status == MasterStatus::kUnverified && i.vouchers == 1;
  }));
  EXPECT_EQ(last().node, "node2");
  auto children = writer->GetChildren(path);
  ASSERT_TRUE(children.ok() && children->size() == 1u);
  ASSERT_TRUE(writer->Set(path + "/" + children->front(), "{}").ok());  // re-affirmation
  ASSERT_TRUE(await([](const MasterInfo& i) {
    return i.status == MasterStatus::kVouched && i.node == "node2";
  }));
  // Deleted master znode: unverified, node2 kept.
  ASSERT_TRUE(writer->Delete(path + "/" + children->front()).ok());
  ASSERT_TRUE(writer->Delete(path).ok());
  ASSERT_TRUE(await([](const MasterInfo& i) { return i.status == MasterStatus::kUnverified; }));
  EXPECT_EQ(last().node, "node2");
  source.Stop();
  std::lock_guard lock(mu);
  for (const MasterInfo& i : seen) EXPECT_NE(i.node, "node9");
}

// SIGHUP: the new sinks are given the current target at once; the old ones stop.
TEST(ClusterControllerTest, ReplacedSinksApplyTheCurrentRouteAtOnce) {
  ManualClock clock;
  auto first = std::make_unique<RecordingSink>("first");
  RecordingSink* first_ptr = first.get();
  std::vector<std::unique_ptr<SinkWorker>> workers;
  workers.push_back(std::make_unique<SinkWorker>("main", std::move(first), RetryConfig{}));
  ClusterController controller("main", Block(milliseconds(100)), clock, std::move(workers));
  controller.HandleState(Info(MasterStatus::kVouched, "node1", 5001, 10));
  ASSERT_TRUE(controller.workers()[0]->WaitApplied(1, milliseconds(5000)));
  EXPECT_EQ(first_ptr->applied(), (std::vector<std::uint64_t>{1}));

  auto second = std::make_unique<RecordingSink>("second");
  RecordingSink* second_ptr = second.get();
  std::vector<std::unique_ptr<SinkWorker>> replacement;
  replacement.push_back(std::make_unique<SinkWorker>("main", std::move(second), RetryConfig{}));
  controller.ReplaceWorkers(std::move(replacement));
  ASSERT_TRUE(controller.workers()[0]->WaitApplied(1, milliseconds(5000)));
  EXPECT_EQ(second_ptr->applied(), (std::vector<std::uint64_t>{1}));
  const ClusterController::Snapshot snap = controller.snapshot();
  ASSERT_EQ(snap.sinks.size(), 1u);
  EXPECT_EQ(snap.sinks[0].first, "second");
  EXPECT_EQ(snap.route_changes, 1u);  // a reload is not a route change
}

TEST(WatchMetricsTest, NamesRouteStateAndSinkFailures) {
  ManualClock clock;
  auto sink = std::make_unique<RecordingSink>("haproxy:pg");
  RecordingSink* rec = sink.get();
  rec->FailNext(1);
  std::vector<std::unique_ptr<SinkWorker>> workers;
  workers.push_back(
      std::make_unique<SinkWorker>("main", std::move(sink), RetryConfig{milliseconds(1), milliseconds(1)}));
  ClusterController controller("main", Block(milliseconds(100)), clock, std::move(workers));
  controller.HandleState(Info(MasterStatus::kVouched, "node1", 5001, 10));
  ASSERT_TRUE(controller.workers()[0]->WaitApplied(1, milliseconds(5000)));
  const std::string text = RenderWatchMetrics({{"main", controller.snapshot()}});
  for (const char* line : {
           "pgherald_watch_route_changes_total{cluster=\"main\"} 1\n",
           "pgherald_watch_route{cluster=\"main\",action=\"route\",node=\"node1\"} 1\n",
           "pgherald_watch_master_status{cluster=\"main\",status=\"vouched\"} 1\n",
           "pgherald_watch_master_status{cluster=\"main\",status=\"disconnected\"} 0\n",
           "pgherald_watch_zookeeper_connected{cluster=\"main\"} 1\n",
           "pgherald_watch_sink_apply_seconds_count{cluster=\"main\",sink=\"haproxy:pg\"} 2\n",
           "pgherald_watch_sink_applied_total{cluster=\"main\",sink=\"haproxy:pg\"} 1\n",
           "pgherald_watch_sink_failures_total{cluster=\"main\",sink=\"haproxy:pg\"} 1\n",
           "pgherald_watch_sink_consecutive_failures{cluster=\"main\",sink=\"haproxy:pg\"} 0\n",
           "# TYPE pgherald_watch_sink_apply_seconds histogram\n",
           "# TYPE pgherald_build_info gauge\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  EXPECT_GT(controller.snapshot().sinks[0].second.last_error_at_ms, 0);
  EXPECT_EQ(text.find("pgherald_watch_sink_last_error_timestamp_seconds{cluster=\"main\",sink=\"haproxy:pg\"} 0\n"),
            std::string::npos);
}

}  // namespace
}  // namespace pgherald::watch
