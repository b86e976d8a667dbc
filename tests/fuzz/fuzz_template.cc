// Fuzz target: the {{variable}} template engine (common/template.h) with both the template
// and the variables from the input: TEMPLATE, then optionally a NUL byte and `name=value` lines.
// Properties: nothing crashes; text without "{{" comes out unchanged; when no value holds a
// newline the output has the template's number of lines; every error names the source.
#include <algorithm>

#include "common/template.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = AsText(data, size);
  const std::size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  pgherald::TemplateVars vars = {{"host", "10.0.0.1"}, {"port", "5432"}, {"node", "pg1"}};
  bool value_newline = false;
  if (nul != std::string_view::npos) {
    std::string_view rest = input.substr(nul + 1);
    while (!rest.empty()) {
      const std::size_t end = std::min(rest.find('\n'), rest.size());
      const std::string_view line = rest.substr(0, end);
      const std::size_t eq = line.find('=');
      if (eq != std::string_view::npos) {
        std::string value(line.substr(eq + 1));
        for (auto& c : value) c = c == '\x01' ? '\n' : c;  // a way to put newlines into values
        value_newline = value_newline || value.find('\n') != std::string::npos;
        vars[std::string(line.substr(0, eq))] = value;
      }
      rest.remove_prefix(std::min(end + 1, rest.size()));
    }
  }
  auto out = pgherald::RenderTemplate(text, vars, "fuzz.tmpl");
  if (!out.ok()) {
    FUZZ_CHECK(out.status().message().find("fuzz.tmpl:") != std::string::npos,
               "error without the source: " + out.status().message());
    return 0;
  }
  if (text.find("{{") == std::string_view::npos) {
    FUZZ_CHECK(*out == text, "text without {{ changed");
  }
  if (!value_newline) {
    const auto newlines = [](std::string_view t) { return std::count(t.begin(), t.end(), '\n'); };
    FUZZ_CHECK(newlines(*out) == newlines(text),
               "line count changed without a newline in any value");
  }
  return 0;
}
