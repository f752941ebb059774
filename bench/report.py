"""Markdown summary and PNG plots from benchmark rows (in memory or read back from blocks.csv).

    python -m bench.report bench/results/<device>/blocks.csv    # regenerate summary.md and plots
"""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

from bench.common import BASELINES, FASTCONV

FAILING = ("FAIL", "error")


def num(v) -> Optional[float]:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def geomean(xs: Iterable[float]) -> Optional[float]:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def median(xs: Iterable[float]) -> Optional[float]:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def f2(v, digits=2, suffix="") -> str:
    return "-" if v is None else f"{v:.{digits}f}{suffix}"


def md_table(header: list, rows: list) -> str:
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _config(r) -> str:
    return f"{r['dtype']} {r['layout']} {r['mode']} b{r['batch']}"


def _families(r) -> list:
    return str(r.get("families") or r["family"]).split("+")


def _timed_fastconv(rows):
    return [r for r in rows if r["provider"] in FASTCONV and num(r["speedup_vs_best_baseline"]) is not None]


def write_summary(rows: list, path: Path, info=None, roofs=None, suite=None, elapsed_s=None,
                  compile_mode: str = "", note: str = "") -> str:
    r0 = rows[0] if rows else {}
    on_gpu = r0.get("timing", "") != "cpu_perf_counter" and r0.get("device", "cpu") != "cpu"
    L = [f"# fastconv block benchmark: {r0.get('device', '?')}", ""]
    if not on_gpu:
        L += ["> **CPU run (no CUDA device).** fastconv backends were only checked for correctness (Triton in "
              "the interpreter, small inputs). The timings below are of the PyTorch reference providers on the "
              "CPU (`time.perf_counter` medians) and say nothing about GPU performance.", ""]
    if note:
        L += [f"> {note}", ""]
    L += [f"- run: {r0.get('timestamp', '?')}, git {r0.get('git_sha', '?')}; torch {r0.get('torch', '?')}, "
          f"CUDA {r0.get('cuda', '?')}, cuDNN {r0.get('cudnn', '?')}, Triton {r0.get('triton', '?')}",
          "- timing: " + ("CUDA events via `triton.testing.do_bench` (L2 flushed before every call), median "
                          "with p20/p80" if on_gpu else "CPU `time.perf_counter`, median of >= 15 calls with p20/p80")]
    if roofs is not None:
        L.append(f"- roofs (measured at the start of the run): {roofs.gbps:.1f} GB/s copy bandwidth; matmul "
                 + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in roofs.tflops.items()) + f" ({roofs.how})")
    elif rows:
        L.append(f"- roofs: {r0.get('hbm_gbps')} GB/s copy bandwidth")
    if suite is not None:
        L.append(f"- suite: dtypes {suite['dtypes']}, batches {suite['batches']}, layouts {suite['layouts']}, "
                 f"modes {suite['modes']}, providers {suite['providers']}")
    modes = sorted({r["compile_mode"] for r in rows if r["provider"] == "compile" and r["compile_mode"]})
    if modes:
        L.append(f"- torch.compile modes used: {', '.join(modes)} (--compile-mode {compile_mode or '?'})")
    if elapsed_s is not None:
        L.append(f"- wall time: {elapsed_s:.0f} s; {len(rows)} rows")
    L.append("")

    # correctness -------------------------------------------------------------------------------
    L += ["## Correctness", ""]
    counts: dict = defaultdict(lambda: defaultdict(int))
    for r in rows:
        counts[r["provider"]][r["status"]] += 1
    sts = ["ok", "FAIL", "error", "skipped", "unchecked"]
    L.append(md_table(["provider"] + sts, [[p] + [counts[p].get(s, 0) for s in sts] for p in counts]))
    bad = [r for r in rows if r["status"] in FAILING]
    L.append("")
    if bad:
        L += [f"**{len(bad)} rows FAILED or errored:**", ""]
        seen = {}
        for r in bad:
            k = (r["status"], r["provider"], r["op"], r["label"], r["dtype"], r["layout"], r["mode"], r["reason"])
            seen[k] = seen.get(k, 0) + 1
        L.append(md_table(["status", "provider", "op", "block", "dtype", "layout", "mode", "reason", "rows"],
                          [list(k[:7]) + [str(k[7])[:160].replace("|", "/"), n] for k, n in list(seen.items())[:60]]))
        if len(seen) > 60:
            L.append(f"\n... {len(seen) - 60} more: see the CSV's status column")
    else:
        L.append("No correctness failures or errors.")
    skips: dict = defaultdict(lambda: [0, {}])
    for r in rows:
        if r["status"] == "skipped":
            s = skips[(r["provider"], r["reason"])]
            s[0] += 1
            s[1][r["op"]] = None
    if skips:
        L += ["", "Skipped:", ""]
        L.append(md_table(["provider", "why", "ops", "rows"],
                          [[p, str(w).replace("|", "/"), ", ".join(v[1]), v[0]]
                           for (p, w), v in sorted(skips.items())]))
    L.append("")

    # speedups ----------------------------------------------------------------------------------
    fc = _timed_fastconv(rows)
    if fc:
        L += ["## Speedup of fastconv over the baselines (geomean over blocks and configs)", "",
              "`vs best` = over the faster of the baselines measured for that block and config. "
              "Worst = the block/config with the lowest speedup over the faster baseline.", ""]
        table = []
        fams = sorted({f for r in fc for f in _families(r)})
        for fam in fams + ["all"]:
            for prov in FASTCONV:
                rs = [r for r in fc if r["provider"] == prov and (fam == "all" or fam in _families(r))]
                if not rs:
                    continue
                w = min(rs, key=lambda r: num(r["speedup_vs_best_baseline"]))
                table.append([fam, prov, len(rs)]
                             + [f2(geomean(num(r[f"speedup_vs_{b}"]) for r in rs), 2, "x") for b in BASELINES]
                             + [f2(geomean(num(r["speedup_vs_best_baseline"]) for r in rs), 2, "x"),
                                f"{w['label']} {_config(w)}: {f2(num(w['speedup_vs_best_baseline']), 2, 'x')} "
                                f"vs {w['best_baseline']}"])
        L.append(md_table(["family", "provider", "n", "vs eager", "vs eager_folded", "vs compile", "vs best",
                           "worst block"], table))
        L += ["", "### By configuration (all families)", ""]
        cfgs: dict = defaultdict(list)
        for r in fc:
            cfgs[(r["provider"], r["dtype"], r["layout"], r["mode"], int(num(r["batch"])))].append(r)
        L.append(md_table(["provider", "dtype", "layout", "mode", "batch", "n", "geomean vs best",
                           "median % roofline"],
                          [[*k, len(v), f2(geomean(num(r["speedup_vs_best_baseline"]) for r in v), 2, "x"),
                            f2(median(num(r["pct_roofline"]) for r in v), 1, "%")] for k, v in sorted(cfgs.items())]))
        L.append("")

    # roofline ----------------------------------------------------------------------------------
    timed = [r for r in rows if num(r["ms_median"]) is not None and r["status"] not in FAILING]
    if timed:
        L += ["## Roofline", "",
              "% of roofline = floor / measured time x 100, floor = max(minimal bytes / copy bandwidth, "
              "FLOPs / matmul rate) (100% = at the floor)."
              + ("" if on_gpu else " On the CPU small blocks live in caches, so values above 100% happen.")
              + "", ""]
        table = []
        for prov in [p for p in BASELINES + FASTCONV if any(r["provider"] == p for r in timed)]:
            v = [num(r["pct_roofline"]) for r in timed if r["provider"] == prov]
            table.append([prov, len(v), f2(median(v), 1, "%"), f2(max(v), 1, "%"), f2(min(v), 1, "%")])
        L.append(md_table(["provider", "n", "median", "best", "worst"], table))
        L.append("")

    if not on_gpu and timed:
        L += ["## CPU reference timings (orientation only: not GPU numbers)", ""]
        table = []
        fams = sorted({f for r in timed for f in _families(r)})
        for fam in fams:
            for key in sorted({(r["layout"], r["mode"]) for r in timed}):
                rs = [r for r in timed if fam in _families(r) and (r["layout"], r["mode"]) == key]
                e = [num(r["ms_median"]) for r in rs if r["provider"] == "eager"]
                f = [num(r["ms_median"]) for r in rs if r["provider"] == "eager_folded"]
                s = [num(r["speedup_vs_eager"]) for r in rs if r["provider"] == "eager_folded"]
                table.append([fam, *key, len(e), f2(geomean(e), 3), f2(geomean(f), 3), f2(geomean(s), 2, "x")])
        L.append(md_table(["family", "layout", "mode", "blocks", "geomean eager ms", "geomean eager_folded ms",
                           "folding speedup"], table))
        L.append("")
    text = "\n".join(L)
    Path(path).write_text(text)
    return text


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------

