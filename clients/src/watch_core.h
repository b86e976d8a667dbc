// WatchCore: the state machine behind a MasterWatch: one ZooKeeper session, two one-shot watches,
// no thread of its own.
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
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "clients/src/consumer_rules.h"
#include "clients/src/master_watch_internal.h"
#include "clients/src/runtime.h"
#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/model/zk_paths.h"
#include "common/zk/zk_session.h"
#include "pgherald/master_watch.h"

namespace pgherald::client::internal {

// Driven by events from whichever thread they arrive on (the session's dispatch thread: state
// changes; ZooKeeper's completion thread: read answers and our watches; the runtime: session
// builds and retries), serialized by machine_mu_.
class WatchCore final : public std::enable_shared_from_this<WatchCore> {
 public:
  WatchCore(WatchSettings settings, SessionFactory factory, Runtime* runtime);
  ~WatchCore();
  WatchCore(const WatchCore&) = delete;
  WatchCore& operator=(const WatchCore&) = delete;

  void Begin(std::unique_ptr<zk::ZkSession> first);

  // The handle's destructor: no callback starts after the machine lock is taken here (and a
  // running one has finished), no runtime task of this watch is running when it returns, and
  // the session is closed.
  void Stop();

  MasterInfo current() const;

  // Each handle over this machine is a subscriber with its own callback (several with
  // MasterWatchOptions::share_session).
  uint64_t Subscribe();

  void OnChange(uint64_t subscriber, MasterWatch::Callback callback);

  // After it returns the subscriber's callback is not running and never runs again.
  void Unsubscribe(uint64_t subscriber);

  bool WaitFor(const std::function<bool(const MasterInfo&)>& pred,
               std::chrono::milliseconds timeout);

 private:
  // Where the watch's reads stand.
  enum class ReadState {
    kIdle,               // the last read was applied; the armed watches tell of any change
    kDue,                // a read is due: on the next kConnected, the retry timer or a new session
    kInFlight,           // a read cycle is in flight
    kInFlightReadAgain,  // ... and an event came meanwhile: read once more after it
  };
  // kStopped: the handle's destructor ran Stop(); nothing starts any more.
  enum class Lifecycle { kRunning, kStopped };
  // How far the read cycle in flight got.
  enum class CycleStep {
    kRecord,           // the record's Get sent; the voucher names not (yet) part of the cycle
    kRecordWithNames,  // ... and the names' GetChildren, sent right after it
    kVoucherStats,     // after an interruption: the bound vouchers' Stat (the AffirmGate's step)
  };

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
    CycleStep step = CycleStep::kRecord;
    std::vector<std::int64_t> voucher_mzxids;  // of the bound vouchers still present
  };

  bool InFlight() const {
    return read_ == ReadState::kInFlight || read_ == ReadState::kInFlightReadAgain;
  }
  bool stopped() const { return lifecycle_ == Lifecycle::kStopped; }

  // Lines carry what ZooKeeper held (decoder messages, paths): sanitized here, the one way out
  // to the application's log callback (the C API's too), so that no control character reaches it.
  void Log(int level, const std::string& line) const;

  // ---- runtime tasks (task_mu_ held, so Stop() waits for them) ----

  void RunStart(std::unique_ptr<zk::ZkSession> first);

  // Replaces a dead session (or retries a failed build).
  void RunRebuild();

  void RunRetry();

  void BuildSession();

  void InstallSession(std::unique_ptr<zk::ZkSession> session);

  // ---- events from the session (its dispatch thread) ----

  enum class WatchKind { kData, kChildren, kVoucher };

  void OnWatch(uint64_t generation, WatchKind kind, const std::string& voucher);

  void OnState(uint64_t generation, zk::SessionState state);

  zk::Watcher MakeWatcher(WatchKind kind, std::string voucher = std::string());

  // ---- the read cycle (machine_mu_ held) ----

  void ScheduleRebuildLocked(std::chrono::milliseconds delay);

  void ScheduleRetryLocked();

  // Reads now if connected and no read is in flight; otherwise remembers to (after the read in
  // flight, on the next kConnected, or on the retry timer).
  void StartReadLocked();

  void IssueCycleLocked();

  // Adds the names' read to the cycle in flight (its `pending` counts it already), arming the
  // child watch unless it is armed.
  void AskChildrenLocked();

  // Each Issue*Locked sends one asynchronous request; its answer comes on the completion thread.
  // A request that cannot be sent is answered here, at once, with the error. Either way the
  // On*Locked handler sees it.
  void IssueChildrenLocked(bool watched);

  // The AffirmGate's step: the Stat of one bound voucher, arming a data watch on it (fires on
  // its re-affirmation or deletion) unless one is armed.
  void IssueVoucherStatLocked(const std::string& name);

  void IssueGetLocked(bool watched);

  void IssueExistsLocked(bool watched);

  // What every Issue*Locked shares: `send(done)` sends the request with `done` as its callback;
  // the answer (StatusOr<T>), or the send's error at once, goes to `handler` (an On*Locked, or a
  // callable taking this core first) with this cycle's generation and id, under machine_mu_.
  template <typename T, typename Send, typename Handler>
  void SendLocked(bool watched, Send send, Handler handler);

  bool CurrentCycleLocked(uint64_t generation, uint64_t id) const;

  void OnChildrenLocked(uint64_t generation, uint64_t id, bool watched,
                        StatusOr<std::vector<std::string>> got);

  void OnVoucherStatLocked(uint64_t generation, uint64_t id, bool watched, const std::string& name,
                           StatusOr<std::optional<zk::Stat>> got);

  void OnGetLocked(uint64_t generation, uint64_t id, bool watched, StatusOr<zk::NodeData> got);

  void OnExistsLocked(uint64_t generation, uint64_t id, bool watched,
                      StatusOr<std::optional<zk::Stat>> got);

  void FinishOpLocked();

  // Ends the cycle in flight (or a read that could not start) with `error`: read again on the
  // retry timer, on the next kConnected, or with a new session.
  void ReadFailedLocked(const Status& error);

  static MasterRead ReadOf(const Cycle& cycle);

  void ApplyLocked(const Cycle& snap);

  void MarkDisconnectedLocked(const char* why);

  // Stores `next`; if it differs from the current state (status, master or vouchers), logs the
  // transition and runs the callback. The line is logged before the state becomes visible, the
  // callback runs after, under machine_mu_ (so calls are serialized and in order, and Stop()
  // waits for a running one) but not under info_mu_ (so it may call current(), OnChange() and
  // WaitFor()).
  void PublishLocked(const MasterInfo& next, const char* why);

  const WatchSettings settings_;
  const SessionFactory factory_;
  const Clock* const clock_;
  const model::ClusterPaths paths_;
  const std::string path_;  // the master znode: paths_.Master()
  Runtime* const runtime_;  // outlives us: the handle holds it and stops us first

  // Held by every runtime task of this watch, so that Stop() can wait for them.
  std::mutex task_mu_;

  // The machine. Never held while a session is closed or built, or while waiting for an answer.
  std::mutex machine_mu_;
  Lifecycle lifecycle_ = Lifecycle::kRunning;
  uint64_t generation_ = 0;  // of the current session; bumped when it is replaced
  std::unique_ptr<zk::ZkSession> session_;
  bool data_armed_ = false;
  bool children_armed_ = false;
  ReadState read_ = ReadState::kIdle;
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

}  // namespace pgherald::client::internal
