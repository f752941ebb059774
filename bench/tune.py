"""Write fastconv's tuned backend tables from benchmark results.

    python -m bench.tune bench/results/<device>/blocks.csv [--mode fwd] [--out-dir fastconv/tuned] [--merge]

For every GPU device in the CSV writes ``<out-dir>/<device_key>.json`` = ``{op: {shape_key: backend}}``,
the fastest fastconv backend (cuda or triton, by median time) for each op and input shape/dtype/layout
among rows that passed their correctness check. ``device_key`` and ``shape_key`` are the ones
``fastconv.tuning`` computes at run time (the CSV records them), so ``backend="auto"`` finds the entries.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from bench.report import num, read_csv

CANDIDATES = {"fastconv_cuda": "cuda", "fastconv_triton": "triton"}


def choose(rows: list, mode: str = "fwd") -> dict:
    """{device_key: {op: {shape_key: backend}}} from benchmark rows (dicts as in blocks.csv).

    fastconv.tuning keys on the input tensor only, so different blocks of one op can share a key
    (e.g. two inverted residuals with the same input and different outputs): per key the backend
    with the smaller total time over the blocks where both backends were measured wins."""
    times: dict = defaultdict(dict)  # (device, op, shape_key, block) -> {backend: ms}
    for r in rows:
        if r["provider"] not in CANDIDATES or r["status"] != "ok" or r["mode"] != mode:
            continue
        if r.get("timing") != "cuda_events" or not r.get("shape_key"):
            continue
        ms = num(r["ms_median"])
        if ms is not None:
            times[(r["device_key"], r["op"], r["shape_key"], r.get("block", ""))][CANDIDATES[r["provider"]]] = ms
    per_key: dict = defaultdict(list)
    for (dev, op, shape, _), by_backend in times.items():
        per_key[(dev, op, shape)].append(by_backend)
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (dev, op, shape), blocks in sorted(per_key.items()):
        both = [b for b in blocks if len(b) == len(CANDIDATES)]
        if both:
            totals = {be: sum(b[be] for b in both) for be in CANDIDATES.values()}
        else:  # only one backend ran correctly for this key
            totals = {be: 0.0 for b in blocks for be in b}
        out[dev][op][shape] = min(sorted(totals), key=totals.get)
    return {d: {op: dict(v) for op, v in ops.items()} for d, ops in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="+", help="blocks.csv file(s) from bench.run")
    p.add_argument("--mode", default="fwd", choices=["fwd", "fwdbwd"], help="which timings decide (default fwd)")
    p.add_argument("--out-dir", default=None, help="default: fastconv/tuned/")
    p.add_argument("--merge", action="store_true", help="keep entries of an existing table that the CSV lacks")
    a = p.parse_args(argv)
    rows = [r for path in a.csv for r in read_csv(path)]
    tables = choose(rows, a.mode)
    if not tables:
        print("bench.tune: no timed, correct fastconv_cuda/fastconv_triton GPU rows in the CSV: nothing written",
              file=sys.stderr)
        return 1
    if a.out_dir:
        out_dir = Path(a.out_dir)
    else:
        from fastconv.tuning import TUNED_DIR
        out_dir = Path(TUNED_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    for dev, table in tables.items():
        path = out_dir / f"{dev}.json"
        if a.merge and path.is_file():
            old = json.loads(path.read_text())
            for op, shapes in table.items():
                old.setdefault(op, {}).update(shapes)
            table = old
        path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        n = sum(len(v) for v in table.values())
        wins = defaultdict(int)
        for shapes in table.values():
            for b in shapes.values():
                wins[b] += 1
        print(f"bench.tune: wrote {path}: {n} shapes over {len(table)} ops ({dict(wins)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
