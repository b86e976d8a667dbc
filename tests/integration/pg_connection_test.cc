// PgConnection against the lab's real PostgreSQL 15 cluster: typed rows, parameters, batches, the
// error mapping (statement timeout, wrong password, missing table, write on a standby, a killed
// backend, a frozen server) and that no message ever carries a password.
#include "common/pg_connection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "tests/lab/lab.h"

namespace pgherald::pg {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using SteadyClock = std::chrono::steady_clock;

// One lab for the whole binary: PostgreSQL only.
class LabEnvironment : public ::testing::Environment {
 public:
  static lab::Lab* lab() { return lab_.get(); }
  void SetUp() override {
    auto up = lab::Lab::Up({.zk_ensemble = false, .postgres = true});
    // A server that cannot start is a failure, never a skip.
    ASSERT_TRUE(up.ok()) << up.status().ToString();
    lab_ = std::move(up).value();
  }
  void TearDown() override { lab_.reset(); }

 private:
  static std::unique_ptr<lab::Lab> lab_;
};
std::unique_ptr<lab::Lab> LabEnvironment::lab_;
[[maybe_unused]] ::testing::Environment* const kLabEnvironment =
    ::testing::AddGlobalTestEnvironment(new LabEnvironment);

class PgConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lab_ = LabEnvironment::lab();
    ASSERT_NE(lab_, nullptr) << "the lab did not come up";
  }

  // The superuser on `node`, trusted on loopback.
  PgParams Superuser(int node) const {
    auto params = ParseConninfo(lab_->pg_conninfo(node));
    EXPECT_TRUE(params.ok()) << params.status().ToString();
    params->connect_timeout = Millis(3000);
    params->statement_timeout = Millis(5000);
    return *params;
  }

  // The application user, which needs its scram-sha-256 password.
  PgParams App(int node) const {
    PgParams p;
    p.host = "127.0.0.1";
    p.port = lab_->pg_port(node);
    p.user = lab_->Env("PG_APP_USER");
    p.dbname = lab_->Env("PG_APP_DATABASE");
    p.password = lab_->Env("PG_APP_PASSWORD");
    return p;
  }

  std::unique_ptr<PgConnection> MustConnect(const PgParams& params) {
    auto conn = PgConnection::Connect(params);
    EXPECT_TRUE(conn.ok()) << conn.status().ToString();
    return conn.ok() ? std::move(conn).value() : nullptr;
  }

  std::string HostPort(int node) const {
    return "127.0.0.1:" + std::to_string(lab_->pg_port(node));
  }

  lab::Lab* lab_ = nullptr;
};

TEST_F(PgConnectionTest, TypedRowsAndParameters) {
  auto conn = MustConnect(Superuser(1));
  ASSERT_NE(conn, nullptr);
  EXPECT_TRUE(conn->ok());
  EXPECT_EQ(conn->Describe(), HostPort(1) + "/postgres as postgres");
  EXPECT_GE(conn->server_version(), 150000);

  auto result = conn->Exec(
      "SELECT 42::int4 AS i32, 9000000000::int8 AS i64, true AS yes, false AS no,"
      " NULL::int AS nothing, 'héllo wörld'::text AS s, 1.5::float8 AS d,"
      " $1::text AS p, $2::int AS q, $3::int + 1 AS r",
      {"it's \"quoted\"", std::nullopt, "41"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->num_rows(), 1);
  Row row = result->row(0);
  EXPECT_EQ(*row.GetInt32("i32"), 42);
  EXPECT_EQ(*row.GetInt64("i64"), 9000000000);
  EXPECT_TRUE(*row.GetBool("yes"));
  EXPECT_FALSE(*row.GetBool("no"));
  EXPECT_TRUE(row.IsNull("nothing"));
  EXPECT_EQ(*row.Get<std::optional<int64_t>>("nothing"), std::nullopt);
  EXPECT_EQ(*row.GetString("s"), "héllo wörld");
  EXPECT_DOUBLE_EQ(*row.GetDouble("d"), 1.5);
  EXPECT_EQ(*row.GetString("p"), "it's \"quoted\"");
  EXPECT_TRUE(row.IsNull("q"));
  EXPECT_EQ(*row.GetInt64("r"), 42);
  EXPECT_EQ(row.GetInt64("s").status().message(),
            "column \"s\": expected an integer, got \"héllo wörld\"");
}

TEST_F(PgConnectionTest, ManyRows) {
  auto conn = MustConnect(Superuser(1));
  ASSERT_NE(conn, nullptr);
  auto result = conn->Exec("SELECT n, n % 2 = 0 AS even FROM generate_series(1, 100) AS n");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->num_rows(), 100);
  int64_t sum = 0;
  int evens = 0;
  for (const Row& row : result->rows()) {
    sum += *row.GetInt64("n");
    evens += *row.GetBool("even") ? 1 : 0;
  }
  EXPECT_EQ(sum, 5050);
  EXPECT_EQ(evens, 50);
}

