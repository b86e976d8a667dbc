// The poller's side of a planned switchover (docs/switchover.md has the whole design; the record
// and the acknowledgement are model::SwitchoverRecord and model::SwitchoverAck).
//
// Three layers:
//   - DecideSwitchoverStep: pure. The record read from ZooKeeper, who this poller is, what it last
//     started and the state of its node in; whether to run a step (and which), ack a refusal, or
//     do nothing. Unit-tested with plain structs.
//   - StepRunner: runs one step to its end on the calling thread (the real one runs repmgr and
//     waits on its own PostgreSQL connections; tests use a fake). The argv builders and the
//     parser of `repmgr node status --is-shutdown-cleanly` are pure and public for tests.
//   - SwitchoverExecutor: the loop's handle. Consider() applies the decision and starts the step
//     on its own thread (one step at a time); ack() is what the next observation carries. Every
//     change of the ack calls `on_ack_change` (any thread), so the loop publishes at once.
//
// Everything read from the record is hostile: only its id (a token, already validated by
// SwitchoverRecord::FromJson), its phase, its node names (compared with this poller's own name and
// used as keys into this node's own repmgr.nodes) and stop_lsn (a parsed number) are used. Nothing
// of the record reaches a command line as text: argv is built from the poller's own config and
// from values this node's database gave (to's node_id and conninfo).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/logging.h"
#include "common/model/cluster_model.h"
#include "common/pg_connection.h"
#include "pollers/poller_config.h"

namespace pgherald::pollers {

class PollerMetrics;

// What this poller does in a phase.
enum class SwitchoverStep {
  kReadiness,  // prepare, from and siblings: the checks only
  kPause,      // prepare, to: the checks, then `repmgr service pause`
  kStop,       // stop, from: drain with CHECKPOINT, `node service --action=stop`, shutdown check
  kPromote,    // promote, to: receive-LSN wait, `standby promote`, CHECKPOINT
  kRejoin,     // rejoin, from: `node rejoin -d <to's conninfo> --force-rewind`, wait streaming
  kFollow,     // rejoin, siblings: `standby follow --upstream-node-id=<to's node_id>`
  kUnpause,    // unpause, to: `service unpause`
  kRollback,   // rollback, from: `node service --action=start`, wait writable
};
const char* SwitchoverStepName(SwitchoverStep step);

// The poller's own view, for the decision.
struct SwitchoverSelf {
  std::string node;  // this poller's node name (poller.node)
  bool enabled = false;  // poller.switchover.enabled
  // When this poller process started (wall ms). A record whose phase began before it is one the
  // poller may have started in an earlier life: it acks it failed instead of running it twice.
  std::int64_t started_ms = 0;
  // The last (id, phase) this process started (or refused); each is acted on at most once.
  std::optional<std::pair<std::string, model::SwitchoverPhase>> last_started;
  bool answering = false;    // the last tick reached its PostgreSQL
  bool in_recovery = false;  // ... and it was a standby
};

struct SwitchoverDecision {
  enum class Kind {
    kNothing,  // not this poller's business (or already done)
    kRun,      // start `step`
    kFail,     // ack `phase` failed with `error` without running anything
  };
  Kind kind = Kind::kNothing;
  model::SwitchoverPhase phase = model::SwitchoverPhase::kPrepare;
  SwitchoverStep step = SwitchoverStep::kReadiness;
  std::string error;
};

// Pure. Acts only when enabled, on an ACTIVE record (model::SwitchoverActive at now_ms), for a
// phase in which this node (from, to or a sibling) has a step, and at most once per (id, phase).
// A phase that began before this process started is refused ("poller restarted during the
// switchover"). The prepare step checks the role: from must answer as a primary, to and the
// siblings as standbys; stop needs from writable, promote needs to in recovery, follow needs a
// sibling in recovery; rejoin, unpause and rollback run whatever the node answers (it may be
// stopped).
SwitchoverDecision DecideSwitchoverStep(const std::optional<model::SwitchoverRecord>& record,
                                        const SwitchoverSelf& self, std::int64_t now_ms);

// What the runner knows of the target, read from this node's own repmgr.nodes (never from
// ZooKeeper: the conninfo may hold a password and is never published).
struct SwitchoverTarget {
  int node_id = 0;       // 0: unknown
  std::string conninfo;  // "": unknown
};

// One step to run, with everything it needs already validated.
struct StepRequest {
  std::string id;
  model::SwitchoverPhase phase = model::SwitchoverPhase::kPrepare;
  SwitchoverStep step = SwitchoverStep::kReadiness;
  std::optional<model::Lsn> stop_lsn;  // promote: the stop ack's LSN (from the record)
  SwitchoverTarget target;             // rejoin/follow
};

struct StepOutcome {
  bool ok = false;
  std::optional<model::Lsn> lsn;  // stop: the shutdown checkpoint; promote: the receive LSN
  std::string error;              // !ok: why (sanitized and cut by the executor)
};

// Runs one step to its end on the calling thread. `cancel` turns true when the poller stops: a
// wait then ends at once (failed), a running command is left to its timeout.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual StepOutcome Run(const StepRequest& request, const std::atomic<bool>& cancel) = 0;
};

