// One e2e::Stack per test binary (googletest environment), for the tests that run on the full
// stack (e2e_drills_test, safety_lab_test). On a failure its daemons' log tails are printed at the
// end. Test code only.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "tests/e2e/stack.h"

namespace pgherald::e2e {

class StackEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto s = Stack::Up(StackOptions{});
    // A server that cannot start is a failure, never a skip.
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    stack_ = std::move(*s);
  }
  void TearDown() override {
    if (stack_ && ::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
      std::fprintf(stderr, "%s\n", stack_->AllTails(3000).c_str());
    }
    stack_.reset();
  }
  static inline std::unique_ptr<Stack> stack_;
};

}  // namespace pgherald::e2e
