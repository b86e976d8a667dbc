// RecordingSession: a ZkSession decorator for unit tests that counts what its user asks of
// ZooKeeper: synchronous reads (Get, GetChildren, Exists) and creates by path, asynchronous reads,
// multis.
// With hold_answers(n) it keeps the answers of asynchronous calls (reads and MultiAsync) back until n of them are waiting,
// then delivers them all (on the thread that sent the n-th): a user that awaits each answer before
// sending the next read never gets one, and `max_held()` tells how many were in flight at once.
// Everything else goes to the wrapped session unchanged. Test support only.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/zk/zk_session.h"

namespace pgherald::zk {

class RecordingSession final : public ZkSession {
 public:
  explicit RecordingSession(std::unique_ptr<ZkSession> inner) : inner_(std::move(inner)) {}

  // Counters since the last Reset().
  struct Counts {
    std::map<std::string, int> sync_reads;  // by path
    std::map<std::string, int> creates;     // by path (Create)
    int async_reads = 0;
    int multis = 0;  // Multi and MultiAsync
    int sync_total() const {
      int n = 0;
      for (const auto& [path, k] : sync_reads) n += k;
      return n;
    }
  };
  Counts counts() const {
    std::lock_guard lock(mu_);
    return counts_;
  }
  void Reset() {
    std::lock_guard lock(mu_);
    counts_ = Counts{};
    max_held_ = 0;
  }
  void hold_answers(std::size_t n) {
    std::lock_guard lock(mu_);
    hold_ = n;
  }
  std::size_t max_held() const {
    std::lock_guard lock(mu_);
    return max_held_;
  }
  ZkSession& inner() { return *inner_; }

  SessionState state() const override { return inner_->state(); }
  int64_t session_id() const override { return inner_->session_id(); }
  std::chrono::milliseconds session_timeout() const override { return inner_->session_timeout(); }
  std::chrono::milliseconds lease_remaining() const override { return inner_->lease_remaining(); }
  Status WaitConnected(std::chrono::milliseconds t) override { return inner_->WaitConnected(t); }
  StatusOr<std::string> Create(const std::string& p, const std::string& d, CreateMode m) override {
    {
      std::lock_guard lock(mu_);
      ++counts_.creates[p];
    }
    return inner_->Create(p, d, m);
  }
  StatusOr<NodeData> Get(const std::string& p, Watcher w) override {
    Count(p);
    return inner_->Get(p, std::move(w));
  }
  StatusOr<std::optional<Stat>> Exists(const std::string& p, Watcher w) override {
    Count(p);
    return inner_->Exists(p, std::move(w));
  }
  StatusOr<std::vector<std::string>> GetChildren(const std::string& p, Watcher w) override {
    Count(p);
    return inner_->GetChildren(p, std::move(w));
  }
  StatusOr<Stat> Set(const std::string& p, const std::string& d, int32_t v) override {
    return inner_->Set(p, d, v);
  }
  Status Delete(const std::string& p, int32_t v) override { return inner_->Delete(p, v); }
  StatusOr<MultiResult> Multi(const std::vector<Op>& ops, int* failed) override {
    {
      std::lock_guard lock(mu_);
      ++counts_.multis;
    }
    return inner_->Multi(ops, failed);
  }
  Status MultiAsync(const std::vector<Op>& ops, MultiDone done) override {
    using Answer = std::pair<StatusOr<MultiResult>, int>;
    auto held = Hold<Answer>(
        [done = std::move(done)](Answer a) { done(std::move(a.first), a.second); },
        &Counts::multis);
    return inner_->MultiAsync(ops, [held](StatusOr<MultiResult> result, int failed) mutable {
      held(Answer(std::move(result), failed));
    });
  }
  StatusOr<std::string> CreateWithAcl(const std::string& p, const std::string& d, CreateMode m,
                                      const Acl& acl) override {
    return inner_->CreateWithAcl(p, d, m, acl);
  }
  StatusOr<AclData> GetAcl(const std::string& p) override { return inner_->GetAcl(p); }
  Status SetAcl(const std::string& p, const Acl& acl) override { return inner_->SetAcl(p, acl); }
  Status GetAsync(const std::string& p, Watcher w, GetDone done, WatchDelivery d) override {
    return inner_->GetAsync(p, std::move(w), Hold<StatusOr<NodeData>>(std::move(done)), d);
  }
  Status ExistsAsync(const std::string& p, Watcher w, ExistsDone done, WatchDelivery d) override {
    return inner_->ExistsAsync(p, std::move(w), Hold<StatusOr<std::optional<Stat>>>(std::move(done)),
                               d);
  }
  Status GetChildrenAsync(const std::string& p, Watcher w, ChildrenDone done,
                          WatchDelivery d) override {
    return inner_->GetChildrenAsync(p, std::move(w),
                                    Hold<StatusOr<std::vector<std::string>>>(std::move(done)), d);
  }
  void SetStateListener(StateListener l) override { inner_->SetStateListener(std::move(l)); }
  void Close() override { inner_->Close(); }

 private:
  void Count(const std::string& path) {
    std::lock_guard lock(mu_);
    ++counts_.sync_reads[path];
  }
  // Counts the read; with a hold, keeps its answer back until `hold_` answers wait.
  template <typename R>
  std::function<void(R)> Hold(std::function<void(R)> done, int Counts::*counter = &Counts::async_reads) {
    {
      std::lock_guard lock(mu_);
      ++(counts_.*counter);
    }
    return [this, done = std::move(done)](R answer) mutable {
      std::vector<std::function<void()>> release;
      {
        std::lock_guard lock(mu_);
        if (hold_ == 0) {
          release.push_back([&done, &answer] { done(std::move(answer)); });
        } else {
          auto kept = std::make_shared<R>(std::move(answer));
          held_.push_back([done, kept] { done(std::move(*kept)); });
          max_held_ = std::max(max_held_, held_.size());
          if (held_.size() >= hold_) release.swap(held_);
        }
      }
      for (auto& f : release) f();
    };
  }

  std::unique_ptr<ZkSession> inner_;
  mutable std::mutex mu_;
  Counts counts_;
  std::size_t hold_ = 0;
  std::size_t max_held_ = 0;
  std::vector<std::function<void()>> held_;
};

}  // namespace pgherald::zk
