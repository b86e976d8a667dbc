// The orchestrator's YAML configuration (orchestrator_config.h): a good file with every key, the
// defaults and derived ages, and each bad input named with file:line: key and the fix.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "orchestrator/orchestrator_config.h"

namespace pgherald::orchestrator {
namespace {

using std::chrono::milliseconds;

StatusOr<OrchestratorConfig> Parse(const std::string& yaml) {
  auto root = config::ConfigNode::LoadString(yaml, "orch.yaml");
  if (!root.ok()) return root.status();
  return ParseOrchestratorConfig(*root);
}

// The error message of a config that must fail.
std::string ErrorOf(const std::string& yaml) {
  auto c = Parse(yaml);
  EXPECT_FALSE(c.ok()) << "accepted:\n" << yaml;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << c.status().ToString();
  return c.status().message();
}

std::string TempFile(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/orch_config_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << content;
  ::chmod(path.c_str(), 0600);
  return path;
}

constexpr char kMinimal[] =
    "zookeeper: {connect: \"127.0.0.1:2181\"}\n"
    "orchestrator: {id: orch-a}\n"
    "clusters:\n"
    "  - name: main\n"
    "    postgres: {user: pgherald, password: pw}\n"
    "    nodes:\n"
    "      - {name: node1, host: 10.0.0.1}\n";

TEST(OrchestratorConfigTest, FullConfigIsReadWithEveryKey) {
  const std::string pw = TempFile("pw", "s3cret\n");
  const std::string token = TempFile("token", "0123456789abcdef0123\n");
  const std::string yaml =
      "zookeeper:\n"
      "  connect: \"zk1:2181,zk2:2181\"\n"
      "  root: /ph\n"
      "  session_timeout_ms: 20000\n"
      "logging: {level: debug, format: json}\n"
      "orchestrator:\n"
      "  id: orch-b.1\n"
      "  tick_ms: 250\n"
      "  confirmation_window_ms: 1500\n"
      "  strict: true\n"
      "  self_fence_deadline_ms: 12000\n"
      "  probe_timeout_ms: 700\n"
      "  dry_run: true\n"
      "  history_limit: 50\n"
      "  learn_nodes: false\n"
      "  file_publisher_dir: /var/lib/pgherald\n"
      "clusters:\n"
      "  - name: main\n"
      "    nodes:\n"
      "      - {name: node1, host: 10.0.0.1, port: 5433}\n"
      "      - {name: node2, host: 10.0.0.2}\n"
      "    postgres:\n"
      "      user: ph\n"
      "      dbname: phdb\n"
      "      password_file: " + pw + "\n"
      "      connect_timeout_ms: 800\n"
      "      statement_timeout_ms: 900\n"
      "      application_name: orch-test\n"
      "      options: {sslmode: require}\n"
      "  - name: other\n"
      "    nodes: []\n"
      "    postgres: {user: u2, password: p2}\n"
      "http:\n"
      "  address: 127.0.0.1\n"
      "  port: 8008\n"
      "  threads: 2\n"
      "  token_file: " + token + "\n";
  auto c = Parse(yaml);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->zookeeper.connect, "zk1:2181,zk2:2181");
  EXPECT_EQ(c->options.root, "/ph");
  EXPECT_EQ(c->options.id, "orch-b.1");
  EXPECT_EQ(c->options.tick, milliseconds(250));
  EXPECT_EQ(c->options.policy.confirmation_window, milliseconds(1500));
  EXPECT_TRUE(c->options.policy.strict_split_brain);
  EXPECT_EQ(c->options.policy.self_fence_deadline, milliseconds(12000));
  EXPECT_EQ(c->options.probe_timeout, milliseconds(700));
  EXPECT_TRUE(c->options.dry_run);
  EXPECT_EQ(c->options.history_limit, 50);
  EXPECT_FALSE(c->options.learn_nodes);
  EXPECT_EQ(c->file_publisher_dir.value_or(""), "/var/lib/pgherald");
  // Derived: probes older than max(3 s, 3 ticks), observations older than max(10 s, session).
  EXPECT_EQ(c->options.policy.probe_max_age, milliseconds(3000));
  EXPECT_EQ(c->options.policy.observation_max_age, milliseconds(20000));
  ASSERT_EQ(c->clusters.size(), 2u);
  const ClusterSpec& main = c->clusters[0];
  EXPECT_EQ(main.name, "main");
  ASSERT_EQ(main.nodes.size(), 2u);
  EXPECT_EQ(main.nodes[0].name, "node1");
  EXPECT_EQ(main.nodes[0].params.host, "10.0.0.1");
  EXPECT_EQ(main.nodes[0].params.port, 5433);
  EXPECT_EQ(main.nodes[1].params.port, 5432);  // default port
  EXPECT_EQ(main.nodes[0].params.user, "ph");
  EXPECT_EQ(main.nodes[0].params.dbname, "phdb");
  EXPECT_EQ(main.nodes[0].params.password, "s3cret");  // read from the file, newline dropped
  EXPECT_EQ(main.defaults.user, "ph");
  EXPECT_TRUE(c->clusters[1].nodes.empty());
  EXPECT_EQ(c->clusters[1].nodes.size(), 0u);
  EXPECT_EQ(c->clusters[1].defaults.dbname, "u2");  // dbname defaults to the user
  ASSERT_TRUE(c->http.has_value());
  EXPECT_EQ(c->http->port, 8008);
  EXPECT_EQ(c->http->threads, 2);
  EXPECT_EQ(c->http->token, "0123456789abcdef0123");
  std::remove(pw.c_str());
  std::remove(token.c_str());
}

TEST(OrchestratorConfigTest, DefaultsOfAMinimalConfig) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->options.root, "/pgherald");
  EXPECT_EQ(c->options.tick, milliseconds(1000));
  EXPECT_EQ(c->options.policy.confirmation_window, milliseconds(5000));
  EXPECT_FALSE(c->options.policy.strict_split_brain);
  EXPECT_EQ(c->options.probe_timeout, milliseconds(2000));
  EXPECT_FALSE(c->options.dry_run);
  EXPECT_EQ(c->options.history_limit, 1000);
  EXPECT_TRUE(c->options.learn_nodes);
  EXPECT_FALSE(c->file_publisher_dir.has_value());
  EXPECT_FALSE(c->http.has_value());
  EXPECT_EQ(c->clusters[0].nodes[0].params.connect_timeout, milliseconds(1000));
}

