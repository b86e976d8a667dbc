#!/usr/bin/env bash
# Configures and builds pgherald with a CMake preset (default: ci). Usage: scripts/build.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-ci}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
