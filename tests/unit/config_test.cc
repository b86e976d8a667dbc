#include "common/config.h"
#include "common/pg_config.h"
#include "common/zk_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace pgherald::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

ConfigNode Load(std::string_view yaml) {
  auto root = ConfigNode::LoadString(yaml, "config.yaml");
  EXPECT_TRUE(root.ok()) << root.status().ToString();
  return *root;
}

// Parses `yaml` with `parse` and returns Finish()'s status.
template <typename Parse>
Status Check(std::string_view yaml, Parse parse) {
  ConfigNode root = Load(yaml);
  parse(root);
  return root.Finish();
}

TEST(ConfigTest, ReadsValuesOfEveryType) {
  ConfigNode root = Load(R"(
name: main
enabled: true
count: 42
ratio: 0.25
tick_ms: 1500
hosts: [a, b, "c d"]
labels: {dc: west, rack: "3"}
)");
  EXPECT_EQ(root.Required<std::string>("name"), "main");
  EXPECT_TRUE(root.Required<bool>("enabled"));
  EXPECT_EQ(root.Required<int>("count"), 42);
  EXPECT_EQ(root.Required<int64_t>("count"), 42);
  EXPECT_DOUBLE_EQ(root.Required<double>("ratio"), 0.25);
  EXPECT_EQ(root.Required<Millis>("tick_ms"), Millis(1500));
  EXPECT_EQ(root.Required<std::vector<std::string>>("hosts"),
            (std::vector<std::string>{"a", "b", "c d"}));
  EXPECT_EQ((root.Required<std::map<std::string, std::string>>("labels")),
            (std::map<std::string, std::string>{{"dc", "west"}, {"rack", "3"}}));
  EXPECT_TRUE(root.Finish().ok()) << root.Finish().ToString();
}

TEST(ConfigTest, DefaultsApplyWhenAbsentOrNull) {
  ConfigNode root = Load("present: 5\nexplicit_null:\n");
  EXPECT_EQ(root.Optional<int>("absent", 7), 7);
  EXPECT_EQ(root.Optional<int>("explicit_null", 8), 8);
  EXPECT_EQ(root.Optional<int>("present", 9), 5);
  EXPECT_EQ(root.Optional<std::string>("absent"), std::nullopt);
  EXPECT_EQ(root.Optional<Millis>("nested_ms", Millis(3)), Millis(3));
  ConfigNode missing = root.Child("section");
  EXPECT_FALSE(missing.present());
  EXPECT_EQ(missing.Optional<std::string>("x", "d"), "d");
  EXPECT_TRUE(root.Finish().ok()) << root.Finish().ToString();
}

TEST(ConfigTest, WrongTypeNamesFileLineKeyExpectedAndValue) {
  Status s = Check(
      "zookeeper:\n"
      "  connect: zk1:2181\n"
      "  session_timeout_ms: ten\n",
      [](ConfigNode& root) { ParseZooKeeper(root.Child("zookeeper")); });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "config.yaml:3: zookeeper.session_timeout_ms: expected an integer number of "
            "milliseconds between 1000 and 600000, got \"ten\"");
}

TEST(ConfigTest, WrongTypeForEachKind) {
  Status s = Check(
      "a: maybe\n"      // bool
      "b: 1.5\n"        // int
      "c: [1]\n"        // string
      "d: x\n"          // double
      "e: -5\n"         // millis
      "f: notalist\n"   // list of strings
      "g: [x, [y]]\n"   // list element
      "h: {k: [v]}\n",  // map of strings
      [](ConfigNode& root) {
        root.Required<bool>("a");
        root.Required<int>("b");
        root.Required<std::string>("c");
        root.Required<double>("d");
        root.Required<Millis>("e_ms");
        root.Required<Millis>("e");
        root.Required<std::vector<std::string>>("f");
        root.Required<std::vector<std::string>>("g");
        root.Required<std::map<std::string, std::string>>("h");
      });
  ASSERT_FALSE(s.ok());
  const std::string& m = s.message();
  EXPECT_THAT(m, HasSubstr("config.yaml:1: a: expected true or false, got \"maybe\""));
  EXPECT_THAT(m, HasSubstr("config.yaml:2: b: expected an integer, got \"1.5\""));
  EXPECT_THAT(m, HasSubstr("config.yaml:3: c: expected a string, got a list"));
  EXPECT_THAT(m, HasSubstr("config.yaml:4: d: expected a number, got \"x\""));
  EXPECT_THAT(m, HasSubstr("e_ms: missing required value (expected an integer number of "
                           "milliseconds)"));
  EXPECT_THAT(m, HasSubstr("config.yaml:5: e: expected an integer number of milliseconds of at "
                           "least 0, got \"-5\""));
  EXPECT_THAT(m, HasSubstr("config.yaml:6: f: expected a list of strings, got \"notalist\""));
  EXPECT_THAT(m, HasSubstr("config.yaml:7: g[1]: expected a string, got a list"));
  EXPECT_THAT(m, HasSubstr("config.yaml:8: h.k: expected a string, got a list"));
}

