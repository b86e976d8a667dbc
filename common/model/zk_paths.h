// The ZooKeeper tree of the contract (docs/zookeeper-contract.md), spelled in one place. Every
// reader and writer builds its paths here instead of concatenating strings:
//
//   <root>/clusters/<c>                  ClusterPaths::Cluster()
//     identity                           Identity()
//     nodes/<node>                       Nodes(), Node(node)
//     events/<id>                        Events(), Event(id)
//     master                             Master()
//     master/<voucher>                   Voucher(name)
//     history/h-<seq>                    History(), HistoryEntry(name), HistoryPrefix()
//     control                            Control()
//     owners/o-<guid>-<seq>              Owners(), OwnerCandidate(name), OwnerPrefix(guid)
//   <root>/orchestrators/election/<n->   RootPaths::Orchestrators(), Election(), ElectionMember(n)
//
// Pure string building (no ZooKeeper, no validation): names come from configuration that checked
// them (untrusted::IsValidName) or from a znode listing. `root` is absolute ("/pgherald", or "/"
// for the ensemble's root); a root of "" or "/" gives "/clusters/...".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgherald::model {

// "<parent>/<child>", with a parent of "" or "/" giving "/<child>" (zk::JoinPath's rule).
std::string ZnodeJoin(std::string_view parent, std::string_view child);

// The paths of one cluster under one root.
class ClusterPaths {
 public:
  ClusterPaths(std::string root, std::string cluster);

  const std::string& root() const { return root_; }
  const std::string& cluster() const { return cluster_; }

  const std::string& Cluster() const { return cluster_path_; }  // <root>/clusters/<c>
  std::string Identity() const;
  std::string Nodes() const;
  std::string Node(std::string_view node) const;
  std::string Events() const;
  std::string Event(std::string_view id) const;
  std::string Master() const;
  // A child of the master znode: a voucher (common/model/voucher.h), or whatever else is found there.
  std::string Voucher(std::string_view name) const;
  std::string History() const;
  std::string HistoryEntry(std::string_view name) const;  // "h-<seq>" as listed
  // What a persistent-sequential create of a history entry is given: "<history>/h-".
  std::string HistoryPrefix() const;
  std::string Control() const;
  std::string Switchover() const;  // control/switchover
  // The ownership queue (orchestrator/ownership.h) and its candidates o-<guid>-<seq>.
  std::string Owners() const;
  std::string OwnerCandidate(std::string_view name) const;
  // What an ephemeral-sequential create of `guid`'s candidate is given: "<owners>/o-<guid>-".
  std::string OwnerPrefix(std::string_view guid) const;
  // The persistent children of clusters/<c> that exist for the tree's whole life, in the order
  // `pgherald zk-init` lays them out: nodes, events, history, control.
  std::vector<std::string> Containers() const;

 private:
  std::string root_;
  std::string cluster_;
  std::string cluster_path_;
};

// The paths directly under the root.
class RootPaths {
 public:
  explicit RootPaths(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string Clusters() const;  // <root>/clusters
  ClusterPaths Cluster(std::string cluster) const { return ClusterPaths(root_, std::move(cluster)); }
  std::string Orchestrators() const;  // <root>/orchestrators
  std::string Election() const;       // <root>/orchestrators/election
  std::string ElectionMember(std::string_view name) const;

 private:
  std::string root_;
};

}  // namespace pgherald::model
