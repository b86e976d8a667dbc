// `pgherald switchover`: the pure coordinator (clients/switchover/coordinator.h) over every path of
// docs/switchover.md (happy path, each failure rule, timeouts, max-hold before stop, promote
// failed with `to` writable or not, failures after publish), the checks, and the ZooKeeper shell
// (switchover_command.h) on FakeZk with simulated pollers and orchestrator.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "clients/switchover/coordinator.h"
#include "clients/switchover/switchover_command.h"
#include "common/model/voucher.h"
#include "common/model/zk_paths.h"
#include "publishers/view/cluster_view.h"
#include "tests/support/fake_zk.h"

namespace pgherald::switchover {
namespace {

using model::MasterRecord;
using model::NodeObservation;
using model::SwitchoverAck;
using model::SwitchoverPhase;
using model::SwitchoverRecord;
using model::SwitchoverStepState;
using P = SwitchoverPhase;
using S = SwitchoverStepState;
using K = CoordinatorStep::Kind;

constexpr std::int64_t kStart = 1'000'000;

NodeObservation Obs(const std::string& name, int id, bool primary) {
  NodeObservation o;
  o.node = name;
  o.node_id = id;
  o.host = "127.0.0.1";
  o.port = 5430 + id;
  o.reachable = true;
  o.in_recovery = !primary;
  o.timeline = 1;
  o.system_identifier = "7000000000000000001";
  if (primary) {
    o.current_lsn = 0x3000100;
  } else {
    o.receive_lsn = 0x3000000;
    o.replay_lsn = 0x3000000;
    o.upstream_node = "n1";
  }
  o.repmgrd_running = true;
  o.seq = 1;
  o.observed_at_ms = kStart;
  return o;
}

MasterRecord Master(const std::string& node, std::uint64_t epoch) {
  MasterRecord m;
  m.state = model::MasterState::kOk;
  m.node = node;
  m.host = "127.0.0.1";
  m.port = node == "n1" ? 5431 : 5432;
  m.timeline = 1;
  m.lsn = 0x3000000;
  m.epoch = epoch;
  m.verified_at_ms = kStart;
  return m;
}

// A cluster n1 (primary) -> n2 (target), n3 (sibling), mid-switchover.
struct World {
  CoordinatorInput in;
  CoordinatorOptions options;

