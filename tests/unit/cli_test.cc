#include "common/cli.h"

#include <gtest/gtest.h>

namespace pgherald::cli {
namespace {

const std::vector<OptionSpec> kSpecs = {
    {"config", "FILE", "config file"},
    {"json", "", "print JSON"},
};

TEST(CliTest, ParsesValuesFlagsAndPositionals) {
  auto parsed = Parse({"--config", "a.yaml", "--json", "extra", "--config=b.yaml"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->Get("config"), "b.yaml");
  EXPECT_TRUE(parsed->Has("json"));
  EXPECT_EQ(parsed->positional, std::vector<std::string>{"extra"});
  EXPECT_FALSE(parsed->help);
}

TEST(CliTest, RejectsUnknownOptionByName) {
  auto parsed = Parse({"--confg", "a.yaml"}, kSpecs);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("--confg"), std::string::npos);
}

TEST(CliTest, RejectsMissingValue) {
  auto parsed = Parse({"--config"}, kSpecs);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("FILE"), std::string::npos);
}

TEST(CliTest, UsageListsEveryOption) {
  std::string usage = Usage("status", "Show things.", kSpecs);
  EXPECT_NE(usage.find("--config FILE"), std::string::npos);
  EXPECT_NE(usage.find("--json"), std::string::npos);
  EXPECT_NE(usage.find("--help"), std::string::npos);
}

}  // namespace
}  // namespace pgherald::cli
