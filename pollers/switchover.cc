#include "pollers/switchover.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "common/model/untrusted.h"
#include "common/subprocess.h"
#include "pollers/poller_metrics.h"

namespace pgherald::pollers {
namespace {

using model::SwitchoverPhase;

// How much of a command's output an error quotes.
constexpr std::size_t kQuoteBytes = 512;
// How often the waits ask PostgreSQL (the promote wait: 5 ms, as the design says).
constexpr Millis kReceivePoll{5};
constexpr Millis kWaitPoll{10};
constexpr Millis kReconnectPoll{100};
constexpr Millis kRetryCommand{500};

std::string Quote(std::string_view output) {
  std::string text(output);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return "\"" + untrusted::SanitizeForDisplay(log::RedactSecrets(text), kQuoteBytes) + "\"";
}

std::int64_t WallMs(const Clock& clock) { return model::ToWallMillis(clock.WallNow()); }

StepOutcome Failed(std::string error) { return {false, std::nullopt, std::move(error)}; }

// CHECKPOINT on `conn`; the error names `what` and, when refused, the grant that fixes it.
std::optional<std::string> Checkpoint(pg::PgConnection& conn, const std::string& what) {
  auto r = conn.Exec("CHECKPOINT");
  if (r.ok()) return std::nullopt;
  return what + ": " + r.status().message() +
         (r.status().code() == StatusCode::kPermissionDenied
              ? " (GRANT pg_checkpoint TO the poller's user, docs/poller.md)"
              : "");
}

// The base of every command line.
std::vector<std::string> Repmgr(const SwitchoverConfig& config) {
  return {config.repmgr, "-f", config.repmgr_conf};
}

// The identity repmgr runs as: the owner of repmgr_conf when the poller is root (repmgr refuses
// to run as root, and the files it writes must belong to PostgreSQL's user), with that user's
// home as working directory and HOME (libpq's ~/.pgpass).
struct RunAs {
  std::optional<ProcessOptions::Identity> identity;
  std::map<std::string, std::string> env;
};

StatusOr<RunAs> RunAsOwnerOf(const std::string& path) {
  RunAs out;
  if (::geteuid() != 0) return out;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Unavailable("poller.switchover.repmgr_conf " + path + ": " + std::strerror(errno));
  }
  if (st.st_uid == 0) return out;
  std::string home = "/";
  std::string name;
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(st.st_uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    name = pw.pw_name;
    if (pw.pw_dir != nullptr && ::access(pw.pw_dir, X_OK) == 0) home = pw.pw_dir;
  }
  out.identity = ProcessOptions::Identity{st.st_uid, st.st_gid, home};
  out.env["HOME"] = home;
  if (!name.empty()) {
    out.env["USER"] = name;
    out.env["LOGNAME"] = name;
  }
  return out;
}

bool IsLogLine(std::string_view line) {
  for (std::string_view prefix :
       {"ERROR:", "WARNING:", "NOTICE:", "INFO:", "DETAIL:", "HINT:", "DEBUG:"}) {
    if (line.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

bool IsStateToken(std::string_view token) {
  if (token.empty() || token.size() > 32) return false;
  for (char c : token) {
    if (!((c >= 'A' && c <= 'Z') || c == '_')) return false;
  }
  return true;
}

// A short-lived connection to the local node for one wait (the loop's connection belongs to the
// loop's thread).
StatusOr<std::unique_ptr<pg::PgConnection>> Local(const pg::PgParams& params) {
  pg::PgParams p = params;
  p.application_name = "pgherald-switchover";
  p.connect_timeout = std::min(p.connect_timeout, Millis(2000));
  return pg::PgConnection::Connect(p);
}

}  // namespace

const char* SwitchoverStepName(SwitchoverStep step) {
  switch (step) {
    case SwitchoverStep::kReadiness: return "readiness";
    case SwitchoverStep::kPause: return "pause";
    case SwitchoverStep::kStop: return "stop";
    case SwitchoverStep::kPromote: return "promote";
    case SwitchoverStep::kRejoin: return "rejoin";
    case SwitchoverStep::kFollow: return "follow";
    case SwitchoverStep::kUnpause: return "unpause";
    case SwitchoverStep::kRollback: return "rollback";
  }
  return "readiness";
}

SwitchoverDecision DecideSwitchoverStep(const std::optional<model::SwitchoverRecord>& record,
                                        const SwitchoverSelf& self, std::int64_t now_ms) {
  SwitchoverDecision none;
  if (!self.enabled || !record || !model::SwitchoverActive(*record, now_ms)) return none;
  const model::SwitchoverRecord& r = *record;
  const bool is_from = r.from == self.node;
  const bool is_to = r.to == self.node;
  bool is_sibling = false;
  for (const auto& s : r.siblings) is_sibling = is_sibling || s == self.node;
  if (self.node.empty() || (!is_from && !is_to && !is_sibling)) return none;

  SwitchoverDecision d;
  d.kind = SwitchoverDecision::Kind::kRun;
  d.phase = r.phase;
  // What the node must answer as for the step to make sense ("" : anything, even down).
  std::string need;
  switch (r.phase) {
    case SwitchoverPhase::kPrepare:
      d.step = is_to ? SwitchoverStep::kPause : SwitchoverStep::kReadiness;
      need = is_from ? "primary" : "standby";
      break;
    case SwitchoverPhase::kStop:
      if (!is_from) return none;
      d.step = SwitchoverStep::kStop;
      need = "primary";
      break;
    case SwitchoverPhase::kPromote:
      if (!is_to) return none;
      d.step = SwitchoverStep::kPromote;
      need = "standby";
      break;
    case SwitchoverPhase::kRejoin:
      if (is_to) return none;
      d.step = is_from ? SwitchoverStep::kRejoin : SwitchoverStep::kFollow;
      if (is_sibling) need = "standby";
      break;
    case SwitchoverPhase::kUnpause:
      if (!is_to) return none;
      d.step = SwitchoverStep::kUnpause;
      break;
    case SwitchoverPhase::kRollback:
      if (!is_from) return none;
      d.step = SwitchoverStep::kRollback;
      break;
    default:  // hold and publish are the orchestrator's; terminal phases are not active
      return none;
  }
  if (self.last_started && self.last_started->first == r.id &&
      self.last_started->second == r.phase) {
    return none;  // at most once per (id, phase)
  }
  d.kind = SwitchoverDecision::Kind::kFail;
  if (r.phase_at_ms < self.started_ms) {
    d.error = "poller restarted during the switchover";
    return d;
  }
  if (need == "primary" && !(self.answering && !self.in_recovery)) {
    d.error = self.answering ? "node " + self.node + " is in recovery, expected the primary"
                             : "node " + self.node + " does not answer, expected the primary";
    return d;
  }
  if (need == "standby" && !(self.answering && self.in_recovery)) {
    d.error = self.answering ? "node " + self.node + " is writable, expected a standby"
                             : "node " + self.node + " does not answer, expected a standby";
    return d;
  }
  d.kind = SwitchoverDecision::Kind::kRun;
  return d;
}

std::vector<std::string> PauseArgv(const SwitchoverConfig& config, bool pause) {
  auto argv = Repmgr(config);
  argv.insert(argv.end(), {"service", pause ? "pause" : "unpause"});
  return argv;
}

std::vector<std::string> NodeServiceArgv(const SwitchoverConfig& config, bool start) {
  auto argv = Repmgr(config);
  argv.insert(argv.end(), {"node", "service"});
  if (start) {
    argv.emplace_back("--action=start");
  } else {
    // No --checkpoint: the poller's drain ran CHECKPOINT already (RepmgrStepRunner::Stop).
    argv.emplace_back("--action=stop");
  }
  return argv;
}

std::vector<std::string> ShutdownCheckArgv(const SwitchoverConfig& config) {
  auto argv = Repmgr(config);
  argv.insert(argv.end(), {"node", "status", "--is-shutdown-cleanly"});
  return argv;
}

std::vector<std::string> PromoteArgv(const SwitchoverConfig& config) {
  auto argv = Repmgr(config);
  argv.insert(argv.end(), {"standby", "promote"});
  return argv;
}

std::vector<std::string> RejoinArgv(const SwitchoverConfig& config, const std::string& conninfo) {
  auto argv = Repmgr(config);
  argv.insert(argv.end(), {"node", "rejoin", "-d", conninfo, "--force-rewind",
                           "--config-archive-dir=" + config.config_archive_dir});
  return argv;
}

std::vector<std::string> FollowArgv(const SwitchoverConfig& config, int upstream_node_id) {
  auto argv = Repmgr(config);
  argv.insert(argv.end(),
              {"standby", "follow", "--upstream-node-id=" + std::to_string(upstream_node_id)});
  return argv;
}

std::vector<std::string> StepArgv(const SwitchoverConfig& config, const StepRequest& request) {
  switch (request.step) {
    case SwitchoverStep::kReadiness: return {};
    case SwitchoverStep::kPause: return PauseArgv(config, true);
    case SwitchoverStep::kStop: return NodeServiceArgv(config, false);
    case SwitchoverStep::kPromote: return PromoteArgv(config);
    case SwitchoverStep::kRejoin: return RejoinArgv(config, request.target.conninfo);
    case SwitchoverStep::kFollow: return FollowArgv(config, request.target.node_id);
    case SwitchoverStep::kUnpause: return PauseArgv(config, false);
    case SwitchoverStep::kRollback: return NodeServiceArgv(config, true);
  }
  return {};
}

std::string DescribeArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& word : argv) {
    const bool quote = word.empty() || word.find_first_of(" '\"") != std::string::npos;
    out += (out.empty() ? "" : " ") + (quote ? "'" + word + "'" : word);
  }
  return untrusted::SanitizeForDisplay(log::RedactSecrets(out), 1024);
}

StatusOr<ShutdownState> ParseShutdownCleanly(std::string_view output) {
  const auto garbage = [&](const std::string& why) {
    return InvalidArgument("repmgr node status --is-shutdown-cleanly: " + why + ": " +
                           Quote(output));
  };
  std::optional<ShutdownState> found;
  std::size_t pos = 0;
  while (pos <= output.size()) {
    std::size_t end = output.find('\n', pos);
    if (end == std::string_view::npos) end = output.size();
    std::string_view line = output.substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || IsLogLine(line)) continue;
    constexpr std::string_view kState = "--state=";
    if (line.substr(0, kState.size()) != kState) return garbage("unexpected line");
    if (found) return garbage("more than one state line");
    line.remove_prefix(kState.size());
    ShutdownState s;
    const std::size_t space = line.find(' ');
    s.state = std::string(line.substr(0, space));
    if (!IsStateToken(s.state)) return garbage("unreadable state");
    if (space != std::string_view::npos) {
      std::string_view rest = line.substr(space + 1);
      constexpr std::string_view kLsn = "--last-checkpoint-lsn=";
      if (rest.substr(0, kLsn.size()) != kLsn) return garbage("unexpected text after the state");
      auto lsn = model::ParseLsn(rest.substr(kLsn.size()));
      if (!lsn.ok()) return garbage("unreadable --last-checkpoint-lsn");
      s.lsn = *lsn;
    }
    found = std::move(s);
  }
  if (!found) return garbage("no --state= line");
  if (found->state == "SHUTDOWN" && !found->lsn) {
    return garbage("SHUTDOWN without --last-checkpoint-lsn");
  }
  return *found;
}

