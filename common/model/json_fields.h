// Field-by-field reading of untrusted JSON payloads (znodes, notify datagrams, the repmgr rows the
// poller's query returns). Internal to pgherald: nlohmann::json is in the interface, so the client
// library uses it only from its .cc files and never installs this header.
//
// Contract, the same for every reader built on it:
//   - ParseObject() runs untrusted::CheckJsonShape (size and nesting depth, on the raw text,
//   without
//     recursion) *before* the parser sees the text, then requires a JSON object and, unless told
//     otherwise, "format": 1 (an integer: 4294967297 is refused, never narrowed to 1).
//   - every error is kInvalidArgument naming the payload, the field path ("repmgr_nodes[1].name")
//     and what was expected; the offending value is shown by Describe(): its type and, for a
//     scalar, a short sanitized preview. A JSON value is never serialized whole into a message (the
//     serializer recurses, and the message ends up on a terminal).
//   - integers are range-checked against the destination type; no silent narrowing anywhere.
//   - names (IsValidName), hosts (IsValidHost) and tokens (printable, bounded) are refused when
//     bad; free text (PostgreSQL errors, repmgr details) is sanitized and cut instead, so that one
//     odd message does not hide the facts around it.
//   - optional fields that are absent or null leave the output untouched (its default).
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "common/model/untrusted.h"

namespace pgherald::jsonf {

using nlohmann::json;

enum class Need { kRequired, kOptional };
enum class Format { kRequired, kNone };

// The longest token (a reason code, a role, repmgr's node type or event name) a payload may hold.
inline constexpr std::size_t kMaxTokenLength = 64;

// Checks the shape of `text` (CheckJsonShape with `max_bytes`), parses it and requires a JSON
// object; with Format::kRequired also "format": 1. `payload` names the payload in every message.
Status ParseObject(std::string_view text, const std::string& payload, json* out,
                   Format format = Format::kRequired,
                   std::size_t max_bytes = untrusted::kMaxPayloadBytes);

// The same for a JSON value of any type (the poller's repmgr columns are arrays).
Status ParseValue(std::string_view text, const std::string& payload, json* out,
                  std::size_t max_bytes = untrusted::kMaxPayloadBytes);

// The one way pgherald serializes a payload: compact JSON; a string that is not valid UTF-8 (a
// PostgreSQL error message can be anything) is written with U+FFFD in place of the bad bytes, so
// this never throws.
std::string Dump(const json& value);

// "<type>" or "<type> <preview>" for scalars (at most ~40 sanitized characters); never recurses.
std::string Describe(const json& v);

class FieldReader {
 public:
  FieldReader(const json& object, std::string payload, std::string prefix)
      : object_(object), payload_(std::move(payload)), prefix_(std::move(prefix)) {}

  Status Bool(const char* key, bool* out, Need need);
  Status String(const char* key, std::string* out, Need need);
  // A string of at most `max` bytes without control characters, refused otherwise.
  Status Token(const char* key, std::string* out, Need need, std::size_t max = kMaxTokenLength);
  // Free text: control characters written as \xNN, cut to `max` bytes. Refused only when not a
  // string.
  Status Text(const char* key, std::string* out, Need need,
              std::size_t max = untrusted::kMaxTextLength);
  // untrusted::IsValidName; with `allow_empty`, "" is accepted too (meaning "none").
  Status Name(const char* key, std::string* out, Need need, bool allow_empty = false);
  // untrusted::IsValidHost; with `allow_empty`, "" is accepted too.
  Status Host(const char* key, std::string* out, Need need, bool allow_empty = false);
  // "" or 1..20 decimal digits (a PostgreSQL system_identifier).
  Status SystemIdentifier(const char* key, std::string* out, Need need);

  // A JSON integer within [lo, hi]; floats (even 3.0) are refused.
  Status Int(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t* out, Need need);
  Status U64(const char* key, std::uint64_t* out, Need need);
  Status U32(const char* key, std::uint32_t* out, Need need);
  Status I32(const char* key, std::int32_t lo, std::int32_t hi, int* out, Need need);
  Status I64(const char* key, std::int64_t* out, Need need);
  Status OptI64(const char* key, std::optional<std::int64_t>* out);
  Status OptInt(const char* key, std::optional<int>* out);

  // An enum spelled as one of its names; `parse` maps a name to a value or nullopt.
  template <typename E, typename Parse>
  Status Enum(const char* key, E* out, Need need, Parse parse, const char* expected) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_string()) return WrongType(key, expected, *v);
    std::optional<E> value = parse(v->get<std::string>());
    if (!value) return WrongType(key, expected, *v);
    *out = *value;
    return Status::Ok();
  }

  // An array of objects; `each(reader)` decodes one element with its own path prefix. At most
  // `max_items` elements.
  template <typename Each>
  Status Array(const char* key, Need need, Each each, std::size_t max_items = 1024) {
    const json* v = nullptr;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_array()) return WrongType(key, "an array", *v);
    if (v->size() > max_items) {
      return WrongType(key, "an array of at most " + std::to_string(max_items) + " elements", *v);
    }
    for (std::size_t i = 0; i < v->size(); ++i) {
      const std::string path = prefix_ + key + "[" + std::to_string(i) + "]";
      const json& element = (*v)[i];
      if (!element.is_object()) {
        return InvalidArgument(payload_ + ": field '" + path + "': expected an object, got " +
                               Describe(element));
      }
      FieldReader reader(element, payload_, path + ".");
      PGH_RETURN_IF_ERROR(each(reader));
    }
    return Status::Ok();
  }

  // An array of tokens (see Token), at most `max_items`.
  Status Tokens(const char* key, std::vector<std::string>* out, Need need,
                std::size_t max_items = 1024);
  // An array of names (see Name), at most `max_items`.
  Status Names(const char* key, std::vector<std::string>* out, Need need,
               std::size_t max_items = 1024);

  // A nested object; `decode(reader)` reads it with the path prefix "key.".
  template <typename Decode>
  Status Object(const char* key, Need need, bool* present, Decode decode) {
    const json* v = nullptr;
    *present = false;
    PGH_RETURN_IF_ERROR(Find(key, need, &v));
    if (v == nullptr) return Status::Ok();
    if (!v->is_object()) return WrongType(key, "an object", *v);
    *present = true;
    FieldReader reader(*v, payload_, prefix_ + key + ".");
    return decode(reader);
  }

  // kInvalidArgument "<payload>: field '<prefix><key>'<problem>" (problem: ": expected ...").
  Status Error(const char* key, const std::string& problem) const;

  const json& object() const { return object_; }
  const std::string& payload() const { return payload_; }

 private:
  Status Find(const char* key, Need need, const json** out) const;
  Status WrongType(const char* key, const std::string& expected, const json& v) const;
  Status StringsOf(const char* key, std::vector<std::string>* out, Need need, std::size_t max_items,
                   bool names);

  const json& object_;
  std::string payload_;
  std::string prefix_;
};

}  // namespace pgherald::jsonf
