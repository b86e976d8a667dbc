// The sinks of `pgherald watch` without the real programs: template rendering, the pgbouncer
// databases file, the HAProxy runtime command sequence against a fake admin socket (a unix socket
// server run by the test), the HAProxy config swap with a stand-in `haproxy -c`, the exec sink's
// environment and timeout, the file sink, and configuration errors.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "app/builtin_sinks.h"
#include "clients/watch/watch_config.h"
#include "common/atomic_file.h"
#include "common/subprocess.h"
#include "common/template.h"
#include "haproxy/haproxy_sink.h"
#include "pgbouncer/pgbouncer_sink.h"
#include "sinks/exec/exec_sink.h"
#include "sinks/file/file_sink.h"

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
  // Whether a temporary file of the atomic writer (".<base>.<random>.tmp") is left behind.
  bool HasTempFiles() const {
    return std::system(("ls -A '" + path_ + "' | grep -q '^\\..*\\.tmp$'").c_str()) == 0;
  }

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

// The master record is untrusted: a newline in a value would add a line (an HAProxy `program`
// section is code), so control characters are refused whatever the rules say.
TEST(TemplateTest, ValuesWithControlCharactersAreRefused) {
  for (const std::string& bad : std::vector<std::string>{"127.0.0.1\nprogram x", "a\rb",
                                                         std::string("a\0b", 3), "a\tb", "a\x7f"}) {
    auto out = RenderTemplate("# {{node}}\nserver s {{host}}\n", {{"node", "pg2"}, {"host", bad}},
                              "t.tmpl");
    ASSERT_FALSE(out.ok()) << bad;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find("t.tmpl:2: variable \"host\" is \""), std::string::npos)
        << out.status().message();
    EXPECT_NE(out.status().message().find("nothing rendered"), std::string::npos);
    EXPECT_EQ(out.status().message().find('\n'), std::string::npos) << "value shown raw";
  }
}

TEST(TemplateTest, EachVariableMustMatchItsRule) {
  const TemplateRules rules = {{"host", HostValue()}, {"port", PortValue()}, {"node", NameValue()}};
  const std::string text = "server {{node}} {{host}}:{{port}}\n";
  auto good = RenderTemplate(text, {{"node", "pg-2"}, {"host", "db2.example"}, {"port", "5432"}},
                             "t", rules);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(*good, "server pg-2 db2.example:5432\n");
  for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
           {"host", "127.0.0.1;shutdown frontend pg_write"},
           {"host", "127.0.0.1 user=postgres"},
           {"host", "'127.0.0.1'"},
           {"node", "pg 2"},
           {"node", "x\"y"},
           {"port", "5432 backup"},
           {"port", "0"},
           {"port", "70000"}}) {
    TemplateVars vars = {{"node", "pg2"}, {"host", "10.0.0.2"}, {"port", "5432"}};
    vars[var] = value;
    auto out = RenderTemplate(text, vars, "t", rules);
    ASSERT_FALSE(out.ok()) << var << "=" << value;
    EXPECT_NE(out.status().message().find("variable \"" + var + "\""), std::string::npos)
        << out.status().message();
  }
}

