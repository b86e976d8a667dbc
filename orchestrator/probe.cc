#include "orchestrator/probe.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

namespace pgherald::orchestrator {

const char* const kProbeSql =
    "SELECT r.in_recovery,"
    " CASE WHEN r.in_recovery"
    "  THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver),"
    "                (SELECT timeline_id FROM pg_control_checkpoint()))::bigint"
    "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint"
    " END AS timeline,"
    " CASE WHEN r.in_recovery"
    "  THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text"
    "  ELSE pg_current_wal_lsn()::text END AS lsn,"
    " (SELECT system_identifier FROM pg_control_system())::text AS system_identifier"
    " FROM (SELECT pg_is_in_recovery() AS in_recovery) r";

namespace {

// Created on the first write check that finds them missing. The heartbeat row replicates, so
// standbys' pollers can tell time-based lag from it.
constexpr char kSetupSql[] =
    "CREATE SCHEMA IF NOT EXISTS pgherald;"
    "CREATE TABLE IF NOT EXISTS pgherald.heartbeat ("
    " cluster text NOT NULL, node text NOT NULL, orchestrator text NOT NULL,"
    " beat_at timestamptz NOT NULL, beats bigint NOT NULL DEFAULT 1,"
    " PRIMARY KEY (cluster, node, orchestrator))";

std::int64_t MicrosSince(const Clock& clock, MonoTime start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock.Now() - start).count();
}

// Fills role, timeline, lsn and (when present) system_identifier from a probe-shaped row.
Status ReadProbeRow(const pg::PgResult& result, model::Probe* p) {
  if (result.num_rows() != 1) return Internal("probe returned " + std::to_string(result.num_rows()) + " rows");
  const pg::Row row = result.row(0);
  PGH_ASSIGN_OR_RETURN(const bool in_recovery, row.GetBool("in_recovery"));
  PGH_ASSIGN_OR_RETURN(const std::optional<int64_t> timeline,
                       row.Get<std::optional<int64_t>>("timeline"));
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> lsn,
                       row.Get<std::optional<std::string>>("lsn"));
  p->in_recovery = in_recovery;
  p->timeline = timeline.has_value() ? static_cast<std::uint32_t>(*timeline) : 0;
  p->lsn = 0;
  if (lsn.has_value()) {
    PGH_ASSIGN_OR_RETURN(p->lsn, model::ParseLsn(*lsn));
  }
  if (result.ColumnIndex("system_identifier") >= 0) {
    PGH_ASSIGN_OR_RETURN(const std::optional<std::string> sysid,
                         row.Get<std::optional<std::string>>("system_identifier"));
    p->system_identifier = sysid.value_or("");
  }
  return Status::Ok();
}

bool ConnectionLevel(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kTimeout;
}

}  // namespace

