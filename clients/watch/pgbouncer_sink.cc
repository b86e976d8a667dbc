#include "clients/watch/pgbouncer_sink.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
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

  // Runs `sql` (a SHOW) and returns every row as column name -> value.
  StatusOr<std::vector<std::map<std::string, std::string>>> Rows(const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn_.get(), sql.c_str()), &PQclear);
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
      return Fail(sql, PQresultErrorMessage(res.get()));
    }
    std::vector<std::map<std::string, std::string>> rows;
    for (int i = 0; i < PQntuples(res.get()); ++i) {
      auto& row = rows.emplace_back();
      for (int j = 0; j < PQnfields(res.get()); ++j) {
        row[PQfname(res.get(), j)] = PQgetvalue(res.get(), i, j);
      }
    }
    return rows;
  }

  // Runs `sql` but gives up after `timeout` (PAUSE can wait for clients indefinitely). On timeout
  // the connection is unusable.
  Status ExecWithTimeout(const std::string& sql, Millis timeout) {
    if (PQsendQuery(conn_.get(), sql.c_str()) != 1) return Fail(sql, PQerrorMessage(conn_.get()));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (PQconsumeInput(conn_.get()) != 1) return Fail(sql, PQerrorMessage(conn_.get()));
      if (!PQisBusy(conn_.get())) break;
      const auto left =
          std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
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
  Console(PgConnPtr conn, pg::PgParams params)
      : conn_(std::move(conn)), params_(std::move(params)) {}

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
    // RESUME by name of a killed database that pgbouncer no longer knows (it restarted, or dropped
    // the auto-database): nothing is paused there.
    if (sql.rfind("RESUME ", 0) == 0 && error.find("no such database") != std::string::npos) {
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

// The names SHOW DATABASES lists, but the console's own.
StatusOr<std::vector<std::string>> ListedDatabases(Console& console) {
  auto names = console.Exec("SHOW DATABASES");
  if (!names.ok()) return names.status();
  std::vector<std::string> out;
  for (const auto& db : *names) {
    if (db != "pgbouncer") out.push_back(db);
  }
  return out;
}

// The PAUSE statements for the configured databases ("PAUSE" alone means all).
std::vector<std::string> PauseStatements(const std::vector<std::string>& databases) {
  if (databases.empty()) return {"PAUSE"};
  std::vector<std::string> out;
  for (const auto& db : databases) out.push_back("PAUSE " + AdminConsoleName(db));
  return out;
}

}  // namespace

std::string AdminConsoleName(const std::string& name) {
  if (!name.empty() &&
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos) {
    return name;
  }
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::vector<std::string> ResumeStatements(const std::vector<std::string>& databases,
                                          const std::vector<std::string>& listed,
                                          const std::set<std::string>& killed) {
  std::vector<std::string> out;
  std::set<std::string> named;
  const auto add = [&](const std::string& db) {
    if (!db.empty() && named.insert(db).second) out.push_back("RESUME " + AdminConsoleName(db));
  };
  if (databases.empty()) {
    out.push_back("RESUME");
    for (const auto& db : listed) add(db);
  } else {
    for (const auto& db : databases) add(db);
  }
  for (const auto& db : killed) add(db);
  return out;
}

namespace {

// KILL each target database; every name KILLed goes into `killed` until a RESUME releases it.
Status Kill(Console& console, const std::vector<std::string>& databases,
            std::set<std::string>& killed) {
  std::vector<std::string> names = databases;
  if (names.empty()) {
    auto listed = ListedDatabases(console);
    if (!listed.ok()) return listed.status();
    names = std::move(*listed);
  }
  for (const auto& db : names) {
    if (db.empty()) continue;
    if (auto r = console.Exec("KILL " + AdminConsoleName(db)); !r.ok()) return r.status();
    killed.insert(db);
  }
  return Status::Ok();
}

// RESUME everything this sink paused or KILLed (ResumeStatements); `killed` is emptied once
// every statement went through.
Status Resume(Console& console, const std::vector<std::string>& databases,
              std::set<std::string>& killed) {
  std::vector<std::string> listed;
  if (databases.empty()) {
    auto names = ListedDatabases(console);
    if (!names.ok()) return names.status();
    listed = std::move(*names);
  }
  for (const auto& sql : ResumeStatements(databases, listed, killed)) {
    if (auto r = console.Exec(sql); !r.ok()) return r.status();
  }
  killed.clear();
  return Status::Ok();
}

// The variables an entry's template may use.
TemplateVars VarsOf(const RouteTarget& target) {
  const auto& m = target.master;
  return {{"cluster", m.cluster},
          {"node", m.node},
          {"host", m.host},
          {"port", std::to_string(m.port)},
          {"epoch", std::to_string(m.epoch)},
          {"timeline", std::to_string(m.timeline)}};
}

// host= and port= of a rendered connection string (`key=value` words; quoting is not used by the
// entries this sink renders from its templates).
std::pair<std::string, std::string> HostPort(const std::string& connstr) {
  std::pair<std::string, std::string> out;
  std::size_t i = 0;
  while (i < connstr.size()) {
    while (i < connstr.size() && connstr[i] == ' ') ++i;
    const std::size_t end = std::min(connstr.find(' ', i), connstr.size());
    const std::string word = connstr.substr(i, end - i);
    if (word.rfind("host=", 0) == 0) out.first = word.substr(5);
    if (word.rfind("port=", 0) == 0) out.second = word.substr(5);
    i = end;
  }
  return out;
}

}  // namespace

std::vector<std::string> CheckPgbouncerRoute(
    const PgbouncerSinkConfig& config, const RouteTarget& target,
    const std::vector<std::map<std::string, std::string>>& show_databases) {
  const TemplateVars vars = VarsOf(target);
  std::map<std::string, std::pair<std::string, std::string>> want;
  for (const auto& [name, value] : config.entries) {
    auto rendered = RenderTemplate(value, vars, "entries." + name);
    if (rendered.ok()) want[name] = HostPort(*rendered);
  }
  const auto wildcard = want.find("*");
  std::vector<std::string> problems;
  for (const auto& row : show_databases) {
    const auto field = [&](const char* key) {
      const auto it = row.find(key);
      return it == row.end() ? std::string() : it->second;
    };
    const std::string name = field("name");
    if (name.empty() || name == "pgbouncer") continue;
    if (!config.databases.empty() && std::find(config.databases.begin(), config.databases.end(),
                                               name) == config.databases.end()) {
      continue;
    }
    auto it = want.find(name);
    if (it == want.end()) it = wildcard;
    if (it == want.end()) continue;  // not a database this sink writes
    const auto& [host, port] = it->second;
    if ((!host.empty() && field("host") != host) || (!port.empty() && field("port") != port)) {
      problems.push_back("database " + name + " points at " + field("host") + ":" + field("port") +
                         ", not " + host + ":" + port);
    }
    if (target.action != RouteTarget::Action::kBlock && field("paused") == "1") {
      problems.push_back("database " + name + " is still paused");
    }
  }
  return problems;
}

namespace {

// pgbouncer's own view must show the target: every database this sink writes points at the new
// address and none is left paused. A database still paused gets one more RESUME; anything else is
// an error that names what pgbouncer shows, and the worker retries the whole step (reload and cut).
Status ConfirmRoute(Console& console, const PgbouncerSinkConfig& config,
                    const RouteTarget& target) {
  for (int attempt = 0;; ++attempt) {
    auto rows = console.Rows("SHOW DATABASES");
    if (!rows.ok()) return rows.status();
    const auto problems = CheckPgbouncerRoute(config, target, *rows);
    if (problems.empty()) return Status::Ok();
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
    if (attempt > 0) {
      return FailedPrecondition("pgbouncer " + config.admin.Describe() +
                                " does not show the new route after RELOAD/RESUME: " + text);
    }
    for (const auto& row : *rows) {
      const auto name = row.find("name");
      const auto paused = row.find("paused");
      if (name == row.end() || paused == row.end() || paused->second != "1") continue;
      if (name->second == "pgbouncer") continue;
      if (name->second.empty()) continue;
      if (auto r = console.Exec("RESUME " + AdminConsoleName(name->second)); !r.ok()) {
        return r.status();
      }
    }
  }
}

}  // namespace

StatusOr<std::string> RenderDatabasesFile(const PgbouncerSinkConfig& config,
                                          const RouteTarget& target) {
  const TemplateVars vars = VarsOf(target);
  const auto& m = target.master;
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
    if (Status s = Kill(*console, config_.databases, killed_); !s.ok()) return s;
    applied_ = want;
    return Status::Ok();
  }
  auto content = RenderDatabasesFile(config_, target);
  if (!content.ok()) return content.status();
  const Applied want{target.action, *content};
  if (applied_ == want) return Status::Ok();
  auto on_disk = ReadFile(config_.databases_file);
  // A change not yet confirmed by pgbouncer's own view (an earlier attempt failed after the
  // rename) still needs the reload and the cut.
  const bool file_changed = !on_disk.ok() || *on_disk != *content || unconfirmed_;
  if (file_changed) {
    if (Status s = WriteFileAtomically(config_.databases_file, *content); !s.ok()) return s;
    unconfirmed_ = true;
  }
  auto console = Console::Open(config_.admin);
  if (!console.ok()) return console.status();
  if (config_.kill_old && file_changed) {
    if (auto r = console->Exec("RELOAD"); !r.ok()) return r.status();
    if (Status s = Kill(*console, config_.databases, killed_); !s.ok()) return s;
    if (Status s = Resume(*console, config_.databases, killed_); !s.ok()) return s;
    if (Status s = ConfirmRoute(*console, config_, target); !s.ok()) return s;
    unconfirmed_ = false;
    applied_ = want;
    return Status::Ok();
  }
  // PAUSE each target (bounded), then RELOAD and RESUME.
  Status paused = Status::Ok();
  for (const auto& sql : PauseStatements(config_.databases)) {
    paused = console->ExecWithTimeout(sql, config_.pause_timeout);
    if (!paused.ok()) break;
  }
  if (!paused.ok()) {
    // The console connection may be stuck in PAUSE: talk on a fresh one.
    auto fresh = Console::Open(config_.admin);
    if (!fresh.ok()) return fresh.status();
    *console = std::move(*fresh);
    if (!config_.kill_on_pause_timeout || paused.code() != StatusCode::kTimeout) {
      (void)Resume(*console, config_.databases, killed_);
      return paused;
    }
    // The abandoned PAUSE is still pending and makes KILL fail ("already suspended/paused"):
    // cancel it, then cut the sessions that held it up.
    if (Status s = Resume(*console, config_.databases, killed_); !s.ok()) return s;
    if (Status s = Kill(*console, config_.databases, killed_); !s.ok()) return s;
  }
  if (auto r = console->Exec("RELOAD"); !r.ok()) return r.status();
  if (Status s = Resume(*console, config_.databases, killed_); !s.ok()) return s;
  if (Status s = ConfirmRoute(*console, config_, target); !s.ok()) return s;
  unconfirmed_ = false;
  applied_ = want;
  return Status::Ok();
}

}  // namespace pgherald::watch
