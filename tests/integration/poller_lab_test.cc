// The poller against the real stack: a ZooKeeper ensemble and the 3-node PostgreSQL 15 + repmgr 5.3
// cluster of the lab, with three `pgherald poller` processes (one per node, PGHERALD_BIN) and
// repmgr's event_notification_command pointed at `pgherald notify`. One lab serves the whole
// binary. Every case starts from the same known state, whatever the case before left (a killed or
// fenced primary, a frozen ensemble, a stopped poller): the lab restored (Lab::Restore: one primary
// P, the two others streaming from it), no master record (the orchestrator is not part of this
// test: a case that needs one writes it), the three pollers running and their observations
// showing P as the primary (PollerLab's SetUp). A case uses P, never node1, and sets up anything
// else it needs itself (a failover, extra pollers). Times are printed, never asserted; waits are
// on conditions, their deadlines safety nets for a loaded machine.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/pg_connection.h"
#include "common/model/voucher.h"
#include "common/zk/zk_client.h"
#include "pollers/observation.h"
#include "tests/lab/lab.h"

namespace pgherald::pollers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

const char* kRoot = "/pgherald-poller-it";
const char* kCluster = "main";
constexpr int kSessionTimeoutMs = 4000;

std::string NodePath(const std::string& cluster, const std::string& node) {
  return std::string(kRoot) + "/clusters/" + cluster + "/nodes/" + node;
}
std::string EventsPath(const std::string& cluster) {
  return std::string(kRoot) + "/clusters/" + cluster + "/events";
}

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool Await(milliseconds timeout, const std::function<bool()>& condition) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));  // poll interval
  }
}

std::int64_t WallMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One `pgherald poller` process. Killed (by its PID only) when destroyed.
class PollerProcess {
 public:
  PollerProcess(std::string config, std::string log) : config_(std::move(config)), log_(std::move(log)) {}
  ~PollerProcess() { Stop(SIGKILL); }

  void Start() {
    const char* bin = std::getenv("PGHERALD_BIN");
    ASSERT_NE(bin, nullptr) << "PGHERALD_BIN must name the pgherald program (ctest sets it)";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      FILE* out = std::fopen(log_.c_str(), "a");
      if (out != nullptr) {
        ::dup2(::fileno(out), 1);
        ::dup2(::fileno(out), 2);
      }
      ::execl(bin, bin, "poller", "--config", config_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  void Stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string Log() const { return ReadFile(log_); }
  // False once the process has exited (it is reaped then).
  bool Running() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == 0) return true;
    pid_ = -1;
    return false;
  }

 private:
  std::string config_;
  std::string log_;
  pid_t pid_ = -1;
};

struct Shared {
  std::unique_ptr<lab::Lab> lab;
  std::unique_ptr<zk::ZkClient> zk;
  std::map<int, std::unique_ptr<PollerProcess>> pollers;  // node 1..3
  std::vector<std::unique_ptr<PollerProcess>> extra;
};
Shared* g = nullptr;

std::string PollerConfig(const std::string& cluster, const std::string& node, int pg_port,
                         const std::string& dbname, const std::string& socket,
                         const std::string& fence) {
  const auto& lab = *g->lab;
  return "zookeeper:\n  connect: \"" + lab.zk_connect() + "\"\n  root: " + kRoot +
         "\n  session_timeout_ms: " + std::to_string(kSessionTimeoutMs) +
         "\nlogging:\n  level: info\npoller:\n  cluster: " + cluster + "\n  node: " + node +
         "\n  tick_ms: 500\n  heartbeat_ms: 2000\n  events_retention: 200\n" +
         (socket.empty() ? "" : "  notify_socket: " + socket + "\n  notify_socket_mode: \"0666\"\n") +
         fence + "postgres:\n  host: 127.0.0.1\n  port: " + std::to_string(pg_port) +
         "\n  user: " + lab.Env("PG_APP_USER") + "\n  password: \"" + lab.Env("PG_APP_PASSWORD") +
         "\"\n  dbname: " + dbname + "\n  connect_timeout_ms: 1000\n";
}

std::string SocketPath(int node) { return g->lab->dir() + "/poller-" + std::to_string(node) + ".sock"; }

class LabEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g = new Shared();
    lab::LabOptions options;
    options.zk_ensemble = true;
    options.postgres = true;
    auto lab = lab::Lab::Up(options);
    ASSERT_TRUE(lab.ok()) << lab.status().ToString();
    g->lab = std::move(*lab);
    zk::ZkClientOptions zo;
    zo.connect = g->lab->zk_connect();
    zo.session_timeout = milliseconds(10000);
    auto client = zk::ZkClient::Connect(zo);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    g->zk = std::move(*client);
    const std::string bin = std::getenv("PGHERALD_BIN") ? std::getenv("PGHERALD_BIN") : "";
    const auto start = SteadyClock::now();
    for (int n = 1; n <= 3; ++n) {
      const std::string dir = g->lab->dir();
      const std::string config = dir + "/poller-" + std::to_string(n) + ".yaml";
      // The switchover steps are on (the SwitchoverLab cases): they act only on a
      // record at clusters/main/control/switchover, which no other case writes.
      const std::string switchover = "  switchover:\n    enabled: true\n    repmgr: " +
                                     g->lab->Env("REPMGR_BIN") + "\n    repmgr_conf: " +
                                     g->lab->Env("REPMGR_CONF_" + std::to_string(n)) +
                                     "\n    step_timeout_ms: 30000\n";
      WriteFile(config, PollerConfig(kCluster, "node" + std::to_string(n), g->lab->pg_port(n),
                                     g->lab->Env("REPMGR_DB"), SocketPath(n), switchover),
                0600);
      // labctl's notify.sh runs `CMD notify ARGS...` as postgres: CMD is this wrapper, which drops
      // the word "notify" and passes the socket.
      const std::string wrapper = dir + "/poller-notify-" + std::to_string(n) + ".sh";
      WriteFile(wrapper, "#!/bin/sh\nshift\nexec " + bin + " notify --socket " + SocketPath(n) +
                             " \"$@\"\n",
                0755);
      WriteFile(dir + "/notify-cmd-" + std::to_string(n), wrapper + "\n");
      g->pollers[n] = std::make_unique<PollerProcess>(config, dir + "/poller-" + std::to_string(n) + ".log");
      g->pollers[n]->Start();
    }
    // A figure (printed): the first case's SetUp waits for the observations anyway.
    if (Await(seconds(60), [] {
          for (int n = 1; n <= 3; ++n) {
            auto e = g->zk->Exists(NodePath(kCluster, "node" + std::to_string(n)));
            if (!e.ok() || !e->has_value()) return false;
          }
          return true;
        })) {
      std::printf("three observations published %lld ms after the pollers started\n",
                  static_cast<long long>(
                      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count()));
    }
  }
  void TearDown() override {
    if (g == nullptr) return;
    for (auto& [n, p] : g->pollers) {
      if (::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
        std::fprintf(stderr, "--- poller %d log (tail) ---\n%s\n", n,
                     p->Log().substr(p->Log().size() > 4000 ? p->Log().size() - 4000 : 0).c_str());
      }
      p->Stop(SIGTERM);
    }
    g->extra.clear();
    if (g->zk) g->zk->Close();
    g->zk.reset();
    g->lab.reset();  // labctl down
    delete g;
    g = nullptr;
  }
};

