#include "publishers/zk_publisher.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/json_fields.h"

namespace pgherald::publishers {
namespace {

using nlohmann::json;

std::string VoucherJson(const std::string& id, const model::MasterRecord& record) {
  json j;
  j["format"] = model::kFormat;
  j["orchestrator"] = id;
  j["epoch"] = record.epoch;
  j["node"] = record.node;
  j["verified_at"] = record.verified_at_ms;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

StatusOr<ControlState> ParseControl(std::string_view text) {
  static const std::string kPayload = "control";
  json j;
  PGH_RETURN_IF_ERROR(jsonf::ParseObject(text, kPayload, &j));
  jsonf::FieldReader f(j, kPayload, "");
  using jsonf::Need;
  ControlState c;
  PGH_RETURN_IF_ERROR(f.Bool("paused", &c.paused, Need::kOptional));
  // For people only: sanitized and cut, never refused.
  PGH_RETURN_IF_ERROR(f.Text("reason", &c.reason, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(f.Text("changed_by", &c.changed_by, Need::kOptional, kMaxControlTextLength));
  PGH_RETURN_IF_ERROR(f.I64("changed_at", &c.changed_at_ms, Need::kOptional));
  return c;
}

std::string ControlToJson(const ControlState& control) {
  json j;
  j["format"] = model::kFormat;
  j["paused"] = control.paused;
  if (!control.reason.empty()) j["reason"] = control.reason;
  if (!control.changed_by.empty()) j["changed_by"] = control.changed_by;
  if (control.changed_at_ms != 0) j["changed_at"] = control.changed_at_ms;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const char* WriteOutcomeName(WriteOutcome outcome) {
  switch (outcome) {
    case WriteOutcome::kApplied: return "applied";
    case WriteOutcome::kRejected: return "rejected";
    case WriteOutcome::kUnknown: return "unknown";
  }
  return "unknown";
}

ZkPublisher::ZkPublisher(zk::ZkSession* session, std::string root, std::string orchestrator_id,
                         int history_limit)
    : session_(session),
      root_(std::move(root)),
      id_(std::move(orchestrator_id)),
      history_limit_(std::max(1, history_limit)) {}

std::string ZkPublisher::ClusterPath(const std::string& c) const {
  return zk::JoinPath(zk::JoinPath(root_, "clusters"), c);
}
std::string ZkPublisher::MasterPath(const std::string& c) const { return ClusterPath(c) + "/master"; }
std::string ZkPublisher::NodesPath(const std::string& c) const { return ClusterPath(c) + "/nodes"; }
std::string ZkPublisher::HistoryPath(const std::string& c) const { return ClusterPath(c) + "/history"; }
std::string ZkPublisher::ControlPath(const std::string& c) const { return ClusterPath(c) + "/control"; }
std::string ZkPublisher::IdentityPath(const std::string& c) const { return ClusterPath(c) + "/identity"; }
std::string ZkPublisher::VoucherPath(const std::string& c) const { return zk::JoinPath(MasterPath(c), id_); }

Status ZkPublisher::EnsureCluster(const std::string& cluster) {
  if (Status s = zk::EnsurePath(*session_, NodesPath(cluster)); !s.ok()) return s;
  if (Status s = zk::EnsurePath(*session_, HistoryPath(cluster)); !s.ok()) return s;
  auto exists = session_->Exists(MasterPath(cluster));
  if (!exists.ok()) return exists.status();
  if (exists->has_value()) return Status::Ok();
  model::MasterRecord initial;  // state no-master, epoch 0
  auto created = session_->Create(MasterPath(cluster), initial.ToJson(), zk::CreateMode::kPersistent);
  if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) return created.status();
  return Status::Ok();
}

StatusOr<MasterZnode> ZkPublisher::ReadMaster(const std::string& cluster, zk::Watcher watch) {
  const std::string path = MasterPath(cluster);
  auto got = session_->Get(path, std::move(watch));
  if (!got.ok()) return got.status();
  MasterZnode m;
  m.version = got->stat.version;
  m.mzxid = got->stat.mzxid;
  if (got->data.empty()) {
    // Created bare by someone's EnsurePath: the initial record.
    m.record = model::MasterRecord{};
  } else {
    auto record = model::MasterRecord::FromJson(got->data);
    if (!record.ok()) return InvalidArgument(path + ": " + record.status().message());
    m.record = std::move(*record);
  }
  if (got->stat.num_children > 0) {
    auto children = session_->GetChildren(path);
    if (!children.ok()) return children.status();
    m.vouchers = std::move(*children);
  }
  return m;
}

StatusOr<std::optional<std::string>> ZkPublisher::ReadIdentity(const std::string& cluster) {
  const std::string path = IdentityPath(cluster);
  auto got = session_->Get(path);
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return std::optional<std::string>();
    return got.status();
  }
  auto sysid = model::ParseIdentity(got->data);
  if (!sysid.ok()) return InvalidArgument(path + ": " + sysid.status().message());
  return std::optional<std::string>(std::move(*sysid));
}

Status ZkPublisher::RecordIdentity(const std::string& cluster, const std::string& sysid) {
  auto created = session_->Create(IdentityPath(cluster), model::IdentityToJson(sysid),
                                  zk::CreateMode::kPersistent);
  if (created.ok()) return Status::Ok();
  if (created.status().code() != StatusCode::kAlreadyExists &&
      created.status().code() != StatusCode::kConnectionLoss) {
    return created.status();
  }
  // Exists, or perhaps created by our lost call: read what is there.
  auto recorded = ReadIdentity(cluster);
  if (!recorded.ok()) return recorded.status();
  if (!recorded->has_value()) return Status(StatusCode::kConnectionLoss, "identity not recorded yet");
  if (**recorded != sysid) {
    return FailedPrecondition(IdentityPath(cluster) + " records system_identifier " + **recorded +
                              ", not " + sysid);
  }
  return Status::Ok();
}

StatusOr<ControlState> ZkPublisher::ReadControl(const std::string& cluster, zk::Watcher watch) {
  const std::string path = ControlPath(cluster);
  // Exists first so the watch also covers creation.
  auto exists = session_->Exists(path, std::move(watch));
  if (!exists.ok()) return exists.status();
  if (!exists->has_value()) return ControlState{};
  auto got = session_->Get(path);
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return ControlState{};
    return got.status();
  }
  if (got->data.empty()) return ControlState{};
  auto parsed = ParseControl(got->data);
  if (!parsed.ok()) return InvalidArgument(path + ": " + parsed.status().message());
  return parsed;
}

PublishResult ZkPublisher::Publish(const std::string& cluster, const std::string& election_path,
                                   std::int32_t expected_version, const model::MasterRecord& record,
                                   const model::HistoryEntry& history) {
  PublishResult result;
  if (HasPending(cluster)) {
    result.status = FailedPrecondition("an earlier publish of " + cluster + " is unsettled");
    return result;
  }
  const std::string data = record.ToJson();
  const std::vector<zk::Op> ops = {
      zk::Op::Check(election_path, -1),
      zk::Op::Set(MasterPath(cluster), data, expected_version),
      zk::Op::Create(HistoryPath(cluster) + "/h-", history.ToJson(),
                     zk::CreateMode::kPersistentSequential),
  };
  int failed_op = -1;
  auto multi = session_->Multi(ops, &failed_op);
  if (multi.ok()) {
    result.outcome = WriteOutcome::kApplied;
    result.new_version = multi->results[1].stat.version;
    result.history_path = multi->results[2].created_path;
    return result;
  }
  result.status = multi.status();
  if (multi.status().code() == StatusCode::kConnectionLoss) {
    result.outcome = WriteOutcome::kUnknown;
    pending_[cluster] = Pending{data, expected_version};
    return result;
  }
  result.outcome = WriteOutcome::kRejected;
  if (failed_op == 0) {
    result.status = Status(multi.status().code(),
                           "deposed: election znode " + election_path + " is gone (" +
                               multi.status().message() + ")");
  } else if (failed_op == 1) {
    result.status = Status(multi.status().code(), "master changed since it was read (expected version " +
                                                      std::to_string(expected_version) + "): " +
                                                      multi.status().message());
  }
  return result;
}

WriteOutcome ZkPublisher::Reconcile(const std::string& cluster) {
  auto it = pending_.find(cluster);
  if (it == pending_.end()) return WriteOutcome::kApplied;
  auto got = session_->Get(MasterPath(cluster));
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kSessionExpired) {
      // A new session starts from a fresh read anyway; the CAS guards against a late landing.
      pending_.erase(it);
      return WriteOutcome::kRejected;
    }
    return WriteOutcome::kUnknown;
  }
  // The record carries our id, epoch and verification time: equal data means our multi landed
  // (and with it its history entry). A late landing after this read is still fenced by the version.
  const bool applied = got->data == it->second.data && got->stat.version > it->second.expected_version;
  pending_.erase(it);
  return applied ? WriteOutcome::kApplied : WriteOutcome::kRejected;
}

Status ZkPublisher::Vouch(const std::string& cluster, const std::string& election_path,
                          const model::MasterRecord& record) {
  const std::string path = VoucherPath(cluster);
  const std::string data = VoucherJson(id_, record);
  auto got = session_->Get(path);
  if (got.ok()) {
    if (got->stat.ephemeral_owner == session_->session_id()) {
      if (got->data == data) return Status::Ok();
      return session_->Multi({zk::Op::Check(election_path, -1), zk::Op::Set(path, data, got->stat.version)})
          .status();
    }
    // A voucher of our id held by another session (an earlier session of ours not yet expired):
    // not ours to keep; replace it.
    if (Status s = session_->Delete(path, got->stat.version);
        !s.ok() && s.code() != StatusCode::kNotFound) {
      return s;
    }
  } else if (got.status().code() != StatusCode::kNotFound) {
    return got.status();
  }
  return session_->Multi({zk::Op::Check(election_path, -1),
                          zk::Op::Create(path, data, zk::CreateMode::kEphemeral)})
      .status();
}

Status ZkPublisher::Unvouch(const std::string& cluster) {
  Status s = session_->Delete(VoucherPath(cluster));
  if (s.code() == StatusCode::kNotFound) return Status::Ok();
  return s;
}

Status ZkPublisher::Withdraw(const std::string& cluster, const std::string& election_path,
                             const model::HistoryEntry& history, std::string* history_path) {
  history_path->clear();
  const std::vector<zk::Op> ops = {
      zk::Op::Check(election_path, -1),
      zk::Op::Delete(VoucherPath(cluster)),
      zk::Op::Create(HistoryPath(cluster) + "/h-", history.ToJson(),
                     zk::CreateMode::kPersistentSequential),
  };
  int failed_op = -1;
  auto multi = session_->Multi(ops, &failed_op);
  if (multi.ok()) {
    *history_path = multi->results[2].created_path;
    return Status::Ok();
  }
  if (multi.status().code() == StatusCode::kConnectionLoss) return multi.status();
  if (failed_op == 1 && multi.status().code() == StatusCode::kNotFound) return Status::Ok();
  // Deposed, or the history parent is missing: the voucher still goes.
  return Unvouch(cluster);
}

Status ZkPublisher::TrimHistory(const std::string& cluster) {
  auto children = session_->GetChildren(HistoryPath(cluster));
  if (!children.ok()) return children.status();
  std::vector<std::string> entries = std::move(*children);
  // Zero-padded sequence numbers: name order is creation order.
  std::sort(entries.begin(), entries.end());
  const std::size_t limit = static_cast<std::size_t>(history_limit_);
  for (std::size_t i = 0; i + limit < entries.size(); ++i) {
    Status s = session_->Delete(zk::JoinPath(HistoryPath(cluster), entries[i]));
    if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Ok();
}

}  // namespace pgherald::publishers
