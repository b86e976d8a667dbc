// The pgbouncer sink's confirmation step without pgbouncer: CheckPgbouncerRoute reads SHOW
// DATABASES rows and must catch a database that still points at the old master, or one left paused
// by a KILL whose RESUME did not take (the drills' "clients time out through pgbouncer" finding).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "pgbouncer/pgbouncer_sink.h"

namespace pgherald::watch {
namespace {

using Row = std::map<std::string, std::string>;

RouteTarget Route(int port, RouteTarget::Action action = RouteTarget::Action::kRoute) {
  RouteTarget t;
  t.action = action;
  t.master.cluster = "main";
  t.master.node = "node2";
  t.master.host = "127.0.0.1";
  t.master.port = port;
  t.master.epoch = 4;
  return t;
}

Row Db(const std::string& name, const std::string& host, int port, bool paused = false) {
  return {{"name", name},
          {"host", host},
          {"port", std::to_string(port)},
          {"paused", paused ? "1" : "0"},
          {"disabled", "0"}};
}

TEST(PgbouncerRouteCheckTest, WildcardRoutesEveryDatabaseButTheConsole) {
  PgbouncerSinkConfig c;
  const std::vector<Row> rows = {Db("pgbouncer", "", 6432), Db("app", "127.0.0.1", 5002),
                                 Db("postgres", "127.0.0.1", 5002)};
  EXPECT_TRUE(CheckPgbouncerRoute(c, Route(5002), rows).empty());
}

TEST(PgbouncerRouteCheckTest, NamesADatabaseStillOnTheOldMaster) {
  PgbouncerSinkConfig c;
  const std::vector<Row> rows = {Db("app", "127.0.0.1", 5001), Db("postgres", "127.0.0.1", 5002)};
  const auto problems = CheckPgbouncerRoute(c, Route(5002), rows);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "database app points at 127.0.0.1:5001, not 127.0.0.1:5002");
}

TEST(PgbouncerRouteCheckTest, APausedDatabaseIsAProblemUnlessTheTargetBlocks) {
  PgbouncerSinkConfig c;
  const std::vector<Row> rows = {Db("app", "127.0.0.1", 5002, /*paused=*/true)};
  const auto problems = CheckPgbouncerRoute(c, Route(5002), rows);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "database app is still paused");
  const std::vector<Row> blocked = {Db("app", kPgbouncerBlockedHost, 5432, /*paused=*/true)};
  EXPECT_TRUE(CheckPgbouncerRoute(c, Route(5002, RouteTarget::Action::kBlock), blocked).empty());
}

// Under a block pgbouncer must point nowhere: a database still on the last master's address is
// what a pgbouncer restarted during the block would route to (the quorum-loss drill's finding).
TEST(PgbouncerRouteCheckTest, ABlockedDatabaseStillOnTheLastMasterIsAProblem) {
  PgbouncerSinkConfig c;
  const std::vector<Row> rows = {Db("app", "127.0.0.1", 5002, /*paused=*/true)};
  const auto problems = CheckPgbouncerRoute(c, Route(5002, RouteTarget::Action::kBlock), rows);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], std::string("database app points at 127.0.0.1:5002, not ") +
                             kPgbouncerBlockedHost + ":");
}

TEST(PgbouncerRouteCheckTest, TheBlockedFileNamesEveryEntryAndNoAddress) {
  PgbouncerSinkConfig c;
  c.entries = {{"*", "host={{host}} port={{port}}"},
               {"reports", "host=10.0.0.9 port=6000 dbname=reports password=secret"}};
  const std::string file = RenderBlockedDatabasesFile(c);
  EXPECT_EQ(file.substr(file.find('\n') + 1),
            "* = host=/dev/null/pgherald-blocked\nreports = host=/dev/null/pgherald-blocked\n");
  EXPECT_EQ(file.find("10.0.0.9"), std::string::npos);
  EXPECT_EQ(file.find("secret"), std::string::npos);
  for (const auto& line : {std::string("* = "), std::string("reports = ")}) {
    const auto at = file.find(line);
    ASSERT_NE(at, std::string::npos);
    const auto end = file.find('\n', at);
    EXPECT_TRUE(ParseConnstr(file.substr(at + line.size(), end - at - line.size())).ok());
  }
}

