// The lab itself, against the real programs: ZooKeeper faults (more to come).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "tests/lab/lab.h"

namespace pgherald::lab {
namespace {

using Clock = std::chrono::steady_clock;

// One lab for the whole binary: bringing the stack up is the expensive part.
class LabEnvironment : public ::testing::Environment {
 public:
  static Lab* lab() { return lab_.get(); }

  void SetUp() override {
    LabOptions options;
    options.zk_ensemble = true;
    options.zk_standalone = true;
    const auto start = Clock::now();
    auto lab = Lab::Up(options);
    // A server that cannot start is a failure, never a skip.
    ASSERT_TRUE(lab.ok()) << lab.status().ToString();
    lab_ = std::move(lab).value();
    std::printf("[lab] up in %lld ms: %s\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           Clock::now() - start)
                                           .count()),
                lab_->dir().c_str());
  }
  void TearDown() override { lab_.reset(); }

 private:
  static std::unique_ptr<Lab> lab_;
};
std::unique_ptr<Lab> LabEnvironment::lab_;
// gtest_main runs the tests; registering here keeps one lab for the whole binary.
[[maybe_unused]] ::testing::Environment* const kLabEnvironment =
    ::testing::AddGlobalTestEnvironment(new LabEnvironment);

Lab& TheLab() {
  Lab* lab = LabEnvironment::lab();
  if (lab == nullptr) {
    ADD_FAILURE() << "the lab did not come up";
    std::abort();
  }
  return *lab;
}

TEST(LabZooKeeper, EnvNamesTheEnsembleAndStandalone) {
  Lab& lab = TheLab();
  EXPECT_EQ(lab.zk_connect(), "127.0.0.1:" + lab.Env("ZK_PORT_1") + ",127.0.0.1:" +
                                  lab.Env("ZK_PORT_2") + ",127.0.0.1:" + lab.Env("ZK_PORT_3"));
  EXPECT_EQ(lab.zk_standalone_connect(), "127.0.0.1:" + lab.Env("ZK_STANDALONE_PORT"));
  for (const char* key : {"ZK_PORT_1", "ZK_PORT_2", "ZK_PORT_3", "ZK_STANDALONE_PORT"}) {
    EXPECT_GE(lab.EnvInt(key), 20000) << key;
    EXPECT_LT(lab.EnvInt(key), 32768) << key;
  }
}

TEST(LabZooKeeper, StopContAndKillStartMembers) {
  Lab& lab = TheLab();
  auto leader = lab.ZkLeader();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  const int follower = *leader == 1 ? 2 : 1;

  ASSERT_TRUE(lab.ZkStop(follower).ok());
  auto status = lab.Run("status");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_NE(status->find("frozen"), std::string::npos) << *status;
  ASSERT_TRUE(lab.ZkCont(follower).ok());

  const auto start = Clock::now();
  ASSERT_TRUE(lab.ZkKill(*leader).ok());
  StatusOr<int> next = NotFound("no leader yet");
  while (Clock::now() - start < std::chrono::seconds(15)) {
    next = lab.ZkLeader();
    if (next.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
  }
  ASSERT_TRUE(next.ok()) << "no new ZooKeeper leader within 15 s";
  EXPECT_NE(*next, *leader);
  std::printf("[lab] new ZooKeeper leader %d after %lld ms\n", *next,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
                      .count()));
  ASSERT_TRUE(lab.ZkStart(*leader).ok());
}

}  // namespace
}  // namespace pgherald::lab
