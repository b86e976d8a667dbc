#include "tests/e2e/stack.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/bound_publish.h"

extern char** environ;

namespace pgherald::e2e {
namespace {

using std::chrono::milliseconds;

void WriteFile(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}

// From the build, not __FILE__: a compiler launcher (ccache's base_dir) may make __FILE__ relative.
std::string SourceDir() { return PGHERALD_SOURCE_DIR; }

bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

}  // namespace

void ParseSwitchoverSummary(const std::string& out, SwitchoverRun* run) {
  // The summary is the last JSON object printed, compact on one line or pretty-printed: the text
  // from the last line that starts with '{' and parses to the end as an object.
  nlohmann::json j;
  for (std::size_t end = out.size(); end > 0;) {
    const std::size_t at = out.rfind('{', end - 1);
    if (at == std::string::npos) break;
    end = at;
    if (at != 0 && out[at - 1] != '\n') continue;
    auto parsed = nlohmann::json::parse(out.substr(at), nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) {
      j = std::move(parsed);
      run->summary_json = out.substr(at);
      while (!run->summary_json.empty() && run->summary_json.back() == '\n') {
        run->summary_json.pop_back();
      }
      break;
    }
  }
  if (!j.is_object()) return;
  // {"id","cluster","result","phase","from","to","epoch","hold_ms","elapsed_ms","exit_code"
  //  [,"error","note"]} (clients/switchover/switchover_command.cc).
  auto text = [&j](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  run->id = text("id");
  run->phase = text("phase");
  run->error = text("error");
  if (j.contains("hold_ms") && j["hold_ms"].is_number() && j["hold_ms"].get<double>() >= 0) {
    run->hold_ms = j["hold_ms"].get<double>();
  }
}

void ParseSwitchoverPhases(const std::string& output, SwitchoverRun* run) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    char name[32] = {};
    long long elapsed = 0;
    if (std::sscanf(line.c_str(), "phase=%31s elapsed_ms=%lld", name, &elapsed) == 2) {
      run->phases.emplace_back(name, elapsed);
    }
  }
}

// One query's first cell over a fresh connection; nullopt on any error.
std::optional<std::string> QueryOne(const std::string& conninfo, const std::string& sql,
                                    std::string* error) {
  PGconn* c = PQconnectdb((conninfo + " connect_timeout=2").c_str());
  std::optional<std::string> out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = PQgetvalue(r, 0, 0);
    } else if (error != nullptr) {
      *error = PQresultErrorMessage(r);
    }
    PQclear(r);
  } else if (error != nullptr) {
    *error = PQerrorMessage(c);
  }
  PQfinish(c);
  return out;
}

std::int64_t MonoNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t WallMinusMonoMs() {
  const auto wall = std::chrono::duration_cast<milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  return wall - MonoNs() / 1000000;
}

