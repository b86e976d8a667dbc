// SharedCore: a watch machine (WatchCore) and what keeps it running, shared by every handle over
// it (one handle, or a share_session group); the machine stops when the last handle goes.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "clients/src/log_fanout.h"
#include "clients/src/master_watch_internal.h"
#include "clients/src/runtime.h"
#include "clients/src/watch_core.h"
#include "common/zk/zk_session.h"

namespace pgherald::client::internal {

struct SharedCore {
  std::shared_ptr<Runtime> runtime;  // declared first: outlives the core's tasks
  std::shared_ptr<WatchCore> core;
  std::shared_ptr<LogFanout> logs;  // a shared machine's; nullptr for a watch of its own
  SharedCore() = default;
  SharedCore(const SharedCore&) = delete;
  SharedCore& operator=(const SharedCore&) = delete;
  ~SharedCore() {
    if (core) core->Stop();
  }
};

// A new machine on the process's runtime, started (see StartWithFactory for `first`).
std::shared_ptr<SharedCore> NewCore(WatchSettings settings, SessionFactory factory,
                                    std::unique_ptr<zk::ZkSession> first,
                                    std::shared_ptr<LogFanout> logs);

// The process's shared machines (MasterWatchOptions::share_session), by what identifies them.
// `make` runs under the registry's lock and returns nullptr on error.
std::shared_ptr<SharedCore> FindOrMakeShared(
    const std::string& key, const std::function<std::shared_ptr<SharedCore>()>& make);

}  // namespace pgherald::client::internal
