#pragma once
#include <string>
#include <vector>
namespace pgherald::orchestrator {
// `pgherald orchestrator ...`; returns the process exit code.
int RunOrchestratorCommand(const std::vector<std::string>& args);
}  // namespace pgherald::orchestrator
