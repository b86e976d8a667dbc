// Cluster ownership on the real lab (ZooKeeper ensemble, 3-node PostgreSQL 15 + repmgr): three
// `pgherald orchestrator` processes share 24 logical clusters that all name the lab's three nodes
// (docs/orchestrator.md, "Ownership"). Checks: every cluster ends up owned by exactly one of them
// (one candidate in its queue, whose orchestrator alone vouches for the master), spread over all
// three (the spread is printed); kill -9 of one: its clusters are owned and vouched again by the
// others within the session timeout plus a margin (the time is printed, not asserted); no cluster
// is ever published by a non-owner (every master_published line of each log lies inside an
// ownership of that cluster in the same log, and each cluster's publish epochs never repeat).
// The case restores the lab first (Lab::Restore) and starts from an empty root of its own.
// Figures (printed): the spread, and the takeover time after the kill.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "common/model/owner.h"
#include "common/model/zk_paths.h"
#include "tests/integration/orchestrator_lab_util.h"

namespace pgherald::orchestrator_lab {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A root of this run's own (nothing left by an earlier run counts).
const std::string kRoot = "/pgherald-shard-" + std::to_string(::getpid());
constexpr int kClusters = 24;
constexpr int kSessionTimeoutMs = 4000;
constexpr seconds kPatience(120);

std::vector<std::string> ClusterNames() {
  std::vector<std::string> out;
  for (int i = 0; i < kClusters; ++i) out.push_back("s" + std::to_string(i));
  return out;
}

// What ZooKeeper says about one cluster: its owner (the first candidate's orchestrator id), the
// number of candidates, and the ids of the vouchers bound to the master record naming `primary`.
struct Owned {
  std::string owner;
  std::size_t candidates = 0;
  std::vector<std::string> vouchers;
  bool master_is_primary = false;
};

Owned Look(zk::ZkSession& zk, const std::string& cluster, int primary) {
  Owned o;
  const model::ClusterPaths paths(kRoot, cluster);
  auto names = zk.GetChildren(paths.Owners());
  if (names.ok()) {
    const auto queue = model::SortedCandidates(*names);
    o.candidates = queue.size();
    if (!queue.empty()) {
      auto data = zk.Get(paths.OwnerCandidate(queue.front().name));
      if (data.ok()) o.owner = model::OwnerIdOf(data->data);
    }
  }
  auto m = zk.Get(paths.Master());
  auto c = zk.GetChildren(paths.Master());
  if (m.ok() && c.ok()) {
    auto record = model::MasterRecord::FromJson(m->data);
    if (record.ok()) {
      o.master_is_primary = record->state == model::MasterState::kOk &&
                            record->node == "node" + std::to_string(primary);
      for (const std::string& name : model::BoundVouchers(*c, *record, m->data)) {
        o.vouchers.push_back(model::ParseVoucherName(name)->orchestrator);
      }
    }
  }
  return o;
}

// Every cluster owned by exactly one live orchestrator, which alone vouches for the master.
bool AllOwnedAndVouched(zk::ZkSession& zk, int primary, const std::set<std::string>& live,
                        std::map<std::string, std::string>* owners) {
  owners->clear();
  for (const std::string& c : ClusterNames()) {
    const Owned o = Look(zk, c, primary);
    if (o.candidates != 1 || live.count(o.owner) == 0 || !o.master_is_primary ||
        o.vouchers != std::vector<std::string>{o.owner}) {
      return false;
    }
    (*owners)[c] = o.owner;
  }
  return true;
}

// Each master_published line lies inside an ownership of its cluster in the same log.
void CheckPublishedOnlyWhileOwning(const std::string& id, const std::string& log) {
  std::set<std::string> owned;
  std::istringstream in(log);
  std::string line;
  auto field = [](const std::string& l, const std::string& key) {
    const auto at = l.find(" " + key + "=");
    if (at == std::string::npos) return std::string();
    const auto from = at + key.size() + 2;
    return l.substr(from, l.find(' ', from) - from);
  };
  int published = 0;
  while (std::getline(in, line)) {
    if (line.find("ownership_acquired") != std::string::npos) {
      owned.insert(field(line, "cluster"));
    } else if (line.find("ownership_lost") != std::string::npos) {
      const std::string c = field(line, "cluster");
      if (c.empty()) {
        owned.clear();  // the session went: every cluster at once
      } else {
        owned.erase(c);
      }
    } else if (line.find("master_published") != std::string::npos) {
      ++published;
      EXPECT_TRUE(owned.count(field(line, "cluster")) > 0) << id << " published while not owning: " << line;
    }
  }
  std::printf("[shard] %s published %d times\n", id.c_str(), published);
}

TEST(OrchestratorShardLab, ThreeInstancesShareTheClustersAndTakeOverAKilledOnesClusters) {
  lab::LabOptions options;
  options.zk_ensemble = true;
  options.postgres = true;
  auto up = lab::Lab::Up(options);
  ASSERT_TRUE(up.ok()) << up.status().ToString();  // a missing server is a failure, never a skip
  lab::Lab& lab = **up;
  auto primary = lab.Restore();
  ASSERT_TRUE(primary.ok()) << primary.status().ToString();
  auto zk = Reader(lab);
  ASSERT_NE(zk, nullptr);
  ASSERT_TRUE(zk::EnsurePath(*zk, kRoot).ok());

  const std::vector<std::string> ids = {"orch-1", "orch-2", "orch-3"};
  std::map<std::string, std::unique_ptr<OrchestratorProcess>> procs;
  for (const std::string& id : ids) {
    OrchestratorConfigSpec spec;
    spec.id = id;
    spec.root = kRoot;
    spec.session_timeout_ms = kSessionTimeoutMs;
    spec.tick_ms = 1000;
    spec.clusters = ClusterNames();
    const std::string log = lab.dir() + "/shard-" + id + ".log";
    std::remove(log.c_str());  // the log is appended to: only this run's lines
    procs[id] = OrchestratorProcess::Start(WriteConfig(lab, spec), log);
    ASSERT_NE(procs[id], nullptr) << "PGHERALD_BIN must name the pgherald program";
  }
  auto logs = [&] {
    std::string out;
    for (auto& [id, p] : procs) out += "---- " + id + " ----\n" + p->Log();
    return out;
  };

  // 1. Every cluster owned by exactly one, vouched by it; all three own some. (Until the last
  // instance to start has registered and taken its clusters over, the first two own them all:
  // under load that state can last, so the wait is for the spread too.)
  std::set<std::string> live(ids.begin(), ids.end());
  std::map<std::string, std::string> owners;
  std::map<std::string, int> spread;
  const bool spread_out = WaitUntil(
      [&] {
        if (!AllOwnedAndVouched(*zk, *primary, live, &owners)) return false;
        spread.clear();
        for (const auto& [c, o] : owners) ++spread[o];
        return spread.size() == ids.size();
      },
      kPatience, milliseconds(200));
  ASSERT_TRUE(AllOwnedAndVouched(*zk, *primary, live, &owners)) << logs();
  spread.clear();
  for (const auto& [c, o] : owners) ++spread[o];
  EXPECT_TRUE(spread_out) << logs();
  for (const std::string& id : ids) {
    std::printf("[shard] %s owns %d of %d clusters\n", id.c_str(), spread[id], kClusters);
    EXPECT_GE(spread[id], 1) << id << " owns nothing";
  }

  // 2. kill -9 of the one owning the most: its clusters are owned and vouched again by the others.
  std::string victim = ids[0];
  for (const std::string& id : ids) {
    if (spread[id] > spread[victim]) victim = id;
  }
  const auto killed_at = std::chrono::steady_clock::now();
  procs[victim]->Kill9();
  live.erase(victim);
  ASSERT_TRUE(WaitUntil([&] { return AllOwnedAndVouched(*zk, *primary, live, &owners); }, kPatience,
                        milliseconds(50)))
      << logs();
  const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - killed_at);
  std::printf("[shard] %d clusters of %s owned and vouched again %lld ms after its kill -9 "
              "(session timeout %d ms)\n",
              spread[victim], victim.c_str(), static_cast<long long>(took.count()), kSessionTimeoutMs);
  std::map<std::string, int> after;
  for (const auto& [c, o] : owners) ++after[o];
  for (const std::string& id : live) std::printf("[shard] %s now owns %d\n", id.c_str(), after[id]);

  // 3. Nobody published while not owning; no epoch published twice in a cluster.
  for (auto& [id, p] : procs) CheckPublishedOnlyWhileOwning(id, p->Log());
  for (const std::string& c : ClusterNames()) {
    const model::ClusterPaths paths(kRoot, c);
    auto names = zk->GetChildren(paths.History());
    ASSERT_TRUE(names.ok());
    std::set<std::uint64_t> epochs;
    for (const std::string& n : *names) {
      auto got = zk->Get(paths.HistoryEntry(n));
      if (!got.ok()) continue;
      auto h = model::HistoryEntry::FromJson(got->data);
      if (!h.ok() || h->action != "publish") continue;
      EXPECT_TRUE(epochs.insert(h->epoch).second) << c << ": epoch " << h->epoch << " published twice";
      EXPECT_TRUE(std::find(ids.begin(), ids.end(), h->decided_by) != ids.end()) << h->decided_by;
    }
  }

  for (auto& [id, p] : procs) {
    if (p->Running()) {
      EXPECT_EQ(p->Stop(), 0) << id;
    }
  }
}

}  // namespace
}  // namespace pgherald::orchestrator_lab
