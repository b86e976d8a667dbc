// Plumbing shared by the lab benchmarks that fail the lab's cluster over and time the orchestrator
// (orchestrator_failover_bench, scale_bench): the machine line, sample statistics, a healthy
// 3-node cluster to start each failover from, and one measured kill -9 failover (from the first
// pg_is_in_recovery() = false on a standby to the master znode watch). Header-only; benchmarks only.
#pragma once

#include <libpq-fe.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/model/zk_paths.h"
#include "tests/integration/orchestrator_lab_util.h"

namespace pgherald::bench {

using Steady = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;

inline double Ms(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The values of a one-row query on a fresh connection; nullopt on any failure.
inline std::optional<std::vector<std::string>> QueryRow(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  std::optional<std::vector<std::string>> out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      out.emplace();
      for (int i = 0; i < PQnfields(r); ++i) out->push_back(PQgetvalue(r, 0, i));
    }
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

// The first value of a one-row query on a fresh connection; nullopt on any failure.
inline std::optional<std::string> QueryOne(const std::string& conninfo, const std::string& sql) {
  auto row = QueryRow(conninfo, sql);
  if (!row || row->empty()) return std::nullopt;
  return (*row)[0];
}

inline bool InRecovery(PGconn* c, bool* in_recovery) {
  PGresult* r = PQexec(c, "SELECT pg_is_in_recovery()");
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  if (ok) *in_recovery = std::strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  return ok;
}

// "Linux 6.1.0, AMD EPYC ..., 2 cpus".
inline std::string Machine() {
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

// /proc/loadavg, one line.
inline std::string Load() {
  std::string s = orchestrator_lab::ReadFile("/proc/loadavg");
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// The p-th quantile (0..1) by nearest rank over the sorted samples; -1 when there are none.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

// "n=20 median=... p99=... min=... max=..." (nearest rank), "n=0" when empty.
inline std::string Stats(std::vector<double> v, const char* unit = "ms") {
  if (v.empty()) return "n=0";
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return Percentile(v, p); };
  char buf[240];
  std::snprintf(buf, sizeof buf, "n=%zu median=%.1f %s p99=%.1f %s min=%.1f %s max=%.1f %s", v.size(), pct(0.5),
                unit, pct(0.99), unit, v.front(), unit, v.back(), unit);
  return buf;
}

// `labctl up` with PostgreSQL (and the ZooKeeper ensemble when `zk_ensemble`); nullptr after
// printing why, prefixed by `what`, when it fails.
inline std::unique_ptr<lab::Lab> LabUp(bool zk_ensemble, const char* what) {
  lab::LabOptions options;
  options.zk_ensemble = zk_ensemble;
  options.postgres = true;
  auto up = lab::Lab::Up(options);
  if (!up.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, up.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*up);
}

// Calls `handle(flag, value)` for each "--flag value" pair of the command line. False (after
// printing why) when a flag has no value or `handle` refuses one (returns false).
inline bool ForEachFlag(int argc, char** argv,
                        const std::function<bool(const std::string&, const std::string&)>& handle) {
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return false;
    }
    if (!handle(flag, argv[i + 1])) return false;
  }
  return true;
}

// What keeps the lab's cluster from being healthy ("" when it is): one primary, two standbys
// streaming from it, repmgr's metadata agreeing, and each standby's repmgrd monitoring again after a
// follow (otherwise the next failover may see no promotion; see tests/e2e/stack.cc
// AwaitHealthyCluster). *primary is the one writable node; *lagging the standbys that fail a
// condition of their own.
inline std::string Unhealthy(lab::Lab& lab, int* primary, std::vector<int>* lagging) {
  lagging->clear();
  auto w = lab.WritableNodes();
  if (!w.ok()) return "writable nodes unknown: " + w.status().ToString();
  if (w->size() != 1) return std::to_string(w->size()) + " writable nodes";
  *primary = (*w)[0];
  std::string why;
  for (int s = 1; s <= 3; ++s) {
    if (s == *primary) continue;
    auto streaming = QueryOne(lab.pg_conninfo(s), "select count(*) from pg_stat_wal_receiver where status = "
                                                  "'streaming' and sender_port = " +
                                                      std::to_string(lab.pg_port(*primary)));
    auto registered = QueryOne(lab.pg_conninfo(*primary, lab.Env("REPMGR_DB")),
                               "select count(*) from repmgr.nodes where type = 'standby' and active and "
                               "node_id = " + std::to_string(s) + " and upstream_node_id = " +
                                   std::to_string(*primary));
    const bool following = lab.RepmgrdInFollow(s);
    std::string bad;
    if (!streaming || *streaming != "1") bad += " not streaming from node" + std::to_string(*primary) + ";";
    if (!registered || *registered != "1") bad += " repmgr.nodes does not list it under the primary;";
    if (following) bad += " repmgrd still inside its follow;";
    if (!bad.empty()) {
      lagging->push_back(s);
      why += "node" + std::to_string(s) + ":" + bad + " ";
    }
  }
  return why;
}

// Waits for a healthy cluster; a standby still unhealthy after `rejoin_after` is rejoined
// (`labctl pg-rejoin`, what an operator would do after repmgr's follow got stuck), once. Returns
// the primary, 0 on timeout (after printing why).
inline int AwaitHealthyCluster(lab::Lab& lab, std::chrono::seconds timeout,
                               std::chrono::seconds rejoin_after = std::chrono::seconds(30)) {
  int primary = 0;
  std::vector<int> lagging;
  std::string why;
  const auto start = Steady::now();
  bool rejoined = false;
  const bool ok = orchestrator_lab::WaitUntil(
      [&] {
        why = Unhealthy(lab, &primary, &lagging);
        if (why.empty()) return true;
        if (!rejoined && !lagging.empty() && Steady::now() - start > rejoin_after) {
          rejoined = true;
          for (int s : lagging) {
            std::printf("  (cluster unhealthy for %lld s: %s-> pg-rejoin node%d)\n",
                        static_cast<long long>(rejoin_after.count()), why.c_str(), s);
            std::fflush(stdout);
            (void)lab.PgRejoin(s);
          }
        }
        return false;
      },
      timeout, std::chrono::milliseconds(50));
  if (!ok) std::fprintf(stderr, "cluster not healthy: %s\n", why.c_str());
  return ok ? primary : 0;
}

// Starts one `pgherald poller` per lab node under `root` (cluster "main", tick `tick_ms`, the notify
// hook set up as docs/poller.md says) into *procs and waits until the three observation znodes
// exist. False (after printing why) when a poller cannot start or its znode does not appear.
inline bool StartLabPollers(lab::Lab& lab, zk::ZkSession& zk, const std::string& root, int tick_ms,
                            std::vector<std::unique_ptr<orchestrator_lab::PollerProcess>>* procs) {
  for (int n = 1; n <= 3; ++n) {
    orchestrator_lab::PollerSpec ps;
    ps.root = root;
    ps.node = n;
    ps.tick_ms = tick_ms;
    auto p = orchestrator_lab::PollerProcess::Start(orchestrator_lab::WritePollerConfig(lab, ps),
                                                    lab.dir() + "/orch-poller-" + std::to_string(n) + ".log");
    if (p == nullptr) {
      std::fprintf(stderr, "cannot start a poller ($PGHERALD_BIN)\n");
      return false;
    }
    procs->push_back(std::move(p));
  }
  const model::ClusterPaths paths(root, "main");
  if (!orchestrator_lab::WaitUntil([&] {
        for (int n = 1; n <= 3; ++n) {
          auto there = zk.Exists(paths.Node("node" + std::to_string(n)));
          if (!there.ok() || !there->has_value()) return false;
        }
        return true;
      }, std::chrono::seconds(30))) {
    std::fprintf(stderr, "the pollers' observations did not appear\n%s", (*procs)[0]->Log().c_str());
    return false;
  }
  return true;
}

// Waits until the master znode of cluster "main" under `root` names lab node `primary` and carries
// a bound voucher. False (after printing why) on timeout.
inline bool AwaitMasterPublished(zk::ZkSession& zk, const std::string& root, int primary,
                                 std::chrono::seconds timeout) {
  const bool ok = orchestrator_lab::WaitUntil([&] {
    auto m = orchestrator_lab::ReadMaster(zk, root);
    return m && m->node == "node" + std::to_string(primary) && !orchestrator_lab::Vouchers(zk, root).empty();
  }, timeout);
  if (!ok) std::fprintf(stderr, "master node%d not published under %s\n", primary, root.c_str());
  return ok;
}

// Rejoins the killed old primary as a standby; a rejoin can fail on a machine this busy (repmgr's
// own timeouts), so once more before giving up. False (after printing why) when both failed.
inline bool RejoinOldPrimary(lab::Lab& lab, int node) {
  if (Status st = lab.PgRejoin(node); !st.ok()) {
    std::printf("  (pg-rejoin node%d failed: %s; retrying)\n", node, st.ToString().substr(0, 300).c_str());
    if (Status again = lab.PgRejoin(node); !again.ok()) {
      std::fprintf(stderr, "pg-rejoin %d failed twice: %s\n", node, again.ToString().c_str());
      return false;
    }
  }
  return true;
}

// Every change of a znode's data from Arm() until Stop(), stamped by its watch callback, with the
// data that the re-read after it returned (the watch is re-armed by an asynchronous Get from the
// callback, so no change is missed; when two changes come closer together than one read, the
// earlier stamp carries the later data, which errs by less than that read's round trip).
class ZnodeChanges : public std::enable_shared_from_this<ZnodeChanges> {
 public:
  ZnodeChanges(zk::ZkSession* zk, std::string path) : zk_(zk), path_(std::move(path)) {}
  // Arms the watch; waits until the server has answered (so a later change is seen). Call once.
  Status Arm() {
    auto self = shared_from_this();
    Status sent = zk_->GetAsync(
        path_, [self](const zk::WatchEvent&) { self->Fired(Steady::now()); },
        [self](StatusOr<zk::NodeData> got) {
          std::lock_guard lock(self->mu_);
          self->armed_ = got.status();
          self->answered_ = true;
        });
    if (!sent.ok()) return sent;
    orchestrator_lab::WaitUntil([&] {
      std::lock_guard lock(mu_);
      return answered_;
    }, std::chrono::seconds(10), std::chrono::milliseconds(1));
    std::lock_guard lock(mu_);
    return answered_ ? armed_ : Status(Unavailable("no answer to arming the watch on " + path_));
  }
  // No re-arming after this (a watch already armed fires once more, harmlessly).
  void Stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  // The stamp of the first change whose re-read satisfies `match`; nullopt while none has.
  std::optional<Steady::time_point> First(const std::function<bool(const std::string&)>& match) {
    std::lock_guard lock(mu_);
    for (const auto& change : changes_) {
      if (match(change.second)) return change.first;
    }
    return std::nullopt;
  }

