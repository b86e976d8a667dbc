#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test (unit and
# integration, against real ZooKeeper, PostgreSQL + repmgr + repmgrd, HAProxy and pgbouncer).
# Extra arguments go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh ci
ctest --preset ci "$@"
