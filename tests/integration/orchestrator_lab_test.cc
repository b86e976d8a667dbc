// The orchestrator on the real lab (ZooKeeper ensemble, 3-node PostgreSQL 15 + repmgr/repmgrd),
// running as real `pgherald orchestrator` processes that probe the configured nodes directly (no
// pollers). The cases run in order and share one lab and the orchestrators. Each starts from a
// known state that its fixture restores and verifies first, whatever the case before it left:
// the lab's (Lab::Restore: one primary, the two other nodes streaming from it, repmgrd monitoring
// on all three, the ensemble serving), and for every case but the first, orch-a (and orch-b once a
// case started it) running and not frozen, the cluster not paused, and the master record naming
// the primary with a bound voucher (by the cluster's owner: once orch-b runs, the hash may pick
// either for main, docs/orchestrator.md "Ownership"). Waits are on conditions; their deadlines are safety nets,
// generous for a loaded machine.
#include <gtest/gtest.h>

#include <libpq-fe.h>

#include <algorithm>
#include <set>

#include "common/model/owner.h"
#include "common/model/zk_paths.h"
#include "orchestrator/election.h"
#include "publishers/zk_publisher.h"
#include "tests/integration/orchestrator_lab_util.h"
#include "tests/support/expire_session.h"

namespace pgherald::orchestrator_lab {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kRoot[] = "/pgherald-it";
// The safety net of every wait for something the orchestrator, repmgrd or ZooKeeper does.
constexpr seconds kPatience(90);

class LabEnvironment : public ::testing::Environment {
 public:
  static lab::Lab* lab() { return lab_.get(); }
  void SetUp() override {
    lab::LabOptions options;
    options.zk_ensemble = true;
    options.postgres = true;
    auto lab = lab::Lab::Up(options);
    // A server that cannot start is a failure, never a skip.
    ASSERT_TRUE(lab.ok()) << lab.status().ToString();
    lab_ = std::move(lab).value();
  }
  void TearDown() override { lab_.reset(); }

