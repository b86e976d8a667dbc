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

std::string DefaultConfigPath(const std::string& command) {
  return "/etc/pgherald/" + command + ".yaml";
}

std::variant<DaemonArgs, int> ParseDaemonArgs(const std::string& command,
                                              const std::string& summary,
                                              const std::vector<OptionSpec>& specs,
                                              const std::vector<std::string>& args,
                                              const std::string& doc, std::FILE* out,
                                              std::FILE* err) {
  std::vector<OptionSpec> all = {
      {"config", "FILE",
       "YAML configuration (default " + DefaultConfigPath(command) +
           (doc.empty() ? "" : "; see " + doc) + ")"},
      {"check", "",
       "load and validate the configuration and the files it names, print every error as "
       "file:line: key, exit 0 when valid, 2 when not"}};
  all.insert(all.end(), specs.begin(), specs.end());
  auto parsed = Parse(args, all);
  if (!parsed.ok()) {
    std::fprintf(err, "pgherald %s: %s\n", command.c_str(), parsed.status().message().c_str());
    return kExitUsage;
  }
  if (parsed->help) {
    std::fprintf(out, "%s", Usage(command, summary, all).c_str());
    return kExitOk;
  }
  if (!parsed->positional.empty()) {
    std::fprintf(err, "pgherald %s: unexpected argument '%s' (see --help)\n", command.c_str(),
                 parsed->positional.front().c_str());
    return kExitUsage;
  }
  DaemonArgs result;
  result.config_path = parsed->Get("config").value_or(DefaultConfigPath(command));
  result.check = parsed->Has("check");
  result.flags = std::move(*parsed);
  return result;
}

std::optional<int> ConfigOutcome(const std::string& command, const DaemonArgs& args,
                                 const Status& loaded, std::FILE* out, std::FILE* err) {
  if (!loaded.ok()) {
    std::fprintf(err, "pgherald %s: %s: invalid configuration:\n%s\n", command.c_str(),
                 args.config_path.c_str(), loaded.message().c_str());
    return kExitUsage;
  }
  if (args.check) {
    std::fprintf(out, "%s: configuration ok\n", args.config_path.c_str());
    return kExitOk;
  }
  return std::nullopt;
}

sigset_t BlockDaemonSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int WaitForStop(const sigset_t& signals, const std::function<void()>& reload) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (reload) reload();
      continue;
    }
    return sig;
  }
}

}  // namespace pgherald::cli
