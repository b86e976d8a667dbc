// The poller's pure core on rows recorded from the lab (PostgreSQL 15 + repmgr 5.3): layout
// detection, the tick statement's answer, the observation built from it, and the event cursor,
// including repmgr's failover sequence and the dead old primary's rows.
#include "pollers/observation.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pollers/notify.h"
#include "tests/unit/hostile_payloads.h"

namespace pgherald::pollers {
namespace {

using Cells = std::vector<std::optional<std::string>>;

const std::vector<std::string> kColumns = {
    "in_recovery",  "current_lsn",     "walfile_tli",     "receive_lsn",  "replay_lsn",
    "system_identifier", "received_tli", "sender_host", "sender_port", "checkpoint_tli",
    "repmgr_tables", "nodes_json", "events_json", "promotions_json", "repmgrd_running"};

// repmgr.nodes on the new primary after kill -9 of node1: node1 stays type=primary, active=f.
const char* kNodesAfterFailover =
    R"j([{"node_id":1,"upstream_node_id":null,"active":false,"node_name":"node1","type":"primary",)j"
    R"j("conninfo":"host=127.0.0.1 port=21960 user=repmgr dbname=repmgr connect_timeout=2"},)j"
    R"j({"node_id":2,"upstream_node_id":null,"active":true,"node_name":"node2","type":"primary",)j"
    R"j("conninfo":"host=127.0.0.1 port=21961 user=repmgr dbname=repmgr connect_timeout=2"},)j"
    R"j({"node_id":3,"upstream_node_id":2,"active":true,"node_name":"node3","type":"standby",)j"
    R"j("conninfo":"host=127.0.0.1 port=21962 user=repmgr dbname=repmgr connect_timeout=2"}])j";

// The failover as repmgr 5.3 wrote it into repmgr.events.
const char* kFailoverEvents =
    R"j([{"ts_us":1795319967802585,"node_id":2,"event":"standby_promote","successful":true,)j"
    R"j("details":"server \"node2\" (ID: 2) was successfully promoted to primary",)j"
    R"j("ts":"2026-11-22 03:59:27.802585+00"},)j"
    R"j({"ts_us":1795319967869588,"node_id":2,"event":"repmgrd_failover_promote","successful":true,)j"
    R"j("details":"node \"node2\" (ID: 2) promoted to primary; old primary \"node1\" (ID: 1) marked as failed",)j"
    R"j("ts":"2026-11-22 03:59:27.869588+00"},)j"
    R"j({"ts_us":1795319967894026,"node_id":2,"event":"repmgrd_reload","successful":true,)j"
    R"j("details":"monitoring cluster primary \"node2\" (ID: 2)","ts":"2026-11-22 03:59:27.894026+00"},)j"
    R"j({"ts_us":1795319969177591,"node_id":3,"event":"standby_follow","successful":true,)j"
    R"j("details":"standby attached to upstream node \"node2\" (ID: 2)","ts":"2026-11-22 03:59:29.177591+00"},)j"
    R"j({"ts_us":1795319969201872,"node_id":3,"event":"repmgrd_failover_follow","successful":true,)j"
    R"j("details":"node \"node3\" (ID: 3) now following new upstream node \"node2\" (ID: 2)",)j"
    R"j("ts":"2026-11-22 03:59:29.201872+00"}])j";

const char* kTables = "repmgr.events,repmgr.nodes";

pg::PgResult Result(const Cells& cells) { return pg::PgResult(kColumns, cells, -1); }

pg::PgResult NewPrimaryRow() {
  return Result({"f", "0/1C0A3F8", "00000002", std::nullopt, std::nullopt, "7710839191307841762",
                 std::nullopt, std::nullopt, std::nullopt, std::nullopt, kTables,
                 kNodesAfterFailover, kFailoverEvents, R"j({ "2" : 1795319967869588 })j", "t"});
}

