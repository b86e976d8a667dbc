// The payload codecs of common/model/cluster_model.h: round trips, corrupt payloads named precisely,
// LSNs.
#include "common/model/cluster_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "tests/unit/hostile_payloads.h"

namespace pgherald::model {
namespace {

using ::testing::HasSubstr;

NodeObservation SampleObservation() {
  NodeObservation o;
  o.node = "db2";
  o.node_id = 2;
  o.host = "127.0.0.1";
  o.port = 15433;
  o.reachable = true;
  o.in_recovery = true;
  o.timeline = 3;
  o.receive_lsn = 0x16B374D848;
  o.replay_lsn = 0x16B374D000;
  o.system_identifier = "7291851442811934035";  // above 2^53
  o.upstream_node = "db1";
  o.sender_host = "127.0.0.1";
  o.sender_port = 15432;
  o.promoted_at_ms = 1700000000123;
  o.repmgr_nodes = {{1, "db1", "primary", true, std::nullopt}, {2, "db2", "standby", true, 1}};
  o.repmgrd_running = true;
  o.fencing = FencingState::kNone;
  o.seq = 42;
  o.observed_at_ms = 1700000001000;
  o.poller_version = "0.1.0";
  return o;
}

MasterRecord SampleRecord() {
  MasterRecord r;
  r.state = MasterState::kOk;
  r.node = "db1";
  r.host = "127.0.0.1";
  r.port = 15432;
  r.timeline = 2;
  r.lsn = 0x3000060;
  r.epoch = 7;
  r.verified_at_ms = 1700000000000;
  r.decided_by = "orch-a";
  r.reason = "later_timeline";
  return r;
}

Probe SampleProbe() {
  Probe p;
  p.node = "db1";
  p.host = "127.0.0.1";
  p.port = 15432;
  p.reachable = true;
  p.in_recovery = false;
  p.timeline = 2;
  p.lsn = 0x3000060;
  p.system_identifier = "7291851442811934035";
  p.write_check = WriteCheck::kPassed;
  p.latency_us = 830;
  p.taken_at_ms = 1700000000000;
  return p;
}

// Replaces (or with a null value, removes) one top-level field of a serialized payload.
std::string Patch(const std::string& text, const std::string& key, const nlohmann::json& value) {
  nlohmann::json j = nlohmann::json::parse(text);
  if (value.is_null()) {
    j.erase(key);
  } else {
    j[key] = value;
  }
  return j.dump();
}

// ---- LSN ----

TEST(LsnTest, ParsesPostgresSpelling) {
  EXPECT_EQ(*ParseLsn("0/0"), 0u);
  EXPECT_EQ(*ParseLsn("0/3000060"), 0x3000060u);
  EXPECT_EQ(*ParseLsn("16/B374D848"), 0x16B374D848u);
  EXPECT_EQ(*ParseLsn("16/b374d848"), 0x16B374D848u);
  EXPECT_EQ(*ParseLsn("FFFFFFFF/FFFFFFFF"), std::numeric_limits<Lsn>::max());
}

TEST(LsnTest, RefusesAnythingElse) {
  for (const char* bad : {"", "/", "0/", "/0", "0", "0x1/2", "1/2/3", " 1/2", "1/2 ", "G/0",
                          "123456789/0", "0/123456789", "-1/0", "1 /2"}) {
    StatusOr<Lsn> lsn = ParseLsn(bad);
    EXPECT_FALSE(lsn.ok()) << bad;
    if (!lsn.ok()) {
      EXPECT_EQ(lsn.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(LsnTest, FormatsLikePostgres) {
  EXPECT_EQ(FormatLsn(0), "0/0");
  EXPECT_EQ(FormatLsn(0x3000060), "0/3000060");
  EXPECT_EQ(FormatLsn(0x16B374D848), "16/B374D848");
  EXPECT_EQ(FormatLsn(std::numeric_limits<Lsn>::max()), "FFFFFFFF/FFFFFFFF");
}

TEST(LsnTest, RoundTrips) {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 1000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    EXPECT_EQ(*ParseLsn(FormatLsn(x)), x);
  }
}

TEST(WallMillisTest, RoundTrips) {
  EXPECT_EQ(ToWallMillis(FromWallMillis(1700000000123)), 1700000000123);
}

// ---- round trips ----

TEST(NodeObservationTest, RoundTrips) {
  const NodeObservation o = SampleObservation();
  const std::string text = o.ToJson();
  EXPECT_THAT(text, HasSubstr("\"format\":1"));
  EXPECT_THAT(text, HasSubstr("\"system_identifier\":\"7291851442811934035\""));
  EXPECT_THAT(text, HasSubstr("\"receive_lsn\":\"16/B374D848\""));
  StatusOr<NodeObservation> back = NodeObservation::FromJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, o);
}

TEST(NodeObservationTest, MinimalUnreachableRoundTrips) {
  NodeObservation o;
  o.node = "db3";
  o.host = "db3.example";
  o.port = 5432;
  o.error = "connection refused";
  o.seq = 1;
  StatusOr<NodeObservation> back = NodeObservation::FromJson(o.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, o);
  EXPECT_FALSE(back->Position().has_value());
}

TEST(NodeObservationTest, PositionIsCurrentOrFurthestStandbyLsn) {
  NodeObservation o = SampleObservation();
  EXPECT_EQ(o.Position(), std::optional<Lsn>(0x16B374D848));
  o.in_recovery = false;
  o.current_lsn = 0x5000000;
  EXPECT_EQ(o.Position(), std::optional<Lsn>(0x5000000));
}

TEST(NodeObservationTest, InvalidUtf8IsReplacedNotThrown) {
  NodeObservation o = SampleObservation();
  o.error = std::string("bad \xff\xfe bytes");
  const std::string text = o.ToJson();
  StatusOr<NodeObservation> back = NodeObservation::FromJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_THAT(back->error, HasSubstr("bad "));
}

TEST(MasterRecordTest, RoundTrips) {
  const MasterRecord r = SampleRecord();
  StatusOr<MasterRecord> back = MasterRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
}

TEST(MasterRecordTest, NoMasterNeedsOnlyStateAndEpoch) {
  StatusOr<MasterRecord> r =
      MasterRecord::FromJson(R"({"format":1,"state":"no-master","epoch":0})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, MasterState::kNoMaster);
  EXPECT_EQ(*MasterRecord::FromJson(r->ToJson()), *r);
}

TEST(ProbeTest, RoundTrips) {
  Probe p = SampleProbe();
  p.write_check = WriteCheck::kFailed;
  p.write_error = "canceling statement due to statement timeout";
  StatusOr<Probe> back = Probe::FromJson(p.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
}

TEST(ProbeTest, UnreachableNeedsNoRoleFields) {
  StatusOr<Probe> p =
      Probe::FromJson(R"({"format":1,"node":"db1","reachable":false,"taken_at":5})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_FALSE(p->reachable);
}

TEST(HistoryEntryTest, RoundTrips) {
  HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.chosen = "db2";
  h.epoch = 8;
  h.decided_at_ms = 1700000005000;
  h.decided_by = "orch-a";
  h.previous = SampleRecord();
  MasterRecord next = SampleRecord();
  next.node = "db2";
  next.timeline = 3;
  next.epoch = 8;
  h.master = next;
  h.reasons = {{"later_timeline", "db2", "timeline 3 replaces 2"}, {"split_brain", "", "2 nodes"}};
  h.stale_primaries = {"db1"};
  NodeEvidence e;
  e.node = "db2";
  e.observed = true;
  e.probed = true;
  e.reachable = true;
  e.writable = true;
  e.timeline = 3;
  e.lsn = 0x4000000;
  e.system_identifier = "7291851442811934035";
  e.write_check = WriteCheck::kPassed;
  e.promoted_at_ms = 1700000004000;
  e.followers = 1;
  e.role = "master";
  e.notes = {"poller_missing"};
  h.evidence = {e};
  h.data_loss = DataLossEstimate{"db1", 0x3000100, "db2", 0x3000060, 0xA0};
  StatusOr<HistoryEntry> back = HistoryEntry::FromJson(h.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, h);
}

TEST(PayloadTest, UnknownFieldsAreIgnored) {
  const std::string text = Patch(SampleRecord().ToJson(), "added_in_a_later_release", 1);
  EXPECT_TRUE(MasterRecord::FromJson(text).ok());
}

// ---- corrupt payloads: each error names the payload, the field and what was expected ----

struct CorruptCase {
  const char* name;
  std::string text;
  const char* must_mention;
};

TEST(CorruptPayloadTest, NodeObservationErrorsNameTheField) {
  const std::string good = SampleObservation().ToJson();
  const std::vector<CorruptCase> cases = {
      {"not json", "{\"format\":1,", "not valid JSON"},
      {"empty", "", "not valid JSON"},
      {"array", "[1,2]", "expected a JSON object, got array"},
      {"no format", Patch(good, "format", nullptr), "field 'format' is missing"},
      {"format 2", Patch(good, "format", 2), "field 'format': expected 1, got 2"},
      {"format as string", Patch(good, "format", "1"), "field 'format': expected an integer"},
      {"node missing", Patch(good, "node", nullptr), "field 'node' is missing (required)"},
      {"node a number", Patch(good, "node", 3), "field 'node': expected a name: "},
      {"timeline a string", Patch(good, "timeline", "3"),
       "field 'timeline': expected an integer in [0, 4294967295], got string \"3\""},
      {"timeline negative", Patch(good, "timeline", -1), "field 'timeline': expected an integer"},
      {"timeline float", Patch(good, "timeline", 3.5), "field 'timeline': expected an integer"},
      {"timeline too big", Patch(good, "timeline", 4294967296ull), "field 'timeline'"},
      {"port zero", Patch(good, "port", 0), "field 'port': expected an integer in [1, 65535]"},
      {"reachable a string", Patch(good, "reachable", "yes"),
       "field 'reachable': expected a boolean"},
      {"bad lsn", Patch(good, "receive_lsn", "16-B374"),
       "field 'receive_lsn': expected an LSN string \"X/Y\", got string \"16-B374\""},
      {"lsn as number", Patch(good, "replay_lsn", 5), "field 'replay_lsn': expected an LSN"},
      {"sysid as number", Patch(good, "system_identifier", 7291851442811934035ull),
       "field 'system_identifier': expected a system identifier"},
      {"seq negative", Patch(good, "seq", -5), "field 'seq': expected an unsigned integer"},
      {"fencing unknown", Patch(good, "fencing", "maybe"),
       "field 'fencing': expected \"none\", \"fencing\", \"fenced\" or \"failed\""},
      {"repmgr view not array", Patch(good, "repmgr_nodes", "x"),
       "field 'repmgr_nodes': expected an array"},
      {"repmgr row not object", Patch(good, "repmgr_nodes", nlohmann::json::array({1})),
       "field 'repmgr_nodes[0]': expected an object"},
      {"repmgr row field",
       Patch(good, "repmgr_nodes",
             nlohmann::json::parse(R"([{"node_id":1,"name":"db1","type":"primary",
                                   "active":true},{"node_id":"2","name":"db2","type":"standby",
                                   "active":true}])")),
       "field 'repmgr_nodes[1].node_id': expected an integer"},
      {"repmgr row missing",
       Patch(good, "repmgr_nodes", nlohmann::json::parse(R"([{"node_id":1,"type":"primary",
                                     "active":true}])")),
       "field 'repmgr_nodes[0].name' is missing"},
  };
  for (const CorruptCase& c : cases) {
    StatusOr<NodeObservation> o = NodeObservation::FromJson(c.text);
    ASSERT_FALSE(o.ok()) << c.name;
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(o.status().message(), HasSubstr("NodeObservation")) << c.name;
    EXPECT_THAT(o.status().message(), HasSubstr(c.must_mention)) << c.name;
  }
}

TEST(CorruptPayloadTest, MasterRecordErrorsNameTheField) {
  const std::string good = SampleRecord().ToJson();
  const std::vector<CorruptCase> cases = {
      {"state unknown", Patch(good, "state", "maybe"),
       "field 'state': expected \"ok\" or \"no-master\", got string \"maybe\""},
      {"state missing", Patch(good, "state", nullptr), "field 'state' is missing"},
      {"epoch negative", Patch(good, "epoch", -1), "field 'epoch': expected an unsigned integer"},
      {"ok without node", Patch(good, "node", nullptr), "field 'node' is missing"},
      {"ok with empty node", Patch(good, "node", ""), "field 'node'"},
      {"ok without lsn", Patch(good, "lsn", nullptr), "field 'lsn' is missing"},
      {"verified_at string", Patch(good, "verified_at", "now"),
       "field 'verified_at': expected an integer"},
      {"format 0", Patch(good, "format", 0), "field 'format': expected 1, got 0"},
  };
  for (const CorruptCase& c : cases) {
    StatusOr<MasterRecord> r = MasterRecord::FromJson(c.text);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_THAT(r.status().message(), HasSubstr("MasterRecord")) << c.name;
    EXPECT_THAT(r.status().message(), HasSubstr(c.must_mention)) << c.name;
  }
}

TEST(CorruptPayloadTest, ProbeAndHistoryErrorsNameTheField) {
  StatusOr<Probe> p = Probe::FromJson(Patch(SampleProbe().ToJson(), "write_check", "ok"));
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("Probe: field 'write_check': expected"));
  p = Probe::FromJson(Patch(SampleProbe().ToJson(), "in_recovery", nullptr));
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("field 'in_recovery' is missing"));

  StatusOr<HistoryEntry> h = HistoryEntry::FromJson(
      R"({"format":1,"cluster":"c","action":"publish","epoch":1,"decided_at":1,"reasons":[],
          "master":{"state":"ok","epoch":1,"node":"db1","host":"h","port":70000,"timeline":1,
                    "lsn":"0/1","verified_at":1}})");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.status().message(),
              HasSubstr("HistoryEntry: field 'master.port': expected an integer in [1, 65535]"));
  h = HistoryEntry::FromJson(
      R"({"format":1,"cluster":"c","action":"keep","epoch":1,"decided_at":1,
          "reasons":[{"node":"db1"}]})");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.status().message(), HasSubstr("field 'reasons[0].code' is missing"));
}

