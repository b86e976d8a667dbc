#include "common/model/zk_paths.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgherald::model {
namespace {

TEST(ZkPathsTest, ClusterPathsSpellTheContractTree) {
  const ClusterPaths p("/pgherald", "main");
  EXPECT_EQ(p.root(), "/pgherald");
  EXPECT_EQ(p.cluster(), "main");
  EXPECT_EQ(p.Cluster(), "/pgherald/clusters/main");
  EXPECT_EQ(p.Identity(), "/pgherald/clusters/main/identity");
  EXPECT_EQ(p.Nodes(), "/pgherald/clusters/main/nodes");
  EXPECT_EQ(p.Node("pg1"), "/pgherald/clusters/main/nodes/pg1");
  EXPECT_EQ(p.Events(), "/pgherald/clusters/main/events");
  EXPECT_EQ(p.Event("e-1"), "/pgherald/clusters/main/events/e-1");
  EXPECT_EQ(p.Master(), "/pgherald/clusters/main/master");
  EXPECT_EQ(p.Voucher("v1.3.ab.o1"), "/pgherald/clusters/main/master/v1.3.ab.o1");
  EXPECT_EQ(p.History(), "/pgherald/clusters/main/history");
  EXPECT_EQ(p.HistoryEntry("h-0000000007"), "/pgherald/clusters/main/history/h-0000000007");
  EXPECT_EQ(p.HistoryPrefix(), "/pgherald/clusters/main/history/h-");
  EXPECT_EQ(p.Control(), "/pgherald/clusters/main/control");
  EXPECT_EQ(p.Owners(), "/pgherald/clusters/main/owners");
  EXPECT_EQ(p.OwnerCandidate("o-ab12-0000000003"), "/pgherald/clusters/main/owners/o-ab12-0000000003");
  EXPECT_EQ(p.OwnerPrefix("ab12"), "/pgherald/clusters/main/owners/o-ab12-");
  EXPECT_EQ(p.Containers(),
            (std::vector<std::string>{p.Nodes(), p.Events(), p.History(), p.Control()}));
}

TEST(ZkPathsTest, EnsembleRootAndNestedRoot) {
  // "/" and "" are the ensemble's root: no double slash.
  EXPECT_EQ(ClusterPaths("/", "c").Master(), "/clusters/c/master");
  EXPECT_EQ(ClusterPaths("", "c").Master(), "/clusters/c/master");
  EXPECT_EQ(ClusterPaths("/a/pgherald", "c").Node("n"), "/a/pgherald/clusters/c/nodes/n");
  EXPECT_EQ(ZnodeJoin("/", "x"), "/x");
  EXPECT_EQ(ZnodeJoin("/a", "x"), "/a/x");
}

TEST(ZkPathsTest, RootPaths) {
  const RootPaths r("/pgherald");
  EXPECT_EQ(r.Clusters(), "/pgherald/clusters");
  EXPECT_EQ(r.Cluster("main").Master(), "/pgherald/clusters/main/master");
  EXPECT_EQ(r.Orchestrators(), "/pgherald/orchestrators");
  EXPECT_EQ(r.Election(), "/pgherald/orchestrators/election");
  EXPECT_EQ(r.ElectionMember("n-1"), "/pgherald/orchestrators/election/n-1");
  EXPECT_EQ(RootPaths("/").Election(), "/orchestrators/election");
}

}  // namespace
}  // namespace pgherald::model
