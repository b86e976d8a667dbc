// `pgherald zk-init --config FILE [--dry-run]`: creates the ZooKeeper tree with per-role ACLs, or
// migrates an existing (e.g. open) one. Idempotent: a second run changes nothing and says so.
//
//   zookeeper:                      # connect, root, timeouts as for the daemons
//     connect: 127.0.0.1:2181
//     auth_file: /etc/pgherald/zk-admin.auth   # zk-init acts as this identity (the admin role):
//                                               # required; it gets ALL on what zk-init lays out
//   zk_init:
//     clusters: [main]                         # the clusters to lay out
//     orchestrators:                            # required, one or more identities
//       - auth_file: /etc/pgherald/zk-orchestrator.auth   # "user:password" (first line)
//     pollers:
//       - digest: "pg1:Base64Sha1OfUserColonPassword="   # precomputed (DigestId)
//       - digest_file: /etc/pgherald/zk-poller-pg2.digest # first line is such a digest
//     operators:
//       - auth_file: /etc/pgherald/zk-operator.auth
//
// Each identity is exactly one of auth_file, digest, digest_file. No password is printed.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"
#include "common/zk_config.h"
#include "common/base/status.h"
#include "common/zk_acl.h"
#include "common/zk/zk_session.h"

namespace pgherald::app {

struct ZkInitConfig {
  config::ZooKeeperConfig zookeeper;
  std::vector<std::string> clusters;
  zkacl::RoleIdentities ids;  // admins: the digest id of zookeeper.auth
};
StatusOr<ZkInitConfig> ParseZkInitConfig(config::ConfigNode root);
StatusOr<ZkInitConfig> LoadZkInitConfig(const std::string& path);

struct ZkInitReport {
  std::vector<std::string> lines;  // one per change (or would-be change), for the operator
  int created = 0;
  int changed = 0;    // ACLs set on existing znodes
  int unchanged = 0;  // already as wanted
};
// Lays out zkacl::Layout (creating missing znodes with their ACL, setting the ACL of existing ones
// that differ) and gives the existing children it does not lay out (master, identity, history
// entries, events, observations, vouchers, election members) zkacl::ChildAcl when their ACL is
// world-writable (others are left alone: they were made by a role under its own identity).
// dry_run: reads only; the report says what would change. Stops at the first error, naming the
// znode; with kPermissionDenied the message says which identity to run as.
StatusOr<ZkInitReport> ApplyZkLayout(zk::ZkSession& zk, const std::string& root,
                                     const std::vector<std::string>& clusters,
                                     const zkacl::RoleIdentities& ids, bool dry_run);

int RunZkInitCommand(const std::vector<std::string>& args);

}  // namespace pgherald::app
