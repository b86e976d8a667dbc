#include "clients/src/runtime.h"

#include <utility>

namespace pgherald::client::internal {

std::shared_ptr<Runtime> Runtime::Acquire() {
  // Leaked on purpose: a watch may be destroyed during static destruction.
  static std::mutex* mu = new std::mutex;
  static std::weak_ptr<Runtime>* current = new std::weak_ptr<Runtime>;
  std::lock_guard lock(*mu);
  std::shared_ptr<Runtime> runtime = current->lock();
  if (!runtime) {
    runtime = std::shared_ptr<Runtime>(new Runtime);
    *current = runtime;
  }
  return runtime;
}

Runtime::Runtime() : state_(std::make_shared<State>()) {
  thread_ = std::thread([state = state_] { Loop(*state); });
}

Runtime::~Runtime() {
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  // Only a callback destroying the last watch runs this on the thread itself: the thread then
  // ends on its own (it holds the queue's state).
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

void Runtime::PostAt(std::chrono::steady_clock::time_point at, Task task) {
  {
    std::lock_guard lock(state_->mu);
    state_->timers.push(Entry{at, state_->next_seq++, std::make_shared<Task>(std::move(task))});
  }
  state_->cv.notify_one();
}

void Runtime::Loop(State& state) {
  std::unique_lock lock(state.mu);
  for (;;) {
    if (state.stopping) return;
    if (state.timers.empty()) {
      state.cv.wait(lock);
      continue;
    }
    const auto due = state.timers.top().at;
    if (std::chrono::steady_clock::now() < due) {
      state.cv.wait_until(lock, due);
      continue;
    }
    std::shared_ptr<Task> task = state.timers.top().task;
    state.timers.pop();
    lock.unlock();
    (*task)();
    task.reset();
    lock.lock();
  }
}

}  // namespace pgherald::client::internal
