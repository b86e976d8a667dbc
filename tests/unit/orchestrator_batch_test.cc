// The orchestrator's batches (docs/orchestrator.md, "Batches"): the rounds of several clusters
// share one probe call and one write-check call. On FakeZk with a ManualClock and a prober that
// answers by host and port (every cluster names its nodes node1 and node2, on hosts of its own),
// and records every call:
//   - each cluster decides on its own nodes' answers, though the names repeat across the batch;
//   - each write check carries its own cluster's context;
//   - N due clusters cost one probe call and one write-check call (batch_max permitting);
//   - a cluster woken by a watch is probed and published before a batch of due clusters;
//   - a steady round reads nothing from ZooKeeper, and a batch's changed observations are read
//     all at once (RecordingSession).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/model/voucher.h"
#include "common/model/zk_paths.h"
#include "orchestrator/orchestrator.h"
#include "tests/support/fake_zk.h"
#include "tests/support/manual_clock.h"
#include "tests/support/primary_standby_prober.h"
#include "tests/support/recording_session.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;

std::string Name(int i) { return "c" + std::to_string(i); }
// Cluster i's node k (1, 2) lives on 10.0.i.k.
std::string HostOf(int cluster, int node) {
  return "10.0." + std::to_string(cluster) + "." + std::to_string(node);
}

// A PostgreSQL node per host:port: a primary (on `timeline`), a standby or down.
struct HostNode {
  bool up = true;
  bool primary = false;
  std::uint32_t timeline = 1;
};

class HostProber final : public NodeProber {
 public:
  std::map<std::string, HostNode> nodes;  // by "host:port"

  std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets, MonoTime) override {
    probe_calls.push_back(targets);
    if (on_probe) on_probe(probe_calls.size());
    std::vector<model::Probe> out;
    for (const NodeTarget& t : targets) out.push_back(ProbeOf(t));
    return out;
  }
  std::vector<model::Probe> WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                           MonoTime) override {
    write_check_calls.push_back(requests);
    std::vector<model::Probe> out;
    for (const WriteCheckRequest& r : requests) {
      model::Probe p = ProbeOf(r.target);
      if (p.reachable) {
        p.write_check = p.in_recovery ? model::WriteCheck::kFailed : model::WriteCheck::kPassed;
      }
      out.push_back(p);
    }
    return out;
  }

  void Warm(const std::vector<NodeTarget>& targets) override { warm_calls.push_back(targets); }
  void Forget(const std::vector<NodeTarget>& targets) override { forget_calls.push_back(targets); }

  std::vector<std::vector<NodeTarget>> probe_calls;
  std::vector<std::vector<WriteCheckRequest>> write_check_calls;
  std::vector<std::vector<NodeTarget>> warm_calls;
  std::vector<std::vector<NodeTarget>> forget_calls;
  std::function<void(std::size_t call)> on_probe;  // after the call is recorded

 private:
  model::Probe ProbeOf(const NodeTarget& t) const {
    model::Probe p;
    p.node = t.name;
    p.host = t.params.host;
    p.port = t.params.port;
    const auto it = nodes.find(t.params.host + ":" + std::to_string(t.params.port));
    if (it == nodes.end() || !it->second.up) {
      p.error = "connection refused";
      return p;
    }
    p.reachable = true;
    p.in_recovery = !it->second.primary;
    p.timeline = it->second.timeline;
    p.lsn = 0x3000000;
    p.system_identifier = kTestSysid;
    return p;
  }
};

class OrchestratorBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::LoggingConfig lc;
    lc.level = config::LogLevel::kInfo;
    log::Init(lc, std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
  }
  void TearDown() override { log::Init(config::LoggingConfig{}); }

  // The specs of c0..c<n-1>, their nodes up in the prober (see Make).
  std::vector<ClusterSpec> Specs(int clusters) {
    std::vector<ClusterSpec> specs;
    for (int i = 0; i < clusters; ++i) {
      ClusterSpec spec;
      spec.name = Name(i);
      for (int k = 1; k <= 2; ++k) {
        NodeTarget t{"node" + std::to_string(k), spec.defaults};
        t.params.host = HostOf(i, k);
        t.params.port = 5432;
        spec.nodes.push_back(t);
        prober_.nodes[HostOf(i, k) + ":5432"] = HostNode{true, (i % 2 == 0) == (k == 1), 1};
      }
      specs.push_back(spec);
    }
    return specs;
  }
  // Clusters c0..c<n-1>; in cluster i the primary is node1 when i is even, node2 when it is odd.
  // With `record`, the orchestrator's sessions are RecordingSessions (recording_: the newest).
  std::unique_ptr<Orchestrator> Make(int clusters, int batch_max, bool record = false,
                                     const std::string& id = "orch-a",
                                     const std::string& guid = "g1", HostProber* prober = nullptr,
                                     bool successor_connections = true) {
    OrchestratorOptions o;
    o.id = id;
    o.tick = milliseconds(1000);
    o.verify_interval = milliseconds(1000);
    o.voucher_reaffirm = milliseconds(1000);
    o.policy.confirmation_window = milliseconds(0);
    o.batch_max = batch_max;
    o.successor_connections = successor_connections;
    std::vector<ClusterSpec> specs = Specs(clusters);
    SessionFactory factory = zk::ManualDispatchSessions(server_, milliseconds(6000));
    if (record) {
      factory = [this, inner = factory]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
        auto made = inner();
        if (!made.ok()) return made.status();
        auto recording = std::make_unique<zk::RecordingSession>(std::move(*made));
        recording_ = recording.get();
        return std::unique_ptr<zk::ZkSession>(std::move(recording));
      };
    }
    if (prober != nullptr) prober->nodes = prober_.nodes;
    return std::make_unique<Orchestrator>(o, specs, factory, prober != nullptr ? prober : &prober_, &clock_,
                                          std::vector<publishers::Publisher*>{}, guid);
  }
  // Passes at the current time, watches delivered, until one probes nothing.
  void Settle(Orchestrator& orch) {
    for (int i = 0; i < 20; ++i) {
      server_->DispatchAllPending();
      const std::size_t before = prober_.probe_calls.size();
      orch.RunDue();
      if (prober_.probe_calls.size() == before) return;
    }
    ADD_FAILURE() << "the loop never settled";
  }
  // The node the master znode of `cluster` names ("" when none).
  std::string Published(const std::string& cluster) {
    auto m = server_->Peek(model::ClusterPaths("/pgherald", cluster).Master());
    if (!m.has_value()) return "";
    auto r = model::MasterRecord::FromJson(m->data);
    return r.ok() && r->state == model::MasterState::kOk ? r->node : "";
  }
  // A poller of `cluster` publishes an observation of a new node: the cluster's watch fires.
  void Observe(const std::string& cluster, const std::string& node) {
    if (poller_ == nullptr) {
      zk::FakeZkOptions zo;
      zo.dispatch = zk::DispatchMode::kManual;
      poller_ = server_->NewSession(zo);
    }
    auto made = poller_->Create(model::ClusterPaths("/pgherald", cluster).Node(node),
                                ObservationOf(node, 1).ToJson(), zk::CreateMode::kEphemeral);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
  }
  // The cluster whose hosts `t` names (-1 when none).
  static int ClusterOf(const NodeTarget& t) {
    const std::string& h = t.params.host;  // 10.0.<i>.<k>
    const std::size_t a = h.find('.', 3);
    return h.rfind("10.0.", 0) == 0 && a != std::string::npos ? std::stoi(h.substr(5, a - 5)) : -1;
  }
  // `n` passes of each member in turn, a second apart (every cluster due), watches delivered
  // before each: several members on one ensemble settle their ownership.
  void Passes(const std::vector<Orchestrator*>& members, int n) {
    for (int i = 0; i < n; ++i) {
      clock_.Advance(milliseconds(1000));
      for (Orchestrator* m : members) {
        server_->DispatchAllPending();
        m->RunDue();
      }
    }
  }
  // The clusters (by index) whose nodes `calls` name.
  static std::set<int> ClustersIn(const std::vector<std::vector<NodeTarget>>& calls) {
    std::set<int> out;
    for (const auto& call : calls) {
      for (const NodeTarget& t : call) out.insert(ClusterOf(t));
    }
    return out;
  }

  // Rewrites the observation Observe() published (a poller's next tick): its watch fires.
  void Reobserve(const std::string& cluster, const std::string& node, std::uint64_t seq) {
    auto set = poller_->Set(model::ClusterPaths("/pgherald", cluster).Node(node),
                            ObservationOf(node, seq).ToJson());
    ASSERT_TRUE(set.ok()) << set.status().ToString();
  }
  // "path xN, ..." of the synchronous reads recorded.
  static std::string Paths(const zk::RecordingSession::Counts& c) {
    std::string out;
    for (const auto& [path, n] : c.sync_reads) out += path + " x" + std::to_string(n) + ", ";
    return out;
  }
  // The synchronous reads of the clusters' znodes (the pass's own membership step aside: once a
  // pass, not once a cluster).
  static int ClusterReads(const zk::RecordingSession::Counts& c) {
    int n = 0;
    for (const auto& [path, k] : c.sync_reads) {
      if (path.rfind("/pgherald/clusters/", 0) == 0) n += k;
    }
    return n;
  }

  std::ostringstream log_;
  zk::RecordingSession* recording_ = nullptr;
  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  std::unique_ptr<zk::FakeZk> poller_;
  HostProber prober_;
};