  World() {
    SwitchoverRecord& r = in.record;
    r.id = "sw-1-abcdef01";
    r.from = "n1";
    r.to = "n2";
    r.siblings = {"n3"};
    r.phase = P::kPrepare;
    r.base_epoch = 5;
    r.max_hold_ms = 2000;
    r.started_at_ms = kStart;
    r.phase_at_ms = kStart;
    r.deadline_at_ms = kStart + 120000;
    r.version = 0;
    in.nodes = {{"n1", Obs("n1", 1, true)}, {"n2", Obs("n2", 2, false)},
                {"n3", Obs("n3", 3, false)}};
    in.master = Master("n1", 5);
    in.master_bound = true;
    in.now_ms = kStart;
  }
  void Ack(const std::string& node, S state, std::optional<model::Lsn> lsn = std::nullopt,
           const std::string& error = "") {
    SwitchoverAck a;
    a.id = in.record.id;
    a.phase = in.record.phase;
    a.state = state;
    a.lsn = lsn;
    a.error = error;
    a.at_ms = in.now_ms;
    in.nodes[node].switchover = a;
  }
  void At(P phase, std::int64_t after_ms = 0) {
    in.record.phase = phase;
    in.record.phase_at_ms = kStart + 10;
    in.now_ms = kStart + 10 + after_ms;
  }
  CoordinatorStep Step() const { return Advance(in, options); }
  // Steps, applying a write to the record; returns the step.
  CoordinatorStep Apply() {
    CoordinatorStep s = Step();
    if (s.kind == K::kWrite) in.record = s.record;
    return s;
  }
};

void ExpectWrite(const CoordinatorStep& s, P phase) {
  ASSERT_EQ(s.kind, K::kWrite) << StepKindName(s.kind);
  EXPECT_EQ(s.record.phase, phase) << model::SwitchoverPhaseName(s.record.phase) << " error="
                                   << s.record.error;
}

TEST(SwitchoverCoordinator, HappyPathWalksEveryPhaseToDone) {
  World w;
  EXPECT_EQ(w.Step().kind, K::kWait);  // nobody acked yet
  w.Ack("n1", S::kDone);
  w.Ack("n2", S::kRunning);
  w.Ack("n3", S::kDone);
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.Ack("n2", S::kDone);
  w.in.now_ms += 50;
  ExpectWrite(w.Apply(), P::kHold);
  EXPECT_EQ(w.in.record.phase_at_ms, w.in.now_ms);

  w.in.now_ms += 100;
  auto wait = w.Step();  // the owner has not withdrawn yet
  ASSERT_EQ(wait.kind, K::kWait);
  EXPECT_EQ(wait.wake_at_ms, w.in.record.phase_at_ms + 2000 + 1);
  w.in.master_bound = false;
  ExpectWrite(w.Apply(), P::kStop);

  w.Ack("n1", S::kRunning);  // a stale prepare ack is replaced by the stop ack
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.in.nodes["n1"].reachable = false;
  w.Ack("n1", S::kDone, 0x3000200);
  ExpectWrite(w.Apply(), P::kPromote);
  EXPECT_EQ(w.in.record.stop_lsn, std::optional<model::Lsn>(0x3000200));

  w.Ack("n2", S::kDone, 0x3000200);
  ExpectWrite(w.Apply(), P::kPublish);

  EXPECT_EQ(w.Step().kind, K::kWait);  // still the old record, unbound
  w.in.master = Master("n2", 6);
  EXPECT_EQ(w.Step().kind, K::kWait);  // published but not yet vouched
  w.in.master_bound = true;
  ExpectWrite(w.Apply(), P::kRejoin);

  w.Ack("n1", S::kDone);
  EXPECT_EQ(w.Step().kind, K::kWait);  // n3 has not followed yet
  w.Ack("n3", S::kDone);
  ExpectWrite(w.Apply(), P::kUnpause);
  EXPECT_EQ(w.in.record.error, "");

  w.Ack("n2", S::kDone);
  ExpectWrite(w.Apply(), P::kDone);
  auto fin = w.Step();
  ASSERT_EQ(fin.kind, K::kFinished);
  EXPECT_EQ(fin.exit_code, kExitDone);
}

TEST(SwitchoverCoordinator, AcksOfAnotherIdOrPhaseDoNotCount) {
  World w;
  w.Ack("n1", S::kDone);
  w.Ack("n2", S::kDone);
  w.Ack("n3", S::kDone);
  w.in.nodes["n3"].switchover->id = "sw-0-00000000";  // an earlier switchover's ack
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.in.nodes["n3"].switchover->id = w.in.record.id;
  w.in.nodes["n3"].switchover->phase = P::kUnpause;  // another phase
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.in.nodes["n3"].switchover->phase = P::kPrepare;
  ExpectWrite(w.Step(), P::kHold);
}

TEST(SwitchoverCoordinator, PrepareFailureUnpausesWhenTheTargetPaused) {
  World w;
  w.Ack("n1", S::kDone);
  w.Ack("n2", S::kDone);
  w.Ack("n3", S::kFailed, std::nullopt, "switchover is not enabled");
  auto s = w.Apply();
  ExpectWrite(s, P::kUnpause);
  EXPECT_NE(s.record.error.find("prepare on n3 failed: switchover is not enabled"),
            std::string::npos);
  w.At(P::kUnpause);
  w.Ack("n2", S::kDone);
  ExpectWrite(w.Apply(), P::kAborted);  // the master is still n1: aborted, error kept
  EXPECT_NE(w.in.record.error.find("n3"), std::string::npos);
  auto fin = w.Step();
  ASSERT_EQ(fin.kind, K::kFinished);
  EXPECT_EQ(fin.exit_code, kExitFailed);
}

TEST(SwitchoverCoordinator, PrepareFailureOfTheTargetAbortsAtOnce) {
  World w;
  w.Ack("n2", S::kFailed, std::nullopt, "repmgr service pause failed");
  ExpectWrite(w.Step(), P::kAborted);
}

TEST(SwitchoverCoordinator, PrepareFailureWaitsForARunningTargetThenUnpausesAtTimeout) {
  World w;
  w.Ack("n3", S::kFailed, std::nullopt, "not a standby");
  w.Ack("n2", S::kRunning);
  auto s = w.Step();
  ASSERT_EQ(s.kind, K::kWait);  // n2 may be pausing repmgrd right now
  EXPECT_EQ(s.wake_at_ms, kStart + 60000);
  w.in.now_ms = kStart + 60000;
  ExpectWrite(w.Step(), P::kUnpause);
}

TEST(SwitchoverCoordinator, PrepareTimeoutWithoutAcksAborts) {
  World w;
  w.in.now_ms = kStart + 59999;
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.in.now_ms = kStart + 60000;
  auto s = w.Step();
  ExpectWrite(s, P::kAborted);
  EXPECT_NE(s.record.error.find("prepare on n1 timed out (no acknowledgement"), std::string::npos);
}

TEST(SwitchoverCoordinator, MasterChangingDuringPrepareOrHoldEndsIt) {
  World w;
  w.Ack("n2", S::kDone);
  w.in.master = Master("n3", 6);  // a failover meanwhile
  ExpectWrite(w.Step(), P::kUnpause);
  w.At(P::kHold);
  ExpectWrite(w.Step(), P::kUnpause);
}

TEST(SwitchoverCoordinator, HoldBeyondMaxHoldBeforeStopUnpauses) {
  World w;
  w.At(P::kHold, 2000);
  EXPECT_EQ(w.Step().kind, K::kWait);  // exactly max_hold: still waiting
  w.At(P::kHold, 2001);
  auto s = w.Step();
  ExpectWrite(s, P::kUnpause);
  EXPECT_NE(s.record.error.find("--max-hold-ms 2000"), std::string::npos);
  w.in.master_bound = false;  // withdrawn, but too late: still no stop
  ExpectWrite(w.Step(), P::kUnpause);
}

TEST(SwitchoverCoordinator, VoucherNotWithdrawnWithinWithdrawTimeoutUnpauses) {
  World w;
  w.in.record.max_hold_ms = 30000;
  w.At(P::kHold, 5000);
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.At(P::kHold, 5001);
  auto s = w.Step();
  ExpectWrite(s, P::kUnpause);
  EXPECT_NE(s.record.error.find("did not withdraw its voucher"), std::string::npos);
}

TEST(SwitchoverCoordinator, StopFailureWithFromWritableUnpauses) {
  World w;
  w.At(P::kStop);
  w.Ack("n1", S::kFailed, std::nullopt, "repmgr exited 1");
  auto s = w.Apply();
  ExpectWrite(s, P::kUnpause);
  EXPECT_NE(s.record.error.find("still answers writable"), std::string::npos);
  w.At(P::kUnpause);
  w.Ack("n2", S::kDone);
  ExpectWrite(w.Step(), P::kAborted);
}

TEST(SwitchoverCoordinator, StopFailureWithFromDownRollsBackThenAborts) {
  World w;
  w.At(P::kStop);
  w.in.nodes["n1"].reachable = false;
  w.Ack("n1", S::kFailed, std::nullopt, "not shut down cleanly");
  ExpectWrite(w.Apply(), P::kRollback);
  w.At(P::kRollback);
  w.Ack("n1", S::kDone);
  ExpectWrite(w.Apply(), P::kUnpause);
  w.At(P::kUnpause);
  w.Ack("n2", S::kDone);
  auto s = w.Apply();
  ExpectWrite(s, P::kAborted);
  EXPECT_NE(s.record.error.find("not shut down cleanly"), std::string::npos);
}

TEST(SwitchoverCoordinator, StopTimeoutJudgesByWhetherFromIsWritable) {
  World w;
  w.At(P::kStop, 60000);
  ExpectWrite(w.Step(), P::kUnpause);
  w.in.nodes.erase("n1");  // its poller is gone too: we cannot tell; roll back
  ExpectWrite(w.Step(), P::kRollback);
}

TEST(SwitchoverCoordinator, StopDoneWithoutLsnIsAFailure) {
  World w;
  w.At(P::kStop);
  w.in.nodes["n1"].reachable = false;
  w.Ack("n1", S::kDone);
  auto s = w.Step();
  ExpectWrite(s, P::kRollback);
  EXPECT_NE(s.record.error.find("without its checkpoint LSN"), std::string::npos);
}

TEST(SwitchoverCoordinator, PromoteFailedButTargetWritableGoesOnToPublish) {
  World w;
  w.At(P::kPromote);
  w.in.nodes["n2"].in_recovery = false;
  w.Ack("n2", S::kFailed, std::nullopt, "CHECKPOINT failed");
  ExpectWrite(w.Step(), P::kPublish);
}

TEST(SwitchoverCoordinator, PromoteFailedTargetNotWritableRollsBack) {
  World w;
  w.At(P::kPromote);
  w.in.nodes["n1"].reachable = false;
  w.Ack("n2", S::kFailed, std::nullopt, "stop LSN never received");
  auto s = w.Apply();
  ExpectWrite(s, P::kRollback);
  EXPECT_NE(s.record.error.find("n2 is not writable"), std::string::npos);
  w.At(P::kRollback);
  w.Ack("n1", S::kFailed, std::nullopt, "pg_ctl start failed");
  auto f = w.Apply();
  ExpectWrite(f, P::kFailed);
  EXPECT_NE(f.record.error.find("rollback on n1 failed: pg_ctl start failed"), std::string::npos);
  EXPECT_EQ(w.Step().exit_code, kExitFailed);
}

// A promote still running at the timeout may yet complete: starting the old primary then could
// make two primaries, so the switchover stops (failed) instead of rolling back.
TEST(SwitchoverCoordinator, PromoteTimeoutWhileStillRunningFailsWithoutRollback) {
  World w;
  w.At(P::kPromote, 59999);
  w.Ack("n2", S::kRunning);
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.At(P::kPromote, 60000);
  auto s = w.Step();
  ExpectWrite(s, P::kFailed);
  EXPECT_NE(s.record.error.find("no rollback while a promotion may still complete"),
            std::string::npos)
      << s.record.error;
}

TEST(SwitchoverCoordinator, PublishNotReachedFails) {
  World w;
  w.At(P::kPublish, 59999);
  w.in.master_bound = false;
  EXPECT_EQ(w.Step().kind, K::kWait);
  w.At(P::kPublish, 60000);
  auto s = w.Step();
  ExpectWrite(s, P::kFailed);
  EXPECT_NE(s.record.error.find("did not publish n2"), std::string::npos);
  // A record naming `to` at the base epoch (not a new publish) does not count either.
  w.At(P::kPublish, 10);
  w.in.master = Master("n2", 5);
  w.in.master_bound = true;
  EXPECT_EQ(w.Step().kind, K::kWait);
}

TEST(SwitchoverCoordinator, RejoinFailureAfterPublishUnpausesThenFailsWithExit2) {
  World w;
  w.At(P::kRejoin);
  w.in.master = Master("n2", 6);
  w.Ack("n1", S::kDone);
  w.Ack("n3", S::kFailed, std::nullopt, "standby follow exited 1");
  auto s = w.Apply();
  ExpectWrite(s, P::kUnpause);
  EXPECT_NE(s.record.error.find("rejoin on n3 failed: standby follow exited 1"),
            std::string::npos);
  w.At(P::kUnpause);
  w.Ack("n2", S::kDone);
  auto f = w.Apply();
  ExpectWrite(f, P::kFailed);  // the new master stands
  EXPECT_NE(f.record.error.find("n3"), std::string::npos);
  auto fin = w.Step();
  ASSERT_EQ(fin.kind, K::kFinished);
  EXPECT_EQ(fin.exit_code, kExitFailed);
}

TEST(SwitchoverCoordinator, RejoinTimeoutNamesEachNodeLeft) {
  World w;
  w.At(P::kRejoin, 60000);
  w.in.master = Master("n2", 6);
  w.Ack("n1", S::kRunning);
  auto s = w.Step();
  ExpectWrite(s, P::kUnpause);
  EXPECT_NE(s.record.error.find("rejoin on n1 timed out (still running)"), std::string::npos);
  EXPECT_NE(s.record.error.find("rejoin on n3 timed out (no acknowledgement"), std::string::npos);
}

TEST(SwitchoverCoordinator, UnpauseFailureFails) {
  World w;
  w.At(P::kUnpause);
  w.in.master = Master("n2", 6);
  w.Ack("n2", S::kFailed, std::nullopt, "repmgr exited 1");
  auto s = w.Step();
  ExpectWrite(s, P::kFailed);
  EXPECT_NE(s.record.error.find("repmgrd stays paused"), std::string::npos);
  w.At(P::kUnpause, 60000);
  w.in.nodes["n2"].switchover.reset();
  ExpectWrite(w.Step(), P::kFailed);
}

TEST(SwitchoverCoordinator, PastTheDeadlineFailsAndTerminalRecordsFinish) {
  World w;
  w.At(P::kPromote);
  w.in.now_ms = w.in.record.deadline_at_ms + 1;
  auto s = w.Step();
  ExpectWrite(s, P::kFailed);
  EXPECT_NE(s.record.error.find("deadline passed in phase promote"), std::string::npos);
  // A step wait never sleeps past the deadline.
  w.in.now_ms = w.in.record.deadline_at_ms - 10;
  w.in.record.phase_at_ms = w.in.record.deadline_at_ms - 20;
  EXPECT_LE(w.Step().wake_at_ms, w.in.record.deadline_at_ms + 1);
  for (P p : {P::kDone, P::kAborted, P::kFailed}) {
    w.in.record.phase = p;
    auto fin = w.Step();
    ASSERT_EQ(fin.kind, K::kFinished);
    EXPECT_EQ(fin.exit_code, p == P::kDone ? kExitDone : kExitFailed);
  }
}

// ---- the checks ----

ClusterSnapshot Healthy() {
  World w;
  ClusterSnapshot s;
  s.master = w.in.master;
  s.master_bound = true;
  s.nodes = w.in.nodes;
  for (auto& kv : s.nodes) kv.second.switchover.reset();
  s.nodes["n3"].receive_lsn = 0x3000080;  // n3 is closer than n2
  for (int id = 1; id <= 3; ++id) {
    model::RepmgrNode rn;
    rn.node_id = id;
    rn.name = "n" + std::to_string(id);
    rn.type = id == 1 ? "primary" : "standby";
    rn.active = true;
    s.nodes["n1"].repmgr_nodes.push_back(rn);
  }
  return s;
}

std::string Failures(const Preflight& p) {
  std::string out;
  for (const CheckLine& c : p.checks) {
    if (!c.ok) out += c.subject + ": " + c.text + "\n";
  }
  return out;
}

TEST(SwitchoverPreflight, HealthyClusterPicksTheSmallestLag) {
  Preflight p = RunPreflight(Healthy(), {}, kStart);
  EXPECT_TRUE(p.ok()) << Failures(p);
  EXPECT_EQ(p.from, "n1");
  EXPECT_EQ(p.to, "n3");
  EXPECT_EQ(p.siblings, std::vector<std::string>{"n2"});
  EXPECT_EQ(p.base_epoch, 5u);
  EXPECT_EQ(p.lag_bytes, std::optional<std::uint64_t>(0x80));
  PreflightOptions to_n2;
  to_n2.to = "n2";
  Preflight q = RunPreflight(Healthy(), to_n2, kStart);
  EXPECT_TRUE(q.ok()) << Failures(q);
  EXPECT_EQ(q.to, "n2");
  EXPECT_EQ(q.siblings, std::vector<std::string>{"n3"});
}

TEST(SwitchoverPreflight, EachFailedCheckNamesTheNodeAndTheFix) {
  struct Case {
    const char* name;
    std::function<void(ClusterSnapshot&, PreflightOptions&)> mutate;
    const char* expect;  // in the failures
  };
  const std::vector<Case> cases = {
      {"unverified", [](ClusterSnapshot& s, PreflightOptions&) { s.master_bound = false; },
       "master: the record names n1 but no voucher binds it"},
      {"no master", [](ClusterSnapshot& s, PreflightOptions&) {
         s.master.reset();
         s.master_error = "bad json";
       }, "master: no readable master record (bad json)"},
      {"from gone", [](ClusterSnapshot& s, PreflightOptions&) { s.nodes.erase("n1"); },
       "n1: the master has no live observation"},
      {"from in recovery",
       [](ClusterSnapshot& s, PreflightOptions&) { s.nodes["n1"].in_recovery = true; },
       "n1: the published master is in recovery"},
      {"paused", [](ClusterSnapshot& s, PreflightOptions&) {
         s.control.paused = true;
         s.control.reason = "kernel";
       }, "control: the cluster is paused (kernel): pgherald resume first"},
      {"active", [](ClusterSnapshot& s, PreflightOptions&) {
         SwitchoverRecord r = World().in.record;
         r.phase = P::kStop;
         r.phase_at_ms = kStart - 300;
         s.record = r;
       }, "switchover: switchover sw-1-abcdef01 (n1 -> n2) is in phase stop since 300 ms"},
      {"lag", [](ClusterSnapshot&, PreflightOptions& o) {
         o.to = "n2";
         o.max_lag_bytes = 0x80;
       }, "n2: cannot be the target: lag 256 bytes above --max-lag-bytes 128"},
      {"upstream", [](ClusterSnapshot& s, PreflightOptions& o) {
         o.to = "n2";
         s.nodes["n2"].upstream_node = "n3";
       }, "n2: cannot be the target: it streams from \"n3\", not from n1"},
      {"timeline", [](ClusterSnapshot& s, PreflightOptions& o) {
         o.to = "n2";
         s.nodes["n2"].timeline = 2;
       }, "n2: cannot be the target: timeline 2, the master's is 1"},
      {"target writable", [](ClusterSnapshot& s, PreflightOptions& o) {
         o.to = "n2";
         s.nodes["n2"].in_recovery = false;
       }, "n2: cannot be the target: it is not in recovery"},
      {"unknown target", [](ClusterSnapshot&, PreflightOptions& o) { o.to = "n9"; },
       "n9: no live observation of this node"},
      {"target is master", [](ClusterSnapshot&, PreflightOptions& o) { o.to = "n1"; },
       "n1: it is the master already"},
      {"no fit standby", [](ClusterSnapshot& s, PreflightOptions&) {
         s.nodes["n2"].reachable = false;
         s.nodes["n3"].upstream_node = "n2";
       }, "target: no standby fit to be promoted; n2: its poller cannot reach PostgreSQL"},
      {"repmgrd", [](ClusterSnapshot& s, PreflightOptions&) {
         s.nodes["n3"].repmgrd_running = false;
       }, "n3: repmgrd is not running"},
      {"node without poller", [](ClusterSnapshot& s, PreflightOptions&) {
         model::RepmgrNode rn;
         rn.node_id = 4;
         rn.name = "n4";
         rn.type = "standby";
         rn.active = true;
         s.nodes["n1"].repmgr_nodes.push_back(rn);
       }, "n4: repmgr node_id 4 has no live observation"},
      {"bad node", [](ClusterSnapshot& s, PreflightOptions&) {
         s.bad_nodes.push_back("n5: a persistent znode (no live poller wrote it)");
       }, "nodes: n5: a persistent znode"},
      {"corrupt control", [](ClusterSnapshot& s, PreflightOptions&) {
         s.control_error = "not json";
       }, "control: the control znode does not decode (not json)"},
  };
  for (const Case& c : cases) {
    ClusterSnapshot s = Healthy();
    PreflightOptions o;
    c.mutate(s, o);
    Preflight p = RunPreflight(s, o, kStart);
    EXPECT_FALSE(p.ok()) << c.name;
    EXPECT_NE(Failures(p).find(c.expect), std::string::npos)
        << c.name << ": got\n" << Failures(p);
  }
}

TEST(SwitchoverPreflight, EndedExpiredOrCorruptRecordsDoNotBlock) {
  ClusterSnapshot s = Healthy();
  SwitchoverRecord r = World().in.record;
  s.record = r;
  EXPECT_FALSE(RunPreflight(s, {}, kStart).ok());
  EXPECT_TRUE(RunPreflight(s, {}, r.deadline_at_ms + 1).ok());  // expired
  s.record->phase = P::kFailed;
  EXPECT_TRUE(RunPreflight(s, {}, kStart).ok());
  s.record.reset();
  s.record_error = "not json";
  EXPECT_TRUE(RunPreflight(s, {}, kStart).ok());
}

TEST(SwitchoverPlan, NamesTheActorAndCommandOfEachPhase) {
  auto plan = Plan("n1", "n2", {"n3"});
  ASSERT_EQ(plan.size(), 8u);
  EXPECT_EQ(plan[0].actors, (std::vector<std::string>{"n1", "n2", "n3"}));
  EXPECT_NE(plan[0].action.find("n2: repmgr -f CONF service pause"), std::string::npos);
  EXPECT_EQ(plan[2].phase, P::kStop);
  EXPECT_NE(plan[2].action.find("--action=stop --checkpoint"), std::string::npos);
  EXPECT_EQ(plan[5].actors, (std::vector<std::string>{"n1", "n3"}));
  EXPECT_NE(plan[5].action.find("--force-rewind"), std::string::npos);
  EXPECT_NE(plan[5].action.find("standby follow"), std::string::npos);
  EXPECT_EQ(ActorsOf(World().in.record, P::kHold), std::vector<std::string>{"orchestrator"});
}

// ---- the ZooKeeper shell on FakeZk ----

std::string ReadAll(std::FILE* f) {
  std::string out;
  std::rewind(f);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  return out;
}

// A cluster in FakeZk: n1 primary (verified, epoch 5), n2 and n3 streaming from it; the pollers'
// observations are ephemerals of their own session.
class ShellTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = zk::FakeZkServer::Create();
    admin_ = server_->NewSession();
    pollers_ = server_->NewSession();
    ASSERT_TRUE(zk::EnsurePath(*admin_, paths_.Nodes()).ok());
    ASSERT_TRUE(zk::EnsurePath(*admin_, paths_.Control()).ok());
    Publish(Master("n1", 5));
    for (int id = 1; id <= 3; ++id) {
      NodeObservation o = Obs("n" + std::to_string(id), id, id == 1);
      if (id == 3) o.receive_lsn = 0x2000000;  // n2 is the closer one
      obs_[o.node] = o;
      ASSERT_TRUE(pollers_->Create(paths_.Node(o.node), o.ToJson(), zk::CreateMode::kEphemeral).ok());
    }
    options_.root = "/ph";
    options_.cluster = "main";
    options_.poll_ms = 50;
    options_.requested_by = "test";
    out_ = std::tmpfile();
    err_ = std::tmpfile();
  }
  void TearDown() override {
    std::fclose(out_);
    std::fclose(err_);
  }
  // The orchestrator: writes the record and one bound voucher (the old ones go).
  void Publish(const MasterRecord& m) {
    const std::string bytes = m.ToJson();
    if (server_->Peek(paths_.Master())) {
      for (const std::string& c : server_->PeekChildren(paths_.Master())) {
        ASSERT_TRUE(admin_->Delete(paths_.Voucher(c)).ok());
      }
      ASSERT_TRUE(admin_->Set(paths_.Master(), bytes).ok());
    } else {
      ASSERT_TRUE(admin_->Create(paths_.Master(), bytes, zk::CreateMode::kPersistent).ok());
    }
    const std::string voucher =
        model::VoucherName(m.epoch, model::RecordDigest(bytes), "orch-a");
    ASSERT_TRUE(admin_->Create(paths_.Voucher(voucher), "", zk::CreateMode::kEphemeral).ok());
  }
  void Observe(NodeObservation o) {
    o.seq = ++seq_;
    obs_[o.node] = o;
    ASSERT_TRUE(pollers_->Set(paths_.Node(o.node), o.ToJson()).ok());
  }
  void Ack(const SwitchoverRecord& r, const std::string& node, std::optional<model::Lsn> lsn,
           std::function<void(NodeObservation&)> change = nullptr) {
    NodeObservation o = obs_[node];
    if (o.switchover && o.switchover->id == r.id && o.switchover->phase == r.phase) return;
    if (change) change(o);
    SwitchoverAck a;
    a.id = r.id;
    a.phase = r.phase;
    a.state = S::kDone;
    a.lsn = lsn;
    a.at_ms = 1;
    o.switchover = a;
    Observe(o);
  }
  // The pollers and the owner, acting on each phase as docs/switchover.md says, from watches.
  void Simulate(std::atomic<bool>* stop, P abort_in = P::kDone) {
    auto session = server_->NewSession();
    Wakeup wake;
    while (!stop->load()) {
      auto snap = ReadSnapshot(*session, paths_, &wake);
      if (snap.ok() && snap->record && model::SwitchoverActive(*snap->record, view::WallNowMs())) {
        const SwitchoverRecord& r = *snap->record;
        if (r.phase == abort_in) {
          RunOptions o = options_;
          std::FILE* sink = std::tmpfile();
          EXPECT_EQ(RunAbort(*session, o, sink, sink), kExitDone);
          std::fclose(sink);
        } else {
          Act(r, *snap);
        }
      }
      wake.WaitFor(200);
    }
  }
  void Act(const SwitchoverRecord& r, const ClusterSnapshot& snap) {
    switch (r.phase) {
      case P::kPrepare:
        for (const char* n : {"n1", "n2", "n3"}) Ack(r, n, std::nullopt);
        break;
      case P::kHold:
        for (const std::string& c : server_->PeekChildren(paths_.Master())) {
          (void)admin_->Delete(paths_.Voucher(c));
        }
        break;
      case P::kStop:
        if (expire_in_stop_ != 0) {
          ASSERT_TRUE(server_->ExpireSession(expire_in_stop_).ok());
          expire_in_stop_ = 0;
        }
        Ack(r, "n1", 0x3000200, [](NodeObservation& o) { o.reachable = false; });
        break;
      case P::kPromote:
        Ack(r, "n2", 0x3000200, [](NodeObservation& o) {
          o.in_recovery = false;
          o.current_lsn = 0x3000300;
          o.timeline = 2;
        });
        break;
      case P::kPublish:
        if (!snap.master || snap.master->node != "n2") {
          MasterRecord m = Master("n2", 6);
          m.timeline = 2;
          Publish(m);
        }
        break;
      case P::kRejoin:
        Ack(r, "n1", std::nullopt, [](NodeObservation& o) {
          o.reachable = true;
          o.in_recovery = true;
          o.current_lsn.reset();
          o.receive_lsn = 0x3000300;
          o.upstream_node = "n2";
        });
        Ack(r, "n3", std::nullopt);
        break;
      case P::kUnpause:
        Ack(r, "n2", std::nullopt);
        break;
      default:
        break;
    }
  }

