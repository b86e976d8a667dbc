#pragma once
#include <string>
#include <vector>
namespace pgherald::pollers {
// `pgherald poller ...` and `pgherald notify ...`; return the process exit code.
int RunPollerCommand(const std::vector<std::string>& args);
int RunNotifyCommand(const std::vector<std::string>& args);
}  // namespace pgherald::pollers
