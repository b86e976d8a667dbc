// The orchestrator's scheduler (orchestrator/orchestrator_schedule.cc) on FakeZk with a scripted
// prober and a ManualClock: a watch runs its own cluster only; a woken cluster runs before the
// clusters that are merely due, even when it is woken during another cluster's round; periodic
// verification spreads over the interval; a round interrupted by a session event runs again at
// once; an unsettled publish is retried a tick later; the lag gauge shows an overloaded loop.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/model/zk_paths.h"
#include "orchestrator/metrics.h"
#include "orchestrator/orchestrator.h"
#include "tests/support/fake_zk.h"
#include "tests/support/manual_clock.h"
#include "tests/support/primary_standby_prober.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;

// The clusters whose rounds reached a decision, in order.
class Recorder final : public RoundObserver {
 public:
  void OnDecision(const std::string& cluster, const DecisionInput&, const Verdict&) override {
    ran.push_back(cluster);
  }
  void AfterRound(Orchestrator&) override {}
  void OnPayloadProblem(const std::string& cluster, const std::string&) override {
    if (on_problem) on_problem(cluster);
  }
  std::vector<std::string> Take() { return std::exchange(ran, {}); }
  std::vector<std::string> ran;
  std::function<void(const std::string&)> on_problem;  // during the round's reads
};

std::string Name(int i) { return "c" + std::to_string(i); }

