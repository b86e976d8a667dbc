// The per-role ACL model (common/zk_acl.h), zk-init's layout (app/zk_init.h) and the start-up
// check, against the FakeZk, which enforces ACLs as ZooKeeper does.
#include "common/zk_acl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "app/zk_init.h"
#include "common/config.h"
#include "tests/support/fake_zk.h"
#include "pollers/publisher.h"
#include "publishers/zk_publisher.h"

namespace pgherald {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRoot[] = "/pgherald";
constexpr char kCluster[] = "main";
const std::string kMaster = "/pgherald/clusters/main/master";
const std::string kControl = "/pgherald/clusters/main/control";

// ZooKeeper's documented example: the digest of super:admin.
TEST(DigestIdTest, MatchesZooKeepersKnownVector) {
  EXPECT_EQ(zkacl::DigestId("super", "admin"), "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
  EXPECT_EQ(*zkacl::DigestIdOfCredential("super:admin"), "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
  // Only the first ':' separates: the password may hold more.
  EXPECT_EQ(*zkacl::DigestIdOfCredential("u:a:b"), zkacl::DigestId("u", "a:b"));
  EXPECT_FALSE(zkacl::DigestIdOfCredential("nocolon").ok());
  EXPECT_FALSE(zkacl::DigestIdOfCredential(":pw").ok());
  EXPECT_TRUE(zkacl::IsDigestId("super:xQJmxLMiHGwaqBvst5y6rkB6HQs="));
  EXPECT_FALSE(zkacl::IsDigestId("super:admin"));
}

TEST(AclModelTest, WorldWritableAndText) {
  EXPECT_TRUE(zkacl::IsWorldWritable({{zk::kPermAll, "world", "anyone"}}));
  EXPECT_TRUE(zkacl::IsWorldWritable({{zk::kPermRead | zk::kPermCreate, "world", "anyone"}}));
  EXPECT_FALSE(zkacl::IsWorldWritable(
      {{zk::kPermRead, "world", "anyone"}, {zk::kPermAll, "digest", "o:x"}}));
  EXPECT_EQ(zkacl::AclText({{zk::kPermAll, "world", "anyone"}}), "world:anyone:cdrwa");
}

// Three roles and the admin; each session authenticated as one of them.
struct Roles {
  std::string admin = zkacl::DigestId("admin", "a-pw");
  std::string orchestrator = zkacl::DigestId("orch", "o-pw");
  std::string poller1 = zkacl::DigestId("pg1", "p1-pw");
  std::string poller2 = zkacl::DigestId("pg2", "p2-pw");
  std::string op = zkacl::DigestId("ops", "op-pw");
  zkacl::RoleIdentities ids() const { return {{admin}, {orchestrator}, {poller1, poller2}, {op}}; }
};

class ZkAclTreeTest : public ::testing::Test {
 protected:
  std::unique_ptr<zk::FakeZk> Session(const std::optional<std::string>& id) {
    zk::FakeZkOptions o;
    o.digest_id = id;
    o.acl = id ? zk::ZkAclPolicy::kCreatorAllWorldRead : zk::ZkAclPolicy::kOpen;
    return server_->NewSession(o);
  }
  zk::SessionFactory Factory(const std::optional<std::string>& id) {
    return [this, id]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
      return std::unique_ptr<zk::ZkSession>(Session(id));
    };
  }
  app::ZkInitReport Init(bool dry_run = false) {
    auto admin = Session(roles_.admin);
    auto report = app::ApplyZkLayout(*admin, kRoot, {kCluster}, roles_.ids(), dry_run);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : app::ZkInitReport{};
  }

  std::shared_ptr<zk::FakeZkServer> server_ = zk::FakeZkServer::Create();
  Roles roles_;
};

// The switchover record: an operator's `pgherald switchover` creates and rewrites it; the
// orchestrators and pollers only read it; zk-init fixes an open one to operators-only.
TEST_F(ZkAclTreeTest, OnlyOperatorsWriteTheSwitchoverRecord) {
  Init();
  const std::string record = model::ClusterPaths(kRoot, kCluster).Switchover();
  auto op = Session(roles_.op);
  ASSERT_TRUE(op->Create(record, "{}", zk::CreateMode::kPersistent).ok());
  auto denied = [](const auto& r) { return r.status().code() == StatusCode::kPermissionDenied; };
  EXPECT_TRUE(denied(Session(roles_.orchestrator)->Set(record, "{}")));
  EXPECT_TRUE(denied(Session(roles_.poller1)->Set(record, "{}")));
  EXPECT_TRUE(denied(Session(std::nullopt)->Set(record, "{}")));
  EXPECT_TRUE(Session(std::nullopt)->Get(record).ok());
  EXPECT_TRUE(op->Set(record, "{}").ok());

  // Made open (by a session without auth), then migrated.
  ASSERT_TRUE(op->SetAcl(record, {{zk::kPermAll, "world", "anyone"}}).ok());
  EXPECT_FALSE(zkacl::JudgeTree(*zkacl::InspectTree(*op, {kRoot, {kCluster}, true, false, "t"}),
                                {kRoot, {kCluster}, true, false, "t"})
                   .ok());
  Init();
  auto acl = Session(roles_.admin)->GetAcl(record);
  ASSERT_TRUE(acl.ok());
  EXPECT_TRUE(zkacl::SameAcl(acl->acl, {{zk::kPermAll, "digest", roles_.op},
                                        {zk::kPermAll, "digest", roles_.admin},
                                        {zk::kPermRead, "world", "anyone"}}))
      << zkacl::AclText(acl->acl);
  EXPECT_TRUE(op->Set(record, "{}").ok());
  EXPECT_TRUE(denied(Session(roles_.orchestrator)->Set(record, "{}")));
}

// Every role does its real work through the real call sites (orchestrator's ZkPublisher, the
// poller's ObservationPublisher, the operator's WriteControl) on a tree laid out by zk-init, and
// cannot write what is not its own.
TEST_F(ZkAclTreeTest, EachRoleWritesOnlyItsOwnZnodes) {
  Init();
  auto orch = Session(roles_.orchestrator);
  publishers::ZkPublisher writer(orch.get(), kRoot, "orch-1");
  ASSERT_TRUE(writer.EnsureCluster(kCluster).ok());
  ASSERT_TRUE(writer.RecordIdentity(kCluster, "7000000000000000001").ok());
  ASSERT_TRUE(zk::EnsurePath(*orch, "/pgherald/orchestrators/election").ok());
  ASSERT_TRUE(
      orch->Create("/pgherald/orchestrators/election/n-", "g", zk::CreateMode::kEphemeralSequential)
          .ok());
  // The ownership queue (orchestrator/ownership.h): the orchestrators queue there.
  const std::string owners = model::ClusterPaths(kRoot, kCluster).Owners();
  ASSERT_TRUE(orch->Create(owners + "/o-g-", "{}", zk::CreateMode::kEphemeralSequential).ok());

  pollers::ObservationPublisher poller(Factory(roles_.poller1), kRoot, kCluster, "pg1", 10);
  ASSERT_TRUE(poller.Publish(R"({"format":1})").ok());
  std::vector<pollers::RepmgrEvent> events(1);
  events[0].key = {1700000000000000, 1, "standby_promote"};
  ASSERT_TRUE(poller.PublishEvents(&events).ok());
  EXPECT_TRUE(events.empty());

  auto op = Session(roles_.op);
  ASSERT_TRUE(publishers::WriteControl(*op, model::ClusterPaths(kRoot, kCluster), {true, "maintenance", "ops", 0}).ok());
  auto orch_control = Session(roles_.orchestrator);  // the HTTP API writes control as orchestrator
  ASSERT_TRUE(publishers::WriteControl(*orch_control, model::ClusterPaths(kRoot, kCluster), {false, "", "api", 0}).ok());

  const auto denied = [](const auto& result) {
    return result.status().code() == StatusCode::kPermissionDenied;
  };
  // A poller's credential cannot touch master, history, identity or another poller's node.
  auto p1 = Session(roles_.poller1);
  EXPECT_TRUE(denied(p1->Set(kMaster, "{}")));
  EXPECT_TRUE(denied(p1->Create(kMaster + "/voucher", "", zk::CreateMode::kEphemeral)));
  EXPECT_TRUE(denied(
      p1->Create("/pgherald/clusters/main/history/h-", "", zk::CreateMode::kPersistentSequential)));
  EXPECT_TRUE(denied(p1->Set("/pgherald/clusters/main/identity", "{}")));
  EXPECT_TRUE(denied(p1->Set(kControl, "{}")));
  // Nobody but an orchestrator takes a cluster's ownership (a candidate ahead of the owner would
  // stop every publish of the cluster).
  EXPECT_TRUE(denied(p1->Create(owners + "/o-evil-", "", zk::CreateMode::kEphemeralSequential)));
  auto p2 = Session(roles_.poller2);
  EXPECT_TRUE(denied(p2->Set("/pgherald/clusters/main/nodes/pg1", "{}")));
  EXPECT_EQ(p2->Delete("/pgherald/clusters/main/nodes/pg1").code(), StatusCode::kPermissionDenied);
  // An operator's credential: control only.
  EXPECT_TRUE(op->Set(kControl, "").ok());
  EXPECT_TRUE(denied(op->Set(kMaster, "{}")));
  EXPECT_TRUE(denied(op->Create(owners + "/o-evil-", "", zk::CreateMode::kEphemeralSequential)));
  EXPECT_TRUE(denied(op->Set("/pgherald/clusters/main/nodes/pg1", "{}")));
  EXPECT_TRUE(
      denied(op->Create("/pgherald/clusters/main/nodes/pg9", "", zk::CreateMode::kEphemeral)));
  // Anyone reads; nobody anonymous writes.
  auto anon = Session(std::nullopt);
  EXPECT_TRUE(anon->Get(kMaster).ok());
  EXPECT_TRUE(anon->Get("/pgherald/clusters/main/nodes/pg1").ok());
  EXPECT_TRUE(anon->GetChildren("/pgherald/clusters/main/events").ok());
  EXPECT_TRUE(denied(anon->Set(kMaster, "{}")));
  EXPECT_TRUE(denied(anon->Set(kControl, "{}")));
  EXPECT_TRUE(
      denied(anon->Create("/pgherald/clusters/main/nodes/pg1x", "", zk::CreateMode::kEphemeral)));
  EXPECT_TRUE(denied(anon->Create("/pgherald/clusters/evil", "", zk::CreateMode::kPersistent)));
  EXPECT_TRUE(denied(anon->Create(owners + "/o-evil-", "", zk::CreateMode::kEphemeralSequential)));
  // The orchestrator still owns its records.
  EXPECT_TRUE(orch->Set(kMaster, "{}").ok());

  // Nothing on the laid-out tree is world-writable, so every daemon's check passes.
  auto findings = zkacl::InspectTree(*anon, {kRoot, {kCluster}, true, false, "poller"});
  ASSERT_TRUE(findings.ok());
  EXPECT_FALSE(findings->root_missing);
  EXPECT_THAT(findings->world_writable, ::testing::IsEmpty());
}

TEST_F(ZkAclTreeTest, ZkInitIsIdempotentAndDryRunChangesNothing) {
  const auto dry = Init(/*dry_run=*/true);
  EXPECT_GT(dry.created, 0);
  EXPECT_FALSE(server_->Peek(kRoot).has_value());
  const auto first = Init();
  EXPECT_EQ(first.created, dry.created);
  EXPECT_THAT(first.lines.front(), HasSubstr("create /pgherald acl="));
  const auto second = Init();
  EXPECT_EQ(second.created, 0);
  EXPECT_EQ(second.changed, 0);
  EXPECT_THAT(second.lines, ::testing::IsEmpty());
}

// An open tree made by daemons without auth: the check refuses it once auth is on, zk-init
// migrates it (also the records the roles made), and the check then passes.
TEST_F(ZkAclTreeTest, OpenTreeIsRefusedThenMigrated) {
  auto open = Session(std::nullopt);
  publishers::ZkPublisher writer(open.get(), kRoot, "orch-1");
  ASSERT_TRUE(writer.EnsureCluster(kCluster).ok());
  ASSERT_TRUE(zk::EnsurePath(*open, "/pgherald/clusters/main/history").ok());
  ASSERT_TRUE(open->Create("/pgherald/clusters/main/history/h-", "{}",
                           zk::CreateMode::kPersistentSequential)
                  .ok());

  zkacl::TreeCheck check{kRoot, {kCluster}, /*auth_configured=*/true, false, "orchestrator"};
  auto refused = zkacl::GuardedFactory(Factory(roles_.orchestrator), check)();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              AllOf(HasSubstr("znode /pgherald "), HasSubstr("world-writable"),
                    HasSubstr("pgherald zk-init"), HasSubstr("zookeeper.allow_open_acl")));
  EXPECT_EQ(zkacl::CheckAtStart(zkacl::GuardedFactory(Factory(roles_.orchestrator), check)).code(),
            StatusCode::kFailedPrecondition);
  // Opt-out, and no auth at all: allowed, with a warning.
  check.allow_open_acl = true;
  EXPECT_TRUE(zkacl::GuardedFactory(Factory(roles_.orchestrator), check)().ok());
  zkacl::TreeCheck no_auth{kRoot, {kCluster}, false, false, "poller"};
  auto findings = zkacl::InspectTree(*open, no_auth);
  ASSERT_TRUE(findings.ok());
  EXPECT_TRUE(zkacl::JudgeTree(*findings, no_auth).ok());
  ASSERT_EQ(zkacl::Warnings(*findings, no_auth).size(), 1u);
  EXPECT_THAT(zkacl::Warnings(*findings, no_auth)[0], HasSubstr("world-writable"));

  const auto report = Init();
  EXPECT_GT(report.changed, 0);
  EXPECT_THAT(::testing::PrintToString(report.lines),
              AllOf(HasSubstr("set acl /pgherald/clusters/main/master from world:anyone:cdrwa"),
                    HasSubstr("set acl /pgherald/clusters/main/history/h-0000000000")));
  check.allow_open_acl = false;
  EXPECT_TRUE(zkacl::GuardedFactory(Factory(roles_.orchestrator), check)().ok());
  EXPECT_EQ(open->Set(kMaster, "{}").status().code(), StatusCode::kPermissionDenied);
}

// A root below a shared parent (/apps/pgherald): the parent is created when missing, but an
// existing one keeps its ACL (it may belong to other applications).
TEST_F(ZkAclTreeTest, ExistingAncestorsOfTheRootKeepTheirAcl) {
  auto open = Session(std::nullopt);
  ASSERT_TRUE(open->Create("/apps", "", zk::CreateMode::kPersistent).ok());
  auto admin = Session(roles_.admin);
  auto report = app::ApplyZkLayout(*admin, "/apps/pgherald", {kCluster}, roles_.ids(), false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(zkacl::AclText(open->GetAcl("/apps")->acl), "world:anyone:cdrwa");
  EXPECT_FALSE(zkacl::IsWorldWritable(open->GetAcl("/apps/pgherald")->acl));
  EXPECT_THAT(::testing::PrintToString(report->lines), Not(HasSubstr("/apps ")));
}

TEST_F(ZkAclTreeTest, MissingRootIsRefusedWithAuth) {
  zkacl::TreeCheck check{kRoot, {kCluster}, true, false, "poller"};
  auto refused = zkacl::GuardedFactory(Factory(roles_.poller1), check)();
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              AllOf(HasSubstr("/pgherald does not exist"), HasSubstr("pgherald zk-init")));
}

// A role without CREATE on an ancestor still gets Ok from EnsurePath when the path exists.
TEST_F(ZkAclTreeTest, EnsurePathToleratesNoAuthOnExistingAncestors) {
  Init();
  auto p1 = Session(roles_.poller1);
  EXPECT_TRUE(zk::EnsurePath(*p1, "/pgherald/clusters/main/nodes").ok());
  EXPECT_EQ(zk::EnsurePath(*p1, "/pgherald/clusters/other/nodes").code(),
            StatusCode::kPermissionDenied);
}

// --- config
// ---------------------------------------------------------------------------------------

class TempFile {
 public:
  TempFile(const std::string& content, mode_t mode) {
    char name[] = "/tmp/zk_acl_test_XXXXXX";
    const int fd = mkstemp(name);
    path_ = name;
    if (fd >= 0) {
      EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
      close(fd);
    }
    chmod(name, mode);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Parsed {
  config::ZooKeeperConfig zk;
  Status status;
};
Parsed ParseZk(const std::string& yaml) {
  auto root = config::ConfigNode::LoadString(yaml, "cfg.yaml");
  EXPECT_TRUE(root.ok());
  Parsed p;
  p.zk = config::ParseZooKeeper(root->Child("zookeeper"));
  p.status = root->Finish();
  return p;
}

TEST(ZkAuthConfigTest, AuthFileIsReadAndWarnsWhenReadableByOthers) {
  TempFile secret("orch:s3cret\nignored\n", 0600);
  auto p = ParseZk("zookeeper:\n  connect: zk\n  auth_file: " + secret.path() + "\n");
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.zk.auth, "orch:s3cret");
  EXPECT_THAT(p.zk.warnings, ::testing::IsEmpty());
  EXPECT_EQ(config::ToZkClientOptions(p.zk).auth->password, "s3cret");
  EXPECT_EQ(config::ToZkClientOptions(p.zk).acl, zk::ZkAclPolicy::kCreatorAllWorldRead);
  // Names are re-resolved on a lost connection only, not at every wake-up of the I/O thread.
  EXPECT_EQ(config::ToZkClientOptions(p.zk).resolve_delay.count(), -1);

  TempFile loose("orch:s3cret\n", 0644);
  p = ParseZk("zookeeper:\n  connect: zk\n  auth_file: " + loose.path() + "\n");
  ASSERT_TRUE(p.status.ok());
  ASSERT_EQ(p.zk.warnings.size(), 1u);
  EXPECT_THAT(p.zk.warnings[0], AllOf(HasSubstr(loose.path()), HasSubstr("chmod 600")));
}

TEST(ZkAuthConfigTest, BadAuthFilesAreRefusedWithoutShowingTheSecret) {
  TempFile no_colon("justapassword\n", 0600);
  auto p = ParseZk("zookeeper:\n  connect: zk\n  auth_file: " + no_colon.path() + "\n");
  EXPECT_THAT(p.status.message(),
              AllOf(HasSubstr("zookeeper.auth_file"), HasSubstr(no_colon.path()),
                    Not(HasSubstr("justapassword"))));
  p = ParseZk("zookeeper:\n  connect: zk\n  auth_file: /nonexistent/zk.auth\n");
  EXPECT_THAT(p.status.message(),
              AllOf(HasSubstr("cfg.yaml:3"), HasSubstr("/nonexistent/zk.auth")));
  TempFile secret("orch:s3cret\n", 0600);
  p = ParseZk("zookeeper:\n  connect: zk\n  auth: a:b\n  auth_file: " + secret.path() + "\n");
  EXPECT_THAT(p.status.message(), HasSubstr("set either auth_file or auth, not both"));
}

TEST(ZkAuthConfigTest, InlineAuthStillWorksButWarns) {
  auto p = ParseZk("zookeeper:\n  connect: zk\n  auth: orch:pw\n");
  ASSERT_TRUE(p.status.ok());
  EXPECT_EQ(p.zk.auth, "orch:pw");
  ASSERT_EQ(p.zk.warnings.size(), 1u);
  EXPECT_THAT(p.zk.warnings[0], AllOf(HasSubstr("auth_file"), Not(HasSubstr("pw"))));
}

TEST(ZkAuthConfigTest, AllowOpenAclAndTlsRefusal) {
  auto p = ParseZk("zookeeper:\n  connect: zk\n  allow_open_acl: true\n");
  ASSERT_TRUE(p.status.ok());
  EXPECT_TRUE(p.zk.allow_open_acl);
  EXPECT_FALSE(ParseZk("zookeeper:\n  connect: zk\n").zk.allow_open_acl);
  p = ParseZk("zookeeper:\n  connect: zk\n  tls:\n    ca_file: /etc/ca.pem\n");
  EXPECT_THAT(p.status.message(), AllOf(HasSubstr("cfg.yaml:3: zookeeper.tls"),
                                        HasSubstr("not supported"), HasSubstr("stunnel"),
                                        HasSubstr("docs/security.md"), Not(HasSubstr("unknown"))));
}

TEST(ZkInitConfigTest, IdentitiesFromFilesAndDigests) {
  TempFile admin("admin:a-pw\n", 0600);
  TempFile orch("orch:o-pw\n", 0600);
  TempFile digest(zkacl::DigestId("pg2", "p2-pw") + "\n", 0644);
  const std::string yaml = "zookeeper:\n  connect: zk\n  auth_file: " + admin.path() +
                           "\nzk_init:\n  clusters: [main, other]\n  orchestrators:\n"
                           "    - auth_file: " +
                           orch.path() + "\n  pollers:\n    - digest: \"" +
                           zkacl::DigestId("pg1", "p1-pw") +
                           "\"\n    - digest_file: " + digest.path() + "\n";
  auto cfg = app::ParseZkInitConfig(*config::ConfigNode::LoadString(yaml, "init.yaml"));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->clusters, (std::vector<std::string>{"main", "other"}));
  EXPECT_EQ(cfg->ids.admins, std::vector<std::string>{zkacl::DigestId("admin", "a-pw")});
  EXPECT_EQ(cfg->ids.orchestrators, std::vector<std::string>{zkacl::DigestId("orch", "o-pw")});
  EXPECT_EQ(cfg->ids.pollers, (std::vector<std::string>{zkacl::DigestId("pg1", "p1-pw"),
                                                        zkacl::DigestId("pg2", "p2-pw")}));

  auto bad = app::ParseZkInitConfig(*config::ConfigNode::LoadString(
      "zookeeper:\n  connect: zk\n  auth_file: " + admin.path() +
          "\nzk_init:\n  clusters: [main]\n  orchestrators:\n    - digest: orch:o-pw\n"
          "  operators:\n    - digest: x\n      auth_file: /x\n",
      "init.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              AllOf(HasSubstr("zk_init.orchestrators[0].digest"), HasSubstr("expected \"user:<28"),
                    HasSubstr("zk_init.operators[0]"), HasSubstr("exactly one of")));
  auto no_admin = app::ParseZkInitConfig(*config::ConfigNode::LoadString(
      "zookeeper:\n  connect: zk\nzk_init:\n  orchestrators:\n    - digest: \"" +
          zkacl::DigestId("o", "p") + "\"\n",
      "init.yaml"));
  EXPECT_THAT(no_admin.status().message(), HasSubstr("zookeeper.auth_file is required"));
}

}  // namespace
}  // namespace pgherald
