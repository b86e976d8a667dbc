// A small command-line parser for `pgherald <subcommand> [options]`: long options only
// (--name VALUE, --name=VALUE, --flag), positional arguments kept in order, --help built in.
#pragma once

#include <map>
#include <optional>
#include <string>
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

}  // namespace pgherald::cli
