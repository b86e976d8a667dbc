// What clients see during a planned switchover (issue 17, docs/switchover.md): the whole stack
// (lab, a poller per node with poller.switchover enabled, two orchestrators, `pgherald watch`
// holding pgbouncer with on_unverified: hold) with the drills' writers (two per route, unique
// sequenced rows, a deadline of --op-timeout-ms per statement so that a held statement is waited
// for) through pgbouncer and HAProxy, and N `pgherald switchover` runs back and forth between the
// first primary and a standby (an even N ends where it began). Per switchover and route: the
// statements that failed and the longest a statement waited; the hold (hold -> publish, from the
// command's JSON summary) and the hold as the watch applied it; the checker's lost writes (both
// kinds: a switchover loses none); each phase's duration (from the command's progress lines). With
// --kill9 N, N kill -9 failovers on the same stack and settings, for comparison. Prints every
// event, then median/p99 per figure and the machine.
//
//   PGHERALD_LABCTL=tests/lab/labctl PGHERALD_BIN=build/ci/app/pgherald
//     build/ci/tests/bench/switchover_bench [--switchovers N] [--kill9 N] [--op-timeout-ms T]
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "tests/bench/bench_util.h"
#include "tests/e2e/drills.h"

using namespace pgherald;       // NOLINT: a benchmark's main
using namespace pgherald::e2e;  // NOLINT

namespace {

// Per route: client-visible failures per event and the longest wait.
struct RouteSeries {
  std::vector<double> failed, wait;
  void Add(const ClientImpact& c) {
    failed.push_back(c.failed_in_flight + c.failed_after_fault);
    wait.push_back(c.longest_wait_ms);
  }
};

struct Series {
  RouteSeries pgbouncer, haproxy;
  std::vector<double> hold, watch_hold, command;
  std::map<std::string, std::vector<double>> phase_ms;  // a phase's start to the next one's
  std::int64_t lost_after = 0, lost_before = 0, violations = 0;
  void Add(const DrillReport& d) {
    pgbouncer.Add(d.pgbouncer_clients);
    haproxy.Add(d.haproxy_clients);
    lost_after += d.check.lost_after_publish;
    lost_before += d.check.lost_before_promotion;
    violations += static_cast<std::int64_t>(d.check.violations.size());
  }
};

void PrintRoutes(const char* what, const Series& s) {
  std::printf("  %s, pgbouncer (hold): failed per event %s | longest wait %s\n", what,
              bench::Stats(s.pgbouncer.failed, "").c_str(), bench::Stats(s.pgbouncer.wait).c_str());
  std::printf("  %s, HAProxy:          failed per event %s | longest wait %s\n", what,
              bench::Stats(s.haproxy.failed, "").c_str(), bench::Stats(s.haproxy.wait).c_str());
  std::printf("  %s: writes lost after the publication %lld, before it %lld; checker "
              "violations %lld\n",
              what, static_cast<long long>(s.lost_after), static_cast<long long>(s.lost_before),
              static_cast<long long>(s.violations));
}

}  // namespace

