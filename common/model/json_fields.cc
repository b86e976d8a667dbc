#include "common/model/json_fields.h"

namespace pgherald::jsonf {
namespace {

constexpr std::size_t kPreview = 40;

bool IsDecimal(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Status ParseAny(std::string_view text, const std::string& payload, json* out,
                std::size_t max_bytes) {
  PGH_RETURN_IF_ERROR(untrusted::CheckJsonShape(text, payload, max_bytes));
  // The JSON library throws on syntax errors; the exception is kept inside this adapter
  // (STYLE.md) because its message carries the position.
  try {
    *out = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return InvalidArgument(payload +
                           ": not valid JSON: " + untrusted::SanitizeForDisplay(e.what(), 200));
  }
  return Status::Ok();
}

}  // namespace

Status ParseValue(std::string_view text, const std::string& payload, json* out,
                  std::size_t max_bytes) {
  return ParseAny(text, payload, out, max_bytes);
}

Status ParseObject(std::string_view text, const std::string& payload, json* out, Format format,
                   std::size_t max_bytes) {
  PGH_RETURN_IF_ERROR(ParseAny(text, payload, out, max_bytes));
  if (!out->is_object()) {
    return InvalidArgument(payload + ": expected a JSON object, got " + Describe(*out));
  }
  if (format == Format::kNone) return Status::Ok();
  FieldReader reader(*out, payload, "");
  std::int64_t number = 0;
  PGH_RETURN_IF_ERROR(reader.Int("format", std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max(), &number,
                                 Need::kRequired));
  if (number != 1) {
    return InvalidArgument(payload + ": field 'format': expected 1, got " + std::to_string(number) +
                           " (written by a newer pgherald?)");
  }
  return Status::Ok();
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Describe(const json& v) {
  std::string shown;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    shown = "\"" + untrusted::SanitizeForDisplay(s, kPreview) + "\"";
  } else if (v.is_primitive()) {
    // Numbers, booleans and null: dump() does not recurse into a scalar.
    shown = untrusted::SanitizeForDisplay(v.dump(), kPreview);
  } else {
    shown = "of " + std::to_string(v.size()) + (v.is_array() ? " elements" : " fields");
  }
  return std::string(v.type_name()) + " " + shown;
}

Status FieldReader::Find(const char* key, Need need, const json** out) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) {
    if (need == Need::kRequired) return Error(key, " is missing (required)");
    *out = nullptr;
    return Status::Ok();
  }
  *out = &*it;
  return Status::Ok();
}

Status FieldReader::Error(const char* key, const std::string& problem) const {
  return InvalidArgument(payload_ + ": field '" + prefix_ + key + "'" + problem);
}

Status FieldReader::WrongType(const char* key, const std::string& expected, const json& v) const {
  return InvalidArgument(payload_ + ": field '" + prefix_ + key + "': expected " + expected +
                         ", got " + Describe(v));
}

Status FieldReader::Bool(const char* key, bool* out, Need need) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) return WrongType(key, "a boolean", *v);
  *out = v->get<bool>();
  return Status::Ok();
}

Status FieldReader::String(const char* key, std::string* out, Need need) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) return WrongType(key, "a string", *v);
  *out = v->get<std::string>();
  return Status::Ok();
}

Status FieldReader::Token(const char* key, std::string* out, Need need, std::size_t max) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  const std::string expected =
      "a string of at most " + std::to_string(max) + " bytes without control characters";
  if (!v->is_string()) return WrongType(key, expected, *v);
  const std::string& s = v->get_ref<const std::string&>();
  if (!untrusted::IsPrintableText(s, max)) return WrongType(key, expected, *v);
  *out = s;
  return Status::Ok();
}

Status FieldReader::Text(const char* key, std::string* out, Need need, std::size_t max) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) return WrongType(key, "a string", *v);
  const std::string& s = v->get_ref<const std::string&>();
  *out = untrusted::IsPrintableText(s, max) ? s : untrusted::SanitizeForDisplay(s, max);
  return Status::Ok();
}

Status FieldReader::Name(const char* key, std::string* out, Need need, bool allow_empty) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  const std::string expected = std::string("a name: ") + untrusted::kNameRule;
  if (!v->is_string()) return WrongType(key, expected, *v);
  const std::string& s = v->get_ref<const std::string&>();
  if (!(allow_empty && s.empty()) && !untrusted::IsValidName(s)) {
    return WrongType(key, expected, *v);
  }
  *out = s;
  return Status::Ok();
}