// ---- The repmgr command lines (pure; the real runner uses these) ----
// `repmgr -f CONF service pause|unpause`
std::vector<std::string> PauseArgv(const SwitchoverConfig& config, bool pause);
// `repmgr -f CONF node service --action=stop` (the drain ran CHECKPOINT) / `--action=start`
std::vector<std::string> NodeServiceArgv(const SwitchoverConfig& config, bool start);
// `repmgr -f CONF node status --is-shutdown-cleanly`
std::vector<std::string> ShutdownCheckArgv(const SwitchoverConfig& config);
// `repmgr -f CONF standby promote`
std::vector<std::string> PromoteArgv(const SwitchoverConfig& config);
// `repmgr -f CONF node rejoin -d CONNINFO --force-rewind --config-archive-dir=DIR`
std::vector<std::string> RejoinArgv(const SwitchoverConfig& config, const std::string& conninfo);
// `repmgr -f CONF standby follow --upstream-node-id=N`
std::vector<std::string> FollowArgv(const SwitchoverConfig& config, int upstream_node_id);
// The repmgr command `request`'s step runs (after its wait, if any); empty for kReadiness, which
// runs none. Built from `config` and the request's validated values only.
std::vector<std::string> StepArgv(const SwitchoverConfig& config, const StepRequest& request);
// argv as one line for logs and errors: a conninfo's password=... is masked.
std::string DescribeArgv(const std::vector<std::string>& argv);

// What `repmgr node status --is-shutdown-cleanly` printed.
struct ShutdownState {
  std::string state;              // "SHUTDOWN", "RUNNING", "UNCLEAN_SHUTDOWN", "UNKNOWN", ...
  std::optional<model::Lsn> lsn;  // --last-checkpoint-lsn (repmgr prints it with SHUTDOWN only)
};
// Strict: exactly one line "--state=TOKEN[ --last-checkpoint-lsn=X/Y]" (TOKEN [A-Z_]{1,32}); blank
// lines and repmgr's own log lines (ERROR/WARNING/NOTICE/INFO/DETAIL/HINT/DEBUG: ...) may
// surround it. SHUTDOWN must carry the LSN. Anything else is kInvalidArgument quoting the output
// (sanitized, cut).
StatusOr<ShutdownState> ParseShutdownCleanly(std::string_view output);

// The real runner: repmgr through RunProcess (argv, no shell, timeout step_timeout_ms, as the owner
// of repmgr_conf when the poller runs as root) and its own short-lived connections to the local
// node (`pg`, the poller's own postgres section) for the waits.
class RepmgrStepRunner final : public StepRunner {
 public:
  RepmgrStepRunner(SwitchoverConfig config, pg::PgParams pg);
  StepOutcome Run(const StepRequest& request, const std::atomic<bool>& cancel) override;