TEST(CorruptPayloadTest, GarbageNeverThrows) {
  const std::string good = SampleObservation().ToJson();
  // Every prefix of a valid payload, and every single-byte corruption of it, yields a Status.
  for (std::size_t i = 0; i < good.size(); ++i) {
    EXPECT_NO_THROW((void)NodeObservation::FromJson(good.substr(0, i)));
    std::string flipped = good;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x5A);
    EXPECT_NO_THROW((void)NodeObservation::FromJson(flipped));
    EXPECT_NO_THROW((void)MasterRecord::FromJson(flipped));
    EXPECT_NO_THROW((void)HistoryEntry::FromJson(flipped));
  }
}

// ---- untrusted payloads (docs/zookeeper-contract.md, "Validation") ----

HistoryEntry SampleHistory() {
  HistoryEntry h;
  h.cluster = "main";
  h.action = "publish";
  h.chosen = "db1";
  h.epoch = 7;
  h.decided_at_ms = 1700000000000;
  h.decided_by = "orch-a";
  h.master = SampleRecord();
  h.reasons = {{"later_timeline", "db1", "db1 is on timeline 2"}};
  h.stale_primaries = {"db2"};
  NodeEvidence e;
  e.node = "db1";
  e.role = "master";
  e.notes = {"write_check_passed"};
  h.evidence = {e};
  return h;
}

