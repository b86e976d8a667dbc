// `pgherald status`, `pgherald history`, `pgherald pause`, `pgherald resume`: the operator's
// commands over ZooKeeper (docs/operations.md). Each returns the process exit code (render.h's
// kExit* constants).
#pragma once

#include <string>
#include <vector>

namespace pgherald::status {

int RunStatusCommand(const std::vector<std::string>& args);
int RunHistoryCommand(const std::vector<std::string>& args);
int RunPauseCommand(const std::vector<std::string>& args);
int RunResumeCommand(const std::vector<std::string>& args);

}  // namespace pgherald::status
