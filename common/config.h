// YAML configuration: a thin layer over yaml-cpp that reads a file into structs with documented
// defaults and rejects bad input precisely. Every error names the file, the line, the dotted key
// and what was expected:
//
//   cfg.yaml:7: zookeeper.session_timeout_ms: expected an integer number of milliseconds, got "x"
//
// Usage (each daemon's main; later sections follow the same pattern):
//
//   auto root = config::ConfigNode::LoadFile(path);       // malformed YAML -> Status, file:line
//   if (!root.ok()) return root.status();
//   config::ZooKeeperConfig zk = config::ParseZooKeeper(root->Child("zookeeper"));  // zk_config.h
//   int64_t ticks = root->Child("poller").Optional<int64_t>("ticks", 10, {.min = 1});
//   if (Status s = root->Finish(); !s.ok()) return s;  // every error so far, plus unknown keys
//
// Errors are sticky: a getter that fails records the error in the document and returns the default
// (or a value-initialized T), so a parser reads every key and the user sees every mistake at once.
// Values read before Finish() returned ok must not be trusted. yaml-cpp exceptions never leave this
// module. Conventions: durations are integer milliseconds in keys named *_ms; keys are snake_case.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/clock.h"
#include "common/log_options.h"
#include "common/base/status.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace pgherald::config {

// Inclusive bounds for numeric values (int, int64_t, double, Millis); ignored for other types.
template <typename T>
struct Range {
  std::optional<T> min;
  std::optional<T> max;
};

namespace internal {
struct Document;
struct MapState;
}  // namespace internal

// A node of a loaded document: a map, a list element, or an absent key (every read then yields
// its default). Cheap to copy; copies share the document's error list and read-key tracking.
//
// Value types T: std::string (any scalar), bool (true/false), int, int64_t, double, Millis (a
// non-negative integer), std::vector<std::string>, std::map<std::string, std::string>.
// An explicit null (`key:` or `key: ~`) counts as absent.
class ConfigNode {
 public:
  // Reads and parses `path`. kNotFound when it cannot be read, kInvalidArgument with
  // "path:line: invalid YAML: ..." when it does not parse or its top level is not a map.
  // An empty file is an empty map.
  static StatusOr<ConfigNode> LoadFile(const std::string& path);
  // The same for text already in memory; `file_name` is what messages call it.
  static StatusOr<ConfigNode> LoadString(std::string_view yaml, std::string file_name);

  // A missing value records "missing required value (expected ...)" at this node's line.
  template <typename T>
  T Required(std::string_view key, const Range<T>& range = {});
  template <typename T>
  T Optional(std::string_view key, T default_value, const Range<T>& range = {});
  // Absent -> std::nullopt (nothing recorded); present but malformed -> error, std::nullopt.
  template <typename T>
  std::optional<T> Optional(std::string_view key);
  // A string that must be one of `choices` (e.g. log levels); absent -> default_value.
  std::string OptionalOneOf(std::string_view key, std::string default_value,
                            const std::vector<std::string>& choices);

  // A nested map. Absent -> an absent node; present but not a map -> error and an absent node.
  ConfigNode Child(std::string_view key);
  // The elements of a list (paths "key[0]", ...). Absent -> empty; not a list -> error, empty.
  std::vector<ConfigNode> List(std::string_view key);
  // The keys of this map, in file order, all marked as read: for maps keyed by name (clusters,
  // sinks), which the caller then visits with Child().
  std::vector<std::string> Keys();
  // Present and not null. Does not mark the key as read.
  bool Has(std::string_view key) const;

  // Records a caller's own validation error (cross-field checks) against `key`, e.g.
  // node.Fail("password_file", "set either password or password_file, not both").
  // An empty key refers to this node itself.
  void Fail(std::string_view key, std::string_view message);

  // Everything recorded so far in the whole document plus one error per key no getter asked for
  // (with "did you mean" for a near miss) and per duplicate key, sorted by line, one per line of
  // the message. kInvalidArgument; ok when there is nothing to report. Call once after all parsing.
  Status Finish() const;

  // The key exists and is not null.
  bool present() const;
  // The dotted path of this node ("" for the root, "watch.sinks[1]").
  const std::string& path() const { return path_; }
  const std::string& file() const;
  // 1-based line of this node, or of the nearest ancestor that is present.
  int line() const { return line_; }

 private:
  ConfigNode(std::shared_ptr<internal::Document> doc, const YAML::Node& node, std::string path,
             int line);
  // The value of `key`, or nullptr when absent or null; marks the key as read and sets *line to
  // the key's line (this node's when absent). Never throws.
  std::shared_ptr<const YAML::Node> Lookup(std::string_view key, int* line);
  std::string KeyPath(std::string_view key) const;
  int LineOf(const YAML::Node& node) const;
  void Record(int line, const std::string& path, std::string_view message);
  template <typename T>
  bool Convert(const YAML::Node& value, const std::string& path, const Range<T>& range, T* out);

  std::shared_ptr<internal::Document> doc_;
  // Held by pointer: assigning one YAML::Node to another rewrites the document, not the handle.
  std::shared_ptr<const YAML::Node> node_;
  std::string path_;
  int line_ = 1;
  internal::MapState* map_ = nullptr;  // owned by doc_; null unless node_ is a map
};

// --- Sections shared by every daemon -------------------------------------------------------------
// Each Parse* reads one section (pass root.Child("name")), records errors in the document and
// returns the struct with defaults filled in; the caller's root.Finish() reports them.

// The logging section (LoggingConfig: common/log_options.h).
LoggingConfig ParseLogging(ConfigNode node);

// How an error message shows a configured value: quoted, escaped, cut to 60 characters.
std::string QuoteValue(std::string_view value);

// The ZooKeeper and PostgreSQL sections: common/zk_config.h, common/pg_config.h.

}  // namespace pgherald::config
