#pragma once
#include <string>
#include <vector>
namespace pgherald::watch {
// `pgherald watch ...`; returns the process exit code.
int RunWatchCommand(const std::vector<std::string>& args);
}  // namespace pgherald::watch
