#!/usr/bin/env python3
"""Prints the executor rows of BENCHMARKS.md from criterion's results.

Run after `cargo bench`: reads <target>/criterion/*/*/*/new/estimates.json (the median
time per iteration) and prints, per row, polyloop, the best peer and the ratio.
The target dir is $CARGO_TARGET_DIR, else ./target.
"""
import json
import os
import sys

ROOT = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")

# row: (group, elements per iteration, unit divisor, unit, polyloop id, peer ids)
ROWS = [
    ("spawn+join, single thread", "spawn_join", 200_000, 1, "ns/task",
     "polyloop/single", ["tokio/current_thread", "smol/local_executor"]),
    ("spawn+join, 2 workers", "spawn_join", 200_000, 1, "ns/task",
     "polyloop/pool2", ["tokio/multi_thread2", "smol/executor2"]),
    ("yield_now, 4 tasks x 500k", "yield", 2_000_000, 1, "ns/yield",
     "polyloop/single", ["tokio/current_thread", "smol/local_executor"]),
    ("ping-pong, single thread", "ping_pong_local", 100_000, 1, "ns/round trip",
     "polyloop/single", ["tokio/current_thread", "smol/local_executor"]),
    ("ping-pong, across threads", "ping_pong_threads", 20_000, 1000, "us/round trip",
     "polyloop/single", ["tokio/current_thread", "smol/block_on"]),
    ("block_on(ready)", "block_on_ready", 1, 1, "ns",
     "polyloop", ["tokio/current_thread", "smol/block_on"]),
]


def median_ns(group, bench):
    path = os.path.join(ROOT, group, bench.replace("/", "_"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def main():
    print("| row | unit | polyloop | best peer | peer | polyloop / best peer |")
    print("|---|---|---:|---:|---|---:|")
    for label, group, elems, div, unit, ours, peers in ROWS:
        mine = median_ns(group, ours)
        got = [(median_ns(group, p), p) for p in peers]
        got = [(v, p) for v, p in got if v is not None]
        if mine is None or not got:
            print(f"| {label} | {unit} | missing | | | |", file=sys.stderr)
            continue
        best, who = min(got)
        per = lambda v: v / elems / div
        print(f"| {label} | {unit} | {per(mine):.1f} | {per(best):.1f} | {who} | {mine / best:.2f} |")
    floor = median_ns("block_on_ready", "futures_lite/block_on")
    if floor is not None:
        print(f"\nblock_on(ready) floor without a reactor (futures_lite::future::block_on): {floor:.1f} ns")


if __name__ == "__main__":
    main()
