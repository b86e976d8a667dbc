// The `postgres:` section (config.h's conventions) and the connection parameters it gives.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/base/clock.h"
#include "common/config.h"
#include "common/pg_connection.h"
#include "common/base/status.h"

namespace pgherald::config {

struct PostgresConfig {
  std::string host;                          // required
  int port = 5432;                           // 1..65535
  std::string user;                          // required
  std::string dbname;                        // default: the user name (as libpq does)
  std::optional<std::string> password;       // a secret; or:
  std::optional<std::string> password_file;  // a file whose first line is the password
  Millis connect_timeout{5000};              // connect_timeout_ms, 100..600000
  Millis statement_timeout{5000};            // statement_timeout_ms, 0 (none)..3600000
  std::string application_name = "pgherald";
  std::map<std::string, std::string> options;  // further libpq keywords, e.g. sslmode
};
PostgresConfig ParsePostgres(ConfigNode node);
// Records an error against `node`'s options.<key> for every keyword pg::CheckOptionKeyword refuses
// (pgherald's own, redirecting, or unknown to libpq): caught at load, not at every connect.
void CheckPostgresOptions(ConfigNode& node, const std::map<std::string, std::string>& options);
// Builds connection parameters, reading password_file (a regular file of at most
// kMaxSecretFileBytes; a warning names it when its group or others can read it). Its errors name
// the file, never its content.
StatusOr<pg::PgParams> ToPgParams(const PostgresConfig& config);

}  // namespace pgherald::config
