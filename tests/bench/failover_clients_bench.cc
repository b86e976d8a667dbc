// What clients see during a kill -9 failover (issue 17): the whole stack (lab, a poller per node,
// two orchestrators, `pgherald watch` driving HAProxy and pgbouncer) with the drills' writers (two
// per route, unique sequenced rows, one statement each, a deadline of --op-timeout-ms per statement
// so that a held statement is waited for) through both proxies, once per watch policy
// (on_unverified: keep, then hold with max_hold_ms 90000; pgbouncer's query_wait_timeout is raised
// from the lab's 5 s to 120 s for both, so that neither the hold nor pgbouncer gives up before a
// failover of a loaded machine ends). Per failover and route: the statements
// that failed, split into those sent before the kill and after it, and by what broke them: the
// server lost under the statement (it was in flight on the dying master) or no server at all
// (pgbouncer refusing a client while the dead master refuses it: what a hold avoids);
// the longest a statement waited; and the drills' checker (writes lost after the publication, and
// lost before it: acknowledged by the old primary, not replicated in time). Prints every failover,
// then per policy and route the median and p99, and the machine.
//
//   PGHERALD_LABCTL=tests/lab/labctl PGHERALD_BIN=build/ci/app/pgherald
//     build/ci/tests/bench/failover_clients_bench [--failovers N] [--policy keep|hold|both]
//     [--op-timeout-ms T] [--cadence-ms C]
//
// --cadence-ms: the orchestrators' and the pollers' tick_ms (default 100, as the drills; the
// product's default is 1000).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/e2e/drills.h"

using namespace pgherald;       // NOLINT: a benchmark's main
using namespace pgherald::e2e;  // NOLINT

namespace {

struct Series {
  std::vector<double> in_flight, after, wait, server_lost, without_server;
};

void Print(const char* policy, const char* route, const Series& s) {
  std::printf("  %-5s %-9s failed in flight: median %4.1f p99 %4.1f | failed after the kill: "
              "median %5.1f p99 %5.1f max %5.1f | longest wait: median %7.1f ms p99 %7.1f ms\n",
              policy, route, Percentile(s.in_flight, 50), Percentile(s.in_flight, 99),
              Percentile(s.after, 50), Percentile(s.after, 99), Percentile(s.after, 100),
              Percentile(s.wait, 50), Percentile(s.wait, 99));
  std::printf("  %-5s %-9s of the failed: the server lost under them median %4.1f p99 %4.1f | "
              "no server (not in flight on the dead master) median %4.1f p99 %4.1f max %4.1f\n",
              policy, route, Percentile(s.server_lost, 50), Percentile(s.server_lost, 99),
              Percentile(s.without_server, 50), Percentile(s.without_server, 99),
              Percentile(s.without_server, 100));
}

void Add(Series& s, const ClientImpact& c) {
  s.in_flight.push_back(c.failed_in_flight);
  s.after.push_back(c.failed_after_fault);
  s.wait.push_back(c.longest_wait_ms);
  s.server_lost.push_back(c.failed_server_lost);
  s.without_server.push_back(c.failed_without_server());
}

}  // namespace