  const model::ClusterPaths paths_{"/ph", "main"};
  std::shared_ptr<zk::FakeZkServer> server_;
  std::unique_ptr<zk::FakeZk> admin_;
  std::unique_ptr<zk::FakeZk> pollers_;
  std::map<std::string, NodeObservation> obs_;
  std::uint64_t seq_ = 1;
  std::int64_t expire_in_stop_ = 0;  // the session the simulation expires when stop begins
  RunOptions options_;
  std::FILE* out_ = nullptr;
  std::FILE* err_ = nullptr;
};

TEST_F(ShellTest, RunsTheWholeSwitchoverThroughWatches) {
  options_.poll_ms = 600000;  // no poll fallback: every step must come from a watch
  std::atomic<bool> stop{false};
  std::thread sim([this, &stop] { Simulate(&stop); });
  const int code = RunSwitchover(*admin_, options_, out_, err_);
  stop = true;
  sim.join();
  const std::string out = ReadAll(out_);
  EXPECT_EQ(code, kExitDone) << out << ReadAll(err_);
  for (const char* line : {"phase=prepare elapsed_ms=0 by=n1,n2,n3", "phase=hold ",
                           "by=orchestrator", "phase=stop ", "phase=promote ", "phase=publish ",
                           "phase=rejoin ", "by=n1,n3", "phase=unpause ", "phase=done ",
                           "result=done from=n1 to=n2 epoch=6 hold_ms="}) {
    EXPECT_NE(out.find(line), std::string::npos) << line << " in\n" << out;
  }
  auto stored = SwitchoverRecord::FromJson(server_->Peek(paths_.Switchover())->data);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->phase, P::kDone);
  EXPECT_EQ(stored->stop_lsn, std::optional<model::Lsn>(0x3000200));
  EXPECT_EQ(stored->to, "n2");
  EXPECT_EQ(stored->siblings, std::vector<std::string>{"n3"});
  EXPECT_EQ(stored->requested_by, "test");
}

