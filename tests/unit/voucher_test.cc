#include "common/model/voucher.h"

#include <gtest/gtest.h>

#include <string>

#include "common/model/sha256.h"

namespace pgherald::model {
namespace {

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(sha256::Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256::Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256::Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Lengths around the padding boundaries (55, 56, 63, 64 bytes) and a million 'a'.
  EXPECT_EQ(sha256::Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256::Hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256::Hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256::Hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

MasterRecord Record(std::uint64_t epoch, const std::string& node) {
  MasterRecord r;
  r.state = MasterState::kOk;
  r.node = node;
  r.host = "127.0.0.1";
  r.port = 5432;
  r.timeline = 3;
  r.lsn = 100;
  r.epoch = epoch;
  r.verified_at_ms = 1;
  return r;
}

TEST(VoucherNameTest, RoundTrips) {
  const std::string digest = RecordDigest("x");
  ASSERT_EQ(digest.size(), kRecordDigestLength);
  const std::string name = VoucherName(42, digest, "orch-a.1");
  EXPECT_EQ(name, "v1.42." + digest + ".orch-a.1");
  auto id = ParseVoucherName(name);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->epoch, 42u);
  EXPECT_EQ(id->digest, digest);
  EXPECT_EQ(id->orchestrator, "orch-a.1");
  EXPECT_TRUE(ParseVoucherName(VoucherName(0, digest, "o")));
  EXPECT_TRUE(ParseVoucherName(VoucherName(UINT64_MAX, digest, "o")));
}

TEST(VoucherNameTest, RefusesEverythingElse) {
  const std::string d = RecordDigest("x");
  for (const std::string& bad :
       {std::string("orch-a"), std::string("v1."), "v1.1." + d, "v1.1." + d + ".", "v2.1." + d + ".o",
        "v1.01." + d + ".o", "v1.-1." + d + ".o", "v1.+1." + d + ".o", "v1.." + d + ".o",
        "v1.18446744073709551616." + d + ".o", "v1.1." + d.substr(1) + ".o",
        "v1.1." + std::string(32, 'A') + ".o", "v1.1." + d + "..", "v1.1." + d + ". o",
        "v1.1." + d + "." + std::string(65, 'o'), "v1.1." + d + "x.o"}) {
    EXPECT_FALSE(ParseVoucherName(bad)) << bad;
  }
}

TEST(VoucherBindingTest, BindsOnlyTheExactRecordBytes) {
  const MasterRecord r = Record(7, "pg1");
  const std::string bytes = r.ToJson();
  const std::string good = VoucherName(7, RecordDigest(bytes), "o1");
  EXPECT_TRUE(VoucherBinds(good, r, bytes));
  // Another epoch, other bytes (a hand edit that keeps the epoch), a legacy name.
  EXPECT_FALSE(VoucherBinds(VoucherName(6, RecordDigest(bytes), "o1"), r, bytes));
  const MasterRecord forged = Record(7, "pg2");
  EXPECT_FALSE(VoucherBinds(good, forged, forged.ToJson()));
  EXPECT_FALSE(VoucherBinds(good, r, bytes + " "));
  EXPECT_FALSE(VoucherBinds("o1", r, bytes));
  // A no-master record is never vouched.
  MasterRecord none;
  none.epoch = 7;
  EXPECT_FALSE(VoucherBinds(VoucherName(7, RecordDigest(none.ToJson()), "o1"), none, none.ToJson()));

  const std::vector<std::string> children = {"o1", good, VoucherName(6, RecordDigest(bytes), "o2"),
                                             VoucherName(7, RecordDigest(bytes), "o2"), "junk"};
  EXPECT_EQ(BoundVouchers(children, r, bytes),
            (std::vector<std::string>{good, VoucherName(7, RecordDigest(bytes), "o2")}));
  EXPECT_EQ(VouchersOf(children, "o1"), (std::vector<std::string>{"o1", good}));
  EXPECT_EQ(VouchersOf(children, "o2"),
            (std::vector<std::string>{VoucherName(6, RecordDigest(bytes), "o2"),
                                      VoucherName(7, RecordDigest(bytes), "o2")}));
}

TEST(VoucherPayloadTest, RoundTripsAndRefusesBadFields) {
  VoucherPayload v{"o1", 7, "pg1", 3, RecordDigest("x"), 1700000000000, 2};
  auto back = VoucherPayload::FromJson(v.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->orchestrator, "o1");
  EXPECT_EQ(back->epoch, 7u);
  EXPECT_EQ(back->node, "pg1");
  EXPECT_EQ(back->timeline, 3u);
  EXPECT_EQ(back->digest, v.digest);
  EXPECT_EQ(back->affirmed_at_ms, 1700000000000);
  EXPECT_EQ(back->affirm_seq, 2u);
  EXPECT_FALSE(VoucherPayload::FromJson("{}").ok());
  EXPECT_FALSE(VoucherPayload::FromJson("[[[[").ok());
  EXPECT_FALSE(VoucherPayload::FromJson(R"({"format":1,"orchestrator":"a b","epoch":1,"node":"n",
      "timeline":1,"digest":"d","affirmed_at":1,"affirm_seq":1})").ok());
}

}  // namespace
}  // namespace pgherald::model
