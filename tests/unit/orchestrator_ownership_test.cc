// Cluster ownership (orchestrator/ownership.h): the rendezvous hash (spread, movement on a join or
// a leave), the plan (queue / wait / own / resign, hand-off without gap), the candidate names as
// hostile input, and ClusterOwnership on FakeZk (manual dispatch): queue, own, hand-off to a
// joining member, a crashed owner's candidate gone with its session, the connection-loss create
// found by its guid, no resign while a publish is unsettled.
#include "orchestrator/ownership.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "common/model/zk_paths.h"
#include "orchestrator/election.h"
#include "tests/support/fake_zk.h"
#include "tests/support/manual_clock.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;

std::vector<std::string> Clusters(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("cluster-" + std::to_string(i));
  return out;
}

std::map<std::string, std::string> Assign(const std::vector<std::string>& clusters,
                                          const std::vector<std::string>& members) {
  std::map<std::string, std::string> out;
  for (const std::string& c : clusters) out[c] = PickOwner(c, members);
  return out;
}

// 1,000 clusters over three members: each gets a third within a few per cent (printed).
TEST(OwnershipHashTest, SpreadsEvenlyOverThreeMembers) {
  const std::vector<std::string> members = {"3f2a9c01d4e5b6a7", "0b1c2d3e4f5a6b7c", "deadbeef00112233"};
  std::map<std::string, int> count;
  for (const auto& [c, m] : Assign(Clusters(1000), members)) ++count[m];
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [m, n] : count) {
    std::printf("member %s owns %d of 1000 clusters\n", m.c_str(), n);
    EXPECT_NEAR(n, 333, 40) << m;  // within 4 % of the 1,000
  }
}

TEST(OwnershipHashTest, SpreadHoldsForManyMemberSets) {
  // Random guids as NewGuid makes them: the worst share over 20 sets of three stays near a third.
  int worst = 0;
  for (int set = 0; set < 20; ++set) {
    std::vector<std::string> members;
    for (int i = 0; i < 3; ++i) members.push_back(LeaderElection::NewGuid());
    std::map<std::string, int> count;
    for (const auto& [c, m] : Assign(Clusters(1000), members)) ++count[m];
    for (const auto& [m, n] : count) worst = std::max(worst, std::abs(n - 333));
  }
  std::printf("worst deviation from 333 over 20 random member sets: %d\n", worst);
  EXPECT_LE(worst, 60);
}

// A join moves only the clusters the new member takes (about 1/n); a leave only the leaver's.
TEST(OwnershipHashTest, JoinAndLeaveMoveOnlyAboutOneNth) {
  const std::vector<std::string> clusters = Clusters(1000);
  const std::vector<std::string> three = {"aaaa0001", "bbbb0002", "cccc0003"};
  std::vector<std::string> four = three;
  four.push_back("dddd0004");
  const auto before = Assign(clusters, three);
  const auto joined = Assign(clusters, four);
  int moved = 0;
  for (const std::string& c : clusters) {
    if (before.at(c) != joined.at(c)) {
      ++moved;
      EXPECT_EQ(joined.at(c), "dddd0004") << c << " moved between two old members";
    }
  }
  std::printf("join of a 4th member moved %d of 1000 clusters (1/4 = 250)\n", moved);
  EXPECT_NEAR(moved, 250, 45);

  const std::vector<std::string> two = {"aaaa0001", "cccc0003"};
  const auto left = Assign(clusters, two);
  moved = 0;
  for (const std::string& c : clusters) {
    if (before.at(c) != left.at(c)) {
      ++moved;
      EXPECT_EQ(before.at(c), "bbbb0002") << c << " moved though its owner stayed";
    }
  }
  std::printf("leave of 1 of 3 members moved %d of 1000 clusters (1/3 = 333)\n", moved);
  EXPECT_NEAR(moved, 333, 45);
}

TEST(OwnershipHashTest, OrderOfMembersDoesNotMatterAndEmptyPicksNobody) {
  EXPECT_EQ(PickOwner("c", {"a1", "b2", "c3"}), PickOwner("c", {"c3", "a1", "b2"}));
  EXPECT_EQ(PickOwner("c", {}), "");
  EXPECT_EQ(PickOwner("c", {"only"}), "only");
  EXPECT_NE(OwnershipScore("ab", "c"), OwnershipScore("a", "bc"));
}