 private:
  void Fired(Steady::time_point at) {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
    }
    auto self = shared_from_this();
    (void)zk_->GetAsync(
        path_, [self](const zk::WatchEvent&) { self->Fired(Steady::now()); },
        [self, at](StatusOr<zk::NodeData> got) {
          if (!got.ok()) return;
          std::lock_guard lock(self->mu_);
          self->changes_.push_back({at, got->data});
        });
  }

  zk::ZkSession* zk_;
  std::string path_;
  std::mutex mu_;
  bool answered_ = false;
  bool stopped_ = false;
  Status armed_;
  std::vector<std::pair<Steady::time_point, std::string>> changes_;
};

// One kill -9 failover of the lab's `primary`, timed. Start: the first pg_is_in_recovery() =
// false on a standby, polled over held connections every 2 ms (`upper_ms` is measured from the
// request of the promoted node's last answer still in recovery: the promotion happened after it).
// End: the ZooKeeper watch callback of the first change of `master_path` after the kill to a
// record naming the promoted node with state ok (other writes of the record, e.g. before the
// promotion, are not the publish).
struct FailoverTiming {
  int promoted = 0;
  double to_master_ms = 0;
  double upper_ms = 0;
  Steady::time_point left_recovery{};
  Wall::time_point left_recovery_wall{};
};

