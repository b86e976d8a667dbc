// Lab: runs tests/lab/labctl as a child process and reads the lab's DIR/lab.env.
#include "tests/lab/lab.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace pgherald::lab {
namespace {

struct ProcessResult {
  int exit_code = -1;  // -1: killed by a signal or not run
  std::string out;
  std::string err;
};

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  const auto begin = s.find_first_not_of(ws);
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(ws);
  return s.substr(begin, end - begin + 1);
}

// Runs argv, collecting stdout and stderr until both close. labctl's daemons never hold these
// pipes, so EOF comes when labctl exits. stderr is also echoed to our stderr as it arrives, so a
// test's log shows what the lab did (and why it failed) in order.
StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv, bool echo_stderr) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Internal(std::string("pipe: ") + strerror(errno));
  }
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return Internal(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    execv(cargv[0], cargv.data());
    const char msg[] = "lab: exec of labctl failed\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);

  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        const std::string chunk(buf, static_cast<size_t>(n));
        if (i == 0) {
          result.out += chunk;
        } else {
          result.err += chunk;
          if (echo_stderr) {
            std::fwrite(chunk.data(), 1, chunk.size(), stderr);
            std::fflush(stderr);
          }
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const auto& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Internal(std::string("waitpid: ") + strerror(errno));
  }
  if (WIFEXITED(wstatus)) result.exit_code = WEXITSTATUS(wstatus);
  return result;
}

std::string LabctlPath() {
  const char* path = std::getenv("PGHERALD_LABCTL");
  return path == nullptr ? "" : path;
}

bool EchoLabLogs() {
  // Progress lines from labctl are useful in CI logs; PGHERALD_LAB_QUIET=1 silences them.
  const char* quiet = std::getenv("PGHERALD_LAB_QUIET");
  return quiet == nullptr || std::string(quiet).empty() || std::string(quiet) == "0";
}

StatusOr<std::map<std::string, std::string>> ReadEnvFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return ParseLabEnv(text.str());
}

StatusOr<int> ParseInt(const std::string& text, const std::string& what) {
  try {
    size_t used = 0;
    const int value = std::stoi(text, &used);
    if (Trim(text.substr(used)).empty()) return value;
  } catch (const std::exception&) {
  }
  return Internal(what + ": expected a number from labctl, got '" + text + "'");
}

}  // namespace

StatusOr<std::map<std::string, std::string>> ParseLabEnv(const std::string& text) {
  std::map<std::string, std::string> env;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Internal("lab.env line " + std::to_string(number) + ": expected KEY='VALUE'");
    }
    // The value as the shell reads it: '...' literally, \c as c, anything else as it is.
    std::string value;
    for (std::size_t i = eq + 1; i < line.size(); ++i) {
      if (line[i] == '\'') {
        const auto close = line.find('\'', i + 1);
        if (close == std::string::npos) {
          return Internal("lab.env line " + std::to_string(number) + ": unterminated quote");
        }
        value += line.substr(i + 1, close - i - 1);
        i = close;
      } else if (line[i] == '\\' && i + 1 < line.size()) {
        value += line[++i];
      } else {
        value += line[i];
      }
    }
    env[line.substr(0, eq)] = std::move(value);
  }
  return env;
}

Lab::Lab(std::string labctl, std::string dir, std::map<std::string, std::string> env)
    : labctl_(std::move(labctl)), dir_(std::move(dir)), env_(std::move(env)) {}

StatusOr<std::unique_ptr<Lab>> Lab::Up(const LabOptions& options) {
  const std::string labctl = LabctlPath();
  if (labctl.empty()) {
    return FailedPrecondition(
        "PGHERALD_LABCTL is not set: point it at tests/lab/labctl (ctest sets it)");
  }
  if (access(labctl.c_str(), X_OK) != 0) {
    return FailedPrecondition("PGHERALD_LABCTL=" + labctl + " is not an executable file");
  }
  std::vector<std::string> argv = {labctl, "up"};
  if (options.zk_ensemble) argv.push_back("--zk-ensemble");
  if (options.zk_standalone) argv.push_back("--zk-standalone");
  if (options.postgres) argv.push_back("--postgres");
  if (options.haproxy) argv.push_back("--haproxy");
  if (options.pgbouncer) argv.push_back("--pgbouncer");
  auto result = RunProcess(argv, EchoLabLogs());
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    // labctl has already torn down what it started; its stderr names the component and carries
    // the tail of that component's log.
    return Unavailable("labctl up failed (exit " + std::to_string(result->exit_code) +
                       "):\n" + result->err);
  }
  const std::string dir = Trim(result->out);
  if (dir.empty()) return Internal("labctl up printed no lab dir; stderr:\n" + result->err);
  auto env = ReadEnvFile(dir + "/lab.env");
  if (!env.ok()) return env.status();
  return std::unique_ptr<Lab>(new Lab(labctl, dir, std::move(env).value()));
}