// (a) Five clusters in one batch, each naming its nodes node1 and node2: one probe call carries
// all ten, and every cluster publishes its own primary (node1 in c0, c2, c4; node2 in c1, c3).
// Answers matched by node name across the batch would give every cluster the same node.
TEST_F(OrchestratorBatchTest, EachClusterGetsItsOwnProbesThoughNamesRepeat) {
  auto orch = Make(5, 64);
  orch->RunRound();
  ASSERT_TRUE(orch->leading()) << log_.str();
  ASSERT_EQ(prober_.probe_calls.size(), 1u);
  EXPECT_EQ(prober_.probe_calls[0].size(), 10u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Published(Name(i)), i % 2 == 0 ? "node1" : "node2") << Name(i) << "\n" << log_.str();
  }
}

// (d) The write checks of a batch go in one call, each with its own cluster's context: the
// heartbeat row of c3's primary is keyed by c3, not by the first cluster of the batch.
TEST_F(OrchestratorBatchTest, WriteChecksCarryTheirOwnClustersContext) {
  auto orch = Make(5, 64);
  orch->RunRound();
  ASSERT_EQ(prober_.write_check_calls.size(), 1u) << log_.str();
  std::set<std::string> checked;
  for (const WriteCheckRequest& r : prober_.write_check_calls[0]) {
    EXPECT_EQ(r.context.cluster, Name(ClusterOf(r.target))) << r.target.params.host;
    EXPECT_EQ(r.context.orchestrator_id, "orch-a");
    checked.insert(r.context.cluster);
  }
  EXPECT_EQ(checked.size(), 5u) << "every cluster's primary is write-checked";
}

// (c) Eight clusters due at once: one probe call and one write-check call for all of them; with
// batch_max 3, three of each (3 + 3 + 2 clusters).
TEST_F(OrchestratorBatchTest, OneProbeCallPerBatchOfDueClusters) {
  for (const int batch_max : {64, 3}) {
    SCOPED_TRACE("batch_max " + std::to_string(batch_max));
    server_ = zk::FakeZkServer::Create(&clock_);
    auto orch = Make(8, batch_max);
    Settle(*orch);
    ASSERT_TRUE(orch->leading()) << log_.str();
    clock_.Advance(milliseconds(1000));  // every cluster due
    prober_.probe_calls.clear();
    prober_.write_check_calls.clear();
    orch->RunDue();
    std::vector<std::size_t> sizes;
    for (const auto& call : prober_.probe_calls) sizes.push_back(call.size());
    const std::vector<std::size_t> expected =
        batch_max == 64 ? std::vector<std::size_t>{16} : std::vector<std::size_t>{6, 6, 4};
    EXPECT_EQ(sizes, expected);
    EXPECT_EQ(prober_.write_check_calls.size(), expected.size());
    std::uint64_t verified = 0;
    for (const auto& entry : orch->cluster_rounds()) {
      if (entry.first.second == "verify") verified += entry.second;
    }
    EXPECT_EQ(verified, 8u);
  }
}

