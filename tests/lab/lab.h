// Lab: the C++ face of tests/lab/labctl, the harness that runs the real stack on loopback
// (a ZooKeeper ensemble and/or a standalone server, a 3-node PostgreSQL 15 + repmgr 5.3 cluster
// with repmgrd, HAProxy and pgbouncer). Integration tests bring one lab up per test binary
// (see LabEnvironment) and inject faults through it. Every call blocks until labctl returns.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace pgherald::lab {

struct LabOptions {
  bool zk_ensemble = true;     // 3 servers
  bool zk_standalone = false;  // one more, separate server
  bool postgres = false;       // 3-node repmgr cluster with repmgrd
  bool haproxy = false;        // needs postgres
  bool pgbouncer = false;      // needs postgres
};

// DIR/lab.env's KEY='VALUE' lines (single-quoted for the shell, docs/lab.md) as a map; an error
// names a line that is not of that form.
StatusOr<std::map<std::string, std::string>> ParseLabEnv(const std::string& text);

class Lab {
 public:
  // Runs `labctl up` in a fresh directory. On failure the Status names the component that failed
  // and carries the tail of its log. The labctl path comes from $PGHERALD_LABCTL.
  static StatusOr<std::unique_ptr<Lab>> Up(const LabOptions& options);
  // Runs `labctl down`: stops exactly the processes the lab started.
  ~Lab();

  const std::string& dir() const { return dir_; }
  // A value of DIR/lab.env, e.g. "ZK_CONNECT", "PG_PORT_1"; empty when absent.
  std::string Env(const std::string& key) const;
  int EnvInt(const std::string& key) const;

  // Convenience accessors over Env().
  std::string zk_connect() const { return Env("ZK_CONNECT"); }             // ensemble
  std::string zk_standalone_connect() const { return Env("ZK_STANDALONE_CONNECT"); }
  int pg_port(int node) const { return EnvInt("PG_PORT_" + std::to_string(node)); }  // node 1..3
  // libpq conninfo for a node as the superuser (no password: trust on loopback).
  std::string pg_conninfo(int node, const std::string& dbname = "postgres") const;

  // Runs `labctl ACTION ARGS... --dir DIR`; returns its stdout (trimmed) or an error with stderr.
  // With echo_stderr, labctl's stderr also goes to ours as it comes (as for Up).
  StatusOr<std::string> Run(const std::string& action, const std::vector<std::string>& args = {},
                            bool echo_stderr = false);

  // The known state that test cases sharing a lab start from (docs/lab.md, "Between test
  // cases"): every ZooKeeper server serving, HAProxy and pgbouncer running, and with PostgreSQL
  // one primary, the two other nodes streaming from it, repmgr's metadata agreeing and repmgrd
  // monitoring on all three. Check() returns the primary (0 without PostgreSQL) or an error
  // naming what differs, looking once or, with `wait`, until the state holds for up to that long; Restore() repairs the lab (thaws, restarts, rejoins), verifies the state
  // and returns the primary, preferring `prefer_primary` when it is writable. Both wait on
  // conditions; `timeout` is a safety net, sized for a loaded machine (on a 2-core machine at load
  // 25, `labctl check` alone took 30-90 s and one restore missed 180 s).
  StatusOr<int> Check(std::chrono::seconds wait = std::chrono::seconds(0));
  StatusOr<int> Restore(int prefer_primary = 0,
                        std::chrono::seconds timeout = std::chrono::seconds(420));

  // ZooKeeper ensemble members are 1..3.
  Status ZkKill(int member) { return Run("zk-kill", {std::to_string(member)}).status(); }
  Status ZkStop(int member) { return Run("zk-stop", {std::to_string(member)}).status(); }  // SIGSTOP
  Status ZkCont(int member) { return Run("zk-cont", {std::to_string(member)}).status(); }  // SIGCONT
  Status ZkStart(int member) { return Run("zk-start", {std::to_string(member)}).status(); }
  StatusOr<int> ZkLeader();  // the member that is the ensemble's leader now

  // PostgreSQL nodes are 1..3; node 1 is the first primary.
  Status PgKill(int node);          // kill -9 of the postmaster
  Status PgFreeze(int node);        // SIGSTOP of all the node's processes
  Status PgThaw(int node);          // SIGCONT
  Status PgStop(int node);          // pg_ctl stop -m fast
  Status PgStartWritable(int node); // plain pg_ctl start: the split-brain trap
  Status PgRejoin(int node);        // the proper way back as a standby (checkpoint, rewind, follow)
  // repmgr standby promote of standby N (labctl pg-promote).
  Status PgPromote(int node);
  // Per node: repmgrd's PID, wait channel and last log lines (labctl repmgrd-state).
  StatusOr<std::string> RepmgrdState();
  Status RepmgrdStop(int node);
  Status RepmgrdStart(int node);
  // Nodes that are up and not in recovery, by direct query.
  StatusOr<std::vector<int>> WritableNodes();
  // Whether repmgrd on node N started `repmgr standby follow` and has not logged since that it
  // monitors again (its log; labctl's repmgrd_in_follow reads the same phrases). A repmgrd inside
  // a follow can sit there up to 30 s and takes no part in the next election.
  bool RepmgrdInFollow(int node) const;
  // Waits until exactly one node other than `not_node` (0: any) is writable; returns it.
  StatusOr<int> WaitForPrimary(int not_node, std::chrono::seconds timeout);

 private:
  Lab(std::string labctl, std::string dir, std::map<std::string, std::string> env);
  std::string labctl_;
  std::string dir_;
  std::map<std::string, std::string> env_;
};

}  // namespace pgherald::lab
