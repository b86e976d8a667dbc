// pgherald: one program, several subcommands. main only dispatches.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/commands.h"
#include "common/build_info.h"

namespace {

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "Usage: pgherald <command> [options]\n\n"
               "Tells applications, proxies and operators which PostgreSQL node is the verified,\n"
               "writable master of a repmgr cluster.\n\nCommands:\n");
  for (const auto& c : pgherald::app::Commands()) {
    std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  }
  std::fprintf(out,
               "\nRun 'pgherald <command> --help' for a command's options.\n\n"
               "The daemons (poller, orchestrator, watch) read /etc/pgherald/<command>.yaml unless\n"
               "--config FILE is given; --check validates it and exits. SIGHUP reloads what can\n"
               "change at run time (docs/operations.md), SIGTERM stops cleanly. Their exit codes:\n"
               "  0  stopped cleanly, or --check: the configuration is valid\n"
               "  2  usage error, or an invalid configuration (each error as file:line: key)\n"
               "  3  refused at start (ZooKeeper tree ACL, HTTP port, notify socket)\n"
               "status, history, pause, resume and zk-init document theirs in their --help.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    PrintUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0) {
    std::printf("%s\n", pgherald::build::Describe().c_str());
    return 0;
  }
  std::string name = argv[1];
  for (const auto& c : pgherald::app::Commands()) {
    if (name == c.name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "pgherald: unknown command '%s'\n\n", name.c_str());
  PrintUsage(stderr);
  return 2;
}
