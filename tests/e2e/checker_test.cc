// The checker on hand-made facts: each property must flag the history that breaks it.
#include "tests/e2e/checker.h"
#include "tests/e2e/drills.h"

#include <gtest/gtest.h>

namespace pgherald::e2e {
namespace {

constexpr int kOld = 20001;
constexpr int kNew = 20002;
constexpr std::int64_t kMs = 1000000;

model::MasterRecord Rec(int port, std::uint64_t epoch) {
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = port == kOld ? "node1" : "node2";
  r.host = "127.0.0.1";
  r.port = port;
  r.timeline = 1;
  r.lsn = 1;
  r.epoch = epoch;
  return r;
}

model::HistoryEntry Publish(int port, std::uint64_t epoch, std::int64_t at_ms) {
  model::HistoryEntry e;
  e.cluster = "main";
  e.action = "publish";
  e.epoch = epoch;
  e.decided_at_ms = at_ms;
  e.master = Rec(port, epoch);
  if (epoch > 1) e.previous = Rec(kOld, epoch - 1);
  return e;
}

WriteOp Ack(int client, std::int64_t seq, int port, std::int64_t invoke_ms, std::int64_t done_ms) {
  WriteOp op;
  op.client = client;
  op.seq = seq;
  op.acked = true;
  op.port = port;
  op.invoke_ns = invoke_ms * kMs;
  op.done_ns = done_ms * kMs;
  return op;
}

// A clean failover: published at 1000 ms (wall = mono here), old acks before, new acks after.
DrillFacts Clean() {
  DrillFacts f;
  f.old_primary_port = kOld;
  f.epoch_before = 1;
  f.history = {Publish(kOld, 1, 10), Publish(kNew, 2, 1000)};
  f.final_master = Rec(kNew, 2);
  f.final_vouchers = 1;
  f.writable_ports = {kNew};
  f.final_primary_port = kNew;
  f.ops = {Ack(1, 1, kOld, 100, 101), Ack(1, 2, kOld, 200, 201), Ack(1, 3, kNew, 1100, 1101)};
  f.rows_on_final = {{1, 1}, {1, 2}, {1, 3}};
  return f;
}

TEST(E2eCheckerTest, CleanFailoverPasses) {
  const auto r = Check(Clean());
  EXPECT_TRUE(r.violations.empty()) << r.Summary();
  EXPECT_TRUE(r.new_master_published);
  EXPECT_EQ(r.acked, 3);
  EXPECT_EQ(r.acked_after_publish, 1);
  EXPECT_EQ(r.publish_ns, 1000 * kMs);
}

TEST(E2eCheckerTest, LostAfterPublishIsAViolation) {
  auto f = Clean();
  f.rows_on_final.erase({1, 3});
  const auto r = Check(f);
  EXPECT_EQ(r.lost_after_publish, 1);
  EXPECT_FALSE(r.violations.empty());
}

TEST(E2eCheckerTest, OldMasterAckAfterPublishIsAViolation) {
  auto f = Clean();
  f.ops.push_back(Ack(2, 1, kOld, 990, 1005));
  f.rows_on_final.insert({2, 1});
  const auto r = Check(f);
  EXPECT_EQ(r.acked_by_old_after_publish, 1);
  EXPECT_FALSE(r.violations.empty());
}

TEST(E2eCheckerTest, LostBeforePromotionIsReportedNotAViolation) {
  auto f = Clean();
  f.history.back().data_loss = model::DataLossEstimate{"node1", 500, "node2", 380, 120};
  f.rows_on_final.erase({1, 2});
  const auto r = Check(f);
  EXPECT_TRUE(r.violations.empty()) << r.Summary();
  EXPECT_EQ(r.lost_before_promotion, 1);
  EXPECT_EQ(r.gap_bytes, 120u);
}

TEST(E2eCheckerTest, EpochsMustGrowAndNameOneNode) {
  auto f = Clean();
  f.history.push_back(Publish(kOld, 2, 1200));  // epoch 2 again, another node
  EXPECT_FALSE(Check(f).violations.empty());
  f = Clean();
  auto back = Publish(kNew, 1, 1300);
  back.previous.reset();
  f.history.push_back(back);  // epoch goes back
  EXPECT_FALSE(Check(f).violations.empty());
}

TEST(E2eCheckerTest, NotConvergedIsAViolation) {
  auto f = Clean();
  f.writable_ports = {kOld, kNew};  // split brain at the end
  EXPECT_FALSE(Check(f).violations.empty());
  f = Clean();
  f.final_vouchers = 0;  // no voucher
  EXPECT_FALSE(Check(f).violations.empty());
  f = Clean();
  f.final_master = Rec(kOld, 3);  // points at the wrong node
  EXPECT_FALSE(Check(f).violations.empty());
}

// What clients saw, split by what broke each failed statement: its server lost under it (in
// flight on the dying master) or no server at all (what a hold is for).
TEST(ClientImpact, FailuresAreSplitByWhetherTheServerWasLostUnderThem) {
  const auto failed = [](std::int64_t invoke_ms, const std::string& error) {
    WriteOp op;
    op.route = Route::kPgbouncer;
    op.invoke_ns = invoke_ms * kMs;
    op.done_ns = (invoke_ms + 5) * kMs;
    op.error = error;
    return op;
  };
  const std::vector<WriteOp> ops = {
      failed(98, "FATAL:  server conn crashed?"),
      failed(101, "server closed the connection unexpectedly\n\tThis probably means ..."),
      failed(102, "FATAL:  server login has been failing, try again later (server_login_retry)"),
      failed(103, "FATAL:  pgbouncer cannot connect to server"),
      failed(150, "FATAL:  terminating connection due to unexpected postmaster exit"),
  };
  const ClientImpact c =
      ImpactOf(ops, Route::kPgbouncer, 100 * kMs, 1000 * kMs, std::chrono::milliseconds(50), 0);
  EXPECT_EQ(c.failed_in_flight, 1);
  EXPECT_EQ(c.failed_after_fault, 4);
  EXPECT_EQ(c.failed_server_lost, 3);
  EXPECT_EQ(c.failed_without_server(), 2);
  EXPECT_FALSE(ServerLostUnderStatement("FATAL:  query_wait_timeout"));
}

}  // namespace
}  // namespace pgherald::e2e
