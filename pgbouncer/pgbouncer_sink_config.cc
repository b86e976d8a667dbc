// The parser of a `type: pgbouncer` sink's keys (registered by app/ with watch::SinkRegistry).
#include "common/model/untrusted.h"
#include "common/pg_config.h"
#include "pgbouncer/pgbouncer_sink.h"

namespace pgherald::watch {

PgbouncerSinkConfig ParsePgbouncerSinkConfig(config::ConfigNode& n) {
  PgbouncerSinkConfig c;
  c.name = n.Optional<std::string>("name", "pgbouncer");
  c.databases_file = n.Required<std::string>("databases_file");
  if (n.Has("entries")) {
    c.entries = n.Optional<std::map<std::string, std::string>>("entries", {});
    if (c.entries.empty()) n.Fail("entries", "empty: name at least one database");
    for (const auto& [db, value] : c.entries) {
      if (db != "*" && !untrusted::IsValidName(db)) {
        n.Fail("entries", "database name \"" + untrusted::SanitizeForDisplay(db, 80) +
                              "\" must be \"*\" or " + untrusted::kNameRule);
      }
      if (!untrusted::IsPrintableText(value)) {
        n.Fail("entries", "entry \"" + db + "\" holds a control character; write it on one line");
      }
    }
  }
  config::ConfigNode admin = n.Child("admin");
  if (!admin.present()) {
    n.Fail("admin",
           "missing: the admin console, e.g. {host: 127.0.0.1, port: 6432, user: pgbouncer}");
  } else {
    const bool has_db = admin.Has("dbname");
    config::PostgresConfig pc = config::ParsePostgres(admin);
    if (!has_db) pc.dbname = "pgbouncer";
    auto params = config::ToPgParams(pc);
    if (!params.ok()) {
      admin.Fail("password_file", params.status().message());
    } else {
      c.admin = *params;
    }
  }
  c.databases = n.Optional<std::vector<std::string>>("databases", {});
  c.pause_timeout = n.Optional<Millis>("pause_timeout_ms", Millis(5000),
                                       {.min = Millis(10), .max = Millis(600000)});
  c.kill_old = n.Optional<bool>("kill_old", false);
  c.kill_on_pause_timeout = n.Optional<bool>("kill_on_pause_timeout", true);
  auto rendered = RenderDatabasesFile(c, SampleRoute());
  if (!rendered.ok()) n.Fail("entries", rendered.status().message());
  return c;
}

}  // namespace pgherald::watch