TEST_F(PgConnectionTest, ScramUserConnectsWithItsPassword) {
  auto conn = MustConnect(App(1));
  ASSERT_NE(conn, nullptr);
  auto result = conn->Exec("SELECT current_user AS who");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(*result->row(0).GetString("who"), lab_->Env("PG_APP_USER"));
}

TEST_F(PgConnectionTest, WrongPasswordIsPermissionDeniedWithoutThePassword) {
  PgParams params = App(1);
  const std::string wrong = "Wr0ng-" + *params.password + "-pw";
  params.password = wrong;
  auto conn = PgConnection::Connect(params);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kPermissionDenied) << conn.status().ToString();
  EXPECT_THAT(conn.status().message(),
              AllOf(HasSubstr(HostPort(1)), HasSubstr(lab_->Env("PG_APP_USER")),
                    HasSubstr("password authentication failed"), Not(HasSubstr(wrong)),
                    Not(HasSubstr(lab_->Env("PG_APP_PASSWORD")))));
}

TEST_F(PgConnectionTest, MissingPasswordIsPermissionDenied) {
  PgParams params = App(1);
  params.password.reset();
  auto conn = PgConnection::Connect(params);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kPermissionDenied) << conn.status().ToString();
}

TEST_F(PgConnectionTest, StatementTimeoutIsTimeoutNamingTheServer) {
  PgParams params = Superuser(1);
  params.statement_timeout = Millis(200);
  auto conn = MustConnect(params);
  ASSERT_NE(conn, nullptr);
  const auto start = SteadyClock::now();
  auto result = conn->Exec("SELECT pg_sleep(30)");
  const auto elapsed = SteadyClock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kTimeout);
  EXPECT_THAT(
      result.status().message(),
      AllOf(HasSubstr(HostPort(1)), HasSubstr("statement timeout"), HasSubstr("[SQLSTATE 57014]")));
  EXPECT_EQ(conn->last_sqlstate(), "57014");
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  // A server-side timeout leaves the session usable.
  EXPECT_TRUE(conn->ok());
  auto next = conn->Exec("SELECT 1 AS one");
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(conn->last_sqlstate(), "");
}

TEST_F(PgConnectionTest, MissingTableIsNotFound) {
  auto conn = MustConnect(Superuser(1));
  ASSERT_NE(conn, nullptr);
  auto result = conn->Exec("SELECT * FROM pgherald_no_such_table");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(),
              AllOf(HasSubstr(HostPort(1)), HasSubstr("pgherald_no_such_table"),
                    HasSubstr("[SQLSTATE 42P01]")));
  EXPECT_EQ(conn->last_sqlstate(), "42P01");
  EXPECT_TRUE(conn->ok());
}

TEST_F(PgConnectionTest, SyntaxErrorIsInternal) {
  auto conn = MustConnect(Superuser(1));
  ASSERT_NE(conn, nullptr);
  auto result = conn->Exec("SELEC 1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
  EXPECT_EQ(conn->last_sqlstate(), "42601");
}

TEST_F(PgConnectionTest, WriteOnStandbyIsFailedPrecondition) {
  // Node 2 starts as a standby of node 1.
  auto conn = MustConnect(Superuser(2));
  ASSERT_NE(conn, nullptr);
  auto recovery = conn->Exec("SELECT pg_is_in_recovery() AS in_recovery");
  ASSERT_TRUE(recovery.ok()) << recovery.status().ToString();
  ASSERT_TRUE(*recovery->row(0).GetBool("in_recovery"));
  auto write = conn->Exec("CREATE TABLE pgherald_should_fail (x int)");
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().code(), StatusCode::kFailedPrecondition) << write.status().ToString();
  EXPECT_EQ(conn->last_sqlstate(), "25006");
}

