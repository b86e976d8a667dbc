// Randomized simulation of the whole orchestrator shell: several Orchestrator instances over one
// FakeZkServer (manual dispatch, ManualClock) and a simulated PostgreSQL cluster behind the
// NodeProber seam, driven through thousands of generated fault schedules: primaries killed,
// standbys promoted (sometimes beside a live primary), old primaries restarted writable on their
// old timeline, a foreign database, ZooKeeper disconnects, expiries, lost answers to applied and
// unapplied writes, clock jumps and pauses; ownership changes (orchestrators leaving cleanly and
// joining again, crashing = session expiry, partitioned = disconnected); and what a hostile operator or a bad deploy does to
// ZooKeeper (issue 12): a corrupt master payload, the master znode deleted (sometimes history
// too), a well-formed hand-written record (a standby, a node that does not exist, a higher
// timeline, a no-master record, a replay with other bytes or another address; any epoch up to
// 2^64-1) beside a legacy or stale voucher, a
// stale voucher (bound to an older record) left under the record; and same-timeline double
// promotions (two writable nodes on one timeline, the published one acknowledging writes); and
// `pgherald switchover` records in random phases and deadlines, drawn from a generator of their
// own so the other events stay what they were (SwitchoverEvent).
//
// After every round (and every hostile write) the safety properties are checked:
//   - a record an orchestrator wrote names a writable node (not in recovery) of this cluster on
//     its live timeline; the published timeline never goes down; a paused cluster's record does
//     not change;
//   - only the cluster's owner at the time writes: the writer's candidate znode is the first of
//     the cluster's ownership queue (no two owners' writes land, a deposed owner's multi fails);
//   - epochs are never reused, also across deleted znodes and lost history: every record's epoch
//     is above every earlier one and at most the zxid that wrote it, every publish entry's epoch is
//     above every earlier entry's, a withdraw entry names a published epoch; without hostile
//     writes epochs go up by exactly one after the first; every published record has its entry;
//   - a consumer that counts only vouchers bound to the record it reads (model::BoundVouchers)
//     never sees as vouched a record the leader did not verify (the vouched bytes are exactly the
//     last record an orchestrator wrote);
//   - a voucher means "verified now": a bound voucher is created or re-affirmed only by the
//     leader, in a round where the record's master passes its write check;
//   - while a switchover is expected (active, hold..publish), nobody but its `to` is published or
//     vouched for (a record written, a bound voucher created or re-affirmed);
//   - a verified published master that still passes its write check is never replaced by another
//     node on the same timeline (no acknowledged write lost); not asked once both the master znode
//     and history were deleted (nothing in ZooKeeper remembers the verified master then).
// At the end of each schedule the faults heal and the new primary must be published, vouched by a
// bound voucher, with one leader; in half of them one more hostile write follows, which the leader
// must repair within five rounds, keeping the same master. Pollers are out of scope
// (tests/unit/poller_*).
//
// Figures (05:36 UTC, 2 cores at load 17, after merging wip/safety-orch 114a5a6): 10,000 schedules
// of 60 steps in eight shards of 1,250, 0 violations; per shard about 4 s CPU, 20 s wall under
// `ctest -j2` (79 s for the eight); per 10,000 schedules about 25,500 publishes, 48,300 hostile
// writes, 17,300 repairs, 17,200 same-timeline promotions (82,000 rounds with two writable nodes on
// the verified master's timeline), 875,000 reads a bound voucher vouched, 248,000 bound vouchers
// created or re-affirmed. With ownership changes among the events (wip/s4b-shard, 14:25 UTC, load
// about 11): shard 0 (1,250 schedules) 8.9 s wall, 3.5 s CPU, 8,560 ownership changes, 3,305
// publishes; making Owns() ignore the queue's order fails it at seed 2 ("wrote while not the
// owner"). With ORCH_SIM_OPEN_FINDINGS=1 every shard fails within its first 450
// schedules (see kOpenFindingsFixed). With switchover records among the events (wip/s5-orch,
// 17:26 UTC, load about 10): shard 0 11 s wall, 3,478 switchover history entries, 161 publishes of
// a switchover's target while it was expected, 0 violations in the eight shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <optional>
#include <set>

#include "tests/support/fake_zk.h"
#include "common/logging.h"
#include "common/model/owner.h"
#include "common/model/voucher.h"
#include "orchestrator/orchestrator.h"
#include "common/model/zk_paths.h"
#include "tests/support/manual_clock.h"

