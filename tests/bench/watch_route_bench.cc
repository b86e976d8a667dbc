// Znode change to route (issue 5): the lab with `pgherald watch` driving HAProxy and pgbouncer and
// no orchestrator; the benchmark itself moves the master znode (with a voucher) between two live
// nodes (node1, a primary, and node2, a standby: the queries are reads) many times. Per change:
// from just before the ZooKeeper set to the first query through HAProxy (and, separately, through
// pgbouncer) that a server on the new port answers. Each proxy has a client thread that opens a
// fresh connection (superuser, trusted: no scram round trips) and runs `select inet_server_port()`
// back to back, so the figure is where new connections land. The next change waits until the
// watch logged both sinks applied the previous one and the HAProxy sink's config step (render,
// haproxy -c, swap, reload) finished for it, and HAProxy's sockets answer (a real master does not
// flip every few ms). Prints median, p99, max, the changes over 50 and 100 ms and the machine.
// Usage: PGHERALD_LABCTL=... PGHERALD_BIN=... watch_route_bench [changes=200] [--haproxy-only]
// --haproxy-only: the watch has only the HAProxy sink and pgbouncer is not probed, so the figure
// is HAProxy's alone, without the pgbouncer switch and its reconnections on the same 2 cores.
// PGHERALD_BENCH_TRACE=<path> also writes the per-change figures and the HAProxy client's queries
// of each change (+invoked(took) port, ms after the change started; port 0: failed) to <path> and
// the watch log to <path>.watch.log.
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "tests/e2e/stack.h"

using namespace pgherald;       // NOLINT: a benchmark's main
using namespace pgherald::e2e;  // NOLINT

namespace {

// Queries the port back to back; for each change (target port + its start instant) records when
// it first saw the target port on a query invoked after the change started.
class Prober {
 public:
  explicit Prober(std::string conninfo) : conninfo_(std::move(conninfo)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Prober() {
    stop_ = true;
    thread_.join();
  }
  void Arm(int port, std::int64_t start_ns) {
    {
      std::lock_guard lock(mu_);
      trail_.clear();
    }
    seen_ns_ = 0;
    start_ns_ = start_ns;
    target_ = port;
  }
  std::int64_t seen_ns() const { return seen_ns_; }
  // The queries invoked since the change started, up to the first on the target: "+invoked ms
  // (took ms) port" (0: failed), for the trace.
  std::string trail() {
    std::lock_guard lock(mu_);
    return trail_;
  }

 private:
  void Run() {
    while (!stop_) {
      const std::int64_t invoked = MonoNs();
      PGconn* c = PQconnectdb((conninfo_ + " connect_timeout=2").c_str());
      int port = 0;
      if (PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(
            c, [](void*, const char*) {}, nullptr);
        PGresult* r = PQexec(c, "select inet_server_port()");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
          port = std::atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
      }
      PQfinish(c);
      const std::int64_t begun = start_ns_;
      if (begun != 0 && invoked >= begun && seen_ns_ == 0) {
        char item[64];
        std::snprintf(item, sizeof item, " +%.1f(%.1f)%d",
                      static_cast<double>(invoked - begun) / 1e6,
                      static_cast<double>(MonoNs() - invoked) / 1e6, port);
        std::lock_guard lock(mu_);
        if (trail_.size() < 400) trail_ += item;
      }
      if (port == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(500));  // retry pacing
        continue;
      }
      const std::int64_t start = start_ns_;
      if (port == target_ && start != 0 && invoked >= start && seen_ns_ == 0) seen_ns_ = MonoNs();
    }
  }
  std::string conninfo_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> target_{0};
  std::atomic<std::int64_t> start_ns_{0};
  std::atomic<std::int64_t> seen_ns_{0};
  std::mutex mu_;
  std::string trail_;  // guarded by mu_
};

// One command on an HAProxy unix socket; its answer, "" when the socket refuses or says nothing.
std::string SocketCommand(const std::string& path, const std::string& command) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string line = command + "\n";
    if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
      char buf[4096];
      ssize_t n = 0;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

void Print(const char* name, const std::vector<double>& v) {
  std::printf("  %-34s n=%-4zu median=%7.2f ms  p99=%7.2f ms  max=%7.2f ms\n", name, v.size(),
              Percentile(v, 50), Percentile(v, 99), Percentile(v, 100));
}

}  // namespace

