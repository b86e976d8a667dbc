// Keeps writing through the current master of a pgherald cluster, across failovers.
//
//   write_through_master --zk 127.0.0.1:2181 --cluster main
//       [--root /pgherald] [--conninfo "dbname=postgres user=postgres connect_timeout=2"]
//       [--rows 0 (forever)] [--interval-ms 100]
//
// Uses only the installed API (<pgherald/master_watch.h>) and libpq. One row a tick goes into
// table pgherald_example on the master. When MasterWatch reports another master, or a write
// fails, the connection is dropped and rebuilt from MasterConninfo(); while no master is vouched
// (unverified, no master, disconnected) the program writes nothing and waits for the next change.
#include <libpq-fe.h>
#include <pgherald/master_watch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

using pgherald::client::MasterInfo;
using pgherald::client::MasterStatusName;
using pgherald::client::MasterWatch;
using std::chrono::milliseconds;

struct Flags {
  pgherald::client::MasterWatchOptions watch;
  std::string conninfo = "dbname=postgres user=postgres connect_timeout=2";
  long rows = 0;
  int interval_ms = 100;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", name.c_str());
      return false;
    }
    const char* value = argv[++i];
    if (name == "--zk") {
      flags->watch.zk_connect = value;
    } else if (name == "--cluster") {
      flags->watch.cluster = value;
    } else if (name == "--root") {
      flags->watch.root = value;
    } else if (name == "--conninfo") {
      flags->conninfo = value;
    } else if (name == "--rows") {
      flags->rows = std::strtol(value, nullptr, 10);
    } else if (name == "--interval-ms") {
      flags->interval_ms = std::atoi(value);
    } else {
      std::fprintf(stderr, "unknown flag %s (see the top of write_through_master.cc)\n",
                   name.c_str());
      return false;
    }
  }
  if (flags->watch.zk_connect.empty() || flags->watch.cluster.empty()) {
    std::fprintf(stderr, "usage: %s --zk HOST:PORT --cluster NAME [--root /pgherald] "
                         "[--conninfo EXTRA] [--rows N] [--interval-ms MS]\n", argv[0]);
    return false;
  }
  return true;
}

bool Exec(PGconn* conn, const char* sql, std::string* error) {
  PGresult* res = PQexec(conn, sql);
  const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok) *error = PQerrorMessage(conn);
  PQclear(res);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  flags.watch.log = [](int level, const std::string& line) {
    if (level >= 1) std::fprintf(stderr, "[pgherald] %s\n", line.c_str());
  };
  std::string error;
  std::unique_ptr<MasterWatch> watch = MasterWatch::Start(flags.watch, &error);
  if (!watch) {
    std::fprintf(stderr, "cannot watch: %s\n", error.c_str());
    return 2;
  }

  PGconn* conn = nullptr;
  std::string connected_to;
  long written = 0;
  long failed = 0;
  auto last_write = std::chrono::steady_clock::now();
  while (flags.rows == 0 || written < flags.rows) {
    const MasterInfo info = watch->current();
    const std::string target = pgherald::client::MasterConninfo(info, flags.conninfo);
    if (target.empty()) {
      // Not vouched: writing could hit a stale primary. Wait for the next change.
      if (conn != nullptr) {
        std::printf("master %s is %s: stop writing\n", info.node.c_str(),
                    MasterStatusName(info.status));
        PQfinish(conn);
        conn = nullptr;
        connected_to.clear();
      }
      watch->WaitFor([](const MasterInfo& i) { return i.writable(); }, milliseconds(1000));
      continue;
    }
    if (conn == nullptr || target != connected_to) {
      if (conn != nullptr) PQfinish(conn);
      conn = PQconnectdb(target.c_str());
      if (PQstatus(conn) != CONNECTION_OK) {
        std::printf("connect to %s failed: %s", info.node.c_str(), PQerrorMessage(conn));
        PQfinish(conn);
        conn = nullptr;
        connected_to.clear();
        // Wait for another master, or retry this one shortly.
        watch->WaitFor([&](const MasterInfo& i) { return i.mzxid != info.mzxid; },
                       milliseconds(500));
        continue;
      }
      connected_to = target;
      const auto gap = std::chrono::duration_cast<milliseconds>(
          std::chrono::steady_clock::now() - last_write);
      std::printf("writing to %s (%s:%d, epoch %llu); %lld ms since the last write\n",
                  info.node.c_str(), info.host.c_str(), info.port,
                  static_cast<unsigned long long>(info.epoch),
                  static_cast<long long>(gap.count()));
      if (!Exec(conn,
                "CREATE TABLE IF NOT EXISTS pgherald_example "
                "(id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), "
                "port int NOT NULL DEFAULT current_setting('port')::int)",
                &error)) {
        std::printf("create table failed: %s", error.c_str());
      }
    }
    if (Exec(conn, "INSERT INTO pgherald_example DEFAULT VALUES", &error)) {
      ++written;
      last_write = std::chrono::steady_clock::now();
    } else {
      ++failed;
      std::printf("write to %s failed: %s", info.node.c_str(), error.c_str());
      PQfinish(conn);
      conn = nullptr;
      connected_to.clear();
      watch->WaitFor([&](const MasterInfo& i) { return i.mzxid != info.mzxid; },
                     milliseconds(500));
      continue;
    }
    if (flags.interval_ms > 0) {
      // Paced by the watch: a change of master wakes the loop at once.
      watch->WaitFor([&](const MasterInfo& i) { return i.mzxid != info.mzxid || !i.writable(); },
                     milliseconds(flags.interval_ms));
    }
  }
  if (conn != nullptr) PQfinish(conn);
  std::printf("rows written: %ld, failed writes: %ld\n", written, failed);
  return 0;
}
