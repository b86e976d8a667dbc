// The runtime of libpgherald's watches: ONE thread per process, shared by every MasterWatch, for
// the slow work that must not run on ZooKeeper's threads: building sessions, closing them
// (zookeeper_close blocks and is forbidden in a callback) and the retry timers. Reads and
// callbacks never wait for it. It lives while at least one MasterWatch does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace pgherald::client::internal {

class Runtime {
 public:
  using Task = std::function<void()>;

  // The process's runtime, started by the first caller; it stops when the last holder lets go.
  static std::shared_ptr<Runtime> Acquire();

  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs `task` on the runtime's thread at `at` (tasks due at the same time in posting order).
  void PostAt(std::chrono::steady_clock::time_point at, Task task);
  void PostAfter(std::chrono::milliseconds delay, Task task) {
    PostAt(std::chrono::steady_clock::now() + delay, std::move(task));
  }

 private:
  struct Entry {
    std::chrono::steady_clock::time_point at;
    uint64_t seq;  // FIFO among equal times
    std::shared_ptr<Task> task;
    bool operator>(const Entry& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> timers;
    uint64_t next_seq = 0;
    bool stopping = false;
  };

  Runtime();
  static void Loop(State& state);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace pgherald::client::internal