std::size_t Count(const std::string& text, const std::string& word) {
  std::size_t n = 0;
  for (std::size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

class OrchestratorScheduleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::LoggingConfig lc;
    lc.level = config::LogLevel::kInfo;
    log::Init(lc, std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
  }
  void TearDown() override { log::Init(config::LoggingConfig{}); }

  // `batch_max` 1: one cluster's round after another (as before batches).
  std::unique_ptr<Orchestrator> Make(int clusters, milliseconds verify_interval = milliseconds(1000),
                                     int batch_max = 64) {
    OrchestratorOptions o;
    o.id = "orch-a";
    o.batch_max = batch_max;
    o.tick = milliseconds(1000);
    o.verify_interval = verify_interval;
    o.voucher_reaffirm = verify_interval;
    o.policy.confirmation_window = milliseconds(0);
    std::vector<ClusterSpec> specs;
    for (int i = 0; i < clusters; ++i) {
      ClusterSpec spec;
      spec.name = Name(i);
      for (const char* n : {"node1", "node2"}) spec.nodes.push_back(NodeTarget{n, spec.defaults});
      specs.push_back(spec);
    }
    SessionFactory factory = zk::ManualDispatchSessions(server_, milliseconds(6000));
    auto orch = std::make_unique<Orchestrator>(o, specs, factory, &prober_, &clock_,
                                               std::vector<publishers::Publisher*>{}, "g1");
    orch->set_observer(&recorder_);
    return orch;
  }
  // Passes at the current time, watches delivered, until one runs no cluster: the startup sweep
  // and the rounds that the orchestrator's own writes wake. Returns the clusters that ran.
  std::vector<std::string> Settle(Orchestrator& orch) {
    std::vector<std::string> all;
    for (int i = 0; i < 20; ++i) {
      server_->DispatchAllPending();
      orch.RunDue();
      std::vector<std::string> ran = recorder_.Take();
      if (ran.empty()) return all;
      all.insert(all.end(), ran.begin(), ran.end());
    }
    ADD_FAILURE() << "the loop never settled";
    return all;
  }
  // With every cluster due, one pass during whose first write check the session is interrupted
  // (disconnect, reconnect); returns the clusters that decided in it. Logs at debug from here on
  // (vouch_skipped).
  std::vector<std::string> PassInterruptedAtFirstWriteCheck(Orchestrator& orch) {
    Settle(orch);
    EXPECT_TRUE(orch.leading()) << log_.str();
    config::LoggingConfig lc;
    lc.level = config::LogLevel::kDebug;
    log::Init(lc, std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    clock_.Advance(milliseconds(1000));  // all due
    auto* session = dynamic_cast<zk::FakeZk*>(orch.session());
    if (session == nullptr) {
      ADD_FAILURE() << "no FakeZk session";
      return {};
    }
    bool interrupted = false;
    prober_.during_write_check = [&] {
      if (interrupted || recorder_.ran.size() != 0) return;  // the pass's first batch
      interrupted = true;
      session->Disconnect();
      session->Reconnect();
      session->DispatchPending();  // the state events reach the orchestrator
    };
    orch.RunDue();
    prober_.during_write_check = nullptr;
    EXPECT_TRUE(interrupted);
    return recorder_.Take();
  }
  // Constant wakes (c0 and c1 woken again during each of the first `probe_calls` probe calls of
  // a pass with every cluster due, as pollers whose observations change every tick wake their
  // clusters): the other clusters that decided while the wakes went on (batches of three).
  std::set<std::string> ConstantWakes(bool urgent, int probe_calls) {
    auto orch = Make(10, milliseconds(1000), 3);
    Settle(*orch);
    EXPECT_TRUE(orch->leading()) << log_.str();
    clock_.Advance(milliseconds(1000));  // every cluster due
    int calls = 0;
    std::set<std::string> others_while_woken;
    prober_.during_probe = [&] {
      if (++calls > probe_calls) return;  // then the wakes stop, and the pass ends
      for (const std::string& c : recorder_.ran) {
        if (c != "c0" && c != "c1") others_while_woken.insert(c);
      }
      orch->WakeCluster("c0", urgent);
      orch->WakeCluster("c1", urgent);
    };
    orch->RunDue();
    prober_.during_probe = nullptr;
    return others_while_woken;
  }
  // A poller publishes an observation of a new node in `cluster` (its children watch fires).
  void Observe(const std::string& cluster, const std::string& node) {
    if (poller_ == nullptr) {
      zk::FakeZkOptions zo;
      zo.dispatch = zk::DispatchMode::kManual;
      poller_ = server_->NewSession(zo);
    }
    auto made = poller_->Create(model::ClusterPaths("/pgherald", cluster).Node(node),
                                ObservationOf(node, 1).ToJson(),
                                zk::CreateMode::kEphemeral);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
  }

  std::ostringstream log_;
  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  std::unique_ptr<zk::FakeZk> poller_;
  PrimaryStandbyProber prober_;
  Recorder recorder_;
};

// The first pass runs every cluster; after that a watch of cluster c3 runs c3 and nothing else
// (the loop before the scheduler ran all ten on every watch).
TEST_F(OrchestratorScheduleTest, AWatchRunsItsClusterOnly) {
  auto orch = Make(10);
  const std::vector<std::string> startup = Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  EXPECT_EQ(std::set<std::string>(startup.begin(), startup.end()).size(), 10u);

  auto rounds = orch->cluster_rounds();  // the startup's own publishes woke each cluster once
  Observe("c3", "node3");
  server_->DispatchAllPending();
  orch->RunDue();
  EXPECT_EQ(recorder_.Take(), std::vector<std::string>{"c3"});
  ++rounds[{"c3", "watch"}];
  EXPECT_EQ(orch->cluster_rounds(), rounds);
  // Nothing else is due yet.
  EXPECT_TRUE(Settle(*orch).empty());
}

// Every cluster is due (a whole interval passed) and c7's watch fires: c7 runs first. While the
// first due cluster's round probes, c9's watch fires: c9 runs next, before the other due ones.
// (Batches of one; BatchedWokenClusterWaitsOnlyForTheBatchInProgress is the batched case.)
TEST_F(OrchestratorScheduleTest, WokenClustersRunBeforeDueOnesEvenMidPass) {
  auto orch = Make(10, milliseconds(1000), 1);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  clock_.Advance(milliseconds(1000));
  Observe("c7", "node3");
  server_->DispatchAllPending();
  bool fired = false;
  prober_.during_probe = [&] {
    if (fired || recorder_.ran != std::vector<std::string>{"c7"}) return;
    fired = true;  // during the round after c7's: the first due cluster's
    Observe("c9", "node3");
    server_->DispatchAllPending();
  };
  orch->RunDue();
  prober_.during_probe = nullptr;
  const std::vector<std::string> ran = recorder_.Take();
  ASSERT_TRUE(fired);
  ASSERT_GE(ran.size(), 3u);
  EXPECT_EQ(ran[0], "c7");
  EXPECT_NE(ran[1], "c9");  // the due cluster whose round was in progress
  EXPECT_EQ(ran[2], "c9") << ::testing::PrintToString(ran);
  // Every due cluster ran too, each once.
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), 10u)
      << ::testing::PrintToString(ran);
  EXPECT_EQ(ran.size(), 10u) << ::testing::PrintToString(ran);
}

