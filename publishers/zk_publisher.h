// ZkPublisher: the authority. Reads and writes one cluster's znodes under <root>/clusters/<c>
// (docs/zookeeper-contract.md):
//
//   master            persistent, never deleted; created with the initial record {state:no-master,
//                     epoch:0} by EnsureCluster; afterwards ONLY changed by Publish's multi
//   master/v1.<epoch>.<digest>.<id>
//                     this orchestrator's voucher (ephemeral, common/model/voucher.h), bound by its name
//                     to the exact record bytes; created by Publish's multi together with the
//                     record, re-affirmed (setData) by Vouch, removed by Unvouch / Withdraw
//   history/h-<seq>   persistent sequential, one per publish and one per withdrawn voucher,
//                     trimmed to history_limit
//   identity          persistent, {"format":1,"system_identifier":"..."}, written once
//   control           persistent, operators' {"format":1,"paused":true}; read here
//
// Fencing: Publish is ONE multi of Check(fence), Set(master, expected version),
// Create(history/h-), Delete(every voucher of this orchestrator under master) and Create(the voucher
// bound to the new record), where the fence is the writer's own candidate znode in the cluster's
// ownership queue (clusters/<c>/owners/o-<guid>-<seq>, orchestrator/ownership.h), so a deposed
// owner (its candidate gone with its session or its resignation) or an owner that read an old
// version cannot land a write, a record never exists without its history,
// and the record and its bound voucher appear together (no second round trip on a failover).
// Unknown outcomes: when the multi fails with connection loss the publish is remembered as pending
// and Reconcile() must settle it (re-read the master and compare) before the cluster is touched
// again; it is never retried blind.
//
// Threads: one caller at a time (the orchestrator's loop). Watchers run on the session's dispatch
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/base/status.h"
#include "common/model/zk_paths.h"
#include "common/zk/zk_session.h"

namespace pgherald::publishers {

// The master znode as read.
struct MasterZnode {
  model::MasterRecord record;
  std::int32_t version = -1;  // for the compare-and-set
  std::int64_t mzxid = 0;
  std::vector<std::string> vouchers;  // children names, bound or not (model::BoundVouchers)
  std::string bytes;                  // the data exactly as stored: the voucher digest's input
  // ReadMasterZnode only: why the payload does not decode ("" when it does; `record` is then the
  // default no-master record and must not be used).
  std::string corrupt;
};

// The control znode's codec lives with the contract (common/model/cluster_model.h); the names stay
// here for the publisher's users.
using model::ControlState;
using model::ControlToJson;
using model::kMaxControlTextLength;
using model::ParseControl;

// Writes the control znode (created when absent) for operators (`pgherald pause|resume`, the
// HTTP API). kNotFound (naming the cluster) when the cluster does not exist: a typo must not
// create a cluster. Last writer wins: an operator's word needs no compare-and-set.
Status WriteControl(zk::ZkSession& zk, const model::ClusterPaths& paths,
                    const ControlState& control);

enum class WriteOutcome {
  kApplied,   // the record and its history entry landed
  kRejected,  // nothing landed: deposed (fence znode gone), or lost the compare-and-set
  kUnknown,   // connection loss: may have landed; Reconcile() settles it
};
const char* WriteOutcomeName(WriteOutcome outcome);

struct PublishResult {
  WriteOutcome outcome = WriteOutcome::kRejected;
  Status status;                 // why, when not applied
  std::int32_t new_version = -1;  // kApplied: the master znode's version now
  std::string history_path;      // kApplied: the entry created ("" when learned by Reconcile)
  std::string voucher;           // the bound voucher's name the multi created ("" for no-master)
};

// What Vouch did.
enum class VouchOutcome {
  kHeld,        // our session's bound voucher exists; not re-affirmed (not asked to)
  kCreated,     // created (with the removal of our other vouchers), affirm_seq 1
  kReaffirmed,  // its data rewritten (affirm_seq + 1): its mzxid moved
};

// The voucher an earlier Vouch of this session left held, as Vouch last wrote or read it.
struct HeldVoucher {
  std::string name;  // "" when unknown
  std::int32_t version = -1;
  std::uint64_t affirm_seq = 0;
};

// What the leader needs from clusters/<c>/history to trust a record and to choose an epoch.
struct HistoryFacts {
  std::int64_t pzxid = 0;          // the history znode's pzxid when read (a cache key)
  std::uint64_t newest_epoch = 0;  // the largest epoch among the publish entries read
  // The newest entry with action "publish" among the newest `max_entries` (absent: none there).
  std::optional<model::HistoryEntry> last_publish;
};
// Whether `facts` back `record`: the newest publish entry has the record's epoch and node and,
// when it carries the record written (`master`), its timeline, host and port.
bool BackedByHistory(const HistoryFacts& facts, const model::MasterRecord& record);

// The master znode from what a read of it returned (its data and stat) and its children: the
// record, or why its payload does not decode (MasterZnode::corrupt). ReadMasterZnode's decoding,
// for readers that fetched the znode themselves (the orchestrator's pipelined reads).
MasterZnode DecodeMasterZnode(zk::NodeData got, std::vector<std::string> vouchers);

class ZkPublisher {
 public:
  // `root` e.g. "/pgherald"; `orchestrator_id` names this orchestrator's vouchers (a znode name);
  // history_limit >= 1 entries are kept per cluster. `session` must outlive this object.
  ZkPublisher(zk::ZkSession* session, std::string root, std::string orchestrator_id,
              int history_limit = 1000);

