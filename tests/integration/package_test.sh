#!/bin/bash
# The Debian packages, end to end (issue 16): builds them with CPack from BUILD_DIR, checks their
# control data and files, runs lintian (clean: every remaining tag is overridden with a reason in
# packaging/lintian/), unpacks them into a throwaway root and, in a private mount namespace where
# that root is laid over /usr, /lib and /etc (the host is never changed), checks the installed
# program (--version, --check of every shipped configuration), the unit files
# (systemd-analyze verify) and the maintainer scripts (sh -n); then builds outside consumers of
# the unpacked library through find_package(pgherald) and pkg-config
# (clients/cmake/install_test.sh --installed).
# Usage: package_test.sh BUILD_DIR   (configured with CMAKE_INSTALL_PREFIX=/usr and built; root)
set -euo pipefail
build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/pgherald-package-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
for tool in cpack dpkg-deb dpkg-shlibdeps lintian systemd-analyze unshare man; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/install-deps.sh installs it)"
done
[ "$(id -u)" = 0 ] || fail "needs root (a private mount namespace)"
# A build directory configured before the presets set the prefix keeps /usr/local in its cache,
# and every path check below would fail without saying why.
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[ "$prefix" = /usr ] || fail "$build is configured with CMAKE_INSTALL_PREFIX=$prefix, the packages need /usr: reconfigure it (cmake --preset ci --fresh, or -DCMAKE_INSTALL_PREFIX=/usr)"

echo "== cpack"
cpack --config "$build/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
version=$(sed -n 's/^project(pgherald VERSION \([0-9.]*\).*/\1/p' "$source_dir/CMakeLists.txt")
arch=$(dpkg --print-architecture)
program=$tmp/out/pgherald_${version}_$arch.deb
library=$tmp/out/libpgherald0_${version}_$arch.deb
dev=$tmp/out/libpgherald-dev_${version}_$arch.deb
for deb in "$program" "$library" "$dev"; do [ -f "$deb" ] || fail "no $(basename "$deb")"; done

echo "== control data"
field() { dpkg-deb -f "$1" "$2"; }
depends=$(field "$program" Depends)
for want in adduser libzookeeper-mt2 libpq5 libyaml-cpp0.7 libpocofoundation80 libspdlog1.10; do
  [[ "$depends" == *"$want"* ]] || fail "pgherald Depends lacks $want: $depends"
done
[[ "$(field "$library" Depends)" == *libzookeeper-mt2* ]] || fail "libpgherald0 Depends: $(field "$library" Depends)"
[ "$(field "$dev" Depends)" = "libpgherald0 (= $version), libzookeeper-mt-dev" ] ||
  fail "libpgherald-dev Depends: $(field "$dev" Depends)"
dpkg-deb -e "$program" "$tmp/control"
dpkg-deb -e "$library" "$tmp/control-lib"
# (Outputs are captured before they are matched: with pipefail, `cmd | grep -q` fails whenever
# grep exits before cmd has written everything.)
conffiles=$(sort "$tmp/control/conffiles" | tr '\n' ' ')
[ "$conffiles" = "/etc/pgherald/haproxy.cfg.tmpl /etc/pgherald/orchestrator.yaml /etc/pgherald/poller.yaml /etc/pgherald/watch.yaml " ] ||
  fail "conffiles: $conffiles"
grep -qx "libpgherald 0 libpgherald0 (>= $version)" "$tmp/control-lib/shlibs" || fail "shlibs: $(cat "$tmp/control-lib/shlibs")"
grep -qx "activate-noawait ldconfig" "$tmp/control-lib/triggers" || fail "no ldconfig trigger"
for script in "$tmp"/control/postinst "$tmp"/control/prerm "$tmp"/control/postrm "$tmp"/control-lib/postinst; do
  sh -n "$script" || fail "$script does not parse"
done
grep -q "adduser --system --group" "$tmp/control/postinst" || fail "postinst creates no system user"

