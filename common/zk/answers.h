// Answers: the answers of asynchronous ZooKeeper calls sent together and awaited once (a batch's
// reads or writes: docs/orchestrator.md, "Reads"). Shared with the calls' callbacks through a
// std::shared_ptr, so that an answer arriving after Wait() gave up writes into this object, never
// into what Wait() returned.
//
//   auto answers = std::make_shared<Answers<StatusOr<NodeData>>>();
//   const std::size_t slot = answers->Add();
//   Status sent = session.GetAsync(path, nullptr, [answers, slot](auto got) { answers->Put(slot, std::move(got)); });
//   if (!sent.ok()) answers->Put(slot, sent);   // not sent: the callback never runs
//   auto got = answers->Wait(session.session_timeout());  // got[slot]: nullopt if unanswered
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace pgherald::zk {

template <typename T>
class Answers {
 public:
  // A slot for the next call's answer.
  std::size_t Add() {
    std::lock_guard lock(mu_);
    got_.emplace_back();
    ++left_;
    return got_.size() - 1;
  }
  // The answer for `slot` (any thread; once per slot).
  void Put(std::size_t slot, T answer) {
    std::lock_guard lock(mu_);
    got_[slot] = std::move(answer);
    if (--left_ == 0) cv_.notify_all();
  }
  // Waits until every slot has its answer or `timeout` has passed; a copy of the answers, nullopt
  // for those that did not come.
  std::vector<std::optional<T>> Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return left_ == 0; });
    return got_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t left_ = 0;
  std::vector<std::optional<T>> got_;
};

}  // namespace pgherald::zk
