#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <type_traits>
#include <utility>

#include "common/bounded_file.h"
#include "common/logging.h"

namespace pgherald::config {
namespace internal {

// Read-key tracking for one map of the document, shared by every ConfigNode that wraps it.
struct MapState {
  explicit MapState(const YAML::Node& n) : node(n) {}
  const YAML::Node node;
  std::set<std::string, std::less<>> read;  // every key a getter asked for, present or not
  bool all_read = false;                    // Keys() was called
};

struct Error {
  int line;
  std::string text;
};

struct Document {
  std::string file;
  std::vector<Error> errors;
  std::map<std::string, std::unique_ptr<MapState>, std::less<>> maps;  // by dotted path
};

}  // namespace internal

namespace {

using internal::Document;


// Keys whose values must never be echoed back in an error.
bool IsSecretKey(std::string_view path) {
  std::string key(path.substr(
      path.find_last_of('.') == std::string_view::npos ? 0 : path.find_last_of('.') + 1));
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"password", "secret", "auth", "token"}) {
    if (key.find(word) != std::string::npos) return true;
  }
  return false;
}

std::string Got(const YAML::Node& value, std::string_view path) {
  if (value.IsMap()) return "a map";
  if (value.IsSequence()) return "a list";
  if (!value.IsDefined() || value.IsNull()) return "nothing";
  if (IsSecretKey(path)) return "a value not shown (secret)";
  return QuoteValue(value.Scalar());
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::optional<std::string> Suggest(std::string_view unknown,
                                   const std::set<std::string, std::less<>>& known) {
  std::optional<std::string> best;
  size_t best_distance = std::max<size_t>(2, unknown.size() / 4) + 1;
  for (const std::string& candidate : known) {
    size_t d = EditDistance(unknown, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

template <typename T>
std::string NumberText(const T& v) {
  if constexpr (std::is_same_v<T, Millis>) {
    return std::to_string(v.count());
  } else if constexpr (std::is_same_v<T, double>) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  } else {
    return std::to_string(v);
  }
}

template <typename T>
std::string RangeText(const std::optional<T>& min, const std::optional<T>& max) {
  if (min && max) return " between " + NumberText(*min) + " and " + NumberText(*max);
  if (min) return " of at least " + NumberText(*min);
  if (max) return " of at most " + NumberText(*max);
  return "";
}

template <typename T>
const char* Expected() {
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, Millis>) return "an integer number of milliseconds";
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
  if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) return "a map of strings";
}

template <typename T>
constexpr bool kIsNumeric = std::is_same_v<T, int> || std::is_same_v<T, int64_t> ||
                            std::is_same_v<T, double> || std::is_same_v<T, Millis>;

}  // namespace

std::string QuoteValue(std::string_view s) {
  constexpr size_t kMax = 60;
  std::string out = "\"";
  for (char c : s.substr(0, kMax)) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  if (s.size() > kMax) out += "...";
  return out + "\"";
}

// --- Loading -------------------------------------------------------------------------------------

StatusOr<ConfigNode> ConfigNode::LoadString(std::string_view yaml, std::string file_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    std::string where =
        e.mark.is_null() ? "" : " (column " + std::to_string(e.mark.column + 1) + ")";
    return InvalidArgument(file_name + ":" + std::to_string(line) + ": invalid YAML: " + e.msg +
                           where);
  }
  if (root.IsNull() || !root.IsDefined()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    return InvalidArgument(file_name + ":1: expected a map of sections at the top level, got " +
                           Got(root, ""));
  }
  auto doc = std::make_shared<Document>();
  doc->file = std::move(file_name);
  return ConfigNode(std::move(doc), root, "", 1);
}

StatusOr<ConfigNode> ConfigNode::LoadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return NotFound("cannot read config file " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
  bool failed = std::ferror(f) != 0;
  int error = errno;
  std::fclose(f);
  if (failed) return NotFound("cannot read config file " + path + ": " + std::strerror(error));
  return LoadString(text, path);
}

