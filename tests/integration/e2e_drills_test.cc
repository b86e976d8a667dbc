// The end-to-end drills on the real stack (docs/drills.md): the lab, a poller per node, two
// orchestrators and `pgherald watch` driving HAProxy and pgbouncer, with clients writing through
// both proxies. Each drill runs once here (the soak, tests/e2e/soak, runs them many times); each
// starts from one primary + two streaming standbys and restores that shape after itself.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "tests/e2e/drills.h"
#include "tests/e2e/stack_environment.h"

namespace pgherald::e2e {
namespace {

[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new StackEnvironment);

void Drill(DrillKind kind, int index) {
  ASSERT_NE(StackEnvironment::stack_, nullptr);
  Stack& s = *StackEnvironment::stack_;
  auto report = RunDrill(s, kind, index);
  // Restored whatever the outcome, so that one failed drill does not fail the ones after it.
  auto restored = RestoreCluster(s);
  ASSERT_TRUE(report.ok()) << DrillName(kind) << ": " << report.status().ToString();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  std::printf("%s\n", report->Summary().c_str());
  const CheckResult& c = report->check;
  EXPECT_TRUE(c.violations.empty()) << report->Summary();
  EXPECT_EQ(c.lost_after_publish, 0);
  EXPECT_EQ(c.acked_by_old_after_publish, 0);
  EXPECT_GT(c.acked_after_publish, 0) << "no acknowledged write to check after the publication";
  if (kind == DrillKind::kFreezeShort) {
    EXPECT_FALSE(report->failover) << "a freeze shorter than repmgrd's window caused a failover";
  } else {
    EXPECT_TRUE(report->failover);
    EXPECT_TRUE(c.new_master_published) << "no history entry published the new master";
  }
}

TEST(E2eDrillsTest, Kill9OfThePrimary) { Drill(DrillKind::kKillPrimary, 1); }

// Issue 17: the watch holds pgbouncer's clients through a kill -9 failover (on_unverified: hold):
// once the hold is applied (the orchestrator withdrew its voucher) no statement sent through
// pgbouncer fails; what is sent between the kill and the hold may (pgbouncer fails the clients it
// cannot give a server: "server conn crashed?"), and statements in flight on the dead master.
// The hold must outlast the failover (repmgrd's detection and promotion: seconds, over 20 s on a
// loaded machine), so pgbouncer's query_wait_timeout goes from the lab's 5 s to 120 s and the
// clients wait up to 100 s per statement here. HAProxy cannot hold: its figures are printed beside.
TEST(E2eDrillsTest, Kill9OfThePrimaryWithPgbouncerHolding) {
  ASSERT_NE(StackEnvironment::stack_, nullptr);
  Stack& s = *StackEnvironment::stack_;
  ASSERT_TRUE(s.SetPgbouncerQueryWaitTimeout(120).ok());
  ASSERT_TRUE(s.SetWatchPolicy("hold", 90000).ok());
  DrillOptions options;
  options.op_timeout = std::chrono::milliseconds(100000);
  auto report = RunDrill(s, DrillKind::kKillPrimary, 9, options);
  // The shared stack goes back to `keep` and 5 s whatever the outcome.
  auto keep = s.SetWatchPolicy("keep");
  auto wait = s.SetPgbouncerQueryWaitTimeout(5);
  auto restored = RestoreCluster(s);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_TRUE(keep.ok()) << keep.ToString();
  ASSERT_TRUE(wait.ok()) << wait.ToString();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  std::printf("%s\n", report->Summary().c_str());
  const CheckResult& c = report->check;
  EXPECT_TRUE(c.violations.empty()) << report->Summary();
  EXPECT_EQ(c.lost_after_publish, 0);
  EXPECT_TRUE(c.new_master_published);
  ASSERT_GE(report->pgbouncer_hold_ms, 0) << "the watch never held pgbouncer:\n"
                                          << s.Tail("watch");
  const ClientImpact& pb = report->pgbouncer_clients;
  EXPECT_EQ(pb.failed_after_hold, 0)
      << "statements sent through pgbouncer during the hold failed: " << pb.first_errors << "\n"
      << s.Tail("watch");
}

// Issue 17, second half (docs/switchover.md): `pgherald switchover` to a standby and back, with
// the watch holding pgbouncer's clients (on_unverified: hold). Each leg must end in `done` (exit 0)
// with the target published, no statement through pgbouncer failing, no write lost and none
// acknowledged by the old master after the publication (checker), the old primary streaming from
// the new one and no repmgrd left paused; the lab ends with its first primary. pgbouncer's
// query_wait_timeout and the watch's max_hold_ms are raised (60 s, 30 s) so that only pgherald's
// own limits can end a hold on a loaded machine; HAProxy cannot hold: its figures are printed.
class SwitchoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(StackEnvironment::stack_, nullptr);
    Stack& s = *StackEnvironment::stack_;
    ASSERT_TRUE(s.SetPgbouncerQueryWaitTimeout(60).ok());
    ASSERT_TRUE(s.SetWatchPolicy("hold", 30000).ok());
    options_.op_timeout = std::chrono::milliseconds(60000);
  }
  // The shared stack goes back to `keep`, 5 s and its known state whatever the outcome.
  void TearDown() override {
    if (StackEnvironment::stack_ == nullptr) return;
    Stack& s = *StackEnvironment::stack_;
    EXPECT_TRUE(s.SetWatchPolicy("keep").ok());
    EXPECT_TRUE(s.SetPgbouncerQueryWaitTimeout(5).ok());
    auto restored = RestoreCluster(s);
    EXPECT_TRUE(restored.ok()) << restored.ToString();
  }
  // The properties every switchover leg must show, whatever its outcome.
  static void ExpectClean(const SwitchoverReport& r) {
    const CheckResult& c = r.drill.check;
    EXPECT_TRUE(c.violations.empty()) << r.Summary();
    EXPECT_EQ(c.lost_after_publish, 0);
    EXPECT_EQ(c.lost_before_promotion, 0) << "a switchover loses no acknowledged write";
    EXPECT_EQ(c.acked_by_old_after_publish, 0);
    const ClientImpact& pb = r.drill.pgbouncer_clients;
    EXPECT_EQ(pb.failed_in_flight + pb.failed_after_fault, 0)
        << "statements through pgbouncer failed: " << pb.first_errors;
    EXPECT_TRUE(r.repmgrd_paused.empty()) << r.Summary();
    EXPECT_TRUE(r.repmgrd_unknown.empty()) << r.Summary();
  }
  DrillOptions options_;
};