// (b) Twenty clusters due and c7 failing over at the same moment: c7's watch (a new observation:
// an urgent wake) gives it a batch of its own, and it is published before the due clusters are
// probed, all nineteen in the next batch. (An ordinary wake would share the first batch with the
// routine share of due clusters, 64 / 8 = 8: OrchestratorScheduleTest covers that order.)
TEST_F(OrchestratorBatchTest, AWokenClusterIsPublishedBeforeTheDueBatch) {
  auto orch = Make(20, 64);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  ASSERT_EQ(Published("c7"), "node2");
  clock_.Advance(milliseconds(1000));  // every cluster due
  // c7's primary dies; node1 is promoted on timeline 2.
  prober_.nodes[HostOf(7, 2) + ":5432"].up = false;
  prober_.nodes[HostOf(7, 1) + ":5432"] = HostNode{true, true, 2};
  Observe("c7", "node3");
  server_->DispatchAllPending();
  prober_.probe_calls.clear();
  auto woken_rounds = [&] {
    const auto it = orch->cluster_rounds().find({"c7", "watch"});
    return it == orch->cluster_rounds().end() ? 0u : it->second;
  };
  const std::uint64_t woken_before = woken_rounds();
  std::string published_at_second_call;
  prober_.on_probe = [&](std::size_t call) {
    if (call == 2) published_at_second_call = Published("c7");
  };
  orch->RunDue();
  prober_.on_probe = nullptr;
  ASSERT_GE(prober_.probe_calls.size(), 2u);
  ASSERT_EQ(prober_.probe_calls[0].size(), 2u);
  EXPECT_EQ(ClusterOf(prober_.probe_calls[0][0]), 7);
  EXPECT_EQ(ClusterOf(prober_.probe_calls[0][1]), 7);
  EXPECT_EQ(published_at_second_call, "node1") << log_.str();
  EXPECT_EQ(prober_.probe_calls[1].size(), 2u * 19u) << "the other 19 due clusters in one batch";
  EXPECT_EQ(woken_rounds(), woken_before + 1);
}

// (e) The reads of steady rounds (docs/orchestrator.md, "Reads"). With nothing changed, a
// verification reads nothing from ZooKeeper: the master znode, its vouchers, the node lists and
// the observations come from caches that armed watches keep valid, and each voucher is re-affirmed
// by one multi with no read of it first, the batch's four in flight together. When every observation changes, the batch's reads of
// them are in flight all at once: the recording session holds every answer back until all eight
// reads wait, so reads sent one after another, each awaiting its answer, would leave one waiting.
TEST_F(OrchestratorBatchTest, SteadyRoundsReadOnlyWhatChangedAndAllAtOnce) {
  auto orch = Make(4, 64, /*record=*/true);
  Settle(*orch);  // the clusters' znodes set up
  for (int i = 0; i < 4; ++i) {
    Observe(Name(i), "node1");
    Observe(Name(i), "node2");
  }
  Settle(*orch);
  ASSERT_NE(recording_, nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Published(Name(i)), i % 2 == 0 ? "node1" : "node2");
  const auto seq_of = [&](int i) {
    const std::string master = model::ClusterPaths("/pgherald", Name(i)).Master();
    std::uint64_t seq = 0;
    for (const std::string& v : server_->PeekChildren(master)) {
      auto p = model::VoucherPayload::FromJson(server_->Peek(master + "/" + v)->data);
      if (p.ok()) seq = std::max(seq, p->affirm_seq);
    }
    return seq;
  };
  std::vector<std::uint64_t> seq_before;
  for (int i = 0; i < 4; ++i) seq_before.push_back(seq_of(i));

  clock_.Advance(milliseconds(1000));  // every cluster due; nothing changed
  server_->DispatchAllPending();
  recording_->Reset();
  recording_->hold_answers(4);
  prober_.write_check_calls.clear();
  orch->RunDue();
  auto counts = recording_->counts();
  ASSERT_EQ(prober_.write_check_calls.size(), 1u) << log_.str();
  EXPECT_EQ(prober_.write_check_calls[0].size(), 4u) << "every cluster verified";
  EXPECT_EQ(ClusterReads(counts), 0) << Paths(counts);
  EXPECT_EQ(counts.async_reads, 0);
  EXPECT_EQ(counts.multis, 4) << "one re-affirmation per cluster";
  EXPECT_EQ(recording_->max_held(), 4u) << "the re-affirmations were not in flight together";
  for (int i = 0; i < 4; ++i) EXPECT_EQ(seq_of(i), seq_before[i] + 1) << Name(i);

  // A poller tick everywhere: every observation changes and wakes its cluster.
  for (int i = 0; i < 4; ++i) {
    Reobserve(Name(i), "node1", 2);
    Reobserve(Name(i), "node2", 2);
  }
  server_->DispatchAllPending();
  recording_->Reset();
  recording_->hold_answers(8);
  prober_.write_check_calls.clear();
  orch->RunDue();
  counts = recording_->counts();
  EXPECT_EQ(counts.async_reads, 8);
  EXPECT_EQ(recording_->max_held(), 8u) << "the eight reads were not in flight together";
  EXPECT_EQ(ClusterReads(counts), 0) << Paths(counts);
  ASSERT_EQ(prober_.write_check_calls.size(), 1u) << log_.str();
  EXPECT_EQ(prober_.write_check_calls[0].size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Published(Name(i)), i % 2 == 0 ? "node1" : "node2");
}