// The successor is whom the hash picks once the owner has left: for every cluster it owns after a
// crash of the picked member, in the plan too; alone, or with no member, there is none.
TEST(OwnershipHashTest, TheSuccessorIsThePickOnceTheOwnerLeaves) {
  const std::vector<std::string> members = {"3f2a9c01d4e5b6a7", "0b1c2d3e4f5a6b7c", "deadbeef00112233"};
  std::map<std::string, int> successors;
  for (const std::string& c : Clusters(300)) {
    const std::string picked = PickOwner(c, members);
    std::vector<std::string> rest;
    for (const std::string& m : members) {
      if (m != picked) rest.push_back(m);
    }
    const std::string successor = PickSuccessor(c, members);
    EXPECT_NE(successor, picked) << c;
    EXPECT_EQ(successor, PickOwner(c, rest)) << c;
    EXPECT_EQ(PlanOwnership(c, members, {}, members[0]).successor, successor) << c;
    ++successors[successor];
  }
  EXPECT_EQ(successors.size(), 3u) << "every member is some clusters' successor";
  EXPECT_EQ(PickSuccessor("c", {"only"}), "");
  EXPECT_EQ(PickSuccessor("c", {}), "");
  EXPECT_EQ(PickSuccessor("c", {"a1", "b2"}), PickOwner("c", {"a1", "b2"}) == "a1" ? "b2" : "a1");
}

TEST(OwnershipNamesTest, CandidateNamesAreParsedStrictly) {
  auto c = ParseOwnerCandidate("o-ab12-0000000007");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->guid, "ab12");
  EXPECT_EQ(c->seq, 7);
  for (const char* bad : {"", "o-", "o--0000000001", "o-AB-0000000001", "o-ab-", "o-ab-12x",
                          "n-ab-0000000001", "o-a/b-0000000001", "o-ab-99999999999999999999",
                          "o-ab cd-0000000001"}) {
    EXPECT_FALSE(ParseOwnerCandidate(bad).has_value()) << bad;
  }
  EXPECT_EQ(MemberGuid("n-3f2a9c01d4e5b6a7-0000000003"), "3f2a9c01d4e5b6a7");
  EXPECT_EQ(MemberGuid("n-x-y"), "");
  EXPECT_EQ(MemberGuid("o-ab-0000000001"), "");
}

// The member the hash picks for cluster "c" among {a, b}, and the other.
struct Pair {
  std::string picked, other;
};
Pair PickedOf(const std::string& cluster) {
  const std::string p = PickOwner(cluster, {"aa", "bb"});
  return {p, p == "aa" ? "bb" : "aa"};
}

TEST(OwnershipPlanTest, QueueWaitOwnResign) {
  const Pair p = PickedOf("c");
  const std::vector<std::string> members = {"aa", "bb"};
  // Nobody queued: the picked member queues, the other does nothing.
  EXPECT_EQ(PlanOwnership("c", members, {}, p.picked).step, OwnerStep::kQueue);
  EXPECT_EQ(PlanOwnership("c", members, {}, p.other).step, OwnerStep::kNone);
  // The picked member owns.
  const std::vector<std::string> picked_owns = {"o-" + p.picked + "-0000000001"};
  EXPECT_EQ(PlanOwnership("c", members, picked_owns, p.picked).step, OwnerStep::kOwn);
  // The other member owns (it was alone when it queued): it keeps owning until the picked one
  // queued, then resigns; the picked one waits behind it meanwhile.
  const std::vector<std::string> other_owns = {"o-" + p.other + "-0000000001"};
  EXPECT_EQ(PlanOwnership("c", members, other_owns, p.other).step, OwnerStep::kOwn);
  EXPECT_EQ(PlanOwnership("c", members, other_owns, p.picked).step, OwnerStep::kQueue);
  const std::vector<std::string> both = {"o-" + p.picked + "-0000000002",
                                         "o-" + p.other + "-0000000001"};
  EXPECT_EQ(PlanOwnership("c", members, both, p.other).step, OwnerStep::kResign);
  const OwnerPlan waiting = PlanOwnership("c", members, both, p.picked);
  EXPECT_EQ(waiting.step, OwnerStep::kWait);
  EXPECT_EQ(waiting.owner, p.other);
  EXPECT_EQ(waiting.own_name, "o-" + p.picked + "-0000000002");
  // Queued behind but no longer picked: leave the queue.
  const std::vector<std::string> reversed = {"o-" + p.picked + "-0000000001",
                                             "o-" + p.other + "-0000000002"};
  EXPECT_EQ(PlanOwnership("c", members, reversed, p.other).step, OwnerStep::kResign);
  // A member that is not registered takes nothing.
  EXPECT_EQ(PlanOwnership("c", {}, {}, "aa").step, OwnerStep::kNone);
}

