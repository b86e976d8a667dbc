#include "pollers/poller.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "common/backoff.h"
#include "pollers/fencing.h"

namespace pgherald::pollers {

struct LoopWake {
  LoopWake() : fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~LoopWake() {
    if (fd >= 0) ::close(fd);
  }
  LoopWake(const LoopWake&) = delete;
  LoopWake& operator=(const LoopWake&) = delete;

  // Any thread (a ZooKeeper watch, a switchover step).
  void Wake() {
    pending.store(true);
    const std::uint64_t one = 1;
    if (fd >= 0 && ::write(fd, &one, sizeof one) < 0) {
      // Full counter or no fd: `pending` still ends the wait within 100 ms.
    }
  }
  bool Take() {
    std::uint64_t value = 0;
    while (fd >= 0 && ::read(fd, &value, sizeof value) > 0) {
    }
    return pending.exchange(false);
  }

  const int fd;  // eventfd: the loop's wait polls it
  std::atomic<bool> pending{false};
  std::atomic<bool> watch_armed{false};  // the record's watch is set and has not fired
};

namespace {

// A connection loss, an expiry, a timeout or a closed handle is no answer from the server;
// anything else (errors such as kNotFound included) is.
bool Answered(const Status& s) {
  switch (s.code()) {
    case StatusCode::kConnectionLoss:
    case StatusCode::kSessionExpired:
    case StatusCode::kTimeout:
    case StatusCode::kUnavailable:
      return false;
    default:
      return true;
  }
}

// Forwards everything to the session the publisher's factory made, and records in ZkContact the
// send time of every call the server answered and which session is live. Same thread as its user.
class ContactTrackingSession final : public zk::ZkSession {
 public:
  ContactTrackingSession(std::unique_ptr<zk::ZkSession> inner, std::shared_ptr<ZkContact> contact,
                         const Clock& clock)
      : inner_(std::move(inner)), contact_(std::move(contact)), clock_(clock) {
    contact_->live = this;
  }
  ~ContactTrackingSession() override {
    if (contact_->live == this) contact_->live = nullptr;
  }

  zk::SessionState state() const override { return inner_->state(); }
  int64_t session_id() const override { return inner_->session_id(); }
  Millis session_timeout() const override { return inner_->session_timeout(); }
  Millis lease_remaining() const override { return inner_->lease_remaining(); }
  Status WaitConnected(Millis timeout) override { return inner_->WaitConnected(timeout); }

  StatusOr<std::string> Create(const std::string& path, const std::string& data,
                               zk::CreateMode mode) override {
    return Note(clock_.Now(), inner_->Create(path, data, mode));
  }
  StatusOr<zk::NodeData> Get(const std::string& path, zk::Watcher watch) override {
    return Note(clock_.Now(), inner_->Get(path, std::move(watch)));
  }
  StatusOr<std::optional<zk::Stat>> Exists(const std::string& path, zk::Watcher watch) override {
    return Note(clock_.Now(), inner_->Exists(path, std::move(watch)));
  }
  StatusOr<std::vector<std::string>> GetChildren(const std::string& path,
                                                 zk::Watcher watch) override {
    return Note(clock_.Now(), inner_->GetChildren(path, std::move(watch)));
  }
  StatusOr<zk::Stat> Set(const std::string& path, const std::string& data,
                         int32_t version) override {
    return Note(clock_.Now(), inner_->Set(path, data, version));
  }
  Status Delete(const std::string& path, int32_t version) override {
    const MonoTime sent = clock_.Now();
    Status s = inner_->Delete(path, version);
    Record(sent, s);
    return s;
  }
  StatusOr<zk::MultiResult> Multi(const std::vector<zk::Op>& ops, int* failed_op) override {
    return Note(clock_.Now(), inner_->Multi(ops, failed_op));
  }
  void SetStateListener(zk::StateListener listener) override {
    inner_->SetStateListener(std::move(listener));
  }
  void Close() override { inner_->Close(); }

 private:
  void Record(MonoTime sent, const Status& s) {
    if (!Answered(s)) return;
    if (!contact_->last_answer || *contact_->last_answer < sent) contact_->last_answer = sent;
  }
  template <typename T>
  StatusOr<T> Note(MonoTime sent, StatusOr<T> result) {
    Record(sent, result.status());
    return result;
  }