TEST(PgbouncerRouteCheckTest, NamedEntriesWinOverTheWildcardAndDatabasesFilters) {
  PgbouncerSinkConfig c;
  c.entries = {{"*", "host={{host}} port={{port}}"},
               {"reports", "host=10.0.0.9 port=6000 dbname=reports"}};
  std::vector<Row> rows = {Db("reports", "10.0.0.9", 6000), Db("app", "127.0.0.1", 5002)};
  EXPECT_TRUE(CheckPgbouncerRoute(c, Route(5002), rows).empty());
  rows[0] = Db("reports", "127.0.0.1", 5002);
  EXPECT_EQ(CheckPgbouncerRoute(c, Route(5002), rows).size(), 1u);
  // With `databases` set, only those are this sink's to check.
  c.databases = {"app"};
  EXPECT_TRUE(CheckPgbouncerRoute(c, Route(5002), rows).empty());
}

TEST(PgbouncerRouteCheckTest, AnEntryWithoutHostOrPortIsNotJudgedOnThem) {
  PgbouncerSinkConfig c;
  c.entries = {{"app", "dbname=app_{{epoch}}"}};
  const std::vector<Row> rows = {Db("app", "", 5432), Db("other", "127.0.0.1", 1)};
  EXPECT_TRUE(CheckPgbouncerRoute(c, Route(5002), rows).empty());
}

TEST(PgbouncerResumeTest, AllDatabasesResumeGloballyAndEachListedOne) {
  EXPECT_EQ(ResumeStatements({}, {"app", "postgres"}, {}),
            (std::vector<std::string>{"RESUME", "RESUME \"app\"", "RESUME \"postgres\""}));
}

TEST(PgbouncerResumeTest, AKilledDatabaseMissingFromShowDatabasesIsResumedByName) {
  // pgbouncer parks a killed auto-database off SHOW DATABASES, still paused.
  EXPECT_EQ(ResumeStatements({}, {"postgres"}, {"app", "postgres"}),
            (std::vector<std::string>{"RESUME", "RESUME \"postgres\"", "RESUME \"app\""}));
}

TEST(PgbouncerResumeTest, ConfiguredDatabasesAndKilledOnesEachOnce) {
  EXPECT_EQ(ResumeStatements({"app"}, {}, {"app", "old"}),
            (std::vector<std::string>{"RESUME \"app\"", "RESUME \"old\""}));
}

// Any client can register an auto-database through a `*` entry, named as it likes: the admin
// console refuses `KILL zz-x` (invalid command) and accepts `KILL "zz-x"`. Every name is quoted.
TEST(PgbouncerAdminTest, NamesAreAlwaysQuotedWithQuotesDoubled) {
  EXPECT_EQ(QuoteAdminIdentifier("zz-x"), "\"zz-x\"");
  EXPECT_EQ(QuoteAdminIdentifier("app"), "\"app\"");
  EXPECT_EQ(QuoteAdminIdentifier("a\"b;RESUME"), "\"a\"\"b;RESUME\"");
  EXPECT_EQ(AdminCommand("KILL", "zz-x"), "KILL \"zz-x\"");
  EXPECT_EQ(ResumeStatements({}, {"zz-x", "my.db"}, {"zz-x"}),
            (std::vector<std::string>{"RESUME", "RESUME \"zz-x\"", "RESUME \"my.db\""}));
}

// pgbouncer's [databases] values: what it would parse, or a refusal naming the problem.
TEST(PgbouncerConnstrTest, ParsesPgbouncerSyntaxAndRefusesTheRest) {
  auto ok = ParseConnstr("host=127.0.0.1 port=5432  dbname='my db' application_name='it''s'");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, (std::vector<std::pair<std::string, std::string>>{{"host", "127.0.0.1"},
                                                                   {"port", "5432"},
                                                                   {"dbname", "my db"},
                                                                   {"application_name", "it's"}}));
  EXPECT_TRUE(ParseConnstr("").ok());
  for (const char* bad : {"host=127.0.0.1 host=10.0.0.1",  // the second would win
                          "host=127.0.0.1 user",           // a bare word
                          "dbname='app",                   // unterminated
                          "dbname='a'b",                   // text after the quote
                          "host=a'b", "host=a=b", "=x", "host=a\nb"}) {
    auto r = ParseConnstr(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(PgbouncerConnstrTest, AnEntryThatPgbouncerWouldMisreadIsRefusedWhenRendered) {
  PgbouncerSinkConfig c;
  c.entries = {{"app", "host={{host}} dbname=my app"}};
  auto out = RenderDatabasesFile(c, Route(5002));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("entries.app: connection string"), std::string::npos)
      << out.status().message();
  c.entries = {{"app", "host={{host}} dbname='my app'"}};
  EXPECT_TRUE(RenderDatabasesFile(c, Route(5002)).ok());
}

}  // namespace
}  // namespace pgherald::watch