struct BadCase {
  const char* what;
  std::string yaml;
  std::string want;  // must appear in the message: file:line: key: what (and the fix)
};

class OrchestratorConfigBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(OrchestratorConfigBadInput, NamesFileLineKeyAndTheFix) {
  const std::string message = ErrorOf(GetParam().yaml);
  EXPECT_NE(message.find(GetParam().want), std::string::npos)
      << GetParam().what << ": message was\n" << message << "\nwanted: " << GetParam().want;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << "a password in an error: " << message;
}

const std::string kZk = "zookeeper: {connect: \"127.0.0.1:2181\"}\n";
const std::string kCluster =
    "clusters:\n"
    "  - name: main\n"
    "    postgres: {user: pgherald, password: s3cret}\n"
    "    nodes:\n"
    "      - {name: node1, host: 10.0.0.1}\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, OrchestratorConfigBadInput,
    ::testing::Values(
        BadCase{"id missing", kZk + "orchestrator: {tick_ms: 100}\n" + kCluster,
                "orch.yaml:2: orchestrator.id: missing required value"},
        BadCase{"id with a slash", kZk + "orchestrator: {id: a/b}\n" + kCluster,
                "orch.yaml:2: orchestrator.id: must be 1+ characters of [A-Za-z0-9_.-] (it becomes a znode name)"},
        BadCase{"tick too small", kZk + "orchestrator:\n  id: a\n  tick_ms: 5\n" + kCluster,
                "orch.yaml:4: orchestrator.tick_ms:"},
        BadCase{"tick not a number", kZk + "orchestrator:\n  id: a\n  tick_ms: fast\n" + kCluster,
                "orch.yaml:4: orchestrator.tick_ms:"},
        BadCase{"strict not a bool", kZk + "orchestrator:\n  id: a\n  strict: maybe\n" + kCluster,
                "orch.yaml:4: orchestrator.strict:"},
        BadCase{"history_limit zero", kZk + "orchestrator:\n  id: a\n  history_limit: 0\n" + kCluster,
                "orch.yaml:4: orchestrator.history_limit:"},
        BadCase{"unknown key (a typo)", kZk + "orchestrator:\n  id: a\n  tick: 100\n" + kCluster,
                "orchestrator.tick"},
        BadCase{"clusters missing", kZk + "orchestrator: {id: a}\n",
                "clusters: missing required value (expected a list of clusters, each with name, nodes and postgres)"},
        BadCase{"cluster name missing",
                kZk + "orchestrator: {id: a}\nclusters:\n  - postgres: {user: u, password: s3cret}\n",
                "orch.yaml:4: clusters[0].name: missing required value"},
        BadCase{"duplicate cluster",
                kZk + "orchestrator: {id: a}\nclusters:\n"
                      "  - {name: main, postgres: {user: u, password: s3cret}}\n"
                      "  - {name: main, postgres: {user: u, password: s3cret}}\n",
                "orch.yaml:5: clusters[1].name: duplicate cluster name \"main\""},
        BadCase{"duplicate node",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret}\n    nodes:\n"
                      "      - {name: n1, host: h1}\n      - {name: n1, host: h2}\n",
                "orch.yaml:8: clusters[0].nodes[1].name: duplicate node name \"n1\" in this cluster"},
        BadCase{"node host missing",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret}\n    nodes:\n      - {name: n1}\n",
                "orch.yaml:7: clusters[0].nodes[0].host: missing required value"},
        BadCase{"port out of range",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret}\n    nodes:\n"
                      "      - {name: n1, host: h, port: 70000}\n",
                "orch.yaml:7: clusters[0].nodes[0].port:"},
        BadCase{"postgres user missing",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n    postgres: {dbname: x}\n",
                "orch.yaml:5: clusters[0].postgres.user: missing required value"},
        BadCase{"password and password_file",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret, password_file: /x}\n",
                "clusters[0].postgres.password_file: set either password or password_file, not both"},
        BadCase{"password file unreadable",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password_file: /nonexistent/pgherald-pw}\n",
                "orch.yaml:5: clusters[0].postgres.password_file: cannot read postgres.password_file "
                "/nonexistent/pgherald-pw: No such file or directory (fix: put the password on the "
                "file's first line"},
        BadCase{"http without port", kZk + "orchestrator: {id: a}\n" + kCluster + "http: {address: 127.0.0.1}\n",
                "http.port: missing required value"},
        BadCase{"http token file missing",
                kZk + "orchestrator: {id: a}\n" + kCluster + "http: {port: 8008, token_file: /nonexistent/tok}\n",
                "http.token_file: cannot read \"/nonexistent/tok\" (create it with the bearer token on one line, mode 0600)"},
        BadCase{"zookeeper connect missing", "orchestrator: {id: a}\n" + kCluster,
                "zookeeper.connect"}),
    [](const ::testing::TestParamInfo<BadCase>& param_info) {
      std::string name;
      for (char ch : std::string(param_info.param.what)) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return name;
    });

TEST(OrchestratorConfigTest, EveryKeyErrorIsReportedAtOnce) {
  const std::string message = ErrorOf(kZk +
                                      "orchestrator:\n  id: a/b\n  tick_ms: 1\n"
                                      "clusters:\n  - name: main\n    postgres: {dbname: x}\n");
  EXPECT_NE(message.find("orchestrator.id"), std::string::npos) << message;
  EXPECT_NE(message.find("orchestrator.tick_ms"), std::string::npos) << message;
  EXPECT_NE(message.find("clusters[0].postgres.user"), std::string::npos) << message;
}

TEST(OrchestratorConfigTest, MissingFileIsNamed) {
  auto c = LoadOrchestratorConfig("/nonexistent/orch.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/orch.yaml"), std::string::npos) << c.status().ToString();
}

}  // namespace
}  // namespace pgherald::orchestrator
