// ObservationPublisher: the poller's writes to ZooKeeper, over any ZkSession.
//
//   clusters/<c>/nodes/<node>   EPHEMERAL, this poller's observation (rewritten by Publish)
//   clusters/<c>/events/<name>  persistent facts, created once (kAlreadyExists is success),
//                               the oldest trimmed beyond `events_retention`
//   clusters/<c>/master         read only (for self-fencing)
//
// Faults. Connection loss: the outcome of the write is unknown, so the next write re-reads (Get)
// before deciding between Create and Set; nothing is retried blind. Session expiry (or no session
// yet): the next call builds a new session through the factory, and the ephemeral is created
// again. An ephemeral owned by another live session (an earlier poller process whose session has
// not expired yet, or a second poller misconfigured with this node name) is never deleted: Publish
// returns kFailedPrecondition naming the owner until it vanishes.
//
// Not thread-safe: the poller's loop is its only user.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/cluster_model.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "pollers/observation.h"

namespace pgherald::pollers {

using SessionFactory = zk::SessionFactory;

class ObservationPublisher {
 public:
  ObservationPublisher(SessionFactory factory, std::string root, std::string cluster,
                       std::string node, int events_retention);

  // Writes `observation_json` to the node's ephemeral znode (creating it when needed).
  Status Publish(const std::string& observation_json);
  // Creates one fact per event; returns the events not yet written (to retry on the next tick),
  // in order, and the first error.
  Status PublishEvents(std::vector<RepmgrEvent>* pending);
  // The published master record; nullopt when absent; an error when unreadable or corrupt.
  StatusOr<std::optional<model::MasterRecord>> ReadMaster();
  // clusters/<c>/identity's system_identifier ({"format":1,"system_identifier":"..."}, written by
  // the first orchestrator); nullopt while absent.
  StatusOr<std::optional<std::string>> ReadIdentity();

  // True after a new session was built since the last call (so the caller republishes at once).
  bool TakeNewSession();
  std::int64_t session_id() const;
  const std::string& node_path() const { return node_path_; }
  const std::string& events_path() const { return events_path_; }

 private:
  Status EnsureSession();
  // Drops a session in a final state so the next call builds a new one.
  void CheckExpired(const Status& status);
  Status Trim();

  SessionFactory factory_;
  std::string cluster_path_;
  std::string node_path_;
  std::string events_path_;
  std::string master_path_;
  std::string identity_path_;
  int retention_;
  std::unique_ptr<zk::ZkSession> session_;
  bool paths_ready_ = false;
  enum class NodeState { kUnknown, kOurs } node_state_ = NodeState::kUnknown;
  bool new_session_ = false;
  int created_since_trim_ = 0;
};

}  // namespace pgherald::pollers
