// PgConnection pieces that need no server: conninfo building and parsing, typed rows, the SQLSTATE
// table, and connection failures against ports where no PostgreSQL answers.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "common/pg_connection.h"

namespace pgherald::pg {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kPassword = "Tr1cky pa'ss\\word";

PgParams TrickyParams() {
  PgParams p;
  p.host = "127.0.0.1";
  p.port = 1;
  p.user = "app user";
  p.dbname = "my'db";
  p.password = kPassword;
  p.connect_timeout = Millis(2500);
  p.statement_timeout = Millis(750);
  p.application_name = "pgherald test";
  p.options["sslmode"] = "disable";
  return p;
}

TEST(PgConninfoTest, QuotesAndEscapesEveryValue) {
  EXPECT_EQ(BuildConninfo(TrickyParams()),
            "host='127.0.0.1' port='1' user='app user' dbname='my\\'db' "
            "password='Tr1cky pa\\'ss\\\\word' connect_timeout='3' "
            "application_name='pgherald test' sslmode='disable' "
            "options='-c statement_timeout=750'");
}

// A withheld password keeps every source of one out: the field, PGPASSWORD (an explicit empty
// password) and ~/.pgpass (a passfile that cannot exist).
TEST(PgConninfoTest, WithheldPasswordSendsNone) {
  PgParams p;
  p.user = "u";
  p.password = "s3cret";
  p.withhold_password = true;
  const std::string c = BuildConninfo(p);
  EXPECT_THAT(c, HasSubstr("password=''"));
  EXPECT_THAT(c, HasSubstr("passfile='/nonexistent/"));
  EXPECT_THAT(c, Not(HasSubstr("s3cret")));
}

TEST(PgConninfoTest, OptionKeywordsThatRedirectOrLeakAreRefused) {
  for (const char* own : {"host", "hostaddr", "port", "user", "dbname", "password", "passfile",
                          "connect_timeout", "application_name"}) {
    Status s = CheckOptionKeyword(own);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << own;
    EXPECT_THAT(s.message(), HasSubstr("is set by pgherald itself")) << own;
  }
  for (const char* redirect : {"service", "replication", "target_session_attrs"}) {
    EXPECT_THAT(CheckOptionKeyword(redirect).message(), HasSubstr("would redirect")) << redirect;
  }
  EXPECT_THAT(CheckOptionKeyword("sslmdoe").message(), HasSubstr("unknown to this libpq"));
  for (const char* ok : {"sslmode", "sslrootcert", "channel_binding", "keepalives", "options",
                         "gssencmode"}) {
    EXPECT_TRUE(CheckOptionKeyword(ok).ok()) << ok;
  }
  // Connect() refuses them too, before any network I/O.
  PgParams p;
  p.options["service"] = "prod";
  auto c = PgConnection::Connect(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

TEST(PgConninfoTest, OnlyVerifyFullOrRequiredChannelBindingAuthenticateTheServer) {
  PgParams p;
  EXPECT_FALSE(AuthenticatesServer(p));
  for (const char* weak : {"disable", "allow", "prefer", "require", "verify-ca"}) {
    p.options = {{"sslmode", weak}};
    EXPECT_FALSE(AuthenticatesServer(p)) << weak;
  }
  p.options = {{"sslmode", "verify-full"}};
  EXPECT_TRUE(AuthenticatesServer(p));
  p.options = {{"channel_binding", "prefer"}};
  EXPECT_FALSE(AuthenticatesServer(p));
  p.options = {{"channel_binding", "require"}};
  EXPECT_TRUE(AuthenticatesServer(p));
}

TEST(PgConninfoTest, RedactedConninfoHidesThePassword) {
  std::string redacted = RedactedConninfo(TrickyParams());
  EXPECT_THAT(redacted, AllOf(HasSubstr("password='***'"), Not(HasSubstr("Tr1cky"))));
}

TEST(PgConninfoTest, EmptyPasswordIsKeptAndNoneIsOmitted) {
  PgParams p;
  p.user = "u";
  p.password = "";
  EXPECT_THAT(BuildConninfo(p), HasSubstr("password=''"));
  p.password.reset();
  EXPECT_THAT(BuildConninfo(p), Not(HasSubstr("password")));
}

TEST(PgConninfoTest, StatementTimeoutJoinsUserOptions) {
  PgParams p;
  p.user = "u";
  p.statement_timeout = Millis(100);
  p.options["options"] = "-c search_path=repmgr";
  EXPECT_THAT(BuildConninfo(p),
              HasSubstr("options='-c search_path=repmgr -c statement_timeout=100'"));
  p.statement_timeout = Millis(0);
  EXPECT_THAT(BuildConninfo(p), Not(HasSubstr("statement_timeout")));
}

// libpq's own parser reads back exactly what BuildConninfo wrote: the escaping is right.
TEST(PgConninfoTest, LibpqParsesBuiltConninfoBack) {
  PgParams original = TrickyParams();
  auto parsed = ParseConninfo(BuildConninfo(original));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->host, original.host);
  EXPECT_EQ(parsed->port, original.port);
  EXPECT_EQ(parsed->user, original.user);
  EXPECT_EQ(parsed->dbname, original.dbname);
  EXPECT_EQ(parsed->password, original.password);
  EXPECT_EQ(parsed->connect_timeout, Millis(3000));
  EXPECT_EQ(parsed->application_name, original.application_name);
  EXPECT_EQ(parsed->options.at("sslmode"), "disable");
  EXPECT_EQ(parsed->options.at("options"), "-c statement_timeout=750");
}

TEST(PgConninfoTest, ParsesRepmgrStyleConninfoOverDefaults) {
  PgParams defaults;
  defaults.password = "from-defaults";
  defaults.statement_timeout = Millis(1234);
  auto parsed = ParseConninfo("host=10.0.0.2 port=5433 user=repmgr dbname=repmgr connect_timeout=2",
                              defaults);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->Describe(), "10.0.0.2:5433/repmgr as repmgr");
  EXPECT_EQ(parsed->connect_timeout, Millis(2000));
  EXPECT_EQ(parsed->password, "from-defaults");
  EXPECT_EQ(parsed->statement_timeout, Millis(1234));
  EXPECT_TRUE(parsed->options.empty());
}

TEST(PgConninfoTest, ParsesUris) {
  auto parsed = ParseConninfo("postgresql://app:s3cret@db.example:6543/sales?sslmode=require");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->Describe(), "db.example:6543/sales as app");
  EXPECT_EQ(parsed->password, "s3cret");
  EXPECT_EQ(parsed->options.at("sslmode"), "require");
}

