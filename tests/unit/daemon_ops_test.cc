// The operations plumbing every daemon shares: build info, the poller's metric names, the generic
// HTTP server, and SIGHUP's section comparison and reload outcome.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/build_info.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/prometheus.h"
#include "common/reload.h"
#include "pollers/poller_config.h"
#include "pollers/poller_metrics.h"

namespace pgherald {
namespace {

TEST(BuildInfoTest, DescribesVersionCommitAndBuildType) {
  EXPECT_STRNE(build::Version(), "");
  EXPECT_STRNE(build::Commit(), "");
  EXPECT_STRNE(build::BuildType(), "");
  EXPECT_EQ(build::Describe(), std::string("pgherald ") + build::Version() + " (commit " +
                                   build::Commit() + ", " + build::BuildType() + ")");
  prom::PromText out;
  prom::RenderBuildInfo(out);
  EXPECT_NE(out.text().find(std::string("pgherald_build_info{version=\"") + build::Version() +
                            "\",commit=\"" + build::Commit() + "\",build_type=\""),
            std::string::npos)
      << out.text();
}

TEST(PollerMetricsTest, NamesEveryFamily) {
  pollers::PollerMetrics m("main", "node1");
  m.RecordTick(0.003, true, true);
  m.RecordPublish(true, 1700000000500);
  m.RecordPublish(false, 0);
  m.RecordNotify("standby_promote");
  m.RecordNotify("standby_promote");
  m.RecordNotify("Bad Name\n");
  const std::string text = m.Render();
  const std::string l = "{cluster=\"main\",node=\"node1\"";
  for (const std::string& line : {
           "pgherald_poller_tick_seconds_count" + l + "} 1\n",
           "pgherald_poller_tick_seconds_bucket" + l + ",le=\"0.005\"} 1\n",
           "pgherald_poller_postgres_reachable" + l + "} 1\n",
           "pgherald_poller_postgres_in_recovery" + l + "} 1\n",
           "pgherald_poller_observations_published_total" + l + "} 1\n",
           "pgherald_poller_observation_publish_errors_total" + l + "} 1\n",
           "pgherald_poller_last_publish_timestamp_seconds" + l + "} 1700000000.5\n",
           "pgherald_poller_notify_events_total" + l + ",event=\"standby_promote\"} 2\n",
           "pgherald_poller_notify_events_total" + l + ",event=\"other\"} 1\n",
           std::string("# TYPE pgherald_build_info gauge\n"),
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  m.RecordTick(0.5, false, true);  // unreachable: not "in recovery" either
  EXPECT_NE(m.Render().find("pgherald_poller_postgres_in_recovery" + l + "} 0\n"),
            std::string::npos);
}

TEST(PollerMetricsTest, EventNamesFromTheSocketHaveBoundedCardinality) {
  pollers::PollerMetrics m("main", "node1");
  for (int i = 0; i < 200; ++i) m.RecordNotify("event_" + std::to_string(i));
  const std::string text = m.Render();
  std::size_t series = 0;
  for (std::size_t at = 0; (at = text.find("pgherald_poller_notify_events_total{", at)) !=
                           std::string::npos;
       ++at) {
    ++series;
  }
  EXPECT_EQ(series, pollers::PollerMetrics::kMaxEventNames + 1);  // + "other"
  EXPECT_EQ(pollers::PollerMetrics::EventLabel(std::string(65, 'a')), "other");
  EXPECT_EQ(pollers::PollerMetrics::EventLabel("repmgrd_failover_promote"),
            "repmgrd_failover_promote");
}

std::string Get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "CONNECT FAILED";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

TEST(HttpServerTest, ServesTheHandlerAndTurnsExceptionsInto500) {
  http::ListenConfig listen;
  listen.port = 0;
  auto server = http::Server::Start(listen, [](const http::Request& r) -> http::Response {
    if (r.path == "/boom") throw std::runtime_error("bug");
    return {200, prom::kContentType, "path=" + r.path + "\n", ""};
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string ok = Get((*server)->port(), "/metrics/?x=1");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\n\r\npath=/metrics\n"), std::string::npos) << ok;
  const std::string boom = Get((*server)->port(), "/boom");
  EXPECT_EQ(boom.rfind("HTTP/1.1 500 ", 0), 0u) << boom;
}

TEST(HttpServerTest, ParsesTheOptionalSection) {
  auto root = config::ConfigNode::LoadString(
      "http:\n  port: 9187\n  address: 0.0.0.0\n  request_timeout_ms: 2000\n", "p.yaml");
  ASSERT_TRUE(root.ok());
  auto listen = http::ParseOptionalListen(*root);
  ASSERT_TRUE(root->Finish().ok()) << root->Finish().ToString();
  ASSERT_TRUE(listen.has_value());
  EXPECT_EQ(listen->port, 9187);
  EXPECT_EQ(listen->address, "0.0.0.0");
  EXPECT_EQ(listen->request_timeout, Millis(2000));
  auto none = config::ConfigNode::LoadString("logging: {level: info}\n", "p.yaml");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(http::ParseOptionalListen(*none).has_value());
  auto bad = config::ConfigNode::LoadString("http:\n  port: 70000\n  tokn: x\n", "p.yaml");
  ASSERT_TRUE(bad.ok());
  (void)http::ParseOptionalListen(*bad);
  const Status s = bad->Finish();
  EXPECT_NE(s.message().find("p.yaml:2: http.port"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("p.yaml:3: http.tokn"), std::string::npos) << s.ToString();
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ReloadTest, SectionsCompareByContentNotLayout) {
  const std::string a = WriteFile("a.yaml", "logging: {level: info}\nzookeeper:\n  connect: x\n");
  const std::string b =
      WriteFile("b.yaml", "# comment\nlogging:\n  level: info\nzookeeper: {connect: y}\nhttp: {port: 1}\n");
  EXPECT_EQ(config::ChangedSections(config::SectionTexts(a), config::SectionTexts(b)),
            (std::vector<std::string>{"http", "zookeeper"}));
  EXPECT_TRUE(config::SectionTexts(WriteFile("c.yaml", "a: [")).empty());
}

TEST(ReloadTest, LogsAppliedRestartNeededAndKeepsTheRunningConfigOnError) {
  std::ostringstream captured;
  log::Init({config::LogLevel::kInfo, config::LogFormat::kText},
            std::make_shared<spdlog::sinks::ostream_sink_mt>(captured, true));
  const log::Logger logger("test");
  const std::string path = WriteFile("r.yaml", "logging: {level: info}\nzookeeper: {connect: a}\n");
  config::Reloader reloader(path, {"logging"});
  WriteFile("r.yaml", "logging: {level: debug}\nzookeeper: {connect: b}\n");
  int applied = 0;
  EXPECT_TRUE(reloader.Reload(logger, [&] { ++applied; return Status::Ok(); }).ok());
  EXPECT_EQ(applied, 1);
  std::string text = captured.str();
  EXPECT_NE(text.find("reload_needs_restart"), std::string::npos) << text;
  EXPECT_NE(text.find("section=zookeeper"), std::string::npos) << text;
  EXPECT_NE(text.find("reload_applied"), std::string::npos) << text;
  EXPECT_NE(text.find("changed=logging"), std::string::npos) << text;
  captured.str("");
  const Status bad = InvalidArgument("r.yaml:1: logging.level: expected one of trace, ...");
  EXPECT_FALSE(reloader.Reload(logger, [&] { return bad; }).ok());
  text = captured.str();
  EXPECT_NE(text.find("reload_failed"), std::string::npos) << text;
  EXPECT_NE(text.find("r.yaml:1: logging.level"), std::string::npos) << text;
  EXPECT_EQ(text.find("reload_applied"), std::string::npos) << text;
  log::Init({});
}

}  // namespace
}  // namespace pgherald
