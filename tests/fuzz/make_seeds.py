#!/usr/bin/env python3
"""Writes the committed seed corpus of tests/fuzz (run from anywhere; rewrites the seeds it owns).

Valid payloads taken from the unit tests plus hostile ones: deep nesting (1 MiB and 200 KB of
'['), huge numbers, newline/';'/space injections in node and host, control characters, invalid
UTF-8, names like zz-x. Seeds that still fail until a fix elsewhere is merged are moved to
pending/<target>/ by hand (see pending/README.md); this script writes into corpus/ only the ones
not already in pending/ or crashes/.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if target == "config":
        # fuzz_config.cc: the first byte picks the parser (0 orchestrator, 1 poller, 2 watch).
        picks = {"orchestrator": b"\x00", "poller": b"\x01", "watch": b"\x02",
                 "template_dev_zero": b"\x02"}
        if name in picks:
            data = picks[name] + data
        else:
            for i, suffix in enumerate(("orch", "poller", "watch")):
                write_raw(target, name + "_" + suffix, bytes([i]) + data)
            return
    write_raw(target, name, data)


def write_raw(target, name, data):
    for other in ("pending", "crashes"):
        if os.path.exists(os.path.join(HERE, other, target, name)):
            return
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


DEEP_1M = "[" * (1 << 20)
DEEP_200K = "[" * (100 * 1024) + "]" * (100 * 1024)
DEEP_20K = "[" * (10 * 1024) + "]" * (10 * 1024)

MASTER_OK = {"format": 1, "state": "ok", "epoch": 7, "node": "pg2", "host": "10.0.0.2",
             "port": 5433, "timeline": 3, "lsn": "16/B374D848", "verified_at": 1764900000000,
             "decided_by": "orch-1", "reason": "promoted"}
MASTER_NONE = {"format": 1, "state": "no-master", "epoch": 0}

OBSERVATION = {"format": 1, "node": "db2", "node_id": 2, "host": "10.0.0.2", "port": 5432,
               "reachable": True, "error": "", "in_recovery": True, "timeline": 2,
               "receive_lsn": "0/3000060", "replay_lsn": "0/3000060",
               "system_identifier": "7301234567890123456", "upstream_node": "db1",
               "sender_host": "10.0.0.1", "sender_port": 5432, "promoted_at": 1764900000000,
               "repmgr_nodes": [{"node_id": 1, "name": "db1", "type": "primary", "active": True},
                                {"node_id": 2, "name": "db2", "type": "standby", "active": True,
                                 "upstream_node_id": 1}],
               "repmgrd_running": True, "fencing": "none", "seq": 42,
               "observed_at": 1764900000000, "poller_version": "0.1.0"}

PROBE = {"format": 1, "node": "db1", "host": "10.0.0.1", "port": 5432, "reachable": True,
         "error": "", "in_recovery": False, "timeline": 3, "lsn": "0/5000000",
         "system_identifier": "7301234567890123456", "write_check": "passed", "write_error": "",
         "latency_us": 1200, "taken_at": 1764900000000}

HISTORY = {"format": 1, "cluster": "main", "action": "publish", "chosen": "db2", "epoch": 8,
           "decided_at": 1764900000000, "decided_by": "orch-1", "previous": MASTER_OK,
           "master": dict(MASTER_OK, epoch=8, node="db2"),
           "reasons": [{"code": "promoted", "node": "db2", "text": "db2 left recovery"}],
           "stale_primaries": ["db1"],
           "evidence": [{"node": "db2", "observed": True, "probed": True, "reachable": True,
                         "writable": True, "timeline": 3, "lsn": "0/5000000",
                         "system_identifier": "7301234567890123456", "write_check": "passed",
                         "followers": 1, "fencing": "none", "role": "master", "notes": ["x"],
                         "promoted_at": 1764900000000}],
           "data_loss": {"old_master": "db1", "old_master_last_lsn": "0/5000100",
                         "new_master": "db2", "new_master_lsn": "0/5000000", "gap_bytes": 256}}

EVENT = {"format": 1, "ts_us": 1764900000123456, "timestamp": "2026-11-22 03:54:13.958093+00",
         "node_id": 2, "event": "standby_promote", "successful": True,
         "details": "server \"db2\" (ID: 2) was successfully promoted to primary",
         "source": "table"}

NOTIFY = {"node_id": 2, "event": "repmgrd_failover_promote", "successful": True,
          "timestamp": "2026-11-22 03:54:13.958093+00", "details": "node 2 promoted"}

INJECTIONS = {
    "newline": "10.0.0.2\n    server evil 6.6.6.6:5432",
    "semicolon": "10.0.0.2;KILL app",
    "space": "10.0.0.2 port=1 dbname=evil",
    "control": "10.0.0.2\x1b[2J\x07",
    "zzx": "zz-x",
}


def payload_seeds(target, good, extra_good=()):
    write(target, "valid", dumps(good))
    for i, g in enumerate(extra_good):
        write(target, "valid_%d" % i, dumps(g))
    write(target, "empty", "")
    write(target, "not_json", "{\"format\":1,")
    write(target, "format_2", dumps(dict(good, format=2)))
    write(target, "huge_number", dumps(good).replace('"format":1', '"format":4294967297'))
    write(target, "invalid_utf8", dumps(good)[:-1].encode() + b',"x":"\xff\xfe\xc0\xaf"}')
    for key in ("node", "host"):
        if key in good:
            for name, value in INJECTIONS.items():
                write(target, "inject_%s_%s" % (key, name), dumps(dict(good, **{key: value})))
    for key in ("port", "timeline", "epoch", "node_id", "seq"):
        if key in good:
            write(target, "big_%s" % key, dumps(good).replace('"%s":%s' % (key, json.dumps(good[key])),
                                                             '"%s":4294967297' % key, 1))
            write(target, "neg_%s" % key, dumps(good).replace('"%s":%s' % (key, json.dumps(good[key])),
                                                             '"%s":-1' % key, 1))
    write(target, "nested_field_20k", dumps(good)[:-1] + ',"node":' + DEEP_20K + "}")


payload_seeds("master_record", MASTER_OK, [MASTER_NONE])
write("master_record", "deep_1m", DEEP_1M)
write("master_record", "deep_200k_field", '{"format":1,"state":' + DEEP_200K + "}")
payload_seeds("node_observation", OBSERVATION)
write("node_observation", "deep_200k_field", '{"format":1,"repmgr_nodes":' + DEEP_200K + "}")
payload_seeds("probe", PROBE)
payload_seeds("history_entry", HISTORY)
write("history_entry", "deep_200k_field", '{"format":1,"cluster":"c","evidence":' + DEEP_200K + "}")

payload_seeds("repmgr_event", EVENT)
write("repmgr_event", "lsn", "16/B374D848")
write("repmgr_event", "timestamp_offset", "2026-11-22T03:54:13+05:30")
write("repmgr_event", "event_injection", dumps(dict(EVENT, event="../x/\n;zz-x")))
write("repmgr_event", "ts_huge", dumps(dict(EVENT, ts_us=18446744073709551615)))

payload_seeds("notify", NOTIFY)
write("notify", "args", "2\nstandby_promote\n1\n2026-11-22 03:54:13.958093+00\npromoted")
write("notify", "args_bad_id", "4294967297\nstandby_promote\n1\nnow")
write("notify", "node_id_huge", dumps(dict(NOTIFY, node_id=4294967297)))

write("control_identity", "control_paused",
      dumps({"format": 1, "paused": True, "reason": "upgrade", "changed_by": "ops",
             "changed_at": 1764900000000}))
write("control_identity", "identity", dumps({"format": 1, "system_identifier": "7301234567890123456"}))
write("control_identity", "identity_injection",
      dumps({"format": 1, "system_identifier": "73012\n;zz-x \x01"}))
write("control_identity", "control_huge", dumps({"format": 1, "paused": True, "changed_at": 2**64}))
write("control_identity", "deep_20k", '{"format":1,"paused":' + DEEP_20K + "}")
write("control_identity", "invalid_utf8", b'{"format":1,"reason":"\xff\xfe"}')

payload_seeds("route_render", MASTER_OK, [MASTER_NONE])

write("template", "haproxy", open(os.path.join(HERE, "..", "..", "haproxy", "examples",
                                               "haproxy.cfg.tmpl")).read())
write("template", "vars", "server {{ host }}:{{port}} {{x}}\n\0x=a\nhost=h\x01evil")
write("template", "unclosed", "a {{ host\nb {{bad name}} {{}} {{hots}}\n")
write("template", "braces", "{{{{host}}}}}}{{")

write("haproxy_answers", "set_addr", "\x00IP changed from '10.0.0.1' to '10.0.0.2' by 'stats socket command'\n")
write("haproxy_answers", "batch",
      "\x02IP changed from '10.0.0.1' to '10.0.0.2'\n\n\n\nName: HAProxy\nPid: 1234\nStopping: 0\n")
write("haproxy_answers", "show_proc",
      "\x00#<PID>          <type>          <reloads>       <uptime>        <version>\n"
      "1200            master          1               0d00h01m02s     2.6.12\n"
      "# workers\n1300            worker          0               0d00h00m30s     2.6.12\n"
      "# old workers\n1250            worker          1               0d00h01m02s     2.6.12\n")
write("haproxy_answers", "show_sess",
      "\x00" "0x55d5e5c0e5f0: proto=tcpv4 src=127.0.0.1:40000 fe=pg_write be=pg_primary srv=primary ts=00\n"
      "0x55;shutdown: proto=tcpv4 be=pg_primary srv=primary \n"
      "no colon be=pg_primary srv=primary x\n")
write("haproxy_answers", "cut_short", "\x03\n\nPid")

write("pgbouncer_show", "show_databases",
      "name=app\thost=10.0.0.1\tport=5432\tpaused=0\n"
      "name=pgbouncer\thost=\tport=6432\tpaused=0\n"
      "name=postgres\thost=10.0.0.1\tport=5432\tpaused=1\n")
write("pgbouncer_show", "zzx", "name=zz-x\thost=10.0.0.2\tport=5433\n")
write("pgbouncer_show", "inject", "name=a; SHUTDOWN\thost=x\nname=b\"c\nname=\n")

write("config", "orchestrator",
      "orchestrator:\n  id: orch-1\nzookeeper:\n  connect: 127.0.0.1:2181\n"
      "clusters:\n  - name: main\n    nodes:\n      - name: db1\n        host: 127.0.0.1\n"
      "        port: 5432\npostgres:\n  user: pgherald\n  password: Zq7SecretValue42\n")
write("config", "poller",
      "poller:\n  cluster: main\n  node: db1\n  host: 127.0.0.1\n  port: 5432\n"
      "zookeeper:\n  connect: 127.0.0.1:2181\npostgres:\n  host: /run/postgresql\n  user: postgres\n")
write("config", "watch", open(os.path.join(HERE, "..", "..", "haproxy", "examples", "watch.yaml")).read())
write("config", "anchors", "a: &a [*a, *a]\nb: {c: &d {e: *d}}\n")
write("config", "deep", "x: " + "[" * 10000 + "]" * 10000)
write("config", "tabs_ctl", "poller:\n\tcluster: \x01\x02\nport: 4294967297\n")
write("config", "template_dev_zero",
      "zookeeper:\n  connect: 127.0.0.1:2181\nwatch:\n  clusters:\n    main:\n      sinks:\n"
      "        - type: haproxy\n          admin_socket: /tmp/a.sock\n          master_socket: /tmp/m.sock\n"
      "          backend: b\n          server: s\n          config_file: /tmp/x.cfg\n"
      "          template: /dev/zero\n")

write("redact", "conninfo", "host=db1 user=app password=hunter2 dbname=app")
write("redact", "uri", "postgresql://app:hunter2@db1:5432/app")
write("redact", "json", '{"password": "hunter2", "user": "app"}')
write("redact", "quoted", "password='hun ter\\' 2' PASSWORD = x Password:\"y\"")
write("redact", "tricky", "passwordpassword=password= password='\\")
