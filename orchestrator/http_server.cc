#include "orchestrator/http_server.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/model/json_fields.h"
#include "common/logging.h"
#include "common/model/untrusted.h"
#include "dashboard_assets.h"  // generated from orchestrator/dashboard/ by embed.cmake

namespace pgherald::orchestrator {
namespace {

using json = nlohmann::json;

const log::Logger& Log() {
  static const log::Logger logger("http");
  return logger;
}

using jsonf::Dump;

HttpServer::Response Json(int status, const json& j) {
  return {status, "application/json", Dump(j) + "\n", ""};
}

HttpServer::Response Error(int status, const std::string& message) {
  return http::ErrorResponse(status, message);
}

// Constant-time comparison: the time taken does not tell how much of a guess was right.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

json OrchestratorJson(const ObservabilitySnapshot& s, std::int64_t now_ms) {
  return {{"id", s.id},
          {"role", s.leading ? "leader" : "follower"},  // leader: owns at least one cluster
          {"owned_clusters", s.owned},
          {"successor_clusters", s.successor_clusters},
          {"ownership_changes", s.ownership_changes},
          {"zookeeper", s.session_state},
          {"lease_remaining_ms", s.lease_remaining_ms},
          {"rounds", s.rounds},
          {"snapshot_age_ms", s.published ? now_ms - s.updated_at_ms : -1},
          {"now", now_ms}};
}

// The problem kinds this orchestrator, leading, reported for `cluster` in its last round
// (master_unbacked, published_master_unreachable, ...; docs/orchestrator.md).
json OrchestratorProblems(const ObservabilitySnapshot& s, const std::string& cluster) {
  json kinds = json::array();
  if (auto it = s.active_problems.find(cluster); it != s.active_problems.end()) {
    for (const std::string& kind : it->second) kinds.push_back(kind);
  }
  return kinds;
}

json Summary(const ObservabilitySnapshot& s, const view::ClusterStatus& c) {
  json nodes = json::array();
  for (const view::NodeStatus& n : c.nodes) {
    nodes.push_back({{"node", n.node},
                     {"role", n.role},
                     {"heartbeat_age_ms", n.heartbeat_age_ms},
                     {"lag_bytes", n.lag_bytes ? json(*n.lag_bytes) : json(nullptr)}});
  }
  return {
      {"name", c.name},
      {"healthy", c.healthy()},
      {"problems", c.problems},
      {"paused", c.control.paused},
      {"owner", c.owner_guid.empty() ? json(nullptr) : json{{"id", c.owner}, {"guid", c.owner_guid}}},
      {"owned", s.owned.count(c.name) > 0},
      {"master", c.master.state == model::MasterState::kOk ? json(c.master.node) : json(nullptr)},
      {"epoch", c.master.epoch},
      {"verified", c.verified()},
      {"vouchers", c.vouchers},
      {"switchover", view::SwitchoverJson(c)},
      {"nodes", nodes}};
}

// The snapshot's cluster with ages recomputed for now (the snapshot may be up to a tick old).
json ClusterDetail(const view::ClusterStatus& c, std::int64_t now_ms) {
  json j = view::ClusterJson(c);
  for (json& n : j["nodes"]) {
    if (n.contains("mtime") && n["mtime"].get<std::int64_t>() > 0) {
      n["heartbeat_age_ms"] = std::max<std::int64_t>(0, now_ms - n["mtime"].get<std::int64_t>());
    }
  }
  return j;
}

}  // namespace

HttpServer::Response HandleHttp(const http::HttpConfig& config, const ObservabilitySnapshot& s,
                                const HttpServer::ControlWriter& control_writer,
                                const std::string& method, const std::string& uri,
                                const std::string& authorization, const std::string& body,
                                std::int64_t now_ms) {
  std::string path = uri.substr(0, uri.find('?'));
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  const bool get = method == "GET" || method == "HEAD";

  if (path == "/health") {
    if (!get) return Error(405, "use GET");
    // A loop that has not published for 3 ticks (plus slack for a slow round) is stuck.
    const std::int64_t max_age = std::max<std::int64_t>(5000, 3 * s.tick_ms + 3000);
    const bool fresh = s.published && now_ms - s.updated_at_ms <= max_age;
    json j = OrchestratorJson(s, now_ms);
    const bool ok = fresh && s.zk_connected();
    j["status"] = ok             ? "ok"
                  : !s.published ? "starting"
                  : !fresh       ? "loop stalled"
                                 : "zookeeper not connected";
    return Json(ok ? 200 : 503, j);
  }
  if (path == "/metrics") {
    if (!get) return Error(405, "use GET");
    return {200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics(s, now_ms), ""};
  }
  if (path == "/api/clusters") {
    if (!get) return Error(405, "use GET");
    json clusters = json::array();
    for (const view::ClusterStatus& c : s.clusters) {
      json j = Summary(s, c);
      j["orchestrator_problems"] = OrchestratorProblems(s, c.name);
      clusters.push_back(std::move(j));
    }
    return Json(200, json{{"orchestrator", OrchestratorJson(s, now_ms)},
                          {"clusters", clusters},
                          {"read_errors", s.read_errors}});
  }
  const std::string prefix = "/api/clusters/";
  if (path.rfind(prefix, 0) == 0) {
    std::string rest = path.substr(prefix.size());
    std::string action;
    if (const auto slash = rest.find('/'); slash != std::string::npos) {
      action = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
    }
    const std::string& cluster = rest;
    if (action.empty()) {
      if (!get) return Error(405, "use GET");
      const view::ClusterStatus* c = s.Find(cluster);
      if (c == nullptr) return Error(404, "cluster \"" + cluster + "\" is not configured here");
      json j = ClusterDetail(*c, now_ms);
      j["orchestrator"] = OrchestratorJson(s, now_ms);
      j["orchestrator_problems"] = OrchestratorProblems(s, cluster);
      return Json(200, j);
    }
    if (action != "pause" && action != "resume") return Error(404, "no such endpoint: " + path);
    if (method != "POST") return Error(405, "use POST");
    if (!config.token || config.token->empty()) {
      return Error(403, "POST is disabled: no http.token_file is configured");
    }
    const std::string scheme = "Bearer ";
    if (authorization.rfind(scheme, 0) != 0) {
      HttpServer::Response r = Error(401, "missing \"Authorization: Bearer <token>\"");
      r.www_authenticate = "Bearer realm=\"pgherald\"";
      return r;
    }
    if (!SameSecret(authorization.substr(scheme.size()), *config.token)) {
      Log().Warn("http_token_rejected", {{"path", path}});
      return Error(403, "wrong token");
    }
    if (s.Find(cluster) == nullptr)
      return Error(404, "cluster \"" + cluster + "\" is not configured here");
    publishers::ControlState control;
    control.paused = action == "pause";
    control.changed_by = s.id + " (http)";
    control.changed_at_ms = now_ms;
    if (!body.empty()) {
      if (Status shape = untrusted::CheckJsonShape(body, "body"); !shape.ok()) {
        return Error(400, shape.message());
      }
      const json b = json::parse(body, nullptr, false);
      if (b.is_discarded() || !b.is_object())
        return Error(400, "body: expected a JSON object such as {\"reason\":\"...\"}");
      if (b.contains("reason")) {
        if (!b["reason"].is_string())
          return Error(400, "body: field \"reason\": expected a string");
        control.reason = b["reason"].get<std::string>();
      }
    }
    const Status written =
        control_writer ? control_writer(cluster, control) : Unavailable("no control writer");
    if (!written.ok()) {
      return Error(written.code() == StatusCode::kNotFound ? 404 : 503, written.message());
    }
    Log().Info(control.paused ? "cluster_paused" : "cluster_resumed",
               {{"cluster", cluster}, {"reason", control.reason}, {"via", "http"}});
    return Json(200,
                json{{"cluster", cluster}, {"paused", control.paused}, {"reason", control.reason}});
  }
  if (get) {
    const std::string asset = path == "/" ? "/index.html" : path;
    for (const dashboard::Asset& a : dashboard::kAssets) {
      if (a.path == asset) return {200, std::string(a.content_type), std::string(a.body), ""};
    }
  }
  return Error(404, "no such endpoint: " + path);
}

HttpServer::~HttpServer() = default;

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const http::HttpConfig& config,
                                                        const StatusBoard* board,
                                                        ControlWriter control_writer) {
  http::Handler handler = [config, board, control_writer](const http::Request& r) {
    const auto snapshot = board->Snapshot();
    return HandleHttp(config, *snapshot, control_writer, r.method, r.uri, r.authorization, r.body,
                      view::WallNowMs());
  };
  const char* const api_writes = config.token ? "enabled (token)" : "disabled (no token_file)";
  PGH_ASSIGN_OR_RETURN(auto server, http::Server::Start(config, std::move(handler), api_writes));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(server)));
}

}  // namespace pgherald::orchestrator
