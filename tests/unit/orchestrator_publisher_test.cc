// ZkPublisher on FakeZk: the fenced multi, a deposed leader's write, lost compare-and-set,
// unknown outcomes (applied and not) settled by Reconcile, vouchers, identity, control, history
// trimming; FilePublisher's atomic JSON.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/fake_zk.h"
#include "common/model/voucher.h"
#include "orchestrator/election.h"
#include "publishers/file_publisher.h"
#include "publishers/zk_publisher.h"
#include "common/model/zk_paths.h"
#include "tests/support/manual_clock.h"

namespace pgherald::publishers {
namespace {

const model::ClusterPaths kMain("/pgherald", "main");

ControlState PausedControl() {
  ControlState control;
  control.paused = true;
  return control;
}

using orchestrator::LeaderElection;
using std::chrono::milliseconds;

constexpr char kRoot[] = "/pgherald";
constexpr char kElection[] = "/pgherald/orchestrators/election";

model::MasterRecord Record(const std::string& node, std::uint64_t epoch, std::uint32_t tl = 1) {
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = node;
  r.host = "127.0.0.1";
  r.port = 5432;
  r.timeline = tl;
  r.lsn = 0x3000000;
  r.epoch = epoch;
  r.verified_at_ms = 1700000000000 + static_cast<std::int64_t>(epoch);
  r.decided_by = "orch-a";
  r.reason = "first_master";
  return r;
}

model::HistoryEntry History(const model::MasterRecord& r) {
  model::HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.chosen = r.node;
  h.epoch = r.epoch;
  h.decided_at_ms = r.verified_at_ms;
  h.decided_by = r.decided_by;
  h.master = r;
  h.reasons.push_back({"first_master", r.node, "test"});
  return h;
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    zk::FakeZkOptions o;
    o.dispatch = zk::DispatchMode::kManual;
    o.session_timeout = milliseconds(10000);
    session_ = server_->NewSession(o);
    election_ = std::make_unique<LeaderElection>(session_.get(), kElection, "aaaa", nullptr);
    ASSERT_TRUE(election_->Refresh().ok());
    pub_ = std::make_unique<ZkPublisher>(session_.get(), kRoot, "orch-a", 3);
    ASSERT_TRUE(pub_->EnsureCluster("main").ok());
  }
  static inline const std::string kMaster = kMain.Master();
  std::vector<std::string> Children() { return server_->PeekChildren(kMaster); }
  // Publishes `r` on the current read (children included), as the leader does.
  PublishResult PublishNow(const model::MasterRecord& r) {
    auto m = pub_->ReadMaster("main");
    EXPECT_TRUE(m.ok());
    return pub_->Publish("main", election_->own_path(), m->version, r, History(r), m->vouchers);
  }
  std::string BoundName(const model::MasterRecord& r) {
    return model::VoucherName(r.epoch, model::RecordDigest(r.ToJson()), "orch-a");
  }
  model::MasterRecord PeekRecord() {
    auto n = server_->Peek(kMain.Master());
    EXPECT_TRUE(n.has_value());
    return *model::MasterRecord::FromJson(n->data);
  }

  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
  std::unique_ptr<zk::FakeZk> session_;
  std::unique_ptr<LeaderElection> election_;
  std::unique_ptr<ZkPublisher> pub_;
};

TEST_F(PublisherTest, EnsureClusterWritesTheInitialRecordOnce) {
  auto m = pub_->ReadMaster("main");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->record.state, model::MasterState::kNoMaster);
  EXPECT_EQ(m->record.epoch, 0u);
  ASSERT_TRUE(pub_->EnsureCluster("main").ok());
  EXPECT_EQ(pub_->ReadMaster("main")->version, m->version);
}

TEST_F(PublisherTest, PublishWritesRecordAndHistoryInOneMulti) {
  auto m = pub_->ReadMaster("main");
  const auto r = Record("node1", 1);
  PublishResult res = pub_->Publish("main", election_->own_path(), m->version, r, History(r));
  ASSERT_EQ(res.outcome, WriteOutcome::kApplied) << res.status.ToString();
  EXPECT_EQ(PeekRecord(), r);
  auto hist = server_->PeekChildren(kMain.History());
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(res.history_path, kMain.HistoryEntry(hist[0]));
  auto entry = model::HistoryEntry::FromJson(server_->Peek(res.history_path)->data);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->epoch, 1u);
}

