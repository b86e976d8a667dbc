// PgNodeProber's event loop against servers in the test itself: a port that refuses, a TCP
// listener that accepts and never answers (a hung node), and a fake PostgreSQL that speaks just
// enough of the protocol (trust authentication, simple queries) to answer what a script says:
// a valid probe row, garbage, an error, or nothing at all.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "orchestrator/probe.h"

namespace pgherald::orchestrator {
namespace {

using namespace std::chrono_literals;

// A listening socket on 127.0.0.1 in 31000-31399 (below the ephemeral range), first free port
// from a pid-dependent offset.
int ListenLoopback(int* port) {
  static int next = static_cast<int>(::getpid() % 400);
  for (int tries = 0; tries < 400; ++tries) {
    const int candidate = 31000 + (next++ % 400);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(candidate));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 64) == 0) {
      *port = candidate;
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

// Accepts TCP connections (the kernel completes the handshake) and never reads or answers.
class HungListener {
 public:
  HungListener() { fd_ = ListenLoopback(&port_); }
  ~HungListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// What the fake server sends back for one simple query: the raw protocol messages (ReadyForQuery
// is appended unless `hang`).
struct Reply {
  std::string messages;
  char status = 'I';  // ReadyForQuery's transaction status
  bool hang = false;  // never answer (the connection stays open)
};

std::string Message(char type, const std::string& body) {
  std::string out(1, type);
  const std::uint32_t len = htonl(static_cast<std::uint32_t>(body.size() + 4));
  out.append(reinterpret_cast<const char*>(&len), 4);
  return out + body;
}
std::string Int16(int v) {
  const std::uint16_t n = htons(static_cast<std::uint16_t>(v));
  return std::string(reinterpret_cast<const char*>(&n), 2);
}
std::string Int32(std::int32_t v) {
  const std::uint32_t n = htonl(static_cast<std::uint32_t>(v));
  return std::string(reinterpret_cast<const char*>(&n), 4);
}
// RowDescription + one DataRow per row (text cells, nullopt is NULL) + CommandComplete.
std::string Rows(const std::vector<std::string>& columns,
                 const std::vector<std::vector<std::optional<std::string>>>& rows) {
  std::string desc = Int16(static_cast<int>(columns.size()));
  for (const std::string& c : columns) {
    desc += c + std::string(1, '\0') + Int32(0) + Int16(0) + Int32(25) + Int16(-1) + Int32(-1) +
            Int16(0);
  }
  std::string out = Message('T', desc);
  for (const auto& row : rows) {
    std::string data = Int16(static_cast<int>(row.size()));
    for (const auto& cell : row) {
      data += cell ? Int32(static_cast<std::int32_t>(cell->size())) + *cell : Int32(-1);
    }
    out += Message('D', data);
  }
  return out + Message('C', "SELECT " + std::to_string(rows.size()) + std::string(1, '\0'));
}
std::string Complete(const std::string& tag) { return Message('C', tag + std::string(1, '\0')); }
std::string Error(const std::string& sqlstate, const std::string& text) {
  const std::string z(1, '\0');
  return Message('E', "SERROR" + z + "VERROR" + z + "C" + sqlstate + z + "M" + text + z + z);
}
std::string ProbeRow(const char* in_recovery) {
  return Rows({"in_recovery", "timeline", "lsn", "system_identifier"},
              {{std::string(in_recovery), std::string("1"), std::string("0/3000060"),
                std::string("7300000000000000001")}});
}

// A fake PostgreSQL: refuses SSL/GSS encryption, accepts the startup packet without a password
// and answers each simple query ('Q') with script(sql). Records the queries and counts the
// connections and the ones the client closed.
class FakePostgres {
 public:
  // `startup_delay`: how long the server takes to accept a session (a busy server's fork and
  // authentication), during which the client's connection attempt is in flight.
  explicit FakePostgres(std::function<Reply(const std::string&)> script,
                        std::chrono::milliseconds startup_delay = std::chrono::milliseconds(0))
      : script_(std::move(script)), startup_delay_(startup_delay) {
    fd_ = ListenLoopback(&port_);
    if (fd_ >= 0) thread_ = std::thread([this] { Serve(); });
  }
  ~FakePostgres() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  bool ok() const { return fd_ >= 0; }
  int connections() const { return connections_; }
  // Sends `bytes` to every client connected now; with `close`, then closes them (as a backend
  // does when it ends the session: a FATAL, then the socket closed).
  void SendToAll(const std::string& bytes, bool close) {
    std::lock_guard lock(mu_);
    broadcasts_.push_back({bytes, close});
  }
  int closed() const { return closed_; }
  std::vector<std::string> queries() const {
    std::lock_guard lock(mu_);
    return queries_;
  }

 private:
  struct Client {
    int fd;
    std::string in;
    bool started = false;
    // The session is accepted (AuthenticationOk sent) at this time; until then input waits.
    std::optional<std::chrono::steady_clock::time_point> accept_at;
  };

  void Serve() {
    std::vector<Client> clients;
    while (!stop_) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      for (const Client& c : clients) fds.push_back({c.fd, POLLIN, 0});
      for (Client& c : clients) {
        if (c.accept_at.has_value() && *c.accept_at <= std::chrono::steady_clock::now()) {
          c.accept_at.reset();
          Send(c, Message('R', Int32(0)) + Message('Z', "I"));  // AuthenticationOk, ready
          Handle(&c);
        }
      }
      std::vector<std::pair<std::string, bool>> broadcasts;
      {
        std::lock_guard lock(mu_);
        broadcasts.swap(broadcasts_);
      }
      for (const auto& [bytes, close] : broadcasts) {
        for (Client& c : clients) {
          if (c.fd < 0) continue;
          Send(c, bytes);
          if (close) {
            ::close(c.fd);
            c.fd = -1;
          }
        }
      }
      std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
      if (::poll(fds.data(), fds.size(), 5) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          clients.push_back({c, "", false, std::nullopt});
          ++connections_;
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Client& c = clients[i - 1];
        char buf[4096];
        const ssize_t n = ::read(c.fd, buf, sizeof buf);
        if (n <= 0) {
          ::close(c.fd);
          c.fd = -1;
          ++closed_;
          continue;
        }
        c.in.append(buf, static_cast<std::size_t>(n));
        Handle(&c);
      }
      std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
    }
    for (const Client& c : clients) ::close(c.fd);
  }

  static std::uint32_t Be32(const std::string& s, std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, s.data() + at, 4);
    return ntohl(v);
  }
  void Send(const Client& c, const std::string& bytes) {
    (void)!::write(c.fd, bytes.data(), bytes.size());
  }

  void Handle(Client* c) {
    while (true) {
      if (!c->started) {
        if (c->in.size() < 8) return;
        const std::uint32_t len = Be32(c->in, 0);
        if (c->in.size() < len) return;
        const std::uint32_t code = Be32(c->in, 4);
        c->in.erase(0, len);
        if (code == 80877103 || code == 80877104) {  // SSLRequest, GSSENCRequest
          Send(*c, "N");
          continue;
        }
        c->started = true;
        if (startup_delay_.count() > 0) {
          c->accept_at = std::chrono::steady_clock::now() + startup_delay_;
          return;
        }
        Send(*c, Message('R', Int32(0)) + Message('Z', "I"));  // AuthenticationOk, ready
        continue;
      }
      if (c->accept_at.has_value()) return;
      if (c->in.size() < 5) return;
      const std::uint32_t len = Be32(c->in, 1);
      if (c->in.size() < len + 1) return;
      const char type = c->in[0];
      std::string body = c->in.substr(5, len - 4);
      c->in.erase(0, len + 1);
      if (type != 'Q') continue;  // Terminate and anything else: no answer
      const std::string sql = body.substr(0, body.find('\0'));
      {
        std::lock_guard lock(mu_);
        queries_.push_back(sql);
      }
      const Reply reply = script_(sql);
      if (!reply.hang) Send(*c, reply.messages + Message('Z', std::string(1, reply.status)));
    }
  }

  std::function<Reply(const std::string&)> script_;
  std::chrono::milliseconds startup_delay_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> closed_{0};
  mutable std::mutex mu_;
  std::vector<std::string> queries_;
  std::vector<std::pair<std::string, bool>> broadcasts_;
};

NodeTarget Target(const std::string& name, int port) {
  NodeTarget t{name, {}};
  t.params.port = port;
  t.params.user = "pgherald";
  t.params.dbname = "postgres";
  t.params.options["sslmode"] = "disable";
  t.params.connect_timeout = 5000ms;
  t.params.statement_timeout = 5000ms;
  return t;
}

MonoTime In(std::chrono::milliseconds d) { return SystemClock::Instance().Now() + d; }

Reply Healthy(const std::string& sql) {
  if (sql == kProbeSql) return {ProbeRow("f")};
  if (sql == "ROLLBACK") return {Complete("ROLLBACK")};
  if (sql.rfind("BEGIN;", 0) == 0) {
    return {Complete("BEGIN") + Complete("INSERT 0 1") + Rows({"in_recovery", "timeline", "lsn"},
                                                              {{"f", std::nullopt, std::nullopt}}) +
            Complete("COMMIT")};
  }
  return {Complete("CREATE SCHEMA") + Complete("CREATE TABLE")};
}

// Waits (bounded) until `condition` holds.
bool Eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 500; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(PgNodeProberLoopTest, RefusedPortIsUnreachableAndKeepsItsSlot) {
  PgNodeProber prober;
  NodeTarget t = Target("a", 1);  // nothing listens on port 1 of loopback
  auto probes = prober.ProbeAll({t}, In(5s));
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_FALSE(probes[0].reachable);
  EXPECT_NE(probes[0].error.find("connect failed"), std::string::npos) << probes[0].error;
  EXPECT_EQ(probes[0].node, "a");
  EXPECT_EQ(probes[0].port, 1);
  EXPECT_EQ(prober.kept(), 1u);
}

TEST(PgNodeProberLoopTest, HealthyNodeIsProbedOverOneKeptConnection) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  for (int round = 0; round < 3; ++round) {
    auto probes = prober.ProbeAll({Target("a", server.port())}, In(5s));
    ASSERT_EQ(probes.size(), 1u);
    ASSERT_TRUE(probes[0].reachable) << probes[0].error;
    EXPECT_FALSE(probes[0].in_recovery);
    EXPECT_EQ(probes[0].timeline, 1u);
    EXPECT_EQ(probes[0].lsn, 0x3000060u);
    EXPECT_EQ(probes[0].system_identifier, "7300000000000000001");
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.queries().size(), 3u);
}

