// The seam between `pgherald watch` and ZooKeeper: something that delivers the cluster's
// MasterInfo states. Production uses LibraryMasterSource (the client library's MasterWatch); unit
// tests feed states to the ClusterController directly.
#pragma once

#include <functional>

#include "clients/include/pgherald/master_watch.h"

namespace pgherald::watch {

class MasterSource {
 public:
  using Callback = std::function<void(const client::MasterInfo&)>;
  virtual ~MasterSource() = default;
  // Starts delivering every change of state to `callback`, one call at a time, on the source's own
  // thread. The first call carries the initial state (kDisconnected until ZooKeeper answers).
  virtual void Start(Callback callback) = 0;
  // Stops; no callback runs after it returns.
  virtual void Stop() = 0;
};

}  // namespace pgherald::watch
