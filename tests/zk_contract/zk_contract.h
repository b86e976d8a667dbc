// The ZkSession contract suite: one set of tests that every ZkSession implementation must pass.
// tests/unit/fake_zk_test.cc runs it against FakeZk, tests/integration/zk_contract_real_test.cc
// against a real standalone ZooKeeper and a real 3-server ensemble.
//
// To run it against an implementation, write a ZkTarget and instantiate the suite:
//
//   INSTANTIATE_TEST_SUITE_P(Fake, ZkContractTest,
//                            ::testing::Values(ZkTargetParam{"fake", &MakeFakeTarget}),
//                            ZkTargetParamName);
//
// Every test works under its own fresh root (/zk_contract/<target>/<test>-<pid>-<n>) and removes
// it afterwards, so several runs can share a server. Events are awaited with deadlines, never with
// sleeps.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/status.h"
#include "common/zk/zk_session.h"

namespace pgherald::zk::contract {

// Long enough for any event on a loaded 2-core machine; a passing test never waits this long.
inline constexpr std::chrono::milliseconds kEventDeadline{15000};

// What the suite runs against.
class ZkTarget {
 public:
  virtual ~ZkTarget() = default;
  // A new session, already connected.
  virtual StatusOr<std::unique_ptr<ZkSession>> NewSession() = 0;
  // Makes the server expire `session` (as a partition longer than its timeout would) and returns
  // once the server has done so: its ephemerals are gone. The session learns it asynchronously.
  virtual Status ExpireSession(ZkSession& session) = 0;
};

struct ZkTargetParam {
  std::string name;  // a gtest-friendly identifier: letters, digits, underscores
  // Called by each test's SetUp. An error fails the test loudly (a missing server is a failure,
  // never a skip).
  std::function<StatusOr<std::shared_ptr<ZkTarget>>()> target;
};
std::string ZkTargetParamName(const ::testing::TestParamInfo<ZkTargetParam>& info);
// Lets gtest print the parameter.
void PrintTo(const ZkTargetParam& param, std::ostream* os);

// Records watch events (and the thread each ran on) so a test can await them.
class EventRecorder {
 public:
  // A Watcher that appends to this recorder. The recorder must outlive the watch (or its session).
  Watcher watcher();
  // Waits until at least `count` events have arrived; false at the deadline.
  bool WaitFor(size_t count, std::chrono::milliseconds deadline = kEventDeadline);
  std::vector<WatchEvent> events() const;
  std::vector<std::thread::id> threads() const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  std::vector<std::thread::id> threads_;
};

// Records state-listener calls.
class StateRecorder {
 public:
  StateListener listener();
  // Waits until `state` has been reported; false at the deadline.
  bool WaitFor(SessionState state, std::chrono::milliseconds deadline = kEventDeadline);
  std::vector<std::pair<SessionState, int64_t>> states() const;
  std::vector<std::thread::id> threads() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<SessionState, int64_t>> states_;
  std::vector<std::thread::id> threads_;
};

// Deletes `path` and everything under it; kNotFound is not an error.
Status DeleteRecursive(ZkSession& zk, const std::string& path);

// Polls `predicate` until it holds or the deadline passes (for facts that no event announces,
// such as a session's state() catching up); short waits between polls.
bool Eventually(const std::function<bool()>& predicate,
                std::chrono::milliseconds deadline = kEventDeadline);

class ZkContractTest : public ::testing::TestWithParam<ZkTargetParam> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Another connected session; fails the test (and returns nullptr) if it cannot be made.
  std::unique_ptr<ZkSession> NewSession();
  // `relative` under this test's root: P("a/b") -> "<root>/a/b".
  std::string P(const std::string& relative) const;

  std::shared_ptr<ZkTarget> target_;
  std::unique_ptr<ZkSession> zk_;  // the test's main session
  std::string root_;
};

}  // namespace pgherald::zk::contract