std::optional<model::NodeObservation> ReadObservation(const std::string& cluster,
                                                      const std::string& node,
                                                      zk::Stat* stat = nullptr) {
  auto got = g->zk->Get(NodePath(cluster, node));
  if (!got.ok()) return std::nullopt;
  auto o = model::NodeObservation::FromJson(got->data);
  if (!o.ok()) {
    ADD_FAILURE() << "corrupt observation at " << NodePath(cluster, node) << ": "
                  << o.status().ToString();
    return std::nullopt;
  }
  if (stat != nullptr) *stat = got->stat;
  return *o;
}

std::vector<RepmgrEvent> ReadEvents(const std::string& cluster) {
  std::vector<RepmgrEvent> out;
  auto names = g->zk->GetChildren(EventsPath(cluster));
  if (!names.ok()) return out;
  for (const auto& n : *names) {
    auto got = g->zk->Get(EventsPath(cluster) + "/" + n);
    if (!got.ok()) continue;
    auto e = RepmgrEvent::FromJson(got->data);
    if (e.ok()) out.push_back(*e);
  }
  return out;
}

bool HasEvent(const std::vector<RepmgrEvent>& events, int node_id, const std::string& name,
              const std::string& source = "") {
  return std::any_of(events.begin(), events.end(), [&](const RepmgrEvent& e) {
    return e.key.node_id == node_id && e.key.event == name && (source.empty() || e.source == source);
  });
}

std::string Node(int n) { return "node" + std::to_string(n); }

// An event of `node_id` named `name` at or after `since_us` (the server's clock: this machine's).
bool HasEventSince(const std::vector<RepmgrEvent>& events, int node_id, const std::string& name,
                   std::int64_t since_us, const std::string& source = "") {
  return std::any_of(events.begin(), events.end(), [&](const RepmgrEvent& e) {
    return e.key.node_id == node_id && e.key.event == name && e.key.ts_us >= since_us &&
           (source.empty() || e.source == source);
  });
}

// Replaces the test's ZooKeeper reader by a new session (the old one may have expired).
void ReconnectReader() {
  zk::ZkClientOptions zo;
  zo.connect = g->lab->zk_connect();
  zo.session_timeout = milliseconds(10000);
  auto fresh = zk::ZkClient::Connect(zo);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  g->zk->Close();
  g->zk = std::move(*fresh);
}

// Deletes `cluster`'s master record and its vouchers, if any.
void RemoveMaster(const std::string& cluster) {
  const std::string master = std::string(kRoot) + "/clusters/" + cluster + "/master";
  auto children = g->zk->GetChildren(master);
  if (!children.ok()) return;  // none
  for (const auto& c : *children) (void)g->zk->Delete(master + "/" + c);
  (void)g->zk->Delete(master);
}

std::string SwitchoverPath() {
  return std::string(kRoot) + "/clusters/" + kCluster + "/control/switchover";
}

// The ack `node` publishes for switchover `id`, if any.
std::optional<model::SwitchoverAck> AckOf(const std::string& node, const std::string& id) {
  auto o = ReadObservation(kCluster, node);
  if (!o || !o->switchover || o->switchover->id != id) return std::nullopt;
  return o->switchover;
}

// repmgrd's own answer on node `n`: whether it is paused (repmgr.repmgrd_is_paused(), what
// `repmgr service status` shows in its "Paused?" column).
std::optional<bool> RepmgrdPaused(int n) {
  pg::PgParams admin;
  admin.port = g->lab->pg_port(n);
  admin.user = "postgres";
  admin.dbname = g->lab->Env("REPMGR_DB");
  auto conn = pg::PgConnection::Connect(admin);
  if (!conn.ok()) return std::nullopt;
  auto r = (*conn)->Exec("SELECT repmgr.repmgrd_is_paused() AS paused");
  if (!r.ok() || r->num_rows() != 1) return std::nullopt;
  auto paused = r->row(0).GetBool("paused");
  if (!paused.ok()) return std::nullopt;
  return *paused;
}

// The known state (the comment at the top); primary_ is P.
class PollerLab : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(g, nullptr);
    static int last_primary = 0;
    auto primary = g->lab->Restore(last_primary);
    ASSERT_TRUE(primary.ok()) << primary.status().ToString();
    last_primary = primary_ = *primary;
    g->extra.clear();
    // A case that froze the ensemble may have cost the reader its session.
    if (!g->zk->Exists(kRoot).ok()) {
      ASSERT_NO_FATAL_FAILURE(ReconnectReader());
    }
    for (const char* cluster : {kCluster, "fencing", "zkloss-on", "zkloss-off"}) {
      RemoveMaster(cluster);
    }
    (void)g->zk->Delete(SwitchoverPath());
    for (auto& [n, poller] : g->pollers) {
      if (!poller->Running()) {
        ASSERT_NO_FATAL_FAILURE(poller->Start());
      }
    }
    const std::string p = Node(primary_);
    ASSERT_TRUE(Await(seconds(90), [&] {
      for (int n = 1; n <= 3; ++n) {
        auto o = ReadObservation(kCluster, Node(n));
        if (!o || !o->reachable) return false;
        if (n == primary_ ? o->in_recovery : (!o->in_recovery || o->upstream_node != p)) {
          return false;
        }
      }
      return true;
    })) << "the observations do not show node" << primary_ << " as the primary";
  }
  // The two other nodes, in order.
  int Standby(int i) const {
    int seen = 0;
    for (int n = 1; n <= 3; ++n) {
      if (n != primary_ && seen++ == i) return n;
    }
    return 0;
  }
  int primary_ = 0;
};

