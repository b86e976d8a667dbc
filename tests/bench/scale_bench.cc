// Benchmark: what N clusters cost one or three `pgherald orchestrator`s, and what they do to one
// cluster's failover (issue 15). Prints figures; not a test.
//
// Per N (--clusters, default 1,100; 1000 works too) and per orchestrator count (--orchestrators,
// default 1,3), on a fresh root in ZooKeeper:
//   - cluster "main" is the lab's 3-node PostgreSQL 15 + repmgr cluster with repmgrd, observed by
//     three real `pgherald poller`s (one per node, notify hook as docs/poller.md sets it up);
//   - clusters c0002..cN are logical clusters of three nodes each, all pointing at one second
//     lab's 3-node PostgreSQL + repmgr cluster (the "fan-in": a primary and two streaming
//     standbys, started by this bench through labctl, max_connections raised; repmgrd runs there
//     but nothing fails it), each cluster through its own spelling of 127.0.0.1 (ClusterHost), so
//     that the orchestrator keeps connections per cluster as with distinct hosts. Their pollers are simulated by ObservationLoad
//     (tests/bench/observation_load.h): the pollers' own statement, codec and publisher, each
//     logical node writing its observation znode and reading the master znode at the pollers'
//     rate, over --load-sessions ZooKeeper sessions;
//   - every orchestrator's config lists the N clusters ($PGHERALD_BIN, tick --tick-ms).
// Once every cluster has a vouched master, over a --window-s window of steady state it measures:
// each orchestrator's CPU (cores: utime+stime deltas of /proc/PID/stat) and RSS (VmRSS);
// ZooKeeper requests per second (the sum over the ensemble's three servers of `mntr`'s
// zk_packets_received deltas: every request and ping the servers received, the bench's own few
// reads included); PostgreSQL client connections (pg_stat_activity, all six instances; the
// orchestrators' by their application_name) and transactions per second (pg_stat_database
// xact_commit + xact_rollback deltas, all databases, all six instances: the orchestrators'
// probes and write checks, the pollers' and the load generator's tick statements, repmgrd).
// Then --failovers kill -9 failovers of "main" while the others run, timed as
// orchestrator_failover_bench does (first pg_is_in_recovery() = false on a standby -> the master
// znode's watch). With three orchestrators: the takeover when the one owning the most clusters
// is killed -9 (the ownership layout of docs/orchestrator.md: <root>/clusters/<c>/owners/
// o-<guid>-<seq>, lowest sequence owns): from the kill until each of its clusters has another
// owner and a voucher of that owner bound to its master record; median/max over those clusters,
// and whether any cluster showed two orchestrators' vouchers at once. Without owners znodes (an
// orchestrator from before sharding) it prints "no ownership queue".
//
//   PGHERALD_LABCTL=tests/lab/labctl PGHERALD_BIN=build/ci/app/pgherald
//     build/ci/tests/bench/scale_bench [--clusters 1,100,1000] [--orchestrators 1,3]
//     [--failovers 20] [--window-s 30] [--tick-ms 1000] [--poller-tick-ms 1000]
//     [--load-sessions 16] [--session-timeout-ms 4000]
#include <algorithm>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "common/model/voucher.h"
#include "common/model/zk_paths.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/observation_load.h"
#include "tests/integration/orchestrator_lab_util.h"

using namespace pgherald;  // NOLINT: a benchmark's main
using namespace pgherald::orchestrator_lab;
using namespace pgherald::bench;

namespace {

struct Flags {
  std::vector<int> clusters = {1, 100};
  std::vector<int> orchestrators = {1, 3};
  int failovers = 20;
  int window_s = 30;
  int tick_ms = 1000;
  int poller_tick_ms = 1000;
  int load_sessions = 16;
  int session_timeout_ms = 4000;
};

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

// ---- /proc -------------------------------------------------------------------------------------

// utime + stime of a process, in clock ticks; -1 when unreadable.
long long CpuTicks(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 1; i <= 13 && in >> field; ++i) {  // state is field 1 here, utime 12, stime 13
    if (i == 12) utime = std::atoll(field.c_str());
    if (i == 13) stime = std::atoll(field.c_str());
  }
  return utime + stime;
}

