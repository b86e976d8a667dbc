#include "clients/watch/zk_master_source.h"

#include "clients/src/consumer_rules.h"

#include "common/cluster_model.h"
#include "common/zk_client.h"

namespace pgherald::watch {

using client::MasterInfo;
using client::MasterStatus;

namespace {

bool SameState(const MasterInfo& a, const MasterInfo& b) {
  return a.status == b.status && a.node == b.node && a.host == b.host && a.port == b.port &&
         a.epoch == b.epoch && a.vouchers == b.vouchers && a.mzxid == b.mzxid &&
         a.timeline == b.timeline;
}

}  // namespace

ZkMasterSource::ZkMasterSource(std::string root, std::string cluster, SessionFactory factory)
    : cluster_(cluster),
      master_path_(root + "/clusters/" + cluster + "/master"),
      factory_(std::move(factory)) {}

ZkMasterSource::~ZkMasterSource() { Stop(); }

ZkMasterSource::SessionFactory ZkMasterSource::RealSessions(const config::ZooKeeperConfig& config) {
  zk::ZkClientOptions options = config::ToZkClientOptions(config);
  options.connect_timeout = Millis(0);  // return at once; the state says when it connects
  options.acl = zk::ZkAclPolicy::kOpen;  // the watcher creates nothing
  return zk::ZkClient::Factory(std::move(options));
}

void ZkMasterSource::Start(Callback callback) {
  callback_ = std::move(callback);
  thread_ = std::thread([this] { Run(); });
}

void ZkMasterSource::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ZkMasterSource::MarkDirty() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

StatusOr<MasterInfo> ZkMasterSource::Read(zk::ZkSession& session) {
  zk::Watcher watcher = [this](const zk::WatchEvent&) { MarkDirty(); };
  const auto now = std::chrono::steady_clock::now();
  // The library's read and rules (clients/src/consumer_rules.h): Get, then the children's names.
  client::internal::MasterRead read;
  auto node = session.Get(master_path_, watcher);
  if (!node.ok()) {
    if (node.status().code() != StatusCode::kNotFound) return node.status();
    // Absent: watch for its creation.
    auto exists = session.Exists(master_path_, watcher);
    if (!exists.ok()) return exists.status();
    if (exists->has_value()) MarkDirty();  // created in between: read again
  } else {
    read.exists = true;
    read.data = std::move(node->data);
    read.stat = node->stat;
    auto children = session.GetChildren(master_path_, watcher);
    if (!children.ok() && children.status().code() != StatusCode::kNotFound) {
      return children.status();
    }
    if (children.ok()) read.children = std::move(*children);
  }
  const client::internal::Judgement judged = client::internal::JudgeRead(read);
  std::vector<std::int64_t> voucher_mzxids;
  if (read.exists && gate_.needs_voucher_stats()) {
    // After an interruption: the bound vouchers' Stat, with a data watch on each.
    for (const std::string& name : judged.bound) {
      auto stat = session.Exists(master_path_ + "/" + name, watcher);
      if (!stat.ok()) return stat.status();
      if (stat->has_value()) voucher_mzxids.push_back((*stat)->mzxid);
    }
  }
  using Kind = client::internal::Judgement::Kind;
  if (judged.kind == Kind::kUnreadable && read.stat.mzxid != last_corrupt_mzxid_) {
    last_corrupt_mzxid_ = read.stat.mzxid;
    log_.Error("master_record_unreadable",
               {{"cluster", cluster_}, {"path", master_path_}, {"error", judged.error}});
  }
  const bool affirmed = read.exists && gate_.Affirmed(read.stat, voucher_mzxids);
  MasterInfo info = client::internal::StateFor(cluster_, judged, read.stat.mzxid,
                                               last_verified_, affirmed);
  info.confirmed_at = now;
  if (info.status == MasterStatus::kVouched) last_verified_ = info;
  return info;
}

void ZkMasterSource::Run() {
  std::unique_ptr<zk::ZkSession> session;
  auto deliver = [&](MasterInfo info) {
    if (last_.has_value() && SameState(*last_, info)) return;
    last_ = info;
    callback_(info);
  };
  auto disconnected = [&] {
    gate_.Interrupted();  // a route opens again only on a verification made after this
    MasterInfo info = last_verified_.value_or(MasterInfo{});
    info.cluster = cluster_;
    if (last_.has_value()) {
      info = *last_;
      info.vouchers = 0;
    }
    info.status = MasterStatus::kDisconnected;
    deliver(info);
  };
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (session == nullptr || session->state() == zk::SessionState::kExpired ||
        session->state() == zk::SessionState::kAuthFailed ||
        session->state() == zk::SessionState::kClosed) {
      if (session != nullptr) {
        log_.Warn("zk_session_lost",
                  {{"cluster", cluster_}, {"state", zk::SessionStateName(session->state())}});
        gate_.Interrupted();
      }
      lock.unlock();
      session.reset();  // may block (zookeeper_close): never under mu_
      auto made = factory_();
      lock.lock();
      if (!made.ok()) {
        log_.Error("zk_connect_failed", {{"cluster", cluster_}, {"error", made.status()}});
        lock.unlock();
        disconnected();
        lock.lock();
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; });
        continue;
      }
      session = std::move(*made);
      session->SetStateListener([this](zk::SessionState, int64_t) { MarkDirty(); });
      dirty_ = true;
    }
    if (!dirty_) {
      // Watches and state changes set dirty_; the timeout is a safety net against a lost event.
      cv_.wait_for(lock, std::chrono::seconds(5), [&] { return stop_ || dirty_; });
      if (stop_) break;
      if (!dirty_) dirty_ = true;
      continue;
    }
    dirty_ = false;
    lock.unlock();
    if (session->state() != zk::SessionState::kConnected) {
      disconnected();
    } else {
      auto info = Read(*session);
      if (info.ok()) {
        deliver(*info);
      } else if (info.status().code() == StatusCode::kConnectionLoss ||
                 info.status().code() == StatusCode::kSessionExpired ||
                 info.status().code() == StatusCode::kUnavailable) {
        disconnected();
        MarkDirty();  // re-read once the state settles (the listener also wakes us)
        std::unique_lock<std::mutex> pause(mu_);
        cv_.wait_for(pause, std::chrono::milliseconds(100), [&] { return stop_; });
      } else {
        log_.Error("zk_read_failed", {{"cluster", cluster_}, {"error", info.status()}});
        MarkDirty();
        std::unique_lock<std::mutex> pause(mu_);
        cv_.wait_for(pause, std::chrono::milliseconds(500), [&] { return stop_; });
      }
    }
    lock.lock();
  }
  lock.unlock();
  session.reset();
}

}  // namespace pgherald::watch
