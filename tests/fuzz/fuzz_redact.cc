// Fuzz target: secret redaction of common/logging.h (RedactSecrets and the line formatters,
// which apply it to every event and value).
// Input: free text; a password=<SECRET> with a known marker secret is planted into it.
// Properties: nothing crashes; the planted secret never survives RedactSecrets, FormatText or
// FormatJsonMembers, whatever surrounds it; text with no "pass" and no "://" is left unchanged
// by RedactSecrets; a field whose key names a secret is written as ***.
#include <algorithm>
#include <cctype>
#include <string>

#include "common/logging.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;
namespace log = pgherald::log;

namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = AsText(data, size);
  const std::string redacted = log::RedactSecrets(text);
  if (Lower(text).find("pass") == std::string::npos && text.find("://") == std::string_view::npos) {
    FUZZ_CHECK(redacted == text, "text without a secret was changed");
  }
  (void)log::FormatText(text, {{"k", text}});
  (void)log::FormatJsonMembers(text, {{"k", text}});

  // Plant a secret: the input's first half, "password=SECRET", the second half. The secret is
  // alphanumeric (what the operator would have) and the key is spelled as a conninfo spells it.
  const std::string secret = "Zq7SecretValue42";
  // The fuzzer learns the secret from the comparisons and writes it into the input, where it is
  // not a secret (nothing marks it as one): such inputs prove nothing about redaction.
  if (text.find("SecretValue") != std::string_view::npos) return 0;
  const std::string planted = std::string(text.substr(0, size / 2)) + " password=" + secret + " " +
                              std::string(text.substr(size / 2));
  FUZZ_CHECK(!Contains(log::RedactSecrets(planted), secret),
             "password survived RedactSecrets: " + log::RedactSecrets(planted));
  FUZZ_CHECK(!Contains(log::FormatText("event", {{"conninfo", planted}}), secret),
             "password survived FormatText");
  FUZZ_CHECK(!Contains(log::FormatJsonMembers("event", {{"conninfo", planted}}), secret),
             "password survived FormatJsonMembers");
  FUZZ_CHECK(!Contains(log::FormatText(planted, {}), secret), "password survived in the event");
  FUZZ_CHECK(log::FormatText("event", {{"password", text}}) ==
                 log::FormatText("event", {{"password", "x"}}),
             "a secret key's value was written: " + log::FormatText("event", {{"password", text}}));
  return 0;
}
