// Orchestrator::ReplaceClusters: the cluster list changed by SIGHUP (kept apart from the round's
// code in orchestrator.cc).
#include <set>

#include "common/logging.h"
#include "orchestrator/orchestrator.h"

namespace pgherald::orchestrator {

void Orchestrator::ReplaceClusters(std::vector<ClusterSpec> clusters) {
  {
    std::lock_guard lock(mu_);
    pending_clusters_ = std::move(clusters);
    woken_ = true;  // the next pass takes them; a new cluster runs in it, the others as before
  }
  cv_.notify_all();
}

void Orchestrator::TakePendingClusters() {
  std::optional<std::vector<ClusterSpec>> next;
  {
    std::lock_guard lock(mu_);
    next.swap(pending_clusters_);
  }
  if (!next) return;
  static const log::Logger logger("orchestrator");
  std::set<std::string> kept;
  for (const ClusterSpec& spec : *next) kept.insert(spec.name);
  for (auto it = runtime_.begin(); it != runtime_.end();) {
    if (kept.count(it->first) > 0) {
      ++it;
      continue;
    }
    // No longer ours: withdraw our voucher so that nobody trusts a verification we stop renewing.
    bool unvouched = !it->second.vouched;
    if (!unvouched && publisher_ != nullptr && session_ != nullptr &&
        session_->state() == zk::SessionState::kConnected) {
      unvouched = publisher_->Unvouch(it->first).ok();
    }
    // And hand the cluster over: our candidate goes, so the next member queues at once.
    if (ownership_ != nullptr && session_ != nullptr &&
        session_->state() == zk::SessionState::kConnected) {
      ownership_->Resign(it->first);
    }
    if (owned_.erase(it->first) > 0) ++ownership_changes_;
    logger.Info("cluster_removed", {{"cluster", it->first}, {"voucher_withdrawn", unvouched}});
    it = runtime_.erase(it);
  }
  std::set<std::string> before;
  for (const ClusterSpec& spec : clusters_) before.insert(spec.name);
  for (const ClusterSpec& spec : *next) {
    if (before.count(spec.name) == 0) logger.Info("cluster_added", {{"cluster", spec.name}});
  }
  clusters_ = std::move(*next);
  IndexClusters();
}

}  // namespace pgherald::orchestrator
