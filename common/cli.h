// A small command-line parser for `pgherald <subcommand> [options]`: long options only
// (--name VALUE, --name=VALUE, --flag), positional arguments kept in order, --help built in.
#pragma once

#include <signal.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

namespace pgherald::cli {

struct OptionSpec {
  std::string name;         // without the leading "--"
  std::string value_name;   // empty for a flag
  std::string help;
};

struct ParsedArgs {
  std::map<std::string, std::string> values;  // flags map to "true"
  std::vector<std::string> positional;
  bool help = false;

  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
};

// Parses argv after the subcommand. An unknown option or a missing value is an error that names it.
StatusOr<ParsedArgs> Parse(const std::vector<std::string>& args,
                           const std::vector<OptionSpec>& specs);

// "Usage: pgherald <command> [options]\n\n<summary>\n\nOptions:\n  --x VALUE  help..."
std::string Usage(const std::string& command, const std::string& summary,
                  const std::vector<OptionSpec>& specs);

// What a daemon command (poller, orchestrator, watch) starts from.
struct DaemonArgs {
  ParsedArgs flags;
  std::string config_path;  // --config FILE, required
};

// The start every daemon command shares: parses `args` against `specs` (which must include
// `config`), answers --help with the usage on `out`, and requires --config. Returns the flags, or
// the exit code the command must return at once: 0 after --help, 2 after writing
// "pgherald <command>: <what is wrong>" to `err` (`config_hint`, e.g. "see docs/watch.md", is
// added to the missing --config message).
std::variant<DaemonArgs, int> ParseDaemonArgs(const std::string& command,
                                              const std::string& summary,
                                              const std::vector<OptionSpec>& specs,
                                              const std::vector<std::string>& args,
                                              const std::string& config_hint = "",
                                              std::FILE* out = stdout, std::FILE* err = stderr);

// Blocks SIGINT and SIGTERM in the calling thread, so in every thread it starts afterwards, and
// returns the set for the one sigwait() that stops the daemon.
sigset_t BlockStopSignals();

}  // namespace pgherald::cli
