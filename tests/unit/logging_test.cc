#include "common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace pgherald::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// Routes all logging into a string for the duration of a test, then back to stderr.
class CapturedLog {
 public:
  explicit CapturedLog(config::LoggingConfig cfg = {}) {
    Init(cfg, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_, /*force_flush=*/true));
  }
  ~CapturedLog() { Init({}); }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

TEST(LoggingTest, TextLineHasIsoTimestampLevelComponentAndPairs) {
  CapturedLog captured;
  Info("master_changed", {{"cluster", "main"}, {"node", "pg2"}, {"timeline", 3}});
  EXPECT_THAT(captured.str(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                           "info \\[pgherald\\] master_changed cluster=main node=pg2 "
                           "timeline=3\n"));
}

TEST(LoggingTest, ComponentLoggerNamesItsComponent) {
  CapturedLog captured;
  Logger("poller").Warn("tick_slow", {{"elapsed_ms", std::chrono::milliseconds(1500)}});
  EXPECT_THAT(captured.str(), HasSubstr("warning [poller] tick_slow elapsed_ms=1500\n"));
}

TEST(LoggingTest, LevelFiltersLines) {
  CapturedLog captured({.level = config::LogLevel::kWarn});
  Logger poller("poller");
  poller.Info("hidden");
  poller.Debug("hidden_too");
  EXPECT_FALSE(poller.DebugEnabled());
  poller.Error("shown");
  EXPECT_THAT(captured.str(), Not(HasSubstr("hidden")));
  EXPECT_THAT(captured.str(), HasSubstr("shown"));
}

TEST(LoggingTest, DebugLevelEnablesDebug) {
  CapturedLog captured({.level = config::LogLevel::kDebug});
  EXPECT_TRUE(DebugEnabled());
  Debug("tick", {{"n", 1}});
  EXPECT_THAT(captured.str(), HasSubstr("debug [pgherald] tick n=1"));
}

TEST(LoggingTest, FormatTextQuotesValuesThatNeedIt) {
  EXPECT_EQ(FormatText("e", {{"a", "plain"},
                             {"b", "two words"},
                             {"c", ""},
                             {"d", "say \"hi\""},
                             {"e", "x=y"},
                             {"f", "line\nbreak"},
                             {"g", true},
                             {"h", int64_t{-5}},
                             {"i", 0.5},
                             {"j", std::string("str")}}),
            "e a=plain b=\"two words\" c=\"\" d=\"say \\\"hi\\\"\" e=\"x=y\" "
            "f=\"line\\nbreak\" g=true h=-5 i=0.5 j=str");
}

TEST(LoggingTest, FormatTextStatusField) {
  EXPECT_EQ(FormatText("probe_failed", {{"error", Status(StatusCode::kTimeout, "slow")}}),
            "probe_failed error=\"timeout: slow\"");
}

TEST(LoggingTest, JsonFormatIsOneValidObjectPerLine) {
  CapturedLog captured({.format = config::LogFormat::kJson});
  Logger("orchestrator")
      .Info("master_changed", {{"cluster", "main \"x\""}, {"epoch", 7}, {"vouched", true}});
  std::string line = captured.str();
  ASSERT_FALSE(line.empty());
  ASSERT_EQ(line.back(), '\n');
  auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["level"], "info");
  EXPECT_EQ(json["component"], "orchestrator");
  EXPECT_EQ(json["event"], "master_changed");
  EXPECT_EQ(json["cluster"], "main \"x\"");
  EXPECT_EQ(json["epoch"], 7);
  EXPECT_EQ(json["vouched"], true);
  EXPECT_THAT(json["ts"].get<std::string>(), MatchesRegex("[0-9-]{10}T[0-9:.]{12}Z"));
}

TEST(LoggingTest, SecretKeysAreMasked) {
  std::string line = FormatText(
      "connect",
      {{"password", "hunter2"}, {"zk_auth", "user:pw"}, {"api_token", "abc"}, {"user", "app"}});
  EXPECT_EQ(line, "connect password=*** zk_auth=*** api_token=*** user=app");
  std::string json = FormatJsonMembers("connect", {{"password", "hunter2"}});
  EXPECT_EQ(json, "\"event\":\"connect\",\"password\":\"***\"");
}

TEST(LoggingTest, SecretsInsideValuesAreRedacted) {
  CapturedLog captured;
  Info("connecting", {{"conninfo", "host=db port=5432 password='it''s s3cret' user=app"},
                      {"uri", "postgresql://app:S3cretUri@db:5432/app"}});
  EXPECT_THAT(captured.str(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(captured.str(), Not(HasSubstr("S3cretUri")));
  EXPECT_THAT(captured.str(), HasSubstr("user=app"));
}

TEST(LoggingTest, RedactSecrets) {
  EXPECT_EQ(RedactSecrets("host=h password=abc user=u"), "host=h password=*** user=u");
  EXPECT_EQ(RedactSecrets("host=h password='a b\\'c' user=u"), "host=h password='***' user=u");
  EXPECT_EQ(RedactSecrets("PASSWORD = xyz"), "PASSWORD = ***");
  EXPECT_EQ(RedactSecrets("PGPASSWORD=xyz ./run"), "PGPASSWORD=*** ./run");
  EXPECT_EQ(RedactSecrets(R"({"password": "abc", "x": 1})"), R"({"password": "***", "x": 1})");
  EXPECT_EQ(RedactSecrets("postgresql://u:pw@h:5432/db?sslmode=disable"),
            "postgresql://u:***@h:5432/db?sslmode=disable");
  EXPECT_EQ(RedactSecrets("postgresql://u@h/db?password=pw&x=1"),
            "postgresql://u@h/db?password=***&x=1");
  EXPECT_EQ(RedactSecrets("password authentication failed for user \"app\""),
            "password authentication failed for user \"app\"");
  EXPECT_EQ(RedactSecrets("zk://h:2181/path"), "zk://h:2181/path");
  EXPECT_EQ(RedactSecrets("nothing here"), "nothing here");
}

TEST(LoggingTest, ReinitWhileLoggingFromThreads) {
  CapturedLog captured;
  std::thread writer([] {
    Logger logger("writer");
    for (int i = 0; i < 200; ++i) logger.Info("tick", {{"i", i}});
  });
  std::vector<std::unique_ptr<std::ostringstream>> streams;
  for (int i = 0; i < 20; ++i) {
    streams.push_back(std::make_unique<std::ostringstream>());
    Init({}, std::make_shared<spdlog::sinks::ostream_sink_mt>(*streams.back(), true));
  }
  writer.join();
  Init({});
}

}  // namespace
}  // namespace pgherald::log