// The pipelined reads keep the same bound on a flood of znodes under nodes/ as the round's own
// (learn_policy.h, SelectObservations): the list, then 8 + 16 of the 100 forged observations; the
// configured nodes' observations are cached and unchanged.
TEST_F(OrchestratorBatchTest, PipelinedReadsOfAFloodUnderNodesAreBounded) {
  auto orch = Make(1, 64, /*record=*/true);
  Settle(*orch);
  Observe(Name(0), "node1");
  Observe(Name(0), "node2");
  Settle(*orch);
  ASSERT_NE(recording_, nullptr);
  ASSERT_EQ(Published(Name(0)), "node1");
  for (int k = 0; k < 100; ++k) Observe(Name(0), "a" + std::to_string(100 + k));
  server_->DispatchAllPending();
  recording_->Reset();
  orch->RunDue();
  const auto counts = recording_->counts();
  EXPECT_EQ(counts.async_reads, 1 + 8 + kObservationsBeyondLearned);
  EXPECT_EQ(ClusterReads(counts), 0) << Paths(counts);
  EXPECT_EQ(Published(Name(0)), "node1");
  EXPECT_NE(log_.str().find("observations_over_limit cluster=" + Name(0)), std::string::npos)
      << log_.str();
}

// A kept connection the server closed (the prober's connection-lost handler calls
// NodeConnectionLost): every cluster with a node at that endpoint is verified in the next pass,
// without waiting for its periodic verification; the others are not. c3's primary dies and nothing
// else tells the orchestrator: its voucher goes in that pass, not at the next verification.
TEST_F(OrchestratorBatchTest, AClosedConnectionVerifiesItsClustersAtOnce) {
  auto orch = Make(6, 64);
  Settle(*orch);
  ASSERT_EQ(Published("c3"), "node2");
  const std::string master = model::ClusterPaths("/pgherald", "c3").Master();
  ASSERT_FALSE(server_->PeekChildren(master).empty()) << "c3 is not vouched for";
  prober_.nodes[HostOf(3, 2) + ":5432"].up = false;
  prober_.probe_calls.clear();
  orch->RunDue();
  ASSERT_TRUE(prober_.probe_calls.empty()) << "a cluster was due: the test proves nothing";
  ASSERT_FALSE(server_->PeekChildren(master).empty());

  orch->NodeConnectionLost(HostOf(3, 2), 5432);
  orch->RunDue();
  ASSERT_EQ(prober_.probe_calls.size(), 1u) << log_.str();
  ASSERT_EQ(prober_.probe_calls[0].size(), 2u);
  for (const NodeTarget& t : prober_.probe_calls[0]) EXPECT_EQ(ClusterOf(t), 3);
  EXPECT_TRUE(server_->PeekChildren(master).empty()) << "the dead primary is still vouched for";
  EXPECT_NE(log_.str().find("node_connection_closed host=" + HostOf(3, 2) +
                            " port=5432 clusters_woken=1"),
            std::string::npos)
      << log_.str();

  // An endpoint no cluster has wakes none.
  prober_.probe_calls.clear();
  orch->NodeConnectionLost("192.0.2.1", 5432);
  orch->RunDue();
  EXPECT_TRUE(prober_.probe_calls.empty());
}

