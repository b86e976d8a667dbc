// The orchestrator's YAML configuration (orchestrator_config.h): a good file with every key, the
// defaults and derived ages, and each bad input named with file:line: key and the fix.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/bounded_file.h"
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

// verify_interval_ms defaults to tick_ms (a file without it verifies every cluster once per tick,
// as before), voucher_reaffirm_ms to verify_interval_ms; each may be set on its own.
TEST(OrchestratorConfigTest, VerifyIntervalDefaultsToTheTickAndReaffirmToTheInterval) {
  const std::string cluster =
      "clusters:\n  - name: main\n    postgres: {user: pgherald, password: pw}\n"
      "    nodes:\n      - {name: node1, host: 10.0.0.1}\n";
  const std::string zk = "zookeeper: {connect: \"127.0.0.1:2181\"}\n";
  auto tick_only = Parse(zk + "orchestrator: {id: a, tick_ms: 250}\n" + cluster);
  ASSERT_TRUE(tick_only.ok()) << tick_only.status().ToString();
  EXPECT_EQ(tick_only->options.tick, milliseconds(250));
  EXPECT_EQ(tick_only->options.verify_interval, milliseconds(250));
  EXPECT_EQ(tick_only->options.voucher_reaffirm, milliseconds(250));

  auto cadence = Parse(zk + "orchestrator: {id: a, verify_interval_ms: 5000}\n" + cluster);
  ASSERT_TRUE(cadence.ok()) << cadence.status().ToString();
  EXPECT_EQ(cadence->options.tick, milliseconds(1000));
  EXPECT_EQ(cadence->options.verify_interval, milliseconds(5000));
  EXPECT_EQ(cadence->options.voucher_reaffirm, milliseconds(5000));
  // Probes stay evidence for a few verifications.
  EXPECT_EQ(cadence->options.policy.probe_max_age, milliseconds(15000));

  auto all = Parse(zk +
                   "orchestrator: {id: a, tick_ms: 100, verify_interval_ms: 2000, "
                   "voucher_reaffirm_ms: 500}\n" +
                   cluster);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->options.tick, milliseconds(100));
  EXPECT_EQ(all->options.verify_interval, milliseconds(2000));
  EXPECT_EQ(all->options.voucher_reaffirm, milliseconds(500));

  auto bad = Parse(zk + "orchestrator: {id: a, verify_interval_ms: 5}\n" + cluster);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("orchestrator.verify_interval_ms"), std::string::npos)
      << bad.status().message();
}

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
      "  verify_interval_ms: 750\n"
      "  confirmation_window_ms: 1500\n"
      "  strict: true\n"
      "  self_fence_deadline_ms: 12000\n"
      "  probe_timeout_ms: 700\n"
      "  dry_run: true\n"
      "  history_limit: 50\n"
      "  learn_nodes: false\n"
      "  batch_max: 16\n"
      "  successor_connections: false\n"
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
  EXPECT_EQ(c->options.verify_interval, milliseconds(750));
  EXPECT_EQ(c->options.policy.confirmation_window, milliseconds(1500));
  EXPECT_TRUE(c->options.policy.strict_split_brain);
  EXPECT_EQ(c->options.policy.self_fence_deadline, milliseconds(12000));
  EXPECT_EQ(c->options.probe_timeout, milliseconds(700));
  EXPECT_TRUE(c->options.dry_run);
  EXPECT_EQ(c->options.history_limit, 50);
  EXPECT_FALSE(c->options.learn_nodes);
  EXPECT_EQ(c->options.batch_max, 16);
  EXPECT_FALSE(c->options.successor_connections);
  EXPECT_EQ(c->file_publisher_dir.value_or(""), "/var/lib/pgherald");
  // Derived: probes older than max(3 s, 3 verifications), observations older than max(10 s,
  // session).
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
  EXPECT_EQ(c->options.batch_max, 64);
  EXPECT_TRUE(c->options.successor_connections);
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
                "orch.yaml:2: orchestrator.id: must be 1-64 characters of [A-Za-z0-9_.-], not '.' or '..' (it becomes a znode name)"},
        BadCase{"tick too small", kZk + "orchestrator:\n  id: a\n  tick_ms: 5\n" + kCluster,
                "orch.yaml:4: orchestrator.tick_ms:"},
        BadCase{"batch_max zero", kZk + "orchestrator:\n  id: a\n  batch_max: 0\n" + kCluster,
                "orch.yaml:4: orchestrator.batch_max: expected an integer between 1 and 10000"},
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
                "\"/nonexistent/pgherald-pw\": No such file or directory (fix: put the password on the "
                "file's first line"},
        BadCase{"http without port", kZk + "orchestrator: {id: a}\n" + kCluster + "http: {address: 127.0.0.1}\n",
                "http.port: missing required value"},
        BadCase{"http token file missing",
                kZk + "orchestrator: {id: a}\n" + kCluster + "http: {port: 8008, token_file: /nonexistent/tok}\n",
                "cannot read http.token_file \"/nonexistent/tok\": No such file or directory (fix: a regular file with the bearer token on one line, mode 0600)"},
        // Keywords pgherald sets itself, redirecting ones, and unknown ones fail at load, not at
        // every connect.
        BadCase{"options sets host",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret, options: {host: evil.example}}\n",
                "orch.yaml:5: clusters[0].postgres.options.host: libpq keyword \"host\" is set by "
                "pgherald itself"},
        BadCase{"options sets passfile",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, options: {passfile: /tmp/p}}\n",
                "clusters[0].postgres.options.passfile: libpq keyword \"passfile\" is set by pgherald"},
        BadCase{"options sets service",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret, options: {service: prod}}\n",
                "clusters[0].postgres.options.service: libpq keyword \"service\" is not allowed in "
                "options: it would redirect the connection"},
        BadCase{"options sets an unknown keyword",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret, options: {sslmdoe: verify-full}}\n",
                "clusters[0].postgres.options.sslmdoe: libpq keyword \"sslmdoe\" is unknown to this libpq"},
        BadCase{"node host with a space",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password: s3cret}\n    nodes:\n"
                      "      - {name: n1, host: \"h1 sslmode=disable\"}\n",
                "orch.yaml:7: clusters[0].nodes[0].host: must be an IPv4 or IPv6 address or an RFC 1123"},
        BadCase{"learn_nodes network malformed",
                kZk + "orchestrator: {id: a}\n" + kCluster + "    learn_nodes: {networks: [10.1.0.0/33]}\n",
                "clusters[0].learn_nodes.networks: \"10.1.0.0/33\": the prefix length must be 0..32"},
        BadCase{"learn_nodes network a host name",
                kZk + "orchestrator: {id: a}\n" + kCluster + "    learn_nodes: {networks: [db.example]}\n",
                "clusters[0].learn_nodes.networks: \"db.example\" is not a network"},
        BadCase{"learn_nodes name pattern",
                kZk + "orchestrator: {id: a}\n" + kCluster + "    learn_nodes: {names: [\"db/*\"]}\n",
                "clusters[0].learn_nodes.names: \"db/*\" is not a name pattern"},
        BadCase{"learn_nodes max negative",
                kZk + "orchestrator: {id: a}\n" + kCluster + "    learn_nodes: {max: -1}\n",
                "clusters[0].learn_nodes.max:"},
        BadCase{"http token file is a device",
                kZk + "orchestrator: {id: a}\n" + kCluster + "http: {port: 8008, token_file: /dev/zero}\n",
                "http.token_file \"/dev/zero\" is not a regular file"},
        BadCase{"password file is a device",
                kZk + "orchestrator: {id: a}\nclusters:\n  - name: main\n"
                      "    postgres: {user: u, password_file: /dev/zero}\n",
                "clusters[0].postgres.password_file: postgres.password_file \"/dev/zero\" is not a "
                "regular file"},
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

