// Running a helper program (an exec sink's command, `haproxy -c`, the poller's fence action) with a
// deadline. The one process spawner of pgherald.
//
// The child runs in its own session and process group (setsid), so that a timeout kills the
// command and everything it started (kill(-pgid, SIGKILL)), and so that a terminal's signals
// aimed at the daemon do not reach it. stdin is /dev/null; stdout and stderr are captured together
// (or, with capture_output false, left to the daemon's own).
//
// Safe in a threaded daemon: everything the child needs (argv, the whole environment) is built
// before fork, and the child makes only async-signal-safe calls (no setenv, no allocation) before
// exec.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace pgherald {

struct ProcessResult {
  int exit_code = -1;  // when it exited; -1 otherwise
  int signal = 0;      // the signal that ended it, 0 if it exited
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved, at most max_output bytes
  std::chrono::milliseconds elapsed{0};

  bool success() const { return !timed_out && signal == 0 && exit_code == 0; }
  // "exit 2", "killed by signal 9", "timed out after 1000 ms (process group killed)".
  std::string Describe() const;
};

struct ProcessOptions {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH
  std::map<std::string, std::string> env;  // added to (or replacing in) the daemon's environment
  std::chrono::milliseconds timeout{10000};
  size_t max_output = 64 * 1024;
  // Added to the child's nice value before exec: a helper that is not on the latency path (such
  // as `haproxy -c` after a switch) then yields the CPU to the work that is.
  int nice = 0;
  // false: the child writes to the daemon's stdout and stderr (its journal) and `output` stays
  // empty.
  bool capture_output = true;
  // When set, the child takes this group and user (setgid, then setuid) and this working directory
  // before exec; failing any of them exits 126 without running the program.
  struct Identity {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string working_dir;  // "" keeps the daemon's
  };
  std::optional<Identity> run_as;
};

// Starts the program and waits for it until the timeout, then kills its process group. Fails
// (kInvalidArgument) only for an empty argv, or (kUnavailable) when fork/pipe fail; a program that
// cannot be executed shows as exit code 127 with the reason in `output`.
StatusOr<ProcessResult> RunProcess(const ProcessOptions& options);

}  // namespace pgherald
