#!/bin/bash
# Installs libpgherald from BUILD_DIR into a temporary prefix, checks that only the public headers
# are installed, then builds and runs consumers through find_package(pgherald) and through
# pkg-config (plain C). Needs only the toolchain (no server).
# Usage: install_test.sh BUILD_DIR   (libpgherald, pgherald_zk and pgherald_model must be built)
set -euo pipefail
build=${1:?usage: install_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --component pgherald_client --prefix "$prefix" >/dev/null

headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
if [ "$headers" != "./pgherald/master_watch.h ./pgherald/master_watch_c.h " ]; then
  echo "FAIL: installed headers are [$headers], want only the two public ones" >&2
  exit 1
fi

echo "== find_package(pgherald)"
cmake -S "$here/install_test" -B "$tmp/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer"
"$tmp/consumer/consumer_c"

echo "== pkg-config pgherald"
pc=$(dirname "$(find "$prefix" -name pgherald.pc | head -1)")
flags=$(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs pgherald)
cc -std=c99 -Wall -Werror "$here/install_test/consumer_c.c" $flags -o "$tmp/consumer_pc"
"$tmp/consumer_pc"
echo "PASS"