// The hung node (accepts TCP, never answers) costs the call its deadline, not the others their
// answers; while its connect is in flight it is reported "previous probe still running".
TEST(PgNodeProberLoopTest, HungNodeDoesNotDelayTheOthers) {
  HungListener hung;
  FakePostgres healthy(Healthy);
  ASSERT_TRUE(hung.ok() && healthy.ok());
  PgNodeProber prober;
  const std::vector<NodeTarget> targets{Target("hung", hung.port()), Target("ok", healthy.port()),
                                        Target("refused", 1)};
  auto probes = prober.ProbeAll(targets, In(300ms));
  ASSERT_EQ(probes.size(), 3u);
  EXPECT_FALSE(probes[0].reachable);
  EXPECT_EQ(probes[0].error, "probe timed out (node hung?)");
  EXPECT_EQ(probes[0].node, "hung");
  EXPECT_TRUE(probes[1].reachable) << probes[1].error;
  EXPECT_FALSE(probes[2].reachable);
  EXPECT_NE(probes[2].error.find("connect failed"), std::string::npos) << probes[2].error;

  probes = prober.ProbeAll(targets, In(300ms));
  EXPECT_EQ(probes[0].error, "previous probe still running (node hung?)");
  EXPECT_TRUE(probes[1].reachable) << probes[1].error;
  EXPECT_EQ(healthy.connections(), 1);
  EXPECT_EQ(prober.kept(), 3u);
  prober.Forget({targets[0]});  // closes the connect in flight
  EXPECT_EQ(prober.kept(), 2u);
}