def _headline(rows: list, providers: tuple) -> Optional[tuple]:
    """The config to plot: fp16 > bf16 > fp32, channels_last, fwd, largest batch, among configs with data."""
    have = {(r["dtype"], r["layout"], r["mode"], int(num(r["batch"]))) for r in rows
            if r["provider"] in providers and num(r["ms_median"]) is not None}
    if not have:
        return None
    rank = {"fp16": 0, "bf16": 1, "fp32": 2}
    return min(have, key=lambda c: (rank.get(c[0], 3), c[1] != "channels_last", c[2] != "fwd", -c[3]))


def _model_order(r):
    """Blocks in network order: op, then the first source's model and block index."""
    from bench.common import OPS
    first = str(r.get("sources", "")).split(";")[0]
    model, _, idx = first.partition(":")
    idx = idx.split(".")[0]
    return (OPS.index(r["op"]) if r["op"] in OPS else 99, model, int(idx) if idx.isdigit() else 0)


def write_plots(rows: list, out: Path, tag: str = "", roofs=None) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        print(f"bench: matplotlib unavailable ({e}): no plots", file=sys.stderr)
        return []
    paths = []
    from bench.catalogue import FAMILIES
    for fam in FAMILIES:  # plots of an earlier run with other filters would pass for this run's
        (out / f"speedup_{fam}{tag}.png").unlink(missing_ok=True)
    (out / f"roofline{tag}.png").unlink(missing_ok=True)
    fast_rows = _timed_fastconv(rows)
    if fast_rows:
        provs, base_col, what = FASTCONV, "speedup_vs_best_baseline", "speedup over the faster baseline"
    else:  # CPU runs: fastconv is not timed; show what BN folding buys the reference
        provs, base_col, what = ("eager_folded",), "speedup_vs_eager", "CPU: eager_folded over eager"
    cfg = _headline(rows, provs)
    if cfg is not None:
        sel = [r for r in rows if r["provider"] in provs and num(r[base_col]) is not None
               and (r["dtype"], r["layout"], r["mode"], int(num(r["batch"]))) == cfg]
        fams = sorted({f for r in sel for f in _families(r)})
        for fam in fams:
            rs = sorted((r for r in sel if fam in _families(r)), key=_model_order)
            labels = list(dict.fromkeys(f"{r['label']}" for r in rs))
            present = [p for p in provs if any(r["provider"] == p for r in rs)]
            fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(labels) * max(1, len(present)) + 2), 4.5))
            width = 0.8 / max(1, len(present))
            for i, p in enumerate(present):
                val = {r["label"]: num(r[base_col]) for r in rs if r["provider"] == p}
                xs = [j + i * width for j in range(len(labels))]
                ax.bar(xs, [val.get(lb, 0) for lb in labels], width, label=p)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_yscale("log")  # speedups are ratios: 0.5x and 2x sit symmetrically around 1
            from matplotlib.ticker import FormatStrFormatter
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.2gx"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2gx"))
            ax.tick_params(axis="y", which="minor", labelsize=6)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
            ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
            ax.set_ylabel(what)
            ax.set_title(f"{fam}: {what} ({cfg[0]}, {cfg[1]}, {cfg[2]}, batch {cfg[3]}; "
                         f"{rows[0]['device']})", fontsize=9)
            ax.legend(fontsize=7)
            fig.tight_layout()
            p = out / f"speedup_{fam}{tag}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)

    # roofline: achieved FLOP/s vs arithmetic intensity, with the measured roofs
    timed = [r for r in rows if num(r["ms_median"]) is not None and r["status"] not in FAILING]
    dcfg = _headline(rows, BASELINES + FASTCONV)
    if timed and dcfg is not None:
        dt = dcfg[0]
        rs = [r for r in timed if r["dtype"] == dt]
        fig, ax = plt.subplots(figsize=(7, 5))
        for p in BASELINES + FASTCONV:
            pts = [(num(r["gflop"]) * 1e3 / num(r["mbytes"]), num(r["achieved_tflops"])) for r in rs
                   if r["provider"] == p and num(r["mbytes"]) and num(r["gflop"])]
            if pts:
                ax.scatter([a for a, _ in pts], [b for _, b in pts], s=10, label=p, alpha=0.7)
        bw = num(rows[0]["hbm_gbps"])
        peak = max((num(r["matmul_tflops"]) for r in rs if num(r["matmul_tflops"])), default=None)
        if bw and peak:
            import numpy as np
            ai = np.logspace(-1, 3, 200)
            ax.plot(ai, np.minimum(ai * bw / 1e3, peak), "k-", lw=1,
                    label=f"roof: {bw:.3g} GB/s, {peak:.3g} TFLOP/s ({dt} matmul)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP / minimal byte)")
        ax.set_ylabel("achieved TFLOP/s")
        ax.set_title(f"roofline, {dt}, all batches/layouts/modes ({rows[0]['device']})", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / f"roofline{tag}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def read_csv(path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="Regenerate summary.md and plots from a blocks.csv")
    p.add_argument("csv")
    p.add_argument("--out", help="folder (default: the CSV's)")
    a = p.parse_args(argv)
    rows = read_csv(a.csv)
    out = Path(a.out or Path(a.csv).parent)
    out.mkdir(parents=True, exist_ok=True)
    tag = Path(a.csv).stem[len("blocks"):] if Path(a.csv).stem.startswith("blocks") else ""
    write_summary(rows, out / f"summary{tag}.md")
    for pth in write_plots(rows, out, tag):
        print(pth)
    print(out / f"summary{tag}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