ConfigNode::ConfigNode(std::shared_ptr<Document> doc, const YAML::Node& node, std::string path,
                       int line)
    : doc_(std::move(doc)),
      node_(std::make_shared<const YAML::Node>(node)),
      path_(std::move(path)),
      line_(line) {
  line_ = LineOf(*node_);
  if (node_->IsMap()) {
    auto it = doc_->maps.find(path_);
    if (it == doc_->maps.end()) {
      it = doc_->maps.emplace(path_, std::make_unique<internal::MapState>(*node_)).first;
    }
    map_ = it->second.get();
  }
}

// --- Small accessors -----------------------------------------------------------------------------

bool ConfigNode::present() const { return node_->IsDefined() && !node_->IsNull(); }

const std::string& ConfigNode::file() const { return doc_->file; }

int ConfigNode::LineOf(const YAML::Node& node) const {
  if (!node.IsDefined()) return line_;
  YAML::Mark mark = node.Mark();
  return mark.is_null() ? line_ : mark.line + 1;
}

std::string ConfigNode::KeyPath(std::string_view key) const {
  if (key.empty()) return path_;
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

void ConfigNode::Record(int line, const std::string& path, std::string_view message) {
  std::string text = doc_->file + ":" + std::to_string(line) + ": ";
  if (!path.empty()) text += path + ": ";
  text += message;
  doc_->errors.push_back({line, std::move(text)});
}

void ConfigNode::Fail(std::string_view key, std::string_view message) {
  int line = line_;
  if (!key.empty()) Lookup(key, &line);
  Record(line, KeyPath(key), message);
}

std::shared_ptr<const YAML::Node> ConfigNode::Lookup(std::string_view key, int* line) {
  *line = line_;
  if (!present()) return nullptr;
  if (map_ == nullptr) {
    Record(line_, path_, "expected a map, got " + Got(*node_, path_));
    return nullptr;
  }
  map_->read.emplace(key);
  try {
    for (const auto& entry : *node_) {
      if (!entry.first.IsScalar() || entry.first.Scalar() != key) continue;
      *line = LineOf(entry.first);
      if (!entry.second.IsDefined() || entry.second.IsNull()) return nullptr;
      return std::make_shared<const YAML::Node>(entry.second);
    }
  } catch (const YAML::Exception& e) {
    Record(line_, KeyPath(key), std::string("cannot read: ") + e.msg);
  }
  return nullptr;
}

bool ConfigNode::Has(std::string_view key) const {
  if (map_ == nullptr) return false;
  try {
    for (const auto& entry : *node_) {
      if (entry.first.IsScalar() && entry.first.Scalar() == key) {
        return entry.second.IsDefined() && !entry.second.IsNull();
      }
    }
  } catch (const YAML::Exception&) {
  }
  return false;
}

// --- Conversions ---------------------------------------------------------------------------------

template <typename T>
bool ConfigNode::Convert(const YAML::Node& value, const std::string& path, const Range<T>& range,
                         T* out) {
  const int line = LineOf(value);
  auto fail = [&](const std::string& expected) {
    Record(line, path, "expected " + expected + ", got " + Got(value, path));
    return false;
  };
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!value.IsScalar()) return fail(Expected<T>());
      *out = value.Scalar();
      return true;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!value.IsScalar()) return fail(Expected<T>());
      std::string s = value.Scalar();
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (s != "true" && s != "false") return fail(Expected<T>());
      *out = s == "true";
      return true;
    } else if constexpr (kIsNumeric<T>) {
      std::string wanted = std::string(Expected<T>()) + RangeText(range.min, range.max);
      if (!value.IsScalar()) return fail(wanted);
      T v{};
      std::optional<T> type_min, type_max;
      if constexpr (std::is_same_v<T, double>) {
        auto parsed = ParseDouble(value.Scalar());
        if (!parsed) return fail(wanted);
        v = *parsed;
      } else {
        auto parsed = ParseInt(value.Scalar());
        if (!parsed) return fail(wanted);
        if constexpr (std::is_same_v<T, Millis>) {
          v = Millis(*parsed);
          type_min = Millis(0);
          if (*parsed < 0) {
            return fail(wanted + (range.min ? "" : RangeText(type_min, std::optional<T>())));
          }
        } else if constexpr (std::is_same_v<T, int>) {
          type_min = std::numeric_limits<int>::min();
          type_max = std::numeric_limits<int>::max();
          if (*parsed < *type_min || *parsed > *type_max) {
            return fail(std::string(Expected<T>()) + RangeText(range.min ? range.min : type_min,
                                                               range.max ? range.max : type_max));
          }
          v = static_cast<int>(*parsed);
        } else {
          v = *parsed;
        }
      }
      if ((range.min && v < *range.min) || (range.max && v > *range.max)) return fail(wanted);
      *out = v;
      return true;
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (!value.IsSequence()) return fail(Expected<T>());
      T list;
      bool ok = true;
      for (size_t i = 0; i < value.size(); ++i) {
        const YAML::Node element = value[i];
        if (!element.IsScalar()) {
          Record(LineOf(element), path + "[" + std::to_string(i) + "]",
                 "expected a string, got " + Got(element, path));
          ok = false;
          continue;
        }
        list.push_back(element.Scalar());
      }
      if (ok) *out = std::move(list);
      return ok;
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      if (!value.IsMap()) return fail(Expected<T>());
      T map;
      bool ok = true;
      for (const auto& entry : value) {
        std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
        if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
          Record(LineOf(entry.first), path + "." + key,
                 "expected a string, got " + Got(entry.second, path + "." + key));
          ok = false;
          continue;
        }
        map[key] = entry.second.Scalar();
      }
      if (ok) *out = std::move(map);
      return ok;
    } else {
      static_assert(!sizeof(T), "unsupported config value type");
    }
  } catch (const YAML::Exception& e) {
    Record(line, path, std::string("cannot read: ") + e.msg);
    return false;
  }
}