// `before_kill` runs after the watch is armed, right before the kill (to note log offsets). An
// error names the step that failed (no promotion within 90 s, the master znode did not name the
// promoted node within 30 s, ...).
inline StatusOr<FailoverTiming> KillAndTime(lab::Lab& lab, zk::ZkSession& zk, const std::string& master_path,
                                            int primary, const std::function<void()>& before_kill = {}) {
  std::vector<std::pair<int, PGconn*>> standbys;
  for (int n = 1; n <= 3; ++n) {
    if (n == primary) continue;
    PGconn* c = PQconnectdb(lab.pg_conninfo(n).c_str());
    if (PQstatus(c) == CONNECTION_OK) {
      standbys.push_back({n, c});
    } else {
      PQfinish(c);
    }
  }
  auto close_all = [&] {
    for (auto& sc : standbys) PQfinish(sc.second);
    standbys.clear();
  };
  auto changes = std::make_shared<ZnodeChanges>(&zk, master_path);
  struct StopChanges {
    std::shared_ptr<ZnodeChanges> c;
    ~StopChanges() { c->Stop(); }
  } stop_changes{changes};
  if (Status armed = changes->Arm(); !armed.ok()) {
    close_all();
    return armed;
  }
  if (before_kill) before_kill();
  // The detector polls from before the kill, on its own thread: `labctl pg-kill` returns only
  // after the node is gone, which on a loaded machine took seconds, past repmgrd's promotion.
  FailoverTiming out;
  Steady::time_point promoted_after{};
  std::atomic<bool> give_up{false};
  std::thread detector([&] {
    std::map<int, Steady::time_point> last_in_recovery_sent;
    const auto deadline = Steady::now() + std::chrono::seconds(90);
    while (out.promoted == 0 && !give_up && Steady::now() < deadline) {
      for (auto& sc : standbys) {
        bool rec = true;
        const Steady::time_point sent = Steady::now();
        if (InRecovery(sc.second, &rec) && !rec) {
          out.left_recovery = Steady::now();
          out.left_recovery_wall = Wall::now();
          out.promoted = sc.first;
          promoted_after = last_in_recovery_sent.count(sc.first) > 0 ? last_in_recovery_sent[sc.first] : sent;
          break;
        }
        last_in_recovery_sent[sc.first] = sent;
      }
      // The detector's pace: a 2 ms poll of the standbys (the start of the measured interval).
      if (out.promoted == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  if (Status st = lab.PgKill(primary); !st.ok()) {
    give_up = true;
    detector.join();
    close_all();
    return st;
  }
  detector.join();
  close_all();
  if (out.promoted == 0) return Unavailable("no promotion within 90 s of killing node" + std::to_string(primary));
  const std::string promoted_name = "node" + std::to_string(out.promoted);
  auto names_promoted = [&](const std::string& data) {
    auto record = model::MasterRecord::FromJson(data);
    return record.ok() && record->state == model::MasterState::kOk && record->node == promoted_name;
  };
  std::optional<Steady::time_point> published;
  if (!orchestrator_lab::WaitUntil([&] { return (published = changes->First(names_promoted)).has_value(); },
                                   std::chrono::seconds(30), std::chrono::milliseconds(5))) {
    return Unavailable("the master znode did not name " + promoted_name + " within 30 s of its promotion");
  }
  out.to_master_ms = Ms(*published - out.left_recovery);
  out.upper_ms = Ms(*published - promoted_after);
  return out;
}

}  // namespace pgherald::bench
