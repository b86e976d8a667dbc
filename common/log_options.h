// The logging options (the `logging:` section's values, parsed by config::ParseLogging in
// config.h). Apart from config.h so that logging.h, which every file includes, pulls in neither
// the YAML reader nor, through it, ZooKeeper and libpq.
#pragma once

#include <optional>
#include <string_view>

namespace pgherald::config {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };
// "trace", "debug", "info", "warn" (or "warning"), "error"; std::nullopt otherwise.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
const char* LogLevelName(LogLevel level);

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;     // level: trace|debug|info|warn|error
  LogFormat format = LogFormat::kText;  // format: text|json
};

}  // namespace pgherald::config
