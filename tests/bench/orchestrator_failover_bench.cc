// Benchmark: from the new primary leaving recovery to the master znode naming it (issue 4).
//
// Brings up a lab (ZooKeeper ensemble + 3-node PostgreSQL/repmgr with repmgrd) and measures, over
// repeated `kill -9` failovers of the primary (repmgrd promotes a standby; `labctl pg-rejoin` brings
// the old primary back as a standby, and the next failover waits for a healthy cluster: one
// primary, two streaming standbys, repmgr's metadata agreeing, every repmgrd monitoring), in two
// modes, each with its own `pgherald orchestrator` ($PGHERALD_BIN):
//
//   polling : no pollers. The orchestrator learns of the promotion only by probing the nodes at
//             its tick (--tick-ms, default 100), so the figure is bounded by the tick.
//   notify  : one `pgherald poller` per node, repmgr's event_notification_command pointed at
//             `pgherald notify` (labctl's notify.sh -> DIR/notify-cmd-N, as docs/poller.md sets it
//             up). Orchestrator and pollers keep their default 1 s ticks (--notify-orch-tick-ms,
//             --poller-tick-ms), so a figure well under a second is the event path: the pollers'
//             promotion watch (docs/poller.md) + the observation znode + the orchestrator's watch.
//
// Start: the first pg_is_in_recovery() = false on a standby, polled over held connections every
// 2 ms (an upper bound is printed too, from the request of the last answer still in recovery).
// End: the ZooKeeper watch callback of the first change of the master znode after the kill
// (then checked to name the promoted node). In notify mode the benchmark also stamps, by the same
// kind of watch, the promoted node's observation znode first showing it out of recovery, and reads
// repmgr's own time of its `standby_promote` event (%t, from labctl's notify log): what a notify
// hook alone could do.
//
// Prints every sample, then per mode n, median, p99, min, max, the load (uptime) and the machine.
//
//   PGHERALD_LABCTL=tests/lab/labctl PGHERALD_BIN=build/orch/app/pgherald
//     build/orch/tests/bench/orchestrator_failover_bench [--failovers N] [--mode polling|notify|both]
//     [--tick-ms T] [--notify-orch-tick-ms T] [--poller-tick-ms T] [--verbose 1]
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/model/zk_paths.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/orchestrator_lab_util.h"

using namespace pgherald;
using namespace pgherald::orchestrator_lab;
using namespace pgherald::bench;

namespace {

constexpr char kRoot[] = "/pgherald-bench";

std::string NodePath(int n) { return model::ClusterPaths(kRoot, "main").Node("node" + std::to_string(n)); }

// repmgr's timestamp (%t, "2026-11-22 03:59:27.869588+00") of the last `standby_promote` of
// `node` in labctl's notify log after byte `from`, as wall time; nullopt when not there (yet).
std::optional<Wall::time_point> PromoteEventTime(const std::string& notify_log, std::size_t from, int node) {
  const std::string text = ReadFile(notify_log);
  if (text.size() <= from) return std::nullopt;
  std::istringstream in(text.substr(from));
  std::string line;
  std::optional<Wall::time_point> found;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string n, event, success, date, time;
    f >> n >> event >> success >> date >> time;
    if (n != std::to_string(node) || event != "standby_promote" || success != "1") continue;
    std::tm tm{};
    if (strptime((date + " " + time.substr(0, 8)).c_str(), "%Y-%m-%d %H:%M:%S", &tm) == nullptr) continue;
    // "03:59:27.869588+00": fraction, then the UTC offset in hours ("+00", "-05", "+05:30").
    double frac = 0;
    std::size_t pos = 8;
    if (time.size() > pos && time[pos] == '.') {
      const std::size_t end = time.find_first_of("+-", pos);
      frac = std::atof(("0" + time.substr(pos, end - pos)).c_str());
      pos = end;
    }
    long offset_s = 0;
    if (pos != std::string::npos && pos < time.size()) {
      const int sign = time[pos] == '-' ? -1 : 1;
      const long hh = std::atol(time.substr(pos + 1, 2).c_str());
      const long mm = time.size() >= pos + 6 ? std::atol(time.substr(pos + 4, 2).c_str()) : 0;
      offset_s = sign * (hh * 3600 + mm * 60);
    }
    const std::time_t secs = timegm(&tm) - offset_s;
    found = Wall::from_time_t(secs) +
            std::chrono::duration_cast<Wall::duration>(std::chrono::duration<double>(frac));
  }
  return found;
}

