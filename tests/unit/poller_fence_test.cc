// Fencing a stale primary only on a record an orchestrator vouches for (issue 12, findings 1 and
// 3): the pure rule ShouldFence as a table over the voucher kinds and timelines, and the Poller's
// loop on FakeZk, where a hostile record (hand-written, replayed, beside a legacy voucher) never
// fences and never confirms, while the leader's record with its bound voucher fences a node behind
// it or beside it on the same timeline.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/model/voucher.h"
#include "pollers/fencing.h"
#include "pollers/poller.h"
#include "tests/unit/poller_fixture.h"

namespace pgherald::pollers {
namespace {

// ---- The pure rule --------------------------------------------------------------------------

MasterRead Read(const model::MasterRecord& r, Voucher voucher) {
  MasterRead read;
  read.record = r;
  const std::string bytes = r.ToJson();
  std::vector<std::string> children;
  if (voucher != Voucher::kNone) children.push_back(VoucherChild(r, bytes, voucher));
  read.bound = model::BoundVouchers(children, r, bytes);
  return read;
}

struct FenceCase {
  const char* name;
  std::uint32_t self_timeline;
  const char* master_node;
  std::uint32_t master_timeline;
  Voucher voucher;
  bool fence;
  const char* reason = "";  // a part of the reason when fencing
};

TEST(ShouldFenceTest, Table) {
  const std::vector<FenceCase> cases = {
      {"vouched master on a later timeline", 1, "node2", 2, Voucher::kBound, true, "stale primary"},
      {"vouched master beside on the same timeline", 2, "node2", 2, Voucher::kBound, true,
       "same-timeline stale primary"},
      {"this node ahead: a newer promotion not yet published", 3, "node2", 2, Voucher::kBound,
       false},
      {"this node is the vouched master", 1, "node1", 2, Voucher::kBound, false},
      {"forged record, legacy voucher beside it", 1, "node2", 9, Voucher::kLegacy, false},
      {"forged record, a voucher bound to other bytes", 1, "node2", 9, Voucher::kOtherBytes, false},
      {"record without any voucher", 1, "node2", 2, Voucher::kNone, false},
      {"same timeline, legacy voucher", 2, "node2", 2, Voucher::kLegacy, false},
      {"timeline unknown", 0, "node2", 2, Voucher::kBound, false},
  };
  for (const auto& c : cases) {
    const FenceVerdict v =
        ShouldFence(PollerOnFakeZkTest::Writable(c.self_timeline),
                    Read(PollerOnFakeZkTest::Record(c.master_node, c.master_timeline), c.voucher));
    EXPECT_EQ(v.fence, c.fence) << c.name;
    if (c.fence) {
      EXPECT_NE(v.reason.find(c.reason), std::string::npos) << c.name << ": " << v.reason;
      EXPECT_NE(v.reason.find("node2"), std::string::npos) << c.name << ": " << v.reason;
    }
  }
  const MasterRead vouched = Read(PollerOnFakeZkTest::Record("node2", 2), Voucher::kBound);
  auto standby = PollerOnFakeZkTest::Writable(1);
  standby.in_recovery = true;
  EXPECT_FALSE(ShouldFence(standby, vouched).fence);
  auto down = PollerOnFakeZkTest::Writable(1);
  down.reachable = false;
  EXPECT_FALSE(ShouldFence(down, vouched).fence);
  EXPECT_FALSE(ShouldFence(PollerOnFakeZkTest::Writable(1), MasterRead{}).fence);
  model::MasterRecord none = PollerOnFakeZkTest::Record("node2", 2);
  none.state = model::MasterState::kNoMaster;
  EXPECT_FALSE(ShouldFence(PollerOnFakeZkTest::Writable(1), Read(none, Voucher::kBound)).fence);
}

// ---- The Poller's loop on FakeZk --------------------------------------------------------------

using PollerFenceTest = PollerOnFakeZkTest;

TEST_F(PollerFenceTest, ForgedRecordOnAHigherTimelineWithALegacyVoucherFencesNothing) {
  // Finding 3: a well-formed record naming another node on a higher timeline, written by hand
  // beside an old-style voucher (or a voucher of another record).
  MakePoller();
  for (Voucher v : {Voucher::kNone, Voucher::kLegacy, Voucher::kOtherBytes}) {
    Write(Record("node2", /*timeline=*/7, /*epoch=*/99), v);
    TickFor(Millis(2000));
    EXPECT_EQ(FenceRuns(), 0) << static_cast<int>(v);
    EXPECT_EQ(poller_->fencing(), model::FencingState::kNone);
  }
  // The same record vouched by a bound voucher: the stale primary is fenced, once.
  Write(Record("node2", 7, 99), Voucher::kBound);
  TickFor(Millis(500));
  EXPECT_EQ(FenceRuns(), 1);
  EXPECT_NE(ReadFile(marker_).find("stale primary"), std::string::npos) << ReadFile(marker_);
  EXPECT_EQ(poller_->fencing(), model::FencingState::kFenced);
}

TEST_F(PollerFenceTest, SameTimelineLoserBesideTheVouchedMasterIsFenced) {
  // Finding 1: node1 was promoted a second time out of band onto the published master's timeline.
  node_ = Writable(3);
  MakePoller();
  Write(Record("node2", 3, 5), Voucher::kLegacy);
  TickFor(Millis(2000));
  EXPECT_EQ(FenceRuns(), 0) << "a legacy voucher fences nothing, on any timeline";
  Write(Record("node2", 3, 5), Voucher::kBound);
  TickFor(Millis(500));
  ASSERT_EQ(FenceRuns(), 1);
  EXPECT_NE(ReadFile(marker_).find("same-timeline stale primary"), std::string::npos)
      << ReadFile(marker_);
  auto o = Published();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->fencing, model::FencingState::kFenced);
  EXPECT_NE(o->error.find("same-timeline stale primary"), std::string::npos) << o->error;
}

TEST_F(PollerFenceTest, ARecordRewrittenUnderItsVoucherFencesNothing) {
  // The leader's record and bound voucher, then the record's bytes changed by hand (the voucher
  // left in place): the voucher no longer binds, nothing is fenced.
  MakePoller();
  const model::MasterRecord r = Record("node2", 2, 4);
  Write(r, Voucher::kBound);
  const auto children = server_->PeekChildren(kMaster);
  ASSERT_EQ(children.size(), 1u);
  model::MasterRecord forged = r;
  forged.timeline = 8;  // same epoch, another timeline
  ASSERT_TRUE(orchestrator_->Set(kMaster, forged.ToJson()).ok());
  node_ = Writable(2);
  TickFor(Millis(2000));
  EXPECT_EQ(FenceRuns(), 0);
  EXPECT_EQ(server_->PeekChildren(kMaster), children);
}

TEST_F(PollerFenceTest, SelfFenceConfirmationNeedsABoundVoucher) {
  MakePoller();
  Write(Record("node1"), Voucher::kLegacy);
  TickFor(Millis(1000));
  EXPECT_FALSE(poller_->last_confirmed().has_value()) << "a legacy voucher confirms nothing";
  Write(Record("node1"), Voucher::kOtherBytes);
  TickFor(Millis(1000));
  EXPECT_FALSE(poller_->last_confirmed().has_value()) << "nor a voucher of other bytes";
  Write(Record("node1"), Voucher::kBound);
  TickFor(Millis(500));
  ASSERT_TRUE(poller_->last_confirmed().has_value());
  EXPECT_EQ(*poller_->last_confirmed(), clock_.Now());
  // A record naming another node, however vouched, confirms nothing.
  const MonoTime confirmed = *poller_->last_confirmed();
  node_ = Writable(3);  // ahead of it: not fenced either
  Write(Record("node2", 2, 2), Voucher::kBound);
  TickFor(Millis(1000));
  EXPECT_EQ(*poller_->last_confirmed(), confirmed);
  EXPECT_EQ(FenceRuns(), 0);
}

}  // namespace
}  // namespace pgherald::pollers