// Batches of three (a routine share of one): every cluster is due and c7's watch fires: c7 runs
// first, with one due cluster (c1). While the next batch (three due clusters) probes, c9's watch
// fires: c9 runs right after that batch, before the other due ones. Every cluster runs once.
TEST_F(OrchestratorScheduleTest, BatchedWokenClusterWaitsOnlyForTheBatchInProgress) {
  auto orch = Make(10, milliseconds(1000), 3);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  clock_.Advance(milliseconds(1000));
  // Observation refreshes (ordinary wakes: a new observation would be an urgent one).
  orch->WakeCluster("c7");
  int calls = 0;
  prober_.during_probe = [&] {
    if (++calls != 2) return;  // during the second batch's probe
    orch->WakeCluster("c9");
  };
  orch->RunDue();
  prober_.during_probe = nullptr;
  const std::vector<std::string> ran = recorder_.Take();
  ASSERT_GE(calls, 2);
  ASSERT_EQ(ran.size(), 10u) << ::testing::PrintToString(ran);
  EXPECT_EQ(ran[0], "c7") << "woken rounds finish first";
  EXPECT_EQ(ran[1], "c1") << "the routine share of c7's batch";
  const std::vector<std::string> in_progress(ran.begin() + 2, ran.begin() + 5);
  EXPECT_EQ(in_progress, (std::vector<std::string>{"c2", "c3", "c4"}))
      << ::testing::PrintToString(ran);
  EXPECT_EQ(ran[5], "c9") << ::testing::PrintToString(ran);
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), 10u)
      << ::testing::PrintToString(ran);
}

// A cluster woken while a batch of due clusters is being prepared joins that batch in place of
// the clusters not prepared yet (they go back to the queue) and finishes first: c9 is woken
// during c1's reads (the first due cluster); the batch becomes {c1, c9}, c9 decides first, and
// c2 and c3 run in the next batch. Every cluster runs once.
TEST_F(OrchestratorScheduleTest, AClusterWokenDuringPrepareJoinsTheBatch) {
  auto orch = Make(10, milliseconds(1000), 3);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  // A leftover persistent znode under c1's nodes: every c1 round reports it while it reads.
  auto op = server_->NewSession(zk::FakeZkOptions{});
  ASSERT_TRUE(op->Create(model::ClusterPaths("/pgherald", "c1").Node("node9"), "{}",
                         zk::CreateMode::kPersistent)
                  .ok());
  Settle(*orch);
  clock_.Advance(milliseconds(1000));  // every cluster due, c1 first
  bool fired = false;
  recorder_.on_problem = [&](const std::string& cluster) {
    if (fired || cluster != "c1") return;
    fired = true;
    orch->WakeCluster("c9");
  };
  int probe_calls = 0;
  prober_.during_probe = [&] { ++probe_calls; };
  const auto rounds_before = orch->cluster_rounds();
  orch->RunDue();
  recorder_.on_problem = nullptr;
  prober_.during_probe = nullptr;
  const std::vector<std::string> ran = recorder_.Take();
  ASSERT_TRUE(fired);
  ASSERT_EQ(ran.size(), 10u) << ::testing::PrintToString(ran);
  EXPECT_EQ(ran[0], "c9") << ::testing::PrintToString(ran);
  EXPECT_EQ(ran[1], "c1") << ::testing::PrintToString(ran);
  EXPECT_EQ(ran[2], "c2") << ::testing::PrintToString(ran);
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), 10u)
      << ::testing::PrintToString(ran);
  EXPECT_EQ(probe_calls, 4) << "{c1,c9} {c2,c3,c4} {c5,c6,c7} {c8,c0}";
  auto rounds = rounds_before;
  ++rounds[{"c9", "watch"}];  // and not again for its due verification: the watch's round was one
  for (const char* c : {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"}) {
    ++rounds[{c, "verify"}];
  }
  EXPECT_EQ(orch->cluster_rounds(), rounds);
}

