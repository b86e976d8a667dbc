// The drills' reading of `pgherald switchover --json`: the last JSON object printed, its phase,
// error and hold, whatever noise comes before it.
#include <gtest/gtest.h>

#include "tests/e2e/stack.h"

namespace pgherald::e2e {
namespace {

TEST(SwitchoverSummaryTest, TakesTheLastJsonObjectAndItsHold) {
  SwitchoverRun run;
  ParseSwitchoverSummary("plan: node1 -> node2\n{\"phase\":\"hold\"}\n"
                         "{\"id\":\"sw-1-ab\",\"phase\":\"done\",\"hold_ms\":812.5}\n",
                         &run);
  EXPECT_EQ(run.id, "sw-1-ab");
  EXPECT_EQ(run.phase, "done");
  EXPECT_DOUBLE_EQ(run.hold_ms, 812.5);
  EXPECT_EQ(run.summary_json, "{\"id\":\"sw-1-ab\",\"phase\":\"done\",\"hold_ms\":812.5}");
}

TEST(SwitchoverSummaryTest, HoldFromPhaseTimesAndTheRecord) {
  SwitchoverRun run;
  ParseSwitchoverSummary(
      "{\n  \"record\": {\"id\": \"sw-2\", \"phase\": \"aborted\", \"error\": \"promote failed\"},\n"
      "  \"phase_at\": {\"prepare\": 1000, \"hold\": 1100, \"stop\": 1300}\n}\n",
      &run);
  EXPECT_EQ(run.id, "sw-2");
  EXPECT_EQ(run.phase, "aborted");
  EXPECT_EQ(run.error, "promote failed");
  EXPECT_EQ(run.hold_ms, -1) << "no publish: no hold -> publish figure";

  SwitchoverRun done;
  ParseSwitchoverSummary("{\"phase\":\"done\",\"phases\":[{\"phase\":\"hold\",\"at\":100},"
                         "{\"phase\":\"publish\",\"at\":900},{\"phase\":\"rejoin\",\"at\":950}]}",
                         &done);
  EXPECT_DOUBLE_EQ(done.hold_ms, 850);
}

TEST(SwitchoverSummaryTest, NoJsonLeavesTheFieldsEmpty) {
  SwitchoverRun run;
  ParseSwitchoverSummary("pgherald switchover: cannot reach ZooKeeper\n", &run);
  EXPECT_TRUE(run.phase.empty());
  EXPECT_TRUE(run.summary_json.empty());
  EXPECT_EQ(run.hold_ms, -1);
}

}  // namespace
}  // namespace pgherald::e2e