// ---- RepmgrStepRunner ----

RepmgrStepRunner::RepmgrStepRunner(SwitchoverConfig config, pg::PgParams pg)
    : config_(std::move(config)), pg_(std::move(pg)), log_("switchover") {}

StatusOr<std::unique_ptr<pg::PgConnection>> RepmgrStepRunner::Connect(
    const std::atomic<bool>& cancel) {
  // A loaded host may miss one connect timeout: try again until the step's own timeout.
  const MonoTime deadline = std::chrono::steady_clock::now() + config_.step_timeout;
  int attempts = 0;
  while (true) {
    ++attempts;
    auto made = Local(pg_);
    if (made.ok()) return made;
    if (cancel.load()) return made.status();
    if (std::chrono::steady_clock::now() + kReconnectPoll >= deadline) {
      return Status(made.status().code(),
                    made.status().message() + " (" + std::to_string(attempts) +
                        " attempts within step_timeout_ms " +
                        std::to_string(config_.step_timeout.count()) + ")");
    }
    std::this_thread::sleep_for(kReconnectPoll);  // backoff before the next connect
  }
}

StatusOr<std::unique_ptr<pg::PgConnection>> RepmgrStepRunner::Reuse(
    Conn warm, const std::atomic<bool>& cancel) {
  if (warm != nullptr && warm->ok() && warm->Exec("SELECT 1").ok()) return warm;
  return Connect(cancel);
}

