// The orchestrator's prober at scale on the real lab (PostgreSQL 15 + repmgr): N targets (N/3
// connections to each of the lab's three nodes, each its own NodeTarget, so each its own kept
// connection) probed in rounds, by
//   - loop:     PgNodeProber, libpq's non-blocking API multiplexed on one poll(2) loop;
//   - threaded: the design it replaced (until 2026-12), one detached thread per node per round
//               running the same probe synchronously (PgNodeProber::ProbeOnce on the thread).
// Prints per N and prober: the time to connect every target, the round time (median, p99, rounds
// back to back, over kept connections), the CPU of this process (user+sys, getrusage) per 1,000 probes, and the server's count of
// the bench's connections. Not a test: figures only (docs/benchmarks.md).
//
// The lab's max_connections (100) is raised on every node (ALTER SYSTEM, restart, repmgrd stopped
// first so that it does not fail over) when the largest N needs it.
//
// Usage: PGHERALD_LABCTL=... probe_bench [rounds (20)] [N,N,... (3,300,3000)]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/pg_connection.h"
#include "orchestrator/probe.h"
#include "tests/bench/bench_util.h"
#include "tests/e2e/stack.h"
#include "tests/lab/lab.h"

using namespace pgherald;  // NOLINT: a benchmark's main
using orchestrator::NodeTarget;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr char kApplication[] = "pgherald-probe-bench";

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The replaced design, kept here only for comparison: one detached thread per node per round;
// a node whose thread still runs is reported busy.
class ThreadedNodeProber final : public orchestrator::NodeProber {
 public:
  ~ThreadedNodeProber() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return running_ == 0; });
  }
  std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets,
                                     MonoTime deadline) override {
    struct Round {
      std::mutex mu;
      std::condition_variable cv;
      std::vector<model::Probe> results;
      std::size_t remaining = 0;
    };
    auto round = std::make_shared<Round>();
    round->results.resize(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      auto& slot = slots_[targets[i].name];
      if (slot == nullptr) slot = std::make_shared<Slot>();
      {
        std::lock_guard lock(slot->mu);
        if (slot->busy) {
          round->results[i].error = "previous probe still running";
          continue;
        }
        slot->busy = true;
      }
      ++round->remaining;
      {
        std::lock_guard lock(mu_);
        ++running_;
      }
      std::thread([this, round, slot, i, target = targets[i]] {
        std::unique_ptr<pg::PgConnection> conn;
        {
          std::lock_guard lock(slot->mu);
          conn = std::move(slot->conn);
        }
        model::Probe p = orchestrator::PgNodeProber::ProbeOnce(target, &conn, nullptr,
                                                               SystemClock::Instance());
        {
          std::lock_guard lock(slot->mu);
          slot->conn = std::move(conn);
          slot->busy = false;
        }
        {
          std::lock_guard lock(round->mu);
          round->results[i] = std::move(p);
          --round->remaining;
        }
        round->cv.notify_all();
        {
          std::lock_guard lock(mu_);
          --running_;
        }
        cv_.notify_all();
      }).detach();
    }
    std::unique_lock lock(round->mu);
    round->cv.wait_for(lock, deadline - SystemClock::Instance().Now(),
                       [&] { return round->remaining == 0; });
    return round->results;
  }
  std::vector<model::Probe> WriteCheckEach(const std::vector<orchestrator::WriteCheckRequest>&,
                                           MonoTime) override {
    return {};
  }

 private:
  struct Slot {
    std::mutex mu;
    std::unique_ptr<pg::PgConnection> conn;
    bool busy = false;
  };
  std::map<std::string, std::shared_ptr<Slot>> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
};

pg::PgParams NodeParams(const lab::Lab& lab, int node) {
  pg::PgParams p;
  p.port = lab.pg_port(node);
  p.user = lab.Env("PG_SUPERUSER");
  p.dbname = "postgres";
  p.application_name = kApplication;
  p.connect_timeout = std::chrono::milliseconds(30000);
  return p;
}

StatusOr<pg::PgResult> Query(const lab::Lab& lab, int node, const std::string& sql) {
  pg::PgParams p = NodeParams(lab, node);
  p.application_name = "pgherald-probe-bench-admin";
  PGH_ASSIGN_OR_RETURN(auto conn, pg::PgConnection::Connect(p));
  return conn->Exec(sql);
}

