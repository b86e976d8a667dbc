#include "clients/watch/route_policy.h"

namespace pgherald::watch {

using client::MasterInfo;
using client::MasterStatus;

const char* StatusName(MasterStatus status) {
  switch (status) {
    case MasterStatus::kVouched: return "vouched";
    case MasterStatus::kUnverified: return "unverified";
    case MasterStatus::kNoMaster: return "no-master";
    case MasterStatus::kDisconnected: return "disconnected";
  }
  return "unknown";
}

const char* PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kKeep: return "keep";
    case Policy::kBlock: return "block";
    case Policy::kHold: return "hold";
  }
  return "unknown";
}

const char* ActionName(RouteTarget::Action action) {
  return action == RouteTarget::Action::kRoute ? "route" : "block";
}

bool RouteTarget::SameRoute(const RouteTarget& other) const {
  return action == other.action && master.node == other.master.node &&
         master.host == other.master.host && master.port == other.master.port;
}

std::optional<RouteTarget> RoutePolicy::OnState(const MasterInfo& info) {
  // Disconnected states carry the last known mzxid; everything else must not go backwards.
  if (info.status != MasterStatus::kDisconnected && info.mzxid != 0 &&
      info.mzxid < applied_mzxid_) {
    return std::nullopt;
  }
  if (info.status != MasterStatus::kDisconnected && info.mzxid > applied_mzxid_) {
    applied_mzxid_ = info.mzxid;
  }
  const bool was_vouched = state_.has_value() && state_->status == MasterStatus::kVouched;
  state_ = info;
  if (info.status == MasterStatus::kVouched) {
    last_vouched_ = info;
    unvouched_since_.reset();
  } else if (was_vouched || !unvouched_since_.has_value()) {
    unvouched_since_ = clock_.Now();
  }
  return Evaluate();
}

std::optional<RouteTarget> RoutePolicy::OnTick() {
  if (!state_.has_value()) return std::nullopt;
  return Evaluate();
}

std::optional<MonoTime> RoutePolicy::NextDeadline() const {
  if (!state_.has_value() || state_->status == MasterStatus::kVouched ||
      !unvouched_since_.has_value()) {
    return std::nullopt;
  }
  const bool disconnected = state_->status == MasterStatus::kDisconnected;
  const Policy policy = disconnected ? config_.on_disconnect : config_.on_unverified;
  if (policy == Policy::kHold) {
    // The end of a hold in progress.
    if (!current_.has_value() || !current_->hold) return std::nullopt;
    return *unvouched_since_ + config_.max_hold;
  }
  if (policy != Policy::kBlock) return std::nullopt;
  if (current_.has_value() && current_->action == RouteTarget::Action::kBlock) return std::nullopt;
  return *unvouched_since_ + (disconnected ? config_.disconnect_grace : config_.unverified_grace);
}

std::optional<RouteTarget> RoutePolicy::Evaluate() {
  const MasterInfo& s = *state_;
  RouteTarget t;
  t.status = s.status;
  if (s.status == MasterStatus::kVouched) {
    t.action = RouteTarget::Action::kRoute;
    t.master = s;
    t.reason = "vouched";
    return Emit(std::move(t));
  }
  const bool disconnected = s.status == MasterStatus::kDisconnected;
  const Policy policy = disconnected ? config_.on_disconnect : config_.on_unverified;
  const char* what = disconnected ? "disconnected"
                     : s.status == MasterStatus::kNoMaster ? "no-master"
                                                           : "unverified";
  const Millis grace = disconnected ? config_.disconnect_grace : config_.unverified_grace;
  const bool grace_over =
      unvouched_since_.has_value() && clock_.Now() >= *unvouched_since_ + grace;
  if (policy == Policy::kBlock && grace_over) {
    t.action = RouteTarget::Action::kBlock;
    if (last_vouched_.has_value()) t.master = *last_vouched_;
    t.master.status = s.status;
    t.reason = std::string(what) + "-grace-expired";
    return Emit(std::move(t));
  }
  if (!last_vouched_.has_value()) return std::nullopt;  // nothing vouched yet: touch nothing
  t.action = RouteTarget::Action::kRoute;
  t.master = *last_vouched_;
  t.master.status = s.status;
  if (policy == Policy::kHold) {
    const bool expired =
        unvouched_since_.has_value() && clock_.Now() >= *unvouched_since_ + config_.max_hold;
    t.hold = !expired;
    t.reason = std::string(what) + (expired ? "-hold-expired" : "-held");
    return Emit(std::move(t));
  }
  t.reason = std::string(what) + (policy == Policy::kBlock ? "-in-grace" : "-kept");
  return Emit(std::move(t));
}

std::optional<RouteTarget> RoutePolicy::Emit(RouteTarget target) {
  if (current_.has_value() && current_->SameRoute(target) &&
      current_->master.epoch == target.master.epoch && current_->status == target.status &&
      current_->hold == target.hold) {
    return std::nullopt;
  }
  target.seq = ++seq_;
  current_ = target;
  return target;
}

}  // namespace pgherald::watch
