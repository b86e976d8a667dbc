// The README demo's engine (scripts/demo.sh runs it):
//   e2e_demo_stack demo   brings the whole stack up (lab, 3 pollers, 2 orchestrators, pgherald
//                         watch driving HAProxy and pgbouncer), shows `pgherald status`, starts
//                         clients writing through both proxies, kills -9 the primary, shows where
//                         the clients' writes land and the measured times, and exits leaving the
//                         stack running; its last line is the teardown command.
//   e2e_demo_stack down --dir DIR   stops exactly the daemons recorded in DIR/stack.pids, then
//                         `labctl down`.
// Needs PGHERALD_LABCTL and PGHERALD_BIN.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "tests/e2e/stack.h"
#include "tests/e2e/workload.h"

using namespace pgherald;       // NOLINT: a program's main
using namespace pgherald::e2e;  // NOLINT

namespace {

void Step(const std::string& text) { std::printf("\n\033[1m== %s\033[0m\n", text.c_str()); }

void Status_(Stack& s) {
  const std::string cmd = std::string(std::getenv("PGHERALD_BIN")) + " status --zookeeper '" +
                          s.lab().zk_connect() + "' --cluster main";
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  if (rc != 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 2) {  // no status command: read the znode
    auto m = s.Master();
    std::printf("master znode: %s (vouchers: %d)\n", m ? m->ToJson().c_str() : "none",
                s.VoucherCount());
  }
}

// Writes through each proxy since `after_ns`, by node: "node1: 812 node2: 1440".
std::string Where(const Workload& w, Route route, Stack& s, std::int64_t after_ns) {
  std::map<int, int> by_node;
  int failed = 0;
  for (const auto& op : w.History()) {
    if (op.route != route || op.invoke_ns < after_ns) continue;
    if (op.acked) {
      ++by_node[s.NodeOfPort(op.port)];
    } else {
      ++failed;
    }
  }
  std::string out;
  for (auto [n, c] : by_node) out += "node" + std::to_string(n) + ": " + std::to_string(c) + " ok  ";
  return out + "failed: " + std::to_string(failed);
}

}  // namespace

