#!/usr/bin/env python3
"""The medians of a scripts/compare-etcd-writes.sh run, as Markdown tables.

usage: scripts/compare-etcd-writes.py RUNS.jsonl

Each figure is the median over the rounds; each ratio is the median of the
ratios within a round (the two sides measured minutes apart at most, so a
noisy neighbour weighs on both). "Where the time goes" turns each run's
sampled window into CPU cores (CPU seconds per second) of the etcd members,
the server(s) measured, the load tool and everything else on the machine,
and into revisions per second. Failed runs are listed, not counted.
"""
import json
import re
import statistics
import sys

SYNC = re.compile(r"ops/s=([\d.]+) p50=([\d.]+)ms p90=[\d.]+ms p99=([\d.]+)ms .*verify=OK")
LIST = re.compile(r"req/s=([\d.]+) .*p50=([\d.]+)ms p90=[\d.]+ms p99=([\d.]+)ms .*verify=OK")


def usage(window, ops):
    """CPU cores per group over a sampled window, and rates per op."""
    if not window:
        return None
    start, end, hz = window["start"], window["end"], window["hz"]
    wall = end["t"] - start["t"]

    def cores(group):
        a, b = start[group], end[group]
        if None in a or None in b:
            return None
        return (sum(b) - sum(a)) / hz / wall

    etcd = [(b - a) / hz / wall for a, b in zip(start["etcd"], end["etcd"])]
    busy = (end["machine"][0] - start["machine"][0]) / hz / wall
    idle = (end["machine"][1] - start["machine"][1]) / hz / wall
    servers, load = cores("servers"), cores("load")
    revisions = None
    if start["revision"] is not None and end["revision"] is not None:
        revisions = (end["revision"] - start["revision"]) / wall
    # The member that fsynced most (the leader fsyncs every raft round).
    fsync_rate = fsync_ms = per_fsync = ranges = None
    pairs = [(a, b) for a, b in zip(start.get("fsyncs", []), end.get("fsyncs", []))
             if a is not None and b is not None]
    syncs = [(b[0] - a[0], b[1] - a[1]) for a, b in pairs]
    if pairs and all(len(a) > 2 for a, _ in pairs):
        ranges = sum(b[2] - a[2] for a, b in pairs) / wall
    if syncs:
        count, seconds = max(syncs)
        fsync_rate = count / wall
        fsync_ms = seconds / count * 1e3 if count else None
        per_fsync = revisions / fsync_rate if revisions is not None and fsync_rate else None
    return {
        "fsyncs": fsync_rate,
        "fsync_ms": fsync_ms,
        "per_fsync": per_fsync,
        "ranges": ranges,
        "per_range": ops / ranges if ops and ranges else None,
        "etcd": etcd,
        "servers": servers,
        "load": load,
        "others": busy - sum(etcd) - (servers or 0) - (load or 0),
        "idle": idle,
        "revisions": revisions,
        "server_us": servers / ops * 1e6 if servers is not None and ops else None,
        "etcd_us": sum(etcd) / ops * 1e6 if ops else None,
    }