// A cluster a reload adds (SIGHUP: ReplaceClusters) runs in the next pass, without waiting for a
// verification to come due, although this instance does not own it yet.
TEST_F(OrchestratorBatchTest, AClusterAddedByAReloadRunsInTheNextPass) {
  auto orch = Make(4, 64);
  Settle(*orch);
  ASSERT_EQ(Published("c3"), "node2");
  orch->ReplaceClusters(Specs(5));
  prober_.probe_calls.clear();
  orch->RunDue();  // the clock has not moved: nothing else is due
  bool probed = false;
  for (const auto& call : prober_.probe_calls) {
    for (const NodeTarget& t : call) probed = probed || ClusterOf(t) == 4;
  }
  EXPECT_TRUE(probed) << log_.str();
  EXPECT_EQ(Published("c4"), "node1");
}

// With two members, a closed connection wakes only the clusters this member owns: the other
// member's prober sees the same close and verifies its own.
TEST_F(OrchestratorBatchTest, AClosedConnectionWakesOnlyTheClustersThisMemberOwns) {
  auto a = Make(8, 64, false, "orch-a", "g1");
  auto b = Make(8, 64, false, "orch-b", "g2");
  for (int i = 0; i < 4; ++i) {
    Settle(*a);
    Settle(*b);
  }
  const std::set<std::string> owned_by_a = a->owned_clusters();
  const std::set<std::string> owned_by_b = b->owned_clusters();
  ASSERT_FALSE(owned_by_a.empty());
  ASSERT_FALSE(owned_by_b.empty());
  std::string theirs;
  for (int i = 0; i < 8 && theirs.empty(); ++i) {
    if (owned_by_b.count(Name(i)) != 0 && owned_by_a.count(Name(i)) == 0) theirs = Name(i);
  }
  ASSERT_FALSE(theirs.empty());
  const int index = std::stoi(theirs.substr(1));
  prober_.probe_calls.clear();
  a->NodeConnectionLost(HostOf(index, 1), 5432);
  a->RunDue();
  for (const auto& call : prober_.probe_calls) {
    for (const NodeTarget& t : call) EXPECT_NE(ClusterOf(t), index) << theirs << " is orch-b's";
  }
  EXPECT_NE(log_.str().find("node_connection_closed host=" + HostOf(index, 1) +
                            " port=5432 clusters_woken=0"),
            std::string::npos)
      << log_.str();
}

