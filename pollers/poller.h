// Poller: one per PostgreSQL node. Every tick (and at once when `pgherald notify` hands it an
// event) it runs the one tick statement on its node (observation.h), publishes the observation to
// its ephemeral znode when it changed or the heartbeat is due, mirrors new repmgr events as facts,
// and fences its own node when it is a stale primary (behind, or beside on the same timeline, a
// master record vouched by a bound voucher) or when it has lost ZooKeeper for
// fence.self_fence_deadline while its node is writable (fencing.h).
//
// It never gives up and never crashes on a fault: PostgreSQL down is an observation
// (reachable=false, with the error), reconnected with exponential backoff up to
// poller.backoff_max_ms; ZooKeeper faults are handled by ObservationPublisher, and what could not
// be written (events) waits for the next tick. Single-threaded: Run() is the loop, except for the
// switchover steps (switchover.h), which run on their own thread: with poller.switchover.enabled
// the loop reads (and watches) clusters/<c>/control/switchover every tick and at once when it
// changes, starts the step its node has in the record's phase, and publishes the step's
// acknowledgement in its observation at once whenever it changes.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/model/cluster_model.h"
#include "common/logging.h"
#include "common/pg_connection.h"
#include "pollers/notify.h"
#include "pollers/observation.h"
#include "pollers/poller_config.h"
#include "pollers/poller_metrics.h"
#include "pollers/publisher.h"
#include "pollers/switchover.h"

namespace pgherald::pollers {

// What the poller knows of its contact with ZooKeeper, kept across sessions (the publisher builds
// a new one after an expiry). A decorator around every session the publisher makes fills it in.
struct ZkContact {
  zk::ZkSession* live = nullptr;        // the session the publisher holds now; null while none
  std::optional<MonoTime> last_answer;  // send time of the last call the server answered
};

// What wakes the loop between ticks (a switchover record change, a step's ack). Defined in
// poller.cc; shared with the ZooKeeper watch callbacks, which may outlive a tick.
struct LoopWake;

class Poller {
 public:
  Poller(PollerSection config, pg::PgParams pg, SessionFactory zk, std::string zk_root,
         const Clock& clock, std::string version);
  ~Poller();

  // Binds the notify socket (when configured). An error names poller.notify_socket.
  Status Start();
  // Loops until `stop` becomes true (checked at least every 100 ms).
  void Run(const std::atomic<bool>& stop);
  // One tick now, with these notify messages. Public for tests and benchmarks.
  void Tick(const std::vector<NotifyMessage>& notified);
  // Whether the promotion watch is on (see PollerSection::promotion_watch): the node is a standby
  // that lost its WAL sender, or was notified of a repmgr event, within the last
  // promotion_watch_ms, and has not since been seen streaming from a new sender.
  bool promotion_watch_active() const;
  // One read of pg_is_in_recovery() over the held connection; true when the node answered that it
  // is out of recovery (then run a Tick at once). Public for tests.
  bool PromotionPoll();

  const model::NodeObservation& last_observation() const { return last_; }
  // The fencing state the poller holds (published with the next observation).
  model::FencingState fencing() const { return fencing_; }
  // The last time ZooKeeper confirmed this node as the vouched master (ConfirmVouched).
  std::optional<MonoTime> last_confirmed() const { return last_confirmed_; }

  // Called on the loop's thread after every observation ZooKeeper accepted (the daemon is then
  // serving: systemd's readiness hangs on it). Set before Run().
  void set_on_published(std::function<void()> on_published) {
    on_published_ = std::move(on_published);
  }
  // Optional (/metrics); must outlive this object. Set before Run().
  void set_metrics(PollerMetrics* metrics);

  // Tests only: replaces the tick statement on PostgreSQL with `source` (no connection is made).
  void SetObservationSourceForTest(std::function<model::NodeObservation()> source) {
    observe_for_test_ = std::move(source);
  }
  // Tests only: the switchover steps run with `runner` (poller.switchover.enabled must be true),
  // and `rows` stand for this node's repmgr.nodes (the source above reads none).
  void SetSwitchoverRunnerForTest(std::unique_ptr<StepRunner> runner);
  void SetRepmgrRowsForTest(std::vector<RepmgrNodeRow> rows) { repmgr_rows_ = std::move(rows); }
  // Tests only: the executor (null when poller.switchover.enabled is false).
  SwitchoverExecutor* switchover_for_test() { return switchover_.get(); }
  // True (once) when something asked the loop to tick at once since the last call.
  bool TakeWake();