Status FieldReader::Host(const char* key, std::string* out, Need need, bool allow_empty) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  const std::string expected = std::string("a host: ") + untrusted::kHostRule;
  if (!v->is_string()) return WrongType(key, expected, *v);
  const std::string& s = v->get_ref<const std::string&>();
  if (!(allow_empty && s.empty()) && !untrusted::IsValidHost(s)) {
    return WrongType(key, expected, *v);
  }
  *out = s;
  return Status::Ok();
}

Status FieldReader::SystemIdentifier(const char* key, std::string* out, Need need) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  const char* expected = "a system identifier: \"\" or 1-20 decimal digits";
  if (!v->is_string()) return WrongType(key, expected, *v);
  const std::string& s = v->get_ref<const std::string&>();
  if (s.size() > 20 || !IsDecimal(s)) return WrongType(key, expected, *v);
  *out = s;
  return Status::Ok();
}

Status FieldReader::Int(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t* out,
                        Need need) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  const std::string expected =
      "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    if (hi < 0 || u > static_cast<std::uint64_t>(hi) || static_cast<std::int64_t>(u) < lo) {
      return WrongType(key, expected, *v);
    }
    *out = static_cast<std::int64_t>(u);
  } else if (v->is_number_integer()) {
    const auto i = v->get<std::int64_t>();
    if (i < lo || i > hi) return WrongType(key, expected, *v);
    *out = i;
  } else {
    return WrongType(key, expected, *v);
  }
  return Status::Ok();
}

Status FieldReader::U64(const char* key, std::uint64_t* out, Need need) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  if (!v->is_number_unsigned()) return WrongType(key, "an unsigned integer", *v);
  *out = v->get<std::uint64_t>();
  return Status::Ok();
}

Status FieldReader::U32(const char* key, std::uint32_t* out, Need need) {
  std::int64_t wide = *out;
  PGH_RETURN_IF_ERROR(Int(key, 0, std::numeric_limits<std::uint32_t>::max(), &wide, need));
  *out = static_cast<std::uint32_t>(wide);
  return Status::Ok();
}

Status FieldReader::I32(const char* key, std::int32_t lo, std::int32_t hi, int* out, Need need) {
  std::int64_t wide = *out;
  PGH_RETURN_IF_ERROR(Int(key, lo, hi, &wide, need));
  *out = static_cast<int>(wide);
  return Status::Ok();
}

Status FieldReader::I64(const char* key, std::int64_t* out, Need need) {
  return Int(key, std::numeric_limits<std::int64_t>::min(),
             std::numeric_limits<std::int64_t>::max(), out, need);
}

Status FieldReader::OptI64(const char* key, std::optional<std::int64_t>* out) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, Need::kOptional, &v));
  if (v == nullptr) return Status::Ok();
  std::int64_t value = 0;
  PGH_RETURN_IF_ERROR(I64(key, &value, Need::kRequired));
  *out = value;
  return Status::Ok();
}

Status FieldReader::OptInt(const char* key, std::optional<int>* out) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, Need::kOptional, &v));
  if (v == nullptr) return Status::Ok();
  int value = 0;
  PGH_RETURN_IF_ERROR(I32(key, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(),
                          &value, Need::kRequired));
  *out = value;
  return Status::Ok();
}

Status FieldReader::Tokens(const char* key, std::vector<std::string>* out, Need need,
                           std::size_t max_items) {
  return StringsOf(key, out, need, max_items, /*names=*/false);
}

Status FieldReader::Names(const char* key, std::vector<std::string>* out, Need need,
                          std::size_t max_items) {
  return StringsOf(key, out, need, max_items, /*names=*/true);
}

Status FieldReader::StringsOf(const char* key, std::vector<std::string>* out, Need need,
                              std::size_t max_items, bool names) {
  const json* v = nullptr;
  PGH_RETURN_IF_ERROR(Find(key, need, &v));
  if (v == nullptr) return Status::Ok();
  const std::string element = names ? std::string("a name: ") + untrusted::kNameRule
                                    : "a string of at most " + std::to_string(kMaxTokenLength) +
                                          " bytes without control characters";
  if (!v->is_array() || v->size() > max_items) {
    return WrongType(key, "an array of at most " + std::to_string(max_items) + " strings", *v);
  }
  std::vector<std::string> values;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    const bool ok =
        e.is_string() &&
        (names ? untrusted::IsValidName(e.get_ref<const std::string&>())
               : untrusted::IsPrintableText(e.get_ref<const std::string&>(), kMaxTokenLength));
    if (!ok) {
      return InvalidArgument(payload_ + ": field '" + prefix_ + key + "[" + std::to_string(i) +
                             "]': expected " + element + ", got " + Describe(e));
    }
    values.push_back(e.get<std::string>());
  }
  *out = std::move(values);
  return Status::Ok();
}

}  // namespace pgherald::jsonf