// libpq enforces no connect_timeout in non-blocking mode: the loop does.
TEST(PgNodeProberLoopTest, LoopEnforcesTheConnectTimeout) {
  HungListener hung;
  ASSERT_TRUE(hung.ok());
  NodeTarget t = Target("hung", hung.port());
  t.params.connect_timeout = 200ms;
  std::unique_ptr<pg::PgConnection> conn;
  model::Probe p = PgNodeProber::ProbeOnce(t, &conn, nullptr, SystemClock::Instance());
  EXPECT_FALSE(p.reachable);
  EXPECT_NE(p.error.find("timed out after 200 ms"), std::string::npos) << p.error;
  EXPECT_EQ(conn, nullptr);

  // In a prober, the connect outlives the call that started it (the node is busy meanwhile);
  // once its own timeout expires it ends and the node gets a new attempt (a new call's timeout).
  PgNodeProber prober;
  auto probes = prober.ProbeAll({t}, In(50ms));
  EXPECT_EQ(probes[0].error, "probe timed out (node hung?)");
  std::string error;
  ASSERT_TRUE(Eventually([&] {
    error = prober.ProbeAll({t}, In(50ms))[0].error;
    return error != "previous probe still running (node hung?)";
  })) << error;
  EXPECT_EQ(error, "probe timed out (node hung?)");
}