TEST(TemplateTest, TemplateFileMustBeARegularFileOfBoundedSize) {
  auto out = RenderTemplateFile("/dev/zero", {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("/dev/zero"), std::string::npos);
  EXPECT_NE(out.status().message().find("not a regular file"), std::string::npos);
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

// pgbouncer parses `key=value` words: a space in a host adds keywords (`user=postgres` forced
// every pooled login to postgres), a newline adds databases. None of it reaches the file.
TEST(PgbouncerFileTest, HostileMasterFieldsAreRefusedNotWritten) {
  PgbouncerSinkConfig c;
  c.entries = {{"*", "host={{host}} port={{port}}"}, {"app", "host={{host}} dbname=app"}};
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, std::string>>{{"host", "127.0.0.1 user=postgres"},
                                                        {"host", "127.0.0.1\nevil = host=10.6.6.6"},
                                                        {"host", "127.0.0.1' user='postgres"},
                                                        {"node", "node2\nevil = host=10.6.6.6"},
                                                        {"cluster", "main) ;\nx"}}) {
    RouteTarget t = Route("node2", 5002);
    if (field == "host") t.master.host = value;
    if (field == "node") t.master.node = value;
    if (field == "cluster") t.master.cluster = value;
    auto out = RenderDatabasesFile(c, t);
    ASSERT_FALSE(out.ok()) << field << "=" << value << " rendered:\n" << *out;
    EXPECT_NE(out.status().message().find("variable \"" + field + "\""), std::string::npos)
        << out.status().message();
  }
}

TEST(PgbouncerFileTest, ApplyRefusesAHostileTargetBeforeTouchingTheFile) {
  TempDir dir;
  WriteText(dir / "databases.ini", "* = host=127.0.0.1 port=5001\n");
  PgbouncerSinkConfig c;
  c.databases_file = dir / "databases.ini";
  c.admin.host = "127.0.0.1";
  c.admin.port = 1;  // nothing listens: the refusal must come first
  PgbouncerSink sink(c);
  RouteTarget t = Route("node2", 5002);
  t.master.host = "127.0.0.1 user=postgres";
  Status s = sink.Apply(t);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("host \"127.0.0.1 user=postgres\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("nothing applied"), std::string::npos) << s.message();
  EXPECT_EQ(*ReadFile(dir / "databases.ini"), "* = host=127.0.0.1 port=5001\n");
  EXPECT_FALSE(dir.HasTempFiles());
}

// ---- HAProxy runtime API against a fake admin socket -----------------------------------------

std::string ShowInfo(const std::string& pid, bool stopping = false) {
  return "Name: HAProxy\nVersion: 2.6.12\nPid: " + pid + "\nStopping: " + (stopping ? "1" : "0") +
         "\nUptime: 0d 0h00m10s\n\n";
}

// Accepts connections on a unix socket, reads one line each, splits it into its `;`-separated
// commands like HAProxy does, records each command (but `show info`, which the sink adds to learn
// which worker answered) and answers each with `respond(command)`, then closes the connection
// (HAProxy's non-interactive mode). `on_connect` runs first for each connection (it picks the
// worker that accepted it).
class FakeHaproxySocket {
 public:
  FakeHaproxySocket(std::string path, std::function<std::string(const std::string&)> respond,
                    std::function<void()> on_connect = [] {})
      : path_(std::move(path)), respond_(std::move(respond)), on_connect_(std::move(on_connect)) {
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
        on_connect_();
        size_t start = 0;
        while (start <= line.size()) {
          size_t end = line.find(';', start);
          if (end == std::string::npos) end = line.size();
          const std::string command = line.substr(start, end - start);
          if (command != "show info") commands_.push_back(command);
          answer += respond_(command);
          start = end + 1;
        }
      }
      (void)!::write(c, answer.data(), answer.size());
      ::close(c);
    }
  }
  std::string path_;
  std::function<std::string(const std::string&)> respond_;
  std::function<void()> on_connect_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> commands_;
  std::thread thread_;
};

// Answers like HAProxy 2.6: an addr change reports what changed; the rest answer nothing.
std::string HaproxyLike(const std::string& command) {
  if (command == "show info") return ShowInfo("1240");
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
    if (c == "show info") return ShowInfo("1240");
    if (c.find(" addr ") != std::string::npos) return std::string("no need to change the addr\n\n");
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

// `set server ... addr <host>` joined into a `;` batch: a host `127.0.0.1;shutdown frontend
// pg_write` shut the frontend. Nothing of a hostile target reaches the socket.
TEST(HaproxyRuntimeTest, HostileHostsNeverReachTheSocket) {
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", HaproxyLike);
  haproxy::HaproxySink sink(RuntimeOnly(dir / "admin.sock"));
  for (const std::string host :
       {"127.0.0.1;shutdown frontend pg_write", "127.0.0.1\nshutdown frontend pg_write",
        "127.0.0.1 port 1", "", "127.0.0.1\r"}) {
    RouteTarget t = Route("node2", 5002);
    t.master.host = host;
    Status s = sink.Apply(t);
    ASSERT_FALSE(s.ok()) << host;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("host \""), std::string::npos) << s.message();
  }
  RouteTarget bad_port = Route("node2", 70000);
  EXPECT_FALSE(sink.Apply(bad_port).ok());
  RouteTarget bad_node = Route("node2\nprogram x", 5002);
  EXPECT_FALSE(sink.Apply(bad_node).ok());
  EXPECT_TRUE(fake.commands().empty());
  // A valid route afterwards goes through as usual.
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  EXPECT_EQ(fake.commands().front(), "set server pg/primary addr 127.0.0.1 port 5002");
}

TEST(HaproxyRuntimeTest, CommandsAreBuiltFromCheckedValuesAndBatchesRefuseSeparators) {
  EXPECT_TRUE(haproxy::SetAddrCommand({"pg", "primary"}, "10.0.0.2", 5432).ok());
  EXPECT_FALSE(haproxy::SetAddrCommand({"pg", "primary"}, "10.0.0.2;show env", 5432).ok());
  EXPECT_FALSE(haproxy::SetAddrCommand({"pg;x", "primary"}, "10.0.0.2", 5432).ok());
  EXPECT_FALSE(haproxy::SetAddrCommand({"pg", "primary"}, "10.0.0.2", 0).ok());
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", HaproxyLike);
  auto batch = haproxy::SendBatch(dir / "admin.sock",
                                  {"set server pg/primary state ready;shutdown frontend x"},
                                  milliseconds(1000));
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  auto single = haproxy::SendCommand(dir / "admin.sock", "show info\nshutdown frontend x",
                                     milliseconds(1000));
  ASSERT_FALSE(single.ok());
  EXPECT_EQ(single.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake.commands().empty());
}

TEST(HaproxyRuntimeTest, MissingSocketIsNamed) {
  auto config = RuntimeOnly("/nonexistent/admin.sock");
  config.command_timeout = milliseconds(100);  // refused sockets are retried that long
  haproxy::HaproxySink sink(config);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("/nonexistent/admin.sock"), std::string::npos);
}