// Each decoder by name, as text -> status, so one table covers all of them.
struct Decoder {
  const char* name;
  std::string good;
  const char* name_field;  // a string field holding a node or cluster name
  std::function<Status(const std::string&)> decode;
};

std::vector<Decoder> Decoders() {
  return {
      {"NodeObservation", SampleObservation().ToJson(), "node",
       [](const std::string& t) { return NodeObservation::FromJson(t).status(); }},
      {"NodeObservation", SampleObservation().ToJson(), "node",
       [](const std::string& t) { return NodeObservation::FromZnode("db2", t).status(); }},
      {"MasterRecord", SampleRecord().ToJson(), "node",
       [](const std::string& t) { return MasterRecord::FromJson(t).status(); }},
      {"Probe", SampleProbe().ToJson(), "node",
       [](const std::string& t) { return Probe::FromJson(t).status(); }},
      {"HistoryEntry", SampleHistory().ToJson(), "cluster",
       [](const std::string& t) { return HistoryEntry::FromJson(t).status(); }},
  };
}

TEST(UntrustedPayloadTest, SamplesDecode) {
  for (const Decoder& d : Decoders()) EXPECT_TRUE(d.decode(d.good).ok()) << d.name;
}

// Before the fix, the error message dumped the nested value recursively: stack overflow.
TEST(UntrustedPayloadTest, DeepNestingIsRefusedBeforeParsing) {
  for (const Decoder& d : Decoders()) {
    for (const std::string& text : testing::DeepPayloads(d.good, d.name_field)) {
      Status s = d.decode(text);
      ASSERT_FALSE(s.ok()) << d.name << " size " << text.size();
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << d.name;
      EXPECT_THAT(s.message(), HasSubstr(d.name));
      EXPECT_TRUE(s.message().find("exceeds the limit of 65536 bytes") != std::string::npos ||
                  s.message().find("nested deeper than 16 levels") != std::string::npos)
          << s.message();
      EXPECT_LT(s.message().size(), 300u) << d.name;
    }
  }
}

