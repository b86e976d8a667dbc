// pgherald: one program, several subcommands. main only dispatches.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/commands.h"

namespace {

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "Usage: pgherald <command> [options]\n\n"
               "Tells applications, proxies and operators which PostgreSQL node is the verified,\n"
               "writable master of a repmgr cluster.\n\nCommands:\n");
  for (const auto& c : pgherald::app::Commands()) {
    std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  }
  std::fprintf(out, "\nRun 'pgherald <command> --help' for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    PrintUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  for (const auto& c : pgherald::app::Commands()) {
    if (name == c.name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "pgherald: unknown command '%s'\n\n", name.c_str());
  PrintUsage(stderr);
  return 2;
}
