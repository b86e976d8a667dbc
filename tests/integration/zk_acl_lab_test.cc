// Per-role ACLs on a real ZooKeeper 3.8 (the lab's standalone server): `pgherald zk-init` lays the
// tree out, then each role's credential is tried against the znodes of the others, and the
// daemons refuse to start with auth on a world-writable tree. A missing server fails loudly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/zk_acl.h"
#include "common/zk/zk_client.h"
#include "tests/lab/lab.h"

namespace pgherald {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

lab::Lab* TheLab() {
  static std::unique_ptr<lab::Lab> lab;
  static Status error;
  if (lab == nullptr && error.ok()) {
    auto up = lab::Lab::Up({.zk_ensemble = false, .zk_standalone = true});
    if (up.ok()) {
      lab = std::move(up).value();
    } else {
      error = up.status();
    }
  }
  EXPECT_TRUE(error.ok()) << "the lab's ZooKeeper did not come up: " << error.ToString();
  return lab.get();
}

std::string WriteFile(const std::string& path, const std::string& content, mode_t mode = 0600) {
  std::ofstream(path) << content;
  ::chmod(path.c_str(), mode);
  return path;
}
std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct RunResult {
  int exit_code = -1;  // -1: it did not exit before the deadline (then it was killed)
  std::string output;  // stdout and stderr
};
// Runs `pgherald ARGS...`, waiting for it to exit up to `deadline`.
RunResult RunPgherald(const std::vector<std::string>& args, const std::string& log,
                      std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
  const char* bin = std::getenv("PGHERALD_BIN");
  EXPECT_NE(bin, nullptr) << "PGHERALD_BIN must name the pgherald program (ctest sets it)";
  RunResult result;
  if (bin == nullptr) return result;
  const pid_t pid = ::fork();
  if (pid == 0) {
    FILE* out = std::fopen(log.c_str(), "w");
    if (out != nullptr) {
      ::dup2(::fileno(out), 1);
      ::dup2(::fileno(out), 2);
    }
    std::vector<char*> argv{const_cast<char*>(bin)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin, argv.data());
    ::_exit(127);
  }
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the child's exit
  }
  result.output = ReadFile(log);
  return result;
}

class ZkAclLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lab_ = TheLab();
    ASSERT_NE(lab_, nullptr);
    dir_ =
        lab_->dir() + "/zk_acl_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ::mkdir(dir_.c_str(), 0700);
  }
  std::string Connect() const { return lab_->zk_standalone_connect(); }
  std::unique_ptr<zk::ZkClient> Session(std::optional<zk::ZkDigestAuth> auth) {
    zk::ZkClientOptions o;
    o.connect = Connect();
    o.session_timeout = std::chrono::milliseconds(6000);
    o.auth = auth;
    o.acl = auth ? zk::ZkAclPolicy::kCreatorAllWorldRead : zk::ZkAclPolicy::kOpen;
    auto s = zk::ZkClient::Connect(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string ZkInitConfig(const std::string& root) {
    const std::string admin = WriteFile(dir_ + "/admin.auth", "admin:admin-pw\n");
    const std::string orch = WriteFile(dir_ + "/orch.auth", "orch:orch-pw\n");
    const std::string ops = WriteFile(dir_ + "/ops.auth", "ops:ops-pw\n");
    const std::string pg2 =
        WriteFile(dir_ + "/pg2.digest", zkacl::DigestId("pg2", "pg2-pw") + "\n", 0644);
    return WriteFile(dir_ + "/zk-init.yaml", "zookeeper:\n  connect: \"" + Connect() +
                                                 "\"\n  root: " + root + "\n  auth_file: " + admin +
                                                 "\nzk_init:\n  clusters: [main]\n"
                                                 "  orchestrators:\n    - auth_file: " +
                                                 orch + "\n  pollers:\n    - digest: \"" +
                                                 zkacl::DigestId("pg1", "pg1-pw") +
                                                 "\"\n    - digest_file: " + pg2 +
                                                 "\n  operators:\n    - auth_file: " + ops + "\n");
  }
  // A poller config with auth (its PostgreSQL is never reached: the check comes first).
  std::string PollerConfig(const std::string& root, const std::string& extra = "") {
    const std::string auth = WriteFile(dir_ + "/pg1.auth", "pg1:pg1-pw\n");
    return WriteFile(dir_ + "/poller.yaml",
                     "zookeeper:\n  connect: \"" + Connect() + "\"\n  root: " + root +
                         "\n  auth_file: " + auth + "\n" + extra +
                         "poller:\n  cluster: main\n  node: pg1\npostgres:\n  host: 127.0.0.1\n"
                         "  port: 1\n  user: nobody\n");
  }

  lab::Lab* lab_ = nullptr;
  std::string dir_;
};

TEST_F(ZkAclLabTest, RolesAreSeparatedAfterZkInit) {
  const std::string root = "/roles";
  const RunResult init =
      RunPgherald({"zk-init", "--config", ZkInitConfig(root)}, dir_ + "/init.log");
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_THAT(init.output,
              AllOf(HasSubstr("create /roles/clusters/main/nodes acl="), Not(HasSubstr("-pw"))));
  // Idempotent.
  const RunResult again =
      RunPgherald({"zk-init", "--config", ZkInitConfig(root)}, dir_ + "/again.log");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("0 created, 0 ACLs changed"));

  auto orch = Session(zk::ZkDigestAuth{"orch", "orch-pw"});
  auto pg1 = Session(zk::ZkDigestAuth{"pg1", "pg1-pw"});
  auto pg2 = Session(zk::ZkDigestAuth{"pg2", "pg2-pw"});
  auto ops = Session(zk::ZkDigestAuth{"ops", "ops-pw"});
  auto anon = Session(std::nullopt);
  ASSERT_TRUE(orch && pg1 && pg2 && ops && anon);
  const std::string master = root + "/clusters/main/master";
  const std::string control = root + "/clusters/main/control";
  const std::string node1 = root + "/clusters/main/nodes/pg1";

  ASSERT_TRUE(orch->Create(master, "{}", zk::CreateMode::kPersistent).ok());
  ASSERT_TRUE(orch->Create(master + "/v-orch", "", zk::CreateMode::kEphemeral).ok());
  ASSERT_TRUE(pg1->Create(node1, "{}", zk::CreateMode::kEphemeral).ok());
  ASSERT_TRUE(
      pg2->Create(root + "/clusters/main/events/e-1", "{}", zk::CreateMode::kPersistent).ok());

  const auto code = [](const auto& r) { return r.status().code(); };
  // The ownership queue (orchestrator/ownership.h): zk-init laid it out; only the orchestrators'
  // identity queues there (a foreign candidate ahead of the owner would stop the cluster's
  // publishes).
  const std::string owners = root + "/clusters/main/owners";
  EXPECT_TRUE(orch->Create(owners + "/o-aa-", "{}", zk::CreateMode::kEphemeralSequential).ok());
  for (auto* s : {pg1.get(), ops.get(), anon.get()}) {
    EXPECT_EQ(code(s->Create(owners + "/o-evil-", "", zk::CreateMode::kEphemeralSequential)),
              StatusCode::kPermissionDenied);
  }
  // A poller's credential cannot set master (NoAuth), nor another poller's node.
  EXPECT_EQ(code(pg1->Set(master, "{\"node\":\"evil\"}")), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(pg1->Create(master + "/v-fake", "", zk::CreateMode::kEphemeral)),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(code(pg2->Set(node1, "{}")), StatusCode::kPermissionDenied);
  EXPECT_TRUE(pg1->Set(node1, "{\"seq\":2}").ok());
  // An operator's credential touches control only.
  EXPECT_TRUE(ops->Set(control, "{\"format\":1,\"paused\":true}").ok());
  EXPECT_EQ(code(ops->Set(master, "{}")), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(ops->Set(node1, "{}")), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(ops->Create(root + "/clusters/main/history/h-", "",
                             zk::CreateMode::kPersistentSequential)),
            StatusCode::kPermissionDenied);
  // Anyone reads; an anonymous client writes nothing.
  EXPECT_TRUE(anon->Get(master).ok());
  EXPECT_TRUE(anon->Get(node1).ok());
  EXPECT_TRUE(anon->Get(control).ok());
  EXPECT_EQ(code(anon->Set(master, "{}")), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(anon->Set(control, "{}")), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(anon->Create(root + "/clusters/main/nodes/x", "", zk::CreateMode::kEphemeral)),
            StatusCode::kPermissionDenied);
  // The ACLs as ZooKeeper stores them. Only a client with ADMIN sees the digests; others get
  // "user:x" (ZooKeeper 3.8 redacts them).
  auto node_acl = pg1->GetAcl(node1);
  ASSERT_TRUE(node_acl.ok());
  EXPECT_EQ(zkacl::AclText(node_acl->acl),
            "digest:" + zkacl::DigestId("pg1", "pg1-pw") + ":cdrwa,world:anyone:r");
  auto redacted = anon->GetAcl(node1);
  ASSERT_TRUE(redacted.ok());
  EXPECT_EQ(zkacl::AclText(redacted->acl), "digest:pg1:x:cdrwa,world:anyone:r");
  for (auto* s : {orch.get(), pg1.get(), pg2.get(), ops.get(), anon.get()}) s->Close();
}

TEST_F(ZkAclLabTest, DaemonsRefuseAWorldWritableTreeWhenAuthIsOn) {
  const std::string root = "/open";
  auto anon = Session(std::nullopt);
  ASSERT_TRUE(anon);
  ASSERT_TRUE(zk::EnsurePath(*anon, root + "/clusters/main/nodes").ok());
  anon->Close();

  const RunResult refused =
      RunPgherald({"poller", "--config", PollerConfig(root)}, dir_ + "/p.log");
  EXPECT_EQ(refused.exit_code, 3) << refused.output;  // refused at start (cli::kExitStartFailed)
  EXPECT_THAT(refused.output, AllOf(HasSubstr("znode /open "), HasSubstr("world-writable"),
                                    HasSubstr("pgherald zk-init"), Not(HasSubstr("pg1-pw"))));

  // After zk-init migrates the tree the same poller gets past the check (it then keeps trying
  // its unreachable PostgreSQL, so it is still running at the deadline).
  const RunResult init =
      RunPgherald({"zk-init", "--config", ZkInitConfig(root)}, dir_ + "/init.log");
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_THAT(init.output, HasSubstr("set acl /open from world:anyone:cdrwa to "));
  const RunResult runs = RunPgherald({"poller", "--config", PollerConfig(root)}, dir_ + "/p2.log",
                                     std::chrono::seconds(3));
  EXPECT_THAT(runs.output, Not(HasSubstr("world-writable")));
  EXPECT_NE(runs.exit_code, 3) << runs.output;
}

// The orchestrator and the watch refuse the same way (and name the znode).
TEST_F(ZkAclLabTest, OrchestratorAndWatchRefuseAWorldWritableTree) {
  const std::string root = "/open2";
  auto anon = Session(std::nullopt);
  ASSERT_TRUE(anon);
  ASSERT_TRUE(zk::EnsurePath(*anon, root + "/clusters/main/master").ok());
  anon->Close();
  const std::string auth = WriteFile(dir_ + "/orch.auth", "orch:orch-pw\n");
  const std::string zk_section = "zookeeper:\n  connect: \"" + Connect() + "\"\n  root: " + root +
                                 "\n  auth_file: " + auth + "\n";
  const std::string orch = WriteFile(
      dir_ + "/orch.yaml",
      zk_section + "orchestrator:\n  id: orch-a\nclusters:\n  - name: main\n    nodes: [{name: "
                   "node1, host: 127.0.0.1, port: 1}]\n    postgres: {user: nobody}\n");
  const RunResult o = RunPgherald({"orchestrator", "--config", orch}, dir_ + "/o.log");
  EXPECT_EQ(o.exit_code, 3) << o.output;
  EXPECT_THAT(o.output, AllOf(HasSubstr("pgherald orchestrator: zookeeper.auth is configured"),
                              HasSubstr("znode /open2 "), HasSubstr("pgherald zk-init")));

  const std::string watch = WriteFile(
      dir_ + "/watch.yaml", zk_section + "watch:\n  clusters:\n    main:\n      sinks:\n        - "
                                         "type: file\n          path: " +
                                dir_ + "/route.json\n");
  const RunResult w = RunPgherald({"watch", "--config", watch}, dir_ + "/w.log");
  EXPECT_EQ(w.exit_code, 3) << w.output;
  EXPECT_THAT(w.output, AllOf(HasSubstr("pgherald watch: zookeeper.auth is configured"),
                              HasSubstr("world-writable")));
}

TEST_F(ZkAclLabTest, TlsKeyIsRefusedAtLoad) {
  const RunResult r = RunPgherald(
      {"poller", "--config", PollerConfig("/tls", "  tls:\n    ca_file: /etc/ca.pem\n")},
      dir_ + "/tls.log");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, AllOf(HasSubstr("zookeeper.tls"), HasSubstr("stunnel")));
}

}  // namespace
}  // namespace pgherald
