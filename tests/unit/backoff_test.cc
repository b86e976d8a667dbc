// common/backoff.h: the one retry pacing of the sink workers, the HAProxy config step, the poller's
// reconnection and HAProxy's socket waits.
#include "common/backoff.h"

#include <gtest/gtest.h>

#include <atomic>

namespace pgherald {
namespace {

TEST(BackoffTest, DoublesFromInitialUpToMaxAndStartsOverOnReset) {
  Backoff b(Millis(200), Millis(1000));
  EXPECT_EQ(b.next(), Millis(200));
  EXPECT_EQ(b.Failed(), Millis(200));
  EXPECT_EQ(b.Failed(), Millis(400));
  EXPECT_EQ(b.Failed(), Millis(800));
  EXPECT_EQ(b.Failed(), Millis(1000));
  EXPECT_EQ(b.Failed(), Millis(1000));
  EXPECT_EQ(b.next(), Millis(1000));
  b.Reset();
  EXPECT_EQ(b.Failed(), Millis(200));
}

TEST(BackoffTest, NextBackoffStartsAtInitialFromZero) {
  EXPECT_EQ(NextBackoff(Millis(0), Millis(250), Millis(10000)), Millis(250));
  EXPECT_EQ(NextBackoff(Millis(250), Millis(250), Millis(10000)), Millis(500));
  EXPECT_EQ(NextBackoff(Millis(8000), Millis(250), Millis(10000)), Millis(10000));
}

TEST(RetryUntilTest, ReturnsTheFirstAnswerOrNothingAtTheDeadlineOrOnStop) {
  int calls = 0;
  auto answer = RetryUntil(std::chrono::steady_clock::now() + Millis(5000), Millis(1), nullptr,
                           [&](Millis left) -> std::optional<int> {
                             EXPECT_GT(left.count(), 0);
                             return ++calls == 3 ? std::optional<int>(42) : std::nullopt;
                           });
  EXPECT_EQ(answer, 42);
  EXPECT_EQ(calls, 3);

  calls = 0;
  answer = RetryUntil(std::chrono::steady_clock::now() + Millis(20), Millis(1), nullptr,
                      [&](Millis) -> std::optional<int> {
                        ++calls;
                        return std::nullopt;
                      });
  EXPECT_FALSE(answer.has_value());
  EXPECT_GE(calls, 1);

  std::atomic<bool> stop{true};
  calls = 0;
  answer = RetryUntil(std::chrono::steady_clock::now() + Millis(5000), Millis(1), &stop,
                      [&](Millis) -> std::optional<int> {
                        ++calls;
                        return 1;
                      });
  EXPECT_FALSE(answer.has_value());
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace pgherald
