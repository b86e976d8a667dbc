// Watch fan-out: N watcher sessions all see a change of the master znode. Prints, per N and per
// kind of watcher, the time from the write to each watcher's notification (median and p99 over
// all watchers and rounds) and the time until ALL were notified (median and p99 over rounds).
//
//   client_watch_bench [--watchers 1000,5000] [--rounds 7] [--per-process 1000]
//                      [--modes raw,raw-read,lib] [--zk HOST:PORT]
//
// Kinds:
//   raw       a ZkClient per watcher with a one-shot data watch; notified = the watch fired.
//   raw-read  the same, but notified = the watch fired AND the new value was read back (Get, which
//             re-arms the watch) by a pool of 8 worker threads: what any real consumer must do.
//   lib       a MasterWatch per watcher (its own session); notified = its OnChange callback ran
//             with the new record (it reads the value too).
//   lib-shared  the same with MasterWatchOptions::share_session: the watchers of one process
//             (--per-process) share one session and its one read; a fan-out inside the process.
//             Not in the default --modes: it is a different deployment, reported on its own.
// Without --zk it brings up a standalone ZooKeeper through the lab (needs $PGHERALD_LABCTL).
//
// The raw kinds' ZkClients are tuned as MasterWatch's sessions are (resolve_delay -1, no lease
// pings), so that the comparison is the library's own cost.
//
// A ZkClient has three threads (two of the C library, one dispatch) and three descriptors, a
// MasterWatch no more (plus one runtime thread per process), and pid_max here is 32768: watchers
// are spread over child processes (--per-process each, started by re-executing this program
// with --child), which report CLOCK_MONOTONIC timestamps (system-wide) back over a pipe.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/zk/zk_client.h"
#include "pgherald/master_watch.h"
#include "tests/bound_publish.h"
#include "tests/lab/lab.h"

namespace pgherald::bench {
namespace {

using std::chrono::milliseconds;
const char* const kCluster = "bench";
const char* const kPath = "/pgherald/clusters/bench/master";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

model::MasterRecord Record(std::uint64_t epoch) {
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = "n" + std::to_string(epoch % 3 + 1);
  r.host = "127.0.0.1";
  r.port = 5433 + static_cast<int>(epoch % 3);
  r.timeline = 1;
  r.epoch = epoch;
  r.verified_at_ms = 1700000000000;
  r.decided_by = "bench";
  return r;
}

zk::ZkClientOptions ClientOptions(const std::string& connect) {
  zk::ZkClientOptions o;
  o.connect = connect;
  o.session_timeout = milliseconds(30000);
  o.connect_timeout = milliseconds(30000);
  o.log_sink = [](zk::ZkLogLevel, const std::string&) {};
  // As MasterWatch sets it: no getaddrinfo at every wake-up of the C client's I/O thread, so the
  // raw kinds measure ZooKeeper, not the C client's default DNS polling.
  o.resolve_delay = milliseconds(-1);
  o.lease_pings = false;  // likewise: no extra request per session every timeout/6
  return o;
}

// ---- child: hosts `count` watchers, driven over stdin/stdout ----

int RunChild(const std::string& mode, const std::string& connect, int count) {
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);
  zk::ZkClient::SetDefaultLogSink([](zk::ZkLogLevel, const std::string&) {});
  zk::ZkClient::SetLibraryLogLevel(zk::ZkLogLevel::kError);

  std::vector<std::atomic<int64_t>> times(count);
  std::atomic<std::uint64_t> expected{0};
  std::mutex mu;
  std::condition_variable cv;        // the main thread waits here for the last notification
  std::condition_variable queue_cv;  // raw-read's workers wait here
  std::atomic<int> notified{0};
  // Lock-free, and the main thread is woken once, by the last watcher: the measuring harness must
  // not add a contended lock and a wake-up per notification to what it measures.
  auto record = [&](int i) {
    int64_t zero = 0;
    if (times[i].compare_exchange_strong(zero, NowNs())) {
      if (notified.fetch_add(1) + 1 == count) {
        std::lock_guard lock(mu);
        cv.notify_all();
      }
    }
  };

  std::vector<std::unique_ptr<zk::ZkClient>> clients;
  std::vector<std::unique_ptr<client::MasterWatch>> watches;
  // raw-read: watch events go to a queue served by a small pool (no call from a watcher).
  std::deque<int> queue;
  std::vector<std::thread> workers;
  bool stopping = false;
  std::function<zk::Watcher(int)> make_watcher;
  make_watcher = [&](int i) -> zk::Watcher {
    if (mode == "raw") return [&, i](const zk::WatchEvent&) { record(i); };
    return [&, i](const zk::WatchEvent&) {
      std::lock_guard lock(mu);
      queue.push_back(i);
      queue_cv.notify_one();
    };
  };