// On a tree nobody laid out (no zk-init, never paused) control does not exist: the command
// creates it (not paused) instead of failing to create the record under it.
TEST_F(ShellTest, CreatesControlWhenNobodyLaidItOut) {
  ASSERT_TRUE(admin_->Delete(paths_.Control(), -1).ok());
  std::atomic<bool> stop{false};
  std::thread sim([this, &stop] { Simulate(&stop); });
  const int code = RunSwitchover(*admin_, options_, out_, err_);
  stop = true;
  sim.join();
  EXPECT_EQ(code, kExitDone) << ReadAll(out_) << ReadAll(err_);
  auto control = server_->Peek(paths_.Control());
  ASSERT_TRUE(control.has_value());
  auto parsed = model::ParseControl(control->data);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_FALSE(parsed->paused);
}

TEST_F(ShellTest, JsonSummaryIsOneObject) {
  std::atomic<bool> stop{false};
  std::thread sim([this, &stop] { Simulate(&stop); });
  options_.json = true;
  const int code = RunSwitchover(*admin_, options_, out_, err_);
  stop = true;
  sim.join();
  EXPECT_EQ(code, kExitDone);
  auto j = nlohmann::json::parse(ReadAll(out_));
  EXPECT_EQ(j["result"], "done");
  EXPECT_EQ(j["from"], "n1");
  EXPECT_EQ(j["to"], "n2");
  EXPECT_EQ(j["epoch"], 6);
  EXPECT_GE(j["hold_ms"].get<std::int64_t>(), 0);
  EXPECT_NE(ReadAll(err_).find("phase=done"), std::string::npos);
}

