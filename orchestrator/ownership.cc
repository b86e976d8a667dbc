#include "orchestrator/ownership.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "common/model/zk_paths.h"
#include "common/zk/answers.h"

namespace pgherald::orchestrator {
namespace {

// splitmix64's finalizer: spreads FNV's low-entropy differences over all 64 bits.
std::uint64_t Mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::uint64_t OwnershipScore(const std::string& cluster, const std::string& member) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  auto feed = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  };
  feed(cluster);
  h ^= 0xff;  // a separator no name holds: ("ab","c") and ("a","bc") differ
  h *= 0x100000001b3ULL;
  feed(member);
  return Mix(h);
}

std::string PickOwner(const std::string& cluster, const std::vector<std::string>& members) {
  std::string best;
  std::uint64_t best_score = 0;
  for (const std::string& m : members) {
    const std::uint64_t s = OwnershipScore(cluster, m);
    if (best.empty() || s > best_score || (s == best_score && m < best)) {
      best = m;
      best_score = s;
    }
  }
  return best;
}

std::string PickSuccessor(const std::string& cluster, const std::vector<std::string>& members) {
  const std::string first = PickOwner(cluster, members);
  std::string best;
  std::uint64_t best_score = 0;
  for (const std::string& m : members) {
    if (m == first) continue;
    const std::uint64_t s = OwnershipScore(cluster, m);
    if (best.empty() || s > best_score || (s == best_score && m < best)) {
      best = m;
      best_score = s;
    }
  }
  return best;
}

const char* OwnerStepName(OwnerStep step) {
  switch (step) {
    case OwnerStep::kNone: return "none";
    case OwnerStep::kQueue: return "queue";
    case OwnerStep::kWait: return "wait";
    case OwnerStep::kOwn: return "own";
    case OwnerStep::kResign: return "resign";
  }
  return "?";
}

OwnerPlan PlanOwnership(const std::string& cluster, const std::vector<std::string>& members,
                        const std::vector<std::string>& queue, const std::string& self) {
  OwnerPlan plan;
  plan.picked = PickOwner(cluster, members);
  plan.successor = PickSuccessor(cluster, members);
  const std::vector<OwnerCandidate> candidates = model::SortedCandidates(queue);
  if (!candidates.empty()) plan.owner = candidates.front().guid;
  const auto own = std::find_if(candidates.begin(), candidates.end(),
                                [&self](const OwnerCandidate& c) { return c.guid == self; });
  const bool picked = !self.empty() && plan.picked == self;
  if (own == candidates.end()) {
    plan.step = picked ? OwnerStep::kQueue : OwnerStep::kNone;
    return plan;
  }
  plan.own_name = own->name;
  if (own != candidates.begin()) {
    plan.step = picked ? OwnerStep::kWait : OwnerStep::kResign;
    return plan;
  }
  if (picked) {
    plan.step = OwnerStep::kOwn;
    return plan;
  }
  // The owner no longer picked hands over only once the picked member is in the queue: until
  // then nobody would own the cluster.
  const bool successor_queued =
      std::any_of(candidates.begin(), candidates.end(),
                  [&plan](const OwnerCandidate& c) { return c.guid == plan.picked; });
  plan.step = successor_queued ? OwnerStep::kResign : OwnerStep::kOwn;
  return plan;
}

ClusterOwnership::ClusterOwnership(zk::ZkSession* session, std::string root, std::string guid,
                                   std::string id, WatchHooks hooks)
    : session_(session),
      root_(std::move(root)),
      guid_(std::move(guid)),
      id_(std::move(id)),
      hooks_(std::move(hooks)) {}

std::string ClusterOwnership::OwnersPath(const std::string& cluster) const {
  return model::ClusterPaths(root_, cluster).Owners();
}

Status ClusterOwnership::RefreshMembers() {
  static const std::string kKey = "members";
  if (members_valid_ && hooks_.armed(kKey)) return Status::Ok();
  auto children = session_->GetChildren(model::RootPaths(root_).Election(), hooks_.watch_once(kKey));
  if (!children.ok()) {
    hooks_.disarm(kKey);
    members_valid_ = false;
    return children.status();
  }
  std::vector<std::string> members;
  for (const std::string& name : *children) {
    std::string guid = MemberGuid(name);
    if (!guid.empty() && std::find(members.begin(), members.end(), guid) == members.end()) {
      members.push_back(std::move(guid));
    }
  }
  members_ = std::move(members);
  members_valid_ = true;
  return Status::Ok();
}

Status ClusterOwnership::ReadQueue(const std::string& cluster, Queue& q) {
  const std::string key = "owners:" + cluster;
  if (q.valid && hooks_.armed(key)) return Status::Ok();
  auto children = session_->GetChildren(OwnersPath(cluster), hooks_.watch_once(key));
  if (!children.ok()) {
    hooks_.disarm(key);
    q.valid = false;
    if (children.status().code() == StatusCode::kNotFound) q.ensured = false;
    return children.status();
  }
  q.children = std::move(*children);
  q.valid = true;
  return Status::Ok();
}

