// The whole pgherald stack on the real lab, for the end-to-end drills, their soak, the benchmarks
// and the demo: the lab (ZooKeeper ensemble, 3-node PostgreSQL 15 + repmgr/repmgrd, HAProxy,
// pgbouncer), one `pgherald poller` per node (fence action `stop`, repmgr's notify hook wired to
// it), two `pgherald orchestrator`s and one `pgherald watch` driving HAProxy and pgbouncer. Every
// daemon is a child process whose PID is recorded (also in DIR/stack.pids, so that another
// process can stop exactly those: StopRecorded); nothing is ever killed by name. Test code only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/base/status.h"
#include "common/zk/zk_client.h"
#include "tests/lab/lab.h"

namespace pgherald::e2e {

inline constexpr char kRoot[] = "/pgherald";
inline constexpr char kCluster[] = "main";

struct StackOptions {
  bool pollers = true;       // one per node
  int orchestrators = 2;     // orch-a, orch-b (0: the caller writes the master znode itself)
  bool watch = true;         // `pgherald watch` with the haproxy and pgbouncer sinks
  bool watch_pgbouncer = true;  // false: the watch drives HAProxy alone (pgbouncer idles)
  // The watch's on_unverified policy ("keep", "block" or "hold") and, for hold, max_hold_ms.
  std::string watch_on_unverified = "keep";
  int watch_max_hold_ms = 4000;  // below the lab pgbouncer's query_wait_timeout (5 s)
  int orchestrator_session_timeout_ms = 4000;
  // The orchestrators' tick_ms (their verification cadence) and the pollers' tick_ms. The drills
  // run at 100 ms; the product's defaults are 1000 ms.
  int cadence_ms = 100;
  // Keep the lab directory and the processes when the Stack object dies (the demo).
  bool detach = false;
};

// What `pgherald switchover ... --json` did (Stack::Switchover).
struct SwitchoverRun {
  int exit_code = -1;  // the command's exit status; -1: killed at the deadline or not started
  std::string output;  // its stdout (the JSON summary) followed by its stderr
  std::int64_t start_ns = 0, end_ns = 0;  // MonoNs around the command
  // From the JSON summary (the last JSON object printed); empty / -1 when absent.
  std::string id;
  std::string phase;  // the terminal phase: "done", "aborted", "failed"
  std::string error;
  double hold_ms = -1;  // the consumers' hold: hold -> publish; -1 when not reached
  std::string summary_json;  // the summary as printed
  // The phases the command wrote, with their start (ms since it began), from its
  // "phase=<name> elapsed_ms=<ms> by=..." lines, in order.
  std::vector<std::pair<std::string, std::int64_t>> phases;
};

// Fills run's summary fields from the command's stdout (the last JSON object it printed) and its
// phases from its other lines (`output`: stdout and stderr).
void ParseSwitchoverSummary(const std::string& out, SwitchoverRun* run);
void ParseSwitchoverPhases(const std::string& output, SwitchoverRun* run);

// A daemon child. Its stdout/stderr go to log_path.
struct Daemon {
  std::string name;  // "poller-1", "orch-a", "watch"
  std::vector<std::string> argv;
  std::string log_path;
  pid_t pid = -1;
};

class Stack {
 public:
  // Brings up the lab and the daemons and waits until the master znode names the lab's primary
  // with a voucher (when orchestrators run) and both proxies route to it (when watch runs).
  static StatusOr<std::unique_ptr<Stack>> Up(const StackOptions& options);
  // Stops the daemons (SIGTERM, then SIGKILL after 5 s) and `labctl down`, unless detached.
  ~Stack();

  lab::Lab& lab() { return *lab_; }
  const std::string& dir() const { return lab_->dir(); }
  std::string Env(const std::string& key) const { return lab_->Env(key); }
  zk::ZkClient& zk() { return *zk_; }

  // libpq conninfo through the proxies, as the app user (password included: never log these).
  std::string HaproxyConninfo() const;
  std::string PgbouncerConninfo() const;
  // Directly to node N (1..3) as the app user, database pgherald.
  std::string NodeConninfo(int node) const;
  int NodeOfPort(int port) const;  // 0 when no node has it

  // ZooKeeper reads. Errors (absent, corrupt) give nullopt / empty.
  std::optional<model::MasterRecord> Master();
  int VoucherCount();
  std::vector<model::HistoryEntry> History();  // in sequence order
  // The node the master znode names with state ok and a voucher; 0 otherwise.
  int VouchedMasterNode();
  // The first workload client id of a run numbered `index`: index * 100, or, when a run of this
  // stack already used it (gtest --gtest_repeat, a soak), a base no run used, so that the rows of
  // one run never collide with an earlier one's (the table keeps every run's rows).
  int ClientBase(int index) {
    int base = index * 100;
    if (used_client_bases_.count(base) != 0) {
      base = 1000000 + 100 * static_cast<int>(used_client_bases_.size());
    }
    used_client_bases_.insert(base);
    return base;
  }
  // Writes the master znode directly (benchmarks without orchestrators): state ok, node N, the
  // next epoch. Creates it (and a test voucher) on first use.
  Status PublishDirect(int node);

