// Benchmark: from the new primary leaving recovery to the master znode naming it.
//
// Brings up a lab (ZooKeeper ensemble + 3-node PostgreSQL/repmgr), starts one `pgherald
// orchestrator` ($PGHERALD_BIN) that probes the nodes directly (no pollers: the polling path
// alone, so the figure is bounded by tick_ms), then repeats: kill -9 of the primary, wait for
// repmgrd's promotion, measure, `labctl pg-rejoin` the old primary. The moment a node leaves
// recovery is taken by polling every standby's pg_is_in_recovery() every 2 ms; the moment the
// master znode names it is taken in a ZooKeeper watch callback. Prints every sample, the median,
// p99 and the machine.
//
//   PGHERALD_LABCTL=tests/lab/labctl PGHERALD_BIN=build/orch/app/pgherald
//     build/orch/tests/bench/orchestrator_failover_bench [--failovers N] [--tick-ms T]
#include <libpq-fe.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/integration/orchestrator_lab_util.h"

using namespace pgherald;
using namespace pgherald::orchestrator_lab;
using Steady = std::chrono::steady_clock;

namespace {

constexpr char kRoot[] = "/pgherald-bench";

bool InRecovery(PGconn* c, bool* in_recovery) {
  PGresult* r = PQexec(c, "SELECT pg_is_in_recovery()");
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  if (ok) *in_recovery = std::strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  return ok;
}

std::string Machine() {
  utsname u{};
  uname(&u);
  std::ifstream cpu("/proc/cpuinfo");
  std::string line, model;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return std::string(u.sysname) + " " + u.release + ", " + model + ", " +
         std::to_string(std::thread::hardware_concurrency()) + " cpus";
}

}  // namespace

int main(int argc, char** argv) {
  int failovers = 7;
  int tick_ms = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--failovers") == 0) failovers = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--tick-ms") == 0) tick_ms = std::atoi(argv[i + 1]);
  }
  lab::LabOptions options;
  options.zk_ensemble = true;
  options.postgres = true;
  auto up = lab::Lab::Up(options);
  if (!up.ok()) {
    std::fprintf(stderr, "lab: %s\n", up.status().ToString().c_str());
    return 1;
  }
  lab::Lab& lab = **up;
  OrchestratorConfigSpec spec;
  spec.id = "orch-bench";
  spec.root = kRoot;
  spec.tick_ms = tick_ms;
  auto orch = OrchestratorProcess::Start(WriteConfig(lab, spec), lab.dir() + "/orch-bench.log");
  auto zk = Reader(lab);
  if (orch == nullptr || zk == nullptr) {
    std::fprintf(stderr, "cannot start the orchestrator ($PGHERALD_BIN) or reach ZooKeeper\n");
    return 1;
  }
  auto writable = lab.WritableNodes();
  int primary = writable.ok() && writable->size() == 1 ? (*writable)[0] : 0;
  auto master_is = [&](int node) {
    auto m = ReadMaster(*zk, kRoot);
    return m && m->node == "node" + std::to_string(node);
  };
  if (primary == 0 || !WaitUntil([&] { return master_is(primary); }, std::chrono::seconds(30))) {
    std::fprintf(stderr, "first master not published\n%s", orch->Log().c_str());
    return 1;
  }

  std::vector<double> samples;
  for (int f = 0; f < failovers; ++f) {
    // Connections to the standbys, opened before the kill so the poll is cheap.
    std::vector<std::pair<int, PGconn*>> standbys;
    for (int n = 1; n <= 3; ++n) {
      if (n == primary) continue;
      PGconn* c = PQconnectdb(lab.pg_conninfo(n).c_str());
      if (PQstatus(c) == CONNECTION_OK) standbys.push_back({n, c});
      else PQfinish(c);
    }
    // The master znode's data changes only by a publish: the watch stamps the first change after
    // the kill (callbacks must not call ZooKeeper; the main thread reads the record afterwards).
    std::atomic<bool> changed{false};
    Steady::time_point changed_at{};
    std::mutex mu;
    auto armed = zk->Get(std::string(kRoot) + "/clusters/main/master", [&](const zk::WatchEvent&) {
      std::lock_guard lock(mu);
      changed_at = Steady::now();
      changed = true;
    });
    if (!armed.ok()) return 1;
    if (!lab.PgKill(primary).ok()) return 1;
    int promoted = 0;
    Steady::time_point left_recovery{};
    const auto deadline = Steady::now() + std::chrono::seconds(60);
    while (promoted == 0 && Steady::now() < deadline) {
      for (auto& [n, c] : standbys) {
        bool rec = true;
        if (InRecovery(c, &rec) && !rec) {
          left_recovery = Steady::now();
          promoted = n;
          break;
        }
      }
      if (promoted == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (auto& [n, c] : standbys) PQfinish(c);
    if (promoted == 0) {
      std::fprintf(stderr, "no promotion within 60 s\n");
      return 1;
    }
    if (!WaitUntil([&] { return changed.load(); }, std::chrono::seconds(30))) {
      std::fprintf(stderr, "master znode did not move\n%s", orch->Log().c_str());
      return 1;
    }
    double ms;
    {
      std::lock_guard lock(mu);
      ms = std::chrono::duration<double, std::milli>(changed_at - left_recovery).count();
    }
    if (!master_is(promoted)) {
      std::fprintf(stderr, "the master znode does not name the promoted node%d\n", promoted);
      return 1;
    }
    samples.push_back(ms);
    std::printf("failover %d: node%d -> node%d, left recovery -> master znode: %.1f ms\n", f + 1,
                primary, promoted, ms);
    std::fflush(stdout);
    const int old = primary;
    primary = promoted;
    if (!lab.PgRejoin(old).ok()) {
      std::fprintf(stderr, "pg-rejoin %d failed\n", old);
      return 1;
    }
  }
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double p) {
    const std::size_t i = std::min(samples.size() - 1,
                                   static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1) + 0.5));
    return samples[i];
  };
  std::printf("orchestrator promotion-to-publish (polling path, tick_ms=%d, no pollers): n=%zu "
              "median=%.1f ms p99=%.1f ms min=%.1f ms max=%.1f ms\nmachine: %s\n",
              tick_ms, samples.size(), pct(0.5), pct(0.99), samples.front(), samples.back(),
              Machine().c_str());
  orch->Stop();
  return 0;
}
