#!/usr/bin/env bash
# labctl on a real ZooKeeper-only lab (the ensemble and the standalone server, so that
# LAB_COMPONENTS holds a space), in a directory whose name has a space, with an app password full
# of shell syntax:
#  - lab.env is sourceable: `source lab.env` in bash under `set -u -e` gives every value as written
#    and runs nothing (a `zk-standalone` command on PATH records it if it does);
#  - `check` fails naming a frozen or a killed server, and `restore` brings the lab back to the
#    known state (docs/lab.md, "Between test cases").
# Usage: labctl_test.sh LABCTL
set -u -o pipefail
LABCTL=${1:?usage: labctl_test.sh LABCTL}
work=$(mktemp -d /tmp/pgherald-labctl-test.XXXXXX)
dir="$work/lab dir"
password="it's \"a\" \$(touch $work/ran) \`touch $work/ran\` pw"
fail() { echo "FAIL: $*" >&2; status=1; }
status=0
cleanup() {
  [[ -e $dir/lab.env ]] && "$LABCTL" down --dir "$dir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
chmod 0755 "$work"

mkdir -p "$work/bin"
for c in zk-ensemble zk-standalone; do
  printf '#!/bin/sh\ntouch %q\n' "$work/ran" >"$work/bin/$c"
  chmod +x "$work/bin/$c"
done

PGHERALD_LAB_APP_PASSWORD=$password LABCTL_QUIET=1 \
  "$LABCTL" up --dir "$dir" --zk-ensemble --zk-standalone >"$work/up.out" 2>"$work/up.err" \
  || { cat "$work/up.err" >&2; echo "FAIL: labctl up" >&2; exit 1; }
[[ $(cat "$work/up.out") == "$dir" ]] || fail "labctl up printed '$(cat "$work/up.out")', not the lab dir"

# Sourced by a strict bash with the trap commands first on PATH.
out=$(PATH="$work/bin:$PATH" bash -c '
  set -u -e
  source "$1/lab.env"
  printf "%s\n" "$LAB_DIR" "$LAB_COMPONENTS" "$PG_APP_PASSWORD" "$ZK_CONNECT" "$PG_DATA_1" \
    "$ZK_STANDALONE_PORT"
' bash "$dir") || fail "sourcing lab.env under set -u -e failed"
mapfile -t got <<<"$out"
[[ ${got[0]:-} == "$dir" ]] || fail "LAB_DIR='${got[0]:-}', want '$dir'"
[[ ${got[1]:-} == "zk-ensemble zk-standalone" ]] || fail "LAB_COMPONENTS='${got[1]:-}'"
[[ ${got[2]:-} == "$password" ]] || fail "PG_APP_PASSWORD='${got[2]:-}', want '$password'"
[[ ${got[3]:-} =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] || fail "ZK_CONNECT='${got[3]:-}'"
[[ ${got[4]:-} == "$dir/pg/node1" ]] || fail "PG_DATA_1='${got[4]:-}'"
[[ ${got[5]:-} =~ ^[0-9]+$ ]] || fail "ZK_STANDALONE_PORT='${got[5]:-}'"
if [[ -e $work/ran ]]; then fail "sourcing lab.env ran a command"; fi

# labctl itself reads it back (status loads lab.env) and the lab is in its known state.
"$LABCTL" status --dir "$dir" >"$work/status.out" 2>&1 || fail "labctl status: $(cat "$work/status.out")"
[[ $(grep -c 'zookeeper-[123s] ' "$work/status.out") == 4 ]] || fail "labctl status: $(cat "$work/status.out")"
[[ $("$LABCTL" check --dir "$dir" 2>&1) == 0 ]] || fail "labctl check: $("$LABCTL" check --dir "$dir" 2>&1)"

(( status == 0 )) && echo "lab.env: sourceable, values as written, nothing run"

# zk-leader waits for a leader: with two members frozen there is none (the third has no quorum),
# and it fails after its timeout naming what each member said; once they are back it prints one.
[[ $("$LABCTL" zk-leader --dir "$dir") =~ ^[123]$ ]] || fail "zk-leader on a healthy ensemble"
why=$("$LABCTL" zk-leader --timeout soon --dir "$dir" 2>&1) && fail "zk-leader took --timeout soon"
[[ $why == *"whole seconds"* ]] || fail "zk-leader --timeout soon said: $why"
"$LABCTL" zk-stop 1 --dir "$dir" || fail "zk-stop 1"
"$LABCTL" zk-stop 2 --dir "$dir" || fail "zk-stop 2"
why=$("$LABCTL" zk-leader --timeout 1 --dir "$dir" 2>&1) && fail "zk-leader found a leader without a quorum: $why"
[[ $why == *"within 1 s"*"zk-1: no answer"*"zk-3:"* ]] || fail "zk-leader without a quorum said: $why"
"$LABCTL" zk-cont 1 --dir "$dir" || fail "zk-cont 1"
"$LABCTL" zk-cont 2 --dir "$dir" || fail "zk-cont 2"
leader=$("$LABCTL" zk-leader --dir "$dir" 2>&1) || fail "zk-leader after the quorum came back: $leader"
(( status == 0 )) && echo "zk-leader: waits for a leader, names what it saw when none comes"

# The known state: a frozen member and a killed one are found by `check` and repaired by `restore`.
"$LABCTL" zk-stop 1 --dir "$dir" || fail "zk-stop 1"
why=$("$LABCTL" check --dir "$dir" 2>&1) && fail "check passed with member 1 frozen"
[[ $why == *"zookeeper 1 is frozen"* ]] || fail "check with member 1 frozen said: $why"
why=$("$LABCTL" check --timeout x --dir "$dir" 2>&1) && fail "check accepted --timeout x"
[[ $why == *"--timeout expects whole seconds"* ]] || fail "check --timeout x said: $why"
start=$SECONDS
why=$("$LABCTL" check --timeout 1 --dir "$dir" 2>&1) && fail "check --timeout 1 passed with member 1 frozen"
[[ $why == *"zookeeper 1 is frozen"* ]] || fail "check --timeout 1 with member 1 frozen said: $why"
(( SECONDS - start >= 1 )) || fail "check --timeout 1 gave up before its timeout"
"$LABCTL" zk-kill 2 --dir "$dir" || fail "zk-kill 2"
"$LABCTL" zk-kill s --dir "$dir" || fail "zk-kill s"
restored=$("$LABCTL" restore --dir "$dir" 2>"$work/restore.err") \
  || fail "restore: $(cat "$work/restore.err")"
[[ $restored == 0 ]] || fail "restore printed '$restored' (no PostgreSQL: 0)"
grep -q "zookeeper 1 is frozen: SIGCONT" "$work/restore.err" || fail "restore did not thaw member 1"
grep -q "zookeeper 2 is down: starting it" "$work/restore.err" || fail "restore did not start member 2"
grep -q "zookeeper s is down: starting it" "$work/restore.err" || fail "restore did not start s"
[[ $("$LABCTL" check --dir "$dir" 2>&1) == 0 ]] || fail "check after restore: $("$LABCTL" check --dir "$dir" 2>&1)"
(( status == 0 )) && echo "check and restore: a frozen and two killed servers found and repaired"
exit "$status"