TEST_F(SwitchoverTest, ToAStandbyAndBack) {
  Stack& s = *StackEnvironment::stack_;
  auto first = s.AwaitHealthyCluster(std::chrono::milliseconds(60000));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const int other = *first % 3 + 1;
  for (const int to : {other, *first}) {
    auto r = RunSwitchover(s, to, /*expect_done=*/true, to == other ? 10 : 11, options_);
    ASSERT_TRUE(r.ok()) << "switchover to node" << to << ": " << r.status().ToString();
    std::printf("%s\n", r->Summary().c_str());
    EXPECT_EQ(r->run.exit_code, 0) << r->run.output;
    EXPECT_EQ(r->run.phase, "done") << r->run.output;
    EXPECT_EQ(r->drill.final_primary, to);
    EXPECT_TRUE(r->drill.check.new_master_published) << "no history entry published node" << to;
    EXPECT_GT(r->drill.check.acked_after_publish, 0);
    EXPECT_TRUE(r->old_streams_from_new) << "node" << r->drill.old_primary
                                         << " does not stream from node" << to << "\n"
                                         << s.Tail("poller-" + std::to_string(r->drill.old_primary));
    ExpectClean(*r);
    if (::testing::Test::HasFailure()) break;
  }
  // Awaited, not looked at once: a single look failed in CI with "zookeeper 1 does not serve"
  // right after the switchovers had passed (the member restarted by the ZooKeeper-leader drill
  // before them answering `srvr` without a mode for a while).
  auto known = s.lab().Check(std::chrono::seconds(60));
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  EXPECT_EQ(*known, *first) << "the lab does not end with its first primary";
}

