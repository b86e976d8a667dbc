#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, brings up the whole local stack
# (ZooKeeper ensemble, 3-node PostgreSQL 15 + repmgr 5.3 with repmgrd, HAProxy, pgbouncer, a
# `pgherald poller` per node, two `pgherald orchestrator`s, `pgherald watch` driving HAProxy and
# pgbouncer), shows `pgherald status`, starts clients writing through both proxies, kills -9 the
# primary and shows the clients rerouted with the measured times. The stack is left running; the
# last line printed is the command that tears it down. The engine is tests/e2e/demo_stack.cc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
scripts/build.sh ci >/dev/null
export PGHERALD_BIN=$root/build/ci/app/pgherald
export PGHERALD_LABCTL=$root/tests/lab/labctl
exec "$root/build/ci/tests/e2e/e2e_demo_stack" demo
