// Helpers shared by the orchestrator's integration test and benchmark: orchestrator processes
// (the real `pgherald orchestrator` from $PGHERALD_BIN), their config files, a ZooKeeper reader and
// condition waits with deadlines. Header-only; test code only.
#pragma once

#include "common/model/voucher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/zk/zk_client.h"
#include "tests/lab/lab.h"

extern char** environ;

namespace pgherald::orchestrator_lab {

// Polls `condition` every `step` until it holds or `timeout` passes; true when it held.
inline bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds step = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct OrchestratorConfigSpec {
  std::string id;
  std::string root;
  int session_timeout_ms = 4000;
  int tick_ms = 200;
  int confirmation_window_ms = 500;
  bool dry_run = false;
  std::string log_level = "info";
  // Logical clusters, each naming the lab's three nodes (the sharding test runs several).
  std::vector<std::string> clusters = {"main"};
  std::string extra_clusters;  // more items of the `clusters:` list, after those (YAML, indented 2)
};

// Writes DIR/<id>.yaml for the lab's 3 nodes, connecting as the app user with a password file.
inline std::string WriteConfig(const lab::Lab& lab, const OrchestratorConfigSpec& spec) {
  const std::string pw_file = lab.dir() + "/orch-app-password";
  {
    std::ofstream pw(pw_file);
    pw << lab.Env("PG_APP_PASSWORD") << "\n";
  }
  std::string yaml;
  yaml += "zookeeper:\n  connect: \"" + lab.zk_connect() + "\"\n  root: " + spec.root +
          "\n  session_timeout_ms: " + std::to_string(spec.session_timeout_ms) + "\n";
  yaml += "logging:\n  level: " + spec.log_level + "\n";
  yaml += "orchestrator:\n  id: " + spec.id + "\n  tick_ms: " + std::to_string(spec.tick_ms) +
          "\n  confirmation_window_ms: " + std::to_string(spec.confirmation_window_ms) +
          "\n  probe_timeout_ms: 1500\n  dry_run: " + (spec.dry_run ? "true" : "false") + "\n";
  yaml += "clusters:\n";
  for (const std::string& cluster : spec.clusters) {
    yaml += "  - name: " + cluster + "\n    postgres:\n      user: " + lab.Env("PG_APP_USER") +
            "\n      dbname: " + lab.Env("PG_APP_DATABASE") + "\n      password_file: " + pw_file +
            "\n      connect_timeout_ms: 1000\n      statement_timeout_ms: 1000\n    nodes:\n";
    for (int n = 1; n <= 3; ++n) {
      yaml += "      - {name: node" + std::to_string(n) + ", host: 127.0.0.1, port: " +
              std::to_string(lab.pg_port(n)) + "}\n";
    }
  }
  yaml += spec.extra_clusters;
  const std::string path = lab.dir() + "/" + spec.id + "-" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path) << yaml;
  return path;
}

// One `pgherald orchestrator` child process; its output goes to log_path. Killed (SIGKILL) and
// reaped on destruction if still running.
class OrchestratorProcess {
 public:
  static std::unique_ptr<OrchestratorProcess> Start(const std::string& config,
                                                    const std::string& log_path) {
    const char* bin = std::getenv("PGHERALD_BIN");
    if (bin == nullptr) return nullptr;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = {bin, "orchestrator", "--config", config};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, bin, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return nullptr;
    return std::unique_ptr<OrchestratorProcess>(new OrchestratorProcess(pid, log_path));
  }
  ~OrchestratorProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // SIGTERM and wait for exit; the exit code (-1 if killed by a signal).
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void Kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Freeze() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void Thaw() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }
  // False once the process has exited (it is reaped then).
  bool Running() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == 0) return true;
    pid_ = -1;
    return false;
  }
  pid_t pid() const { return pid_; }
  std::string Log() const { return ReadFile(log_path_); }
  // Whether the log holds `needle` at or after byte `from` (a size of Log() taken earlier).
  bool LogContains(const std::string& needle, std::size_t from = 0) const {
    const std::string log = Log();
    return from <= log.size() && log.find(needle, from) != std::string::npos;
  }

 private:
  OrchestratorProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
};

// One `pgherald poller` child process for lab node N (1..3) under ROOT, with its notify socket at
// DIR/orch-poller-N.sock, and repmgr's event_notification_command (labctl's notify.sh, which runs
// `CMD notify ARGS...` with CMD read from DIR/notify-cmd-N) pointed at `pgherald notify` on that
// socket, as docs/poller.md sets it up. Killed (SIGKILL) and reaped on destruction if running.
struct PollerSpec {
  std::string root;
  int node = 0;
  int tick_ms = 1000;
  int session_timeout_ms = 4000;
  std::string extra;  // more lines of the poller: section, each indented by two spaces
};

