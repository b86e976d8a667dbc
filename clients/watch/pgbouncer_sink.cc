#include "clients/watch/pgbouncer_sink.h"

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <memory>

#include "clients/watch/atomic_file.h"
#include "clients/watch/template.h"

namespace pgherald::watch {
namespace {

using PgConnPtr = std::unique_ptr<PGconn, decltype(&PQfinish)>;

// One admin-console session. Every statement goes through PQexec (the console speaks only the
// simple query protocol).
class Console {
 public:
  static StatusOr<Console> Open(const pg::PgParams& params) {
    pg::PgParams p = params;
    p.statement_timeout = Millis(0);  // pgbouncer rejects the `options` startup parameter
    p.application_name.clear();
    PgConnPtr conn(PQconnectdb(pg::BuildConninfo(p).c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      return Unavailable("pgbouncer admin console " + p.Describe() + ": " +
                         pg::ScrubSecrets(PQerrorMessage(conn.get()), p));
    }
    return Console(std::move(conn), p);
  }

  // Runs `sql`; "not paused" answers to RESUME are not errors. Returns the rows' first column.
  StatusOr<std::vector<std::string>> Exec(const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn_.get(), sql.c_str()), &PQclear);
    return Collect(sql, res.get());
  }

  // Runs `sql` but gives up after `timeout` (PAUSE can wait for clients indefinitely). On timeout
  // the connection is unusable.
  Status ExecWithTimeout(const std::string& sql, Millis timeout) {
    if (PQsendQuery(conn_.get(), sql.c_str()) != 1) return Fail(sql, PQerrorMessage(conn_.get()));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (PQconsumeInput(conn_.get()) != 1) return Fail(sql, PQerrorMessage(conn_.get()));
      if (!PQisBusy(conn_.get())) break;
      const auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return Status(StatusCode::kTimeout, "pgbouncer " + params_.Describe() + ": \"" + sql +
                                                "\" did not finish within " +
                                                std::to_string(timeout.count()) + " ms");
      }
      pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
      (void)::poll(&pfd, 1, static_cast<int>(left.count()));
    }
    Status status = Status::Ok();
    while (PGresult* r = PQgetResult(conn_.get())) {
      auto collected = Collect(sql, r);
      if (!collected.ok() && status.ok()) status = collected.status();
      PQclear(r);
    }
    return status;
  }

 private:
  Console(PgConnPtr conn, pg::PgParams params) : conn_(std::move(conn)), params_(std::move(params)) {}

  StatusOr<std::vector<std::string>> Collect(const std::string& sql, PGresult* res) {
    const ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) return std::vector<std::string>{};
    if (st == PGRES_TUPLES_OK) {
      std::vector<std::string> rows;
      for (int i = 0; i < PQntuples(res); ++i) rows.emplace_back(PQgetvalue(res, i, 0));
      return rows;
    }
    const std::string error = PQresultErrorMessage(res);
    // Idempotence: RESUME of what is not paused, PAUSE of what already is (a retry).
    if (sql.rfind("RESUME", 0) == 0 && error.find("not paused") != std::string::npos) {
      return std::vector<std::string>{};
    }
    if (sql.rfind("PAUSE", 0) == 0 && error.find("already suspended/paused") != std::string::npos) {
      return std::vector<std::string>{};
    }
    return Fail(sql, error);
  }

  Status Fail(const std::string& sql, const std::string& error) {
    std::string e = pg::ScrubSecrets(error, params_);
    while (!e.empty() && e.back() == '\n') e.pop_back();
    return FailedPrecondition("pgbouncer " + params_.Describe() + ": \"" + sql + "\" failed: " + e);
  }

  PgConnPtr conn_;
  pg::PgParams params_;
};

// The statements for `verb` over the configured databases ("PAUSE" alone means all).
StatusOr<std::vector<std::string>> Statements(Console& console, const std::string& verb,
                                              const std::vector<std::string>& databases) {
  std::vector<std::string> out;
  if (!databases.empty()) {
    for (const auto& db : databases) out.push_back(verb + " " + db);
    return out;
  }
  if (verb != "KILL" && verb != "RESUME") return std::vector<std::string>{verb};
  // A KILLed database stays paused on its own: a global RESUME does not release it, so RESUME
  // (like KILL) also goes to each database by name.
  if (verb == "RESUME") out.push_back("RESUME");
  auto names = console.Exec("SHOW DATABASES");
  if (!names.ok()) return names.status();
  for (const auto& db : *names) {
    if (db != "pgbouncer") out.push_back(verb + " " + db);
  }
  return out;
}

