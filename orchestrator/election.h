// LeaderElection: one orchestrator's candidacy in orchestrators/election, on one ZkSession.
//
// The orchestrator uses it as the member registry of cluster ownership (orchestrator/ownership.h):
// the candidates are the live orchestrators; who is first has no power over any cluster there
// (every write is fenced by the cluster's own ownership queue). IsLeader() remains for tools and
// tests that want one leader.
//
// Each candidate owns an ephemeral sequential znode n-<guid>-<seq>. The candidate with the lowest
// sequence number leads; every other one watches only its predecessor (no herd effect). The guid
// makes the candidate's own znode recognisable after a create whose outcome was lost to connection
// loss: the election is re-read and the znode found by its guid instead of creating a second one.
//
// Leadership is never trusted from the znode alone: IsLeader() also requires the session to be
// connected and to hold its lease (ZkSession::has_lease), because a partitioned client reports
// CONNECTING, not EXPIRED, while the server may already have expired it and elected another
// leader. The writes a leader makes carry a Check of own_path() (see publishers/zk_publisher.h),
// so even a leader that is wrong about itself cannot land a write.
//
// Threads: not thread-safe; one thread (the orchestrator's loop) calls it. `on_change` is invoked
// on the session's dispatch thread and must only wake that loop.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/zk/zk_session.h"

namespace pgherald::orchestrator {

class LeaderElection {
 public:
  // `election_path` is e.g. "/pgherald/orchestrators/election"; `guid` must be unique among the
  // candidates ([0-9a-z] only; NewGuid() makes one). `session` must outlive this object. `data`
  // is the candidate znode's data ("" for the guid alone; the orchestrator writes
  // {"guid":...,"id":...}: readers accept both).
  LeaderElection(zk::ZkSession* session, std::string election_path, std::string guid,
                 std::function<void()> on_change, std::string data = "");

  // A fresh random guid (16 hex digits).
  static std::string NewGuid();

  // Makes sure this candidate has its znode and arms the watch on its predecessor (once; it is
  // re-armed after it fires). Call it every round: it re-reads the candidates (one GetChildren).
  // Errors: kConnectionLoss (try again next round), kSessionExpired (build a new session and a
  // new LeaderElection on it).
  Status Refresh();

  // True only while this candidate's znode is the first, the session is connected and the lease
  // holds, as of the last Refresh() and now.
  bool IsLeader() const;
  // Whether the last Refresh() found this candidate first (ignores the session's state).
  bool first() const { return first_; }
  // The full path of this candidate's znode, "" until it exists.
  const std::string& own_path() const { return own_path_; }
  const std::string& guid() const { return guid_; }

  // Deletes this candidate's znode (best effort), e.g. on shutdown, so a successor takes over at
  // once instead of after the session timeout.
  void Resign();

  // The sequence number of a candidate name n-<guid>-<seq>; -1 if the name is not one.
  static long long SequenceOf(const std::string& name);

 private:
  Status FindOrCreateOwn(std::vector<std::string>* children);

  zk::ZkSession* session_;
  std::string election_path_;
  std::string guid_;
  std::function<void()> on_change_;
  std::string data_;
  std::string own_name_;
  std::string own_path_;
  bool first_ = false;
  std::string watched_;  // the predecessor whose deletion watch is armed, "" for none
  // Cleared by the watcher (dispatch thread) when it fires.
  std::shared_ptr<std::atomic<bool>> watch_armed_ = std::make_shared<std::atomic<bool>>(false);
  bool path_ensured_ = false;
};

}  // namespace pgherald::orchestrator