inline std::string WritePollerConfig(const lab::Lab& lab, const PollerSpec& spec) {
  const std::string n = std::to_string(spec.node);
  const std::string dir = lab.dir();
  const std::string socket = dir + "/orch-poller-" + n + ".sock";
  std::string yaml;
  yaml += "zookeeper:\n  connect: \"" + lab.zk_connect() + "\"\n  root: " + spec.root +
          "\n  session_timeout_ms: " + std::to_string(spec.session_timeout_ms) + "\n";
  yaml += "logging:\n  level: info\n";
  yaml += "poller:\n  cluster: main\n  node: node" + n + "\n  host: 127.0.0.1\n  port: " +
          std::to_string(lab.pg_port(spec.node)) + "\n  tick_ms: " + std::to_string(spec.tick_ms) +
          "\n  heartbeat_ms: " + std::to_string(std::max(2000, spec.tick_ms)) +
          "\n  events_retention: 200\n  notify_socket: " + socket +
          "\n  notify_socket_mode: \"0666\"\n" + spec.extra;
  yaml += "postgres:\n  host: 127.0.0.1\n  port: " + std::to_string(lab.pg_port(spec.node)) +
          "\n  user: " + lab.Env("PG_APP_USER") + "\n  password: \"" + lab.Env("PG_APP_PASSWORD") +
          "\"\n  dbname: " + lab.Env("REPMGR_DB") + "\n  connect_timeout_ms: 1000\n";
  const std::string path = dir + "/orch-poller-" + n + ".yaml";
  {
    std::ofstream out(path);
    out << yaml;
  }
  ::chmod(path.c_str(), 0600);  // it holds a password
  const char* bin = std::getenv("PGHERALD_BIN");
  const std::string wrapper = dir + "/orch-poller-notify-" + n + ".sh";
  {
    std::ofstream out(wrapper);
    out << "#!/bin/sh\nshift\nexec " << (bin != nullptr ? bin : "pgherald") << " notify --socket "
        << socket << " \"$@\"\n";
  }
  ::chmod(wrapper.c_str(), 0755);
  std::ofstream(dir + "/notify-cmd-" + n) << wrapper << "\n";
  return path;
}

class PollerProcess {
 public:
  static std::unique_ptr<PollerProcess> Start(const std::string& config, const std::string& log_path) {
    const char* bin = std::getenv("PGHERALD_BIN");
    if (bin == nullptr) return nullptr;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = {bin, "poller", "--config", config};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, bin, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return nullptr;
    return std::unique_ptr<PollerProcess>(new PollerProcess(pid, log_path));
  }
  ~PollerProcess() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string Log() const { return ReadFile(log_path_); }

 private:
  PollerProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
};

// A reading session on the lab's ensemble.
inline std::unique_ptr<zk::ZkClient> Reader(const lab::Lab& lab) {
  zk::ZkClientOptions o;
  o.connect = lab.zk_connect();
  o.session_timeout = std::chrono::milliseconds(10000);
  auto c = zk::ZkClient::Connect(o);
  if (!c.ok()) return nullptr;
  return std::move(*c);
}

// The master record at ROOT/clusters/CLUSTER/master, or nullopt when absent or unreadable.
inline std::optional<model::MasterRecord> ReadMaster(zk::ZkSession& zk, const std::string& root,
                                                     const std::string& cluster = "main") {
  auto got = zk.Get(root + "/clusters/" + cluster + "/master");
  if (!got.ok()) return std::nullopt;
  auto rec = model::MasterRecord::FromJson(got->data);
  if (!rec.ok()) return std::nullopt;
  return *rec;
}

// The orchestrator ids of the vouchers bound to the current master record (common/model/voucher.h).
inline std::vector<std::string> Vouchers(zk::ZkSession& zk, const std::string& root,
                                         const std::string& cluster = "main") {
  const std::string path = root + "/clusters/" + cluster + "/master";
  auto m = zk.Get(path);
  auto c = zk.GetChildren(path);
  if (!m.ok() || !c.ok()) return {};
  auto record = model::MasterRecord::FromJson(m->data);
  if (!record.ok()) return {};
  std::vector<std::string> ids;
  for (const std::string& name : model::BoundVouchers(*c, *record, m->data)) {
    ids.push_back(model::ParseVoucherName(name)->orchestrator);
  }
  return ids;
}

}  // namespace pgherald::orchestrator_lab
