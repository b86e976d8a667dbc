// The sinks of `pgherald watch` without the real programs: template rendering, the pgbouncer
// databases file, the HAProxy runtime command sequence against a fake admin socket (a unix socket
// server run by the test), the HAProxy config swap with a stand-in `haproxy -c`, the exec sink's
// environment and timeout, the file sink, and configuration errors.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "clients/watch/atomic_file.h"
#include "clients/watch/pgbouncer_sink.h"
#include "clients/watch/simple_sinks.h"
#include "clients/watch/template.h"
#include "clients/watch/watch_config.h"
#include "haproxy/haproxy_sink.h"

namespace pgherald::watch {
namespace {

using client::MasterStatus;
using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/pgherald-watch-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

RouteTarget Route(const std::string& node, int port, std::uint64_t epoch = 3) {
  RouteTarget t;
  t.action = RouteTarget::Action::kRoute;
  t.status = MasterStatus::kVouched;
  t.master.status = MasterStatus::kVouched;
  t.master.cluster = "main";
  t.master.node = node;
  t.master.host = "127.0.0.1";
  t.master.port = port;
  t.master.epoch = epoch;
  t.master.timeline = 2;
  t.reason = "vouched";
  t.seq = epoch;
  return t;
}

// ---- templates -------------------------------------------------------------------------------

TEST(TemplateTest, RendersVariablesWithOrWithoutSpaces) {
  auto out = RenderTemplate("server s {{host}}:{{ port }} # {{node}}\n", {{"host", "10.0.0.2"},
                                                                         {"port", "5432"},
                                                                         {"node", "pg2"}},
                            "t");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, "server s 10.0.0.2:5432 # pg2\n");
}

TEST(TemplateTest, MissingVariableIsNamedWithItsLine) {
  auto out = RenderTemplate("a\nb {{host}}\nc {{hots}}\n", {{"host", "h"}, {"port", "1"}},
                            "haproxy.cfg.tmpl");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(),
            "haproxy.cfg.tmpl:3: unknown variable \"hots\" (known: host, port)");
}

TEST(TemplateTest, UnclosedAndBadNamesAreAllReported) {
  auto out = RenderTemplate("x {{host\ny {{a b}}\n", {{"host", "h"}}, "t");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("t:1: \"{{\" without a closing \"}}\""), std::string::npos);
  EXPECT_NE(out.status().message().find("t:2: bad variable name \"a b\""), std::string::npos);
}

TEST(TemplateTest, UnreadableFileIsNamed) {
  auto out = RenderTemplateFile("/nonexistent/x.tmpl", {});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("/nonexistent/x.tmpl"), std::string::npos);
}

// ---- pgbouncer databases file ----------------------------------------------------------------

TEST(PgbouncerFileTest, DefaultEntryRoutesEveryDatabase) {
  PgbouncerSinkConfig c;
  auto out = RenderDatabasesFile(c, Route("node2", 5002, 7));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out,
            "; Written by pgherald watch (cluster main, master node2, epoch 7). Do not edit: it "
            "is replaced.\n* = host=127.0.0.1 port=5002\n");
}

TEST(PgbouncerFileTest, NamedEntriesAndErrors) {
  PgbouncerSinkConfig c;
  c.entries = {{"app", "host={{host}} port={{port}} dbname=app"},
               {"bad", "host={{hostname}}"}};
  auto out = RenderDatabasesFile(c, Route("node2", 5002));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("entries.bad:1: unknown variable \"hostname\""),
            std::string::npos);
  c.entries.erase("bad");
  out = RenderDatabasesFile(c, Route("node2", 5002));
  ASSERT_TRUE(out.ok());
  EXPECT_NE(out->find("\napp = host=127.0.0.1 port=5002 dbname=app\n"), std::string::npos);
}

// ---- HAProxy runtime API against a fake admin socket -----------------------------------------

// Accepts connections on a unix socket, reads one command line each, records it and answers with
// `respond(command)`, then closes the connection (HAProxy's non-interactive mode).
class FakeHaproxySocket {
 public:
  FakeHaproxySocket(std::string path, std::function<std::string(const std::string&)> respond)
      : path_(std::move(path)), respond_(std::move(respond)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    ::unlink(path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0) {
      ADD_FAILURE() << "cannot listen on " << path_;
    }
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeHaproxySocket() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::vector<std::string> commands() {
    std::lock_guard lock(mu_);
    return commands_;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    commands_.clear();
  }

 private:
  void Serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string line;
      char ch;
      while (::read(c, &ch, 1) == 1 && ch != '\n') line += ch;
      std::string answer;
      {
        std::lock_guard lock(mu_);
        commands_.push_back(line);
        answer = respond_(line);
      }
      (void)!::write(c, answer.data(), answer.size());
      ::close(c);
    }
  }
  std::string path_;
  std::function<std::string(const std::string&)> respond_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> commands_;
  std::thread thread_;
};