StepOutcome RepmgrStepRunner::RetriedCommand(const std::vector<std::string>& argv,
                                             const std::atomic<bool>& cancel) {
  // Only for repmgr commands that may run twice (service pause/unpause): one that failed on a
  // loaded host (a connect timeout inside repmgr) is run again until the step's timeout.
  const MonoTime deadline = std::chrono::steady_clock::now() + config_.step_timeout;
  while (true) {
    StepOutcome out = Command(argv);
    if (out.ok || cancel.load()) return out;
    if (std::chrono::steady_clock::now() + kRetryCommand >= deadline) return out;
    log_.Warn("switchover_command_retry", {{"argv", DescribeArgv(argv)}, {"error", out.error}});
    std::this_thread::sleep_for(kRetryCommand);
  }
}

StepOutcome RepmgrStepRunner::Command(const std::vector<std::string>& argv, std::string* output) {
  auto run_as = RunAsOwnerOf(config_.repmgr_conf);
  if (!run_as.ok()) return Failed(run_as.status().message());
  ProcessOptions options;
  options.argv = argv;
  options.env = run_as->env;
  options.run_as = run_as->identity;
  options.timeout = config_.step_timeout;
  options.max_output = 16 * 1024;
  const std::string line = DescribeArgv(argv);
  log_.Info("switchover_command", {{"argv", line}});
  const MonoTime started = std::chrono::steady_clock::now();
  auto result = RunProcess(options);
  if (!result.ok()) return Failed(line + ": " + result.status().message());
  if (output != nullptr) *output = result->output;
  const auto elapsed =
      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count();
  log_.Info("switchover_command_end",
            {{"argv", line}, {"result", result->Describe()}, {"elapsed_ms", elapsed}});
  log_.Debug("switchover_command_output", {{"argv", line}, {"output", Quote(result->output)}});
  if (!result->success()) {
    return Failed(line + ": " + result->Describe() + ": " + Quote(result->output));
  }
  return {true, std::nullopt, ""};
}

