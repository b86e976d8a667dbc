// MasterWatch: one ZooKeeper session, two one-shot watches, one thread.
//
// Threads. The session's dispatch thread only runs our watchers and state listener, which record
// what happened (tagged with the session's generation, so events of a replaced session are
// dropped) and wake the watch thread. The watch thread does everything else: builds sessions,
// reads ZooKeeper, applies states and runs the embedder's callback. No lock is held while it talks
// to ZooKeeper or runs the callback, so a callback may call current(), OnChange() or WaitFor().
//
// Watches. A data watch (armed by Get, or by Exists while the node is absent) and a child watch
// (GetChildren) on the master znode. A watch stays armed across a reconnect of the same session
// (the C client re-registers it), so each is re-armed only after it fired or on a new session;
// arming twice would double every event. Every read cycle arms the child watch FIRST and then
// reads the node, so the voucher count (Stat::num_children of that read) can never be older than
// the child watch: a voucher change after the read always fires the watch.
//
// Ordering. A state is applied only if (mzxid, pzxid) of the read is at least the last applied
// pair, compared lexicographically: mzxid orders record changes, pzxid orders voucher changes of
// the same record. A new session may connect to a follower that lags behind what the old session
// saw; its older state is not applied (the watch fires once the follower catches up).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "clients/src/master_watch_internal.h"
#include "common/cluster_model.h"
#include "common/zk_client.h"

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
  return (root == "/" ? std::string() : root) + "/clusters/" + cluster + "/master";
}

namespace {

enum class WatchKind { kData, kChildren };

// One read of the master znode: the child watch armed first, then the node itself.
struct Snapshot {
  bool exists = false;
  std::string data;
  zk::Stat stat;
};

bool SameState(const MasterInfo& a, const MasterInfo& b) {
  return a.status == b.status && a.cluster == b.cluster && a.node == b.node && a.host == b.host &&
         a.port == b.port && a.timeline == b.timeline && a.epoch == b.epoch &&
         a.vouchers == b.vouchers && a.mzxid == b.mzxid;
}

class MasterWatchImpl final : public MasterWatch {
 public:
  MasterWatchImpl(WatchSettings settings, SessionFactory factory)
      : settings_(std::move(settings)),
        factory_(std::move(factory)),
        clock_(settings_.clock != nullptr ? settings_.clock : &SystemClock::Instance()),
        path_(MasterPath(settings_.root, settings_.cluster)) {
    info_.cluster = settings_.cluster;
  }

  ~MasterWatchImpl() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    CloseSession();
  }

  void Begin(std::unique_ptr<zk::ZkSession> first) {
    if (first) InstallSession(std::move(first));
    thread_ = std::thread([this] { Run(); });
  }

  MasterInfo current() const override {
    std::lock_guard lock(mu_);
    return info_;
  }

  void OnChange(Callback callback) override {
    auto shared = callback ? std::make_shared<Callback>(std::move(callback)) : nullptr;
    std::lock_guard lock(mu_);
    callback_ = std::move(shared);
  }