bool WaitUntil(const std::function<bool()>& condition, milliseconds timeout, milliseconds step) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string MachineLine() {
  std::string model = "unknown";
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return "nproc=" + std::to_string(std::thread::hardware_concurrency()) + " cpu=\"" + model + "\"";
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

StatusOr<std::unique_ptr<Stack>> Stack::Up(const StackOptions& options) {
  if (std::getenv("PGHERALD_BIN") == nullptr) {
    return InvalidArgument(
        "PGHERALD_BIN is not set: point it at the pgherald program (ctest sets it; by hand: "
        "PGHERALD_BIN=build/<dir>/app/pgherald)");
  }
  std::unique_ptr<Stack> s(new Stack());
  s->options_ = options;
  lab::LabOptions lo;
  lo.zk_ensemble = true;
  lo.postgres = true;
  lo.haproxy = true;
  lo.pgbouncer = true;
  auto lab = lab::Lab::Up(lo);
  if (!lab.ok()) return lab.status();
  s->lab_ = std::move(*lab);
  zk::ZkClientOptions zo;
  zo.connect = s->lab_->zk_connect();
  zo.session_timeout = milliseconds(10000);
  // The runner's own client logs to a file: while a drill keeps a ZooKeeper server down it logs
  // a few lines a second, which on stderr buried the failure message of the drill in CI's output.
  {
    auto log = std::make_shared<std::ofstream>(s->lab_->dir() + "/zk-client.log", std::ios::app);
    auto mu = std::make_shared<std::mutex>();
    zo.log_sink = [log, mu](zk::ZkLogLevel, const std::string& line) {
      std::lock_guard lock(*mu);
      *log << line << '\n' << std::flush;
    };
  }
  auto zk = zk::ZkClient::Connect(zo);
  if (!zk.ok()) return zk.status();
  s->zk_ = std::move(*zk);

  // The workload's table, on the first primary (node 1), owned by the app user.
  {
    PGconn* c = PQconnectdb(s->NodeConninfo(1).c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      const std::string e = PQerrorMessage(c);
      PQfinish(c);
      return Internal("cannot connect to node1 as the app user: " + e);
    }
    PGresult* r = PQexec(c,
                         "CREATE TABLE IF NOT EXISTS e2e_writes (client int NOT NULL, seq bigint "
                         "NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), "
                         "PRIMARY KEY (client, seq))");
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    const std::string e = PQerrorMessage(c);
    PQclear(r);
    PQfinish(c);
    if (!ok) return Internal("cannot create e2e_writes: " + e);
  }

  if (auto st = s->WriteConfigs(); !st.ok()) return st;
  for (auto& d : s->daemons_) {
    if (auto st = s->StartDaemon(d); !st.ok()) return st;
  }
  s->WritePids();

  if (options.orchestrators == 0) {
    if (auto st = s->PublishDirect(1); !st.ok()) return st;
  } else {
    if (auto st = s->AwaitMaster(1, 0, milliseconds(30000)); !st.ok()) {
      return Internal(st.message() + "\n" + s->AllTails());
    }
  }
  if (options.watch) {
    // Both sinks applied the first route (the HAProxy one renders, validates and reloads), so that
    // a later change goes through the runtime path and is not queued behind the first apply.
    const std::string log = s->dir() + "/watch.log";
    if (!WaitUntil(
            [&] {
              const std::string text = ReadFile(log);
              return text.find("sink_applied cluster=main sink=haproxy") != std::string::npos &&
                     (!options.watch_pgbouncer ||
                      text.find("sink_applied cluster=main sink=pgbouncer") != std::string::npos);
            },
            milliseconds(20000), milliseconds(20))) {
      return Internal("pgherald watch did not apply the first route within 20 s\n" +
                      s->AllTails());
    }
    const std::string want = std::to_string(s->lab_->pg_port(1));
    const std::pair<const char*, std::string> proxies[] = {{"HAProxy", s->HaproxyConninfo()},
                                                           {"pgbouncer", s->PgbouncerConninfo()}};
    for (const auto& entry : proxies) {
      // Not a structured binding: clang 14 (the fuzz preset) cannot capture one in a lambda.
      const char* proxy = entry.first;
      const std::string& ci = entry.second;
      std::string last = "no answer yet";
      if (!WaitUntil(
              [&] {
                std::string error;
                const auto port = QueryOne(ci, "select inet_server_port()", &error);
                last = port ? "answered from port " + *port : "error: " + error;
                return port == want;
              },
              milliseconds(20000), milliseconds(50))) {
        return Internal(std::string(proxy) + " does not route to node1 (port " + want +
                        ") within 20 s; last: " + last + "\n" + s->AllTails());
      }
    }
  }
  return s;
}

Status Stack::WriteConfigs() {
  const std::string bin = std::getenv("PGHERALD_BIN");
  const std::string dir = lab_->dir();
  WriteFile(OperatorConfig(), ZkSection(6000) + "\nlogging: {level: info}\n", 0600);
  if (options_.pollers) {
    for (int n = 1; n <= 3; ++n) {
      const std::string config = dir + "/poller-" + std::to_string(n) + ".yaml";
      // The switchover steps' config_archive_dir: repmgr (run as the owner of repmgr.conf) writes
      // into it during `node rejoin`.
      const std::string archive = dir + "/rejoin-archive-" + std::to_string(n);
      ::mkdir(archive.c_str(), 0700);
      struct stat conf {};
      if (::stat(lab_->Env("REPMGR_CONF_" + std::to_string(n)).c_str(), &conf) != 0 ||
          ::chown(archive.c_str(), conf.st_uid, conf.st_gid) != 0) {
        return Internal("cannot give " + archive + " to the owner of REPMGR_CONF_" +
                        std::to_string(n) + ": " + std::strerror(errno));
      }
      WriteFile(config, PollerYaml(n), 0600);
      const std::string socket = dir + "/poller-" + std::to_string(n) + ".sock";
      // labctl's notify.sh runs `CMD notify ARGS...`: this wrapper drops "notify" and passes the
      // poller's socket.
      const std::string wrapper = dir + "/poller-notify-" + std::to_string(n) + ".sh";
      WriteFile(wrapper, "#!/bin/sh\nshift\nexec " + bin + " notify --socket " + socket + " \"$@\"\n",
                0755);
      WriteFile(dir + "/notify-cmd-" + std::to_string(n), wrapper + "\n");
      daemons_.push_back({"poller-" + std::to_string(n), {bin, "poller", "--config", config},
                          dir + "/poller-" + std::to_string(n) + ".log", -1});
    }
  }
  const std::string pw_file = dir + "/e2e-app-password";
  WriteFile(pw_file, lab_->Env("PG_APP_PASSWORD") + "\n", 0600);
  for (int i = 0; i < options_.orchestrators; ++i) {
    const std::string id = std::string("orch-") + static_cast<char>('a' + i);
    std::string yaml = ZkSection(options_.orchestrator_session_timeout_ms) +
                       "\nlogging:\n  level: info\norchestrator:\n  id: " + id +
                       "\n  tick_ms: " + std::to_string(options_.cadence_ms) +
                       "\n  confirmation_window_ms: 500\n  probe_timeout_ms: 1000\n"
                       "clusters:\n  - name: " + kCluster + "\n    postgres:\n      user: " +
                       lab_->Env("PG_APP_USER") + "\n      dbname: " + lab_->Env("PG_APP_DATABASE") +
                       "\n      password_file: " + pw_file +
                       "\n      connect_timeout_ms: 1000\n      statement_timeout_ms: 1000\n    nodes:\n";
    for (int n = 1; n <= 3; ++n) {
      yaml += "      - {name: node" + std::to_string(n) + ", host: 127.0.0.1, port: " +
              std::to_string(lab_->pg_port(n)) + "}\n";
    }
    const std::string config = dir + "/" + id + ".yaml";
    WriteFile(config, yaml, 0600);
    daemons_.push_back({id, {bin, "orchestrator", "--config", config}, dir + "/" + id + ".log", -1});
  }
  if (options_.watch) {
    const std::string tmpl = dir + "/haproxy.cfg.tmpl";
    const std::string text = ReadFile(SourceDir() + "/haproxy/examples/haproxy.cfg.tmpl");
    if (text.empty()) return Internal("haproxy/examples/haproxy.cfg.tmpl is missing");
    WriteFile(tmpl, text);
    const std::string config = dir + "/watch.yaml";
    WriteFile(config, WatchYaml());
    daemons_.push_back({"watch", {bin, "watch", "--config", config}, dir + "/watch.log", -1});
  }
  return Status::Ok();
}

std::string Stack::ZkSection(int session_timeout_ms) const {
  return "zookeeper:\n  connect: \"" + lab_->zk_connect() + "\"\n  root: " + kRoot +
         "\n  session_timeout_ms: " + std::to_string(session_timeout_ms);
}

std::string Stack::PollerYaml(int n) const {
  const std::string dir = lab_->dir();
  const std::string i = std::to_string(n);
  const PollerSwitchover& sw = poller_switchover_[n];
  return ZkSection(4000) + "\nlogging:\n  level: info\npoller:\n  cluster: " + kCluster +
         "\n  node: node" + i +
         "\n  tick_ms: " + std::to_string(options_.cadence_ms) +
         "\n  heartbeat_ms: " + std::to_string(std::max(2000, options_.cadence_ms)) +
         "\n  events_retention: 200\n"
         "  notify_socket: " + dir + "/poller-" + i + ".sock\n  notify_socket_mode: \"0666\"\n"
         "  fence:\n    action: stop\n    data_dir: " + Env("PG_DATA_" + i) +
         "\n    pg_ctl: " + Env("PG_BINDIR") + "/pg_ctl\n"
         "  switchover:\n    enabled: " + (sw.enabled ? "true" : "false") +
         "\n    repmgr: " + (sw.repmgr.empty() ? Env("PG_BINDIR") + "/repmgr" : sw.repmgr) +
         "\n    repmgr_conf: " + Env("REPMGR_CONF_" + i) +
         "\n    config_archive_dir: " + dir + "/rejoin-archive-" + i +
         "\n    step_timeout_ms: 30000\n"
         "postgres:\n  host: 127.0.0.1\n  port: " + std::to_string(lab_->pg_port(n)) +
         "\n  user: " + Env("PG_APP_USER") + "\n  password: \"" + Env("PG_APP_PASSWORD") +
         "\"\n  dbname: " + Env("REPMGR_DB") + "\n  connect_timeout_ms: 1000\n";
}

std::string Stack::WatchYaml() const {
  const std::string tmpl = lab_->dir() + "/haproxy.cfg.tmpl";
  return ZkSection(6000) + "\nlogging: {level: info}\nwatch:\n  clusters:\n    " + kCluster +
                  ":\n      on_unverified: " + options_.watch_on_unverified +
                  "\n      max_hold_ms: " + std::to_string(options_.watch_max_hold_ms) +
                  "\n      retry_initial_ms: 50\n      retry_max_ms: 500\n"
                  "      sinks:\n"
                  "        - type: haproxy\n"
                  "          admin_socket: " + Env("HAPROXY_ADMIN_SOCKET") + "\n"
                  "          master_socket: " + Env("HAPROXY_MASTER_SOCKET") + "\n"
                  "          backend: " + Env("HAPROXY_BACKEND") + "\n"
                  "          server: " + Env("HAPROXY_SERVER") + "\n"
                  "          config_file: " + Env("HAPROXY_CONFIG") + "\n"
                  "          template: " + tmpl + "\n"
                  "          vars:\n"
                  "            listen: 127.0.0.1:" + Env("HAPROXY_PORT") + "\n"
                  "            admin_socket: " + Env("HAPROXY_ADMIN_SOCKET") + "\n"
                  "            master_socket: " + Env("HAPROXY_MASTER_SOCKET") + "\n"
                  "            backend: " + Env("HAPROXY_BACKEND") + "\n"
                  "            server: " + Env("HAPROXY_SERVER") + "\n" +
                  (options_.watch_pgbouncer
                       ? "        - type: pgbouncer\n"
                         "          databases_file: " + Env("PGBOUNCER_DATABASES_FILE") + "\n"
                         "          admin: {host: 127.0.0.1, port: " + Env("PGBOUNCER_PORT") +
                         ", user: " + Env("PGBOUNCER_ADMIN_USER") + "}\n"
                         "          kill_old: true\n"
                       : std::string());
}

Status Stack::SetWatchPolicy(const std::string& on_unverified, int max_hold_ms) {
  if (daemon("watch") == nullptr) return NotFound("no watch in this stack");
  options_.watch_on_unverified = on_unverified;
  options_.watch_max_hold_ms = max_hold_ms;
  WriteFile(lab_->dir() + "/watch.yaml", WatchYaml());
  return Restart("watch");
}

Status Stack::SetPollerSwitchover(int node, bool enabled, const std::string& repmgr) {
  const std::string name = "poller-" + std::to_string(node);
  if (node < 1 || node > 3 || daemon(name) == nullptr) return NotFound("no " + name);
  poller_switchover_[node] = {enabled, repmgr};
  WriteFile(lab_->dir() + "/" + name + ".yaml", PollerYaml(node), 0600);
  const std::string path =
      std::string(kRoot) + "/clusters/" + kCluster + "/nodes/node" + std::to_string(node);
  auto before = zk_->Get(path);
  const std::int64_t old_owner = before.ok() ? before->stat.ephemeral_owner : 0;
  if (auto st = Restart(name); !st.ok()) return st;
  // The restarted poller's own session wrote it (a SIGTERM'd poller's node goes with its session).
  if (!WaitUntil(
          [&] {
            auto got = zk_->Get(path);
            return got.ok() && got->stat.ephemeral_owner != old_owner;
          },
          milliseconds(20000), milliseconds(20))) {
    return Unavailable(name + " did not publish its observation within 20 s after its restart\n" +
                       Tail(name));
  }
  return Status::Ok();
}

SwitchoverRun Stack::Switchover(int to_node, const std::vector<std::string>& extra,
                                milliseconds timeout) {
  SwitchoverRun run;
  const std::string base = lab_->dir() + "/switchover-" + std::to_string(++switchover_runs_);
  std::vector<std::string> args = {std::getenv("PGHERALD_BIN"), "switchover", "--config",
                                   OperatorConfig(), "--cluster", kCluster, "--json"};
  if (to_node != 0) {
    args.push_back("--to");
    args.push_back("node" + std::to_string(to_node));
  }
  args.insert(args.end(), extra.begin(), extra.end());
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (base + ".out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (base + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  run.start_ns = MonoNs();
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    run.end_ns = MonoNs();
    run.output = std::string("cannot start ") + argv[0] + ": " + std::strerror(rc);
    return run;
  }
  int status = 0;
  const bool exited = WaitUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout,
                                milliseconds(5));
  run.end_ns = MonoNs();
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  } else if (WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
  }
  const std::string out = ReadFile(base + ".out");
  run.output = out + ReadFile(base + ".err");
  if (!exited) run.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
  ParseSwitchoverSummary(out, &run);
  ParseSwitchoverPhases(run.output, &run);
  return run;
}

