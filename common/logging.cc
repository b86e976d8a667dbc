#include "common/logging.h"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/model/json_fields.h"

namespace pgherald::log {
namespace {

using config::LogFormat;
using config::LogLevel;

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ %l [%n] %v";
// Component names are identifiers chosen in code, so %n needs no JSON escaping.
constexpr const char* kJsonPattern =
    R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","component":"%n",%v})";

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::sinks::sink> MakeSink(std::shared_ptr<spdlog::sinks::sink> sink,
                                              LogFormat format) {
  if (sink == nullptr) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      format == LogFormat::kJson ? kJsonPattern : kTextPattern, spdlog::pattern_time_type::utc));
  return sink;
}

// Every component logger writes to the one dist_sink, whose child Init() swaps under the sink's
// own lock: that is what makes re-initialisation safe while other threads log.
struct State {
  std::mutex mu;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist =
      std::make_shared<spdlog::sinks::dist_sink_mt>();
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;  // guarded by mu
  spdlog::level::level_enum level = spdlog::level::info;                        // guarded by mu
  std::atomic<LogFormat> format{LogFormat::kText};

  State() { dist->set_sinks({MakeSink(nullptr, LogFormat::kText)}); }
};

// Never destroyed, so that logging from static destructors and detached threads stays valid.
State& GetState() {
  static State* state = new State();
  return *state;
}

bool IsSecretKey(std::string_view key) {
  std::string k(key);
  std::transform(k.begin(), k.end(), k.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"password", "passwd", "secret", "token"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return k == "auth" || k.ends_with("_auth");
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  return std::any_of(v.begin(), v.end(), [](char c) {
    return c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
}

void AppendValue(std::string* out, std::string_view v) {
  if (!NeedsQuotes(v)) {
    out->append(v);
    return;
  }
  out->push_back('"');
  for (char c : v) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append(fmt::format("\\x{:02x}", static_cast<unsigned char>(c)));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string JsonString(std::string_view s) {
  return jsonf::Dump(nlohmann::json(std::string(s)));
}

std::string SafeValue(const Field& field) {
  if (IsSecretKey(field.key)) return "***";
  return RedactSecrets(field.value);
}

// The end of a secret value starting at `begin`: a quoted value ends at its closing quote
// (backslash escapes honoured, as libpq does), a bare one at whitespace or a separator.
size_t ValueEnd(std::string_view text, size_t begin) {
  if (begin < text.size() && (text[begin] == '\'' || text[begin] == '"')) {
    char quote = text[begin];
    for (size_t i = begin + 1; i < text.size(); ++i) {
      if (text[i] == '\\') {
        ++i;
      } else if (text[i] == quote) {
        // A doubled quote (SQL style) is taken as an escaped one: over-redacting is harmless.
        if (i + 1 < text.size() && text[i + 1] == quote) {
          ++i;
          continue;
        }
        return i + 1;
      }
    }
    return text.size();
  }
  size_t i = begin;
  while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) && text[i] != '&' &&
         text[i] != ',' && text[i] != ';' && text[i] != '}') {
    ++i;
  }
  return i;
}

}  // namespace

Field::Field(std::string_view k, double v) : key(k), kind(Kind::kNumber) {
  if (std::isfinite(v)) {
    value = fmt::format("{}", v);
  } else {
    value = std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
    kind = Kind::kString;
  }
}

std::string RedactSecrets(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.find("pass") == std::string::npos && lower.find("://") == std::string::npos) {
    return std::string(text);
  }
  // Spans [begin, end) of secret values, found on the lower-cased copy (same offsets).
  std::vector<std::pair<size_t, size_t>> spans;
  for (const char* word : {"password", "passwd"}) {
    const size_t word_len = std::string_view(word).size();
    for (size_t at = lower.find(word); at != std::string::npos; at = lower.find(word, at + 1)) {
      size_t i = at + word_len;
      if (i < lower.size() && (lower[i] == '"' || lower[i] == '\'')) ++i;  // "password": ...
      while (i < lower.size() && lower[i] == ' ') ++i;
      if (i >= lower.size() || (lower[i] != '=' && lower[i] != ':')) continue;
      ++i;
      while (i < lower.size() && lower[i] == ' ') ++i;
      size_t end = ValueEnd(text, i);
      if (end > i) spans.emplace_back(i, end);
    }
  }
  for (size_t at = lower.find("://"); at != std::string::npos; at = lower.find("://", at + 3)) {
    size_t start = at + 3;
    size_t stop = start;
    while (stop < text.size() && text[stop] != '/' && text[stop] != '@' &&
           !std::isspace(static_cast<unsigned char>(text[stop]))) {
      ++stop;
    }
    if (stop >= text.size() || text[stop] != '@') continue;
    size_t colon = text.find(':', start);
    if (colon != std::string::npos && colon < stop) spans.emplace_back(colon + 1, stop);
  }
  if (spans.empty()) return std::string(text);
  std::sort(spans.begin(), spans.end());
  std::string out;
  size_t pos = 0;
  for (auto [begin, end] : spans) {
    if (begin < pos) begin = pos;
    if (begin >= end) continue;
    out.append(text.substr(pos, begin - pos));
    char quote = text[begin];
    if ((quote == '\'' || quote == '"') && end - begin >= 2 && text[end - 1] == quote) {
      out.push_back(quote);
      out.append("***");
      out.push_back(quote);
    } else {
      out.append("***");
    }
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

std::string FormatText(std::string_view event, Fields fields) {
  std::string out;
  AppendValue(&out, RedactSecrets(event));
  for (const Field& field : fields) {
    out.push_back(' ');
    out.append(field.key);
    out.push_back('=');
    AppendValue(&out, SafeValue(field));
  }
  return out;
}

std::string FormatJsonMembers(std::string_view event, Fields fields) {
  std::string out = "\"event\":" + JsonString(RedactSecrets(event));
  for (const Field& field : fields) {
    out += ",";
    out += JsonString(field.key);
    out += ":";
    bool secret = IsSecretKey(field.key);
    if (!secret && field.kind != Field::Kind::kString) {
      out += field.value;
    } else {
      out += JsonString(SafeValue(field));
    }
  }
  return out;
}

void Init(const config::LoggingConfig& config, std::shared_ptr<spdlog::sinks::sink> sink) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.format = config.format;
  state.dist->set_sinks({MakeSink(std::move(sink), config.format)});
  state.level = ToSpdlog(config.level);
  for (auto& [name, logger] : state.loggers) logger->set_level(state.level);
}

Logger::Logger(std::string_view component) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  auto it = state.loggers.find(component);
  if (it == state.loggers.end()) {
    auto logger = std::make_shared<spdlog::logger>(std::string(component), state.dist);
    logger->set_level(state.level);
    logger->flush_on(spdlog::level::warn);
    it = state.loggers.emplace(std::string(component), std::move(logger)).first;
  }
  logger_ = it->second;
}