  // Waits until the master znode names `node` vouched, with an epoch > min_epoch.
  Status AwaitMaster(int node, std::uint64_t min_epoch, std::chrono::milliseconds timeout);
  // Waits until exactly one node is writable and the other two stream from it (pg_stat_replication
  // on it shows both, state streaming); returns the primary.
  StatusOr<int> AwaitHealthyCluster(std::chrono::milliseconds timeout);

  // Daemons by name.
  Daemon* daemon(const std::string& name);
  Status Kill9(const std::string& name);
  Status Restart(const std::string& name);  // after Kill9/Stop: starts it again (new PID)
  // Rewrites the watch's config with this on_unverified policy and restarts it (a policy needs a
  // restart). The caller waits for the routes (RestoreCluster does).
  Status SetWatchPolicy(const std::string& on_unverified, int max_hold_ms = 4000);
  // Rewrites node N's poller config with `poller.switchover.enabled` and the repmgr program its
  // steps run (empty: $PG_BINDIR/repmgr) and restarts that poller. Waits until its observation is
  // back in ZooKeeper.
  Status SetPollerSwitchover(int node, bool enabled, const std::string& repmgr = "");
  // The operators' config of the stack (its zookeeper: section only), for the CLI commands.
  std::string OperatorConfig() const { return lab_->dir() + "/operator.yaml"; }
  // Runs `pgherald switchover --config OperatorConfig() --cluster main [--to nodeN] --json
  // [extra...]` (to_node 0: no --to) and waits for it up to `timeout` (then SIGKILL, exit -1).
  SwitchoverRun Switchover(int to_node, const std::vector<std::string>& extra = {},
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(180000));
  // pgbouncer's query_wait_timeout (the lab writes 5 s), in its config file, then RELOAD: a hold
  // longer than it makes pgbouncer fail the waiting clients first.
  Status SetPgbouncerQueryWaitTimeout(int seconds);
  // The wall time (ms) of the first line of `daemon`'s log at or after `after_wall_ms` that
  // contains every one of `needles`; 0 when none.
  std::int64_t LogLineWallMs(const std::string& daemon, const std::vector<std::string>& needles,
                             std::int64_t after_wall_ms) const;
  // The orchestrator that wrote the current master record (decided_by), e.g. "orch-a".
  std::string LeadingOrchestrator();

  std::string Tail(const std::string& name, std::size_t bytes = 3000) const;
  // Tails of every daemon's log, for a failure message.
  std::string AllTails(std::size_t bytes = 1500) const;
  // pgbouncer's process state (running, stopped, spinning: CPU times twice, 500 ms apart; wchan
  // and kernel stack), its log's tail and any supervisor restart: what a console that stops
  // answering needs to be told apart. Empty without pgbouncer in the lab.
  std::string PgbouncerState(std::size_t bytes = 1500) const;

  // Stops the daemons listed in DIR/stack.pids (written by Up) and runs `labctl down`: the demo's
  // teardown from another process. Only those PIDs, and only if /proc/PID/cmdline still names
  // pgherald.
  static Status StopRecorded(const std::string& dir, const std::string& labctl);

 private:
  Stack() = default;
  Status StartDaemon(Daemon& d);
  void StopDaemon(Daemon& d);
  void WritePids();
  Status WriteConfigs();
  std::string WatchYaml() const;
  std::string PollerYaml(int node) const;
  std::string ZkSection(int session_timeout_ms) const;

  struct PollerSwitchover {
    bool enabled = true;
    std::string repmgr;  // empty: $PG_BINDIR/repmgr
  };

  StackOptions options_;
  std::unique_ptr<lab::Lab> lab_;
  std::unique_ptr<zk::ZkClient> zk_;
  std::vector<Daemon> daemons_;
  std::uint64_t direct_epoch_ = 0;
  PollerSwitchover poller_switchover_[4];  // by node 1..3
  int switchover_runs_ = 0;
  std::set<int> used_client_bases_;
};

// Monotonic now in nanoseconds (steady_clock).
std::int64_t MonoNs();
// Wall milliseconds minus monotonic milliseconds, sampled now: wall_ms - offset = mono_ms.
std::int64_t WallMinusMonoMs();
// Polls `condition` every `step` until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds step = std::chrono::milliseconds(10));
std::string ReadFile(const std::string& path);
// One query's first cell over a fresh connection (2 s connect timeout); nullopt on any error.
// The first column of the first row of `sql` through a new connection, or nothing; `error`, when
// given, receives libpq's message on failure.
std::optional<std::string> QueryOne(const std::string& conninfo, const std::string& sql,
                                    std::string* error = nullptr);
// "nproc=2 cpu=AMD EPYC ..." for the benchmarks.
std::string MachineLine();
// Median and p99 (nearest rank) of a sample; 0 when empty.
double Percentile(std::vector<double> v, double p);

}  // namespace pgherald::e2e
