// LogFanout: the log lines of a shared watch machine (MasterWatchOptions::share_session) go to the
// sink of every handle over it; a sink is never called after Remove() returns.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "pgherald/master_watch.h"

namespace pgherald::client::internal {

class LogFanout {
 public:
  void Add(uint64_t id, LogSink sink) {
    if (!sink) return;
    std::lock_guard lock(mu_);
    sinks_[id] = std::move(sink);
  }
  void Remove(uint64_t id) {
    std::lock_guard lock(mu_);
    sinks_.erase(id);
  }
  void Write(int level, const std::string& line) {
    std::lock_guard lock(mu_);
    for (const auto& entry : sinks_) entry.second(level, line);
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, LogSink> sinks_;
};

}  // namespace pgherald::client::internal
