// MasterWatch (pgherald/master_watch.h): the options' checks, the sessions' options, the handles.
// The state machine behind a handle is WatchCore (watch_core.h), run by SharedCore
// (shared_core.h) on the process's Runtime (runtime.h).
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "clients/src/log_fanout.h"
#include "clients/src/master_watch_internal.h"
#include "clients/src/shared_core.h"
#include "common/model/untrusted.h"
#include "common/model/zk_paths.h"
#include "common/zk/zk_client.h"

namespace pgherald::client {

const char* MasterStatusName(MasterStatus status) {
  switch (status) {
    case MasterStatus::kVouched: return "vouched";
    case MasterStatus::kUnverified: return "unverified";
    case MasterStatus::kNoMaster: return "no-master";
    case MasterStatus::kDisconnected: return "disconnected";
  }
  return "unknown";
}

namespace {

// libpq conninfo values: quoted when empty or when they hold a space, a quote or a backslash.
std::string ConninfoValue(const std::string& value) {
  const bool plain = !value.empty() && value.find_first_of(" \t\n\r'\\") == std::string::npos;
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace

std::string MasterConninfo(const MasterInfo& info, const std::string& extra) {
  if (!info.writable() || info.host.empty() || info.port <= 0) return "";
  std::string out = "host=" + ConninfoValue(info.host) + " port=" + std::to_string(info.port);
  if (!extra.empty()) out += " " + extra;
  return out;
}

namespace internal {

Status ValidateOptions(const MasterWatchOptions& options) {
  if (options.zk_connect.empty()) {
    return InvalidArgument(
        "zk_connect is empty: set it to the ZooKeeper ensemble, e.g. \"zk1:2181,zk2:2181\"");
  }
  if (options.cluster.empty() || options.cluster.find('/') != std::string::npos) {
    return InvalidArgument("cluster '" + options.cluster +
                           "' is not a cluster name: give the name under <root>/clusters/, "
                           "without '/'");
  }
  if (options.root.empty() || options.root.front() != '/' ||
      (options.root.size() > 1 && options.root.back() == '/')) {
    return InvalidArgument("root '" + options.root +
                           "' is not an absolute ZooKeeper path: use e.g. \"/pgherald\"");
  }
  if (options.session_timeout.count() <= 0) {
    return InvalidArgument("session_timeout must be positive (default 6000 ms)");
  }
  if (!options.zk_auth.empty() && options.zk_auth.find(':') == std::string::npos) {
    // Never echo the value: it holds a password.
    return InvalidArgument("zk_auth must be \"user:password\" (the value given has no ':')");
  }
  return Status::Ok();
}

std::string MasterPath(const std::string& root, const std::string& cluster) {
  return model::ClusterPaths(root, cluster).Master();
}

namespace {

// A handle: one subscriber of a (maybe shared) machine.
class MasterWatchImpl final : public MasterWatch {
 public:
  MasterWatchImpl(std::shared_ptr<SharedCore> shared, const LogSink& log)
      : shared_(std::move(shared)), id_(shared_->core->Subscribe()) {
    if (shared_->logs) shared_->logs->Add(id_, log);
  }
  ~MasterWatchImpl() override {
    shared_->core->Unsubscribe(id_);
    if (shared_->logs) shared_->logs->Remove(id_);
    // shared_ goes now: the last handle over the machine stops it (closes its session).
  }

  MasterInfo current() const override { return shared_->core->current(); }
  void OnChange(Callback callback) override { shared_->core->OnChange(id_, std::move(callback)); }
  bool WaitFor(const std::function<bool(const MasterInfo&)>& pred,
               std::chrono::milliseconds timeout) override {
    return shared_->core->WaitFor(pred, timeout);
  }

 private:
  const std::shared_ptr<SharedCore> shared_;
  const uint64_t id_;
};

}  // namespace

std::unique_ptr<MasterWatch> StartWithFactory(WatchSettings settings, SessionFactory factory,
                                              std::unique_ptr<zk::ZkSession> first) {
  return std::make_unique<MasterWatchImpl>(
      NewCore(std::move(settings), std::move(factory), std::move(first), nullptr), nullptr);
}

}  // namespace internal

namespace {

// The sessions' options: `log` gets the C library's lines (nullptr: nowhere).
internal::SessionFactory SessionFactoryFor(const MasterWatchOptions& options, LogSink log) {
  zk::ZkClientOptions zk_options;
  zk_options.connect = options.zk_connect;
  zk_options.session_timeout = options.session_timeout;
  zk_options.connect_timeout = std::chrono::milliseconds(0);  // never block Start()
  // Re-resolve the ensemble's names only on connection loss: by default the C client calls
  // getaddrinfo at every wake-up of its I/O thread, which was the largest single cost of a
  // fan-out to thousands of watches (docs/client-library.md, "Benchmark: watch fan-out").
  zk_options.resolve_delay = std::chrono::milliseconds(-1);
  // The watch never looks at its lease: no lease pings (the C client's own keep the session).
  zk_options.lease_pings = false;
  if (!options.zk_auth.empty()) {
    const size_t colon = options.zk_auth.find(':');
    zk_options.auth = zk::ZkDigestAuth{options.zk_auth.substr(0, colon),
                                       options.zk_auth.substr(colon + 1)};
  }
  if (log) {
    zk_options.log_sink = [log](zk::ZkLogLevel level, const std::string& line) {
      int mapped = 0;
      switch (level) {
        case zk::ZkLogLevel::kError: mapped = 3; break;
        case zk::ZkLogLevel::kWarn: mapped = 2; break;
        case zk::ZkLogLevel::kInfo: mapped = 1; break;
        case zk::ZkLogLevel::kDebug: mapped = 0; break;
      }
      log(mapped, untrusted::SanitizeForDisplay("zookeeper " + line));
    };
  } else {
    zk_options.log_sink = [](zk::ZkLogLevel, const std::string&) {};  // discarded
  }
  return [zk_options]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    PGH_ASSIGN_OR_RETURN(std::unique_ptr<zk::ZkClient> client, zk::ZkClient::Connect(zk_options));
    return std::unique_ptr<zk::ZkSession>(std::move(client));
  };
}

// A new machine for `options`, logging to `log`, or nullptr and *error. The first session is
// built here so that a connect string the C client rejects is reported to the caller instead of
// being retried forever.
std::shared_ptr<internal::SharedCore> NewCoreFor(const MasterWatchOptions& options, LogSink log,
                                                 std::shared_ptr<internal::LogFanout> logs,
                                                 std::string* error) {
  internal::SessionFactory factory = SessionFactoryFor(options, log);
  StatusOr<std::unique_ptr<zk::ZkSession>> first = factory();
  if (!first.ok() && first.status().code() == StatusCode::kInvalidArgument) {
    if (error != nullptr) *error = first.status().message();
    return nullptr;
  }
  internal::WatchSettings settings;
  settings.root = options.root;
  settings.cluster = options.cluster;
  settings.log = std::move(log);
  return internal::NewCore(std::move(settings), std::move(factory),
                           first.ok() ? std::move(first).value() : nullptr, std::move(logs));
}

}  // namespace

std::unique_ptr<MasterWatch> MasterWatch::Start(const MasterWatchOptions& options,
                                                std::string* error) {
  if (Status valid = internal::ValidateOptions(options); !valid.ok()) {
    if (error != nullptr) *error = valid.message();
    return nullptr;
  }
  if (!options.share_session) {
    std::shared_ptr<internal::SharedCore> core = NewCoreFor(options, options.log, nullptr, error);
    if (!core) return nullptr;
    return std::make_unique<internal::MasterWatchImpl>(std::move(core), nullptr);
  }
  // One machine per (ensemble, root, cluster, timeout, credentials); every member's log sink
  // gets its lines. The key stays in memory only (it holds the password).
  const std::string key = options.zk_connect + '\n' + options.root + '\n' + options.cluster + '\n' +
                          std::to_string(options.session_timeout.count()) + '\n' +
                          options.zk_auth;
  std::shared_ptr<internal::SharedCore> core =
      internal::FindOrMakeShared(key, [&]() -> std::shared_ptr<internal::SharedCore> {
        auto logs = std::make_shared<internal::LogFanout>();
        LogSink fan = [logs](int level, const std::string& line) { logs->Write(level, line); };
        return NewCoreFor(options, std::move(fan), logs, error);
      });
  if (!core) return nullptr;
  return std::make_unique<internal::MasterWatchImpl>(std::move(core), options.log);
}

}  // namespace pgherald::client