TEST_F(PublisherTest, DeposedLeaderWriteFailsAsAWhole) {
  auto m = pub_->ReadMaster("main");
  const std::string own = election_->own_path();
  // Our session expires: a new leader exists; our election znode is gone.
  auto other = server_->NewSession();
  ASSERT_TRUE(server_->ExpireSession(session_->session_id()).ok());
  auto session2 = server_->NewSession();
  ZkPublisher stale(session2.get(), kRoot, "orch-a", 3);  // the same code on a live session
  const auto r = Record("node9", 1);
  PublishResult res = stale.Publish("main", own, m->version, r, History(r));
  EXPECT_EQ(res.outcome, WriteOutcome::kRejected);
  EXPECT_NE(res.status.message().find("deposed"), std::string::npos) << res.status.ToString();
  EXPECT_EQ(PeekRecord().epoch, 0u);
  EXPECT_TRUE(server_->PeekChildren(kMain.History()).empty());
}

TEST_F(PublisherTest, StaleVersionLosesTheCompareAndSet) {
  auto m = pub_->ReadMaster("main");
  const auto r1 = Record("node1", 1);
  ASSERT_EQ(pub_->Publish("main", election_->own_path(), m->version, r1, History(r1)).outcome,
            WriteOutcome::kApplied);
  const auto r2 = Record("node2", 1);  // decided on the old read
  PublishResult res = pub_->Publish("main", election_->own_path(), m->version, r2, History(r2));
  EXPECT_EQ(res.outcome, WriteOutcome::kRejected);
  EXPECT_EQ(res.status.code(), StatusCode::kBadVersion);
  EXPECT_EQ(PeekRecord(), r1);
}

TEST_F(PublisherTest, UnknownOutcomeThatLandedIsReconciledAsApplied) {
  auto m = pub_->ReadMaster("main");
  const auto r = Record("node1", 1);
  session_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/true);
  PublishResult res = pub_->Publish("main", election_->own_path(), m->version, r, History(r));
  EXPECT_EQ(res.outcome, WriteOutcome::kUnknown);
  EXPECT_TRUE(pub_->HasPending("main"));
  // Nothing else is attempted while unsettled.
  EXPECT_EQ(pub_->Publish("main", election_->own_path(), m->version, r, History(r)).outcome,
            WriteOutcome::kRejected);
  EXPECT_EQ(pub_->Reconcile("main"), WriteOutcome::kApplied);
  EXPECT_FALSE(pub_->HasPending("main"));
  EXPECT_EQ(server_->PeekChildren(kMain.History()).size(), 1u);  // not retried
}

TEST_F(PublisherTest, UnknownOutcomeThatDidNotLandIsReconciledAsRejected) {
  auto m = pub_->ReadMaster("main");
  const auto r = Record("node1", 1);
  session_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/false);
  EXPECT_EQ(pub_->Publish("main", election_->own_path(), m->version, r, History(r)).outcome,
            WriteOutcome::kUnknown);
  // The re-read itself fails first: still unknown, still pending.
  session_->FailNextCall(StatusCode::kConnectionLoss);
  EXPECT_EQ(pub_->Reconcile("main"), WriteOutcome::kUnknown);
  EXPECT_TRUE(pub_->HasPending("main"));
  EXPECT_EQ(pub_->Reconcile("main"), WriteOutcome::kRejected);
  EXPECT_EQ(PeekRecord().epoch, 0u);
  EXPECT_TRUE(server_->PeekChildren(kMain.History()).empty());
}

