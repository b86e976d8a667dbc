// Self-fencing. Two rules, each a pure function; RunFenceAction does the I/O.
//  - ShouldFence: a node that is writable while the VOUCHED master (a record with a voucher bound
//    to its exact bytes) is another node on a later timeline is a stale primary (an old primary
//    restarted with plain pg_ctl start, say); on the same timeline it is the loser of a double
//    promotion (the orchestrator keeps the published, write-checked master: stickiness).
//  - ShouldSelfFence: a writable node whose poller has lost ZooKeeper for fence.self_fence_deadline
//    fences itself, because the orchestrator's strict split-brain mode may publish another node
//    once this one has been unreachable that long (docs/poller.md, "Fencing on ZooKeeper loss").
// The poller fences its node with the configured action in either case.
#pragma once

#include <optional>
#include <string>

#include "common/base/clock.h"
#include "common/model/cluster_model.h"
#include "pollers/poller_config.h"
#include "pollers/publisher.h"

namespace pgherald::pollers {

struct FenceVerdict {
  bool fence = false;
  std::string reason;  // for the log and the observation's error
};

// Fence only on proof: this node answered, is out of recovery with a known timeline, and the
// master record is state ok, vouched by at least one voucher BOUND to the bytes read
// (MasterRead::bound, common/model/voucher.h), and names another node on a later timeline (a stale
// primary) or on the SAME timeline (a same-timeline loser: two nodes writable on one timeline
// means a second promotion; the orchestrator keeps the published master that passes its write
// check and reports this one as stale_primary). A record without a bound voucher (hand-written,
// replayed, foreign, legacy vouchers only), an earlier timeline (this node may be a newer
// promotion the orchestrator has not yet published), no record, or an unreachable node never
// fences: a wrong stop is an outage.
FenceVerdict ShouldFence(const model::NodeObservation& self, const MasterRead& master);

// What the ZooKeeper-loss rule looks at, all on the poller's monotonic clock.
struct SelfFenceInput {
  bool enabled = true;         // fence.on_zookeeper_loss
  bool node_writable = false;  // this tick's observation: reachable and out of recovery
  // The session is usable: connected and within its lease (ZkSession::lease_remaining() > 0).
  bool session_usable = false;
  // The last time ZooKeeper confirmed that this node is the vouched master (record state ok naming
  // this node, with a voucher bound to it); nullopt when it never did.
  std::optional<MonoTime> last_confirmed;
  // The send time of the last call the server answered (an answer of any kind, errors included,
  // but not a connection loss); the poller's start while it never had one.
  MonoTime last_answer{};
  MonoTime now{};
  Millis deadline{30000};  // fence.self_fence_deadline_ms
};

struct SelfFenceVerdict {
  bool fence = false;
  Millis cut_off_for{0};  // now - the later of last_confirmed and last_answer (0 when usable)
  std::string reason;     // set when fence is true
};

// Fence when, and only when: the rule is enabled, the node is writable, the session is NOT usable
// (disconnected, expired, or its lease ran out), and the later of last_confirmed and last_answer is
// at least `deadline` ago. A usable session never fences here, whatever the master record says
// (nothing vouching this node is the orchestrator's business, not a ZooKeeper loss); a node in
// recovery or not answering is never fenced. The caller runs the action once per loss.
SelfFenceVerdict ShouldSelfFence(const SelfFenceInput& in);

struct FenceOutcome {
  model::FencingState state = model::FencingState::kNone;
  std::string detail;  // the command's exit status / error
};

// Runs the action. kReport does nothing and returns kNone (the caller logs and records). kStop runs
// `pg_ctl stop -m immediate -D data_dir` (or fence.command when set); when the poller runs as root
// the child drops to the data directory's owner, because pg_ctl refuses to run as root. kCommand
// runs fence.command through /bin/sh with PGHERALD_NODE, PGHERALD_MASTER_NODE ("" when the fence
// is for a ZooKeeper loss) and PGHERALD_FENCE_REASON in its environment. Exit 0 within
// fence.timeout_ms is kFenced; anything else (killed on timeout included) is kFailed. The child is
// started by the one process spawner (common/subprocess.h: its own session and process group,
// killed whole on timeout; environment and identity prepared before fork); its output goes to the
// poller's own stdout and stderr.
FenceOutcome RunFenceAction(const FenceConfig& config, const std::string& node,
                            const std::string& master_node, const std::string& reason);

}  // namespace pgherald::pollers