// A query that never gets its answer: the loop gives up after answer_timeout() and closes the
// connection, which the server sees (the backend would end the statement).
TEST(PgNodeProberLoopTest, UnansweredQueryClosesTheConnection) {
  FakePostgres server([](const std::string&) { return Reply{"", 'I', true}; });
  ASSERT_TRUE(server.ok());
  NodeTarget t = Target("frozen", server.port());
  t.params.connect_timeout = 100ms;
  t.params.statement_timeout = 100ms;
  std::unique_ptr<pg::PgConnection> conn;
  model::Probe p = PgNodeProber::ProbeOnce(t, &conn, nullptr, SystemClock::Instance());
  EXPECT_FALSE(p.reachable);
  EXPECT_NE(p.error.find("no answer from the server within 1100 ms"), std::string::npos) << p.error;
  EXPECT_EQ(conn, nullptr);
  EXPECT_TRUE(Eventually([&] { return server.closed() == 1; }));
}

// Hostile answers: each is refused with its reason; none is taken for a probe.
TEST(PgNodeProberLoopTest, GarbageAnswersAreRefused) {
  struct Case {
    std::string name;
    std::string reply;
    std::string expect;
  };
  const std::vector<Case> cases{
      {"wrong columns", Rows({"x"}, {{std::string("1")}}), "no column \"in_recovery\""},
      {"no rows", Rows({"in_recovery", "timeline", "lsn"}, {}), "returned 0 rows"},
      {"two rows",
                       Rows({"in_recovery", "timeline", "lsn"},
                            {{std::string("f"), std::string("1"), std::string("0/1")},
                             {std::string("f"), std::string("1"), std::string("0/1")}}),
       "returned 2 rows"},
      {"null role", Rows({"in_recovery", "timeline", "lsn"}, {{std::nullopt, std::nullopt, std::nullopt}}),
       "is NULL"},
      {"garbage lsn",
       Rows({"in_recovery", "timeline", "lsn"}, {{std::string("f"), std::string("1"), std::string("zz")}}),
       "probe result"},
      {"garbage bool",
       Rows({"in_recovery", "timeline", "lsn"}, {{std::string("maybe"), std::string("1"), std::string("0/1")}}),
       "in_recovery"},
      {"two results", ProbeRow("f") + ProbeRow("f"), "expected one result, got 2"},
      {"error", Error("XX000", "boom"), "boom [SQLSTATE XX000]"},
  };
  for (const Case& c : cases) {
    FakePostgres server([&](const std::string&) { return Reply{c.reply}; });
    ASSERT_TRUE(server.ok());
    PgNodeProber prober;
    auto probes = prober.ProbeAll({Target("a", server.port())}, In(5s));
    EXPECT_FALSE(probes[0].reachable) << c.name;
    EXPECT_NE(probes[0].error.find(c.expect), std::string::npos) << c.name << ": " << probes[0].error;
  }
}

TEST(PgNodeProberLoopTest, WriteCheckPassesInOneTransaction) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  auto probes = prober.WriteCheckAll({Target("a", server.port())}, {"c1", "orch-1"}, In(5s));
  ASSERT_TRUE(probes[0].reachable) << probes[0].error;
  EXPECT_EQ(probes[0].write_check, model::WriteCheck::kPassed) << probes[0].write_error;
  const auto queries = server.queries();
  ASSERT_EQ(queries.size(), 2u);
  EXPECT_EQ(queries[1].rfind("BEGIN;INSERT INTO pgherald.heartbeat", 0), 0u) << queries[1];
  EXPECT_NE(queries[1].find("'c1', 'a', 'orch-1'"), std::string::npos) << queries[1];
}

