// ParseLabEnv reads DIR/lab.env as bash's `source` does (labctl single-quotes every value);
// tests/lab/lab_env_test.sh checks the file labctl really writes, sourced by bash.
#include <gtest/gtest.h>

#include "tests/lab/lab.h"

namespace pgherald::lab {
namespace {

TEST(ParseLabEnv, ReadsQuotedValuesAsTheShellDoes) {
  auto env = ParseLabEnv(
      "# pgherald lab\n"
      "LAB_COMPONENTS='zk-ensemble postgres haproxy'\n"
      "PG_APP_PASSWORD='it'\\''s \"a\" $(pw) `x`'\n"
      "LAB_DIR='/tmp/a dir'\n"
      "EMPTY=''\n"
      "PLAIN=20010\n");
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_EQ(env->at("LAB_COMPONENTS"), "zk-ensemble postgres haproxy");
  EXPECT_EQ(env->at("PG_APP_PASSWORD"), "it's \"a\" $(pw) `x`");
  EXPECT_EQ(env->at("LAB_DIR"), "/tmp/a dir");
  EXPECT_EQ(env->at("EMPTY"), "");
  EXPECT_EQ(env->at("PLAIN"), "20010");
  EXPECT_EQ(env->size(), 5u);
}

TEST(ParseLabEnv, RefusesALineThatIsNotKeyEqualsValue) {
  EXPECT_FALSE(ParseLabEnv("A='1'\nno equals sign\n").ok());
  EXPECT_FALSE(ParseLabEnv("=value\n").ok());
  EXPECT_FALSE(ParseLabEnv("A='unterminated\n").ok());
}

}  // namespace
}  // namespace pgherald::lab