// Ten clusters at a 1 s cadence: each 100 ms step runs exactly one cluster, and every cluster runs
// once per interval (the loop before ran all ten in one burst every tick).
TEST_F(OrchestratorScheduleTest, VerificationSpreadsEvenlyOverTheInterval) {
  auto orch = Make(10);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  for (int cycle = 0; cycle < 3; ++cycle) {
    std::set<std::string> seen;
    for (int step = 0; step < 10; ++step) {
      clock_.Advance(milliseconds(100));
      const std::vector<std::string> ran = Settle(*orch);
      ASSERT_EQ(ran.size(), 1u) << "cycle " << cycle << " step " << step << ": "
                                << ::testing::PrintToString(ran);
      seen.insert(ran[0]);
    }
    EXPECT_EQ(seen.size(), 10u) << "cycle " << cycle;
  }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(orch->cluster_rounds().at({Name(i), "verify"}), 3u);
  EXPECT_EQ(orch->verification_lag(), milliseconds(0));
}

// A session interruption (disconnect, reconnect) during c2's write check: c2's round acts on
// nothing and c2 runs again first in the next pass, then the sweep the session event asks for.
// (Batches of one; BatchInterruptedBySessionEventRunsAgainAtOnce is the batched case.)
TEST_F(OrchestratorScheduleTest, ARoundInterruptedBySessionEventRunsAgainAtOnce) {
  auto orch = Make(4, milliseconds(1000), 1);
  const std::vector<std::string> first = PassInterruptedAtFirstWriteCheck(*orch);
  ASSERT_EQ(first.size(), 1u) << "the pass goes back to the session step after the event: "
                              << ::testing::PrintToString(first);
  EXPECT_NE(log_.str().find("vouch_skipped"), std::string::npos) << log_.str();
  const std::uint64_t woken_before = orch->cluster_rounds().at({first[0], "watch"});
  server_->DispatchAllPending();
  orch->RunDue();
  const std::vector<std::string> again = recorder_.Take();
  ASSERT_EQ(again.size(), 4u) << ::testing::PrintToString(again);
  EXPECT_EQ(again[0], first[0]) << "the interrupted cluster runs first";
  EXPECT_EQ(orch->cluster_rounds().at({first[0], "watch"}), woken_before + 1);
}

// A repmgr event a poller publishes wakes its cluster ahead of the clusters woken earlier by mere
// observation refreshes (at 1,000 clusters every observation changes every tick, and a failover's
// cluster waited its turn behind them for 7-24 s). Batches of one. First the cluster's events
// znode does not exist yet (the watch is on its existence), then it does (on its children).
TEST_F(OrchestratorScheduleTest, ARepmgrEventWakesItsClusterAheadOfObservationRefreshes) {
  auto orch = Make(10, milliseconds(1000), 1);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  for (int i = 0; i < 10; ++i) Observe(Name(i), "node3");
  server_->DispatchAllPending();
  Settle(*orch);
  const model::ClusterPaths c9("/pgherald", "c9");
  std::uint64_t seq = 1;
  for (const char* event : {"e-1-node2-standby_promote", "e-2-node1-node_rejoin"}) {
    ++seq;
    for (int i = 0; i < 9; ++i) {  // c0..c8: refreshed observations, woken in that order
      auto set = poller_->Set(model::ClusterPaths("/pgherald", Name(i)).Node("node3"),
                              ObservationOf("node3", seq).ToJson());
      ASSERT_TRUE(set.ok()) << set.status().ToString();
    }
    server_->DispatchAllPending();
    if (seq == 2) {  // the poller's publisher creates the events znode with the first event
      ASSERT_TRUE(poller_->Create(c9.Events(), "", zk::CreateMode::kPersistent).ok());
    }
    ASSERT_TRUE(poller_->Create(c9.Event(event), "{}", zk::CreateMode::kPersistent).ok());
    server_->DispatchAllPending();
    orch->RunDue();
    const std::vector<std::string> ran = recorder_.Take();
    ASSERT_FALSE(ran.empty()) << event;
    EXPECT_EQ(ran[0], "c9") << event << ": " << ::testing::PrintToString(ran);
    EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), 10u)
        << event << ": " << ::testing::PrintToString(ran);
    Settle(*orch);
  }
}