pg::PgResult StandbyRow() {
  return Result({"t", std::nullopt, std::nullopt, "0/1C0A3F8", "0/1C0A3F8",
                 "7710839191307841762", "2", "127.0.0.1", "21961", "1", kTables,
                 kNodesAfterFailover, "[]", R"j({ "2" : 1795319967869588 })j", "t"});
}

NodeIdentity Identity(const std::string& node, int port) {
  NodeIdentity id;
  id.node = node;
  id.host = "127.0.0.1";
  id.port = port;
  id.version = "test";
  return id;
}

TEST(DetectLayoutTest, Repmgr4And5) {
  auto layout = DetectLayout({"repmgr.events", "repmgr.nodes"});
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->kind, RepmgrLayout::Kind::kRepmgr4);
  EXPECT_EQ(layout->schema, "repmgr");
}

TEST(DetectLayoutTest, Repmgr3IsFoundByItsSchemaPrefix) {
  auto layout = DetectLayout({"repmgr_test.repl_events", "repmgr_test.repl_nodes"});
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->kind, RepmgrLayout::Kind::kRepmgr3);
  EXPECT_EQ(layout->schema, "repmgr_test");
}

TEST(DetectLayoutTest, SeveralRepmgr3SchemasNeedTheConfiguredOne) {
  std::vector<std::string> tables = {"repmgr_a.repl_events", "repmgr_a.repl_nodes",
                                     "repmgr_b.repl_events", "repmgr_b.repl_nodes"};
  auto ambiguous = DetectLayout(tables);
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_NE(ambiguous.status().message().find("poller.repmgr3_schema"), std::string::npos);
  auto chosen = DetectLayout(tables, "repmgr_b");
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(chosen->schema, "repmgr_b");
}

TEST(DetectLayoutTest, NeitherLayoutIsAClearError) {
  auto none = DetectLayout({});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no repmgr schema"), std::string::npos);
  auto half = DetectLayout({"repmgr.nodes"});
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("repmgr.events is missing"), std::string::npos);
}

TEST(TickSqlTest, NamesTheLayoutsTablesAndTheCursorBound) {
  const std::string v5 = BuildTickSql({RepmgrLayout::Kind::kRepmgr4, "repmgr"}, 1000);
  EXPECT_NE(v5.find("\"repmgr\".nodes"), std::string::npos);
  EXPECT_NE(v5.find("\"repmgr\".events"), std::string::npos);
  EXPECT_NE(v5.find("> 1000"), std::string::npos);
  EXPECT_NE(v5.find("repmgrd_is_running"), std::string::npos);
  const std::string v3 = BuildTickSql({RepmgrLayout::Kind::kRepmgr3, "repmgr_x"}, std::nullopt);
  EXPECT_NE(v3.find("\"repmgr_x\".repl_nodes"), std::string::npos);
  EXPECT_NE(v3.find("DESC LIMIT 100"), std::string::npos);
  EXPECT_EQ(v3.find("repmgrd_is_running"), std::string::npos);
  const std::string none = BuildTickSql({}, std::nullopt);
  EXPECT_EQ(none.find("nodes_json"), std::string::npos);
}