StatusOr<std::string> SqlLiteral(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\0') return InvalidArgument("a NUL byte cannot go into a SQL literal");
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

// --- The event loop ------------------------------------------------------------------------------
//
// Every node in flight is a Job: a small state machine over its connection's non-blocking libpq
// calls (connect, then the probe query, then for a write check the write batch, with the setup and
// a ROLLBACK where needed). Pump() polls the sockets of every job in flight at once and steps the
// ready ones; libpq enforces no timeout in this mode, so each phase carries its own deadline
// (connect_timeout while connecting, PgConnection::answer_timeout() while a statement runs) and a
// job past it is ended as the blocking calls would end it: its connection is closed.

namespace {

using Steady = std::chrono::steady_clock;
using Wait = pg::PgConnection::Wait;

// The results of one ProbeAll/WriteCheckAll call, filled as jobs end.
struct Round {
  explicit Round(std::size_t n) : results(n), done(n, false), remaining(n) {}
  std::vector<model::Probe> results;
  std::vector<bool> done;
  std::size_t remaining;
};

enum class Phase { kConnect, kProbe, kWrite, kSetup, kRollback };

struct Job {
  NodeTarget target;
  // A write check (a heartbeat row per context, one transaction) when not empty; a probe else.
  std::vector<WriteCheckContext> write_checks;
  model::Probe probe;
  MonoTime start;
  Phase phase = Phase::kConnect;
  Wait wait = Wait::kWrite;
  std::optional<Steady::time_point> deadline;  // of the current phase
  Round* round = nullptr;  // the call waiting for the probe; null once delivered or abandoned
  bool warm = false;       // started by Warm and not yet taken over by a call
  std::vector<std::size_t> indices;  // where the probe goes in round->results (one per asker)
  bool delivered = false;
  bool setup_tried = false;
  bool setup_after_rollback = false;
  std::string write_sql;
};

const char* What(Phase phase) { return phase == Phase::kProbe ? "query" : "batch"; }

}  // namespace

struct PgNodeProber::Slot {
  std::unique_ptr<pg::PgConnection> conn;  // kept between calls
  std::unique_ptr<Job> job;                // in flight; null when idle
};

namespace {

using Slot = PgNodeProber::Slot;

std::optional<Steady::time_point> PhaseDeadline(Millis timeout) {
  if (timeout.count() <= 0) return std::nullopt;
  return Steady::now() + timeout;
}

// The probe is final: hand it to the call that waits for it (if it still does).
void Deliver(Job& j, const Clock& clock) {
  if (j.delivered) return;
  j.delivered = true;
  j.probe.latency_us = MicrosSince(clock, j.start);
  if (j.round != nullptr) {
    for (std::size_t index : j.indices) {
      j.round->results[index] = j.probe;
      j.round->done[index] = true;
      --j.round->remaining;
    }
    j.round = nullptr;
  }
}

void End(Slot& s, const Clock& clock) {
  Deliver(*s.job, clock);
  s.job.reset();
}

void Failed(Slot& s, const Status& status, const Clock& clock);

void Send(Slot& s, Phase phase, const std::string& sql, const Clock& clock) {
  Job& j = *s.job;
  j.phase = phase;
  if (Status sent = s.conn->SendBatch(sql); !sent.ok()) return Failed(s, sent, clock);
  j.wait = Wait::kRead;
  j.deadline = PhaseDeadline(s.conn->answer_timeout());
}

// After the probe's or the write's final answer: a failed transaction block is ended before the
// connection is used again.
void EndOrRollBack(Slot& s, const Clock& clock) {
  Deliver(*s.job, clock);
  if (s.conn != nullptr && s.conn->ok() && s.conn->in_failed_transaction()) {
    return Send(s, Phase::kRollback, "ROLLBACK", clock);
  }
  End(s, clock);
}

void Failed(Slot& s, const Status& status, const Clock& clock) {
  Job& j = *s.job;
  model::Probe& p = j.probe;
  if (ConnectionLevel(status.code()) || (s.conn != nullptr && !s.conn->ok())) s.conn.reset();
  switch (j.phase) {
    case Phase::kConnect:
    case Phase::kProbe:
      p.reachable = false;
      p.error = status.ToString();
      return EndOrRollBack(s, clock);
    case Phase::kWrite:
      if (status.code() == StatusCode::kNotFound && !j.setup_tried && s.conn != nullptr) {
        // The schema or table is missing: create them, then try once more.
        j.setup_tried = true;
        if (s.conn->in_failed_transaction()) {
          j.setup_after_rollback = true;
          return Send(s, Phase::kRollback, "ROLLBACK", clock);
        }
        return Send(s, Phase::kSetup, kSetupSql, clock);
      }
      p.write_check = model::WriteCheck::kFailed;
      p.write_error = status.ToString();
      return EndOrRollBack(s, clock);
    case Phase::kSetup:
      p.write_check = model::WriteCheck::kFailed;
      p.write_error = "cannot create schema pgherald and table pgherald.heartbeat (" +
                      status.ToString() + "); fix: GRANT CREATE ON DATABASE " +
                      j.target.params.dbname + " TO " + j.target.params.user +
                      ", or create them as a superuser";
      return EndOrRollBack(s, clock);
    case Phase::kRollback:
      if (!j.delivered) {  // the rollback before the setup
        p.write_check = model::WriteCheck::kFailed;
        p.write_error = status.ToString();
      }
      s.conn.reset();  // a session that cannot roll back is not reused
      return End(s, clock);
  }
}

// The write check's batch: one transaction, one round trip: the rows (one per context: the
// clusters whose rounds check this node) commit only where writes are accepted, and
// pg_is_in_recovery() is read in the same session and transaction. Empty (with write_error set)
// when it cannot be built.
std::string WriteSql(const Job& j, model::Probe* p) {
  if (p->in_recovery) {
    p->write_check = model::WriteCheck::kFailed;
    p->write_error = "in recovery";
    return "";
  }
  auto node = SqlLiteral(j.target.name);
  std::string values;
  for (const WriteCheckContext& context : j.write_checks) {
    auto cluster = SqlLiteral(context.cluster);
    auto id = SqlLiteral(context.orchestrator_id);
    if (!cluster.ok() || !node.ok() || !id.ok()) {
      p->write_check = model::WriteCheck::kFailed;
      p->write_error = "cluster, node or orchestrator id holds a NUL byte";
      return "";
    }
    values += (values.empty() ? "(" : ", (") + *cluster + ", " + *node + ", " + *id + ", now())";
  }
  return "BEGIN;"
         "INSERT INTO pgherald.heartbeat (cluster, node, orchestrator, beat_at) VALUES " +
         values + " ON CONFLICT (cluster, node, orchestrator)"
         " DO UPDATE SET beat_at = now(), beats = pgherald.heartbeat.beats + 1;" +
         "SELECT r.in_recovery, NULL::bigint AS timeline, NULL::text AS lsn FROM "
         "(SELECT pg_is_in_recovery() AS in_recovery) r;"
         "COMMIT";
}

// Judges the write batch's answer (BEGIN, INSERT of `rows` rows, SELECT, COMMIT), whatever the
// server sent.
void JudgeWrite(const std::vector<pg::PgResult>& batch, std::size_t rows, model::Probe* p) {
  p->write_check = model::WriteCheck::kFailed;
  if (batch.size() != 4) {
    p->write_error = "write check returned " + std::to_string(batch.size()) + " results, not 4";
    return;
  }
  auto row = batch[2].num_rows() == 1
                 ? batch[2].row(0).GetBool("in_recovery")
                 : StatusOr<bool>(Internal("write check returned " +
                                           std::to_string(batch[2].num_rows()) + " rows"));
  if (!row.ok() || *row) {
    p->write_error =
        row.ok() ? "pg_is_in_recovery() true in the write check's session" : row.status().ToString();
  } else if (batch[1].affected_rows() != static_cast<std::int64_t>(rows)) {
    p->write_error = "heartbeat upsert touched " + std::to_string(batch[1].affected_rows()) +
                     " rows, not " + std::to_string(rows);
  } else {
    p->write_check = model::WriteCheck::kPassed;
  }
}

void Answered(Slot& s, std::vector<pg::PgResult> results, const Clock& clock) {
  Job& j = *s.job;
  model::Probe& p = j.probe;
  switch (j.phase) {
    case Phase::kConnect:
      return;  // not reached: a connect has no results
    case Phase::kProbe: {
      if (results.size() != 1) {
        return Failed(s,
                      Internal(s.conn->Describe() + ": query failed: expected one result, got " +
                               std::to_string(results.size())),
                      clock);
      }
      p.reachable = true;
      if (Status read = ReadProbeRow(results[0], &p); !read.ok()) {
        p.reachable = false;
        p.error = "probe result: " + read.ToString();
        if (!s.conn->ok()) s.conn.reset();
        return EndOrRollBack(s, clock);
      }
      if (j.write_checks.empty()) return End(s, clock);
      j.write_sql = WriteSql(j, &p);
      if (j.write_sql.empty()) return End(s, clock);
      return Send(s, Phase::kWrite, j.write_sql, clock);
    }
    case Phase::kWrite:
      JudgeWrite(results, j.write_checks.size(), &p);
      return EndOrRollBack(s, clock);
    case Phase::kSetup:
      return Send(s, Phase::kWrite, j.write_sql, clock);
    case Phase::kRollback:
      if (j.setup_after_rollback) {
        j.setup_after_rollback = false;
        return Send(s, Phase::kSetup, kSetupSql, clock);
      }
      return End(s, clock);
  }
}

// The job's socket is ready for what it waits for (or reports an error).
void Step(Slot& s, const Clock& clock) {
  Job& j = *s.job;
  if (j.phase == Phase::kConnect) {
    auto wait = s.conn->PollConnect();
    if (!wait.ok()) return Failed(s, wait.status(), clock);
    if (*wait != Wait::kNone) {
      j.wait = *wait;
      return;
    }
    return Send(s, Phase::kProbe, kProbeSql, clock);
  }
  auto results = s.conn->ReceiveResults(What(j.phase));
  if (!results.ok()) return Failed(s, results.status(), clock);
  if (!results->has_value()) return;
  Answered(s, std::move(**results), clock);
}

// The job's phase ran out of time: its connection is closed (the backend notices; PQcancel would
// block, and libpq 15 has no non-blocking cancel).
void Expire(Slot& s, const Clock& clock) {
  Job& j = *s.job;
  const Status status = j.phase == Phase::kConnect ? s.conn->ConnectTimedOut()
                                                   : s.conn->AnswerTimedOut(What(j.phase));
  j.setup_after_rollback = false;
  Failed(s, status, clock);
}

// Starts the job for `target` on the idle slot `s` (a write check when `write_checks` is not
// empty), its probe going to `indices` of `round`: a connect when there is no usable connection,
// else the probe query. The job may end at once (a connect refused synchronously).
void Begin(Slot& s, const NodeTarget& target, std::vector<WriteCheckContext> write_checks,
           Round* round, std::vector<std::size_t> indices, const Clock& clock) {
  s.job = std::make_unique<Job>();
  Job& j = *s.job;
  j.target = target;
  j.write_checks = std::move(write_checks);
  j.round = round;
  j.indices = std::move(indices);
  j.probe.node = target.name;
  j.probe.host = target.params.host;
  j.probe.port = target.params.port;
  j.start = clock.Now();
  j.probe.taken_at_ms = model::ToWallMillis(clock.WallNow());
  if (s.conn != nullptr && s.conn->ok()) return Send(s, Phase::kProbe, kProbeSql, clock);
  s.conn.reset();
  auto started = pg::PgConnection::StartConnect(target.params);
  if (!started.ok()) return Failed(s, started.status(), clock);
  s.conn = std::move(*started);
  j.wait = Wait::kWrite;  // libpq: start as if PQconnectPoll had asked to write
  j.deadline = PhaseDeadline(target.params.connect_timeout);
}

// Polls the sockets of every job in `active` and steps them until `done()` or `until` (at least
// one poll, so a pass with `until` now finishes what is ready and expires what is overdue). Slots
// whose job ended leave `active`. `wake_fd` (an eventfd; -1: none) is polled beside them: when it
// is signalled it is drained and done() asked again.
void Pump(std::vector<Slot*>* active, Steady::time_point until, const std::function<bool()>& done,
          const Clock& clock, int wake_fd = -1) {
  std::vector<pollfd> fds;
  std::vector<Slot*> polled;
  while (true) {
    std::erase_if(*active, [](Slot* s) { return s->job == nullptr; });
    if (done()) return;
    Steady::time_point now = Steady::now();
    Steady::time_point next = until;
    fds.clear();
    polled.clear();
    bool expired = false;
    for (Slot* s : *active) {
      Job& j = *s->job;
      if (j.deadline.has_value() && *j.deadline <= now) {
        Expire(*s, clock);
        expired = true;
        continue;
      }
      if (j.deadline.has_value()) next = std::min(next, *j.deadline);
      pollfd pfd{};
      pfd.fd = s->conn->socket();
      pfd.events = j.wait == Wait::kWrite ? POLLOUT : POLLIN;
      fds.push_back(pfd);
      polled.push_back(s);
    }
    if (expired) continue;  // ended jobs leave, new phases are polled
    if (fds.empty()) return;
    if (wake_fd >= 0) fds.push_back(pollfd{wake_fd, POLLIN, 0});
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    const int timeout_ms =
        static_cast<int>(std::clamp<std::int64_t>(left, 0, std::numeric_limits<int>::max()));
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) return;
    for (std::size_t i = 0; ready > 0 && i < polled.size(); ++i) {
      if (fds[i].revents != 0) Step(*polled[i], clock);
    }
    if (wake_fd >= 0 && ready > 0 && fds.back().revents != 0) {
      std::uint64_t count = 0;
      (void)!::read(wake_fd, &count, sizeof count);
    }
    if (Steady::now() >= until) {
      std::erase_if(*active, [](Slot* s) { return s->job == nullptr; });
      return;
    }
  }
}

// A job a probe call may take over: a Warm's probe still connecting, delivered to no one and
// waited for by no call.
bool Adoptable(const Job& j) {
  return j.warm && j.write_checks.empty() && j.phase == Phase::kConnect && j.round == nullptr &&
         !j.delivered;
}

// One connection per node and per identity on it: the heartbeat row goes into the target's own
// database, as the target's own user.
std::string SlotKey(const NodeTarget& t) {
  return t.name + "@" + t.params.host + ":" + std::to_string(t.params.port) + "/" +
         t.params.dbname + " as " + t.params.user;
}

}  // namespace

