#include "common/model/untrusted.h"

#include <gtest/gtest.h>

#include <string>

namespace pgherald::untrusted {
namespace {

TEST(CheckJsonShape, AcceptsOrdinaryPayloads) {
  EXPECT_TRUE(CheckJsonShape(R"({"format":1,"a":[1,{"b":[2]}]})", "master").ok());
  // Brackets inside strings do not count, escaped quotes do not end a string.
  EXPECT_TRUE(CheckJsonShape(R"({"s":"[[[[[[[[[[[[[[[[[[[[\"[[[[[["})", "x", 1000, 2).ok());
}

TEST(CheckJsonShape, RefusesDeepNestingWithoutRecursing) {
  const std::string deep(1 << 20, '[');  // 1 MiB of '[': would overflow any recursive reader
  Status s = CheckJsonShape(deep, "clusters/c/master", 2 << 20);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("clusters/c/master"), std::string::npos);
  EXPECT_NE(s.message().find("nested deeper than 16"), std::string::npos);
  EXPECT_TRUE(CheckJsonShape(std::string(16, '[') + std::string(16, ']'), "x").ok());
  EXPECT_FALSE(CheckJsonShape(std::string(17, '{'), "x").ok());
}

TEST(CheckJsonShape, RefusesOversizedPayloads) {
  const std::string big(kMaxPayloadBytes + 1, ' ');
  Status s = CheckJsonShape(big, "nodes/n1");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("exceeds the limit of 65536 bytes"), std::string::npos);
}

TEST(IsValidName, FollowsTheOrchestratorRule) {
  EXPECT_TRUE(IsValidName("node1"));
  EXPECT_TRUE(IsValidName("db-a.eu_1"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("."));
  EXPECT_FALSE(IsValidName(".."));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_FALSE(IsValidName("a\nb"));
  EXPECT_FALSE(IsValidName("a/b"));
  EXPECT_FALSE(IsValidName(std::string(65, 'a')));
  EXPECT_TRUE(IsValidName(std::string(64, 'a')));
}

TEST(IsValidHost, AcceptsLiteralsAndRfc1123Names) {
  for (const char* h : {"127.0.0.1", "::1", "fe80::1", "2001:db8::10", "db1", "db-1.example.com",
                        "a", "1a.example"}) {
    EXPECT_TRUE(IsValidHost(h)) << h;
  }
  for (const char* h : {"", "127.0.0.1;shutdown frontend pg_write", "127.0.0.1 user=postgres",
                        "db1\nprogram x", "-db", "db-", "a..b", ".a", "a.", "256.1.1.1", "1.2.3",
                        "a_b", "host=x", "'x'", "db1:5432", "[::1]"}) {
    EXPECT_FALSE(IsValidHost(h)) << h;
  }
  EXPECT_FALSE(IsValidHost(std::string(254, 'a')));
  EXPECT_FALSE(IsValidHost(std::string(64, 'a')));  // one label over 63
}

TEST(IsValidPort, Range) {
  EXPECT_TRUE(IsValidPort(1));
  EXPECT_TRUE(IsValidPort(65535));
  EXPECT_FALSE(IsValidPort(0));
  EXPECT_FALSE(IsValidPort(65536));
  EXPECT_FALSE(IsValidPort(4294967297LL));
}

TEST(Text, PrintableAndSanitized) {
  EXPECT_TRUE(IsPrintableText("write check failed: timeout"));
  EXPECT_TRUE(IsPrintableText("caf\xc3\xa9"));
  EXPECT_FALSE(IsPrintableText("a\x1b[2Jb"));
  EXPECT_FALSE(IsPrintableText("a\nb"));
  EXPECT_FALSE(IsPrintableText(std::string(10, 'a'), 5));
  EXPECT_EQ(SanitizeForDisplay("a\x1b[2J\nb\x7f"), "a\\x1b[2J\\x0ab\\x7f");
  EXPECT_EQ(SanitizeForDisplay("abcdef", 6), "abcdef");
  EXPECT_EQ(SanitizeForDisplay("abcdefg", 6), "abc...");
  EXPECT_EQ(SanitizeForDisplay("ab\ncd", 7), "ab...");  // never half an escape
  EXPECT_EQ(SanitizeForDisplay("ab\ncd", 8), "ab\\x0acd");
  EXPECT_EQ(SanitizeForDisplay("ab\ncdefgh", 10), "ab\\x0ac...");
  // Idempotent (found by fuzz_notify: a cut text grew past the limit and was cut again).
  for (const std::string& t : {std::string(100, '\0'), std::string("x\x01y") + std::string(50, 'z')}) {
    for (std::size_t max : {3u, 4u, 7u, 10u, 40u}) {
      const std::string once = SanitizeForDisplay(t, max);
      EXPECT_LE(once.size(), max);
      EXPECT_EQ(SanitizeForDisplay(once, max), once) << max;
    }
  }
}

}  // namespace
}  // namespace pgherald::untrusted