TEST(PgConninfoTest, ParseErrorsNeverEchoTheString) {
  auto bad = ParseConninfo("host=h password 'S3cretValue'");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("S3cretValue")));
  auto bad_port = ParseConninfo("host=h port=99999");
  ASSERT_FALSE(bad_port.ok());
  EXPECT_THAT(bad_port.status().message(), HasSubstr("port"));
}

TEST(PgConninfoTest, ScrubSecretsRemovesPasswordWhereverItAppears) {
  PgParams p = TrickyParams();
  std::string echoed =
      std::string("FATAL: bad conninfo \"") + kPassword + "\" password=" + kPassword;
  std::string scrubbed = ScrubSecrets(echoed, p);
  EXPECT_THAT(scrubbed, Not(HasSubstr("Tr1cky")));
  EXPECT_THAT(scrubbed, HasSubstr("bad conninfo"));
}

TEST(PgConninfoTest, DescribeDefaultsDbnameToUser) {
  PgParams p;
  p.host = "h";
  p.port = 5;
  p.user = "u";
  EXPECT_EQ(p.Describe(), "h:5/u as u");
}

// --- Typed rows ----------------------------------------------------------------------------------

PgResult SampleResult() {
  return PgResult({"id", "name", "ok", "ratio", "big", "nothing"},
                  {"7", "pg1", "t", "0.5", "9000000000", std::nullopt,  //
                   "-3", "pg 2", "f", "NaN", "x", "present"},
                  -1);
}

TEST(PgRowTest, ReadsTypedValuesByNameAndIndex) {
  PgResult result = SampleResult();
  ASSERT_EQ(result.num_rows(), 2);
  ASSERT_EQ(result.num_columns(), 6);
  Row row = result.row(0);
  EXPECT_EQ(*row.GetInt64("id"), 7);
  EXPECT_EQ(*row.GetInt32("id"), 7);
  EXPECT_EQ(*row.GetString("name"), "pg1");
  EXPECT_TRUE(*row.GetBool("ok"));
  EXPECT_DOUBLE_EQ(*row.GetDouble("ratio"), 0.5);
  EXPECT_EQ(*row.GetInt64("big"), 9000000000);
  EXPECT_EQ(*row.Get<std::string>(1), "pg1");
  EXPECT_EQ(*row.Get<std::optional<int64_t>>("nothing"), std::nullopt);
  EXPECT_TRUE(row.IsNull("nothing"));
  EXPECT_FALSE(row.IsNull("id"));
  Row second = result.rows()[1];
  EXPECT_EQ(*second.GetInt64("id"), -3);
  EXPECT_FALSE(*second.GetBool("ok"));
  EXPECT_TRUE(std::isnan(*second.GetDouble("ratio")));
  EXPECT_EQ(*second.Get<std::optional<std::string>>("nothing"), "present");
}