// Every node accepts `wanted` connections: raised where needed (standbys first: a hot standby
// needs max_connections >= its primary's), with repmgrd stopped so the restart is not a failure.
Status RaiseMaxConnections(lab::Lab& lab, int wanted) {
  PGH_ASSIGN_OR_RETURN(const int primary, lab.Check());
  PGH_ASSIGN_OR_RETURN(pg::PgResult current, Query(lab, primary, "SHOW max_connections"));
  PGH_ASSIGN_OR_RETURN(const std::string value, current.row(0).GetString("max_connections"));
  if (std::atoi(value.c_str()) >= wanted) return Status::Ok();
  std::printf("raising max_connections from %s to %d on every node (restart)\n", value.c_str(),
              wanted);
  std::vector<int> order;
  for (int n = 1; n <= 3; ++n) {
    if (n != primary) order.push_back(n);
  }
  order.push_back(primary);
  for (int n = 1; n <= 3; ++n) PGH_RETURN_IF_ERROR(lab.RepmgrdStop(n));
  for (int n : order) {
    PGH_RETURN_IF_ERROR(
        Query(lab, n, "ALTER SYSTEM SET max_connections = " + std::to_string(wanted)).status());
    PGH_RETURN_IF_ERROR(lab.PgStop(n));
    PGH_RETURN_IF_ERROR(lab.PgStartWritable(n));  // starts the node as it is (a standby stays one)
  }
  return lab.WaitForPrimary(0, std::chrono::seconds(120)).status();
}

int ServerConnections(const lab::Lab& lab) {
  int total = 0;
  for (int n = 1; n <= 3; ++n) {
    auto r = Query(lab, n,
                   std::string("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '") +
                       kApplication + "'");
    if (!r.ok()) continue;
    auto n_node = r->row(0).GetInt64("n");
    if (n_node.ok()) total += static_cast<int>(*n_node);
  }
  return total;
}

void Run(const lab::Lab& lab, const char* kind, orchestrator::NodeProber& prober, int n,
         int rounds) {
  std::vector<NodeTarget> targets;
  for (int i = 0; i < n; ++i) {
    const int node = 1 + i % 3;
    targets.push_back({"t" + std::to_string(i) + "-node" + std::to_string(node),
                       NodeParams(lab, node)});
  }
  // Connect first, 150 more connections at a time (3,000 connects at once on a 2-core machine
  // would time out and retry forever: the servers' backend starts need more CPU than the connect
  // timeout gives them), then one full round, left out of the figures.
  const auto warm_start = SteadyClock::now();
  for (std::size_t k = 150; k < targets.size(); k += 150) {
    const std::vector<NodeTarget> slice(targets.begin(), targets.begin() + static_cast<long>(k));
    prober.ProbeAll(slice, SystemClock::Instance().Now() + std::chrono::seconds(120));
  }
  auto first = prober.ProbeAll(targets, SystemClock::Instance().Now() + std::chrono::seconds(120));
  const double warm_ms =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - warm_start).count();
  int failed = 0;
  std::string example;
  for (const auto& p : first) {
    if (!p.reachable) {
      ++failed;
      example = p.error;
    }
  }
  std::vector<double> round_ms;
  int unreachable = 0;
  const double cpu0 = CpuSeconds();
  for (int r = 0; r < rounds; ++r) {
    const auto start = SteadyClock::now();
    auto probes = prober.ProbeAll(targets, SystemClock::Instance().Now() + std::chrono::seconds(30));
    round_ms.push_back(
        std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count());
    for (const auto& p : probes) {
      if (!p.reachable) {
        ++unreachable;
        example = p.error;
      }
    }
  }
  const double cpu_ms = (CpuSeconds() - cpu0) * 1000;
  const int connections = ServerConnections(lab);
  std::printf(
      "N=%-5d %-8s connecting %8.1f ms, %d unreachable | rounds: median %7.2f ms, "
      "p99 %7.2f ms | CPU %6.1f ms per 1000 probes | %d unreachable | %d server connections%s%s\n",
      n, kind, warm_ms, failed, e2e::Percentile(round_ms, 0.5), e2e::Percentile(round_ms, 0.99),
      cpu_ms * 1000 / (static_cast<double>(n) * rounds), unreachable, connections,
      example.empty() ? "" : " | e.g. ", example.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  std::vector<int> sizes;
  std::stringstream list(argc > 2 ? argv[2] : "3,300,3000");
  for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::atoi(item.c_str()));
  const int largest = *std::max_element(sizes.begin(), sizes.end());

  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < static_cast<rlim_t>(largest + 100)) {
    std::fprintf(stderr, "open files limit %llu is below %d\n",
                 static_cast<unsigned long long>(files.rlim_cur), largest + 100);
    return 2;
  }

  std::unique_ptr<lab::Lab> lab = bench::LabUp(/*zk_ensemble=*/false, "lab");
  if (lab == nullptr) return 1;
  std::printf("machine: %s; load shared with other jobs\n", e2e::MachineLine().c_str());
  if (Status s = RaiseMaxConnections(*lab, largest / 3 + 60); !s.ok()) {
    std::fprintf(stderr, "max_connections: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%d rounds back to back per N and prober, targets spread over the 3 nodes\n", rounds);
  for (const int n : sizes) {
    {
      orchestrator::PgNodeProber loop;
      Run(*lab, "loop", loop, n, rounds);
    }
    {
      ThreadedNodeProber threaded;
      Run(*lab, "threaded", threaded, n, rounds);
    }
  }
  return 0;
}