Status Stack::SetPgbouncerQueryWaitTimeout(int seconds) {
  const std::string path = Env("PGBOUNCER_CONFIG");
  std::string text = ReadFile(path);
  const std::string key = "\nquery_wait_timeout = ";
  const auto at = text.find(key);
  if (at == std::string::npos) return NotFound(path + " has no query_wait_timeout line");
  const auto end = text.find('\n', at + 1);
  text.replace(at, end - at, key + std::to_string(seconds));
  WriteFile(path, text, 0644);
  PGconn* c = PQconnectdb(("host=127.0.0.1 port=" + Env("PGBOUNCER_PORT") + " user=" +
                           Env("PGBOUNCER_ADMIN_USER") + " dbname=pgbouncer connect_timeout=5")
                              .c_str());
  PGresult* r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "RELOAD") : nullptr;
  const bool ok = r != nullptr && PQresultStatus(r) == PGRES_COMMAND_OK;
  const std::string error = PQerrorMessage(c);
  PQclear(r);
  PQfinish(c);
  return ok ? Status::Ok() : Unavailable("pgbouncer RELOAD: " + error);
}

std::int64_t Stack::LogLineWallMs(const std::string& name, const std::vector<std::string>& needles,
                                  std::int64_t after_wall_ms) const {
  const Daemon* d = nullptr;
  for (const auto& x : daemons_) {
    if (x.name == name) d = &x;
  }
  if (d == nullptr) return 0;
  const std::string text = ReadFile(d->log_path);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    bool all = true;
    for (const auto& n : needles) all = all && line.find(n) != std::string::npos;
    // "2026-12-05T14:26:00.015Z ...": the logger's UTC timestamp, millisecond precision.
    std::tm tm{};
    int ms = 0;
    if (!all || line.size() < 24 || line[23] != 'Z' ||
        ::strptime(line.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr ||
        std::sscanf(line.c_str() + 20, "%3d", &ms) != 1) {
      continue;
    }
    const std::int64_t wall = static_cast<std::int64_t>(::timegm(&tm)) * 1000 + ms;
    if (wall >= after_wall_ms) return wall;
  }
  return 0;
}

