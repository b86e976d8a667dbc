#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, brings up a local stack (ZooKeeper
# ensemble, 3-node PostgreSQL 15 + repmgr 5.3 cluster with repmgrd, HAProxy, pgbouncer), shows it,
# kills the primary and shows repmgrd's failover. The stack is left running; the last line printed
# is the command that tears it down.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
scripts/build.sh ci >/dev/null
pgherald=$root/build/ci/app/pgherald
labctl=$root/tests/lab/labctl

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ms_now() { date +%s%3N; }

step "Bringing up the lab (ZooKeeper x3, PostgreSQL x3 with repmgr/repmgrd, HAProxy, pgbouncer)"
t0=$(ms_now)
dir=$("$labctl" up --zk-ensemble --postgres --haproxy --pgbouncer)
echo "lab up in $(( $(ms_now) - t0 )) ms: $dir"
# lab.env is KEY=VALUE lines, not shell: read it without evaluating it.
while IFS='=' read -r key value; do
  [[ -n "$key" && "$key" != \#* ]] && export "$key=$value"
done < "$dir/lab.env"
trap 'echo; echo "The stack is still running. Tear it down with: $labctl down --dir $dir"' EXIT

step "The stack"
"$labctl" status --dir "$dir"

q() { # q PORT SQL: one query as the superuser
  psql -X -q -A -t -h 127.0.0.1 -p "$1" -U "$PG_SUPERUSER" -d postgres -c "$2"
}
primary=$("$labctl" pg-wait-primary --dir "$dir" --timeout 10)
pport_var=PG_PORT_$primary
step "Primary is node$primary (port ${!pport_var}); repmgr's view:"
runuser_prefix=()
[[ $(id -u) -eq 0 ]] && runuser_prefix=(runuser -u postgres --)
(cd /tmp && "${runuser_prefix[@]}" /usr/lib/postgresql/15/bin/repmgr -f "$REPMGR_CONF_1" cluster show) || true

step "Through HAProxy (port $HAPROXY_PORT) and pgbouncer (port $PGBOUNCER_PORT):"
echo "haproxy   -> server port $(q "$HAPROXY_PORT" 'select inet_server_port()'), in recovery: $(q "$HAPROXY_PORT" 'select pg_is_in_recovery()')"
echo "pgbouncer -> server port $(q "$PGBOUNCER_PORT" 'select inet_server_port()'), in recovery: $(q "$PGBOUNCER_PORT" 'select pg_is_in_recovery()')"

step "kill -9 of the primary (node$primary); waiting for repmgrd to promote a standby"
t0=$(ms_now)
"$labctl" pg-kill "$primary" --dir "$dir"
new=$("$labctl" pg-wait-primary --dir "$dir" --not "$primary" --timeout 30)
echo "node$new promoted by repmgrd $(( $(ms_now) - t0 )) ms after the kill"
nport_var=PG_PORT_$new
echo "node$new (port ${!nport_var}) timeline: $(q "${!nport_var}" 'select substr(pg_walfile_name(pg_current_wal_lsn()),1,8)')"

step "What the proxies do now"
echo "pgherald's orchestrator and 'pgherald watch' are not in this build yet, so nothing reroutes"
echo "HAProxy and pgbouncer: they still point at the dead node$primary. This is the gap pgherald closes."
"$pgherald" --help | sed -n '6,12p'
