// The orchestrator's scheduler: which cluster runs when (orchestrator.h, docs/orchestrator.md "A
// round"). Kept apart from the round's code in orchestrator.cc.
//
// Each cluster's periodic verification is due on a grid of its own: cluster i of N at
// grid_epoch_ + i * verify_interval / N + k * verify_interval, so N clusters spread evenly over the
// interval. A round run for any other reason (a watch) counts as a verification too; the next one
// is due at the first grid point after that round's start, so no cluster goes longer than the
// interval unverified (unless the loop is overloaded: verification_lag() shows it).
//
// Clusters run in batches (RunBatch): the rounds of a batch share one probe call and one
// write-check call, so N due clusters cost one probe round trip, not N one after another.
#include <algorithm>
#include <cstddef>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "orchestrator/orchestrator.h"
#include "orchestrator/cluster_round.h"

namespace pgherald::orchestrator {
namespace {

const log::Logger& Log() {
  static const log::Logger logger("orchestrator");
  return logger;
}

constexpr char kTriggerWatch[] = "watch";
constexpr char kTriggerSweep[] = "sweep";
constexpr char kTriggerVerify[] = "verify";
constexpr char kTriggerRetry[] = "retry";

// The names of the clusters of `entries` (Orchestrator::Scheduled).
template <typename Entry>
std::set<std::string> NamesOf(const std::vector<Entry>& entries) {
  std::set<std::string> names;
  for (const Entry& e : entries) names.insert(e.spec->name);
  return names;
}

// The entries of `batch` after its first `prepared`: {those that stay in it, those that go back}.
// Routine ones (not woken) stay within `share`, counting the prepared ones; woken ones stay when
// `keep_woken`. Both keep the batch's order.
template <typename Entry>
std::pair<std::vector<Entry>, std::vector<Entry>> SplitUnprepared(const std::vector<Entry>& batch,
                                                                  std::size_t prepared,
                                                                  bool keep_woken,
                                                                  std::size_t share) {
  const auto routine_entry = [](const Entry& e) { return e.trigger != kTriggerWatch; };
  std::size_t routine = static_cast<std::size_t>(std::count_if(
      batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(prepared), routine_entry));
  std::pair<std::vector<Entry>, std::vector<Entry>> out;
  for (std::size_t j = prepared; j < batch.size(); ++j) {
    const bool routine_one = routine_entry(batch[j]);
    const bool keep = routine_one ? routine < share : keep_woken;
    if (keep && routine_one) ++routine;
    (keep ? out.first : out.second).push_back(batch[j]);
  }
  return out;
}

// The first point of the grid base + k * interval (k >= 0) after `t`.
MonoTime GridAfter(MonoTime base, std::chrono::nanoseconds interval, MonoTime t) {
  interval = std::max<std::chrono::nanoseconds>(interval, std::chrono::milliseconds(1));
  if (t < base) return base;
  return base + ((t - base) / interval + 1) * interval;
}

}  // namespace

void Orchestrator::Wake() {
  {
    std::lock_guard lock(mu_);
    sweep_ = true;
    woken_ = true;
  }
  cv_.notify_all();
}

void Orchestrator::WakeCluster(const std::string& cluster, bool urgent) {
  {
    std::lock_guard lock(mu_);
    const bool added = woken_clusters_.insert(cluster).second;
    if (urgent) {
      // At the front (once); a copy further back (woken before) is skipped by TakeWoken once
      // this one ran.
      if (urgent_clusters_.insert(cluster).second) woken_order_.push_front(cluster);
    } else if (added) {
      woken_order_.push_back(cluster);
    }
    woken_ = true;
  }
  cv_.notify_all();
}

void Orchestrator::NodeConnectionLost(const std::string& host, int port) {
  {
    std::lock_guard lock(mu_);
    lost_endpoints_.emplace(host, port);
    woken_ = true;
  }
  cv_.notify_all();
}

void Orchestrator::WakeClustersOfLostNodes() {
  std::set<std::pair<std::string, int>> lost;
  {
    std::lock_guard lock(mu_);
    lost.swap(lost_endpoints_);
  }
  if (lost.empty()) return;
  for (const auto& [host, port] : lost) {
    const auto there = [&, &host = host, port = port](const NodeTarget& t) {
      return t.params.host == host && t.params.port == port;
    };
    std::int64_t woken = 0;
    for (const ClusterSpec& spec : clusters_) {
      // Another member's clusters are its to verify (its own prober sees the same close).
      if (!options_.dry_run && owned_.count(spec.name) == 0) continue;
      auto rt = runtime_.find(spec.name);
      const bool learned_there = rt != runtime_.end() && std::any_of(rt->second.learned.begin(),
                                                                     rt->second.learned.end(), there);
      if (!learned_there && std::none_of(spec.nodes.begin(), spec.nodes.end(), there)) continue;
      WakeCluster(spec.name, /*urgent=*/true);  // once in the queue however many endpoints
      ++woken;
    }
    Log().Info("node_connection_closed",
               {{"host", host}, {"port", port}, {"clusters_woken", woken}});
  }
}

void Orchestrator::RunRound() {
  RunPass(PassKind::kEveryCluster);
  IdleUnlessLeading();
}

void Orchestrator::RunDue() {
  RunPass(PassKind::kScheduled);
  IdleUnlessLeading();
}

void Orchestrator::IdleUnlessLeading() {
  if (member_ok_) return;
  // Without a usable session and membership no cluster runs: what woke one is moot; the first
  // pass with them again starts with a sweep.
  ran_as_leader_ = false;
  sweep_left_.clear();
  std::lock_guard lock(mu_);
  sweep_ = false;
  woken_order_.clear();
  woken_clusters_.clear();
  urgent_clusters_.clear();
}

void Orchestrator::RunClusters(PassKind kind) {
  const MonoTime pass_start = clock_->Now();
  bool sweep = !ran_as_leader_;  // leading again (or for the first time): every cluster
  if (!ran_as_leader_) {
    // What was due while following is not late: the sweep verifies everything anew.
    due_queue_.clear();
    for (auto& entry : runtime_) entry.second.due = MonoTime{};
  }
  {
    std::lock_guard lock(mu_);
    sweep = sweep || sweep_;
    sweep_ = false;
  }
  ran_as_leader_ = true;
  WakeClustersOfLostNodes();
  if (kind == PassKind::kEveryCluster) {
    sweep_left_.clear();
    std::vector<Scheduled> batch;
    for (const ClusterSpec& spec : clusters_) {
      batch.push_back({&spec, kTriggerSweep});
      if (batch.size() < BatchMax()) continue;
      RunBatch(std::exchange(batch, {}), false);
    }
    if (!batch.empty()) RunBatch(std::move(batch), false);
    return;
  }
  if (sweep) {
    sweep_left_.clear();
    for (const ClusterSpec& spec : clusters_) sweep_left_.push_back(spec.name);
    sweep_seq_ = round_seq_;
  }
  while (true) {
    std::vector<Scheduled> batch = NextBatch(clock_->Now());
    if (batch.empty()) return;
    RunBatch(std::move(batch), true);
    {
      std::lock_guard lock(mu_);
      if (sweep_) return;  // a global event (session, election): its step first, at once
    }
    // An overloaded loop still does the session and election step (and the observer) every
    // tick: the pass ends, the next starts at once.
    if (clock_->Now() - pass_start >= options_.tick) return;
  }
}

std::size_t Orchestrator::BatchMax() const {
  return static_cast<std::size_t>(std::max(1, options_.batch_max));
}

// At scale the pollers' observations change every tick, so some cluster is woken nearly all the
// time: without a share of their own, the sweep's and the due clusters would wait forever (a
// cluster never run has no watch to wake it). A batch with woken clusters keeps room for this many
// of them; each delays the woken ones by one round's reads.
std::size_t Orchestrator::RoutineShare() const { return std::max<std::size_t>(1, BatchMax() / 8); }

std::vector<Orchestrator::Scheduled> Orchestrator::TakeWoken(std::size_t max,
                                                             const std::set<std::string>& busy,
                                                             std::set<std::string>* urgent) {
  std::vector<Scheduled> out;
  std::deque<std::string> again;  // woken after their round in this batch began: the next batch's
  std::lock_guard lock(mu_);
  while (out.size() < max && !woken_order_.empty()) {
    std::string name = std::move(woken_order_.front());
    woken_order_.pop_front();
    // Gone from the set: run meanwhile (a queued duplicate).
    if (woken_clusters_.count(name) == 0) continue;
    if (busy.count(name) != 0) {
      again.push_back(std::move(name));
      continue;
    }
    woken_clusters_.erase(name);
    const bool was_urgent = urgent_clusters_.erase(name) != 0;
    const auto it = index_.find(name);
    if (it == index_.end()) continue;  // removed
    out.push_back({&clusters_[it->second], kTriggerWatch});
    if (was_urgent && urgent != nullptr) urgent->insert(name);
  }
  woken_order_.insert(woken_order_.begin(), again.begin(), again.end());
  return out;
}

std::size_t Orchestrator::UrgentWaiting(const std::set<std::string>& busy) {
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(
      std::count_if(urgent_clusters_.begin(), urgent_clusters_.end(), [&](const std::string& name) {
        return busy.count(name) == 0 && index_.count(name) != 0;
      }));
}

void Orchestrator::RequeueWoken(const std::vector<Scheduled>& entries) {
  std::lock_guard lock(mu_);
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->trigger != kTriggerWatch) continue;
    // Woken again meanwhile: it is queued already.
    if (!woken_clusters_.insert(it->spec->name).second) continue;
    // Behind the urgent ones, ahead of the others: they were next.
    auto at = std::find_if(woken_order_.begin(), woken_order_.end(), [&](const std::string& n) {
      return urgent_clusters_.count(n) == 0;
    });
    woken_order_.insert(at, it->spec->name);
  }
}