TEST_F(PollerLab, ThreeEphemeralObservationsAppear) {
  zk::Stat stat;
  auto primary = ReadObservation(kCluster, Node(primary_), &stat);
  ASSERT_TRUE(primary);
  EXPECT_NE(stat.ephemeral_owner, 0) << "the observation must be ephemeral";
  EXPECT_TRUE(primary->reachable);
  EXPECT_FALSE(primary->in_recovery);
  EXPECT_GE(primary->timeline, 1u);
  EXPECT_EQ(primary->node_id, primary_);
  EXPECT_TRUE(primary->current_lsn.has_value());
  EXPECT_EQ(primary->error, "");
  EXPECT_EQ(primary->repmgr_nodes.size(), 3u);
  EXPECT_FALSE(primary->system_identifier.empty());
  // Standbys name the node they really stream from, on the primary's timeline.
  const std::uint32_t timeline = primary->timeline;
  ASSERT_TRUE(Await(seconds(30), [&] {
    for (int i = 0; i < 2; ++i) {
      auto o = ReadObservation(kCluster, Node(Standby(i)));
      if (!o || !o->in_recovery || o->upstream_node != Node(primary_) || o->timeline != timeline) {
        return false;
      }
    }
    return true;
  }));
  auto standby = ReadObservation(kCluster, Node(Standby(0)));
  ASSERT_TRUE(standby);
  EXPECT_EQ(standby->system_identifier, primary->system_identifier);
  EXPECT_TRUE(standby->replay_lsn.has_value());
  // Heartbeat: seq grows although nothing changes.
  const auto seq = standby->seq;
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(kCluster, Node(Standby(0)));
    return o && o->seq > seq;
  }));
  // The repmgr events of the cluster's creation were mirrored.
  EXPECT_TRUE(Await(seconds(30), [] { return HasEvent(ReadEvents(kCluster), 1, "primary_register"); }));
}

// Plays the coordinator (`pgherald switchover`) for the switchover cases: writes the record and
// moves its phase with a compare-and-set on its version, as the command does; no orchestrator
// runs, so nothing is held or published.
class SwitchoverLab : public PollerLab {
 protected:
  // A record from P to Standby(0), Standby(1) the sibling, in phase prepare.
  void Begin(const std::string& suffix) {
    from_ = primary_;
    to_ = Standby(0);
    sibling_ = Standby(1);
    r_.id = "sw-" + std::to_string(WallMs()) + "-" + suffix;
    r_.from = Node(from_);
    r_.to = Node(to_);
    r_.siblings = {Node(sibling_)};
    r_.phase = model::SwitchoverPhase::kPrepare;
    r_.started_at_ms = r_.phase_at_ms = WallMs();
    r_.deadline_at_ms = r_.started_at_ms + 300000;
    r_.requested_by = "poller_lab_test";
    ASSERT_TRUE(
        zk::EnsurePath(*g->zk, std::string(kRoot) + "/clusters/" + kCluster + "/control").ok());
    phase_changed_ = SteadyClock::now();
    ASSERT_TRUE(g->zk->Create(SwitchoverPath(), r_.ToJson(), zk::CreateMode::kPersistent).ok());
  }
  void Next(model::SwitchoverPhase phase) {
    auto got = g->zk->Get(SwitchoverPath());
    ASSERT_TRUE(got.ok());
    r_.phase = phase;
    r_.phase_at_ms = WallMs();
    phase_changed_ = SteadyClock::now();
    ASSERT_TRUE(g->zk->Set(SwitchoverPath(), r_.ToJson(), got->stat.version).ok());
  }
  // node n's ack of `phase` once it is no longer running (nullopt: none within 120 s).
  std::optional<model::SwitchoverAck> Acked(int n, model::SwitchoverPhase phase) {
    std::optional<model::SwitchoverAck> ack;
    Await(seconds(120), [&] {
      ack = AckOf(Node(n), r_.id);
      return ack && ack->phase == phase && ack->state != model::SwitchoverStepState::kRunning;
    });
    return ack;
  }
  // Acked, expected done; prints how long after the phase began.
  std::optional<model::SwitchoverAck> Done(int n, model::SwitchoverPhase phase) {
    auto ack = Acked(n, phase);
    const bool done = ack && ack->state == model::SwitchoverStepState::kDone;
    EXPECT_TRUE(done) << Node(n) << " " << model::SwitchoverPhaseName(phase) << ": "
                      << (ack ? ack->error : "no ack");
    std::printf("%s %s acked %s %lld ms after the record changed\n", Node(n).c_str(),
                model::SwitchoverPhaseName(phase), ack ? model::SwitchoverStepStateName(ack->state) : "-",
                static_cast<long long>(std::chrono::duration_cast<milliseconds>(
                                           SteadyClock::now() - phase_changed_).count()));
    return done ? ack : std::nullopt;
  }
  void ExpectRepmgrdPaused(bool paused) {
    for (int n = 1; n <= 3; ++n) {
      EXPECT_EQ(RepmgrdPaused(n), std::optional<bool>(paused)) << "repmgrd of node" << n;
    }
  }

  model::SwitchoverRecord r_;
  int from_ = 0;
  int to_ = 0;
  int sibling_ = 0;
  SteadyClock::time_point phase_changed_{};
};

