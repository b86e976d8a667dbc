// A minimal MasterSource on ZkSession: watches clusters/<c>/master and its voucher children
// through one ZooKeeper session, re-arming the one-shot watches on every event and reconnect and
// rebuilding the session after expiry.
//
// It stands in for the embeddable library's MasterWatch (clients/include/pgherald/master_watch.h)
// inside the daemon and applies the library's own rules (clients/src/consumer_rules.h: JudgeRead,
// StateFor, AffirmGate): kVouched only with a voucher bound to the exact record (and, after an
// interruption of the session, re-affirmed after it); kUnverified -- carrying the last VERIFIED
// master, never the unverified record's -- for a record no voucher binds, a payload that does not
// parse (logged once per change) or a deleted master znode; kNoMaster for a "no-master" record or
// a cluster not set up; kDisconnected (last verified kept) while the session is not connected.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "clients/src/consumer_rules.h"
#include "clients/watch/master_source.h"
#include "common/config.h"
#include "common/zk_config.h"
#include "common/logging.h"
#include "common/zk_session.h"

namespace pgherald::watch {

class ZkMasterSource final : public MasterSource {
 public:
  // Builds a session; production passes a factory over ZkClient::Connect.
  using SessionFactory = zk::SessionFactory;

  ZkMasterSource(std::string root, std::string cluster, SessionFactory factory);
  ~ZkMasterSource() override;  // Stop()

  void Start(Callback callback) override;
  void Stop() override;

  // A factory over the real ZkClient for `config`.
  static SessionFactory RealSessions(const config::ZooKeeperConfig& config);

 private:
  void Run();
  void MarkDirty();
  // Reads the master znode and its children, arming watches. Returns the state, or an error when
  // ZooKeeper did not answer (the caller then reports kDisconnected).
  StatusOr<client::MasterInfo> Read(zk::ZkSession& session);

  const std::string cluster_;
  const std::string master_path_;
  const SessionFactory factory_;
  const log::Logger log_{"watch"};
  Callback callback_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true;  // guarded by mu_
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
  std::optional<client::MasterInfo> last_;
  std::optional<client::MasterInfo> last_verified_;  // the last kVouched state, for kUnverified
  client::internal::AffirmGate gate_;
  std::int64_t last_corrupt_mzxid_ = -1;
};

}  // namespace pgherald::watch
