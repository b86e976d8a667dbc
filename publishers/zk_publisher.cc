#include "publishers/zk_publisher.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "common/model/voucher.h"

namespace pgherald::publishers {
namespace {

model::VoucherPayload FirstPayload(const std::string& id, const model::MasterRecord& record,
                                   const std::string& digest, std::int64_t affirmed_at_ms) {
  model::VoucherPayload v;
  v.orchestrator = id;
  v.epoch = record.epoch;
  v.node = record.node;
  v.timeline = record.timeline;
  v.digest = digest;
  v.affirmed_at_ms = affirmed_at_ms;
  v.affirm_seq = 1;
  return v;
}

}  // namespace

Status WriteControl(zk::ZkSession& zk, const model::ClusterPaths& paths,
                    const ControlState& control) {
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> cluster, zk.Exists(paths.Cluster()));
  if (!cluster.has_value()) {
    return NotFound("cluster \"" + paths.cluster() + "\" not found (no " + paths.Cluster() +
                    "); `pgherald status` lists the clusters");
  }
  const std::string data = ControlToJson(control);
  auto set = zk.Set(paths.Control(), data);
  if (set.ok()) return Status::Ok();
  if (set.status().code() != StatusCode::kNotFound) return set.status();
  auto created = zk.Create(paths.Control(), data, zk::CreateMode::kPersistent);
  if (created.ok()) return Status::Ok();
  if (created.status().code() == StatusCode::kAlreadyExists) {  // raced with another writer
    return zk.Set(paths.Control(), data).status();
  }
  return created.status();
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

model::ClusterPaths ZkPublisher::Paths(const std::string& cluster) const {
  return model::ClusterPaths(root_, cluster);
}

Status ZkPublisher::EnsureCluster(const std::string& cluster) {
  const model::ClusterPaths paths = Paths(cluster);
  PGH_RETURN_IF_ERROR(zk::EnsurePath(*session_, paths.Nodes()));
  PGH_RETURN_IF_ERROR(zk::EnsurePath(*session_, paths.History()));
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> exists, session_->Exists(paths.Master()));
  if (exists.has_value()) return Status::Ok();
  model::MasterRecord initial;  // state no-master, epoch 0
  auto created = session_->Create(paths.Master(), initial.ToJson(), zk::CreateMode::kPersistent);
  if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) return created.status();
  return Status::Ok();
}

StatusOr<MasterZnode> ZkPublisher::ReadMaster(const std::string& cluster, zk::Watcher watch) {
  auto m = ReadMasterZnode(cluster, std::move(watch));
  if (m.ok() && !m->corrupt.empty()) return InvalidArgument(Paths(cluster).Master() + ": " + m->corrupt);
  return m;
}

StatusOr<MasterZnode> ZkPublisher::ReadMasterZnode(const std::string& cluster, zk::Watcher watch,
                                                    zk::Watcher children_watch) {
  const std::string path = Paths(cluster).Master();
  auto got = session_->Get(path, std::move(watch));
  if (!got.ok()) return got.status();
  std::vector<std::string> vouchers;
  if (children_watch != nullptr || got->stat.num_children > 0) {
    PGH_ASSIGN_OR_RETURN(vouchers, session_->GetChildren(path, std::move(children_watch)));
  }
  return DecodeMasterZnode(std::move(*got), std::move(vouchers));
}

StatusOr<std::optional<std::string>> ZkPublisher::ReadIdentity(const std::string& cluster) {
  const std::string path = Paths(cluster).Identity();
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
  const model::ClusterPaths paths = Paths(cluster);
  auto created = session_->Create(paths.Identity(), model::IdentityToJson(sysid),
                                  zk::CreateMode::kPersistent);
  if (created.ok()) return Status::Ok();
  if (created.status().code() != StatusCode::kAlreadyExists &&
      created.status().code() != StatusCode::kConnectionLoss) {
    return created.status();
  }
  // Exists, or perhaps created by our lost call: read what is there.
  PGH_ASSIGN_OR_RETURN(const std::optional<std::string> recorded, ReadIdentity(cluster));
  if (!recorded.has_value()) return Status(StatusCode::kConnectionLoss, "identity not recorded yet");
  if (*recorded != sysid) {
    return FailedPrecondition(paths.Identity() + " records system_identifier " + *recorded +
                              ", not " + sysid);
  }
  return Status::Ok();
}

StatusOr<ControlState> ZkPublisher::ReadControl(const std::string& cluster, zk::Watcher watch) {
  const std::string path = Paths(cluster).Control();
  // Exists first so the watch also covers creation.
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> exists, session_->Exists(path, std::move(watch)));
  if (!exists.has_value()) return ControlState{};
  auto got = session_->Get(path);
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return ControlState{};
    return got.status();
  }
  ControlState control;
  if (!got->data.empty()) {
    auto parsed = ParseControl(got->data);
    if (!parsed.ok()) return InvalidArgument(path + ": " + parsed.status().message());
    control = std::move(*parsed);
  }
  control.version = got->stat.version;
  return control;
}