Status RepmgrStepRunner::Readiness() {
  std::ifstream conf(config_.repmgr_conf);
  if (!conf) {
    return FailedPrecondition("poller.switchover.repmgr_conf " + config_.repmgr_conf +
                              " is not readable: " + std::strerror(errno));
  }
  if (::access(config_.repmgr.c_str(), X_OK) != 0) {
    return FailedPrecondition("poller.switchover.repmgr " + config_.repmgr +
                              " is not executable: " + std::strerror(errno));
  }
  return Status::Ok();
}

StepOutcome RepmgrStepRunner::AwaitLocal(
    const std::string& what, const std::string& sql,
    const std::function<std::optional<std::string>(const pg::Row&)>& not_ready,
    const std::atomic<bool>& cancel) {
  const MonoTime deadline = std::chrono::steady_clock::now() + config_.step_timeout;
  std::string last = "not yet connected";
  std::unique_ptr<pg::PgConnection> conn;
  while (true) {
    if (cancel.load()) return Failed(what + ": the poller is stopping");
    if (conn == nullptr || !conn->ok()) {
      auto made = Local(pg_);
      if (made.ok()) {
        conn = std::move(*made);
      } else {
        conn.reset();
        last = made.status().message();
      }
    }
    if (conn != nullptr) {
      auto r = conn->Exec(sql);
      if (r.ok() && r->num_rows() == 1) {
        auto why = not_ready(r->row(0));
        if (!why) return {true, std::nullopt, ""};
        last = *why;
      } else {
        last = r.ok() ? "no row" : r.status().message();
        conn.reset();  // a statement that failed: ask again on a new connection
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Failed(what + " within step_timeout_ms " + std::to_string(config_.step_timeout.count()) +
                    " (" + untrusted::SanitizeForDisplay(last, 256) + ")");
    }
    std::this_thread::sleep_for(conn != nullptr ? kWaitPoll : kReconnectPoll);
  }
}

StepOutcome RepmgrStepRunner::Stop(const std::atomic<bool>& cancel, Conn warm) {
  // Drain: the client transactions already open when the stop began, and those begun within
  // drain_quiet_ms after it (a pooler's stragglers, sent before its PAUSE took effect), may finish;
  // at most drain_timeout_ms (then it stops anyway, saying how many were open). Transactions begun
  // later come from clients that nothing holds (HAProxy's, direct ones): they keep the node busy
  // forever and end with the stop whatever it waits for, so they are not waited for.
  static constexpr char kCutoff[] =
      "SELECT (pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $1::float8 / "
      "1000))::text AS cutoff";
  static constexpr char kOpen[] =
      "SELECT count(*) AS open, pg_catalog.clock_timestamp() >= $1::timestamptz AS past "
      "FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND pid <> "
      "pg_catalog.pg_backend_pid() AND xact_start IS NOT NULL AND xact_start < $1::timestamptz";
  const MonoTime step_start = std::chrono::steady_clock::now();
  const auto ms_since = [](MonoTime t) {
    return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t).count();
  };
  {
    auto conn = Reuse(std::move(warm), cancel);
    if (!conn.ok()) return Failed("drain: " + conn.status().message());
    const std::int64_t connect_ms = ms_since(step_start);
    auto c = (*conn)->Exec(kCutoff, {std::to_string(config_.drain_quiet.count())});
    if (!c.ok() || c->num_rows() != 1) {
      return Failed("drain: " + (c.ok() ? std::string("no row") : c.status().message()));
    }
    auto cutoff = c->row(0).GetString("cutoff");
    if (!cutoff.ok()) return Failed("drain: " + cutoff.status().message());
    const MonoTime start = std::chrono::steady_clock::now();
    // The stop's checkpoint, run here while the drain waits anyway (rather than by repmgr's
    // --checkpoint, which costs repmgr a connection of its own after the drain): the shutdown
    // checkpoint then has only the last moments' buffers to write.
    if (auto error = Checkpoint(**conn, "stop: CHECKPOINT")) return Failed(*error);
    const std::int64_t checkpoint_ms = ms_since(start);
    std::int64_t open = -1;
    int polls = 0;
    while (true) {
      ++polls;
      if (cancel.load()) return Failed("drain: the poller is stopping");
      auto r = (*conn)->Exec(kOpen, {*cutoff});
      if (!r.ok() || r->num_rows() != 1) {
        return Failed("drain: " + (r.ok() ? std::string("no row") : r.status().message()));
      }
      auto n = r->row(0).GetInt64("open");
      if (!n.ok()) return Failed("drain: " + n.status().message());
      auto past = r->row(0).GetBool("past");
      if (!past.ok()) return Failed("drain: " + past.status().message());
      open = *n;
      if (open == 0 && *past) break;
      if (std::chrono::steady_clock::now() - start >= config_.drain_timeout) {
        log_.Warn("switchover_drain_timeout",
                  {{"open_transactions", open}, {"drain_timeout_ms", config_.drain_timeout.count()},
                   {"effect", "stopping anyway"}});
        break;
      }
      std::this_thread::sleep_for(kWaitPoll);  // polling PostgreSQL: there is nothing to await
    }
    // Where the hold's time goes (docs/switchover.md, "Where the time goes").
    log_.Info("switchover_drained", {{"connect_ms", connect_ms},
                                     {"checkpoint_ms", checkpoint_ms},
                                     {"drain_ms", ms_since(start)},
                                     {"polls", polls},
                                     {"open_transactions", open}});
  }
  StepRequest stop;
  stop.step = SwitchoverStep::kStop;
  StepOutcome stopped = Command(StepArgv(config_, stop));
  if (!stopped.ok) return stopped;
  std::string output;
  StepOutcome checked = Command(ShutdownCheckArgv(config_), &output);
  // repmgr exits non-zero for a node that is not shut down cleanly: the parsed state says more.
  auto state = ParseShutdownCleanly(output);
  if (!state.ok()) return Failed(checked.ok ? state.status().message() : checked.error);
  if (state->state != "SHUTDOWN") {
    return Failed("the node did not shut down cleanly: repmgr node status --is-shutdown-cleanly "
                  "says --state=" + state->state);
  }
  return {true, state->lsn, ""};
}