int main(int argc, char** argv) {
  int changes = 200;
  bool haproxy_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--haproxy-only") {
      haproxy_only = true;
    } else {
      changes = std::atoi(argv[i]);
    }
  }
  if (changes <= 0) {
    std::fprintf(stderr, "usage: watch_route_bench [changes > 0] [--haproxy-only]\n");
    return 2;
  }
  StackOptions o;
  o.pollers = false;
  o.orchestrators = 0;
  o.watch_pgbouncer = !haproxy_only;
  auto up = Stack::Up(o);
  if (!up.ok()) {
    std::fprintf(stderr, "stack: %s\n", up.status().ToString().c_str());
    return 1;
  }
  Stack& s = **up;
  const std::string as_superuser = " user=postgres dbname=postgres";
  Prober ha("host=127.0.0.1 port=" + s.Env("HAPROXY_PORT") + as_superuser);
  // With --haproxy-only the watch has no pgbouncer sink and nothing probes pgbouncer.
  std::unique_ptr<Prober> pb;
  if (!haproxy_only) {
    pb = std::make_unique<Prober>("host=127.0.0.1 port=" + s.Env("PGBOUNCER_PORT") + as_superuser);
  }
  const std::string watch_log = s.dir() + "/watch.log";
  // Both sinks logged applying (or recovering to) this epoch.
  auto applied = [&](std::uint64_t epoch) {
    const std::string text = ReadFile(watch_log);
    const std::string tag = " epoch=" + std::to_string(epoch) + " ";
    int sinks = 0;
    for (const char* sink : {"sink=haproxy", "sink=pgbouncer"}) {
      if (haproxy_only && std::string(sink) == "sink=pgbouncer") continue;
      std::size_t at = 0;
      while ((at = text.find(sink, at)) != std::string::npos) {
        const std::size_t bol = text.rfind('\n', at) + 1;
        const std::size_t eol = text.find('\n', at);
        const std::string line = text.substr(bol, eol - bol);
        at = eol;
        if (line.find(tag) != std::string::npos &&
            (line.find("sink_applied") != std::string::npos ||
             line.find("sink_recovered") != std::string::npos)) {
          ++sinks;
          break;
        }
      }
    }
    if (sinks != (haproxy_only ? 1 : 2)) return false;
    // ... and the HAProxy sink's config step (render, haproxy -c, swap, reload), which runs after
    // the route is live, finished for this epoch: the next change then meets a settled HAProxy,
    // as it did when that step ran inside the sink's apply.
    std::size_t at = 0;
    while ((at = text.find("haproxy_config_", at)) != std::string::npos) {
      const std::size_t eol = text.find('\n', at);
      const std::string line = text.substr(at, eol - at);
      at = eol;
      if (line.find(tag) != std::string::npos && (line.rfind("haproxy_config_applied", 0) == 0 ||
                                                  line.rfind("haproxy_config_recovered", 0) == 0)) {
        return true;
      }
    }
    return false;
  };
  std::vector<double> to_ha, to_pb;
  std::vector<std::string> ha_trails;
  std::vector<std::uint64_t> epochs;
  std::vector<double> start_wall_ms;  // the change's start on the wall clock, to line up with logs
  std::vector<double> set_ms;         // the ZooKeeper set's own round trip
  for (int i = 0; i < changes; ++i) {
    const int node = i % 2 == 0 ? 2 : 1;  // starts on node1
    const int port = s.lab().pg_port(node);
    const std::int64_t start = MonoNs();
    ha.Arm(port, start);
    if (pb) pb->Arm(port, start);
    if (auto st = s.PublishDirect(node); !st.ok()) {
      std::fprintf(stderr, "publish: %s\n", st.ToString().c_str());
      return 1;
    }
    const std::int64_t set_returned = MonoNs();
    if (!WaitUntil([&] { return ha.seen_ns() != 0 && (!pb || pb->seen_ns() != 0); },
                   std::chrono::milliseconds(10000), std::chrono::milliseconds(1))) {
      std::fprintf(stderr, "change %d: %s never routed to node%d; HAProxy client queries:%s\n%s\n",
                   i, ha.seen_ns() == 0 ? "HAProxy" : "pgbouncer", node, ha.trail().c_str(),
                   s.Tail("watch").c_str());
      return 1;
    }
    const std::uint64_t epoch = s.Master()->epoch;
    if (!WaitUntil([&] { return applied(epoch); }, std::chrono::milliseconds(10000),
                   std::chrono::milliseconds(5))) {
      std::fprintf(stderr, "change %d: the watch did not log both sinks applied epoch %llu\n", i,
                   static_cast<unsigned long long>(epoch));
      return 1;
    }
    // ... and HAProxy settled after the reload that applying the config made: the master socket
    // and the new worker's admin socket answer again.
    if (!WaitUntil(
            [&] {
              return !SocketCommand(s.Env("HAPROXY_MASTER_SOCKET"), "show proc; quit").empty() &&
                     !SocketCommand(s.Env("HAPROXY_ADMIN_SOCKET"), "show info").empty();
            },
            std::chrono::milliseconds(10000), std::chrono::milliseconds(5))) {
      std::fprintf(stderr, "change %d: HAProxy's sockets do not answer after the reload\n", i);
      return 1;
    }
    ha_trails.push_back(ha.trail());
    epochs.push_back(epoch);
    set_ms.push_back(static_cast<double>(set_returned - start) / 1e6);
    start_wall_ms.push_back(static_cast<double>(WallMinusMonoMs()) +
                            static_cast<double>(start) / 1e6);
    to_ha.push_back(static_cast<double>(ha.seen_ns() - start) / 1e6);
    to_pb.push_back(pb ? static_cast<double>(pb->seen_ns() - start) / 1e6 : 0.0);
  }
  // Diagnostics: PGHERALD_BENCH_TRACE=<path> keeps the watch log (<path>.watch.log) and the
  // per-change figures (<path>: index, ms via HAProxy, ms via pgbouncer, epoch, the change's start
  // on the wall clock (to line up with the watch log), the set's round trip, then the HAProxy
  // client's queries of that change: +invoked(took) port, in ms after the change started).
  if (const char* trace = std::getenv("PGHERALD_BENCH_TRACE"); trace != nullptr) {
    std::ofstream(std::string(trace) + ".watch.log", std::ios::binary) << ReadFile(watch_log);
    std::string rows;
    for (std::size_t i = 0; i < to_ha.size(); ++i) {
      char row[160];
      std::snprintf(row, sizeof row, "%zu %.2f %.2f epoch=%llu start_wall_ms=%.1f set_ms=%.2f", i,
                    to_ha[i], to_pb[i], static_cast<unsigned long long>(epochs[i]),
                    start_wall_ms[i], set_ms[i]);
      rows += row + (" haproxy queries:" + ha_trails[i]) + "\n";
    }
    std::ofstream(trace, std::ios::binary) << rows;
  }
  std::printf(
      "znode change -> first query on the new port, %d changes%s; %s\n", changes,
      haproxy_only ? " (watch drives HAProxy alone)" : " (watch drives HAProxy and pgbouncer)",
      MachineLine().c_str());
  Print("via HAProxy (target p99 < 50 ms)", to_ha);
  if (pb) Print("via pgbouncer", to_pb);
  int over50 = 0;
  int slow = 0;
  for (double v : to_ha) {
    over50 += v > 50 ? 1 : 0;
    slow += v > 100 ? 1 : 0;
  }
  std::printf("  HAProxy changes over 50 ms: %d, over 100 ms: %d of %d\n", over50, slow, changes);
  return 0;
}
