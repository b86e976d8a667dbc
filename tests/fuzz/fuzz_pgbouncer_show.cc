// Fuzz target: what the pgbouncer sink reads from pgbouncer's admin console
// (pgbouncer/pgbouncer_sink.h): SHOW DATABASES rows judged by CheckPgbouncerRoute, and the
// database names it lists turned into RESUME statements (ResumeStatements). Any client can make
// pgbouncer list a database of any name by connecting to a `*` entry (STACK-NOTES).
// Input: rows separated by '\n', cells `key=value` separated by '\t' (the names of
// SHOW DATABASES' columns: name, host, port, paused, ...).
// Properties: nothing crashes; a matching row set yields no problem; every RESUME statement is a
// single statement for exactly one of the names it was given: the name plain ([a-z0-9_]+, the
// console's unquoted word) or double-quoted with quotes doubled (pgbouncer's admin.c WORD), so
// names like zz-x work and nothing can end the statement or start another.
#include <algorithm>
#include <map>
#include <set>

#include "pgbouncer/pgbouncer_sink.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;
namespace watch = pgherald::watch;

namespace {

// The name a RESUME/KILL statement addresses, or "" when the statement is not one safe statement.
std::string NameOf(const std::string& sql) {
  const std::string verb = "RESUME";
  if (sql == verb) return "*";  // the global RESUME
  if (sql.rfind(verb + " ", 0) != 0) return "";
  const std::string arg = sql.substr(verb.size() + 1);
  if (!arg.empty() &&
      arg.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos) {
    return arg;
  }
  if (arg.size() < 2 || arg.front() != '"' || arg.back() != '"') return "";
  std::string name;
  for (std::size_t i = 1; i + 1 < arg.size(); ++i) {
    if (arg[i] == '"') {
      if (i + 2 >= arg.size() || arg[i + 1] != '"') return "";
      ++i;
    }
    name += arg[i];
  }
  return name;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = AsText(data, size);
  std::vector<std::map<std::string, std::string>> rows;
  std::vector<std::string> listed;
  std::size_t start = 0;
  while (start < text.size() && rows.size() < 64) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    auto& row = rows.emplace_back();
    std::string_view line = text.substr(start, end - start);
    while (!line.empty()) {
      const std::size_t tab = std::min(line.find('\t'), line.size());
      const std::string_view cell = line.substr(0, tab);
      const std::size_t eq = cell.find('=');
      if (eq != std::string_view::npos) row[std::string(cell.substr(0, eq))] = cell.substr(eq + 1);
      line.remove_prefix(std::min(tab + 1, line.size()));
    }
    if (row.count("name") && row["name"] != "pgbouncer") listed.push_back(row["name"]);
    start = end + 1;
  }

  watch::PgbouncerSinkConfig config;
  config.databases_file = "/tmp/unused";
  config.entries["app"] = "host={{host}} port={{port}} dbname=app";
  watch::RouteTarget target;
  target.master.cluster = "main";
  target.master.node = "pg2";
  target.master.host = "10.0.0.2";
  target.master.port = 5433;
  target.master.epoch = 7;
  for (auto action : {watch::RouteTarget::Action::kRoute, watch::RouteTarget::Action::kBlock}) {
    target.action = action;
    const auto problems = watch::CheckPgbouncerRoute(config, target, rows);
    for (const auto& p : problems) FUZZ_CHECK(p.rfind("database ", 0) == 0, p);
  }
  // The same rows rewritten to match the target raise nothing.
  auto good = rows;
  for (auto& row : good) {
    row["host"] = "10.0.0.2";
    row["port"] = "5433";
    row["paused"] = "0";
  }
  target.action = watch::RouteTarget::Action::kRoute;
  FUZZ_CHECK(watch::CheckPgbouncerRoute(config, target, good).empty(), "matching rows flagged");

  const std::set<std::string> killed(listed.begin(), listed.end());
  for (const auto& databases : {std::vector<std::string>{}, std::vector<std::string>{"app"}}) {
    for (const auto& sql : watch::ResumeStatements(databases, listed, killed)) {
      const std::string name = NameOf(sql);
      FUZZ_CHECK(!name.empty(), "unsafe statement: " + sql);
      FUZZ_CHECK(name == "*" || killed.count(name) > 0 ||
                     std::find(databases.begin(), databases.end(), name) != databases.end(),
                 "statement for a name nobody gave: " + sql);
    }
  }
  return 0;
}
