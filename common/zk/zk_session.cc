#include "common/zk/zk_session.h"

namespace pgherald::zk {

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kConnecting: return "connecting";
    case SessionState::kConnected: return "connected";
    case SessionState::kExpired: return "expired";
    case SessionState::kAuthFailed: return "auth_failed";
    case SessionState::kClosed: return "closed";
  }
  return "unknown";
}

bool IsFinal(SessionState state) {
  return state == SessionState::kExpired || state == SessionState::kAuthFailed ||
         state == SessionState::kClosed;
}

Status StateError(SessionState state) {
  switch (state) {
    case SessionState::kConnected: return Status::Ok();
    case SessionState::kConnecting:
      return Status(StatusCode::kConnectionLoss, "not connected to ZooKeeper");
    case SessionState::kExpired:
      return Status(StatusCode::kSessionExpired, "ZooKeeper session expired");
    case SessionState::kAuthFailed:
      return Status(StatusCode::kPermissionDenied, "ZooKeeper authentication failed");
    case SessionState::kClosed: return Unavailable("ZooKeeper session closed");
  }
  return Internal("unknown session state");
}

const char* EventTypeName(EventType type) {
  switch (type) {
    case EventType::kCreated: return "created";
    case EventType::kDeleted: return "deleted";
    case EventType::kDataChanged: return "data_changed";
    case EventType::kChildrenChanged: return "children_changed";
    case EventType::kNotWatching: return "not_watching";
  }
  return "unknown";
}

std::string JoinPath(const std::string& parent, const std::string& child) {
  if (parent.empty() || parent == "/") return "/" + child;
  return parent + "/" + child;
}

std::string ParentPath(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos || pos == 0) return "/";
  return path.substr(0, pos);
}

StatusOr<std::string> ZkSession::CreateWithAcl(const std::string&, const std::string&, CreateMode,
                                               const Acl&) {
  return FailedPrecondition("CreateWithAcl is not supported by this session");
}
StatusOr<AclData> ZkSession::GetAcl(const std::string&) {
  return FailedPrecondition("GetAcl is not supported by this session");
}
Status ZkSession::SetAcl(const std::string&, const Acl&) {
  return FailedPrecondition("SetAcl is not supported by this session");
}

Status ZkSession::GetAsync(const std::string&, Watcher, GetDone, WatchDelivery) {
  return FailedPrecondition("GetAsync is not supported by this session");
}
Status ZkSession::ExistsAsync(const std::string&, Watcher, ExistsDone, WatchDelivery) {
  return FailedPrecondition("ExistsAsync is not supported by this session");
}
Status ZkSession::GetChildrenAsync(const std::string&, Watcher, ChildrenDone, WatchDelivery) {
  return FailedPrecondition("GetChildrenAsync is not supported by this session");
}
Status ZkSession::MultiAsync(const std::vector<Op>&, MultiDone) {
  return FailedPrecondition("MultiAsync is not supported by this session");
}

Status EnsurePath(ZkSession& zk, const std::string& path) {
  if (path.empty() || path == "/") return Status::Ok();
  if (path[0] != '/') return InvalidArgument("znode path must start with '/': " + path);
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    std::string prefix = pos == std::string::npos ? path : path.substr(0, pos);
    auto created = zk.Create(prefix, "", CreateMode::kPersistent);
    if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
      // Connection loss: the create may have been applied; NoAuth: the node may exist (the
      // parent's ACL is checked first). Confirm by reading.
      if (created.status().code() == StatusCode::kConnectionLoss ||
          created.status().code() == StatusCode::kPermissionDenied) {
        auto exists = zk.Exists(prefix);
        if (!exists.ok() || !exists->has_value()) return created.status();
      } else {
        return created.status();
      }
    }
    if (pos == std::string::npos) break;
  }
  return Status::Ok();
}

}  // namespace pgherald::zk