// Issue 12: the record and the voucher bound to it appear in ONE multi; our older vouchers
// (bound to earlier records, or the legacy name) go in the same multi; other orchestrators'
// children are not ours to touch.
TEST_F(PublisherTest, PublishCreatesExactlyOneBoundVoucherAndRemovesOurOldOnes) {
  const auto r1 = Record("node1", 1);
  PublishResult res = PublishNow(r1);
  ASSERT_EQ(res.outcome, WriteOutcome::kApplied) << res.status.ToString();
  EXPECT_EQ(res.voucher, BoundName(r1));
  ASSERT_EQ(Children(), std::vector<std::string>{BoundName(r1)});
  auto v = server_->Peek(std::string(kMaster) + "/" + BoundName(r1));
  EXPECT_EQ(v->stat.ephemeral_owner, session_->session_id());
  auto payload = model::VoucherPayload::FromJson(v->data);
  ASSERT_TRUE(payload.ok()) << payload.status().ToString();
  EXPECT_EQ(payload->affirm_seq, 1u);
  EXPECT_EQ(payload->node, "node1");
  EXPECT_EQ(payload->affirmed_at_ms, r1.verified_at_ms);
  auto m = pub_->ReadMaster("main");
  EXPECT_EQ(model::BoundVouchers(m->vouchers, m->record, m->bytes),
            std::vector<std::string>{BoundName(r1)});

  // A legacy voucher of ours and another orchestrator's voucher beside it.
  ASSERT_TRUE(session_->Create(std::string(kMaster) + "/orch-a", "{}", zk::CreateMode::kEphemeral).ok());
  auto other = server_->NewSession();
  const std::string foreign = model::VoucherName(1, model::RecordDigest(r1.ToJson()), "orch-b");
  ASSERT_TRUE(other->Create(std::string(kMaster) + "/" + foreign, "{}", zk::CreateMode::kEphemeral).ok());
  const auto r2 = Record("node2", 2, 2);
  res = PublishNow(r2);
  ASSERT_EQ(res.outcome, WriteOutcome::kApplied) << res.status.ToString();
  auto children = Children();
  std::sort(children.begin(), children.end());
  std::vector<std::string> want = {foreign, BoundName(r2)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(children, want);
  m = pub_->ReadMaster("main");
  EXPECT_EQ(model::BoundVouchers(m->vouchers, m->record, m->bytes),
            std::vector<std::string>{BoundName(r2)});

  // A no-master record gets no voucher; ours go.
  model::MasterRecord none;
  none.epoch = 3;
  res = PublishNow(none);
  ASSERT_EQ(res.outcome, WriteOutcome::kApplied) << res.status.ToString();
  EXPECT_EQ(res.voucher, "");
  EXPECT_EQ(Children(), std::vector<std::string>{foreign});
}

// A voucher we believed ours but that is gone makes the multi fail as a whole: nothing lands.
TEST_F(PublisherTest, PublishOnStaleChildrenLandsNothing) {
  const auto r1 = Record("node1", 1);
  ASSERT_EQ(PublishNow(r1).outcome, WriteOutcome::kApplied);
  auto m = pub_->ReadMaster("main");
  ASSERT_TRUE(pub_->Unvouch("main").ok());
  const auto r2 = Record("node1", 2);
  PublishResult res =
      pub_->Publish("main", election_->own_path(), m->version, r2, History(r2), m->vouchers);
  EXPECT_EQ(res.outcome, WriteOutcome::kRejected);
  EXPECT_EQ(PeekRecord(), r1);
  EXPECT_TRUE(Children().empty());
}

// Re-affirmation rewrites the bound voucher's data (its mzxid moves, affirm_seq + 1); without it
// Vouch changes nothing. A voucher missing (or held by an older session of ours) is created, and
// our other vouchers removed, in one fenced multi. A deposed leader can do neither.
TEST_F(PublisherTest, VouchReaffirmsOrCreatesTheBoundVoucherFenced) {
  const auto r = Record("node1", 1);
  ASSERT_EQ(PublishNow(r).outcome, WriteOutcome::kApplied);
  const std::string path = std::string(kMaster) + "/" + BoundName(r);
  const auto before = server_->Peek(path);
  auto m = pub_->ReadMaster("main");
  auto held = pub_->Vouch("main", election_->own_path(), *m, 1700000000500, /*reaffirm=*/false);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(*held, VouchOutcome::kHeld);
  EXPECT_EQ(server_->Peek(path)->stat.mzxid, before->stat.mzxid);
  auto again = pub_->Vouch("main", election_->own_path(), *m, 1700000000500, /*reaffirm=*/true);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, VouchOutcome::kReaffirmed);
  const auto after = server_->Peek(path);
  EXPECT_GT(after->stat.mzxid, before->stat.mzxid);
  EXPECT_EQ(after->stat.czxid, before->stat.czxid);
  auto payload = model::VoucherPayload::FromJson(after->data);
  ASSERT_TRUE(payload.ok());
  EXPECT_EQ(payload->affirm_seq, 2u);
  EXPECT_EQ(payload->affirmed_at_ms, 1700000000500);

  // Missing: created, with a legacy voucher of ours removed in the same multi.
  ASSERT_TRUE(pub_->Unvouch("main").ok());
  ASSERT_TRUE(session_->Create(std::string(kMaster) + "/orch-a", "{}", zk::CreateMode::kEphemeral).ok());
  m = pub_->ReadMaster("main");
  auto created = pub_->Vouch("main", election_->own_path(), *m, 1700000000600, false);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, VouchOutcome::kCreated);
  EXPECT_EQ(Children(), std::vector<std::string>{BoundName(r)});

  // Held by another session with our id (an earlier session of ours): replaced by ours.
  auto older = server_->NewSession();
  ASSERT_TRUE(pub_->Unvouch("main").ok());
  ASSERT_TRUE(older->Create(path, "{}", zk::CreateMode::kEphemeral).ok());
  m = pub_->ReadMaster("main");
  ASSERT_EQ(*pub_->Vouch("main", election_->own_path(), *m, 1, false), VouchOutcome::kCreated);
  EXPECT_EQ(server_->Peek(path)->stat.ephemeral_owner, session_->session_id());

  // A corrupt or no-master record is never vouched for.
  model::MasterRecord none;
  publishers::MasterZnode bare;
  bare.record = none;
  EXPECT_FALSE(pub_->Vouch("main", election_->own_path(), bare, 1, true).ok());

  // Deposed: nothing.
  ASSERT_TRUE(pub_->Unvouch("main").ok());
  m = pub_->ReadMaster("main");
  const std::string own = election_->own_path();
  election_->Resign();
  EXPECT_FALSE(pub_->Vouch("main", own, *m, 1, true).ok());
  EXPECT_TRUE(Children().empty());
}

