#include "tests/bench/observation_load.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>

#include "common/model/cluster_model.h"
#include "common/zk/zk_client.h"
#include "pollers/observation.h"
#include "pollers/publisher.h"

namespace pgherald::bench {
namespace {

using Steady = std::chrono::steady_clock;

// A session shared by the publishers of one worker: ObservationPublisher owns what its factory
// returns, so each gets this non-owning view. Close() is the worker's business (at the end); a
// publisher that drops a dead session asks the factory again and gets the same (dead) one, whose
// calls fail: counted as errors, which is what a dead session is.
class SharedSession final : public zk::ZkSession {
 public:
  explicit SharedSession(zk::ZkSession* inner) : inner_(inner) {}
  zk::SessionState state() const override { return inner_->state(); }
  int64_t session_id() const override { return inner_->session_id(); }
  std::chrono::milliseconds session_timeout() const override { return inner_->session_timeout(); }
  std::chrono::milliseconds lease_remaining() const override { return inner_->lease_remaining(); }
  Status WaitConnected(std::chrono::milliseconds timeout) override { return inner_->WaitConnected(timeout); }
  StatusOr<std::string> Create(const std::string& path, const std::string& data, zk::CreateMode mode) override {
    return inner_->Create(path, data, mode);
  }
  StatusOr<zk::NodeData> Get(const std::string& path, zk::Watcher watch) override {
    return inner_->Get(path, std::move(watch));
  }
  StatusOr<std::optional<zk::Stat>> Exists(const std::string& path, zk::Watcher watch) override {
    return inner_->Exists(path, std::move(watch));
  }
  StatusOr<std::vector<std::string>> GetChildren(const std::string& path, zk::Watcher watch) override {
    return inner_->GetChildren(path, std::move(watch));
  }
  StatusOr<zk::Stat> Set(const std::string& path, const std::string& data, int32_t version) override {
    return inner_->Set(path, data, version);
  }
  Status Delete(const std::string& path, int32_t version) override { return inner_->Delete(path, version); }
  StatusOr<zk::MultiResult> Multi(const std::vector<zk::Op>& ops, int* failed_op) override {
    return inner_->Multi(ops, failed_op);
  }
  void SetStateListener(zk::StateListener) override {}
  void Close() override {}

 private:
  zk::ZkSession* inner_;
};

// One backend's latest observation, from the poller's statement (as Poller::Observe builds it,
// without the timeline-start function: promoted_at then comes from repmgr's events).
class BackendTicker {
 public:
  explicit BackendTicker(ObservationLoadOptions::Backend backend) : backend_(std::move(backend)) {
    identity_.node = backend_.node;
    identity_.host = backend_.params.host;
    identity_.port = backend_.params.port;
    identity_.version = "scale-bench";
  }
  model::NodeObservation Tick() {
    if (conn_ && !conn_->ok()) conn_.reset();
    if (!conn_) {
      auto conn = pg::PgConnection::Connect(backend_.params);
      if (!conn.ok()) return pollers::BuildUnreachable(identity_, conn.status().message(), &last_);
      conn_ = std::move(*conn);
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto result = conn_->Exec(pollers::BuildTickSql(layout_, cursor_.QueryFromUs()));
      if (!result.ok()) return last_ = pollers::BuildUnreachable(identity_, result.status().message(), &last_);
      auto tick = pollers::ParseTickResult(*result);
      if (!tick.ok()) return last_ = pollers::BuildUnreachable(identity_, tick.status().message(), &last_);
      auto detected = pollers::DetectLayout(tick->repmgr_tables);
      std::string layout_error;
      if (detected.ok() && !(*detected == layout_)) {
        layout_ = *detected;
        cursor_.Reset();
        continue;  // read again with the layout's columns
      }
      if (!detected.ok()) layout_error = detected.status().message();
      (void)cursor_.Accept(tick->events);
      return last_ = pollers::BuildObservation(identity_, *tick, layout_error);
    }
    return last_ = pollers::BuildUnreachable(identity_, "repmgr layout kept changing", &last_);
  }

 private:
  ObservationLoadOptions::Backend backend_;
  pollers::NodeIdentity identity_;
  std::unique_ptr<pg::PgConnection> conn_;
  pollers::RepmgrLayout layout_;
  pollers::EventCursor cursor_;
  model::NodeObservation last_;
};

// One logical node: a poller's publisher and what it last wrote.
struct Slot {
  std::unique_ptr<pollers::ObservationPublisher> publisher;
  std::size_t backend = 0;
  std::string host;
  std::uint64_t seq = 0;
  bool published = false;
  Steady::time_point last_publish{};
  model::NodeObservation last;
};

}  // namespace

struct ObservationLoad::State {
  ObservationLoadOptions options;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<model::NodeObservation> current;  // per backend, guarded by mu
  std::atomic<std::uint64_t> reads{0}, writes{0}, errors{0}, late_rounds{0}, backend_ticks{0};
  std::vector<std::unique_ptr<zk::ZkClient>> sessions;
  std::size_t logical_nodes = 0;
  std::vector<std::thread> threads;

