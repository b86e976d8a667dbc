#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace pgherald {

std::string ProcessResult::Describe() const {
  if (timed_out) {
    return "timed out after " + std::to_string(elapsed.count()) + " ms (process group killed)";
  }
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit " + std::to_string(exit_code);
}

StatusOr<ProcessResult> RunProcess(const ProcessOptions& options) {
  if (options.argv.empty()) return InvalidArgument("no command to run (empty argv)");
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (const auto& [k, v] : options.env) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = options.argv;
  std::vector<char*> argv;
  for (auto& s : argv_copy) argv.push_back(s.data());
  argv.push_back(nullptr);

  const char* working_dir = nullptr;
  if (options.run_as.has_value() && !options.run_as->working_dir.empty()) {
    working_dir = options.run_as->working_dir.c_str();
  }

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return Unavailable(std::string("pipe: ") + std::strerror(errno));
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return Unavailable(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::setsid();
    if (options.nice != 0) (void)!::nice(options.nice);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (options.capture_output) {
      ::dup2(pipefd[1], 1);
      ::dup2(pipefd[1], 2);
    }
    if (options.run_as.has_value()) {
      if (::setgid(options.run_as->gid) != 0 || ::setuid(options.run_as->uid) != 0) ::_exit(126);
      if (working_dir != nullptr && ::chdir(working_dir) != 0) ::_exit(126);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    const char* why = std::strerror(errno);
    (void)!::write(2, "cannot execute ", 15);
    (void)!::write(2, argv[0], std::strlen(argv[0]));
    (void)!::write(2, ": ", 2);
    (void)!::write(2, why, std::strlen(why));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
  }
  ::close(pipefd[1]);
  ProcessResult result;
  const auto deadline = start + options.timeout;
  int status = 0;
  bool exited = false;
  bool pipe_open = true;
  char buf[4096];
  while (!exited) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      exited = true;
      break;
    }
    const int wait_ms = static_cast<int>(std::min<long long>(
        50, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
    if (pipe_open) {
      pollfd pfd{pipefd[0], POLLIN, 0};
      const int r = ::poll(&pfd, 1, wait_ms);
      if (r > 0) {
        const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
          if (result.output.size() < options.max_output) {
            result.output.append(
                buf, std::min(static_cast<size_t>(n), options.max_output - result.output.size()));
          }
        } else if (n == 0) {
          pipe_open = false;  // every writer closed; the child may still run
        }
      }
    } else {
      // The pipe is closed: the child is exiting or runs without output. Poll its exit.
      ::usleep(static_cast<useconds_t>(std::min(wait_ms, 5)) * 1000);
    }
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) exited = true;
  }
  // Whatever the child wrote before it exited (a grandchild holding the pipe is not waited for).
  ::fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  while (true) {
    const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    if (result.output.size() < options.max_output) {
      result.output.append(
          buf, std::min(static_cast<size_t>(n), options.max_output - result.output.size()));
    }
  }
  ::close(pipefd[0]);
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (!result.timed_out) {
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  } else {
    result.signal = SIGKILL;
  }
  return result;
}

}  // namespace pgherald