// Answers like HAProxy 2.6: an addr change reports what changed; the rest answer nothing.
std::string HaproxyLike(const std::string& command) {
  if (command.rfind("set server pg/primary addr", 0) == 0) {
    return "IP changed from '127.0.0.1' to '127.0.0.1', port changed from '5001' to '5002' by "
           "'stats socket command'\n\n";
  }
  if (command == "show proc") {  // 2.6's master CLI: the master, a current and an old worker
    return "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
           "1234            master          1               0d00h01m23s     2.6.12\n"
           "# workers\n"
           "1240            worker          0               0d00h00m10s     2.6.12\n"
           "# old workers\n"
           "1238            worker          [was: 0]        0d00h01m20s     2.6.12\n";
  }
  if (command.rfind("set server pg/primary", 0) == 0 ||
      command == "shutdown sessions server pg/primary" || command == "reload" ||
      command.rfind("@!", 0) == 0) {
    return "\n";
  }
  return "No such server.\n\n";
}

haproxy::HaproxySinkConfig RuntimeOnly(const std::string& socket) {
  haproxy::HaproxySinkConfig c;
  c.admin_socket = socket;
  c.server = {"pg", "primary"};
  return c;
}

TEST(HaproxyRuntimeTest, RouteSendsAddrReadyHealthUpThenCutsOldSessions) {
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", HaproxyLike);
  haproxy::HaproxySink sink(RuntimeOnly(dir / "admin.sock"));
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  EXPECT_EQ(fake.commands(), (std::vector<std::string>{
                                 "set server pg/primary addr 127.0.0.1 port 5002",
                                 "set server pg/primary state ready",
                                 "set server pg/primary health up",
                                 "shutdown sessions server pg/primary",
                             }));
  // The same route again (e.g. an epoch bump) sends nothing: sessions on the master stay.
  fake.Clear();
  ASSERT_TRUE(sink.Apply(Route("node2", 5002, 4)).ok());
  EXPECT_TRUE(fake.commands().empty());
}

TEST(HaproxyRuntimeTest, UnchangedAddressDoesNotCutSessions) {
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", [](const std::string& c) {
    if (c.find(" addr ") != std::string::npos) return std::string("no need to change the addr\n");
    return std::string("\n");
  });
  haproxy::HaproxySink sink(RuntimeOnly(dir / "admin.sock"));
  ASSERT_TRUE(sink.Apply(Route("node1", 5001)).ok());
  for (const auto& c : fake.commands()) EXPECT_EQ(c.find("shutdown"), std::string::npos) << c;
}

TEST(HaproxyRuntimeTest, BlockPutsServerInMaintAndCutsSessions) {
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", HaproxyLike);
  haproxy::HaproxySink sink(RuntimeOnly(dir / "admin.sock"));
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  fake.Clear();
  RouteTarget block = Route("node2", 5002, 4);
  block.action = RouteTarget::Action::kBlock;
  ASSERT_TRUE(sink.Apply(block).ok());
  EXPECT_EQ(fake.commands(), (std::vector<std::string>{"set server pg/primary state maint",
                                                       "shutdown sessions server pg/primary"}));
}

TEST(HaproxyRuntimeTest, RefusalIsReportedWithHaproxysAnswer) {
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", HaproxyLike);
  auto config = RuntimeOnly(dir / "admin.sock");
  config.server = {"pg", "nosuch"};
  haproxy::HaproxySink sink(config);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("set server pg/nosuch addr 127.0.0.1 port 5002"), std::string::npos);
  EXPECT_NE(s.message().find("No such server."), std::string::npos);
}

TEST(HaproxyRuntimeTest, MissingSocketIsNamed) {
  haproxy::HaproxySink sink(RuntimeOnly("/nonexistent/admin.sock"));
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("/nonexistent/admin.sock"), std::string::npos);
}

// ---- HAProxy config swap, with a stand-in for `haproxy -c` -----------------------------------

class HaproxyConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = std::make_unique<FakeHaproxySocket>(dir_ / "admin.sock", HaproxyLike);
    master_ = std::make_unique<FakeHaproxySocket>(dir_ / "master.sock", HaproxyLike);
    // A checker that rejects any config containing "bogus", quoting the line like haproxy does.
    WriteText(dir_ / "check.sh",
              "#!/bin/sh\n# args: -c -f FILE\nif grep -n bogus \"$3\"; then echo \"[ALERT] "
              "unknown keyword 'bogus'\"; exit 1; fi\nexit 0\n");
    ::chmod((dir_ / "check.sh").c_str(), 0755);
    WriteText(dir_ / "haproxy.cfg", "old config\n");
    WriteText(dir_ / "t.tmpl", "backend pg\n    server primary {{host}}:{{port}} check {{server_state}}\n");
    config_ = RuntimeOnly(dir_ / "admin.sock");
    config_.config_file = dir_ / "haproxy.cfg";
    config_.template_file = dir_ / "t.tmpl";
    config_.master_socket = dir_ / "master.sock";
    config_.haproxy_bin = dir_ / "check.sh";
  }
  TempDir dir_;
  std::unique_ptr<FakeHaproxySocket> fake_;
  std::unique_ptr<FakeHaproxySocket> master_;
  haproxy::HaproxySinkConfig config_;
};

TEST_F(HaproxyConfigTest, RendersValidatesSwapsAndReloads) {
  haproxy::HaproxySink sink(config_);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "backend pg\n    server primary 127.0.0.1:5002 check \n");
  // Sessions are cut in every worker, old ones included (the admin socket reaches only the
  // current worker), then the new config is loaded.
  EXPECT_EQ(master_->commands(), (std::vector<std::string>{
                                     "show proc",
                                     "@!1240 shutdown sessions server pg/primary",
                                     "@!1238 shutdown sessions server pg/primary",
                                     "reload"}));
  EXPECT_EQ(fake_->commands().size(), 3u);  // addr, state ready, health up: no cut here
  EXPECT_NE(::access(TempPathFor(dir_ / "haproxy.cfg").c_str(), F_OK), 0);
  RouteTarget block = Route("node2", 5002, 4);
  block.action = RouteTarget::Action::kBlock;
  ASSERT_TRUE(sink.Apply(block).ok());
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"),
            "backend pg\n    server primary 127.0.0.1:5002 check disabled\n");
}

TEST_F(HaproxyConfigTest, BrokenTemplateLeavesConfigUntouchedButRuntimeSwitches) {
  WriteText(dir_ / "t.tmpl", "server primary {{hots}}:{{port}}\n");
  haproxy::HaproxySink sink(config_);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir_ / "t.tmpl"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unknown variable \"hots\""), std::string::npos) << s.message();
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "old config\n");
  for (const auto& c : master_->commands()) EXPECT_NE(c, "reload");
  EXPECT_EQ(fake_->commands().front(), "set server pg/primary addr 127.0.0.1 port 5002");
  // The retry after the fix does not cut the sessions on the new master again.
  fake_->Clear();
  WriteText(dir_ / "t.tmpl", "server primary {{host}}:{{port}}\n");
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  EXPECT_TRUE(fake_->commands().empty());
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "server primary 127.0.0.1:5002\n");
}

TEST_F(HaproxyConfigTest, RejectedConfigIsReportedAndNotSwapped) {
  WriteText(dir_ / "t.tmpl", "bogus {{host}}\n");
  haproxy::HaproxySink sink(config_);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("haproxy -c rejected the config rendered from " + (dir_ / "t.tmpl")),
            std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unknown keyword 'bogus'"), std::string::npos) << s.message();
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "old config\n");
  EXPECT_NE(::access(TempPathFor(dir_ / "haproxy.cfg").c_str(), F_OK), 0);
  for (const auto& c : master_->commands()) EXPECT_NE(c, "reload");
}

// ---- exec and file sinks ---------------------------------------------------------------------

TEST(ExecSinkTest, CommandSeesTheMasterInItsEnvironment) {
  TempDir dir;
  ExecSinkConfig c;
  c.command = {"/bin/sh", "-c",
               "echo \"$PGHERALD_MASTER_HOST $PGHERALD_MASTER_PORT $PGHERALD_MASTER_NODE "
               "$PGHERALD_MASTER_EPOCH $PGHERALD_MASTER_STATUS $PGHERALD_ACTION\" > " +
                   (dir / "out")};
  ExecSink sink(c);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002, 9)).ok());
  EXPECT_EQ(*ReadFile(dir / "out"), "127.0.0.1 5002 node2 9 vouched route\n");
}

TEST(ExecSinkTest, FailureCarriesExitAndOutput) {
  ExecSinkConfig c;
  c.command = {"/bin/sh", "-c", "echo cannot reach dns; exit 3"};
  ExecSink sink(c);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("exit 3: cannot reach dns"), std::string::npos) << s.message();
}

