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

const std::vector<OptionSpec> kDaemonSpecs = {{"json", "", "print JSON"}};

TEST(DaemonArgsTest, ReturnsTheConfigPathAndTheOtherFlags) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  auto r = ParseDaemonArgs("watch", "Drive sinks.", kDaemonSpecs, {"--config", "w.yaml", "--json"},
                           "", out, err);
  ASSERT_TRUE(std::holds_alternative<DaemonArgs>(r));
  EXPECT_EQ(std::get<DaemonArgs>(r).config_path, "w.yaml");
  EXPECT_TRUE(std::get<DaemonArgs>(r).flags.Has("json"));
  EXPECT_FALSE(std::get<DaemonArgs>(r).check);
  EXPECT_EQ(Written(out), "");
  EXPECT_EQ(Written(err), "");
  std::fclose(out);
  std::fclose(err);
}

TEST(DaemonArgsTest, WithoutConfigTheDaemonReadsItsDefaultPath) {
  for (const char* daemon : {"poller", "orchestrator", "watch"}) {
    auto r = ParseDaemonArgs(daemon, "s", {}, {"--check"});
    ASSERT_TRUE(std::holds_alternative<DaemonArgs>(r)) << daemon;
    EXPECT_EQ(std::get<DaemonArgs>(r).config_path,
              std::string("/etc/pgherald/") + daemon + ".yaml");
    EXPECT_TRUE(std::get<DaemonArgs>(r).check);
  }
}

TEST(DaemonArgsTest, HelpListsConfigCheckAndTheDefaultPath) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  auto r = ParseDaemonArgs("poller", "Publishes observations.", kDaemonSpecs, {"--help"},
                           "docs/poller.md", out, err);
  ASSERT_TRUE(std::holds_alternative<int>(r));
  EXPECT_EQ(std::get<int>(r), kExitOk);
  const std::string usage = Written(out);
  EXPECT_NE(usage.find("--config FILE"), std::string::npos) << usage;
  EXPECT_NE(usage.find("default /etc/pgherald/poller.yaml; see docs/poller.md"), std::string::npos)
      << usage;
  EXPECT_NE(usage.find("--check"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--json"), std::string::npos) << usage;
  std::fclose(out);
  std::fclose(err);
}

TEST(DaemonArgsTest, BadFlagsAndStrayArgumentsExitTwoNamingTheCommand) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  auto r = ParseDaemonArgs("orchestrator", "s", kDaemonSpecs, {"--confg", "x"}, "", out, err);
  ASSERT_TRUE(std::holds_alternative<int>(r));
  EXPECT_EQ(std::get<int>(r), kExitUsage);
  EXPECT_NE(Written(err).find("pgherald orchestrator: unknown option --confg"), std::string::npos);
  std::fclose(err);
  err = std::tmpfile();
  r = ParseDaemonArgs("watch", "s", kDaemonSpecs, {"w.yaml"}, "", out, err);
  ASSERT_TRUE(std::holds_alternative<int>(r));
  EXPECT_EQ(std::get<int>(r), kExitUsage);
  EXPECT_EQ(Written(err), "pgherald watch: unexpected argument 'w.yaml' (see --help)\n");
  std::fclose(out);
  std::fclose(err);
}

TEST(ConfigOutcomeTest, CheckPrintsOkOrEveryErrorWithTheRightExitCode) {
  DaemonArgs args;
  args.config_path = "w.yaml";
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  EXPECT_EQ(ConfigOutcome("watch", args, Status::Ok(), out, err), std::nullopt);
  args.check = true;
  EXPECT_EQ(ConfigOutcome("watch", args, Status::Ok(), out, err), kExitOk);
  EXPECT_EQ(Written(out), "w.yaml: configuration ok\n");
  const Status bad = InvalidArgument("w.yaml:3: watch.source: expected one of library, internal\n"
                                     "w.yaml:9: watch.clusters.main.sinks[0].type: missing");
  EXPECT_EQ(ConfigOutcome("watch", args, bad, out, err), kExitUsage);
  EXPECT_EQ(Written(err), "pgherald watch: w.yaml: invalid configuration:\n" + bad.message() + "\n");
  std::fclose(out);
  std::fclose(err);
}

}  // namespace
}  // namespace pgherald::cli