TEST(ObservationTest, NewPrimaryAfterFailover) {
  auto tick = ParseTickResult(NewPrimaryRow());
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  ASSERT_EQ(tick->events.size(), 5u);
  auto o = BuildObservation(Identity("node2", 21961), *tick, "");
  EXPECT_TRUE(o.reachable);
  EXPECT_FALSE(o.in_recovery);
  EXPECT_EQ(o.timeline, 2u);  // from the WAL file name, not the (lagging) checkpoint
  EXPECT_EQ(o.current_lsn, model::ParseLsn("0/1C0A3F8").value());
  EXPECT_FALSE(o.receive_lsn.has_value());
  EXPECT_EQ(o.system_identifier, "7710839191307841762");
  EXPECT_EQ(o.node_id, 2);
  ASSERT_TRUE(o.promoted_at_ms.has_value());
  EXPECT_EQ(*o.promoted_at_ms, 1795319967869);
  EXPECT_TRUE(o.repmgrd_running);
  EXPECT_EQ(o.error, "");
  ASSERT_EQ(o.repmgr_nodes.size(), 3u);
  // The dead old primary stays "primary" but inactive: evidence, reported as repmgr says it.
  EXPECT_EQ(o.repmgr_nodes[0].name, "node1");
  EXPECT_EQ(o.repmgr_nodes[0].type, "primary");
  EXPECT_FALSE(o.repmgr_nodes[0].active);
  EXPECT_TRUE(o.repmgr_nodes[1].active);
  EXPECT_EQ(o.repmgr_nodes[2].upstream_node_id, 2);
  // A payload that round-trips through the contract's codec.
  auto back = model::NodeObservation::FromJson(o.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, o);
}

// promoted_at is the promotion that produced the node's CURRENT timeline (issue 12, finding 1): the
// start of that timeline (the primary's <TLI>.history mtime, column timeline_started_us), not the
// latest promotion repmgr ever recorded for the node.
pg::PgResult WithTimelineStart(const std::string& in_recovery, const std::string& walfile_tli,
                               const std::string& promotions,
                               std::optional<std::string> timeline_started_us) {
  std::vector<std::string> columns = kColumns;
  columns.push_back("timeline_started_us");
  const bool standby = in_recovery == "t";
  Cells cells = {in_recovery,
                 standby ? std::nullopt : std::optional<std::string>("0/1C0A3F8"),
                 standby ? std::nullopt : std::optional<std::string>(walfile_tli),
                 std::nullopt,
                 std::nullopt,
                 "7710839191307841762",
                 standby ? std::optional<std::string>("3") : std::nullopt,
                 std::nullopt,
                 std::nullopt,
                 std::nullopt,
                 kTables,
                 kNodesAfterFailover,
                 "[]",
                 promotions,
                 "t",
                 std::move(timeline_started_us)};
  return pg::PgResult(columns, cells, -1);
}

TEST(PromotedAtTest, IsTheStartOfTheCurrentTimelineNotTheLatestPromotionEver) {
  // node2 is writable on timeline 3, which began at 1795319900 s; repmgr's table also holds a
  // later successful promotion of node2 (replayed from another history, or a promotion whose
  // timeline this node no longer is on): it must not make node2 look freshly promoted.
  auto tick = ParseTickResult(
      WithTimelineStart("f", "00000003", R"j({"2": 1795320999000000})j", "1795319900000000"));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  ASSERT_TRUE(tick->timeline_started_us.has_value());
  auto o = BuildObservation(Identity("node2", 21961), *tick, "");
  EXPECT_EQ(o.timeline, 3u);
  ASSERT_TRUE(o.promoted_at_ms.has_value());
  EXPECT_EQ(*o.promoted_at_ms, 1795319900000);
  // Also without any repmgr promotion event (promoted with pg_ctl promote): the timeline's start.
  tick = ParseTickResult(WithTimelineStart("f", "00000003", "{}", "1795319900000000"));
  ASSERT_TRUE(tick.ok());
  EXPECT_EQ(BuildObservation(Identity("node2", 21961), *tick, "").promoted_at_ms, 1795319900000);
}

TEST(PromotedAtTest, TimelineOneAndStandbysWereNotPromotedIntoTheirTimeline) {
  // Writable on timeline 1: never promoted in this history, whatever repmgr's table says.
  auto tick = ParseTickResult(
      WithTimelineStart("f", "00000001", R"j({"2": 1795320999000000})j", std::nullopt));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  EXPECT_FALSE(BuildObservation(Identity("node2", 21961), *tick, "").promoted_at_ms.has_value());
  // A standby that was promoted once (and rejoined): not promoted into its current timeline.
  tick = ParseTickResult(WithTimelineStart("t", "", R"j({"2": 1795320999000000})j", std::nullopt));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  auto standby = BuildObservation(Identity("node2", 21961), *tick, "");
  EXPECT_TRUE(standby.in_recovery);
  EXPECT_FALSE(standby.promoted_at_ms.has_value());
}