echo "== lintian"
lintian --info --display-info --pedantic "$program" "$library" "$dev" >"$tmp/lintian.log" 2>&1 || true
if grep -E '^[EWIPX]: ' "$tmp/lintian.log"; then
  fail "lintian tags above (fix them, or override with a reason in packaging/lintian/)"
fi

echo "== files"
root=$tmp/root
for deb in "$program" "$library" "$dev"; do dpkg-deb -x "$deb" "$root"; done
libdir=$(cd "$root/usr" && dirname "$(find lib -name 'libpgherald.so.0')")
for f in usr/bin/pgherald usr/share/man/man1/pgherald.1.gz usr/share/doc/pgherald/install.md \
  usr/share/doc/pgherald/copyright usr/share/doc/libpgherald0/copyright \
  usr/share/doc/libpgherald-dev/client-library.md \
  lib/systemd/system/pgherald-poller@.service lib/systemd/system/pgherald-orchestrator.service \
  lib/systemd/system/pgherald-watch.service "usr/$libdir/libpgherald.so.$version" \
  "usr/$libdir/libpgherald.a" "usr/$libdir/pkgconfig/pgherald.pc" \
  "usr/$libdir/cmake/pgherald/pgherald-config.cmake" usr/include/pgherald/master_watch.h; do
  [ -e "$root/$f" ] || fail "$f is not in the packages"
done
[[ "$libdir" == lib/*-linux-gnu ]] || fail "the library is in usr/$libdir, not a multiarch directory"
[ -z "$(find "$root" -name '*.o')" ] || fail "object files packaged"
# Test doubles (tests/support: the in-memory FakeZk) are never part of a product target.
[ -z "$(find "$root" -iname '*fake*')" ] || fail "a test double is packaged: $(find "$root" -iname '*fake*')"
for archive in "$root/usr/$libdir"/*.a; do
  members=$(ar t "$archive")
  [[ "$members" != *fake* ]] || fail "$(basename "$archive") holds a test double: $members"
  [[ "$(nm -C "$archive")" != *FakeZk* ]] || fail "$(basename "$archive") defines FakeZk"
done
[[ "$(readelf -S "$root/usr/bin/pgherald")" != *debug_info* ]] || fail "usr/bin/pgherald is not stripped"

echo "== installed program, configurations and units (private mount namespace)"
# Overlays make the unpacked files appear at their real paths for this namespace only.
cat >"$tmp/inside.sh" <<EOF
set -euo pipefail
mount -t overlay overlay -o lowerdir=$root/usr:/usr /usr
mount -t overlay overlay -o lowerdir=$root/etc:/etc /etc
mount -t overlay overlay -o lowerdir=$root/lib/systemd:/usr/lib/systemd /usr/lib/systemd
/usr/bin/pgherald --version
/usr/bin/pgherald version
for daemon in poller orchestrator watch; do
  /usr/bin/pgherald \$daemon --check --config /etc/pgherald/\$daemon.yaml
done
man -w pgherald
cd /lib/systemd/system
# verify warns (unknown keys, bad values, a missing binary or man page) and may still exit 0.
out=\$(systemd-analyze verify pgherald-orchestrator.service pgherald-watch.service \
  pgherald-poller@poller.service 2>&1) || { echo "\$out"; exit 1; }
[ -z "\$out" ] || { echo "systemd-analyze verify: \$out"; exit 1; }
echo "systemd-analyze verify: clean"
EOF
unshare -m --propagation private bash "$tmp/inside.sh" >"$tmp/inside.log" 2>&1 ||
  { cat "$tmp/inside.log" >&2; fail "the installed program, configurations or units failed"; }
cat "$tmp/inside.log"
grep -q "^pgherald $version" "$tmp/inside.log" || fail "--version does not say pgherald $version"

echo "== the unpacked library from outside projects"
"$source_dir/clients/cmake/install_test.sh" --installed "$root/usr"
echo "PASS"
