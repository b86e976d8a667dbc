// MasterWatch: one ZooKeeper session, two one-shot watches, no thread of its own.
//
// Threads. A watch is a state machine (WatchCore) driven by events on whichever thread they
// arrive: the session's dispatch thread runs our watchers and state listener, ZooKeeper's
// completion thread delivers the answers of our reads, and a runtime thread shared by all the
// watches of the process builds and closes sessions and runs the retry timers. One mutex
// (machine_mu_) serializes the machine; it is held while a read is SENT (asynchronous: nothing
// waits for the server) and while the embedder's callback runs, never while a session is built or
// closed. So the hot path, a watch event to the callback, is: dispatch thread
// sends the read, completion thread applies the answer and runs the callback; no hop through a
// thread of ours (the cost measured in docs/client-library.md, "Benchmark: watch fan-out").
// Every session is read through ZkSession's asynchronous reads (FakeZk's too, in unit tests).
//
// Watches. A data watch (armed by Get, or by Exists while the node is absent) and a child watch
// (GetChildren) on the master znode. A watch stays armed across a reconnect of the same session
// (the C client re-registers it), so each is re-armed only after it fired or on a new session;
// arming twice would double every event. A read cycle sends the node's Get FIRST and, when the
// child watch must be re-armed, GetChildren right after it, without waiting: a session's requests
// are served in order, so the voucher names are never older than the record they are matched
// against (a name binds one exact record: clients/src/consumer_rules.h). Otherwise the names of
// the last read are used if the Get's Stat::cversion is the one seen when they were read (no child
// changed since); else they are read now. A child event during a cycle adds the names' read to
// that cycle at once (the failover multi changes record and vouchers together: one round trip).
//
// Vouchers. Only the children bound to the record's exact bytes count. After an interruption of
// the session (a disconnect, a new session) the record counts as vouched again only when a bound
// voucher's mzxid moves past what the first read after the reconnect saw (AffirmGate): while that
// is pending, each cycle also reads the bound vouchers' Stat with a data watch on each (one more
// round trip, only then). The failover path (new record and bound voucher in one multi, on a
// connected session) reads nothing more.
//
// Ordering. A state is applied only if (mzxid, pzxid) of the read is at least the last applied
// pair, compared lexicographically: mzxid orders record changes, pzxid orders voucher changes of
// the same record. A new session may connect to a follower that lags behind what the old session
// saw; its older state is not applied (the watch fires once the follower catches up).
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "clients/src/consumer_rules.h"
#include "clients/src/master_watch_internal.h"
#include "common/cluster_model.h"
#include "common/untrusted.h"
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

enum class WatchKind { kData, kChildren, kVoucher };

bool SameState(const MasterInfo& a, const MasterInfo& b) {
  return a.status == b.status && a.cluster == b.cluster && a.node == b.node && a.host == b.host &&
         a.port == b.port && a.timeline == b.timeline && a.epoch == b.epoch &&
         a.vouchers == b.vouchers && a.mzxid == b.mzxid;
}

// Our watchers run on ZooKeeper's completion thread, like the read answers: no hop through the
// session's dispatch thread between a watch event and the read it triggers.
constexpr zk::ZkSession::WatchDelivery kOnCompletionThread =
    zk::ZkSession::WatchDelivery::kCompletionThread;

// ---------------------------------------------------------------------------------------------
// The runtime: ONE thread per process, shared by every MasterWatch, for the slow work that must
// not run on ZooKeeper's threads: building sessions, closing them (zookeeper_close blocks and is
// forbidden in a callback) and the retry timers. Reads and callbacks never wait for it. It lives
// while at least one MasterWatch does.
class Runtime {
 public:
  using Task = std::function<void()>;

  static std::shared_ptr<Runtime> Acquire() {
    // Leaked on purpose: a watch may be destroyed during static destruction.
    static std::mutex* mu = new std::mutex;
    static std::weak_ptr<Runtime>* current = new std::weak_ptr<Runtime>;
    std::lock_guard lock(*mu);
    std::shared_ptr<Runtime> runtime = current->lock();
    if (!runtime) {
      runtime = std::shared_ptr<Runtime>(new Runtime);
      *current = runtime;
    }
    return runtime;
  }

