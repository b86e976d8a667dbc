// The decision rules (docs/decision-rules.md) as a table of named scenarios, each a sequence of
// rounds played like the orchestrator's shell plays them (a publish becomes the published record of
// the next round), plus property checks over thousands of seeded random inputs.
#include "orchestrator/decision.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

namespace pgherald::orchestrator {
namespace {

using model::FencingState;
using model::Lsn;
using model::MasterRecord;
using model::WriteCheck;
using ::testing::ElementsAreArray;

constexpr char kId[] = "7291851442811934035";
constexpr char kForeign[] = "7000000000000000001";
const MonoTime kStart = MonoTime{} + std::chrono::hours(1);
const WallTime kWallStart = model::FromWallMillis(1700000000000);

// One node as a round sees it, built fluently: Primary("db1", 2).NoPoller().
struct NodeSpec {
  std::string name;
  enum class ProbeKind { kUp, kDown, kNone } probe = ProbeKind::kUp;
  bool writable = true;
  std::uint32_t timeline = 1;
  Lsn lsn = 0x3000000;
  WriteCheck write_check = WriteCheck::kPassed;
  std::string sysid = kId;
  bool poller = true;
  bool poller_reachable = true;
  std::string upstream;
  std::optional<std::int64_t> promoted_at;
  FencingState fencing = FencingState::kNone;

  NodeSpec& NoPoller() {
    poller = false;
    return *this;
  }
  NodeSpec& NoProbe() {
    probe = ProbeKind::kNone;
    return *this;
  }
  NodeSpec& ProbeDown() {
    probe = ProbeKind::kDown;
    return *this;
  }
  NodeSpec& Check(WriteCheck w) {
    write_check = w;
    return *this;
  }
  NodeSpec& Sysid(std::string s) {
    sysid = std::move(s);
    return *this;
  }
  NodeSpec& Promoted(std::int64_t at) {
    promoted_at = at;
    return *this;
  }
  NodeSpec& Fenced() {
    fencing = FencingState::kFenced;
    return *this;
  }
  NodeSpec& At(Lsn l) {
    lsn = l;
    return *this;
  }
};

NodeSpec Primary(std::string name, std::uint32_t timeline) {
  NodeSpec n;
  n.name = std::move(name);
  n.timeline = timeline;
  return n;
}
NodeSpec Standby(std::string name, std::uint32_t timeline, std::string upstream) {
  NodeSpec n = Primary(std::move(name), timeline);
  n.writable = false;
  n.write_check = WriteCheck::kNotRun;
  n.upstream = std::move(upstream);
  return n;
}
// kill -9: neither the orchestrator nor the poller reaches it.
NodeSpec Down(std::string name) {
  NodeSpec n = Primary(std::move(name), 1);
  n.probe = NodeSpec::ProbeKind::kDown;
  n.poller = false;
  return n;
}

MasterRecord Published(std::string node, std::uint32_t timeline, std::uint64_t epoch,
                       Lsn lsn = 0x2000000) {
  MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = std::move(node);
  r.host = "127.0.0.1";
  r.port = 15432;
  r.timeline = timeline;
  r.lsn = lsn;
  r.epoch = epoch;
  r.verified_at_ms = 1600000000000;
  r.decided_by = "orch-0";
  return r;
}

void AddNode(DecisionInput& in, const NodeSpec& n) {
  const bool up = n.probe == NodeSpec::ProbeKind::kUp;
  if (n.probe != NodeSpec::ProbeKind::kNone) {
    model::Probe p;
    p.node = n.name;
    p.host = "127.0.0.1";
    p.port = 15432 + static_cast<int>(n.name.back() - '0');
    p.reachable = up;
    if (up) {
      p.in_recovery = !n.writable;
      p.timeline = n.timeline;
      p.lsn = n.lsn;
      p.system_identifier = n.sysid;
      p.write_check = n.writable ? n.write_check : WriteCheck::kNotRun;
      if (p.write_check == WriteCheck::kFailed) p.write_error = "statement timeout";
    } else {
      p.error = "connection refused";
    }
    p.taken_at_ms = model::ToWallMillis(in.wall_now);
    in.probes[n.name] = {p, in.now};
  }
  if (n.poller) {
    model::NodeObservation o;
    o.node = n.name;
    o.host = "127.0.0.1";
    o.port = 15432 + static_cast<int>(n.name.back() - '0');
    o.reachable = n.poller_reachable && n.fencing != FencingState::kFenced;
    o.in_recovery = !n.writable;
    o.timeline = n.timeline;
    if (n.writable) {
      o.current_lsn = n.lsn;
    } else {
      o.receive_lsn = n.lsn;
      o.replay_lsn = n.lsn;
    }
    o.system_identifier = n.sysid;
    o.upstream_node = n.upstream;
    o.promoted_at_ms = n.promoted_at;
    o.fencing = n.fencing;
    o.seq = 1;
    in.observations[n.name] = {o, in.now};
  }
}

struct Expect {
  Action action;
  std::string chosen;
  std::vector<ReasonCode> reasons;  // reasons[0] is the main reason; the rest must be present
  std::uint64_t epoch;              // the published record's epoch after the round (0: none)
  std::vector<std::string> stale = {};
};

struct Round {
  int at_ms;
  std::vector<NodeSpec> nodes;
  Expect expect;
};

struct Scenario {
  const char* name;
  std::optional<MasterRecord> published;
  std::vector<Round> rounds;
  Policy policy = {};
  std::string identity = kId;
};

Policy Strict() {
  Policy p;
  p.strict_split_brain = true;
  return p;
}
Policy Paused() {
  Policy p;
  p.paused = true;
  return p;
}

// Plays a scenario like the shell: the record of a publish is the published record afterwards.
void Play(const Scenario& s) {
  SCOPED_TRACE(s.name);
  DecisionMemory memory;
  std::optional<MasterRecord> published = s.published;
  for (std::size_t i = 0; i < s.rounds.size(); ++i) {
    const Round& round = s.rounds[i];
    SCOPED_TRACE("round " + std::to_string(i) + " at " + std::to_string(round.at_ms) + " ms");
    DecisionInput in;
    in.cluster = "main";
    in.orchestrator_id = "orch-a";
    in.identity = s.identity;
    in.published = published;
    in.policy = s.policy;
    in.now = kStart + Millis(round.at_ms);
    in.wall_now = kWallStart + Millis(round.at_ms);
    for (const NodeSpec& n : round.nodes) AddNode(in, n);

    const Verdict v = Decide(in, memory);
    const std::string why = FormatReasons(v.reasons);
    EXPECT_EQ(ActionName(v.action), std::string(ActionName(round.expect.action))) << why;
    EXPECT_EQ(v.chosen, round.expect.chosen) << why;
    ASSERT_FALSE(v.reasons.empty());
    if (!round.expect.reasons.empty()) {
      EXPECT_EQ(ReasonCodeName(v.reasons.front().code),
                std::string(ReasonCodeName(round.expect.reasons.front())))
          << why;
      for (ReasonCode code : round.expect.reasons) {
        EXPECT_TRUE(v.HasReason(code)) << "missing " << ReasonCodeName(code) << " in " << why;
      }
    }
    std::vector<std::string> stale;
    for (const StalePrimary& sp : v.stale_primaries) stale.push_back(sp.node);
    EXPECT_THAT(stale, ElementsAreArray(round.expect.stale)) << why;
    EXPECT_EQ(v.record.has_value(), v.action == Action::kPublish);
    if (v.record) {
      EXPECT_EQ(v.record->node, v.chosen);
      EXPECT_EQ(v.record->epoch, (published ? published->epoch : 0) + 1);
      EXPECT_EQ(v.record->decided_by, "orch-a");
      published = v.record;
    }
    EXPECT_EQ(published ? published->epoch : 0, round.expect.epoch) << why;
    // Every verdict can be stored as history and read back.
    const model::HistoryEntry h = ToHistoryEntry(in, v);
    StatusOr<model::HistoryEntry> back = model::HistoryEntry::FromJson(h.ToJson());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, h);
  }
}

using R = ReasonCode;
using A = Action;

const std::vector<Scenario>& Scenarios() {
  static const std::vector<Scenario> scenarios = {
      {"normal steady state",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1), Standby("db2", 1, "db1"), Standby("db3", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 3}},
        {1000,
         {Primary("db1", 1), Standby("db2", 1, "db1"), Standby("db3", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 3}}}},