Status Stack::StartDaemon(Daemon& d) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, d.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group: a terminal's Ctrl-C in the demo does not reach the daemons.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> argv;
  for (auto& a : d.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Internal("cannot start " + d.name + " (" + d.argv[0] + "): " +
                            std::strerror(rc));
  }
  d.pid = pid;
  return Status::Ok();
}

void Stack::StopDaemon(Daemon& d) {
  if (d.pid <= 0) return;
  ::kill(d.pid, SIGCONT);
  ::kill(d.pid, SIGTERM);
  const bool exited = WaitUntil(
      [&] { return ::waitpid(d.pid, nullptr, WNOHANG) == d.pid; }, milliseconds(5000));
  if (!exited) {
    ::kill(d.pid, SIGKILL);
    ::waitpid(d.pid, nullptr, 0);
  }
  d.pid = -1;
}

void Stack::WritePids() {
  std::string text;
  for (const auto& d : daemons_) {
    if (d.pid > 0) text += std::to_string(d.pid) + " " + d.name + "\n";
  }
  WriteFile(lab_->dir() + "/stack.pids", text);
}

Stack::~Stack() {
  if (options_.detach) {
    (void)zk_.release();
    (void)lab_.release();  // keeps the lab running: StopRecorded tears it down
    return;
  }
  // The watch and the orchestrators first, pollers last (a poller must not see its node die).
  for (auto it = daemons_.rbegin(); it != daemons_.rend(); ++it) StopDaemon(*it);
  if (zk_) zk_->Close();
  zk_.reset();
  lab_.reset();
}

