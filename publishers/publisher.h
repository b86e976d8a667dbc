// Where verdicts go. ZooKeeper (ZkPublisher) is the authority; other publishers (FilePublisher)
// mirror what the authority accepted, after it accepted it, and their failures never block it.
#pragma once

#include <string>

#include "common/model/cluster_model.h"
#include "common/base/status.h"

namespace pgherald::publishers {

// One cluster's published state as a mirror sees it.
struct Publication {
  std::string cluster;
  model::MasterRecord record;
  bool vouched = false;  // the orchestrator's verification of `record` holds right now
};

class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual std::string name() const = 0;
  // Replaces the cluster's published state. Called after every change of record or voucher.
  virtual Status Publish(const Publication& publication) = 0;
};

}  // namespace pgherald::publishers