StepOutcome RepmgrStepRunner::Promote(const StepRequest& request,
                                      const std::atomic<bool>& cancel, Conn warm) {
  if (!request.stop_lsn) return Failed("the switchover record has no stop_lsn");
  std::optional<model::Lsn> received;
  {
    auto conn = Reuse(std::move(warm), cancel);
    if (!conn.ok()) return Failed("receive wait: " + conn.status().message());
    const MonoTime deadline = std::chrono::steady_clock::now() + config_.step_timeout;
    while (true) {
      if (cancel.load()) return Failed("receive wait: the poller is stopping");
      auto r = (*conn)->Exec(
          "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery, "
          "pg_catalog.pg_last_wal_receive_lsn()::text AS lsn");
      if (!r.ok() || r->num_rows() != 1) {
        return Failed("receive wait: " + (r.ok() ? std::string("no row") : r.status().message()));
      }
      auto in_recovery = r->row(0).GetBool("in_recovery");
      if (!in_recovery.ok() || !*in_recovery) {
        return Failed("receive wait: the node is no longer in recovery");
      }
      auto text = r->row(0).GetString("lsn");
      if (text.ok()) {
        auto lsn = model::ParseLsn(*text);
        if (!lsn.ok()) return Failed("receive wait: unreadable pg_last_wal_receive_lsn " + Quote(*text));
        received = *lsn;
        if (*received >= *request.stop_lsn) break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return Failed("receive wait: received " +
                      (received ? model::FormatLsn(*received) : std::string("nothing")) +
                      ", not " + model::FormatLsn(*request.stop_lsn) + ", within step_timeout_ms " +
                      std::to_string(config_.step_timeout.count()));
      }
      std::this_thread::sleep_for(kReceivePoll);
    }
  }
  StepOutcome promoted = Command(StepArgv(config_, request));
  if (!promoted.ok) return promoted;
  // A checkpoint at once: pg_rewind of the old primary reads the new timeline from the control
  // file, which only a checkpoint updates (STACK-NOTES: the rewind trap).
  auto conn = Connect(cancel);
  if (!conn.ok()) return Failed("CHECKPOINT after promote: " + conn.status().message());
  if (auto error = Checkpoint(**conn, "CHECKPOINT after promote")) return Failed(*error);
  // The rejoin needs repmgr's metadata on the new primary to name it alone (STACK-NOTES).
  StepOutcome one = AwaitLocal(
      "promoted, but repmgr.nodes does not name exactly one active primary",
      "SELECT count(*) AS primaries FROM repmgr.nodes WHERE type = 'primary' AND active",
      [](const pg::Row& row) -> std::optional<std::string> {
        auto count = row.GetInt64("primaries");
        if (count.ok() && *count == 1) return std::nullopt;
        return count.ok() ? std::to_string(*count) + " active primaries" : count.status().message();
      },
      cancel);
  if (!one.ok) return one;
  return {true, received, ""};
}