      {"first master with nothing published waits for the window",
       std::nullopt,
       {{0,
         {Primary("db1", 1), Standby("db2", 1, "db1")},
         {A::kNone, "db1", {R::kCandidatePending}, 0}},
        {4999,
         {Primary("db1", 1), Standby("db2", 1, "db1")},
         {A::kNone, "db1", {R::kCandidatePending}, 0}},
        {5000,
         {Primary("db1", 1), Standby("db2", 1, "db1")},
         {A::kPublish, "db1", {R::kFirstMaster}, 1}},
        {6000,
         {Primary("db1", 1), Standby("db2", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 1}}}},

      {"first master adopts the identity when none is recorded",
       std::nullopt,
       {{0, {Primary("db1", 1)}, {A::kNone, "db1", {R::kCandidatePending}, 0}},
        {5000,
         {Primary("db1", 1)},
         {A::kPublish, "db1", {R::kFirstMaster, R::kIdentityAdopted}, 1}}},
       {},
       ""},

      {"identity unknown and nodes disagree: nothing published, nothing fenced",
       std::nullopt,
       {{0,
         {Primary("db1", 1), Primary("db2", 2).Sysid(kForeign)},
         {A::kNone, "db2", {R::kCandidateUnverified, R::kIdentityConflict}, 0}},
        {9000,
         {Primary("db1", 1), Primary("db2", 2).Sysid(kForeign)},
         {A::kNone, "db2", {R::kCandidateUnverified, R::kIdentityConflict}, 0}}},
       {},
       ""},

      {"primary dead, nobody promoted yet: keep the record, withdraw the voucher",
       Published("db1", 1, 3),
       {{0,
         {Down("db1"), Standby("db2", 1, ""), Standby("db3", 1, "")},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kMasterUnverified}, 3}}}},

      {"promotion to a later timeline is published at once",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1), Standby("db2", 1, "db1"), Standby("db3", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 3}},
        {1000,
         {Down("db1"), Standby("db2", 1, ""), Standby("db3", 1, "")},
         {A::kWithdraw, "", {R::kNoWritableNode}, 3}},
        {2500,
         {Down("db1"), Primary("db2", 2).Promoted(1700000002400), Standby("db3", 2, "db2")},
         {A::kPublish, "db2", {R::kLaterTimeline}, 4}},
        {3500,
         {Down("db1"), Primary("db2", 2).Promoted(1700000002400), Standby("db3", 2, "db2")},
         {A::kKeep, "db2", {R::kMasterVerified}, 4}}}},

      {"two writables on different timelines: the higher wins, the loser is stale",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kPublish, "db2", {R::kLaterTimeline, R::kSplitBrain, R::kStalePrimary}, 4, {"db1"}}},
        {1000,
         {Primary("db1", 1), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kKeep, "db2", {R::kMasterVerified, R::kBelowPublishedTimeline}, 4, {"db1"}}}}},

      {"restarted old primary on the old timeline is never published and is stale",
       Published("db2", 2, 4),
       {{0,
         {Primary("db1", 1), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kKeep,
          "db2",
          {R::kMasterVerified, R::kSplitBrain, R::kBelowPublishedTimeline},
          4,
          {"db1"}}},
        // The real master dies too: the old one is the only writable node, still never published.
        {1000,
         {Primary("db1", 1), Down("db2"), Standby("db3", 2, "")},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kBelowPublishedTimeline}, 4, {"db1"}}},
        {60000,
         {Primary("db1", 1), Down("db2"), Standby("db3", 2, "")},
         {A::kWithdraw, "", {R::kNoWritableNode}, 4, {"db1"}}}}},

      {"poller dead but master alive: the probe decides",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1).NoPoller(), Standby("db2", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 3}}}},

      {"orchestrator cut off from a master its poller still sees: unverified",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1).ProbeDown(), Standby("db2", 1, "db1")},
         {A::kWithdraw, "db1", {R::kMasterUnverified, R::kUnreachable}, 3}}}},

      {"foreign system identifier is never published nor fenced",
       Published("db1", 1, 3),
       {{0,
         {Down("db1"), Primary("db9", 5).Sysid(kForeign)},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kForeignIdentity}, 3}},
        {10000,
         {Down("db1"), Primary("db9", 5).Sysid(kForeign)},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kForeignIdentity}, 3}}}},

      {"published master re-initialized with another identity loses its voucher",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1).Sysid(kForeign), Standby("db2", 1, "")},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kMasterUnverified}, 3}}}},

      {"paused cluster is never changed",
       Published("db1", 1, 3),
       {{0,
         {Down("db1"), Primary("db2", 2), Primary("db3", 1)},
         {A::kNone, "db2", {R::kPaused}, 3}},
        {60000,
         {Down("db1"), Primary("db2", 2), Primary("db3", 1)},
         {A::kNone, "db2", {R::kPaused}, 3}}},
       Paused()},

      {"flapping candidate is not published; a stable one is, after the window",
       Published("db1", 2, 5),
       {{0,
         {Down("db1"), Primary("db2", 2), Standby("db3", 2, "")},
         {A::kWithdraw, "db2", {R::kCandidatePending, R::kMasterUnverified}, 5}},
        {3000,
         {Down("db1"), Standby("db2", 2, ""), Primary("db3", 2)},
         {A::kWithdraw, "db3", {R::kCandidatePending}, 5}},
        {6000,
         {Down("db1"), Primary("db2", 2), Standby("db3", 2, "")},
         {A::kWithdraw, "db2", {R::kCandidatePending}, 5}},
        {9000,
         {Down("db1"), Primary("db2", 2), Standby("db3", 2, "")},
         {A::kWithdraw, "db2", {R::kCandidatePending}, 5}},
        {11000,
         {Down("db1"), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kPublish, "db2", {R::kCandidateConfirmed}, 6}}}},

      {"a failed write check restarts the window",
       Published("db1", 2, 5),
       {{0, {Down("db1"), Primary("db2", 2)}, {A::kWithdraw, "db2", {R::kCandidatePending}, 5}},
        {3000,
         {Down("db1"), Primary("db2", 2).Check(WriteCheck::kFailed)},
         {A::kWithdraw, "db2", {R::kCandidateUnverified, R::kWriteCheckFailed}, 5}},
        {6000, {Down("db1"), Primary("db2", 2)}, {A::kWithdraw, "db2", {R::kCandidatePending}, 5}},
        {11000,
         {Down("db1"), Primary("db2", 2)},
         {A::kPublish, "db2", {R::kCandidateConfirmed}, 6}}}},

      {"write check failed on a later timeline: not published until it passes",
       Published("db1", 1, 3),
       {{0,
         {Down("db1"), Primary("db2", 2).Check(WriteCheck::kFailed)},
         {A::kWithdraw, "db2", {R::kCandidateUnverified, R::kWriteCheckFailed}, 3}},
        {500,
         {Down("db1"), Primary("db2", 2).Check(WriteCheck::kNotRun)},
         {A::kWithdraw, "db2", {R::kCandidateUnverified, R::kWriteCheckMissing}, 3}},
        {1000, {Down("db1"), Primary("db2", 2)}, {A::kPublish, "db2", {R::kLaterTimeline}, 4}}}},

      {"write check failed on the published master withdraws the voucher",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1).Check(WriteCheck::kFailed), Standby("db2", 1, "db1")},
         {A::kWithdraw, "db1", {R::kMasterUnverified, R::kWriteCheckFailed}, 3}},
        {1000,
         {Primary("db1", 1), Standby("db2", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 3}}}},

      {"published master demoted to a standby",
       Published("db1", 1, 3),
       {{0,
         {Standby("db1", 1, ""), Standby("db2", 1, "")},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kMasterUnverified}, 3}}}},

      {"strict mode waits for the writable loser to be fenced",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kWithdraw, "db2", {R::kAwaitingFence, R::kStalePrimary}, 3, {"db1"}}},
        {60000,
         {Primary("db1", 1), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kWithdraw, "db2", {R::kAwaitingFence}, 3, {"db1"}}},
        {61000,
         {Primary("db1", 1).ProbeDown().Fenced(), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kPublish, "db2", {R::kLaterTimeline}, 4}}},
       Strict()},

      {"strict mode waits out the self-fence deadline of an unreachable old master",
       Published("db1", 1, 3),
       {{0,
         {Primary("db1", 1), Standby("db2", 1, "db1")},
         {A::kKeep, "db1", {R::kMasterVerified}, 3}},
        {1000, {Down("db1"), Primary("db2", 2)}, {A::kWithdraw, "db2", {R::kAwaitingFence}, 3}},
        {30999, {Down("db1"), Primary("db2", 2)}, {A::kWithdraw, "db2", {R::kAwaitingFence}, 3}},
        {31000, {Down("db1"), Primary("db2", 2)}, {A::kPublish, "db2", {R::kLaterTimeline}, 4}}},
       Strict()},

      {"strict mode: an old master seen again as a standby no longer blocks",
       Published("db1", 1, 3),
       {{0, {Down("db1"), Primary("db2", 2)}, {A::kWithdraw, "db2", {R::kAwaitingFence}, 3}},
        {2000,
         {Standby("db1", 2, "db2"), Primary("db2", 2)},
         {A::kPublish, "db2", {R::kLaterTimeline}, 4}}},
       Strict()},

      {"lower timeline never replaces a higher published one",
       Published("db2", 3, 7),
       {{0,
         {Primary("db1", 2), Down("db2")},
         {A::kWithdraw, "", {R::kNoWritableNode, R::kBelowPublishedTimeline}, 7, {"db1"}}},
        {10000,
         {Primary("db1", 2), Down("db2")},
         {A::kWithdraw, "", {R::kNoWritableNode}, 7, {"db1"}}},
        {100000,
         {Primary("db1", 2), Down("db2")},
         {A::kWithdraw, "", {R::kNoWritableNode}, 7, {"db1"}}}}},

      // A second out-of-band promotion on the same timeline must not throw away the writes the
      // verified published master acknowledged: the later promotion is the stale one.
      {"same timeline: the verified published master stays, a later promotion is stale",
       Published("db1", 2, 4),
       {{0,
         {Primary("db1", 2).Promoted(1000), Primary("db2", 2).Promoted(2000)},
         {A::kKeep, "db1", {R::kMasterVerified, R::kSplitBrain, R::kSameTimelineStalePrimary}, 4, {"db2"}}},
        {100000,
         {Primary("db1", 2).Promoted(1000), Primary("db2", 2).Promoted(2000)},
         {A::kKeep, "db1", {R::kMasterVerified, R::kSplitBrain, R::kSameTimelineStalePrimary}, 4, {"db2"}}}}},

      {"same timeline: a published master failing its write check is replaced by the later "
       "promotion (after the window)",
       Published("db1", 2, 4),
       {{0,
         {Primary("db1", 2).Promoted(1000).Check(WriteCheck::kFailed),
          Primary("db2", 2).Promoted(2000)},
         {A::kWithdraw,
          "db2",
          {R::kCandidatePending, R::kSplitBrain, R::kStalePrimary},
          4,
          {"db1"}}},
        {5000,
         {Primary("db1", 2).Promoted(1000).Check(WriteCheck::kFailed),
          Primary("db2", 2).Promoted(2000)},
         {A::kPublish, "db2", {R::kCandidateConfirmed}, 5, {"db1"}}}}},

      {"same timeline and promotion: the one the standbys follow wins",
       std::nullopt,
       {{0,
         {Primary("db1", 2), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kNone, "db2", {R::kCandidatePending, R::kSplitBrain}, 0, {"db1"}}},
        {5000,
         {Primary("db1", 2), Primary("db2", 2), Standby("db3", 2, "db2")},
         {A::kPublish, "db2", {R::kFirstMaster}, 1, {"db1"}}}}},

      {"a full tie keeps the published master",
       Published("db1", 2, 4),
       {{0,
         {Primary("db1", 2), Primary("db2", 2)},
         {A::kKeep, "db1", {R::kMasterVerified, R::kSplitBrain}, 4, {"db2"}}}}},

      {"a full tie without the published master is undecided: nobody is fenced",
       std::nullopt,
       {{0,
         {Primary("db1", 2), Primary("db2", 2), Primary("db3", 1)},
         {A::kNone, "", {R::kSplitBrainUndecided, R::kSplitBrain}, 0, {"db3"}}}}},

      {"no-master record: the first publish makes epoch 1",
       MasterRecord{},
       {{0, {Primary("db1", 1)}, {A::kNone, "db1", {R::kCandidatePending}, 0}},
        {5000, {Primary("db1", 1)}, {A::kPublish, "db1", {R::kFirstMaster}, 1}}}},

      {"the published master moving to a later timeline is republished at once",
       Published("db1", 1, 3),
       {{0, {Primary("db1", 2)}, {A::kPublish, "db1", {R::kLaterTimeline}, 4}}}},
  };
  return scenarios;
}

class DecisionScenarioTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(DecisionScenarioTest, Plays) { Play(Scenarios()[GetParam()]); }

INSTANTIATE_TEST_SUITE_P(Table, DecisionScenarioTest,
                         ::testing::Range<std::size_t>(0, Scenarios().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& param) {
                           std::string name = Scenarios()[param.param].name;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return std::to_string(param.param) + "_" + name;
                         });

// ---- focused checks ----

DecisionInput BaseInput(int at_ms) {
  DecisionInput in;
  in.cluster = "main";
  in.orchestrator_id = "orch-a";
  in.identity = kId;
  in.now = kStart + Millis(at_ms);
  in.wall_now = kWallStart + Millis(at_ms);
  return in;
}

TEST(DecisionTest, DataLossEstimateAtFailover) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3, 0x2000);
  AddNode(in, Primary("db1", 1).At(0x3000));
  AddNode(in, Standby("db2", 1, "db1").At(0x2800));
  ASSERT_EQ(Decide(in, memory).action, Action::kKeep);

  in = BaseInput(2000);
  in.published = Published("db1", 1, 3, 0x2000);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 2).At(0x2900));
  const Verdict v = Decide(in, memory);
  ASSERT_EQ(v.action, Action::kPublish);
  ASSERT_TRUE(v.data_loss.has_value());
  EXPECT_EQ(v.data_loss->old_master, "db1");
  EXPECT_EQ(v.data_loss->old_master_last_lsn, 0x3000u);
  EXPECT_EQ(v.data_loss->new_master, "db2");
  EXPECT_EQ(v.data_loss->new_master_lsn, 0x2800u);
  EXPECT_EQ(v.data_loss->gap_bytes, 0x800u);
  EXPECT_EQ(v.record->lsn, 0x2900u);
  EXPECT_EQ(v.record->timeline, 2u);
  EXPECT_EQ(v.record->port, 15434);
  EXPECT_EQ(v.record->reason, "later_timeline");
}