TEST(PromotedAtTest, UnknownTimelineStartFallsBackToTheLatestRepmgrPromotion) {
  // No right to call pg_stat_file (or no history file): the statement answers NULL.
  auto tick = ParseTickResult(
      WithTimelineStart("f", "00000003", R"j({"2": 1795320999000000})j", std::nullopt));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  EXPECT_FALSE(tick->timeline_started_us.has_value());
  EXPECT_EQ(BuildObservation(Identity("node2", 21961), *tick, "").promoted_at_ms, 1795320999000);
}

TEST(TickSqlTest, ReadsTheTimelineHistoryFileOnlyWithAFunctionTheRoleMayCall) {
  // PostgreSQL checks EXECUTE on every function of the statement when it starts it: the column is
  // in the statement only with the function the probe found callable.
  TickSqlOptions options;
  EXPECT_EQ(BuildTickSql({}, std::nullopt, options).find("timeline_started_us"), std::string::npos);
  options.timeline_start = TimelineStart::kStatFile;
  std::string sql = BuildTickSql({}, std::nullopt, options);
  EXPECT_NE(sql.find("pg_stat_file('pg_wal/' ||"), std::string::npos);
  EXPECT_NE(sql.find("'.history', true)"), std::string::npos);
  EXPECT_EQ(sql.find("pg_ls_waldir"), std::string::npos);
  EXPECT_NE(sql.find("AS timeline_started_us"), std::string::npos);
  options.timeline_start = TimelineStart::kLsWaldir;
  sql = BuildTickSql({RepmgrLayout::Kind::kRepmgr4, "repmgr"}, 1000, options);
  EXPECT_NE(sql.find("pg_ls_waldir()"), std::string::npos);
  EXPECT_EQ(sql.find("pg_stat_file"), std::string::npos);
  EXPECT_NE(sql.find("AS timeline_started_us"), std::string::npos);

  const std::vector<std::string> columns = {"stat_file", "ls_waldir"};
  auto probe = [&](const char* stat_file, const char* ls_waldir) {
    return ParseTimelineStartProbe(pg::PgResult(columns, Cells{stat_file, ls_waldir}, -1));
  };
  EXPECT_EQ(probe("t", "t").value(), TimelineStart::kStatFile);
  EXPECT_EQ(probe("f", "t").value(), TimelineStart::kLsWaldir);
  EXPECT_EQ(probe("f", "f").value(), TimelineStart::kNone);
  EXPECT_FALSE(probe("x", "f").ok());
}
TEST(ObservationTest, StandbyStreamsFromTheNodeWhoseConninfoNamesTheSender) {
  auto tick = ParseTickResult(StandbyRow());
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  auto o = BuildObservation(Identity("node3", 21962), *tick, "");
  EXPECT_TRUE(o.in_recovery);
  EXPECT_EQ(o.timeline, 2u);  // received_tli, not checkpoint_tli (1, lagging)
  EXPECT_EQ(o.upstream_node, "node2");
  EXPECT_EQ(o.sender_port, 21961);
  EXPECT_FALSE(o.current_lsn.has_value());
  EXPECT_TRUE(o.replay_lsn.has_value());
  EXPECT_FALSE(o.promoted_at_ms.has_value());  // node3 was never promoted
  EXPECT_EQ(o.node_id, 3);
}

TEST(ObservationTest, StandbyWithoutSenderFallsBackToCheckpointTimelineAndNoUpstream) {
  Cells cells = {"t", std::nullopt, std::nullopt, "0/1C0A3F8", "0/1C0A3F8", "7710839191307841762",
                 std::nullopt, std::nullopt, std::nullopt, "1", kTables, kNodesAfterFailover,
                 std::nullopt, std::nullopt, "t"};
  auto tick = ParseTickResult(Result(cells));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  auto o = BuildObservation(Identity("node3", 21962), *tick, "");
  EXPECT_EQ(o.timeline, 1u);
  EXPECT_EQ(o.upstream_node, "");
}