template <typename T>
T ConfigNode::Required(std::string_view key, const Range<T>& range) {
  int line;
  auto value = Lookup(key, &line);
  T out{};
  if (value == nullptr) {
    std::string expected = Expected<T>();
    if constexpr (kIsNumeric<T>) expected += RangeText(range.min, range.max);
    Record(line, KeyPath(key), "missing required value (expected " + expected + ")");
    return out;
  }
  Convert(*value, KeyPath(key), range, &out);
  return out;
}

template <typename T>
T ConfigNode::Optional(std::string_view key, T default_value, const Range<T>& range) {
  int line;
  auto value = Lookup(key, &line);
  if (value == nullptr) return default_value;
  T out{};
  if (!Convert(*value, KeyPath(key), range, &out)) return default_value;
  return out;
}

template <typename T>
std::optional<T> ConfigNode::Optional(std::string_view key) {
  int line;
  auto value = Lookup(key, &line);
  if (value == nullptr) return std::nullopt;
  T out{};
  if (!Convert(*value, KeyPath(key), Range<T>{}, &out)) return std::nullopt;
  return out;
}

#define PGHERALD_CONFIG_INSTANTIATE(T)                                      \
  template T ConfigNode::Required<T>(std::string_view, const Range<T>&);    \
  template T ConfigNode::Optional<T>(std::string_view, T, const Range<T>&); \
  template std::optional<T> ConfigNode::Optional<T>(std::string_view);

PGHERALD_CONFIG_INSTANTIATE(std::string)
PGHERALD_CONFIG_INSTANTIATE(bool)
PGHERALD_CONFIG_INSTANTIATE(int)
PGHERALD_CONFIG_INSTANTIATE(int64_t)
PGHERALD_CONFIG_INSTANTIATE(double)
PGHERALD_CONFIG_INSTANTIATE(Millis)
PGHERALD_CONFIG_INSTANTIATE(std::vector<std::string>)
using StringMap = std::map<std::string, std::string>;
PGHERALD_CONFIG_INSTANTIATE(StringMap)
#undef PGHERALD_CONFIG_INSTANTIATE

std::string ConfigNode::OptionalOneOf(std::string_view key, std::string default_value,
                                      const std::vector<std::string>& choices) {
  int line;
  auto value = Lookup(key, &line);
  if (value == nullptr) return default_value;
  std::string s;
  if (!Convert(*value, KeyPath(key), Range<std::string>{}, &s)) return default_value;
  if (std::find(choices.begin(), choices.end(), s) != choices.end()) return s;
  std::string expected = "one of ";
  for (size_t i = 0; i < choices.size(); ++i) expected += (i ? ", " : "") + choices[i];
  Record(LineOf(*value), KeyPath(key), "expected " + expected + ", got " + QuoteValue(s));
  return default_value;
}

