#include "pollers/publisher.h"

#include <algorithm>
#include <utility>

#include "common/logging.h"
#include "common/model/voucher.h"

namespace pgherald::pollers {
namespace {

const log::Logger& Log() {
  static const log::Logger logger("poller");
  return logger;
}

}  // namespace

ObservationPublisher::ObservationPublisher(SessionFactory factory, std::string root,
                                           std::string cluster, std::string node,
                                           int events_retention)
    : factory_(std::move(factory)),
      paths_(std::move(root), std::move(cluster)),
      node_path_(paths_.Node(node)),
      events_path_(paths_.Events()),
      retention_(events_retention) {}

std::int64_t ObservationPublisher::session_id() const {
  return session_ ? session_->session_id() : 0;
}

bool ObservationPublisher::TakeNewSession() { return std::exchange(new_session_, false); }

void ObservationPublisher::CheckExpired(const Status& status) {
  if (status.code() == StatusCode::kConnectionLoss) node_state_ = NodeState::kUnknown;
  if (session_ && (status.code() == StatusCode::kSessionExpired || zk::IsFinal(session_->state()))) {
    Log().Warn("zk_session_lost",
               {{"session", session_->session_id()}, {"state", zk::SessionStateName(session_->state())}});
    // Close() of a dead session returns at once (it may block only on a live connection).
    session_->Close();
    session_.reset();
  }
}

Status ObservationPublisher::EnsureSession() {
  if (session_ && zk::IsFinal(session_->state())) CheckExpired(Status::Ok());
  if (!session_) {
    PGH_ASSIGN_OR_RETURN(session_, factory_());
    paths_ready_ = false;
    node_state_ = NodeState::kUnknown;
    new_session_ = true;
    Log().Info("zk_session_started", {{"session", session_->session_id()}});
  }
  if (!paths_ready_) {
    for (const auto& p : {paths_.Nodes(), events_path_}) {
      if (Status s = zk::EnsurePath(*session_, p); !s.ok()) {
        CheckExpired(s);
        return s;
      }
    }
    paths_ready_ = true;
  }
  return Status::Ok();
}

Status ObservationPublisher::Publish(const std::string& observation_json) {
  PGH_RETURN_IF_ERROR(EnsureSession());
  if (node_state_ == NodeState::kUnknown) {
    // Reconcile: after connection loss a Create may have happened, or not.
    auto got = session_->Get(node_path_);
    if (got.ok()) {
      if (got->stat.ephemeral_owner != session_->session_id()) {
        return FailedPrecondition(
            node_path_ + " is held by session " + std::to_string(got->stat.ephemeral_owner) +
            " (an earlier poller of this node whose session has not expired yet, or a second "
            "poller with the same poller.node); waiting for it to vanish");
      }
      node_state_ = NodeState::kOurs;
    } else if (got.status().code() == StatusCode::kNotFound) {
      auto created = session_->Create(node_path_, observation_json, zk::CreateMode::kEphemeral);
      if (created.ok()) {
        node_state_ = NodeState::kOurs;
        Log().Info("observation_znode_created",
                   {{"path", node_path_}, {"session", session_->session_id()}});
        return Status::Ok();
      }
      CheckExpired(created.status());
      // kAlreadyExists: someone created it meanwhile; the next call re-reads its owner.
      return created.status();
    } else {
      CheckExpired(got.status());
      return got.status();
    }
  }
  auto set = session_->Set(node_path_, observation_json);
  if (set.ok()) return Status::Ok();
  if (set.status().code() == StatusCode::kNotFound) {
    node_state_ = NodeState::kUnknown;  // deleted under us: create it on the next call
  }
  CheckExpired(set.status());
  return set.status();
}

Status ObservationPublisher::PublishEvents(std::vector<RepmgrEvent>* pending) {
  if (pending->empty()) return Status::Ok();
  PGH_RETURN_IF_ERROR(EnsureSession());
  size_t done = 0;
  Status result;
  for (; done < pending->size(); ++done) {
    const RepmgrEvent& e = (*pending)[done];
    const std::string path = paths_.Event(e.ZnodeName());
    auto created = session_->Create(path, e.ToJson(), zk::CreateMode::kPersistent);
    if (created.ok()) {
      ++created_since_trim_;
      Log().Info("event_published", {{"event", e.key.event},
                                     {"node_id", e.key.node_id},
                                     {"source", e.source},
                                     {"znode", e.ZnodeName()}});
      continue;
    }
    if (created.status().code() == StatusCode::kAlreadyExists) continue;  // another poller did
    if (created.status().code() == StatusCode::kConnectionLoss) {
      // Unknown outcome: look before writing again (next tick, once connected).
      auto exists = session_->Exists(path);
      if (exists.ok() && exists->has_value()) continue;
    }
    CheckExpired(created.status());
    result = created.status();
    break;
  }
  pending->erase(pending->begin(), pending->begin() + static_cast<std::ptrdiff_t>(done));
  if (result.ok() && created_since_trim_ > 0) {
    if (Status s = Trim(); !s.ok()) result = s;
  }
  return result;
}

Status ObservationPublisher::Trim() {
  auto children = session_->GetChildren(events_path_);
  if (!children.ok()) {
    CheckExpired(children.status());
    return children.status();
  }
  created_since_trim_ = 0;
  std::vector<std::string> names = *children;  // sorted; names sort by time
  if (static_cast<int>(names.size()) <= retention_) return Status::Ok();
  const size_t excess = names.size() - static_cast<size_t>(retention_);
  for (size_t i = 0; i < excess; ++i) {
    Status s = session_->Delete(paths_.Event(names[i]));
    // kNotFound: another poller trimmed it first.
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      CheckExpired(s);
      return s;
    }
  }
  return Status::Ok();
}