bool Orchestrator::WokenWaiting(const std::set<std::string>& busy) {
  std::lock_guard lock(mu_);
  return std::any_of(woken_order_.begin(), woken_order_.end(), [&](const std::string& name) {
    return woken_clusters_.count(name) != 0 && busy.count(name) == 0 && index_.count(name) != 0;
  });
}

std::vector<Orchestrator::Scheduled> Orchestrator::NextBatch(MonoTime now) {
  const std::size_t max = BatchMax();
  // Urgent clusters (a promotion among them) run in a batch of their own: they wait for no other
  // cluster's reads, probes or write check.
  if (const std::size_t urgent = UrgentWaiting({}); urgent > 0 && !urgent_batch_last_) {
    std::vector<Scheduled> batch = TakeWoken(std::min(urgent, max), {});
    if (!batch.empty()) {
      urgent_batch_last_ = true;
      return batch;
    }
  }
  urgent_batch_last_ = false;
  const bool routine_ready =
      !sweep_left_.empty() || (!due_queue_.empty() && due_queue_.begin()->first <= now);
  // Woken clusters (a failover among them) go first: prepared first, finished first, and never
  // behind more than the routine share of routine rounds (none with batch_max 1).
  const std::size_t share = max > 1 && routine_ready ? RoutineShare() : 0;
  std::vector<Scheduled> batch = TakeWoken(max - std::min(share, max - 1), {});
  const std::size_t room = batch.empty() ? max : std::min(max - batch.size(), share);
  std::set<std::string> taken;
  for (const Scheduled& e : batch) taken.insert(e.spec->name);
  const std::size_t limit = batch.size() + room;
  while (batch.size() < limit && !sweep_left_.empty()) {
    const std::string name = std::move(sweep_left_.front());
    sweep_left_.pop_front();
    const auto it = index_.find(name);
    if (it == index_.end()) continue;
    if (runtime_[name].last_seq > sweep_seq_) continue;  // ran since the sweep began
    if (!taken.insert(name).second) continue;
    batch.push_back({&clusters_[it->second], kTriggerSweep});
  }
  while (batch.size() < limit && !due_queue_.empty() && due_queue_.begin()->first <= now) {
    // Off the queue while in the batch (EndRound schedules the next; PutBack restores it).
    const std::string name = due_queue_.begin()->second;
    due_queue_.erase(due_queue_.begin());
    const auto it = index_.find(name);
    if (it == index_.end()) continue;  // not expected: IndexClusters drops them
    if (!taken.insert(name).second) continue;  // in the batch already (woken, or the sweep)
    batch.push_back({&clusters_[it->second], runtime_[name].due_retry ? kTriggerRetry : kTriggerVerify});
  }
  return batch;
}