// The switchover's first and unpause phases on the real cluster (docs/poller.md "Switchover
// steps"): the three pollers ack prepare (to pauses every repmgrd of the cluster), then to's poller
// unpauses them.
TEST_F(SwitchoverLab, PrepareAndUnpause) {
  ExpectRepmgrdPaused(false);
  ASSERT_NO_FATAL_FAILURE(Begin("it"));
  for (int n : {from_, to_, sibling_}) ASSERT_TRUE(Done(n, model::SwitchoverPhase::kPrepare));
  ExpectRepmgrdPaused(true);
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kUnpause));
  ASSERT_TRUE(Done(to_, model::SwitchoverPhase::kUnpause));
  ExpectRepmgrdPaused(false);
  // The others did not act in unpause: their last ack is still prepare's.
  for (int n : {from_, sibling_}) {
    auto other = AckOf(Node(n), r_.id);
    ASSERT_TRUE(other);
    EXPECT_EQ(other->phase, model::SwitchoverPhase::kPrepare);
  }
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kDone));
}

// The old primary's steps on the real cluster: with every repmgrd paused (prepare), from's poller
// drains, stops its node with repmgr and acks the shutdown checkpoint's LSN; then rollback starts
// it again and acks once it is writable; to unpauses.
TEST_F(SwitchoverLab, StopAndRollback) {
  ASSERT_NO_FATAL_FAILURE(Begin("rb"));
  ASSERT_TRUE(Done(to_, model::SwitchoverPhase::kPrepare));
  auto before = ReadObservation(kCluster, Node(from_));
  ASSERT_TRUE(before && before->current_lsn);
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kStop));
  auto stopped = Done(from_, model::SwitchoverPhase::kStop);
  ASSERT_TRUE(stopped && stopped->lsn);
  std::printf("stop lsn %s\n", model::FormatLsn(*stopped->lsn).c_str());
  EXPECT_GE(*stopped->lsn, *before->current_lsn);  // the shutdown checkpoint comes after
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(kCluster, Node(from_));
    return o && !o->reachable;
  }));
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kRollback));
  EXPECT_TRUE(Done(from_, model::SwitchoverPhase::kRollback));
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(kCluster, Node(from_));
    return o && o->reachable && !o->in_recovery;
  }));
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kUnpause));
  EXPECT_TRUE(Done(to_, model::SwitchoverPhase::kUnpause));
  ExpectRepmgrdPaused(false);
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kAborted));
}

// A whole switchover carried out by the pollers alone: prepare, stop, promote (to waits for the
// stop LSN, promotes with repmgr and checkpoints), rejoin (from rejoins with to's conninfo from its
// own repmgr.nodes, the sibling follows to's node_id), unpause. Printed: how long after the promote
// began to's observation showed it writable, and how that compares with its ack (the promotion
// watch publishes first).
TEST_F(SwitchoverLab, StopPromoteRejoin) {
  ASSERT_NO_FATAL_FAILURE(Begin("full"));
  for (int n : {from_, to_, sibling_}) ASSERT_TRUE(Done(n, model::SwitchoverPhase::kPrepare));
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kStop));
  auto stopped = Done(from_, model::SwitchoverPhase::kStop);
  ASSERT_TRUE(stopped && stopped->lsn);
  r_.stop_lsn = stopped->lsn;

  const std::int64_t promote_at = WallMs();
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kPromote));
  std::optional<std::int64_t> writable_observed_at;
  const auto note_writable = [&] {
    auto o = ReadObservation(kCluster, Node(to_));
    if (o && o->reachable && !o->in_recovery && !writable_observed_at) {
      writable_observed_at = o->observed_at_ms;
    }
  };
  ASSERT_TRUE(Await(seconds(120), [&] {
    note_writable();
    auto ack = AckOf(Node(to_), r_.id);
    return ack && ack->phase == model::SwitchoverPhase::kPromote &&
           ack->state != model::SwitchoverStepState::kRunning;
  }));
  auto promoted = Done(to_, model::SwitchoverPhase::kPromote);
  ASSERT_TRUE(promoted && promoted->lsn);
  EXPECT_GE(*promoted->lsn, *r_.stop_lsn);
  ASSERT_TRUE(Await(seconds(30), [&] {
    note_writable();
    return writable_observed_at.has_value();
  }));
  std::printf("promote: the writable observation of %s was made %lld ms after the record changed; "
              "the done ack %lld ms after (%lld ms after the observation)\n",
              Node(to_).c_str(), static_cast<long long>(*writable_observed_at - promote_at),
              static_cast<long long>(promoted->at_ms - promote_at),
              static_cast<long long>(promoted->at_ms - *writable_observed_at));

  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kRejoin));
  EXPECT_TRUE(Done(from_, model::SwitchoverPhase::kRejoin));
  EXPECT_TRUE(Done(sibling_, model::SwitchoverPhase::kRejoin));
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kUnpause));
  EXPECT_TRUE(Done(to_, model::SwitchoverPhase::kUnpause));
  EXPECT_TRUE(Await(seconds(60), [&] {
    for (int n : {from_, sibling_}) {
      auto o = ReadObservation(kCluster, Node(n));
      if (!o || !o->reachable || !o->in_recovery || o->upstream_node != Node(to_)) return false;
    }
    return true;
  })) << "the old primary and the sibling do not stream from " << Node(to_);
  ExpectRepmgrdPaused(false);
  // The conninfo (it may hold a password) never reached ZooKeeper.
  for (int n = 1; n <= 3; ++n) {
    auto got = g->zk->Get(NodePath(kCluster, Node(n)));
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->data.find("conninfo"), std::string::npos);
    EXPECT_EQ(got->data.find("password"), std::string::npos);
  }
  ASSERT_NO_FATAL_FAILURE(Next(model::SwitchoverPhase::kDone));
}