TEST(ObservationTest, MissingSchemaIsAnErrorButTheRestIsPublished) {
  const std::vector<std::string> columns(kColumns.begin(), kColumns.begin() + 11);
  Cells cells = {"f", "0/3000060", "00000001", std::nullopt, std::nullopt, "42", std::nullopt,
                 std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  auto tick = ParseTickResult(pg::PgResult(columns, cells, -1));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  auto layout = DetectLayout(tick->repmgr_tables);
  ASSERT_FALSE(layout.ok());
  auto o = BuildObservation(Identity("n1", 5432), *tick, layout.status().message());
  EXPECT_TRUE(o.reachable);
  EXPECT_EQ(o.timeline, 1u);
  EXPECT_EQ(o.system_identifier, "42");
  EXPECT_NE(o.error.find("no repmgr schema"), std::string::npos);
}

TEST(ObservationTest, Repmgr3MasterIsNormalisedToPrimary) {
  Cells cells = {"f", "0/3000060", "00000001", std::nullopt, std::nullopt, "42", std::nullopt,
                 std::nullopt, std::nullopt, std::nullopt,
                 "repmgr_test.repl_events,repmgr_test.repl_nodes",
                 R"j([{"node_id":1,"upstream_node_id":null,"active":true,"node_name":"n1",)j"
                 R"j("type":"master","conninfo":"host=h port=1"}])j",
                 "[]", std::nullopt, std::nullopt};
  auto tick = ParseTickResult(Result(cells));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  auto o = BuildObservation(Identity("n1", 5432), *tick, "");
  ASSERT_EQ(o.repmgr_nodes.size(), 1u);
  EXPECT_EQ(o.repmgr_nodes[0].type, "primary");
  EXPECT_EQ(o.node_id, 1);
}

TEST(ObservationTest, NodeUnknownToRepmgrIsNamedInTheError) {
  auto tick = ParseTickResult(NewPrimaryRow());
  ASSERT_TRUE(tick.ok());
  auto o = BuildObservation(Identity("pg-b", 21961), *tick, "");
  EXPECT_NE(o.error.find("poller.repmgr_node_id"), std::string::npos);
  NodeIdentity id = Identity("pg-b", 21961);
  id.repmgr_node_id = 2;
  auto fixed = BuildObservation(id, *tick, "");
  EXPECT_EQ(fixed.error, "");
  EXPECT_EQ(fixed.node_id, 2);
}

TEST(ObservationTest, MalformedColumnIsNamed) {
  Cells cells = {"f", "not-an-lsn", "00000001", std::nullopt, std::nullopt, "42", std::nullopt,
                 std::nullopt, std::nullopt, std::nullopt, kTables, "[]", "[]", std::nullopt, "t"};
  auto tick = ParseTickResult(Result(cells));
  ASSERT_FALSE(tick.ok());
  EXPECT_NE(tick.status().message().find("current_lsn"), std::string::npos);
}

TEST(ObservationTest, UnreachableKeepsIdentityFactsOnly) {
  auto tick = ParseTickResult(NewPrimaryRow());
  ASSERT_TRUE(tick.ok());
  auto last = BuildObservation(Identity("node2", 21961), *tick, "");
  auto down = BuildUnreachable(Identity("node2", 21961), "connection refused", &last);
  EXPECT_FALSE(down.reachable);
  EXPECT_EQ(down.error, "connection refused");
  EXPECT_EQ(down.system_identifier, last.system_identifier);
  EXPECT_EQ(down.promoted_at_ms, last.promoted_at_ms);
  EXPECT_EQ(down.timeline, 0u);
  EXPECT_FALSE(down.current_lsn.has_value());
  EXPECT_TRUE(ObservationChanged(last, down));
  auto same = last;
  same.seq = 99;
  same.observed_at_ms = 12345;
  EXPECT_FALSE(ObservationChanged(last, same));
}

RepmgrEvent Ev(std::int64_t ts, int node, const std::string& name) {
  RepmgrEvent e;
  e.key = {ts, node, name};
  return e;
}

TEST(EventCursorTest, FailoverSequenceIsAcceptedOnceInOrder) {
  auto tick = ParseTickResult(NewPrimaryRow());
  ASSERT_TRUE(tick.ok());
  EventCursor cursor(10'000'000);
  EXPECT_FALSE(cursor.QueryFromUs().has_value());
  auto fresh = cursor.Accept(tick->events);
  ASSERT_EQ(fresh.size(), 5u);
  EXPECT_EQ(fresh[0].key.event, "standby_promote");
  EXPECT_EQ(fresh[1].key.event, "repmgrd_failover_promote");
  EXPECT_EQ(fresh[4].key.event, "repmgrd_failover_follow");
  // The next query reads back over the look-back window and gets the same rows again.
  EXPECT_EQ(cursor.QueryFromUs(), 1795319969201872 - 10'000'000);
  EXPECT_TRUE(cursor.Accept(tick->events).empty());
}

TEST(EventCursorTest, LateCommitBehindTheHighWaterMarkIsStillAccepted) {
  EventCursor cursor(10'000'000);
  cursor.Accept({Ev(5'000'000, 1, "a"), Ev(9'000'000, 2, "c")});
  // A transaction that started at 7 s committed after the row of 9 s was read.
  auto fresh = cursor.Accept({Ev(7'000'000, 3, "b"), Ev(9'000'000, 2, "c")});
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].key.event, "b");
}