  // The cluster's paths (common/model/zk_paths.h) under this publisher's root.
  model::ClusterPaths Paths(const std::string& cluster) const;

  // Creates the cluster's persistent znodes when missing: clusters/<c>, nodes, history, and the
  // master znode holding the initial record (state no-master, epoch 0). Idempotent.
  Status EnsureCluster(const std::string& cluster);

  // The master znode; kNotFound when absent, kInvalidArgument (path and field named) when its
  // payload is corrupt. `watch` fires on a data change.
  StatusOr<MasterZnode> ReadMaster(const std::string& cluster, zk::Watcher watch = nullptr);
  // The same, but a corrupt payload is returned (MasterZnode::corrupt says why) with the znode's
  // stat and children, so that the leader can repair it by compare-and-set. With
  // `children_watch` the children are always read, arming it (it fires when a voucher comes or
  // goes); without it they are read only when the stat counts some.
  StatusOr<MasterZnode> ReadMasterZnode(const std::string& cluster, zk::Watcher watch = nullptr,
                                        zk::Watcher children_watch = nullptr);
  // The recorded system_identifier, nullopt when none is recorded yet.
  StatusOr<std::optional<std::string>> ReadIdentity(const std::string& cluster);
  // Records the identity once. Ok if it is recorded already with the same value;
  // kFailedPrecondition if another one is recorded.
  Status RecordIdentity(const std::string& cluster, const std::string& system_identifier);
  // The control znode; the default when absent. `watch` fires on creation, change or deletion.
  StatusOr<ControlState> ReadControl(const std::string& cluster, zk::Watcher watch = nullptr);
  // The switchover record (clusters/<c>/control/switchover, with its version); nullopt when
  // absent; kInvalidArgument (path named) when its payload is corrupt. `watch` fires on creation,
  // change or deletion.
  StatusOr<std::optional<model::SwitchoverRecord>> ReadSwitchover(const std::string& cluster,
                                                                  zk::Watcher watch = nullptr);
  // Appends `history` (an entry that goes with no record change: a switchover's phase change) in
  // one multi with Check(election_path): a deposed owner writes nothing (kFailedPrecondition
  // or the multi's status). *history_path is the entry created.
  Status RecordHistory(const std::string& cluster, const std::string& election_path,
                       const model::HistoryEntry& history, std::string* history_path);

  // The fenced write (see the top of this file). `election_path` is the caller's fence: its own
  // ownership candidate znode of the cluster (named for the election znode it once was); `expected_version` the master znode's version the decision was made on; `children` the
  // master znode's children as read with it (this orchestrator's vouchers among them are deleted
  // in the multi; one that is gone meanwhile fails it, kRejected, and the caller re-reads). A
  // record in state ok gets its bound voucher (VoucherPayload affirm_seq 1, affirmed_at = the
  // record's verified_at). `control_after`, when set, is written to the control znode in the same
  // multi with its `version` as the compare-and-set (an operator acceptance used up).
  PublishResult Publish(const std::string& cluster, const std::string& election_path,
                        std::int32_t expected_version, const model::MasterRecord& record,
                        const model::HistoryEntry& history,
                        const std::vector<std::string>& children = {},
                        const std::optional<ControlState>& control_after = std::nullopt);

  // Whether a publish of `cluster` has an unknown outcome.
  bool HasPending(const std::string& cluster) const { return pending_.count(cluster) > 0; }
  // Settles a pending publish by re-reading the master znode: kApplied or kRejected (the pending
  // state is cleared), or kUnknown while the read itself fails (try again later). kApplied when
  // nothing is pending.
  WriteOutcome Reconcile(const std::string& cluster);

