// Per-role access to the ZooKeeper tree: who may write which znode (the ACL model), the digest ids
// ZooKeeper compares credentials against, and the start-up check that refuses a world-writable
// tree. docs/security.md explains the model; docs/zookeeper-contract.md lists the ACL per znode.
//
// Roles and what they write (everyone, unauthenticated clients included, may READ every znode):
//   orchestrator  master (+ vouchers), history, identity, owners (the ownership queue),
//                 orchestrators/election; ALL on the layout's parents (root, clusters, clusters/<c>)
//   poller        CREATE in clusters/<c>/nodes (its own ephemeral nodes/<node> is then
//                 {that poller: ALL, world: READ}), CREATE|DELETE in clusters/<c>/events
//   operator      clusters/<c>/control (pause/resume); so does the orchestrator's HTTP API;
//                 and control/switchover (`pgherald switchover`), which only operators write
//   admin         the identity `pgherald zk-init` acts as: ALL on every znode it lays out
// Nodes made at run time get the session's policy: {creator: ALL, world: READ}.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/zk/zk_session.h"

namespace pgherald::zkacl {

// ZooKeeper's digest id of a credential: "user:" + base64(sha1("user:password")).
std::string DigestId(const std::string& user, const std::string& password);
// The same from a "user:password" line (the password may contain ':'). kInvalidArgument when
// there is no ':' or the user is empty; the message never holds the password.
StatusOr<std::string> DigestIdOfCredential(const std::string& credential);
// "user:base64" with a 28-character base64 sha1: what a precomputed digest must look like.
bool IsDigestId(const std::string& id);

// Digest ids per role.
struct RoleIdentities {
  std::vector<std::string> admins;
  std::vector<std::string> orchestrators;
  std::vector<std::string> pollers;
  std::vector<std::string> operators;
};

// What a managed znode holds when zk-init creates it.
struct ZnodeAcl {
  std::string path;
  zk::Acl acl;
  // An ancestor of the root (e.g. /apps of /apps/pgherald): created when missing, but an
  // existing one may belong to others and its ACL is left alone.
  bool ancestor = false;
};

// Every znode `pgherald zk-init` lays out for `clusters` under `root`, parents first:
// root, root/clusters, root/clusters/<c>, its nodes, events, history, owners, control, and
// root/orchestrators, root/orchestrators/election.
std::vector<ZnodeAcl> Layout(const std::string& root, const std::vector<std::string>& clusters,
                             const RoleIdentities& ids);
// The ACL zk-init gives an existing znode it does not lay out itself (master, identity, history
// entries, events, observations, vouchers, election members, ownership candidates): judged by
// its parent's name.
// Observations (nodes/<n>) keep their owner: `current` entries that name a poller are kept. The
// switchover record (control/switchover): operators and admins ALL, world READ.
zk::Acl ChildAcl(const std::string& path, const zk::Acl& current, const RoleIdentities& ids);

// Permission bits as text: "r", "rw", "cdrwa" (ZooKeeper's order).
std::string PermsText(int32_t perms);
// "world:anyone:cdrwa,digest:orch:...:cdrwa".
std::string AclText(const zk::Acl& acl);
// Some entry lets an unauthenticated client do more than READ.
bool IsWorldWritable(const zk::Acl& acl);
// Same entries in any order.
bool SameAcl(const zk::Acl& a, const zk::Acl& b);

// The start-up check of the daemons (poller, orchestrator, watch).
struct TreeCheck {
  std::string root;
  std::vector<std::string> clusters;
  bool auth_configured = false;  // zookeeper.auth or auth_file
  bool allow_open_acl = false;   // zookeeper.allow_open_acl
  std::string program;           // "poller", ... for messages
};
struct TreeFindings {
  bool root_missing = false;
  std::vector<std::string> world_writable;  // existing checked znodes an anonymous client can write
};
// Reads the ACLs of root, root/clusters, root/clusters/<c> (and its nodes, events, history,
// master, control, control/switchover, identity, owners), root/orchestrators and its election: only READs. Absent znodes are
// skipped. Errors of the session are returned as they are.
StatusOr<TreeFindings> InspectTree(zk::ZkSession& zk, const TreeCheck& check);
// With auth configured and allow_open_acl false: kFailedPrecondition when the root is missing or
// any checked znode is world-writable, naming the znode and the fix (pgherald zk-init). Otherwise
// Ok; Warnings() then says what to log.
Status JudgeTree(const TreeFindings& findings, const TreeCheck& check);
std::vector<std::string> Warnings(const TreeFindings& findings, const TreeCheck& check);

// Wraps a session factory: every new session is checked (InspectTree + JudgeTree) before it is
// handed out; a violation closes it and returns JudgeTree's error, warnings are logged once per
// session at warn. A failed inspection (e.g. connection loss) is logged and the session handed out.
zk::SessionFactory GuardedFactory(zk::SessionFactory inner, TreeCheck check);
// For a daemon's main: one session from `guarded`, closed again. Ok also when ZooKeeper cannot be
// reached (the daemon then retries as usual, and the guard checks each session it makes);
// kFailedPrecondition (the tree is refused) is the only error returned.
Status CheckAtStart(const zk::SessionFactory& guarded);

}  // namespace pgherald::zkacl
