// The drills' reading of `pgherald switchover --json`: the last JSON object printed (compact or
// pretty), its phase, error and hold, whatever comes before it.
#include <gtest/gtest.h>

#include "tests/e2e/stack.h"

namespace pgherald::e2e {
namespace {

TEST(SwitchoverSummaryTest, TakesTheLastJsonObject) {
  SwitchoverRun run;
  ParseSwitchoverSummary("phase=hold elapsed_ms=3\n{\"phase\":\"hold\"}\n"
                         "{\"id\":\"sw-1-ab\",\"result\":\"done\",\"phase\":\"done\","
                         "\"hold_ms\":812,\"exit_code\":0}\n",
                         &run);
  EXPECT_EQ(run.id, "sw-1-ab");
  EXPECT_EQ(run.phase, "done");
  EXPECT_DOUBLE_EQ(run.hold_ms, 812);
  EXPECT_EQ(run.summary_json,
            "{\"id\":\"sw-1-ab\",\"result\":\"done\",\"phase\":\"done\",\"hold_ms\":812,"
            "\"exit_code\":0}");
}

TEST(SwitchoverSummaryTest, PrettyPrintedAndNotReachedHold) {
  SwitchoverRun run;
  ParseSwitchoverSummary("{\n  \"id\": \"sw-2\",\n  \"phase\": \"aborted\",\n  \"error\": "
                         "\"promote failed\",\n  \"hold_ms\": -1,\n  \"nested\": {\"a\": 1}\n}\n",
                         &run);
  EXPECT_EQ(run.id, "sw-2");
  EXPECT_EQ(run.phase, "aborted");
  EXPECT_EQ(run.error, "promote failed");
  EXPECT_EQ(run.hold_ms, -1);
}

TEST(SwitchoverSummaryTest, NoJsonLeavesTheFieldsEmpty) {
  SwitchoverRun run;
  ParseSwitchoverSummary("pgherald switchover: cannot reach ZooKeeper {x}\n", &run);
  EXPECT_TRUE(run.phase.empty());
  EXPECT_TRUE(run.summary_json.empty());
  EXPECT_EQ(run.hold_ms, -1);
}

TEST(SwitchoverSummaryTest, PhasesFromTheProgressLines) {
  SwitchoverRun run;
  ParseSwitchoverPhases("ok   master: node1 verified at epoch 7\n"
                        "phase=prepare elapsed_ms=0 by=node1,node2,node3\n"
                        "phase=hold elapsed_ms=412 by=orchestrator\nphase=x\n{\"phase\":\"done\"}\n",
                        &run);
  ASSERT_EQ(run.phases.size(), 2u);
  EXPECT_EQ(run.phases[1].first, "hold");
  EXPECT_EQ(run.phases[1].second, 412);
}

}  // namespace
}  // namespace pgherald::e2e