model::Probe PgNodeProber::ProbeOnce(const NodeTarget& target,
                                     std::unique_ptr<pg::PgConnection>* conn,
                                     const WriteCheckContext* write_check, const Clock& clock) {
  Slot slot;
  slot.conn = std::move(*conn);
  Round round(1);
  std::vector<WriteCheckContext> contexts;
  if (write_check != nullptr) contexts.push_back(*write_check);
  Begin(slot, target, std::move(contexts), &round, {0}, clock);
  std::vector<Slot*> active{&slot};
  Pump(&active, Steady::time_point::max(), [&] { return slot.job == nullptr; }, clock);
  *conn = std::move(slot.conn);
  return round.results[0];
}

PgNodeProber::PgNodeProber(const Clock* clock, int max_connecting)
    : clock_(clock), max_connecting_(static_cast<std::size_t>(std::max(1, max_connecting))) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // Without an eventfd the thread could not be woken out of its poll(2): no background stepping
  // then (the work in flight progresses during calls only, as before).
  if (wake_fd_ >= 0) background_ = std::thread([this] { Background(); });
}

std::unique_lock<std::mutex> PgNodeProber::Lock() const {
  ++callers_;
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  std::unique_lock lock(mu_);
  --callers_;
  return lock;
}

void PgNodeProber::Background() {
  std::unique_lock lock(mu_);
  while (!closing_) {
    // Steps what earlier calls left in flight (connects above all, whose SCRAM exchange needs this
    // thread's turns) until it has all ended or a call wants the loop; then waits for more.
    if (callers_ == 0 && !active_.empty()) {
      Pump(&active_, Steady::time_point::max(), [this] { return callers_ > 0 || closing_; },
           *clock_, wake_fd_);
    }
    if (closing_) break;
    if (callers_ > 0) {
      // Let the caller have mu_: it is queued on it, and takes it once this thread waits.
      work_.wait_for(lock, std::chrono::milliseconds(1));
      continue;
    }
    if (active_.empty() && watch_idle_) {
      rewatch_ = false;
      if (WatchIdle(lock)) continue;
    }
    work_.wait(lock, [this] { return closing_ || callers_ > 0 || !active_.empty() || rewatch_; });
  }
}