int main(int argc, char** argv) {
  int switchovers = 10;
  int kill9 = 0;
  int op_timeout_ms = 60000;
  if (!bench::ForEachFlag(argc, argv, [&](const std::string& flag, const std::string& value) {
        int* target = flag == "--switchovers"   ? &switchovers
                      : flag == "--kill9"         ? &kill9
                      : flag == "--op-timeout-ms" ? &op_timeout_ms
                                                  : nullptr;
        if (target == nullptr) {
          std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
          return false;
        }
        *target = std::atoi(value.c_str());
        return true;
      }) ||
      switchovers <= 0 || kill9 < 0 || op_timeout_ms <= 0) {
    std::fprintf(stderr, "usage: switchover_bench [--switchovers N>0] [--kill9 N>=0] "
                         "[--op-timeout-ms T>0]\n");
    return 2;
  }

  auto up = Stack::Up(StackOptions{});
  if (!up.ok()) {
    std::fprintf(stderr, "stack: %s\n", up.status().ToString().c_str());
    return 1;
  }
  Stack& s = **up;
  // Only pgherald's own limits may end a hold: pgbouncer's query_wait_timeout above the watch's
  // max_hold_ms, both above any switchover's.
  if (auto st = s.SetPgbouncerQueryWaitTimeout(60); !st.ok()) {
    std::fprintf(stderr, "pgbouncer: %s\n", st.ToString().c_str());
    return 1;
  }
  if (auto st = s.SetWatchPolicy("hold", 30000); !st.ok()) {
    std::fprintf(stderr, "watch policy: %s\n", st.ToString().c_str());
    return 1;
  }
  if (auto st = RestoreCluster(s); !st.ok()) {
    std::fprintf(stderr, "restore: %s\n", st.ToString().c_str());
    return 1;
  }
  auto first = s.AwaitHealthyCluster(std::chrono::milliseconds(60000));
  if (!first.ok()) {
    std::fprintf(stderr, "%s\n", first.status().ToString().c_str());
    return 1;
  }
  const int other = *first % 3 + 1;
  DrillOptions options;
  options.op_timeout = std::chrono::milliseconds(op_timeout_ms);

  Series sw;
  int unfinished = 0;  // switchovers that did not end `done`, or whose drill could not finish
  for (int i = 0; i < switchovers; ++i) {
    auto now = s.AwaitHealthyCluster(std::chrono::milliseconds(60000));
    if (!now.ok()) {
      std::fprintf(stderr, "before switchover %d: %s\n", i + 1, now.status().ToString().c_str());
      return 1;
    }
    const int to = *now == *first ? other : *first;  // back and forth
    auto r = RunSwitchover(s, to, /*expect_done=*/true, 200 + i, options);
    if (!r.ok()) {
      ++unfinished;
      std::printf("switchover %2d: to node%d did not finish: %s\n", i + 1, to,
                  r.status().ToString().c_str());
    } else {
      if (r->run.exit_code != 0) ++unfinished;
      sw.Add(r->drill);
      if (r->run.hold_ms >= 0) sw.hold.push_back(r->run.hold_ms);
      if (r->watch_hold_ms >= 0) sw.watch_hold.push_back(r->watch_hold_ms);
      sw.command.push_back(static_cast<double>(r->run.end_ns - r->run.start_ns) / 1e6);
      for (std::size_t p = 0; p + 1 < r->run.phases.size(); ++p) {
        sw.phase_ms[r->run.phases[p].first].push_back(
            static_cast<double>(r->run.phases[p + 1].second - r->run.phases[p].second));
      }
      std::printf("%s\n", r->Summary().c_str());
    }
    std::fflush(stdout);
    if (auto st = RestoreCluster(s); !st.ok()) {
      std::fprintf(stderr, "restore after switchover %d: %s\n", i + 1, st.ToString().c_str());
      return 1;
    }
  }

  Series k9;
  for (int i = 0; i < kill9; ++i) {
    auto r = RunDrill(s, DrillKind::kKillPrimary, 300 + i, options);
    auto restored = RestoreCluster(s);
    if (!r.ok() || !restored.ok()) {
      std::fprintf(stderr, "kill -9 failover %d: %s\n", i + 1,
                   (r.ok() ? restored : r.status()).ToString().c_str());
      return 1;
    }
    k9.Add(*r);
    // Failed statements split as in flight at the kill + sent after it.
    std::printf("kill -9 %2d: node%d -> node%d  pgbouncer failed %d+%d wait %.0f ms  haproxy failed "
                "%d+%d wait %.0f ms  lost %lld+%lld\n",
                i + 1, r->old_primary, r->final_primary, r->pgbouncer_clients.failed_in_flight,
                r->pgbouncer_clients.failed_after_fault, r->pgbouncer_clients.longest_wait_ms,
                r->haproxy_clients.failed_in_flight, r->haproxy_clients.failed_after_fault,
                r->haproxy_clients.longest_wait_ms,
                static_cast<long long>(r->check.lost_after_publish),
                static_cast<long long>(r->check.lost_before_promotion));
    std::fflush(stdout);
  }
  (void)s.SetWatchPolicy("keep");

  std::printf("\nclients through the proxies over %d switchovers back and forth (2 writers per "
              "route, statement deadline %d ms, watch on_unverified: hold); %s; load %s\n",
              switchovers, op_timeout_ms, bench::Machine().c_str(), bench::Load().c_str());
  std::printf("  switchovers that did not end done: %d of %d\n", unfinished, switchovers);
  PrintRoutes("switchover", sw);
  std::printf("  switchover hold -> publish (command summary): %s\n",
              bench::Stats(sw.hold).c_str());
  std::printf("  switchover hold as the watch applied it (pgbouncer PAUSE -> RESUME): %s\n",
              bench::Stats(sw.watch_hold).c_str());
  std::printf("  switchover command, start to exit: %s\n", bench::Stats(sw.command).c_str());
  for (const char* phase : {"prepare", "hold", "stop", "promote", "publish", "rejoin", "unpause"}) {
    const auto it = sw.phase_ms.find(phase);
    if (it != sw.phase_ms.end()) {
      std::printf("    phase %-8s %s\n", phase, bench::Stats(it->second).c_str());
    }
  }
  if (kill9 > 0) PrintRoutes("kill -9", k9);
  return 0;
}
