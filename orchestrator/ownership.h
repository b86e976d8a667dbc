// ClusterOwnership: which orchestrator acts on which cluster (docs/orchestrator.md, "Ownership").
//
// The members are the election's candidates (<root>/orchestrators/election/n-<guid>-<seq>, kept
// by LeaderElection: the member registry). Rendezvous hashing over the members' guids picks one
// member per cluster (the highest Score(cluster, guid)); only that member queues for the cluster:
// an ephemeral sequential candidate <root>/clusters/<c>/owners/o-<guid>-<seq>, data
// {"id":"<orchestrator id>","guid":"<guid>"}. The owner is the candidate with the lowest sequence
// number. An owner the hash no longer picks keeps owning until the picked member has queued, then
// resigns (deletes its candidate) between two rounds of the cluster, never with a publish whose
// outcome is unknown: the hand-off leaves no gap. A crashed owner's candidate goes with its
// session. Every fenced write for a cluster checks the owner's own candidate znode (see
// publishers/zk_publisher.h), so a deposed owner cannot land a write.
//
// The pure part (Score, Pick, ParseOwnerCandidate, Plan) decides; ClusterOwnership is the
// ZooKeeper part on one session: members and queues are read with a watch and cached while the
// watch is armed (a join, a leave or a queue change wakes the loop through the hooks), and the own
// candidate is found again by its guid after a create whose answer was lost to connection loss
// (as LeaderElection does).
//
// Ownership is never trusted from the znode alone: Owns() also requires the session to be
// connected and to hold its lease (as LeaderElection::IsLeader).
//
// Threads: not thread-safe; one thread (the orchestrator's loop) calls it. The watchers the hooks
// make run on the session's dispatch thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/model/owner.h"
#include "common/zk/zk_session.h"

namespace pgherald::orchestrator {

// The rendezvous weight of `member` (a guid) for `cluster`: a 64-bit hash of both.
std::uint64_t OwnershipScore(const std::string& cluster, const std::string& member);
// The member the hash picks for `cluster` (highest score, ties by the smaller guid); "" when
// `members` is empty.
std::string PickOwner(const std::string& cluster, const std::vector<std::string>& members);

// The member the hash picks for `cluster` once the picked one has left: the next in line, the
// one that takes the cluster over when its owner crashes. "" with fewer than two members.
std::string PickSuccessor(const std::string& cluster, const std::vector<std::string>& members);

// The names and data (common/model/owner.h).
using model::MemberGuid;
using model::OwnerCandidate;
using model::ParseOwnerCandidate;

// What a member does for one cluster, given the members and the cluster's queue.
enum class OwnerStep {
  kNone,    // not picked, not queued: nothing to do
  kQueue,   // picked, not queued: create the candidate
  kWait,    // picked and queued behind someone: wait for the predecessor to go
  kOwn,     // own candidate first: act on the cluster
  kResign,  // queued but no longer picked (and, as owner, the picked member has queued): delete it
};
const char* OwnerStepName(OwnerStep step);

struct OwnerPlan {
  OwnerStep step = OwnerStep::kNone;
  std::string picked;       // the guid the hash picks
  std::string successor;    // the guid it picks once `picked` has left (PickSuccessor)
  std::string owner;        // the guid of the first candidate, "" for an empty queue
  std::string own_name;     // our candidate's name, "" when not queued
};
// `queue` as listed (any order, names that do not parse are ignored); `self` our guid, which must
// be among `members` for us to queue (a member not registered takes nothing).
OwnerPlan PlanOwnership(const std::string& cluster, const std::vector<std::string>& members,
                        const std::vector<std::string>& queue, const std::string& self);

// Wake-up plumbing the orchestrator's loop provides: a watcher armed at most once per key (nullptr
// when one is pending) that wakes the loop, whether a key's watch is still pending, and forgetting
// a key after a read failed.
struct WatchHooks {
  std::function<zk::Watcher(const std::string& key)> watch_once;
  std::function<bool(const std::string& key)> armed;
  std::function<void(const std::string& key)> disarm;
};

class ClusterOwnership {
 public:
  // `root` e.g. "/pgherald"; `guid` as the election's; `id` the orchestrator's id (candidate
  // data). `session` must outlive this object.
  ClusterOwnership(zk::ZkSession* session, std::string root, std::string guid, std::string id,
                   WatchHooks hooks);

  // Reads the members (the election's children) when their watch fired or was never armed.
  Status RefreshMembers();
  const std::vector<std::string>& members() const { return members_; }

  // One cluster, between two of its rounds: reads its queue (cached while its watch is armed) and
  // carries out the plan: queue, or resign when `may_resign` (false while a publish of the cluster
  // is unsettled). Returns the plan as of after the step.
  StatusOr<OwnerPlan> Refresh(const std::string& cluster, bool may_resign);
  // The queues of `clusters` whose cache is stale (their watch fired: an owner left, a candidate
  // came), read together with the asynchronous call, all sent before any answer is awaited, with
  // the same watches: a batch's ownership steps then find them cached (a takeover's batch reads
  // its queues in one round trip, not one per cluster). A read that failed or did not come within
  // the session timeout leaves the queue to Refresh's own read.
  // Then, for those of them the hash picks us for and where we are not queued (a takeover), the
  // candidates are created together too (QueueWherePicked): Refresh finds them queued.
  void PrefetchQueues(const std::vector<std::string>& clusters);
  // True only while our candidate was first as of the cluster's last Refresh and the session is
  // connected with its lease.
  bool Owns(const std::string& cluster) const;
  // Our candidate's full path for `cluster`, "" when not queued (the fence of its writes).
  std::string CandidatePath(const std::string& cluster) const;
  // The guid of the cluster's owner as of its last Refresh ("" when unknown or none).
  std::string OwnerOf(const std::string& cluster) const;

  // Deletes our candidate for `cluster` (best effort) and forgets the cluster.
  void Resign(const std::string& cluster);
  // Deletes every candidate of ours (clean shutdown).
  void ResignAll();

  // The data of our candidates: {"id":...,"guid":...}.
  std::string CandidateData() const { return model::OwnerData(id_, guid_); }

 private:
  struct Queue {
    std::vector<std::string> children;  // as last read
    bool valid = false;
    bool first = false;
    std::string own_name;
    bool ensured = false;
  };
  std::string OwnersPath(const std::string& cluster) const;
  // Creates our candidate, with one asynchronous multi each sent before any answer is awaited, in
  // the queues of `clusters` whose cached plan says kQueue.
  void QueueWherePicked(const std::vector<std::string>& clusters);
  Status ReadQueue(const std::string& cluster, Queue& q);

  zk::ZkSession* session_;
  std::string root_;
  std::string guid_;
  std::string id_;
  WatchHooks hooks_;
  std::vector<std::string> members_;
  bool members_valid_ = false;
  std::map<std::string, Queue> queues_;
};

}  // namespace pgherald::orchestrator
