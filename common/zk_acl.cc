#include "common/zk_acl.h"

#include <Poco/Base64Encoder.h>
#include <Poco/SHA1Engine.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "common/logging.h"
#include "common/model/zk_paths.h"

namespace pgherald::zkacl {
namespace {

using zk::Acl;
using zk::AclEntry;

AclEntry WorldRead() { return AclEntry{zk::kPermRead, "world", "anyone"}; }

void Grant(Acl* acl, const std::vector<std::string>& ids, int32_t perms) {
  for (const std::string& id : ids) {
    auto same = std::find_if(acl->begin(), acl->end(),
                             [&](const AclEntry& e) { return e.scheme == "digest" && e.id == id; });
    if (same != acl->end()) {
      same->perms |= perms;
    } else {
      acl->push_back(AclEntry{perms, "digest", id});
    }
  }
}

// {orchestrators: ALL, admins: ALL, world: READ}
Acl OrchestratorOwned(const RoleIdentities& ids) {
  Acl acl;
  Grant(&acl, ids.orchestrators, zk::kPermAll);
  Grant(&acl, ids.admins, zk::kPermAll);
  acl.push_back(WorldRead());
  return acl;
}

std::string BaseName(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

}  // namespace

std::string DigestId(const std::string& user, const std::string& password) {
  Poco::SHA1Engine sha1;
  sha1.update(user + ":" + password);
  const Poco::DigestEngine::Digest& digest = sha1.digest();
  std::ostringstream out;
  {
    Poco::Base64Encoder encoder(out);
    encoder.rdbuf()->setLineLength(0);
    encoder.write(reinterpret_cast<const char*>(digest.data()),
                  static_cast<std::streamsize>(digest.size()));
    encoder.close();
  }
  return user + ":" + out.str();
}

StatusOr<std::string> DigestIdOfCredential(const std::string& credential) {
  const auto colon = credential.find(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("expected \"user:password\" (value not shown)");
  }
  return DigestId(credential.substr(0, colon), credential.substr(colon + 1));
}

bool IsDigestId(const std::string& id) {
  const auto colon = id.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string hash = id.substr(colon + 1);
  if (hash.size() != 28 || hash.back() != '=') return false;
  return std::all_of(hash.begin(), hash.end() - 1, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  });
}

std::vector<ZnodeAcl> Layout(const std::string& root, const std::vector<std::string>& clusters,
                             const RoleIdentities& ids) {
  const Acl owned = OrchestratorOwned(ids);
  std::vector<ZnodeAcl> out;
  // The root's ancestors (a root like /a/pgherald) are not pgherald's: created if missing, with
  // the same ACL as the root.
  for (size_t pos = root.find('/', 1); pos != std::string::npos; pos = root.find('/', pos + 1)) {
    out.push_back({root.substr(0, pos), owned, true});
  }
  out.push_back({root, owned, false});
  const model::RootPaths tree(root);
  out.push_back({tree.Clusters(), owned, false});
  for (const std::string& c : clusters) {
    const model::ClusterPaths cluster = tree.Cluster(c);
    out.push_back({cluster.Cluster(), owned, false});
    Acl nodes = owned;
    Grant(&nodes, ids.pollers, zk::kPermCreate);
    out.push_back({cluster.Nodes(), nodes, false});
    Acl events = owned;
    Grant(&events, ids.pollers, zk::kPermCreate | zk::kPermDelete);
    out.push_back({cluster.Events(), events, false});
    out.push_back({cluster.History(), owned, false});
    // The ownership queue: candidates are created by the orchestrators only (as the election).
    out.push_back({cluster.Owners(), owned, false});
    Acl control = owned;
    Grant(&control, ids.operators, zk::kPermAll);
    out.push_back({cluster.Control(), control, false});
  }
  out.push_back({tree.Orchestrators(), owned, false});
  out.push_back({tree.Election(), owned, false});
  return out;
}

Acl ChildAcl(const std::string& path, const Acl& current, const RoleIdentities& ids) {
  const std::string parent = BaseName(zk::ParentPath(path));
  if (parent == "nodes") {
    // An observation belongs to the poller that created it.
    Acl acl;
    for (const AclEntry& e : current) {
      if (e.scheme == "digest" &&
          std::find(ids.pollers.begin(), ids.pollers.end(), e.id) != ids.pollers.end()) {
        acl.push_back(AclEntry{zk::kPermAll, "digest", e.id});
      }
    }
    if (!acl.empty()) {
      Grant(&acl, ids.admins, zk::kPermAll);
      acl.push_back(WorldRead());
      return acl;
    }
  }
  if (parent == "control") {
    // The switchover record (control/switchover): written only by the operators' `pgherald
    // switchover`; the orchestrators and pollers only read it.
    Acl acl;
    Grant(&acl, ids.operators, zk::kPermAll);
    Grant(&acl, ids.admins, zk::kPermAll);
    acl.push_back(WorldRead());
    return acl;
  }
  return OrchestratorOwned(ids);
}

std::string PermsText(int32_t perms) {
  std::string out;
  if (perms & zk::kPermCreate) out += 'c';
  if (perms & zk::kPermDelete) out += 'd';
  if (perms & zk::kPermRead) out += 'r';
  if (perms & zk::kPermWrite) out += 'w';
  if (perms & zk::kPermAdmin) out += 'a';
  return out.empty() ? "-" : out;
}

std::string AclText(const Acl& acl) {
  std::string out;
  for (const AclEntry& e : acl) {
    if (!out.empty()) out += ',';
    out += e.scheme + ":" + e.id + ":" + PermsText(e.perms);
  }
  return out;
}

bool IsWorldWritable(const Acl& acl) {
  return std::any_of(acl.begin(), acl.end(), [](const AclEntry& e) {
    return e.scheme == "world" && (e.perms & ~zk::kPermRead) != 0;
  });
}

bool SameAcl(const Acl& a, const Acl& b) {
  if (a.size() != b.size()) return false;
  return std::all_of(a.begin(), a.end(), [&](const AclEntry& e) {
    return std::find(b.begin(), b.end(), e) != b.end();
  });
}

StatusOr<TreeFindings> InspectTree(zk::ZkSession& zk, const TreeCheck& check) {
  TreeFindings findings;
  const model::RootPaths tree(check.root);
  std::vector<std::string> paths = {check.root, tree.Clusters()};
  for (const std::string& c : check.clusters) {
    const model::ClusterPaths cluster = tree.Cluster(c);
    paths.insert(paths.end(), {cluster.Cluster(), cluster.Nodes(), cluster.Events(),
                               cluster.History(), cluster.Master(), cluster.Control(),
                               cluster.Switchover(), cluster.Identity(), cluster.Owners()});
  }
  paths.push_back(tree.Orchestrators());
  paths.push_back(tree.Election());
  for (const std::string& path : paths) {
    auto acl = zk.GetAcl(path);
    if (!acl.ok()) {
      if (acl.status().code() != StatusCode::kNotFound) return acl.status();
      if (path == check.root) findings.root_missing = true;
      continue;
    }
    if (IsWorldWritable(acl->acl)) findings.world_writable.push_back(path);
  }
  return findings;
}

Status JudgeTree(const TreeFindings& findings, const TreeCheck& check) {
  if (!check.auth_configured || check.allow_open_acl) return Status::Ok();
  const std::string fix =
      "run `pgherald zk-init --config FILE` (docs/security.md) to lay out per-role ACLs, or set "
      "zookeeper.allow_open_acl: true to run on an open tree anyway";
  if (findings.root_missing) {
    return FailedPrecondition("zookeeper.auth is configured but the tree " + check.root +
                              " does not exist, so " + check.program +
                              " would create it without per-role ACLs: " + fix);
  }
  if (!findings.world_writable.empty()) {
    std::string more;
    if (findings.world_writable.size() > 1) {
      more = " (and " + std::to_string(findings.world_writable.size() - 1) + " more znode(s))";
    }
    return FailedPrecondition(
        "zookeeper.auth is configured but znode " + findings.world_writable.front() + more +
        " is world-writable: anyone who reaches ZooKeeper could rewrite it; " + fix);
  }
  return Status::Ok();
}

std::vector<std::string> Warnings(const TreeFindings& findings, const TreeCheck& check) {
  std::vector<std::string> out;
  if (!findings.world_writable.empty()) {
    out.push_back(
        "the ZooKeeper tree is world-writable (" + std::to_string(findings.world_writable.size()) +
        " znode(s), first " + findings.world_writable.front() +
        "): anyone who reaches ZooKeeper can publish a master; configure zookeeper.auth_file per "
        "role and run `pgherald zk-init` (docs/security.md)" +
        std::string(check.auth_configured ? "; running anyway: zookeeper.allow_open_acl is true"
                                          : ""));
  }
  return out;
}

zk::SessionFactory GuardedFactory(zk::SessionFactory inner, TreeCheck check) {
  return [inner = std::move(inner),
          check = std::move(check)]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
    auto session = inner();
    if (!session.ok()) return session;
    const log::Logger logger("zk_acl");
    auto findings = InspectTree(**session, check);
    if (!findings.ok()) {
      logger.Warn("zk_acl_check_failed", {{"root", check.root}, {"error", findings.status()}});
      return session;
    }
    if (Status s = JudgeTree(*findings, check); !s.ok()) {
      logger.Error("zk_tree_refused", {{"root", check.root}, {"error", s}});
      (*session)->Close();
      return s;
    }
    for (const std::string& w : Warnings(*findings, check)) {
      logger.Warn("zk_tree_open", {{"root", check.root}, {"detail", w}});
    }
    return session;
  };
}

Status CheckAtStart(const zk::SessionFactory& guarded) {
  auto session = guarded();
  if (session.ok()) {
    (*session)->Close();
    return Status::Ok();
  }
  if (session.status().code() == StatusCode::kFailedPrecondition) return session.status();
  return Status::Ok();
}

}  // namespace pgherald::zkacl