// A missing table: the failed transaction is rolled back, the schema and table are created, the
// write is tried once more; all on the same connection.
TEST(PgNodeProberLoopTest, WriteCheckCreatesTheMissingTableAfterRollingBack) {
  int writes = 0;
  FakePostgres server([&](const std::string& sql) {
    if (sql.rfind("BEGIN;", 0) == 0 && writes++ == 0) {
      return Reply{Complete("BEGIN") + Error("42P01", "relation does not exist"), 'E'};
    }
    return Healthy(sql);
  });
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  auto probes = prober.WriteCheckAll({Target("a", server.port())}, {"c1", "orch-1"}, In(5s));
  EXPECT_EQ(probes[0].write_check, model::WriteCheck::kPassed) << probes[0].write_error;
  const auto queries = server.queries();
  ASSERT_EQ(queries.size(), 5u);
  EXPECT_EQ(queries[2], "ROLLBACK");
  EXPECT_EQ(queries[3].rfind("CREATE SCHEMA IF NOT EXISTS pgherald;", 0), 0u) << queries[3];
  EXPECT_EQ(queries[4], queries[1]);
  EXPECT_EQ(server.connections(), 1);
}

TEST(PgNodeProberLoopTest, WriteCheckNamesTheFixWhenTheTableCannotBeCreated) {
  FakePostgres server([](const std::string& sql) {
    if (sql.rfind("BEGIN;", 0) == 0) return Reply{Error("3F000", "schema does not exist"), 'I'};
    if (sql.rfind("CREATE SCHEMA", 0) == 0) return Reply{Error("42501", "permission denied")};
    return Healthy(sql);
  });
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  auto probes = prober.WriteCheckAll({Target("a", server.port())}, {"c1", "orch-1"}, In(5s));
  EXPECT_EQ(probes[0].write_check, model::WriteCheck::kFailed);
  EXPECT_NE(probes[0].write_error.find("fix: GRANT CREATE ON DATABASE postgres TO pgherald"),
            std::string::npos)
      << probes[0].write_error;
}

// Hostile write answers: a standby's session, a missing upsert, a short batch.
TEST(PgNodeProberLoopTest, WriteCheckRefusesHostileAnswers) {
  const std::string begin = Complete("BEGIN");
  const std::string select_f = Rows({"in_recovery"}, {{std::string("f")}});
  const std::vector<std::pair<std::string, std::string>> cases{
      {begin + Complete("INSERT 0 1") + Rows({"in_recovery"}, {{std::string("t")}}) +
           Complete("COMMIT"),
       "pg_is_in_recovery() true"},
      {begin + Complete("INSERT 0 0") + select_f + Complete("COMMIT"), "touched 0 rows"},
      {begin + Complete("INSERT 0 1") + Complete("COMMIT"), "returned 3 results"},
      {begin + Complete("INSERT 0 1") + Rows({"in_recovery"}, {}) + Complete("COMMIT"),
       "returned 0 rows"},
      {begin + Complete("INSERT 0 1") + Rows({"x"}, {{std::string("f")}}) + Complete("COMMIT"),
       "no column \"in_recovery\""},
  };
  for (const auto& [reply, expect] : cases) {
    const std::string answer = reply;
    FakePostgres server([&](const std::string& sql) {
      return sql == kProbeSql ? Healthy(sql) : Reply{answer};
    });
    ASSERT_TRUE(server.ok());
    PgNodeProber prober;
    auto probes = prober.WriteCheckAll({Target("a", server.port())}, {"c1", "orch-1"}, In(5s));
    EXPECT_EQ(probes[0].write_check, model::WriteCheck::kFailed) << expect;
    EXPECT_NE(probes[0].write_error.find(expect), std::string::npos) << probes[0].write_error;
  }
}

TEST(PgNodeProberLoopTest, WriteCheckOnAStandbyIsNotSent) {
  FakePostgres server([](const std::string& sql) {
    return sql == kProbeSql ? Reply{ProbeRow("t")} : Healthy(sql);
  });
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  auto probes = prober.WriteCheckAll({Target("a", server.port())}, {"c1", "orch-1"}, In(5s));
  EXPECT_TRUE(probes[0].reachable);
  EXPECT_EQ(probes[0].write_check, model::WriteCheck::kFailed);
  EXPECT_EQ(probes[0].write_error, "in recovery");
  EXPECT_EQ(server.queries().size(), 1u);
}