  bool WaitFor(const std::function<bool(const MasterInfo&)>& pred,
               std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mu_);
    for (;;) {
      MasterInfo copy = info_;
      const uint64_t seen = info_version_;
      lock.unlock();
      if (pred(copy)) return true;  // user code: never under our lock
      lock.lock();
      if (!changed_.wait_until(lock, deadline, [&] { return info_version_ != seen; })) {
        return false;
      }
    }
  }

 private:
  void Log(int level, const std::string& line) const {
    if (settings_.log) settings_.log(level, line);
  }

  // --- Called on the session's dispatch thread: record and wake, nothing else. ---

  void OnWatch(uint64_t generation, WatchKind kind) {
    {
      std::lock_guard lock(mu_);
      if (generation != generation_) return;
      (kind == WatchKind::kData ? data_fired_ : children_fired_) = true;
    }
    wake_.notify_all();
  }

  void OnState(uint64_t generation, zk::SessionState state) {
    {
      std::lock_guard lock(mu_);
      if (generation != generation_) return;
      pending_states_.push_back(state);
    }
    wake_.notify_all();
  }

  zk::Watcher MakeWatcher(WatchKind kind) {
    const uint64_t generation = session_generation_;
    return [this, generation, kind](const zk::WatchEvent&) { OnWatch(generation, kind); };
  }

  // --- The watch thread. ---

  void InstallSession(std::unique_ptr<zk::ZkSession> session) {
    {
      std::lock_guard lock(mu_);
      session_generation_ = ++generation_;
      pending_states_.clear();
      data_fired_ = children_fired_ = false;
    }
    session_ = std::move(session);
    data_armed_ = children_armed_ = false;
    need_read_ = true;  // read as soon as it is connected
    const uint64_t generation = session_generation_;
    session_->SetStateListener(
        [this, generation](zk::SessionState state, int64_t) { OnState(generation, state); });
    // A connection made before the listener was set produced no event we saw: the loop checks
    // session_->state() itself, so nothing is lost.
  }

  void CloseSession() {
    if (!session_) return;
    {
      std::lock_guard lock(mu_);
      ++generation_;  // anything still queued by the old session is dropped
    }
    session_->Close();  // may block for seconds: never under our lock, never on its thread
    session_.reset();
  }

  void Run() {
    for (;;) {
      if (!session_) {
        StatusOr<std::unique_ptr<zk::ZkSession>> made = factory_();
        if (made.ok()) {
          InstallSession(std::move(made).value());
          Log(1, "master_watch event=session_started cluster=" + settings_.cluster);
        } else {
          Log(2, "master_watch event=session_failed cluster=" + settings_.cluster +
                     " error=\"" + made.status().ToString() + "\" retry_ms=" +
                     std::to_string(settings_.retry_interval.count()));
          if (WaitStopping(settings_.retry_interval)) return;
          continue;
        }
      }

      std::vector<zk::SessionState> states;
      bool data_fired = false;
      bool children_fired = false;
      {
        std::unique_lock lock(mu_);
        auto has_work = [&] {
          return stopping_ || !pending_states_.empty() || data_fired_ || children_fired_;
        };
        // A read that failed (or a session not yet connected) is retried on a timer as well as
        // on the next event.
        if (need_read_) {
          wake_.wait_for(lock, settings_.retry_interval, has_work);
        } else {
          wake_.wait(lock, has_work);
        }
        if (stopping_) return;
        states.swap(pending_states_);
        std::swap(data_fired, data_fired_);
        std::swap(children_fired, children_fired_);
      }

      bool dead = false;
      for (zk::SessionState state : states) {
        switch (state) {
          case zk::SessionState::kConnected: need_read_ = true; break;
          case zk::SessionState::kConnecting: MarkDisconnected("connection_lost"); break;
          case zk::SessionState::kExpired:
          case zk::SessionState::kAuthFailed:
          case zk::SessionState::kClosed: dead = true; break;
        }
      }
      if (data_fired) data_armed_ = false;
      if (children_fired) children_armed_ = false;
      if (data_fired || children_fired) need_read_ = true;

      const zk::SessionState now_state = session_->state();
      if (now_state == zk::SessionState::kExpired || now_state == zk::SessionState::kAuthFailed ||
          now_state == zk::SessionState::kClosed) {
        dead = true;
      }
      if (!dead && need_read_ && now_state == zk::SessionState::kConnected) {
        Status read = ReadAndApply();
        if (read.ok()) {
          need_read_ = false;
        } else if (read.code() == StatusCode::kSessionExpired) {
          dead = true;
        } else {
          Log(read.code() == StatusCode::kConnectionLoss ? 0 : 2,
              "master_watch event=read_failed cluster=" + settings_.cluster + " path=" + path_ +
                  " error=\"" + read.ToString() + "\"");
        }
      } else if (!dead && now_state == zk::SessionState::kConnecting) {
        MarkDisconnected("connection_lost");
      }

      if (dead) {
        Log(1, "master_watch event=session_ended cluster=" + settings_.cluster + " state=" +
                   zk::SessionStateName(session_->state()) + " action=new_session");
        MarkDisconnected("session_ended");
        CloseSession();
      }
    }
  }

  // Returns true if stopping.
  bool WaitStopping(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return wake_.wait_for(lock, d, [&] { return stopping_; });
  }

  Status ReadAndApply() {
    Snapshot snap;
    for (int attempt = 0;; ++attempt) {
      bool children_missing = false;
      if (!children_armed_) {
        auto children = session_->GetChildren(path_, MakeWatcher(WatchKind::kChildren));
        if (children.ok()) {
          children_armed_ = true;
        } else if (children.status().code() == StatusCode::kNotFound) {
          children_missing = true;  // the data (exists) watch reports the creation
        } else {
          return children.status();
        }
      }
      snap = Snapshot{};
      auto got = session_->Get(path_, data_armed_ ? nullptr : MakeWatcher(WatchKind::kData));
      if (got.ok()) {
        data_armed_ = true;
        snap.exists = true;
        snap.data = std::move(got->data);
        snap.stat = got->stat;
      } else if (got.status().code() == StatusCode::kNotFound) {
        // Absent: an exists watch fires on creation.
        auto exists =
            session_->Exists(path_, data_armed_ ? nullptr : MakeWatcher(WatchKind::kData));
        if (!exists.ok()) return exists.status();
        data_armed_ = true;
        if (exists->has_value()) {
          if (attempt < 3) continue;  // created in between: read it (the watch is armed now)
          return Status(StatusCode::kConnectionLoss, "master znode keeps appearing and vanishing");
        }
      } else {
        return got.status();
      }
      if (snap.exists && children_missing) {
        if (attempt < 3) continue;  // created between the two calls: arm the child watch too
        return Status(StatusCode::kConnectionLoss, "master znode keeps appearing and vanishing");
      }
      break;
    }
    Apply(snap);
    return Status::Ok();
  }

  void Apply(const Snapshot& snap) {
    const MonoTime now = clock_->Now();
    MasterInfo base = current();
    MasterInfo next = base;
    next.confirmed_at = now;

    if (!snap.exists) {
      // The contract never deletes the record, so this is a cluster not set up yet (or removed).
      next = MasterInfo{};
      next.cluster = settings_.cluster;
      next.status = MasterStatus::kNoMaster;
      next.confirmed_at = now;
      Publish(next, "record_absent");
      return;
    }

    const std::pair<int64_t, int64_t> order{snap.stat.mzxid, snap.stat.pzxid};
    if (applied_any_ && order < last_applied_) {
      Log(0, "master_watch event=stale_state_ignored cluster=" + settings_.cluster +
                 " mzxid=" + std::to_string(order.first) + " pzxid=" +
                 std::to_string(order.second) + " applied_mzxid=" +
                 std::to_string(last_applied_.first) + " applied_pzxid=" +
                 std::to_string(last_applied_.second));
      return;  // the watch fires when this server catches up
    }

    StatusOr<model::MasterRecord> record = model::MasterRecord::FromJson(snap.data);
    if (!record.ok()) {
      if (snap.stat.mzxid != last_corrupt_mzxid_) {
        last_corrupt_mzxid_ = snap.stat.mzxid;
        Log(3, "master_watch event=corrupt_payload_ignored cluster=" + settings_.cluster +
                   " path=" + path_ + " mzxid=" + std::to_string(snap.stat.mzxid) + " error=\"" +
                   record.status().message() + "\" action=keep_previous_state" +
                   " fix=\"the master record must be written by the pgherald orchestrator\"");
      }
      // Keep the previous state. Only a connected watch no longer reports kDisconnected: the
      // record it cannot read is not a verified master, so at best kUnverified.
      if (base.status == MasterStatus::kDisconnected) {
        next.status = base.node.empty() ? MasterStatus::kNoMaster : MasterStatus::kUnverified;
        Publish(next, "corrupt_record");
      }
      return;
    }

    applied_any_ = true;
    last_applied_ = order;
    next = MasterInfo{};
    next.cluster = settings_.cluster;
    next.confirmed_at = now;
    next.mzxid = snap.stat.mzxid;
    next.epoch = record->epoch;
    next.vouchers = snap.stat.num_children;
    if (record->state == model::MasterState::kNoMaster) {
      next.status = MasterStatus::kNoMaster;
    } else {
      next.node = record->node;
      next.host = record->host;
      next.port = record->port;
      next.timeline = record->timeline;
      next.status = next.vouchers > 0 ? MasterStatus::kVouched : MasterStatus::kUnverified;
    }
    Publish(next, "read");
  }

  void MarkDisconnected(const char* why) {
    MasterInfo next = current();
    if (next.status == MasterStatus::kDisconnected) return;
    next.status = MasterStatus::kDisconnected;
    // Until now the armed watches kept the state confirmed; its age counts from here.
    next.confirmed_at = clock_->Now();
    Publish(next, why);
  }

  // Stores `next`; if it differs from the current state (status, master or vouchers), logs the
  // transition and runs the callback. The line is logged before the state becomes visible, the
  // callback runs after (outside the lock). Only the watch thread writes info_.
  void Publish(const MasterInfo& next, const char* why) {
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      changed = !SameState(info_, next);
      if (!changed) {
        info_.confirmed_at = next.confirmed_at;
        return;
      }
    }
    std::ostringstream line;
    line << "master_watch event=transition cluster=" << next.cluster
         << " status=" << MasterStatusName(next.status) << " node=" << next.node
         << " host=" << next.host << " port=" << next.port << " timeline=" << next.timeline
         << " epoch=" << next.epoch << " vouchers=" << next.vouchers << " mzxid=" << next.mzxid
         << " cause=" << why;
    Log(1, line.str());
    std::shared_ptr<Callback> callback;
    {
      std::lock_guard lock(mu_);
      info_ = next;
      ++info_version_;
      callback = callback_;
    }
    changed_.notify_all();
    if (callback && *callback) (*callback)(next);
  }

  const WatchSettings settings_;
  const SessionFactory factory_;
  const Clock* const clock_;
  const std::string path_;

  mutable std::mutex mu_;
  std::condition_variable wake_;     // the watch thread waits here for events
  std::condition_variable changed_;  // WaitFor waits here for a new info_
  // Guarded by mu_.
  bool stopping_ = false;
  uint64_t generation_ = 0;  // of the current session; bumped when it is replaced
  std::vector<zk::SessionState> pending_states_;
  bool data_fired_ = false;
  bool children_fired_ = false;
  MasterInfo info_;
  uint64_t info_version_ = 0;
  std::shared_ptr<Callback> callback_;

  // Watch thread only.
  std::unique_ptr<zk::ZkSession> session_;
  uint64_t session_generation_ = 0;
  bool data_armed_ = false;
  bool children_armed_ = false;
  bool need_read_ = false;
  bool applied_any_ = false;
  std::pair<int64_t, int64_t> last_applied_{0, 0};  // (mzxid, pzxid)
  int64_t last_corrupt_mzxid_ = -1;

  std::thread thread_;
};

}  // namespace