TEST(PgRowTest, ConversionErrorsNameTheColumn) {
  PgResult result = SampleResult();
  Row row = result.row(0);
  auto not_int = row.GetInt64("name");
  ASSERT_FALSE(not_int.ok());
  EXPECT_EQ(not_int.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(not_int.status().message(), "column \"name\": expected an integer, got \"pg1\"");
  EXPECT_EQ(row.GetInt32("big").status().message(),
            "column \"big\": expected a 32-bit integer, got \"9000000000\"");
  EXPECT_EQ(row.GetBool("id").status().message(),
            "column \"id\": expected a boolean (t or f), got \"7\"");
  EXPECT_EQ(row.GetString("nothing").status().message(), "column \"nothing\" is NULL");
  EXPECT_EQ(row.GetString("missing").status().message(),
            "no column \"missing\" in result (columns: id, name, ok, ratio, big, nothing)");
  EXPECT_EQ(row.Get<int64_t>(9).status().message(), "no column #9 in result (6 columns)");
  EXPECT_EQ(result.row(1).Get<std::optional<int64_t>>("big").status().message(),
            "column \"big\": expected an integer, got \"x\"");
}

TEST(PgSqlStateTest, MapsToStatusCodes) {
  EXPECT_EQ(CodeForSqlState("57014"), StatusCode::kTimeout);
  EXPECT_EQ(CodeForSqlState("28P01"), StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeForSqlState("42501"), StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeForSqlState("08006"), StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("57P01"), StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("57P03"), StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("42P01"), StatusCode::kNotFound);
  EXPECT_EQ(CodeForSqlState("3F000"), StatusCode::kNotFound);
  EXPECT_EQ(CodeForSqlState("25006"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("23505"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("42601"), StatusCode::kInternal);
}

// --- Connection failures without a server --------------------------------------------------------

TEST(PgConnectTest, ClosedPortIsUnavailableNamingHostPortAndNotThePassword) {
  PgParams p = TrickyParams();
  auto conn = PgConnection::Connect(p);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status().ToString();
  const std::string& m = conn.status().message();
  EXPECT_THAT(m, HasSubstr("127.0.0.1:1/my'db as app user"));
  EXPECT_THAT(m, Not(HasSubstr("Tr1cky")));
  EXPECT_THAT(m, Not(HasSubstr("\n")));
}

// A listener that accepts TCP connections (the kernel does, through the backlog) and never speaks:
// a hung server. Connect must give up on its own deadline.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 16);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(PgConnectTest, HungServerTimesOutOnTheClientDeadline) {
  SilentListener listener;
  ASSERT_GT(listener.port(), 0);
  PgParams p = TrickyParams();
  p.port = listener.port();
  p.connect_timeout = Millis(300);
  auto start = std::chrono::steady_clock::now();
  auto conn = PgConnection::Connect(p);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(conn.status().message(),
              AllOf(HasSubstr("127.0.0.1:" + std::to_string(listener.port())),
                    HasSubstr("timed out after 300 ms"), Not(HasSubstr("Tr1cky"))));
  EXPECT_GE(elapsed, Millis(300));
  EXPECT_LT(elapsed, Millis(2000));
}

TEST(PgConnectTest, RejectsOwnKeywordsInOptions) {
  PgParams p = TrickyParams();
  p.options["password"] = "x";
  auto conn = PgConnection::Connect(p);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(conn.status().message(), HasSubstr("\"password\""));
}

TEST(PgConnectTest, UnresolvableHostIsUnavailable) {
  PgParams p = TrickyParams();
  p.host = "no-such-host.invalid";
  auto conn = PgConnection::Connect(p);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status().ToString();
  EXPECT_THAT(conn.status().message(), HasSubstr("no-such-host.invalid:1"));
}

}  // namespace
}  // namespace pgherald::pg
