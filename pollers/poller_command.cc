// Placeholder until its issue lands: --help works, running says it is not in this build.
#include "pollers/poller_command.h"

#include <cstdio>

namespace pgherald::pollers {

int RunPollerCommand(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help") {
      std::printf("Usage: pgherald poller --config FILE\n");
      return 0;
    }
  }
  std::fprintf(stderr, "pgherald poller: not available in this build yet\n");
  return 3;
}

}  // namespace pgherald::pollers

namespace pgherald::pollers {
int RunNotifyCommand(const std::vector<std::string>&) {
  std::fprintf(stderr, "pgherald notify: not available in this build yet\n");
  return 0;  // never fail repmgr
}
}  // namespace pgherald::pollers