  ~Runtime() {
    {
      std::lock_guard lock(state_->mu);
      state_->stopping = true;
    }
    state_->cv.notify_all();
    // Only a callback destroying the last watch runs this on the thread itself: the thread then
    // ends on its own (it holds the queue's state).
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void PostAt(std::chrono::steady_clock::time_point at, Task task) {
    {
      std::lock_guard lock(state_->mu);
      state_->timers.push(Entry{at, state_->next_seq++, std::make_shared<Task>(std::move(task))});
    }
    state_->cv.notify_one();
  }
  void PostAfter(std::chrono::milliseconds delay, Task task) {
    PostAt(std::chrono::steady_clock::now() + delay, std::move(task));
  }

 private:
  struct Entry {
    std::chrono::steady_clock::time_point at;
    uint64_t seq;  // FIFO among equal times
    std::shared_ptr<Task> task;
    bool operator>(const Entry& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> timers;
    uint64_t next_seq = 0;
    bool stopping = false;
  };

  Runtime() : state_(std::make_shared<State>()) {
    thread_ = std::thread([state = state_] { Loop(*state); });
  }

  static void Loop(State& state) {
    std::unique_lock lock(state.mu);
    for (;;) {
      if (state.stopping) return;
      if (state.timers.empty()) {
        state.cv.wait(lock);
        continue;
      }
      const auto due = state.timers.top().at;
      if (std::chrono::steady_clock::now() < due) {
        state.cv.wait_until(lock, due);
        continue;
      }
      std::shared_ptr<Task> task = state.timers.top().task;
      state.timers.pop();
      lock.unlock();
      (*task)();
      task.reset();
      lock.lock();
    }
  }

  std::shared_ptr<State> state_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// The watch's state machine. Driven by events from whichever thread they arrive on (the session's
// dispatch thread: watches and state changes; ZooKeeper's completion thread: read answers; the
// runtime: session builds and retries), serialized by machine_mu_.
std::atomic<int> live_machines{0};

class WatchCore final : public std::enable_shared_from_this<WatchCore> {
 public:
  WatchCore(WatchSettings settings, SessionFactory factory, Runtime* runtime)
      : settings_(std::move(settings)),
        factory_(std::move(factory)),
        clock_(settings_.clock != nullptr ? settings_.clock : &SystemClock::Instance()),
        path_(MasterPath(settings_.root, settings_.cluster)),
        runtime_(runtime) {
    info_.cluster = settings_.cluster;
    ++live_machines;
  }
  ~WatchCore() { --live_machines; }
  WatchCore(const WatchCore&) = delete;
  WatchCore& operator=(const WatchCore&) = delete;

  void Begin(std::unique_ptr<zk::ZkSession> first) {
    // Installed on the runtime, so that no callback ever runs on the caller's thread.
    auto holder = std::make_shared<std::unique_ptr<zk::ZkSession>>(std::move(first));
    std::weak_ptr<WatchCore> weak = weak_from_this();
    runtime_->PostAfter(std::chrono::milliseconds(0), [weak, holder] {
      if (auto self = weak.lock()) self->RunStart(std::move(*holder));
    });
  }

  // The handle's destructor: no callback starts after the machine lock is taken here (and a
  // running one has finished), no runtime task of this watch is running when it returns, and
  // the session is closed.
  void Stop() {
    std::unique_ptr<zk::ZkSession> session;
    {
      std::lock_guard machine(machine_mu_);
      stopping_ = true;
      ++generation_;
      session = std::move(session_);
    }
    { std::lock_guard task(task_mu_); }  // a runtime task of this watch finishes; later ones quit
    if (session) session->Close();  // runs pending completions here: they find stopping_
  }

  MasterInfo current() const {
    std::lock_guard lock(info_mu_);
    return info_;
  }

  // Each handle over this machine is a subscriber with its own callback (several with
  // MasterWatchOptions::share_session).
  uint64_t Subscribe() {
    std::lock_guard lock(info_mu_);
    return ++last_subscriber_;
  }

  void OnChange(uint64_t subscriber, MasterWatch::Callback callback) {
    auto shared =
        callback ? std::make_shared<MasterWatch::Callback>(std::move(callback)) : nullptr;
    std::lock_guard lock(info_mu_);
    if (shared) {
      callbacks_[subscriber] = std::move(shared);
    } else {
      callbacks_.erase(subscriber);
    }
  }

  // After it returns the subscriber's callback is not running and never runs again.
  void Unsubscribe(uint64_t subscriber) {
    std::lock_guard machine(machine_mu_);  // a running callback (under it) finishes first
    std::lock_guard lock(info_mu_);
    callbacks_.erase(subscriber);
  }

  bool WaitFor(const std::function<bool(const MasterInfo&)>& pred,
               std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(info_mu_);
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
  // One read of the master znode, in flight: the child watch armed first (when it is not armed),
  // then the node read, both sent at once (a session's requests are served in order), then, if
  // the node is absent, an exists that arms the creation watch.
  struct Cycle {
    uint64_t id = 0;
    int pending = 0;  // answers still to come
    Status error = Status::Ok();
    bool exists = false;
    zk::NodeData node;
    bool children_missing = false;
    bool created_meanwhile = false;
    std::vector<std::string> children;         // read in this cycle, or the cached names_
    bool children_asked = false;               // GetChildren is part of this cycle
    bool voucher_stats_read = false;           // the AffirmGate's extra step was sent
    std::vector<std::int64_t> voucher_mzxids;  // of the bound vouchers still present
  };

  // Lines carry what ZooKeeper held (decoder messages, paths): sanitized here, the one way out
  // to the application's log callback (the C API's too), so that no control character reaches it.
  void Log(int level, const std::string& line) const {
    if (settings_.log) settings_.log(level, untrusted::SanitizeForDisplay(line));
  }

  // ---- runtime tasks (task_mu_ held, so Stop() waits for them) ----

  void RunStart(std::unique_ptr<zk::ZkSession> first) {
    std::lock_guard task(task_mu_);
    if (first) {
      InstallSession(std::move(first));
    } else {
      BuildSession();
    }
  }

  // Replaces a dead session (or retries a failed build).
  void RunRebuild() {
    std::lock_guard task(task_mu_);
    std::unique_ptr<zk::ZkSession> old;
    {
      std::lock_guard machine(machine_mu_);
      rebuild_scheduled_ = false;
      if (stopping_) return;
      if (session_) {
        Log(1, "master_watch event=session_ended cluster=" + settings_.cluster + " state=" +
                   zk::SessionStateName(session_->state()) + " action=new_session");
        MarkDisconnectedLocked("session_ended");
        ++generation_;  // anything still queued by the old session is dropped
        cycle_active_ = false;
        old = std::move(session_);
      }
    }
    if (old) old->Close();  // may block for seconds: never under machine_mu_
    BuildSession();
  }

  void RunRetry() {
    std::lock_guard machine(machine_mu_);
    retry_scheduled_ = false;
    if (stopping_ || !need_read_) return;
    StartReadLocked();
  }

  void BuildSession() {
    StatusOr<std::unique_ptr<zk::ZkSession>> made = factory_();
    if (!made.ok()) {
      Log(2, "master_watch event=session_failed cluster=" + settings_.cluster + " error=\"" +
                 made.status().ToString() + "\" retry_ms=" +
                 std::to_string(settings_.retry_interval.count()));
      std::lock_guard machine(machine_mu_);
      ScheduleRebuildLocked(settings_.retry_interval);
      return;
    }
    Log(1, "master_watch event=session_started cluster=" + settings_.cluster);
    InstallSession(std::move(made).value());
  }

  void InstallSession(std::unique_ptr<zk::ZkSession> session) {
    {
      std::lock_guard machine(machine_mu_);
      if (!stopping_) {
        session_ = std::move(session);
        const uint64_t generation = ++generation_;
        data_armed_ = children_armed_ = false;
        names_cversion_ = -1;
        vouchers_armed_.clear();
        cycle_active_ = false;
        read_again_ = false;
        session_->SetStateListener([this, generation](zk::SessionState state, int64_t) {
          OnState(generation, state);
        });
        // A connection made before the listener was set produced no event we saw: look now.
        StartReadLocked();
      }
    }
    if (session) session->Close();  // stopped meanwhile
  }

  // ---- events from the session (its dispatch thread) ----

  void OnWatch(uint64_t generation, WatchKind kind, const std::string& voucher) {
    std::lock_guard machine(machine_mu_);
    if (stopping_ || generation != generation_) return;
    // One-shot: it fired.
    switch (kind) {
      case WatchKind::kData: data_armed_ = false; break;
      case WatchKind::kChildren:
        children_armed_ = false;
        if (cycle_active_ && !cycle_.children_asked && !cycle_.voucher_stats_read) {
          // The cycle in flight reads the names too, sent now, after its Get: not older than
          // its record, and no second round trip.
          ++cycle_.pending;
          AskChildrenLocked();
          return;
        }
        break;
      case WatchKind::kVoucher: vouchers_armed_.erase(voucher); break;
    }
    StartReadLocked();
  }

  void OnState(uint64_t generation, zk::SessionState state) {
    std::lock_guard machine(machine_mu_);
    if (stopping_ || generation != generation_) return;
    switch (state) {
      case zk::SessionState::kConnected: StartReadLocked(); break;
      case zk::SessionState::kConnecting: MarkDisconnectedLocked("connection_lost"); break;
      case zk::SessionState::kExpired:
      case zk::SessionState::kAuthFailed:
      case zk::SessionState::kClosed: ScheduleRebuildLocked(std::chrono::milliseconds(0)); break;
    }
  }

  zk::Watcher MakeWatcher(WatchKind kind, std::string voucher = std::string()) {
    const uint64_t generation = generation_;
    // `this` outlives every session: each is closed (no callback after that) before we go.
    return [this, generation, kind, voucher](const zk::WatchEvent&) {
      OnWatch(generation, kind, voucher);
    };
  }

  // ---- the read cycle (machine_mu_ held) ----

  void ScheduleRebuildLocked(std::chrono::milliseconds delay) {
    if (stopping_ || rebuild_scheduled_) return;
    rebuild_scheduled_ = true;
    std::weak_ptr<WatchCore> weak = weak_from_this();
    runtime_->PostAfter(delay, [weak] {
      if (auto self = weak.lock()) self->RunRebuild();
    });
  }

  void ScheduleRetryLocked() {
    if (stopping_ || retry_scheduled_) return;
    retry_scheduled_ = true;
    std::weak_ptr<WatchCore> weak = weak_from_this();
    runtime_->PostAfter(settings_.retry_interval, [weak] {
      if (auto self = weak.lock()) self->RunRetry();
    });
  }

  // Reads now if connected and no read is in flight; otherwise remembers to (after the read in
  // flight, on the next kConnected, or on the retry timer).
  void StartReadLocked() {
    if (stopping_ || !session_) return;
    need_read_ = true;
    if (cycle_active_) {
      read_again_ = true;
      return;
    }
    const zk::SessionState state = session_->state();
    if (zk::IsFinal(state)) {
      ScheduleRebuildLocked(std::chrono::milliseconds(0));
      return;
    }
    if (state != zk::SessionState::kConnected) {
      MarkDisconnectedLocked("connection_lost");
      ScheduleRetryLocked();
      return;
    }
    cycle_active_ = true;
    read_again_ = false;
    attempt_ = 0;
    IssueCycleLocked();
  }

  void IssueCycleLocked() {
    cycle_ = Cycle{};
    cycle_.id = ++cycle_seq_;
    const bool ask_children = !children_armed_;
    const bool watch_data = !data_armed_;
    cycle_.pending = ask_children ? 2 : 1;
    // Armed from the moment the request is sent: its answer comes before any event of the watch
    // (the C client serves answers and events in order). A failed request clears the flag.
    data_armed_ = true;
    const uint64_t id = cycle_.id;
    IssueGetLocked(watch_data);
    // A request that could not be sent has been handled already and may have ended the cycle:
    // then nothing more is sent for it.
    if (!ask_children || !cycle_active_ || cycle_.id != id) return;
    AskChildrenLocked();
    // Nothing here after the last request: if it could not be sent, its failure (and maybe the
    // next cycle) has already been handled.
  }

  // Adds the names' read to the cycle in flight (its `pending` counts it already), arming the
  // child watch unless it is armed.
  void AskChildrenLocked() {
    cycle_.children_asked = true;
    const bool watched = !children_armed_;
    children_armed_ = true;
    IssueChildrenLocked(watched);
  }

  // Each Issue*Locked sends one asynchronous request; its answer comes on the completion thread.
  // A request that cannot be sent is answered here, at once, with the error. Either way the
  // On*Locked handler sees it.
  void IssueChildrenLocked(bool watched) {
    const uint64_t generation = generation_;
    const uint64_t id = cycle_.id;
    zk::Watcher watch = watched ? MakeWatcher(WatchKind::kChildren) : nullptr;
    Status sent = session_->GetChildrenAsync(
        path_, std::move(watch),
        [self = shared_from_this(), generation, id,
         watched](StatusOr<std::vector<std::string>> got) {
          std::lock_guard machine(self->machine_mu_);
          self->OnChildrenLocked(generation, id, watched, std::move(got));
        },
        kOnCompletionThread);
    if (!sent.ok()) OnChildrenLocked(generation, id, watched, sent);
  }

  // The AffirmGate's step: the Stat of one bound voucher, arming a data watch on it (fires on
  // its re-affirmation or deletion) unless one is armed.
  void IssueVoucherStatLocked(const std::string& name) {
    const uint64_t generation = generation_;
    const uint64_t id = cycle_.id;
    const bool watched = vouchers_armed_.insert(name).second;
    zk::Watcher watch = watched ? MakeWatcher(WatchKind::kVoucher, name) : nullptr;
    const std::string path = path_ + "/" + name;
    Status sent = session_->ExistsAsync(
        path, std::move(watch),
        [self = shared_from_this(), generation, id, watched,
         name](StatusOr<std::optional<zk::Stat>> got) {
          std::lock_guard machine(self->machine_mu_);
          self->OnVoucherStatLocked(generation, id, watched, name, std::move(got));
        },
        kOnCompletionThread);
    if (!sent.ok()) OnVoucherStatLocked(generation, id, watched, name, sent);
  }

  void IssueGetLocked(bool watched) {
    const uint64_t generation = generation_;
    const uint64_t id = cycle_.id;
    zk::Watcher watch = watched ? MakeWatcher(WatchKind::kData) : nullptr;
    Status sent = session_->GetAsync(
        path_, std::move(watch),
        [self = shared_from_this(), generation, id, watched](StatusOr<zk::NodeData> got) {
          std::lock_guard machine(self->machine_mu_);
          self->OnGetLocked(generation, id, watched, std::move(got));
        },
        kOnCompletionThread);
    if (!sent.ok()) OnGetLocked(generation, id, watched, sent);
  }

  void IssueExistsLocked(bool watched) {
    const uint64_t generation = generation_;
    const uint64_t id = cycle_.id;
    zk::Watcher watch = watched ? MakeWatcher(WatchKind::kData) : nullptr;
    Status sent = session_->ExistsAsync(
        path_, std::move(watch),
        [self = shared_from_this(), generation, id,
         watched](StatusOr<std::optional<zk::Stat>> got) {
          std::lock_guard machine(self->machine_mu_);
          self->OnExistsLocked(generation, id, watched, std::move(got));
        },
        kOnCompletionThread);
    if (!sent.ok()) OnExistsLocked(generation, id, watched, sent);
  }

  bool CurrentCycleLocked(uint64_t generation, uint64_t id) const {
    return !stopping_ && generation == generation_ && cycle_active_ && id == cycle_.id;
  }

  void OnChildrenLocked(uint64_t generation, uint64_t id, bool watched,
                        StatusOr<std::vector<std::string>> got) {
    if (!CurrentCycleLocked(generation, id)) return;
    if (got.ok()) {
      cycle_.children = std::move(got).value();
    } else {
      if (watched) children_armed_ = false;
      if (got.status().code() == StatusCode::kNotFound) {
        cycle_.children_missing = true;  // the data (exists) watch reports the creation
      } else if (cycle_.error.ok()) {
        cycle_.error = got.status();
      }
    }
    FinishOpLocked();
  }

  void OnVoucherStatLocked(uint64_t generation, uint64_t id, bool watched, const std::string& name,
                           StatusOr<std::optional<zk::Stat>> got) {
    if (!CurrentCycleLocked(generation, id)) return;
    if (!got.ok()) {
      if (watched) vouchers_armed_.erase(name);
      if (cycle_.error.ok()) cycle_.error = got.status();
    } else if (got->has_value()) {
      cycle_.voucher_mzxids.push_back((*got)->mzxid);
    }
    // Gone meanwhile: the child watch fires and the next cycle reads again.
    FinishOpLocked();
  }

  void OnGetLocked(uint64_t generation, uint64_t id, bool watched, StatusOr<zk::NodeData> got) {
    if (!CurrentCycleLocked(generation, id)) return;
    if (got.ok()) {
      cycle_.exists = true;
      cycle_.node = std::move(got).value();
    } else {
      if (watched) data_armed_ = false;  // a failed get arms nothing
      if (got.status().code() == StatusCode::kNotFound && cycle_.error.ok()) {
        // Absent: an exists watch fires on creation.
        const bool watch_exists = !data_armed_;
        data_armed_ = true;
        ++cycle_.pending;
        IssueExistsLocked(watch_exists);
      } else if (cycle_.error.ok()) {
        cycle_.error = got.status();
      }
    }
    FinishOpLocked();
  }

  void OnExistsLocked(uint64_t generation, uint64_t id, bool watched,
                      StatusOr<std::optional<zk::Stat>> got) {
    if (!CurrentCycleLocked(generation, id)) return;
    if (!got.ok()) {
      if (watched) data_armed_ = false;
      if (cycle_.error.ok()) cycle_.error = got.status();
    } else if (got->has_value()) {
      cycle_.created_meanwhile = true;  // read it (the watch is armed now)
    }
    FinishOpLocked();
  }

  void FinishOpLocked() {
    if (--cycle_.pending > 0) return;
    if (!cycle_.error.ok()) {
      cycle_active_ = false;
      ReadFailedLocked(cycle_.error);
      return;
    }
    if (cycle_.created_meanwhile || (cycle_.exists && cycle_.children_missing)) {
      // Created between two requests: read again, arming what is missing.
      if (++attempt_ <= 3) {
        IssueCycleLocked();
        return;
      }
      cycle_active_ = false;
      ReadFailedLocked(
          Status(StatusCode::kConnectionLoss, "master znode keeps appearing and vanishing"));
      return;
    }
    if (cycle_.exists && !cycle_.children_asked) {
      if (cycle_.node.stat.cversion == names_cversion_) {
        cycle_.children = names_;  // no child changed since they were read
      } else {
        // Changed, and its event not seen yet (e.g. a first read): read them now.
        cycle_.pending = 1;
        AskChildrenLocked();
        return;
      }
    }
    if (cycle_.exists && cycle_.children_asked && !cycle_.voucher_stats_read) {
      // The names were read after the Get: exact for a cversion at least the Get's. Tagged with
      // the Get's, so a later Get with the same cversion may use them (a change in between makes
      // the tag differ from every later cversion: read again, never stale).
      names_ = cycle_.children;
      names_cversion_ = cycle_.node.stat.cversion;
    }
    if (gate_.needs_voucher_stats() && !cycle_.voucher_stats_read && cycle_.exists) {
      // After an interruption: the bound vouchers' Stat, sent all at once.
      cycle_.voucher_stats_read = true;
      const Judgement judged = JudgeRead(ReadOf(cycle_));
      if (!judged.bound.empty()) {
        cycle_.pending = static_cast<int>(judged.bound.size()) + 1;
        const uint64_t id = cycle_.id;
        for (const std::string& name : judged.bound) {
          IssueVoucherStatLocked(name);
          if (!cycle_active_ || cycle_.id != id) return;  // a request not sent ended it
        }
        FinishOpLocked();  // the +1 above: every answer may have come already
        return;
      }
    }
    cycle_active_ = false;
    need_read_ = false;
    const Cycle done = std::move(cycle_);
    cycle_ = Cycle{};
    ApplyLocked(done);
    if (read_again_) StartReadLocked();
  }

  void ReadFailedLocked(const Status& error) {
    need_read_ = true;
    if (error.code() == StatusCode::kSessionExpired || zk::IsFinal(session_->state())) {
      ScheduleRebuildLocked(std::chrono::milliseconds(0));
      return;
    }
    Log(error.code() == StatusCode::kConnectionLoss ? 0 : 2,
        "master_watch event=read_failed cluster=" + settings_.cluster + " path=" + path_ +
            " error=\"" + error.ToString() + "\"");
    ScheduleRetryLocked();
  }

  static MasterRead ReadOf(const Cycle& cycle) {
    MasterRead read;
    read.exists = cycle.exists;
    read.data = cycle.node.data;
    read.stat = cycle.node.stat;
    read.children = cycle.children;
    return read;
  }

  void ApplyLocked(const Cycle& snap) {
    const MonoTime now = clock_->Now();
    if (!snap.exists) {
      // The contract never deletes the record: a cluster not set up yet (kNoMaster), or a deleted
      // record after a master was known (kUnverified, the last verified master kept).
      MasterInfo next = StateFor(settings_.cluster, Judgement{}, 0, last_verified_, false);
      next.confirmed_at = now;
      PublishLocked(next, "record_absent");
      return;
    }

    const zk::Stat& stat = snap.node.stat;
    const std::pair<int64_t, int64_t> order{stat.mzxid, stat.pzxid};
    if (applied_any_ && order < last_applied_) {
      Log(0, "master_watch event=stale_state_ignored cluster=" + settings_.cluster +
                 " mzxid=" + std::to_string(order.first) + " pzxid=" +
                 std::to_string(order.second) + " applied_mzxid=" +
                 std::to_string(last_applied_.first) + " applied_pzxid=" +
                 std::to_string(last_applied_.second));
      return;  // the watch fires when this server catches up
    }
    applied_any_ = true;
    last_applied_ = order;

    const Judgement judged = JudgeRead(ReadOf(snap));
    const bool affirmed = gate_.Affirmed(stat, snap.voucher_mzxids);
    const char* why = "read";
    if (judged.kind == Judgement::Kind::kUnreadable) {
      why = "corrupt_record";
      if (stat.mzxid != last_corrupt_mzxid_) {
        last_corrupt_mzxid_ = stat.mzxid;
        Log(3, "master_watch event=corrupt_payload_ignored cluster=" + settings_.cluster +
                   " path=" + path_ + " mzxid=" + std::to_string(stat.mzxid) + " error=\"" +
                   judged.error.message() + "\" action=unverified_keep_last_verified" +
                   " fix=\"the master record must be written by the pgherald orchestrator\"");
      }
    } else if (judged.kind == Judgement::Kind::kUnbound) {
      why = judged.unbound > 0 ? "voucher_unbound" : "no_voucher";
    } else if (judged.kind == Judgement::Kind::kBound && !affirmed) {
      why = "awaiting_reaffirmation";
    }
    MasterInfo next = StateFor(settings_.cluster, judged, stat.mzxid, last_verified_, affirmed);
    next.confirmed_at = now;
    if (next.status == MasterStatus::kVouched) last_verified_ = next;
    PublishLocked(next, why);
  }

  void MarkDisconnectedLocked(const char* why) {
    gate_.Interrupted();  // a route opens again only on a verification made after this
    MasterInfo next = current();
    if (next.status == MasterStatus::kDisconnected) return;
    next.status = MasterStatus::kDisconnected;
    // Until now the armed watches kept the state confirmed; its age counts from here.
    next.confirmed_at = clock_->Now();
    PublishLocked(next, why);
  }

  // Stores `next`; if it differs from the current state (status, master or vouchers), logs the
  // transition and runs the callback. The line is logged before the state becomes visible, the
  // callback runs after, under machine_mu_ (so calls are serialized and in order, and Stop()
  // waits for a running one) but not under info_mu_ (so it may call current(), OnChange() and
  // WaitFor()).
  void PublishLocked(const MasterInfo& next, const char* why) {
    if (stopping_) return;
    {
      std::lock_guard lock(info_mu_);
      if (SameState(info_, next)) {
        info_.confirmed_at = next.confirmed_at;
        return;
      }
    }
    if (settings_.log) {
      std::ostringstream line;
      line << "master_watch event=transition cluster=" << next.cluster
           << " status=" << MasterStatusName(next.status) << " node=" << next.node
           << " host=" << next.host << " port=" << next.port << " timeline=" << next.timeline
           << " epoch=" << next.epoch << " vouchers=" << next.vouchers << " mzxid=" << next.mzxid
           << " cause=" << why;
      Log(1, line.str());
    }
    std::vector<std::shared_ptr<MasterWatch::Callback>> callbacks;
    {
      std::lock_guard lock(info_mu_);
      info_ = next;
      ++info_version_;
      callbacks.reserve(callbacks_.size());
      for (const auto& entry : callbacks_) callbacks.push_back(entry.second);
    }
    changed_.notify_all();
    for (const auto& callback : callbacks) {
      if (*callback) (*callback)(next);
    }
  }

  const WatchSettings settings_;
  const SessionFactory factory_;
  const Clock* const clock_;
  const std::string path_;
  Runtime* const runtime_;  // outlives us: the handle holds it and stops us first

  // Held by every runtime task of this watch, so that Stop() can wait for them.
  std::mutex task_mu_;

  // The machine. Never held while a session is closed or built, or while waiting for an answer.
  std::mutex machine_mu_;
  bool stopping_ = false;
  uint64_t generation_ = 0;  // of the current session; bumped when it is replaced
  std::unique_ptr<zk::ZkSession> session_;
  bool data_armed_ = false;
  bool children_armed_ = false;
  bool need_read_ = false;     // the last read failed or a read is due
  bool cycle_active_ = false;  // a read cycle is in flight
  bool read_again_ = false;    // an event came during the cycle: read once more after it
  int attempt_ = 0;
  uint64_t cycle_seq_ = 0;
  Cycle cycle_;
  bool rebuild_scheduled_ = false;
  bool retry_scheduled_ = false;
  bool applied_any_ = false;
  std::pair<int64_t, int64_t> last_applied_{0, 0};  // (mzxid, pzxid)
  int64_t last_corrupt_mzxid_ = -1;
  std::vector<std::string> names_;           // the children at their last read
  int32_t names_cversion_ = -1;              // ... tagged with the cversion of that cycle's Get
  std::set<std::string> vouchers_armed_;     // bound vouchers with a data watch armed
  AffirmGate gate_;
  std::optional<MasterInfo> last_verified_;  // the last kVouched state published

  // The published state, for any thread.
  mutable std::mutex info_mu_;
  std::condition_variable changed_;  // WaitFor waits here for a new info_
  MasterInfo info_;
  uint64_t info_version_ = 0;
  uint64_t last_subscriber_ = 0;
  std::map<uint64_t, std::shared_ptr<MasterWatch::Callback>> callbacks_;  // by subscriber
};

// Log lines of a shared machine go to the sink of every handle over it; a sink is never called
// after Remove() returns.
class LogFanout {
 public:
  void Add(uint64_t id, LogSink sink) {
    if (!sink) return;
    std::lock_guard lock(mu_);
    sinks_[id] = std::move(sink);
  }
  void Remove(uint64_t id) {
    std::lock_guard lock(mu_);
    sinks_.erase(id);
  }
  void Write(int level, const std::string& line) {
    std::lock_guard lock(mu_);
    for (const auto& entry : sinks_) entry.second(level, line);
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, LogSink> sinks_;
};

// A machine and what keeps it running; stopped when the last handle over it goes.
struct SharedCore {
  std::shared_ptr<Runtime> runtime;  // declared first: outlives the core's tasks
  std::shared_ptr<WatchCore> core;
  std::shared_ptr<LogFanout> logs;  // a shared machine's; nullptr for a watch of its own
  SharedCore() = default;
  SharedCore(const SharedCore&) = delete;
  SharedCore& operator=(const SharedCore&) = delete;
  ~SharedCore() {
    if (core) core->Stop();
  }
};

std::shared_ptr<SharedCore> NewCore(WatchSettings settings, SessionFactory factory,
                                    std::unique_ptr<zk::ZkSession> first,
                                    std::shared_ptr<LogFanout> logs) {
  auto shared = std::make_shared<SharedCore>();
  shared->runtime = Runtime::Acquire();
  shared->logs = std::move(logs);
  shared->core = std::make_shared<WatchCore>(std::move(settings), std::move(factory),
                                             shared->runtime.get());
  shared->core->Begin(std::move(first));
  return shared;
}

// The process's shared machines (MasterWatchOptions::share_session), by what identifies them.
// `make` runs under the registry's lock and returns nullptr on error.
std::shared_ptr<SharedCore> FindOrMakeShared(
    const std::string& key, const std::function<std::shared_ptr<SharedCore>()>& make) {
  // Leaked on purpose: a watch may be destroyed during static destruction.
  static std::mutex* mu = new std::mutex;
  static auto* registry = new std::map<std::string, std::weak_ptr<SharedCore>>;
  std::lock_guard lock(*mu);
  for (auto it = registry->begin(); it != registry->end();) {
    it = it->second.expired() ? registry->erase(it) : std::next(it);
  }
  auto found = registry->find(key);
  if (found != registry->end()) {
    if (std::shared_ptr<SharedCore> alive = found->second.lock()) return alive;
  }
  std::shared_ptr<SharedCore> made = make();
  if (made) (*registry)[key] = made;
  return made;
}

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

int LiveMachinesForTesting() { return live_machines.load(); }

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
    StatusOr<std::unique_ptr<zk::ZkClient>> client = zk::ZkClient::Connect(zk_options);
    if (!client.ok()) return client.status();
    return std::unique_ptr<zk::ZkSession>(std::move(client).value());
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
