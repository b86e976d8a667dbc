// Promotion-to-route on the whole stack (issue 6): the lab, a poller per node, two orchestrators and
// `pgherald watch` driving HAProxy and pgbouncer, with clients writing unique rows through both
// proxies. Per failover (kill -9 of the primary, rejoin between rounds):
//   promotion : the new primary leaving recovery, seen by polling pg_is_in_recovery() on both
//               standbys over held connections every ~1 ms;
//   decided   : the orchestrator's decision that published it (history decided_at, ms resolution);
//   routed    : the first write acknowledged through HAProxy (and through pgbouncer) by it.
// Prints promotion->route per proxy, kill->promotion, promotion->decided, and the clients' total
// unavailability (last ack before the kill to the first ack after it), median and p99, and the
// machine. Usage: PGHERALD_LABCTL=... PGHERALD_BIN=... e2e_promotion_route_bench [failovers=20]
#include <libpq-fe.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "tests/e2e/drills.h"

using namespace pgherald;       // NOLINT: a benchmark's main
using namespace pgherald::e2e;  // NOLINT

namespace {

// Polls pg_is_in_recovery() on the given nodes over held connections; records the first instant
// one of them answers false.
class PromotionDetector {
 public:
  PromotionDetector(Stack& s, std::vector<int> nodes) {
    for (int n : nodes) {
      PGconn* c = PQconnectdb((s.NodeConninfo(n) + " connect_timeout=2").c_str());
      conns_.emplace_back(n, c);
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~PromotionDetector() {
    stop_ = true;
    thread_.join();
    for (auto& [n, c] : conns_) PQfinish(c);
  }
  std::int64_t promoted_ns() const { return promoted_ns_; }
  int promoted_node() const { return promoted_node_; }

 private:
  void Run() {
    while (!stop_ && promoted_ns_ == 0) {
      for (auto& [n, c] : conns_) {
        PGresult* r = PQexec(c, "select pg_is_in_recovery()");
        const std::int64_t now = MonoNs();
        if (PQresultStatus(r) == PGRES_TUPLES_OK && std::string(PQgetvalue(r, 0, 0)) == "f") {
          promoted_node_ = n;
          promoted_ns_ = now;
        }
        PQclear(r);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(800));  // the polling period
    }
  }
  std::vector<std::pair<int, PGconn*>> conns_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> promoted_ns_{0};
  std::atomic<int> promoted_node_{0};
};

void Print(const char* name, const std::vector<double>& v) {
  std::printf("  %-40s n=%-3zu median=%8.1f ms  p99=%8.1f ms  max=%8.1f ms\n", name, v.size(),
              Percentile(v, 50), Percentile(v, 99), Percentile(v, 100));
}

}  // namespace

int main(int argc, char** argv) {
  const int failovers = argc > 1 ? std::atoi(argv[1]) : 20;
  if (failovers <= 0) {
    std::fprintf(stderr, "usage: e2e_promotion_route_bench [failovers > 0]\n");
    return 2;
  }
  auto up = Stack::Up(StackOptions{});
  if (!up.ok()) {
    std::fprintf(stderr, "stack: %s\n", up.status().ToString().c_str());
    return 1;
  }
  Stack& s = **up;
  std::vector<double> kill_to_promo, promo_to_decided, promo_to_ha, promo_to_pb, unavail_ha,
      unavail_pb;
  for (int i = 0; i < failovers; ++i) {
    auto healthy = s.AwaitHealthyCluster(std::chrono::milliseconds(60000));
    if (!healthy.ok()) {
      std::fprintf(stderr, "round %d: %s\n", i, healthy.status().ToString().c_str());
      return 1;
    }
    const int old = *healthy;
    std::vector<int> standbys;
    for (int n = 1; n <= 3; ++n) {
      if (n != old) standbys.push_back(n);
    }
    const std::uint64_t epoch_before = s.Master()->epoch;
    WorkloadOptions wo;
    wo.haproxy_conninfo = s.HaproxyConninfo();
    wo.pgbouncer_conninfo = s.PgbouncerConninfo();
    wo.client_base = 1000 + i * 10;
    wo.clients_per_route = 3;  // a client stuck in a doomed connect does not hide the route
    wo.pause = std::chrono::microseconds(500);
    Workload w(wo);
    w.Start();
    const int old_port = s.lab().pg_port(old);
    WaitUntil([&] { return w.Acks(Route::kHaproxy, old_port) > 10 && w.Acks(Route::kPgbouncer, old_port) > 10; },
              std::chrono::milliseconds(10000));
    PromotionDetector detector(s, standbys);
    const std::int64_t kill_ns = MonoNs();
    if (auto st = s.lab().PgKill(old); !st.ok()) {
      std::fprintf(stderr, "pg-kill: %s\n", st.ToString().c_str());
      return 1;
    }
    if (!WaitUntil([&] { return detector.promoted_ns() != 0; }, std::chrono::milliseconds(30000), std::chrono::milliseconds(1))) {
      std::fprintf(stderr, "round %d: no standby left recovery within 30 s\n", i);
      return 1;
    }
    const int node = detector.promoted_node();
    const int port = s.lab().pg_port(node);
    std::int64_t ha = 0, pb = 0;
    if (!WaitUntil(
            [&] {
              ha = w.FirstAck(Route::kHaproxy, port, kill_ns);
              pb = w.FirstAck(Route::kPgbouncer, port, kill_ns);
              return ha != 0 && pb != 0;
            },
            std::chrono::milliseconds(30000), std::chrono::milliseconds(2))) {
      std::fprintf(stderr, "round %d: writes never landed on node%d through both proxies\n%s\n", i,
                   node, s.Tail("watch").c_str());
      return 1;
    }
    w.Stop();
    const std::int64_t promo = detector.promoted_ns();
    const std::int64_t offset = WallMinusMonoMs();
    double decided = -1;
    for (const auto& e : s.History()) {
      if (e.action == "publish" && e.master && e.epoch > epoch_before && e.master->port == port) {
        decided = static_cast<double>((e.decided_at_ms - offset) * 1000000 - promo) / 1e6;
        promo_to_decided.push_back(decided);
        break;
      }
    }
    kill_to_promo.push_back(static_cast<double>(promo - kill_ns) / 1e6);
    promo_to_ha.push_back(static_cast<double>(ha - promo) / 1e6);
    promo_to_pb.push_back(static_cast<double>(pb - promo) / 1e6);
    unavail_ha.push_back(static_cast<double>(ha - w.LastAckBefore(Route::kHaproxy, kill_ns)) / 1e6);
    unavail_pb.push_back(static_cast<double>(pb - w.LastAckBefore(Route::kPgbouncer, kill_ns)) / 1e6);
    std::printf("failover %2d: node%d -> node%d  promotion->decided %.0f ms  ->haproxy %.1f ms  "
                "->pgbouncer %.1f ms  kill->promotion %.1f ms\n",
                i + 1, old, node, decided, promo_to_ha.back(), promo_to_pb.back(),
                kill_to_promo.back());
    std::fflush(stdout);
    if (auto st = RestoreCluster(s); !st.ok()) {
      std::fprintf(stderr, "restore after round %d: %s\n", i, st.ToString().c_str());
      return 1;
    }
  }
  std::printf("\npromotion-to-route over %d kill -9 failovers; %s\n", failovers, MachineLine().c_str());
  Print("promotion -> first write via HAProxy", promo_to_ha);
  Print("promotion -> first write via pgbouncer", promo_to_pb);
  Print("promotion -> orchestrator decided", promo_to_decided);
  Print("kill -9 -> promotion (repmgrd)", kill_to_promo);
  Print("unavailability via HAProxy (from kill)", unavail_ha);
  Print("unavailability via pgbouncer (from kill)", unavail_pb);
  std::printf("targets (HAProxy): p50 <= 150 ms, p99 <= 500 ms\n");
  return 0;
}