TEST(EventCursorTest, SameTimestampDifferentNodeOrEventAreDistinct) {
  EventCursor cursor;
  auto fresh = cursor.Accept({Ev(1, 1, "x"), Ev(1, 2, "x"), Ev(1, 1, "y"), Ev(1, 1, "x")});
  EXPECT_EQ(fresh.size(), 3u);
}

TEST(EventCursorTest, SeenKeysBeyondTheWindowAreForgotten) {
  EventCursor cursor(1'000'000);
  cursor.Accept({Ev(1'000'000, 1, "old")});
  cursor.Accept({Ev(10'000'000, 1, "new")});
  // The query would not return the old row any more (ts <= QueryFromUs()); were it returned,
  // it counts as new: the set stays bounded.
  EXPECT_EQ(cursor.QueryFromUs(), 9'000'000);
  EXPECT_EQ(cursor.Accept({Ev(1'000'000, 1, "old")}).size(), 1u);
}

TEST(RepmgrEventTest, ZnodeNameIsDeterministicSortableAndSafe) {
  RepmgrEvent e = Ev(1795319967802585, 2, "standby_promote");
  EXPECT_EQ(e.ZnodeName(), "e-1795319967802585-2-standby_promote");
  EXPECT_EQ(Ev(5, 1, "a/b c").ZnodeName(), "e-0000000000000005-1-a_b_c");
  EXPECT_LT(Ev(5, 1, "z").ZnodeName(), Ev(6, 1, "a").ZnodeName());
  e.details = "server \"node2\" promoted";
  e.timestamp = "2026-11-22 03:59:27.802585+00";
  auto back = RepmgrEvent::FromJson(e.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, e);
  EXPECT_FALSE(RepmgrEvent::FromJson(R"j({"format":2,"ts_us":1,"node_id":1,"event":"x"})j").ok());
}

