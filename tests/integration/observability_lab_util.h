// Shared by the observability integration tests (observability_*_test.cc): a lab with three real
// `pgherald poller` processes and `pgherald orchestrator` processes with the HTTP API on, a way to
// run `pgherald status|history|pause|resume` and capture their output and exit code, and a small
// HTTP client. Test code only; header-only.
#pragma once

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/orchestrator_lab_util.h"
#include "tests/lab/lab.h"

extern char** environ;

namespace pgherald::observability_lab {

using orchestrator_lab::ReadFile;
using orchestrator_lab::WaitUntil;

inline constexpr char kRoot[] = "/pgherald-obs";
inline constexpr char kCluster[] = "main";
inline constexpr char kToken[] = "obs-test-token-0123456789abcdef";

inline std::string Bin() {
  const char* bin = std::getenv("PGHERALD_BIN");
  return bin != nullptr ? bin : "";
}

// A child process (argv[0] is the program path); its stdout and stderr go to log_path. Killed
// with SIGKILL and reaped on destruction if still running.
class Process {
 public:
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const std::string& log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = argv;
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return nullptr;
    return std::unique_ptr<Process>(new Process(pid, log_path));
  }
  ~Process() { Signal(SIGKILL); }
  // Sends `sig` and returns at once (SIGHUP: the process goes on).
  void Send(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Sends `sig` and reaps the process.
  void Signal(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Whether the process still runs: /proc/PID/stat state, since a zombie (Z) still answers kill -0.
  bool Running() const {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) return false;  // exited (reaped now)
    const std::string stat = ReadFile("/proc/" + std::to_string(pid_) + "/stat");
    const std::size_t paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
           stat[paren + 2] != 'X';
  }
  std::string Log() const { return ReadFile(log_path_); }
  std::string LogTail(std::size_t n = 4000) const {
    const std::string l = Log();
    return l.size() > n ? l.substr(l.size() - n) : l;
  }

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs argv to completion, capturing stdout and stderr (through files in `dir`).
inline CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& dir) {
  static int counter = 0;
  const std::string base =
      dir + "/cmd-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, (base + ".out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (base + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  CommandResult r;
  const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return r;
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(base + ".out");
  r.err = ReadFile(base + ".err");
  return r;
}

struct HttpResult {
  int status = 0;  // 0: no response
  std::string body;
  std::string error;
};

inline HttpResult Http(int port, const std::string& method, const std::string& path,
                       const std::string& authorization = "", const std::string& body = "") {
  HttpResult r;
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
    session.setTimeout(Poco::Timespan(10, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!authorization.empty()) request.set("Authorization", authorization);
    if (method == "POST") {
      request.setContentType("application/json");
      request.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& out = session.sendRequest(request);
    if (method == "POST") out << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    Poco::StreamCopier::copyToString(in, r.body);
    r.status = static_cast<int>(response.getStatus());
  } catch (const Poco::Exception& e) {
    r.error = e.displayText();
  }
  return r;
}

// A port of this area's range (30000-30399, below the ephemeral range) that is free now: the first
// that binds, starting at a pid-dependent offset so that parallel runs rarely race.
inline int FreePort() {
  static int next = static_cast<int>(::getpid() % 400);
  for (int tries = 0; tries < 400; ++tries) {
    const int port = 30000 + (next++ % 400);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::close(fd);
    if (rc == 0) return port;
  }
  return 0;
}

inline void WriteFileMode(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

// What ObservabilityLab::Up adds on demand: HAProxy in the lab, and every poller with
// `http: {port: 0}` (/metrics).
struct LabExtras {
  bool haproxy = false;
  bool poller_http = false;
};

// The lab with 3 pollers and `orchestrators` orchestrators (ids orch-a, orch-b...), each serving
// HTTP on a free port (read from its log); orch-a has the POST token, the others have none.
class ObservabilityLab {
 public:
  static StatusOr<std::unique_ptr<ObservabilityLab>> Up(int orchestrators,
                                                        LabExtras extras = LabExtras()) {
    if (Bin().empty())
      return FailedPrecondition("PGHERALD_BIN must name the pgherald program (ctest sets it)");
    lab::LabOptions options;
    options.zk_ensemble = true;
    options.postgres = true;
    options.haproxy = extras.haproxy;
    auto lab = lab::Lab::Up(options);
    if (!lab.ok()) return lab.status();
    std::unique_ptr<ObservabilityLab> o(new ObservabilityLab());
    o->lab_ = std::move(*lab);
    const std::string dir = o->lab_->dir();
    for (int n = 1; n <= 3; ++n) {
      const std::string config = dir + "/obs-poller-" + std::to_string(n) + ".yaml";
      WriteFileMode(
          config,
          "zookeeper:\n  connect: \"" + o->lab_->zk_connect() + "\"\n  root: " + kRoot +
              "\n  session_timeout_ms: 4000\nlogging:\n  level: info\npoller:\n  cluster: " +
              kCluster + "\n  node: node" + std::to_string(n) +
              "\n  tick_ms: 300\n  heartbeat_ms: 1000\npostgres:\n  host: 127.0.0.1\n  port: " +
              std::to_string(o->lab_->pg_port(n)) + "\n  user: " + o->lab_->Env("PG_APP_USER") +
              "\n  password: \"" + o->lab_->Env("PG_APP_PASSWORD") +
              "\"\n  dbname: " + o->lab_->Env("REPMGR_DB") + "\n  connect_timeout_ms: 1000\n" +
              (extras.poller_http ? "http:\n  address: 127.0.0.1\n  port: 0\n" : ""),
          0600);
      o->poller_configs_.push_back(config);
      auto p = Process::Start({Bin(), "poller", "--config", config},
                              dir + "/obs-poller-" + std::to_string(n) + ".log");
      if (p == nullptr) return Internal("cannot start " + Bin());
      o->pollers_.push_back(std::move(p));
    }
    const std::string token_file = dir + "/obs-http-token";
    WriteFileMode(token_file, std::string(kToken) + "\n", 0600);
    for (int i = 0; i < orchestrators; ++i) {
      orchestrator_lab::OrchestratorConfigSpec spec;
      spec.id = std::string("orch-") + static_cast<char>('a' + i);
      spec.root = kRoot;
      const std::string log = dir + "/obs-" + spec.id + ".log";
      std::string config;
      std::unique_ptr<Process> p;
      int port = 0;
      // FreePort's port may be taken before the orchestrator binds it (other labs run beside this
      // one): a start that fails to bind is tried again on another port.
      for (int attempt = 0; port == 0; ++attempt) {
        config = orchestrator_lab::WriteConfig(*o->lab_, spec);
        const int http_port = FreePort();
        if (http_port == 0) return Internal("no free port in 30000-30399");
        std::ofstream(config, std::ios::app)
            << "http:\n  address: 127.0.0.1\n  port: " << http_port << "\n"
            << (i == 0 ? "  token_file: " + token_file + "\n" : std::string());
        const std::size_t log_from = ReadFile(log).size();
        p = Process::Start({Bin(), "orchestrator", "--config", config}, log);
        if (p == nullptr) return Internal("cannot start " + Bin());
        const std::regex re("http_listening .*port=([0-9]+)");
        bool in_use = false;
        WaitUntil(
            [&] {
              std::smatch m;
              const std::string text = p->Log().substr(log_from);
              in_use = text.find("Address already in use") != std::string::npos;
              if (in_use || !std::regex_search(text, m, re)) return in_use;
              port = std::stoi(m[1]);
              return true;
            },
            std::chrono::seconds(60));
        if (port == 0 && !(in_use && attempt < 5)) {
          return Internal(spec.id + " did not start its HTTP server:\n" + p->LogTail());
        }
        if (port == 0) p->Signal(SIGKILL);
      }
      o->orchestrators_.push_back(std::move(p));
      o->ports_.push_back(port);
      o->orchestrator_configs_.push_back(config);
    }
    return o;
  }

  ~ObservabilityLab() {
    for (auto& p : orchestrators_) p->Signal(SIGTERM);
    for (auto& p : pollers_) p->Signal(SIGTERM);
  }

  lab::Lab& lab() { return *lab_; }
  int port(int i) const { return ports_.at(static_cast<std::size_t>(i)); }
  Process& orchestrator(int i) { return *orchestrators_.at(static_cast<std::size_t>(i)); }
  Process& poller(int n) { return *pollers_.at(static_cast<std::size_t>(n - 1)); }
  const std::string& poller_config(int n) const {
    return poller_configs_.at(static_cast<std::size_t>(n - 1));
  }
  const std::string& orchestrator_config(int i) const {
    return orchestrator_configs_.at(static_cast<std::size_t>(i));
  }

  // `pgherald <args...> --zookeeper <ensemble> --root <root>`
  CommandResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {Bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--zookeeper", lab_->zk_connect(), "--root", kRoot});
    return RunCommand(argv, lab_->dir());
  }

  std::string Logs() {
    std::string out;
    for (std::size_t i = 0; i < orchestrators_.size(); ++i) {
      out += "--- orchestrator " + std::to_string(i) + " ---\n" + orchestrators_[i]->LogTail(3000);
    }
    for (std::size_t i = 0; i < pollers_.size(); ++i) {
      out += "--- poller " + std::to_string(i + 1) + " ---\n" + pollers_[i]->LogTail(1500);
    }
    return out;
  }

 private:
  ObservabilityLab() = default;
  std::unique_ptr<lab::Lab> lab_;
  std::vector<std::unique_ptr<Process>> pollers_;
  std::vector<std::unique_ptr<Process>> orchestrators_;
  std::vector<int> ports_;
  std::vector<std::string> poller_configs_;
  std::vector<std::string> orchestrator_configs_;
};

}  // namespace pgherald::observability_lab
