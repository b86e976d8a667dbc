// Randomized simulation of the whole orchestrator shell: several Orchestrator instances over one
// FakeZkServer (manual dispatch, ManualClock) and a simulated PostgreSQL cluster behind the
// NodeProber seam, driven through thousands of generated fault schedules: primaries killed,
// standbys promoted (sometimes beside a live primary), old primaries restarted writable on their
// old timeline, a foreign database, ZooKeeper disconnects, expiries, lost answers to applied and
// unapplied writes, clock jumps and pauses. After every round the safety properties are checked:
//   - a newly published node was writable (not in recovery), of this cluster, on its live timeline;
//   - the published timeline never goes down;
//   - epochs go up by exactly one per published record, no epoch has two publish entries in
//     history, and a withdraw entry names an epoch that was published
//     (two leaders' writes never both land);
//   - a paused cluster's record does not change.
// At the end of each schedule the faults heal and the new primary must be published and vouched.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "common/fake_zk.h"
#include "common/logging.h"
#include "orchestrator/orchestrator.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;

constexpr char kSysid[] = "7291851442811934035";
constexpr char kForeignSysid[] = "6000000000000000001";
constexpr char kMaster[] = "/pgherald/clusters/main/master";
constexpr char kHistory[] = "/pgherald/clusters/main/history";
constexpr char kControl[] = "/pgherald/clusters/main/control";
constexpr char kIdentity[] = "/pgherald/clusters/main/identity";

struct SimNode {
  bool up = true;
  bool in_recovery = true;
  std::uint32_t timeline = 1;
  model::Lsn lsn = 0x3000000;
  std::string sysid = kSysid;
};

// The simulated cluster behind the prober seam.
class World final : public NodeProber {
 public:
  std::map<std::string, SimNode> nodes;

  model::Probe ProbeOf(const std::string& name) const {
    model::Probe p;
    p.node = name;
    p.host = "127.0.0.1";
    p.port = 5432;
    const SimNode& n = nodes.at(name);
    p.reachable = n.up;
    if (!n.up) {
      p.error = "connection refused";
      return p;
    }
    p.in_recovery = n.in_recovery;
    p.timeline = n.timeline;
    p.lsn = n.lsn;
    p.system_identifier = n.sysid;
    return p;
  }
  std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets, MonoTime) override {
    std::vector<model::Probe> out;
    for (const NodeTarget& t : targets) out.push_back(ProbeOf(t.name));
    return out;
  }
  std::vector<model::Probe> WriteCheckAll(const std::vector<NodeTarget>& targets,
                                          const WriteCheckContext&, MonoTime) override {
    std::vector<model::Probe> out;
    for (const NodeTarget& t : targets) {
      model::Probe p = ProbeOf(t.name);
      if (p.reachable) {
        p.write_check = p.in_recovery ? model::WriteCheck::kFailed : model::WriteCheck::kPassed;
        if (p.in_recovery) p.write_error = "read-only transaction";
      }
      out.push_back(p);
    }
    return out;
  }
  std::uint32_t MaxTimeline() const {
    std::uint32_t m = 0;
    for (const auto& [name, n] : nodes) {
      if (n.sysid == kSysid) m = std::max(m, n.timeline);
    }
    return m;
  }
};

struct Instance {
  std::unique_ptr<Orchestrator> orchestrator;
  zk::FakeZk* session = nullptr;  // the latest session its factory built
};

