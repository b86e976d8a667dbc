// The orchestrator against hostile input on the real lab (ZooKeeper ensemble, the real
// `pgherald orchestrator` from $PGHERALD_BIN, configured with a password):
//   - a fake PostgreSQL server published as a learned node through an ephemeral nodes/<n> znode is
//     probed but never receives the password (it asks for it in cleartext, which libpq 15 would
//     answer);
//   - a node published through a persistent nodes/<n> znode is never probed at all;
//   - 16 idle TCP connections to the HTTP server do not stop /health from answering.
// One lab and one orchestrator for the whole suite; the tests run in order.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <thread>

#include "tests/integration/orchestrator_lab_util.h"

namespace pgherald::orchestrator_lab {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kRoot[] = "/pgherald-sec";
constexpr char kPassword[] = "orch-secret-Xq7v9";

class LabEnvironment : public ::testing::Environment {
 public:
  static lab::Lab* lab() { return lab_.get(); }
  void SetUp() override {
    lab::LabOptions options;
    options.zk_ensemble = true;
    auto lab = lab::Lab::Up(options);
    ASSERT_TRUE(lab.ok()) << lab.status().ToString();  // a missing server fails, never skips
    lab_ = std::move(lab).value();
  }
  void TearDown() override { lab_.reset(); }

 private:
  static std::unique_ptr<lab::Lab> lab_;
};
std::unique_ptr<lab::Lab> LabEnvironment::lab_;
[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new LabEnvironment);

lab::Lab& TheLab() {
  lab::Lab* l = LabEnvironment::lab();
  if (l == nullptr) std::abort();
  return *l;
}

// A TCP listener on 127.0.0.1 that speaks just enough of the PostgreSQL protocol to ask for a
// cleartext password: it refuses SSL/GSS encryption ('N'), reads the startup packet, answers
// AuthenticationCleartextPassword (R, int32 8, int32 3) and records whether a PasswordMessage
// ('p') follows.
class FakePostgres {
 public:
  FakePostgres() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakePostgres() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int startups() const { return startups_.load(); }
  int password_messages() const { return passwords_.load(); }
  std::string received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  // Reads exactly n bytes within 2 s; false otherwise.
  bool ReadN(int fd, char* out, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return false;
      const ssize_t r = ::recv(fd, out + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
      std::lock_guard lock(mu_);
      received_.append(out + got - static_cast<std::size_t>(r), static_cast<std::size_t>(r));
    }
    return true;
  }
  static std::uint32_t Be32(const char* p) {
    return (static_cast<std::uint32_t>(static_cast<unsigned char>(p[0])) << 24) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(p[1])) << 16) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(p[2])) << 8) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(p[3]));
  }
  void Handle(int fd) {
    ++connections_;
    for (;;) {  // SSLRequest / GSSENCRequest first, then the startup packet
      char header[8];
      if (!ReadN(fd, header, 8)) return;
      const std::uint32_t len = Be32(header);
      const std::uint32_t code = Be32(header + 4);
      if (len == 8 && (code == 80877103 || code == 80877104)) {
        (void)!::send(fd, "N", 1, MSG_NOSIGNAL);
        continue;
      }
      if (len < 8 || len > 10000) return;
      std::string rest(len - 8, '\0');
      if (!ReadN(fd, rest.data(), rest.size())) return;
      break;
    }
    ++startups_;
    const char ask[] = {'R', 0, 0, 0, 8, 0, 0, 0, 3};  // AuthenticationCleartextPassword
    (void)!::send(fd, ask, sizeof ask, MSG_NOSIGNAL);
    char type = 0;
    if (!ReadN(fd, &type, 1)) return;  // libpq gave up: no password sent
    if (type == 'p') ++passwords_;
    char len[4];
    if (ReadN(fd, len, 4)) {
      std::string body(std::min<std::uint32_t>(Be32(len), 10000) - 4, '\0');
      (void)ReadN(fd, body.data(), body.size());
    }
  }
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      Handle(c);
      ::close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> startups_{0};
  std::atomic<int> passwords_{0};
  std::mutex mu_;
  std::string received_;
};

struct Shared {
  std::unique_ptr<OrchestratorProcess> orch;
  std::unique_ptr<zk::ZkClient> poller;  // owns the ephemeral nodes/ znodes
  int http_port = 0;
};
Shared& S() {
  static Shared* s = new Shared;
  return *s;
}

// The observation a poller would publish for `name` at 127.0.0.1:port.
std::string Observation(const std::string& name, int port) {
  model::NodeObservation o;
  o.node = name;
  o.host = "127.0.0.1";
  o.port = port;
  o.reachable = true;
  o.in_recovery = false;
  o.timeline = 1;
  o.system_identifier = "7000000000000000001";
  o.seq = 1;
  o.observed_at_ms = 1;
  return o.ToJson();
}

// GET path on the orchestrator's HTTP port: the whole response ("" on failure).
std::string HttpGet(const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(S().http_port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) resp.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return resp;
}

// The orchestrator's round counter (GET /health), -1 when unreadable.
long Rounds() {
  const std::string r = HttpGet("/health");
  std::smatch m;
  static const std::regex re("\"rounds\":([0-9]+)");
  return std::regex_search(r, m, re) ? std::stol(m[1]) : -1;
}

std::string NodesPath() { return std::string(kRoot) + "/clusters/main/nodes"; }