 private:
  // Runs argv; ok on exit 0, else an error quoting its output.
  StepOutcome Command(const std::vector<std::string>& argv, std::string* output = nullptr);
  Status Readiness();
  // Asks the local node `sql` (one row, own connections, reconnecting) every 10 ms until
  // `not_ready` returns nullopt, at most step_timeout_ms; else failed "<what> within ... (<the
  // last reason>)".
  StepOutcome AwaitLocal(const std::string& what, const std::string& sql,
                         const std::function<std::optional<std::string>(const pg::Row&)>& not_ready,
                         const std::atomic<bool>& cancel);
  using Conn = std::unique_ptr<pg::PgConnection>;
  StepOutcome Stop(const std::atomic<bool>& cancel, Conn warm);
  StepOutcome Promote(const StepRequest& request, const std::atomic<bool>& cancel, Conn warm);
  StepOutcome Rejoin(const StepRequest& request, const std::atomic<bool>& cancel);
  StepOutcome Rollback(const std::atomic<bool>& cancel);
  StepOutcome PrepareLocal(const std::atomic<bool>& cancel);
  // A connection to the local node, retried until step_timeout_ms.
  StatusOr<std::unique_ptr<pg::PgConnection>> Connect(const std::atomic<bool>& cancel);
  // `warm` when it still answers (one round trip), else Connect.
  StatusOr<std::unique_ptr<pg::PgConnection>> Reuse(Conn warm, const std::atomic<bool>& cancel);
  // Command, run again after a failure until step_timeout_ms (idempotent commands only).
  StepOutcome RetriedCommand(const std::vector<std::string>& argv, const std::atomic<bool>& cancel);

  SwitchoverConfig config_;
  pg::PgParams pg_;
  log::Logger log_;
  // The connection a prepare step leaves for the step under the hold (stop on `from`, promote on
  // `to`): a connect on a loaded host costs hundreds of milliseconds, which the hold would pay.
  // Taken by the next step whatever it is (steps run one at a time), so at most one is kept.
  Conn warm_;
};

// The loop's handle. Not copyable; the destructor cancels and joins a running step.
class SwitchoverExecutor {
 public:
  SwitchoverExecutor(std::string node, SwitchoverConfig config, std::unique_ptr<StepRunner> runner,
                     const Clock& clock, std::function<void()> on_ack_change);
  ~SwitchoverExecutor();
  SwitchoverExecutor(const SwitchoverExecutor&) = delete;
  SwitchoverExecutor& operator=(const SwitchoverExecutor&) = delete;

  // Loop thread. Decides on `record` (nullopt: none) and starts the step when told to. `target`
  // resolves record.to in this node's repmgr.nodes (nullopt: not found). `self_answering` and
  // `self_in_recovery` are the last tick's. Returns the step started (for the poller's promotion
  // watch), nullopt when none. Does nothing while a step runs (the end of a step calls
  // on_ack_change, and the loop considers the record again).
  std::optional<SwitchoverStep> Consider(const std::optional<model::SwitchoverRecord>& record,
                                         bool self_answering, bool self_in_recovery,
                                         const std::function<std::optional<SwitchoverTarget>(
                                             const std::string& node)>& target);

  // The ack to publish (any thread); nullopt before the first step.
  std::optional<model::SwitchoverAck> ack() const;
  bool busy() const;
  // Optional; must outlive this object.
  void set_metrics(PollerMetrics* metrics) { metrics_ = metrics; }
  // Tests: waits until no step runs.
  void WaitIdle();

 private:
  void SetAck(model::SwitchoverAck ack, bool step_ended = false);
  void RunStep(StepRequest request, MonoTime started);

  const std::string node_;
  const SwitchoverConfig config_;
  std::unique_ptr<StepRunner> runner_;
  const Clock& clock_;
  std::function<void()> on_ack_change_;
  const std::int64_t started_ms_;
  log::Logger log_;
  PollerMetrics* metrics_ = nullptr;

  std::optional<std::pair<std::string, model::SwitchoverPhase>> last_started_;  // loop thread
  std::atomic<bool> cancel_{false};
  std::atomic<bool> running_{false};
  std::thread worker_;
  mutable std::mutex mu_;
  std::optional<model::SwitchoverAck> ack_;  // guarded by mu_
};

}  // namespace pgherald::pollers