// Stamps, by ZooKeeper watches, the first moment each watched node's observation znode shows it
// out of recovery (the callback time of the change that the following read shows). Callbacks only
// stamp and signal; this object's thread reads and re-arms.
class ObservationWatch {
 public:
  ObservationWatch(zk::ZkSession* zk, std::vector<int> nodes) : zk_(zk), nodes_(std::move(nodes)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ObservationWatch() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::optional<std::pair<int, Steady::time_point>> promoted() {
    std::lock_guard lock(mu_);
    return promoted_;
  }

 private:
  void Check(int n, Steady::time_point stamp) {
    auto got = zk_->Get(NodePath(n), [this, n](const zk::WatchEvent&) {
      {
        std::lock_guard lock(mu_);
        fired_[n] = Steady::now();
      }
      cv_.notify_all();
    });
    if (!got.ok()) return;
    auto obs = model::NodeObservation::FromJson(got->data);
    if (obs.ok() && obs->reachable && !obs->in_recovery) {
      std::lock_guard lock(mu_);
      if (!promoted_) promoted_ = {n, stamp};
    }
  }
  void Loop() {
    for (int n : nodes_) Check(n, Steady::now());
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_ || !fired_.empty(); });
      auto fired = std::move(fired_);
      fired_.clear();
      lock.unlock();
      for (auto& [n, at] : fired) Check(n, at);
      lock.lock();
    }
  }

  zk::ZkSession* zk_;
  std::vector<int> nodes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Steady::time_point> fired_;
  std::optional<std::pair<int, Steady::time_point>> promoted_;
  bool stop_ = false;
  std::thread thread_;
};

struct Samples {
  std::vector<double> to_master;         // promotion -> master znode (the figure)
  // The same from the last "in recovery" answer's request: an upper bound of each sample.
  std::vector<double> to_master_upper;
  std::vector<double> to_observation;    // promotion -> the new primary's observation (notify mode)
  std::vector<double> observation_to_master;
  std::vector<double> to_promote_event;  // promotion -> repmgr's standby_promote %t
};

// One mode: `failovers` kill -9 failovers with an orchestrator (and pollers when `pollers`).
// Returns false (after printing why) when the lab misbehaves.
bool g_verbose = false;

// The lines of `text` after byte `from` that contain one of `needles`.
std::string LinesWith(const std::string& text, std::size_t from, const std::vector<std::string>& needles) {
  std::istringstream in(text.size() > from ? text.substr(from) : "");
  std::string line, out;
  while (std::getline(in, line)) {
    for (const auto& n : needles) {
      if (line.find(n) != std::string::npos) {
        out += "      " + line + "\n";
        break;
      }
    }
  }
  return out;
}