// VmRSS in MiB; -1 when unreadable.
double RssMiB(pid_t pid) {
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return -1;
}

// ---- ZooKeeper ---------------------------------------------------------------------------------

// A four-letter word's answer from 127.0.0.1:port ("" on failure).
std::string FourLetter(int port, const std::string& word) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, word.data(), word.size()) == static_cast<ssize_t>(word.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// The sum of `key` in `mntr` over the ensemble's servers; -1 when a server does not answer.
long long MntrSum(const lab::Lab& lab, const std::string& key) {
  long long sum = 0;
  for (int m = 1; m <= 3; ++m) {
    std::istringstream in(FourLetter(lab.EnvInt("ZK_PORT_" + std::to_string(m)), "mntr"));
    std::string line;
    bool found = false;
    while (std::getline(in, line)) {  // "key<TAB>value" (zk_version's value has spaces)
      if (line.rfind(key + "\t", 0) == 0) {
        sum += std::atoll(line.c_str() + key.size() + 1);
        found = true;
        break;
      }
    }
    if (!found) return -1;
  }
  return sum;
}

// ---- PostgreSQL --------------------------------------------------------------------------------

struct PgSample {
  long long client_backends = 0;
  long long orchestrator_connections = 0;
  long long xacts = 0;
  bool ok = true;
};

PgSample SamplePg(const std::vector<const lab::Lab*>& labs) {
  PgSample s;
  for (const lab::Lab* l : labs) {
    for (int n = 1; n <= 3; ++n) {
      auto row = QueryRow(l->pg_conninfo(n),
                          "select (select count(*) from pg_stat_activity where backend_type = 'client backend'), "
                          "(select count(*) from pg_stat_activity where backend_type = 'client backend' and "
                          "application_name = 'pgherald-orchestrator'), "
                          "(select sum(xact_commit + xact_rollback) from pg_stat_database)");
      if (!row || row->size() != 3) {
        s.ok = false;
        continue;
      }
      s.client_backends += std::atoll((*row)[0].c_str());
      s.orchestrator_connections += std::atoll((*row)[1].c_str());
      s.xacts += std::atoll((*row)[2].c_str());
    }
  }
  return s;
}

// The write checks run so far on the fan-in's primary (node1): the heartbeat rows' beats, one per
// write check of a cluster's master there (-1: unreadable). Their rate is the verification
// cadence the orchestrators keep over the fan-in's clusters.
long long WriteChecks(const lab::Lab& fanin) {
  auto row = QueryRow(fanin.pg_conninfo(1, fanin.Env("PG_APP_DATABASE")),
                      "select coalesce(sum(beats), 0) from pgherald.heartbeat");
  if (!row || row->size() != 1) return -1;
  return std::atoll((*row)[0].c_str());
}

// Raises max_connections of the fan-in lab's three nodes (repmgrd stopped meanwhile, so the
// restarts fail nothing over) and waits for it to be healthy again.
bool PrepareFanIn(lab::Lab& fanin, int max_connections) {
  for (int n = 1; n <= 3; ++n) {
    if (!fanin.RepmgrdStop(n).ok()) return false;
    // ALTER SYSTEM runs alone (not in a transaction block), so not through QueryOne.
    PGconn* c = PQconnectdb(fanin.pg_conninfo(n).c_str());
    PGresult* r = PQexec(c, ("alter system set max_connections = " + std::to_string(max_connections)).c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    if (!ok) return false;
  }
  // Standbys first down, the primary first up (a standby's max_connections must not be below
  // its primary's).
  for (int n : {2, 3, 1}) {
    if (!fanin.PgStop(n).ok()) return false;
  }
  for (int n : {1, 2, 3}) {
    if (Status st = fanin.PgStartWritable(n); !st.ok()) {  // a plain start: standbys stay standbys
      std::fprintf(stderr, "fan-in node%d: %s\n", n, st.ToString().c_str());
      return false;
    }
  }
  for (int n = 1; n <= 3; ++n) {
    if (!fanin.RepmgrdStart(n).ok()) return false;
  }
  return AwaitHealthyCluster(fanin, std::chrono::seconds(120)) == 1;
}

// ---- ownership (docs/orchestrator.md; issue 15 part B) -------------------------------------------

// The sequence number of an owners candidate "o-<guid>-<seq>"; -1 when the name is not one.
long long CandidateSeq(const std::string& name) {
  const std::size_t dash = name.rfind('-');
  if (name.rfind("o-", 0) != 0 || dash == std::string::npos || dash + 1 >= name.size()) return -1;
  for (std::size_t i = dash + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
  }
  return std::atoll(name.c_str() + dash + 1);
}

// The orchestrator id of cluster c's owner (lowest candidate's data {"id":...}); "" when there is
// no candidate or it cannot be read; nullopt when the cluster has no owners znode at all.
std::optional<std::string> OwnerOf(zk::ZkSession& zk, const std::string& root, const std::string& cluster) {
  const std::string owners = root + "/clusters/" + cluster + "/owners";
  auto children = zk.GetChildren(owners);
  if (!children.ok()) {
    if (children.status().code() == StatusCode::kNotFound) return std::nullopt;
    return std::string();
  }
  std::string best;
  long long best_seq = -1;
  for (const std::string& c : *children) {
    const long long seq = CandidateSeq(c);
    if (seq >= 0 && (best_seq < 0 || seq < best_seq)) {
      best_seq = seq;
      best = c;
    }
  }
  if (best.empty()) return std::string();
  auto data = zk.Get(owners + "/" + best);
  if (!data.ok()) return std::string();
  auto json = nlohmann::json::parse(data->data, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("id") || !json["id"].is_string()) return std::string();
  return json["id"].get<std::string>();
}

struct TakeoverResult {
  bool queue = false;  // any owners znode at all
  std::string victim;
  std::size_t owned = 0;
  std::vector<double> ms;  // per cluster taken over
  std::size_t double_vouched = 0;
  std::vector<std::string> double_examples;
  double worst_round_ms = 0;
};

// Kills -9 the orchestrator owning the most clusters and times its clusters' takeover.
TakeoverResult Takeover(const lab::Lab& lab, const std::string& root, const std::vector<std::string>& clusters,
                        std::map<std::string, OrchestratorProcess*>& procs, int session_timeout_ms) {
  TakeoverResult r;
  auto zk = Reader(lab);
  if (zk == nullptr) return r;
  std::map<std::string, std::vector<std::string>> owned_by;
  for (const std::string& c : clusters) {
    auto owner = OwnerOf(*zk, root, c);
    if (!owner) continue;
    r.queue = true;
    if (!owner->empty()) owned_by[*owner].push_back(c);
  }
  if (!r.queue || owned_by.empty()) return r;
  for (auto& entry : owned_by) {
    if (procs.count(entry.first) > 0 && entry.second.size() > r.owned) {
      r.victim = entry.first;
      r.owned = entry.second.size();
    }
  }
  if (r.victim.empty()) return r;
  const std::vector<std::string> mine = owned_by[r.victim];
  const int threads = static_cast<int>(std::min<std::size_t>(8, mine.size()));
  std::vector<double> taken(mine.size(), -1);
  std::vector<int> doubled(mine.size(), 0);
  std::vector<std::string> example(mine.size());
  std::vector<double> worst_round(static_cast<std::size_t>(threads), 0);
  std::atomic<bool> go{false};
  Steady::time_point killed_at{};
  const auto deadline_after = std::chrono::milliseconds(session_timeout_ms) + std::chrono::seconds(60);
  std::vector<std::thread> workers;
  const std::string victim = r.victim;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto session = Reader(lab);
      while (!go) std::this_thread::yield();
      if (session == nullptr) return;
      const auto deadline = killed_at + deadline_after;
      bool extra_round_done = false;
      while (Steady::now() < deadline) {
        const auto round_start = Steady::now();
        bool all_done = true;
        for (std::size_t i = static_cast<std::size_t>(t); i < mine.size(); i += static_cast<std::size_t>(threads)) {
          const std::string path = root + "/clusters/" + mine[i] + "/master";
          auto m = session->Get(path);
          auto children = session->GetChildren(path);
          std::set<std::string> vouchers;
          if (m.ok() && children.ok()) {
            auto record = model::MasterRecord::FromJson(m->data);
            if (record.ok()) {
              for (const std::string& name : model::BoundVouchers(*children, *record, m->data)) {
                vouchers.insert(model::ParseVoucherName(name)->orchestrator);
              }
            }
          }
          if (vouchers.size() > 1) {
            ++doubled[i];
            std::string ids;
            for (const std::string& v : vouchers) ids += (ids.empty() ? "" : ",") + v;
            example[i] = mine[i] + ": " + ids;
          }
          if (taken[i] >= 0) continue;
          all_done = false;
          auto owner = OwnerOf(*session, root, mine[i]);
          if (owner && !owner->empty() && *owner != victim && vouchers.count(*owner) > 0) {
            taken[i] = Ms(Steady::now() - killed_at);
          }
        }
        worst_round[static_cast<std::size_t>(t)] =
            std::max(worst_round[static_cast<std::size_t>(t)], Ms(Steady::now() - round_start));
        if (all_done) {
          if (extra_round_done) break;
          extra_round_done = true;  // one more look for two owners' vouchers
        }
      }
    });
  }
  killed_at = Steady::now();
  procs[r.victim]->Kill9();
  go = true;
  for (auto& w : workers) w.join();
  for (std::size_t i = 0; i < mine.size(); ++i) {
    if (taken[i] >= 0) r.ms.push_back(taken[i]);
    if (doubled[i] > 0) {
      ++r.double_vouched;
      if (r.double_examples.size() < 5) r.double_examples.push_back(example[i]);
    }
  }
  for (double w : worst_round) r.worst_round_ms = std::max(r.worst_round_ms, w);
  return r;
}

