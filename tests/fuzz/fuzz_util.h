// Shared by the fuzz harnesses of tests/fuzz (docs/building.md, "Fuzzing").
//
// Each harness defines LLVMFuzzerTestOneInput only. A property that does not hold is reported
// with FUZZ_CHECK: it prints what broke and aborts, which libFuzzer records as a crash (and saves
// the input) and the corpus replay of the default build reports as a failed ctest test, naming
// the input file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      ::pgherald::fuzz::PrintDetail(__VA_ARGS__);                                          \
      std::abort();                                                                        \
    }                                                                                      \
  } while (false)

namespace pgherald::fuzz {

inline void PrintDetail() {}
inline void PrintDetail(std::string_view what) {
  std::fprintf(stderr, "  %.*s\n", static_cast<int>(what.size()), what.data());
}

inline std::string_view AsText(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

inline std::size_t CountLines(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n' ? 1 : 0;
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

// Whether `text` is valid UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF),
// the rule nlohmann::json applies when it parses, and whose violations its dump() replaces.
inline bool IsValidUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= text.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// Turns the daemons' logging (spdlog) into a no-op sink, so a harness measures the parser and
// not the terminal. Call once (static initializer in the harness).
void QuietLogging();

}  // namespace pgherald::fuzz
