#include "orchestrator/election.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>

namespace pgherald::orchestrator {

LeaderElection::LeaderElection(zk::ZkSession* session, std::string election_path, std::string guid,
                               std::function<void()> on_change, std::string data)
    : session_(session),
      election_path_(std::move(election_path)),
      guid_(std::move(guid)),
      on_change_(std::move(on_change)),
      data_(data.empty() ? guid_ : std::move(data)) {}

std::string LeaderElection::NewGuid() {
  std::random_device rd;
  std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

long long LeaderElection::SequenceOf(const std::string& name) {
  const auto dash = name.rfind('-');
  if (name.rfind("n-", 0) != 0 || dash == std::string::npos || dash + 1 >= name.size()) return -1;
  long long seq = 0;
  for (std::size_t i = dash + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    seq = seq * 10 + (name[i] - '0');
  }
  return seq;
}

Status LeaderElection::FindOrCreateOwn(std::vector<std::string>* children) {
  if (!own_name_.empty() &&
      std::find(children->begin(), children->end(), own_name_) != children->end()) {
    return Status::Ok();
  }
  // Ours may exist already: a create whose answer was lost to connection loss.
  const std::string prefix = "n-" + guid_ + "-";
  for (const std::string& c : *children) {
    if (c.rfind(prefix, 0) == 0) {
      own_name_ = c;
      own_path_ = zk::JoinPath(election_path_, c);
      return Status::Ok();
    }
  }
  own_name_.clear();
  own_path_.clear();
  auto created =
      session_->Create(zk::JoinPath(election_path_, prefix), data_, zk::CreateMode::kEphemeralSequential);
  // kConnectionLoss: the create may have landed; the next Refresh finds it by the guid.
  if (!created.ok()) return created.status();
  own_path_ = *created;
  own_name_ = own_path_.substr(own_path_.rfind('/') + 1);
  children->push_back(own_name_);
  return Status::Ok();
}

Status LeaderElection::Refresh() {
  first_ = false;
  if (!path_ensured_) {
    PGH_RETURN_IF_ERROR(zk::EnsurePath(*session_, election_path_));
    path_ensured_ = true;
  }
  // At most a few passes: a predecessor that vanishes between the read and the watch means
  // re-reading (it may have made us first).
  for (int pass = 0; pass < 8; ++pass) {
    PGH_ASSIGN_OR_RETURN(std::vector<std::string> children, session_->GetChildren(election_path_));
    PGH_RETURN_IF_ERROR(FindOrCreateOwn(&children));

    std::vector<std::string> candidates;
    for (const std::string& c : children) {
      if (SequenceOf(c) >= 0) candidates.push_back(c);
    }
    std::sort(candidates.begin(), candidates.end(), [](const std::string& a, const std::string& b) {
      return SequenceOf(a) < SequenceOf(b);
    });
    const auto it = std::find(candidates.begin(), candidates.end(), own_name_);
    if (it == candidates.end()) return Internal("election: own candidate " + own_name_ + " missing");
    if (it == candidates.begin()) {
      first_ = true;
      return Status::Ok();
    }
    const std::string predecessor = *(it - 1);
    if (predecessor == watched_ && watch_armed_->load()) return Status::Ok();
    auto armed = std::make_shared<std::atomic<bool>>(true);
    auto on_change = on_change_;
    auto exists = session_->Exists(zk::JoinPath(election_path_, predecessor),
                                   [armed, on_change](const zk::WatchEvent&) {
                                     armed->store(false);
                                     if (on_change) on_change();
                                   });
    if (!exists.ok()) return exists.status();
    watch_armed_ = armed;
    watched_ = predecessor;
    if (exists->has_value()) return Status::Ok();
    // Gone meanwhile. The watch stays armed for a creation that never comes; forget it.
    armed->store(false);
  }
  return Status(StatusCode::kUnavailable, "election: candidates kept changing; retry next round");
}

bool LeaderElection::IsLeader() const {
  return first_ && !own_path_.empty() && session_->state() == zk::SessionState::kConnected &&
         session_->has_lease();
}

void LeaderElection::Resign() {
  if (own_path_.empty()) return;
  (void)session_->Delete(own_path_);
  own_path_.clear();
  own_name_.clear();
  first_ = false;
}

}  // namespace pgherald::orchestrator
