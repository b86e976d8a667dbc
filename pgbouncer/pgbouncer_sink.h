// The pgbouncer sink of `pgherald watch` (docs/pgbouncer.md).
//
// pgbouncer's config `%include`s a [databases] file that only this sink writes. On a new master:
//   1. the file is rendered (entries `name = <connstr template>`, default `* = host={{host}}
//      port={{port}}`) and replaced atomically (temp, fsync, rename);
//   2. through the admin console (libpq, simple query protocol: PQexec), either
//        kill_old: RELOAD, KILL db (cuts every client and server connection to the old target at
//                  once), RESUME db; or
//        default:  PAUSE db (waits for transactions, or in session pooling for clients, to
//                  finish; bounded by pause_timeout, after which KILL db when
//                  kill_on_pause_timeout, else RESUME and fail), RELOAD, RESUME db.
//      "db" is each of `databases`, or, when that list is empty, PAUSE/RESUME act on all databases
//      and KILL on each database SHOW DATABASES lists (but the console's own).
// block: the file is rewritten first with every entry pointing at kPgbouncerBlockedHost (a
// socket directory that cannot exist), then KILL db (pgbouncer keeps a killed database paused: new
// clients wait until RESUME, up to query_wait_timeout) and RELOAD. A pgbouncer restarted during
// the block (1.18 can crash on KILL; its supervisor restarts it) thus comes back routing nowhere,
// never to the last master. The next route rewrites the file, RELOADs and RESUMEs, with no KILL
// or PAUSE: the block left no session to cut.
// hold (a kRoute target with `hold`, policy on_unverified: hold): PAUSE db (as above, bounded by
// pause_timeout), the file untouched: transactions in flight finish (or fail on a dead master),
// new statements wait in pgbouncer. The next route (a new master, or the same one when the hold
// expired) rewrites the file if it changed, RELOADs and RESUMEs, with no KILL: clients waiting
// since the hold run on the new master and see no error.
//
// Untrusted input (docs/pgbouncer.md, "What reaches pgbouncer"): the master record's fields are
// checked first (CheckTarget) and each template variable again when rendered (a host is a host:
// no space, '=', quote or newline, so `host=127.0.0.1 user=postgres` or an extra line can never be
// written); the file has exactly one header line plus one line per entry. Database names sent to
// the admin console are always double-quoted ("" doubled inside): any client can register an
// auto-database such as `zz-x` through a `*` entry, and `KILL zz-x` is a syntax error there. After
// any failure between the first PAUSE/KILL and the RESUME, everything paused or KILLed is RESUMEd
// (on a fresh console session) before the error is returned.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clients/watch/sink.h"
#include "common/config.h"
#include "common/pg_connection.h"

