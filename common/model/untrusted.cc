#include "common/model/untrusted.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>

namespace pgherald::untrusted {
namespace {

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

Status CheckJsonShape(std::string_view text, std::string_view what, std::size_t max_bytes,
                      int max_depth) {
  if (text.size() > max_bytes) {
    return InvalidArgument(std::string(what) + ": payload of " + std::to_string(text.size()) +
                           " bytes exceeds the limit of " + std::to_string(max_bytes) + " bytes");
  }
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return InvalidArgument(std::string(what) + ": JSON nested deeper than " +
                               std::to_string(max_depth) + " levels (at byte " +
                               std::to_string(i) + ")");
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
  }
  return Status::Ok();
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name == "." || name == "..") return false;
  for (char c : name) {
    if (!IsAsciiAlnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

bool IsValidHost(std::string_view host) {
  if (host.empty() || host.size() > kMaxHostLength) return false;
  const std::string copy(host);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, copy.c_str(), &v4) == 1) return true;
  if (inet_pton(AF_INET6, copy.c_str(), &v6) == 1) return true;
  // RFC 1123 host name: dot-separated labels of 1..63 letters, digits and '-', no '-' at either
  // end of a label. A name made of digits and dots only must have parsed as IPv4 above.
  bool all_numeric = true;
  std::size_t label = 0;
  char prev = '.';
  for (char c : host) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (IsAsciiAlnum(c) || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
      if (!(c >= '0' && c <= '9')) all_numeric = false;
    } else {
      return false;
    }
    prev = c;
  }
  if (label == 0 || prev == '-') return false;
  return !all_numeric;
}

bool IsPrintableText(std::string_view text, std::size_t max_length) {
  if (text.size() > max_length) return false;
  for (char c : text) {
    if (IsControl(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string SanitizeForDisplay(std::string_view text, std::size_t max_length) {
  std::string out;
  out.reserve(text.size() < max_length ? text.size() : max_length);
  // Cut so that the result, "..." included, stays within max_length: then a sanitized text is
  // its own sanitization (writers and readers apply this to the same field, and must agree).
  const std::size_t keep = max_length >= 3 ? max_length - 3 : 0;
  std::size_t cut_at = std::string::npos;  // out's size before the first piece past `keep`
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    char piece[5] = {c, 0, 0, 0, 0};
    if (IsControl(u)) std::snprintf(piece, sizeof piece, "\\x%02x", u);
    const std::size_t n = IsControl(u) ? 4 : 1;
    if (cut_at == std::string::npos && out.size() + n > keep) cut_at = out.size();
    if (out.size() + n > max_length) {
      out.resize(cut_at);
      out += std::string("...").substr(0, max_length - cut_at);
      return out;
    }
    out.append(piece, n);
  }
  return out;
}

}  // namespace pgherald::untrusted
