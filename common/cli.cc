#include "common/cli.h"

#include <pthread.h>

#include <algorithm>
#include <sstream>

namespace pgherald::cli {

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

StatusOr<ParsedArgs> Parse(const std::vector<std::string>& args,
                           const std::vector<OptionSpec>& specs) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      out.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const OptionSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      return InvalidArgument("unknown option --" + name + " (see --help)");
    }
    if (spec->value_name.empty()) {
      if (inline_value) return InvalidArgument("option --" + name + " takes no value");
      out.values[name] = "true";
      continue;
    }
    if (inline_value) {
      out.values[name] = *inline_value;
    } else if (i + 1 < args.size()) {
      out.values[name] = args[++i];
    } else {
      return InvalidArgument("option --" + name + " needs a value: --" + name + " " +
                             spec->value_name);
    }
  }
  return out;
}

std::string Usage(const std::string& command, const std::string& summary,
                  const std::vector<OptionSpec>& specs) {
  std::ostringstream out;
  out << "Usage: pgherald " << command << " [options]\n\n" << summary << "\n\nOptions:\n";
  size_t width = 6;
  for (const auto& s : specs) {
    width = std::max(width, s.name.size() + (s.value_name.empty() ? 0 : s.value_name.size() + 1));
  }
  for (const auto& s : specs) {
    std::string left = s.name + (s.value_name.empty() ? "" : " " + s.value_name);
    out << "  --" << left << std::string(width - left.size() + 2, ' ') << s.help << "\n";
  }
  out << "  --help" << std::string(width - 4 + 2, ' ') << "show this help\n";
  return out.str();
}

std::variant<DaemonArgs, int> ParseDaemonArgs(const std::string& command,
                                              const std::string& summary,
                                              const std::vector<OptionSpec>& specs,
                                              const std::vector<std::string>& args,
                                              const std::string& config_hint, std::FILE* out,
                                              std::FILE* err) {
  auto parsed = Parse(args, specs);
  if (!parsed.ok()) {
    std::fprintf(err, "pgherald %s: %s\n", command.c_str(), parsed.status().message().c_str());
    return 2;
  }
  if (parsed->help) {
    std::fprintf(out, "%s", Usage(command, summary, specs).c_str());
    return 0;
  }
  auto path = parsed->Get("config");
  if (!path) {
    std::fprintf(err, "pgherald %s: --config FILE is required%s\n", command.c_str(),
                 config_hint.empty() ? "" : (" (" + config_hint + ")").c_str());
    return 2;
  }
  return DaemonArgs{std::move(*parsed), *path};
}

sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace pgherald::cli