StatusOr<MasterRead> ObservationPublisher::ReadMaster() {
  PGH_RETURN_IF_ERROR(EnsureSession());
  auto got = session_->Get(paths_.Master());
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return MasterRead{};
    CheckExpired(got.status());
    return got.status();
  }
  auto record = model::MasterRecord::FromJson(got->data);
  if (!record.ok()) return InvalidArgument(paths_.Master() + ": " + record.status().message());
  MasterRead read;
  read.record = std::move(*record);
  if (read.record->state != model::MasterState::kOk) return read;  // nothing to bind
  auto children = session_->GetChildren(paths_.Master());
  if (!children.ok()) {
    // Deleted since the Get: no voucher. Anything else: the read failed (no fence, no confirmation
    // from half a read).
    if (children.status().code() == StatusCode::kNotFound) return read;
    CheckExpired(children.status());
    return children.status();
  }
  read.bound = model::BoundVouchers(*children, *read.record, got->data);
  return read;
}

StatusOr<std::optional<std::string>> ObservationPublisher::ReadIdentity() {
  PGH_RETURN_IF_ERROR(EnsureSession());
  auto got = session_->Get(paths_.Identity());
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return std::optional<std::string>();
    CheckExpired(got.status());
    return got.status();
  }
  auto sysid = model::ParseIdentity(got->data);
  if (!sysid.ok()) return InvalidArgument(paths_.Identity() + ": " + sysid.status().message());
  return std::optional<std::string>(std::move(*sysid));
}

StatusOr<std::optional<model::SwitchoverRecord>> ObservationPublisher::ReadSwitchover(
    zk::Watcher watch) {
  PGH_RETURN_IF_ERROR(EnsureSession());
  const std::string path = paths_.Switchover();
  // getData leaves no watch on an absent znode: exists does (it fires on the creation).
  auto exists = session_->Exists(path, watch);
  if (!exists.ok()) {
    CheckExpired(exists.status());
    return exists.status();
  }
  if (!exists->has_value()) return std::optional<model::SwitchoverRecord>();
  auto got = session_->Get(path, std::move(watch));
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return std::optional<model::SwitchoverRecord>();
    CheckExpired(got.status());
    return got.status();
  }
  auto record = model::SwitchoverRecord::FromJson(got->data);
  if (!record.ok()) return InvalidArgument(path + ": " + record.status().message());
  record->version = got->stat.version;
  return std::optional<model::SwitchoverRecord>(std::move(*record));
}

}  // namespace pgherald::pollers
