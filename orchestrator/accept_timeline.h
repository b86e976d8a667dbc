// `pgherald accept-timeline --cluster C --timeline N --reason TEXT [--by WHO]`: an operator's
// one-shot acceptance of a lower timeline (docs/decision-rules.md, "Accepting a lower timeline").
//
// The published master's record is backed by history but nobody reaches its node: the leader
// keeps it in force (it may be the real master behind a partition) and publishes no lower timeline
// over it. An operator who knows better (the node is gone for good) writes this acceptance into
// clusters/<c>/control: accept_below_timeline (the published record's timeline, N), accept_by,
// accept_reason, accept_at. The leader then publishes the best verified candidate on a lower
// timeline, with a history entry naming who and why (reason operator_accepted_lower_timeline), and
// clears the acceptance in the same multi. An acceptance whose timeline is not the published
// record's does nothing (it never applies to a later situation by accident).
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/zk/zk_session.h"
#include "publishers/zk_publisher.h"

namespace pgherald::orchestrator {

// Writes `acceptance`'s accept_* fields into clusters/<cluster>/control, keeping its other fields
// (paused, reason, ...), by compare-and-set on the version read (created when absent). kNotFound
// when the cluster does not exist; kInvalidArgument on timeline 0, an empty reason, or a corrupt
// control znode (not overwritten: `pgherald resume` rewrites it).
Status AcceptLowerTimeline(zk::ZkSession& zk, const std::string& root, const std::string& cluster,
                           const publishers::ControlState& acceptance);

int RunAcceptTimelineCommand(const std::vector<std::string>& args);

}  // namespace pgherald::orchestrator