 private:
  static std::unique_ptr<lab::Lab> lab_;
};
std::unique_ptr<lab::Lab> LabEnvironment::lab_;
[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new LabEnvironment);

lab::Lab& TheLab() {
  lab::Lab* l = LabEnvironment::lab();
  if (l == nullptr) std::abort();
  return *l;
}

std::string Node(int n) { return "node" + std::to_string(n); }

// State shared by the ordered tests: the orchestrator processes and what they published.
struct Shared {
  std::unique_ptr<OrchestratorProcess> a;
  std::unique_ptr<OrchestratorProcess> b;
  std::unique_ptr<zk::ZkClient> zk;
  int primary = 0;
};
Shared& S() {
  static Shared* s = new Shared;
  return *s;
}

std::unique_ptr<OrchestratorProcess> StartOrchestrator(const std::string& id) {
  OrchestratorConfigSpec spec;
  spec.id = id;
  spec.root = kRoot;
  const std::string config = WriteConfig(TheLab(), spec);
  return OrchestratorProcess::Start(config, TheLab().dir() + "/" + id + ".log");
}

bool MasterIs(int node, std::uint32_t min_timeline = 0) {
  auto m = ReadMaster(*S().zk, kRoot);
  return m && m->state == model::MasterState::kOk && m->node == Node(node) &&
         m->timeline >= min_timeline && !Vouchers(*S().zk, kRoot).empty();
}

// Every history entry, oldest first (publishes and withdrawn vouchers).
std::vector<model::HistoryEntry> AllHistory() {
  std::vector<model::HistoryEntry> out;
  auto names = S().zk->GetChildren(std::string(kRoot) + "/clusters/main/history");
  if (!names.ok()) return out;
  std::sort(names->begin(), names->end());  // h-<seq>, zero-padded
  for (const std::string& n : *names) {
    auto got = S().zk->Get(std::string(kRoot) + "/clusters/main/history/" + n);
    if (!got.ok()) continue;
    auto h = model::HistoryEntry::FromJson(got->data);
    if (h.ok()) out.push_back(*h);
  }
  return out;
}

// The publish entries only, oldest first.
std::vector<model::HistoryEntry> History() {
  std::vector<model::HistoryEntry> out;
  for (auto& h : AllHistory()) {
    if (h.action == "publish") out.push_back(std::move(h));
  }
  return out;
}

std::string OrchestratorLogs() {
  return (S().a ? "---- orch-a ----\n" + S().a->Log() : "") +
         (S().b ? "---- orch-b ----\n" + S().b->Log() : "");
}

// The lab's part of the known state; S().primary is the primary afterwards.
void RestoreLab() {
  if (S().zk == nullptr) {
    S().zk = Reader(TheLab());
    ASSERT_NE(S().zk, nullptr);
  }
  auto primary = TheLab().Restore(S().primary);
  ASSERT_TRUE(primary.ok()) << primary.status().ToString();
  S().primary = *primary;
}

// Starts the orchestrator `id` into `slot` when it is not running (a crash is reported); thaws it.
void EnsureRunning(std::unique_ptr<OrchestratorProcess>& slot, const std::string& id) {
  if (slot != nullptr && !slot->Running()) {
    ADD_FAILURE() << id << " exited:\n" << slot->Log();
    slot.reset();
  }
  if (slot == nullptr) {
    slot = StartOrchestrator(id);
    ASSERT_NE(slot, nullptr) << "PGHERALD_BIN must name the pgherald program";
  }
  slot->Thaw();
}

// The orchestrators' part of the known state.
void RestoreOrchestrators() {
  ASSERT_NO_FATAL_FAILURE(EnsureRunning(S().a, "orch-a"));
  if (S().b != nullptr) {
    ASSERT_NO_FATAL_FAILURE(EnsureRunning(S().b, "orch-b"));
  }
  const std::string control = std::string(kRoot) + "/clusters/main/control";
  auto paused = S().zk->Get(control);
  if (paused.ok() && paused->data.find("\"paused\":false") == std::string::npos) {
    ASSERT_TRUE(S().zk->Set(control, R"({"format":1,"paused":false})").ok());
  }
  ASSERT_TRUE(WaitUntil([] { return MasterIs(S().primary); }, kPatience))
      << "the master record does not name node" << S().primary << " with a bound voucher\n"
      << OrchestratorLogs();
}

// The first case starts from the lab alone: no orchestrator has run, nothing is published.
class OrchestratorLabFromScratch : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(RestoreLab());
    ASSERT_EQ(S().a, nullptr);
    auto master = S().zk->Exists(std::string(kRoot) + "/clusters/main/master");
    ASSERT_TRUE(master.ok()) << master.status().ToString();
    ASSERT_FALSE(master->has_value()) << "a master is published before any orchestrator ran";
  }
};

// Every other case starts from the whole known state (the comment at the top).
class OrchestratorLab : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(RestoreLab());
    ASSERT_NO_FATAL_FAILURE(RestoreOrchestrators());
  }
};

// kill -9 of the primary, then waits until repmgrd has promoted another node (S().primary
// afterwards) and the master record names it on a timeline after `before`'s (`leader`'s log on
// failure).
void FailOverAndAwaitPublish(const model::MasterRecord& before, const OrchestratorProcess& leader) {
  const int old_primary = S().primary;
  ASSERT_TRUE(TheLab().PgKill(old_primary).ok());
  auto promoted = TheLab().WaitForPrimary(old_primary, kPatience);
  ASSERT_TRUE(promoted.ok()) << promoted.status().ToString();
  S().primary = *promoted;
  ASSERT_TRUE(WaitUntil([&] { return MasterIs(S().primary, before.timeline + 1); }, kPatience))
      << leader.Log();
}