int main(int argc, char** argv) {
  int failovers = 10;
  std::string which = "both";
  int op_timeout_ms = 8000;
  int cadence_ms = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--failovers") == 0) failovers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--policy") == 0) which = argv[i + 1];
    else if (std::strcmp(argv[i], "--op-timeout-ms") == 0) op_timeout_ms = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--cadence-ms") == 0) cadence_ms = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (failovers <= 0 || op_timeout_ms <= 0 || cadence_ms < 50 ||
      (which != "keep" && which != "hold" && which != "both")) {
    std::fprintf(stderr, "usage: failover_clients_bench [--failovers N>0] [--policy keep|hold|both]"
                         " [--op-timeout-ms T>0] [--cadence-ms C>=50]\n");
    return 2;
  }
  std::vector<std::string> policies;
  if (which != "hold") policies.push_back("keep");
  if (which != "keep") policies.push_back("hold");

  StackOptions stack_options;
  stack_options.cadence_ms = cadence_ms;
  auto up = Stack::Up(stack_options);
  if (!up.ok()) {
    std::fprintf(stderr, "stack: %s\n", up.status().ToString().c_str());
    return 1;
  }
  Stack& s = **up;
  DrillOptions options;
  options.op_timeout = std::chrono::milliseconds(op_timeout_ms);
  std::vector<std::pair<std::string, std::pair<Series, Series>>> results;  // policy -> (ha, pb)
  std::int64_t lost_after = 0, lost_before = 0;
  int index = 0;
  if (auto st = s.SetPgbouncerQueryWaitTimeout(120); !st.ok()) {
    std::fprintf(stderr, "pgbouncer: %s\n", st.ToString().c_str());
    return 1;
  }
  for (const std::string& policy : policies) {
    if (auto st = s.SetWatchPolicy(policy, 90000); !st.ok()) {
      std::fprintf(stderr, "watch policy %s: %s\n", policy.c_str(), st.ToString().c_str());
      return 1;
    }
    if (auto st = RestoreCluster(s); !st.ok()) {
      std::fprintf(stderr, "restore: %s\n", st.ToString().c_str());
      return 1;
    }
    Series ha, pb;
    for (int i = 0; i < failovers; ++i) {
      auto report = RunDrill(s, DrillKind::kKillPrimary, 100 + index++, options);
      if (!report.ok()) {
        std::fprintf(stderr, "%s failover %d: %s\n", policy.c_str(), i + 1,
                     report.status().ToString().c_str());
        return 1;
      }
      Add(ha, report->haproxy_clients);
      Add(pb, report->pgbouncer_clients);
      lost_after += report->check.lost_after_publish;
      lost_before += report->check.lost_before_promotion;
      std::printf("%s failover %2d: node%d -> node%d  haproxy failed %d+%d wait %.0f ms  "
                  "pgbouncer failed %d+%d (no server %d) wait %.0f ms (hold after %.0f ms, "
                  "failed during it %d)  "
                  "lost after publish %lld  violations %zu%s%s\n",
                  policy.c_str(), i + 1, report->old_primary, report->final_primary,
                  report->haproxy_clients.failed_in_flight,
                  report->haproxy_clients.failed_after_fault,
                  report->haproxy_clients.longest_wait_ms,
                  report->pgbouncer_clients.failed_in_flight,
                  report->pgbouncer_clients.failed_after_fault,
                  report->pgbouncer_clients.failed_without_server(),
                  report->pgbouncer_clients.longest_wait_ms, report->pgbouncer_hold_ms,
                  report->pgbouncer_clients.failed_after_hold,
                  static_cast<long long>(report->check.lost_after_publish),
                  report->check.violations.size(),
                  report->pgbouncer_clients.first_errors.empty() ? "" : "  pgbouncer errors: ",
                  report->pgbouncer_clients.first_errors.c_str());
      std::fflush(stdout);
      if (auto st = RestoreCluster(s); !st.ok()) {
        std::fprintf(stderr, "restore after %s failover %d: %s\n", policy.c_str(), i + 1,
                     st.ToString().c_str());
        return 1;
      }
    }
    results.push_back({policy, {ha, pb}});
  }
  (void)s.SetWatchPolicy("keep");
  std::printf("\nclients through the proxies over %d kill -9 failovers per policy (2 writers per "
              "route, statement deadline %d ms; failed = per failover); %s\n",
              failovers, op_timeout_ms, MachineLine().c_str());
  for (const auto& [policy, series] : results) {
    Print(policy.c_str(), "haproxy", series.first);
    Print(policy.c_str(), "pgbouncer", series.second);
  }
  std::printf("  writes lost after the publication: %lld (must be 0); acknowledged by the old "
              "primary and not replicated before the promotion: %lld\n",
              static_cast<long long>(lost_after), static_cast<long long>(lost_before));
  return 0;
}
