#!/usr/bin/env bash
# Installs, from Debian 12's packages, everything pgherald needs to build, test and run its demo.
# Idempotent and quiet when everything is already there.
set -euo pipefail

PACKAGES=(
  # build
  g++ cmake ninja-build ccache pkg-config
  libzookeeper-mt-dev libpq-dev libpoco-dev libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  # fuzzing (tests/fuzz, preset fuzz): clang 14 and its libFuzzer/sanitizer runtimes
  clang libclang-rt-14-dev
  # the real stack the lab runs
  postgresql-15 postgresql-15-repmgr postgresql-client-15 zookeeper default-jre-headless
  haproxy pgbouncer
  # tools the lab uses
  netcat-openbsd iproute2 procps util-linux chromium
  # the Debian packages and their test (tests/integration/package_test.sh): dpkg-shlibdeps,
  # lintian, systemd-analyze, man (the units' Documentation=), binutils (readelf, nm, strip)
  dpkg-dev lintian systemd man-db binutils
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root or install sudo" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q >/dev/null
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts these services on install on a normal host; the lab never uses their default
# ports, so they may keep running.