TEST(UntrustedPayloadTest, ErrorsShowTypeAndShortPreviewNeverTheWholeValue) {
  for (const Decoder& d : Decoders()) {
    // Nested within the depth limit: the message names the field and says "array of 1 elements".
    const std::string text = testing::ReplaceField(d.good, d.name_field, "[[[[[[[[[[1]]]]]]]]]]");
    Status s = d.decode(text);
    ASSERT_FALSE(s.ok()) << d.name;
    EXPECT_THAT(s.message(), HasSubstr(std::string("field '") + d.name_field + "'"));
    EXPECT_THAT(s.message(), HasSubstr("got array of 1 elements"));
    EXPECT_EQ(s.message().find("[["), std::string::npos) << s.message();
    // A long string with control characters: a short, sanitized preview.
    const std::string evil = "\"\\u001b]0;owned\\u0007" + std::string(5000, 'x') + "\"";
    s = d.decode(testing::ReplaceField(d.good, d.name_field, evil));
    ASSERT_FALSE(s.ok()) << d.name;
    EXPECT_THAT(s.message(), HasSubstr("\\x1b]0;owned\\x07"));
    EXPECT_EQ(s.message().find('\x1b'), std::string::npos);
    EXPECT_LT(s.message().size(), 400u) << s.message();
  }
}