// The session timeout is the bound the design counts on; the time it took is printed.
TEST_F(PollerLab, KilledPollerZnodeVanishesWithItsSession) {
  const int n = Standby(1);
  ASSERT_TRUE(ReadObservation(kCluster, Node(n)));
  const auto start = SteadyClock::now();
  g->pollers[n]->Stop(SIGKILL);
  ASSERT_TRUE(Await(seconds(60), [&] {
    auto e = g->zk->Exists(NodePath(kCluster, Node(n)));
    return e.ok() && !e->has_value();
  }));
  const auto elapsed = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count();
  std::printf("killed poller's znode vanished after %lld ms (session timeout %d ms)\n",
              static_cast<long long>(elapsed), kSessionTimeoutMs);
  // A restarted poller publishes again (the next case's SetUp restarts it if this one stops early).
  g->pollers[n]->Start();
  EXPECT_TRUE(Await(seconds(30), [&] { return ReadObservation(kCluster, Node(n)).has_value(); }));
}

TEST_F(PollerLab, NotifyHandsAnEventThatNeverReachesTheTableToZooKeeper) {
  const char* bin = std::getenv("PGHERALD_BIN");
  ASSERT_NE(bin, nullptr);
  const std::string cmd = std::string(bin) + " notify --socket " + SocketPath(2) +
                          " 2 repmgrd_promote_error 0 '2026-01-02 03:04:05+0000' 'test: no promotion'";
  const auto start = SteadyClock::now();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto returned = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count();
  ASSERT_TRUE(Await(seconds(30), [] {
    return HasEvent(ReadEvents(kCluster), 2, "repmgrd_promote_error", "notify");
  }));
  std::printf("notify returned in %lld ms\n", static_cast<long long>(returned));
  // A poller that is down: notify still returns 0 at once.
  const std::string dead = std::string(bin) + " notify --socket " + g->lab->dir() +
                           "/nobody.sock 2 repmgrd_promote_error 0 '2026-01-02 03:04:05+0000' x";
  EXPECT_EQ(std::system(dead.c_str()), 0);
}

TEST_F(PollerLab, Repmgr3LayoutAndAMissingSchemaOnARealPostgres) {
  // A database holding repmgr 3's layout (repmgr 3 is not packaged any more), on the primary.
  const int port = g->lab->pg_port(primary_);
  auto real = ReadObservation(kCluster, Node(primary_));  // the node's own facts
  ASSERT_TRUE(real);
  pg::PgParams admin;
  admin.port = port;
  admin.user = "postgres";
  admin.dbname = "postgres";
  auto conn = pg::PgConnection::Connect(admin);
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  ASSERT_TRUE((*conn)->Exec("DROP DATABASE IF EXISTS repmgr3_it WITH (FORCE)").ok());
  ASSERT_TRUE((*conn)->Exec("CREATE DATABASE repmgr3_it").ok());
  admin.dbname = "repmgr3_it";
  auto db = pg::PgConnection::Connect(admin);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto made = (*db)->ExecBatch(
      "CREATE SCHEMA repmgr_test;"
      "CREATE TABLE repmgr_test.repl_nodes (id integer PRIMARY KEY, type text NOT NULL,"
      " upstream_node_id integer, cluster text NOT NULL, name text NOT NULL, conninfo text NOT NULL,"
      " slot_name text, priority integer NOT NULL DEFAULT 100, active boolean NOT NULL DEFAULT true);"
      "CREATE TABLE repmgr_test.repl_events (node_id integer NOT NULL, event text NOT NULL,"
      " successful boolean NOT NULL DEFAULT true, event_timestamp timestamptz NOT NULL DEFAULT now(),"
      " details text);"
      "INSERT INTO repmgr_test.repl_nodes VALUES"
      " (1, 'master', NULL, 'test', 'legacy1', 'host=127.0.0.1 port=1 user=repmgr', NULL, 100, true),"
      " (2, 'standby', 1, 'test', 'legacy2', 'host=127.0.0.1 port=2 user=repmgr', NULL, 100, true);"
      "INSERT INTO repmgr_test.repl_events (node_id, event, details) VALUES"
      " (1, 'master_register', 'legacy'), (1, 'standby_promote', 'promoted');"
      "GRANT USAGE ON SCHEMA repmgr_test TO pgherald;"
      "GRANT SELECT ON ALL TABLES IN SCHEMA repmgr_test TO pgherald;");
  ASSERT_TRUE(made.ok()) << made.status().ToString();

  const std::string dir = g->lab->dir();
  WriteFile(dir + "/poller-legacy.yaml",
            PollerConfig("legacy", "legacy1", port, "repmgr3_it", "", ""), 0600);
  WriteFile(dir + "/poller-bare.yaml",
            PollerConfig("bare", "bare1", port, g->lab->Env("PG_APP_DATABASE"), "", ""), 0600);
  for (const char* name : {"legacy", "bare"}) {
    g->extra.push_back(std::make_unique<PollerProcess>(dir + "/poller-" + name + ".yaml",
                                                       dir + "/poller-" + name + ".log"));
    g->extra.back()->Start();
  }
  ASSERT_TRUE(Await(seconds(30), [] { return ReadObservation("legacy", "legacy1").has_value(); }))
      << g->extra[0]->Log();
  auto legacy = ReadObservation("legacy", "legacy1");
  EXPECT_EQ(legacy->error, "");
  ASSERT_EQ(legacy->repmgr_nodes.size(), 2u);
  EXPECT_EQ(legacy->repmgr_nodes[0].type, "primary");  // repmgr 3's "master"
  EXPECT_EQ(legacy->node_id, 1);
  // promoted_at is the promotion that produced the node's current timeline, whatever the table's
  // standby_promote row says: the same as the node's real poller reports (none on timeline 1).
  EXPECT_EQ(legacy->timeline, real->timeline);
  EXPECT_EQ(legacy->promoted_at_ms, real->promoted_at_ms);
  if (real->timeline == 1) {
    EXPECT_FALSE(legacy->promoted_at_ms.has_value());
  }
  EXPECT_TRUE(Await(seconds(30), [] {
    auto events = ReadEvents("legacy");
    return HasEvent(events, 1, "master_register") && HasEvent(events, 1, "standby_promote");
  }));

  ASSERT_TRUE(Await(seconds(30), [] { return ReadObservation("bare", "bare1").has_value(); }))
      << g->extra[1]->Log();
  auto bare = ReadObservation("bare", "bare1");
  EXPECT_TRUE(bare->reachable);
  EXPECT_FALSE(bare->system_identifier.empty());
  EXPECT_NE(bare->error.find("no repmgr schema"), std::string::npos) << bare->error;
  EXPECT_NE(g->extra[1]->Log().find("repmgr_layout_missing"), std::string::npos);
  g->extra.clear();
}

