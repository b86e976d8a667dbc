// Self-fencing: a node that is writable while the published master is another node on a later
// timeline is a stale primary (an old primary restarted with plain pg_ctl start, say). Its poller
// fences it with the configured action. ShouldFence is pure; RunFenceAction does the I/O.
#pragma once

#include <optional>
#include <string>

#include "common/cluster_model.h"
#include "pollers/poller_config.h"

namespace pgherald::pollers {

struct FenceVerdict {
  bool fence = false;
  std::string reason;  // for the log and the observation's error
};

// Fence only on proof: this node answered, is out of recovery with a known timeline, and the
// master record (state ok) names another node on a strictly later timeline. A record on the same or
// an earlier timeline, no record, or an unreachable node never fences: the orchestrator decides
// those, and a wrong stop is an outage.
FenceVerdict ShouldFence(const model::NodeObservation& self,
                         const std::optional<model::MasterRecord>& master);

struct FenceOutcome {
  model::FencingState state = model::FencingState::kNone;
  std::string detail;  // the command's exit status / error
};

// Runs the action. kReport does nothing and returns kNone (the caller logs and records). kStop runs
// `pg_ctl stop -m immediate -D data_dir` (or fence.command when set); when the poller runs as root
// the child drops to the data directory's owner, because pg_ctl refuses to run as root. kCommand
// runs fence.command through /bin/sh with PGHERALD_NODE, PGHERALD_MASTER_NODE and
// PGHERALD_FENCE_REASON in its environment. Exit 0 within fence.timeout_ms is kFenced; anything
// else (killed on timeout included) is kFailed.
FenceOutcome RunFenceAction(const FenceConfig& config, const std::string& node,
                            const std::string& master_node, const std::string& reason);

}  // namespace pgherald::pollers