  std::unique_ptr<zk::ZkSession> inner_;
  std::shared_ptr<ZkContact> contact_;
  const Clock& clock_;
};

SessionFactory TrackContact(SessionFactory inner, std::shared_ptr<ZkContact> contact,
                            const Clock& clock) {
  return [inner = std::move(inner), contact = std::move(contact),
          &clock]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    PGH_ASSIGN_OR_RETURN(std::unique_ptr<zk::ZkSession> made, inner());
    return std::unique_ptr<zk::ZkSession>(
        std::make_unique<ContactTrackingSession>(std::move(made), contact, clock));
  };
}

std::int64_t AgeMs(MonoTime now, const std::optional<MonoTime>& then) {
  if (!then) return -1;
  return std::chrono::duration_cast<Millis>(now - *then).count();
}

std::int64_t WallMicros(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             clock.WallNow().time_since_epoch())
      .count();
}

}  // namespace

Poller::Poller(PollerSection config, pg::PgParams pg, SessionFactory zk, std::string zk_root,
               const Clock& clock, std::string version)
    : config_(std::move(config)),
      pg_params_(std::move(pg)),
      publisher_(TrackContact(std::move(zk), contact_, clock), zk_root, config_.cluster,
                 config_.node, config_.events_retention),
      clock_(clock),
      log_("poller") {
  started_at_ = clock_.Now();
  identity_.node = config_.node;
  identity_.host = config_.host;
  identity_.port = config_.port;
  identity_.repmgr_node_id = config_.repmgr_node_id;
  identity_.version = std::move(version);
  sql_options_.initial_events = config_.events_retention;
  wake_ = std::make_shared<LoopWake>();
  if (config_.switchover.enabled) {
    MakeSwitchoverExecutor(std::make_unique<RepmgrStepRunner>(config_.switchover, pg_params_));
  }
}

Poller::~Poller() {
  switchover_.reset();  // cancels and joins a running step before anything it may call goes
}

void Poller::MakeSwitchoverExecutor(std::unique_ptr<StepRunner> runner) {
  switchover_.reset();
  switchover_ = std::make_unique<SwitchoverExecutor>(
      config_.node, config_.switchover, std::move(runner), clock_,
      [wake = wake_] { wake->Wake(); });
  switchover_->set_metrics(metrics_);
}

void Poller::SetSwitchoverRunnerForTest(std::unique_ptr<StepRunner> runner) {
  if (config_.switchover.enabled) MakeSwitchoverExecutor(std::move(runner));
}

void Poller::set_metrics(PollerMetrics* metrics) {
  metrics_ = metrics;
  if (switchover_) switchover_->set_metrics(metrics);
}

bool Poller::TakeWake() { return wake_->Take(); }

Status Poller::Start() {
  if (config_.notify_socket.empty()) return Status::Ok();
  PGH_ASSIGN_OR_RETURN(listener_,
                       NotifyListener::Bind(config_.notify_socket, config_.notify_socket_mode));
  log_.Info("notify_listening", {{"socket", config_.notify_socket}});
  return Status::Ok();
}

void Poller::Run(const std::atomic<bool>& stop) {
  MonoTime next_tick = clock_.Now();
  MonoTime next_poll = clock_.Now();
  while (!stop.load()) {
    const bool watching = promotion_watch_active();
    MonoTime until = next_tick;
    if (watching) until = std::min(until, next_poll);
    const auto wait = std::clamp(std::chrono::duration_cast<Millis>(until - clock_.Now()),
                                 Millis(0), Millis(100));
    std::vector<NotifyMessage> notified;
    if (listener_) {
      std::vector<std::string> bad;
      notified = listener_->Receive(wait, &bad, wake_->fd);
      for (const auto& b : bad) log_.Warn("notify_malformed", {{"error", b}});
    } else if (wait.count() > 0) {
      // The tick's pace; a switchover record change or step ack ends the wait at once.
      pollfd p{wake_->fd, POLLIN, 0};
      if (wake_->fd < 0 || ::poll(&p, 1, static_cast<int>(wait.count())) < 0) {
        std::this_thread::sleep_for(wait);
      }
    }
    const bool woken = TakeWake();
    if (!notified.empty() || woken || clock_.Now() >= next_tick) {
      Tick(notified);
      next_tick = clock_.Now() + config_.tick;
      next_poll = clock_.Now() + config_.promotion_poll;
      continue;
    }
    if (watching && clock_.Now() >= next_poll) {
      // The promotion watch: the moment the node leaves recovery is published at once, not at the
      // next tick (repmgr's own promotion events come only after its promote check).
      if (PromotionPoll()) {
        Tick({});
        next_tick = clock_.Now() + config_.tick;
      }
      next_poll = clock_.Now() + config_.promotion_poll;
    }
  }
}

