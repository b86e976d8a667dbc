// Fuzz target: config loading, YAML text -> each daemon's config parser (orchestrator, poller,
// watch), in memory (ConfigNode::LoadString; the poller's ParsePollerConfig takes the text).
// yaml-cpp throws and recurses; ConfigNode must contain both.
// Properties: nothing crashes, no exception escapes, and every rejection names the file
// ("<name>.yaml:") so the operator knows where to look.
#include <exception>
#include <string>

#include "app/builtin_sinks.h"
#include "clients/watch/watch_config.h"
#include "common/config.h"
#include "orchestrator/orchestrator_config.h"
#include "pollers/poller_config.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;
namespace config = pgherald::config;

namespace {

void CheckRejection(const pgherald::Status& status, const std::string& file) {
  FUZZ_CHECK(status.message().find(file) != std::string::npos,
             "rejection without the file name: " + status.message());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (pgherald::fuzz::QuietLogging(), true);
  (void)quiet;
  // The first byte picks the parser (one YAML parse per input instead of three: 3x the
  // executions per second); the rest is the YAML text.
  if (size == 0) return 0;
  const int which = data[0] % 3;
  const std::string_view yaml = AsText(data + 1, size - 1);
  try {
    if (which == 0) {
      if (auto root = config::ConfigNode::LoadString(yaml, "orch.yaml"); root.ok()) {
        auto c = pgherald::orchestrator::ParseOrchestratorConfig(*root);
        if (!c.ok()) CheckRejection(c.status(), "orch.yaml");
      } else {
        CheckRejection(root.status(), "orch.yaml");
      }
    } else if (which == 1) {
      if (auto c = pgherald::pollers::ParsePollerConfig(yaml, "poller.yaml"); !c.ok()) {
        CheckRejection(c.status(), "poller.yaml");
      }
    } else if (auto root = config::ConfigNode::LoadString(yaml, "watch.yaml"); root.ok()) {
      auto c = pgherald::watch::ParseWatchConfig(*root, pgherald::app::BuiltinSinks());
      if (!c.ok()) CheckRejection(c.status(), "watch.yaml");
    }
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("exception escaped the config parser: ") + e.what());
  }
  return 0;
}