class Simulation {
 public:
  explicit Simulation(std::uint32_t seed) : rng_(seed) {
    world_.nodes["node1"] = SimNode{true, false, 1, 0x3000000, kSysid};
    world_.nodes["node2"] = SimNode{};
    world_.nodes["node3"] = SimNode{};
    world_.nodes["alien"] = SimNode{false, false, 9, 0x9000000, kForeignSysid};
    ClusterSpec spec;
    spec.name = "main";
    for (const auto& [name, n] : world_.nodes) spec.nodes.push_back(NodeTarget{name, {}});
    if (Coin(0.5)) {
      zk::FakeZkOptions zo;
      zo.dispatch = zk::DispatchMode::kManual;
      auto admin = server_->NewSession(zo);
      (void)zk::EnsurePath(*admin, "/pgherald/clusters/main");
      (void)admin->Create(kIdentity, std::string(R"({"format":1,"system_identifier":")") + kSysid + "\"}",
                          zk::CreateMode::kPersistent);
      admin->Close();
    }
    for (int i = 0; i < 3; ++i) {
      auto inst = std::make_unique<Instance>();
      OrchestratorOptions o;
      o.id = "orch-" + std::to_string(i);
      o.policy.confirmation_window = milliseconds(2000);
      o.policy.strict_split_brain = Coin(0.3);
      o.policy.self_fence_deadline = milliseconds(10000);
      o.history_limit = 1000000;
      Instance* raw = inst.get();
      SessionFactory factory = [this, raw]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
        zk::FakeZkOptions zo;
        zo.dispatch = zk::DispatchMode::kManual;
        zo.session_timeout = milliseconds(6000);
        auto s = server_->NewSession(zo);
        raw->session = s.get();
        return std::unique_ptr<zk::ZkSession>(std::move(s));
      };
      inst->orchestrator = std::make_unique<Orchestrator>(o, std::vector<ClusterSpec>{spec}, factory,
                                                          &world_, &clock_, std::vector<publishers::Publisher*>{},
                                                          "g" + std::to_string(i));
      instances_.push_back(std::move(inst));
    }
  }

  bool Coin(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::string PickNode() {
    static const char* kNames[] = {"node1", "node2", "node3"};
    return kNames[Pick(3)];
  }

  void Fault() {
    switch (Pick(13)) {
      case 0: {  // kill a writable node
        for (auto& [name, n] : world_.nodes) {
          if (n.sysid == kSysid && n.up && !n.in_recovery && Coin(0.7)) n.up = false;
        }
        break;
      }
      case 1: {  // repmgrd promotes an up standby to a new timeline
        SimNode& n = world_.nodes[PickNode()];
        if (n.up && n.in_recovery) {
          n.timeline = world_.MaxTimeline() + 1;
          n.in_recovery = false;
        }
        break;
      }
      case 2: {  // an old primary restarted writable on its old timeline (the trap)
        SimNode& n = world_.nodes[PickNode()];
        if (!n.up) {
          n.up = true;
          n.in_recovery = false;
        }
        break;
      }
      case 3: {  // a node rejoined as a standby of the newest timeline
        SimNode& n = world_.nodes[PickNode()];
        n.up = true;
        n.in_recovery = true;
        n.timeline = world_.MaxTimeline();
        break;
      }
      case 4: {  // writes
        for (auto& [name, n] : world_.nodes) {
          if (n.up && !n.in_recovery) n.lsn += static_cast<model::Lsn>(Pick(100000));
        }
        break;
      }
      case 5:
        // A foreign database is only told apart once the cluster's identity is recorded (before
        // that, the identity is adopted from the first master; a node that is the only one
        // reachable cannot be recognised as foreign).
        if (server_->Peek(kIdentity)) world_.nodes["alien"].up = Coin(0.5);
        break;
      case 6: {
        Instance& i = *instances_[static_cast<std::size_t>(Pick(3))];
        if (i.session != nullptr) i.session->Disconnect();
        break;
      }
      case 7: {
        Instance& i = *instances_[static_cast<std::size_t>(Pick(3))];
        if (i.session != nullptr) i.session->Reconnect();
        break;
      }
      case 8: {
        Instance& i = *instances_[static_cast<std::size_t>(Pick(3))];
        if (i.session != nullptr) (void)server_->ExpireSession(i.session->session_id());
        break;
      }
      case 9: {
        Instance& i = *instances_[static_cast<std::size_t>(Pick(3))];
        if (i.session != nullptr) {
          const StatusCode codes[] = {StatusCode::kConnectionLoss, StatusCode::kConnectionLoss,
                                      StatusCode::kSessionExpired, StatusCode::kBadVersion};
          i.session->FailNextCall(codes[Pick(4)], Coin(0.5));
        }
        break;
      }
      case 10:
        clock_.Advance(milliseconds(Pick(8000)));
        break;
      case 11:
        SetPaused(Coin(0.5));
        break;
      default:
        clock_.Advance(milliseconds(Pick(1500)));
        break;
    }
  }

  void SetPaused(bool paused) {
    const std::string data = paused ? R"({"format":1,"paused":true})" : R"({"format":1,"paused":false})";
    zk::FakeZkOptions zo;
    zo.dispatch = zk::DispatchMode::kManual;
    auto admin = server_->NewSession(zo);
    if (!server_->Peek(kControl)) {
      (void)zk::EnsurePath(*admin, "/pgherald/clusters/main");
      (void)admin->Create(kControl, data, zk::CreateMode::kPersistent);
    } else {
      (void)admin->Set(kControl, data);
    }
    admin->Close();
    paused_ = paused;
  }

  // One instance's round, then the safety checks.
  void Round(std::size_t idx) {
    server_->ExpireOverdueSessions();
    server_->DispatchAllPending();
    instances_[idx]->orchestrator->RunRound();
    Check();
  }

  void Check() {
    auto master = server_->Peek(kMaster);
    if (!master) return;
    auto rec = model::MasterRecord::FromJson(master->data);
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    if (master->stat.version != last_version_ && rec->epoch == 0) {
      ASSERT_EQ(rec->state, model::MasterState::kNoMaster);  // the initial record
      last_version_ = master->stat.version;
    } else if (master->stat.version != last_version_) {
      ASSERT_FALSE(paused_) << "a paused cluster changed: " << master->data;
      // The first epoch is above the initial record's mzxid (docs/decision-rules.md, "Epochs");
      // afterwards epochs go up by one.
      if (last_epoch_ == 0) {
        ASSERT_GT(rec->epoch, 0u) << master->data;
      } else {
        ASSERT_EQ(rec->epoch, last_epoch_ + 1) << "epochs must go up by one: " << master->data;
      }
      ASSERT_EQ(rec->state, model::MasterState::kOk);
      const SimNode& n = world_.nodes.at(rec->node);
      ASSERT_TRUE(n.up && !n.in_recovery) << "published a node that is down or in recovery: " << master->data;
      ASSERT_EQ(n.sysid, kSysid) << "published a foreign database: " << master->data;
      ASSERT_EQ(rec->timeline, n.timeline) << master->data;
      ASSERT_GE(rec->timeline, last_timeline_) << "timeline went down: " << master->data;
      last_version_ = master->stat.version;
      last_epoch_ = rec->epoch;
      last_timeline_ = rec->timeline;
      ++publishes_;
    }
  }

  // One publish entry per epoch; a withdrawn voucher's entry (action withdraw) names the record it
  // stopped vouching for: an epoch already published, never a record of its own.
  void CheckHistory() {
    std::set<std::uint64_t> epochs;
    std::vector<model::HistoryEntry> withdrawals;
    for (const std::string& h : server_->PeekChildren(kHistory)) {
      auto entry = model::HistoryEntry::FromJson(server_->Peek(std::string(kHistory) + "/" + h)->data);
      ASSERT_TRUE(entry.ok());
      if (entry->action == "withdraw") {
        ASSERT_FALSE(entry->master.has_value()) << "a withdraw entry carries a new record";
        ASSERT_FALSE(entry->reasons.empty()) << "a withdraw entry without its reason";
        withdrawals.push_back(*entry);
        continue;
      }
      ASSERT_EQ(entry->action, "publish");
      ASSERT_TRUE(epochs.insert(entry->epoch).second) << "two history entries for epoch " << entry->epoch;
    }
    ASSERT_EQ(epochs.size(), static_cast<std::size_t>(publishes_));
    for (const model::HistoryEntry& w : withdrawals) {
      ASSERT_TRUE(epochs.count(w.epoch) > 0) << "withdrew a voucher for unpublished epoch " << w.epoch;
      withdrawals_ += 1;
    }
  }

  void Run(int steps) {
    for (int s = 0; s < steps && !::testing::Test::HasFatalFailure(); ++s) {
      if (Coin(0.6)) Fault();
      clock_.Advance(milliseconds(Pick(600)));
      Round(static_cast<std::size_t>(Pick(3)));
    }
    if (::testing::Test::HasFatalFailure()) return;
    CheckHistory();
    if (::testing::Test::HasFatalFailure()) return;
    Heal();
  }

  // Everything heals: the newest node becomes the one primary; it must end up published, vouched.
  void Heal() {
    SetPaused(false);
    for (auto& inst : instances_) {
      if (inst->session != nullptr) inst->session->Reconnect();
    }
    const std::uint32_t tl = world_.MaxTimeline() + 1;
    for (auto& [name, n] : world_.nodes) {
      n.up = name != "alien";
      n.in_recovery = true;
      n.timeline = tl;
    }
    const std::string primary = PickNode();
    world_.nodes[primary].in_recovery = false;
    // Long enough for session expiry (6 s), the confirmation window (2 s) and, in strict mode, the
    // self-fence deadline (10 s) of a writable node that went away.
    for (int r = 0; r < 20; ++r) {
      clock_.Advance(milliseconds(1000));
      for (std::size_t i = 0; i < instances_.size(); ++i) Round(i);
      if (::testing::Test::HasFatalFailure()) return;
    }
    auto rec = model::MasterRecord::FromJson(server_->Peek(kMaster)->data);
    ASSERT_EQ(rec->node, primary);
    ASSERT_EQ(rec->timeline, tl);
    ASSERT_FALSE(server_->PeekChildren(kMaster).empty()) << "healed master has no voucher";
    int leaders = 0;
    for (auto& inst : instances_) leaders += inst->orchestrator->leading() ? 1 : 0;
    ASSERT_EQ(leaders, 1);
  }

  int publishes() const { return publishes_; }
  int withdrawals() const { return withdrawals_; }

 private:
  std::mt19937 rng_;
  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  World world_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::int32_t last_version_ = -1;
  std::uint64_t last_epoch_ = 0;
  int withdrawals_ = 0;
  std::uint32_t last_timeline_ = 0;
  bool paused_ = false;
  int publishes_ = 0;
};

