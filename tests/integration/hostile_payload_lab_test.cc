// Untrusted znode content on the real lab (ZooKeeper ensemble, 3-node PostgreSQL 15 + repmgr,
// three `pgherald poller`, two `pgherald orchestrator`, one `pgherald watch` with a file sink):
// a 200 KB payload of nested arrays written into the real `master` znode and into `nodes/`
// znodes (the lab's crash: a recursive dump in an error message overflowed every reader's stack)
// kills no pgherald process, `pgherald status` exits 1 naming the znode, and the route keeps
// pointing at the verified master. Restoring the record brings the cluster back to healthy.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/model/cluster_model.h"
#include "common/model/voucher.h"
#include "tests/integration/observability_lab_util.h"

namespace pgherald::observability_lab {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

std::string MasterPath() { return std::string(kRoot) + "/clusters/" + kCluster + "/master"; }
std::string NodesPath() { return std::string(kRoot) + "/clusters/" + kCluster + "/nodes"; }

std::string NestedArrays(std::size_t bytes) {
  return std::string(bytes / 2, '[') + std::string(bytes / 2, ']');
}

// The verified master per `pgherald status --json`, "" when none.
std::string VerifiedMaster(ObservabilityLab& lab) {
  CommandResult r = lab.Cli({"status", "--cluster", kCluster, "--json"});
  const json j = json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("clusters") || j["clusters"].empty()) return "";
  const json& m = j["clusters"][0]["master"];
  return m.value("verified", false) ? m.value("node", "") : "";
}

