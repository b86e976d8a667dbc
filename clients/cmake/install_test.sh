#!/bin/bash
# Checks an installed libpgherald: only the two public headers are installed; the shared library
# has its SONAME and exports the public API only; consumers build and run through
# find_package(pgherald) (shared, C++ and C, and static) and through pkg-config (plain C, shared).
# Needs only the toolchain (no server).
# Usage: install_test.sh BUILD_DIR              install the `library` and `development`
#                                               components from BUILD_DIR into a temporary prefix
#                                               (libpgherald's targets must be built)
#        install_test.sh --installed PREFIX     check a prefix the packages were unpacked into
#                                               (tests/integration/package_test.sh: ROOT/usr)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${1:-}" = "--installed" ]; then
  prefix=${2:?usage: install_test.sh --installed PREFIX}
else
  build=${1:?usage: install_test.sh BUILD_DIR | --installed PREFIX}
  prefix=$tmp/prefix
  for component in library development; do
    cmake --install "$build" --component "$component" --prefix "$prefix" >/dev/null
  done
fi
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
[ "$headers" = "./pgherald/master_watch.h ./pgherald/master_watch_c.h " ] ||
  fail "installed headers are [$headers], want only the two public ones"

echo "== libpgherald.so: SONAME and exported symbols"
so=$(find "$prefix" -name 'libpgherald.so.*.*' | head -1)
[ -n "$so" ] || fail "no libpgherald.so.<version> under $prefix"
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libpgherald.so.0" ] || fail "SONAME is '$soname', want libpgherald.so.0"
[ "$(readlink "$(dirname "$so")/libpgherald.so")" = "libpgherald.so.0" ] ||
  fail "libpgherald.so (the development link) does not point to libpgherald.so.0"
nm -D --defined-only --demangle "$so" | sed 's/^[0-9a-f]* [A-Za-z] //' >"$tmp/exports"
leaked=$(grep -Ev '^(pgherald_[a-z_]+|pgherald::client::.*|(typeinfo|typeinfo name|vtable) for pgherald::client::MasterWatch|PGHERALD_0)(@@PGHERALD_0)?$' "$tmp/exports" || true)
[ -z "$leaked" ] || fail "libpgherald.so exports more than its public API:
$(echo "$leaked" | head -20)"
for symbol in pgherald_watch_start pgherald_master_conninfo \
  'pgherald::client::MasterWatch::Start(pgherald::client::MasterWatchOptions const&, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*)'; do
  grep -qxF "$symbol@@PGHERALD_0" "$tmp/exports" || fail "libpgherald.so does not export $symbol"
done
echo "$(wc -l <"$tmp/exports") symbols, all public"

echo "== find_package(pgherald)"
cmake -S "$here/install_test" -B "$tmp/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
# (ldd's output is captured first: with pipefail, `ldd | grep -q` fails when grep exits early.)
for exe in consumer consumer_c; do
  libs=$(ldd "$tmp/consumer/$exe")
  [[ "$libs" == *"libpgherald.so.0 => $prefix/"* ]] ||
    fail "$exe is not linked with the installed shared libpgherald: $libs"
  "$tmp/consumer/$exe"
done
libs=$(ldd "$tmp/consumer/consumer_static")
[[ "$libs" != *libpgherald* ]] || fail "consumer_static links libpgherald.so: $libs"
"$tmp/consumer/consumer_static"

echo "== pkg-config pgherald"
pc=$(dirname "$(find "$prefix" -name pgherald.pc | head -1)")
flags=$(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs pgherald)
static_libs=$(PKG_CONFIG_PATH=$pc pkg-config --static --libs pgherald)
[[ "$static_libs" == *-lzookeeper_mt* ]] || fail "pkg-config --static lacks -lzookeeper_mt: $static_libs"
# shellcheck disable=SC2086 # the flags are words
cc -std=c99 -Wall -Werror "$here/install_test/consumer_c.c" $flags -o "$tmp/consumer_pc"
LD_LIBRARY_PATH=$(dirname "$so") "$tmp/consumer_pc"
libs=$(LD_LIBRARY_PATH=$(dirname "$so") ldd "$tmp/consumer_pc")
[[ "$libs" == *"libpgherald.so.0 => $prefix/"* ]] ||
  fail "the pkg-config consumer is not linked with the installed shared libpgherald: $libs"
echo "PASS"