Status Stack::StopRecorded(const std::string& dir, const std::string& labctl) {
  std::ifstream in(dir + "/stack.pids");
  if (!in) return NotFound(dir + "/stack.pids does not exist: not a stack directory");
  pid_t pid = 0;
  std::string name;
  std::vector<pid_t> pids;
  while (in >> pid >> name) {
    const std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    if (cmdline.find("pgherald") == std::string::npos || !Alive(pid)) continue;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGTERM);
    pids.push_back(pid);
  }
  WaitUntil([&] { return std::none_of(pids.begin(), pids.end(), Alive); }, milliseconds(5000));
  for (pid_t p : pids) {
    if (Alive(p)) ::kill(p, SIGKILL);
  }
  const std::string cmd = labctl + " down --dir " + dir;
  if (std::system(cmd.c_str()) != 0) return Internal(cmd + " failed");
  return Status::Ok();
}

std::string Stack::HaproxyConninfo() const {
  return "host=127.0.0.1 port=" + Env("HAPROXY_PORT") + " user=" + Env("PG_APP_USER") +
         " password=" + Env("PG_APP_PASSWORD") + " dbname=" + Env("PG_APP_DATABASE");
}
std::string Stack::PgbouncerConninfo() const {
  return "host=127.0.0.1 port=" + Env("PGBOUNCER_PORT") + " user=" + Env("PG_APP_USER") +
         " password=" + Env("PG_APP_PASSWORD") + " dbname=" + Env("PG_APP_DATABASE");
}
std::string Stack::NodeConninfo(int node) const {
  return "host=127.0.0.1 port=" + std::to_string(lab_->pg_port(node)) + " user=" +
         Env("PG_APP_USER") + " password=" + Env("PG_APP_PASSWORD") + " dbname=" +
         Env("PG_APP_DATABASE");
}
int Stack::NodeOfPort(int port) const {
  for (int n = 1; n <= 3; ++n) {
    if (lab_->pg_port(n) == port) return n;
  }
  return 0;
}

