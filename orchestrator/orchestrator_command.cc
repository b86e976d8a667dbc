// Placeholder until its issue lands: --help works, running says it is not in this build.
#include "orchestrator/orchestrator_command.h"

#include <cstdio>

namespace pgherald::orchestrator {

int RunOrchestratorCommand(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help") {
      std::printf("Usage: pgherald orchestrator --config FILE\n");
      return 0;
    }
  }
  std::fprintf(stderr, "pgherald orchestrator: not available in this build yet\n");
  return 3;
}

}  // namespace pgherald::orchestrator