// nlohmann's get<int>() of 4294967297 is 1: every integer is range-checked before narrowing.
TEST(UntrustedPayloadTest, FormatBeyondIntRangeIsNotReadAsOne) {
  for (const Decoder& d : Decoders()) {
    for (const char* format : {"4294967297", "18446744073709551617", "1.0", "-4294967295"}) {
      Status s = d.decode(testing::ReplaceField(d.good, "format", format));
      ASSERT_FALSE(s.ok()) << d.name << " format " << format;
      EXPECT_THAT(s.message(), HasSubstr("field 'format'")) << format;
    }
  }
  EXPECT_FALSE(
      NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "port", 4294967297ull)).ok());
  EXPECT_FALSE(
      NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "timeline", 4294967298ull))
          .ok());
  EXPECT_FALSE(
      MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "port", 4294967297ull + 15432)).ok());
}

TEST(UntrustedPayloadTest, BadNamesAreRefusedWhereverANameGoes) {
  for (const std::string& name : testing::BadNames()) {
    const std::string shown = "name \"" + name + "\"";
    EXPECT_FALSE(NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "node", name)).ok())
        << shown;
    EXPECT_FALSE(NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "upstream_node",
                                                 name.empty() ? "a b" : name))
                     .ok())
        << shown;
    EXPECT_FALSE(MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "node", name)).ok())
        << shown;
    EXPECT_FALSE(Probe::FromJson(Patch(SampleProbe().ToJson(), "node", name)).ok()) << shown;
    const std::string h = SampleHistory().ToJson();
    EXPECT_FALSE(HistoryEntry::FromJson(Patch(h, "cluster", name)).ok()) << shown;
    EXPECT_FALSE(
        HistoryEntry::FromJson(Patch(h, "stale_primaries", nlohmann::json::array({name}))).ok())
        << shown;
    if (!name.empty()) {
      EXPECT_FALSE(MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "decided_by", name)).ok())
          << shown;
      EXPECT_FALSE(HistoryEntry::FromJson(Patch(h, "chosen", name)).ok()) << shown;
    }
  }
  StatusOr<MasterRecord> r =
      MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "node", "db\n1"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("MasterRecord: field 'node': expected a name: 1-64 characters"));
  EXPECT_THAT(r.status().message(), HasSubstr("\"db\\x0a1\""));
}

