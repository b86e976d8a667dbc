// The decode side of the orchestrator's znodes that operators and first orchestrators write:
// clusters/<c>/control and clusters/<c>/identity. Untrusted input (docs/zookeeper-contract.md,
// "Validation").
#include <gtest/gtest.h>

#include <string>

#include "common/model/cluster_model.h"
#include "publishers/zk_publisher.h"
#include "tests/unit/hostile_payloads.h"

namespace pgherald::publishers {
namespace {

std::string GoodControl() {
  ControlState c;
  c.paused = true;
  c.reason = "upgrade";
  c.changed_by = "alice@ops (cli)";
  c.changed_at_ms = 1700000000000;
  return ControlToJson(c);
}

TEST(ControlPayloadTest, RoundTrips) {
  auto c = ParseControl(GoodControl());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->paused);
  EXPECT_EQ(c->changed_by, "alice@ops (cli)");
}

// Before: format was read with get<int>(), so 4294967297 passed as 1.
TEST(ControlPayloadTest, FormatIsNeverNarrowed) {
  for (const char* format : {"4294967297", "-4294967295", "18446744073709551617", "1.0", "\"1\""}) {
    auto c = ParseControl(testing::ReplaceField(GoodControl(), "format", format));
    ASSERT_FALSE(c.ok()) << format;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("control: field 'format'"), std::string::npos)
        << c.status().message();
  }
  auto changed = ParseControl(testing::ReplaceField(GoodControl(), "changed_at", "1e3"));
  EXPECT_FALSE(changed.ok());
}

TEST(ControlPayloadTest, DeepNestingIsRefusedBeforeParsing) {
  for (const std::string& text : testing::DeepPayloads(GoodControl(), "reason")) {
    auto c = ParseControl(text);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find("control: "), std::string::npos);
    EXPECT_LT(c.status().message().size(), 300u);
  }
}

TEST(ControlPayloadTest, TextIsSanitizedAndCut) {
  auto c = ParseControl(testing::ReplaceField(
      GoodControl(), "reason", "\"maint\\u001b[2J\\n" + std::string(5000, 'r') + "\""));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->reason.find('\x1b'), std::string::npos);
  EXPECT_EQ(c->reason.rfind("maint\\x1b[2J\\x0a", 0), 0u);
  EXPECT_LE(c->reason.size(), kMaxControlTextLength + 3);
}

TEST(IdentityPayloadTest, OnlyDecimalSystemIdentifiers) {
  const std::string good = model::IdentityToJson("7291851442811934035");
  auto id = model::ParseIdentity(good);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "7291851442811934035");
  for (const char* bad :
       {"\"\"", "\"72918 5\"", "\"1;drop\"", "7291851442811934035", "\"123456789012345678901\""}) {
    auto got = model::ParseIdentity(testing::ReplaceField(good, "system_identifier", bad));
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_NE(got.status().message().find("identity: field 'system_identifier'"), std::string::npos)
        << got.status().message();
  }
  EXPECT_FALSE(model::ParseIdentity(testing::ReplaceField(good, "format", "4294967297")).ok());
  for (const std::string& text : testing::DeepPayloads(good, "system_identifier")) {
    EXPECT_FALSE(model::ParseIdentity(text).ok());
  }
}

}  // namespace
}  // namespace pgherald::publishers
