// The cluster view: what an operator sees of a cluster, read from ZooKeeper
// (docs/zookeeper-contract.md), judged (roles, lag, heartbeat ages, problems, the consumer trust
// rules of clients/src/consumer_rules.h) and returned as values and as JSON objects. Used by
// `pgherald status|history` (clients/status renders it as text and picks the exit code) and by the
// orchestrator's HTTP API, metrics and dashboard, so that all show the same thing. It lives below
// both (beside the publisher whose writes it reads), so neither climbs to the other.
//
// Heartbeat age = the reader's wall clock minus the observation znode's Stat mtime (the clock of
// the ZooKeeper server that applied the poller's last write). A poller rewrites its observation at
// least every heartbeat_ms, so the age stays below that while it lives. Clock skew between the
// reader and the ZooKeeper server adds to the age; observed_at (the poller's clock) is shown for
// people but never used for freshness.
//
// Threads: the Read* functions make synchronous ZkSession calls (never from a watcher callback).
// The value types are plain.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/base/status.h"
#include "common/zk/zk_session.h"
#include "publishers/zk_publisher.h"

namespace pgherald::view {

// One node as the reader judges it.
struct NodeStatus {
  std::string node;
  // "primary" (writable, and the verified master), "standby", "stale-primary" (writable but not
  // the verified master), "down" (its poller cannot reach PostgreSQL), "stale" (the observation
  // is older than stale_after), "missing" (no observation: the poller is gone; the node is known
  // from repmgr's node list, the master record or the latest decision's evidence).
  std::string role;
  bool is_master = false;  // the master record names it
  std::optional<model::NodeObservation> observation;
  std::int64_t mtime_ms = 0;           // the observation znode's mtime (ZooKeeper's clock)
  std::int64_t heartbeat_age_ms = -1;  // reader's now - mtime_ms, >= 0; -1 without observation
  // Bytes behind the master's position (both from observations); absent when either is unknown.
  std::optional<std::uint64_t> lag_bytes;
  std::string problem;  // why this node makes the cluster unhealthy, "" when it does not
};

struct ClusterStatus {
  std::string name;
  model::MasterRecord master;  // the initial record (no-master) when the znode is absent
  bool master_present = false;
  std::int64_t master_mzxid = 0;
  // The orchestrator ids of the vouchers BOUND to this exact record (model::BoundVouchers): the
  // only ones that count (docs/zookeeper-contract.md, "Rules for consumers").
  std::vector<std::string> vouchers;
  // Children of the master znode that bind nothing (names as stored): bound to another record,
  // replayed, garbage -- and legacy_vouchers among them, old-style vouchers named after an
  // orchestrator id (written by orchestrators before bound vouchers).
  std::vector<std::string> unbound_vouchers;
  std::vector<std::string> legacy_vouchers;
  // The newest history entry with action "publish", when the reader looked (history_checked):
  // a state-ok record it does not back (publishers::BackedByHistory, the leader's rule) is
  // problem master_unbacked.
  bool history_checked = false;
  std::optional<model::HistoryEntry> newest_publish;
  // The cluster's owner (docs/orchestrator.md, "Ownership"): the first candidate of
  // clusters/<c>/owners, its orchestrator id (from its data; "" when it names none) and guid.
  // owner_guid "" when nobody owns the cluster.
  std::string owner;
  std::string owner_guid;
  model::ControlState control;
  std::string control_error;  // a corrupt control znode (the orchestrator then treats it as paused)
  // clusters/<c>/control/switchover (absent: none), and whether it is active at read_at
  // (model::SwitchoverActive: not terminal, deadline not passed). A corrupt record is a problem
  // (switchover_error); the orchestrator ignores it.
  std::optional<model::SwitchoverRecord> switchover;
  bool switchover_active = false;
  std::string switchover_error;
  std::vector<NodeStatus> nodes;  // sorted by name
  // Persistent (non-ephemeral) znodes under nodes/: no live poller wrote them, so they are not
  // nodes here, only problems.
  std::vector<std::string> persistent_nodes;
  // Znodes under nodes/ beyond the first kMaxNodesRead in name order are not read (anyone who may
  // write there could create any number): how many, and the first of them.
  std::size_t nodes_not_read = 0;
  std::string first_node_not_read;
  std::vector<model::HistoryEntry> history;  // the latest entries, oldest first (may be empty)
  std::int64_t read_at_ms = 0;               // the reader's wall clock when judged
  std::vector<std::string> problems;         // everything that makes this cluster unhealthy

