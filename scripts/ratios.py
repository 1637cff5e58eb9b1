#!/usr/bin/env python3
"""Ratios of bench.sh medians, side by side.

usage: ratios.py BASE_NAME BASE_LOG NAME LOG [NAME LOG ...]
Reads the `MEDIAN <tag> metric=value (runs ...)` lines of each log (the
output of ../shared/peers/bench.sh) and prints, per metric, the base's
median and each other's with its ratio to the base.
"""
import re
import sys


def medians(path):
    rows = {}
    for line in open(path):
        if line.startswith("MEDIAN "):
            tag = line.split()[1]
            rows[tag] = {k: float(v) for k, v in re.findall(r"([\w/]+)=(-?[0-9.e+]+) \(runs", line)}
    return rows


args = sys.argv[1:]
if len(args) < 4 or len(args) % 2:
    sys.exit(__doc__)
base_name, base = args[0], medians(args[1])
others = [(args[i], medians(args[i + 1])) for i in range(2, len(args), 2)]
print(f"\n# ratios to {base_name} (rates: higher is better; latencies and times: lower is better)")
header = ["tag", "metric", base_name]
for name, _ in others:
    header += [name, "x"]
widths = [10, 18, 12] + [12, 8] * len(others)
print(" ".join(f"{h:<{w}}" for h, w in zip(header, widths)))
for tag, metrics in base.items():
    for key, value in metrics.items():
        row = [tag, key, f"{value:g}"]
        for _, other in others:
            v = other.get(tag, {}).get(key)
            row += ["-", "-"] if v is None else [f"{v:g}", f"{v / value:.2f}" if value else "-"]
        print(" ".join(f"{c:<{w}}" for c, w in zip(row, widths)))
