#include "common/template.h"

#include <algorithm>
#include <cctype>

#include "common/bounded_file.h"
#include "common/model/untrusted.h"

namespace pgherald {
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

bool AllDigits(std::string_view v) {
  return !v.empty() && v.size() <= 20 &&
         std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool HasControl(std::string_view v) {
  return std::any_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

ValueRule NameValue() {
  return {untrusted::kNameRule, [](std::string_view v) { return untrusted::IsValidName(v); }};
}
ValueRule HostValue() {
  return {untrusted::kHostRule, [](std::string_view v) { return untrusted::IsValidHost(v); }};
}
ValueRule PortValue() {
  return {"a port number, 1-65535", [](std::string_view v) {
            return AllDigits(v) && v.size() <= 5 &&
                   untrusted::IsValidPort(std::stoll(std::string(v)));
          }};
}
ValueRule NumberValue() { return {"a decimal number", AllDigits}; }
ValueRule WordValue() {
  return {"a word of [a-z_-]", [](std::string_view v) {
            return std::all_of(v.begin(), v.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || c == '_' || c == '-';
            });
          }};
}

StatusOr<std::string> RenderTemplate(std::string_view text, const TemplateVars& vars,
                                     std::string_view source, const TemplateRules& rules) {
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
      const std::string& value = it->second;
      const auto rule = rules.find(name);
      if (HasControl(value) || (rule != rules.end() && !rule->second.allows(value))) {
        fail(line, "variable \"" + name + "\" is \"" + untrusted::SanitizeForDisplay(value, 200) +
                       "\", which is not a valid value: it must be " +
                       (rule != rules.end() ? rule->second.description
                                            : "text without control characters") +
                       "; nothing rendered");
      } else {
        out += value;
      }
    }
    i = close + 2;
  }
  if (!errors.empty()) return InvalidArgument(errors);
  // Values hold no newline (refused above): the rendering has the template's lines, one for one.
  // Checked anyway, because a line added to a config file is code (an HAProxy `program`).
  if (std::count(out.begin(), out.end(), '\n') != std::count(text.begin(), text.end(), '\n')) {
    return Internal(std::string(source) +
                    ": the rendering does not have the template's number of lines; refused");
  }
  return out;
}

StatusOr<std::string> RenderTemplateFile(const std::string& path, const TemplateVars& vars,
                                         const TemplateRules& rules) {
  auto file = ReadBoundedFile(path, "template", kMaxTemplateFileBytes);
  if (!file.ok()) return file.status();
  return RenderTemplate(file->content, vars, path, rules);
}

}  // namespace pgherald