TEST(ConfigTest, MissingRequiredNamesKeyAndParentLine) {
  Status s = Check(
      "logging:\n"
      "  level: info\n"
      "zookeeper:\n"
      "  root: /x\n",
      [](ConfigNode& root) {
        ParseLogging(root.Child("logging"));
        ParseZooKeeper(root.Child("zookeeper"));
      });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "config.yaml:4: zookeeper.connect: missing required value (expected a string)");
}

TEST(ConfigTest, MissingSectionReportsItsRequiredKeys) {
  Status s = Check("logging: {level: debug}\n",
                   [](ConfigNode& root) { ParseZooKeeper(root.Child("zookeeper")); });
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("zookeeper.connect: missing required value"));
  // `logging` was never read by this parser: unknown here.
  EXPECT_THAT(s.message(), HasSubstr("config.yaml:1: logging: unknown key"));
}

TEST(ConfigTest, OutOfRangeNamesBounds) {
  Status s = Check(
      "postgres:\n"
      "  host: db1\n"
      "  user: app\n"
      "  port: 70000\n",
      [](ConfigNode& root) { ParsePostgres(root.Child("postgres")); });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "config.yaml:4: postgres.port: expected an integer between 1 and 65535, got \"70000\"");
}

TEST(ConfigTest, IntOverflowIsOutOfRange) {
  Status s = Check("n: 99999999999\n", [](ConfigNode& root) { root.Required<int>("n"); });
  EXPECT_THAT(s.message(), HasSubstr("n: expected an integer between -2147483648 and 2147483647"));
}

TEST(ConfigTest, UnknownKeySuggestsCloseMatch) {
  Status s = Check(
      "zookeeper:\n"
      "  connect: zk1:2181\n"
      "\n"
      "  sesion_timeout_ms: 5000\n"
      "  colour: blue\n",
      [](ConfigNode& root) { ParseZooKeeper(root.Child("zookeeper")); });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "config.yaml:4: zookeeper.sesion_timeout_ms: unknown key (did you mean "
            "\"session_timeout_ms\"?)\n"
            "config.yaml:5: zookeeper.colour: unknown key");
}

TEST(ConfigTest, UnknownTopLevelSection) {
  Status s = Check("zookeepr:\n  connect: x\n",
                   [](ConfigNode& root) { ParseZooKeeper(root.Child("zookeeper")); });
  EXPECT_THAT(s.message(),
              HasSubstr("config.yaml:1: zookeepr: unknown key (did you mean \"zookeeper\"?)"));
}

TEST(ConfigTest, DuplicateKeyIsAnError) {
  Status s = Check("a: 1\na: 2\n", [](ConfigNode& root) { root.Required<int>("a"); });
  EXPECT_THAT(s.message(), HasSubstr("config.yaml:2: a: duplicate key"));
}

TEST(ConfigTest, ErrorsAreSortedByLineAndAllReported) {
  Status s = Check("b: x\na: y\n", [](ConfigNode& root) {
    root.Required<int>("a");
    root.Required<int>("b");
  });
  EXPECT_EQ(s.message(),
            "config.yaml:1: b: expected an integer, got \"x\"\n"
            "config.yaml:2: a: expected an integer, got \"y\"");
}

TEST(ConfigTest, MalformedYamlIsAStatusWithLine) {
  auto root = ConfigNode::LoadString("a: 1\nb: [1, 2\nc: 3\n", "broken.yaml");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(root.status().message(), HasSubstr("broken.yaml:"));
  EXPECT_THAT(root.status().message(), HasSubstr("invalid YAML"));
}