TEST(DecisionTest, NoDataLossWhenTheNewMasterCaughtUp) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3, 0x2000);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 2).At(0x9000));
  const Verdict v = Decide(in, memory);
  ASSERT_TRUE(v.data_loss.has_value());
  EXPECT_EQ(v.data_loss->old_master_last_lsn, 0x2000u);  // the record's LSN is the floor
  EXPECT_EQ(v.data_loss->gap_bytes, 0u);
}

TEST(DecisionTest, StaleProbesAndObservationsAreIgnored) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  AddNode(in, Primary("db1", 1));
  in.probes["db1"].taken_at = in.now - Millis(3001);
  in.observations["db1"].received_at = in.now - Millis(10001);
  const Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
  EXPECT_TRUE(v.HasReason(ReasonCode::kNoWritableNode));
}

TEST(DecisionTest, EvidenceNamesEveryNodeAndRole) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  AddNode(in, Primary("db1", 1));
  AddNode(in, Primary("db2", 2));
  AddNode(in, Standby("db3", 2, "db2").NoProbe());
  AddNode(in, Primary("db9", 1).Sysid(kForeign));
  AddNode(in, Down("db4"));
  const Verdict v = Decide(in, memory);
  std::map<std::string, model::NodeEvidence> by_node;
  for (const auto& e : v.evidence) by_node[e.node] = e;
  ASSERT_EQ(by_node.size(), 5u);
  EXPECT_EQ(by_node["db1"].role, "stale-primary");
  EXPECT_EQ(by_node["db2"].role, "master");
  EXPECT_EQ(by_node["db2"].followers, 1);
  EXPECT_EQ(by_node["db3"].role, "standby");
  EXPECT_FALSE(by_node["db3"].probed);
  EXPECT_EQ(by_node["db9"].role, "foreign");
  EXPECT_EQ(by_node["db4"].role, "down");
  EXPECT_THAT(by_node["db4"].notes, ::testing::Contains("unreachable"));
}

// Issue 12, finding 1: the same-timeline loser is reported stale in the verdict, the evidence
// (role stale-primary, note same_timeline_stale_primary) and the history entry, and never published.
TEST(DecisionTest, SameTimelineLoserIsReportedStaleInHistory) {
  DecisionMemory memory;
  for (int round = 0; round < 3; ++round) {
    DecisionInput in = BaseInput(round * 10000);
    in.published = Published("db1", 2, 4);
    AddNode(in, Primary("db1", 2).Promoted(1000));
    AddNode(in, Primary("db2", 2).Promoted(9000));  // a later, out-of-band promotion
    const Verdict v = Decide(in, memory);
    ASSERT_EQ(v.action, Action::kKeep) << FormatReasons(v.reasons);
    ASSERT_EQ(v.stale_primaries.size(), 1u);
    EXPECT_EQ(v.stale_primaries[0].node, "db2");
    EXPECT_EQ(v.stale_primaries[0].code, ReasonCode::kSameTimelineStalePrimary);
    const model::HistoryEntry h = ToHistoryEntry(in, v);
    EXPECT_EQ(h.stale_primaries, std::vector<std::string>{"db2"});
    bool reason_named = false;
    for (const auto& r : h.reasons) reason_named |= r.code == "same_timeline_stale_primary" && r.node == "db2";
    EXPECT_TRUE(reason_named) << h.ToJson();
    for (const auto& e : h.evidence) {
      if (e.node != "db2") continue;
      EXPECT_EQ(e.role, "stale-primary");
      EXPECT_THAT(e.notes, ::testing::Contains("same_timeline_stale_primary"));
    }
  }
}

// Issue 12, drill 4 (quorum loss and return): the published master on timeline 1 came back
// writable and passes its write check, the promoted node is out of the orchestrator's reach, but a
// standby follows it on timeline 2. Keeping (and so re-affirming) the old record would reopen the
// consumers' routes to the stale node: the voucher is withdrawn instead.
TEST(DecisionTest, PublishedMasterBehindAHigherTimelineIsNotKept) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  AddNode(in, Primary("db1", 1));
  AddNode(in, Down("db2"));
  AddNode(in, Standby("db3", 2, "db2"));
  const Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
  EXPECT_TRUE(v.HasReason(ReasonCode::kMasterUnverified)) << FormatReasons(v.reasons);
  EXPECT_FALSE(v.record.has_value());

  // Without a node ahead, the same published master is kept.
  DecisionMemory fresh;
  in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  AddNode(in, Primary("db1", 1));
  AddNode(in, Down("db2"));
  AddNode(in, Standby("db3", 1, "db1"));
  EXPECT_EQ(Decide(in, fresh).action, Action::kKeep);
}

