// The poller's cost and speed on the real lab (ZooKeeper ensemble + PostgreSQL 15/repmgr 5.3):
//   1. cost per tick on its node: statements per tick (1 by construction, counted here), the
//      server's execution time of the tick statement (EXPLAIN (ANALYZE) "Execution Time": planning
//      excluded, reported separately) and the client-side round trip;
//   2. notify-to-ZooKeeper: from SendNotify (what `pgherald notify` does after parsing) to the
//      event's fact znode firing a ZooKeeper watch, with a running `pgherald poller` whose tick is
//      10 s, so only the notify path can deliver it. The `pgherald notify` process itself is timed
//      separately (exec + parse + send).
// Prints median and p99 and the machine. Usage: PGHERALD_LABCTL=... PGHERALD_BIN=... poller_bench
// [iterations]
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/pg_connection.h"
#include "common/zk/zk_client.h"
#include "pollers/notify.h"
#include "pollers/observation.h"
#include "tests/lab/lab.h"

using namespace pgherald;  // NOLINT: a benchmark's main
using SteadyClock = std::chrono::steady_clock;

namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

double MsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

void PrintMachine() {
  std::ifstream cpu("/proc/cpuinfo");
  std::string line, model;
  int cpus = 0;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      ++cpus;
      model = line.substr(line.find(':') + 2);
    }
  }
  utsname u{};
  uname(&u);
  std::printf("machine: %d cpus (%s), %s %s; load shared with other jobs\n", cpus, model.c_str(),
              u.sysname, u.release);
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
  const char* bin = std::getenv("PGHERALD_BIN");
  if (bin == nullptr) {
    std::fprintf(stderr, "PGHERALD_BIN must name the pgherald program\n");
    return 2;
  }
  lab::LabOptions options;
  options.postgres = true;
  auto lab = lab::Lab::Up(options);
  if (!lab.ok()) {
    std::fprintf(stderr, "lab: %s\n", lab.status().ToString().c_str());
    return 1;
  }
  PrintMachine();

  // 1. Cost per tick on the primary, as the poller's user.
  pg::PgParams params;
  params.port = (*lab)->pg_port(1);
  params.user = (*lab)->Env("PG_APP_USER");
  params.password = (*lab)->Env("PG_APP_PASSWORD");
  params.dbname = (*lab)->Env("REPMGR_DB");
  auto conn = pg::PgConnection::Connect(params);
  if (!conn.ok()) {
    std::fprintf(stderr, "postgres: %s\n", conn.status().ToString().c_str());
    return 1;
  }
  const pollers::RepmgrLayout layout{pollers::RepmgrLayout::Kind::kRepmgr4, "repmgr"};
  // The tick as the poller builds it: with the timeline's start read through the function the
  // role may call (probed once per connection), and, for comparison, without it.
  auto probe = (*conn)->Exec(pollers::TimelineStartProbeSql());
  auto source = probe.ok() ? pollers::ParseTimelineStartProbe(*probe)
                           : StatusOr<pollers::TimelineStart>(probe.status());
  if (!source.ok()) {
    std::fprintf(stderr, "probe: %s\n", source.status().ToString().c_str());
    return 1;
  }
  std::vector<pollers::TimelineStart> sources = {*source};
  if (*source != pollers::TimelineStart::kNone) sources.push_back(pollers::TimelineStart::kNone);
  for (const pollers::TimelineStart with : sources) {
    pollers::TickSqlOptions sql_options;
    sql_options.timeline_start = with;
    pollers::EventCursor cursor;
    auto first = (*conn)->Exec(pollers::BuildTickSql(layout, std::nullopt, sql_options));
    if (!first.ok()) {
      std::fprintf(stderr, "tick: %s\n", first.status().ToString().c_str());
      return 1;
    }
    auto tick0 = pollers::ParseTickResult(*first);
    if (tick0.ok()) cursor.Accept(tick0->events);
    const std::string sql = pollers::BuildTickSql(layout, cursor.QueryFromUs(), sql_options);
    std::vector<double> round_trip, exec_ms, plan_ms;
    int statements = 0;
    for (int i = 0; i < iterations; ++i) {
      const auto t = SteadyClock::now();
      auto r = (*conn)->Exec(sql);
      round_trip.push_back(MsSince(t));
      ++statements;
      if (!r.ok()) {
        std::fprintf(stderr, "tick: %s\n", r.status().ToString().c_str());
        return 1;
      }
      auto explain = (*conn)->Exec("EXPLAIN (ANALYZE, FORMAT JSON) " + sql);
      if (explain.ok() && explain->num_rows() == 1) {
        auto text = explain->row(0).Get<std::string>(0);
        auto j = nlohmann::json::parse(text.ok() ? *text : "", nullptr, false);
        if (j.is_array() && !j.empty()) {
          exec_ms.push_back(j[0].value("Execution Time", 0.0));
          plan_ms.push_back(j[0].value("Planning Time", 0.0));
        }
      }
    }
    std::printf(
        "tick on the primary (repmgr 4/5 layout, timeline_start=%s, %d iterations): %d "
        "statement(s) per tick, 1 round trip\n",
        pollers::TimelineStartName(with), iterations, statements / iterations);
    std::printf(
        "  server execution time (EXPLAIN ANALYZE): median %.3f ms, p99 %.3f ms; planning "
        "median %.3f ms\n",
        Percentile(exec_ms, 0.5), Percentile(exec_ms, 0.99), Percentile(plan_ms, 0.5));
    std::printf("  client round trip: median %.3f ms, p99 %.3f ms\n", Percentile(round_trip, 0.5),
                Percentile(round_trip, 0.99));
  }

  // 2. notify -> ZooKeeper, through a running poller whose tick is 10 s.
  const std::string dir = (*lab)->dir();
  const std::string socket = dir + "/bench-poller.sock";
  const std::string config = dir + "/bench-poller.yaml";
  std::ofstream(config) << "zookeeper: {connect: \"" << (*lab)->zk_connect()
                        << "\", root: /pgherald-bench}\nlogging: {level: warn}\n"
                        << "poller: {cluster: bench, node: node1, tick_ms: 10000, heartbeat_ms: "
                           "10000, events_retention: 100000, notify_socket: "
                        << socket << "}\npostgres: {host: 127.0.0.1, port: " << params.port
                        << ", user: " << params.user << ", password: \"" << *params.password
                        << "\", dbname: " << params.dbname << "}\n";
  const pid_t pid = fork();
  if (pid == 0) {
    execl(bin, bin, "poller", "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  zk::ZkClientOptions zo;
  zo.connect = (*lab)->zk_connect();
  auto zk = zk::ZkClient::Connect(zo);
  if (!zk.ok()) {
    std::fprintf(stderr, "zk: %s\n", zk.status().ToString().c_str());
    kill(pid, SIGKILL);
    return 1;
  }
  const std::string events = "/pgherald-bench/clusters/bench/events";
  const auto wait_start = SteadyClock::now();
  while (MsSince(wait_start) < 20000) {
    auto e = (*zk)->Exists("/pgherald-bench/clusters/bench/nodes/node1");
    if (e.ok() && e->has_value()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // start-up poll
  }
  std::vector<double> latency;
  std::mutex mu;
  std::condition_variable cv;
  for (int i = 0; i < iterations; ++i) {
    pollers::NotifyMessage m;
    m.node_id = 1;
    m.event = "bench_" + std::to_string(i);
    m.timestamp = "2030-01-01 00:00:" + std::string(i % 60 < 10 ? "0" : "") +
                  std::to_string(i % 60) + "." + std::to_string(100000 + i) + "+00";
    const std::string path = events + "/" + m.ToEvent(0).ZnodeName();
    bool fired = false;
    auto armed = (*zk)->Exists(path, [&](const zk::WatchEvent&) {
      std::lock_guard lock(mu);
      fired = true;
      cv.notify_all();
    });
    if (!armed.ok() || armed->has_value()) continue;
    const auto t = SteadyClock::now();
    if (!pollers::SendNotify(socket, m).ok()) continue;
    std::unique_lock lock(mu);
    if (cv.wait_for(lock, std::chrono::seconds(5), [&] { return fired; })) {
      latency.push_back(MsSince(t));
    }
  }
  std::printf("notify -> event fact in ZooKeeper (watch fired), %zu of %d: median %.2f ms, "
              "p99 %.2f ms\n",
              latency.size(), iterations, Percentile(latency, 0.5), Percentile(latency, 0.99));
  std::vector<double> process;
  for (int i = 0; i < 20; ++i) {
    const std::string cmd = std::string(bin) + " notify --socket " + socket +
                            " 1 bench_process 1 '2030-01-02 00:00:00." + std::to_string(100000 + i) +
                            "+00' x";
    const auto t = SteadyClock::now();
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "notify exited non-zero\n");
    process.push_back(MsSince(t));
  }
  std::printf("`pgherald notify` process (fork+exec+send, via sh): median %.2f ms, p99 %.2f ms\n",
              Percentile(process, 0.5), Percentile(process, 0.99));
  (*zk)->Close();
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return 0;
}