// A worker that closes the connection without answering (one exiting after a reload) is retried
// at once: the route lands in the same Apply instead of failing it into the worker's backoff.
TEST(HaproxyRuntimeTest, ClosedConnectionIsRetriedAtOnce) {
  TempDir dir;
  std::atomic<int> dropped{0};
  FakeHaproxySocket fake(dir / "admin.sock", [&](const std::string& c) {
    if (dropped < 2) {  // the first two connections end without a word
      if (c == "show info") ++dropped;
      return std::string();
    }
    return HaproxyLike(c);
  });
  haproxy::HaproxySink sink(RuntimeOnly(dir / "admin.sock"));
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  EXPECT_EQ(dropped, 2);
}

// The old workers' step (route and cut through the master CLI) that fails leaves the route live
// in the current worker; the retry redoes only that step.
TEST(HaproxyRuntimeTest, FailedOldWorkerStepIsReportedAndRetriedAloneWithoutUndoingTheRoute) {
  TempDir dir;
  FakeHaproxySocket fake(dir / "admin.sock", HaproxyLike);
  auto config = RuntimeOnly(dir / "admin.sock");
  config.master_socket = dir / "master.sock";  // nothing listens there yet
  haproxy::HaproxySink sink(config);
  Status s = sink.Apply(Route("node2", 5002));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the route to node2 (127.0.0.1:5002) is live"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find(dir / "master.sock"), std::string::npos) << s.message();
  EXPECT_EQ(fake.commands(), (std::vector<std::string>{
                                 "set server pg/primary addr 127.0.0.1 port 5002",
                                 "set server pg/primary state ready",
                                 "set server pg/primary health up",
                                 "shutdown sessions server pg/primary",
                             }));
  FakeHaproxySocket master(dir / "master.sock", HaproxyLike);
  fake.Clear();
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  EXPECT_TRUE(fake.commands().empty());  // the route is not redone, nor the current worker's cut
  EXPECT_EQ(master.commands(), (std::vector<std::string>{
                                   "show proc",
                                   "@!1238 set server pg/primary addr 127.0.0.1 port 5002",
                                   "@!1238 set server pg/primary state ready",
                                   "@!1238 set server pg/primary health up",
                                   "@!1238 shutdown sessions server pg/primary"}));
}

// ---- HAProxy config swap and reloads, with a stand-in for `haproxy -c` ------------------------

// HAProxy in master-worker mode as the sink sees it: workers, each with its pid and the server's
// address, behind the admin socket, and a master CLI that reloads. A reload starts a new worker
// (next pid) from the config file as it was when the master read it (its server line's address).
// With hold_reload the new worker starts only at ReleaseReload() (a reload in flight: the old
// worker keeps answering). stale_answers makes the next connections reach the previous worker
// (an old worker that has not stopped accepting yet).
class FakeHaproxy {
  struct Worker {
    int pid;
    std::string addr;
  };

 public:
  explicit FakeHaproxy(std::string config_file) : config_file_(std::move(config_file)) {
    workers_.push_back({1238, "127.0.0.1:5001"});  // an old worker left by an earlier reload
    workers_.push_back({1240, "127.0.0.1:5001"});
  }
  // FakeHaproxySocket callbacks (its lock held).
  void Connect() {
    std::lock_guard lock(mu_);
    conn_ = workers_.size() - 1;
    if (stale_answers_ > 0 && workers_.size() > 1) {
      --stale_answers_;
      conn_ = workers_.size() - 2;
    }
  }
  std::string Admin(const std::string& c) {
    std::lock_guard lock(mu_);
    Worker& w = workers_[conn_];
    if (c == "show info") return ShowInfo(std::to_string(w.pid));
    log_.push_back(std::to_string(w.pid) + ":" + c);
    return RunLocked(w, c);
  }
  std::string RunLocked(Worker& w, const std::string& c) {
    const std::string set_addr = "set server pg/primary addr ";
    if (c.rfind(set_addr, 0) == 0) {
      std::string want = c.substr(set_addr.size());
      want.replace(want.find(" port "), 6, ":");
      if (want == w.addr) return "no need to change the addr\n\n";
      const std::string answer = "IP changed from '" + w.addr + "' to '" + want + "'\n\n";
      w.addr = want;
      return answer;
    }
    if (c.rfind("set server pg/primary ", 0) == 0 || c == "shutdown sessions server pg/primary") {
      return "\n";
    }
    return "Unknown command.\n\n";
  }
  std::string Master(const std::string& c) {
    std::lock_guard lock(mu_);
    log_.push_back("master:" + c);
    if (c == "reload") {
      ++reloads_;
      held_ = *ReadFile(config_file_);
      if (!hold_reload_) StartWorkerLocked();
      return "";
    }
    if (c == "show proc") {
      std::string out = "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
                        "1234            master          1               0d00h01m23s     2.6.12\n"
                        "# workers\n" +
                        std::to_string(workers_.back().pid) + " worker 0 0d00h00m10s 2.6.12\n" +
                        "# old workers\n";
      for (size_t i = 0; i + 1 < workers_.size(); ++i) {
        out += std::to_string(workers_[i].pid) + " worker [was: 0] 0d00h01m20s 2.6.12\n";
      }
      return out;
    }
    if (c.rfind("@!", 0) == 0) {  // a command for one worker, old ones included
      const size_t space = c.find(' ');
      const std::string pid = c.substr(2, space - 2);
      for (auto& w : workers_) {
        if (std::to_string(w.pid) == pid) return RunLocked(w, c.substr(space + 1));
      }
      return "Can't find the target PID matching the prefix '@!" + pid + "'\n";
    }
    return "Unknown command.\n\n";
  }
  void HoldReloads() {
    std::lock_guard lock(mu_);
    hold_reload_ = true;
  }
  void ReleaseReload() {
    std::lock_guard lock(mu_);
    hold_reload_ = false;
    StartWorkerLocked();
  }
  void StaleAnswers(int n) {
    std::lock_guard lock(mu_);
    stale_answers_ = n;
  }
  int reloads() {
    std::lock_guard lock(mu_);
    return reloads_;
  }
  std::string current_addr() {
    std::lock_guard lock(mu_);
    return std::to_string(workers_.back().pid) + "@" + workers_.back().addr;
  }
  std::vector<std::string> log() {
    std::lock_guard lock(mu_);
    return log_;
  }
  void ClearLog() {
    std::lock_guard lock(mu_);
    log_.clear();
  }
  bool Logged(const std::string& entry) {
    std::lock_guard lock(mu_);
    return std::find(log_.begin(), log_.end(), entry) != log_.end();
  }