// Repair: the record read is not trusted. A verified winner is published at once (no window),
// even the node the last backed record named, with an epoch above the floor; the untrusted
// content never counts (here the backed record's timeline is the floor, not a forged one).
TEST(DecisionTest, RepairPublishesTheVerifiedWinnerAtOnceAboveTheEpochFloor) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.repair = true;
  in.epoch_floor = 500;
  in.published = Published("db1", 1, 3);  // the last record history backs
  AddNode(in, Primary("db1", 1));
  AddNode(in, Standby("db2", 1, "db1"));
  Verdict v = Decide(in, memory);
  ASSERT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
  EXPECT_EQ(v.record->node, "db1");
  EXPECT_EQ(v.record->epoch, 501u);
  EXPECT_EQ(v.record->reason, "master_repaired");
  // Without the repair flag the same input keeps the record.
  in.repair = false;
  EXPECT_EQ(Decide(in, memory).action, Action::kKeep);
  // Nothing verifies: nothing is written (the record is left, no voucher).
  in = BaseInput(1000);
  in.repair = true;
  in.epoch_floor = 500;
  in.published = Published("db1", 1, 3);
  AddNode(in, Down("db1"));
  AddNode(in, Standby("db2", 1, "db1"));
  v = Decide(in, memory);
  EXPECT_NE(v.action, Action::kPublish);
  // A backed record's timeline still floors the repair: a lower timeline is not published.
  in = BaseInput(2000);
  in.repair = true;
  in.published = Published("db1", 3, 3);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 2));
  EXPECT_NE(Decide(in, memory).action, Action::kPublish);
}

// accept-timeline: a lower timeline is published over the unreachable published master only with
// an acceptance naming the published timeline, and the history entry says who and why.
TEST(DecisionTest, AcceptanceOfALowerTimelinePublishesItWithWhoAndWhy) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 3, 7);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 2));
  Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw);
  EXPECT_TRUE(v.HasReason(ReasonCode::kBelowPublishedTimeline, "db2"));
  in.acceptance = DecisionInput::Acceptance{2, "bob", "wrong timeline", 1};  // not the published one
  EXPECT_EQ(Decide(in, memory).action, Action::kWithdraw);
  in.acceptance = DecisionInput::Acceptance{3, "alice", "db1 is gone for good", 1700000000000};
  v = Decide(in, memory);
  ASSERT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
  EXPECT_TRUE(v.acceptance_used);
  EXPECT_EQ(v.record->node, "db2");
  EXPECT_EQ(v.record->epoch, 8u);
  EXPECT_EQ(v.record->reason, "operator_accepted_lower_timeline");
  const model::HistoryEntry h = ToHistoryEntry(in, v);
  ASSERT_FALSE(h.reasons.empty());
  EXPECT_NE(h.reasons[0].text.find("alice"), std::string::npos);
  EXPECT_NE(h.reasons[0].text.find("db1 is gone for good"), std::string::npos);
}

TEST(DecisionTest, WriteCheckTargetsOnlyPossibleWinners) {
  DecisionInput in = BaseInput(0);
  in.published = Published("db2", 2, 4);
  AddNode(in, Primary("db1", 1).Check(WriteCheck::kNotRun));  // below the published timeline
  AddNode(in, Primary("db2", 2).Check(WriteCheck::kNotRun));
  AddNode(in, Primary("db3", 3).Check(WriteCheck::kNotRun));
  AddNode(in, Standby("db4", 3, "db3"));
  AddNode(in, Primary("db9", 9).Sysid(kForeign));
  EXPECT_THAT(WriteCheckTargets(in), ElementsAreArray({"db3"}));
  // db3's poller and db4's probe still show timeline 3: db2 cannot win.
  in.probes.erase("db3");
  EXPECT_TRUE(WriteCheckTargets(in).empty());
  in.observations.erase("db3");
  in.probes.erase("db4");
  in.observations.erase("db4");
  EXPECT_THAT(WriteCheckTargets(in), ElementsAreArray({"db2"}));
}

// Issue 12, sim finding 1: an epoch never wraps. With 2^64-1 to go above (an authoritative record
// or the floor), nothing is published and the verdict says why.
TEST(DecisionTest, EpochNeverWrapsToZero) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, UINT64_MAX);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 2));
  Verdict v = Decide(in, memory);
  EXPECT_NE(v.action, Action::kPublish);
  EXPECT_FALSE(v.record.has_value());
  ASSERT_FALSE(v.reasons.empty());
  EXPECT_EQ(v.reasons[0].code, ReasonCode::kEpochExhausted) << FormatReasons(v.reasons);
  // The same through the floor of a repair.
  in = BaseInput(1000);
  in.repair = true;
  in.epoch_floor = UINT64_MAX;
  AddNode(in, Primary("db2", 2));
  v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kNone);
  EXPECT_TRUE(v.HasReason(ReasonCode::kEpochExhausted)) << FormatReasons(v.reasons);
  // One below the maximum is still usable.
  in.epoch_floor = UINT64_MAX - 1;
  v = Decide(in, memory);
  ASSERT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
  EXPECT_EQ(v.record->epoch, UINT64_MAX);
}

// Issue 12, sim finding 3: with record and history lost, a node on a later timeline (even a
// standby, even seen only by its poller) shows that the writable node below it was left behind:
// it is reported below_cluster_timeline, not write-checked, and never published.
TEST(DecisionTest, WritableNodeBelowTheClusterTimelineIsNeverPublished) {
  for (const bool probed : {true, false}) {
    DecisionMemory memory;
    DecisionInput in = BaseInput(0);
    in.repair = true;  // nothing backed: the record and history were deleted
    in.epoch_floor = 40;
    AddNode(in, Primary("db1", 1));
    AddNode(in, probed ? Standby("db2", 2, "") : Standby("db2", 2, "").NoProbe());
    EXPECT_TRUE(WriteCheckTargets(in).empty());
    for (int round = 0; round < 3; ++round) {
      in.now = kStart + Millis(round * 10000);
      for (auto& entry : in.probes) entry.second.taken_at = in.now;
      for (auto& entry : in.observations) entry.second.received_at = in.now;
      const Verdict v = Decide(in, memory);
      EXPECT_EQ(v.action, Action::kNone) << FormatReasons(v.reasons);
      ASSERT_EQ(v.stale_primaries.size(), 1u);
      EXPECT_EQ(v.stale_primaries[0].node, "db1");
      EXPECT_EQ(v.stale_primaries[0].code, ReasonCode::kBelowClusterTimeline);
      EXPECT_TRUE(v.HasReason(ReasonCode::kBelowClusterTimeline, "db1"));
    }
    // db2 goes away: this process remembers its timeline (DecisionMemory::max_timeline).
    in.probes.erase("db2");
    in.observations.erase("db2");
    EXPECT_TRUE(WriteCheckTargets(in, &memory).empty());
    EXPECT_TRUE(Decide(in, memory).HasReason(ReasonCode::kBelowClusterTimeline, "db1"));
    // Another cluster's node on a later timeline says nothing about ours (a fresh process).
    DecisionMemory fresh;
    AddNode(in, Standby("db9", 5, "").Sysid(kForeign));
    EXPECT_THAT(WriteCheckTargets(in, &fresh), ElementsAreArray({"db1"}));
    EXPECT_EQ(Decide(in, fresh).action, Action::kPublish);
  }
}