bool Poller::promotion_watch_active() const {
  return watch_until_.has_value() && clock_.Now() < *watch_until_ && conn_ != nullptr;
}

bool Poller::PromotionPoll() {
  if (conn_ == nullptr || !conn_->ok()) return false;
  ++watch_polls_;
  auto result = conn_->Exec("SELECT pg_catalog.pg_is_in_recovery() AS in_recovery");
  if (!result.ok() || result->num_rows() != 1) {
    // The tick deals with a broken connection (it reports the node and reconnects).
    log_.Debug("promotion_poll_failed", {{"error", result.ok() ? Internal("no row") : result.status()}});
    return false;
  }
  auto in_recovery = result->row(0).GetBool("in_recovery");
  return in_recovery.ok() && !*in_recovery;
}

void Poller::EndPromotionWatch(const char* why) {
  if (!watch_until_) return;
  log_.Info("promotion_watch_end",
            {{"why", why},
             {"polls", watch_polls_},
             {"after_ms", std::chrono::duration_cast<Millis>(clock_.Now() - watch_since_).count()}});
  watch_until_.reset();
}

void Poller::UpdatePromotionWatch(const model::NodeObservation& obs, bool notified) {
  const std::string sender =
      obs.sender_host.empty() ? "" : obs.sender_host + ":" + std::to_string(obs.sender_port);
  const std::string previous_sender = last_sender_;
  last_sender_ = sender;
  if (!obs.reachable || !obs.in_recovery) {
    EndPromotionWatch(!obs.reachable ? "node unreachable" : "node out of recovery");
    return;
  }
  if (watch_until_ && clock_.Now() >= *watch_until_) EndPromotionWatch("window elapsed");
  if (watch_until_) {
    if (sender.empty()) {
      watch_sender_lost_ = true;
    } else if (sender != watch_sender_ || watch_sender_lost_) {
      // Streaming again (it followed a new primary, or its upstream came back): nothing to watch.
      EndPromotionWatch("streaming again");
      return;
    }
  }
  const bool sender_lost = !previous_sender.empty() && sender.empty();
  if (config_.promotion_watch.count() == 0 || (!sender_lost && !notified)) return;
  if (!watch_until_) {
    watch_since_ = clock_.Now();
    watch_polls_ = 0;
    watch_sender_ = sender.empty() ? previous_sender : sender;
    watch_sender_lost_ = sender.empty();
    log_.Info("promotion_watch_start",
              {{"why", sender_lost ? "wal sender lost" : "repmgr event notified"},
               {"sender", watch_sender_},
               {"poll_ms", config_.promotion_poll.count()},
               {"window_ms", config_.promotion_watch.count()}});
  }
  watch_until_ = clock_.Now() + config_.promotion_watch;
}

std::optional<SwitchoverTarget> Poller::SwitchoverTargetRow(const std::string& node) const {
  for (const auto& row : repmgr_rows_) {
    if (row.node.name == node) return SwitchoverTarget{row.node.node_id, row.conninfo};
  }
  return std::nullopt;
}

