// The production MasterSource: the embeddable library's MasterWatch (libpgherald), which orders
// states by mzxid, re-arms watches and rebuilds expired sessions itself.
#pragma once

#include <memory>
#include <mutex>

#include "clients/include/pgherald/master_watch.h"
#include "clients/watch/master_source.h"
#include "common/config.h"
#include "common/zk_config.h"
#include "common/zk/zk_session.h"

namespace pgherald::watch {

class LibraryMasterSource final : public MasterSource {
 public:
  LibraryMasterSource(const config::ZooKeeperConfig& zk, std::string cluster);
  // The same watch over the sessions `sessions` builds (tests: a FakeZkServer's), tree at `root`.
  LibraryMasterSource(std::string root, std::string cluster, zk::SessionFactory sessions);
  ~LibraryMasterSource() override;
  // Delivers current() at once, then every change (on the library's dispatch thread). Bad options
  // are logged and leave the source silent (the policy then never routes).
  void Start(Callback callback) override;
  void Stop() override;

 private:
  client::MasterWatchOptions options_;
  zk::SessionFactory sessions_;  // empty: the library connects to options_.zk_connect itself
  std::mutex mu_;  // serialises deliveries and Stop()
  bool stopped_ = false;
  Callback callback_;
  std::unique_ptr<client::MasterWatch> watch_;
};

}  // namespace pgherald::watch