TEST(ConfigTest, MalformedYamlLineNumber) {
  auto root = ConfigNode::LoadString("a: 1\nb: c: d\n", "bad.yaml");
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.status().message(), HasSubstr("bad.yaml:2: invalid YAML"));
}

TEST(ConfigTest, TopLevelMustBeAMap) {
  auto root = ConfigNode::LoadString("- a\n- b\n", "list.yaml");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().message(),
            "list.yaml:1: expected a map of sections at the top level, got a list");
}

TEST(ConfigTest, EmptyFileIsAnEmptyMap) {
  ConfigNode root = Load("");
  LoggingConfig logging = ParseLogging(root.Child("logging"));
  EXPECT_EQ(logging.level, LogLevel::kInfo);
  EXPECT_TRUE(root.Finish().ok());
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto root = ConfigNode::LoadFile("/nonexistent/pgherald.yaml");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(root.status().message(), HasSubstr("/nonexistent/pgherald.yaml"));
}

TEST(ConfigTest, LoadFileUsesThePathInMessages) {
  char path[] = "/tmp/pgherald_config_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "zookeeper:\n  connect: zk:2181\n  root: relative\n";
  }
  auto root = ConfigNode::LoadFile(path);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  ParseZooKeeper(root->Child("zookeeper"));
  Status s = root->Finish();
  std::remove(path);
  EXPECT_EQ(s.message(), std::string(path) +
                             ":3: zookeeper.root: expected an absolute znode path without a "
                             "trailing '/', got \"relative\"");
}

TEST(ConfigTest, ChildThatIsNotAMap) {
  Status s = Check("zookeeper: localhost:2181\n",
                   [](ConfigNode& root) { ParseZooKeeper(root.Child("zookeeper")); });
  EXPECT_THAT(s.message(),
              HasSubstr("config.yaml:1: zookeeper: expected a map, got \"localhost:2181\""));
}

TEST(ConfigTest, ListOfMapsTracksEachElement) {
  ConfigNode root = Load(
      "sinks:\n"
      "  - kind: file\n"
      "    path: /tmp/x\n"
      "  - kind: exec\n"
      "    comand: /bin/true\n");
  std::vector<std::string> kinds;
  for (ConfigNode sink : root.List("sinks")) {
    kinds.push_back(sink.Required<std::string>("kind"));
    if (kinds.back() == "file") sink.Required<std::string>("path");
    if (kinds.back() == "exec") sink.Optional<std::string>("command");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"file", "exec"}));
  EXPECT_EQ(root.Finish().message(),
            "config.yaml:5: sinks[1].comand: unknown key (did you mean \"command\"?)");
}

TEST(ConfigTest, KeysMarksDynamicMapsAsRead) {
  ConfigNode root = Load("clusters:\n  main: {tick_ms: 100}\n  other: {tick_ms: 200, x: 1}\n");
  ConfigNode clusters = root.Child("clusters");
  std::vector<std::string> names = clusters.Keys();
  EXPECT_EQ(names, (std::vector<std::string>{"main", "other"}));
  for (const std::string& name : names) clusters.Child(name).Required<Millis>("tick_ms");
  EXPECT_EQ(root.Finish().message(), "config.yaml:3: clusters.other.x: unknown key");
}

TEST(ConfigTest, OneOfListsChoices) {
  Status s = Check("logging:\n  level: verbose\n  format: json\n",
                   [](ConfigNode& root) { ParseLogging(root.Child("logging")); });
  EXPECT_EQ(s.message(),
            "config.yaml:2: logging.level: expected one of trace, debug, info, warn, warning, "
            "error, got \"verbose\"");
}

TEST(ConfigTest, FailRecordsCustomErrorAtKey) {
  ConfigNode root = Load("a: 1\nb: 2\n");
  root.Required<int>("a");
  root.Required<int>("b");
  root.Fail("b", "must be less than a");
  EXPECT_EQ(root.Finish().message(), "config.yaml:2: b: must be less than a");
}

TEST(ConfigTest, ZooKeeperSectionDefaults) {
  ConfigNode root = Load("zookeeper:\n  connect: zk1:2181,zk2:2181\n");
  ZooKeeperConfig zk = ParseZooKeeper(root.Child("zookeeper"));
  ASSERT_TRUE(root.Finish().ok()) << root.Finish().ToString();
  EXPECT_EQ(zk.connect, "zk1:2181,zk2:2181");
  EXPECT_EQ(zk.root, "/pgherald");
  EXPECT_EQ(zk.session_timeout, Millis(6000));
  EXPECT_EQ(zk.connect_timeout, Millis(10000));
  EXPECT_EQ(zk.auth, std::nullopt);
}