 private:
  void StartWorkerLocked() {
    std::string addr;
    const size_t at = held_.find("127.0.0.1:");
    if (at != std::string::npos) addr = held_.substr(at, held_.find_first_not_of("0123456789.:", at) - at);
    workers_.push_back({workers_.back().pid + 1, addr});
  }
  const std::string config_file_;
  std::mutex mu_;
  std::vector<Worker> workers_;
  size_t conn_ = 0;
  int stale_answers_ = 0;
  bool hold_reload_ = false;
  std::string held_;  // the config file as the master read it at the last reload
  int reloads_ = 0;
  std::vector<std::string> log_;  // "<pid>:<command>" and "master:<command>"
};

bool AwaitTrue(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));  // poll interval
  }
  return true;
}

class HaproxyConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A checker that rejects any config containing "bogus", quoting the line like haproxy does.
    WriteText(dir_ / "check.sh",
              "#!/bin/sh\n# args: -c -f FILE\nif grep -n bogus \"$3\"; then echo \"[ALERT] "
              "unknown keyword 'bogus'\"; exit 1; fi\nexit 0\n");
    ::chmod((dir_ / "check.sh").c_str(), 0755);
    WriteText(dir_ / "haproxy.cfg", "old config 127.0.0.1:5001\n");
    WriteText(dir_ / "t.tmpl", "backend pg\n    server primary {{host}}:{{port}} check {{server_state}}\n");
    config_ = RuntimeOnly(dir_ / "admin.sock");
    config_.config_file = dir_ / "haproxy.cfg";
    config_.template_file = dir_ / "t.tmpl";
    config_.master_socket = dir_ / "master.sock";
    config_.haproxy_bin = dir_ / "check.sh";
    config_.config_retry_initial = milliseconds(10);
    config_.config_retry_max = milliseconds(40);
    config_.reload_delay = milliseconds(0);
  }
  TempDir dir_;
  FakeHaproxy haproxy_{dir_ / "haproxy.cfg"};
  FakeHaproxySocket admin_{dir_ / "admin.sock",
                           [this](const std::string& c) { return haproxy_.Admin(c); },
                           [this] { haproxy_.Connect(); }};
  FakeHaproxySocket master_{dir_ / "master.sock",
                            [this](const std::string& c) { return haproxy_.Master(c); }};
  haproxy::HaproxySinkConfig config_;
};

