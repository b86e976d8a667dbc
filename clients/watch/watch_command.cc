// Placeholder until its issue lands: --help works, running says it is not in this build.
#include "clients/watch/watch_command.h"

#include <cstdio>

namespace pgherald::watch {

int RunWatchCommand(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help") {
      std::printf("Usage: pgherald watch --config FILE\n");
      return 0;
    }
  }
  std::fprintf(stderr, "pgherald watch: not available in this build yet\n");
  return 3;
}

}  // namespace pgherald::watch