TEST_F(ShellTest, AnOperatorAbortEndsTheRunWithExit2) {
  std::atomic<bool> stop{false};
  std::thread sim([this, &stop] { Simulate(&stop, P::kPrepare); });
  const int code = RunSwitchover(*admin_, options_, out_, err_);
  stop = true;
  sim.join();
  const std::string out = ReadAll(out_);
  EXPECT_EQ(code, kExitFailed) << out;
  EXPECT_NE(out.find("phase=aborted"), std::string::npos) << out;
  EXPECT_NE(out.find("aborted by test in phase prepare"), std::string::npos) << out;
}

TEST_F(ShellTest, GoesOnInANewSessionAfterAnExpiry) {
  options_.poll_ms = 600000;  // the expiry must wake it (its watches are dropped, never fired)
  auto coordinator = server_->NewSession();
  const std::int64_t first_session = coordinator->session_id();
  std::atomic<int> sessions{0};
  options_.reconnect = [this, &sessions]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    ++sessions;
    return std::unique_ptr<zk::ZkSession>(server_->NewSession());
  };
  expire_in_stop_ = first_session;
  std::atomic<bool> stop{false};
  std::thread sim([this, &stop] { Simulate(&stop); });
  const int code = RunSwitchover(*coordinator, options_, out_, err_);
  stop = true;
  sim.join();
  EXPECT_EQ(code, kExitDone) << ReadAll(out_) << ReadAll(err_);
  EXPECT_EQ(sessions.load(), 1);
  EXPECT_NE(ReadAll(err_).find("going on in a new one"), std::string::npos);
}

