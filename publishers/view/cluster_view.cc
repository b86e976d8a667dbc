#include "publishers/view/cluster_view.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "clients/src/consumer_rules.h"
#include "common/model/untrusted.h"
#include "common/model/voucher.h"
#include "common/model/owner.h"
#include "common/model/zk_paths.h"

namespace pgherald::view {
namespace {

// At most 4 names (znode names are up to 255 characters each), then how many more.
std::string NameList(const std::vector<std::string>& names) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(names.size(), 4);
  for (std::size_t i = 0; i < shown; ++i) out += (out.empty() ? "" : ", ") + names[i].substr(0, 80);
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

}  // namespace

bool ClusterStatus::backed() const {
  publishers::HistoryFacts facts;
  facts.last_publish = newest_publish;
  return publishers::BackedByHistory(facts, master);
}

std::int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StatusOr<std::vector<std::string>> ListClusters(zk::ZkSession& zk, const std::string& root) {
  const std::string clusters = model::RootPaths(root).Clusters();
  auto children = zk.GetChildren(clusters);
  if (!children.ok()) {
    if (children.status().code() == StatusCode::kNotFound) {
      return NotFound(clusters +
                      " does not exist: no orchestrator has run under this root (check "
                      "zookeeper.root / --root)");
    }
    return children.status();
  }
  std::vector<std::string> names = *children;
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::vector<model::HistoryEntry>> ReadHistory(zk::ZkSession& zk, const std::string& root,
                                                       const std::string& cluster, int limit,
                                                       HistoryCache* cache,
                                                       std::vector<std::string>* corrupt) {
  std::vector<model::HistoryEntry> out;
  if (limit <= 0) return out;
  const model::ClusterPaths paths(root, cluster);
  auto names = zk.GetChildren(paths.History());
  if (!names.ok()) {
    if (names.status().code() == StatusCode::kNotFound) return out;
    return names.status();
  }
  std::vector<std::string> sorted = *names;  // h-<10 digits>: the name order is the write order
  std::sort(sorted.begin(), sorted.end());
  const std::size_t first = sorted.size() > static_cast<std::size_t>(limit)
                                ? sorted.size() - static_cast<std::size_t>(limit)
                                : 0;
  HistoryCache fresh;
  for (std::size_t i = first; i < sorted.size(); ++i) {
    const std::string& name = sorted[i];
    if (cache != nullptr) {
      auto it = cache->find(name);
      if (it != cache->end()) {
        out.push_back(it->second);
        fresh.insert(*it);
        continue;
      }
    }
    auto got = zk.Get(paths.HistoryEntry(name));
    if (!got.ok()) {
      if (got.status().code() == StatusCode::kNotFound) continue;  // trimmed meanwhile
      return got.status();
    }
    auto entry = model::HistoryEntry::FromJson(got->data);
    if (!entry.ok()) {
      if (corrupt != nullptr)
        corrupt->push_back(paths.HistoryEntry(name) + ": " + entry.status().message());
      continue;
    }
    out.push_back(*entry);
    fresh.emplace(name, *entry);
  }
  if (cache != nullptr) *cache = std::move(fresh);  // only what is still wanted
  return out;
}

void Judge(ClusterStatus& s, std::int64_t stale_after_ms, std::int64_t now_ms) {
  s.read_at_ms = now_ms;
  s.problems.clear();
  // Nodes known without an observation: the master record, repmgr's active nodes, the latest
  // decision's evidence.
  std::set<std::string> known;
  for (const NodeStatus& n : s.nodes) known.insert(n.node);
  std::set<std::string> expected;
  if (s.master.state == model::MasterState::kOk && !s.master.node.empty()) {
    expected.insert(s.master.node);
  }
  for (const NodeStatus& n : s.nodes) {
    if (!n.observation) continue;
    for (const model::RepmgrNode& r : n.observation->repmgr_nodes) {
      if (r.active && !r.name.empty() && r.type != "witness") expected.insert(r.name);
    }
  }
  if (!s.history.empty()) {
    for (const model::NodeEvidence& e : s.history.back().evidence) {
      if (e.role != "foreign") expected.insert(e.node);
    }
  }
  for (const std::string& name : expected) {
    if (known.count(name) == 0)
      s.nodes.push_back(NodeStatus{name, "", false, std::nullopt, 0, -1, {}, {}});
  }
  std::sort(s.nodes.begin(), s.nodes.end(),
            [](const NodeStatus& a, const NodeStatus& b) { return a.node < b.node; });

  // The master's position, from its own observation.
  std::optional<model::Lsn> master_pos;
  for (const NodeStatus& n : s.nodes) {
    if (n.node == s.master.node && n.observation && n.observation->reachable &&
        !n.observation->in_recovery) {
      master_pos = n.observation->Position();
    }
  }

  if (s.master.state != model::MasterState::kOk) {
    s.problems.push_back("no master has been verified yet");
  } else if (s.vouchers.empty() && !s.unbound_vouchers.empty()) {
    const std::string names = NameList(s.unbound_vouchers);
    s.problems.push_back("voucher_unbound: master " + s.master.node + " (epoch " +
                         std::to_string(s.master.epoch) +
                         ") is unverified: no voucher is bound to this record (children that "
                         "bind nothing: " + names + ")");
  } else if (s.vouchers.empty()) {
    s.problems.push_back("master " + s.master.node +
                         " is unverified (no voucher: no orchestrator leader holds its check)");
  }
  if (!s.legacy_vouchers.empty()) {
    const std::string names = NameList(s.legacy_vouchers);
    s.problems.push_back("voucher_legacy: old-style vouchers (named after an orchestrator, bound "
                         "to no record) under the master znode count for nothing: " + names +
                         " (upgrade that orchestrator; its leader deletes them)");
  }
  if (s.history_checked && s.master.state == model::MasterState::kOk && !s.backed()) {
    std::string newest = "history holds no publish entry";
    if (s.newest_publish.has_value()) {
      const model::HistoryEntry& h = *s.newest_publish;
      newest = "the newest publish entry is epoch " + std::to_string(h.epoch) + ", node " +
               h.chosen +
               (h.master ? ", timeline " + std::to_string(h.master->timeline) : std::string());
    }
    s.problems.push_back("master_unbacked: master record (epoch " +
                         std::to_string(s.master.epoch) + ", node " + s.master.node +
                         ", timeline " + std::to_string(s.master.timeline) +
                         ") was not written by an orchestrator's publish (" + newest +
                         "): a hand-written, foreign or replayed record");
  }
  if (!s.control_error.empty()) s.problems.push_back("control znode corrupt: " + s.control_error);
  if (!s.switchover_error.empty()) {
    s.problems.push_back("switchover record corrupt (ignored by the orchestrator): " +
                         s.switchover_error);
  }
  s.switchover_active = s.switchover && model::SwitchoverActive(*s.switchover, now_ms);
  if (s.nodes_not_read > 0) {
    s.problems.push_back(std::to_string(s.nodes_not_read) + " znodes under nodes/ not read (more than " +
                         std::to_string(kMaxNodesRead) + "; from " + s.first_node_not_read +
                         " on): delete the stray znodes and find who wrote them");
  }
  for (const std::string& path : s.persistent_nodes) {
    s.problems.push_back(path +
                         " is a persistent znode, not a poller's ephemeral one: ignored (no live "
                         "poller writes it; delete it)");
  }

  for (NodeStatus& n : s.nodes) {
    n.is_master = s.master.state == model::MasterState::kOk && n.node == s.master.node;
    n.problem.clear();
    n.lag_bytes.reset();
    if (!n.observation) {
      n.role = "missing";
      n.heartbeat_age_ms = -1;
      n.problem = "no observation (its poller is not running or lost its ZooKeeper session)";
    } else {
      const model::NodeObservation& o = *n.observation;
      n.heartbeat_age_ms = std::max<std::int64_t>(0, now_ms - n.mtime_ms);
      if (n.heartbeat_age_ms > stale_after_ms) {
        n.role = "stale";
        n.problem = "heartbeat is " + std::to_string(n.heartbeat_age_ms / 1000) +
                    "s old (its poller is stuck or partitioned)";
      } else if (!o.reachable) {
        n.role = "down";
        // An active switchover's `from` is stopped on purpose (docs/switchover.md).
        if (!(s.switchover_active && n.node == s.switchover->from)) {
          n.problem = "PostgreSQL unreachable" + (o.error.empty() ? std::string() : ": " + o.error);
        }
      } else if (!o.in_recovery) {
        if (n.is_master && s.verified()) {
          n.role = "primary";
        } else {
          n.role = "stale-primary";
          n.problem = "writable but not the verified master";
        }
      } else {
        n.role = "standby";
      }
      if (o.fencing == model::FencingState::kFailed) {
        n.problem += std::string(n.problem.empty() ? "" : "; ") + "fencing failed";
      }
      if (master_pos && o.reachable && n.role != "stale") {
        if (auto pos = o.Position()) n.lag_bytes = *pos >= *master_pos ? 0 : *master_pos - *pos;
      }
    }
    if (!n.problem.empty()) s.problems.push_back(n.node + ": " + n.problem);
  }
}

StatusOr<ClusterStatus> ReadClusterStatus(zk::ZkSession& zk, const std::string& root,
                                          const std::string& cluster, const ReadOptions& options,
                                          std::int64_t now_ms, HistoryCache* cache) {
  const model::ClusterPaths paths(root, cluster);
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> exists, zk.Exists(paths.Cluster()));
  if (!exists.has_value()) {
    return NotFound("cluster \"" + cluster + "\" not found (no " + paths.Cluster() +
                    "); `pgherald status` without --cluster lists the clusters");
  }
  ClusterStatus s;
  s.name = cluster;
  // The publisher's readers: the same codec the orchestrator uses. The id names no voucher here.
  publishers::ZkPublisher reader(&zk, root, "status-reader", 1);
  std::vector<std::string> corrupt;
  {
    // The master znode as a consumer reads it (clients/src/consumer_rules.h): data, then names.
    const std::string master_path = paths.Master();
    client::internal::MasterRead read;
    auto got = zk.Get(master_path);
    if (got.ok()) {
      read.exists = true;
      read.data = std::move(got->data);
      read.stat = got->stat;
      auto children = zk.GetChildren(master_path);
      if (!children.ok() && children.status().code() != StatusCode::kNotFound) {
        return children.status();
      }
      if (children.ok()) read.children = std::move(*children);
    } else if (got.status().code() != StatusCode::kNotFound) {
      return got.status();
    }
    using Kind = client::internal::Judgement::Kind;
    const client::internal::Judgement judged = client::internal::JudgeRead(read);
    if (judged.kind == Kind::kUnreadable) {
      corrupt.push_back(master_path + ": " + judged.error.message());
    } else if (read.exists) {
      s.master = *judged.record;
      s.master_present = true;
      s.master_mzxid = read.stat.mzxid;
    }
    for (const std::string& name : read.children) {
      if (std::find(judged.bound.begin(), judged.bound.end(), name) != judged.bound.end()) {
        s.vouchers.push_back(model::ParseVoucherName(name)->orchestrator);
        continue;
      }
      s.unbound_vouchers.push_back(name);
      if (!model::ParseVoucherName(name) && untrusted::IsValidName(name)) {
        s.legacy_vouchers.push_back(name);
      }
    }
  }
  auto control = reader.ReadControl(cluster);
  if (control.ok()) {
    s.control = *control;
  } else if (control.status().code() == StatusCode::kInvalidArgument) {
    s.control_error = control.status().message();
  } else {
    return control.status();
  }
  auto switchover = reader.ReadSwitchover(cluster);
  if (switchover.ok()) {
    s.switchover = *switchover;
  } else if (switchover.status().code() == StatusCode::kInvalidArgument) {
    s.switchover_error = switchover.status().message();
  } else {
    return switchover.status();
  }
  // The owner: the first candidate of the ownership queue (common/model/owner.h).
  auto owners = zk.GetChildren(paths.Owners());
  if (!owners.ok() && owners.status().code() != StatusCode::kNotFound) return owners.status();
  if (owners.ok()) {
    for (const model::OwnerCandidate& c : model::SortedCandidates(*owners)) {
      auto data = zk.Get(paths.OwnerCandidate(c.name));
      if (!data.ok() && data.status().code() == StatusCode::kNotFound) continue;  // just resigned
      if (!data.ok()) return data.status();
      s.owner_guid = c.guid;
      s.owner = model::OwnerIdOf(data->data);
      break;
    }
  }
  auto names = zk.GetChildren(paths.Nodes());
  if (!names.ok() && names.status().code() != StatusCode::kNotFound) return names.status();
  if (names.ok()) {
    std::sort(names->begin(), names->end());
    if (names->size() > kMaxNodesRead) {
      s.nodes_not_read = names->size() - kMaxNodesRead;
      s.first_node_not_read = (*names)[kMaxNodesRead];
      names->resize(kMaxNodesRead);
    }
    for (const std::string& name : *names) {
      const std::string node_path = paths.Node(name);
      auto got = zk.Get(node_path);
      if (!got.ok()) {
        if (got.status().code() == StatusCode::kNotFound) continue;  // its poller just left
        return got.status();
      }
      // Pollers write ephemeral znodes: a persistent one outlives any poller (a hand edit, a
      // forgery), so it never counts as a live poller, whatever it says.
      if (got->stat.ephemeral_owner == 0) {
        s.persistent_nodes.push_back(node_path);
        continue;
      }
      auto obs = model::NodeObservation::FromZnode(name, got->data);
      if (!obs.ok()) {
        corrupt.push_back(node_path + ": " + obs.status().message());
        continue;
      }
      NodeStatus n;
      n.node = name;
      n.observation = std::move(*obs);
      n.mtime_ms = got->stat.mtime_ms;
      s.nodes.push_back(std::move(n));
    }
  }
  PGH_ASSIGN_OR_RETURN(s.history,
                       ReadHistory(zk, root, cluster, options.history_limit, cache, &corrupt));
  if (s.master.state == model::MasterState::kOk) {
    // The leader's own view of the history (the newest publish entry among the newest 64).
    PGH_ASSIGN_OR_RETURN(publishers::HistoryFacts facts, reader.ReadHistoryFacts(cluster));
    s.newest_publish = std::move(facts.last_publish);
    s.history_checked = true;
  }
  Judge(s, options.stale_after_ms, now_ms);
  for (const std::string& c : corrupt) s.problems.push_back("corrupt payload ignored: " + c);
  return s;
}

}  // namespace pgherald::view