  // The name of this orchestrator's voucher bound to `master` (its record and bytes).
  std::string BoundVoucherName(const MasterZnode& master) const;
  // Makes sure this orchestrator's voucher bound to `master` (as read: record, bytes, children)
  // exists and is held by this session: when it does not, one multi of Check(election_path),
  // Delete(our other vouchers, legacy name included) and Create(the bound voucher). When it does
  // and `reaffirm` is set, one multi of Check(election_path) and Set(voucher, VoucherPayload with
  // affirm_seq + 1 and `affirmed_at_ms`): the voucher's mzxid moves. A deposed leader can do
  // neither. The caller asks only with a verification of this record's master that passed and
  // that started after its session's last interruption (docs/zookeeper-contract.md, "Vouchers").
  // `held` (optional), in: what the last Vouch of this session left in it, when the caller knows
  // that the master's children have not changed since (a children watch armed before and not
  // fired); cleared by the caller otherwise. With it the voucher is not read first: kHeld at once,
  // or the re-affirming Set on the version it knows (a version that moved, or a voucher that is
  // gone, falls back to the read). Out: the voucher held now (cleared on an error).
  StatusOr<VouchOutcome> Vouch(const std::string& cluster, const std::string& election_path,
                               const MasterZnode& master, std::int64_t affirmed_at_ms,
                               bool reaffirm, HeldVoucher* held = nullptr);
  // The fenced multi that re-affirms the voucher `held` names: Check(election_path) and Set(the
  // voucher, VoucherPayload with affirm_seq + 1 and `affirmed_at_ms`) on the version held, for a
  // caller that sends it itself (MultiAsync: the orchestrator sends a batch's together) under the
  // same conditions as Vouch with `held`. `after` is the voucher held once it succeeded, but for
  // its version: the Set's new version (the multi's result 1), which Held() fills in.
  struct Reaffirmation {
    std::vector<zk::Op> ops;
    HeldVoucher after;
    // The voucher held once `ops` succeeded with `done`.
    HeldVoucher Held(const zk::MultiResult& done) const {
      HeldVoucher h = after;
      h.version = done.results.size() > 1 ? done.results[1].stat.version : -1;
      return h;
    }
  };
  Reaffirmation PrepareReaffirm(const std::string& cluster, const std::string& election_path,
                                const MasterZnode& master, std::int64_t affirmed_at_ms,
                                const HeldVoucher& held) const;
  // Removes every voucher of this orchestrator under the master (model::VouchersOf, legacy name
  // included); ok when there is none or no master znode.
  Status Unvouch(const std::string& cluster);
  // Withdraws this orchestrator's vouchers and records why, in ONE multi: Check(election_path),
  // Delete(each of our vouchers), Create(history/h-, `history`), so the entry exists exactly when
  // a voucher was withdrawn by the leader. No voucher of ours: nothing is written, *history_path
  // stays "" and the result is Ok. Deposed (election znode gone): the vouchers are removed without
  // an entry. Connection loss: that status; the caller tries again later (a landed multi left no
  // voucher, so the retry writes nothing twice).
  Status Withdraw(const std::string& cluster, const std::string& election_path,
                  const model::HistoryEntry& history, std::string* history_path);

  // Reads the history's newest entries, newest first, until a publish entry (at most
  // `max_entries`). Entries that do not parse are skipped (and counted in no epoch). `cached`, when
  // its pzxid is still the history znode's, is returned as is (one Exists call).
  StatusOr<HistoryFacts> ReadHistoryFacts(const std::string& cluster,
                                          const std::optional<HistoryFacts>& cached = std::nullopt,
                                          std::size_t max_entries = 64);

  // Deletes the oldest history entries beyond history_limit.
  Status TrimHistory(const std::string& cluster);

 private:
  // Sends PrepareReaffirm's multi for `known` and, when it lands, leaves the voucher held in
  // `*held` (when given).
  Status Reaffirm(const std::string& cluster, const std::string& election_path,
                  const MasterZnode& master, std::int64_t affirmed_at_ms, const HeldVoucher& known,
                  HeldVoucher* held);
  struct Pending {
    std::string data;  // the record JSON the multi tried to write
    std::int32_t expected_version = -1;
  };
  // This orchestrator's vouchers among the master's children (GetChildren); empty when none or
  // no master znode.
  StatusOr<std::vector<std::string>> OwnVouchers(const std::string& cluster);

  zk::ZkSession* session_;
  std::string root_;
  std::string id_;
  int history_limit_;
  std::map<std::string, Pending> pending_;
};

}  // namespace pgherald::publishers
