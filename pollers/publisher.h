// ObservationPublisher: the poller's writes to ZooKeeper, over any ZkSession.
//
//   clusters/<c>/nodes/<node>   EPHEMERAL, this poller's observation (rewritten by Publish)
//   clusters/<c>/events/<name>  persistent facts, created once (kAlreadyExists is success),
//                               the oldest trimmed beyond `events_retention`
//   clusters/<c>/control/switchover  read only, watched (switchover.h)
//   clusters/<c>/master         read only (for fencing): the record and its children's names,
//                               to tell which vouchers are bound to it (common/model/voucher.h)
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

#include "common/model/cluster_model.h"
#include "common/base/status.h"
#include "common/model/zk_paths.h"
#include "common/zk/zk_session.h"
#include "pollers/observation.h"

namespace pgherald::pollers {

using SessionFactory = zk::SessionFactory;

// The master znode as one read saw it: the record decoded from `bytes` and the names of its
// children that are vouchers bound to exactly those bytes (model::BoundVouchers). Only a record
// with a bound voucher is one an orchestrator leader verified and still vouches for; anything else
// (hand-written, replayed, legacy vouchers only) is unverified and fences nothing.
struct MasterRead {
  std::optional<model::MasterRecord> record;  // nullopt: no master znode
  std::vector<std::string> bound;             // empty unless record is state ok and vouched
  bool vouched() const { return record.has_value() && !bound.empty(); }
};

class ObservationPublisher {
 public:
  ObservationPublisher(SessionFactory factory, std::string root, std::string cluster,
                       std::string node, int events_retention);

  // Writes `observation_json` to the node's ephemeral znode (creating it when needed).
  Status Publish(const std::string& observation_json);
  // Creates one fact per event; returns the events not yet written (to retry on the next tick),
  // in order, and the first error.
  Status PublishEvents(std::vector<RepmgrEvent>* pending);
  // The published master record and its bound vouchers (Get, then GetChildren: a record rewritten
  // in between has a new digest, so the old record's vouchers cannot bind the bytes read, and the
  // new record's voucher does not bind the old bytes: the race only ever loses a vouch). Record
  // nullopt when the znode is absent; an error when unreadable or corrupt.
  StatusOr<MasterRead> ReadMaster();
  // clusters/<c>/identity's system_identifier ({"format":1,"system_identifier":"..."}, written by
  // the first orchestrator); nullopt while absent.
  StatusOr<std::optional<std::string>> ReadIdentity();
  // clusters/<c>/control/switchover (written only by `pgherald switchover`), nullopt while absent;
  // kInvalidArgument when corrupt. `watch` is armed on the znode (its creation when absent) and
  // fires once on the next change (possibly twice: once for exists, once for get).
  StatusOr<std::optional<model::SwitchoverRecord>> ReadSwitchover(zk::Watcher watch);

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
  model::ClusterPaths paths_;
  std::string node_path_;
  std::string events_path_;
  int retention_;
  std::unique_ptr<zk::ZkSession> session_;
  bool paths_ready_ = false;
  enum class NodeState { kUnknown, kOurs } node_state_ = NodeState::kUnknown;
  bool new_session_ = false;
  int created_since_trim_ = 0;
};

}  // namespace pgherald::pollers
