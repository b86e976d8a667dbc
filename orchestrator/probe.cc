#include "orchestrator/probe.h"

#include <condition_variable>
#include <thread>
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

model::Probe PgNodeProber::ProbeOnce(const NodeTarget& target,
                                     std::unique_ptr<pg::PgConnection>* conn,
                                     const WriteCheckContext* write_check, const Clock& clock) {
  model::Probe p;
  p.node = target.name;
  p.host = target.params.host;
  p.port = target.params.port;
  const MonoTime start = clock.Now();
  p.taken_at_ms = model::ToWallMillis(clock.WallNow());
  auto fail = [&](const Status& s) {
    if (ConnectionLevel(s.code()) || (*conn != nullptr && !(*conn)->ok())) conn->reset();
    p.latency_us = MicrosSince(clock, start);
    return p;
  };
  if (*conn == nullptr || !(*conn)->ok()) {
    auto connected = pg::PgConnection::Connect(target.params);
    if (!connected.ok()) {
      p.reachable = false;
      p.error = connected.status().ToString();
      return fail(connected.status());
    }
    *conn = std::move(*connected);
  }
  auto result = (*conn)->Exec(kProbeSql);
  if (!result.ok()) {
    p.reachable = false;
    p.error = result.status().ToString();
    return fail(result.status());
  }
  p.reachable = true;
  if (Status s = ReadProbeRow(*result, &p); !s.ok()) {
    p.reachable = false;
    p.error = "probe result: " + s.ToString();
    return fail(s);
  }
  if (write_check != nullptr) {
    if (p.in_recovery) {
      p.write_check = model::WriteCheck::kFailed;
      p.write_error = "in recovery";
    } else {
      auto cluster = SqlLiteral(write_check->cluster);
      auto node = SqlLiteral(target.name);
      auto id = SqlLiteral(write_check->orchestrator_id);
      if (!cluster.ok() || !node.ok() || !id.ok()) {
        p.write_check = model::WriteCheck::kFailed;
        p.write_error = "cluster, node or orchestrator id holds a NUL byte";
      } else {
        // One transaction, one round trip: the row commits only where writes are accepted, and
        // pg_is_in_recovery() is read in the same session and transaction.
        const std::string sql =
            "BEGIN;"
            "INSERT INTO pgherald.heartbeat (cluster, node, orchestrator, beat_at) VALUES (" +
            *cluster + ", " + *node + ", " + *id + ", now()) ON CONFLICT (cluster, node, orchestrator)"
            " DO UPDATE SET beat_at = now(), beats = pgherald.heartbeat.beats + 1;" +
            "SELECT r.in_recovery, NULL::bigint AS timeline, NULL::text AS lsn FROM "
            "(SELECT pg_is_in_recovery() AS in_recovery) r;"
            "COMMIT";
        auto batch = (*conn)->ExecBatch(sql);
        if (!batch.ok() && batch.status().code() == StatusCode::kNotFound) {
          // The schema or table is missing: create them, then try once more.
          auto setup = (*conn)->ExecBatch(kSetupSql);
          if (!setup.ok()) {
            p.write_check = model::WriteCheck::kFailed;
            p.write_error = "cannot create schema pgherald and table pgherald.heartbeat (" +
                            setup.status().ToString() +
                            "); fix: GRANT CREATE ON DATABASE " + target.params.dbname + " TO " +
                            target.params.user + ", or create them as a superuser";
            p.latency_us = MicrosSince(clock, start);
            if (ConnectionLevel(setup.status().code())) conn->reset();
            return p;
          }
          batch = (*conn)->ExecBatch(sql);
        }
        if (!batch.ok()) {
          p.write_check = model::WriteCheck::kFailed;
          p.write_error = batch.status().ToString();
          if (ConnectionLevel(batch.status().code())) conn->reset();
        } else {
          auto row = (*batch)[2].row(0).GetBool("in_recovery");
          if (!row.ok() || *row) {
            p.write_check = model::WriteCheck::kFailed;
            p.write_error = row.ok() ? "pg_is_in_recovery() true in the write check's session"
                                     : row.status().ToString();
          } else if ((*batch)[1].affected_rows() != 1) {
            p.write_check = model::WriteCheck::kFailed;
            p.write_error = "heartbeat upsert touched " +
                            std::to_string((*batch)[1].affected_rows()) + " rows";
          } else {
            p.write_check = model::WriteCheck::kPassed;
          }
        }
      }
    }
  }
  p.latency_us = MicrosSince(clock, start);
  return p;
}

// --- Parallel execution ---------------------------------------------------------------------------

struct PgNodeProber::Slot {
  std::mutex mu;  // guards conn and busy
  std::unique_ptr<pg::PgConnection> conn;
  bool busy = false;
};