// Connections kept for a takeover: of two members each warms the nodes of exactly the clusters
// the other owns (it is their successor) and never its own; when a third member joins, a member
// closes the connections of the clusters it is no longer next in line for; when the owner of a
// cluster crashes, its successor takes it over and probes the nodes it had warmed.
TEST_F(OrchestratorBatchTest, AMemberKeepsConnectionsToTheClustersItWouldTakeOver) {
  const int n = 24;
  HostProber prober_b, prober_c;
  auto a = Make(n, 64, false, "orch-a", "g1");
  auto b = Make(n, 64, false, "orch-b", "g2", &prober_b);
  Passes({a.get(), b.get()}, 6);
  // While b joined, it warmed the clusters the hash picked it for until a handed them over: what
  // it keeps warm once ownership has settled is what counts.
  prober_.warm_calls.clear();
  prober_b.warm_calls.clear();
  Passes({a.get(), b.get()}, 6);
  const auto indices = [](const std::set<std::string>& names) {
    std::set<int> out;
    for (const std::string& c : names) out.insert(std::stoi(c.substr(1)));
    return out;
  };
  const std::set<int> owned_by_a = indices(a->owned_clusters());
  const std::set<int> owned_by_b = indices(b->owned_clusters());
  ASSERT_EQ(owned_by_a.size() + owned_by_b.size(), static_cast<std::size_t>(n));
  ASSERT_FALSE(owned_by_a.empty());
  ASSERT_FALSE(owned_by_b.empty());
  EXPECT_EQ(ClustersIn(prober_b.warm_calls), owned_by_a);
  EXPECT_EQ(ClustersIn(prober_.warm_calls), owned_by_b);
  EXPECT_EQ(b->successor_clusters(), owned_by_a.size());
  EXPECT_TRUE(prober_b.forget_calls.empty());

  // A third member: b keeps the connections of the clusters it still owns or would take over, and
  // closes the others'.
  auto c = Make(n, 64, false, "orch-c", "g3", &prober_c);
  Passes({a.get(), b.get(), c.get()}, 6);
  prober_b.warm_calls.clear();
  Passes({a.get(), b.get(), c.get()}, 6);
  const std::vector<std::string> members = {"g1", "g2", "g3"};
  std::set<int> next_for_b, neither_for_b;
  for (int i = 0; i < n; ++i) {
    const std::string picked = PickOwner(Name(i), members);
    const std::string successor = PickSuccessor(Name(i), members);
    if (picked == "g2") continue;
    (successor == "g2" ? next_for_b : neither_for_b).insert(i);
  }
  ASSERT_FALSE(next_for_b.empty());
  ASSERT_FALSE(neither_for_b.empty());
  EXPECT_EQ(ClustersIn(prober_b.warm_calls), next_for_b);
  EXPECT_EQ(ClustersIn(prober_b.forget_calls), neither_for_b);

  // a crashes: b owns the clusters it was next in line for and probes their nodes.
  std::set<int> a_to_b;
  for (int i : indices(a->owned_clusters())) {
    if (PickOwner(Name(i), {"g2", "g3"}) == "g2") a_to_b.insert(i);
  }
  ASSERT_FALSE(a_to_b.empty());
  for (int i : a_to_b) EXPECT_EQ(next_for_b.count(i), 1u) << Name(i) << " was not warmed by b";
  ASSERT_TRUE(server_->ExpireSession(a->session()->session_id()).ok());
  prober_b.probe_calls.clear();
  Passes({b.get(), c.get()}, 6);
  const std::set<int> now_b = indices(b->owned_clusters());
  const std::set<int> probed = ClustersIn(prober_b.probe_calls);
  for (int i : a_to_b) {
    EXPECT_EQ(now_b.count(i), 1u) << Name(i);
    EXPECT_EQ(probed.count(i), 1u) << Name(i);
  }
}

