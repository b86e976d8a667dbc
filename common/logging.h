// Logging over spdlog: one line per event, `event key=value ...`, so a state transition is one
// grep-able info line:
//
//   log::Info("master_changed", {{"cluster", "main"}, {"node", "pg2"}, {"timeline", 3}});
//   2024-05-01T12:00:00.123Z info [pgherald] master_changed cluster=main node=pg2 timeline=3
//
// With format json the same call writes
//   {"ts":"2024-05-01T12:00:00.123Z","level":"info","component":"pgherald",
//    "event":"master_changed","cluster":"main","node":"pg2","timeline":3}
//
// Secrets: a field whose key names a secret (password, secret, token, auth) is written as "***",
// and every event and value passes through RedactSecrets(), so a conninfo or URI that slips into a
// value loses its password. Per-tick detail belongs at debug; check DebugEnabled() before building
// expensive fields.
//
// Thread-safety: logging is safe from any thread. Init() may run at any time (tests call it
// repeatedly); lines being written concurrently go to the old or the new sink.
#pragma once

#include <chrono>
#include <concepts>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "common/log_options.h"
#include "common/base/status.h"

namespace spdlog {
class logger;
namespace sinks {
class sink;
}  // namespace sinks
}  // namespace spdlog

namespace pgherald::log {

template <typename T>
concept IntegerValue = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char>;

// One key=value pair. Numbers and bools stay unquoted in JSON.
struct Field {
  enum class Kind { kString, kNumber, kBool };

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v == nullptr ? "" : v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), kind(Kind::kBool) {}
  template <IntegerValue T>
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)), kind(Kind::kNumber) {}
  Field(std::string_view k, double v);
  // "ok" or "kind: message".
  Field(std::string_view k, const Status& v) : key(k), value(v.ToString()) {}
  // A duration is written as whole milliseconds: name its key *_ms (elapsed_ms=150).
  template <typename Rep, typename Period>
  Field(std::string_view k, std::chrono::duration<Rep, Period> v)
      : key(k),
        value(std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(v).count())),
        kind(Kind::kNumber) {}

  std::string key;
  std::string value;
  Kind kind = Kind::kString;
};
using Fields = std::initializer_list<Field>;

// Replaces the default sink (stderr) and sets level and format for every component, existing and
// future. `sink` is for tests (e.g. an ostream_sink); null means stderr.
void Init(const config::LoggingConfig& config, std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

// "event k=v k2=\"a b\"": values that are empty or hold spaces, quotes, '=' or control characters
// are double-quoted with \" \\ \n \t escapes. Secret keys become ***; RedactSecrets() applies.
std::string FormatText(std::string_view event, Fields fields);
// "\"event\":\"...\",\"k\":\"v\"": the members of a JSON object, without braces.
std::string FormatJsonMembers(std::string_view event, Fields fields);

// Replaces the values of password=..., password='...', "password": "...", and the password of a
// URI (scheme://user:PASSWORD@host) with ***. Cheap when the text has no "pass" or "://" in it.
std::string RedactSecrets(std::string_view text);

// A named component ("poller", "orchestrator", ...), shown in every line. Cheap to copy; loggers of
// the same name share one spdlog logger.
class Logger {
 public:
  explicit Logger(std::string_view component);

  void Trace(std::string_view event, Fields fields = {}) const;
  void Debug(std::string_view event, Fields fields = {}) const;
  void Info(std::string_view event, Fields fields = {}) const;
  void Warn(std::string_view event, Fields fields = {}) const;
  void Error(std::string_view event, Fields fields = {}) const;
  bool DebugEnabled() const;

 private:
  void Log(config::LogLevel level, std::string_view event, Fields fields) const;
  std::shared_ptr<spdlog::logger> logger_;
};

// The default component, "pgherald".
void Trace(std::string_view event, Fields fields = {});
void Debug(std::string_view event, Fields fields = {});
void Info(std::string_view event, Fields fields = {});
void Warn(std::string_view event, Fields fields = {});
void Error(std::string_view event, Fields fields = {});
bool DebugEnabled();

}  // namespace pgherald::log
