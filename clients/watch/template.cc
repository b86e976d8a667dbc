#include "clients/watch/template.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/bounded_file.h"

namespace pgherald::watch {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string KnownNames(const TemplateVars& vars) {
  std::string out;
  for (const auto& [k, v] : vars) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

StatusOr<std::string> RenderTemplate(std::string_view text, const TemplateVars& vars,
                                     std::string_view source) {
  std::string out;
  out.reserve(text.size());
  std::string errors;
  auto fail = [&](int line, const std::string& what) {
    if (!errors.empty()) errors += "\n";
    errors += std::string(source) + ":" + std::to_string(line) + ": " + what;
  };
  int line = 1;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "{{") != 0) {
      if (text[i] == '\n') ++line;
      out += text[i++];
      continue;
    }
    const size_t close = text.find("}}", i + 2);
    const size_t newline = text.find('\n', i + 2);
    if (close == std::string_view::npos || (newline != std::string_view::npos && newline < close)) {
      fail(line, "\"{{\" without a closing \"}}\" on the same line");
      out += "{{";
      i += 2;
      continue;
    }
    const std::string name = Trim(text.substr(i + 2, close - i - 2));
    if (!ValidName(name)) {
      fail(line, "bad variable name \"" + name + "\" (expected letters, digits and _)");
    } else if (auto it = vars.find(name); it == vars.end()) {
      fail(line, "unknown variable \"" + name + "\" (known: " + KnownNames(vars) + ")");
    } else {
      out += it->second;
    }
    i = close + 2;
  }
  if (!errors.empty()) return InvalidArgument(errors);
  return out;
}

StatusOr<std::string> RenderTemplateFile(const std::string& path, const TemplateVars& vars) {
  // A regular file under the size cap only: "template: /dev/zero" must fail, not hang.
  auto file = ReadBoundedFile(path, "template", kMaxTemplateFileBytes);
  if (!file.ok()) return file.status();
  return RenderTemplate(file->content, vars, path);
}

}  // namespace pgherald::watch