namespace {

// The results of one ProbeAll/WriteCheckAll call, shared with its workers (which may outlive it).
struct Round {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<model::Probe> results;
  std::vector<bool> done;
  std::size_t remaining = 0;
};

// Workers still running, across rounds, so the destructor can wait for them.
struct Inflight {
  std::mutex mu;
  std::condition_variable cv;
  int count = 0;
};
Inflight& GlobalInflight() {
  static Inflight* inflight = new Inflight;  // never destroyed: detached workers may outlive main
  return *inflight;
}

}  // namespace

PgNodeProber::PgNodeProber(const Clock* clock) : clock_(clock) {}

PgNodeProber::~PgNodeProber() {
  Inflight& inflight = GlobalInflight();
  std::unique_lock lock(inflight.mu);
  inflight.cv.wait(lock, [&] { return inflight.count == 0; });
}

std::vector<model::Probe> PgNodeProber::ProbeAll(const std::vector<NodeTarget>& targets,
                                                 MonoTime deadline) {
  return RunAll(targets, nullptr, deadline);
}

std::vector<model::Probe> PgNodeProber::WriteCheckAll(const std::vector<NodeTarget>& targets,
                                                      const WriteCheckContext& context,
                                                      MonoTime deadline) {
  return RunAll(targets, &context, deadline);
}

namespace {
std::string SlotKey(const NodeTarget& t) {
  return t.name + "@" + t.params.host + ":" + std::to_string(t.params.port);
}
}  // namespace

void PgNodeProber::Forget(const std::vector<NodeTarget>& targets) {
  std::vector<std::shared_ptr<Slot>> dropped;  // closed outside mu_
  {
    std::lock_guard lock(mu_);
    for (const NodeTarget& t : targets) {
      auto it = slots_.find(SlotKey(t));
      if (it == slots_.end()) continue;
      dropped.push_back(std::move(it->second));
      slots_.erase(it);
    }
  }
  for (const auto& slot : dropped) {
    std::lock_guard lock(slot->mu);
    slot->conn.reset();  // a busy worker puts its connection back into this orphan: freed with it
  }
}

std::size_t PgNodeProber::kept() const {
  std::lock_guard lock(mu_);
  return slots_.size();
}

std::vector<model::Probe> PgNodeProber::RunAll(const std::vector<NodeTarget>& targets,
                                               const WriteCheckContext* context,
                                               MonoTime deadline) {
  auto round = std::make_shared<Round>();
  round->results.resize(targets.size());
  round->done.assign(targets.size(), false);
  const std::int64_t now_ms = model::ToWallMillis(clock_->WallNow());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const NodeTarget& t = targets[i];
    model::Probe& placeholder = round->results[i];
    placeholder.node = t.name;
    placeholder.host = t.params.host;
    placeholder.port = t.params.port;
    placeholder.taken_at_ms = now_ms;
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard lock(mu_);
      auto& s = slots_[SlotKey(t)];
      if (s == nullptr) s = std::make_shared<Slot>();
      slot = s;
    }
    {
      std::lock_guard lock(slot->mu);
      if (slot->busy) {
        placeholder.error = "previous probe still running (node hung?)";
        round->done[i] = true;
        continue;
      }
      slot->busy = true;
    }
    ++round->remaining;
    {
      std::lock_guard lock(GlobalInflight().mu);
      ++GlobalInflight().count;
    }
    std::optional<WriteCheckContext> ctx;
    if (context != nullptr) ctx = *context;
    const Clock* clock = clock_;
    std::thread([round, slot, i, target = t, ctx, clock] {
      std::unique_ptr<pg::PgConnection> conn;
      {
        std::lock_guard lock(slot->mu);
        conn = std::move(slot->conn);
      }
      model::Probe p = ProbeOnce(target, &conn, ctx ? &*ctx : nullptr, *clock);
      {
        std::lock_guard lock(slot->mu);
        slot->conn = std::move(conn);
        slot->busy = false;
      }
      {
        std::lock_guard lock(round->mu);
        round->results[i] = std::move(p);
        round->done[i] = true;
        --round->remaining;
      }
      round->cv.notify_all();
      Inflight& inflight = GlobalInflight();
      {
        std::lock_guard lock(inflight.mu);
        --inflight.count;
      }
      inflight.cv.notify_all();
    }).detach();
  }
  std::unique_lock lock(round->mu);
  // The deadline is on the injected clock; wait in real time for what is left of it.
  const auto left = deadline - clock_->Now();
  round->cv.wait_for(lock, left, [&] { return round->remaining == 0; });
  std::vector<model::Probe> out = round->results;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!round->done[i]) out[i].error = "probe timed out (node hung?)";
    if (!round->done[i] || !out[i].error.empty()) {
      if (!round->done[i]) out[i].reachable = false;
    }
  }
  return out;
}

}  // namespace pgherald::orchestrator