// Issue 12, sim finding 2: in a repair the last record history backs is in force, so an operator's
// acceptance of its timeline lowers it like that of an authoritative record, and is used once.
TEST(DecisionTest, AcceptanceAppliesToTheRecordHistoryBacksDuringARepair) {
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.repair = true;
  in.epoch_floor = 30;
  in.published = Published("db1", 2, 9);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 1));
  Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
  EXPECT_TRUE(v.HasReason(ReasonCode::kBelowPublishedTimeline, "db2"));
  in.acceptance = DecisionInput::Acceptance{2, "alice", "db1 is gone", 1700000000000};
  v = Decide(in, memory);
  ASSERT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
  EXPECT_TRUE(v.acceptance_used);
  EXPECT_EQ(v.record->node, "db2");
  EXPECT_EQ(v.record->epoch, 31u);
  EXPECT_EQ(v.record->reason, "operator_accepted_lower_timeline");
}

TEST(DecisionTest, SameInputAndMemoryGiveTheSameVerdict) {
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  AddNode(in, Primary("db1", 1));
  AddNode(in, Primary("db2", 2));
  DecisionMemory m1;
  DecisionMemory m2;
  const Verdict a = Decide(in, m1);
  const Verdict b = Decide(in, m2);
  EXPECT_EQ(ToHistoryEntry(in, a), ToHistoryEntry(in, b));
}

// ---- properties over random inputs ----

// ---- switchover (docs/decision-rules.md, "Switchover") ----

// An active switchover record db1 -> db2 (db3 a sibling) in `phase`, its deadline 60 s after
// the base input's wall clock.
model::SwitchoverRecord Switchover(model::SwitchoverPhase phase, std::string from = "db1",
                                   std::string to = "db2") {
  model::SwitchoverRecord r;
  r.id = "sw-1-abc";
  r.from = std::move(from);
  r.to = std::move(to);
  r.siblings = {"db3"};
  r.phase = phase;
  r.base_epoch = 3;
  r.max_hold_ms = 2000;
  r.started_at_ms = model::ToWallMillis(kWallStart) - 1000;
  r.phase_at_ms = r.started_at_ms;
  r.deadline_at_ms = model::ToWallMillis(kWallStart) + 60000;
  return r;
}

using P = model::SwitchoverPhase;

// Before the promotion: db1 the verified published master, db2 and db3 its standbys.
DecisionInput BeforePromotion(int at_ms, std::optional<model::SwitchoverRecord> sw) {
  DecisionInput in = BaseInput(at_ms);
  in.published = Published("db1", 1, 3);
  in.switchover = std::move(sw);
  AddNode(in, Primary("db1", 1));
  AddNode(in, Standby("db2", 1, "db1"));
  AddNode(in, Standby("db3", 1, "db1"));
  return in;
}

// After the promotion: db1 stopped (its poller up, PostgreSQL down), db2 writable on timeline 2.
DecisionInput AfterPromotion(int at_ms, std::optional<model::SwitchoverRecord> sw) {
  DecisionInput in = BaseInput(at_ms);
  in.published = Published("db1", 1, 3);
  in.switchover = std::move(sw);
  NodeSpec from = Primary("db1", 1).ProbeDown();
  from.poller_reachable = false;
  AddNode(in, from);
  AddNode(in, Primary("db2", 2));
  AddNode(in, Standby("db3", 1, "db1"));
  return in;
}

TEST(DecisionSwitchoverTest, HoldAndStopWithdrawFromAtOnceAndNeverVouchIt) {
  for (P phase : {P::kHold, P::kStop, P::kPromote, P::kPublish}) {
    SCOPED_TRACE(model::SwitchoverPhaseName(phase));
    DecisionMemory memory;
    DecisionInput in = BeforePromotion(0, Switchover(phase));
    // `from` gets no write check (never published meanwhile; no transaction while it drains).
    EXPECT_TRUE(WriteCheckTargets(in, &memory).empty());
    const Verdict v = Decide(in, memory);
    EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
    ASSERT_FALSE(v.reasons.empty());
    EXPECT_EQ(v.reasons[0].code, ReasonCode::kSwitchover);
    EXPECT_NE(v.reasons[0].text.find("sw-1-abc"), std::string::npos) << v.reasons[0].text;
    EXPECT_NE(v.reasons[0].text.find(std::string("phase ") + model::SwitchoverPhaseName(phase)),
              std::string::npos);
    EXPECT_FALSE(v.record.has_value());
  }
}

TEST(DecisionSwitchoverTest, PrepareRollbackTerminalAndExpiredRecordsFollowTheNormalRules) {
  for (P phase : {P::kPrepare, P::kRejoin, P::kUnpause, P::kRollback, P::kDone, P::kAborted,
                  P::kFailed}) {
    SCOPED_TRACE(model::SwitchoverPhaseName(phase));
    DecisionMemory memory;
    DecisionInput in = BeforePromotion(0, Switchover(phase));
    EXPECT_EQ(WriteCheckTargets(in, &memory), std::vector<std::string>{"db1"});
    const Verdict v = Decide(in, memory);
    EXPECT_EQ(v.action, Action::kKeep) << FormatReasons(v.reasons);
    EXPECT_FALSE(v.HasReason(ReasonCode::kSwitchover));
  }
  // A hold past its deadline (the coordinator died): nobody acts on it, the owner vouches again.
  DecisionMemory memory;
  model::SwitchoverRecord expired = Switchover(P::kHold);
  expired.deadline_at_ms = model::ToWallMillis(kWallStart) - 1;
  DecisionInput in = BeforePromotion(0, expired);
  EXPECT_EQ(ExpectedSwitchover(in), nullptr);
  EXPECT_EQ(Decide(in, memory).action, Action::kKeep);
  in = BeforePromotion(0, Switchover(P::kHold));
  EXPECT_NE(ExpectedSwitchover(in), nullptr);
}

TEST(DecisionSwitchoverTest, PublishesToAtOnceOnALaterTimelineWithTheSwitchoverReason) {
  for (P phase : {P::kPromote, P::kPublish}) {
    SCOPED_TRACE(model::SwitchoverPhaseName(phase));
    DecisionMemory memory;
    DecisionInput in = AfterPromotion(0, Switchover(phase));
    in.policy.confirmation_window = Millis(60000);
    EXPECT_EQ(WriteCheckTargets(in, &memory), std::vector<std::string>{"db2"});
    const Verdict v = Decide(in, memory);
    ASSERT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
    EXPECT_EQ(v.record->node, "db2");
    EXPECT_EQ(v.record->epoch, 4u);
    EXPECT_EQ(v.record->reason, "switchover");
    EXPECT_NE(v.reasons[0].text.find("sw-1-abc"), std::string::npos);
    const model::HistoryEntry h = ToHistoryEntry(in, v);
    ASSERT_TRUE(h.switchover.has_value());
    EXPECT_EQ(h.switchover->id, "sw-1-abc");
    EXPECT_EQ(h.switchover->from, "db1");
    EXPECT_EQ(h.switchover->to, "db2");
    EXPECT_EQ(h.switchover->phase, model::SwitchoverPhaseName(phase));
    auto back = model::HistoryEntry::FromJson(h.ToJson());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, h);
  }
  // Without a switchover the same world publishes too (later timeline) but names no switchover.
  DecisionMemory memory;
  DecisionInput in = AfterPromotion(0, std::nullopt);
  const Verdict v = Decide(in, memory);
  ASSERT_EQ(v.action, Action::kPublish);
  EXPECT_EQ(v.record->reason, "later_timeline");
  EXPECT_FALSE(ToHistoryEntry(in, v).switchover.has_value());
}

