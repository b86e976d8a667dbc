#include "tests/fuzz/fuzz_util.h"

#include <spdlog/sinks/null_sink.h>

#include "common/logging.h"

namespace pgherald::fuzz {

void QuietLogging() {
  config::LoggingConfig quiet;
  quiet.level = config::LogLevel::kError;
  log::Init(quiet, std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace pgherald::fuzz
