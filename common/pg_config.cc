#include "common/pg_config.h"

#include "common/bounded_file.h"
#include "common/logging.h"

namespace pgherald::config {

PostgresConfig ParsePostgres(ConfigNode node) {
  PostgresConfig c;
  c.host = node.Required<std::string>("host");
  c.port = node.Optional<int>("port", c.port, {.min = 1, .max = 65535});
  c.user = node.Required<std::string>("user");
  c.dbname = node.Optional<std::string>("dbname", c.user);
  c.password = node.Optional<std::string>("password");
  c.password_file = node.Optional<std::string>("password_file");
  if (c.password && c.password_file) {
    node.Fail("password_file", "set either password or password_file, not both");
  }
  c.connect_timeout = node.Optional<Millis>("connect_timeout_ms", c.connect_timeout,
                                            {.min = Millis(100), .max = Millis(600000)});
  c.statement_timeout = node.Optional<Millis>("statement_timeout_ms", c.statement_timeout,
                                              {.min = Millis(0), .max = Millis(3600000)});
  c.application_name = node.Optional<std::string>("application_name", c.application_name);
  c.options = node.Optional<std::map<std::string, std::string>>("options", {});
  CheckPostgresOptions(node, c.options);
  return c;
}

void CheckPostgresOptions(ConfigNode& node, const std::map<std::string, std::string>& options) {
  for (const auto& [key, value] : options) {
    if (Status s = pg::CheckOptionKeyword(key); !s.ok()) node.Fail("options." + key, s.message());
  }
}

StatusOr<pg::PgParams> ToPgParams(const PostgresConfig& config) {
  pg::PgParams p;
  p.host = config.host;
  p.port = config.port;
  p.user = config.user;
  p.dbname = config.dbname;
  p.password = config.password;
  p.connect_timeout = config.connect_timeout;
  p.statement_timeout = config.statement_timeout;
  p.application_name = config.application_name;
  p.options = config.options;
  if (config.password_file) {
    const std::string& path = *config.password_file;
    auto file = ReadBoundedFile(path, "postgres.password_file", kMaxSecretFileBytes);
    if (!file.ok()) return file.status();
    if (file->group_or_world_readable) {
      static const log::Logger logger("config");
      logger.Warn("secret_file_readable_by_others",
                  {{"key", "postgres.password_file"}, {"path", path}, {"fix", "chmod 600 " + path}});
    }
    std::string password = file->content.substr(0, file->content.find_first_of("\r\n"));
    if (password.empty()) {
      return InvalidArgument("postgres.password_file " + path + ": the first line is empty");
    }
    p.password = std::move(password);
  }
  return p;
}

}  // namespace pgherald::config