TEST(ConfigTest, ZooKeeperAuthIsNeverEchoed) {
  ConfigNode root = Load("zookeeper:\n  connect: zk\n  auth: hunter2secret\n");
  ParseZooKeeper(root.Child("zookeeper"));
  Status s = root.Finish();
  EXPECT_THAT(s.message(), AllOf(HasSubstr("zookeeper.auth: expected \"user:password\""),
                                 Not(HasSubstr("hunter2secret"))));
}

TEST(ConfigTest, SecretValuesAreNotEchoedOnTypeErrors) {
  ConfigNode root = Load("password_count: s3cr3tvalue\n");
  root.Required<int>("password_count");
  EXPECT_THAT(root.Finish().message(), Not(HasSubstr("s3cr3tvalue")));
}

TEST(ConfigTest, LoggingSection) {
  ConfigNode root = Load("logging:\n  level: debug\n  format: json\n");
  LoggingConfig logging = ParseLogging(root.Child("logging"));
  ASSERT_TRUE(root.Finish().ok());
  EXPECT_EQ(logging.level, LogLevel::kDebug);
  EXPECT_EQ(logging.format, LogFormat::kJson);
  EXPECT_EQ(ParseLogLevel("warning"), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("loud"), std::nullopt);
  EXPECT_STREQ(LogLevelName(LogLevel::kWarn), "warn");
}

TEST(ConfigTest, PostgresSectionToParams) {
  ConfigNode root = Load(
      "postgres:\n"
      "  host: 10.0.0.5\n"
      "  port: 5433\n"
      "  user: repmgr\n"
      "  password: \"it's secret\"\n"
      "  statement_timeout_ms: 0\n"
      "  options: {sslmode: disable}\n");
  PostgresConfig pg = ParsePostgres(root.Child("postgres"));
  ASSERT_TRUE(root.Finish().ok()) << root.Finish().ToString();
  EXPECT_EQ(pg.dbname, "repmgr");  // defaults to the user, as in libpq
  auto params = ToPgParams(pg);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->host, "10.0.0.5");
  EXPECT_EQ(params->port, 5433);
  EXPECT_EQ(params->password, "it's secret");
  EXPECT_EQ(params->statement_timeout, Millis(0));
  EXPECT_EQ(params->connect_timeout, Millis(5000));
  EXPECT_EQ(params->options.at("sslmode"), "disable");
}

TEST(ConfigTest, PostgresPasswordAndPasswordFileConflict) {
  Status s = Check(
      "postgres:\n  host: h\n  user: u\n  password: p\n  password_file: /f\n"
      "  options: {password: x}\n",
      [](ConfigNode& root) { ParsePostgres(root.Child("postgres")); });
  EXPECT_THAT(s.message(),
              HasSubstr("config.yaml:5: postgres.password_file: set either password or "
                        "password_file, not both"));
  EXPECT_THAT(s.message(), HasSubstr("postgres.options.password: libpq keyword \"password\" is set by pgherald itself"));
}

TEST(ConfigTest, PasswordFileIsRead) {
  char path[] = "/tmp/pgherald_pw_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "from-file\nignored\n";
  }
  PostgresConfig pg;
  pg.host = "h";
  pg.user = "u";
  pg.password_file = path;
  auto params = ToPgParams(pg);
  std::remove(path);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(params->password, "from-file");

  pg.password_file = "/nonexistent/pw";
  auto missing = ToPgParams(pg);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/pw"));
}

TEST(ConfigTest, CopiesOfNodesShareTracking) {
  ConfigNode root = Load("s: {a: 1, b: 2}\n");
  ConfigNode first = root.Child("s");
  ConfigNode second = root.Child("s");
  first.Required<int>("a");
  second.Required<int>("b");
  // Reassigning a node must rebind it, not rewrite the document.
  first = root.Child("s");
  EXPECT_EQ(first.Required<int>("a"), 1);
  EXPECT_TRUE(root.Finish().ok()) << root.Finish().ToString();
}

}  // namespace
}  // namespace pgherald::config