TEST(RepmgrTimestampTest, NotifyTimestampsMatchTheTablesMicroseconds) {
  // %t of a table event is the table's text; the notify-only events have whole seconds and +0000.
  EXPECT_EQ(ParseRepmgrTimestamp("2026-11-22 03:59:27.802585+00").value(), 1795319967802585);
  EXPECT_EQ(ParseRepmgrTimestamp("2026-11-22 03:59:26+0000").value(), 1795319966000000);
  EXPECT_EQ(ParseRepmgrTimestamp("2026-11-22 04:59:26.5+01:00").value(), 1795319966500000);
  EXPECT_EQ(ParseRepmgrTimestamp("2026-11-22T03:59:26Z").value(), 1795319966000000);
  EXPECT_EQ(ParseRepmgrTimestamp("1970-01-01 00:00:00").value(), 0);
  EXPECT_FALSE(ParseRepmgrTimestamp("yesterday").ok());
  EXPECT_FALSE(ParseRepmgrTimestamp("2026-11-22 03:59:26+0x").ok());
}

// ---- untrusted input: repmgr's rows, event facts, notify datagrams ----

Cells WithColumn(Cells cells, const std::string& column, const std::string& value) {
  for (std::size_t i = 0; i < kColumns.size(); ++i) {
    if (kColumns[i] == column) cells[i] = value;
  }
  return cells;
}

Cells NewPrimaryCells() {
  return {"f", "0/1C0A3F8", "00000002", std::nullopt, std::nullopt, "7710839191307841762",
          std::nullopt, std::nullopt, std::nullopt, std::nullopt, kTables,
          kNodesAfterFailover, kFailoverEvents, R"j({ "2" : 1795319967869588 })j", "t"};
}

// get<int>() of 4294967297 was 1: node 4294967297 became node 1.
TEST(UntrustedRepmgrTest, NodeIdsBeyondIntAreRefusedNotNarrowed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nodes_json", R"j([{"node_id":4294967297,"node_name":"x","type":"primary"}])j"},
      {"nodes_json", R"j([{"node_id":1,"upstream_node_id":4294967298,"node_name":"x"}])j"},
      {"events_json", R"j([{"ts_us":1,"node_id":4294967297,"event":"e"}])j"},
      {"events_json", R"j([{"ts_us":18446744073709551615,"node_id":1,"event":"e"}])j"},
      {"promotions_json", R"j({"4294967297": 5})j"},
      {"promotions_json", R"j({"2": 18446744073709551615})j"},
  };
  for (const auto& [column, value] : cases) {
    auto tick = ParseTickResult(Result(WithColumn(NewPrimaryCells(), column, value)));
    ASSERT_FALSE(tick.ok()) << column << " " << value;
    EXPECT_NE(tick.status().message().find(column), std::string::npos) << tick.status().message();
  }
}

TEST(UntrustedRepmgrTest, DeepNestingInAColumnIsRefusedWithoutRecursing) {
  for (const char* column : {"nodes_json", "events_json", "promotions_json"}) {
    auto tick = ParseTickResult(
        Result(WithColumn(NewPrimaryCells(), column, testing::NestedArrays(200 * 1024))));
    ASSERT_FALSE(tick.ok()) << column;
    EXPECT_NE(tick.status().message().find("nested deeper than 16"), std::string::npos);
  }
}

