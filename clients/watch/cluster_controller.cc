#include "clients/watch/cluster_controller.h"

namespace pgherald::watch {

ClusterController::ClusterController(std::string cluster, PolicyConfig policy, const Clock& clock,
                                     std::vector<std::unique_ptr<SinkWorker>> workers)
    : cluster_(std::move(cluster)), clock_(clock), policy_(policy, clock),
      workers_(std::move(workers)) {}

ClusterController::~ClusterController() { Stop(); }

void ClusterController::HandleState(const client::MasterInfo& info) {
  std::lock_guard lock(mu_);
  if (!last_status_.has_value() || *last_status_ != info.status) {
    log_.Info("master_state", {{"cluster", cluster_}, {"status", StatusName(info.status)},
                               {"node", info.node}, {"host", info.host}, {"port", info.port},
                               {"epoch", info.epoch}, {"vouchers", info.vouchers},
                               {"mzxid", info.mzxid}});
    last_status_ = info.status;
  }
  if (auto target = policy_.OnState(info)) Dispatch(*target);
  cv_.notify_all();  // the deadline may have moved
}

void ClusterController::HandleTick() {
  std::lock_guard lock(mu_);
  if (auto target = policy_.OnTick()) Dispatch(*target);
}

void ClusterController::Dispatch(const RouteTarget& target) {
  log_.Info("route_target", {{"cluster", cluster_}, {"action", ActionName(target.action)},
                             {"node", target.master.node}, {"host", target.master.host},
                             {"port", target.master.port}, {"epoch", target.master.epoch},
                             {"status", StatusName(target.status)},
                             {"hold", target.hold}, {"reason", target.reason},
                             {"seq", target.seq}});
  ++route_changes_;
  if (target.hold && !holding_) ++holds_;
  holding_ = target.hold;
  for (auto& w : workers_) w->Submit(target);
}

void ClusterController::ReplaceWorkers(std::vector<std::unique_ptr<SinkWorker>> workers) {
  std::vector<std::unique_ptr<SinkWorker>> old;
  {
    std::lock_guard lock(mu_);
    old.swap(workers_);
    workers_ = std::move(workers);
    if (auto target = policy_.current()) {
      for (auto& w : workers_) w->Submit(*target);
    }
  }
  old.clear();  // joins the old workers outside the lock
}

ClusterController::Snapshot ClusterController::snapshot() const {
  std::lock_guard lock(mu_);
  Snapshot out;
  out.current = policy_.current();
  out.status = last_status_;
  out.route_changes = route_changes_;
  out.holds = holds_;
  for (const auto& w : workers_) out.sinks.emplace_back(w->name(), w->report());
  return out;
}

std::optional<RouteTarget> ClusterController::current() const {
  std::lock_guard lock(mu_);
  return policy_.current();
}

void ClusterController::Start() {
  std::lock_guard lock(mu_);
  if (timer_.joinable()) return;
  stop_ = false;
  timer_ = std::thread([this] { TimerLoop(); });
}

void ClusterController::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

void ClusterController::TimerLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    const auto deadline = policy_.NextDeadline();
    if (!deadline.has_value()) {
      cv_.wait(lock);
      continue;
    }
    const auto wait = *deadline - clock_.Now();
    if (wait > std::chrono::nanoseconds::zero()) {
      cv_.wait_for(lock, wait);
      continue;  // woken by a state (deadline may have moved) or the time came: re-check
    }
    if (auto target = policy_.OnTick()) Dispatch(*target);
  }
}

}  // namespace pgherald::watch
