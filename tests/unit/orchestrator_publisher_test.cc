// ZkPublisher on FakeZk: the fenced multi, a deposed leader's write, lost compare-and-set,
// unknown outcomes (applied and not) settled by Reconcile, vouchers, identity, control, history
// trimming; FilePublisher's atomic JSON.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fake_zk.h"
#include "orchestrator/election.h"
#include "publishers/file_publisher.h"
#include "publishers/zk_publisher.h"

namespace pgherald::publishers {
namespace {

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
  model::MasterRecord PeekRecord() {
    auto n = server_->Peek("/pgherald/clusters/main/master");
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
  auto hist = server_->PeekChildren("/pgherald/clusters/main/history");
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(res.history_path, "/pgherald/clusters/main/history/" + hist[0]);
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
  EXPECT_TRUE(server_->PeekChildren("/pgherald/clusters/main/history").empty());
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
  EXPECT_EQ(server_->PeekChildren("/pgherald/clusters/main/history").size(), 1u);  // not retried
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
  EXPECT_TRUE(server_->PeekChildren("/pgherald/clusters/main/history").empty());
}

TEST_F(PublisherTest, VoucherIsEphemeralFencedAndRemovable) {
  const auto r = Record("node1", 1);
  ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), r).ok());
  auto v = server_->Peek("/pgherald/clusters/main/master/orch-a");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->stat.ephemeral_owner, session_->session_id());
  EXPECT_EQ(nlohmann::json::parse(v->data)["epoch"], 1);
  ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), Record("node1", 2)).ok());
  EXPECT_EQ(
      nlohmann::json::parse(server_->Peek("/pgherald/clusters/main/master/orch-a")->data)["epoch"],
      2);
  EXPECT_EQ(pub_->ReadMaster("main")->vouchers, std::vector<std::string>{"orch-a"});
  ASSERT_TRUE(pub_->Unvouch("main").ok());
  EXPECT_FALSE(server_->Peek("/pgherald/clusters/main/master/orch-a").has_value());
  ASSERT_TRUE(pub_->Unvouch("main").ok());  // idempotent
  // A deposed leader cannot vouch.
  election_->Resign();
  EXPECT_FALSE(pub_->Vouch("main", "/pgherald/orchestrators/election/n-aaaa-0000000000", r).ok());
  EXPECT_FALSE(server_->Peek("/pgherald/clusters/main/master/orch-a").has_value());
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
  const std::string history = "/pgherald/clusters/main/history";
  ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), r).ok());
  std::string path;
  ASSERT_TRUE(pub_->Withdraw("main", election_->own_path(), w, &path).ok());
  EXPECT_FALSE(server_->Peek("/pgherald/clusters/main/master/orch-a").has_value());
  ASSERT_EQ(server_->PeekChildren(history).size(), 1u);
  EXPECT_EQ(path, history + "/" + server_->PeekChildren(history)[0]);
  EXPECT_EQ(model::HistoryEntry::FromJson(server_->Peek(path)->data)->action, "withdraw");
  // No voucher (already withdrawn, or a retry after a multi that landed): nothing is written.
  ASSERT_TRUE(pub_->Withdraw("main", election_->own_path(), w, &path).ok());
  EXPECT_EQ(path, "");
  EXPECT_EQ(server_->PeekChildren(history).size(), 1u);
  // Connection loss: reported; the voucher and entry did not land, so the retry writes them once.
  ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), r).ok());
  session_->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/false);
  EXPECT_EQ(pub_->Withdraw("main", election_->own_path(), w, &path).code(), StatusCode::kConnectionLoss);
  ASSERT_TRUE(pub_->Withdraw("main", election_->own_path(), w, &path).ok());
  EXPECT_EQ(server_->PeekChildren(history).size(), 2u);
  // A deposed leader removes its voucher but cannot write history.
  ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), r).ok());
  const std::string own = election_->own_path();
  election_->Resign();
  ASSERT_TRUE(pub_->Withdraw("main", own, w, &path).ok());
  EXPECT_EQ(path, "");
  EXPECT_FALSE(server_->Peek("/pgherald/clusters/main/master/orch-a").has_value());
  EXPECT_EQ(server_->PeekChildren(history).size(), 2u);
}

TEST_F(PublisherTest, VoucherVanishesWhenTheLeaderDies) {
  ASSERT_TRUE(pub_->Vouch("main", election_->own_path(), Record("node1", 1)).ok());
  ASSERT_TRUE(server_->ExpireSession(session_->session_id()).ok());
  EXPECT_FALSE(server_->Peek("/pgherald/clusters/main/master/orch-a").has_value());
  EXPECT_TRUE(server_->Peek("/pgherald/clusters/main/master").has_value());  // never deleted
}

TEST_F(PublisherTest, HistoryIsTrimmedToTheLimitOldestFirst) {
  for (std::uint64_t e = 1; e <= 5; ++e) {
    auto m = pub_->ReadMaster("main");
    const auto r = Record("node1", e);
    ASSERT_EQ(pub_->Publish("main", election_->own_path(), m->version, r, History(r)).outcome,
              WriteOutcome::kApplied);
    ASSERT_TRUE(pub_->TrimHistory("main").ok());
  }
  auto hist = server_->PeekChildren("/pgherald/clusters/main/history");
  ASSERT_EQ(hist.size(), 3u);
  auto oldest = model::HistoryEntry::FromJson(
      server_->Peek("/pgherald/clusters/main/history/" + hist[0])->data);
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
                  ->Create("/pgherald/clusters/main/control", ControlToJson(PausedControl()),
                           zk::CreateMode::kPersistent)
                  .ok());
  EXPECT_TRUE(pub_->ReadControl("main")->paused);
  ASSERT_TRUE(
      session_->Set("/pgherald/clusters/main/control", R"({"format":1,"paused":"yes"})").ok());
  auto bad = pub_->ReadControl("main");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/pgherald/clusters/main/control"), std::string::npos);
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