 private:
  model::NodeObservation Observe();
  void Fence(model::NodeObservation* obs);
  // The ZooKeeper-loss rule (fencing.h ShouldSelfFence) for this tick's observation; runs the
  // action once per loss. True when it fenced (or reported) on this call.
  bool FenceOnZooKeeperLoss(model::NodeObservation* obs);
  // Whether the master record names this node, state ok, with a voucher bound to its bytes.
  bool ConfirmVouched(const MasterRead& master) const;
  // Logs once per change a record that is state ok but has no bound voucher (it fences nothing and
  // confirms nothing here).
  void NoteUnverifiedRecord(const MasterRead& master);
  bool SessionUsable() const;
  void PublishObservation(model::NodeObservation obs);
  void DropConnection(const Status& why);
  // Arms, keeps or ends the promotion watch after a tick's observation.
  void UpdatePromotionWatch(const model::NodeObservation& obs, bool notified);
  void EndPromotionWatch(const char* why);
  // The switchover: reads (and re-arms the watch on) the record, lets the executor decide, and
  // puts its ack into `obs`.
  void Switchover(model::NodeObservation* obs);
  std::optional<SwitchoverTarget> SwitchoverTargetRow(const std::string& node) const;
  void MakeSwitchoverExecutor(std::unique_ptr<StepRunner> runner);

  PollerSection config_;
  pg::PgParams pg_params_;
  std::shared_ptr<ZkContact> contact_ = std::make_shared<ZkContact>();
  ObservationPublisher publisher_;
  const Clock& clock_;
  NodeIdentity identity_;
  log::Logger log_;
  std::unique_ptr<NotifyListener> listener_;

  std::unique_ptr<pg::PgConnection> conn_;
  MonoTime next_connect_{};
  Millis backoff_{0};
  std::string pg_error_;

  RepmgrLayout layout_;
  std::string layout_error_;
  TickSqlOptions sql_options_;
  // (timeline, when it began in us): read once per timeline and connection (Tick).
  std::optional<std::pair<std::uint32_t, std::int64_t>> timeline_started_;
  EventCursor cursor_;
  std::vector<RepmgrEvent> pending_events_;
  std::optional<std::string> identity_sysid_;

  model::NodeObservation last_;       // last published
  bool published_once_ = false;
  MonoTime last_publish_{};
  std::uint64_t seq_ = 0;
  std::string publish_error_;
  model::FencingState fencing_ = model::FencingState::kNone;
  std::string fence_reason_;
  std::string master_error_;  // the last failed master read, to log a corrupt record once
  std::string unverified_note_;  // the last unverified record logged (once per change)

  // Fencing on ZooKeeper loss (contact_ is declared before publisher_, which is built with it).
  MonoTime started_at_{};
  std::optional<MonoTime> last_confirmed_;  // last time the node was confirmed the vouched master
  bool zk_usable_ = true;        // the session's usability at the last check (for the log)
  bool zk_loss_fenced_ = false;  // the action ran for the current loss
  bool self_fenced_ = false;     // fencing_ comes from a ZooKeeper-loss fence (kept until the
                                 // node is seen in recovery)
  std::string zk_loss_note_;     // what the fence did, carried in the observation's error while
                                 // self_fenced_ (or, with action report, while the loss lasts)
  std::function<model::NodeObservation()> observe_for_test_;
  std::function<void()> on_published_;
  PollerMetrics* metrics_ = nullptr;
  bool was_reachable_ = true;
  bool was_in_recovery_ = false;

  // The promotion watch.
  std::optional<MonoTime> watch_until_;  // set while the watch is on
  MonoTime watch_since_{};
  std::string watch_sender_;      // "host:port" the standby streamed from when the watch began
  bool watch_sender_lost_ = false;  // no sender seen during the watch
  std::string last_sender_;       // "host:port" of the last tick ("" none)
  std::uint64_t watch_polls_ = 0;

  // The switchover.
  std::shared_ptr<LoopWake> wake_;
  std::vector<RepmgrNodeRow> repmgr_rows_;  // this node's repmgr.nodes, kept while it is down
                                            // (conninfo stays here: never published)
  std::unique_ptr<SwitchoverExecutor> switchover_;  // null unless poller.switchover.enabled
  std::int64_t switchover_watch_session_ = 0;       // the session the record's watch is armed on
  std::string switchover_error_;                    // the last failed read (logged once)
};

}  // namespace pgherald::pollers
