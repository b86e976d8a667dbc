#include "common/base/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace pgherald {
namespace {

int calls = 0;

Status Fail(const std::string& why) {
  ++calls;
  return InvalidArgument(why);
}
Status Pass() {
  ++calls;
  return Status::Ok();
}
StatusOr<std::unique_ptr<int>> Make(int v) {
  ++calls;
  if (v < 0) return NotFound("negative");
  return std::make_unique<int>(v);
}

Status TwoSteps(bool first_fails, int* reached) {
  *reached = 0;
  PGH_RETURN_IF_ERROR(first_fails ? Fail("first") : Pass());
  *reached = 1;
  PGH_RETURN_IF_ERROR(Fail("second"));
  *reached = 2;
  return Status::Ok();
}

// A move-only value, declared by the macro, in a function returning StatusOr.
StatusOr<int> Doubled(int v) {
  PGH_ASSIGN_OR_RETURN(std::unique_ptr<int> p, Make(v));
  PGH_ASSIGN_OR_RETURN(auto q, Make(*p + 1));  // two in one scope: unique temporaries
  return *p + *q - 1;
}

// Assigning to an existing variable, in a function returning Status.
Status Into(int v, int* out) {
  std::unique_ptr<int> p;
  PGH_ASSIGN_OR_RETURN(p, Make(v));
  *out = *p;
  return Status::Ok();
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsTheFirstError) {
  int reached = -1;
  calls = 0;
  Status s = TwoSteps(true, &reached);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "first");
  EXPECT_EQ(reached, 0);
  EXPECT_EQ(calls, 1);  // evaluated once, nothing after it
  calls = 0;
  s = TwoSteps(false, &reached);
  EXPECT_EQ(s.message(), "second");
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(calls, 2);
}

TEST(StatusMacrosTest, AssignOrReturn) {
  calls = 0;
  auto ok = Doubled(20);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 40);
  EXPECT_EQ(calls, 2);
  calls = 0;
  auto bad = Doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(calls, 1);
  int out = 0;
  EXPECT_TRUE(Into(7, &out).ok());
  EXPECT_EQ(out, 7);
  EXPECT_EQ(Into(-7, &out).code(), StatusCode::kNotFound);
  EXPECT_EQ(out, 7);
}

// Nested use, as json_fields' decoders do inside a lambda passed to the outer macro's expression.
TEST(StatusMacrosTest, NestsInsideALambda) {
  auto outer = [](bool fail) -> Status {
    PGH_RETURN_IF_ERROR([&]() -> Status {
      PGH_RETURN_IF_ERROR(fail ? Fail("inner") : Pass());
      return Status::Ok();
    }());
    return Status::Ok();
  };
  EXPECT_TRUE(outer(false).ok());
  EXPECT_EQ(outer(true).message(), "inner");
}

}  // namespace
}  // namespace pgherald