TEST_F(PublisherTest, UnvouchRemovesEveryVoucherOfOursOnly) {
  const auto r = Record("node1", 1);
  ASSERT_EQ(PublishNow(r).outcome, WriteOutcome::kApplied);
  ASSERT_TRUE(session_->Create(std::string(kMaster) + "/orch-a", "{}", zk::CreateMode::kEphemeral).ok());
  const std::string old = model::VoucherName(7, std::string(32, 'a'), "orch-a");
  ASSERT_TRUE(session_->Create(std::string(kMaster) + "/" + old, "{}", zk::CreateMode::kEphemeral).ok());
  auto other = server_->NewSession();
  ASSERT_TRUE(other->Create(std::string(kMaster) + "/orch-b", "{}", zk::CreateMode::kEphemeral).ok());
  ASSERT_EQ(Children().size(), 4u);
  ASSERT_TRUE(pub_->Unvouch("main").ok());
  EXPECT_EQ(Children(), std::vector<std::string>{"orch-b"});
  ASSERT_TRUE(pub_->Unvouch("main").ok());  // idempotent
}

TEST_F(PublisherTest, WithdrawRemovesTheVoucherAndRecordsWhyInOneMulti) {
  const auto r = Record("node1", 1);
  model::HistoryEntry w;
  w.cluster = "main";
  w.action = "withdraw";
  w.chosen = "node1";
  w.epoch = 1;
  w.decided_at_ms = 1700000000100;
  w.decided_by = "orch-a";
  w.previous = r;
  w.reasons.push_back({"master_unverified", "node1", "write check failed"});
  const std::string history = kMain.History();
  auto vouch = [&] {
    auto m = pub_->ReadMaster("main");
    ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), *m, 1, false).ok());
  };
  ASSERT_EQ(PublishNow(r).outcome, WriteOutcome::kApplied);
  ASSERT_EQ(server_->PeekChildren(history).size(), 1u);
  std::string path;
  ASSERT_TRUE(pub_->Withdraw("main", election_->own_path(), w, &path).ok());
  EXPECT_TRUE(Children().empty());
  ASSERT_EQ(server_->PeekChildren(history).size(), 2u);
  EXPECT_EQ(model::HistoryEntry::FromJson(server_->Peek(path)->data)->action, "withdraw");
  // No voucher (already withdrawn, or a retry after a multi that landed): nothing is written.
  ASSERT_TRUE(pub_->Withdraw("main", election_->own_path(), w, &path).ok());
  EXPECT_EQ(path, "");
  EXPECT_EQ(server_->PeekChildren(history).size(), 2u);
  // Connection loss: reported; the voucher and entry did not land, so the retry writes them once.
  vouch();
  session_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/false);
  // (The failure hits the children read first; then the multi.)
  EXPECT_EQ(pub_->Withdraw("main", election_->own_path(), w, &path).code(), StatusCode::kConnectionLoss);
  ASSERT_TRUE(pub_->Withdraw("main", election_->own_path(), w, &path).ok());
  EXPECT_EQ(server_->PeekChildren(history).size(), 3u);
  // A deposed leader removes its voucher but cannot write history.
  vouch();
  const std::string own = election_->own_path();
  election_->Resign();
  ASSERT_TRUE(pub_->Withdraw("main", own, w, &path).ok());
  EXPECT_EQ(path, "");
  EXPECT_TRUE(Children().empty());
  EXPECT_EQ(server_->PeekChildren(history).size(), 3u);
}