void Orchestrator::PutBack(const std::vector<Scheduled>& entries) {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    const std::string& name = it->spec->name;
    if (it->trigger == kTriggerSweep) sweep_left_.push_front(name);
    const ClusterRuntime& rt = runtime_[name];
    if (rt.due != MonoTime{}) due_queue_.insert({rt.due, name});
  }
}

void Orchestrator::RunBatch(std::vector<Scheduled> batch, bool yield_to_woken) {
  const std::size_t max = BatchMax();
  std::vector<std::unique_ptr<ClusterRound>> rounds;
  std::vector<MonoTime> starts;
  std::set<std::string> urgent;  // urgently woken clusters joining the batch: they finish first
  // NextBatch made a batch of urgent clusters, or an urgent wake cut this one short: no ordinary
  // wake joins it.
  bool urgent_only = urgent_batch_last_;
  std::set<std::string> prefetched;
  const MonoTime batch_start = clock_->Now();
  double prefetch_ms = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (prefetched.count(batch[i].spec->name) == 0) {
      // The reads of every round not prepared yet, in flight together (joiners since included).
      std::vector<const ClusterSpec*> specs;
      for (std::size_t j = i; j < batch.size(); ++j) {
        if (prefetched.insert(batch[j].spec->name).second) specs.push_back(batch[j].spec);
      }
      const MonoTime t = clock_->Now();
      PrefetchReads(specs);
      prefetch_ms += MillisSince(t);
    }
    starts.push_back(StartRound(batch[i]));
    rounds.push_back(PrepareRound(*batch[i].spec, runtime_[batch[i].spec->name]));
    if (!yield_to_woken) continue;
    bool global = false;
    {
      std::lock_guard lock(mu_);
      global = sweep_;
    }
    std::set<std::string> busy = NamesOf(batch);
    if (urgent_only) {
      // Only other urgent clusters join a batch of urgent ones, while there is room.
      const std::size_t waiting = global ? 0 : UrgentWaiting(busy);
      if (waiting > 0 && batch.size() < max) {
        std::vector<Scheduled> more = TakeWoken(std::min(waiting, max - batch.size()), busy);
        batch.insert(batch.end(), more.begin(), more.end());
      }
      continue;
    }
    if (!global && i + 1 < max && UrgentWaiting(busy) > 0) {
      urgent_batch_last_ = true;
      urgent_only = true;
      // An urgent wake (a promotion, say): the clusters not prepared yet go back, woken ones to
      // the front of the woken queue, and the urgent ones take their place; routine ones within
      // the routine share stay, after them (so that constant urgent wakes starve nobody).
      auto [stay, left] = SplitUnprepared(batch, i + 1, /*keep_woken=*/false, RoutineShare());
      batch.resize(i + 1);
      RequeueWoken(left);
      PutBack(left);
      busy = NamesOf(batch);
      for (const Scheduled& e : stay) busy.insert(e.spec->name);
      const std::size_t room = max - batch.size() - stay.size();
      std::vector<Scheduled> more = TakeWoken(std::min(UrgentWaiting(busy), room), busy, &urgent);
      batch.insert(batch.end(), more.begin(), more.end());
      batch.insert(batch.end(), stay.begin(), stay.end());
      continue;
    }
    if (!global && !WokenWaiting(busy)) continue;
    // A woken cluster (or a global event, whose session step comes after this batch) does not
    // wait for the routine rounds not prepared yet beyond the routine share (none for a global
    // event): the others go back to their queues.
    auto [rest, left] =
        SplitUnprepared(batch, i + 1, /*keep_woken=*/true, global ? 0 : RoutineShare());
    batch.resize(i + 1);
    batch.insert(batch.end(), rest.begin(), rest.end());
    PutBack(left);
    if (global) continue;
    busy = NamesOf(batch);
    if (batch.size() < max) {
      std::vector<Scheduled> woken = TakeWoken(max - batch.size(), busy);
      batch.insert(batch.end(), woken.begin(), woken.end());
    }
  }
  std::vector<ClusterRound*> prepared;
  for (const auto& round : rounds) {
    if (round != nullptr) prepared.push_back(round.get());
  }
  const double prepare_ms = MillisSince(batch_start) - prefetch_ms;
  // 2-3. One probe call and one write-check call for the whole batch.
  const MonoTime probe_start = clock_->Now();
  ProbeRounds(prepared);
  const double probe_ms = MillisSince(probe_start);
  // The connections for a takeover open in the background, after the batch's own.
  if (!warm_.empty()) prober_->Warm(std::exchange(warm_, {}));
  const MonoTime finish_start = clock_->Now();
  // 4-5. Urgent rounds finish first, then the other woken ones (a failover's publish waits for no
  // routine one).
  auto rank = [&](const Scheduled& e) {
    if (urgent.count(e.spec->name) != 0) return 0;
    return e.trigger == kTriggerWatch ? 1 : 2;
  };
  for (const int r : {0, 1, 2}) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (rank(batch[i]) != r || rounds[i] == nullptr) continue;
      FinishRound(*rounds[i]);
    }
  }
  SendReaffirmations();  // the re-affirmations the rounds decided, together
  AccountBatch(prepared.size(), prefetch_ms, prepare_ms, probe_ms, MillisSince(finish_start));
  for (std::size_t i = 0; i < batch.size(); ++i) EndRound(batch[i], starts[i]);
}