void Poller::Switchover(model::NodeObservation* obs) {
  if (!switchover_) return;
  // One watch at a time (re-armed after it fired, after a failed read, and on a new session): a
  // read each tick with a fresh watch would pile them up on the server.
  zk::Watcher watch;
  if (!wake_->watch_armed.exchange(true) ||
      switchover_watch_session_ != publisher_.session_id()) {
    watch = [wake = wake_](const zk::WatchEvent&) {
      wake->watch_armed.store(false);
      wake->Wake();
    };
  }
  auto record = publisher_.ReadSwitchover(std::move(watch));
  if (!record.ok()) {
    if (record.status().code() != StatusCode::kInvalidArgument) wake_->watch_armed.store(false);
    if (switchover_error_ != record.status().ToString()) {
      log_.Warn("switchover_record_unreadable",
                {{"error", record.status()}, {"effect", "no switchover step starts"}});
    }
    switchover_error_ = record.status().ToString();
  } else {
    switchover_watch_session_ = publisher_.session_id();
    if (!switchover_error_.empty()) log_.Info("switchover_record_readable", {});
    switchover_error_.clear();
    const auto step = switchover_->Consider(
        *record, obs->reachable, obs->in_recovery,
        [this](const std::string& node) { return SwitchoverTargetRow(node); });
    if (step == SwitchoverStep::kPromote) {
      // The orchestrator publishes `to` from this poller's observation, not from the ack: the
      // moment the node leaves recovery must be published at once, whatever the watch saw.
      watch_since_ = clock_.Now();
      watch_polls_ = 0;
      watch_sender_ = last_sender_;
      watch_sender_lost_ = last_sender_.empty();
      watch_until_ = clock_.Now() + std::max(config_.promotion_watch, config_.switchover.step_timeout);
      log_.Info("promotion_watch_start", {{"why", "switchover promote"},
                                          {"sender", watch_sender_},
                                          {"poll_ms", config_.promotion_poll.count()},
                                          {"window_ms", (*watch_until_ - watch_since_)}});
    }
  }
  obs->switchover = switchover_->ack();
}

void Poller::DropConnection(const Status& why) {
  conn_.reset();
  pg_error_ = why.message();
  backoff_ = NextBackoff(backoff_, Millis(250), config_.backoff_max);
  next_connect_ = clock_.Now() + backoff_;
}

