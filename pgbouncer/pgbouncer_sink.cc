#include "pgbouncer/pgbouncer_sink.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <memory>

#include "common/atomic_file.h"
#include "common/bounded_file.h"
#include "common/template.h"
#include "common/model/untrusted.h"

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
    // KILL of an auto-database that pgbouncer dropped since SHOW DATABASES: nothing to cut.
    if (sql.rfind("KILL ", 0) == 0 && error.find("no such database") != std::string::npos) {
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
    // `sql` may carry a database name a client chose: shown with control characters escaped.
    return FailedPrecondition("pgbouncer " + params_.Describe() + ": \"" +
                              untrusted::SanitizeForDisplay(sql, 300) + "\" failed: " + e);
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

// A database's name as the statement addresses it, and the statement.
struct Statement {
  std::string db;  // "" for the global form
  std::string sql;
};

// The statements for `verb` over the configured databases ("PAUSE" alone means all).
StatusOr<std::vector<Statement>> Statements(Console& console, const std::string& verb,
                                            const std::vector<std::string>& databases) {
  std::vector<Statement> out;
  if (!databases.empty()) {
    for (const auto& db : databases) out.push_back({db, AdminCommand(verb, db)});
    return out;
  }
  if (verb != "KILL") return std::vector<Statement>{{"", verb}};
  auto names = ListedDatabases(console);
  if (!names.ok()) return names.status();
  for (const auto& db : *names) out.push_back({db, AdminCommand(verb, db)});
  return out;
}

}  // namespace

StatusOr<std::vector<std::pair<std::string, std::string>>> ParseConnstr(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  const auto fail = [&](std::size_t at, const std::string& what) {
    return InvalidArgument("connection string \"" + untrusted::SanitizeForDisplay(text, 300) +
                           "\", at byte " + std::to_string(at) + ": " + what);
  };
  std::size_t i = 0;
  while (true) {
    while (i < text.size() && is_space(text[i])) ++i;
    if (i == text.size()) break;
    const std::size_t key_start = i;
    while (i < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
      ++i;
    }
    if (i == key_start) return fail(i, "expected a keyword (letters, digits, _)");
    const std::string key(text.substr(key_start, i - key_start));
    if (i == text.size() || text[i] != '=') return fail(i, "expected '=' after " + key);
    ++i;
    std::string value;
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '\'') {
          if (i + 1 < text.size() && text[i + 1] == '\'') {
            value += '\'';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        value += text[i++];
      }
      if (!closed) return fail(i, "unterminated quoted value of " + key);
      if (i < text.size() && !is_space(text[i])) {
        return fail(i, "text after the quoted value of " + key);
      }
    } else {
      while (i < text.size() && !is_space(text[i])) {
        if (text[i] == '\'' || text[i] == '"' || text[i] == '=') {
          return fail(i, "quote or '=' inside the unquoted value of " + key + " (quote it: '...')");
        }
        value += text[i++];
      }
    }
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) return fail(i, "control character in the value of " + key);
    }
    for (const auto& [k, v] : out) {
      if (k == key) return fail(key_start, key + " given twice");
    }
    out.emplace_back(key, value);
  }
  return out;
}

std::string QuoteAdminIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string AdminCommand(const std::string& verb, const std::string& db) {
  return verb + " " + QuoteAdminIdentifier(db);
}