TEST(UntrustedPayloadTest, BadHostsAreRefused) {
  for (const std::string& host : testing::BadHosts()) {
    EXPECT_FALSE(NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "host", host)).ok())
        << host;
    EXPECT_FALSE(MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "host", host)).ok()) << host;
  }
  StatusOr<MasterRecord> r =
      MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "host", "db1;reboot"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("field 'host': expected a host: an IPv4 or IPv6 address"));
  for (const char* host : {"db1.example.com", "::1", "10.0.0.1", "pg-01"}) {
    EXPECT_TRUE(MasterRecord::FromJson(Patch(SampleRecord().ToJson(), "host", host)).ok()) << host;
  }
}

TEST(UntrustedPayloadTest, FreeTextIsSanitizedAndCutNotRefused) {
  NodeObservation o = SampleObservation();
  o.error = "FATAL: \x1b[2J\x1b]0;pwned\x07 role \"x\"\n" + std::string(10000, 'e');
  StatusOr<NodeObservation> got = NodeObservation::FromJson(o.ToJson());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->error.find('\x1b'), std::string::npos);
  EXPECT_EQ(got->error.find('\n'), std::string::npos);
  EXPECT_THAT(got->error, HasSubstr("FATAL: \\x1b[2J"));
  EXPECT_LE(got->error.size(), 4096u + 3);  // cut, then "..."
  EXPECT_THAT(got->error, ::testing::EndsWith("..."));
  HistoryEntry h = SampleHistory();
  h.reasons[0].text = "line1\nline2\r\x7f";
  StatusOr<HistoryEntry> hg = HistoryEntry::FromJson(h.ToJson());
  ASSERT_TRUE(hg.ok()) << hg.status().ToString();
  EXPECT_EQ(hg->reasons[0].text, "line1\\x0aline2\\x0d\\x7f");
  // Codes are tokens: refused, not sanitized (alerting keys on them).
  h = SampleHistory();
  h.reasons[0].code = "later\ntimeline";
  EXPECT_FALSE(HistoryEntry::FromJson(h.ToJson()).ok());
  MasterRecord r = SampleRecord();
  r.reason = "x\x1b";
  EXPECT_FALSE(MasterRecord::FromJson(r.ToJson()).ok());
}

TEST(UntrustedPayloadTest, WritersSanitizeFreeTextToo) {
  NodeObservation o = SampleObservation();
  o.error = "a\x1b[2Jb\n" + std::string(9000, 'e');
  const std::string text = o.ToJson();
  EXPECT_EQ(text.find("\\u001b"), std::string::npos) << text.substr(0, 80);
  EXPECT_NE(text.find("a\\\\x1b[2Jb\\\\x0a"), std::string::npos) << text.substr(0, 200);
  EXPECT_LT(text.size(), 4096u + 1024u);
  // What is written decodes to itself: no reader ever sees more or other text than the writer.
  StatusOr<NodeObservation> back = NodeObservation::FromJson(text);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToJson(), text);
}

TEST(UntrustedPayloadTest, ObservationMustBeFiledUnderItsOwnNode) {
  const std::string text = SampleObservation().ToJson();  // node "db2"
  EXPECT_TRUE(NodeObservation::FromZnode("db2", text).ok());
  StatusOr<NodeObservation> o = NodeObservation::FromZnode("db1", text);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(o.status().message(),
              HasSubstr("field 'node': \"db2\" differs from its znode name \"db1\""));
}

TEST(UntrustedPayloadTest, SystemIdentifierIsDecimal) {
  for (const char* sysid : {"12a", " 1", "-1", "123456789012345678901"}) {
    EXPECT_FALSE(
        NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "system_identifier", sysid))
            .ok())
        << sysid;
  }
  EXPECT_TRUE(
      NodeObservation::FromJson(Patch(SampleObservation().ToJson(), "system_identifier", "")).ok());
}

}  // namespace
}  // namespace pgherald::model
