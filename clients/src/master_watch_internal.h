// Internals of libpgherald's MasterWatch, exposed for unit tests (FakeZk) and for pgherald's own
// daemons. Not installed: applications use <pgherald/master_watch.h>.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/zk/zk_session.h"
#include "pgherald/master_watch.h"
#include "pgherald/master_watch_c.h"

namespace pgherald::client::internal {

// Builds one ZooKeeper session. Called on the library's runtime thread: once at start and again
// after every expiry (a ZkSession is one session and is dead for good once expired). It should
// not block for long (the runtime thread is shared by all the watches of the process): the real
// factory returns at once with a session still in kConnecting. An error is logged and the
// factory is called again after WatchSettings::retry_interval.
using SessionFactory = zk::SessionFactory;

struct WatchSettings {
  std::string root = "/pgherald";
  std::string cluster;
  LogSink log;
  // Monotonic time for MasterInfo::confirmed_at. Must outlive the watch. nullptr: SystemClock.
  const Clock* clock = nullptr;
  // After a failed read (connection loss) or a failed session build, try again this late unless
  // an event comes first.
  std::chrono::milliseconds retry_interval{500};
};

// kInvalidArgument naming the option and the fix, or Ok.
Status ValidateOptions(const MasterWatchOptions& options);

// model::ClusterPaths(root, cluster).Master(). The library uses ClusterPaths itself; this remains
// for tests/integration/client_master_watch_test.cc until that test builds its paths the same way.
std::string MasterPath(const std::string& root, const std::string& cluster);

// Starts a watch over sessions made by `factory`. `first` is the first session if the caller
// already built it (nullptr: the runtime thread calls the factory). Never fails. Every session is
// read with ZkSession's asynchronous reads (zk::ZkClient's, or FakeZk's in unit tests).
std::unique_ptr<MasterWatch> StartWithFactory(WatchSettings settings, SessionFactory factory,
                                              std::unique_ptr<zk::ZkSession> first = nullptr);

// How many watch machines (one per session: a watch of its own, or a share_session group) are
// alive in this process; for tests.
int LiveMachinesForTesting();

// A C handle over an existing watch (tests drive the C API over a FakeZk this way).
// pgherald_watch_stop frees it.
pgherald_watch* WrapForC(std::unique_ptr<MasterWatch> watch);

}  // namespace pgherald::client::internal