TEST_F(HaproxyConfigTest, RoutesFirstThenRendersValidatesSwapsAndReloads) {
  haproxy::HaproxySink sink(config_);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  // The route and the cut came first, in the current worker; old workers are cut via the master.
  const auto log = haproxy_.log();
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(log.begin(), log.begin() + 4),
            (std::vector<std::string>{"1240:set server pg/primary addr 127.0.0.1 port 5002",
                                      "1240:set server pg/primary state ready",
                                      "1240:set server pg/primary health up",
                                      "1240:shutdown sessions server pg/primary"}));
  // Old workers get the route too (one may still accept connections after a reload).
  EXPECT_TRUE(haproxy_.Logged("master:@!1238 set server pg/primary addr 127.0.0.1 port 5002"));
  EXPECT_TRUE(haproxy_.Logged("master:@!1238 shutdown sessions server pg/primary"));
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "backend pg\n    server primary 127.0.0.1:5002 check \n");
  EXPECT_FALSE(dir_.HasTempFiles());
  EXPECT_EQ(haproxy_.reloads(), 1);
  EXPECT_EQ(haproxy_.current_addr(), "1241@127.0.0.1:5002");
  // Blocking: maint at once, then the config names the server disabled.
  RouteTarget block = Route("node2", 5002, 4);
  block.action = RouteTarget::Action::kBlock;
  ASSERT_TRUE(sink.Apply(block).ok());
  EXPECT_TRUE(haproxy_.Logged("1241:set server pg/primary state maint"));
  EXPECT_TRUE(haproxy_.Logged("1241:shutdown sessions server pg/primary"));
  EXPECT_TRUE(haproxy_.Logged("master:@!1240 set server pg/primary state maint"));
  EXPECT_TRUE(haproxy_.Logged("master:@!1240 shutdown sessions server pg/primary"));
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"),
            "backend pg\n    server primary 127.0.0.1:5002 check disabled\n");
  EXPECT_EQ(haproxy_.reloads(), 2);
  // The same state again renders the same file: nothing is written and HAProxy is not reloaded.
  ASSERT_TRUE(sink.Apply(block).ok());
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  EXPECT_EQ(haproxy_.reloads(), 2);
}

// The file is swapped at once; the reload waits reload_delay, and a change within it shares it.
TEST_F(HaproxyConfigTest, ReloadWaitsItsDelayAndChangesWithinItShareOne) {
  config_.reload_delay = milliseconds(3000);
  haproxy::HaproxySink sink(config_);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  ASSERT_TRUE(AwaitTrue([&] { return ReadFile(dir_ / "haproxy.cfg")->find("5002") != std::string::npos; }));
  ASSERT_TRUE(sink.Apply(Route("node3", 5003, 4)).ok());
  ASSERT_TRUE(AwaitTrue([&] { return ReadFile(dir_ / "haproxy.cfg")->find("5003") != std::string::npos; }));
  EXPECT_EQ(haproxy_.reloads(), 0);  // well within the 3 s
  EXPECT_EQ(haproxy_.current_addr(), "1240@127.0.0.1:5003");  // the runtime API routes meanwhile
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  EXPECT_EQ(haproxy_.reloads(), 1);
  EXPECT_EQ(haproxy_.current_addr(), "1241@127.0.0.1:5003");
}

// A change that lands while a reload is in flight goes to the old worker; the new worker parsed
// the file before it named the change, so the sink applies the latest route to it as soon as it
// answers (and the next reload makes the file agree).
TEST_F(HaproxyConfigTest, ChangeDuringReloadReachesTheNewWorker) {
  haproxy_.HoldReloads();
  haproxy::HaproxySink sink(config_);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  ASSERT_TRUE(AwaitTrue([&] { return haproxy_.reloads() == 1; }));  // in flight, file says 5002
  ASSERT_TRUE(sink.Apply(Route("node3", 5003, 4)).ok());
  EXPECT_TRUE(haproxy_.Logged("1240:set server pg/primary addr 127.0.0.1 port 5003"));
  haproxy_.ReleaseReload();  // worker 1241 starts from the file that names 5002
  ASSERT_TRUE(AwaitTrue([&] {
    return haproxy_.Logged("1241:set server pg/primary addr 127.0.0.1 port 5003");
  })) << ::testing::PrintToString(haproxy_.log());
  // ... and its sessions to 5002, opened before the route reached it, are cut.
  ASSERT_TRUE(AwaitTrue([&] { return haproxy_.Logged("1241:shutdown sessions server pg/primary"); }));
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  EXPECT_NE(ReadFile(dir_ / "haproxy.cfg")->find("127.0.0.1:5003"), std::string::npos);
  EXPECT_EQ(haproxy_.current_addr(), "1242@127.0.0.1:5003");
}

// An old worker may still accept on the admin socket after the new one took over: the route must
// land in the new worker, not in the one on its way out.
TEST_F(HaproxyConfigTest, RouteSkipsAWorkerReplacedByAReload) {
  haproxy::HaproxySink sink(config_);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  ASSERT_EQ(haproxy_.current_addr(), "1241@127.0.0.1:5002");
  haproxy_.StaleAnswers(3);
  haproxy_.HoldReloads();  // so that 1241 stays the current worker while we look
  ASSERT_TRUE(sink.Apply(Route("node3", 5003, 4)).ok());
  EXPECT_EQ(haproxy_.current_addr(), "1241@127.0.0.1:5003");
  haproxy_.ReleaseReload();
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
}

