#pragma once
#include <string>
#include <vector>

#include "clients/watch/sink_registry.h"

namespace pgherald::watch {
// `pgherald watch ...` with the sink types `sinks` knows; returns the process exit code.
int RunWatchCommand(const std::vector<std::string>& args, const SinkRegistry& sinks);
}  // namespace pgherald::watch