bool RunMode(lab::Lab& lab, zk::ZkSession& zk, bool pollers, int orch_tick_ms, int poller_tick_ms,
             int failovers, Samples* out) {
  std::vector<std::unique_ptr<PollerProcess>> poller_procs;
  if (pollers) {
    if (!StartLabPollers(lab, zk, kRoot, poller_tick_ms, &poller_procs)) return false;
  } else {
    for (int n = 1; n <= 3; ++n) std::remove((lab.dir() + "/notify-cmd-" + std::to_string(n)).c_str());
  }
  OrchestratorConfigSpec spec;
  spec.id = pollers ? "orch-bench-notify" : "orch-bench-polling";
  spec.root = kRoot;
  spec.tick_ms = orch_tick_ms;
  auto orch = OrchestratorProcess::Start(WriteConfig(lab, spec), lab.dir() + "/" + spec.id + ".log");
  if (orch == nullptr) {
    std::fprintf(stderr, "cannot start the orchestrator ($PGHERALD_BIN)\n");
    return false;
  }
  const std::string master_path = model::ClusterPaths(kRoot, "main").Master();
  const std::string notify_log = lab.Env("NOTIFY_LOG");
  for (int f = 0; f < failovers; ++f) {
    const int primary = AwaitHealthyCluster(lab, std::chrono::seconds(120));
    if (primary == 0) {
      std::fprintf(stderr, "the cluster did not become healthy (one primary, two streaming standbys)\n");
      return false;
    }
    if (!AwaitMasterPublished(zk, kRoot, primary, std::chrono::seconds(30))) {
      std::fprintf(stderr, "%s", orch->Log().c_str());
      return false;
    }
    std::vector<int> standby_nodes;
    for (int n = 1; n <= 3; ++n) {
      if (n != primary) standby_nodes.push_back(n);
    }
    std::optional<ObservationWatch> obs_watch;
    if (pollers) obs_watch.emplace(&zk, standby_nodes);
    std::size_t notify_from = 0, orch_log_from = 0;
    std::map<int, std::size_t> poller_log_from;
    auto timed = KillAndTime(lab, zk, master_path, primary, [&] {
      notify_from = ReadFile(notify_log).size();
      orch_log_from = orch->Log().size();
      for (std::size_t i = 0; i < poller_procs.size(); ++i) {
        poller_log_from[static_cast<int>(i) + 1] = poller_procs[i]->Log().size();
      }
    });
    if (!timed.ok()) {
      std::fprintf(stderr, "%s\n%s", timed.status().ToString().c_str(), orch->Log().c_str());
      return false;
    }
    const int promoted = timed->promoted;
    const double ms = timed->to_master_ms, upper_ms = timed->upper_ms;
    const Steady::time_point left_recovery = timed->left_recovery;
    const Wall::time_point left_recovery_wall = timed->left_recovery_wall;
    auto m = ReadMaster(zk, kRoot);
    if (!m || m->node != "node" + std::to_string(promoted)) {
      std::fprintf(stderr, "the master znode does not name the promoted node%d\n", promoted);
      return false;
    }
    out->to_master.push_back(ms);
    out->to_master_upper.push_back(upper_ms);
    char bound[64];
    std::snprintf(bound, sizeof bound, " (at most %.1f ms)", upper_ms);
    std::string detail = bound;
    if (pollers) {
      // The new primary's observation may land after the master moved (a tick, not the watch).
      WaitUntil([&] { return obs_watch->promoted().has_value(); }, std::chrono::seconds(5));
      auto seen = obs_watch->promoted();
      if (seen && seen->first == promoted) {
        const double obs_ms = Ms(seen->second - left_recovery);
        out->to_observation.push_back(obs_ms);
        out->observation_to_master.push_back(ms - obs_ms);
        char buf[120];
        std::snprintf(buf, sizeof buf, "  (observation %.1f ms, observation -> master %.1f ms", obs_ms, ms - obs_ms);
        detail = buf;
      } else {
        detail = "  (no observation of node" + std::to_string(promoted) + " out of recovery";
      }
      std::optional<Wall::time_point> event;
      WaitUntil([&] { return (event = PromoteEventTime(notify_log, notify_from, promoted)).has_value(); },
                std::chrono::seconds(10));
      if (event) {
        const double ev_ms = std::chrono::duration<double, std::milli>(*event - left_recovery_wall).count();
        out->to_promote_event.push_back(ev_ms);
        char buf[80];
        std::snprintf(buf, sizeof buf, ", repmgr standby_promote %%t %.0f ms", ev_ms);
        detail += buf;
      }
      detail += ")";
    }
    obs_watch.reset();
    std::printf("%s failover %d: node%d -> node%d, left recovery -> master znode: %.1f ms%s  load %s\n",
                pollers ? "notify" : "polling", f + 1, primary, promoted, ms, detail.c_str(),
                Load().substr(0, Load().find(' ')).c_str());
    if (g_verbose) {
      std::printf("%s", LinesWith(orch->Log(), orch_log_from, {"master_published", "voucher_withdrawn"}).c_str());
      if (pollers) {
        const std::size_t idx = static_cast<std::size_t>(promoted - 1);
        std::printf("%s", LinesWith(poller_procs[idx]->Log(), poller_log_from[promoted],
                                    {"promotion_watch", "notify_received", "node_state"})
                              .c_str());
      }
    }
    std::fflush(stdout);
    if (!RejoinOldPrimary(lab, primary)) return false;
  }
  orch->Stop();
  for (auto& p : poller_procs) p->Stop();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int failovers = 20;
  int tick_ms = 100;
  int notify_orch_tick_ms = 1000;
  int poller_tick_ms = 1000;
  std::string mode = "both";
  const bool parsed = ForEachFlag(argc, argv, [&](const std::string& flag, const std::string& value) {
    if (flag == "--failovers") failovers = std::atoi(value.c_str());
    else if (flag == "--tick-ms") tick_ms = std::atoi(value.c_str());
    else if (flag == "--notify-orch-tick-ms") notify_orch_tick_ms = std::atoi(value.c_str());
    else if (flag == "--poller-tick-ms") poller_tick_ms = std::atoi(value.c_str());
    else if (flag == "--mode") mode = value;
    else if (flag == "--verbose") g_verbose = value == "1";
    else {
      std::fprintf(stderr, "unknown flag %s (--failovers, --mode, --tick-ms, --notify-orch-tick-ms, --poller-tick-ms)\n",
                   flag.c_str());
      return false;
    }
    return true;
  });
  if (!parsed) return 2;
  if (failovers <= 0 || (mode != "both" && mode != "polling" && mode != "notify")) {
    std::fprintf(stderr, "usage: --failovers N (> 0) --mode polling|notify|both\n");
    return 2;
  }
  std::printf("load before: %s\n", Load().c_str());
  std::unique_ptr<lab::Lab> up = LabUp(true, "lab");
  if (up == nullptr) return 1;
  lab::Lab& lab = *up;
  auto zk = Reader(lab);
  if (zk == nullptr) {
    std::fprintf(stderr, "cannot reach ZooKeeper\n");
    return 1;
  }
  Samples polling, notify;
  const bool run_polling = mode != "notify", run_notify = mode != "polling";
  if (run_polling && !RunMode(lab, *zk, false, tick_ms, 0, failovers, &polling)) return 1;
  if (run_notify && !RunMode(lab, *zk, true, notify_orch_tick_ms, poller_tick_ms, failovers, &notify)) return 1;

  std::printf("\npromotion (left recovery) -> master znode naming it, kill -9 failovers\n");
  if (run_polling) {
    std::printf("  polling path alone (no pollers, orchestrator tick_ms=%d):\n    %s\n", tick_ms,
                Stats(polling.to_master).c_str());
    std::printf("    upper bound (from the last in-recovery answer's request): %s\n",
                Stats(polling.to_master_upper).c_str());
  }
  if (run_notify) {
    std::printf("  pollers + notify (poller tick_ms=%d, orchestrator tick_ms=%d):\n    %s\n",
                poller_tick_ms, notify_orch_tick_ms, Stats(notify.to_master).c_str());
    std::printf("    upper bound (from the last in-recovery answer's request): %s\n",
                Stats(notify.to_master_upper).c_str());
    std::printf("    promotion -> new primary's observation in ZooKeeper: %s\n", Stats(notify.to_observation).c_str());
    std::printf("    observation -> master znode:                        %s\n",
                Stats(notify.observation_to_master).c_str());
    std::printf("    promotion -> repmgr's standby_promote event (%%t):   %s\n",
                Stats(notify.to_promote_event).c_str());
  }
  std::printf("load after: %s\nmachine: %s\n", Load().c_str(), Machine().c_str());
  return 0;
}