bool PgNodeProber::WatchIdle(std::unique_lock<std::mutex>& lock) {
  std::vector<pollfd> fds;
  std::vector<Slot*> polled;
  for (auto& [key, slot] : slots_) {
    if (slot->job != nullptr || slot->conn == nullptr || !slot->conn->ok()) continue;
    fds.push_back(pollfd{slot->conn->socket(), POLLIN, 0});
    polled.push_back(slot.get());
  }
  if (fds.empty()) return false;
  fds.push_back(pollfd{wake_fd_, POLLIN, 0});
  // No timeout: a call (Lock() signals wake_fd_) or the destructor ends the wait.
  const int ready = poll(fds.data(), fds.size(), -1);
  if (ready < 0) return errno == EINTR;
  if (fds.back().revents != 0) {
    std::uint64_t count = 0;
    (void)!::read(wake_fd_, &count, sizeof count);
  }
  std::vector<std::pair<std::string, int>> lost;
  for (std::size_t i = 0; i < polled.size(); ++i) {
    if (fds[i].revents == 0) continue;
    Slot& slot = *polled[i];
    ++idle_reads_;
    if (slot.conn->ConsumeIdleInput()) continue;  // a notice or a parameter report: still open
    lost.emplace_back(slot.conn->params().host, slot.conn->params().port);
    slot.conn.reset();  // the next call connects anew
  }
  if (lost.empty()) return true;
  lock.unlock();
  {
    std::lock_guard handler_lock(handler_mu_);
    for (const auto& [host, port] : lost) {
      if (lost_handler_) lost_handler_(host, port);
    }
  }
  lock.lock();
  return true;
}