int main(int argc, char** argv) {
  const char* labctl = std::getenv("PGHERALD_LABCTL");
  if (labctl == nullptr || std::getenv("PGHERALD_BIN") == nullptr) {
    std::fprintf(stderr, "e2e_demo_stack: set PGHERALD_LABCTL (tests/lab/labctl) and PGHERALD_BIN "
                         "(the pgherald program)\n");
    return 2;
  }
  char exe[4096] = {};
  const ssize_t len = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  const std::string self = len > 0 ? std::string(exe, static_cast<std::size_t>(len)) : argv[0];
  if (argc == 4 && std::string(argv[1]) == "down" && std::string(argv[2]) == "--dir") {
    auto st = Stack::StopRecorded(argv[3], labctl);
    if (!st.ok()) {
      std::fprintf(stderr, "e2e_demo_stack down: %s\n", st.ToString().c_str());
      return 1;
    }
    return 0;
  }
  if (argc != 2 || std::string(argv[1]) != "demo") {
    std::fprintf(stderr, "usage: e2e_demo_stack demo | e2e_demo_stack down --dir DIR\n");
    return 2;
  }
  Step("Bringing up the stack: ZooKeeper x3, PostgreSQL x3 + repmgr/repmgrd, HAProxy, pgbouncer, "
       "3 pollers, 2 orchestrators, pgherald watch");
  StackOptions o;
  o.detach = true;
  const std::int64_t t0 = MonoNs();
  auto up = Stack::Up(o);
  if (!up.ok()) {
    std::fprintf(stderr, "stack: %s\n", up.status().ToString().c_str());
    return 1;
  }
  Stack& s = **up;
  const std::string down = "PGHERALD_LABCTL=" + std::string(labctl) + " PGHERALD_BIN=" +
                           std::getenv("PGHERALD_BIN") + " " + self + " down --dir " + s.dir();
  std::printf("up in %.1f s: %s (logs: %s/*.log)\n", static_cast<double>(MonoNs() - t0) / 1e9,
              s.dir().c_str(), s.dir().c_str());

  Step("pgherald status");
  Status_(s);

  WorkloadOptions wo;
  wo.haproxy_conninfo = s.HaproxyConninfo();
  wo.pgbouncer_conninfo = s.PgbouncerConninfo();
  wo.clients_per_route = 1;
  wo.pause = std::chrono::milliseconds(2);
  Workload w(wo);
  w.Start();
  const int old = s.VouchedMasterNode();
  const int old_port = s.lab().pg_port(old);
  WaitUntil([&] { return w.Acks(Route::kHaproxy, old_port) > 20 && w.Acks(Route::kPgbouncer, old_port) > 20; },
            std::chrono::milliseconds(10000));
  Step("Clients write through HAProxy (port " + s.Env("HAPROXY_PORT") + ") and pgbouncer (port " +
       s.Env("PGBOUNCER_PORT") + ")");
  std::printf("haproxy   %s\npgbouncer %s\n", Where(w, Route::kHaproxy, s, 0).c_str(),
              Where(w, Route::kPgbouncer, s, 0).c_str());

  Step("kill -9 of the primary (node" + std::to_string(old) + ")");
  const std::int64_t kill_ns = MonoNs();
  if (auto st = s.lab().PgKill(old); !st.ok()) {
    std::fprintf(stderr, "pg-kill: %s\n", st.ToString().c_str());
    return 1;
  }
  const std::int64_t killed_ns = MonoNs();  // labctl returns once the postmaster is gone
  auto p = s.lab().WaitForPrimary(old, std::chrono::seconds(30));
  if (!p.ok()) {
    std::fprintf(stderr, "no promotion: %s\nTear down with: %s\n", p.status().ToString().c_str(),
                 down.c_str());
    return 1;
  }
  const int now = *p;
  const double promoted_ms = static_cast<double>(MonoNs() - kill_ns) / 1e6;
  const int port = s.lab().pg_port(now);
  std::int64_t ha = 0, pb = 0;
  const std::uint64_t epoch_before = s.Master() ? s.Master()->epoch : 0;
  const bool published = s.AwaitMaster(now, 0, std::chrono::milliseconds(30000)).ok();
  // When the orchestrator decided (its history entry), not when this program noticed.
  double published_ms = static_cast<double>(MonoNs() - kill_ns) / 1e6;
  for (const auto& e : s.History()) {
    if (e.action == "publish" && e.master && e.master->port == port && e.epoch >= epoch_before) {
      published_ms = static_cast<double>((e.decided_at_ms - WallMinusMonoMs()) * 1000000 - kill_ns) / 1e6;
    }
  }
  WaitUntil([&] {
    ha = w.FirstAck(Route::kHaproxy, port, kill_ns);
    pb = w.FirstAck(Route::kPgbouncer, port, kill_ns);
    return ha != 0 && pb != 0;
  },
            std::chrono::milliseconds(30000));
  WaitUntil([&] { return w.Acks(Route::kHaproxy, port) > 50 && w.Acks(Route::kPgbouncer, port) > 50; },
            std::chrono::milliseconds(5000));
  w.Stop();
  std::printf("repmgrd promoted node%d      %7.0f ms after the kill (seen by labctl polling)\n", now,
              promoted_ms);
  std::printf("pgherald decided node%d      %7.0f ms after the kill%s\n", now, published_ms,
              published ? "" : " (NOT within 30 s)");
  std::printf("first write via HAProxy    %7.0f ms after the kill%s\n",
              static_cast<double>(ha - kill_ns) / 1e6, ha ? "" : " (none)");
  std::printf("first write via pgbouncer  %7.0f ms after the kill%s\n",
              static_cast<double>(pb - kill_ns) / 1e6, pb ? "" : " (none)");
  Step("Where the clients' writes landed once the primary was gone");
  std::printf("haproxy   %s\npgbouncer %s\n", Where(w, Route::kHaproxy, s, killed_ns).c_str(),
              Where(w, Route::kPgbouncer, s, killed_ns).c_str());

  Step("pgherald status after the failover");
  Status_(s);
  std::printf("\nThe stack is still running (node%d is down; rejoin it with: %s pg-rejoin %d --dir %s).\n"
              "Tear it down with:\n%s\n",
              old, labctl, old, s.dir().c_str(), down.c_str());
  return ha != 0 && pb != 0 ? 0 : 1;
}