TEST_F(HaproxyConfigTest, BrokenTemplateLeavesConfigUntouchedButRuntimeSwitches) {
  WriteText(dir_ / "t.tmpl", "server primary {{hots}}:{{port}}\n");
  haproxy::HaproxySink sink(config_);
  // The route is live whatever Apply says: it may already report the config step's failure.
  Status first = sink.Apply(Route("node2", 5002));
  if (!first.ok()) {
    EXPECT_NE(first.message().find("hots"), std::string::npos) << first.message();
  }
  EXPECT_EQ(haproxy_.log().front(), "1240:set server pg/primary addr 127.0.0.1 port 5002");
  EXPECT_EQ(haproxy_.current_addr(), "1240@127.0.0.1:5002");
  Status s = sink.WaitConfigSettled(milliseconds(10000));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir_ / "t.tmpl"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unknown variable \"hots\""), std::string::npos) << s.message();
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "old config 127.0.0.1:5001\n");
  EXPECT_EQ(haproxy_.reloads(), 0);
  // Later Applies report it until the config step succeeds.
  EXPECT_FALSE(sink.Apply(Route("node2", 5002)).ok());
  // The retry after the fix does not route or cut again: the new worker parsed the right file.
  haproxy_.ClearLog();
  // Atomically: the config thread retries on its own and must not read a half-written template.
  WriteText(dir_ / "t.tmpl.new", "server primary {{host}}:{{port}}\n");
  ASSERT_EQ(::rename((dir_ / "t.tmpl.new").c_str(), (dir_ / "t.tmpl").c_str()), 0);
  ASSERT_TRUE(AwaitTrue([&] { return ReadFile(dir_ / "haproxy.cfg")->find("5002") !=
                                     std::string::npos; }));
  ASSERT_TRUE(AwaitTrue([&] { return sink.Apply(Route("node2", 5002)).ok(); }));
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "server primary 127.0.0.1:5002\n");
  for (const auto& c : haproxy_.log()) {
    EXPECT_EQ(c.find("shutdown"), std::string::npos) << c;
    EXPECT_EQ(c.find("1240:set"), std::string::npos) << c;
  }
}

// The shipped template puts `{{node}} {{host}}` in a comment: a newline there added a `program`
// section that `haproxy -c` accepts and HAProxy's master runs after the reload.
TEST_F(HaproxyConfigTest, ANewlineInTheRecordNeverReachesTheConfig) {
  WriteText(dir_ / "t.tmpl", "# master {{node}} {{host}}\nserver primary {{host}}:{{port}}\n");
  haproxy::HaproxySink sink(config_);
  for (auto [node, host] : std::vector<std::pair<std::string, std::string>>{
           {"node2\nprogram pwn\n    command touch /tmp/pwned", "127.0.0.1"},
           {"node2", "127.0.0.1\nprogram pwn\n    command touch /tmp/pwned"}}) {
    RouteTarget t = Route(node, 5002);
    t.master.host = host;
    Status s = sink.Apply(t);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("nothing applied"), std::string::npos) << s.message();
  }
  EXPECT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());  // nothing was handed over
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "old config 127.0.0.1:5001\n");
  EXPECT_EQ(haproxy_.reloads(), 0);
  EXPECT_TRUE(haproxy_.log().empty());
  EXPECT_FALSE(dir_.HasTempFiles());
  // The renderer refuses such a value on its own too (defence in depth).
  RouteTarget t = Route("node2\nprogram pwn", 5002);
  auto out = RenderTemplate("# {{node}}\n", haproxy::HaproxyTemplateVars(t, {}), "t",
                            haproxy::HaproxyTemplateRules(t.action));
  EXPECT_FALSE(out.ok());
}

