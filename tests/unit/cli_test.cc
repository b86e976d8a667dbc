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

// What a FILE* received (a tmpfile standing in for stdout/stderr).
std::string Written(std::FILE* f) {
  std::rewind(f);
  std::string text;
  char buf[256];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) text.append(buf, n);
  return text;
}

TEST(DaemonArgsTest, ReturnsTheConfigPathAndTheOtherFlags) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  auto r = ParseDaemonArgs("watch", "Drive sinks.", kSpecs, {"--config", "w.yaml", "--json"}, "",
                           out, err);
  ASSERT_TRUE(std::holds_alternative<DaemonArgs>(r));
  EXPECT_EQ(std::get<DaemonArgs>(r).config_path, "w.yaml");
  EXPECT_TRUE(std::get<DaemonArgs>(r).flags.Has("json"));
  EXPECT_EQ(Written(out), "");
  EXPECT_EQ(Written(err), "");
  std::fclose(out);
  std::fclose(err);
}

TEST(DaemonArgsTest, HelpPrintsUsageAndExitsZero) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  auto r = ParseDaemonArgs("poller", "Publishes observations.", kSpecs, {"--help"}, "", out, err);
  ASSERT_TRUE(std::holds_alternative<int>(r));
  EXPECT_EQ(std::get<int>(r), 0);
  EXPECT_EQ(Written(out), Usage("poller", "Publishes observations.", kSpecs));
  std::fclose(out);
  std::fclose(err);
}

TEST(DaemonArgsTest, MissingConfigAndBadFlagsExitTwoNamingTheCommand) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  auto r = ParseDaemonArgs("watch", "s", kSpecs, {"--json"}, "see docs/watch.md", out, err);
  ASSERT_TRUE(std::holds_alternative<int>(r));
  EXPECT_EQ(std::get<int>(r), 2);
  EXPECT_EQ(Written(err), "pgherald watch: --config FILE is required (see docs/watch.md)\n");
  std::fclose(err);
  err = std::tmpfile();
  r = ParseDaemonArgs("orchestrator", "s", kSpecs, {"--confg", "x"}, "", out, err);
  ASSERT_TRUE(std::holds_alternative<int>(r));
  EXPECT_EQ(std::get<int>(r), 2);
  EXPECT_NE(Written(err).find("pgherald orchestrator: unknown option --confg"), std::string::npos);
  std::fclose(out);
  std::fclose(err);
}

}  // namespace
}  // namespace pgherald::cli