TEST_F(OrchestratorLabFromScratch, FirstMasterIsPublishedWithoutAnyPromotion) {
  S().a = StartOrchestrator("orch-a");
  ASSERT_NE(S().a, nullptr) << "PGHERALD_BIN must name the pgherald program";
  ASSERT_TRUE(WaitUntil([] { return MasterIs(S().primary); }, kPatience)) << S().a->Log();
  auto m = ReadMaster(*S().zk, kRoot);
  EXPECT_GE(m->epoch, 1u);  // above the initial record's mzxid (docs/decision-rules.md, "Epochs")
  EXPECT_EQ(m->decided_by, "orch-a");
  EXPECT_EQ(m->port, TheLab().pg_port(S().primary));
  EXPECT_GE(m->timeline, 1u);
  EXPECT_EQ(Vouchers(*S().zk, kRoot), std::vector<std::string>{"orch-a"});
  // The identity is recorded in the round that published, right after the publish's multi.
  StatusOr<zk::NodeData> identity = Status(StatusCode::kNotFound, "not read yet");
  ASSERT_TRUE(WaitUntil(
      [&] { return (identity = S().zk->Get(std::string(kRoot) + "/clusters/main/identity")).ok(); },
      kPatience))
      << S().a->Log();
  EXPECT_NE(identity->data.find("system_identifier"), std::string::npos);
  auto h = History();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].action, "publish");
  EXPECT_EQ(h[0].chosen, Node(S().primary));
  // The write check created its heartbeat row on the master (and it replicates).
  PGconn* c = PQconnectdb(TheLab().pg_conninfo(S().primary, TheLab().Env("PG_APP_DATABASE")).c_str());
  PGresult* r = PQexec(c, "SELECT count(*) FROM pgherald.heartbeat WHERE orchestrator = 'orch-a'");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(c);
  EXPECT_EQ(std::string(PQgetvalue(r, 0, 0)), "1");
  PQclear(r);
  PQfinish(c);
  // No password in the log.
  EXPECT_EQ(S().a->Log().find(TheLab().Env("PG_APP_PASSWORD")), std::string::npos);
}

TEST_F(OrchestratorLab, KillNineOfThePrimaryPublishesThePromotedNodeWithHistory) {
  const int old_primary = S().primary;
  const auto before = ReadMaster(*S().zk, kRoot);
  ASSERT_TRUE(before.has_value());
  const std::size_t publishes_before = History().size();
  const std::size_t entries_before = AllHistory().size();
  const std::size_t log_from = S().a->Log().size();
  ASSERT_NO_FATAL_FAILURE(FailOverAndAwaitPublish(*before, *S().a));
  auto m = ReadMaster(*S().zk, kRoot);
  EXPECT_EQ(m->epoch, before->epoch + 1);
  EXPECT_EQ(m->reason, "later_timeline");
  auto h = History();
  ASSERT_EQ(h.size(), publishes_before + 1);
  const model::HistoryEntry& last = h.back();
  EXPECT_EQ(last.chosen, Node(S().primary));
  ASSERT_TRUE(last.previous.has_value());
  EXPECT_EQ(last.previous->node, Node(old_primary));
  ASSERT_TRUE(last.data_loss.has_value());
  EXPECT_EQ(last.data_loss->old_master, Node(old_primary));
  EXPECT_TRUE(S().a->LogContains("failover cluster=main old_master=" + Node(old_primary), log_from));
  // Between the two publishes: the voucher of the dead master was withdrawn, with its reason.
  auto all = AllHistory();
  ASSERT_EQ(all.size(), entries_before + 2);
  const model::HistoryEntry& withdrawn = all[entries_before];
  EXPECT_EQ(withdrawn.action, "withdraw");
  EXPECT_EQ(withdrawn.epoch, before->epoch);
  ASSERT_FALSE(withdrawn.reasons.empty());
  bool why = false;
  for (const auto& r : withdrawn.reasons) why |= r.code == "master_unverified" || r.code == "no_writable_node";
  EXPECT_TRUE(why) << withdrawn.ToJson();
  EXPECT_TRUE(S().a->LogContains("voucher_withdrawn cluster=main node=" + Node(old_primary), log_from));
}

TEST_F(OrchestratorLab, OldPrimaryRestartedWritableIsNeverPublished) {
  // A failover first, so that an old primary exists on the timeline before the published one.
  const int old_primary = S().primary;
  const auto before = ReadMaster(*S().zk, kRoot);
  ASSERT_TRUE(before.has_value());
  ASSERT_NO_FATAL_FAILURE(FailOverAndAwaitPublish(*before, *S().a));
  const auto published = ReadMaster(*S().zk, kRoot);
  // The trap: the old primary restarted as it is, writable beside the new one. Wait until the
  // orchestrator has seen it, then check that it held.
  const std::size_t log_from = S().a->Log().size();
  ASSERT_TRUE(TheLab().PgStartWritable(old_primary).ok());
  ASSERT_TRUE(WaitUntil([&] {
    return S().a->LogContains("below_published_timeline " + Node(old_primary), log_from);
  }, kPatience)) << S().a->Log();
  EXPECT_TRUE(MasterIs(S().primary));
  for (const model::HistoryEntry& h : History()) {
    if (h.master && h.master->epoch > published->epoch) ADD_FAILURE() << "published again: " << h.chosen;
  }
  // The next case's fixture rejoins the old primary as a standby.
}