model::NodeObservation Poller::Observe() {
  if (observe_for_test_) return observe_for_test_();
  if (conn_ && !conn_->ok()) DropConnection(Unavailable(pg_error_.empty() ? "connection lost" : pg_error_));
  if (!conn_) {
    if (clock_.Now() < next_connect_) return BuildUnreachable(identity_, pg_error_, &last_);
    auto conn = pg::PgConnection::Connect(pg_params_);
    if (!conn.ok()) {
      DropConnection(conn.status());
      return BuildUnreachable(identity_, pg_error_, &last_);
    }
    conn_ = std::move(*conn);
    backoff_ = Millis(0);
    pg_error_.clear();
    // Which function tells when the timeline began (a role's rights may change between
    // connections); without one, promoted_at falls back to repmgr's promotion events.
    auto probe = conn_->Exec(TimelineStartProbeSql());
    auto source =
        probe.ok() ? ParseTimelineStartProbe(*probe) : StatusOr<TimelineStart>(probe.status());
    sql_options_.timeline_start = source.ok() ? *source : TimelineStart::kNone;
    timeline_started_.reset();
    log_.Info("postgres_connected",
              {{"server", conn_->Describe()},
               {"timeline_start", TimelineStartName(sql_options_.timeline_start)}});
    if (!source.ok()) log_.Warn("timeline_start_probe_failed", {{"error", source.status()}});
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    // When the current timeline began is read once per timeline and connection, not every tick:
    // asked every 100 ms of a primary, the file-system function made repmgrd's detection of a
    // frozen primary miss its window in the freeze-long drill (docs/poller.md).
    TickSqlOptions options = sql_options_;
    if (timeline_started_) options.timeline_start = TimelineStart::kNone;
    const std::string sql = BuildTickSql(layout_, cursor_.QueryFromUs(), options);
    auto result = conn_->Exec(sql);
    if (!result.ok()) {
      if (result.status().code() == StatusCode::kNotFound && layout_.kind == RepmgrLayout::Kind::kRepmgr4 &&
          sql_options_.repmgrd_function) {
        log_.Warn("repmgrd_function_missing", {{"error", result.status()}});
        sql_options_.repmgrd_function = false;
        continue;
      }
      if (result.status().code() == StatusCode::kPermissionDenied &&
          sql_options_.timeline_start != TimelineStart::kNone) {
        // The probe said yes, the server says no: do without (promoted_at from repmgr's events).
        log_.Warn("timeline_start_denied",
                  {{"function", TimelineStartName(sql_options_.timeline_start)},
                   {"error", result.status()}});
        sql_options_.timeline_start = TimelineStart::kNone;
        continue;
      }
      if (result.status().code() == StatusCode::kNotFound && layout_.kind != RepmgrLayout::Kind::kNone) {
        layout_ = {};  // the tables went away: re-detect
        continue;
      }
      log_.Warn("tick_failed", {{"error", result.status()}});
      if (!conn_->ok() || result.status().code() == StatusCode::kUnavailable ||
          result.status().code() == StatusCode::kTimeout) {
        DropConnection(result.status());
      } else {
        pg_error_ = result.status().message();
      }
      return BuildUnreachable(identity_, result.status().message(), &last_);
    }
    auto tick = ParseTickResult(*result);
    if (!tick.ok()) {
      log_.Error("tick_unreadable", {{"error", tick.status()}});
      return BuildUnreachable(identity_, tick.status().message(), &last_);
    }
    auto detected = DetectLayout(tick->repmgr_tables, config_.repmgr3_schema);
    if (detected.ok()) {
      if (!layout_error_.empty() || !(*detected == layout_)) {
        log_.Info("repmgr_layout", {{"layout", detected->Describe()}});
      }
      layout_error_.clear();
      if (!(*detected == layout_)) {
        layout_ = *detected;
        cursor_.Reset();
        continue;  // read again with the layout's columns
      }
    } else {
      if (layout_error_ != detected.status().message()) {
        log_.Error("repmgr_layout_missing", {{"error", detected.status().message()}});
      }
      layout_error_ = detected.status().message();
      if (layout_.kind != RepmgrLayout::Kind::kNone) {
        layout_ = {};
        cursor_.Reset();
      }
    }
    if (timeline_started_) tick->timeline_started_us = timeline_started_->second;
    auto obs = BuildObservation(identity_, *tick, layout_error_);
    if (timeline_started_ && (obs.in_recovery || obs.timeline != timeline_started_->first)) {
      // Another timeline (or a standby now): what was read belongs to the old one.
      timeline_started_.reset();
      tick->timeline_started_us.reset();
      obs = BuildObservation(identity_, *tick, layout_error_);
    } else if (!timeline_started_ && !obs.in_recovery && obs.timeline > 1 &&
               tick->timeline_started_us && *tick->timeline_started_us > 0) {
      timeline_started_ = std::make_pair(obs.timeline, *tick->timeline_started_us);
    }
    for (auto& e : cursor_.Accept(tick->events)) pending_events_.push_back(std::move(e));
    // Kept for the switchover (the new primary's conninfo and node_id, read while this node was
    // up); never published.
    if (tick->repmgr_columns && !tick->nodes.empty()) repmgr_rows_ = tick->nodes;
    return obs;
  }
  return BuildUnreachable(identity_, "repmgr layout kept changing during the tick", &last_);
}

bool Poller::SessionUsable() const {
  const zk::ZkSession* s = contact_->live;
  return s != nullptr && s->state() == zk::SessionState::kConnected && s->has_lease();
}

bool Poller::ConfirmVouched(const MasterRead& master) const {
  // What consumers count (model::BoundVouchers): a voucher bound to the exact record read. A
  // forged or replayed record naming this node, beside a legacy or stale voucher, confirms nothing.
  return master.vouched() && master.record->state == model::MasterState::kOk &&
         master.record->node == config_.node;
}