TEST(ExecSinkTest, TimeoutKillsTheWholeProcessGroup) {
  TempDir dir;
  ExecSinkConfig c;
  // The child starts a grandchild that would write a file after 2 s; the timeout must kill both.
  c.command = {"/bin/sh", "-c", "(sleep 2; touch " + (dir / "late") + ") & echo $! > " +
                                    (dir / "pid") + "; sleep 30"};
  c.timeout = milliseconds(300);
  ExecSink sink(c);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kTimeout);
  const int grandchild = std::atoi(ReadFile(dir / "pid")->c_str());
  ASSERT_GT(grandchild, 0);
  // Dead (or a zombie awaiting its reaper): /proc/PID/stat is gone or says Z.
  bool dead = false;
  for (int i = 0; i < 200 && !dead; ++i) {
    auto stat = ReadFile("/proc/" + std::to_string(grandchild) + "/stat");
    dead = !stat.ok() || stat->find(") Z") != std::string::npos;
    if (!dead) std::this_thread::sleep_for(milliseconds(10));  // poll, bounded
  }
  EXPECT_TRUE(dead) << "grandchild " << grandchild << " survived the timeout";
}

TEST(FileSinkTest, WritesStateAsJsonAtomically) {
  TempDir dir;
  FileSink sink({"file", dir / "state.json"});
  ASSERT_TRUE(sink.Apply(Route("node2", 5002, 5)).ok());
  auto j = nlohmann::json::parse(*ReadFile(dir / "state.json"));
  EXPECT_EQ(j["format"], 1);
  EXPECT_EQ(j["node"], "node2");
  EXPECT_EQ(j["port"], 5002);
  EXPECT_EQ(j["epoch"], 5);
  EXPECT_EQ(j["action"], "route");
  EXPECT_EQ(j["status"], "vouched");
  EXPECT_NE(::access(TempPathFor(dir / "state.json").c_str(), F_OK), 0);
}

// ---- configuration ---------------------------------------------------------------------------

TEST(WatchConfigTest, ValidConfigParses) {
  TempDir dir;
  WriteText(dir / "t.tmpl", "server primary {{host}}:{{port}} {{server_state}} # {{site}}\n");
  auto root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\n"
      "watch:\n"
      "  clusters:\n"
      "    main:\n"
      "      on_unverified: block\n"
      "      unverified_grace_ms: 1500\n"
      "      sinks:\n"
      "        - type: haproxy\n"
      "          admin_socket: /run/a.sock\n"
      "          backend: pg\n"
      "          server: primary\n"
      "          config_file: " + (dir / "h.cfg") + "\n"
      "          template: " + (dir / "t.tmpl") + "\n"
      "          master_socket: /run/m.sock\n"
      "          vars: {site: paris}\n"
      "        - type: file\n"
      "          path: /run/x.json\n",
      "watch.yaml");
  ASSERT_TRUE(root.ok());
  auto c = ParseWatchConfig(*root);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->clusters.size(), 1u);
  EXPECT_EQ(c->clusters[0].policy.on_unverified, Policy::kBlock);
  EXPECT_EQ(c->clusters[0].policy.unverified_grace, milliseconds(1500));
  ASSERT_EQ(c->clusters[0].sinks.size(), 2u);
  EXPECT_EQ(c->clusters[0].sinks[0].haproxy.vars.at("site"), "paris");
}

TEST(WatchConfigTest, ErrorsNameFileLineAndKey) {
  auto root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\n"
      "watch:\n"
      "  clusters:\n"
      "    main:\n"
      "      on_unverified: drop\n"
      "      sinks:\n"
      "        - type: haproxy\n"
      "          admin_socket: /run/a.sock\n"
      "          backend: pg\n"
      "          config_file: /etc/haproxy.cfg\n"
      "        - type: exec\n"
      "          comand: [x]\n",
      "watch.yaml");
  ASSERT_TRUE(root.ok());
  auto c = ParseWatchConfig(*root);
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("watch.yaml:5: watch.clusters.main.on_unverified"), std::string::npos) << m;
  EXPECT_NE(m.find("server"), std::string::npos) << m;
  EXPECT_NE(m.find("template"), std::string::npos) << m;
  EXPECT_NE(m.find("master_socket"), std::string::npos) << m;
  EXPECT_NE(m.find("comand"), std::string::npos) << m;
}

TEST(WatchConfigTest, TemplateTypoFailsAtStartup) {
  TempDir dir;
  WriteText(dir / "t.tmpl", "server primary {{hots}}:{{port}}\n");
  auto root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\n"
      "watch: {clusters: {main: {sinks: [{type: haproxy, admin_socket: /a, backend: b, "
      "server: s, config_file: /c, master_socket: /m, template: " + (dir / "t.tmpl") + "}]}}}\n",
      "watch.yaml");
  ASSERT_TRUE(root.ok());
  auto c = ParseWatchConfig(*root);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown variable \"hots\""), std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace pgherald::watch