StatusOr<std::optional<model::SwitchoverRecord>> ZkPublisher::ReadSwitchover(
    const std::string& cluster, zk::Watcher watch) {
  const std::string path = Paths(cluster).Switchover();
  // Exists first so the watch also covers creation.
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> exists, session_->Exists(path, std::move(watch)));
  if (!exists.has_value()) return std::optional<model::SwitchoverRecord>();
  auto got = session_->Get(path);
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return std::optional<model::SwitchoverRecord>();
    return got.status();
  }
  auto parsed = model::SwitchoverRecord::FromJson(got->data);
  if (!parsed.ok()) return InvalidArgument(path + ": " + parsed.status().message());
  parsed->version = got->stat.version;
  return std::optional<model::SwitchoverRecord>(std::move(*parsed));
}

Status ZkPublisher::RecordHistory(const std::string& cluster, const std::string& election_path,
                                  const model::HistoryEntry& history, std::string* history_path) {
  const model::ClusterPaths paths = Paths(cluster);
  history_path->clear();
  const std::vector<zk::Op> ops = {
      zk::Op::Check(election_path, -1),
      zk::Op::Create(paths.HistoryPrefix(), history.ToJson(), zk::CreateMode::kPersistentSequential),
  };
  int failed_op = -1;
  PGH_ASSIGN_OR_RETURN(const auto multi, session_->Multi(ops, &failed_op));
  *history_path = multi.results.back().created_path;
  return Status::Ok();
}

PublishResult ZkPublisher::Publish(const std::string& cluster, const std::string& election_path,
                                   std::int32_t expected_version, const model::MasterRecord& record,
                                   const model::HistoryEntry& history,
                                   const std::vector<std::string>& children,
                                   const std::optional<ControlState>& control_after) {
  const model::ClusterPaths paths = Paths(cluster);
  PublishResult result;
  if (HasPending(cluster)) {
    result.status = FailedPrecondition("an earlier publish of " + cluster + " is unsettled");
    return result;
  }
  const std::string data = record.ToJson();
  std::vector<zk::Op> ops = {
      zk::Op::Check(election_path, -1),
      zk::Op::Set(paths.Master(), data, expected_version),
      zk::Op::Create(paths.HistoryPrefix(), history.ToJson(),
                     zk::CreateMode::kPersistentSequential),
  };
  std::string voucher;
  if (record.state == model::MasterState::kOk) {
    const std::string digest = model::RecordDigest(data);
    voucher = model::VoucherName(record.epoch, digest, id_);
  }
  for (const std::string& own : model::VouchersOf(children, id_)) {
    if (own != voucher) ops.push_back(zk::Op::Delete(paths.Voucher(own)));
  }
  if (!voucher.empty()) {
    // An own voucher of the same name (a record rewritten with the same bytes) is replaced.
    if (std::find(children.begin(), children.end(), voucher) != children.end()) {
      ops.push_back(zk::Op::Delete(paths.Voucher(voucher)));
    }
    ops.push_back(zk::Op::Create(
        paths.Voucher(voucher),
        FirstPayload(id_, record, model::RecordDigest(data), record.verified_at_ms).ToJson(),
        zk::CreateMode::kEphemeral));
  }
  if (control_after) {
    ops.push_back(zk::Op::Set(paths.Control(), ControlToJson(*control_after),
                              control_after->version));
  }
  int failed_op = -1;
  auto multi = session_->Multi(ops, &failed_op);
  if (multi.ok()) {
    result.outcome = WriteOutcome::kApplied;
    result.new_version = multi->results[1].stat.version;
    result.history_path = multi->results[2].created_path;
    result.voucher = voucher;
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
  } else if (failed_op > 2) {
    result.status = Status(multi.status().code(),
                           "vouchers or control changed since they were read: " +
                               multi.status().message());
  }
  return result;
}

