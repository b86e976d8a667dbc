#include "tests/e2e/workload.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstdlib>

#include "tests/e2e/stack.h"

namespace pgherald::e2e {
namespace {

// Waits until the socket is ready for `events` or the deadline (MonoNs) passes.
bool WaitSocket(int fd, short events, std::int64_t deadline_ns) {
  while (true) {
    const std::int64_t left_ms = (deadline_ns - MonoNs()) / 1000000;
    if (left_ms <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left_ms));
    if (rc > 0) return true;
    if (rc == 0) return false;
  }
}

// An asynchronous connect bounded by the deadline; nullptr on failure or timeout.
PGconn* Connect(const std::string& conninfo, std::int64_t deadline_ns) {
  PGconn* c = PQconnectStart(conninfo.c_str());
  if (c == nullptr) return nullptr;
  if (PQstatus(c) == CONNECTION_BAD) {
    PQfinish(c);
    return nullptr;
  }
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) {
      PQfinish(c);
      return nullptr;
    }
    const short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (!WaitSocket(PQsocket(c), ev, deadline_ns)) {
      PQfinish(c);
      return nullptr;
    }
    st = PQconnectPoll(c);
  }
  // Server notices (e.g. "terminating connection due to unexpected postmaster exit") are expected
  // during drills; the failure is recorded with the write, not printed.
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  return c;
}

}  // namespace

const char* RouteName(Route route) { return route == Route::kHaproxy ? "haproxy" : "pgbouncer"; }

Workload::Workload(WorkloadOptions options) : options_(std::move(options)) {}
Workload::~Workload() { Stop(); }

void Workload::Start() {
  stop_ = false;
  int client = options_.client_base;
  for (int i = 0; i < options_.clients_per_route; ++i) {
    threads_.emplace_back([this, c = client++] { Run(c, Route::kHaproxy, options_.haproxy_conninfo); });
    threads_.emplace_back(
        [this, c = client++] { Run(c, Route::kPgbouncer, options_.pgbouncer_conninfo); });
  }
}

void Workload::Stop() {
  stop_ = true;
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Workload::Record(const WriteOp& op) {
  std::lock_guard<std::mutex> lock(mu_);
  ops_.push_back(op);
}

void Workload::Run(int client, Route route, const std::string& conninfo) {
  const std::int64_t timeout_ns = options_.op_timeout.count() * 1000000;
  PGconn* conn = nullptr;
  std::int64_t seq = 0;
  while (!stop_) {
    if (conn == nullptr) {
      conn = Connect(conninfo, MonoNs() + timeout_ns);
      if (conn == nullptr) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // retry pacing
        continue;
      }
    }
    WriteOp op;
    op.client = client;
    op.seq = ++seq;
    op.route = route;
    const std::string sql = "INSERT INTO e2e_writes (client, seq) VALUES (" +
                            std::to_string(client) + ", " + std::to_string(seq) +
                            ") RETURNING inet_server_port()";
    op.invoke_ns = MonoNs();
    const std::int64_t deadline = op.invoke_ns + timeout_ns;
    bool done = false;
    if (PQsendQuery(conn, sql.c_str()) == 1) {
      // PQgetResult is called only while PQisBusy() is false, so it never blocks: a result that
      // has arrived without its ReadyForQuery must not park the client past its deadline.
      while (!done) {
        if (PQconsumeInput(conn) == 0) break;
        while (!done && PQisBusy(conn) == 0) {
          PGresult* r = PQgetResult(conn);
          if (r == nullptr) {
            done = true;
            break;
          }
          if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            op.acked = true;
            op.port = std::atoi(PQgetvalue(r, 0, 0));
          } else {
            op.acked = false;
            op.error = PQresultErrorMessage(r);
          }
          PQclear(r);
        }
        if (done) break;
        if (!WaitSocket(PQsocket(conn), POLLIN, deadline)) {
          op.error = "timeout";
          break;
        }
      }
    }
    if (!done) op.acked = false;  // no ReadyForQuery within the deadline: outcome unknown
    op.done_ns = MonoNs();
    if (!done && op.error.empty()) op.error = PQerrorMessage(conn);
    Record(op);
    if (!op.acked) {
      PQfinish(conn);  // never reuse a session after a failure: it may be glued to an old master
      conn = nullptr;
    }
    if (options_.pause.count() > 0) std::this_thread::sleep_for(options_.pause);
  }
  if (conn != nullptr) PQfinish(conn);
}

std::vector<WriteOp> Workload::History() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

std::int64_t Workload::FirstAck(Route route, int port, std::int64_t after_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::int64_t first = 0;
  for (const auto& op : ops_) {
    if (op.acked && op.route == route && op.port == port && op.invoke_ns >= after_ns &&
        (first == 0 || op.done_ns < first)) {
      first = op.done_ns;
    }
  }
  return first;
}

int Workload::Acks(Route route, int port) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& op : ops_) n += op.acked && op.route == route && op.port == port ? 1 : 0;
  return n;
}

std::int64_t Workload::LastAckBefore(Route route, std::int64_t before_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::int64_t last = 0;
  for (const auto& op : ops_) {
    if (op.acked && op.route == route && op.done_ns < before_ns && op.done_ns > last) last = op.done_ns;
  }
  return last;
}

}  // namespace pgherald::e2e

namespace pgherald::e2e {

std::string Workload::RecentErrors(Route route, int n) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const WriteOp*> failed;
  for (const auto& op : ops_) {
    if (!op.acked && op.route == route) failed.push_back(&op);
  }
  std::sort(failed.begin(), failed.end(),
            [](const WriteOp* a, const WriteOp* b) { return a->done_ns > b->done_ns; });
  std::string out;
  for (int i = 0; i < n && i < static_cast<int>(failed.size()); ++i) {
    out += "  client " + std::to_string(failed[i]->client) + " at mono " +
           std::to_string(failed[i]->done_ns / 1000000) + " ms: " + failed[i]->error + "\n";
  }
  return out;
}

}  // namespace pgherald::e2e
