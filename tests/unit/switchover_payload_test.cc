// The switchover's payloads (docs/switchover.md): the record at clusters/<c>/control/switchover
// and the poller's acknowledgement inside its observation. Untrusted input
// (docs/zookeeper-contract.md, "Validation").
#include <gtest/gtest.h>

#include <string>

#include "common/model/cluster_model.h"
#include "common/model/zk_paths.h"
#include "tests/unit/hostile_payloads.h"

namespace pgherald::model {
namespace {

SwitchoverRecord GoodRecord() {
  SwitchoverRecord r;
  r.id = "sw-1700000000000-ab12";
  r.from = "node1";
  r.to = "node2";
  r.siblings = {"node3"};
  r.phase = SwitchoverPhase::kStop;
  r.base_epoch = 7;
  r.max_hold_ms = 2000;
  r.started_at_ms = 1700000000000;
  r.phase_at_ms = 1700000000100;
  r.deadline_at_ms = 1700000120000;
  r.stop_lsn = (Lsn{3} << 32) | 0x28;
  r.requested_by = "alice@ops";
  return r;
}

TEST(SwitchoverPayloadTest, RecordRoundTrips) {
  const SwitchoverRecord r = GoodRecord();
  auto back = SwitchoverRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, r.id);
  EXPECT_EQ(back->from, "node1");
  EXPECT_EQ(back->to, "node2");
  EXPECT_EQ(back->siblings, std::vector<std::string>{"node3"});
  EXPECT_EQ(back->phase, SwitchoverPhase::kStop);
  EXPECT_EQ(back->base_epoch, 7u);
  EXPECT_EQ(back->max_hold_ms, 2000);
  EXPECT_EQ(back->deadline_at_ms, r.deadline_at_ms);
  ASSERT_TRUE(back->stop_lsn.has_value());
  EXPECT_EQ(*back->stop_lsn, *r.stop_lsn);
  EXPECT_EQ(back->requested_by, "alice@ops");
}

TEST(SwitchoverPayloadTest, EveryPhaseNameRoundTrips) {
  for (int i = 0; i <= static_cast<int>(SwitchoverPhase::kFailed); ++i) {
    const auto p = static_cast<SwitchoverPhase>(i);
    EXPECT_EQ(ParseSwitchoverPhase(SwitchoverPhaseName(p)), p) << i;
  }
  EXPECT_FALSE(ParseSwitchoverPhase("PROMOTE").has_value());
  EXPECT_TRUE(IsTerminal(SwitchoverPhase::kDone));
  EXPECT_TRUE(IsTerminal(SwitchoverPhase::kAborted));
  EXPECT_TRUE(IsTerminal(SwitchoverPhase::kFailed));
  EXPECT_FALSE(IsTerminal(SwitchoverPhase::kRollback));
}

TEST(SwitchoverPayloadTest, RecordRefusesHostileFields) {
  const std::string good = GoodRecord().ToJson();
  struct Case {
    const char* field;
    const char* value;
    const char* names;
  };
  for (const Case& c : {
           Case{"from", "\"../x\"", "switchover: field 'from'"},
           Case{"to", "\"node1\"", "switchover: field 'to'"},
           Case{"to", "\"a b\"", "switchover: field 'to'"},
           Case{"siblings", "[\"node2\"]", "switchover: field 'siblings'"},
           Case{"siblings", "[\"x;rm -rf\"]", "switchover: field 'siblings"},
           Case{"phase", "\"bogus\"", "switchover: field 'phase'"},
           Case{"base_epoch", "-1", "switchover: field 'base_epoch'"},
           Case{"max_hold_ms", "1.5", "switchover: field 'max_hold_ms'"},
           Case{"max_hold_ms", "99999999999", "switchover: field 'max_hold_ms'"},
           Case{"stop_lsn", "\"3/28; x\"", "switchover: field 'stop_lsn'"},
           Case{"id", "\"\"", "switchover: field 'id'"},
           Case{"format", "2", "switchover: field 'format'"},
       }) {
    auto r = SwitchoverRecord::FromJson(testing::ReplaceField(good, c.field, c.value));
    ASSERT_FALSE(r.ok()) << c.field << "=" << c.value;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.names), std::string::npos) << r.status().message();
  }
}

TEST(SwitchoverPayloadTest, ActiveUntilTerminalOrPastItsDeadline) {
  SwitchoverRecord r = GoodRecord();
  EXPECT_TRUE(SwitchoverActive(r, r.deadline_at_ms));
  EXPECT_FALSE(SwitchoverActive(r, r.deadline_at_ms + 1));
  r.phase = SwitchoverPhase::kDone;
  EXPECT_FALSE(SwitchoverActive(r, r.started_at_ms));
}

TEST(SwitchoverPayloadTest, ObservationCarriesTheAck) {
  NodeObservation o;
  o.node = "node1";
  o.host = "127.0.0.1";
  o.port = 5432;
  o.reachable = false;
  o.seq = 3;
  o.observed_at_ms = 1700000000000;
  SwitchoverAck a;
  a.id = "sw-1";
  a.phase = SwitchoverPhase::kStop;
  a.state = SwitchoverStepState::kDone;
  a.lsn = 0x3000028;
  a.at_ms = 1700000000050;
  o.switchover = a;
  auto back = NodeObservation::FromJson(o.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->switchover.has_value());
  EXPECT_EQ(*back->switchover, a);

  o.switchover.reset();
  auto none = NodeObservation::FromJson(o.ToJson());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->switchover.has_value());

  auto bad = NodeObservation::FromJson(testing::ReplaceField(
      o.ToJson(), "seq", "3,\"switchover\":{\"id\":\"x\",\"phase\":\"stop\",\"state\":\"maybe\",\"at\":1}"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("field 'switchover.state'"), std::string::npos)
      << bad.status().message();
}

TEST(SwitchoverPayloadTest, LivesUnderControl) {
  EXPECT_EQ((ClusterPaths{"/pgherald", "main"}.Switchover()),
            "/pgherald/clusters/main/control/switchover");
}

}  // namespace
}  // namespace pgherald::model