// A step that fails: the target's poller runs a repmgr that refuses `standby promote` (exit 1), so
// the promote step fails after the old primary stopped. The switchover must roll back (the old
// primary started again by its poller), end `aborted` (exit 2), and leave the old primary
// published and vouched, with the clients writing on it again, nothing lost and repmgrd unpaused.
TEST_F(SwitchoverTest, AFailedPromoteRollsBack) {
  Stack& s = *StackEnvironment::stack_;
  auto first = s.AwaitHealthyCluster(std::chrono::milliseconds(60000));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const int target = *first % 3 + 1;
  const std::string refusing = s.dir() + "/repmgr-refusing-promote";
  std::ofstream(refusing, std::ios::trunc)
      << "#!/bin/sh\n# e2e: repmgr, except that `standby promote` fails\n"
         "for a in \"$@\"; do\n  if [ \"$a\" = promote ]; then echo 'e2e: promote refused' >&2; "
         "exit 1; fi\ndone\nexec " << s.Env("PG_BINDIR") << "/repmgr \"$@\"\n";
  ASSERT_EQ(::chmod(refusing.c_str(), 0755), 0);
  ASSERT_TRUE(s.SetPollerSwitchover(target, true, refusing).ok());
  auto r = RunSwitchover(s, target, /*expect_done=*/false, 12, options_);
  auto back = s.SetPollerSwitchover(target, true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(back.ok()) << back.ToString();
  std::printf("%s\n", r->Summary().c_str());
  EXPECT_EQ(r->run.exit_code, 2) << r->run.output;  // aborted or failed
  EXPECT_EQ(r->run.phase, "aborted") << r->run.output;
  EXPECT_EQ(r->drill.final_primary, *first);
  EXPECT_FALSE(r->drill.check.new_master_published) << r->Summary();
  EXPECT_EQ(s.VouchedMasterNode(), *first);
  EXPECT_GT(r->drill.check.acked_after_publish, 0);
  ExpectClean(*r);
  // The old primary was restarted by the rollback: its standbys' WAL receivers reconnect in their
  // own time (wal_retrieve_retry_interval, 5 s by default), so the lab's known state is awaited,
  // not looked at once (a single look failed under load: "node2 does not stream from node1").
  auto healthy = s.AwaitHealthyCluster(std::chrono::milliseconds(60000));
  ASSERT_TRUE(healthy.ok()) << healthy.status().ToString();
  EXPECT_EQ(*healthy, *first);
  auto known = s.lab().Check(std::chrono::seconds(60));
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  EXPECT_EQ(*known, *first);
}

TEST(E2eDrillsTest, FreezeShorterThanDetection) { Drill(DrillKind::kFreezeShort, 2); }
TEST(E2eDrillsTest, FreezeLongerThanDetectionThenThaw) { Drill(DrillKind::kFreezeLong, 3); }
TEST(E2eDrillsTest, OldPrimaryRestartedWritable) { Drill(DrillKind::kRestartWritable, 4); }
TEST(E2eDrillsTest, Kill9OfTheLeadingOrchestratorDuringFailover) {
  Drill(DrillKind::kKillLeadingOrchestrator, 5);
}
TEST(E2eDrillsTest, Kill9OfTheZooKeeperLeaderDuringFailover) { Drill(DrillKind::kKillZkLeader, 6); }

}  // namespace
}  // namespace pgherald::e2e