std::optional<model::MasterRecord> Stack::Master() {
  auto got = zk_->Get(std::string(kRoot) + "/clusters/" + kCluster + "/master");
  if (!got.ok()) return std::nullopt;
  auto rec = model::MasterRecord::FromJson(got->data);
  if (!rec.ok()) return std::nullopt;
  return *rec;
}

int Stack::VoucherCount() {
  auto c = zk_->GetChildren(std::string(kRoot) + "/clusters/" + kCluster + "/master");
  return c.ok() ? static_cast<int>(c->size()) : 0;
}

std::vector<model::HistoryEntry> Stack::History() {
  const std::string base = std::string(kRoot) + "/clusters/" + kCluster + "/history";
  std::vector<model::HistoryEntry> out;
  auto children = zk_->GetChildren(base);
  if (!children.ok()) return out;
  std::vector<std::string> names = *children;
  std::sort(names.begin(), names.end());  // h-<seq>: zero-padded, so lexical = sequence order
  for (const auto& name : names) {
    auto got = zk_->Get(base + "/" + name);
    if (!got.ok()) continue;
    auto e = model::HistoryEntry::FromJson(got->data);
    if (e.ok()) out.push_back(*e);
  }
  return out;
}

int Stack::VouchedMasterNode() {
  auto m = Master();
  if (!m || m->state != model::MasterState::kOk || VoucherCount() == 0) return 0;
  if (m->node.rfind("node", 0) != 0) return 0;
  return std::atoi(m->node.c_str() + 4);
}