  bool verified() const { return master.state == model::MasterState::kOk && !vouchers.empty(); }
  // Backed by history (false also when not checked: see history_checked).
  bool backed() const;
  bool healthy() const { return problems.empty(); }
};

struct ReadOptions {
  std::int64_t stale_after_ms = 10000;  // a heartbeat older than this makes the node "stale"
  int history_limit = 0;                // latest history entries to read (0: none)
};

// Reads history entries by znode name; entries never change, so a long-lived reader (the
// orchestrator's HTTP API) fetches each one once.
using HistoryCache = std::map<std::string, model::HistoryEntry>;

// The most observations ReadClusterStatus reads per cluster (in name order).
inline constexpr std::size_t kMaxNodesRead = 256;

// The cluster names under <root>/clusters, sorted. kNotFound when <root>/clusters is absent.
StatusOr<std::vector<std::string>> ListClusters(zk::ZkSession& zk, const std::string& root);

// Reads and judges one cluster at wall time now_ms. kNotFound (naming the cluster) when
// <root>/clusters/<c> does not exist; another error when ZooKeeper fails. Corrupt payloads are not
// errors: they become problems naming the znode.
StatusOr<ClusterStatus> ReadClusterStatus(zk::ZkSession& zk, const std::string& root,
                                          const std::string& cluster, const ReadOptions& options,
                                          std::int64_t now_ms, HistoryCache* cache = nullptr);

// The judging part, pure (unit-tested): fills roles, lag, ages and problems from the raw fields
// (master, vouchers, unbound/legacy vouchers, newest_publish, control, nodes[*].observation and
// mtime_ms, history). Problem lines about the record start with their kind: "voucher_unbound:",
// "voucher_legacy:", "master_unbacked:".
void Judge(ClusterStatus& status, std::int64_t stale_after_ms, std::int64_t now_ms);

// The latest `limit` history entries, oldest first (corrupt entries are skipped and reported in
// *corrupt when given).
StatusOr<std::vector<model::HistoryEntry>> ReadHistory(zk::ZkSession& zk, const std::string& root,
                                                       const std::string& cluster, int limit,
                                                       HistoryCache* cache = nullptr,
                                                       std::vector<std::string>* corrupt = nullptr);

// Milliseconds since the epoch, now.
std::int64_t WallNowMs();

// ---- JSON (the HTTP API, the dashboard, `pgherald status --json`) ----
// Objects, not text: a caller adds to them and serializes once (jsonf::Dump). Every field is
// documented in docs/operations.md.

// "up", "stale" or "gone" (no observation).
std::string PollerState(const NodeStatus& node);
// One cluster: name, healthy, problems, paused, control, master (the record's fields plus
// present, verified, vouchers, unbound_vouchers, legacy_vouchers, backed, mzxid), switchover
// (SwitchoverJson), nodes, history, read_at (the HTTP API's /api/clusters/<c>).
nlohmann::json ClusterJson(const ClusterStatus& cluster);
// The switchover record's fields plus active (and error_record for a corrupt one); null when
// there is none.
nlohmann::json SwitchoverJson(const ClusterStatus& cluster);
// {"clusters":[ClusterJson...],"healthy":bool}.
nlohmann::json StatusJson(const std::vector<ClusterStatus>& clusters);
// {"cluster":c,"history":[<HistoryEntry payloads>]}.
nlohmann::json HistoryJson(const std::string& cluster,
                           const std::vector<model::HistoryEntry>& history);

}  // namespace pgherald::view