TEST_F(OrchestratorLab, PausedClusterDoesNotChange) {
  const std::string control = std::string(kRoot) + "/clusters/main/control";
  const std::size_t log_from = S().a->Log().size();
  const std::string paused = R"({"format":1,"paused":true})";
  auto exists = S().zk->Exists(control);  // it does once a case before resumed the cluster
  ASSERT_TRUE(exists.ok()) << exists.status().ToString();
  ASSERT_TRUE((exists->has_value() ? S().zk->Set(control, paused).status()
                                   : S().zk->Create(control, paused, zk::CreateMode::kPersistent).status())
                  .ok());
  ASSERT_TRUE(WaitUntil([&] { return S().a->LogContains("paused: cluster is paused", log_from); },
                        kPatience));
  const auto before = ReadMaster(*S().zk, kRoot);
  const int old_primary = S().primary;
  ASSERT_TRUE(TheLab().PgKill(old_primary).ok());
  auto promoted = TheLab().WaitForPrimary(old_primary, kPatience);
  ASSERT_TRUE(promoted.ok()) << promoted.status().ToString();
  // The orchestrator has seen the new primary (as a candidate it may not publish) ...
  ASSERT_TRUE(WaitUntil([&] {
    return S().a->LogContains(Node(*promoted) + ":candidate:tl" + std::to_string(before->timeline + 1),
                              log_from);
  }, kPatience)) << S().a->Log();
  // ... and the record did not move.
  EXPECT_EQ(ReadMaster(*S().zk, kRoot), before);
  // Resuming publishes the later timeline at once.
  ASSERT_TRUE(S().zk->Set(control, R"({"format":1,"paused":false})").ok());
  S().primary = *promoted;
  EXPECT_TRUE(WaitUntil([&] { return MasterIs(S().primary, before->timeline + 1); }, kPatience))
      << S().a->Log();
}

// The orchestrator id of `cluster`'s owner (its ownership queue's first candidate), and how many
// candidates the queue holds.
std::pair<std::string, std::size_t> OwnerOf(const std::string& cluster) {
  const model::ClusterPaths paths(kRoot, cluster);
  auto names = S().zk->GetChildren(paths.Owners());
  if (!names.ok()) return {"", 0};
  const auto queue = model::SortedCandidates(*names);
  if (queue.empty()) return {"", 0};
  auto data = S().zk->Get(paths.OwnerCandidate(queue.front().name));
  return {data.ok() ? model::OwnerIdOf(data->data) : "", queue.size()};
}