StepOutcome RepmgrStepRunner::Rejoin(const StepRequest& request,
                                     const std::atomic<bool>& cancel) {
  auto target = pg::ParseConninfo(request.target.conninfo);
  if (request.target.conninfo.empty() || !target.ok()) {
    return Failed("the conninfo of the new primary is unknown or unreadable in this node's "
                  "repmgr.nodes");
  }
  if (::mkdir(config_.config_archive_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Failed("poller.switchover.config_archive_dir " + config_.config_archive_dir + ": " +
                  std::strerror(errno));
  }
  auto run_as = RunAsOwnerOf(config_.repmgr_conf);
  if (run_as.ok() && run_as->identity) {
    // repmgr writes there as PostgreSQL's user.
    if (::chown(config_.config_archive_dir.c_str(), run_as->identity->uid,
                run_as->identity->gid) != 0) {
      return Failed("chown " + config_.config_archive_dir + ": " + std::strerror(errno));
    }
  }
  StepOutcome rejoined = Command(StepArgv(config_, request));
  if (!rejoined.ok) return rejoined;
  // Until the node streams from the new primary (the WAL receiver names its host and port).
  const std::string sender = target->host + ":" + std::to_string(target->port);
  return AwaitLocal(
      "rejoined, but not streaming from " + sender,
      "SELECT (SELECT status FROM pg_catalog.pg_stat_wal_receiver) AS status, "
      "(SELECT sender_host || ':' || sender_port FROM pg_catalog.pg_stat_wal_receiver) AS sender",
      [&](const pg::Row& row) -> std::optional<std::string> {
        auto status = row.GetString("status");
        auto from = row.GetString("sender");
        if (status.ok() && *status == "streaming" && from.ok() && *from == sender) {
          return std::nullopt;
        }
        return status.ok() ? "WAL receiver " + *status + " from " + (from.ok() ? *from : "?")
                           : std::string("no WAL receiver");
      },
      cancel);
}

// The old primary checkpoints while clients still write: the stop's own checkpoints (the drain's,
// then the shutdown checkpoint), which run while pgbouncer holds them, then have only the WAL
// since this one to flush. The connection stays open for the node's next step (from: the drain).
StepOutcome RepmgrStepRunner::PrepareLocal(const std::atomic<bool>& cancel) {
  auto conn = Connect(cancel);
  if (!conn.ok()) return Failed("prepare: " + conn.status().message());
  auto role = (*conn)->Exec("SELECT pg_is_in_recovery() AS in_recovery");
  if (!role.ok() || role->num_rows() != 1) {
    return Failed("prepare: " + (role.ok() ? std::string("no row") : role.status().message()));
  }
  auto in_recovery = role->row(0).GetBool("in_recovery");
  if (!in_recovery.ok()) return Failed("prepare: " + in_recovery.status().message());
  if (!*in_recovery) {
    if (auto error = Checkpoint(**conn, "prepare: CHECKPOINT")) return Failed(*error);
  }
  warm_ = std::move(*conn);  // for the stop's drain
  return {true, std::nullopt, ""};
}

StepOutcome RepmgrStepRunner::Rollback(const std::atomic<bool>& cancel) {
  StepRequest start;
  start.step = SwitchoverStep::kRollback;
  StepOutcome started = Command(StepArgv(config_, start));
  if (!started.ok) return started;
  return AwaitLocal(
      "started, but not writable", "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery",
      [](const pg::Row& row) -> std::optional<std::string> {
        auto in_recovery = row.GetBool("in_recovery");
        if (in_recovery.ok() && !*in_recovery) return std::nullopt;
        return std::string("in recovery");
      },
      cancel);
}

StepOutcome RepmgrStepRunner::Run(const StepRequest& request, const std::atomic<bool>& cancel) {
  Conn warm = std::move(warm_);  // only the stop and the promote use it; any other step closes it
  switch (request.step) {
    case SwitchoverStep::kReadiness:
    case SwitchoverStep::kPause: {
      Status ready = Readiness();
      if (!ready.ok()) return Failed(ready.message());
      if (request.step == SwitchoverStep::kReadiness) return PrepareLocal(cancel);
      StepOutcome paused = RetriedCommand(StepArgv(config_, request), cancel);
      if (paused.ok) {
        auto conn = Local(pg_);  // for the promote's receive wait; without one it connects then
        if (conn.ok()) warm_ = std::move(*conn);
      }
      return paused;
    }
    case SwitchoverStep::kStop: return Stop(cancel, std::move(warm));
    case SwitchoverStep::kPromote: return Promote(request, cancel, std::move(warm));
    case SwitchoverStep::kRejoin: return Rejoin(request, cancel);
    case SwitchoverStep::kFollow:
      if (request.target.node_id <= 0) {
        return Failed("the node_id of the new primary is unknown in this node's repmgr.nodes");
      }
      return Command(StepArgv(config_, request));
    case SwitchoverStep::kUnpause: return RetriedCommand(StepArgv(config_, request), cancel);
    case SwitchoverStep::kRollback: return Rollback(cancel);
  }
  return Failed("unknown step");
}

// ---- SwitchoverExecutor ----

SwitchoverExecutor::SwitchoverExecutor(std::string node, SwitchoverConfig config,
                                       std::unique_ptr<StepRunner> runner, const Clock& clock,
                                       std::function<void()> on_ack_change)
    : node_(std::move(node)),
      config_(std::move(config)),
      runner_(std::move(runner)),
      clock_(clock),
      on_ack_change_(std::move(on_ack_change)),
      started_ms_(WallMs(clock)),
      log_("switchover") {}

SwitchoverExecutor::~SwitchoverExecutor() {
  cancel_.store(true);
  if (worker_.joinable()) worker_.join();
}

std::optional<model::SwitchoverAck> SwitchoverExecutor::ack() const {
  std::lock_guard lock(mu_);
  return ack_;
}

bool SwitchoverExecutor::busy() const { return running_.load(); }

void SwitchoverExecutor::WaitIdle() {
  if (worker_.joinable()) worker_.join();
}

void SwitchoverExecutor::SetAck(model::SwitchoverAck ack, bool step_ended) {
  ack.error = untrusted::SanitizeForDisplay(ack.error, 1024);
  if (metrics_ != nullptr) {
    metrics_->RecordSwitchoverStep(model::SwitchoverPhaseName(ack.phase),
                                   model::SwitchoverStepStateName(ack.state));
  }
  {
    std::lock_guard lock(mu_);
    ack_ = std::move(ack);
    // The step ends with its ack in place, before the loop is woken to consider the next phase.
    if (step_ended) running_.store(false);
  }
  if (on_ack_change_) on_ack_change_();
}

std::optional<SwitchoverStep> SwitchoverExecutor::Consider(
    const std::optional<model::SwitchoverRecord>& record, bool self_answering,
    bool self_in_recovery,
    const std::function<std::optional<SwitchoverTarget>(const std::string& node)>& target) {
  if (running_.load()) return std::nullopt;
  if (worker_.joinable()) worker_.join();  // the last step ended (running_ is false)
  SwitchoverSelf self;
  self.node = node_;
  self.enabled = config_.enabled;
  self.started_ms = started_ms_;
  self.last_started = last_started_;
  self.answering = self_answering;
  self.in_recovery = self_in_recovery;
  const SwitchoverDecision d = DecideSwitchoverStep(record, self, WallMs(clock_));
  if (d.kind == SwitchoverDecision::Kind::kNothing) return std::nullopt;
  last_started_ = std::make_pair(record->id, d.phase);
  const char* phase = model::SwitchoverPhaseName(d.phase);
  log_.Info("switchover_step_start",
            {{"id", record->id}, {"phase", phase}, {"node", node_},
             {"step", SwitchoverStepName(d.step)}});
  model::SwitchoverAck ack;
  ack.id = record->id;
  ack.phase = d.phase;
  ack.at_ms = WallMs(clock_);
  if (d.kind == SwitchoverDecision::Kind::kFail) {
    ack.state = model::SwitchoverStepState::kFailed;
    ack.error = d.error;
    log_.Warn("switchover_step_end", {{"id", record->id}, {"phase", phase}, {"state", "failed"},
                                      {"elapsed_ms", 0}, {"lsn", ""}, {"error", d.error}});
    SetAck(std::move(ack));
    return std::nullopt;
  }
  StepRequest request;
  request.id = record->id;
  request.phase = d.phase;
  request.step = d.step;
  request.stop_lsn = record->stop_lsn;
  if (d.step == SwitchoverStep::kRejoin || d.step == SwitchoverStep::kFollow) {
    if (auto t = target(record->to)) request.target = *t;
  }
  ack.state = model::SwitchoverStepState::kRunning;
  SetAck(std::move(ack));
  running_.store(true);
  const MonoTime started = clock_.Now();
  worker_ = std::thread([this, request, started] { RunStep(request, started); });
  return d.step;
}

void SwitchoverExecutor::RunStep(StepRequest request, MonoTime started) {
  StepOutcome outcome = runner_->Run(request, cancel_);
  const auto elapsed = std::chrono::duration_cast<Millis>(clock_.Now() - started).count();
  model::SwitchoverAck ack;
  ack.id = request.id;
  ack.phase = request.phase;
  ack.state = outcome.ok ? model::SwitchoverStepState::kDone : model::SwitchoverStepState::kFailed;
  ack.lsn = outcome.lsn;
  ack.error = outcome.ok ? "" : (outcome.error.empty() ? "failed" : outcome.error);
  ack.at_ms = WallMs(clock_);
  const log::Fields fields = {{"id", request.id},
                              {"phase", model::SwitchoverPhaseName(request.phase)},
                              {"state", model::SwitchoverStepStateName(ack.state)},
                              {"elapsed_ms", static_cast<std::int64_t>(elapsed)},
                              {"lsn", outcome.lsn ? model::FormatLsn(*outcome.lsn) : ""},
                              {"error", untrusted::SanitizeForDisplay(ack.error, 1024)}};
  if (outcome.ok) {
    log_.Info("switchover_step_end", fields);
  } else {
    log_.Error("switchover_step_end", fields);
  }
  SetAck(std::move(ack), /*step_ended=*/true);
}

}  // namespace pgherald::pollers
