// The pgbouncer sink against the real pgbouncer 1.18 of the lab (no ZooKeeper, no watch daemon):
// the sink is driven directly with route and block targets. What it must survive is pgbouncer's
// parking of a KILLed auto-database (one made from the `*` entry): once its last pool is gone the
// janitor takes it off SHOW DATABASES, still paused, and hands it back, still paused, to the next
// client. A RESUME built from SHOW DATABASES then misses it and every client through pgbouncer
// waits out query_wait_timeout (the drills' "writes through pgbouncer never landed" failure).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include "pgbouncer/pgbouncer_sink.h"
#include "tests/lab/lab.h"

namespace pgherald::watch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

bool PollUntil(seconds timeout, const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));  // poll interval
  }
}

// One fresh connection, one query: the first cell, or "ERROR:..." .
std::string QueryOnce(const std::string& conninfo, const std::string& sql,
                      int connect_timeout_s = 2) {
  PGconn* c =
      PQconnectdb((conninfo + " connect_timeout=" + std::to_string(connect_timeout_s)).c_str());
  std::string out;
  if (PQstatus(c) != CONNECTION_OK) {
    out = std::string("ERROR:") + PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0
              ? std::string(PQgetvalue(r, 0, 0))
              : std::string("ERROR:") + PQerrorMessage(c);
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

class PgbouncerSinkLabTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    lab::LabOptions options;
    options.zk_ensemble = false;
    options.postgres = true;
    options.pgbouncer = true;
    auto up = lab::Lab::Up(options);
    ASSERT_TRUE(up.ok()) << up.status().ToString();  // a missing server fails, never skips
    lab_ = std::move(*up);
  }
  static void TearDownTestSuite() { lab_.reset(); }

  static PgbouncerSinkConfig Config(bool kill_old) {
    PgbouncerSinkConfig c;
    c.databases_file = lab_->Env("PGBOUNCER_DATABASES_FILE");
    c.admin.port = std::stoi(lab_->Env("PGBOUNCER_PORT"));
    c.admin.user = lab_->Env("PGBOUNCER_ADMIN_USER");
    c.admin.dbname = "pgbouncer";
    c.kill_old = kill_old;
    c.pause_timeout = milliseconds(1000);
    return c;
  }
  static RouteTarget Target(int node, std::uint64_t epoch, RouteTarget::Action action) {
    RouteTarget t;
    t.action = action;
    t.master.cluster = "main";
    t.master.node = "node" + std::to_string(node);
    t.master.host = "127.0.0.1";
    t.master.port = lab_->pg_port(node);
    t.master.epoch = epoch;
    t.master.timeline = 1;
    return t;
  }
  static std::string ViaPgbouncer() {
    return "host=127.0.0.1 port=" + lab_->Env("PGBOUNCER_PORT") +
           " user=" + lab_->Env("PG_APP_USER") + " password=" + lab_->Env("PG_APP_PASSWORD") +
           " dbname=" + lab_->Env("PG_APP_DATABASE");
  }
  static std::string ConsoleConninfo() {
    return "host=127.0.0.1 port=" + lab_->Env("PGBOUNCER_PORT") +
           " user=" + lab_->Env("PGBOUNCER_ADMIN_USER") + " dbname=pgbouncer";
  }
  // Whether SHOW DATABASES lists the app database (pgbouncer's own view).
  static bool AppDatabaseListed() {
    PGconn* c = PQconnectdb(ConsoleConninfo().c_str());
    bool listed = false;
    if (PQstatus(c) == CONNECTION_OK) {
      PGresult* r = PQexec(c, "SHOW DATABASES");
      for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); ++i) {
        listed = listed || lab_->Env("PG_APP_DATABASE") == PQgetvalue(r, i, 0);
      }
      PQclear(r);
    }
    PQfinish(c);
    return listed;
  }
  // The server port a fresh client through pgbouncer lands on.
  static std::string PortThroughPgbouncer() {
    return QueryOnce(ViaPgbouncer(), "select inet_server_port()::text");
  }

  // pgbouncer's log: where it ends now, and what was added since.
  static std::streamoff LogEnd() {
    std::ifstream log(lab_->Env("PGBOUNCER_LOG"), std::ios::ate);
    return log.tellg();
  }
  static std::string LogSince(std::streamoff offset) {
    std::ifstream log(lab_->Env("PGBOUNCER_LOG"));
    log.seekg(offset);
    return std::string((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  }

  static inline std::unique_ptr<lab::Lab> lab_;
};

// Blocks (KILL), waits until pgbouncer has parked the killed auto-database, then routes to
// `node`: a fresh client through pgbouncer must land on it.
void BlockParkThenRoute(PgbouncerSink& sink, int blocked_node, int node, std::uint64_t epoch) {
  ASSERT_TRUE(
      sink.Apply(PgbouncerSinkLabTest::Target(blocked_node, epoch - 1, RouteTarget::Action::kRoute))
          .ok());
  const std::string before = std::to_string(PgbouncerSinkLabTest::lab_->pg_port(blocked_node));
  ASSERT_TRUE(PollUntil(seconds(10),
                        [&] { return PgbouncerSinkLabTest::PortThroughPgbouncer() == before; }))
      << "last: " << PgbouncerSinkLabTest::PortThroughPgbouncer();

  ASSERT_TRUE(
      sink.Apply(PgbouncerSinkLabTest::Target(blocked_node, epoch - 1, RouteTarget::Action::kBlock))
          .ok());
  ASSERT_TRUE(PollUntil(seconds(10), [] { return !PgbouncerSinkLabTest::AppDatabaseListed(); }))
      << "pgbouncer still lists the killed auto-database: the state under test was not reached";

  auto routed = sink.Apply(PgbouncerSinkLabTest::Target(node, epoch, RouteTarget::Action::kRoute));
  ASSERT_TRUE(routed.ok()) << routed.ToString();
  // One client, well inside query_wait_timeout (5 s in the lab): a database left paused makes it
  // wait that long and fail.
  EXPECT_EQ(PgbouncerSinkLabTest::PortThroughPgbouncer(),
            std::to_string(PgbouncerSinkLabTest::lab_->pg_port(node)));
}

// The voucher of the same master comes back after a block (the file does not change, so there is
// no RELOAD to drop the parked database): only RESUME by name releases it.
TEST_F(PgbouncerSinkLabTest, RouteToTheSameMasterAfterABlockReleasesAParkedAutoDatabase) {
  PgbouncerSink sink(Config(/*kill_old=*/true));
  BlockParkThenRoute(sink, 1, 1, 2);
}

TEST_F(PgbouncerSinkLabTest, RouteToANewMasterAfterABlockReleasesAParkedAutoDatabase) {
  PgbouncerSink sink(Config(/*kill_old=*/false));
  BlockParkThenRoute(sink, 1, 2, 4);
}

TEST_F(PgbouncerSinkLabTest, CutOfTheOldTargetLeavesNoDatabasePaused) {
  PgbouncerSink sink(Config(/*kill_old=*/true));
  for (int round = 0; round < 6; ++round) {
    const int node = 1 + round % 2;
    const std::string port = std::to_string(lab_->pg_port(node));
    // A client on the database, so that the cut has a pool to kill.
    ASSERT_TRUE(
        PollUntil(seconds(10), [&] { return PortThroughPgbouncer().rfind("ERROR", 0) != 0; }));
    auto st = sink.Apply(Target(node, 10 + round, RouteTarget::Action::kRoute));
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(PortThroughPgbouncer(), port) << "round " << round;
  }
}

// pgbouncer crashes now and then on KILL (docs/pgbouncer.md): kills pgbouncer (SIGKILL, as a
// crash) and waits until the lab's supervisor has restarted it and its console answers.
void CrashPgbouncerAndAwaitItsRestart() {
  // The supervisor's PID is the lab's record; its child is pgbouncer itself.
  std::ifstream record(PgbouncerSinkLabTest::lab_->dir() + "/pids/pgbouncer");
  pid_t supervisor = 0;
  record >> supervisor;
  ASSERT_GT(supervisor, 0);
  const std::string children_file = "/proc/" + std::to_string(supervisor) + "/task/" +
                                    std::to_string(supervisor) + "/children";
  std::ifstream children(children_file);
  pid_t pgbouncer = 0;
  children >> pgbouncer;
  ASSERT_GT(pgbouncer, 0) << "no pgbouncer under the lab's supervisor " << supervisor;
  ASSERT_EQ(::kill(pgbouncer, SIGKILL), 0);
  ASSERT_TRUE(PollUntil(seconds(10), [&] {
    std::ifstream again(children_file);
    pid_t now = 0;
    again >> now;
    return now > 0 && now != pgbouncer &&
           QueryOnce(PgbouncerSinkLabTest::ConsoleConninfo(), "SHOW VERSION").rfind("ERROR", 0) !=
               0;
  })) << "the lab did not restart pgbouncer";
}

// The lab restarts a crashed pgbouncer, as a supervisor would. A route after the restart must
// still go through: the killed database the sink remembers is unknown to the new pgbouncer, and
// its RESUME by name must not fail the apply.
TEST_F(PgbouncerSinkLabTest, RouteAfterPgbouncerRestartedFromABlockGoesThrough) {
  PgbouncerSink sink(Config(/*kill_old=*/true));
  ASSERT_TRUE(sink.Apply(Target(1, 30, RouteTarget::Action::kRoute)).ok());
  ASSERT_TRUE(sink.Apply(Target(1, 30, RouteTarget::Action::kBlock)).ok());
  CrashPgbouncerAndAwaitItsRestart();

  auto routed = sink.Apply(Target(2, 31, RouteTarget::Action::kRoute));
  ASSERT_TRUE(routed.ok()) << routed.ToString();
  EXPECT_EQ(PortThroughPgbouncer(), std::to_string(lab_->pg_port(2)));
}

// A block must hold across a pgbouncer restart: the restarted pgbouncer reads the databases file,
// which under the block used to still name the last master, so clients were routed to it again
// while the sink believed the block held (the quorum-loss safety drill's failure, issue 12).
TEST_F(PgbouncerSinkLabTest, ABlockHoldsWhenPgbouncerRestartsDuringIt) {
  for (bool kill_old : {true, false}) {
    SCOPED_TRACE(kill_old ? "kill_old" : "pause");
    PgbouncerSink sink(Config(kill_old));
    const std::uint64_t epoch = kill_old ? 40 : 50;
    ASSERT_TRUE(sink.Apply(Target(1, epoch, RouteTarget::Action::kRoute)).ok());
    const std::string node1 = std::to_string(lab_->pg_port(1));
    ASSERT_TRUE(PollUntil(seconds(10), [&] { return PortThroughPgbouncer() == node1; }));
    auto blocked = sink.Apply(Target(1, epoch, RouteTarget::Action::kBlock));
    ASSERT_TRUE(blocked.ok()) << blocked.ToString();
    CrashPgbouncerAndAwaitItsRestart();
    // The restarted pgbouncer is not paused: a client must fail (no server to reach), and must
    // never land on the last master.
    const std::string through = PortThroughPgbouncer();
    EXPECT_EQ(through.rfind("ERROR", 0), 0u) << "a blocked pgbouncer routed to port " << through;
    // The sink's next route still goes through, to the new master.
    auto routed = sink.Apply(Target(2, epoch + 1, RouteTarget::Action::kRoute));
    ASSERT_TRUE(routed.ok()) << routed.ToString();
    EXPECT_EQ(PortThroughPgbouncer(), std::to_string(lab_->pg_port(2)));
  }
}

// The route that ends a block sends no KILL (nor PAUSE): the block already cut every session and
// pointed every entry nowhere, so nothing is left to cut, and a KILL of databases that are killed
// and paused, with clients queued on them, is what pgbouncer 1.18 survives worst (it can crash
// on KILL; in one loaded CI run of the quorum-loss drill its console stopped answering for good
// during the route that ended a block, which then still sent that KILL). pgbouncer's own log says
// which commands it received.
TEST_F(PgbouncerSinkLabTest, TheRouteAfterABlockSendsNoKill) {
  for (bool kill_old : {true, false}) {
    SCOPED_TRACE(kill_old ? "kill_old" : "pause");
    PgbouncerSink sink(Config(kill_old));
    const std::uint64_t epoch = kill_old ? 60 : 70;
    ASSERT_TRUE(sink.Apply(Target(1, epoch, RouteTarget::Action::kRoute)).ok());
    ASSERT_TRUE(sink.Apply(Target(1, epoch, RouteTarget::Action::kBlock)).ok());
    const std::streamoff offset = LogEnd();
    auto routed = sink.Apply(Target(2, epoch + 1, RouteTarget::Action::kRoute));
    ASSERT_TRUE(routed.ok()) << routed.ToString();
    EXPECT_EQ(PortThroughPgbouncer(), std::to_string(lab_->pg_port(2)));
    const std::string added = LogSince(offset);
    EXPECT_NE(added.find("RELOAD command issued"), std::string::npos) << added;
    EXPECT_EQ(added.find("KILL"), std::string::npos) << added;
    EXPECT_EQ(added.find("PAUSE"), std::string::npos) << added;
  }
}

// Issue 17: a held route (the verified master is gone) PAUSEs pgbouncer: a client connected
// before the hold and one that connects during it both send a statement, which waits in pgbouncer
// instead of failing; the next master's route RELOADs and RESUMEs (no KILL: nobody is cut) and
// both statements run there. Without the hold they would run on (or fail against) the old master.
TEST_F(PgbouncerSinkLabTest, AHoldParksStatementsAndTheNextMasterRunsThem) {
  for (bool kill_old : {false, true}) {
    SCOPED_TRACE(kill_old ? "kill_old" : "pause");
    PgbouncerSink sink(Config(kill_old));
    const std::uint64_t epoch = kill_old ? 80 : 90;
    ASSERT_TRUE(sink.Apply(Target(1, epoch, RouteTarget::Action::kRoute)).ok());
    ASSERT_TRUE(PollUntil(seconds(10), [&] {
      return PortThroughPgbouncer() == std::to_string(lab_->pg_port(1));
    })) << PortThroughPgbouncer();
    std::unique_ptr<PGconn, decltype(&PQfinish)> before(
        PQconnectdb((ViaPgbouncer() + " connect_timeout=10").c_str()), &PQfinish);
    ASSERT_EQ(PQstatus(before.get()), CONNECTION_OK) << PQerrorMessage(before.get());

    RouteTarget held = Target(1, epoch, RouteTarget::Action::kRoute);
    held.hold = true;
    auto applied = sink.Apply(held);
    ASSERT_TRUE(applied.ok()) << applied.ToString();
    const std::streamoff offset = LogEnd();

    ASSERT_EQ(PQsendQuery(before.get(), "select inet_server_port()::text"), 1);
    std::string during;
    std::thread late(
        [&] { during = QueryOnce(ViaPgbouncer(), "select inet_server_port()::text", 10); });
    // pgbouncer's own view: both clients wait (SHOW CLIENTS state "waiting"); the route comes
    // only then, so the statements were certainly parked by the hold.
    const bool parked = PollUntil(seconds(4), [&] {
      PGconn* c = PQconnectdb(ConsoleConninfo().c_str());
      int waiting = 0;
      if (PQstatus(c) == CONNECTION_OK) {
        PGresult* r = PQexec(c, "SHOW CLIENTS");
        const int state = PQfnumber(r, "state");
        for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && state >= 0 && i < PQntuples(r);
             ++i) {
          if (std::string(PQgetvalue(r, i, state)) == "waiting") ++waiting;
        }
        PQclear(r);
      }
      PQfinish(c);
      return waiting >= 2;
    });
    auto routed = sink.Apply(Target(2, epoch + 1, RouteTarget::Action::kRoute));
    late.join();
    ASSERT_TRUE(parked) << "the statements did not wait in pgbouncer during the hold";
    ASSERT_TRUE(routed.ok()) << routed.ToString();
    const std::string port2 = std::to_string(lab_->pg_port(2));
    EXPECT_EQ(during, port2);
    std::string first;
    while (PGresult* r = PQgetResult(before.get())) {
      if (first.empty()) {
        first = PQresultStatus(r) == PGRES_TUPLES_OK
                    ? std::string(PQgetvalue(r, 0, 0))
                    : std::string("ERROR:") + PQerrorMessage(before.get());
      }
      PQclear(r);
    }
    EXPECT_EQ(first, port2) << "the client connected before the hold was cut or ran elsewhere";
    const std::string added = LogSince(offset);
    EXPECT_EQ(added.find("KILL"), std::string::npos) << added;
  }
}