Status Stack::PublishDirect(int node) {
  const std::string master = std::string(kRoot) + "/clusters/" + kCluster + "/master";
  model::MasterRecord r;
  r.state = model::MasterState::kOk;
  r.node = "node" + std::to_string(node);
  r.host = "127.0.0.1";
  r.port = lab_->pg_port(node);
  r.timeline = 1;
  r.lsn = 1;
  r.epoch = ++direct_epoch_;
  r.verified_at_ms = WallMinusMonoMs() + MonoNs() / 1000000;
  r.decided_by = "e2e-direct";
  // The record and its bound voucher in one multi, as the orchestrator's publish writes them.
  if (direct_epoch_ == 1) {
    if (auto st = zk::EnsurePath(*zk_, std::string(kRoot) + "/clusters/" + kCluster); !st.ok()) {
      return st;
    }
    return testing::PublishBound(*zk_, master, r, "e2e-direct", /*create=*/true);
  }
  return testing::PublishBound(*zk_, master, r, "e2e-direct");
}

Status Stack::AwaitMaster(int node, std::uint64_t min_epoch, milliseconds timeout) {
  const bool ok = WaitUntil(
      [&] {
        auto m = Master();
        return m && m->epoch > min_epoch && VouchedMasterNode() == node;
      },
      timeout, milliseconds(5));
  if (ok) return Status::Ok();
  auto m = Master();
  return Status(StatusCode::kTimeout, "the master znode does not name node" + std::to_string(node) +
                                  " vouched (epoch > " + std::to_string(min_epoch) + ") within " +
                                  std::to_string(timeout.count()) + " ms; it holds " +
                                  (m ? m->ToJson() : std::string("nothing readable")) +
                                  ", vouchers " + std::to_string(VoucherCount()));
}

StatusOr<int> Stack::AwaitHealthyCluster(milliseconds timeout) {
  int primary = 0;
  const bool ok = WaitUntil(
      [&] {
        auto w = lab_->WritableNodes();
        if (!w.ok() || w->size() != 1) return false;
        primary = (*w)[0];
        auto n = QueryOne(NodeConninfo(primary),
                          "select count(*) from pg_stat_replication where state = 'streaming'");
        if (!n || *n != "2") return false;
        // repmgr's metadata must agree (both standbys active, upstream = the primary): repmgrd
        // elects from it, and a standby still registered under an old upstream made the next
        // failover's election fail (no promotion at all) in the soak.
        std::string repmgr_db = NodeConninfo(primary);
        repmgr_db = repmgr_db.substr(0, repmgr_db.rfind(" dbname=")) + " dbname=" + Env("REPMGR_DB");
        auto m = QueryOne(repmgr_db, "select count(*) from repmgr.nodes where type = 'standby' and "
                                     "active and upstream_node_id = " + std::to_string(primary));
        if (!m || *m != "2") return false;
        // And each standby's repmgrd is back to monitoring: `repmgr standby follow` run by
        // repmgrd can sit up to 30 s waiting for its node to attach in state "streaming" after
        // the attach itself shows in pg_stat_replication, and a repmgrd inside it does not take
        // part in the next election (the 50-drill soak lost a promotion to this).
        for (int standby = 1; standby <= 3; ++standby) {
          if (standby != primary && lab_->RepmgrdInFollow(standby)) return false;
        }
        return true;
      },
      timeout, milliseconds(50));
  if (!ok) {
    return Status(StatusCode::kTimeout, "the cluster is not one primary + two streaming standbys after " +
                                    std::to_string(timeout.count()) + " ms");
  }
  return primary;
}