Lab::~Lab() {
  auto result = RunProcess({labctl_, "down", "--dir", dir_}, EchoLabLogs());
  if (!result.ok() || result->exit_code != 0) {
    std::fprintf(stderr, "lab: labctl down --dir %s failed: %s\n", dir_.c_str(),
                 result.ok() ? result->err.c_str() : result.status().ToString().c_str());
  }
}

std::string Lab::Env(const std::string& key) const {
  const auto it = env_.find(key);
  return it == env_.end() ? "" : it->second;
}

int Lab::EnvInt(const std::string& key) const {
  const std::string value = Env(key);
  if (value.empty()) return 0;
  try {
    return std::stoi(value);
  } catch (const std::exception&) {
    return 0;
  }
}

std::string Lab::pg_conninfo(int node, const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(pg_port(node)) + " user=" +
         Env("PG_SUPERUSER") + " dbname=" + dbname + " connect_timeout=2";
}

StatusOr<std::string> Lab::Run(const std::string& action, const std::vector<std::string>& args,
                               bool echo_stderr) {
  std::vector<std::string> argv = {labctl_, action};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--dir");
  argv.push_back(dir_);
  // Actions are often polled: by default their stderr goes into the error, not the test's log.
  auto result = RunProcess(argv, echo_stderr && EchoLabLogs());
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    std::string cmd = "labctl " + action;
    for (const auto& a : args) cmd += " " + a;
    return Unavailable(cmd + " failed (exit " + std::to_string(result->exit_code) + "): " +
                       Trim(result->err));
  }
  return Trim(result->out);
}

StatusOr<int> Lab::ZkLeader() {
  auto out = Run("zk-leader");
  if (!out.ok()) return out.status();
  return ParseInt(*out, "zk-leader");
}

Status Lab::PgKill(int node) { return Run("pg-kill", {std::to_string(node)}).status(); }
Status Lab::PgFreeze(int node) { return Run("pg-freeze", {std::to_string(node)}).status(); }
Status Lab::PgThaw(int node) { return Run("pg-thaw", {std::to_string(node)}).status(); }
Status Lab::PgStop(int node) { return Run("pg-stop", {std::to_string(node)}).status(); }
Status Lab::PgStartWritable(int node) {
  return Run("pg-start-writable", {std::to_string(node)}).status();
}
Status Lab::PgRejoin(int node) { return Run("pg-rejoin", {std::to_string(node)}).status(); }
Status Lab::PgPromote(int node) { return Run("pg-promote", {std::to_string(node)}).status(); }
StatusOr<std::string> Lab::RepmgrdState() { return Run("repmgrd-state", {}); }
Status Lab::RepmgrdStop(int node) { return Run("repmgrd-stop", {std::to_string(node)}).status(); }
Status Lab::RepmgrdStart(int node) {
  return Run("repmgrd-start", {std::to_string(node)}).status();
}

StatusOr<int> Lab::Check(std::chrono::seconds wait) {
  auto out = Run("check", {"--timeout", std::to_string(wait.count())});  // 0: look once
  if (!out.ok()) return out.status();
  return ParseInt(*out, "check");
}

StatusOr<int> Lab::Restore(int prefer_primary, std::chrono::seconds timeout) {
  std::vector<std::string> args = {"--timeout", std::to_string(timeout.count())};
  if (prefer_primary > 0) {
    args.push_back("--primary");
    args.push_back(std::to_string(prefer_primary));
  }
  // What the restore repaired goes to the test's log.
  auto out = Run("restore", args, /*echo_stderr=*/true);
  if (!out.ok()) return out.status();
  return ParseInt(*out, "restore");
}

bool Lab::RepmgrdInFollow(int node) const {
  std::ifstream in(Env("REPMGRD_LOG_" + std::to_string(node)), std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  const std::string log = text.str();
  const auto follow = log.rfind("attempting to follow new primary");
  if (follow == std::string::npos) return false;
  // Monitoring again: after a follow, after a restart (rejoin, a failed follow), or after a follow
  // that succeeded while its connection to the local node broke ("upstream appears to have
  // changed, restarting monitoring": repmgrd logs nothing more until its 5-minute status line).
  for (const char* again : {"resuming standby monitoring mode",
                            "monitoring connection to upstream node", "restarting monitoring"}) {
    if (log.find(again, follow) != std::string::npos) return false;
  }
  return true;
}

StatusOr<std::vector<int>> Lab::WritableNodes() {
  auto out = Run("pg-writable");
  if (!out.ok()) return out.status();
  std::vector<int> nodes;
  std::istringstream in(*out);
  std::string word;
  while (in >> word) {
    auto n = ParseInt(word, "pg-writable");
    if (!n.ok()) return n.status();
    nodes.push_back(*n);
  }
  return nodes;
}

StatusOr<int> Lab::WaitForPrimary(int not_node, std::chrono::seconds timeout) {
  std::vector<std::string> args = {"--timeout", std::to_string(timeout.count())};
  if (not_node > 0) {
    args.push_back("--not");
    args.push_back(std::to_string(not_node));
  }
  auto out = Run("pg-wait-primary", args);
  if (!out.ok()) return out.status();
  return ParseInt(*out, "pg-wait-primary");
}

}  // namespace pgherald::lab