TEST_F(PublisherTest, VoucherVanishesWhenTheLeaderDies) {
  ASSERT_EQ(PublishNow(Record("node1", 1)).outcome, WriteOutcome::kApplied);
  ASSERT_EQ(Children().size(), 1u);
  ASSERT_TRUE(server_->ExpireSession(session_->session_id()).ok());
  EXPECT_TRUE(Children().empty());
  EXPECT_TRUE(server_->Peek(kMaster).has_value());  // never deleted
}

// The trust of a record without a bound voucher: the newest publish entry in history backs it.
TEST_F(PublisherTest, HistoryBacksOnlyTheRecordItsNewestPublishWrote) {
  auto facts = pub_->ReadHistoryFacts("main");
  ASSERT_TRUE(facts.ok());
  EXPECT_FALSE(facts->last_publish.has_value());
  EXPECT_EQ(facts->newest_epoch, 0u);
  const auto r1 = Record("node1", 1);
  const auto r2 = Record("node2", 2, 2);
  ASSERT_EQ(PublishNow(r1).outcome, WriteOutcome::kApplied);
  ASSERT_EQ(PublishNow(r2).outcome, WriteOutcome::kApplied);
  facts = pub_->ReadHistoryFacts("main");
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->newest_epoch, 2u);
  EXPECT_TRUE(BackedByHistory(*facts, r2));
  EXPECT_FALSE(BackedByHistory(*facts, r1)) << "a replay of an older record";
  auto forged = r2;
  forged.node = "node3";
  EXPECT_FALSE(BackedByHistory(*facts, forged));
  forged = r2;
  forged.port = 6432;
  EXPECT_FALSE(BackedByHistory(*facts, forged));
  forged = r2;
  forged.timeline = 9;
  EXPECT_FALSE(BackedByHistory(*facts, forged));
  forged = r2;
  forged.epoch = 3;
  EXPECT_FALSE(BackedByHistory(*facts, forged));
  // Unchanged history: the cached facts are returned as they are.
  auto cached = pub_->ReadHistoryFacts("main", *facts);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->pzxid, facts->pzxid);
  // A garbage entry is skipped; an entry that is not a publish does not back anything by itself.
  ASSERT_TRUE(session_->Create(kMain.HistoryPrefix(), "garbage",
                               zk::CreateMode::kPersistentSequential).ok());
  facts = pub_->ReadHistoryFacts("main", *facts);
  ASSERT_TRUE(facts.ok());
  EXPECT_TRUE(BackedByHistory(*facts, r2));
}

// The operator's acceptance is read as untrusted input and can be cleared in the publish multi.
TEST_F(PublisherTest, AcceptanceIsParsedAndUsedUpByThePublishMulti) {
  ControlState accept;
  accept.accept_below_timeline = 3;
  accept.accept_by = "alice";
  accept.accept_reason = "node1 is gone for good";
  accept.accept_at_ms = 1700000000000;
  auto parsed = ParseControl(ControlToJson(accept));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->accept_below_timeline, 3u);
  EXPECT_EQ(parsed->accept_by, "alice");
  EXPECT_EQ(parsed->accept_reason, "node1 is gone for good");
  EXPECT_EQ(parsed->accept_at_ms, 1700000000000);
  EXPECT_FALSE(ParseControl(R"({"format":1,"accept_below_timeline":-1})").ok());
  EXPECT_FALSE(ParseControl(R"({"format":1,"accept_below_timeline":"3"})").ok());
  auto cut = ParseControl(R"({"format":1,"accept_by":")" + std::string(5000, 'x') + "\"}");
  ASSERT_TRUE(cut.ok());
  EXPECT_LE(cut->accept_by.size(), kMaxControlTextLength);

  ASSERT_TRUE(session_->Create(kMain.Control(), ControlToJson(accept),
                               zk::CreateMode::kPersistent).ok());
  auto control = pub_->ReadControl("main");
  ASSERT_TRUE(control.ok());
  EXPECT_EQ(control->version, 0);
  ControlState cleared = *control;
  cleared.accept_below_timeline = 0;
  const auto r = Record("node2", 1, 2);
  auto m = pub_->ReadMaster("main");
  ASSERT_EQ(pub_->Publish("main", election_->own_path(), m->version, r, History(r), m->vouchers,
                          cleared).outcome,
            WriteOutcome::kApplied);
  EXPECT_EQ(pub_->ReadControl("main")->accept_below_timeline, 0u);
  // On a control changed since it was read, nothing lands.
  const auto r2 = Record("node2", 2, 2);
  m = pub_->ReadMaster("main");
  PublishResult res = pub_->Publish("main", election_->own_path(), m->version, r2, History(r2),
                                    m->vouchers, cleared);  // version 0, now 1
  EXPECT_EQ(res.outcome, WriteOutcome::kRejected);
  EXPECT_EQ(PeekRecord(), r);
}