// An urgent wake runs in a batch of its own. Batches of four, c0..c8 woken by refreshes: c9's
// urgent wake before the pass makes the first batch {c9} alone. In the next pass c1's reads (the
// first of the batch {c1, c2, c3, c4}) see c8 woken urgently: the batch becomes {c1, c8}, c8
// decides first, and c2, c3 and c4 run next, ahead of the other woken clusters.
TEST_F(OrchestratorScheduleTest, AnUrgentWakeRunsInABatchOfItsOwn) {
  auto orch = Make(10, milliseconds(1000), 4);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  std::vector<std::vector<std::string>> batches;  // the clusters that decided before each probe call
  prober_.during_probe = [&] { batches.push_back(recorder_.ran); };
  for (int i = 0; i < 9; ++i) orch->WakeCluster(Name(i));
  orch->WakeCluster("c9", /*urgent=*/true);
  orch->RunDue();
  std::vector<std::string> ran = recorder_.Take();
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[1], std::vector<std::string>{"c9"}) << ::testing::PrintToString(ran);
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), 10u) << ::testing::PrintToString(ran);
  Settle(*orch);

  // A leftover persistent znode under c1's nodes: every c1 round reports it while it reads.
  auto op = server_->NewSession(zk::FakeZkOptions{});
  ASSERT_TRUE(op->Create(model::ClusterPaths("/pgherald", "c1").Node("node9"), "{}",
                         zk::CreateMode::kPersistent)
                  .ok());
  Settle(*orch);
  batches.clear();
  bool fired = false;
  recorder_.on_problem = [&](const std::string& cluster) {
    if (fired || cluster != "c1") return;
    fired = true;
    orch->WakeCluster("c8", /*urgent=*/true);
  };
  for (int i = 1; i < 8; ++i) orch->WakeCluster(Name(i));
  orch->RunDue();
  recorder_.on_problem = nullptr;
  prober_.during_probe = nullptr;
  ran = recorder_.Take();
  ASSERT_TRUE(fired);
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[1], (std::vector<std::string>{"c8", "c1"})) << ::testing::PrintToString(ran);
  ASSERT_GE(ran.size(), 5u) << ::testing::PrintToString(ran);
  EXPECT_EQ(std::vector<std::string>(ran.begin() + 2, ran.begin() + 5),
            (std::vector<std::string>{"c2", "c3", "c4"}))
      << ::testing::PrintToString(ran);
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), 8u) << ::testing::PrintToString(ran);
}

// Ordinary wakes: each batch keeps room for its routine share, so the eight others run.
TEST_F(OrchestratorScheduleTest, ConstantWakesDoNotStarveDueClusters) {
  EXPECT_EQ(ConstantWakes(/*urgent=*/false, 12).size(), 8u) << ::testing::PrintToString(recorder_.ran);
}

// Urgent wakes (a poller publishing repmgr events in a loop): an urgent batch is followed by an
// ordinary one, so the eight others still run.
TEST_F(OrchestratorScheduleTest, ConstantUrgentWakesDoNotStarveDueClusters) {
  EXPECT_EQ(ConstantWakes(/*urgent=*/true, 24).size(), 8u) << ::testing::PrintToString(recorder_.ran);
}

