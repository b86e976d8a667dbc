#!/usr/bin/env bash
# Builds the libFuzzer harnesses (preset `fuzz`: clang, ASan+UBSan) and fuzzes one target or all.
#
#   tests/fuzz/run.sh TARGET|all [libFuzzer flags...]     e.g.  run.sh notify -runs=200000
#                                                                run.sh all -max_total_time=60
#
# TARGET is a fuzz_<TARGET>.cc of this folder. Each run starts from the committed corpus
# (corpus/<target>/, plus crashes/<target>/ when present, read only) and
# writes what it discovers to build/fuzz/corpus/<target>/ (not committed: minimize with -merge=1
# before adding anything to corpus/). Findings land in build/fuzz/findings/<target>/; a finding
# that is a real bug is minimized (-minimize_crash=1) and committed under crashes/<target>/ so
# the default build's replay keeps it as a regression test.
# Default flags: -runs=200000 -max_len=8192 -timeout=10 -rss_limit_mb=2048, and the
# target's dictionary (<target>.dict or json.dict) when there is one. Later flags win.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build/fuzz"

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
what=$1; shift

mapfile -t all < <(cd "$here" && ls fuzz_*.cc | grep -v '^fuzz_util.cc$' | sed 's/^fuzz_//; s/\.cc$//')
if [[ "$what" == all ]]; then
  targets=("${all[@]}")
elif [[ "$what" != util && -f "$here/fuzz_$what.cc" ]]; then
  targets=("$what")
else
  echo "run.sh: unknown target \"$what\"; targets: ${all[*]} (or all)" >&2
  exit 2
fi

if ! command -v clang++ >/dev/null; then
  echo "run.sh: clang++ not found: run scripts/install-deps.sh (clang, libclang-rt-14-dev)" >&2
  exit 1
fi
cd "$root"
# PGHERALD_FUZZ_SKIP_BUILD=1 runs what is built (two run.sh at once must not both run ninja).
if [[ "${PGHERALD_FUZZ_SKIP_BUILD:-}" != 1 ]]; then
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz --target "${targets[@]/#/fuzz_}"
fi

status=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  findings="$build/findings/$t"
  mkdir -p "$work" "$findings"
  seeds=("$here/corpus/$t")
  for extra in crashes; do
    [[ -d "$here/$extra/$t" ]] && seeds+=("$here/$extra/$t")
  done
  dict=()
  if [[ -f "$here/$t.dict" ]]; then
    dict=(-dict="$here/$t.dict")
  elif [[ -f "$here/json.dict" && "$t" != haproxy_answers && "$t" != pgbouncer_show &&
          "$t" != config && "$t" != redact && "$t" != template ]]; then
    dict=(-dict="$here/json.dict")
  fi
  # Inputs up to 8 KiB: enough for every payload shape, and fast (with room for the 1 MiB seed,
  # master_record ran at 40 exec/s instead of ~1000). The replay runs the big seeds in full.
  max_len=8192
  echo "== fuzz_$t"
  if ! "$build/tests/fuzz/fuzz_$t" "${dict[@]}" -runs=200000 -max_len="$max_len" -timeout=10 \
       -rss_limit_mb=2048 -artifact_prefix="$findings/" -print_final_stats=1 "$@" \
       "$work" "${seeds[@]}"; then
    echo "run.sh: fuzz_$t found a failure: see $findings/" >&2
    status=1
  fi
done
exit $status
