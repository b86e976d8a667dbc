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

// Turns the daemons' logging (spdlog) into a no-op sink, so a harness measures the parser and
// not the terminal. Call once (static initializer in the harness).
void QuietLogging();

}  // namespace pgherald::fuzz