// The primary is killed: the next case's SetUp rejoins it (Lab::Restore).
TEST_F(PollerLab, KillOfThePrimaryShowsTheNewPrimaryAndThePromotionFacts) {
  const int old = primary_;
  auto before = ReadObservation(kCluster, Node(old));
  ASSERT_TRUE(before);
  const std::uint32_t old_timeline = before->timeline;
  std::map<int, std::size_t> log_from;  // each poller's log size before the kill
  for (auto& [n, poller] : g->pollers) log_from[n] = poller->Log().size();
  const std::int64_t kill_us = WallMs() * 1000;
  ASSERT_TRUE(g->lab->PgKill(old).ok());
  std::optional<model::NodeObservation> promoted;
  zk::Stat stat;
  ASSERT_TRUE(Await(seconds(90), [&] {
    for (int n = 1; n <= 3; ++n) {
      if (n == old) continue;
      auto o = ReadObservation(kCluster, Node(n), &stat);
      if (o && o->reachable && !o->in_recovery && o->timeline > old_timeline) {
        promoted = o;
        return true;
      }
    }
    return false;
  }));
  const std::string new_primary = promoted->node;
  const int promoted_n = promoted->node_id;
  EXPECT_EQ(promoted->timeline, old_timeline + 1);
  // The promotion facts, from the table (and/or the notify hook: one znode either way); repmgr's
  // timestamps are whole microseconds of this machine's clock, the kill's time taken before it.
  std::vector<RepmgrEvent> events;
  ASSERT_TRUE(Await(seconds(30), [&] {
    events = ReadEvents(kCluster);
    return HasEventSince(events, promoted_n, "standby_promote", kill_us) &&
           HasEventSince(events, promoted_n, "repmgrd_failover_promote", kill_us);
  }));
  std::int64_t promote_us = 0;
  for (const auto& e : events) {
    if (e.key.node_id == promoted_n && e.key.event == "standby_promote" && e.key.ts_us >= kill_us) {
      promote_us = e.key.ts_us;
    }
  }
  // promoted_at is when the new primary's timeline began (pg_wal/0000000N.history, whole seconds,
  // read through pg_ls_waldir: the lab's poller role is in pg_monitor), which is before repmgr
  // wrote its standby_promote event (the order is asserted, the lead is a printed figure).
  ASSERT_TRUE(promoted->promoted_at_ms.has_value());
  const std::int64_t event_lead_ms = promote_us / 1000 - *promoted->promoted_at_ms;
  std::printf("promoted_at (timeline %u began) %lld ms before the standby_promote event\n",
              promoted->timeline, static_cast<long long>(event_lead_ms));
  EXPECT_GE(event_lead_ms, 0);
  // Logged when the poller connects to PostgreSQL.
  const std::string whole_log = g->pollers[promoted_n]->Log();
  EXPECT_NE(whole_log.find("timeline_start=pg_ls_waldir"), std::string::npos) << whole_log;
  // mtime of the first writable version we saw (the server's clock); polled every 20 ms, so an
  // upper bound.
  std::printf("promotion (standby_promote at %lld us) to the new primary's observation in "
              "ZooKeeper: %lld ms\n",
              static_cast<long long>(promote_us),
              static_cast<long long>(stat.mtime_ms - promote_us / 1000));
  // The promotion watch saw it: the new primary's poller was polling its recovery state when the
  // node left recovery (armed by the lost WAL sender or repmgrd's disconnect notify), not waiting
  // for its tick or for repmgr's standby_promote event. The watch may have been armed before the
  // kill (a WAL sender lost for a moment, a repmgr event notified); it ends on this promotion.
  const std::string plog = whole_log.substr(std::min(log_from[promoted_n], whole_log.size()));
  EXPECT_NE(whole_log.find("promotion_watch_start"), std::string::npos) << whole_log;
  EXPECT_NE(plog.find("promotion_watch_end why=\"node out of recovery\""), std::string::npos) << plog;
  // The disconnect events reach only event_notification_command: the notify hook made them facts.
  // repmgrd hands these with a timestamp in whole seconds: compared with the kill's second.
  const std::int64_t kill_second_us = kill_us - kill_us % 1000000;
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto ev = ReadEvents(kCluster);
    return std::any_of(ev.begin(), ev.end(), [&](const RepmgrEvent& e) {
      return e.key.event == "repmgrd_upstream_disconnect" && e.source == "notify" &&
             e.key.ts_us >= kill_second_us;
    });
  })) << ReadFile(g->lab->dir() + "/notify-cmd.log");
  // The old primary's poller reports its node down, still publishing.
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(kCluster, Node(old));
    return o && !o->reachable && !o->error.empty();
  }));
  // The dead old primary stays type=primary, active=f in the new primary's repmgr view.
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(kCluster, new_primary);
    if (!o) return false;
    auto r = std::find_if(o->repmgr_nodes.begin(), o->repmgr_nodes.end(),
                          [&](const model::RepmgrNode& n) { return n.name == Node(old); });
    return r != o->repmgr_nodes.end() && !r->active;
  })) << "node" << old << " is not inactive in " << new_primary << "'s repmgr view";
}