void Logger::Log(LogLevel level, std::string_view event, Fields fields) const {
  spdlog::level::level_enum lvl = ToSpdlog(level);
  if (!logger_->should_log(lvl)) return;
  std::string message = GetState().format.load() == LogFormat::kJson
                            ? FormatJsonMembers(event, fields)
                            : FormatText(event, fields);
  logger_->log(lvl, spdlog::string_view_t(message.data(), message.size()));
}

void Logger::Trace(std::string_view event, Fields fields) const {
  Log(LogLevel::kTrace, event, fields);
}
void Logger::Debug(std::string_view event, Fields fields) const {
  Log(LogLevel::kDebug, event, fields);
}
void Logger::Info(std::string_view event, Fields fields) const {
  Log(LogLevel::kInfo, event, fields);
}
void Logger::Warn(std::string_view event, Fields fields) const {
  Log(LogLevel::kWarn, event, fields);
}
void Logger::Error(std::string_view event, Fields fields) const {
  Log(LogLevel::kError, event, fields);
}
bool Logger::DebugEnabled() const { return logger_->should_log(spdlog::level::debug); }

namespace {
const Logger& Default() {
  static const Logger* logger = new Logger("pgherald");
  return *logger;
}
}  // namespace

void Trace(std::string_view event, Fields fields) { Default().Trace(event, fields); }
void Debug(std::string_view event, Fields fields) { Default().Debug(event, fields); }
void Info(std::string_view event, Fields fields) { Default().Info(event, fields); }
void Warn(std::string_view event, Fields fields) { Default().Warn(event, fields); }
void Error(std::string_view event, Fields fields) { Default().Error(event, fields); }
bool DebugEnabled() { return Default().DebugEnabled(); }

}  // namespace pgherald::log
