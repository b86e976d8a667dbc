#include "common/model/zk_paths.h"

#include <utility>

namespace pgherald::model {

std::string ZnodeJoin(std::string_view parent, std::string_view child) {
  std::string out = parent.empty() || parent == "/" ? std::string() : std::string(parent);
  out += '/';
  out += child;
  return out;
}

ClusterPaths::ClusterPaths(std::string root, std::string cluster)
    : root_(std::move(root)),
      cluster_(std::move(cluster)),
      cluster_path_(ZnodeJoin(ZnodeJoin(root_, "clusters"), cluster_)) {}

std::string ClusterPaths::Identity() const { return ZnodeJoin(cluster_path_, "identity"); }
std::string ClusterPaths::Nodes() const { return ZnodeJoin(cluster_path_, "nodes"); }
std::string ClusterPaths::Node(std::string_view node) const { return ZnodeJoin(Nodes(), node); }
std::string ClusterPaths::Events() const { return ZnodeJoin(cluster_path_, "events"); }
std::string ClusterPaths::Event(std::string_view id) const { return ZnodeJoin(Events(), id); }
std::string ClusterPaths::Master() const { return ZnodeJoin(cluster_path_, "master"); }
std::string ClusterPaths::Voucher(std::string_view name) const { return ZnodeJoin(Master(), name); }
std::string ClusterPaths::History() const { return ZnodeJoin(cluster_path_, "history"); }
std::string ClusterPaths::HistoryEntry(std::string_view name) const {
  return ZnodeJoin(History(), name);
}
std::string ClusterPaths::HistoryPrefix() const { return ZnodeJoin(History(), "h-"); }
std::string ClusterPaths::Control() const { return ZnodeJoin(cluster_path_, "control"); }
std::string ClusterPaths::Switchover() const { return ZnodeJoin(Control(), "switchover"); }
std::string ClusterPaths::Owners() const { return ZnodeJoin(cluster_path_, "owners"); }
std::string ClusterPaths::OwnerCandidate(std::string_view name) const {
  return ZnodeJoin(Owners(), name);
}
std::string ClusterPaths::OwnerPrefix(std::string_view guid) const {
  return ZnodeJoin(Owners(), "o-" + std::string(guid) + "-");
}
std::vector<std::string> ClusterPaths::Containers() const {
  return {Nodes(), Events(), History(), Control()};
}

std::string RootPaths::Clusters() const { return ZnodeJoin(root_, "clusters"); }
std::string RootPaths::Orchestrators() const { return ZnodeJoin(root_, "orchestrators"); }
std::string RootPaths::Election() const { return ZnodeJoin(Orchestrators(), "election"); }
std::string RootPaths::ElectionMember(std::string_view name) const {
  return ZnodeJoin(Election(), name);
}

}  // namespace pgherald::model