TEST_F(HaproxyConfigTest, ReplacedConfigKeepsItsOwnerAndMode) {
  ASSERT_EQ(::chown((dir_ / "haproxy.cfg").c_str(), 65534, 65534), 0) << "CI runs as root";
  ASSERT_EQ(::chmod((dir_ / "haproxy.cfg").c_str(), 0640), 0);
  haproxy::HaproxySink sink(config_);
  ASSERT_TRUE(sink.Apply(Route("node2", 5002)).ok());
  ASSERT_TRUE(sink.WaitConfigSettled(milliseconds(10000)).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "haproxy.cfg").c_str(), &st), 0);
  EXPECT_NE(ReadFile(dir_ / "haproxy.cfg")->find("127.0.0.1:5002"), std::string::npos);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(HaproxyConfigTest, RejectedConfigIsReportedAndNotSwapped) {
  WriteText(dir_ / "t.tmpl", "bogus {{host}}\n");
  auto owned = std::make_unique<haproxy::HaproxySink>(config_);
  auto& sink = *owned;
  (void)sink.Apply(Route("node2", 5002));  // may already report the rejection
  Status s = sink.WaitConfigSettled(milliseconds(10000));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("haproxy -c rejected the config rendered from " + (dir_ / "t.tmpl")),
            std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unknown keyword 'bogus'"), std::string::npos) << s.message();
  EXPECT_EQ(*ReadFile(dir_ / "haproxy.cfg"), "old config 127.0.0.1:5001\n");
  // The config thread keeps retrying (each attempt writes and removes a temporary file): stop it,
  // then nothing may be left behind.
  owned.reset();
  EXPECT_FALSE(dir_.HasTempFiles());
  EXPECT_EQ(haproxy_.reloads(), 0);
  EXPECT_EQ(haproxy_.current_addr(), "1240@127.0.0.1:5002");
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

TEST(RunProcessTest, NiceIsAddedToTheChildsNiceValue) {
  // Field 19 of /proc/<pid>/stat is the nice value; `exec cut` reads its own.
  ProcessOptions plain;
  plain.argv = {"sh", "-c", "exec cut -d' ' -f19 /proc/self/stat"};
  auto base = RunProcess(plain);
  ASSERT_TRUE(base.ok() && base->success()) << (base.ok() ? base->output : base.status().ToString());
  ProcessOptions niced = plain;
  niced.nice = 10;
  auto r = RunProcess(niced);
  ASSERT_TRUE(r.ok() && r->success()) << (r.ok() ? r->output : r.status().ToString());
  EXPECT_EQ(std::stoi(r->output), std::min(19, std::stoi(base->output) + 10));
}

// The fence action's mode: the child writes to the daemon's own stdout/stderr, nothing captured;
// the environment still comes from `env` (prepared before fork, no setenv in the child).
TEST(RunProcessTest, UncapturedOutputStaysTheDaemonsAndEnvironmentReachesTheChild) {
  TempDir dir;
  ProcessOptions options;
  options.argv = {"/bin/sh", "-c", "echo to-the-journal; echo \"$PGHERALD_X\" > " + (dir / "env") +
                                       "; exit 4"};
  options.env = {{"PGHERALD_X", "from-the-parent"}};
  options.capture_output = false;
  auto r = RunProcess(options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->output, "");
  EXPECT_EQ(*ReadFile(dir / "env"), "from-the-parent\n");
  EXPECT_EQ(std::getenv("PGHERALD_X"), nullptr);  // the daemon's environment is untouched
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
  EXPECT_FALSE(dir.HasTempFiles());
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
  auto c = ParseWatchConfig(*root, app::BuiltinSinks());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->clusters.size(), 1u);
  EXPECT_EQ(c->clusters[0].policy.on_unverified, Policy::kBlock);
  EXPECT_EQ(c->clusters[0].policy.unverified_grace, milliseconds(1500));
  ASSERT_EQ(c->clusters[0].sinks.size(), 2u);
  EXPECT_EQ(c->clusters[0].sinks[0].As<haproxy::HaproxySinkConfig>().vars.at("site"), "paris");
}

TEST(WatchConfigTest, HoldIsOfferedForUnverifiedOnlyWithItsMaximum) {
  auto parse = [](const std::string& policy_lines) {
    auto root = config::ConfigNode::LoadString(
        "zookeeper: {connect: '127.0.0.1:2181'}\n"
        "watch:\n"
        "  clusters:\n"
        "    main:\n" +
            policy_lines +
            "      sinks:\n"
            "        - type: file\n"
            "          path: /run/x.json\n",
        "watch.yaml");
    EXPECT_TRUE(root.ok());
    return ParseWatchConfig(*root, app::BuiltinSinks());
  };
  auto held = parse("      on_unverified: hold\n      max_hold_ms: 4000\n");
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(held->clusters[0].policy.on_unverified, Policy::kHold);
  EXPECT_EQ(held->clusters[0].policy.max_hold, milliseconds(4000));
  auto refused = parse("      on_disconnect: hold\n");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("watch.yaml:5: watch.clusters.main.on_disconnect"),
            std::string::npos)
      << refused.status().message();
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
  auto c = ParseWatchConfig(*root, app::BuiltinSinks());
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
  auto c = ParseWatchConfig(*root, app::BuiltinSinks());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown variable \"hots\""), std::string::npos)
      << c.status().message();
}

// The second master source is gone: `watch.source: internal` is refused at load, naming the key and
// the fix; `library` (what every config meant) still loads.
TEST(WatchConfigTest, InternalSourceIsRefusedWithTheFix) {
  const std::string rest = "  clusters: {main: {sinks: [{type: file, path: /run/x.json}]}}\n";
  auto root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\nwatch:\n  source: internal\n" + rest, "watch.yaml");
  ASSERT_TRUE(root.ok());
  auto c = ParseWatchConfig(*root, app::BuiltinSinks());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "watch.yaml:3: watch.source: \"internal\" is not supported: remove it: watch always "
            "uses the client library");
  root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\nwatch:\n  source: library\n" + rest, "watch.yaml");
  ASSERT_TRUE(root.ok());
  c = ParseWatchConfig(*root, app::BuiltinSinks());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
}

// Sinks are plug-ins: the watch's parser knows only what the registry holds. A type's parser reads
// its own keys (unknown ones get a "did you mean" like any key), its settings come back typed and
// its factory builds the sink; a type not registered is refused naming the registered ones.
namespace {
struct ProbeSettings {
  std::string name = "probe";
  std::string target;
};
ProbeSettings ParseProbe(config::ConfigNode& node) {
  ProbeSettings s;
  s.name = node.Optional<std::string>("name", s.name);
  s.target = node.Required<std::string>("target");
  return s;
}
class ProbeSink final : public Sink {
 public:
  explicit ProbeSink(ProbeSettings settings) : settings_(std::move(settings)) {}
  const std::string& name() const override { return settings_.name; }
  Status Apply(const RouteTarget&) override { return Status::Ok(); }

 private:
  ProbeSettings settings_;
};
}  // namespace