TEST_F(OrchestratorLab, SecondInstanceTakesOverAndTheFrozenOwnerCannotPublish) {
  S().b = StartOrchestrator("orch-b");
  ASSERT_NE(S().b, nullptr);
  ASSERT_TRUE(WaitUntil([] { return S().b->LogContains("session_started"); }, kPatience));
  // Ownership of main settles: orch-b queues only if the hash picks it, and orch-a then hands
  // over. Either way one candidate remains, and its orchestrator alone vouches.
  std::string owner;
  ASSERT_TRUE(WaitUntil([&] {
    auto members = S().zk->GetChildren(std::string(kRoot) + "/orchestrators/election");
    const auto [id, candidates] = OwnerOf("main");
    owner = id;
    return members.ok() && members->size() == 2 && candidates == 1 && !id.empty() &&
           Vouchers(*S().zk, kRoot) == std::vector<std::string>{id};
  }, kPatience)) << OrchestratorLogs();
  OrchestratorProcess& frozen = owner == "orch-a" ? *S().a : *S().b;
  OrchestratorProcess& other = owner == "orch-a" ? *S().b : *S().a;
  const std::string other_id = owner == "orch-a" ? "orch-b" : "orch-a";
  // Freeze the owner past its session timeout (4 s): the ensemble expires it, its candidate,
  // member znode and voucher vanish, and the other owns and vouches. The time it takes is printed,
  // not asserted (a loaded machine stretches it).
  const auto frozen_at = std::chrono::steady_clock::now();
  frozen.Freeze();
  ASSERT_TRUE(WaitUntil([&] {
    return Vouchers(*S().zk, kRoot) == std::vector<std::string>{other_id};
  }, kPatience)) << other.Log();
  const auto takeover = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - frozen_at);
  std::printf("[orchestrator] takeover %lld ms after freezing the owner %s (session timeout 4000 ms)\n",
              static_cast<long long>(takeover.count()), owner.c_str());
  // While the owner is frozen, a failover happens; the other publishes it.
  const auto before = ReadMaster(*S().zk, kRoot);
  ASSERT_TRUE(before.has_value());
  ASSERT_NO_FATAL_FAILURE(FailOverAndAwaitPublish(*before, other));
  EXPECT_EQ(ReadMaster(*S().zk, kRoot)->decided_by, other_id);
  // The frozen one wakes with a round it decided before freezing possibly pending: it must not
  // publish. (Once its new session has joined, the hash may give main back to it by a hand-over.)
  const std::size_t from = frozen.Log().size();
  frozen.Thaw();
  ASSERT_TRUE(WaitUntil([&] { return frozen.LogContains("session_lost", from); }, kPatience))
      << frozen.Log();
  std::size_t restarted = std::string::npos;
  ASSERT_TRUE(WaitUntil([&] {
    const std::string log = frozen.Log();
    const auto lost = log.find("session_lost", from);
    restarted = lost == std::string::npos ? lost : log.find("session_started", lost);
    return restarted != std::string::npos;
  }, kPatience)) << frozen.Log();
  const std::string stale = frozen.Log().substr(from, restarted - from);
  EXPECT_EQ(stale.find("master_published"), std::string::npos) << stale;
  EXPECT_EQ(ReadMaster(*S().zk, kRoot)->decided_by, other_id);
  // Epochs in history are unique and increasing.
  std::set<std::uint64_t> epochs;
  for (const auto& h : History()) EXPECT_TRUE(epochs.insert(h.epoch).second) << h.epoch;
}

// The fence itself on the real ensemble: a deposed leader's multi (its election znode gone with
// its expired session) fails as a whole, whatever it believes.
TEST_F(OrchestratorLab, DeposedLeadersMultiIsRejectedByTheEnsemble) {
  const std::string root = "/pgherald-fence";
  zk::ZkClientOptions o;
  o.connect = TheLab().zk_connect();
  o.session_timeout = milliseconds(4000);
  auto old_leader = zk::ZkClient::Connect(o);
  ASSERT_TRUE(old_leader.ok());
  orchestrator::LeaderElection election(old_leader->get(), root + "/orchestrators/election", "old", nullptr);
  ASSERT_TRUE(election.Refresh().ok());
  ASSERT_TRUE(election.IsLeader());
  publishers::ZkPublisher setup(old_leader->get(), root, "old");
  ASSERT_TRUE(setup.EnsureCluster("main").ok());
  auto m = setup.ReadMaster("main");
  ASSERT_TRUE(m.ok());
  const std::string own = election.own_path();
  auto creds = (*old_leader)->credentials();
  ASSERT_TRUE(creds.ok());
  ASSERT_TRUE(zk::ExpireSessionFromOutside(o.connect, *creds, kPatience).ok());
  // The deposed code path on a fresh session (the old one is dead): same path, same version.
  auto fresh = zk::ZkClient::Connect(o);
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(WaitUntil([&] { auto e = (*fresh)->Exists(own); return e.ok() && !e->has_value(); }, kPatience));
  publishers::ZkPublisher deposed(fresh->get(), root, "old");
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = "node9";
  r.host = "127.0.0.1";
  r.port = 1;
  r.timeline = 1;
  r.epoch = 1;
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.epoch = 1;
  h.reasons.push_back({"first_master", "node9", "test"});
  publishers::PublishResult res = deposed.Publish("main", own, m->version, r, h);
  EXPECT_EQ(res.outcome, publishers::WriteOutcome::kRejected);
  EXPECT_NE(res.status.message().find("deposed"), std::string::npos) << res.status.ToString();
  EXPECT_EQ(deposed.ReadMaster("main")->record.epoch, 0u);
}

TEST_F(OrchestratorLab, StopsCleanly) {
  if (S().b) {
    EXPECT_EQ(S().b->Stop(), 0);
  }
  if (S().a) {
    EXPECT_EQ(S().a->Stop(), 0);
  }
}

}  // namespace
}  // namespace pgherald::orchestrator_lab