std::vector<std::string> ResumeStatements(const std::vector<std::string>& databases,
                                          const std::vector<std::string>& listed,
                                          const std::set<std::string>& killed) {
  std::vector<std::string> out;
  std::set<std::string> named;
  const auto add = [&](const std::string& db) {
    // pgbouncer lists no database without a name; `RESUME ""` would address nothing.
    if (db.empty()) return;
    if (named.insert(db).second) out.push_back(AdminCommand("RESUME", db));
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
  auto statements = Statements(console, "KILL", databases);
  if (!statements.ok()) return statements.status();
  for (const auto& st : *statements) {
    // Recorded before the KILL: a KILL whose answer is lost may still have paused the database.
    killed.insert(st.db);
    if (auto r = console.Exec(st.sql); !r.ok()) return r.status();
  }
  return Status::Ok();
}

// RESUME everything this sink paused or KILLed (ResumeStatements). Every statement is tried even
// when one fails (a database left paused holds its clients until query_wait_timeout); the first
// failure is returned. `killed` keeps only what could not be resumed.
Status Resume(Console& console, const std::vector<std::string>& databases,
              std::set<std::string>& killed) {
  std::vector<std::string> listed;
  Status first = Status::Ok();
  if (databases.empty()) {
    auto names = ListedDatabases(console);
    if (names.ok()) {
      listed = std::move(*names);
    } else {
      first = names.status();  // still RESUME globally and each killed name
    }
  }
  std::set<std::string> failed;
  for (const auto& sql : ResumeStatements(databases, listed, killed)) {
    if (auto r = console.Exec(sql); !r.ok()) {
      if (first.ok()) first = r.status();
      for (const auto& db : killed) {
        if (sql == AdminCommand("RESUME", db)) failed.insert(db);
      }
    }
  }
  killed = std::move(failed);
  return first;
}

// After a failure between the first PAUSE/KILL and the RESUME: releases what was paused or
// killed on a fresh console session (the current one may be stuck), so that no database stays
// paused while the worker backs off. Returns `failure`, with the cleanup's own error appended.
Status ReleaseAfterFailure(const PgbouncerSinkConfig& config, std::set<std::string>& killed,
                           Status failure) {
  auto fresh = Console::Open(config.admin);
  Status resumed = fresh.ok() ? Resume(*fresh, config.databases, killed) : fresh.status();
  if (resumed.ok()) return failure;
  return Status(failure.code(),
                failure.message() +
                    " (and releasing the paused databases failed: " + resumed.message() + ")");
}

// PAUSE each target database, bounded by pause_timeout; on a timeout KILL (kill_on_pause_timeout:
// the sessions that held it up are cut, the databases stay paused) or RESUME and fail. `console`
// may be replaced by a fresh session.
Status Pause(Console& console, const PgbouncerSinkConfig& config, std::set<std::string>& killed) {
  auto pauses = Statements(console, "PAUSE", config.databases);
  if (!pauses.ok()) return pauses.status();
  Status paused = Status::Ok();
  for (const auto& st : *pauses) {
    paused = console.ExecWithTimeout(st.sql, config.pause_timeout);
    if (!paused.ok()) break;
  }
  if (paused.ok()) return Status::Ok();
  // The console connection may be stuck in PAUSE: talk on a fresh one.
  auto fresh = Console::Open(config.admin);
  if (!fresh.ok()) return fresh.status();
  console = std::move(*fresh);
  if (!config.kill_on_pause_timeout || paused.code() != StatusCode::kTimeout) {
    (void)Resume(console, config.databases, killed);
    return paused;
  }
  // The abandoned PAUSE is still pending and makes KILL fail ("already suspended/paused"):
  // cancel it, then cut the sessions that held it up (KILL leaves the databases paused).
  if (Status s = Resume(console, config.databases, killed); !s.ok()) {
    return ReleaseAfterFailure(config, killed, s);
  }
  if (Status s = Kill(console, config.databases, killed); !s.ok()) {
    return ReleaseAfterFailure(config, killed, s);
  }
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

// host= and port= of a rendered connection string (ParseConnstr; "" when absent or unparsable).
std::pair<std::string, std::string> HostPort(const std::string& connstr) {
  std::pair<std::string, std::string> out;
  auto pairs = ParseConnstr(connstr);
  if (!pairs.ok()) return out;
  for (const auto& [key, value] : *pairs) {
    if (key == "host") out.first = value;
    if (key == "port") out.second = value;
  }
  return out;
}

}  // namespace

std::vector<std::string> CheckPgbouncerRoute(
    const PgbouncerSinkConfig& config, const RouteTarget& target,
    const std::vector<std::map<std::string, std::string>>& show_databases) {
  const bool block = target.action == RouteTarget::Action::kBlock;
  const TemplateVars vars = VarsOf(target);
  // Each entry's host and port ("" is not checked); under a block every entry points nowhere.
  std::map<std::string, std::pair<std::string, std::string>> want;
  for (const auto& [name, value] : config.entries) {
    if (block) {
      want[name] = {kPgbouncerBlockedHost, ""};
      continue;
    }
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
    if (!block && field("paused") == "1") {
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
    // A block keeps its databases paused: nothing to RESUME, the worker retries the whole step.
    if (attempt > 0 || target.action == RouteTarget::Action::kBlock) {
      return FailedPrecondition("pgbouncer " + config.admin.Describe() +
                                " does not show the new route after RELOAD/RESUME: " + text);
    }
    for (const auto& row : *rows) {
      const auto name = row.find("name");
      const auto paused = row.find("paused");
      if (name == row.end() || paused == row.end() || paused->second != "1") continue;
      if (name->second == "pgbouncer") continue;
      if (auto r = console.Exec(AdminCommand("RESUME", name->second)); !r.ok()) return r.status();
    }
  }
}

}  // namespace

TemplateRules PgbouncerTemplateRules() {
  return {{"cluster", NameValue()}, {"node", NameValue()},    {"host", HostValue()},
          {"port", PortValue()},    {"epoch", NumberValue()}, {"timeline", NumberValue()}};
}

StatusOr<std::string> RenderDatabasesFile(const PgbouncerSinkConfig& config,
                                          const RouteTarget& target) {
  const TemplateVars vars = VarsOf(target);
  const TemplateRules rules = PgbouncerTemplateRules();
  const auto& m = target.master;
  std::string errors;
  // The header names the master too: its values pass the same rules as the entries'.
  auto header = RenderTemplate(
      "; Written by pgherald watch (cluster {{cluster}}, master {{node}}, epoch {{epoch}}). Do not "
      "edit: it is replaced.\n",
      vars, "header", rules);
  if (!header.ok()) errors = header.status().message();
  std::string out = header.ok() ? *header : "";
  for (const auto& [name, value] : config.entries) {
    if (name != "*" && !untrusted::IsValidName(name)) {
      errors += (errors.empty() ? "" : "\n") + std::string("entries: database name \"") +
                untrusted::SanitizeForDisplay(name, 80) + "\" must be \"*\" or " +
                untrusted::kNameRule;
      continue;
    }
    auto rendered = RenderTemplate(value, vars, "entries." + name, rules);
    if (!rendered.ok()) {
      errors += (errors.empty() ? "" : "\n") + rendered.status().message();
      continue;
    }
    // What pgbouncer will parse: key=value words, each key once, values quoted '...' when they
    // need it. Anything else is refused here rather than misread there.
    if (auto pairs = ParseConnstr(*rendered); !pairs.ok()) {
      errors += (errors.empty() ? "" : "\n") + std::string("entries.") + name + ": " +
                pairs.status().message();
      continue;
    }
    out += name + " = " + *rendered + "\n";
  }
  if (!errors.empty()) return InvalidArgument("pgbouncer databases file: " + errors);
  // One header line and one line per entry, nothing else: a line more would be a database (or a
  // connection keyword) the master record added.
  if (static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n')) !=
      config.entries.size() + 1) {
    return Internal("pgbouncer databases file for master " +
                    untrusted::SanitizeForDisplay(m.node, 80) +
                    " does not have one line per entry; refused");
  }
  return out;
}

std::string RenderBlockedDatabasesFile(const PgbouncerSinkConfig& config) {
  std::string out =
      "; Written by pgherald watch: BLOCKED, no verified master. Every database points at a "
      "socket directory that cannot exist. Do not edit: it is replaced.\n";
  for (const auto& [name, value] : config.entries) {
    (void)value;
    out += name + " = host=" + kPgbouncerBlockedHost + "\n";
  }
  return out;
}

StatusOr<bool> PgbouncerSink::WriteDatabasesFile(const std::string& content) {
  // Our own file, but read as any path: a regular file under the cap, or "differs".
  auto on_disk = ReadBoundedFile(config_.databases_file, "databases_file", kMaxTemplateFileBytes,
                                 /*follow_symlinks=*/false);
  // The file holds a password when an entry sets one: a new file is then 0600 (an existing one
  // keeps its owner and mode, so pgbouncer's user keeps reading it).
  bool secret = false;
  for (const auto& [name, value] : config_.entries) {
    if (value.find("password") != std::string::npos) secret = true;
  }
  // A change not yet confirmed by pgbouncer's own view (an earlier attempt failed after the
  // rename) still needs the reload and the cut.
  const bool file_changed = !on_disk.ok() || on_disk->content != content || unconfirmed_;
  if (file_changed) {
    if (Status s = WriteFileAtomically(config_.databases_file, content, secret ? 0600 : 0644);
        !s.ok()) {
      return s;
    }
    unconfirmed_ = true;
  }
  return file_changed;
}

Status PgbouncerSink::Block(const RouteTarget& target) {
  const Applied want{target.action, RenderBlockedDatabasesFile(config_)};
  if (applied_ == want) return Status::Ok();
  // The file first: a pgbouncer that restarts from here on (1.18 can crash on KILL, and its
  // supervisor restarts it) reads no route, instead of the last master's address.
  if (auto changed = WriteDatabasesFile(want.content); !changed.ok()) return changed.status();
  auto console = Console::Open(config_.admin);
  if (!console.ok()) return console.status();
  // KILL cuts every session at once and leaves the databases paused on purpose (new clients wait
  // until the next route RESUMEs); RELOAD then points them nowhere.
  if (Status s = Kill(*console, config_.databases, killed_); !s.ok()) return s;
  if (auto r = console->Exec("RELOAD"); !r.ok()) return r.status();
  if (Status s = ConfirmRoute(*console, config_, target); !s.ok()) return s;
  unconfirmed_ = false;
  applied_ = want;
  return Status::Ok();
}

Status PgbouncerSink::Hold(const RouteTarget& target) {
  (void)target;
  // Nothing routed yet, a block in force (it KILLed and paused everything, pointing nowhere) or
  // a hold already in force: nothing to do.
  if (!applied_ || applied_->action == RouteTarget::Action::kBlock || held_) return Status::Ok();
  auto console = Console::Open(config_.admin);
  if (!console.ok()) return console.status();
  // PAUSE waits for the transactions in flight (on a dead master they fail; after pause_timeout
  // they are KILLed) and then parks every new statement until the RESUME of the next route.
  if (Status s = Pause(*console, config_, killed_); !s.ok()) return s;
  held_ = true;
  return Status::Ok();
}

Status PgbouncerSink::Apply(const RouteTarget& target) {
  // Untrusted input: an invalid field stops everything here (the file and pgbouncer untouched).
  if (Status s = CheckTarget(target); !s.ok()) return s;
  if (target.action == RouteTarget::Action::kBlock) {
    held_ = false;  // the block's KILL supersedes the hold's PAUSE (both end with a RESUME)
    return Block(target);
  }
  if (target.hold) return Hold(target);
  auto content = RenderDatabasesFile(config_, target);
  if (!content.ok()) return content.status();
  const Applied want{target.action, *content};
  if (applied_ == want && !held_) return Status::Ok();
  auto changed = WriteDatabasesFile(*content);
  if (!changed.ok()) return changed.status();
  const bool file_changed = *changed;
  auto console = Console::Open(config_.admin);
  if (!console.ok()) return console.status();
  // After a confirmed block nothing is left to cut or to wait for: the block KILLed every
  // database and every entry has pointed nowhere since, so no server connection exists. RELOAD and
  // RESUME suffice, and pgbouncer is spared a KILL (or PAUSE) of databases that are already killed
  // and paused, with clients queued on them: pgbouncer 1.18 can crash on KILL (docs/pgbouncer.md).
  // After a hold the same holds: PAUSE drained and closed every server connection, and the
  // clients waiting since must not be cut: RELOAD and RESUME them onto the new master.
  const bool after_block = applied_ && applied_->action == RouteTarget::Action::kBlock;
  if (after_block || held_ || (config_.kill_old && file_changed)) {
    const bool cut = !after_block && !held_;
    if (auto r = console->Exec("RELOAD"); !r.ok()) return r.status();
    if (Status s = cut ? Kill(*console, config_.databases, killed_) : Status::Ok(); !s.ok()) {
      return ReleaseAfterFailure(config_, killed_, s);
    }
    if (Status s = Resume(*console, config_.databases, killed_); !s.ok()) {
      return ReleaseAfterFailure(config_, killed_, s);
    }
    held_ = false;
    if (Status s = ConfirmRoute(*console, config_, target); !s.ok()) return s;
    unconfirmed_ = false;
    applied_ = want;
    return Status::Ok();
  }
  // PAUSE each target (bounded), then RELOAD and RESUME.
  if (Status s = Pause(*console, config_, killed_); !s.ok()) return s;
  if (auto r = console->Exec("RELOAD"); !r.ok()) {
    return ReleaseAfterFailure(config_, killed_, r.status());
  }
  if (Status s = Resume(*console, config_.databases, killed_); !s.ok()) {
    return ReleaseAfterFailure(config_, killed_, s);
  }
  if (Status s = ConfirmRoute(*console, config_, target); !s.ok()) return s;
  unconfirmed_ = false;
  applied_ = want;
  return Status::Ok();
}

}  // namespace pgherald::watch