namespace pgherald::watch {

struct PgbouncerSinkConfig {
  std::string name = "pgbouncer";
  std::string databases_file;  // required: the %include'd file
  std::map<std::string, std::string> entries = {{"*", "host={{host}} port={{port}}"}};
  pg::PgParams admin;                  // the admin console; dbname "pgbouncer"
  std::vector<std::string> databases;  // PAUSE/RESUME/KILL targets; empty: all
  Millis pause_timeout{5000};
  bool kill_old = false;
  bool kill_on_pause_timeout = true;
};

// Reads a `type: pgbouncer` sink's keys, recording every mistake in `node` (file:line and key):
// databases_file and admin required, entries named `*` or a name and one line each, and every
// entry must render with a sample route (pgbouncer_sink_config.cc).
PgbouncerSinkConfig ParsePgbouncerSinkConfig(config::ConfigNode& node);

// Where every database points while blocked: a Unix-socket directory under /dev/null (a
// character device), so no such socket can ever exist and pgbouncer opens no server connection.
inline constexpr char kPgbouncerBlockedHost[] = "/dev/null/pgherald-blocked";

// The [databases] file while blocked: a header, then `name = host=<kPgbouncerBlockedHost>` for
// each entry (nothing of the entries' templates: there is no master to render them with).
std::string RenderBlockedDatabasesFile(const PgbouncerSinkConfig& config);

// The [databases] file for `target`: a header comment, then one `name = value` line per entry
// with {{cluster}}, {{node}}, {{host}}, {{port}}, {{epoch}}, {{timeline}} rendered. A template
// error names the entry ("entries.*").
StatusOr<std::string> RenderDatabasesFile(const PgbouncerSinkConfig& config,
                                          const RouteTarget& target);

// What pgbouncer's SHOW DATABASES (`show_databases`, one column name -> value map per row) says
// against `target`: each database this sink writes (the named entries; any other database takes
// the `*` entry's address; only `databases` when that list is set) must point at the rendered
// host and port (under a block: kPgbouncerBlockedHost) and, unless the target blocks, not be
// paused. Empty when it matches; otherwise one
// line per problem ("database app points at 127.0.0.1:5433, not 127.0.0.1:5434").
std::vector<std::string> CheckPgbouncerRoute(
    const PgbouncerSinkConfig& config, const RouteTarget& target,
    const std::vector<std::map<std::string, std::string>>& show_databases);

// The RESUME statements that release what this sink PAUSEd or KILLed: with `databases` empty, a
// global RESUME (ends a PAUSE) and RESUME of each database SHOW DATABASES lists (`listed`), since
// a KILLed database stays paused on its own; else RESUME of each of `databases`; and in both cases
// RESUME of every name in `killed` not named yet. That last part matters: pgbouncer takes a KILLed
// auto-database (one made from the `*` entry) whose last pool is gone off SHOW DATABASES at once,
// still paused, and revives it, still paused, for the next client; only RESUME by name frees it.
std::vector<std::string> ResumeStatements(const std::vector<std::string>& databases,
                                          const std::vector<std::string>& listed,
                                          const std::set<std::string>& killed);

// A connection string as pgbouncer's [databases] parser reads it: `key=value` words separated by
// spaces, keys [A-Za-z0-9_]+, values unquoted (no space, quote or '=') or '...' ('' for a quote),
// each key once, no control characters. kInvalidArgument naming the byte and the problem.
StatusOr<std::vector<std::pair<std::string, std::string>>> ParseConnstr(std::string_view text);

// `name` as an admin-console identifier: always double-quoted, '"' doubled ("zz-x" -> "\"zz-x\"").
std::string QuoteAdminIdentifier(const std::string& name);
// "<verb> <quoted db>", e.g. AdminCommand("KILL", "zz-x") == "KILL \"zz-x\"".
std::string AdminCommand(const std::string& verb, const std::string& db);

class PgbouncerSink final : public Sink {
 public:
  explicit PgbouncerSink(PgbouncerSinkConfig config) : config_(std::move(config)) {}
  const std::string& name() const override { return config_.name; }
  Status Apply(const RouteTarget& target) override;

 private:
  struct Applied {
    RouteTarget::Action action;
    std::string content;
    bool operator==(const Applied&) const = default;
  };
  // Writes `content` unless the file already holds it and pgbouncer confirmed it; whether it was
  // (re)written, i.e. whether pgbouncer still has to RELOAD it.
  StatusOr<bool> WriteDatabasesFile(const std::string& content);
  Status Block(const RouteTarget& target);
  // A held route (RouteTarget::hold): PAUSE the databases, keep the file (docs/pgbouncer.md).
  Status Hold(const RouteTarget& target);

  const PgbouncerSinkConfig config_;
  std::optional<Applied> applied_;
  // The file was rewritten but pgbouncer has not yet been seen routing to it (ConfirmRoute).
  bool unconfirmed_ = false;
  // Databases KILLed (by a cut or a block) and not yet RESUMEd (ResumeStatements).
  std::set<std::string> killed_;
  // A hold PAUSEd the databases and no RESUME has followed yet.
  bool held_ = false;
};

}  // namespace pgherald::watch