// A batch of clusters' rounds names the same node twice (two clusters whose node "a" is the same
// host and port): both get the answer of one probe over one connection (before, the second found
// the slot busy and was reported "previous probe still running").
TEST(PgNodeProberLoopTest, TargetsSharingANodeInOneCallShareItsProbe) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const NodeTarget t = Target("a", server.port());
  auto probes = prober.ProbeAll({t, Target("b", 1), t}, In(5s));
  ASSERT_EQ(probes.size(), 3u);
  EXPECT_TRUE(probes[0].reachable) << probes[0].error;
  EXPECT_FALSE(probes[1].reachable);
  EXPECT_TRUE(probes[2].reachable) << probes[2].error;
  EXPECT_EQ(probes[2].node, "a");
  EXPECT_EQ(probes[2].lsn, 0x3000060u);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.queries().size(), 1u);
  EXPECT_EQ(prober.kept(), 2u);
}

// Write checks of one node for two clusters in one call: one transaction with a heartbeat row per
// cluster, judged by the rows it touched; both pass. An upsert that touched fewer rows fails both.
TEST(PgNodeProberLoopTest, WriteChecksSharingANodeWriteARowPerCluster) {
  std::string touched = "INSERT 0 2";
  FakePostgres server([&](const std::string& sql) {
    if (sql.rfind("BEGIN;", 0) == 0) {
      return Reply{Complete("BEGIN") + Complete(touched) +
                   Rows({"in_recovery", "timeline", "lsn"}, {{"f", std::nullopt, std::nullopt}}) +
                   Complete("COMMIT")};
    }
    return Healthy(sql);
  });
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const NodeTarget t = Target("a", server.port());
  const std::vector<WriteCheckRequest> requests{
      {t, {"c1", "orch-1"}}, {t, {"c2", "orch-1"}}, {t, {"c1", "orch-1"}}};
  auto probes = prober.WriteCheckEach(requests, In(5s));
  ASSERT_EQ(probes.size(), 3u);
  for (const model::Probe& p : probes) {
    EXPECT_EQ(p.write_check, model::WriteCheck::kPassed) << p.write_error;
  }
  auto queries = server.queries();
  ASSERT_EQ(queries.size(), 2u);  // the probe, then one write transaction
  EXPECT_NE(queries[1].find("('c1', 'a', 'orch-1', now()), ('c2', 'a', 'orch-1', now()) ON CONFLICT"),
            std::string::npos)
      << queries[1];
  EXPECT_EQ(server.connections(), 1);

  touched = "INSERT 0 1";
  probes = prober.WriteCheckEach(requests, In(5s));
  for (const model::Probe& p : probes) {
    EXPECT_EQ(p.write_check, model::WriteCheck::kFailed);
    EXPECT_EQ(p.write_error, "heartbeat upsert touched 1 rows, not 2");
  }
}

// The same node reached as another user or database is another connection: the heartbeat row of
// each goes where its own configuration says.
TEST(PgNodeProberLoopTest, AnotherDatabaseOrUserIsAnotherConnection) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const NodeTarget t = Target("a", server.port());
  NodeTarget other_db = t;
  other_db.params.dbname = "other";
  NodeTarget other_user = t;
  other_user.params.user = "someone";
  auto probes = prober.ProbeAll({t, other_db, other_user}, In(5s));
  for (const model::Probe& p : probes) EXPECT_TRUE(p.reachable) << p.error;
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(prober.kept(), 3u);
}

