// ObservationLoad: the ZooKeeper load of many `pgherald poller`s, for the scale benchmark, without
// a process per node. Genuine observations through the product's own code: each backend
// PostgreSQL node is queried once per tick with the poller's statement (BuildTickSql,
// ParseTickResult, DetectLayout, BuildObservation of pollers/observation.h), and every logical
// node that points at it publishes that observation (its own seq and observed_at) through its own
// ObservationPublisher (pollers/publisher.h) exactly as a poller's tick does (pollers/poller.cc):
//   - every tick: ReadMaster (Get of the master znode + GetChildren of it: the fencing read of a
//     reachable node);
//   - the observation znode (ephemeral): written when it changed (ObservationChanged), at the
//     heartbeat otherwise, and on a new session.
// Not generated: repmgr event facts (the backends are steady, so a poller would write none), the
// notify socket, the promotion watch (only on a node being promoted), the identity read (once per
// poller life).
// Logical nodes are spread round-robin over `sessions` ZooKeeper sessions, one worker thread each;
// a worker paces its nodes evenly over the tick (real pollers are not in step).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/base/status.h"
#include "common/pg_connection.h"

namespace pgherald::bench {

struct ObservationLoadOptions {
  std::string zk_connect;
  std::string root;
  struct Cluster {
    std::string name;
    std::string host;  // the nodes' host as the orchestrators' config names it (advertised in the
                       // observations; the backends are reached through Backend::params)
  };
  std::vector<Cluster> clusters;  // the logical clusters; each has every backend as a node
  struct Backend {
    std::string node;  // the node name in every logical cluster (= repmgr's node_name there)
    pg::PgParams params;  // how the tick statement reaches it (as a poller connects)
  };
  std::vector<Backend> backends;
  std::chrono::milliseconds tick{1000};
  std::chrono::milliseconds heartbeat{3000};  // the poller's default: max(3000, tick)
  int sessions = 16;
};

class ObservationLoad {
 public:
  // Connects the sessions and starts the threads; the first observations are written within the
  // first tick. An error when a session cannot connect.
  static StatusOr<std::unique_ptr<ObservationLoad>> Start(ObservationLoadOptions options);
  // Stops the threads and closes the sessions (the observation znodes go with them).
  ~ObservationLoad();

  struct Counters {
    std::uint64_t reads = 0;          // ZooKeeper reads (2 per ReadMaster)
    std::uint64_t writes = 0;         // observation znode writes that succeeded
    std::uint64_t errors = 0;         // failed ReadMaster or Publish calls
    std::uint64_t late_rounds = 0;    // worker rounds that overran the tick
    std::uint64_t backend_ticks = 0;  // tick statements run on the backends
  };
  Counters counters() const;
  std::size_t logical_nodes() const;
  int sessions() const;

  struct State;  // shared with the threads (observation_load.cc)

 private:
  explicit ObservationLoad(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace pgherald::bench