TEST(OwnershipPlanTest, HostileQueueNamesAreIgnoredAndOrderIsBySequence) {
  const std::vector<std::string> queue = {"garbage", "o-zz-0000000009", "o-aa-0000000010",
                                          "o-../x-0000000001", "o-bb-000000000x"};
  const OwnerPlan plan = PlanOwnership("c", {"aa"}, queue, "aa");
  EXPECT_EQ(plan.owner, "zz");
  EXPECT_EQ(plan.step, OwnerStep::kWait);
}

class OwnershipZkTest : public ::testing::Test {
 protected:
  struct Member {
    std::unique_ptr<zk::FakeZk> session;
    std::unique_ptr<LeaderElection> election;
    std::unique_ptr<ClusterOwnership> ownership;
    std::set<std::string> armed;
    int wakes = 0;
  };

  std::unique_ptr<Member> Join(const std::string& guid) {
    auto m = std::make_unique<Member>();
    zk::FakeZkOptions o;
    o.session_timeout = milliseconds(6000);
    o.dispatch = zk::DispatchMode::kManual;
    m->session = server_->NewSession(o);
    Member* raw = m.get();
    m->election = std::make_unique<LeaderElection>(m->session.get(), kRoot + std::string("/orchestrators/election"),
                                                   guid, nullptr);
    WatchHooks hooks{[raw](const std::string& key) -> zk::Watcher {
                       if (!raw->armed.insert(key).second) return nullptr;
                       return [raw, key](const zk::WatchEvent&) {
                         raw->armed.erase(key);
                         ++raw->wakes;
                       };
                     },
                     [raw](const std::string& key) { return raw->armed.count(key) > 0; },
                     [raw](const std::string& key) { raw->armed.erase(key); }};
    m->ownership = std::make_unique<ClusterOwnership>(m->session.get(), kRoot, guid, "orch-" + guid, hooks);
    EXPECT_TRUE(m->election->Refresh().ok());
    return m;
  }

  // One round of `m` for `cluster`: members, then the cluster's step.
  OwnerPlan Round(Member& m, const std::string& cluster, bool may_resign = true) {
    server_->DispatchAllPending();
    EXPECT_TRUE(m.election->Refresh().ok());
    EXPECT_TRUE(m.ownership->RefreshMembers().ok());
    auto plan = m.ownership->Refresh(cluster, may_resign);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    return plan.ok() ? *plan : OwnerPlan{};
  }

  std::vector<std::string> Queue(const std::string& cluster) {
    return server_->PeekChildren(model::ClusterPaths(kRoot, cluster).Owners());
  }

  static constexpr char kRoot[] = "/pgherald";
  ManualClock clock_;
  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create(&clock_);
};

TEST_F(OwnershipZkTest, AloneOwnsAtOnceWithItsDataAndFence) {
  auto a = Join("aa");
  const OwnerPlan plan = Round(*a, "c");
  EXPECT_EQ(plan.step, OwnerStep::kOwn);
  EXPECT_TRUE(a->ownership->Owns("c"));
  const std::string path = a->ownership->CandidatePath("c");
  ASSERT_EQ(path.rfind("/pgherald/clusters/c/owners/o-aa-", 0), 0u) << path;
  auto node = server_->Peek(path);
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(node->data, R"({"guid":"aa","id":"orch-aa"})");
  EXPECT_EQ(a->ownership->OwnerOf("c"), "aa");
  // A second round reads nothing new (the queue's watch is armed) and creates nothing.
  Round(*a, "c");
  EXPECT_EQ(Queue("c").size(), 1u);
}

