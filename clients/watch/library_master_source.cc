#include "clients/watch/library_master_source.h"

#include "clients/src/master_watch_internal.h"
#include "common/logging.h"

namespace pgherald::watch {
namespace {

void LogClientLine(int level, const std::string& line) {
  static const log::Logger logger("watch.client");
  switch (level) {
    case 0: logger.Debug("client", {{"line", line}}); break;
    case 1: logger.Info("client", {{"line", line}}); break;
    case 2: logger.Warn("client", {{"line", line}}); break;
    default: logger.Error("client", {{"line", line}}); break;
  }
}

}  // namespace

LibraryMasterSource::LibraryMasterSource(const config::ZooKeeperConfig& zk, std::string cluster) {
  options_.zk_connect = zk.connect;
  options_.root = zk.root;
  options_.cluster = std::move(cluster);
  options_.session_timeout = zk.session_timeout;
  if (zk.auth.has_value()) options_.zk_auth = *zk.auth;
  options_.log = &LogClientLine;
}

LibraryMasterSource::LibraryMasterSource(std::string root, std::string cluster,
                                         zk::SessionFactory sessions)
    : sessions_(std::move(sessions)) {
  options_.root = std::move(root);
  options_.cluster = std::move(cluster);
  options_.log = &LogClientLine;
}

LibraryMasterSource::~LibraryMasterSource() { Stop(); }

void LibraryMasterSource::Start(Callback callback) {
  callback_ = std::move(callback);
  std::string error;
  if (sessions_) {
    client::internal::WatchSettings settings;
    settings.root = options_.root;
    settings.cluster = options_.cluster;
    settings.log = options_.log;
    watch_ = client::internal::StartWithFactory(settings, sessions_);
  } else {
    watch_ = client::MasterWatch::Start(options_, &error);
  }
  if (watch_ == nullptr) {
    log::Logger("watch").Error("master_watch_failed", {{"cluster", options_.cluster},
                                                       {"error", error}});
    return;
  }
  watch_->OnChange([this](const client::MasterInfo& info) {
    std::lock_guard lock(mu_);
    if (!stopped_) callback_(info);
  });
  std::lock_guard lock(mu_);
  if (!stopped_) callback_(watch_->current());
}

void LibraryMasterSource::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  watch_.reset();
}

}  // namespace pgherald::watch