// ---- one scenario --------------------------------------------------------------------------------

struct Figures {
  int clusters = 0;
  int orchestrators = 0;
  std::vector<double> cpu_cores;
  std::vector<double> rss_mib;
  double zk_requests_per_s = -1;
  long long pg_connections = 0;
  long long orch_pg_connections = 0;
  double pg_xacts_per_s = -1;
  std::vector<double> failover_ms;
  std::string takeover;
};

std::string Tail(const std::string& text, std::size_t n) {
  return text.size() > n ? text.substr(text.size() - n) : text;
}

std::string ClusterName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "c%04d", i);
  return buf;
}

// The host of cluster i's nodes (2..1000): 127.0.0.1 as an IPv4-mapped IPv6 address spelled
// differently per cluster, its five zero groups zero-padded to 1-4 digits ("00:0:000:0:0:ffff:7f00:1";
// PostgreSQL's pg_hba matches such a client against 127.0.0.1/32). The orchestrator's prober keeps
// a connection per node name@host:port, so each logical cluster gets connections of its own, as
// clusters on distinct hosts would.
std::string ClusterHost(int i) {
  int idx = i - 1;  // 1..999, five base-4 digits
  std::string host;
  for (int g = 0; g < 5; ++g, idx /= 4) host += std::string(static_cast<std::size_t>(idx % 4), '0') + "0:";
  return host + "ffff:7f00:1";
}