void Poller::NoteUnverifiedRecord(const MasterRead& master) {
  std::string note;
  if (master.record && master.record->state == model::MasterState::kOk && master.bound.empty()) {
    const model::MasterRecord& m = *master.record;
    note = m.node + "/" + std::to_string(m.epoch) + "/" + std::to_string(m.timeline);
    if (note != unverified_note_) {
      log_.Warn("master_unverified",
                {{"master", m.node},
                 {"epoch", m.epoch},
                 {"timeline", static_cast<std::int64_t>(m.timeline)},
                 {"effect",
                  "no voucher is bound to this record: it fences nothing and confirms "
                  "nothing"}});
    }
  } else if (!unverified_note_.empty()) {
    log_.Info("master_verified", {{"vouched", master.vouched()}});
  }
  unverified_note_ = note;
}

bool Poller::FenceOnZooKeeperLoss(model::NodeObservation* obs) {
  const MonoTime now = clock_.Now();
  const bool usable = SessionUsable();
  const zk::ZkSession* live = contact_->live;
  const std::string state = live ? zk::SessionStateName(live->state()) : "none";
  if (usable != zk_usable_) {
    if (usable) {
      log_.Info("zookeeper_usable", {{"session", live->session_id()}});
    } else {
      log_.Warn("zookeeper_unusable",
                {{"session_state", state},
                 {"lease_ms", live ? live->lease_remaining().count() : 0},
                 {"last_answer_age_ms", AgeMs(now, contact_->last_answer)},
                 {"fence_in_ms", config_.fence.on_zookeeper_loss
                                     ? config_.fence.self_fence_deadline.count() -
                                           AgeMs(now, contact_->last_answer.value_or(started_at_))
                                     : -1}});
    }
    zk_usable_ = usable;
  }
  const auto add_note = [&] {
    if (zk_loss_note_.empty()) return;
    obs->error += (obs->error.empty() ? "" : "; ") + zk_loss_note_;
  };
  if (usable) {
    zk_loss_fenced_ = false;  // the loss is over: a new one fences again
    if (!self_fenced_) zk_loss_note_.clear();
    add_note();
    return false;
  }
  if (zk_loss_fenced_) {
    add_note();
    return false;
  }
  SelfFenceInput in;
  in.enabled = config_.fence.on_zookeeper_loss;
  in.node_writable = obs->reachable && !obs->in_recovery;
  in.session_usable = usable;
  in.last_confirmed = last_confirmed_;
  in.last_answer = contact_->last_answer.value_or(started_at_);
  in.now = now;
  in.deadline = config_.fence.self_fence_deadline;
  const SelfFenceVerdict verdict = ShouldSelfFence(in);
  if (!verdict.fence) return false;
  zk_loss_fenced_ = true;
  log_.Error("zookeeper_loss_fence", {{"node", config_.node},
                                      {"action", FenceActionName(config_.fence.action)},
                                      {"session_state", state},
                                      {"lease_ms", live ? live->lease_remaining().count() : 0},
                                      {"last_confirmed_age_ms", AgeMs(now, last_confirmed_)},
                                      {"last_answer_age_ms", AgeMs(now, contact_->last_answer)},
                                      {"deadline_ms", config_.fence.self_fence_deadline.count()},
                                      {"reason", verdict.reason}});
  if (config_.fence.action == FenceAction::kReport) {
    zk_loss_note_ = verdict.reason + " (fence action report: not fenced)";
    add_note();
    return true;
  }
  // Nothing can be published while ZooKeeper is away: the state shows once it is back.
  fencing_ = model::FencingState::kFencing;
  const FenceOutcome outcome = RunFenceAction(config_.fence, config_.node, "", verdict.reason);
  fencing_ = outcome.state;
  self_fenced_ = true;
  if (outcome.state == model::FencingState::kFenced) {
    log_.Info("fenced",
              {{"node", config_.node}, {"cause", "zookeeper_loss"}, {"detail", outcome.detail}});
  } else {
    log_.Error("fence_failed",
               {{"node", config_.node}, {"cause", "zookeeper_loss"}, {"detail", outcome.detail}});
  }
  zk_loss_note_ = verdict.reason + " (fence " + FenceActionName(config_.fence.action) + ": " +
                  outcome.detail + ")";
  add_note();
  if (outcome.state == model::FencingState::kFenced) DropConnection(Unavailable("fenced"));
  return true;
}