  const bool lib = mode == "lib" || mode == "lib-shared";
  if (lib) {
    for (int i = 0; i < count; ++i) {
      client::MasterWatchOptions o;
      o.zk_connect = connect;
      o.cluster = kCluster;
      o.session_timeout = milliseconds(30000);
      o.share_session = mode == "lib-shared";
      std::string error;
      auto w = client::MasterWatch::Start(o, &error);
      if (!w) {
        std::cerr << "child: MasterWatch::Start: " << error << "\n";
        return 1;
      }
      w->OnChange([&, i](const client::MasterInfo& info) {
        if (info.epoch == expected.load()) record(i);
      });
      watches.push_back(std::move(w));
    }
  } else {
    for (int i = 0; i < count; ++i) {
      auto c = zk::ZkClient::Connect(ClientOptions(connect));
      if (!c.ok()) {
        std::cerr << "child: connect: " << c.status().ToString() << "\n";
        return 1;
      }
      clients.push_back(std::move(c).value());
    }
    if (mode == "raw-read") {
      for (int t = 0; t < 8; ++t) {
        workers.emplace_back([&] {
          std::unique_lock lock(mu);
          for (;;) {
            queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
            if (stopping) return;
            int i = queue.front();
            queue.pop_front();
            lock.unlock();
            auto got = clients[i]->Get(kPath, make_watcher(i));  // read + re-arm
            if (got.ok()) record(i);
            lock.lock();
          }
        });
      }
      for (int i = 0; i < count; ++i) {
        if (!clients[i]->Get(kPath, make_watcher(i)).ok()) return 1;
      }
    }
  }
  std::cout << "ready" << std::endl;

  std::string cmd;
  while (std::cin >> cmd) {
    if (cmd == "arm") {
      std::uint64_t epoch = 0;
      std::cin >> epoch;
      for (auto& t : times) t = 0;
      notified = 0;
      expected = epoch;
      if (mode == "raw") {
        for (int i = 0; i < count; ++i) {
          if (!clients[i]->Get(kPath, make_watcher(i)).ok()) return 1;
        }
      } else if (lib) {
        // Armed once every watch shows the previous record (its watches are armed by then).
        for (auto& w : watches) {
          if (!w->WaitFor([&](const client::MasterInfo& info) {
                return info.epoch == epoch - 1 && info.status == client::MasterStatus::kVouched;
              }, milliseconds(60000))) {
            std::cerr << "child: a MasterWatch did not reach epoch " << epoch - 1 << "\n";
            return 1;
          }
        }
      }
      std::cout << "armed" << std::endl;
    } else if (cmd == "collect") {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::seconds(60), [&] { return notified.load() == count; });
      std::ostringstream line;
      line << "times " << notified.load();
      for (auto& t : times) {
        if (t.load() != 0) line << ' ' << t.load();
      }
      lock.unlock();
      std::cout << line.str() << std::endl;
    } else if (cmd == "quit") {
      break;
    }
  }
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  queue_cv.notify_all();
  for (auto& t : workers) t.join();
  watches.clear();
  clients.clear();
  return 0;
}

// ---- parent ----

struct Child {
  pid_t pid = -1;
  FILE* in = nullptr;   // to the child
  FILE* out = nullptr;  // from the child
};

Child Spawn(const std::string& self, const std::string& mode, const std::string& connect,
            int count) {
  int to_child[2];
  int from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) {
    perror("pipe");
    std::exit(1);
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    close(to_child[1]);
    close(from_child[0]);
    std::string n = std::to_string(count);
    execl(self.c_str(), self.c_str(), "--child", mode.c_str(), connect.c_str(), n.c_str(),
          static_cast<char*>(nullptr));
    perror("execl");
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  return Child{pid, fdopen(to_child[1], "w"), fdopen(from_child[0], "r")};
}

std::string ReadLine(Child& c) {
  std::string line;
  int ch;
  while ((ch = std::fgetc(c.out)) != EOF && ch != '\n') line += static_cast<char>(ch);
  return line;
}