void PgNodeProber::SetConnectionLostHandler(ConnectionLost handler) {
  {
    std::lock_guard handler_lock(handler_mu_);
    lost_handler_ = std::move(handler);
    watch_idle_ = lost_handler_ != nullptr;
  }
  // The thread may be waiting for work: let it start (or stop) watching.
  auto lock = Lock();
  rewatch_ = true;
  work_.notify_all();
}

std::size_t PgNodeProber::Connecting() const {
  return static_cast<std::size_t>(std::count_if(active_.begin(), active_.end(), [](const Slot* s) {
    return s->job != nullptr && s->job->phase == Phase::kConnect;
  }));
}

PgNodeProber::~PgNodeProber() {  // closes every connection, in flight or not
  if (background_.joinable()) {
    {
      auto lock = Lock();
      closing_ = true;
    }
    work_.notify_all();
    background_.join();
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

std::vector<model::Probe> NodeProber::WriteCheckAll(const std::vector<NodeTarget>& targets,
                                                    const WriteCheckContext& context,
                                                    MonoTime deadline) {
  std::vector<WriteCheckRequest> requests;
  requests.reserve(targets.size());
  for (const NodeTarget& t : targets) requests.push_back({t, context});
  return WriteCheckEach(requests, deadline);
}

std::vector<model::Probe> PgNodeProber::ProbeAll(const std::vector<NodeTarget>& targets,
                                                 MonoTime deadline) {
  return RunAll(targets, nullptr, deadline);
}

std::vector<model::Probe> PgNodeProber::WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                                       MonoTime deadline) {
  std::vector<NodeTarget> targets;
  std::vector<WriteCheckContext> contexts;
  for (const WriteCheckRequest& r : requests) {
    targets.push_back(r.target);
    contexts.push_back(r.context);
  }
  return RunAll(targets, &contexts, deadline);
}

void PgNodeProber::Forget(const std::vector<NodeTarget>& targets) {
  auto lock = Lock();
  for (const NodeTarget& t : targets) {
    auto it = slots_.find(SlotKey(t));
    if (it == slots_.end()) continue;
    std::erase(active_, it->second.get());
    slots_.erase(it);  // closes its connection, in flight or not
  }
}

void PgNodeProber::Warm(const std::vector<NodeTarget>& targets) {
  if (targets.empty()) return;
  auto lock = Lock();
  const std::size_t limit = std::max<std::size_t>(1, max_connecting_ / 2);
  std::size_t connecting = Connecting();
  bool started = false;
  for (const NodeTarget& t : targets) {
    if (connecting >= limit) break;
    auto& slot = slots_[SlotKey(t)];
    if (slot == nullptr) slot = std::make_shared<Slot>();
    if (slot->job != nullptr || (slot->conn != nullptr && slot->conn->ok())) continue;
    Begin(*slot, t, {}, nullptr, {}, *clock_);
    if (slot->job == nullptr) continue;  // refused at once (it is tried again at a later Warm)
    slot->job->warm = true;
    active_.push_back(slot.get());
    ++connecting;
    started = true;
  }
  rewatch_ = watch_idle_.load();
  if (started || rewatch_) work_.notify_one();
}

std::size_t PgNodeProber::kept() const {
  auto lock = Lock();
  return slots_.size();
}

std::size_t PgNodeProber::in_flight() const {
  auto lock = Lock();
  return static_cast<std::size_t>(std::count_if(
      active_.begin(), active_.end(), [](const Slot* s) { return s->job != nullptr; }));
}

std::vector<model::Probe> PgNodeProber::RunAll(const std::vector<NodeTarget>& targets,
                                               const std::vector<WriteCheckContext>* contexts,
                                               MonoTime deadline) {
  auto lock = Lock();
  // The deadline is on the injected clock; wait in real time for what is left of it.
  const Steady::time_point until =
      Steady::now() + std::chrono::duration_cast<Steady::duration>(deadline - clock_->Now());
  // What earlier calls left in flight: finish what has answered, expire what is overdue.
  Pump(&active_, Steady::now(), [] { return false; }, *clock_);
  Round round(targets.size());
  const std::int64_t now_ms = model::ToWallMillis(clock_->WallNow());
  // The targets by slot, in order of first appearance: a slot runs one job at a time, so targets
  // that share one (the same node in several clusters' rounds) share its job and its answer.
  struct Group {
    std::vector<std::size_t> indices;
    std::vector<WriteCheckContext> contexts;  // distinct: one heartbeat row each
  };
  std::vector<std::pair<std::string, Group>> groups;
  std::map<std::string, std::size_t> group_of;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::string key = SlotKey(targets[i]);
    auto [it, added] = group_of.emplace(key, groups.size());
    if (added) groups.emplace_back(key, Group{});
    Group& g = groups[it->second].second;
    g.indices.push_back(i);
    if (contexts != nullptr &&
        std::find(g.contexts.begin(), g.contexts.end(), (*contexts)[i]) == g.contexts.end()) {
      g.contexts.push_back((*contexts)[i]);
    }
  }
  // A target's answer when no job delivers one: unreachable, with why.
  auto unanswered = [&](std::size_t i, const std::string& error) {
    const NodeTarget& t = targets[i];
    model::Probe& p = round.results[i];
    p.node = t.name;
    p.host = t.params.host;
    p.port = t.params.port;
    p.taken_at_ms = now_ms;
    p.reachable = false;
    p.error = error;
    round.done[i] = true;
    --round.remaining;
  };
  // At most max_connecting_ connection attempts in flight: the others wait for a turn within the
  // call (a batch's first call would otherwise open hundreds at once; each costs a SCRAM exchange
  // on this thread and a backend fork on the server, and together they outlast connect_timeout).
  std::deque<std::pair<Slot*, Group*>> waiting;
  auto start = [&](Slot& slot, Group& group) {
    const NodeTarget& target = targets[group.indices.front()];  // before the indices move
    Begin(slot, target, std::move(group.contexts), &round, std::move(group.indices), *clock_);
    if (slot.job != nullptr) active_.push_back(&slot);
  };
  for (auto& entry : groups) {
    Group& group = entry.second;
    auto& slot = slots_[entry.first];
    if (slot == nullptr) slot = std::make_shared<Slot>();
    if (slot->job != nullptr && contexts == nullptr && Adoptable(*slot->job)) {
      // A Warm's attempt that has not sent its query yet: its probe will be as fresh as a new
      // one's, so this call takes it. Only once: an attempt that outlasts this call too is left to
      // finish in the background, as any call's (a hung node does not hold every later call).
      slot->job->warm = false;
      slot->job->round = &round;
      slot->job->indices = std::move(group.indices);
      slot->job->probe.taken_at_ms = now_ms;
      continue;
    }
    if (slot->job != nullptr) {
      for (std::size_t i : group.indices) {
        unanswered(i, "previous probe still running (node hung?)");
      }
      continue;
    }
    const bool connects = slot->conn == nullptr || !slot->conn->ok();
    if (connects && (!waiting.empty() || Connecting() >= max_connecting_)) {
      waiting.emplace_back(slot.get(), &group);
      continue;
    }
    start(*slot, group);
  }
  while (true) {
    Pump(&active_, until,
         [&] {
           return round.remaining == 0 || (!waiting.empty() && Connecting() < max_connecting_);
         },
         *clock_);
    if (waiting.empty() || Steady::now() >= until) break;
    while (!waiting.empty() && Connecting() < max_connecting_) {
      start(*waiting.front().first, *waiting.front().second);
      waiting.pop_front();
    }
  }
  for (const auto& w : waiting) {
    for (std::size_t i : w.second->indices) {
      unanswered(i, "not probed: no connection attempt started before the deadline (" +
                        std::to_string(max_connecting_) + " were in flight)");
    }
  }
  bool left = false;
  for (Slot* s : active_) {
    if (s->job != nullptr) {
      s->job->round = nullptr;  // it finishes in the background or during later calls
      left = true;
    }
  }
  // The thread steps what is left, or watches the connections kept (new ones among them).
  rewatch_ = watch_idle_.load();
  if (left || rewatch_) work_.notify_one();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (!round.done[i]) unanswered(i, "probe timed out (node hung?)");
  }
  return std::move(round.results);
}

}  // namespace pgherald::orchestrator