Status RunAll(Console& console, const std::string& verb, const std::vector<std::string>& dbs) {
  auto statements = Statements(console, verb, dbs);
  if (!statements.ok()) return statements.status();
  for (const auto& sql : *statements) {
    if (auto r = console.Exec(sql); !r.ok()) return r.status();
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::string> RenderDatabasesFile(const PgbouncerSinkConfig& config,
                                          const RouteTarget& target) {
  const auto& m = target.master;
  const TemplateVars vars = {{"cluster", m.cluster},
                             {"node", m.node},
                             {"host", m.host},
                             {"port", std::to_string(m.port)},
                             {"epoch", std::to_string(m.epoch)},
                             {"timeline", std::to_string(m.timeline)}};
  std::string out = "; Written by pgherald watch (cluster " + m.cluster + ", master " + m.node +
                    ", epoch " + std::to_string(m.epoch) + "). Do not edit: it is replaced.\n";
  std::string errors;
  for (const auto& [name, value] : config.entries) {
    auto rendered = RenderTemplate(value, vars, "entries." + name);
    if (!rendered.ok()) {
      errors += (errors.empty() ? "" : "\n") + rendered.status().message();
      continue;
    }
    out += name + " = " + *rendered + "\n";
  }
  if (!errors.empty()) return InvalidArgument("pgbouncer databases file: " + errors);
  return out;
}

Status PgbouncerSink::Apply(const RouteTarget& target) {
  if (target.action == RouteTarget::Action::kBlock) {
    const Applied want{target.action, ""};
    if (applied_ == want) return Status::Ok();
    auto console = Console::Open(config_.admin);
    if (!console.ok()) return console.status();
    if (Status s = RunAll(*console, "KILL", config_.databases); !s.ok()) return s;
    applied_ = want;
    return Status::Ok();
  }
  auto content = RenderDatabasesFile(config_, target);
  if (!content.ok()) return content.status();
  const Applied want{target.action, *content};
  if (applied_ == want) return Status::Ok();
  auto on_disk = ReadFile(config_.databases_file);
  const bool file_changed = !on_disk.ok() || *on_disk != *content;
  if (file_changed) {
    if (Status s = WriteFileAtomically(config_.databases_file, *content); !s.ok()) return s;
  }
  auto console = Console::Open(config_.admin);
  if (!console.ok()) return console.status();
  if (config_.kill_old && file_changed) {
    if (auto r = console->Exec("RELOAD"); !r.ok()) return r.status();
    if (Status s = RunAll(*console, "KILL", config_.databases); !s.ok()) return s;
    if (Status s = RunAll(*console, "RESUME", config_.databases); !s.ok()) return s;
    applied_ = want;
    return Status::Ok();
  }
  // PAUSE each target (bounded), then RELOAD and RESUME.
  auto pauses = Statements(*console, "PAUSE", config_.databases);
  if (!pauses.ok()) return pauses.status();
  Status paused = Status::Ok();
  for (const auto& sql : *pauses) {
    paused = console->ExecWithTimeout(sql, config_.pause_timeout);
    if (!paused.ok()) break;
  }
  if (!paused.ok()) {
    // The console connection may be stuck in PAUSE: talk on a fresh one.
    auto fresh = Console::Open(config_.admin);
    if (!fresh.ok()) return fresh.status();
    *console = std::move(*fresh);
    if (!config_.kill_on_pause_timeout || paused.code() != StatusCode::kTimeout) {
      (void)RunAll(*console, "RESUME", config_.databases);
      return paused;
    }
    // The abandoned PAUSE is still pending and makes KILL fail ("already suspended/paused"):
    // cancel it, then cut the sessions that held it up.
    if (Status s = RunAll(*console, "RESUME", config_.databases); !s.ok()) return s;
    if (Status s = RunAll(*console, "KILL", config_.databases); !s.ok()) return s;
  }
  if (auto r = console->Exec("RELOAD"); !r.ok()) return r.status();
  if (Status s = RunAll(*console, "RESUME", config_.databases); !s.ok()) return s;
  applied_ = want;
  return Status::Ok();
}

}  // namespace pgherald::watch