void Poller::Fence(model::NodeObservation* obs) {
  if (obs->reachable && obs->in_recovery) {  // rejoined (or never writable)
    fencing_ = model::FencingState::kNone;
    if (self_fenced_) log_.Info("zookeeper_loss_fence_cleared", {{"why", "node in recovery"}});
    self_fenced_ = false;
    zk_loss_note_.clear();
  }
  if (!obs->reachable) {
    if (self_fenced_ && !zk_loss_note_.empty()) {
      obs->error += (obs->error.empty() ? "" : "; ") + zk_loss_note_;
    }
    obs->fencing = fencing_;
    return;
  }
  // Checked before the read too: a read on a connection that just went quiet can take the C
  // client's receive timeout, and the deadline must not slip by it.
  if (FenceOnZooKeeperLoss(obs)) {
    obs->fencing = fencing_;
    return;
  }
  const MonoTime asked = clock_.Now();
  auto master = publisher_.ReadMaster();
  if (!master.ok()) {
    // A corrupt record is worth a warning, once per change (not once per tick); a read that
    // failed because ZooKeeper is away is the ZooKeeper-loss rule's business.
    const std::string error = master.status().ToString();
    if (master.status().code() == StatusCode::kInvalidArgument && error != master_error_) {
      log_.Warn("master_unreadable", {{"error", master.status()},
                                      {"effect", "no confirmation and no fence from this record"}});
    } else {
      log_.Debug("master_unreadable", {{"error", master.status()}});
    }
    master_error_ = error;
    FenceOnZooKeeperLoss(obs);
    obs->fencing = fencing_;
    return;
  }
  if (!master_error_.empty()) {
    log_.Info("master_readable", {{"node", config_.node}});
    master_error_.clear();
  }
  if (!obs->in_recovery && ConfirmVouched(*master)) last_confirmed_ = asked;
  NoteUnverifiedRecord(*master);
  const FenceVerdict verdict = ShouldFence(*obs, *master);
  if (!verdict.fence) {
    fence_reason_.clear();
    // A ZooKeeper-loss fence stays on record until the node is seen in recovery: the poller cannot
    // tell when an operator undid what the action did.
    if (!obs->in_recovery && !self_fenced_ && fencing_ != model::FencingState::kNone) {
      fencing_ = model::FencingState::kNone;
    }
    obs->fencing = fencing_;
    return;
  }
  const std::string master_node = master->record->node;
  if (config_.fence.action == FenceAction::kReport) {
    if (fence_reason_ != verdict.reason) {
      log_.Error("stale_primary", {{"node", config_.node}, {"master", master_node},
                                   {"action", "report"}, {"reason", verdict.reason}});
    }
    fence_reason_ = verdict.reason;
    obs->error += (obs->error.empty() ? "" : "; ") + verdict.reason + " (fence action report: not fenced)";
    obs->fencing = fencing_;
    return;
  }
  fence_reason_ = verdict.reason;
  log_.Error("stale_primary", {{"node", config_.node}, {"master", master_node},
                               {"action", FenceActionName(config_.fence.action)},
                               {"reason", verdict.reason}});
  // Tell the orchestrator first: the action can take a while.
  fencing_ = model::FencingState::kFencing;
  model::NodeObservation during = *obs;
  during.fencing = fencing_;
  during.error += (during.error.empty() ? "" : "; ") + verdict.reason;
  PublishObservation(during);
  const FenceOutcome outcome = RunFenceAction(config_.fence, config_.node, master_node, verdict.reason);
  fencing_ = outcome.state;
  self_fenced_ = false;
  if (outcome.state == model::FencingState::kFenced) {
    log_.Info("fenced", {{"node", config_.node}, {"detail", outcome.detail}});
  } else {
    log_.Error("fence_failed", {{"node", config_.node}, {"detail", outcome.detail}});
  }
  obs->fencing = fencing_;
  obs->error += (obs->error.empty() ? "" : "; ") + verdict.reason + " (fence " +
                FenceActionName(config_.fence.action) + ": " + outcome.detail + ")";
  if (outcome.state == model::FencingState::kFenced) DropConnection(Unavailable("fenced"));
}