void ClusterOwnership::PrefetchQueues(const std::vector<std::string>& clusters) {
  auto answers = std::make_shared<zk::Answers<StatusOr<std::vector<std::string>>>>();
  std::vector<std::string> sent;  // the cluster of each read, in order
  for (const std::string& cluster : clusters) {
    const std::string key = "owners:" + cluster;
    auto it = queues_.find(cluster);
    // Only queues known to exist (Refresh ensures the path first) whose cache is stale.
    if (it == queues_.end() || !it->second.ensured) continue;
    if (it->second.valid && hooks_.armed(key)) continue;
    zk::Watcher watch = hooks_.watch_once(key);
    if (watch == nullptr) continue;  // a watch pending on a stale cache: left to Refresh
    const std::size_t slot = answers->Add();
    sent.push_back(cluster);
    const Status s = session_->GetChildrenAsync(
        OwnersPath(cluster), std::move(watch),
        [answers, slot](StatusOr<std::vector<std::string>> got) { answers->Put(slot, std::move(got)); });
    if (!s.ok()) answers->Put(slot, s);  // not sent: `done` never runs
  }
  if (sent.empty()) return;
  const auto got = answers->Wait(session_->session_timeout());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    Queue& q = queues_[sent[i]];
    if (got[i].has_value() && got[i]->ok()) {
      q.children = **got[i];
      q.valid = true;
    } else {
      hooks_.disarm("owners:" + sent[i]);  // no watch armed: Refresh reads it again
      q.valid = false;
    }
  }
  QueueWherePicked(sent);
}

void ClusterOwnership::QueueWherePicked(const std::vector<std::string>& clusters) {
  auto answers = std::make_shared<zk::Answers<StatusOr<zk::MultiResult>>>();
  std::vector<std::string> sent;
  for (const std::string& cluster : clusters) {
    Queue& q = queues_[cluster];
    if (!q.valid || PlanOwnership(cluster, members_, q.children, guid_).step != OwnerStep::kQueue) {
      continue;
    }
    const std::size_t slot = answers->Add();
    sent.push_back(cluster);
    const model::ClusterPaths paths(root_, cluster);
    const Status s = session_->MultiAsync(
        {zk::Op::Create(paths.OwnerPrefix(guid_), CandidateData(), zk::CreateMode::kEphemeralSequential)},
        [answers, slot](StatusOr<zk::MultiResult> result, int) {
          answers->Put(slot, std::move(result));
        });
    if (!s.ok()) answers->Put(slot, s);  // not sent: `done` never runs
  }
  if (sent.empty()) return;
  const auto got = answers->Wait(session_->session_timeout());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    Queue& q = queues_[sent[i]];
    if (got[i].has_value() && got[i]->ok() && (**got[i]).results.size() == 1) {
      const std::string& made = (**got[i]).results[0].created_path;
      q.children.push_back(made.substr(made.rfind('/') + 1));
    } else {
      // Unanswered or lost: the create may have landed; the next read finds it by the guid
      // (Refresh reads the queue again, and queues only if it is not there).
      q.valid = false;
    }
  }
}

StatusOr<OwnerPlan> ClusterOwnership::Refresh(const std::string& cluster, bool may_resign) {
  Queue& q = queues_[cluster];
  q.first = false;
  if (!q.ensured) {
    PGH_RETURN_IF_ERROR(zk::EnsurePath(*session_, OwnersPath(cluster)));
    q.ensured = true;
  }
  const model::ClusterPaths paths(root_, cluster);
  // At most a few passes: queueing or resigning changes the queue, which is planned again.
  for (int pass = 0; pass < 4; ++pass) {
    PGH_RETURN_IF_ERROR(ReadQueue(cluster, q));
    OwnerPlan plan = PlanOwnership(cluster, members_, q.children, guid_);
    q.own_name = plan.own_name;
    if (plan.step == OwnerStep::kQueue) {
      auto created = session_->Create(paths.OwnerPrefix(guid_), CandidateData(),
                                      zk::CreateMode::kEphemeralSequential);
      if (!created.ok()) {
        // kConnectionLoss: the create may have landed; the next read finds it by the guid.
        q.valid = false;
        return created.status();
      }
      q.children.push_back(created->substr(created->rfind('/') + 1));
      continue;
    }
    if (plan.step == OwnerStep::kResign && may_resign) {
      Status s = session_->Delete(paths.OwnerCandidate(plan.own_name));
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        q.valid = false;
        return s;
      }
      q.children.erase(std::remove(q.children.begin(), q.children.end(), plan.own_name),
                       q.children.end());
      q.own_name.clear();
      continue;
    }
    q.first = !plan.own_name.empty() && plan.owner == guid_;
    return plan;
  }
  q.valid = false;
  return Status(StatusCode::kUnavailable, "ownership: queue of " + cluster + " kept changing");
}

bool ClusterOwnership::Owns(const std::string& cluster) const {
  const auto it = queues_.find(cluster);
  return it != queues_.end() && it->second.first && !it->second.own_name.empty() &&
         session_->state() == zk::SessionState::kConnected && session_->has_lease();
}

std::string ClusterOwnership::CandidatePath(const std::string& cluster) const {
  const auto it = queues_.find(cluster);
  if (it == queues_.end() || it->second.own_name.empty()) return "";
  return model::ClusterPaths(root_, cluster).OwnerCandidate(it->second.own_name);
}

std::string ClusterOwnership::OwnerOf(const std::string& cluster) const {
  const auto it = queues_.find(cluster);
  if (it == queues_.end() || !it->second.valid) return "";
  return PlanOwnership(cluster, {}, it->second.children, "").owner;
}

void ClusterOwnership::Resign(const std::string& cluster) {
  const auto it = queues_.find(cluster);
  if (it == queues_.end()) return;
  if (!it->second.own_name.empty()) {
    (void)session_->Delete(model::ClusterPaths(root_, cluster).OwnerCandidate(it->second.own_name));
  }
  queues_.erase(it);
}

void ClusterOwnership::ResignAll() {
  while (!queues_.empty()) Resign(queues_.begin()->first);
}

}  // namespace pgherald::orchestrator