// --- Structure -----------------------------------------------------------------------------------

ConfigNode ConfigNode::Child(std::string_view key) {
  int line;
  auto value = Lookup(key, &line);
  if (value == nullptr) return ConfigNode(doc_, YAML::Node(), KeyPath(key), line);
  if (!value->IsMap()) {
    Record(LineOf(*value), KeyPath(key), "expected a map, got " + Got(*value, KeyPath(key)));
    return ConfigNode(doc_, YAML::Node(), KeyPath(key), line);
  }
  return ConfigNode(doc_, *value, KeyPath(key), line);
}

std::vector<ConfigNode> ConfigNode::List(std::string_view key) {
  int line;
  auto value = Lookup(key, &line);
  std::vector<ConfigNode> out;
  if (value == nullptr) return out;
  if (!value->IsSequence()) {
    Record(LineOf(*value), KeyPath(key), "expected a list, got " + Got(*value, KeyPath(key)));
    return out;
  }
  try {
    for (size_t i = 0; i < value->size(); ++i) {
      out.push_back(ConfigNode(doc_, (*value)[i], KeyPath(key) + "[" + std::to_string(i) + "]",
                               LineOf(*value)));
    }
  } catch (const YAML::Exception& e) {
    Record(LineOf(*value), KeyPath(key), std::string("cannot read: ") + e.msg);
  }
  return out;
}

std::vector<std::string> ConfigNode::Keys() {
  std::vector<std::string> keys;
  if (map_ == nullptr) return keys;
  map_->all_read = true;
  try {
    for (const auto& entry : *node_) {
      if (entry.first.IsScalar()) keys.push_back(entry.first.Scalar());
    }
  } catch (const YAML::Exception& e) {
    Record(line_, path_, std::string("cannot read: ") + e.msg);
  }
  return keys;
}

Status ConfigNode::Finish() const {
  std::vector<internal::Error> errors = doc_->errors;
  auto add = [&](int line, const std::string& path, const std::string& message) {
    errors.push_back(
        {line, doc_->file + ":" + std::to_string(line) + ": " + path + ": " + message});
  };
  for (const auto& [map_path, state] : doc_->maps) {
    std::set<std::string, std::less<>> seen;
    try {
      for (const auto& entry : state->node) {
        int line = LineOf(entry.first);
        if (!entry.first.IsScalar()) {
          add(line, map_path.empty() ? "(top level)" : map_path, "keys must be plain strings");
          continue;
        }
        const std::string& key = entry.first.Scalar();
        std::string key_path = map_path.empty() ? key : map_path + "." + key;
        if (!seen.insert(key).second) {
          add(line, key_path, "duplicate key");
          continue;
        }
        if (state->all_read || state->read.count(key) > 0) continue;
        std::string message = "unknown key";
        if (auto suggestion = Suggest(key, state->read)) {
          message += " (did you mean \"" + *suggestion + "\"?)";
        }
        add(line, key_path, message);
      }
    } catch (const YAML::Exception& e) {
      add(LineOf(state->node), map_path, std::string("cannot read: ") + e.msg);
    }
  }
  if (errors.empty()) return Status::Ok();
  std::stable_sort(errors.begin(), errors.end(),
                   [](const auto& a, const auto& b) { return a.line < b.line; });
  std::string message;
  std::set<std::string> printed;
  for (const auto& error : errors) {
    if (!printed.insert(error.text).second) continue;
    if (!message.empty()) message += "\n";
    message += error.text;
  }
  return InvalidArgument(std::move(message));
}

// --- Shared sections -----------------------------------------------------------------------------

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "trace") return LogLevel::kTrace;
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return std::nullopt;
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

LoggingConfig ParseLogging(ConfigNode node) {
  LoggingConfig c;
  std::string level =
      node.OptionalOneOf("level", "info", {"trace", "debug", "info", "warn", "warning", "error"});
  c.level = ParseLogLevel(level).value_or(LogLevel::kInfo);
  std::string format = node.OptionalOneOf("format", "text", {"text", "json"});
  c.format = format == "json" ? LogFormat::kJson : LogFormat::kText;
  return c;
}

}  // namespace pgherald::config