WriteOutcome ZkPublisher::Reconcile(const std::string& cluster) {
  auto it = pending_.find(cluster);
  if (it == pending_.end()) return WriteOutcome::kApplied;
  auto got = session_->Get(Paths(cluster).Master());
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

std::string ZkPublisher::BoundVoucherName(const MasterZnode& master) const {
  return model::VoucherName(master.record.epoch, model::RecordDigest(master.bytes), id_);
}

StatusOr<VouchOutcome> ZkPublisher::Vouch(const std::string& cluster,
                                          const std::string& election_path,
                                          const MasterZnode& master, std::int64_t affirmed_at_ms,
                                          bool reaffirm, HeldVoucher* held) {
  const model::ClusterPaths paths = Paths(cluster);
  if (master.record.state != model::MasterState::kOk || !master.corrupt.empty()) {
    if (held != nullptr) *held = HeldVoucher{};
    return FailedPrecondition("only a record in state ok can be vouched for");
  }
  const std::string name = BoundVoucherName(master);
  const std::string path = paths.Voucher(name);
  HeldVoucher known;
  if (held != nullptr && held->name == name && held->version >= 0) known = *held;
  if (held != nullptr) *held = HeldVoucher{};
  if (!known.name.empty()) {
    // Ours, as the last Vouch left it, and no child came or went since.
    if (!reaffirm) {
      *held = known;
      return VouchOutcome::kHeld;
    }
    const Status s = Reaffirm(cluster, election_path, master, affirmed_at_ms, known, held);
    if (s.ok()) return VouchOutcome::kReaffirmed;
    // Changed or gone meanwhile: read it, as without `held`. Anything else (a lost connection, a
    // deposed owner's failed check) is the caller's to handle.
    if (s.code() != StatusCode::kBadVersion && s.code() != StatusCode::kNotFound) return s;
  }
  auto got = session_->Get(path);
  if (got.ok() && got->stat.ephemeral_owner == session_->session_id()) {
    // The stored payload is for people; a corrupt one restarts the count.
    auto before = model::VoucherPayload::FromJson(got->data);
    const HeldVoucher mine{name, got->stat.version, before.ok() ? before->affirm_seq : 0};
    if (!reaffirm) {
      if (held != nullptr) *held = mine;
      return VouchOutcome::kHeld;
    }
    PGH_RETURN_IF_ERROR(Reaffirm(cluster, election_path, master, affirmed_at_ms, mine, held));
    return VouchOutcome::kReaffirmed;
  }
  if (!got.ok() && got.status().code() != StatusCode::kNotFound) return got.status();
  // Absent, or held by another session (an earlier session of ours not yet expired: not ours to
  // keep). Replace it, and drop every other voucher of ours, in one fenced multi.
  std::vector<zk::Op> ops = {zk::Op::Check(election_path, -1)};
  for (const std::string& own : model::VouchersOf(master.vouchers, id_)) {
    if (own != name) ops.push_back(zk::Op::Delete(paths.Voucher(own)));
  }
  if (got.ok()) ops.push_back(zk::Op::Delete(path, got->stat.version));
  ops.push_back(zk::Op::Create(
      path, FirstPayload(id_, master.record, model::RecordDigest(master.bytes), affirmed_at_ms).ToJson(),
      zk::CreateMode::kEphemeral));
  PGH_RETURN_IF_ERROR(session_->Multi(ops).status());
  if (held != nullptr) *held = HeldVoucher{name, 0, 1};
  return VouchOutcome::kCreated;
}

ZkPublisher::Reaffirmation ZkPublisher::PrepareReaffirm(const std::string& cluster,
                                                       const std::string& election_path,
                                                       const MasterZnode& master,
                                                       std::int64_t affirmed_at_ms,
                                                       const HeldVoucher& held) const {
  model::VoucherPayload v =
      FirstPayload(id_, master.record, model::RecordDigest(master.bytes), affirmed_at_ms);
  v.affirm_seq = held.affirm_seq < std::numeric_limits<std::uint64_t>::max() ? held.affirm_seq + 1 : 1;
  Reaffirmation r;
  r.ops = {zk::Op::Check(election_path, -1),
           zk::Op::Set(Paths(cluster).Voucher(held.name), v.ToJson(), held.version)};
  r.after = HeldVoucher{held.name, -1, v.affirm_seq};
  return r;
}

Status ZkPublisher::Reaffirm(const std::string& cluster, const std::string& election_path,
                             const MasterZnode& master, std::int64_t affirmed_at_ms,
                             const HeldVoucher& known, HeldVoucher* held) {
  const Reaffirmation r = PrepareReaffirm(cluster, election_path, master, affirmed_at_ms, known);
  PGH_ASSIGN_OR_RETURN(const zk::MultiResult done, session_->Multi(r.ops));
  if (held != nullptr) *held = r.Held(done);
  return Status::Ok();
}

StatusOr<std::vector<std::string>> ZkPublisher::OwnVouchers(const std::string& cluster) {
  auto children = session_->GetChildren(Paths(cluster).Master());
  if (!children.ok()) {
    if (children.status().code() == StatusCode::kNotFound) return std::vector<std::string>{};
    return children.status();
  }
  return model::VouchersOf(*children, id_);
}

Status ZkPublisher::Unvouch(const std::string& cluster) {
  PGH_ASSIGN_OR_RETURN(const std::vector<std::string> own, OwnVouchers(cluster));
  for (const std::string& name : own) {
    Status s = session_->Delete(Paths(cluster).Voucher(name));
    if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Ok();
}

Status ZkPublisher::Withdraw(const std::string& cluster, const std::string& election_path,
                             const model::HistoryEntry& history, std::string* history_path) {
  const model::ClusterPaths paths = Paths(cluster);
  history_path->clear();
  PGH_ASSIGN_OR_RETURN(const std::vector<std::string> own, OwnVouchers(cluster));
  if (own.empty()) return Status::Ok();
  std::vector<zk::Op> ops = {zk::Op::Check(election_path, -1)};
  for (const std::string& name : own) ops.push_back(zk::Op::Delete(paths.Voucher(name)));
  ops.push_back(zk::Op::Create(paths.HistoryPrefix(), history.ToJson(),
                               zk::CreateMode::kPersistentSequential));
  int failed_op = -1;
  auto multi = session_->Multi(ops, &failed_op);
  if (multi.ok()) {
    *history_path = multi->results.back().created_path;
    return Status::Ok();
  }
  if (multi.status().code() == StatusCode::kConnectionLoss) return multi.status();
  // Deposed, a voucher gone meanwhile, or the history parent missing: the vouchers still go.
  return Unvouch(cluster);
}

bool BackedByHistory(const HistoryFacts& facts, const model::MasterRecord& record) {
  if (!facts.last_publish || record.state != model::MasterState::kOk) return false;
  const model::HistoryEntry& h = *facts.last_publish;
  if (h.epoch != record.epoch) return false;
  if (!h.master) return h.chosen == record.node;
  const model::MasterRecord& m = *h.master;
  return m.epoch == record.epoch && m.node == record.node && m.timeline == record.timeline &&
         m.host == record.host && m.port == record.port;
}

MasterZnode DecodeMasterZnode(zk::NodeData got, std::vector<std::string> vouchers) {
  MasterZnode m;
  m.version = got.stat.version;
  m.mzxid = got.stat.mzxid;
  if (got.data.empty() && got.stat.version == 0) {
    // Created bare by someone's EnsurePath: the initial record.
    m.record = model::MasterRecord{};
  } else if (got.data.empty()) {
    // Wiped by a set: whatever was there, this is not the initial record.
    m.corrupt = "empty payload written over the record (version " +
                std::to_string(got.stat.version) + ")";
  } else {
    auto record = model::MasterRecord::FromJson(got.data);
    if (record.ok()) {
      m.record = std::move(*record);
    } else {
      m.corrupt = record.status().message();
    }
  }
  m.bytes = std::move(got.data);
  m.vouchers = std::move(vouchers);
  return m;
}

StatusOr<HistoryFacts> ZkPublisher::ReadHistoryFacts(const std::string& cluster,
                                                     const std::optional<HistoryFacts>& cached,
                                                     std::size_t max_entries) {
  const model::ClusterPaths paths = Paths(cluster);
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> exists, session_->Exists(paths.History()));
  HistoryFacts facts;
  if (!exists.has_value()) return facts;  // lost: no entry
  facts.pzxid = exists->pzxid;
  if (cached && cached->pzxid == facts.pzxid) return *cached;
  auto children = session_->GetChildren(paths.History());
  if (!children.ok()) {
    if (children.status().code() == StatusCode::kNotFound) return facts;
    return children.status();
  }
  std::vector<std::string> names = std::move(*children);
  // Zero-padded sequence numbers: name order is creation order; newest first.
  std::sort(names.rbegin(), names.rend());
  for (std::size_t i = 0; i < names.size() && i < max_entries; ++i) {
    auto got = session_->Get(paths.HistoryEntry(names[i]));
    if (!got.ok()) {
      if (got.status().code() == StatusCode::kNotFound) continue;  // trimmed meanwhile
      return got.status();
    }
    auto entry = model::HistoryEntry::FromJson(got->data);
    if (!entry.ok()) continue;
    if (entry->action == "publish") {
      // Only a publish uses an epoch; a withdraw entry only names one (and an old version named
      // a forged record's).
      facts.newest_epoch = std::max(facts.newest_epoch, entry->epoch);
      facts.last_publish = std::move(*entry);
      break;
    }
  }
  return facts;
}

Status ZkPublisher::TrimHistory(const std::string& cluster) {
  const model::ClusterPaths paths = Paths(cluster);
  PGH_ASSIGN_OR_RETURN(std::vector<std::string> entries, session_->GetChildren(paths.History()));
  // Zero-padded sequence numbers: name order is creation order.
  std::sort(entries.begin(), entries.end());
  const std::size_t limit = static_cast<std::size_t>(history_limit_);
  for (std::size_t i = 0; i + limit < entries.size(); ++i) {
    Status s = session_->Delete(paths.HistoryEntry(entries[i]));
    if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Ok();
}

}  // namespace pgherald::publishers
