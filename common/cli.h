// A small command-line parser for `pgherald <subcommand> [options]`: long options only
// (--name VALUE, --name=VALUE, --flag), positional arguments kept in order, --help built in.
#pragma once

#include <signal.h>

#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/base/status.h"

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

// The exit codes of the daemon commands (poller, orchestrator, watch); `pgherald help` and
// docs/operations.md list them.
inline constexpr int kExitOk = 0;          // clean stop (SIGTERM/SIGINT), or --check: valid
inline constexpr int kExitUsage = 2;       // bad flag, or an invalid configuration (every error
                                           // printed as file:line: key: message)
inline constexpr int kExitStartFailed = 3;  // refused at start: the ZooKeeper tree's ACL, the
                                            // HTTP port, the notify socket, ...

// "/etc/pgherald/<command>.yaml": where a daemon reads its configuration without --config.
std::string DefaultConfigPath(const std::string& command);

// What a daemon command (poller, orchestrator, watch) starts from.
struct DaemonArgs {
  ParsedArgs flags;
  std::string config_path;  // --config FILE, else DefaultConfigPath(command)
  bool check = false;       // --check: validate the configuration and exit
};

// The start every daemon command shares: parses `args` against `specs` plus --config FILE and
// --check (added here; `doc` names the reference in their help, e.g. "docs/watch.md"), answers
// --help with the usage on `out`. Returns the flags, or the exit code the command must return at
// once: 0 after --help, kExitUsage after writing "pgherald <command>: <what is wrong>" to `err`.
std::variant<DaemonArgs, int> ParseDaemonArgs(const std::string& command,
                                              const std::string& summary,
                                              const std::vector<OptionSpec>& specs,
                                              const std::vector<std::string>& args,
                                              const std::string& doc = "",
                                              std::FILE* out = stdout, std::FILE* err = stderr);

// After loading the configuration: a failed load writes "pgherald <command>: <path>: invalid
// configuration:" and every error (file:line: key: message, one a line) to `err` and gives
// kExitUsage; with --check a good one writes "<path>: configuration ok" to `out` and gives kExitOk.
// std::nullopt: the daemon goes on.
std::optional<int> ConfigOutcome(const std::string& command, const DaemonArgs& args,
                                 const Status& loaded, std::FILE* out = stdout,
                                 std::FILE* err = stderr);

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, so in every thread it starts afterwards,
// and returns the set for WaitForStop().
sigset_t BlockDaemonSignals();

// Waits for the signals of BlockDaemonSignals(): calls `reload` on each SIGHUP (on this thread),
// returns the stopping signal (SIGINT or SIGTERM).
int WaitForStop(const sigset_t& signals, const std::function<void()>& reload);

}  // namespace pgherald::cli