// At most max_connecting connection attempts at once: against a node that accepts TCP and never
// answers, two of five targets connect (and time out with the call), the other three never start
// one and say why; the next call starts none either while the two are still connecting.
TEST(PgNodeProberLoopTest, ConnectionAttemptsInFlightAreBounded) {
  HungListener hung;
  ASSERT_TRUE(hung.ok());
  PgNodeProber prober(&SystemClock::Instance(), 2);
  std::vector<NodeTarget> targets;
  for (const char* name : {"a", "b", "c", "d", "e"}) targets.push_back(Target(name, hung.port()));
  auto probes = prober.ProbeAll(targets, In(300ms));
  ASSERT_EQ(probes.size(), 5u);
  EXPECT_EQ(probes[0].error, "probe timed out (node hung?)");
  EXPECT_EQ(probes[1].error, "probe timed out (node hung?)");
  for (std::size_t i = 2; i < 5; ++i) {
    EXPECT_FALSE(probes[i].reachable);
    EXPECT_EQ(probes[i].node, targets[i].name);
    EXPECT_EQ(probes[i].error,
              "not probed: no connection attempt started before the deadline (2 were in flight)");
  }
  probes = prober.ProbeAll(targets, In(100ms));
  EXPECT_EQ(probes[0].error, "previous probe still running (node hung?)");
  EXPECT_NE(probes[2].error.find("not probed"), std::string::npos) << probes[2].error;
}

// The targets waiting for a connection attempt get their turn within the call: six nodes, at most
// two connecting at once, all probed by one call; their connections are kept.
TEST(PgNodeProberLoopTest, WaitingTargetsConnectInTurnWithinTheCall) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober(&SystemClock::Instance(), 2);
  std::vector<NodeTarget> targets;
  for (const char* name : {"a", "b", "c", "d", "e", "f"}) targets.push_back(Target(name, server.port()));
  auto probes = prober.ProbeAll(targets, In(5s));
  for (const model::Probe& p : probes) EXPECT_TRUE(p.reachable) << p.node << ": " << p.error;
  EXPECT_EQ(server.connections(), 6);
  EXPECT_EQ(prober.kept(), 6u);
  probes = prober.ProbeAll(targets, In(5s));
  for (const model::Probe& p : probes) EXPECT_TRUE(p.reachable) << p.node << ": " << p.error;
  EXPECT_EQ(server.connections(), 6);
}

// A connection attempt that outlasts its call keeps going between calls (the prober's own thread
// steps it): the server takes 300 ms to accept, the call gives up after 50 ms, and with no call
// at all the attempt completes and its probe ends; the next call then finds the connection open
// and probes over it, with no second connection.
TEST(PgNodeProberLoopTest, ConnectionAttemptsProgressBetweenCalls) {
  FakePostgres server(Healthy, 300ms);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const NodeTarget t = Target("a", server.port());
  auto first = prober.ProbeAll({t}, In(50ms));
  EXPECT_EQ(first[0].error, "probe timed out (node hung?)");
  EXPECT_TRUE(Eventually([&] { return prober.in_flight() == 0; }))
      << "the attempt made no progress between calls";
  EXPECT_EQ(server.queries().size(), 1u) << "its probe did not run in the background";
  auto second = prober.ProbeAll({t}, In(1s));
  EXPECT_TRUE(second[0].reachable) << second[0].error;
  EXPECT_EQ(server.connections(), 1);
}

// A connection the server dropped is reconnected on the next call.
TEST(PgNodeProberLoopTest, ReconnectsAfterAConnectionLevelFailure) {
  std::atomic<int> probes_seen{0};
  FakePostgres server([&](const std::string& sql) {
    // The second probe gets a FATAL admin shutdown, which ends the session.
    if (sql == kProbeSql && probes_seen++ == 1) return Reply{Error("57P01", "terminating"), 'I', false};
    return Healthy(sql);
  });
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const NodeTarget t = Target("a", server.port());
  EXPECT_TRUE(prober.ProbeAll({t}, In(5s))[0].reachable);
  auto second = prober.ProbeAll({t}, In(5s));
  EXPECT_FALSE(second[0].reachable);
  EXPECT_NE(second[0].error.find("57P01"), std::string::npos) << second[0].error;
  EXPECT_TRUE(prober.ProbeAll({t}, In(5s))[0].reachable);
  EXPECT_EQ(server.connections(), 2);
}

