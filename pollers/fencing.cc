#include "pollers/fencing.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/subprocess.h"

namespace pgherald::pollers {

FenceVerdict ShouldFence(const model::NodeObservation& self, const MasterRead& master) {
  if (!self.reachable || self.in_recovery || self.timeline == 0) return {};
  if (!master.vouched()) return {};
  const model::MasterRecord& m = *master.record;
  if (m.state != model::MasterState::kOk || m.node == self.node) return {};
  if (m.timeline < self.timeline) return {};
  const std::string writable = "this node is writable on timeline " +
                               std::to_string(self.timeline) + " while the vouched master " +
                               m.node + " (epoch " + std::to_string(m.epoch) + ") is on timeline " +
                               std::to_string(m.timeline);
  if (m.timeline == self.timeline) {
    return {true, "same-timeline stale primary: " + writable +
                      " too (a second promotion; the orchestrator keeps its published master)"};
  }
  return {true, "stale primary: " + writable};
}

SelfFenceVerdict ShouldSelfFence(const SelfFenceInput& in) {
  if (!in.enabled || !in.node_writable || in.session_usable) return {};
  MonoTime since = in.last_answer;
  if (in.last_confirmed && *in.last_confirmed > since) since = *in.last_confirmed;
  const Millis age = std::max(Millis(0), std::chrono::duration_cast<Millis>(in.now - since));
  if (age < in.deadline) return {false, age, ""};
  return {true, age,
          "ZooKeeper lost: no usable session for " + std::to_string(age.count()) +
              " ms (self_fence_deadline_ms " + std::to_string(in.deadline.count()) +
              ") while this node is writable; the orchestrator may publish another node by now"};
}

FenceOutcome RunFenceAction(const FenceConfig& config, const std::string& node,
                            const std::string& master_node, const std::string& reason) {
  if (config.action == FenceAction::kReport) return {model::FencingState::kNone, "report only"};
  std::vector<std::string> argv;
  if (!config.command.empty()) {
    argv = {"/bin/sh", "-c", config.command};
  } else {
    argv = {config.pg_ctl, "stop", "-m", "immediate", "-w", "-D", config.data_dir};
  }
  uid_t uid = 0;
  gid_t gid = 0;
  const bool drop = ::geteuid() == 0 && config.action == FenceAction::kStop &&
                    !config.data_dir.empty();
  if (drop) {
    struct stat st {};
    if (::stat(config.data_dir.c_str(), &st) != 0) {
      return {model::FencingState::kFailed,
              "fence.data_dir " + config.data_dir + ": " + std::strerror(errno)};
    }
    uid = st.st_uid;
    gid = st.st_gid;
  }
  ProcessOptions options;
  options.argv = std::move(argv);
  options.env = {{"PGHERALD_NODE", node},
                 {"PGHERALD_MASTER_NODE", master_node},
                 {"PGHERALD_FENCE_REASON", reason}};
  options.timeout = config.timeout;
  options.capture_output = false;  // the command's output goes to the poller's journal
  // pg_ctl changes nothing but needs a readable working directory.
  if (drop && uid != 0) options.run_as = ProcessOptions::Identity{uid, gid, config.data_dir};
  auto result = RunProcess(options);
  if (!result.ok()) return {model::FencingState::kFailed, result.status().message()};
  if (result->timed_out) {
    return {model::FencingState::kFailed,
            "fence action timed out after " + std::to_string(config.timeout.count()) + " ms"};
  }
  if (result->success()) return {model::FencingState::kFenced, "exit 0"};
  return {model::FencingState::kFailed, result->Describe()};
}

}  // namespace pgherald::pollers