TEST(DecisionSwitchoverTest, StrictModeDoesNotWaitForTheSelfFenceDeadlineOfAStoppedFrom) {
  Policy strict;
  strict.strict_split_brain = true;
  strict.self_fence_deadline = Millis(30000);
  // Without a switchover: db1 was writable a moment ago and nobody reaches it now.
  {
    DecisionMemory memory;
    DecisionInput in = BeforePromotion(0, std::nullopt);
    in.policy = strict;
    ASSERT_EQ(Decide(in, memory).action, Action::kKeep);
    in = AfterPromotion(1000, std::nullopt);
    in.policy = strict;
    const Verdict v = Decide(in, memory);
    EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
    EXPECT_EQ(v.reasons[0].code, ReasonCode::kAwaitingFence);
  }
  // Promote (the coordinator got db1's stop acknowledgement): db2 is published at once.
  {
    DecisionMemory memory;
    DecisionInput in = BeforePromotion(0, Switchover(P::kHold));
    in.policy = strict;
    ASSERT_EQ(Decide(in, memory).action, Action::kWithdraw);
    in = AfterPromotion(1000, Switchover(P::kPromote));
    in.policy = strict;
    const Verdict v = Decide(in, memory);
    EXPECT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
    EXPECT_EQ(v.reasons[0].code, ReasonCode::kSwitchover);
  }
  // Still in stop (db2 promoted early): only db1's own acknowledgement of its stop counts.
  {
    DecisionMemory memory;
    DecisionInput in = BeforePromotion(0, Switchover(P::kStop));
    in.policy = strict;
    ASSERT_EQ(Decide(in, memory).action, Action::kWithdraw);
    in = AfterPromotion(1000, Switchover(P::kStop));
    in.policy = strict;
    EXPECT_EQ(Decide(in, memory).action, Action::kWithdraw);
    model::SwitchoverAck ack;
    ack.id = "sw-1-abc";
    ack.phase = P::kStop;
    ack.state = model::SwitchoverStepState::kDone;
    ack.lsn = 0x3000000;
    in.observations["db1"].observation.switchover = ack;
    const Verdict v = Decide(in, memory);
    EXPECT_EQ(v.action, Action::kPublish) << FormatReasons(v.reasons);
    // Another switchover's acknowledgement does not.
    DecisionMemory again;
    in.observations["db1"].observation.switchover->id = "sw-0-old";
    DecisionInput before = BeforePromotion(0, Switchover(P::kStop));
    before.policy = strict;
    (void)Decide(before, again);
    EXPECT_EQ(Decide(in, again).action, Action::kWithdraw);
  }
  // A `from` that still accepts writes blocks the publish in strict mode, switchover or not.
  {
    DecisionMemory memory;
    DecisionInput in = BaseInput(0);
    in.policy = strict;
    in.published = Published("db1", 1, 3);
    in.switchover = Switchover(P::kPublish);
    AddNode(in, Primary("db1", 1));
    AddNode(in, Primary("db2", 2));
    const Verdict v = Decide(in, memory);
    EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
    EXPECT_TRUE(v.HasReason(ReasonCode::kAwaitingFence, "db1"));
  }
}

TEST(DecisionSwitchoverTest, NobodyButToIsPublishedMeanwhile) {
  // db3 (a sibling) promoted instead of db2: not published, not kept.
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  in.switchover = Switchover(P::kPublish);
  AddNode(in, Down("db1"));
  AddNode(in, Standby("db2", 1, "db1"));
  AddNode(in, Primary("db3", 2));
  Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
  EXPECT_EQ(v.reasons[0].code, ReasonCode::kSwitchover);
  EXPECT_EQ(v.reasons[0].node, "db3");
  // Many rounds later, still not (no confirmation window makes it publishable either).
  in.now += Millis(20000);
  in.wall_now += Millis(20000);
  for (auto& entry : in.probes) entry.second.taken_at = in.now;
  for (auto& entry : in.observations) entry.second.received_at = in.now;
  v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw);
  // Nothing writable at all: the record is kept (no no-master record), the voucher withdrawn.
  DecisionMemory none;
  in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  in.switchover = Switchover(P::kStop);
  AddNode(in, Down("db1"));
  AddNode(in, Standby("db2", 1, "db1"));
  v = Decide(in, none);
  EXPECT_EQ(v.action, Action::kWithdraw);
  EXPECT_EQ(v.reasons[0].code, ReasonCode::kSwitchover);
  EXPECT_FALSE(v.record.has_value());
}

TEST(DecisionSwitchoverTest, ToIsPublishedOnlyVerifiedAndAboveThePublishedTimeline) {
  // Writable on the published timeline (not promoted by repmgr: a hand-made primary): not yet.
  DecisionMemory memory;
  DecisionInput in = BaseInput(0);
  in.published = Published("db1", 1, 3);
  in.switchover = Switchover(P::kPublish);
  AddNode(in, Down("db1"));
  AddNode(in, Primary("db2", 1));
  Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
  EXPECT_EQ(v.reasons[0].code, ReasonCode::kSwitchover);
  // Promoted but its write check fails: not yet.
  in = AfterPromotion(0, Switchover(P::kPublish));
  AddNode(in, Primary("db2", 2).Check(WriteCheck::kFailed));
  v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kWithdraw) << FormatReasons(v.reasons);
  EXPECT_TRUE(v.HasReason(ReasonCode::kWriteCheckFailed, "db2"));
  // Published: kept and vouched while the switchover is still in publish.
  in = AfterPromotion(0, Switchover(P::kPublish));
  in.published = Published("db2", 2, 4);
  v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kKeep) << FormatReasons(v.reasons);
  EXPECT_EQ(v.chosen, "db2");
}

TEST(DecisionSwitchoverTest, RollbackVouchesFromAgainAsSoonAsItVerifies) {
  DecisionMemory memory;
  DecisionInput in = BeforePromotion(0, Switchover(P::kStop));
  ASSERT_EQ(Decide(in, memory).action, Action::kWithdraw);
  in = BeforePromotion(500, Switchover(P::kRollback));
  const Verdict v = Decide(in, memory);
  EXPECT_EQ(v.action, Action::kKeep) << FormatReasons(v.reasons);
  EXPECT_EQ(v.chosen, "db1");
}

struct RandomWorld {
  explicit RandomWorld(std::uint64_t seed) : rng(seed) {}
  std::mt19937_64 rng;
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  bool Chance(int percent) { return Pick(100) < percent; }

  NodeSpec RandomNode(const std::string& name) {
    NodeSpec n = Primary(name, static_cast<std::uint32_t>(1 + Pick(4)));
    n.writable = Chance(45);
    n.lsn = static_cast<Lsn>(Pick(1 << 20));
    const int probe = Pick(10);
    n.probe = probe < 7 ? NodeSpec::ProbeKind::kUp
                        : (probe < 9 ? NodeSpec::ProbeKind::kDown : NodeSpec::ProbeKind::kNone);
    const int check = Pick(3);
    n.write_check =
        check == 0 ? WriteCheck::kPassed : (check == 1 ? WriteCheck::kFailed : WriteCheck::kNotRun);
    if (Chance(50)) n.write_check = WriteCheck::kPassed;
    const int id = Pick(10);
    n.sysid = id < 8 ? kId : (id < 9 ? kForeign : "");
    n.poller = Chance(75);
    n.poller_reachable = Chance(85);
    if (Chance(40)) n.promoted_at = Pick(5);
    if (!n.writable && Chance(70)) n.upstream = "db" + std::to_string(Pick(4));
    if (Chance(10)) n.fencing = FencingState::kFenced;
    return n;
  }
};