TEST_F(ShellTest, DryRunAndRefusalsWriteNothing) {
  options_.dry_run = true;
  EXPECT_EQ(RunSwitchover(*admin_, options_, out_, err_), kExitDone);
  std::string out = ReadAll(out_);
  EXPECT_NE(out.find("stop     by=n1: "), std::string::npos) << out;
  EXPECT_NE(out.find("from n1 to n2"), std::string::npos) << out;
  EXPECT_FALSE(server_->Peek(paths_.Switchover()).has_value());

  options_.dry_run = false;
  model::ControlState paused;
  paused.paused = true;
  ASSERT_TRUE(admin_->Set(paths_.Control(), model::ControlToJson(paused)).ok());
  EXPECT_EQ(RunSwitchover(*admin_, options_, out_, err_), kExitRefused);
  EXPECT_NE(ReadAll(out_).find("FAIL control: the cluster is paused"), std::string::npos);
  EXPECT_FALSE(server_->Peek(paths_.Switchover()).has_value());
}

// A flood under nodes/ is not read (the snapshot names it), and the switchover is refused
// before anything is written.
TEST_F(ShellTest, AFloodUnderNodesIsRefusedUnread) {
  for (std::size_t i = 0; i < view::kMaxNodesRead; ++i) {
    ASSERT_TRUE(pollers_->Create(paths_.Node("x" + std::to_string(1000 + i)), "{}",
                                 zk::CreateMode::kEphemeral)
                    .ok());
  }
  auto snap = ReadSnapshot(*admin_, paths_, nullptr);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_TRUE(snap->nodes.empty());
  ASSERT_EQ(snap->bad_nodes.size(), 1u);
  EXPECT_EQ(snap->bad_nodes[0], "nodes/ holds " + std::to_string(view::kMaxNodesRead + 3) +
                                    " znodes, more than " + std::to_string(view::kMaxNodesRead) +
                                    " (none read)");
  EXPECT_EQ(RunSwitchover(*admin_, options_, out_, err_), kExitRefused);
  EXPECT_FALSE(server_->Peek(paths_.Switchover()).has_value());
}

TEST_F(ShellTest, AbortWithoutAnActiveRecordIsRefused) {
  EXPECT_EQ(RunAbort(*admin_, options_, out_, err_), kExitRefused);
  EXPECT_NE(ReadAll(err_).find("no active switchover on cluster main"), std::string::npos);
}

TEST_F(ShellTest, AnEndedRecordIsReplacedByVersion) {
  SwitchoverRecord old = World().in.record;
  old.phase = P::kFailed;
  ASSERT_TRUE(admin_->Create(paths_.Switchover(), old.ToJson(), zk::CreateMode::kPersistent).ok());
  std::atomic<bool> stop{false};
  std::thread sim([this, &stop] { Simulate(&stop); });
  const int code = RunSwitchover(*admin_, options_, out_, err_);
  stop = true;
  sim.join();
  EXPECT_EQ(code, kExitDone) << ReadAll(out_) << ReadAll(err_);
  auto stored = SwitchoverRecord::FromJson(server_->Peek(paths_.Switchover())->data);
  ASSERT_TRUE(stored.ok());
  EXPECT_NE(stored->id, old.id);
}

}  // namespace
}  // namespace pgherald::switchover
