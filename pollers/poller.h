// Poller: one per PostgreSQL node. Every tick (and at once when `pgherald notify` hands it an
// event) it runs the one tick statement on its node (observation.h), publishes the observation to
// its ephemeral znode when it changed or the heartbeat is due, mirrors new repmgr events as facts,
// and fences its own node when it is a stale primary (fencing.h).
//
// It never gives up and never crashes on a fault: PostgreSQL down is an observation
// (reachable=false, with the error), reconnected with exponential backoff up to
// poller.backoff_max_ms; ZooKeeper faults are handled by ObservationPublisher, and what could not
// be written (events) waits for the next tick. Single-threaded: Run() is the loop.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/cluster_model.h"
#include "common/logging.h"
#include "common/pg_connection.h"
#include "pollers/notify.h"
#include "pollers/observation.h"
#include "pollers/poller_config.h"
#include "pollers/publisher.h"

namespace pgherald::pollers {

class Poller {
 public:
  Poller(PollerSection config, pg::PgParams pg, SessionFactory zk, std::string zk_root,
         const Clock& clock, std::string version);

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

 private:
  model::NodeObservation Observe();
  void Fence(model::NodeObservation* obs);
  void PublishObservation(model::NodeObservation obs);
  void DropConnection(const Status& why);
  // Arms, keeps or ends the promotion watch after a tick's observation.
  void UpdatePromotionWatch(const model::NodeObservation& obs, bool notified);
  void EndPromotionWatch(const char* why);

  PollerSection config_;
  pg::PgParams pg_params_;
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
  bool was_reachable_ = true;
  bool was_in_recovery_ = false;

  // The promotion watch.
  std::optional<MonoTime> watch_until_;  // set while the watch is on
  MonoTime watch_since_{};
  std::string watch_sender_;      // "host:port" the standby streamed from when the watch began
  bool watch_sender_lost_ = false;  // no sender seen during the watch
  std::string last_sender_;       // "host:port" of the last tick ("" none)
  std::uint64_t watch_polls_ = 0;
};

}  // namespace pgherald::pollers