// The YAML items of clusters c0002..cN, every one pointing at the fan-in's three nodes.
std::string ExtraClustersYaml(const lab::Lab& fanin, const std::string& password_file, int n) {
  std::string yaml;
  for (int i = 2; i <= n; ++i) {
    std::string nodes;
    for (int k = 1; k <= 3; ++k) {
      nodes += "      - {name: node" + std::to_string(k) + ", host: \"" + ClusterHost(i) + "\", port: " +
               std::to_string(fanin.pg_port(k)) + "}\n";
    }
    yaml += "  - name: " + ClusterName(i) + "\n    postgres:\n      user: " + fanin.Env("PG_APP_USER") +
            "\n      dbname: " + fanin.Env("PG_APP_DATABASE") + "\n      password_file: " + password_file +
            "\n      connect_timeout_ms: 1000\n      statement_timeout_ms: 1000\n    nodes:\n" + nodes;
  }
  return yaml;
}

bool RunScenario(lab::Lab& lab, lab::Lab* fanin, const Flags& flags, int n, int k, Figures* fig) {
  fig->clusters = n;
  fig->orchestrators = k;
  const std::string root = "/pgherald-scale-" + std::to_string(n) + "-" + std::to_string(k) + "-" +
                           std::to_string(::getpid());
  std::printf("\n== N=%d clusters, %d orchestrator%s (root %s), load %s\n", n, k, k == 1 ? "" : "s", root.c_str(),
              Load().c_str());
  std::fflush(stdout);
  auto zk = Reader(lab);
  if (zk == nullptr) {
    std::fprintf(stderr, "cannot reach ZooKeeper\n");
    return false;
  }
  std::vector<std::unique_ptr<PollerProcess>> pollers;
  if (!StartLabPollers(lab, *zk, root, flags.poller_tick_ms, &pollers)) return false;
  std::vector<std::string> clusters = {"main"};
  for (int i = 2; i <= n; ++i) clusters.push_back(ClusterName(i));
  std::unique_ptr<ObservationLoad> load;
  std::string extra;
  if (n > 1) {
    ObservationLoadOptions lo;
    lo.zk_connect = lab.zk_connect();
    lo.root = root;
    for (int i = 2; i <= n; ++i) lo.clusters.push_back({ClusterName(i), ClusterHost(i)});
    for (int b = 1; b <= 3; ++b) {
      ObservationLoadOptions::Backend be;
      be.node = "node" + std::to_string(b);
      be.params.host = "127.0.0.1";
      be.params.port = fanin->pg_port(b);
      be.params.user = fanin->Env("PG_APP_USER");
      be.params.password = fanin->Env("PG_APP_PASSWORD");
      be.params.dbname = fanin->Env("REPMGR_DB");
      be.params.connect_timeout = std::chrono::milliseconds(1000);
      be.params.application_name = "pgherald-scale-load";
      lo.backends.push_back(be);
    }
    lo.tick = std::chrono::milliseconds(flags.poller_tick_ms);
    lo.heartbeat = std::max(std::chrono::milliseconds(3000), lo.tick);
    lo.sessions = flags.load_sessions;
    auto started = ObservationLoad::Start(lo);
    if (!started.ok()) {
      std::fprintf(stderr, "load generator: %s\n", started.status().ToString().c_str());
      return false;
    }
    load = std::move(*started);
    const std::string pw_file = lab.dir() + "/scale-fanin-password";
    {
      std::ofstream pw(pw_file);
      pw << fanin->Env("PG_APP_PASSWORD") << "\n";
    }
    ::chmod(pw_file.c_str(), 0600);
    extra = ExtraClustersYaml(*fanin, pw_file, n);
    std::printf("load generator: %zu logical nodes (%d clusters x 3) on %d ZooKeeper sessions\n",
                load->logical_nodes(), n - 1, load->sessions());
  }
  std::vector<std::unique_ptr<OrchestratorProcess>> orchs;
  std::vector<std::string> ids;
  std::map<std::string, OrchestratorProcess*> by_id;
  for (int i = 1; i <= k; ++i) {
    OrchestratorConfigSpec spec;
    spec.id = "scale-o" + std::to_string(i);
    spec.root = root;
    spec.tick_ms = flags.tick_ms;
    spec.session_timeout_ms = flags.session_timeout_ms;
    spec.extra_clusters = extra;
    auto o = OrchestratorProcess::Start(WriteConfig(lab, spec), lab.dir() + "/" + spec.id + "-" +
                                                                    std::to_string(n) + ".log");
    if (o == nullptr) {
      std::fprintf(stderr, "cannot start the orchestrator ($PGHERALD_BIN)\n");
      return false;
    }
    ids.push_back(spec.id);
    by_id[spec.id] = o.get();
    orchs.push_back(std::move(o));
  }
  // Every cluster vouched.
  const auto start = Steady::now();
  std::size_t vouched = 0;
  bool exited = false;
  auto progress_at = start;
  // One sweep reads every cluster's vouchers: at N=1000 the bench's own reads would weigh on
  // ZooKeeper if it swept every 200 ms, so it sweeps every N ms (at least 200), and says how far
  // the orchestrators got every 30 s (a run that never gets there still shows its pace).
  const bool all = WaitUntil([&] {
    for (auto& o : orchs) exited = exited || !o->Running();
    if (exited) return true;
    vouched = 0;
    for (const std::string& c : clusters) {
      if (!Vouchers(*zk, root, c).empty()) ++vouched;
    }
    if (Steady::now() - progress_at >= std::chrono::seconds(30)) {
      progress_at = Steady::now();
      std::fprintf(stderr, "  %.0f s: %zu of %zu clusters vouched\n", Ms(progress_at - start) / 1000,
                   vouched, clusters.size());
    }
    return vouched == clusters.size();
  }, std::chrono::seconds(300 + n / 2), std::chrono::milliseconds(std::max(200, n)));
  if (!all || exited) {
    std::fprintf(stderr, "%sonly %zu of %zu clusters vouched\n%s", exited ? "an orchestrator exited; " : "", vouched,
                 clusters.size(), Tail(orchs[0]->Log(), 6000).c_str());
    return false;
  }
  std::printf("every cluster vouched %.1f s after the orchestrators started\n", Ms(Steady::now() - start) / 1000);
  std::fflush(stdout);
  // Steady state: a few ticks to settle, then the window.
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * flags.tick_ms));
  std::vector<const lab::Lab*> labs = {&lab};
  if (fanin != nullptr) labs.push_back(fanin);
  std::vector<long long> cpu0;
  for (auto& o : orchs) cpu0.push_back(CpuTicks(o->pid()));
  const long long zk0 = MntrSum(lab, "zk_packets_received");
  const PgSample pg0 = SamplePg(labs);
  const long long checks0 = fanin != nullptr ? WriteChecks(*fanin) : -1;
  const auto load0 = load ? load->counters() : ObservationLoad::Counters{};
  const auto t0 = Steady::now();
  std::this_thread::sleep_for(std::chrono::seconds(flags.window_s));
  const double secs = Ms(Steady::now() - t0) / 1000;
  const long long zk1 = MntrSum(lab, "zk_packets_received");
  const PgSample pg1 = SamplePg(labs);
  const long long checks1 = fanin != nullptr ? WriteChecks(*fanin) : -1;
  const auto load1 = load ? load->counters() : ObservationLoad::Counters{};
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::printf("steady state over %.1f s (tick_ms %d, poller tick_ms %d):\n", secs, flags.tick_ms, flags.poller_tick_ms);
  for (std::size_t i = 0; i < orchs.size(); ++i) {
    const long long c1 = CpuTicks(orchs[i]->pid());
    const double cores = cpu0[i] < 0 || c1 < 0 ? -1 : static_cast<double>(c1 - cpu0[i]) / hz / secs;
    fig->cpu_cores.push_back(cores);
    fig->rss_mib.push_back(RssMiB(orchs[i]->pid()));
    std::printf("  orchestrator %s (pid %d): CPU %.3f cores, RSS %.1f MiB\n", ids[i].c_str(),
                static_cast<int>(orchs[i]->pid()), cores, fig->rss_mib.back());
  }
  if (zk0 >= 0 && zk1 >= 0) fig->zk_requests_per_s = static_cast<double>(zk1 - zk0) / secs;
  std::printf("  ZooKeeper: %.0f requests/s received by the ensemble (mntr zk_packets_received, 3 servers; "
              "pollers, load generator, orchestrators, pings)\n", fig->zk_requests_per_s);
  fig->pg_connections = pg1.client_backends;
  fig->orch_pg_connections = pg1.orchestrator_connections;
  if (pg0.ok && pg1.ok) fig->pg_xacts_per_s = static_cast<double>(pg1.xacts - pg0.xacts) / secs;
  std::printf("  PostgreSQL (%zu instances): %lld client connections, %lld of them the orchestrators'; %.0f "
              "transactions/s (pg_stat_database deltas)\n", labs.size() * 3, pg1.client_backends,
              pg1.orchestrator_connections, fig->pg_xacts_per_s);
  if (checks0 >= 0 && checks1 >= checks0 && n > 1) {
    const double rate = static_cast<double>(checks1 - checks0) / secs;
    std::printf("  write checks of the %d fan-in clusters' masters: %.0f/s (each verified every %.2f s on "
                "average; the cadence asked is %d ms)\n",
                n - 1, rate, rate > 0 ? (n - 1) / rate : 0.0, flags.tick_ms);
  }
  if (load) {
    std::printf("  load generator: %.0f ZooKeeper reads/s, %.0f observation writes/s, %llu errors, %llu late "
                "rounds, %.1f backend ticks/s\n",
                static_cast<double>(load1.reads - load0.reads) / secs,
                static_cast<double>(load1.writes - load0.writes) / secs,
                static_cast<unsigned long long>(load1.errors - load0.errors),
                static_cast<unsigned long long>(load1.late_rounds - load0.late_rounds),
                static_cast<double>(load1.backend_ticks - load0.backend_ticks) / secs);
  }
  std::fflush(stdout);
  // Failovers of "main" while the others run.
  const std::string master_path = model::ClusterPaths(root, "main").Master();
  for (int f = 0; f < flags.failovers; ++f) {
    const int primary = AwaitHealthyCluster(lab, std::chrono::seconds(120));
    if (primary == 0) return false;
    if (!AwaitMasterPublished(*zk, root, primary, std::chrono::seconds(30))) return false;
    auto timed = KillAndTime(lab, *zk, master_path, primary);
    if (!timed.ok()) {
      std::fprintf(stderr, "failover %d: %s\n", f + 1, timed.status().ToString().c_str());
      return false;
    }
    auto m = ReadMaster(*zk, root);
    if (!m || m->node != "node" + std::to_string(timed->promoted)) {
      std::fprintf(stderr, "the master znode does not name the promoted node%d\n", timed->promoted);
      return false;
    }
    fig->failover_ms.push_back(timed->to_master_ms);
    std::printf("  failover %d: node%d -> node%d, left recovery -> master znode %.1f ms (at most %.1f ms), load %s\n",
                f + 1, primary, timed->promoted, timed->to_master_ms, timed->upper_ms,
                Load().substr(0, Load().find(' ')).c_str());
    std::fflush(stdout);
    if (!RejoinOldPrimary(lab, primary)) return false;
  }
  if (flags.failovers > 0) {
    std::printf("  promotion -> master znode of \"main\": %s\n", Stats(fig->failover_ms).c_str());
  }
  if (k >= 2) {
    TakeoverResult t = Takeover(lab, root, clusters, by_id, flags.session_timeout_ms);
    if (!t.queue) {
      fig->takeover = "no ownership queue";
    } else if (t.victim.empty()) {
      fig->takeover = "no cluster has an owner that this bench started";
    } else {
      char buf[400];
      std::snprintf(buf, sizeof buf,
                    "kill -9 of %s (owner of %zu clusters, session timeout %d ms): %zu taken over, %s; "
                    "clusters with two orchestrators' vouchers at once: %zu (each cluster checked every "
                    "<= %.0f ms)",
                    t.victim.c_str(), t.owned, flags.session_timeout_ms, t.ms.size(), Stats(t.ms).c_str(),
                    t.double_vouched, t.worst_round_ms);
      fig->takeover = buf;
      for (const std::string& e : t.double_examples) fig->takeover += "\n    two vouchers: " + e;
    }
    std::printf("  takeover: %s\n", fig->takeover.c_str());
  }
  for (auto& o : orchs) o->Stop();
  load.reset();
  for (auto& p : pollers) p->Stop();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  const bool parsed = ForEachFlag(argc, argv, [&flags](const std::string& flag, const std::string& value) {
    if (flag == "--clusters") flags.clusters = ParseList(value);
    else if (flag == "--orchestrators") flags.orchestrators = ParseList(value);
    else if (flag == "--failovers") flags.failovers = std::atoi(value.c_str());
    else if (flag == "--window-s") flags.window_s = std::atoi(value.c_str());
    else if (flag == "--tick-ms") flags.tick_ms = std::atoi(value.c_str());
    else if (flag == "--poller-tick-ms") flags.poller_tick_ms = std::atoi(value.c_str());
    else if (flag == "--load-sessions") flags.load_sessions = std::atoi(value.c_str());
    else if (flag == "--session-timeout-ms") flags.session_timeout_ms = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s (--clusters, --orchestrators, --failovers, --window-s, --tick-ms, "
                   "--poller-tick-ms, --load-sessions, --session-timeout-ms)\n", flag.c_str());
      return false;
    }
    return true;
  });
  if (!parsed) return 2;
  int max_n = 0, max_k = 0;
  for (int n : flags.clusters) max_n = std::max(max_n, n);
  for (int k : flags.orchestrators) max_k = std::max(max_k, k);
  if (flags.clusters.empty() || flags.orchestrators.empty() || flags.failovers < 0 || flags.window_s <= 0 ||
      *std::min_element(flags.clusters.begin(), flags.clusters.end()) < 1 || max_n > 1000 ||
      *std::min_element(flags.orchestrators.begin(), flags.orchestrators.end()) < 1) {
    std::fprintf(stderr, "usage: --clusters N,N.. (1..1000) --orchestrators K,K.. (>= 1) --failovers F (>= 0)\n");
    return 2;
  }
  config::LoggingConfig quiet;
  quiet.level = config::LogLevel::kWarn;
  log::Init(quiet);
  // An orchestrator keeps a connection per node: N x 3 descriptors, inherited from here (and the
  // PostgreSQL servers labctl starts inherit the limit too).
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  std::printf("load before: %s\nmachine: %s\nopen files limit: %llu\n", Load().c_str(), Machine().c_str(),
              static_cast<unsigned long long>(nofile.rlim_cur));
  std::unique_ptr<lab::Lab> lab = LabUp(true, "lab");
  if (lab == nullptr) return 1;
  std::unique_ptr<lab::Lab> fanin;
  if (max_n > 1) {
    fanin = LabUp(false, "fan-in lab");
    if (fanin == nullptr) return 1;
    // Each orchestrator keeps one connection per node it probes or would take over (the owner's
    // and the successor's: docs/orchestrator.md, "Connections kept for a takeover"), so up to 2N
    // per fan-in node with several orchestrators, and room for the killed one's connections until
    // the server has seen them close.
    const int max_connections = std::max(100, max_n * std::min(max_k, 3) + 100);
    if (!PrepareFanIn(*fanin, max_connections)) {
      std::fprintf(stderr, "fan-in lab: cannot raise max_connections to %d\n", max_connections);
      return 1;
    }
    std::printf("fan-in: 3 PostgreSQL nodes (primary node1 port %d, standbys ports %d, %d), max_connections %d\n",
                fanin->pg_port(1), fanin->pg_port(2), fanin->pg_port(3), max_connections);
  }
  std::vector<Figures> all;
  for (int n : flags.clusters) {
    for (int k : flags.orchestrators) {
      Figures fig;
      if (!RunScenario(*lab, fanin.get(), flags, n, k, &fig)) return 1;
      all.push_back(fig);
    }
  }
  std::printf("\nsummary (tick_ms %d, window %d s, %d failovers each)\n", flags.tick_ms, flags.window_s,
              flags.failovers);
  std::printf("  %6s %5s %-22s %-22s %9s %8s %8s %9s %9s %9s\n", "N", "orchs", "CPU cores (each)", "RSS MiB (each)",
              "ZK req/s", "PG conns", "orch PG", "PG xact/s", "fo median", "fo p99");
  for (const Figures& f : all) {
    std::string cpu, rss;
    char buf[32];
    for (double c : f.cpu_cores) {
      std::snprintf(buf, sizeof buf, "%s%.3f", cpu.empty() ? "" : " ", c);
      cpu += buf;
    }
    for (double r : f.rss_mib) {
      std::snprintf(buf, sizeof buf, "%s%.0f", rss.empty() ? "" : " ", r);
      rss += buf;
    }
    const double med = Percentile(f.failover_ms, 0.5), p99 = Percentile(f.failover_ms, 0.99);
    std::printf("  %6d %5d %-22s %-22s %9.0f %8lld %8lld %9.0f %9.1f %9.1f\n", f.clusters, f.orchestrators, cpu.c_str(),
                rss.c_str(), f.zk_requests_per_s, f.pg_connections, f.orch_pg_connections, f.pg_xacts_per_s, med, p99);
    if (!f.takeover.empty()) std::printf("         takeover: %s\n", f.takeover.c_str());
  }
  std::printf("load after: %s\nmachine: %s\n", Load().c_str(), Machine().c_str());
  return 0;
}