// Every kLoopTimeEvery, one info line says where the batches' wall time went: at scale the loop's
// bound (ZooKeeper round trips, PostgreSQL round trips, writes) shows here first.
void Orchestrator::AccountBatch(std::size_t rounds, double prefetch_ms, double prepare_ms,
                                double probe_ms, double finish_ms) {
  constexpr std::chrono::seconds kLoopTimeEvery{30};
  LoopTime& t = loop_time_;
  const MonoTime now = clock_->Now();
  if (t.since == MonoTime{}) t.since = now;
  ++t.batches;
  t.rounds += rounds;
  t.prefetch_ms += prefetch_ms;
  t.prepare_ms += prepare_ms;
  t.probe_ms += probe_ms;
  t.finish_ms += finish_ms;
  if (now - t.since < kLoopTimeEvery) return;
  Log().Info("loop_time", {{"window_ms", static_cast<std::int64_t>(MillisSince(t.since))},
                           {"batches", t.batches},
                           {"rounds", t.rounds},
                           {"prefetch_ms", static_cast<std::int64_t>(t.prefetch_ms)},
                           {"prepare_ms", static_cast<std::int64_t>(t.prepare_ms)},
                           {"probe_ms", static_cast<std::int64_t>(t.probe_ms)},
                           {"finish_ms", static_cast<std::int64_t>(t.finish_ms)}});
  t = LoopTime{};
  t.since = now;
}

