// PrimaryStandbyProber: a NodeProber (orchestrator/probe.h) for tests and benchmarks of the
// orchestrator's loop, header-only (its user links pgherald::orchestrator): node1 is a writable
// primary and every other node a standby on timeline 1, or, once `promoted`, node1 is down and
// node2 the primary on timeline 2. Answers at once unless given a simulated wait (a sleep: the
// network, not CPU); hooks run once per probe and per write check (e.g. a session interruption
// mid-round). ObservationOf() is a poller's observation of a node, as they publish it.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/model/cluster_model.h"
#include "orchestrator/probe.h"

namespace pgherald::orchestrator {

inline constexpr char kTestSysid[] = "7000000000000000001";

class PrimaryStandbyProber final : public NodeProber {
 public:
  explicit PrimaryStandbyProber(std::chrono::microseconds wait = std::chrono::microseconds(0))
      : wait_(wait) {}
  std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets, MonoTime) override {
    Wait();
    if (during_probe) during_probe();
    std::vector<model::Probe> out;
    for (const NodeTarget& t : targets) out.push_back(ProbeOf(t.name));
    return out;
  }
  std::vector<model::Probe> WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                           MonoTime) override {
    Wait();
    if (during_write_check) during_write_check();
    std::vector<model::Probe> out;
    for (const WriteCheckRequest& r : requests) {
      model::Probe p = ProbeOf(r.target.name);
      if (p.reachable) {
        p.write_check = p.in_recovery ? model::WriteCheck::kFailed : model::WriteCheck::kPassed;
      }
      out.push_back(p);
    }
    return out;
  }
  void Forget(const std::vector<NodeTarget>&) override {}

  std::function<void()> during_probe;
  std::function<void()> during_write_check;
  bool promoted = false;

 private:
  void Wait() const {
    if (wait_.count() > 0) std::this_thread::sleep_for(wait_);
  }
  model::Probe ProbeOf(const std::string& name) const {
    model::Probe p;
    p.node = name;
    p.host = "127.0.0.1";
    p.port = 5432;
    if (promoted && name == "node1") {
      p.error = "connection refused";
      return p;
    }
    p.reachable = true;
    p.in_recovery = name != (promoted ? "node2" : "node1");
    p.timeline = promoted ? 2 : 1;
    p.lsn = 0x3000000;
    p.system_identifier = kTestSysid;
    return p;
  }
  std::chrono::microseconds wait_;
};

// A standby's observation with sequence number `seq`, as its poller writes it.
inline model::NodeObservation ObservationOf(const std::string& node, std::uint64_t seq) {
  model::NodeObservation o;
  o.node = node;
  o.host = "127.0.0.1";
  o.port = 5432;
  o.reachable = true;
  o.in_recovery = true;
  o.timeline = 1;
  o.system_identifier = kTestSysid;
  o.seq = seq;
  o.observed_at_ms = 1;
  return o;
}

}  // namespace pgherald::orchestrator