// Batches of two: a session interruption (disconnect, reconnect) during the first due batch's
// write check: both rounds of that batch act on nothing, the pass goes back to the session step,
// and both run again as woken clusters in the next pass, each first in its batch (whose other
// place is the routine share: the sweep the event asks for).
TEST_F(OrchestratorScheduleTest, BatchInterruptedBySessionEventRunsAgainAtOnce) {
  auto orch = Make(4, milliseconds(1000), 2);
  const std::vector<std::string> first = PassInterruptedAtFirstWriteCheck(*orch);
  ASSERT_EQ(first.size(), 2u) << "the pass goes back to the session step after the batch: "
                              << ::testing::PrintToString(first);
  EXPECT_EQ(Count(log_.str(), "vouch_skipped"), 2u) << log_.str();
  std::map<std::string, std::uint64_t> woken_before;
  for (const std::string& c : first) {
    const auto it = orch->cluster_rounds().find({c, "watch"});
    woken_before[c] = it == orch->cluster_rounds().end() ? 0 : it->second;
  }
  server_->DispatchAllPending();
  orch->RunDue();
  const std::vector<std::string> again = recorder_.Take();
  ASSERT_EQ(again.size(), 4u) << ::testing::PrintToString(again);
  EXPECT_EQ(again[0], first[0]) << ::testing::PrintToString(again);
  EXPECT_EQ(again[2], first[1]) << ::testing::PrintToString(again);
  for (const std::string& c : first) {
    EXPECT_EQ(orch->cluster_rounds().at({c, "watch"}), woken_before[c] + 1) << c;
  }
}

// A publish whose outcome stays unknown (connection loss on the multi and on every re-read that
// would settle it) leaves the cluster alone; it is retried a tick later, long before its next
// verification (10 s), and the retry publishes.
TEST_F(OrchestratorScheduleTest, AnUnsettledPublishIsRetriedATickLater) {
  auto orch = Make(1, milliseconds(10000));
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  auto* session = dynamic_cast<zk::FakeZk*>(orch->session());
  ASSERT_NE(session, nullptr);
  prober_.promoted = true;  // a later timeline is published at once
  prober_.during_write_check = [&] {
    // The publish's multi, the reconcile right after it, the reconcile of the round it wakes.
    for (int i = 0; i < 3; ++i) session->FailNextCall(StatusCode::kConnectionLoss);
    prober_.during_write_check = nullptr;
  };
  Observe("c0", "node3");  // wakes c0
  Settle(*orch);
  const std::string log = log_.str();
  ASSERT_NE(log.find("publish_outcome_unknown"), std::string::npos) << log;
  EXPECT_NE(log.find("outcome=unknown"), std::string::npos) << log;
  EXPECT_EQ(orch->cluster_rounds().count({"c0", "retry"}), 0u);
  clock_.Advance(milliseconds(999));
  EXPECT_TRUE(Settle(*orch).empty());
  clock_.Advance(milliseconds(1));  // a tick after the round that left it unsettled
  Settle(*orch);
  EXPECT_EQ(orch->cluster_rounds().at({"c0", "retry"}), 1u) << log_.str();
  auto m = server_->Peek(model::ClusterPaths("/pgherald", "c0").Master());
  ASSERT_TRUE(m.has_value());
  auto r = model::MasterRecord::FromJson(m->data);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->node, "node2") << log_.str();
}

// Rounds that take 300 ms each (an overloaded loop: ten clusters due, a 1 s tick): the pass ends
// after a tick's worth of rounds, so the session and election step and the observer still come
// every tick; the next pass goes on with the rest, and the lag shows how late they started.
// (Batches of one; AnOverloadedPassYieldsEveryTickBetweenBatches is the batched case.)
TEST_F(OrchestratorScheduleTest, AnOverloadedPassYieldsEveryTick) {
  auto orch = Make(10, milliseconds(1000), 1);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  clock_.Advance(milliseconds(1000));  // all due
  prober_.during_probe = [&] { clock_.Advance(milliseconds(300)); };
  orch->RunDue();
  EXPECT_EQ(recorder_.Take().size(), 4u);  // 4 x 300 ms >= the tick
  orch->RunDue();
  EXPECT_EQ(recorder_.Take().size(), 4u);
  prober_.during_probe = nullptr;
  EXPECT_GE(orch->verification_lag(), milliseconds(2000));
  orch->RunDue();
  // The last two, and the first ones again: their next due time passed meanwhile.
  EXPECT_GE(recorder_.Take().size(), 2u);
}