MonoTime Orchestrator::StartRound(const Scheduled& entry) {
  const std::string& name = entry.spec->name;
  ClusterRuntime& rt = runtime_[name];
  {
    std::lock_guard lock(mu_);
    woken_clusters_.erase(name);  // this round serves whatever woke it so far
    urgent_clusters_.erase(name);
  }
  const MonoTime start = clock_->Now();
  if (rt.due != MonoTime{} && start > rt.due) {
    max_lag_ = std::max(max_lag_, std::chrono::duration_cast<Millis>(start - rt.due));
  }
  ++cluster_rounds_[{name, entry.trigger}];
  rt.last_start = start;
  rt.last_seq = ++round_seq_;
  return start;
}

void Orchestrator::EndRound(const Scheduled& entry, MonoTime start) {
  const std::string& name = entry.spec->name;
  ClusterRuntime& rt = runtime_[name];
  // The next verification, or sooner: the voucher's re-affirmation when it is due before the
  // next verification would come anyway, an unsettled publish a tick later.
  MonoTime due = GridAfter(grid_epoch_ + phase_[name], options_.verify_interval, start);
  if (options_.voucher_reaffirm < options_.verify_interval && rt.vouched && rt.affirmed) {
    const MonoTime reaffirm = rt.last_affirm + options_.voucher_reaffirm;
    if (reaffirm > start) due = std::min(due, reaffirm);
  }
  bool retry = false;
  if (publisher_ != nullptr && publisher_->HasPending(name)) {
    const MonoTime again = clock_->Now() + options_.tick;
    retry = again < due;
    due = std::min(due, again);
  }
  SetDue(name, rt, due);
  rt.due_retry = retry;
}