// Any client can register an auto-database through the `*` entry, named as it likes: `zz-x` here.
// The admin console refuses `KILL zz-x` (invalid command); the sink used to fail on it forever
// and, with kill_old, left the databases it had already KILLed paused. Names are now quoted.
TEST_F(PgbouncerSinkLabTest, ADatabaseNamedByAClientIsKilledAndResumedLikeAnyOther) {
  for (bool kill_old : {true, false}) {
    SCOPED_TRACE(kill_old ? "kill_old" : "pause");
    PgbouncerSink sink(Config(kill_old));
    const std::uint64_t epoch = kill_old ? 40 : 50;
    ASSERT_TRUE(sink.Apply(Target(1, epoch, RouteTarget::Action::kRoute)).ok());
    ASSERT_TRUE(PollUntil(
        seconds(10), [&] { return PortThroughPgbouncer() == std::to_string(lab_->pg_port(1)); }));
    // The login to PostgreSQL fails (no such database there), but pgbouncer has registered the
    // auto-database by then.
    const std::string odd = "host=127.0.0.1 port=" + lab_->Env("PGBOUNCER_PORT") +
                            " user=" + lab_->Env("PG_APP_USER") +
                            " password=" + lab_->Env("PG_APP_PASSWORD") + " dbname=zz-x";
    (void)QueryOnce(odd, "select 1");
    auto listed = [&] {
      PGconn* c = PQconnectdb(ConsoleConninfo().c_str());
      bool found = false;
      PGresult* r = PQexec(c, "SHOW DATABASES");
      for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); ++i) {
        found = found || std::string(PQgetvalue(r, i, 0)) == "zz-x";
      }
      PQclear(r);
      PQfinish(c);
      return found;
    };
    ASSERT_TRUE(PollUntil(seconds(10), [&] {
      if (listed()) return true;
      (void)QueryOnce(odd, "select 1");
      return false;
    })) << "pgbouncer did not register zz-x: the state under test was not reached";
    // A client on the app database, so that the cut has a pool to kill.
    ASSERT_EQ(PortThroughPgbouncer(), std::to_string(lab_->pg_port(1)));

    auto routed = sink.Apply(Target(2, epoch + 1, RouteTarget::Action::kRoute));
    ASSERT_TRUE(routed.ok()) << routed.ToString();
    // Nothing left paused: pgbouncer's own view, and a fresh client well inside
    // query_wait_timeout.
    PGconn* c = PQconnectdb(ConsoleConninfo().c_str());
    PGresult* r = PQexec(c, "SHOW DATABASES");
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    const int paused = PQfnumber(r, "paused");
    ASSERT_GE(paused, 0);
    for (int i = 0; i < PQntuples(r); ++i) {
      EXPECT_STREQ(PQgetvalue(r, i, paused), "0")
          << "database " << PQgetvalue(r, i, 0) << " paused";
    }
    PQclear(r);
    PQfinish(c);
    EXPECT_EQ(PortThroughPgbouncer(), std::to_string(lab_->pg_port(2)));
  }
}

// A master record whose host carries connection keywords (a space) never reaches the file:
// `host=127.0.0.1 user=postgres` forced every pooled login to postgres.
TEST_F(PgbouncerSinkLabTest, AHostWithKeywordsIsRefusedAndTheRouteStays) {
  PgbouncerSink sink(Config(/*kill_old=*/true));
  ASSERT_TRUE(sink.Apply(Target(2, 60, RouteTarget::Action::kRoute)).ok());
  const std::string before = [&] {
    std::ifstream in(lab_->Env("PGBOUNCER_DATABASES_FILE"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  RouteTarget hostile = Target(1, 61, RouteTarget::Action::kRoute);
  hostile.master.host = "127.0.0.1 user=postgres";
  Status s = sink.Apply(hostile);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  std::ifstream in(lab_->Env("PGBOUNCER_DATABASES_FILE"));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), before);
  EXPECT_EQ(QueryOnce(ViaPgbouncer(), "select current_user"), lab_->Env("PG_APP_USER"));
  EXPECT_EQ(PortThroughPgbouncer(), std::to_string(lab_->pg_port(2)));
}

}  // namespace
}  // namespace pgherald::watch
