// ZkPublisher: the authority. Reads and writes one cluster's znodes under <root>/clusters/<c>
// (docs/zookeeper-contract.md):
//
//   master            persistent, never deleted; created with the initial record {state:no-master,
//                     epoch:0} by EnsureCluster; afterwards ONLY changed by Publish's multi
//   master/<id>       this orchestrator's voucher (ephemeral): present exactly while its
//                     verification of the record holds (Vouch / Unvouch)
//   history/h-<seq>   persistent sequential, one per publish and one per withdrawn voucher,
//                     trimmed to history_limit
//   identity          persistent, {"format":1,"system_identifier":"..."}, written once
//   control           persistent, operators' {"format":1,"paused":true}; read here
//
// Fencing: Publish is ONE multi of Check(own election znode), Set(master, expected version) and
// Create(history/h-), so a deposed leader (its election znode gone with its session) or a leader
// that read an old version cannot land a write, and a record never exists without its history.
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

#include "common/cluster_model.h"
#include "common/status.h"
#include "common/zk_session.h"

namespace pgherald::publishers {

// The master znode as read.
struct MasterZnode {
  model::MasterRecord record;
  std::int32_t version = -1;  // for the compare-and-set
  std::int64_t mzxid = 0;
  std::vector<std::string> vouchers;  // children names
};

// clusters/<c>/control. An absent znode is the default (not paused).
struct ControlState {
  bool paused = false;
  // Optional, for people (written by `pgherald pause` and the HTTP API; "" / 0 when absent).
  std::string reason;
  std::string changed_by;
  std::int64_t changed_at_ms = 0;
};
// Parses {"format":1,"paused":bool[,"reason":str,"changed_by":str,"changed_at":ms]};
// kInvalidArgument naming the field otherwise. Untrusted (docs/zookeeper-contract.md,
// "Validation"): size and depth checked before parsing, "format" exactly the integer 1, reason and
// changed_by sanitized and cut to kMaxControlTextLength.
inline constexpr std::size_t kMaxControlTextLength = 1024;
StatusOr<ControlState> ParseControl(std::string_view text);
std::string ControlToJson(const ControlState& control);

enum class WriteOutcome {
  kApplied,   // the record and its history entry landed
  kRejected,  // nothing landed: deposed (election znode gone), or lost the compare-and-set
  kUnknown,   // connection loss: may have landed; Reconcile() settles it
};
const char* WriteOutcomeName(WriteOutcome outcome);

struct PublishResult {
  WriteOutcome outcome = WriteOutcome::kRejected;
  Status status;                 // why, when not applied
  std::int32_t new_version = -1;  // kApplied: the master znode's version now
  std::string history_path;      // kApplied: the entry created ("" when learned by Reconcile)
};

class ZkPublisher {
 public:
  // `root` e.g. "/pgherald"; `orchestrator_id` names this orchestrator's vouchers (a znode name);
  // history_limit >= 1 entries are kept per cluster. `session` must outlive this object.
  ZkPublisher(zk::ZkSession* session, std::string root, std::string orchestrator_id,
              int history_limit = 1000);

  std::string ClusterPath(const std::string& cluster) const;
  std::string MasterPath(const std::string& cluster) const;
  std::string NodesPath(const std::string& cluster) const;
  std::string HistoryPath(const std::string& cluster) const;
  std::string ControlPath(const std::string& cluster) const;
  std::string IdentityPath(const std::string& cluster) const;
  std::string VoucherPath(const std::string& cluster) const;

  // Creates the cluster's persistent znodes when missing: clusters/<c>, nodes, history, and the
  // master znode holding the initial record (state no-master, epoch 0). Idempotent.
  Status EnsureCluster(const std::string& cluster);

  // The master znode; kNotFound when absent, kInvalidArgument (path and field named) when its
  // payload is corrupt. `watch` fires on a data change.
  StatusOr<MasterZnode> ReadMaster(const std::string& cluster, zk::Watcher watch = nullptr);
  // The recorded system_identifier, nullopt when none is recorded yet.
  StatusOr<std::optional<std::string>> ReadIdentity(const std::string& cluster);
  // Records the identity once. Ok if it is recorded already with the same value;
  // kFailedPrecondition if another one is recorded.
  Status RecordIdentity(const std::string& cluster, const std::string& system_identifier);
  // The control znode; the default when absent. `watch` fires on creation, change or deletion.
  StatusOr<ControlState> ReadControl(const std::string& cluster, zk::Watcher watch = nullptr);

  // The fenced write (see the top of this file). `election_path` is the caller's own election
  // znode; `expected_version` the master znode's version the decision was made on.
  PublishResult Publish(const std::string& cluster, const std::string& election_path,
                        std::int32_t expected_version, const model::MasterRecord& record,
                        const model::HistoryEntry& history);

  // Whether a publish of `cluster` has an unknown outcome.
  bool HasPending(const std::string& cluster) const { return pending_.count(cluster) > 0; }
  // Settles a pending publish by re-reading the master znode: kApplied or kRejected (the pending
  // state is cleared), or kUnknown while the read itself fails (try again later). kApplied when
  // nothing is pending.
  WriteOutcome Reconcile(const std::string& cluster);

  // Makes sure this orchestrator's voucher under the master exists and names `record`'s epoch.
  // Created by a multi with Check(election_path), so a deposed leader cannot vouch.
  Status Vouch(const std::string& cluster, const std::string& election_path,
               const model::MasterRecord& record);
  // Removes this orchestrator's voucher if present (ok when absent).
  Status Unvouch(const std::string& cluster);
  // Withdraws this orchestrator's voucher and records why, in ONE multi: Check(election_path),
  // Delete(voucher), Create(history/h-, `history`), so the entry exists exactly when a voucher was
  // withdrawn by the leader. Voucher already gone: nothing is written, *history_path stays "" and
  // the result is Ok. Deposed (election znode gone): the voucher is removed without an entry.
  // Connection loss: that status; the caller tries again later (a landed multi left no voucher,
  // so the retry writes nothing twice).
  Status Withdraw(const std::string& cluster, const std::string& election_path,
                  const model::HistoryEntry& history, std::string* history_path);

  // Deletes the oldest history entries beyond history_limit.
  Status TrimHistory(const std::string& cluster);

 private:
  struct Pending {
    std::string data;  // the record JSON the multi tried to write
    std::int32_t expected_version = -1;
  };

  zk::ZkSession* session_;
  std::string root_;
  std::string id_;
  int history_limit_;
  std::map<std::string, Pending> pending_;
};

}  // namespace pgherald::publishers