TEST_F(OwnershipZkTest, JoiningMemberTakesItsClustersWithoutGap) {
  // Find a cluster the second member ("bb") is picked for.
  std::string cluster;
  for (const std::string& c : Clusters(50)) {
    if (PickOwner(c, {"aa", "bb"}) == "bb") cluster = c;
  }
  ASSERT_FALSE(cluster.empty());
  auto a = Join("aa");
  ASSERT_EQ(Round(*a, cluster).step, OwnerStep::kOwn);
  auto b = Join("bb");
  // a's member watch fired (b joined): the loop is woken.
  server_->DispatchAllPending();
  EXPECT_GE(a->wakes, 1);
  // b queues behind a and waits; a still owns (b had not queued when a looked).
  EXPECT_EQ(Round(*b, cluster).step, OwnerStep::kWait);
  EXPECT_FALSE(b->ownership->Owns(cluster));
  EXPECT_TRUE(a->ownership->Owns(cluster));
  // a sees b queued: it resigns (not while a publish is unsettled).
  EXPECT_EQ(Round(*a, cluster, /*may_resign=*/false).step, OwnerStep::kResign);
  EXPECT_TRUE(a->ownership->Owns(cluster)) << "resigned with a publish unsettled";
  // b was woken by its own create; its round re-arms the queue's watch.
  EXPECT_EQ(Round(*b, cluster).step, OwnerStep::kWait);
  EXPECT_EQ(Round(*a, cluster).step, OwnerStep::kNone);
  EXPECT_FALSE(a->ownership->Owns(cluster));
  EXPECT_EQ(a->ownership->CandidatePath(cluster), "");
  // b's queue watch fired: it owns at its next round.
  const int before = b->wakes;
  server_->DispatchAllPending();
  EXPECT_GT(b->wakes, before);
  EXPECT_EQ(Round(*b, cluster).step, OwnerStep::kOwn);
  EXPECT_TRUE(b->ownership->Owns(cluster));
  EXPECT_EQ(Queue(cluster).size(), 1u);
}

TEST_F(OwnershipZkTest, CrashedOwnersClustersMoveWhenItsSessionExpires) {
  auto a = Join("aa");
  auto b = Join("bb");
  std::string of_a, of_b;
  for (const std::string& c : Clusters(50)) {
    (PickOwner(c, {"aa", "bb"}) == "aa" ? of_a : of_b) = c;
  }
  ASSERT_EQ(Round(*a, of_a).step, OwnerStep::kOwn);
  ASSERT_EQ(Round(*b, of_a).step, OwnerStep::kNone);
  ASSERT_EQ(Round(*b, of_b).step, OwnerStep::kOwn);
  ASSERT_TRUE(server_->ExpireSession(a->session->session_id()).ok());
  server_->DispatchAllPending();
  EXPECT_EQ(Round(*b, of_a).step, OwnerStep::kOwn);
  EXPECT_TRUE(b->ownership->Owns(of_a));
  EXPECT_FALSE(a->ownership->Owns(of_a));  // its session is gone
}

TEST_F(OwnershipZkTest, PartitionedOwnerDoesNotOwnWhileConnecting) {
  auto a = Join("aa");
  ASSERT_EQ(Round(*a, "c").step, OwnerStep::kOwn);
  a->session->Disconnect();
  EXPECT_FALSE(a->ownership->Owns("c"));
  a->session->Reconnect();
  EXPECT_TRUE(a->ownership->Owns("c"));
}

TEST_F(OwnershipZkTest, LostCreateIsFoundByItsGuid) {
  auto a = Join("aa");
  // Before the members are read nobody is picked: the queue is set up and read, nothing queued.
  auto none = a->ownership->Refresh("c", true);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->step, OwnerStep::kNone);
  ASSERT_TRUE(a->ownership->RefreshMembers().ok());
  // The create lands but its answer is lost.
  a->session->FailNextCall(StatusCode::kConnectionLoss, /*applied=*/true);
  auto first = a->ownership->Refresh("c", true);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(Round(*a, "c").step, OwnerStep::kOwn);
  EXPECT_EQ(Queue("c").size(), 1u) << "a second candidate was created";
}

TEST_F(OwnershipZkTest, ResignAllDeletesEveryCandidate) {
  auto a = Join("aa");
  for (const std::string& c : Clusters(5)) ASSERT_EQ(Round(*a, c).step, OwnerStep::kOwn);
  a->ownership->ResignAll();
  for (const std::string& c : Clusters(5)) EXPECT_TRUE(Queue(c).empty()) << c;
}

}  // namespace
}  // namespace pgherald::orchestrator