TEST(OrchestratorSecurityLab, OrchestratorStartsWithAPasswordAndHttp) {
  const std::string dir = TheLab().dir();
  const std::string pw_file = dir + "/sec-password";
  {
    std::ofstream pw(pw_file);
    pw << kPassword << "\n";
  }
  ::chmod(pw_file.c_str(), 0600);
  // The configured node is a closed port on 127.0.0.1: learned nodes on 127.0.0.1 pass the
  // default allowlist (the configured hosts), so only the password rule stands between a fake
  // server and the secret.
  const std::string yaml =
      "zookeeper:\n  connect: \"" + TheLab().zk_connect() + "\"\n  root: " + kRoot +
      "\n  session_timeout_ms: 4000\nlogging:\n  level: info\n"
      "orchestrator:\n  id: orch-sec\n  tick_ms: 200\n  probe_timeout_ms: 1500\n"
      "clusters:\n  - name: main\n    postgres:\n      user: pgherald\n      password_file: " +
      pw_file +
      "\n      connect_timeout_ms: 1000\n    nodes:\n      - {name: node1, host: 127.0.0.1, port: "
      "1}\n"
      "http:\n  address: 127.0.0.1\n  port: 0\n";
  const std::string config = dir + "/orch-sec.yaml";
  std::ofstream(config) << yaml;
  S().orch = OrchestratorProcess::Start(config, dir + "/orch-sec.log");
  ASSERT_NE(S().orch, nullptr) << "PGHERALD_BIN must name the pgherald program";
  ASSERT_TRUE(WaitUntil([] { return S().orch->LogContains("ownership_acquired"); }, seconds(20)))
      << S().orch->Log();
  const std::regex re("http_listening .*port=([0-9]+)");
  std::smatch m;
  const std::string log = S().orch->Log();
  ASSERT_TRUE(std::regex_search(log, m, re)) << log;
  S().http_port = std::stoi(m[1]);

  zk::ZkClientOptions o;
  o.connect = TheLab().zk_connect();
  o.session_timeout = milliseconds(10000);
  auto poller = zk::ZkClient::Connect(o);
  ASSERT_TRUE(poller.ok()) << poller.status().ToString();
  S().poller = std::move(*poller);
  ASSERT_TRUE(zk::EnsurePath(*S().poller, NodesPath()).ok());
}

TEST(OrchestratorSecurityLab, LearnedFakeServerNeverSeesThePassword) {
  ASSERT_NE(S().poller, nullptr);
  FakePostgres fake;
  ASSERT_GT(fake.port(), 0);
  ASSERT_TRUE(S().poller
                  ->Create(NodesPath() + "/fake1", Observation("fake1", fake.port()),
                           zk::CreateMode::kEphemeral)
                  .ok());
  // It is learned and probed: several startups over several rounds (each a fresh connection,
  // since libpq gives up on the password request).
  ASSERT_TRUE(WaitUntil([&] { return fake.startups() >= 3; }, seconds(20)))
      << "startups=" << fake.startups() << "\n"
      << S().orch->Log();
  EXPECT_EQ(fake.password_messages(), 0);
  EXPECT_EQ(fake.received().find(kPassword), std::string::npos);
  EXPECT_TRUE(S().orch->LogContains("node_learned cluster=main node=fake1"));
  EXPECT_TRUE(S().orch->LogContains("reason=learn_password_withheld"));
  EXPECT_FALSE(S().orch->LogContains(kPassword));
  ASSERT_TRUE(S().poller->Delete(NodesPath() + "/fake1", -1).ok());
}

TEST(OrchestratorSecurityLab, PersistentNodeZnodeIsNeverProbed) {
  ASSERT_NE(S().poller, nullptr);
  FakePostgres fake;
  ASSERT_GT(fake.port(), 0);
  ASSERT_TRUE(S().poller
                  ->Create(NodesPath() + "/fake2", Observation("fake2", fake.port()),
                           zk::CreateMode::kPersistent)
                  .ok());
  // The orchestrator has seen it (and refused it) ...
  ASSERT_TRUE(WaitUntil(
      [] {
        // Not even decoded as an observation: a persistent znode is nobody's heartbeat.
        return S().orch->LogContains("observation_not_ephemeral cluster=main path=" +
                                     NodesPath() + "/fake2") &&
               S().orch->LogContains("node_not_learned cluster=main node=fake2") &&
               S().orch->LogContains("reason=learn_not_ephemeral");
      },
      seconds(20)))
      << S().orch->Log();
  // ... and three more rounds later it still never connected (a learned node is probed in the
  // round that learns it).
  const long start = Rounds();
  ASSERT_GE(start, 0);
  ASSERT_TRUE(WaitUntil([&] { return Rounds() >= start + 3; }, seconds(20))) << S().orch->Log();
  EXPECT_EQ(fake.connections(), 0);
  ASSERT_TRUE(S().poller->Delete(NodesPath() + "/fake2", -1).ok());
}

TEST(OrchestratorSecurityLab, HealthAnswersWithSixteenIdleConnections) {
  ASSERT_GT(S().http_port, 0);
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(S().http_port));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (i % 2 == 1) (void)!::send(fd, "GET /hea", 8, MSG_NOSIGNAL);  // a head that never ends
    idle.push_back(fd);
  }
  // Poco's 4 workers used to hang here until their 60 s timeouts. Every request goes through a
  // 3 s client read timeout, well below the server's 5 s request timeout.
  for (const char* path : {"/health", "/metrics", "/api/clusters"}) {
    const std::string resp = HttpGet(path);
    EXPECT_EQ(resp.rfind("HTTP/1.1 ", 0), 0u) << path << ": " << resp;
  }
  for (int fd : idle) ::close(fd);
}

TEST(OrchestratorSecurityLab, Teardown) {
  S().poller.reset();
  if (S().orch) {
    EXPECT_EQ(S().orch->Stop(), 0) << S().orch->Log();
  }
  S().orch.reset();
}

}  // namespace
}  // namespace pgherald::orchestrator_lab
