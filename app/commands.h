// The subcommands of the `pgherald` program. Each folder's library provides its command's Run
// function; this table only wires them.
#pragma once

#include <string>
#include <vector>

namespace pgherald::app {

struct Command {
  const char* name;
  const char* summary;
  // args: everything after the subcommand. Returns the process exit code.
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<Command>& Commands();

}  // namespace pgherald::app
