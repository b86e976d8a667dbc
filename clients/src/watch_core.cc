#include "clients/src/watch_core.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <sstream>

#include "common/model/cluster_model.h"
#include "common/model/untrusted.h"

namespace pgherald::client::internal {
namespace {

// How many machines are alive (LiveMachinesForTesting).
std::atomic<int> live_machines{0};

bool SameState(const MasterInfo& a, const MasterInfo& b) {
  return a.status == b.status && a.cluster == b.cluster && a.node == b.node && a.host == b.host &&
         a.port == b.port && a.timeline == b.timeline && a.epoch == b.epoch &&
         a.vouchers == b.vouchers && a.mzxid == b.mzxid;
}

// Our watchers run on ZooKeeper's completion thread, like the read answers: no hop through the
// session's dispatch thread between a watch event and the read it triggers.
constexpr zk::ZkSession::WatchDelivery kOnCompletionThread =
    zk::ZkSession::WatchDelivery::kCompletionThread;

}  // namespace

int LiveMachinesForTesting() { return live_machines.load(); }

WatchCore::WatchCore(WatchSettings settings, SessionFactory factory, Runtime* runtime)
    : settings_(std::move(settings)),
      factory_(std::move(factory)),
      clock_(settings_.clock != nullptr ? settings_.clock : &SystemClock::Instance()),
      paths_(settings_.root, settings_.cluster),
      path_(paths_.Master()),
      runtime_(runtime) {
  info_.cluster = settings_.cluster;
  ++live_machines;
}

WatchCore::~WatchCore() { --live_machines; }

void WatchCore::Begin(std::unique_ptr<zk::ZkSession> first) {
  // Installed on the runtime, so that no callback ever runs on the caller's thread.
  auto holder = std::make_shared<std::unique_ptr<zk::ZkSession>>(std::move(first));
  std::weak_ptr<WatchCore> weak = weak_from_this();
  runtime_->PostAfter(std::chrono::milliseconds(0), [weak, holder] {
    if (auto self = weak.lock()) self->RunStart(std::move(*holder));
  });
}

void WatchCore::Stop() {
  std::unique_ptr<zk::ZkSession> session;
  {
    std::lock_guard machine(machine_mu_);
    lifecycle_ = Lifecycle::kStopped;
    ++generation_;
    session = std::move(session_);
  }
  { std::lock_guard task(task_mu_); }  // a runtime task of this watch finishes; later ones quit
  if (session) session->Close();  // runs pending completions here: they find kStopped
}

MasterInfo WatchCore::current() const {
  std::lock_guard lock(info_mu_);
  return info_;
}

uint64_t WatchCore::Subscribe() {
  std::lock_guard lock(info_mu_);
  return ++last_subscriber_;
}

void WatchCore::OnChange(uint64_t subscriber, MasterWatch::Callback callback) {
  auto shared =
      callback ? std::make_shared<MasterWatch::Callback>(std::move(callback)) : nullptr;
  std::lock_guard lock(info_mu_);
  if (shared) {
    callbacks_[subscriber] = std::move(shared);
  } else {
    callbacks_.erase(subscriber);
  }
}

void WatchCore::Unsubscribe(uint64_t subscriber) {
  std::lock_guard machine(machine_mu_);  // a running callback (under it) finishes first
  std::lock_guard lock(info_mu_);
  callbacks_.erase(subscriber);
}

bool WatchCore::WaitFor(const std::function<bool(const MasterInfo&)>& pred,
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

void WatchCore::Log(int level, const std::string& line) const {
  if (settings_.log) settings_.log(level, untrusted::SanitizeForDisplay(line));
}

void WatchCore::RunStart(std::unique_ptr<zk::ZkSession> first) {
  std::lock_guard task(task_mu_);
  if (first) {
    InstallSession(std::move(first));
  } else {
    BuildSession();
  }
}

void WatchCore::RunRebuild() {
  std::lock_guard task(task_mu_);
  std::unique_ptr<zk::ZkSession> old;
  {
    std::lock_guard machine(machine_mu_);
    rebuild_scheduled_ = false;
    if (stopped()) return;
    if (session_) {
      Log(1, "master_watch event=session_ended cluster=" + settings_.cluster + " state=" +
                 zk::SessionStateName(session_->state()) + " action=new_session");
      MarkDisconnectedLocked("session_ended");
      ++generation_;  // anything still queued by the old session is dropped
      if (InFlight()) read_ = ReadState::kDue;
      old = std::move(session_);
    }
  }
  if (old) old->Close();  // may block for seconds: never under machine_mu_
  BuildSession();
}

void WatchCore::RunRetry() {
  std::lock_guard machine(machine_mu_);
  retry_scheduled_ = false;
  if (stopped() || read_ == ReadState::kIdle) return;
  StartReadLocked();
}

void WatchCore::BuildSession() {
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

void WatchCore::InstallSession(std::unique_ptr<zk::ZkSession> session) {
  {
    std::lock_guard machine(machine_mu_);
    if (!stopped()) {
      session_ = std::move(session);
      const uint64_t generation = ++generation_;
      data_armed_ = children_armed_ = false;
      names_cversion_ = -1;
      vouchers_armed_.clear();
      read_ = ReadState::kIdle;
      session_->SetStateListener([this, generation](zk::SessionState state, int64_t) {
        OnState(generation, state);
      });
      // A connection made before the listener was set produced no event we saw: look now.
      StartReadLocked();
    }
  }
  if (session) session->Close();  // stopped meanwhile
}

void WatchCore::OnWatch(uint64_t generation, WatchKind kind, const std::string& voucher) {
  std::lock_guard machine(machine_mu_);
  if (stopped() || generation != generation_) return;
  // One-shot: it fired.
  switch (kind) {
    case WatchKind::kData: data_armed_ = false; break;
    case WatchKind::kChildren:
      children_armed_ = false;
      if (InFlight() && cycle_.step == CycleStep::kRecord) {
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

void WatchCore::OnState(uint64_t generation, zk::SessionState state) {
  std::lock_guard machine(machine_mu_);
  if (stopped() || generation != generation_) return;
  switch (state) {
    case zk::SessionState::kConnected: StartReadLocked(); break;
    case zk::SessionState::kConnecting: MarkDisconnectedLocked("connection_lost"); break;
    case zk::SessionState::kExpired:
    case zk::SessionState::kAuthFailed:
    case zk::SessionState::kClosed: ScheduleRebuildLocked(std::chrono::milliseconds(0)); break;
  }
}

zk::Watcher WatchCore::MakeWatcher(WatchKind kind, std::string voucher) {
  const uint64_t generation = generation_;
  // `this` outlives every session: each is closed (no callback after that) before we go.
  return [this, generation, kind, voucher](const zk::WatchEvent&) {
    OnWatch(generation, kind, voucher);
  };
}

void WatchCore::ScheduleRebuildLocked(std::chrono::milliseconds delay) {
  if (stopped() || rebuild_scheduled_) return;
  rebuild_scheduled_ = true;
  std::weak_ptr<WatchCore> weak = weak_from_this();
  runtime_->PostAfter(delay, [weak] {
    if (auto self = weak.lock()) self->RunRebuild();
  });
}

void WatchCore::ScheduleRetryLocked() {
  if (stopped() || retry_scheduled_) return;
  retry_scheduled_ = true;
  std::weak_ptr<WatchCore> weak = weak_from_this();
  runtime_->PostAfter(settings_.retry_interval, [weak] {
    if (auto self = weak.lock()) self->RunRetry();
  });
}

void WatchCore::StartReadLocked() {
  if (stopped() || !session_) return;
  if (InFlight()) {
    read_ = ReadState::kInFlightReadAgain;
    return;
  }
  read_ = ReadState::kDue;
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
  read_ = ReadState::kInFlight;
  attempt_ = 0;
  IssueCycleLocked();
}

void WatchCore::IssueCycleLocked() {
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
  if (!ask_children || !InFlight() || cycle_.id != id) return;
  AskChildrenLocked();
  // Nothing here after the last request: if it could not be sent, its failure (and maybe the
  // next cycle) has already been handled.
}

void WatchCore::AskChildrenLocked() {
  cycle_.step = CycleStep::kRecordWithNames;
  const bool watched = !children_armed_;
  children_armed_ = true;
  IssueChildrenLocked(watched);
}

template <typename T, typename Send, typename Handler>
void WatchCore::SendLocked(bool watched, Send send, Handler handler) {
  const uint64_t generation = generation_;
  const uint64_t id = cycle_.id;
  Status sent = send([self = shared_from_this(), generation, id, watched, handler](StatusOr<T> got) {
    std::lock_guard machine(self->machine_mu_);
    std::invoke(handler, *self, generation, id, watched, std::move(got));
  });
  if (!sent.ok()) std::invoke(handler, *this, generation, id, watched, StatusOr<T>(sent));
}

void WatchCore::IssueChildrenLocked(bool watched) {
  zk::Watcher watch = watched ? MakeWatcher(WatchKind::kChildren) : nullptr;
  SendLocked<std::vector<std::string>>(
      watched,
      [&](zk::ZkSession::ChildrenDone done) {
        return session_->GetChildrenAsync(path_, std::move(watch), std::move(done),
                                          kOnCompletionThread);
      },
      &WatchCore::OnChildrenLocked);
}

void WatchCore::IssueVoucherStatLocked(const std::string& name) {
  const bool watched = vouchers_armed_.insert(name).second;
  zk::Watcher watch = watched ? MakeWatcher(WatchKind::kVoucher, name) : nullptr;
  SendLocked<std::optional<zk::Stat>>(
      watched,
      [&](zk::ZkSession::ExistsDone done) {
        return session_->ExistsAsync(paths_.Voucher(name), std::move(watch), std::move(done),
                                     kOnCompletionThread);
      },
      [name](WatchCore& core, uint64_t generation, uint64_t id, bool armed,
             StatusOr<std::optional<zk::Stat>> got) {
        core.OnVoucherStatLocked(generation, id, armed, name, std::move(got));
      });
}

void WatchCore::IssueGetLocked(bool watched) {
  zk::Watcher watch = watched ? MakeWatcher(WatchKind::kData) : nullptr;
  SendLocked<zk::NodeData>(
      watched,
      [&](zk::ZkSession::GetDone done) {
        return session_->GetAsync(path_, std::move(watch), std::move(done), kOnCompletionThread);
      },
      &WatchCore::OnGetLocked);
}

void WatchCore::IssueExistsLocked(bool watched) {
  zk::Watcher watch = watched ? MakeWatcher(WatchKind::kData) : nullptr;
  SendLocked<std::optional<zk::Stat>>(
      watched,
      [&](zk::ZkSession::ExistsDone done) {
        return session_->ExistsAsync(path_, std::move(watch), std::move(done), kOnCompletionThread);
      },
      &WatchCore::OnExistsLocked);
}

bool WatchCore::CurrentCycleLocked(uint64_t generation, uint64_t id) const {
  return !stopped() && generation == generation_ && InFlight() && id == cycle_.id;
}

void WatchCore::OnChildrenLocked(uint64_t generation, uint64_t id, bool watched,
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

void WatchCore::OnVoucherStatLocked(uint64_t generation, uint64_t id, bool watched,
                                    const std::string& name,
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

void WatchCore::OnGetLocked(uint64_t generation, uint64_t id, bool watched,
                            StatusOr<zk::NodeData> got) {
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

void WatchCore::OnExistsLocked(uint64_t generation, uint64_t id, bool watched,
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

void WatchCore::FinishOpLocked() {
  if (--cycle_.pending > 0) return;
  if (!cycle_.error.ok()) {
    ReadFailedLocked(cycle_.error);
    return;
  }
  if (cycle_.created_meanwhile || (cycle_.exists && cycle_.children_missing)) {
    // Created between two requests: read again, arming what is missing.
    if (++attempt_ <= 3) {
      IssueCycleLocked();
      return;
    }
    ReadFailedLocked(
        Status(StatusCode::kConnectionLoss, "master znode keeps appearing and vanishing"));
    return;
  }
  if (cycle_.exists && cycle_.step == CycleStep::kRecord) {
    if (cycle_.node.stat.cversion == names_cversion_) {
      cycle_.children = names_;  // no child changed since they were read
    } else {
      // Changed, and its event not seen yet (e.g. a first read): read them now.
      cycle_.pending = 1;
      AskChildrenLocked();
      return;
    }
  }
  if (cycle_.exists && cycle_.step == CycleStep::kRecordWithNames) {
    // The names were read after the Get: exact for a cversion at least the Get's. Tagged with
    // the Get's, so a later Get with the same cversion may use them (a change in between makes
    // the tag differ from every later cversion: read again, never stale).
    names_ = cycle_.children;
    names_cversion_ = cycle_.node.stat.cversion;
  }
  if (gate_.needs_voucher_stats() && cycle_.step != CycleStep::kVoucherStats && cycle_.exists) {
    // After an interruption: the bound vouchers' Stat, sent all at once.
    cycle_.step = CycleStep::kVoucherStats;
    const Judgement judged = JudgeRead(ReadOf(cycle_));
    if (!judged.bound.empty()) {
      cycle_.pending = static_cast<int>(judged.bound.size()) + 1;
      const uint64_t id = cycle_.id;
      for (const std::string& name : judged.bound) {
        IssueVoucherStatLocked(name);
        if (!InFlight() || cycle_.id != id) return;  // a request not sent ended it
      }
      FinishOpLocked();  // the +1 above: every answer may have come already
      return;
    }
  }
  const bool again = read_ == ReadState::kInFlightReadAgain;
  read_ = ReadState::kIdle;
  const Cycle done = std::move(cycle_);
  cycle_ = Cycle{};
  ApplyLocked(done);
  if (again) StartReadLocked();
}

void WatchCore::ReadFailedLocked(const Status& error) {
  read_ = ReadState::kDue;
  if (error.code() == StatusCode::kSessionExpired || zk::IsFinal(session_->state())) {
    ScheduleRebuildLocked(std::chrono::milliseconds(0));
    return;
  }
  Log(error.code() == StatusCode::kConnectionLoss ? 0 : 2,
      "master_watch event=read_failed cluster=" + settings_.cluster + " path=" + path_ +
          " error=\"" + error.ToString() + "\"");
  ScheduleRetryLocked();
}

MasterRead WatchCore::ReadOf(const Cycle& cycle) {
  MasterRead read;
  read.exists = cycle.exists;
  read.data = cycle.node.data;
  read.stat = cycle.node.stat;
  read.children = cycle.children;
  return read;
}

void WatchCore::ApplyLocked(const Cycle& snap) {
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

void WatchCore::MarkDisconnectedLocked(const char* why) {
  gate_.Interrupted();  // a route opens again only on a verification made after this
  MasterInfo next = current();
  if (next.status == MasterStatus::kDisconnected) return;
  next.status = MasterStatus::kDisconnected;
  // Until now the armed watches kept the state confirmed; its age counts from here.
  next.confirmed_at = clock_->Now();
  PublishLocked(next, why);
}

void WatchCore::PublishLocked(const MasterInfo& next, const char* why) {
  if (stopped()) return;
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

}  // namespace pgherald::client::internal