TEST(OrchestratorConfigTest, LearnNodesPolicyIsReadPerCluster) {
  auto c = Parse(std::string(kMinimal) +
                 "    learn_nodes: {networks: [10.1.0.0/16, \"fd00::/8\"], names: [\"db-*\"], max: 3}\n"
                 "  - name: other\n"
                 "    postgres: {user: u, password: pw}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const LearnPolicy& p = c->clusters[0].learn;
  EXPECT_TRUE(p.enabled);
  ASSERT_EQ(p.networks.size(), 2u);
  EXPECT_TRUE(p.networks[0].Contains("10.1.200.3"));
  EXPECT_FALSE(p.networks[0].Contains("10.2.0.1"));
  EXPECT_TRUE(p.networks[1].Contains("fd12::1"));
  EXPECT_EQ(p.names, std::vector<std::string>{"db-*"});
  EXPECT_EQ(p.max, 3);
  // Without the map: on, configured hosts only, at most 8.
  const LearnPolicy& d = c->clusters[1].learn;
  EXPECT_TRUE(d.enabled);
  EXPECT_TRUE(d.networks.empty());
  EXPECT_TRUE(d.names.empty());
  EXPECT_EQ(d.max, 8);
}

TEST(OrchestratorConfigTest, AllowedOptionsPassThrough) {
  auto c = Parse(std::string(kMinimal).replace(
      std::string(kMinimal).find("password: pw}"), 13,
      "password: pw, options: {sslmode: verify-full, channel_binding: require, "
      "sslrootcert: /etc/ca.pem}}"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->clusters[0].defaults.options.at("sslmode"), "verify-full");
  EXPECT_TRUE(pg::AuthenticatesServer(c->clusters[0].defaults));
}

TEST(OrchestratorConfigTest, OversizedTokenFileIsRefused) {
  const std::string token = TempFile("bigtoken", std::string(kMaxSecretFileBytes + 1, 'x'));
  const std::string message =
      ErrorOf(std::string(kMinimal) + "http: {port: 8008, token_file: " + token + "}\n");
  EXPECT_NE(message.find("over the limit of 65536"), std::string::npos) << message;
  std::remove(token.c_str());
}

TEST(LearnPolicyTest, NetworksMatchAddressesOfTheirFamilyOnly) {
  auto v4 = Network::Parse("10.1.0.0/16");
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->Contains("10.1.0.0"));
  EXPECT_TRUE(v4->Contains("10.1.255.255"));
  EXPECT_FALSE(v4->Contains("10.2.0.0"));
  EXPECT_FALSE(v4->Contains("::ffff:10.1.0.1"));
  EXPECT_FALSE(v4->Contains("db.example"));
  auto odd = Network::Parse("192.168.1.128/25");
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->Contains("192.168.1.200"));
  EXPECT_FALSE(odd->Contains("192.168.1.127"));
  auto one = Network::Parse("127.0.0.1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prefix, 32);
  EXPECT_FALSE(one->Contains("127.0.0.2"));
  auto all = Network::Parse("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->Contains("203.0.113.9"));
  auto v6 = Network::Parse("fd00::/8");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Contains("fd12:3456::1"));
  EXPECT_FALSE(v6->Contains("fe80::1"));
  EXPECT_FALSE(v6->Contains("10.0.0.1"));
  for (const char* bad : {"", "10.1.0.0/", "10.1.0.0/x", "10.1.0.0/33", "fd00::/129", "db/8", "10.1/16"}) {
    EXPECT_FALSE(Network::Parse(bad).ok()) << bad;
  }
}

TEST(LearnPolicyTest, ObservationsReadAreTheConfiguredOnesThenABoundedNameOrder) {
  std::vector<std::string> children = {"node2", "zz", "node1", "b", "a", "node1"};
  ObservationSelection all = SelectObservations(children, {"node1", "node2", "gone"}, 8);
  EXPECT_EQ(all.names, (std::vector<std::string>{"a", "b", "node1", "node2", "zz"}));
  EXPECT_EQ(all.left_out, 0u);
  EXPECT_EQ(all.first_left_out, "");

  children.clear();
  for (int i = 0; i < 40; ++i) children.push_back("x" + std::to_string(100 + i));
  children.push_back("zz-configured");
  ObservationSelection some = SelectObservations(children, {"zz-configured"}, 2);
  ASSERT_EQ(some.names.size(), 2u + kObservationsBeyondLearned + 1);
  EXPECT_EQ(some.names.front(), "x100");
  EXPECT_EQ(some.names.back(), "zz-configured");  // sorts last, read all the same
  EXPECT_EQ(some.left_out, 40u - 2u - kObservationsBeyondLearned);
  EXPECT_EQ(some.first_left_out, "x" + std::to_string(100 + 2 + kObservationsBeyondLearned));

  EXPECT_EQ(SelectObservations(children, {}, -5).names.size(),
            static_cast<std::size_t>(kObservationsBeyondLearned));
}

TEST(LearnPolicyTest, GlobsAndReasonCodes) {
  EXPECT_TRUE(GlobMatch("db-*", "db-1"));
  EXPECT_TRUE(GlobMatch("db-*", "db-"));
  EXPECT_TRUE(GlobMatch("*-east-*", "db-east-2"));
  EXPECT_FALSE(GlobMatch("db-*", "xdb-1"));
  EXPECT_FALSE(GlobMatch("db", "db1"));
  EXPECT_TRUE(GlobMatch("*", "anything"));
  LearnPolicy p;
  const std::vector<std::string> hosts = {"10.0.0.1", "Db1.Example"};
  auto check = [&](std::string name, std::string host, std::int64_t port, bool eph) {
    return CheckLearnable(p, hosts, LearnCandidate{std::move(name), std::move(host), port, eph});
  };
  EXPECT_EQ(check("n3", "10.0.0.1", 5433, true), "");
  EXPECT_EQ(check("n3", "db1.example", 5433, true), "");  // host names compare case-blind
  EXPECT_EQ(check("n3", "10.0.0.1", 5433, false), kLearnNotEphemeral);
  EXPECT_EQ(check("a/b", "10.0.0.1", 5433, true), kLearnInvalidName);
  EXPECT_EQ(check("n3", "10.0.0.1 sslmode=disable", 5433, true), kLearnInvalidHost);
  EXPECT_EQ(check("n3", "10.0.0.1", 0, true), kLearnInvalidPort);
  EXPECT_EQ(check("n3", "10.0.0.9", 5432, true), kLearnHostNotAllowed);
  p.networks = {*Network::Parse("10.0.0.0/24")};
  p.names = {"db-*"};
  EXPECT_EQ(check("db-3", "10.0.0.9", 5432, true), "");
  EXPECT_EQ(check("db-3", "db1.example", 5432, true), kLearnHostNotAllowed);  // names never match
  EXPECT_EQ(check("n3", "10.0.0.9", 5432, true), kLearnNameNotAllowed);
}

TEST(OrchestratorConfigTest, MissingFileIsNamed) {
  auto c = LoadOrchestratorConfig("/nonexistent/orch.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/orch.yaml"), std::string::npos) << c.status().ToString();
}

}  // namespace
}  // namespace pgherald::orchestrator