TEST_F(PgConnectionTest, BatchReturnsOneResultPerStatement) {
  auto conn = MustConnect(Superuser(1));
  ASSERT_NE(conn, nullptr);
  auto results = conn->ExecBatch(
      "CREATE TEMP TABLE beats (id int PRIMARY KEY, at timestamptz);"
      "INSERT INTO beats VALUES (1, now()), (2, now());"
      "UPDATE beats SET at = now() WHERE id = 1;"
      "SELECT count(*) AS n, pg_is_in_recovery() AS in_recovery FROM beats");
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 4u);
  EXPECT_EQ((*results)[1].affected_rows(), 2);
  EXPECT_EQ((*results)[2].affected_rows(), 1);
  EXPECT_EQ(*(*results)[3].row(0).GetInt64("n"), 2);
  EXPECT_FALSE(*(*results)[3].row(0).GetBool("in_recovery"));
}

TEST_F(PgConnectionTest, FailedBatchTransactionIsRolledBack) {
  auto conn = MustConnect(Superuser(1));
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Exec("CREATE TEMP TABLE t (x int)").ok());
  auto failed = conn->ExecBatch("BEGIN; INSERT INTO t VALUES (1); SELECT 1/0; COMMIT");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(conn->last_sqlstate(), "22012");
  auto count = conn->Exec("SELECT count(*) AS n FROM t");
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count->row(0).GetInt64("n"), 0);
}

TEST_F(PgConnectionTest, TerminatedBackendIsUnavailable) {
  auto victim = MustConnect(Superuser(1));
  auto killer = MustConnect(Superuser(1));
  ASSERT_NE(victim, nullptr);
  ASSERT_NE(killer, nullptr);
  auto pid = victim->Exec("SELECT pg_backend_pid() AS pid");
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  // pg_terminate_backend waits (up to its timeout) until the backend has exited.
  auto killed = killer->Exec("SELECT pg_terminate_backend($1::int, 5000) AS done",
                             {*pid->row(0).GetString("pid")});
  ASSERT_TRUE(killed.ok()) << killed.status().ToString();
  ASSERT_TRUE(*killed->row(0).GetBool("done"));
  auto result = victim->Exec("SELECT 1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_THAT(result.status().message(), HasSubstr(HostPort(1)));
  EXPECT_FALSE(victim->ok());
  auto again = victim->Exec("SELECT 1");
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
}

// SIGSTOP of a whole node: the server-side statement_timeout cannot fire, so only the client-side
// deadline (statement_timeout + max(connect_timeout, 1 s)) gets the caller back.
TEST_F(PgConnectionTest, FrozenServerTimesOutOnTheClientDeadline) {
  PgParams params = App(3);
  params.statement_timeout = Millis(200);
  params.connect_timeout = Millis(500);
  auto conn = MustConnect(params);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(lab_->PgFreeze(3).ok());
  struct Thaw {
    lab::Lab* lab;
    ~Thaw() {
      Status s = lab->PgThaw(3);
      if (!s.ok()) std::fprintf(stderr, "pg-thaw 3 failed: %s\n", s.ToString().c_str());
    }
  } thaw{lab_};
  const auto start = SteadyClock::now();
  auto result = conn->Exec("SELECT 1");
  const auto elapsed = SteadyClock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kTimeout) << result.status().ToString();
  EXPECT_THAT(result.status().message(), AllOf(HasSubstr(HostPort(3)), HasSubstr("no answer"),
                                               Not(HasSubstr(lab_->Env("PG_APP_PASSWORD")))));
  EXPECT_GE(elapsed, Millis(1200));
  EXPECT_LT(elapsed, Millis(5000));
  EXPECT_FALSE(conn->ok());

  // Connecting to the frozen node fails on the connect deadline.
  auto connect = PgConnection::Connect(params);
  ASSERT_FALSE(connect.ok());
  EXPECT_EQ(connect.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(connect.status().message(), HasSubstr("timed out after 500 ms"));
}

TEST_F(PgConnectionTest, StoppedNodeIsUnavailable) {
  // Runs last: it stops node 3 for good (the lab is torn down after this binary).
  ASSERT_TRUE(lab_->PgStop(3).ok());
  auto conn = PgConnection::Connect(App(3));
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status().ToString();
  EXPECT_THAT(conn.status().message(),
              AllOf(HasSubstr(HostPort(3)), Not(HasSubstr(lab_->Env("PG_APP_PASSWORD")))));
}

}  // namespace
}  // namespace pgherald::pg