// Batches of two whose probes take 300 ms each (ten clusters due, a 1 s tick): the pass ends
// after a tick's worth of batches (4 x 300 ms), so the session and election step and the
// observer still come every tick; the next pass goes on with the rest, and the lag shows how late
// they started.
TEST_F(OrchestratorScheduleTest, AnOverloadedPassYieldsEveryTickBetweenBatches) {
  auto orch = Make(10, milliseconds(1000), 2);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  clock_.Advance(milliseconds(1000));  // all due
  prober_.during_probe = [&] { clock_.Advance(milliseconds(300)); };
  orch->RunDue();
  EXPECT_EQ(recorder_.Take().size(), 8u);  // 4 batches x 300 ms >= the tick
  orch->RunDue();
  EXPECT_EQ(recorder_.Take().size(), 8u);
  prober_.during_probe = nullptr;
  EXPECT_GE(orch->verification_lag(), milliseconds(1000));
  orch->RunDue();
  EXPECT_GE(recorder_.Take().size(), 2u);
}

// The HTTP API's snapshot shows a cluster's active problems as of that cluster's last round, not
// only when its round happens to fall between two snapshots.
TEST_F(OrchestratorScheduleTest, ActiveProblemsLastUntilTheClusterRunsAgain) {
  auto orch = Make(2);
  StatusBoard board("orch-a", "/pgherald", {"c0", "c1"}, 1000);
  orch->set_observer(&board);
  Settle(*orch);
  ASSERT_TRUE(orch->leading()) << log_.str();
  const std::string leftover = model::ClusterPaths("/pgherald", "c0").Node("node9");
  auto op = server_->NewSession(zk::FakeZkOptions{});
  ASSERT_TRUE(op->Create(leftover, "{}", zk::CreateMode::kPersistent).ok());
  Settle(*orch);  // c0's watch: its round reports observation_not_ephemeral
  board.AfterRound(*orch);
  const std::set<std::string> kinds = {"observation_not_ephemeral"};
  EXPECT_EQ(board.Snapshot()->active_problems.at("c0"), kinds);
  clock_.Advance(milliseconds(500));  // c1's verification, not c0's
  Settle(*orch);
  board.AfterRound(*orch);
  ASSERT_EQ(board.Snapshot()->active_problems.count("c0"), 1u);
  EXPECT_EQ(board.Snapshot()->active_problems.at("c0"), kinds);
  ASSERT_TRUE(op->Delete(leftover, -1).ok());
  Settle(*orch);  // c0 runs again: the problem is gone
  board.AfterRound(*orch);
  EXPECT_EQ(board.Snapshot()->active_problems.count("c0"), 0u);
}

// Nothing runs for five intervals: the oldest due verification's wait shows as lag, and the
// metric carries it; passes that catch up bring it back to zero.
TEST_F(OrchestratorScheduleTest, LagShowsDueVerificationsThatDidNotRun) {
  auto orch = Make(10);
  Settle(*orch);
  clock_.Advance(milliseconds(5000));
  EXPECT_GE(orch->verification_lag(), milliseconds(4000));
  ObservabilitySnapshot snap;
  snap.verification_lag_ms = orch->verification_lag().count();
  snap.cluster_rounds = orch->cluster_rounds();
  const std::string text = RenderMetrics(snap, 0);
  EXPECT_NE(text.find("pgherald_orchestrator_verification_lag_seconds{orchestrator=\"\"} 4."),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("pgherald_orchestrator_cluster_rounds_total{cluster=\"c3\",trigger=\"sweep\"} 1"),
            std::string::npos)
      << text;
  const std::vector<std::string> caught_up = Settle(*orch);
  EXPECT_EQ(caught_up.size(), 10u) << "each overdue cluster once, not once per missed interval";
  orch->ResetVerificationLag();
  EXPECT_EQ(orch->verification_lag(), milliseconds(0));
}

}  // namespace
}  // namespace pgherald::orchestrator