Daemon* Stack::daemon(const std::string& name) {
  for (auto& d : daemons_) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

Status Stack::Kill9(const std::string& name) {
  Daemon* d = daemon(name);
  if (d == nullptr || d->pid <= 0) return NotFound("no running daemon " + name);
  ::kill(d->pid, SIGKILL);
  ::waitpid(d->pid, nullptr, 0);
  d->pid = -1;
  WritePids();
  return Status::Ok();
}

Status Stack::Restart(const std::string& name) {
  Daemon* d = daemon(name);
  if (d == nullptr) return NotFound("no daemon " + name);
  StopDaemon(*d);
  auto st = StartDaemon(*d);
  WritePids();
  return st;
}

std::string Stack::LeadingOrchestrator() {
  auto m = Master();
  return m ? m->decided_by : "";
}

std::string Stack::Tail(const std::string& name, std::size_t bytes) const {
  for (const auto& d : daemons_) {
    if (d.name != name) continue;
    const std::string text = ReadFile(d.log_path);
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }
  return "";
}

std::string Stack::AllTails(std::size_t bytes) const {
  std::string out;
  for (const auto& d : daemons_) out += "--- " + d.name + " (tail) ---\n" + Tail(d.name, bytes) + "\n";
  const std::string zk = ReadFile(lab_->dir() + "/zk-client.log");
  out += "--- the runner's ZooKeeper client (tail) ---\n" +
         (zk.size() > bytes ? zk.substr(zk.size() - bytes) : zk) + "\n";
  return out + PgbouncerState(bytes);
}

std::string Stack::PgbouncerState(std::size_t bytes) const {
  const std::string log = Env("PGBOUNCER_LOG");
  if (log.empty()) return "";
  const std::string dir = log.substr(0, log.rfind('/'));
  std::string pid = ReadFile(dir + "/pgbouncer.pid");
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  // A console that stops answering: is pgbouncer running, stopped, spinning (utime/stime grow
  // between two looks), or blocked (wchan, kernel stack)?
  std::string out = "--- pgbouncer (pid " + pid + ") ---\n";
  if (!pid.empty()) {
    const std::string proc = "/proc/" + pid;
    out += "stat: " + ReadFile(proc + "/stat") + "wchan: " + ReadFile(proc + "/wchan") + "\n";
    out += "fds: ";
    std::string fds = ReadFile(proc + "/limits");
    std::size_t at = fds.find("Max open files");
    out += (at == std::string::npos ? std::string("?") : fds.substr(at, fds.find('\n', at) - at)) + "\n";
    out += "stack:\n" + ReadFile(proc + "/stack");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // two looks, 500 ms apart
    out += "stat 500 ms later: " + ReadFile(proc + "/stat");
  }
  const std::string text = ReadFile(log);
  out += "pgbouncer.log (tail):\n" + (text.size() > bytes ? text.substr(text.size() - bytes) : text);
  const std::string restarts = ReadFile(dir + "/stdout.log");
  std::size_t from = 0;
  for (std::size_t at; (at = restarts.find("labctl: pgbouncer exited", from)) != std::string::npos;) {
    out += "\n" + restarts.substr(at, restarts.find('\n', at) - at);
    from = at + 1;
  }
  return out + "\n";
}

}  // namespace pgherald::e2e
