// What `pgherald watch` asks its sinks to do, decided from the stream of MasterInfo states.
// Pure logic, no I/O; time comes from an injected Clock so tests can drive the grace periods.
//
// Rules:
//   - A vouched master is routed to at once.
//   - A state older than the last one applied (by the master znode's mzxid) is dropped: a late
//     event must never move the route back.
//   - Unverified / no master (policy `on_unverified`) and disconnected from ZooKeeper (policy
//     `on_disconnect`):
//       keep:  the last route to a *vouched* master stays (availability). A master that was
//              never vouched since start is never routed to.
//       block: the last route stays for the grace period, counted from the moment the state
//              stopped being vouched; after it the sinks are told to block writes (safety).
//       hold:  (on_unverified only) at once, the last route stays with `hold` set: a sink that
//              can hold clients (pgbouncer: PAUSE) makes new statements wait instead of failing,
//              until a vouched master is routed to (the pgbouncer sink retargets and RESUMEs) or
//              `max_hold` has passed since the state stopped being vouched: then the last route
//              is sent again without `hold` (reason "...-hold-expired") and clients see whatever
//              the last master answers. Sinks that cannot hold (HAProxy, file, exec) treat a held
//              route as the kept one. Never on a disconnect from ZooKeeper: the watch then knows
//              nothing of the master, which is most likely still serving.
//   - Until the first vouched master is seen nothing is routed; with `block`, the grace runs
//     from the first state, so a daemon that starts during an outage blocks after the grace too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "clients/include/pgherald/master_watch.h"
#include "common/base/clock.h"

namespace pgherald::watch {

// "vouched", "unverified", "no-master", "disconnected" (the library's MasterStatusName, kept here
// so the daemon's sinks depend on the public header's types only).
const char* StatusName(client::MasterStatus status);

enum class Policy { kKeep, kBlock, kHold };
const char* PolicyName(Policy policy);

struct PolicyConfig {
  Policy on_unverified = Policy::kKeep;
  Millis unverified_grace{5000};
  Policy on_disconnect = Policy::kKeep;
  Millis disconnect_grace{10000};
  // With on_unverified = hold: the longest a hold lasts. Keep it below pgbouncer's
  // query_wait_timeout, or pgbouncer fails the held clients first.
  Millis max_hold{10000};
};

// The instruction every sink of a cluster receives.
struct RouteTarget {
  enum class Action { kRoute, kBlock };
  Action action = Action::kRoute;
  // kRoute: the master to route to (always a master that was vouched). kBlock: the last vouched
  // master, if any (sinks may use it to name what they block).
  client::MasterInfo master;
  // The status that led here (kVouched for a fresh route; kUnverified etc. when kept or blocked).
  client::MasterStatus status = client::MasterStatus::kVouched;
  std::string reason;   // "vouched", "unverified-kept", "disconnected-grace-expired", ...
  std::uint64_t seq = 0;  // grows with every target the policy emits
  // kRoute only: the master is no longer vouched and clients should wait for the next one
  // (policy hold); `master` is the last vouched master, as for a kept route.
  bool hold = false;

  bool SameRoute(const RouteTarget& other) const;  // action and node/host/port
};
const char* ActionName(RouteTarget::Action action);

class RoutePolicy {
 public:
  RoutePolicy(PolicyConfig config, const Clock& clock) : config_(config), clock_(clock) {}

  // Feeds a state; returns a target when what the sinks should do (or know) changed: the route,
  // the action, the master's epoch or the status.
  std::optional<RouteTarget> OnState(const client::MasterInfo& info);
  // Re-evaluates the grace period against the clock; returns a target when it expired now.
  std::optional<RouteTarget> OnTick();
  // When OnTick() must run next (a grace period's end), or nullopt when nothing is pending.
  std::optional<MonoTime> NextDeadline() const;

  const std::optional<RouteTarget>& current() const { return current_; }

 private:
  std::optional<RouteTarget> Evaluate();
  std::optional<RouteTarget> Emit(RouteTarget target);

  PolicyConfig config_;
  const Clock& clock_;
  std::optional<client::MasterInfo> state_;          // the latest state accepted
  std::optional<client::MasterInfo> last_vouched_;   // the latest vouched state
  std::optional<MonoTime> unvouched_since_;          // when the current run of non-vouched began
  std::int64_t applied_mzxid_ = 0;
  std::optional<RouteTarget> current_;
  std::uint64_t seq_ = 0;
};

}  // namespace pgherald::watch