TEST_F(PublisherTest, HistoryIsTrimmedToTheLimitOldestFirst) {
  for (std::uint64_t e = 1; e <= 5; ++e) {
    auto m = pub_->ReadMaster("main");
    const auto r = Record("node1", e);
    ASSERT_EQ(pub_->Publish("main", election_->own_path(), m->version, r, History(r)).outcome,
              WriteOutcome::kApplied);
    ASSERT_TRUE(pub_->TrimHistory("main").ok());
  }
  auto hist = server_->PeekChildren(kMain.History());
  ASSERT_EQ(hist.size(), 3u);
  auto oldest = model::HistoryEntry::FromJson(
      server_->Peek(kMain.HistoryEntry(hist[0]))->data);
  EXPECT_EQ(oldest->epoch, 3u);
}

TEST_F(PublisherTest, IdentityIsRecordedOnceAndConflictsAreRefused) {
  EXPECT_FALSE(pub_->ReadIdentity("main")->has_value());
  ASSERT_TRUE(pub_->RecordIdentity("main", "7291851442811934035").ok());
  EXPECT_EQ(**pub_->ReadIdentity("main"), "7291851442811934035");
  EXPECT_TRUE(pub_->RecordIdentity("main", "7291851442811934035").ok());
  EXPECT_EQ(pub_->RecordIdentity("main", "1").code(), StatusCode::kFailedPrecondition);
}

TEST_F(PublisherTest, ControlPauseAndCorruptControlNamed) {
  EXPECT_FALSE(pub_->ReadControl("main")->paused);
  ASSERT_TRUE(session_
                  ->Create(kMain.Control(), ControlToJson(PausedControl()),
                           zk::CreateMode::kPersistent)
                  .ok());
  EXPECT_TRUE(pub_->ReadControl("main")->paused);
  ASSERT_TRUE(
      session_->Set(kMain.Control(), R"({"format":1,"paused":"yes"})").ok());
  auto bad = pub_->ReadControl("main");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(kMain.Control()), std::string::npos);
  EXPECT_NE(bad.status().message().find("paused"), std::string::npos);
}

TEST(FilePublisherTest, WritesJsonAtomically) {
  char tmpl[] = "/tmp/orch-filepub-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  FilePublisher p(dir);
  ASSERT_TRUE(p.Publish({"main", Record("node2", 7, 2), true}).ok());
  std::ifstream in(dir + "/main.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str());
  EXPECT_EQ(j["format"], 1);
  EXPECT_EQ(j["vouched"], true);
  EXPECT_EQ(j["master"]["node"], "node2");
  EXPECT_EQ(j["master"]["epoch"], 7);
  // No temporary file left (common/atomic_file.h names them ".main.json.<random>.tmp").
  EXPECT_EQ(std::system(("test -z \"$(ls -A " + dir + " | grep -v '^main.json$')\"").c_str()), 0);
  // A cluster name from a znode never leaves the directory.
  Status escape = p.Publish({"../escape", Record("node2", 7), true});
  EXPECT_EQ(escape.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(escape.message().find("cannot be a file name"), std::string::npos) << escape.message();
  FilePublisher missing("/nonexistent-dir-orch");
  Status s = missing.Publish({"main", Record("node2", 7), true});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir-orch/.main.json."), std::string::npos)
      << s.message();
  std::remove((dir + "/main.json").c_str());
  rmdir(tmpl);
}

}  // namespace
}  // namespace pgherald::publishers