def figures(row):
    """(key, figures) of one record, or None if it failed or is a note."""
    load = row.get("load")
    if "error" in row or row.get("ok") is False:
        return None
    if load == "etcd-ceiling":
        key = ("ceiling", row["callers"])
        f = {"rate": row["txns_per_second"], "p50": row["p50_ms"], "p99": row["p99_ms"]}
    elif load == "contractbench-sync":
        parts = [SYNC.search(p) for p in row["parts"]]
        if not all(parts):
            return None
        key = ("sync", row["sessions"])
        f = {
            "rate": sum(float(p.group(1)) for p in parts),
            "p50": statistics.median(float(p.group(2)) for p in parts),
            "p99": max(float(p.group(3)) for p in parts),
        }
    elif load == "h2load-list":
        m = LIST.search(row["result"])
        if not m:
            return None
        key = ("list", 64)
        f = {"rate": float(m.group(1)), "p50": float(m.group(2)), "p99": float(m.group(3))}
    elif load == "watch":
        key, f = ("watch", 0), {"rate": row["pods_per_second"]}
    elif load == "fanout":
        key, f = ("fanout", 0), {"p50": row["send_p50_ms"], "p99": row["send_p99_ms"]}
    elif load == "watchers":
        key, f = ("watchers", 0), {"bytes": row["bytes_per_watcher"], "count": row["watchers"]}
    else:
        return None
    f["use"] = usage(row.get("window"), f.get("rate"))
    return (row["build"], row["setup"]) + key, f


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    cells = {}  # (build, setup, load, n) -> {round: [figures]}
    failed = []
    for row in rows:
        if row.get("load") == "note":
            continue
        got = figures(row)
        if got is None:
            failed.append(row)
            continue
        key, f = got
        cells.setdefault(key, {}).setdefault(row["round"], []).append(f)

    def per_round(key, field):
        """{round: median of the round's values}"""
        out = {}
        for rnd, fs in cells.get(key, {}).items():
            values = [f[field] for f in fs if f.get(field) is not None]
            if values:
                out[rnd] = statistics.median(values)
        return out

    def med(key, field):
        values = list(per_round(key, field).values())
        return statistics.median(values) if values else None

    def ratio(a, b, field="rate"):
        x, y = per_round(a, field), per_round(b, field)
        values = [x[r] / y[r] for r in x if r in y and y[r]]
        return statistics.median(values) if values else None

    def num(v, digits=0):
        return "" if v is None else f"{v:,.{digits}f}"

    def rate(key):
        v = med(key, "rate")
        if v is None:
            return ""
        lat = ""
        if med(key, "p50") is not None:
            lat = f" (p50 {num(med(key, 'p50'), 2)}, p99 {num(med(key, 'p99'), 2)} ms)"
        return num(v) + lat

    def x(v):
        return "" if v is None else f"{v:.2f}x"

    def rounds(key):
        return len(per_round(key, "rate") or per_round(key, "p50") or per_round(key, "bytes"))

    notes = [r for r in rows if r.get("load") == "note"]
    for n in notes:
        print(f"<!-- round {n['round']}: {n['text']}; etcd leader m{n['etcd_leader']}; {n['uptime'].strip()} -->")
    print()

    ceiling = ("after", "etcd", "ceiling", 64)
    print("| figure (median of rounds) | before | after | after / before | after / etcd's ceiling (as many callers) |")
    print("|---|---|---|---|---|")
    for callers in (1, 64):
        key = ("after", "etcd", "ceiling", callers)
        print(f"| etcd's own ceiling, {callers} caller{'s' if callers > 1 else ''}, txns/s | | {rate(key)} | | |")
    sync_rows = [
        ("SyncPods ops/s, 1 session, one etcd replica", "etcd-x1", 1),
        ("SyncPods ops/s, 64 sessions, one etcd replica", "etcd-x1", 64),
        ("SyncPods ops/s, 64 sessions over three etcd replicas", "etcd-x3", 64),
        ("SyncPods ops/s, 1 session, embedded", "embedded", 1),
        ("SyncPods ops/s, 64 sessions, embedded", "embedded", 64),
    ]
    for name, setup, n in sync_rows:
        b, a = ("before", setup, "sync", n), ("after", setup, "sync", n)
        own = ("after", "etcd", "ceiling", n)  # as many callers as sessions
        to_ceiling = x(ratio(a, own)) if setup != "embedded" else ""
        print(f"| {name} | {rate(b)} | {rate(a)} | {x(ratio(a, b))} | {to_ceiling} |")
    for setup in ("embedded", "etcd-x1"):
        b, a = ("before", setup, "list", 64), ("after", setup, "list", 64)
        print(f"| ListPods calls/s, 64 callers, {setup} | {rate(b)} | {rate(a)} | {x(ratio(a, b))} | |")
    lb = x(ratio(("before", "etcd-x1", "list", 64), ("before", "embedded", "list", 64)))
    la = x(ratio(("after", "etcd-x1", "list", 64), ("after", "embedded", "list", 64)))
    print(f"| ListPods, etcd replica / embedded | {lb} | {la} | | |")
    for setup in ("embedded", "etcd-x1"):
        b, a = ("before", setup, "watch", 0), ("after", setup, "watch", 0)
        print(f"| WatchPods snapshot pods/s, {setup} | {num(med(b, 'rate'))} | {num(med(a, 'rate'))} | {x(ratio(a, b))} | |")
    for setup in ("embedded", "etcd-x1"):
        for field in ("p50", "p99"):
            b, a = ("before", setup, "fanout", 0), ("after", setup, "fanout", 0)
            print(f"| fan-out to 1,000 watchers, {field} ms from send, {setup} | {num(med(b, field), 2)} | {num(med(a, field), 2)} | {x(ratio(a, b, field))} | |")
    for setup in ("embedded", "etcd-x1"):
        b, a = ("before", setup, "watchers", 0), ("after", setup, "watchers", 0)
        print(f"| memory per idle watcher ({num(med(a, 'count'))}), bytes, {setup} | {num(med(b, 'bytes'))} | {num(med(a, 'bytes'))} | {x(ratio(a, b, 'bytes'))} | |")
    print()

    print("Where the time goes (CPU cores used over each run's measured window, median of rounds; 2 cores in all):")
    print()
    print("| run | build | rate/s | etcd m1 / m2 / m3 | server(s) | load tool | others | idle | server µs/op | etcd µs/op | revisions/s | fsyncs/s | ms/fsync | revisions/fsync | ranges/s | ops/range |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [
        ("etcd ceiling, 64 callers", "etcd", "ceiling", 64),
        ("etcd ceiling, 1 caller", "etcd", "ceiling", 1),
        ("SyncPods, 1 session, etcd x1", "etcd-x1", "sync", 1),
        ("SyncPods, 64 sessions, etcd x1", "etcd-x1", "sync", 64),
        ("SyncPods, 64 sessions, etcd x3", "etcd-x3", "sync", 64),
        ("SyncPods, 1 session, embedded", "embedded", "sync", 1),
        ("SyncPods, 64 sessions, embedded", "embedded", "sync", 64),
        ("ListPods, 64 callers, etcd x1", "etcd-x1", "list", 64),
        ("ListPods, 64 callers, embedded", "embedded", "list", 64),
    ]
    builds = sorted({k[0] for k in cells}, key=["before", "after", "variant"].index)
    for name, setup, load, n in runs:
        for build in builds:
            key = (build, setup, load, n)
            uses = [f["use"] for fs in cells.get(key, {}).values() for f in fs if f.get("use")]
            if not uses:
                continue

            def m(field, i=None):
                values = [u[field][i] if i is not None else u[field] for u in uses]
                values = [v for v in values if v is not None]
                return statistics.median(values) if values else None

            etcd = " / ".join(num(m("etcd", i), 2) for i in range(3))
            print(f"| {name} | {build} | {num(med(key, 'rate'))} | {etcd} | {num(m('servers'), 2)} | "
                  f"{num(m('load'), 2)} | {num(m('others'), 2)} | {num(m('idle'), 2)} | "
                  f"{num(m('server_us'))} | {num(m('etcd_us'))} | {num(m('revisions'))} | "
                  f"{num(m('fsyncs'))} | {num(m('fsync_ms'), 2)} | {num(m('per_fsync'), 1)} | "
                  f"{num(m('ranges'))} | {num(m('per_range'), 1)} |")
    print()

    if "variant" in builds:
        print("The variant build, same rounds:")
        print()
        print("| figure | after | variant | variant / after | after / its ceiling | variant / its ceiling |")
        print("|---|---|---|---|---|---|")
        va_ceiling = ("variant", "etcd", "ceiling", 64)
        a, v = ceiling, va_ceiling
        print(f"| etcd ceiling, 64 callers, txns/s | {rate(a)} | {rate(v)} | {x(ratio(v, a))} | | |")
        for name, setup in (("SyncPods ops/s, 64 sessions, one replica", "etcd-x1"),
                            ("SyncPods ops/s, 64 sessions over three replicas", "etcd-x3")):
            a, v = ("after", setup, "sync", 64), ("variant", setup, "sync", 64)
            print(f"| {name} | {rate(a)} | {rate(v)} | {x(ratio(v, a))} | "
                  f"{x(ratio(a, ceiling))} | {x(ratio(v, va_ceiling))} |")
        print()

    counted = {k: rounds(k) for k in cells}
    short = [k for k, n in counted.items() if n < max(counted.values()) and k[2] != "watchers"]
    if short:
        print("Fewer rounds than the others: " + ", ".join(f"{'/'.join(map(str, k))} ({counted[k]})" for k in short))
    for row in failed:
        what = row.get("error") or row.get("result") or row.get("parts")
        print(f"FAILED: round {row['round']} {row['build']} {row['setup']} {row.get('load')}: {what}")


if __name__ == "__main__":
    main(sys.argv[1])
