// Hostile payload text for the decoder tests: what a hand edit, a bug or an attacker may write
// into a znode or a datagram. Header-only, for tests only.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace pgherald::testing {

// `bytes` of '[' and nothing else (not JSON): a recursive reader overflows its stack on it.
inline std::string OpenBrackets(std::size_t bytes) { return std::string(bytes, '['); }

// Valid JSON of about `bytes` bytes: arrays nested bytes/2 deep around a 0.
inline std::string NestedArrays(std::size_t bytes) {
  const std::size_t depth = bytes / 2;
  return std::string(depth, '[') + "0" + std::string(depth, ']');
}

// `payload` (compact JSON text with a string field "key":"...") with that field's value replaced
// by `value_text` verbatim. `payload` must contain "\"key\":" followed by a string.
inline std::string ReplaceField(const std::string& payload, const std::string& key,
                                const std::string& value_text) {
  const std::string needle = "\"" + key + "\":";
  const std::size_t at = payload.find(needle);
  if (at == std::string::npos) return payload;
  std::size_t start = at + needle.size();
  std::size_t end = start;
  if (payload[start] == '"') {
    end = start + 1;
    while (end < payload.size() && payload[end] != '"') end += payload[end] == '\\' ? 2 : 1;
    ++end;
  } else {
    while (end < payload.size() && payload[end] != ',' && payload[end] != '}') ++end;
  }
  return payload.substr(0, start) + value_text + payload.substr(end);
}

// The hostile shapes every decoder must refuse without recursing: 1 MiB of '[', a valid
// 200 KB nested array in place of `key`, and a 60 KB one (under the size cap, over the depth cap).
inline std::vector<std::string> DeepPayloads(const std::string& good, const std::string& key) {
  return {OpenBrackets(1 << 20), NestedArrays(1 << 20),
          ReplaceField(good, key, NestedArrays(200 * 1024)),
          ReplaceField(good, key, NestedArrays(60 * 1024))};
}

// Names that must never be accepted as a node or cluster name.
inline std::vector<std::string> BadNames() {
  return {"db\n1", "db 1", "db/1", "..", "", std::string(65, 'a'), "db\x1b[31m"};
}

// Hosts that must never reach a config file or a command.
inline std::vector<std::string> BadHosts() {
  return {"db1;reboot", "db 1", "db1\nserver evil", "", "a..b", "-db", "db1'"};
}

}  // namespace pgherald::testing
