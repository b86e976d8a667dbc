// The dashboard in headless Chromium against the real lab: three pollers and one orchestrator
// serving HTTP; tests/browser/dashboard_test.mjs (node, Chrome DevTools protocol) loads the page,
// sees the master and three nodes with live heartbeat ages, kills the primary (kill -9 through
// labctl) and sees the page show the new master without a reload. Screenshots are saved under the
// build directory (PGHERALD_SCREENSHOT_DIR).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/observability_lab_util.h"

namespace pgherald::observability_lab {
namespace {

using std::chrono::seconds;

TEST(ObservabilityBrowser, DashboardFollowsAKillNineFailoverWithoutReload) {
  // Missing tools fail loudly (scripts/install-deps.sh installs chromium; node comes with the
  // machine).
  ASSERT_EQ(::access(PGHERALD_NODE, X_OK), 0)
      << "node not found (" << PGHERALD_NODE << "): install nodejs and re-run cmake";
  ASSERT_EQ(::access(PGHERALD_CHROMIUM, X_OK), 0)
      << "chromium not found (" << PGHERALD_CHROMIUM
      << "): run scripts/install-deps.sh (or apt-get install chromium) and re-run cmake";
  auto up = ObservabilityLab::Up(1);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  ObservabilityLab& o = **up;
  // The lab's primary, awaited (one look could catch a node still starting).
  auto w = o.lab().WaitForPrimary(0, seconds(90));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const int primary = *w;
  // The orchestrator has published and vouched for the primary before the page is judged.
  ASSERT_TRUE(WaitUntil(
      [&] {
        CommandResult r = o.Cli({"status", "--cluster", kCluster, "--json"});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        if (j.is_discarded() || j["clusters"].empty()) return false;
        auto m = j["clusters"][0]["master"];
        return m.value("node", "") == "node" + std::to_string(primary) &&
               m.value("verified", false);
      },
      seconds(90), std::chrono::milliseconds(300)))
      << o.Logs();

  const char* labctl = std::getenv("PGHERALD_LABCTL");
  ASSERT_NE(labctl, nullptr) << "PGHERALD_LABCTL must name tests/lab/labctl (ctest sets it)";
  const int debug_port = FreePort();
  ASSERT_NE(debug_port, 0);
  const std::string kill =
      std::string(labctl) + " pg-kill " + std::to_string(primary) + " --dir " + o.lab().dir();
  const std::string url = "http://127.0.0.1:" + std::to_string(o.port(0)) + "/";
  CommandResult r = RunCommand(
      {PGHERALD_NODE, "--experimental-websocket", PGHERALD_BROWSER_SCRIPT, "--chromium",
       PGHERALD_CHROMIUM, "--url", url, "--debug-port", std::to_string(debug_port), "--kill", kill,
       "--screenshots", PGHERALD_SCREENSHOT_DIR, "--nodes", "3", "--timeout-s", "90"},
      o.lab().dir());
  std::printf("%s", r.out.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.out << "\n" << r.err << "\n" << o.Logs();
  EXPECT_NE(r.out.find("\"ok\":true"), std::string::npos);
  EXPECT_NE(r.out.find("\"before\":\"node" + std::to_string(primary) + "\""), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace pgherald::observability_lab