void Send(Child& c, const std::string& line) {
  std::fputs((line + "\n").c_str(), c.in);
  std::fflush(c.in);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

void PrintMachine(const std::string& connect) {
  std::string model = "?";
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  uname(&u);
  std::printf("machine: %u cpus, %s, %s %s; ZooKeeper 3.8 standalone at %s\n",
              std::thread::hardware_concurrency(), model.c_str(), u.sysname, u.release,
              connect.c_str());
}

int RunParent(const std::string& self, std::vector<int> sizes, int rounds, int per_process,
              std::vector<std::string> modes, std::string connect) {
  std::unique_ptr<lab::Lab> lab;
  if (connect.empty()) {
    auto up = lab::Lab::Up({.zk_ensemble = false, .zk_standalone = true});
    if (!up.ok()) {
      std::cerr << "lab: " << up.status().ToString() << "\n";
      return 1;
    }
    lab = std::move(up).value();
    connect = lab->zk_standalone_connect();
  }
  PrintMachine(connect);
  auto writer = zk::ZkClient::Connect(ClientOptions(connect));
  if (!writer.ok()) {
    std::cerr << "writer: " << writer.status().ToString() << "\n";
    return 1;
  }
  zk::ZkClient& zk = **writer;
  if (!zk::EnsurePath(zk, zk::ParentPath(kPath)).ok()) return 1;
  std::uint64_t epoch = 1;
  if (!zk.Exists(kPath)->has_value()) {
    if (!zk.Create(kPath, Record(epoch).ToJson(), zk::CreateMode::kPersistent).ok()) return 1;
  }
  // The record and its bound voucher in one multi, as the orchestrator's publish writes them (the
  // library counts only vouchers bound to the exact record).
  if (!testing::PublishBound(zk, kPath, Record(epoch), "bench").ok()) return 1;

  std::printf("%-9s %6s %6s | %-31s | %-27s\n", "kind", "N", "rounds",
              "per watcher ms: median    p99", "all notified ms: median  p99");
  for (int n : sizes) {
    for (const std::string& mode : modes) {
      std::vector<Child> children;
      for (int left = n; left > 0; left -= per_process) {
        children.push_back(Spawn(self, mode, connect, std::min(left, per_process)));
      }
      bool ok = true;
      for (auto& c : children) ok = ReadLine(c) == "ready" && ok;
      std::vector<double> per_watcher;
      std::vector<double> all_notified;
      int missing = 0;
      for (int r = 0; r < rounds && ok; ++r) {
        ++epoch;
        for (auto& c : children) Send(c, "arm " + std::to_string(epoch));
        for (auto& c : children) ok = ReadLine(c) == "armed" && ok;
        if (!ok) break;
        const int64_t t0 = NowNs();
        if (!testing::PublishBound(zk, kPath, Record(epoch), "bench").ok()) {
          ok = false;
          break;
        }
        int64_t last = t0;
        int round_seen = 0;
        for (auto& c : children) {
          Send(c, "collect");
          std::istringstream line(ReadLine(c));
          std::string word;
          int got = 0;
          line >> word >> got;
          round_seen += got;
          int64_t t;
          while (line >> t) {
            per_watcher.push_back(static_cast<double>(t - t0) / 1e6);
            last = std::max(last, t);
          }
        }
        missing += n - round_seen;
        all_notified.push_back(static_cast<double>(last - t0) / 1e6);
      }
      for (auto& c : children) {
        Send(c, "quit");
        std::fclose(c.in);
        std::fclose(c.out);
        int status = 0;
        waitpid(c.pid, &status, 0);
      }
      if (!ok) {
        std::printf("%-9s %6d  FAILED (a child did not get ready or arm; see stderr)\n",
                    mode.c_str(), n);
        continue;
      }
      std::printf("%-9s %6d %6d | %13.1f %13.1f   | %13.1f %10.1f%s\n", mode.c_str(), n, rounds,
                  Percentile(per_watcher, 0.5), Percentile(per_watcher, 0.99),
                  Percentile(all_notified, 0.5), Percentile(all_notified, 0.99),
                  missing > 0 ? ("  (" + std::to_string(missing) + " notifications missing)").c_str()
                              : "");
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace pgherald::bench

int main(int argc, char** argv) {
  using pgherald::bench::ParseList;
  if (argc == 5 && std::string(argv[1]) == "--child") {
    return pgherald::bench::RunChild(argv[2], argv[3], std::atoi(argv[4]));
  }
  std::vector<int> sizes = {1000, 5000};
  int rounds = 7;
  int per_process = 1000;
  std::vector<std::string> modes = {"raw", "raw-read", "lib"};
  std::string connect;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--watchers") {
      sizes = ParseList(value);
    } else if (flag == "--rounds") {
      rounds = std::atoi(value.c_str());
    } else if (flag == "--per-process") {
      per_process = std::atoi(value.c_str());
    } else if (flag == "--modes") {
      modes.clear();
      std::stringstream ss(value);
      for (std::string m; std::getline(ss, m, ',');) modes.push_back(m);
    } else if (flag == "--zk") {
      connect = value;
    } else {
      std::fprintf(stderr, "unknown flag %s (see the top of client_watch_bench.cc)\n",
                   flag.c_str());
      return 2;
    }
  }
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = '\0';
  return pgherald::bench::RunParent(self, sizes, rounds, per_process, modes, connect);
}