void Orchestrator::SetDue(const std::string& cluster, ClusterRuntime& rt, MonoTime due) {
  if (rt.due != MonoTime{}) due_queue_.erase({rt.due, cluster});
  rt.due = due;
  due_queue_.insert({due, cluster});
}

void Orchestrator::IndexClusters() {
  index_.clear();
  phase_.clear();
  const std::chrono::nanoseconds interval = options_.verify_interval;
  const auto n = static_cast<std::int64_t>(clusters_.size());
  for (std::size_t i = 0; i < clusters_.size(); ++i) {
    const std::string& name = clusters_[i].name;
    index_[name] = i;
    phase_[name] = interval * static_cast<std::int64_t>(i) / n;
  }
  // Removed clusters leave the schedule; kept ones move to their new phase (never later than
  // they were due); new ones run in the next pass.
  for (auto it = due_queue_.begin(); it != due_queue_.end();) {
    it = index_.count(it->second) == 0 ? due_queue_.erase(it) : std::next(it);
  }
  std::erase_if(cluster_rounds_, [this](const auto& e) { return index_.count(e.first.first) == 0; });
  for (const ClusterSpec& spec : clusters_) {
    auto rt = runtime_.find(spec.name);
    if (rt == runtime_.end() || rt->second.last_start == MonoTime{}) {
      sweep_left_.push_back(spec.name);
      continue;
    }
    const MonoTime regrid =
        GridAfter(grid_epoch_ + phase_[spec.name], interval, rt->second.last_start);
    const MonoTime was = rt->second.due;
    SetDue(spec.name, rt->second, was == MonoTime{} ? regrid : std::min(was, regrid));
  }
}

MonoTime Orchestrator::NextWakeup(MonoTime pass_start) {
  const MonoTime now = clock_->Now();
  MonoTime next = pass_start + options_.tick;  // the session and election step at least this often
  if (!ran_as_leader_) return std::max(next, now);
  {
    std::lock_guard lock(mu_);
    if (sweep_ || !woken_order_.empty()) return now;
  }
  if (!sweep_left_.empty()) return now;
  if (!due_queue_.empty()) next = std::min(next, due_queue_.begin()->first);
  return std::max(next, now);
}

Millis Orchestrator::verification_lag() {
  Millis lag = max_lag_;
  const MonoTime now = clock_->Now();
  if (ran_as_leader_ && !due_queue_.empty() && due_queue_.begin()->first < now) {
    lag = std::max(lag, std::chrono::duration_cast<Millis>(now - due_queue_.begin()->first));
  }
  return lag;
}

void Orchestrator::Run(const std::atomic<bool>& stop) {
  // The observer (the HTTP API's snapshot, which re-reads every cluster) runs after the first
  // pass and then at most once per tick, however many passes the watches cause.
  bool reported = false;
  MonoTime last_report{};
  while (!stop.load()) {
    const MonoTime started = clock_->Now();
    RunDue();
    if (observer_ != nullptr && (!reported || clock_->Now() - last_report >= options_.tick)) {
      observer_->AfterRound(*this);
      ResetVerificationLag();
      reported = true;
      last_report = clock_->Now();
    }
    const auto wait = NextWakeup(started) - clock_->Now();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::max<std::chrono::nanoseconds>(wait, std::chrono::nanoseconds(0)),
                 [&] { return woken_ || stop.load(); });
    woken_ = false;
  }
}

}  // namespace pgherald::orchestrator
