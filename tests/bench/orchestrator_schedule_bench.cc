// Benchmark: the orchestrator's scheduler at fleet size (issue 15, part D). Not a test: it prints
// figures.
//
// One Orchestrator::Run() loop on the real clock over N clusters in FakeZk (thread dispatch, as
// the real client), with a fake prober that answers at once (node1 a writable primary, node2 a
// standby) after an optional simulated wait per call (--probe-us, a sleep: the network, not CPU;
// a batch of clusters makes one probe call and one write-check call, as PgNodeProber multiplexes
// them on one poll loop). --batch-max 1 runs one cluster after another (as before batches). A "poller"
// session rewrites the observation of a random cluster's node every --event-ms; the figure is the
// time from that write to the decision of that cluster's round that read it (the watch path a
// promotion takes), while every cluster is verified every --verify-ms.
//
// Prints: cluster rounds per second (by trigger), process CPU (cores) and CPU per cluster round
// (the loop, FakeZk's in-process server and dispatch threads and this benchmark's poller: an upper
// bound for the loop's own cost; no PostgreSQL, no network), and the watch-to-decision latency
// (n, median, p99, max). The HTTP snapshot observer is not attached (it re-reads every cluster;
// measured apart).
//
// FakeZk copies its whole tree for every multi (to roll it back), O(znodes): with 1,000 clusters
// that copy dominates any round that writes. So steady-state rounds write nothing by default
// (--reaffirm-ms 600000: no voucher re-affirmation during the run) and the figures are the
// scheduler's and the read path's; the start-up (a publish per cluster) pays the copies.
//
//   build/ci/tests/bench/orchestrator_schedule_bench [--clusters 1000] [--verify-ms 1000]
//     [--seconds 10] [--event-ms 100] [--probe-us 0] [--reaffirm-ms 600000] [--batch-max 64]
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "common/model/zk_paths.h"
#include "orchestrator/orchestrator.h"
#include "tests/support/fake_zk.h"
#include "tests/support/primary_standby_prober.h"

using namespace pgherald;
using namespace pgherald::orchestrator;
using Steady = std::chrono::steady_clock;

namespace {

constexpr char kRoot[] = "/pgherald";

// Counts decisions, and stamps the first decision of the awaited cluster that saw the awaited
// observation sequence number.
class Stamper final : public RoundObserver {
 public:
  void OnDecision(const std::string& cluster, const DecisionInput& input, const Verdict&) override {
    decisions.fetch_add(1);
    std::lock_guard lock(mu);
    if (cluster != awaited_cluster || done) return;
    auto it = input.observations.find("node2");
    if (it == input.observations.end() || it->second.observation.seq != awaited_seq) return;
    decided_at = Steady::now();
    done = true;
    cv.notify_all();
  }
  void AfterRound(Orchestrator&) override {}

  std::atomic<std::uint64_t> decisions{0};
  std::mutex mu;
  std::condition_variable cv;
  std::string awaited_cluster;
  std::uint64_t awaited_seq = 0;
  bool done = true;
  Steady::time_point decided_at;
};

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int clusters = 1000;
  int verify_ms = 1000;
  int seconds = 10;
  int event_ms = 100;
  int probe_us = 0;
  int reaffirm_ms = 600000;
  int batch_max = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--clusters") clusters = value;
    else if (flag == "--verify-ms") verify_ms = value;
    else if (flag == "--seconds") seconds = value;
    else if (flag == "--event-ms") event_ms = value;
    else if (flag == "--probe-us") probe_us = value;
    else if (flag == "--reaffirm-ms") reaffirm_ms = value;
    else if (flag == "--batch-max") batch_max = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (clusters < 1 || verify_ms < 10 || seconds < 1 || event_ms < 1 || probe_us < 0 || reaffirm_ms < 10 ||
      batch_max < 1) {
    std::fprintf(stderr, "bad value\n");
    return 2;
  }