TEST(UntrustedRepmgrTest, OddRepmgrTextIsSanitizedNotFatal) {
  // A repmgr node_name with a newline, an event name with an escape sequence, long details.
  const std::string nodes =
      R"j([{"node_id":2,"active":true,"node_name":"node2\nfake","type":"primary",)j"
      R"j("conninfo":"host=127.0.0.1 port=21961"},{"node_id":3,"active":true,"node_name":"node3",)j"
      R"j("type":"standby","upstream_node_id":2,"conninfo":"host=127.0.0.1 port=21962"}])j";
  const std::string events = R"j([{"ts_us":1,"node_id":2,"event":"standby_promote\u001b[2J",)j"
                             R"j("successful":true,"details":")j" +
                             std::string(10000, 'd') + R"j(\u0007","ts":"2026-11-22 03:59:27+00"}])j";
  Cells cells = {"t", std::nullopt, std::nullopt, "0/1C0A3F8", "0/1C0A3F8", "7710839191307841762",
                 "2", "127.0.0.1", "21961", "1", kTables, nodes, events, std::nullopt, "t"};
  auto tick = ParseTickResult(Result(cells));
  ASSERT_TRUE(tick.ok()) << tick.status().ToString();
  ASSERT_EQ(tick->events.size(), 1u);
  EXPECT_EQ(tick->events[0].key.event, "standby_promote\\x1b[2J");
  EXPECT_LE(tick->events[0].details.size(), 4096u + 3);
  // The published fact decodes (every field within its limits).
  auto fact = RepmgrEvent::FromJson(tick->events[0].ToJson());
  ASSERT_TRUE(fact.ok()) << fact.status().ToString();
  auto o = BuildObservation(Identity("node3", 21962), *tick, "");
  // The sender is node2 by conninfo, but its repmgr name is no pgherald node name.
  EXPECT_EQ(o.upstream_node, "");
  EXPECT_NE(o.error.find("is not a valid pgherald node name"), std::string::npos) << o.error;
  EXPECT_EQ(o.repmgr_nodes[0].name, "node2\\x0afake");
  auto back = model::NodeObservation::FromJson(o.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, o);
}

TEST(UntrustedEventFactTest, FactsAreValidated) {
  const std::string good = Ev(1795319967802585, 2, "standby_promote").ToJson();
  ASSERT_TRUE(RepmgrEvent::FromJson(good).ok());
  for (const std::string& text : testing::DeepPayloads(good, "event")) {
    auto e = RepmgrEvent::FromJson(text);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find("event: "), std::string::npos);
  }
  for (const char* format : {"4294967297", "2", "\"1\""}) {
    auto e = RepmgrEvent::FromJson(testing::ReplaceField(good, "format", format));
    ASSERT_FALSE(e.ok()) << format;
    EXPECT_NE(e.status().message().find("field 'format'"), std::string::npos);
  }
  EXPECT_FALSE(RepmgrEvent::FromJson(testing::ReplaceField(good, "node_id", "4294967298")).ok());
  EXPECT_FALSE(RepmgrEvent::FromJson(testing::ReplaceField(good, "event", "\"a\\nb\"")).ok());
  EXPECT_FALSE(RepmgrEvent::FromJson(testing::ReplaceField(good, "source", "\"x\"")).ok());
  auto d = RepmgrEvent::FromJson(testing::ReplaceField(good, "details", "\"\\u001b]0;x\\u0007\""));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->details, "\\x1b]0;x\\x07");
}

TEST(UntrustedNotifyTest, DatagramsAreValidated) {
  NotifyMessage m;
  m.node_id = 2;
  m.event = "standby_promote";
  m.timestamp = "2026-11-22 03:59:27.802585+00";
  m.details = "promoted";
  const std::string good = m.Encode();
  ASSERT_TRUE(NotifyMessage::Decode(good).ok());
  for (const std::string& text : testing::DeepPayloads(good, "event")) {
    auto d = NotifyMessage::Decode(text);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.status().message().find("notify datagram"), std::string::npos);
  }
  auto big = NotifyMessage::Decode(testing::ReplaceField(good, "node_id", "4294967297"));
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("field 'node_id'"), std::string::npos);
  auto odd = NotifyMessage::Decode(testing::ReplaceField(good, "event", "\"a\\u001bb\""));
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->event, "a\\x1bb");
  // The sender cuts details so that the datagram stays under the receiver's limit.
  auto args = ParseNotifyArgs({"1", "e", "1", "t", std::string(100000, 'x')});
  ASSERT_TRUE(args.ok());
  EXPECT_LT(args->Encode().size(), 8192u);
  EXPECT_TRUE(NotifyMessage::Decode(args->Encode()).ok());
}

}  // namespace
}  // namespace pgherald::pollers