// A kept connection the server closes while nothing is in flight (a backend ending its session
// with a FATAL, as at a crash or a fast shutdown) is reported at once with its host and port and
// dropped, so the next call connects anew. A message that does not end the session (a
// ParameterStatus after a reload) is read and reported as nothing.
TEST(PgNodeProberLoopTest, AConnectionTheServerClosesIsReportedAtOnce) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  std::mutex mu;
  std::vector<std::pair<std::string, int>> lost;
  prober.SetConnectionLostHandler([&](const std::string& host, int port) {
    std::lock_guard lock(mu);
    lost.emplace_back(host, port);
  });
  const auto lost_now = [&] {
    std::lock_guard lock(mu);
    return lost;
  };
  const NodeTarget t = Target("a", server.port());
  ASSERT_TRUE(prober.ProbeAll({t}, In(5s))[0].reachable);

  server.SendToAll(Message('S', std::string("application_name") + '\0' + "x" + '\0'), false);
  ASSERT_TRUE(Eventually([&] { return prober.idle_reads() >= 1; }));
  EXPECT_TRUE(lost_now().empty());
  EXPECT_TRUE(prober.ProbeAll({t}, In(5s))[0].reachable);
  EXPECT_EQ(server.connections(), 1) << "a parameter report dropped the connection";

  server.SendToAll(Error("57P01", "terminating connection due to unexpected postmaster exit"), true);
  ASSERT_TRUE(Eventually([&] { return !lost_now().empty(); }));
  EXPECT_EQ(lost_now(), (std::vector<std::pair<std::string, int>>{{"127.0.0.1", server.port()}}));
  EXPECT_TRUE(prober.ProbeAll({t}, In(5s))[0].reachable);
  EXPECT_EQ(server.connections(), 2);
  prober.SetConnectionLostHandler(nullptr);
}

// Warm opens connections without a call: the prober's thread connects them (and runs the probe
// nobody reads); a later call probes over them without a new connection; a Warm of nodes that are
// connected opens and asks nothing.
TEST(PgNodeProberLoopTest, WarmOpensConnectionsBetweenCalls) {
  FakePostgres server(Healthy);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const std::vector<NodeTarget> targets = {Target("a", server.port()), Target("b", server.port())};
  prober.Warm(targets);
  ASSERT_TRUE(Eventually([&] { return prober.in_flight() == 0 && server.connections() == 2; }))
      << "connections: " << server.connections();
  EXPECT_EQ(prober.kept(), 2u);
  const std::size_t queries = server.queries().size();
  prober.Warm(targets);
  EXPECT_EQ(prober.in_flight(), 0u) << "a connected node was warmed again";
  auto probes = prober.ProbeAll(targets, In(5s));
  for (const model::Probe& p : probes) EXPECT_TRUE(p.reachable) << p.node << ": " << p.error;
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.queries().size(), queries + 2);
}

// A call that asks for a node whose warm attempt is still connecting takes that attempt's probe
// (rather than reporting "previous probe still running"): the server takes 300 ms to accept.
TEST(PgNodeProberLoopTest, ACallTakesOverAWarmAttemptStillConnecting) {
  FakePostgres server(Healthy, 300ms);
  ASSERT_TRUE(server.ok());
  PgNodeProber prober;
  const NodeTarget t = Target("a", server.port());
  prober.Warm({t});
  EXPECT_EQ(prober.in_flight(), 1u);
  auto probes = prober.ProbeAll({t}, In(5s));
  EXPECT_TRUE(probes[0].reachable) << probes[0].error;
  EXPECT_EQ(server.connections(), 1);
}

// Warm keeps half of the connection attempts for the calls: with max_connecting 4 and nodes that
// never answer, five warmed nodes start two attempts, a second Warm none, and a call still
// connects two of its own.
TEST(PgNodeProberLoopTest, WarmLeavesHalfTheConnectionAttemptsToTheCalls) {
  HungListener hung;
  ASSERT_TRUE(hung.ok());
  PgNodeProber prober(&SystemClock::Instance(), 4);
  std::vector<NodeTarget> warm;
  for (const char* name : {"w1", "w2", "w3", "w4", "w5"}) warm.push_back(Target(name, hung.port()));
  prober.Warm(warm);
  EXPECT_EQ(prober.in_flight(), 2u);
  prober.Warm(warm);
  EXPECT_EQ(prober.in_flight(), 2u);
  auto probes = prober.ProbeAll({Target("x", hung.port()), Target("y", hung.port()),
                                 Target("z", hung.port())},
                                In(200ms));
  EXPECT_EQ(probes[0].error, "probe timed out (node hung?)");
  EXPECT_EQ(probes[1].error, "probe timed out (node hung?)");
  EXPECT_NE(probes[2].error.find("not probed"), std::string::npos) << probes[2].error;
}

}  // namespace
}  // namespace pgherald::orchestrator
