// The soak: many consecutive drills on one stack, rejoin between them, with the checker after each.
//   PGHERALD_LABCTL=tests/lab/labctl PGHERALD_BIN=build/<dir>/app/pgherald
//     build/<dir>/tests/e2e/e2e_soak [--drills N] [--kind kill9-primary|all|<drill name>]
// Default: 50 kill -9 failovers. Prints one line per drill and the summary: drills, failovers,
// acknowledged writes, lost after publish (must be 0), lost before promotion, convergence and
// reroute times (median, p99, max). Exit 0 only if every drill ran and every property held.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/e2e/drills.h"

using namespace pgherald;       // NOLINT: a program's main
using namespace pgherald::e2e;  // NOLINT

namespace {

void Print(const char* name, const std::vector<double>& v) {
  std::printf("  %-28s n=%-3zu median=%8.1f ms  p99=%8.1f ms  max=%8.1f ms\n", name, v.size(),
              Percentile(v, 50), Percentile(v, 99), Percentile(v, 100));
}

}  // namespace

int main(int argc, char** argv) {
  int drills = 50;
  std::string kind = "kill9-primary";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--drills" && i + 1 < argc) {
      drills = std::atoi(argv[++i]);
    } else if (a == "--kind" && i + 1 < argc) {
      kind = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: e2e_soak [--drills N] [--kind all|kill9-primary|freeze-short|freeze-long|"
                   "restart-writable|kill9-leading-orchestrator|kill9-zk-leader]\n");
      return 2;
    }
  }
  std::vector<DrillKind> cycle;
  for (DrillKind k : AllDrills()) {
    if (kind == "all" || kind == DrillName(k)) cycle.push_back(k);
  }
  if (cycle.empty() || drills <= 0) {
    std::fprintf(stderr, "e2e_soak: unknown --kind '%s' or --drills <= 0 (see --help)\n", kind.c_str());
    return 2;
  }
  auto up = Stack::Up(StackOptions{});
  if (!up.ok()) {
    std::fprintf(stderr, "stack: %s\n", up.status().ToString().c_str());
    return 1;
  }
  Stack& s = **up;
  int ran = 0, failovers = 0, failed = 0;
  std::int64_t acked = 0, lost_after = 0, old_after = 0, lost_before = 0;
  std::uint64_t gap_bytes = 0;
  std::vector<double> convergence, ha, pb;
  for (int i = 0; i < drills; ++i) {
    const DrillKind k = cycle[static_cast<std::size_t>(i) % cycle.size()];
    auto rep = RunDrill(s, k, 10 + i);
    if (!rep.ok()) {
      std::printf("drill %d (%s) did not complete: %s\n", i + 1, DrillName(k),
                  rep.status().ToString().c_str());
      ++failed;
      break;
    }
    ++ran;
    failovers += rep->failover ? 1 : 0;
    acked += rep->check.acked;
    lost_after += rep->check.lost_after_publish;
    old_after += rep->check.acked_by_old_after_publish;
    lost_before += rep->check.lost_before_promotion;
    gap_bytes += rep->check.gap_bytes;
    if (!rep->check.violations.empty()) ++failed;
    if (rep->failover) {
      convergence.push_back(rep->convergence_ms);
      ha.push_back(rep->haproxy_reroute_ms);
      pb.push_back(rep->pgbouncer_reroute_ms);
    }
    std::printf("%3d %s\n", i + 1, rep->Summary().c_str());
    std::fflush(stdout);
    if (auto st = RestoreCluster(s); !st.ok()) {
      std::printf("restore after drill %d failed: %s\n", i + 1, st.ToString().c_str());
      ++failed;
      break;
    }
  }
  if (failed != 0) {
    // Keep the lab directory (every daemon's log, repmgrd's, PostgreSQL's) for the post-mortem.
    ::setenv("PGHERALD_LAB_KEEP", "1", 1);
    std::printf("kept the lab directory for inspection: %s\n", s.dir().c_str());
  }
  std::printf("\nsoak summary (%s): drills=%d failovers=%d acknowledged_writes=%lld "
              "lost_after_publish=%lld acked_by_old_after_publish=%lld lost_before_promotion=%lld "
              "orchestrator_gap_bytes_total=%llu failed_drills=%d; %s\n",
              kind.c_str(), ran, failovers, static_cast<long long>(acked),
              static_cast<long long>(lost_after), static_cast<long long>(old_after),
              static_cast<long long>(lost_before), static_cast<unsigned long long>(gap_bytes), failed,
              MachineLine().c_str());
  Print("fault -> master published", convergence);
  Print("fault -> write via HAProxy", ha);
  Print("fault -> write via pgbouncer", pb);
  return failed == 0 && lost_after == 0 && old_after == 0 ? 0 : 1;
}
