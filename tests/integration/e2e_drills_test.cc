// The end-to-end drills on the real stack (docs/drills.md): the lab, a poller per node, two
// orchestrators and `pgherald watch` driving HAProxy and pgbouncer, with clients writing through
// both proxies. Each drill runs once here (the soak, tests/e2e/soak, runs them many times); each
// starts from one primary + two streaming standbys and restores that shape after itself.
#include <gtest/gtest.h>

#include <cstdio>

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

TEST(E2eDrillsTest, FreezeShorterThanDetection) { Drill(DrillKind::kFreezeShort, 2); }
TEST(E2eDrillsTest, FreezeLongerThanDetectionThenThaw) { Drill(DrillKind::kFreezeLong, 3); }
TEST(E2eDrillsTest, OldPrimaryRestartedWritable) { Drill(DrillKind::kRestartWritable, 4); }
TEST(E2eDrillsTest, Kill9OfTheLeadingOrchestratorDuringFailover) {
  Drill(DrillKind::kKillLeadingOrchestrator, 5);
}
TEST(E2eDrillsTest, Kill9OfTheZooKeeperLeaderDuringFailover) { Drill(DrillKind::kKillZkLeader, 6); }

}  // namespace
}  // namespace pgherald::e2e
