// packaging/: the systemd units parsed (what each must say for Type=notify supervision, reload,
// restart and the sandbox, and that each starts the daemon its name says with the configuration
// its condition checks), and the shipped example configurations loaded by the daemons' own
// loaders, consistent with the units' runtime directories. The packages themselves:
// tests/integration/package_test.sh.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "app/builtin_sinks.h"
#include "clients/watch/watch_config.h"
#include "orchestrator/orchestrator_config.h"
#include "pollers/poller_config.h"
#include "sinks/file/file_sink.h"

namespace pgherald {
namespace {

const std::string kPackaging = std::string(PGHERALD_SOURCE_DIR) + "/packaging/";

// "Section.Key" -> value (the last one wins, as in systemd for these keys); comments skipped.
std::map<std::string, std::string> ParseUnit(const std::string& name) {
  std::ifstream in(kPackaging + "systemd/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::map<std::string, std::string> keys;
  std::string line;
  std::string section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    const auto eq = line.find('=');
    EXPECT_NE(eq, std::string::npos) << name << ": " << line;
    if (eq == std::string::npos) continue;
    keys[section + "." + line.substr(0, eq)] = line.substr(eq + 1);
  }
  return keys;
}

struct UnitCase {
  const char* file;
  const char* daemon;  // the subcommand ExecStart runs
  const char* config;  // with --config
  const char* runtime_dir;
};

const UnitCase kUnits[] = {
    {"pgherald-poller@.service", "poller", "/etc/pgherald/%i.yaml", "pgherald/%i"},
    {"pgherald-orchestrator.service", "orchestrator", "/etc/pgherald/orchestrator.yaml",
     "pgherald/orchestrator"},
    {"pgherald-watch.service", "watch", "/etc/pgherald/watch.yaml", "pgherald/watch"},
};

TEST(PackagingUnitsTest, EachUnitIsSupervisedReloadableAndSandboxed) {
  for (const UnitCase& c : kUnits) {
    SCOPED_TRACE(c.file);
    auto unit = ParseUnit(c.file);
    EXPECT_EQ(unit["Service.Type"], "notify");
    EXPECT_EQ(unit["Service.ExecStart"],
              std::string("/usr/bin/pgherald ") + c.daemon + " --config " + c.config);
    EXPECT_EQ(unit["Unit.ConditionPathExists"], c.config);
    EXPECT_EQ(unit["Service.ExecReload"], "/bin/kill -HUP $MAINPID");
    EXPECT_EQ(unit["Service.Restart"], "on-failure");
    EXPECT_EQ(unit["Service.RuntimeDirectory"], c.runtime_dir);
    EXPECT_EQ(unit["Service.User"], "pgherald");
    EXPECT_EQ(unit["Service.NoNewPrivileges"], "yes");
    EXPECT_EQ(unit["Service.ProtectSystem"], "strict");
    EXPECT_EQ(unit["Service.PrivateTmp"], "yes");
    EXPECT_EQ(unit["Service.ProtectHome"], "yes");
    EXPECT_EQ(unit["Service.CapabilityBoundingSet"], "");
    EXPECT_TRUE(unit.count("Service.CapabilityBoundingSet"));
    EXPECT_EQ(unit["Install.WantedBy"], "multi-user.target");
  }
}

TEST(PackagingUnitsTest, ThePollerSharesItsNotifySocketWithRepmgrsUser) {
  auto unit = ParseUnit("pgherald-poller@.service");
  EXPECT_EQ(unit["Service.Group"], "postgres");
  EXPECT_EQ(unit["Service.RuntimeDirectoryMode"], "0750");
}

TEST(PackagingUnitsTest, TheWatchMayWriteHaproxysAndPgbouncersFiles) {
  auto unit = ParseUnit("pgherald-watch.service");
  EXPECT_EQ(unit["Service.ReadWritePaths"], "-/etc/haproxy -/etc/pgbouncer -/run/haproxy");
}

// The shipped configurations load as they are, and what they name under /run is in the runtime
// directory of the unit that runs them (instance "poller" for /etc/pgherald/poller.yaml).
TEST(PackagingConfigsTest, ShippedConfigurationsLoadAndFitTheUnits) {
  auto poller = pollers::LoadPollerConfig(kPackaging + "etc/poller.yaml");
  ASSERT_TRUE(poller.ok()) << poller.status().message();
  EXPECT_EQ(poller->poller.notify_socket, "/run/pgherald/poller/notify.sock");
  EXPECT_EQ(poller->poller.notify_socket_mode, 0660);

  auto orchestrator = orchestrator::LoadOrchestratorConfig(kPackaging + "etc/orchestrator.yaml");
  ASSERT_TRUE(orchestrator.ok()) << orchestrator.status().message();

  auto watch = watch::LoadWatchConfig(kPackaging + "etc/watch.yaml", app::BuiltinSinks());
  ASSERT_TRUE(watch.ok()) << watch.status().message();
  ASSERT_EQ(watch->clusters.size(), 1u);
  ASSERT_EQ(watch->clusters[0].sinks.size(), 1u);
  const auto& file = watch->clusters[0].sinks[0].As<watch::FileSinkConfig>();
  EXPECT_EQ(file.path.rfind("/run/pgherald/watch/", 0), 0u) << file.path;
}

}  // namespace
}  // namespace pgherald