// The old primary P gets a poller of its own with `fence.action: stop` (in a cluster of its own,
// "fencing", so that it does not take over the node's real observation); P is killed, another node
// promoted, P started writable beside it. The next case's SetUp rejoins P.
TEST_F(PollerLab, OldPrimaryRestartedWritableIsFencedByItsOwnPoller) {
  const int old = primary_;
  const std::string cluster = "fencing";
  const std::string dir = g->lab->dir();
  const std::string config = dir + "/poller-fencing.yaml";
  WriteFile(config,
            PollerConfig(cluster, Node(old), g->lab->pg_port(old), g->lab->Env("REPMGR_DB"), "",
                         "  fence:\n    action: stop\n    data_dir: " +
                             g->lab->Env("PG_DATA_" + std::to_string(old)) + "\n    pg_ctl: " +
                             g->lab->Env("PG_BINDIR") + "/pg_ctl\n    on_zookeeper_loss: false\n"),
            0600);
  g->extra.push_back(std::make_unique<PollerProcess>(config, dir + "/poller-fencing.log"));
  PollerProcess& fencer = *g->extra.back();
  ASSERT_NO_FATAL_FAILURE(fencer.Start());
  ASSERT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(cluster, Node(old));
    return o && o->reachable && !o->in_recovery;
  })) << fencer.Log();
  const std::uint32_t old_timeline = ReadObservation(cluster, Node(old))->timeline;

  ASSERT_TRUE(g->lab->PgKill(old).ok());
  auto promoted = g->lab->WaitForPrimary(old, seconds(90));
  ASSERT_TRUE(promoted.ok()) << promoted.status().ToString();
  const std::string new_primary = Node(*promoted);
  std::optional<model::NodeObservation> master_obs;
  ASSERT_TRUE(Await(seconds(60), [&] {
    master_obs = ReadObservation(kCluster, new_primary);
    return master_obs && master_obs->reachable && !master_obs->in_recovery &&
           master_obs->timeline > old_timeline;
  }));
  // The orchestrator is not part of this test: publish its master record by hand.
  model::MasterRecord record;
  record.state = model::MasterState::kOk;
  record.node = new_primary;
  record.host = master_obs->host;
  record.port = master_obs->port;
  record.timeline = master_obs->timeline;
  record.lsn = master_obs->current_lsn.value_or(0);
  record.epoch = 1;
  record.verified_at_ms = WallMs();
  record.decided_by = "poller_lab_test";
  const std::string master = std::string(kRoot) + "/clusters/" + cluster + "/master";
  const std::string bytes = record.ToJson();
  ASSERT_TRUE(zk::EnsurePath(*g->zk, zk::ParentPath(master)).ok());
  auto made = g->zk->Create(master, bytes, zk::CreateMode::kPersistent);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  // First beside an old-style voucher (named after its orchestrator), which binds nothing: the
  // record is unverified, and the writable old primary is left alone (issue 12, finding 3).
  ASSERT_TRUE(g->zk->Create(master + "/poller_lab_test", "", zk::CreateMode::kEphemeral).ok());

  ASSERT_TRUE(g->lab->PgStartWritable(old).ok());
  ASSERT_TRUE(Await(seconds(60), [&] {
    auto o = ReadObservation(cluster, Node(old));
    return o && o->reachable && !o->in_recovery &&
           fencer.Log().find("master_unverified") != std::string::npos;
  })) << fencer.Log();
  // The observation is published after the tick's fence decision on the record it read.
  auto unfenced = ReadObservation(cluster, Node(old));
  ASSERT_TRUE(unfenced);
  EXPECT_EQ(unfenced->fencing, model::FencingState::kNone);
  auto still_writable = g->lab->WritableNodes();
  ASSERT_TRUE(still_writable.ok());
  EXPECT_NE(std::find(still_writable->begin(), still_writable->end(), old), still_writable->end());

  // The voucher an orchestrator leader creates with the record: bound to its exact bytes.
  ASSERT_TRUE(g->zk->Delete(master + "/poller_lab_test").ok());
  const std::string voucher =
      model::VoucherName(record.epoch, model::RecordDigest(bytes), "poller_lab_test");
  ASSERT_TRUE(g->zk->Create(master + "/" + voucher, "", zk::CreateMode::kEphemeral).ok());
  const auto start = SteadyClock::now();
  ASSERT_TRUE(Await(seconds(60), [&] {
    auto o = ReadObservation(cluster, Node(old));
    return o && o->fencing == model::FencingState::kFenced;
  })) << fencer.Log();
  std::printf("stale primary fenced %lld ms after the bound voucher appeared\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count()));
  // Stopped for real: the old primary no longer answers as writable.
  ASSERT_TRUE(Await(seconds(30), [&] {
    auto writable = g->lab->WritableNodes();
    return writable.ok() && std::find(writable->begin(), writable->end(), old) == writable->end();
  }));
  const std::string log = fencer.Log();
  EXPECT_NE(log.find("stale_primary"), std::string::npos);
  EXPECT_NE(log.find("fenced"), std::string::npos);
  EXPECT_TRUE(Await(seconds(30), [&] {
    auto o = ReadObservation(cluster, Node(old));
    return o && !o->reachable && o->fencing == model::FencingState::kFenced;
  }));
}

// Thaws every ZooKeeper member when it goes out of scope, whatever the test asserted.
struct ThawEnsemble {
  ~ThawEnsemble() {
    for (int m = 1; m <= 3; ++m) (void)g->lab->ZkCont(m);
  }
};