std::unique_ptr<MasterWatch> StartWithFactory(WatchSettings settings, SessionFactory factory,
                                              std::unique_ptr<zk::ZkSession> first) {
  auto watch = std::make_unique<MasterWatchImpl>(std::move(settings), std::move(factory));
  watch->Begin(std::move(first));
  return watch;
}

}  // namespace internal

std::unique_ptr<MasterWatch> MasterWatch::Start(const MasterWatchOptions& options,
                                                std::string* error) {
  if (Status valid = internal::ValidateOptions(options); !valid.ok()) {
    if (error != nullptr) *error = valid.message();
    return nullptr;
  }
  zk::ZkClientOptions zk_options;
  zk_options.connect = options.zk_connect;
  zk_options.session_timeout = options.session_timeout;
  zk_options.connect_timeout = std::chrono::milliseconds(0);  // never block Start()
  if (!options.zk_auth.empty()) {
    const size_t colon = options.zk_auth.find(':');
    zk_options.auth = zk::ZkDigestAuth{options.zk_auth.substr(0, colon),
                                       options.zk_auth.substr(colon + 1)};
  }
  // The C library's own lines go to the embedder's sink too (or nowhere).
  LogSink log = options.log;
  zk_options.log_sink = [log](zk::ZkLogLevel level, const std::string& line) {
    if (!log) return;
    int mapped = 0;
    switch (level) {
      case zk::ZkLogLevel::kError: mapped = 3; break;
      case zk::ZkLogLevel::kWarn: mapped = 2; break;
      case zk::ZkLogLevel::kInfo: mapped = 1; break;
      case zk::ZkLogLevel::kDebug: mapped = 0; break;
    }
    log(mapped, "zookeeper " + line);
  };
  internal::SessionFactory factory =
      [zk_options]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    StatusOr<std::unique_ptr<zk::ZkClient>> client = zk::ZkClient::Connect(zk_options);
    if (!client.ok()) return client.status();
    return std::unique_ptr<zk::ZkSession>(std::move(client).value());
  };
  // The first session is built here so that a connect string the C client rejects is reported
  // to the caller instead of being retried forever.
  StatusOr<std::unique_ptr<zk::ZkSession>> first = factory();
  if (!first.ok() && first.status().code() == StatusCode::kInvalidArgument) {
    if (error != nullptr) *error = first.status().message();
    return nullptr;
  }
  internal::WatchSettings settings;
  settings.root = options.root;
  settings.cluster = options.cluster;
  settings.log = options.log;
  return internal::StartWithFactory(std::move(settings), std::move(factory),
                                    first.ok() ? std::move(first).value() : nullptr);
}

}  // namespace pgherald::client
