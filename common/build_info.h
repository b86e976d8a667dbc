// What this binary is: the version, the git commit and the CMake build type, fixed at configure
// time (cmake/BuildInfo.cmake). Shown by `pgherald version` / `--version` and exported by every
// daemon as pgherald_build_info{version,commit,build_type} 1.
#pragma once

#include <string>

namespace pgherald::build {

const char* Version();    // "0.1.0"
const char* Commit();     // "1a2b3c4d5e6f", "1a2b3c4d5e6f-dirty", or "unknown" outside git
const char* BuildType();  // "RelWithDebInfo", ... or "unspecified"
// "pgherald 0.1.0 (commit 1a2b3c4d5e6f, RelWithDebInfo)"
std::string Describe();

}  // namespace pgherald::build