  config::LoggingConfig lc;
  lc.level = config::LogLevel::kWarn;  // the start-up's publishes log at info, 3 lines a cluster
  log::Init(lc);
  std::shared_ptr<zk::FakeZkServer> server = zk::FakeZkServer::Create();
  OrchestratorOptions o;
  o.id = "orch-bench";
  o.tick = std::chrono::milliseconds(1000);
  o.verify_interval = std::chrono::milliseconds(verify_ms);
  o.voucher_reaffirm = std::chrono::milliseconds(reaffirm_ms);
  o.batch_max = batch_max;
  o.policy.confirmation_window = std::chrono::milliseconds(0);
  o.policy.probe_max_age = std::max(std::chrono::milliseconds(3000), 3 * o.verify_interval);
  std::vector<ClusterSpec> specs;
  for (int i = 0; i < clusters; ++i) {
    ClusterSpec spec;
    spec.name = "c" + std::to_string(i);
    for (const char* n : {"node1", "node2"}) spec.nodes.push_back(NodeTarget{n, spec.defaults});
    specs.push_back(std::move(spec));
  }
  SessionFactory factory = [server]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    return std::unique_ptr<zk::ZkSession>(server->NewSession());
  };
  PrimaryStandbyProber prober{std::chrono::microseconds(probe_us)};
  Stamper stamper;
  Orchestrator orch(o, specs, factory, &prober, &SystemClock::Instance());
  orch.set_observer(&stamper);
  std::atomic<bool> stop{false};
  const Steady::time_point t0 = Steady::now();
  std::thread loop([&] { orch.Run(stop); });

  // Start-up: every cluster set up and decided (the first sweep, and the rounds our own publishes
  // wake), then one quiet interval.
  while (stamper.decisions.load() < static_cast<std::uint64_t>(2 * clusters)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double startup_s = std::chrono::duration<double>(Steady::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(verify_ms));

  auto poller = server->NewSession();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  std::map<int, std::uint64_t> seq;
  auto write_observation = [&](int c, std::uint64_t s) {
    const model::NodeObservation obs = ObservationOf("node2", s);
    const std::string path = model::ClusterPaths(kRoot, "c" + std::to_string(c)).Node("node2");
    if (s == 1) return poller->Create(path, obs.ToJson(), zk::CreateMode::kEphemeral).status();
    return poller->Set(path, obs.ToJson(), -1).status();
  };

  const std::uint64_t decisions_before = stamper.decisions.load();
  const double cpu_before = CpuSeconds();
  const Steady::time_point start = Steady::now();
  const Steady::time_point end = start + std::chrono::seconds(seconds);
  std::vector<double> latencies_ms;
  int missed = 0;
  while (Steady::now() < end) {
    const int c = pick(rng);
    const std::uint64_t s = ++seq[c];
    {
      std::lock_guard lock(stamper.mu);
      stamper.awaited_cluster = "c" + std::to_string(c);
      stamper.awaited_seq = s;
      stamper.done = false;
    }
    const Steady::time_point written = Steady::now();
    if (Status st = write_observation(c, s); !st.ok()) {
      std::fprintf(stderr, "observation write failed: %s\n", st.ToString().c_str());
      return 1;
    }
    {
      std::unique_lock lock(stamper.mu);
      if (stamper.cv.wait_for(lock, std::chrono::seconds(5), [&] { return stamper.done; })) {
        latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(stamper.decided_at - written).count());
      } else {
        ++missed;
        stamper.done = true;
      }
    }
    std::this_thread::sleep_until(written + std::chrono::milliseconds(event_ms));
  }
  const double wall_s = std::chrono::duration<double>(Steady::now() - start).count();
  const double cpu_s = CpuSeconds() - cpu_before;
  const std::uint64_t rounds = stamper.decisions.load() - decisions_before;
  stop.store(true);
  orch.Wake();
  loop.join();

  std::map<std::string, std::uint64_t> by_trigger;
  for (const auto& entry : orch.cluster_rounds()) by_trigger[entry.first.second] += entry.second;

  utsname u{};
  uname(&u);
  std::printf("orchestrator_schedule_bench: %d clusters, verify_interval %d ms, tick 1000 ms, "
              "probe wait %d us, voucher_reaffirm %d ms, batch_max %d, an observation change every "
              "%d ms, %d s\n",
              clusters, verify_ms, probe_us, reaffirm_ms, batch_max, event_ms, seconds);
  std::printf("start-up (every cluster set up and decided twice): %.2f s\n", startup_s);
  std::printf("cluster rounds: %.1f/s (expected from the cadence alone: %.1f/s)\n",
              static_cast<double>(rounds) / wall_s, 1000.0 * clusters / verify_ms);
  std::printf("rounds since start by trigger:");
  for (const auto& [trigger, n] : by_trigger) {
    std::printf(" %s=%llu", trigger.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("\nprocess CPU: %.3f cores; per cluster round: %.1f us\n", cpu_s / wall_s,
              rounds > 0 ? cpu_s * 1e6 / static_cast<double>(rounds) : 0.0);
  std::printf("observation write -> decision of its cluster: n=%zu median %.2f ms p99 %.2f ms "
              "max %.2f ms (missed %d)\n",
              latencies_ms.size(), Percentile(latencies_ms, 0.5), Percentile(latencies_ms, 0.99),
              latencies_ms.empty() ? 0.0 : *std::max_element(latencies_ms.begin(), latencies_ms.end()),
              missed);
  std::printf("verification lag at the end: %lld ms\n",
              static_cast<long long>(orch.verification_lag().count()));
  std::printf("machine: %s %s, %u hardware threads\n", u.sysname, u.machine,
              std::thread::hardware_concurrency());
  return missed == 0 ? 0 : 1;
}
