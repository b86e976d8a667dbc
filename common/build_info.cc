#include "common/build_info.h"

#include "build_info_values.h"  // generated: cmake/BuildInfo.cmake

namespace pgherald::build {

const char* Version() { return PGHERALD_BUILD_VERSION; }
const char* Commit() { return PGHERALD_BUILD_COMMIT; }
const char* BuildType() { return PGHERALD_BUILD_TYPE; }

std::string Describe() {
  return std::string("pgherald ") + Version() + " (commit " + Commit() + ", " + BuildType() + ")";
}

}  // namespace pgherald::build