int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The fence must not come before the deadline counted from the poller's last answer (asserted from
// the figure the poller logs with it); how long after the freeze it came is printed.
TEST_F(PollerLab, WritableNodeCutOffFromTheWholeEnsembleIsFencedByItsPollerAtTheDeadline) {
  const int primary = primary_;
  auto primary_obs = ReadObservation(kCluster, Node(primary));
  ASSERT_TRUE(primary_obs);
  constexpr int kTickMs = 500;
  constexpr int kDeadlineMs = 3000;
  // Two more pollers of the new primary, each in a cluster of its own (so neither takes over the
  // node's real observation), the orchestrator's part played by hand: a master record naming
  // them and its bound voucher. Their fence action appends a line to a marker file, so the real
  // primary stays up; one has the rule on, the other opted out.
  const std::string dir = g->lab->dir();
  struct Case {
    std::string cluster;
    bool on;
    std::string marker;
    std::unique_ptr<PollerProcess> poller;
  };
  std::vector<Case> cases;
  cases.push_back({"zkloss-on", true, dir + "/zkloss-on.fenced", nullptr});
  cases.push_back({"zkloss-off", false, dir + "/zkloss-off.fenced", nullptr});
  for (auto& c : cases) {
    std::remove(c.marker.c_str());
    const std::string master = std::string(kRoot) + "/clusters/" + c.cluster + "/master";
    model::MasterRecord record;
    record.state = model::MasterState::kOk;
    record.node = "sf";
    record.host = "127.0.0.1";
    record.port = g->lab->pg_port(primary);
    record.timeline = primary_obs->timeline;
    record.epoch = 1;
    record.verified_at_ms = WallMs();
    record.decided_by = "poller_lab_test";
    ASSERT_TRUE(zk::EnsurePath(*g->zk, master).ok());
    const std::string bytes = record.ToJson();
    ASSERT_TRUE(g->zk->Set(master, bytes).ok());
    const std::string voucher =
        model::VoucherName(record.epoch, model::RecordDigest(bytes), "poller_lab_test");
    ASSERT_TRUE(g->zk->Create(master + "/" + voucher, "", zk::CreateMode::kEphemeral).ok());
    const std::string fence = "  fence:\n    action: command\n    command: \"echo fenced >> " +
                              c.marker + "\"\n" +
                              "    on_zookeeper_loss: " + (c.on ? "true" : "false") +
                              "\n    self_fence_deadline_ms: " + std::to_string(kDeadlineMs) + "\n";
    const std::string config = dir + "/poller-" + c.cluster + ".yaml";
    std::string text = PollerConfig(c.cluster, "sf", g->lab->pg_port(primary),
                                    g->lab->Env("REPMGR_DB"), "", fence);
    // PollerConfig's tick is kTickMs.
    ASSERT_NE(text.find("tick_ms: " + std::to_string(kTickMs)), std::string::npos);
    WriteFile(config, text, 0600);
    c.poller = std::make_unique<PollerProcess>(config, dir + "/poller-" + c.cluster + ".log");
    c.poller->Start();
  }
  for (auto& c : cases) {
    ASSERT_TRUE(Await(seconds(30), [&] {
      auto o = ReadObservation(c.cluster, "sf");
      return o && o->reachable && !o->in_recovery;
    })) << c.poller->Log();
  }

  ThawEnsemble thaw;
  const auto first_stop = SteadyClock::now();
  for (int m = 1; m <= 3; ++m) ASSERT_TRUE(g->lab->ZkStop(m).ok());
  const auto last_stop = SteadyClock::now();
  // The poller with the rule on fences once the deadline has passed since its last answer (the
  // wait's deadline is a safety net).
  ASSERT_TRUE(Await(seconds(60), [&] { return !ReadFile(cases[0].marker).empty(); }))
      << cases[0].poller->Log();
  const auto fenced_at = SteadyClock::now();
  const auto since_first = std::chrono::duration_cast<milliseconds>(fenced_at - first_stop);
  const auto since_last = std::chrono::duration_cast<milliseconds>(fenced_at - last_stop);
  std::printf(
      "fenced on ZooKeeper loss %lld ms after the first member froze (%lld ms after the "
      "last; deadline %d ms, tick %d ms)\n",
      static_cast<long long>(since_first.count()), static_cast<long long>(since_last.count()),
      kDeadlineMs, kTickMs);
  // Not early: the poller logs, with the fence, how long ago its last confirmation and its last
  // answer from ZooKeeper were; both are at least the deadline.
  {
    const std::string log = cases[0].poller->Log();
    const std::size_t line = log.find("zookeeper_loss_fence ");
    ASSERT_NE(line, std::string::npos) << log;
    for (const std::string key : {"last_confirmed_age_ms=", "last_answer_age_ms="}) {
      const std::size_t at = log.find(key, line);
      ASSERT_NE(at, std::string::npos) << key << "\n" << log;
      const long long age = std::atoll(log.c_str() + at + key.size());
      std::printf("fence on ZooKeeper loss: %s%lld\n", key.c_str(), age);
      EXPECT_GE(age, kDeadlineMs) << key << "\n" << log;
    }
  }

  // The opted-out poller saw the same loss and does nothing: give it the deadline and two ticks.
  EXPECT_TRUE(Await(seconds(30), [&] {
    return cases[1].poller->Log().find("zookeeper_unusable") != std::string::npos;
  })) << cases[1].poller->Log();
  const auto waited = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - last_stop);
  EXPECT_FALSE(Await(std::max(milliseconds(0), milliseconds(kDeadlineMs + 2 * kTickMs) - waited), [&] {
    return !ReadFile(cases[1].marker).empty();
  })) << cases[1].poller->Log();

  for (int m = 1; m <= 3; ++m) ASSERT_TRUE(g->lab->ZkCont(m).ok());
  // Once ZooKeeper is back the observation tells the fence, and why.
  ASSERT_NO_FATAL_FAILURE(ReconnectReader());
  EXPECT_TRUE(Await(seconds(60), [&] {
    auto o = ReadObservation("zkloss-on", "sf");
    return o && o->fencing == model::FencingState::kFenced &&
           o->error.find("ZooKeeper lost") != std::string::npos;
  })) << cases[0].poller->Log();
  auto off = ReadObservation("zkloss-off", "sf");
  EXPECT_TRUE(Await(seconds(60), [&] {
    off = ReadObservation("zkloss-off", "sf");
    return off && off->reachable;
  }));
  EXPECT_EQ(off->fencing, model::FencingState::kNone);
  // Once per loss, logged once with its evidence.
  const std::string log = cases[0].poller->Log();
  EXPECT_EQ(CountOf(ReadFile(cases[0].marker), "fenced"), 1) << log;
  EXPECT_EQ(CountOf(log, "zookeeper_loss_fence "), 1) << log;
  EXPECT_NE(log.find("last_confirmed_age_ms="), std::string::npos) << log;
  EXPECT_NE(log.find("session_state="), std::string::npos) << log;
  EXPECT_TRUE(ReadFile(cases[1].marker).empty());
  for (auto& c : cases) c.poller->Stop(SIGTERM);
}

}  // namespace
}  // namespace pgherald::pollers

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pgherald::pollers::LabEnvironment());
  return RUN_ALL_TESTS();
}