// The file sink's current route: node name, "" when unreadable.
std::string RouteNode(const std::string& state_file) {
  const json j = json::parse(ReadFile(state_file), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "";
  return j.value("node", "");
}

TEST(HostilePayloadLab, NestedPayloadsInMasterAndNodesKillNothingAndKeepTheRoute) {
  auto up = ObservabilityLab::Up(2);
  // A server that cannot start is a failure, never a skip.
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  ObservabilityLab& lab = **up;
  auto zk = orchestrator_lab::Reader(lab.lab());
  ASSERT_NE(zk, nullptr);
  const std::string dir = lab.lab().dir();

  // `pgherald watch` with a file sink: the route.
  const std::string state_file = dir + "/hostile-route.json";
  const std::string watch_config = dir + "/hostile-watch.yaml";
  WriteFileMode(watch_config,
                "zookeeper: {connect: '" + lab.lab().zk_connect() + "', root: " + kRoot +
                    ", session_timeout_ms: 6000}\n"
                    "logging: {level: info}\n"
                    "watch:\n  clusters:\n    " +
                    kCluster +
                    ":\n"
                    "      sinks:\n        - type: file\n          path: " +
                    state_file + "\n",
                0600);
  auto watch =
      Process::Start({Bin(), "watch", "--config", watch_config}, dir + "/hostile-watch.log");
  ASSERT_NE(watch, nullptr);

  std::string master;
  ASSERT_TRUE(WaitUntil([&] { return !(master = VerifiedMaster(lab)).empty(); }, seconds(60)))
      << lab.Logs();
  ASSERT_TRUE(WaitUntil([&] { return RouteNode(state_file) == master; }, seconds(30)))
      << ReadFile(state_file) << "\n"
      << watch->LogTail();
  auto original = zk->Get(MasterPath());
  ASSERT_TRUE(original.ok()) << original.status().ToString();

  auto all_alive = [&] {
    bool alive = watch->Running();
    for (int i = 0; i < 2; ++i) alive = alive && lab.orchestrator(i).Running();
    for (int n = 1; n <= 3; ++n) alive = alive && lab.poller(n).Running();
    return alive;
  };
  auto orchestrator_logged = [&](const std::string& event) {
    return WaitUntil(
        [&] {
          return (lab.orchestrator(0).Log() + lab.orchestrator(1).Log()).find(event) !=
                 std::string::npos;
        },
        seconds(30));
  };

  // The hostile writes, nodes/ first (an orchestrator round stops at an unreadable master record
  // and would not reach them): a live poller's ephemeral znode (its poller rewrites it within a
  // heartbeat) and a persistent znode under nodes/ that nobody rewrites.
  const std::string nested = NestedArrays(200 * 1024);
  const std::string victim = master == "node1" ? "node2" : "node1";
  ASSERT_TRUE(zk->Create(NodesPath() + "/node9", nested, zk::CreateMode::kPersistent).ok());
  // The victim's poller rewrites its znode within a heartbeat, possibly before the leader's next
  // round reads it: write it again until the leader has seen one.
  EXPECT_TRUE(WaitUntil(
      [&] {
        (void)zk->Set(NodesPath() + "/" + victim, nested);
        return (lab.orchestrator(0).Log() + lab.orchestrator(1).Log()).find("observation_corrupt") !=
               std::string::npos;
      },
      seconds(30)))
      << lab.Logs();
  // Then the master record itself, with both orchestrators stopped (SIGSTOP) so that what status
  // and the watch show of a corrupt record is seen before the leader repairs it (it rewrites the
  // record from its own verification within a round of resuming).
  for (int i = 0; i < 2; ++i) lab.orchestrator(i).Send(SIGSTOP);
  // Whatever fails below, the orchestrators run again (a stopped process would hold up teardown).
  struct Resume {
    ObservabilityLab& lab;
    ~Resume() {
      for (int i = 0; i < 2; ++i) lab.orchestrator(i).Send(SIGCONT);
    }
  } resume{lab};
  ASSERT_TRUE(zk->Set(MasterPath(), nested).ok());
  // The watch (the client library inside) ignores it with one clean line and keeps its state.
  EXPECT_TRUE(
      WaitUntil([&] { return watch->Log().find("corrupt_payload_ignored") != std::string::npos; },
                seconds(30)))
      << watch->LogTail();
  EXPECT_NE(watch->Log().find("exceeds the limit of 65536 bytes"), std::string::npos)
      << watch->LogTail();
  CommandResult text = lab.Cli({"status", "--cluster", kCluster});
  EXPECT_EQ(text.exit_code, 1) << text.out << text.err;  // unhealthy, not a crash (-1) or 3
  EXPECT_NE(text.out.find(MasterPath()), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("exceeds the limit of 65536 bytes"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(NodesPath() + "/node9 is a persistent znode"), std::string::npos)
      << text.out;
  EXPECT_LT(text.out.size(), 20000u) << "a payload was echoed";
  CommandResult js = lab.Cli({"status", "--cluster", kCluster, "--json"});
  EXPECT_EQ(js.exit_code, 1) << js.err;
  EXPECT_FALSE(json::parse(js.out, nullptr, false).is_discarded()) << js.out;
  CommandResult history = lab.Cli({"history", "--cluster", kCluster});
  EXPECT_GE(history.exit_code, 0) << history.err;
  for (int i = 0; i < 2; ++i) lab.orchestrator(i).Send(SIGCONT);
  EXPECT_TRUE(orchestrator_logged("master_unreadable")) << lab.Logs();
  // The leader repairs: a readable record again, vouched by a voucher bound to it.
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto got = zk->Get(MasterPath());
        if (!got.ok()) return false;
        auto record = model::MasterRecord::FromJson(got->data);
        if (!record.ok()) return false;
        auto children = zk->GetChildren(MasterPath());
        return children.ok() && !model::BoundVouchers(*children, *record, got->data).empty();
      },
      seconds(60)))
      << lab.Logs();

  // A further heartbeat of every poller after the hostile writes: they ran through it.
  auto seq_of = [&](const std::string& node) -> std::uint64_t {
    auto got = zk->Get(NodesPath() + "/" + node);
    if (!got.ok()) return 0;
    auto o = model::NodeObservation::FromJson(got->data);
    return o.ok() ? o->seq : 0;
  };
  std::map<std::string, std::uint64_t> seq_before;
  for (int n = 1; n <= 3; ++n)
    seq_before["node" + std::to_string(n)] = seq_of("node" + std::to_string(n));
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (const auto& [node, seq] : seq_before) {
          if (seq_of(node) <= seq) return false;
        }
        return true;
      },
      seconds(30)))
      << lab.Logs();

  EXPECT_TRUE(all_alive()) << lab.Logs() << "\n--- watch ---\n" << watch->LogTail();
  EXPECT_EQ(RouteNode(state_file), master) << ReadFile(state_file);

  // Put the record back (as a hand repair would): the leader verifies again and status is healthy.
  ASSERT_TRUE(zk->Set(MasterPath(), original->data).ok());
  ASSERT_TRUE(zk->Delete(NodesPath() + "/node9").ok());
  EXPECT_TRUE(WaitUntil(
      [&] {
        CommandResult r = lab.Cli({"status", "--cluster", kCluster});
        return r.exit_code == 0;
      },
      seconds(60)))
      << lab.Cli({"status", "--cluster", kCluster}).out << lab.Logs();
  EXPECT_EQ(RouteNode(state_file), master);
  EXPECT_TRUE(all_alive()) << lab.Logs();
  watch->Signal(SIGTERM);
}

}  // namespace
}  // namespace pgherald::observability_lab