// 2000 schedules of 60 steps (then healing), in four shards so ctest can run them side by side.
class OrchestratorSimulation : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(OrchestratorSimulation, SafetyHoldsOverGeneratedFaultSchedules) {
  config::LoggingConfig quiet;
  // ORCH_SIM_VERBOSE=1 shows every decision (use with --gtest_filter and a failing seed).
  quiet.level = std::getenv("ORCH_SIM_VERBOSE") != nullptr ? config::LogLevel::kInfo
                                                           : config::LogLevel::kError;
  log::Init(quiet);
  constexpr std::uint32_t kSchedules = 500;
  long total_publishes = 0, total_withdrawals = 0;
  const std::uint32_t first = GetParam() * kSchedules + 1;
  for (std::uint32_t seed = first; seed < first + kSchedules; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation sim(seed);
    sim.Run(60);
    if (HasFatalFailure()) return;
    total_publishes += sim.publishes();
    total_withdrawals += sim.withdrawals();
  }
  // The schedules must exercise publishing, not only refusals, and withdrawing vouchers.
  EXPECT_GT(total_publishes, static_cast<long>(kSchedules));
  EXPECT_GT(total_withdrawals, 0);
  std::printf("schedules=%u publishes=%ld withdrawals=%ld\n", kSchedules, total_publishes,
              total_withdrawals);
}

INSTANTIATE_TEST_SUITE_P(Shards, OrchestratorSimulation, ::testing::Values(0u, 1u, 2u, 3u));

}  // namespace
}  // namespace pgherald::orchestrator