// A takeover's first round finds its ownership queue, master znode, node list, observations,
// control and switchover records, identity and events watch read together: the member the hash picks once the
// owner is gone prefetches the clusters it is about to own, in the same pass in which it queues for
// them (before, each was read synchronously, one after another).
TEST_F(OrchestratorBatchTest, ATakeoversReadsAreInFlightTogether) {
  auto a = Make(8, 64, false, "orch-a", "g1");
  auto b = Make(8, 64, /*record=*/true, "orch-b", "g2");
  Passes({a.get(), b.get()}, 1);
  for (int k = 0; k < 8; ++k) {  // the clusters' znodes are set up: the pollers publish
    Observe(Name(k), "node1");
    Observe(Name(k), "node2");
  }
  Passes({a.get(), b.get()}, 4);
  const std::set<std::string> taken = a->owned_clusters();
  ASSERT_FALSE(taken.empty());
  for (const std::string& c : taken) ASSERT_FALSE(Published(c).empty()) << c;
  ASSERT_NE(recording_, nullptr);
  ASSERT_TRUE(server_->ExpireSession(a->session()->session_id()).ok());
  server_->DispatchAllPending();
  recording_->Reset();
  b->RunDue();
  const auto counts = recording_->counts();
  for (const std::string& c : taken) {
    ASSERT_EQ(b->owned_clusters().count(c), 1u) << c << " not taken over: " << log_.str();
    const model::ClusterPaths paths("/pgherald", c);
    for (const std::string& path : {paths.Nodes(), paths.Node("node1"), paths.Node("node2"),
                                    paths.Control(), paths.Switchover(), paths.Identity(),
                                    paths.Events(), paths.Owners()}) {
      EXPECT_EQ(counts.sync_reads.count(path), 0u) << path << " read synchronously: " << Paths(counts);
    }
    // The master znode: once, by the creation of the new owner's voucher (its children), not by
    // the round's reads (the record and the children, two more).
    const auto master = counts.sync_reads.find(paths.Master());
    EXPECT_LE(master == counts.sync_reads.end() ? 0 : master->second, 1) << Paths(counts);
    // The record has no voucher bound to it any more (the crashed owner's went with its session):
    // the history that backs it was read with the rest, and the round only checks that it has
    // not changed since (history/'s pzxid).
    const auto history = counts.sync_reads.find(paths.History());
    EXPECT_LE(history == counts.sync_reads.end() ? 0 : history->second, 1) << Paths(counts);
    for (const auto& [path, k] : counts.sync_reads) {
      EXPECT_EQ(path.rfind(paths.History() + "/", 0), std::string::npos)
          << path << " read synchronously: " << Paths(counts);
    }
    // The cluster was set up by its first owner: the new one's set-up (a create per path
    // component) is skipped once the reads found master, nodes/ and history/.
    for (const std::string& path : {paths.Nodes(), paths.History(), paths.Master(),
                                    std::string("/pgherald")}) {
      EXPECT_EQ(counts.creates.count(path), 0u) << path << " created again";
    }
    // The new owner's candidate is created with the batch's others (an asynchronous multi).
    EXPECT_EQ(counts.creates.count(paths.OwnerPrefix("g2")), 0u) << "candidate created alone";
  }
  // Per cluster: master, vouchers, node list, two observations, control, switchover, identity,
  // events, ownership queue.
  EXPECT_GE(counts.async_reads, static_cast<int>(10 * taken.size()));
}

// A takeover does not wait behind routine rounds: the ownership queue of a cluster this member is
// next in line for wakes it urgently, so when the owner crashes while every cluster has just been
// woken by a poller's tick, the survivor's first batch is made of the clusters it takes over.
TEST_F(OrchestratorBatchTest, ATakeoverGoesBeforeRoutineWakes) {
  const int n = 24;
  HostProber prober_b;
  auto a = Make(n, 4, false, "orch-a", "g1");
  auto b = Make(n, 4, false, "orch-b", "g2", &prober_b);
  Passes({a.get(), b.get()}, 1);
  for (int k = 0; k < n; ++k) Observe(Name(k), "node1");
  Passes({a.get(), b.get()}, 7);
  std::set<int> taken;
  for (const std::string& c : a->owned_clusters()) taken.insert(std::stoi(c.substr(1)));
  ASSERT_GE(taken.size(), 4u);
  ASSERT_GE(b->owned_clusters().size(), 4u);
  for (int k = 0; k < n; ++k) Reobserve(Name(k), "node1", 2);  // every cluster woken
  ASSERT_TRUE(server_->ExpireSession(a->session()->session_id()).ok());
  server_->DispatchAllPending();
  prober_b.probe_calls.clear();
  b->RunDue();
  ASSERT_FALSE(prober_b.probe_calls.empty());
  const std::set<int> first = ClustersIn({prober_b.probe_calls.front()});
  EXPECT_EQ(first.size(), 4u);
  for (int i : first) EXPECT_EQ(taken.count(i), 1u) << Name(i) << " went before a cluster taken over";
}

// successor_connections: false warms nothing.
TEST_F(OrchestratorBatchTest, SuccessorConnectionsCanBeTurnedOff) {
  HostProber prober_b;
  auto a = Make(8, 64, false, "orch-a", "g1", nullptr, false);
  auto b = Make(8, 64, false, "orch-b", "g2", &prober_b, false);
  Passes({a.get(), b.get()}, 4);
  ASSERT_FALSE(a->owned_clusters().empty());
  ASSERT_FALSE(b->owned_clusters().empty());
  EXPECT_TRUE(prober_.warm_calls.empty());
  EXPECT_TRUE(prober_b.warm_calls.empty());
}

}  // namespace
}  // namespace pgherald::orchestrator
