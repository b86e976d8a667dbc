// Checks for input that pgherald does not control: znode payloads, notify datagrams, HTTP bodies,
// anything a peer, a hand edit or an attacker may have written. Pure functions, no I/O, C++17 (the
// embeddable client library uses them), no recursion on the input.
//
// The rules (docs/security.md states them for operators):
//   - a payload is at most kMaxPayloadBytes and nests JSON arrays/objects at most kMaxJsonDepth
//     deep; CheckJsonShape() verifies both on the raw text *before* any parser or serializer
//     recurses into it;
//   - names (clusters, nodes, orchestrator ids) follow the orchestrator config's rule:
//     1..kMaxNameLength characters of [A-Za-z0-9_.-], not "." or "..";
//   - hosts are IPv4 or IPv6 literals or RFC 1123 host names (letters, digits, '-', dots between
//     labels of 1..63 characters, at most 253 in all); nothing else (no spaces, ';', '=', quotes,
//     newlines) so that a host can be placed in a config file or command unquoted;
//   - ports are 1..65535;
//   - free text (reasons, errors) is valid to display once SanitizeForDisplay() has replaced its
//     control characters; IsPrintableText() tells whether there were none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace pgherald::untrusted {

inline constexpr std::size_t kMaxPayloadBytes = 64 * 1024;
inline constexpr int kMaxJsonDepth = 16;
inline constexpr std::size_t kMaxNameLength = 64;
inline constexpr std::size_t kMaxHostLength = 253;
inline constexpr std::size_t kMaxTextLength = 4096;

// kInvalidArgument naming `what` when `text` is larger than `max_bytes` or nests arrays/objects
// deeper than `max_depth` (counted outside JSON strings, escapes honoured). Linear, no recursion;
// it does not validate the JSON otherwise (the parser does that next).
Status CheckJsonShape(std::string_view text, std::string_view what,
                      std::size_t max_bytes = kMaxPayloadBytes, int max_depth = kMaxJsonDepth);

bool IsValidName(std::string_view name);
bool IsValidHost(std::string_view host);
inline bool IsValidPort(std::int64_t port) { return port >= 1 && port <= 65535; }

// True when `text` holds no ASCII control character (below 0x20, or 0x7f) and is at most
// `max_length` bytes. Bytes >= 0x80 (UTF-8) are allowed.
bool IsPrintableText(std::string_view text, std::size_t max_length = kMaxTextLength);

// `text` with every ASCII control character (and 0x7f) written as "\xNN"; when that is longer
// than `max_length` bytes it is cut (never inside an escape) and ends in "...", max_length bytes
// at most in all. Idempotent: a sanitized text comes back unchanged. Safe to print to a terminal
// or a log line.
std::string SanitizeForDisplay(std::string_view text, std::size_t max_length = kMaxTextLength);

// The rules above as sentences, for error messages ("... must be " + kNameRule).
inline constexpr char kNameRule[] =
    "1-64 characters of [A-Za-z0-9_.-], not '.' or '..' (it becomes a znode name)";
inline constexpr char kHostRule[] =
    "an IPv4 or IPv6 address or an RFC 1123 host name (letters, digits, '-', '.')";

}  // namespace pgherald::untrusted