  // Sleeps until `t` or stop; false on stop.
  bool SleepUntil(Steady::time_point t) {
    std::unique_lock lock(mu);
    return !cv.wait_until(lock, t, [this] { return stop.load(); });
  }

  void RefreshLoop() {
    std::vector<BackendTicker> tickers;
    for (const auto& b : options.backends) tickers.emplace_back(b);
    auto next = Steady::now();
    while (true) {
      for (std::size_t i = 0; i < tickers.size(); ++i) {
        model::NodeObservation obs = tickers[i].Tick();
        ++backend_ticks;
        std::lock_guard lock(mu);
        current[i] = std::move(obs);
      }
      next += options.tick;
      if (!SleepUntil(next)) return;
    }
  }

  void WorkerLoop(std::vector<Slot> slots) {
    auto round = Steady::now();
    while (!stop) {
      for (std::size_t i = 0; i < slots.size(); ++i) {
        const auto at = round + options.tick * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(slots.size());
        if (!SleepUntil(at)) return;
        Slot& s = slots[i];
        // The poller's fencing read of a reachable node, every tick.
        auto master = s.publisher->ReadMaster();
        reads += 2;
        if (!master.ok()) ++errors;
        model::NodeObservation obs;
        {
          std::lock_guard lock(mu);
          obs = current[s.backend];
        }
        obs.host = s.host;
        const auto now = Steady::now();
        const bool due = !s.published || pollers::ObservationChanged(obs, s.last) ||
                         now - s.last_publish >= options.heartbeat || s.publisher->TakeNewSession();
        if (!due) continue;
        obs.seq = ++s.seq;
        obs.observed_at_ms = model::ToWallMillis(std::chrono::system_clock::now());
        if (Status st = s.publisher->Publish(obs.ToJson()); st.ok()) {
          ++writes;
          s.published = true;
          s.last_publish = now;
        } else {
          ++errors;
          s.published = false;
        }
        s.last = std::move(obs);
      }
      round += options.tick;
      if (Steady::now() > round) {
        ++late_rounds;
        round = Steady::now();
      }
    }
  }
};

StatusOr<std::unique_ptr<ObservationLoad>> ObservationLoad::Start(ObservationLoadOptions options) {
  auto state = std::make_shared<State>();
  const std::size_t nodes = options.clusters.size() * options.backends.size();
  const int sessions =
      static_cast<int>(std::max<std::size_t>(1, std::min(static_cast<std::size_t>(std::max(1, options.sessions)), nodes)));
  state->options = std::move(options);
  state->logical_nodes = nodes;
  state->current.resize(state->options.backends.size());
  if (nodes == 0) return std::unique_ptr<ObservationLoad>(new ObservationLoad(state));
  zk::ZkClientOptions zo;
  zo.connect = state->options.zk_connect;
  zo.session_timeout = std::chrono::milliseconds(10000);
  for (int i = 0; i < sessions; ++i) {
    auto c = zk::ZkClient::Connect(zo);
    if (!c.ok()) return c.status();
    state->sessions.push_back(std::move(*c));
  }
  std::vector<std::vector<Slot>> per_worker(static_cast<std::size_t>(sessions));
  std::size_t k = 0;
  for (const ObservationLoadOptions::Cluster& cluster : state->options.clusters) {
    for (std::size_t b = 0; b < state->options.backends.size(); ++b, ++k) {
      zk::ZkSession* shared = state->sessions[k % static_cast<std::size_t>(sessions)].get();
      Slot slot;
      slot.backend = b;
      slot.host = cluster.host;
      slot.publisher = std::make_unique<pollers::ObservationPublisher>(
          [shared]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
            return std::unique_ptr<zk::ZkSession>(new SharedSession(shared));
          },
          state->options.root, cluster.name, state->options.backends[b].node, /*events_retention=*/200);
      per_worker[k % static_cast<std::size_t>(sessions)].push_back(std::move(slot));
    }
  }
  // The first observations before any worker publishes.
  for (std::size_t b = 0; b < state->options.backends.size(); ++b) {
    state->current[b] = BackendTicker(state->options.backends[b]).Tick();
  }
  State* raw = state.get();
  state->threads.emplace_back([raw] { raw->RefreshLoop(); });
  for (int i = 0; i < sessions; ++i) {
    auto slots = std::make_shared<std::vector<Slot>>(std::move(per_worker[static_cast<std::size_t>(i)]));
    state->threads.emplace_back([raw, slots] { raw->WorkerLoop(std::move(*slots)); });
  }
  return std::unique_ptr<ObservationLoad>(new ObservationLoad(state));
}

ObservationLoad::~ObservationLoad() {
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  for (auto& t : state_->threads) t.join();
  for (auto& s : state_->sessions) s->Close();
}

ObservationLoad::Counters ObservationLoad::counters() const {
  Counters c;
  c.reads = state_->reads;
  c.writes = state_->writes;
  c.errors = state_->errors;
  c.late_rounds = state_->late_rounds;
  c.backend_ticks = state_->backend_ticks;
  return c;
}

std::size_t ObservationLoad::logical_nodes() const { return state_->logical_nodes; }
int ObservationLoad::sessions() const { return static_cast<int>(state_->sessions.size()); }

}  // namespace pgherald::bench