void Poller::PublishObservation(model::NodeObservation obs) {
  const MonoTime now = clock_.Now();
  const bool due = !published_once_ || ObservationChanged(obs, last_) ||
                   now - last_publish_ >= config_.heartbeat || publisher_.TakeNewSession();
  if (!due) return;
  obs.seq = ++seq_;
  obs.observed_at_ms = model::ToWallMillis(clock_.WallNow());
  Status s = publisher_.Publish(obs.ToJson());
  if (metrics_ != nullptr) metrics_->RecordPublish(s.ok(), obs.observed_at_ms);
  if (!s.ok()) {
    if (publish_error_ != s.ToString()) log_.Warn("publish_failed", {{"error", s}});
    publish_error_ = s.ToString();
    published_once_ = false;  // try again next tick, whatever changed
    last_ = obs;
    return;
  }
  if (!publish_error_.empty()) log_.Info("publish_recovered", {{"session", publisher_.session_id()}});
  publish_error_.clear();
  published_once_ = true;
  last_publish_ = now;
  last_ = std::move(obs);
  if (on_published_) on_published_();
}

void Poller::Tick(const std::vector<NotifyMessage>& notified) {
  const std::int64_t now_us = WallMicros(clock_);
  const MonoTime tick_start = clock_.Now();
  for (const auto& m : notified) {
    log_.Info("notify_received", {{"event", m.event}, {"node_id", m.node_id}});
    if (metrics_ != nullptr) metrics_->RecordNotify(m.event);
    pending_events_.push_back(m.ToEvent(now_us));
  }
  // repmgr is acting on this node (a rejoin, a follow, a failover): reconnect now rather than at
  // the end of a backoff that grew while PostgreSQL was down, so the tick (and the promotion
  // watch it may start) sees the node as it is.
  if (!notified.empty() && conn_ == nullptr) next_connect_ = clock_.Now();
  model::NodeObservation obs = Observe();
  UpdatePromotionWatch(obs, !notified.empty());
  if (obs.reachable != was_reachable_ || (obs.reachable && obs.in_recovery != was_in_recovery_)) {
    log_.Info("node_state", {{"reachable", obs.reachable}, {"in_recovery", obs.in_recovery},
                             {"timeline", static_cast<std::int64_t>(obs.timeline)},
                             {"error", obs.error}});
    was_reachable_ = obs.reachable;
    was_in_recovery_ = obs.in_recovery;
  }
  if (obs.reachable && !obs.system_identifier.empty()) {
    if (!identity_sysid_) {
      auto identity = publisher_.ReadIdentity();
      if (identity.ok() && identity->has_value()) identity_sysid_ = **identity;
    }
    if (identity_sysid_ && *identity_sysid_ != obs.system_identifier) {
      const std::string msg = "system_identifier " + obs.system_identifier +
                              " differs from the cluster's " + *identity_sysid_ +
                              " (clusters/" + config_.cluster + "/identity): wrong node or cluster";
      if (last_.error.find("differs from the cluster") == std::string::npos) {
        log_.Error("identity_mismatch", {{"error", msg}});
      }
      obs.error += (obs.error.empty() ? "" : "; ") + msg;
    }
  }
  Switchover(&obs);
  Fence(&obs);
  const bool reachable = obs.reachable;
  const bool in_recovery = obs.in_recovery;
  PublishObservation(std::move(obs));
  if (!pending_events_.empty()) {
    std::sort(pending_events_.begin(), pending_events_.end(),
              [](const RepmgrEvent& a, const RepmgrEvent& b) { return a.key < b.key; });
    Status s = publisher_.PublishEvents(&pending_events_);
    if (!s.ok()) log_.Debug("events_pending", {{"count", pending_events_.size()}, {"error", s}});
    // Bound the backlog while ZooKeeper is away: the oldest would be trimmed anyway.
    const size_t cap = static_cast<size_t>(config_.events_retention);
    if (pending_events_.size() > cap) {
      pending_events_.erase(pending_events_.begin(),
                            pending_events_.end() - static_cast<std::ptrdiff_t>(cap));
    }
  }
  if (metrics_ != nullptr) {
    metrics_->RecordTick(std::chrono::duration<double>(clock_.Now() - tick_start).count(),
                         reachable, in_recovery);
  }
}

}  // namespace pgherald::pollers