TEST(DecisionPropertyTest, SafetyInvariantsHoldOnRandomInputs) {
  int publishes = 0;
  int keeps = 0;
  int switchover_rounds = 0;
  for (std::uint64_t seed = 1; seed <= 3000; ++seed) {
    RandomWorld w(seed);
    DecisionMemory memory;
    std::optional<MasterRecord> published;
    const int start = w.Pick(4);
    if (start == 1) published = MasterRecord{};
    if (start >= 2) {
      published =
          Published("db" + std::to_string(w.Pick(4)), static_cast<std::uint32_t>(1 + w.Pick(3)),
                    static_cast<std::uint64_t>(1 + w.Pick(50)));
    }
    Policy policy;
    policy.confirmation_window = Millis(w.Pick(4) * 1000);
    policy.strict_split_brain = w.Chance(30);
    policy.self_fence_deadline = Millis(w.Pick(3) * 2000);
    policy.paused = w.Chance(5);
    const std::string identity = w.Chance(85) ? kId : "";
    // A switchover record in a quarter of the worlds, from its own generator (the other worlds
    // stay what they were).
    std::mt19937_64 sw_rng(seed * 7919);
    auto sw_pick = [&sw_rng](int n) { return std::uniform_int_distribution<int>(0, n - 1)(sw_rng); };
    std::optional<model::SwitchoverRecord> sw;
    if (sw_pick(4) == 0) {
      const int from = sw_pick(4);
      sw = Switchover(static_cast<model::SwitchoverPhase>(sw_pick(11)),
                      "db" + std::to_string(from), "db" + std::to_string((from + 1 + sw_pick(3)) % 4));
      sw->deadline_at_ms = model::ToWallMillis(kWallStart) + sw_pick(30000);
    }
    int at = 0;
    for (int round = 0; round < 8; ++round) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
      at += w.Pick(3000);
      DecisionInput in = BaseInput(at);
      in.identity = identity;
      in.policy = policy;
      in.published = published;
      if (sw && sw_pick(3) == 0) sw->phase = static_cast<model::SwitchoverPhase>(sw_pick(11));
      in.switchover = sw;
      const int nodes = 1 + w.Pick(4);
      for (int i = 0; i < nodes; ++i) AddNode(in, w.RandomNode("db" + std::to_string(i)));

      const DecisionMemory before = memory;
      const Verdict v = Decide(in, memory);
      // Determinism: the same input and memory give the same verdict.
      DecisionMemory again = before;
      ASSERT_EQ(ToHistoryEntry(in, Decide(in, again)), ToHistoryEntry(in, v));

      const bool have_published =
          published && published->state == model::MasterState::kOk && !published->node.empty();
      ASSERT_EQ(v.record.has_value(), v.action == Action::kPublish);
      if (policy.paused) {
        ASSERT_EQ(v.action, Action::kNone);
        ASSERT_TRUE(v.stale_primaries.empty());
      }
      if (!have_published) {
        ASSERT_NE(v.action, Action::kKeep);
      }
      if (!have_published) {
        ASSERT_NE(v.action, Action::kWithdraw);
      }
      for (const StalePrimary& s : v.stale_primaries) ASSERT_NE(s.node, v.chosen);
      if (const model::SwitchoverRecord* expected = ExpectedSwitchover(in)) {
        // During hold..publish: nobody but `to` is published or vouched, `from` least of all.
        ++switchover_rounds;
        if (v.action == Action::kPublish) {
          ASSERT_EQ(v.record->node, expected->to);
        }
        if (v.action == Action::kKeep) {
          ASSERT_EQ(published->node, expected->to);
        }
        if (policy.paused) {
          ASSERT_EQ(v.action, Action::kNone);
        }
      }

      if (v.action == Action::kPublish || v.action == Action::kKeep) {
        const std::string node = v.action == Action::kPublish ? v.record->node : published->node;
        ASSERT_EQ(node, v.chosen);
        // Only with this round's own probe: reachable, out of recovery, write check passed.
        auto it = in.probes.find(node);
        ASSERT_NE(it, in.probes.end());
        const model::Probe& p = it->second.probe;
        ASSERT_TRUE(p.reachable);
        ASSERT_FALSE(p.in_recovery);
        ASSERT_EQ(p.write_check, WriteCheck::kPassed);
        // Never a foreign identifier.
        ASSERT_FALSE(p.system_identifier.empty());
        if (!identity.empty()) {
          ASSERT_EQ(p.system_identifier, identity);
        }
        // Never below the published timeline, and no writable node of the cluster above it.
        if (have_published) {
          ASSERT_GE(p.timeline, published->timeline);
        }
        for (const auto& [other, probe] : in.probes) {
          if (other == node || !probe.probe.reachable || probe.probe.in_recovery) continue;
          if (probe.probe.system_identifier != p.system_identifier) continue;
          ASSERT_LE(probe.probe.timeline, p.timeline) << other;
        }
      }
      if (v.action == Action::kPublish) {
        ++publishes;
        ASSERT_EQ(v.record->epoch, (published ? published->epoch : 0) + 1);
        ASSERT_EQ(v.record->state, model::MasterState::kOk);
        ASSERT_EQ(v.record->timeline, in.probes.at(v.chosen).probe.timeline);
        const bool same_node = have_published && published->node == v.chosen;
        if (policy.strict_split_brain && !same_node) {
          // A new master: no other visible writable node of the cluster remains. (The published
          // master moving to a later timeline is not held back: the route does not change.)
          const std::string ours =
              identity.empty() ? in.probes.at(v.chosen).probe.system_identifier : identity;
          for (const auto& [other, probe] : in.probes) {
            if (other == v.chosen || !probe.probe.reachable || probe.probe.in_recovery) continue;
            ASSERT_NE(probe.probe.system_identifier, ours)
                << other << " " << FormatReasons(v.reasons) << " published "
                << (published ? published->ToJson() : "none");
          }
        }
        const bool later = have_published && v.record->timeline > published->timeline;
        if (!later && !same_node) {
          // Anything but a later timeline needs the window.
          if (policy.confirmation_window > Millis(0)) {
            ASSERT_EQ(before.candidate, v.chosen);
          }
          ASSERT_GE(in.now - memory.candidate_since, policy.confirmation_window);
        }
        published = v.record;
      } else if (v.action == Action::kKeep) {
        ++keeps;
      }
    }
  }
  // The generator must actually exercise the interesting branches.
  EXPECT_GT(publishes, 200);
  EXPECT_GT(keeps, 100);
  EXPECT_GT(switchover_rounds, 300);
}

}  // namespace
}  // namespace pgherald::orchestrator