TEST(SinkRegistryTest, TypesParseTheirOwnKeysAndBuildTheirSinks) {
  SinkRegistry registry;
  registry.Register<ProbeSink>("probe", &ParseProbe);
  registry.Register<FileSink>("file", &ParseFileSinkConfig);
  EXPECT_EQ(registry.TypeList(), "probe, file");
  auto root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\n"
      "watch:\n"
      "  clusters:\n"
      "    main:\n"
      "      sinks:\n"
      "        - {type: probe, name: p1, target: x}\n"
      "        - {type: file, path: /run/x.json}\n",
      "watch.yaml");
  ASSERT_TRUE(root.ok());
  auto c = ParseWatchConfig(*root, registry);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->clusters[0].sinks.size(), 2u);
  const SinkConfig& probe = c->clusters[0].sinks[0];
  EXPECT_EQ(probe.type, "probe");
  EXPECT_EQ(probe.name, "p1");
  EXPECT_EQ(probe.As<ProbeSettings>().target, "x");
  EXPECT_EQ(probe.Make()->name(), "p1");
  EXPECT_EQ(c->clusters[0].sinks[1].As<FileSinkConfig>().path, "/run/x.json");

  root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\n"
      "watch:\n"
      "  clusters:\n"
      "    main:\n"
      "      sinks:\n"
      "        - {type: probe, targt: x}\n"
      "        - {type: haproxy, admin_socket: /a, backend: b, server: s}\n"
      "        - {path: /run/x.json}\n",
      "watch.yaml");
  ASSERT_TRUE(root.ok());
  c = ParseWatchConfig(*root, registry);
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("watch.yaml:6: watch.clusters.main.sinks[0].targt: unknown key (did you mean "
                   "\"target\"?)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("watch.clusters.main.sinks[1].type: expected one of probe, file"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("watch.clusters.main.sinks[2].type: missing: one of probe, file"),
            std::string::npos)
      << m;
}

// HAProxy's own connection retries (each after a 1 s turn-around) held clients that connected to
// a dead master past the switch (docs/haproxy.md): the shipped template and example turn them off.
// Names that go into runtime commands and database names that go into the databases file are
// checked when the config loads, naming the key.
TEST(WatchConfigTest, NamesThatReachCommandsOrFilesAreCheckedAtLoad) {
  auto root = config::ConfigNode::LoadString(
      "zookeeper: {connect: '127.0.0.1:2181'}\n"
      "watch:\n"
      "  clusters:\n"
      "    main:\n"
      "      sinks:\n"
      "        - type: haproxy\n"
      "          admin_socket: /run/a.sock\n"
      "          backend: 'pg;shutdown frontend x'\n"
      "          server: primary\n"
      "          vars: {site: \"a\\nprogram x\"}\n"
      "        - type: pgbouncer\n"
      "          databases_file: /tmp/db.ini\n"
      "          admin: {host: 127.0.0.1, port: 6432, user: pgbouncer}\n"
      "          entries: {'app x': 'host={{host}}'}\n",
      "watch.yaml");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  auto c = ParseWatchConfig(*root, app::BuiltinSinks());
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("backend"), std::string::npos) << m;
  EXPECT_NE(m.find("pg;shutdown frontend x\" is not a valid name"), std::string::npos) << m;
  EXPECT_NE(m.find("\"site\" holds a control character"), std::string::npos) << m;
  EXPECT_NE(m.find("database name \"app x\""), std::string::npos) << m;
}

// The shipped template puts the node and host in a comment: with a hostile record it renders
// nothing; with a valid one, as many lines as it has.
TEST(HaproxyExamplesTest, ShippedTemplateRefusesInjectedLines) {
  const std::string tmpl = std::string(PGHERALD_SOURCE_DIR) + "/haproxy/examples/haproxy.cfg.tmpl";
  const TemplateVars extra = {{"master_socket", "/run/m.sock"},
                              {"admin_socket", "/run/a.sock"},
                              {"listen", "127.0.0.1:5000"},
                              {"backend", "pg"},
                              {"server", "primary"}};
  RouteTarget good = Route("node2", 5002);
  auto out = RenderTemplateFile(tmpl, haproxy::HaproxyTemplateVars(good, extra),
                                haproxy::HaproxyTemplateRules(good.action));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  RouteTarget bad = Route("node2\nprogram pwn\n  command /bin/touch /tmp/x", 5002);
  out = RenderTemplateFile(tmpl, haproxy::HaproxyTemplateVars(bad, extra),
                           haproxy::HaproxyTemplateRules(bad.action));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("variable \"node\""), std::string::npos);
}

TEST(HaproxyExamplesTest, DisableHaproxysOwnRetries) {
  const std::string root = PGHERALD_SOURCE_DIR;
  for (const char* name : {"/haproxy/examples/haproxy.cfg.tmpl", "/haproxy/examples/haproxy.cfg"}) {
    auto text = ReadFile(root + name);
    ASSERT_TRUE(text.ok()) << root + name;
    EXPECT_NE(text->find("\n    retries 0\n"), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace pgherald::watch
