#include "app/zk_init.h"

#include <cstdio>

#include "common/bounded_file.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/model/untrusted.h"
#include "common/zk/zk_client.h"
#include "common/model/zk_paths.h"

namespace pgherald::app {
namespace {

// The first line of a file, without its line break.
std::string FirstLine(const std::string& content) {
  std::string line = content.substr(0, content.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// One identity of a role list: exactly one of auth_file, digest, digest_file.
std::optional<std::string> ParseIdentity(config::ConfigNode node) {
  auto auth_file = node.Optional<std::string>("auth_file");
  auto digest = node.Optional<std::string>("digest");
  auto digest_file = node.Optional<std::string>("digest_file");
  const int given = (auth_file ? 1 : 0) + (digest ? 1 : 0) + (digest_file ? 1 : 0);
  if (given != 1) {
    node.Fail("", "expected exactly one of auth_file (user:password), digest or digest_file");
    return std::nullopt;
  }
  if (digest) {
    if (!zkacl::IsDigestId(*digest)) {
      node.Fail("digest", "expected \"user:<28 base64 characters of sha1(user:password)>\"");
      return std::nullopt;
    }
    return digest;
  }
  const std::string& path = auth_file ? *auth_file : *digest_file;
  const std::string key = auth_file ? "auth_file" : "digest_file";
  auto file = ReadBoundedFile(path, node.path() + "." + key, kMaxSecretFileBytes);
  if (!file.ok()) {
    node.Fail(key, file.status().message());
    return std::nullopt;
  }
  const std::string line = FirstLine(file->content);
  if (digest_file) {
    if (!zkacl::IsDigestId(line)) {
      node.Fail(key, "the first line of " + path + " must be a digest id \"user:<base64 sha1>\"");
      return std::nullopt;
    }
    return line;
  }
  if (file->group_or_world_readable) {
    log::Warn("zk_init_secret_readable",
              {{"file", path}, {"fix", "chmod 600 it: it holds a password"}});
  }
  auto id = zkacl::DigestIdOfCredential(line);
  if (!id.ok()) {
    node.Fail(key, "the first line of " + path + " must be \"user:password\" (content not shown)");
    return std::nullopt;
  }
  return *id;
}

std::vector<std::string> ParseIdentities(config::ConfigNode parent, std::string_view key) {
  std::vector<std::string> ids;
  for (config::ConfigNode item : parent.List(key)) {
    if (auto id = ParseIdentity(item)) ids.push_back(*id);
  }
  return ids;
}

Status Denied(const Status& s, const std::string& path) {
  if (s.code() != StatusCode::kPermissionDenied) return s;
  return Status(StatusCode::kPermissionDenied,
                path + ": " + s.message() +
                    ": zookeeper.auth_file of zk-init's config must name an identity with ADMIN "
                    "(and CREATE) on it: the admin identity of an earlier zk-init run, or the "
                    "orchestrators' credential for znodes the orchestrators made");
}

}  // namespace

StatusOr<ZkInitConfig> ParseZkInitConfig(config::ConfigNode root) {
  ZkInitConfig c;
  c.zookeeper = config::ParseZooKeeper(root.Child("zookeeper"));
  config::ConfigNode init = root.Child("zk_init");
  if (!init.present()) init.Fail("", "missing required section zk_init (see docs/security.md)");
  c.clusters = init.Optional<std::vector<std::string>>("clusters", {});
  for (const std::string& name : c.clusters) {
    if (!untrusted::IsValidName(name)) {
      init.Fail("clusters", "cluster name " + untrusted::SanitizeForDisplay(name) + " must be " +
                                std::string(untrusted::kNameRule));
    }
  }
  c.ids.orchestrators = ParseIdentities(init, "orchestrators");
  c.ids.pollers = ParseIdentities(init, "pollers");
  c.ids.operators = ParseIdentities(init, "operators");
  if (init.present() && c.ids.orchestrators.empty()) {
    init.Fail("orchestrators", "at least one orchestrator identity is required");
  }
  if (Status s = root.Finish(); !s.ok()) return s;
  if (!c.zookeeper.auth) {
    return InvalidArgument(root.file() +
                           ": zookeeper.auth_file is required: zk-init acts as that (admin) "
                           "identity, which keeps ALL on what it lays out");
  }
  auto admin = zkacl::DigestIdOfCredential(*c.zookeeper.auth);
  if (!admin.ok())
    return InvalidArgument(root.file() + ": zookeeper.auth_file: " + admin.status().message());
  c.ids.admins.push_back(*admin);
  return c;
}

StatusOr<ZkInitConfig> LoadZkInitConfig(const std::string& path) {
  auto root = config::ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParseZkInitConfig(*root);
}

StatusOr<ZkInitReport> ApplyZkLayout(zk::ZkSession& zk, const std::string& root,
                                     const std::vector<std::string>& clusters,
                                     const zkacl::RoleIdentities& ids, bool dry_run) {
  ZkInitReport report;
  const char* would = dry_run ? "would " : "";
  for (const zkacl::ZnodeAcl& want : zkacl::Layout(root, clusters, ids)) {
    auto have = zk.GetAcl(want.path);
    if (!have.ok() && have.status().code() == StatusCode::kNotFound) {
      if (!dry_run) {
        auto created = zk.CreateWithAcl(want.path, "", zk::CreateMode::kPersistent, want.acl);
        if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
          return Denied(created.status(), want.path);
        }
      }
      report.lines.push_back(std::string(would) + "create " + want.path +
                             " acl=" + zkacl::AclText(want.acl));
      ++report.created;
      continue;
    }
    if (!have.ok()) return Denied(have.status(), want.path);
    if (want.ancestor || zkacl::SameAcl(have->acl, want.acl)) {
      ++report.unchanged;
      continue;
    }
    if (!dry_run) {
      if (Status s = zk.SetAcl(want.path, want.acl); !s.ok()) return Denied(s, want.path);
    }
    report.lines.push_back(std::string(would) + "set acl " + want.path + " from " +
                           zkacl::AclText(have->acl) + " to " + zkacl::AclText(want.acl));
    ++report.changed;
  }
  // What the roles made at run time: fixed only where it is open.
  std::vector<std::string> singles;
  const model::RootPaths tree(root);
  std::vector<std::string> containers = {tree.Election()};
  for (const std::string& c : clusters) {
    const model::ClusterPaths cluster = tree.Cluster(c);
    singles.push_back(cluster.Master());
    singles.push_back(cluster.Identity());
    singles.push_back(cluster.Switchover());
    containers.insert(containers.end(),
                      {cluster.Master(), cluster.Nodes(), cluster.Events(), cluster.History(),
                       cluster.Owners()});
  }
  std::vector<std::string> paths = singles;
  for (const std::string& parent : containers) {
    auto children = zk.GetChildren(parent);
    if (!children.ok()) {
      if (children.status().code() == StatusCode::kNotFound) continue;
      return Denied(children.status(), parent);
    }
    for (const std::string& child : *children) paths.push_back(zk::JoinPath(parent, child));
  }
  for (const std::string& path : paths) {
    auto have = zk.GetAcl(path);
    if (!have.ok()) {
      if (have.status().code() == StatusCode::kNotFound) continue;  // gone meanwhile
      return Denied(have.status(), path);
    }
    if (!zkacl::IsWorldWritable(have->acl)) {
      ++report.unchanged;
      continue;
    }
    const zk::Acl want = zkacl::ChildAcl(path, have->acl, ids);
    if (!dry_run) {
      Status s = zk.SetAcl(path, want);
      if (!s.ok() && s.code() != StatusCode::kNotFound) return Denied(s, path);
    }
    report.lines.push_back(std::string(would) + "set acl " + path + " from " +
                           zkacl::AclText(have->acl) + " to " + zkacl::AclText(want));
    ++report.changed;
  }
  return report;
}

int RunZkInitCommand(const std::vector<std::string>& args) {
  const std::vector<cli::OptionSpec> specs = {
      {"config", "FILE", "YAML configuration: zookeeper (as admin) and zk_init (docs/security.md)"},
      {"dry-run", "", "print what would change, change nothing"}};
  auto parsed = cli::Parse(args, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "pgherald zk-init: %s\n", parsed.status().message().c_str());
    return 2;
  }
  if (parsed->help) {
    std::printf("%s", cli::Usage("zk-init",
                                 "Create or migrate the ZooKeeper tree with per-role ACLs "
                                 "(idempotent; prints what it changed).",
                                 specs)
                          .c_str());
    return 0;
  }
  auto path = parsed->Get("config");
  if (!path) {
    std::fprintf(stderr, "pgherald zk-init: --config FILE is required (see docs/security.md)\n");
    return 2;
  }
  auto cfg = LoadZkInitConfig(*path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "pgherald zk-init: %s\n", cfg.status().message().c_str());
    return 2;
  }
  for (const std::string& w : cfg->zookeeper.warnings) {
    std::fprintf(stderr, "pgherald zk-init: warning: %s\n", w.c_str());
  }
  auto session = zk::ZkClient::Connect(config::ToZkClientOptions(cfg->zookeeper));
  if (!session.ok()) {
    std::fprintf(stderr, "pgherald zk-init: cannot connect to ZooKeeper %s: %s\n",
                 cfg->zookeeper.connect.c_str(), session.status().message().c_str());
    return 1;
  }
  const bool dry_run = parsed->Has("dry-run");
  auto report = ApplyZkLayout(**session, cfg->zookeeper.root, cfg->clusters, cfg->ids, dry_run);
  (*session)->Close();
  if (!report.ok()) {
    std::fprintf(stderr, "pgherald zk-init: %s\n", report.status().message().c_str());
    return 1;
  }
  for (const std::string& line : report->lines) std::printf("%s\n", line.c_str());
  std::printf("zk-init: %s%d created, %d ACLs changed, %d unchanged\n", dry_run ? "dry run: " : "",
              report->created, report->changed, report->unchanged);
  return 0;
}

}  // namespace pgherald::app