namespace pgherald::orchestrator {
namespace {

const model::ClusterPaths kMain("/pgherald", "main");

using std::chrono::milliseconds;

constexpr char kSysid[] = "7291851442811934035";
constexpr char kForeignSysid[] = "6000000000000000001";
const std::string kMaster = kMain.Master();
const std::string kHistory = kMain.History();
const std::string kControl = kMain.Control();
const std::string kIdentity = kMain.Identity();
const std::string kOwners = kMain.Owners();

// Hostile variants the writer side (wip/safety-orch 114a5a6) failed, fixed on wip/safety-fix-orch
// (docs/decision-rules.md, "Trust", "Epochs", rule 4 "below the cluster's timeline"):
//   - the master znode deleted (with or without history): a recreated initial record read as
//     "nothing published", first_master/master_repaired published an old primary below the
//     published timeline (seeds 7503, 439);
//   - an empty payload or a hand-written no-master record: read as the initial record, the same
//     (seed 8201 without deletions);
//   - a forged epoch 2^64-1: the next epoch wrapped to 0 (seeds 6409, 2514).
// Setting this to false leaves them out again (ORCH_SIM_OPEN_FINDINGS=1 turns them on then).
constexpr bool kOpenFindingsFixed = true;
bool WithOpenFindings() {
  return kOpenFindingsFixed || std::getenv("ORCH_SIM_OPEN_FINDINGS") != nullptr;
}

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
  std::vector<model::Probe> WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                           MonoTime) override {
    std::vector<model::Probe> out;
    for (const WriteCheckRequest& r : requests) {
      model::Probe p = ProbeOf(r.target.name);
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

// What an orchestrator wrote into the master znode, as stored.
struct Written {
  std::string bytes;
  model::MasterRecord record;
};

class Simulation {
 public:
  explicit Simulation(std::uint32_t seed) : rng_(seed), switchover_rng_(seed * 2654435761u + 17) {
    world_.nodes["node1"] = SimNode{true, false, 1, 0x3000000, kSysid};
    world_.nodes["node2"] = SimNode{};
    world_.nodes["node3"] = SimNode{};
    world_.nodes["alien"] = SimNode{false, false, 9, 0x9000000, kForeignSysid};
    ClusterSpec spec;
    spec.name = "main";
    for (const auto& [name, n] : world_.nodes) spec.nodes.push_back(NodeTarget{name, {}});
    if (Coin(0.5)) {
      auto admin = Admin();
      (void)zk::EnsurePath(*admin, kMain.Cluster());
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
        zo.answer_inline = true;  // the orchestrator awaits its pipelined reads' answers
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

  // ORCH_SIM_WITHOUT=<n>,<n>... leaves those fault events out (Fault()'s case numbers), to tell
  // which kind of event a failing schedule needs.
  static bool Disabled(int fault) {
    const char* without = std::getenv("ORCH_SIM_WITHOUT");
    if (without == nullptr) return false;
    const std::string list = std::string(",") + without + ",";
    return list.find("," + std::to_string(fault) + ",") != std::string::npos;
  }

  // A session of a person or tool writing into ZooKeeper by hand (zkCli, a bad deploy).
  std::unique_ptr<zk::FakeZk> Admin() {
    zk::FakeZkOptions zo;
    zo.dispatch = zk::DispatchMode::kManual;
    return server_->NewSession(zo);
  }

  void Fault() {
    int fault = Pick(22);
    if (Disabled(fault) || (fault == 13 && !WithOpenFindings())) fault = 19;
    events_.push_back(fault);
    switch (fault) {
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
      case 12:
      case 13:
      case 14:
      case 15:
        Hostile(fault);
        break;
      case 16:
      case 17:
        SameTimelinePromotion();
        break;
      case 20: {  // an orchestrator leaves cleanly (shutdown: Resign) and stops running rounds
        const std::size_t i = static_cast<std::size_t>(Pick(3));
        if (active_[i]) {
          instances_[i]->orchestrator->Resign();
          active_[i] = false;
        }
        break;
      }
      case 21:  // a stopped orchestrator starts again
        active_[static_cast<std::size_t>(Pick(3))] = true;
        break;
      default:
        clock_.Advance(milliseconds(Pick(1500)));
        break;
    }
    NotOrchestrators();
  }

  // Whatever changed the master znode since the last round was no orchestrator's write.
  void NotOrchestrators() {
    const MasterSeen now = SeeMaster();
    if (!(now == seen_)) hostile_since_publish_ = true;
    seen_ = now;
    CheckConsumer();
  }

  // Fault()'s hostile writes into ZooKeeper, 12 to 15.
  void Hostile(int fault) {
    switch (fault) {
      case 12:
        CorruptMaster();
        break;
      case 13:
        DeleteMaster();
        break;
      case 14:
        HandWrittenRecord();
        break;
      default:
        StaleVoucher();
        break;
    }
  }

  // Garbage in the master znode (an unreadable record); its vouchers stay where they are.
  void CorruptMaster() {
    if (!server_->Peek(kMaster)) return;
    static const char* kGarbage[] = {
        "{not json",
        "\xff\xfe garbage",
        "",
        "null",
        R"({"format":1,"state":"ok"})",
        R"({"format":99,"state":"ok","node":"node1","host":"127.0.0.1","port":5432,"timeline":1})",
        R"({"format":1,"state":"ok","node":"node1","host":"127.0.0.1","port":5432,"timeline":1,"epoch":-3})",
    };
    const std::string garbage = kGarbage[Pick(static_cast<int>(std::size(kGarbage)))];
    if (garbage.empty() && !WithOpenFindings()) return;
    auto admin = Admin();
    (void)admin->Set(kMaster, garbage);
    admin->Close();
    ++hostile_;
  }

  static void DeleteTree(zk::FakeZk& s, const std::string& path) {
    auto children = s.GetChildren(path);
    if (children.ok()) {
      for (const std::string& c : *children) DeleteTree(s, path + "/" + c);
    }
    (void)s.Delete(path);
  }

  // `deleteall master`, sometimes `deleteall history` too (the memory of every epoch used).
  void DeleteMaster() {
    auto admin = Admin();
    DeleteTree(*admin, kMaster);
    master_deleted_ = true;
    if (Coin(0.4)) {
      DeleteTree(*admin, kHistory);
      history_deleted_ = true;
    }
    // With both gone nothing in ZooKeeper remembers which master was verified: stickiness can
    // no longer be asked of a new leader.
    if (master_deleted_ && history_deleted_) last_verified_.reset();
    admin->Close();
    ++hostile_;
  }

  // A voucher an orchestrator never made for the record it sits beside: a legacy name (an
  // orchestrator's id) or a name bound to an older record (of a known or unknown orchestrator).
  void PlantVoucher(zk::FakeZk& admin, const std::string& current_bytes) {
    const std::string orch = "orch-" + std::to_string(Pick(4));  // orch-3 is nobody
    std::string name = orch;
    std::vector<const Written*> older;
    for (const Written& w : written_) {
      if (w.bytes != current_bytes) older.push_back(&w);
    }
    if (!older.empty() && Coin(0.6)) {
      const Written& w = *older[static_cast<std::size_t>(Pick(static_cast<int>(older.size())))];
      name = model::VoucherName(w.record.epoch, model::RecordDigest(w.bytes), orch);
    }
    (void)admin.Create(std::string(kMaster) + "/" + name, "{}", zk::CreateMode::kPersistent);
  }

  // A well-formed record no orchestrator wrote: a standby, a node that does not exist, a higher
  // timeline, or a replay of an orchestrator's record with changed bytes; beside the vouchers
  // already there, and sometimes a planted legacy or stale one.
  void HandWrittenRecord() {
    auto current = server_->Peek(kMaster);
    if (!current) return;
    model::MasterRecord r;
    r.state = model::MasterState::kOk;
    r.host = "127.0.0.1";
    r.port = 5432;
    r.timeline = world_.MaxTimeline() + static_cast<std::uint32_t>(Pick(3));
    r.lsn = 0x3000000;
    r.verified_at_ms = 1;
    r.decided_by = "orch-" + std::to_string(Pick(3));
    r.reason = "hand_written";
    switch (Pick(5)) {
      case 0: {  // a standby (or any node) named master
        r.node = PickNode();
        break;
      }
      case 4:  // a no-master record (with whatever vouchers are there)
        if (!WithOpenFindings()) return;
        r = model::MasterRecord{};
        r.reason = "hand_written";
        break;
      case 1:
        r.node = "ghost";
        break;
      case 2:
        r.node = PickNode();
        r.timeline = 50;
        break;
      default:
        if (written_.empty()) return;
        // An orchestrator's record replayed with other bytes: the last one (same epoch, node,
        // timeline: backed by history) or an older one.
        r = written_[static_cast<std::size_t>(Pick(static_cast<int>(written_.size())))].record;
        if (Coin(0.5)) r = written_.back().record;
        r.verified_at_ms += 1;
        if (Coin(0.3)) r.port = 6543;  // same epoch, node and timeline; another address
        r.reason = "replayed";
        break;
    }
    if (r.reason == "hand_written") {
      auto old = model::MasterRecord::FromJson(current->data);
      const std::uint64_t old_epoch = old.ok() ? old->epoch : 0;
      const std::uint64_t epochs[] = {old_epoch + 1, old_epoch, std::numeric_limits<std::uint64_t>::max(),
                                      static_cast<std::uint64_t>(Pick(5))};
      r.epoch = epochs[Pick(4)];
      if (r.epoch == std::numeric_limits<std::uint64_t>::max() && !WithOpenFindings()) r.epoch = old_epoch + 2;
    }
    auto admin = Admin();
    const std::string bytes = r.ToJson();
    (void)admin->Set(kMaster, bytes);
    if (Coin(0.5)) PlantVoucher(*admin, bytes);
    admin->Close();
    ++hostile_;
  }

  // A stale voucher left under the current record.
  void StaleVoucher() {
    auto current = server_->Peek(kMaster);
    if (!current) return;
    auto admin = Admin();
    PlantVoucher(*admin, current->data);
    admin->Close();
    ++hostile_;
  }

  // A second, out-of-band promotion onto the timeline of the writable primary: two writable nodes
  // on one timeline. The first keeps acknowledging writes; the other takes some of its own.
  void SameTimelinePromotion() {
    const std::uint32_t tl = world_.MaxTimeline();
    std::vector<std::string> primaries, others;
    for (const auto& [name, n] : world_.nodes) {
      if (n.sysid != kSysid || !n.up) continue;
      (!n.in_recovery && n.timeline == tl ? primaries : others).push_back(name);
    }
    if (primaries.empty() || others.empty()) return;
    SimNode& p = world_.nodes[primaries[0]];
    SimNode& q = world_.nodes[others[static_cast<std::size_t>(Pick(static_cast<int>(others.size())))]];
    q.in_recovery = false;
    q.timeline = tl;
    q.lsn = p.lsn + static_cast<model::Lsn>(Pick(200000));
    p.lsn += static_cast<model::Lsn>(Pick(200000));
    ++same_timeline_promotions_;
  }

  void SetPaused(bool paused) {
    const std::string data = paused ? R"({"format":1,"paused":true})" : R"({"format":1,"paused":false})";
    auto admin = Admin();
    if (!server_->Peek(kControl)) {
      (void)zk::EnsurePath(*admin, kMain.Cluster());
      (void)admin->Create(kControl, data, zk::CreateMode::kPersistent);
    } else {
      (void)admin->Set(kControl, data);
    }
    admin->Close();
    paused_ = paused;
  }

  struct MasterSeen {
    bool exists = false;
    std::int64_t czxid = 0;
    std::int64_t mzxid = 0;
    bool operator==(const MasterSeen& o) const {
      return exists == o.exists && czxid == o.czxid && mzxid == o.mzxid;
    }
  };
  MasterSeen SeeMaster() const {
    auto m = server_->Peek(kMaster);
    if (!m) return {};
    return MasterSeen{true, m->stat.czxid, m->stat.mzxid};
  }

  // The mzxid of every child of the master znode.
  std::map<std::string, std::int64_t> VoucherZxids() const {
    std::map<std::string, std::int64_t> out;
    for (const std::string& c : server_->PeekChildren(kMaster)) {
      if (auto v = server_->Peek(std::string(kMaster) + "/" + c)) out[c] = v->stat.mzxid;
    }
    return out;
  }

  // One instance's round, then the safety checks.
  void Round(std::size_t idx) {
    server_->ExpireOverdueSessions();
    server_->DispatchAllPending();
    if (!active_[idx]) return;  // stopped: its session lives on until it expires
    const std::map<std::string, std::int64_t> vouchers_before = VoucherZxids();
    instances_[idx]->orchestrator->RunRound();
    const MasterSeen now = SeeMaster();
    if (now.exists && !(now == seen_)) OrchestratorWrote(idx);
    seen_ = now;
    if (::testing::Test::HasFatalFailure()) return;
    CheckVouchedNow(idx, vouchers_before);
    if (::testing::Test::HasFatalFailure()) return;
    ScanHistory();
    if (::testing::Test::HasFatalFailure()) return;
    CheckConsumer();
    if (::testing::Test::HasFatalFailure()) return;
    CountContest();
  }

  // A voucher means "verified now": one that binds the record and was created or re-affirmed
  // (its mzxid moved) in this round is the round's instance's, which leads, and the record's node
  // passed its write check (writable, of this cluster, on the record's timeline).
  void CheckVouchedNow(std::size_t idx, const std::map<std::string, std::int64_t>& before) {
    auto master = server_->Peek(kMaster);
    if (!master) return;
    auto rec = model::MasterRecord::FromJson(master->data);
    if (!rec.ok()) return;
    for (const auto& [name, zxid] : VoucherZxids()) {
      const auto it = before.find(name);
      if (it != before.end() && it->second == zxid) continue;
      if (!model::VoucherBinds(name, *rec, master->data)) continue;
      ++voucher_writes_;
      const auto id = model::ParseVoucherName(name);
      ASSERT_EQ(id->orchestrator, "orch-" + std::to_string(idx)) << "voucher " << name << " written in another's round";
      CheckWriterLed(idx);
      if (::testing::Test::HasFatalFailure()) return;
      if (const model::SwitchoverRecord* sw = Expected()) {
        ASSERT_EQ(rec->node, sw->to) << "vouched for another node than the switchover's target during "
                                     << model::SwitchoverPhaseName(sw->phase) << ": " << master->data;
      }
      const auto n = world_.nodes.find(rec->node);
      ASSERT_TRUE(n != world_.nodes.end() && n->second.up && !n->second.in_recovery &&
                  n->second.sysid == kSysid && n->second.timeline == rec->timeline)
          << "voucher " << name << " created or re-affirmed for a master that fails its write check: "
          << master->data;
    }
  }

  // The instance whose round wrote owns the cluster: its candidate znode is the first of the
  // ownership queue (its multi carries a Check of that znode, so no other owner's write can land).
  void CheckWriterLed(std::size_t idx) {
    const std::string own = instances_[idx]->orchestrator->owner_znode("main");
    ASSERT_FALSE(own.empty()) << "orch-" << idx << " wrote without an ownership candidate";
    const std::vector<model::OwnerCandidate> queue = model::SortedCandidates(server_->PeekChildren(kOwners));
    ASSERT_FALSE(queue.empty());
    ASSERT_EQ(kMain.OwnerCandidate(queue.front().name), own) << "orch-" << idx << " wrote while not the owner";
    ASSERT_TRUE(instances_[idx]->orchestrator->owned_clusters().count("main") > 0);
  }

  // The master znode changed during instance idx's round: the orchestrator wrote it.
  void OrchestratorWrote(std::size_t idx) {
    auto master = server_->Peek(kMaster);
    CheckWriterLed(idx);
    if (::testing::Test::HasFatalFailure()) return;
    auto rec = model::MasterRecord::FromJson(master->data);
    ASSERT_TRUE(rec.ok()) << "an orchestrator wrote an unreadable record: " << rec.status().ToString();
    if (rec->state == model::MasterState::kNoMaster) {
      // Only the initial record of a (re)created znode.
      ASSERT_EQ(rec->epoch, 0u) << master->data;
      ASSERT_EQ(master->stat.version, 0) << "an orchestrator rewrote a record to no-master: " << master->data;
      return;
    }
    ASSERT_FALSE(paused_) << "a paused cluster changed: " << master->data;
    if (const model::SwitchoverRecord* sw = Expected()) {
      ASSERT_EQ(rec->node, sw->to) << "published another node than the switchover's target during "
                                   << model::SwitchoverPhaseName(sw->phase) << ": " << master->data;
      ++switchover_publishes_;
    }
    ASSERT_EQ(rec->decided_by, "orch-" + std::to_string(idx)) << master->data;
    const SimNode& n = world_.nodes.at(rec->node);
    ASSERT_TRUE(n.up && !n.in_recovery) << "published a node that is down or in recovery: " << master->data;
    ASSERT_EQ(n.sysid, kSysid) << "published a foreign database: " << master->data;
    ASSERT_EQ(rec->timeline, n.timeline) << master->data;
    ASSERT_GE(rec->timeline, last_timeline_) << "timeline went down: " << master->data;
    // Epochs are never reused, also across deleted znodes and lost history; every epoch is at
    // most the zxid of the write that made it (docs/decision-rules.md).
    ASSERT_GT(rec->epoch, max_epoch_) << "epoch reused or gone down: " << master->data;
    ASSERT_LE(static_cast<std::int64_t>(rec->epoch), master->stat.mzxid) << "epoch above its zxid: " << master->data;
    // The first epoch is above the initial record's mzxid (docs/decision-rules.md, "Epochs");
    // afterwards, without hostile writes, epochs go up by one.
    if (last_epoch_ != 0 && !hostile_since_publish_ && !master_deleted_ && !history_deleted_) {
      ASSERT_EQ(rec->epoch, last_epoch_ + 1) << "epochs go up by one on the normal path: " << master->data;
    }
    // Stickiness: a verified published master that still passes its write check keeps its place
    // against any other node on its timeline (the writes it acknowledged are not on the other).
    if (last_verified_ && rec->node != last_verified_->node && rec->timeline == last_verified_->timeline) {
      const SimNode& p = world_.nodes.at(last_verified_->node);
      ASSERT_FALSE(p.up && !p.in_recovery && p.sysid == kSysid && p.timeline == last_verified_->timeline)
          << "replaced the verified master " << last_verified_->node << " (still writable on timeline "
          << p.timeline << ") by " << rec->node << " on the same timeline: acknowledged writes lost: "
          << master->data;
    }
    if (hostile_since_publish_ || master_deleted_ || history_deleted_) ++repairs_;
    written_.push_back(Written{master->data, *rec});
    last_verified_ = *rec;
    last_epoch_ = rec->epoch;
    max_epoch_ = std::max(max_epoch_, rec->epoch);
    last_timeline_ = rec->timeline;
    record_epochs_.insert(rec->epoch);
    hostile_since_publish_ = master_deleted_ = history_deleted_ = false;
    ++publishes_;
  }

  // New history entries (history may have been deleted and recreated: entries are told apart by
  // their czxid). Every publish entry's epoch is above every earlier one; a withdraw entry names
  // the record it stopped vouching for: an epoch already published, never a record of its own.
  void ScanHistory() {
    std::vector<std::pair<std::int64_t, std::string>> fresh;
    for (const std::string& h : server_->PeekChildren(kHistory)) {
      auto node = server_->Peek(std::string(kHistory) + "/" + h);
      if (node && node->stat.czxid > history_zxid_) fresh.emplace_back(node->stat.czxid, node->data);
    }
    std::sort(fresh.begin(), fresh.end());
    for (const auto& f : fresh) {
      history_zxid_ = f.first;
      auto entry = model::HistoryEntry::FromJson(f.second);
      ASSERT_TRUE(entry.ok()) << entry.status().ToString();
      if (entry->action == "switchover") {
        ASSERT_TRUE(entry->switchover.has_value()) << "a switchover entry without its switchover";
        ASSERT_TRUE(entry->master == std::nullopt) << "a switchover entry carries a new record";
        ++switchover_entries_;
        continue;
      }
      if (entry->action == "withdraw") {
        ASSERT_FALSE(entry->master.has_value()) << "a withdraw entry carries a new record";
        ASSERT_FALSE(entry->reasons.empty()) << "a withdraw entry without its reason";
        ASSERT_TRUE(history_epochs_.count(entry->epoch) > 0)
            << "withdrew a voucher for unpublished epoch " << entry->epoch;
        ++withdrawals_;
        continue;
      }
      ASSERT_EQ(entry->action, "publish");
      ASSERT_GT(entry->epoch, max_history_epoch_) << "a publish entry's epoch is not above every earlier one";
      max_history_epoch_ = entry->epoch;
      history_epochs_.insert(entry->epoch);
    }
  }

  // A consumer that counts only vouchers bound to the record it reads (model::BoundVouchers)
  // never sees as vouched a record the leader did not verify: the vouched record names the master
  // (node, address, timeline, epoch) of the last record an orchestrator wrote.
  void CheckConsumer() {
    auto master = server_->Peek(kMaster);
    if (!master) return;
    auto rec = model::MasterRecord::FromJson(master->data);
    if (!rec.ok()) return;  // unreadable: nothing is vouched
    const std::vector<std::string> bound = model::BoundVouchers(server_->PeekChildren(kMaster), *rec, master->data);
    if (bound.empty()) return;
    ++vouched_reads_;
    ASSERT_FALSE(written_.empty()) << "a consumer counts as vouched (by " << bound[0]
                                   << ") a record before any orchestrator wrote one: " << master->data;
    const model::MasterRecord& last = written_.back().record;
    ASSERT_TRUE(rec->node == last.node && rec->host == last.host && rec->port == last.port &&
                rec->timeline == last.timeline && rec->epoch == last.epoch)
        << "a consumer counts as vouched (by " << bound[0] << ") a record no orchestrator verified: "
        << master->data << "; the last record an orchestrator wrote: " << written_.back().bytes;
  }

  // Rounds in which the verified master and another node are writable on one timeline.
  void CountContest() {
    if (!last_verified_) return;
    const SimNode& p = world_.nodes.at(last_verified_->node);
    if (!p.up || p.in_recovery || p.timeline != last_verified_->timeline) return;
    for (const auto& [name, n] : world_.nodes) {
      if (name != last_verified_->node && n.sysid == kSysid && n.up && !n.in_recovery && n.timeline == p.timeline) {
        ++contested_rounds_;
        return;
      }
    }
  }

  // `pgherald switchover`'s record (docs/switchover.md), drawn from its own generator so that the
  // other events of a schedule stay what they were: a switchover from the published master (or
  // any node) to another node in a random phase, with a deadline up to 20 s away; in stop..publish
  // the old primary is sometimes stopped, in promote and publish the target sometimes promoted
  // (what the pollers would do). While it is expected (active, hold..publish) no orchestrator may
  // publish or vouch for anybody but `to` (OrchestratorWrote, CheckVouchedNow).
  void SwitchoverEvent() {
    auto pick = [this](int n) { return std::uniform_int_distribution<int>(0, n - 1)(switchover_rng_); };
    static const char* kNames[] = {"node1", "node2", "node3"};
    model::SwitchoverRecord r;
    r.id = "sw-" + std::to_string(++switchovers_);
    auto master = server_->Peek(kMaster);
    auto rec = master ? model::MasterRecord::FromJson(master->data) : StatusOr<model::MasterRecord>(
                                                                         NotFound("no master"));
    r.from = rec.ok() && rec->state == model::MasterState::kOk && world_.nodes.count(rec->node) > 0 &&
                     rec->node != "alien" && pick(4) != 0
                 ? rec->node
                 : kNames[pick(3)];
    do {
      r.to = kNames[pick(3)];
    } while (r.to == r.from);
    for (const char* n : kNames) {
      if (n != r.from && n != r.to) r.siblings.push_back(n);
    }
    r.phase = static_cast<model::SwitchoverPhase>(pick(11));
    const std::int64_t now = model::ToWallMillis(clock_.WallNow());
    r.started_at_ms = now;
    r.phase_at_ms = now;
    r.deadline_at_ms = now + pick(20000);
    r.max_hold_ms = 2000;
    auto admin = Admin();
    (void)zk::EnsurePath(*admin, kControl);
    if (!admin->Set(kMain.Switchover(), r.ToJson(), -1).ok()) {
      (void)admin->Create(kMain.Switchover(), r.ToJson(), zk::CreateMode::kPersistent);
    }
    admin->Close();
    using P = model::SwitchoverPhase;
    const bool stopped = r.phase == P::kStop || r.phase == P::kPromote || r.phase == P::kPublish;
    const bool promoted = r.phase == P::kPromote || r.phase == P::kPublish;
    if (stopped && pick(2) == 0) world_.nodes[r.from].up = false;
    SimNode& to = world_.nodes[r.to];
    if (promoted && pick(2) == 0 && to.up && to.in_recovery) {
      to.timeline = world_.MaxTimeline() + 1;
      to.in_recovery = false;
    }
    switchover_ = r;
    events_.push_back(22);
  }

  // The switchover the orchestrators must expect now (docs/decision-rules.md, "Switchover").
  const model::SwitchoverRecord* Expected() const {
    if (!switchover_ || !model::SwitchoverActive(*switchover_, model::ToWallMillis(clock_.WallNow()))) {
      return nullptr;
    }
    using P = model::SwitchoverPhase;
    const P p = switchover_->phase;
    return p == P::kHold || p == P::kStop || p == P::kPromote || p == P::kPublish ? &*switchover_
                                                                                  : nullptr;
  }

  void Run(int steps) {
    for (int s = 0; s < steps && !::testing::Test::HasFatalFailure(); ++s) {
      if (std::uniform_int_distribution<int>(0, 19)(switchover_rng_) == 0) SwitchoverEvent();
      if (Coin(0.6)) Fault();
      clock_.Advance(milliseconds(Pick(600)));
      Round(static_cast<std::size_t>(Pick(3)));
    }
    if (::testing::Test::HasFatalFailure()) return;
    Heal();
    if (::testing::Test::HasFatalFailure()) return;
    // Every record an orchestrator published has its publish entry and no entry is without its
    // record (entries are scanned after every round, before any deletion).
    ASSERT_EQ(record_epochs_, history_epochs_);
  }

  // Everything heals: the newest node becomes the one primary; it must end up published, vouched
  // by a voucher bound to its record.
  void Heal() {
    SetPaused(false);
    if (switchover_) {  // it ended (the coordinator wrote a terminal phase)
      switchover_->phase = model::SwitchoverPhase::kAborted;
      auto admin = Admin();
      (void)admin->Set(kMain.Switchover(), switchover_->ToJson(), -1);
      admin->Close();
    }
    for (auto& inst : instances_) {
      if (inst->session != nullptr) inst->session->Reconnect();
    }
    active_.fill(true);
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
    CheckHealed(primary, tl);
    if (::testing::Test::HasFatalFailure() || Coin(0.5)) return;
    // One more hostile write once all is quiet: the leader repairs it, keeping the same master.
    const int fault = 12 + Pick(4);
    if (Disabled(fault) || (fault == 13 && !WithOpenFindings())) return;
    events_.push_back(fault);
    Hostile(fault);
    NotOrchestrators();
    for (int r = 0; r < 5; ++r) {
      clock_.Advance(milliseconds(1000));
      for (std::size_t i = 0; i < instances_.size(); ++i) Round(i);
      if (::testing::Test::HasFatalFailure()) return;
    }
    CheckHealed(primary, tl);
  }

  void CheckHealed(const std::string& primary, std::uint32_t tl) {
    auto master = server_->Peek(kMaster);
    ASSERT_TRUE(master.has_value()) << "the master znode was never recreated";
    auto rec = model::MasterRecord::FromJson(master->data);
    ASSERT_TRUE(rec.ok()) << "the master record was never repaired: " << master->data;
    ASSERT_EQ(rec->node, primary) << master->data;
    ASSERT_EQ(rec->timeline, tl) << master->data;
    ASSERT_FALSE(model::BoundVouchers(server_->PeekChildren(kMaster), *rec, master->data).empty())
        << "healed master has no bound voucher: " << master->data;
    // One owner, the member the hash picks among the three.
    int owners = 0;
    std::vector<std::string> guids;
    std::string owner;
    for (auto& inst : instances_) {
      guids.push_back(inst->orchestrator->guid());
      if (inst->orchestrator->owned_clusters().count("main") > 0) {
        ++owners;
        owner = inst->orchestrator->guid();
      }
    }
    ASSERT_EQ(owners, 1);
    ASSERT_EQ(owner, PickOwner("main", guids));
  }

  // The fault events drawn so far (Fault()'s case numbers), to describe a failing schedule.
  std::string Events() const {
    static const char* kNames[] = {"kill", "promote", "old-primary-writable", "rejoin", "writes",
                                   "alien", "disconnect", "reconnect", "expire", "fail-next-call",
                                   "clock-jump", "pause", "corrupt-master", "delete-master",
                                   "hand-written-record", "stale-voucher", "same-timeline-promotion",
                                   "same-timeline-promotion", "tick", "tick", "leave", "join",
                                   "switchover"};
    std::string out;
    for (int e : events_) {
      out += out.empty() ? "" : " ";
      out += e < static_cast<int>(std::size(kNames)) ? kNames[e] : "tick";
    }
    return out;
  }

  int publishes() const { return publishes_; }
  int switchover_entries() const { return switchover_entries_; }
  int switchover_publishes() const { return switchover_publishes_; }
  int withdrawals() const { return withdrawals_; }
  int hostile() const { return hostile_; }
  int repairs() const { return repairs_; }
  int same_timeline_promotions() const { return same_timeline_promotions_; }
  int contested_rounds() const { return contested_rounds_; }
  long vouched_reads() const { return vouched_reads_; }
  long voucher_writes() const { return voucher_writes_; }
  long ownership_changes() const {
    long n = 0;
    for (const auto& inst : instances_) n += static_cast<long>(inst->orchestrator->ownership_changes());
    return n;
  }

 private:
  std::mt19937 rng_;
  std::mt19937 switchover_rng_;  // SwitchoverEvent's own draws
  std::optional<model::SwitchoverRecord> switchover_;  // the last record written
  int switchovers_ = 0;
  int switchover_entries_ = 0;
  int switchover_publishes_ = 0;
  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  World world_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::array<bool, 3> active_ = {true, true, true};  // false: left cleanly, runs no rounds
  std::vector<int> events_;
  MasterSeen seen_;
  std::vector<Written> written_;
  std::optional<model::MasterRecord> last_verified_;
  std::uint64_t last_epoch_ = 0;
  std::uint64_t max_epoch_ = 0;
  std::uint64_t max_history_epoch_ = 0;
  std::set<std::uint64_t> record_epochs_;
  std::set<std::uint64_t> history_epochs_;
  std::int64_t history_zxid_ = 0;
  std::uint32_t last_timeline_ = 0;
  bool paused_ = false;
  bool hostile_since_publish_ = false;
  bool master_deleted_ = false;
  bool history_deleted_ = false;
  int publishes_ = 0;
  int withdrawals_ = 0;
  int hostile_ = 0;
  int repairs_ = 0;
  int same_timeline_promotions_ = 0;
  int contested_rounds_ = 0;
  long vouched_reads_ = 0;
  long voucher_writes_ = 0;
};

// 10,000 schedules of 60 steps (then healing), in eight shards so ctest can run them side by side.
// ORCH_SIM_SEED=<n> runs that one schedule alone (with ORCH_SIM_VERBOSE=1 to see its decisions).
class OrchestratorSimulation : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(OrchestratorSimulation, SafetyHoldsOverGeneratedFaultSchedules) {
  config::LoggingConfig quiet;
  quiet.level = std::getenv("ORCH_SIM_VERBOSE") != nullptr ? config::LogLevel::kInfo
                                                           : config::LogLevel::kError;
  log::Init(quiet);
  std::uint32_t schedules = 1250;
  std::uint32_t first = GetParam() * schedules + 1;
  if (const char* one = std::getenv("ORCH_SIM_SEED"); one != nullptr) {
    if (GetParam() != 0) GTEST_SKIP() << "ORCH_SIM_SEED runs in shard 0";
    first = static_cast<std::uint32_t>(std::strtoul(one, nullptr, 10));
    schedules = 1;
  }
  long publishes = 0, withdrawals = 0, hostile = 0, repairs = 0, promotions = 0, contested = 0,
       vouched = 0, voucher_writes = 0, ownership_changes = 0, switchover_entries = 0,
       switchover_publishes = 0;
  for (std::uint32_t seed = first; seed < first + schedules; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation sim(seed);
    sim.Run(60);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "events of seed " << seed << ": " << sim.Events();
      return;
    }
    publishes += sim.publishes();
    withdrawals += sim.withdrawals();
    hostile += sim.hostile();
    repairs += sim.repairs();
    promotions += sim.same_timeline_promotions();
    contested += sim.contested_rounds();
    vouched += sim.vouched_reads();
    voucher_writes += sim.voucher_writes();
    ownership_changes += sim.ownership_changes();
    switchover_entries += sim.switchover_entries();
    switchover_publishes += sim.switchover_publishes();
  }
  // The schedules must exercise publishing (not only refusals), withdrawing vouchers, repairs of
  // hostile content, same-timeline contests and vouched reads.
  EXPECT_GT(publishes, static_cast<long>(schedules));
  if (schedules > 1) {
    EXPECT_GT(withdrawals, 0);
    EXPECT_GT(repairs, 0);
    EXPECT_GT(contested, 0);
    EXPECT_GT(vouched, 0);
    EXPECT_GT(voucher_writes, 0);
    EXPECT_GT(ownership_changes, static_cast<long>(schedules));
    EXPECT_GT(switchover_entries, 0);
    EXPECT_GT(switchover_publishes, 0);
  }
  std::printf("schedules=%u publishes=%ld withdrawals=%ld hostile_writes=%ld repairs=%ld "
              "same_timeline_promotions=%ld contested_rounds=%ld vouched_reads=%ld voucher_writes=%ld "
              "ownership_changes=%ld switchover_entries=%ld switchover_publishes=%ld\n",
              schedules, publishes, withdrawals, hostile, repairs, promotions, contested, vouched,
              voucher_writes, ownership_changes, switchover_entries, switchover_publishes);
}

INSTANTIATE_TEST_SUITE_P(Shards, OrchestratorSimulation, ::testing::Range(0u, 8u));

}  // namespace
}  // namespace pgherald::orchestrator
