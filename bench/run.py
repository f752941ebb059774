"""Per-block benchmark: every catalogue block x provider x dtype x batch x layout x mode.

    python -m bench.run [--quick] [--family F ...] [--op OP ...] [--dtype fp16 ...] [--batch 32 ...]
                        [--provider P ...] [--layout channels_last ...] [--mode fwd ...] [--strict]
    python -m bench.run --models ...        (whole models: see bench/bench_models.py)

Writes bench/results/<device>/blocks.csv (tidy, one row per measurement), summary.md and PNG plots.
Without a CUDA device it checks every block's fastconv backends against the reference on small
inputs (Triton in the interpreter) and times only the PyTorch reference providers on the CPU.
See bench/README.md for every column.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import math
import sys
import time
from pathlib import Path

from bench.common import interpret_if_no_gpu

HAS_GPU = interpret_if_no_gpu()  # before fastconv's Triton modules are imported

import torch  # noqa: E402

from bench import catalogue as cat  # noqa: E402
from bench.common import (BASELINES, DTYPES, LAYOUTS, MODES, OPS, PROVIDERS,  # noqa: E402
                          norm_dtype, norm_layout, norm_mode, results_dir, run_info, time_cpu, time_gpu)
from bench.metrics import block_metrics, measure_roofs  # noqa: E402

COLUMNS = [
    "timestamp", "git_sha", "device", "device_key", "torch", "cuda", "cudnn", "triton", "timing",
    "op", "family", "families", "block", "label", "sources", "n_sources", *cat.CFG_FIELDS,
    "batch", "dtype", "layout", "mode", "provider", "backend_resolved", "compile_mode", "compile_s",
    "status", "reason", "check_shape", "max_err", "err_bound",
    "ms_median", "ms_p20", "ms_p80", "gflop", "mbytes", "params", "floor_ms", "pct_roofline",
    "time_over_floor", "achieved_tflops", "achieved_gbps", "hbm_gbps", "matmul_tflops",
    "speedup_vs_eager", "speedup_vs_eager_folded", "speedup_vs_compile", "best_baseline",
    "speedup_vs_best_baseline", "shape_key",
]
FAILING = ("FAIL", "error")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke suite: a few blocks per op; GPU: fp16, channels_last, batch 32, fwd")
    p.add_argument("--suite", choices=["full", "headline", "quick"], default="full",
                   help="GPU presets: full = every dtype/layout/mode/batch; headline = fp16 channels_last batches "
                        "32 128 both modes; quick = --quick. Explicit filters override the preset's lists")
    p.add_argument("--time-budget-min", type=float, default=None,
                   help="stop starting new blocks after this many minutes and write what was measured "
                        "(blocks run interleaved across ops, so a cut run still covers every op)")
    p.add_argument("--models", action="store_true", help="benchmark whole models instead (bench.bench_models)")
    p.add_argument("--family", nargs="+", choices=cat.FAMILIES, metavar="FAMILY", help=" ".join(cat.FAMILIES))
    p.add_argument("--model", nargs="+", choices=list(cat.MODELS), metavar="MODEL",
                   help="only blocks of these models: " + " ".join(cat.MODELS))
    p.add_argument("--op", nargs="+", choices=OPS, metavar="OP", help=" ".join(OPS))
    p.add_argument("--dtype", nargs="+", type=norm_dtype, help="fp32 fp16 bf16 (GPU default: all three)")
    p.add_argument("--batch", nargs="+", type=int, help=f"GPU default: {' '.join(map(str, cat.DEFAULT_BATCHES))}")
    p.add_argument("--layout", nargs="+", type=norm_layout, help="channels_last (nhwc) and/or nchw")
    p.add_argument("--mode", nargs="+", type=norm_mode, help="fwd and/or fwdbwd")
    p.add_argument("--provider", nargs="+", choices=PROVIDERS, metavar="PROVIDER", help=" ".join(PROVIDERS))
    p.add_argument("--limit", type=int, help="at most this many blocks per op (after filters)")
    p.add_argument("--compile-mode", default="auto",
                   choices=["auto", "default", "max-autotune-no-cudagraphs"],
                   help="auto: max-autotune-no-cudagraphs for the fp16 channels_last batch>=32 suite, "
                        "default mode elsewhere (max-autotune is slow to compile)")
    p.add_argument("--warmup-ms", type=float, default=10.0, help="do_bench warm-up per measurement (GPU)")
    p.add_argument("--rep-ms", type=float, default=40.0, help="do_bench timed window per measurement (GPU)")
    p.add_argument("--cpu-hw", type=int, default=6, help="CPU runs: spatial size of the correctness inputs")
    p.add_argument("--cpu-max-channels", type=int, default=32,
                   help="CPU runs: the Triton interpreter checks a copy of each block with its channel counts "
                        "divided by a power of two until the widest is <= this (0: real channel counts, slow)")
    p.add_argument("--cpu-time-s", type=float, default=0.05, help="CPU runs: timing budget per measurement")
    p.add_argument("--cpu-compile", action="store_true",
                   help="CPU runs: time torch.compile too (slow; for testing the harness without a GPU)")
    p.add_argument("--no-check", action="store_true", help="skip correctness checks (timing only)")
    p.add_argument("--strict", action="store_true", help="exit 1 on any correctness failure or error")
    p.add_argument("--out", help="results folder (default bench/results/<device>/)")
    p.add_argument("--tag", default="", help="suffix for the output file names (blocks<tag>.csv ...); "
                                             "default '' (--quick: _quick, --suite headline: _headline)")
    p.add_argument("--no-plots", action="store_true")
    return p.parse_args(argv)


def resolve_suite(a, on_gpu: bool) -> dict:
    """The effective lists (flags > --quick > device defaults)."""
    if on_gpu and (a.quick or a.suite == "quick"):
        d = dict(dtypes=["fp16"], batches=[32], layouts=["channels_last"], modes=["fwd"])
    elif on_gpu and a.suite == "headline":
        d = dict(dtypes=["fp16"], batches=[32, 128], layouts=["channels_last"], modes=list(MODES))
    elif on_gpu:
        d = dict(dtypes=list(DTYPES), batches=list(cat.DEFAULT_BATCHES), layouts=list(LAYOUTS), modes=list(MODES))
    else:
        # CPU: fp32 (CPU half-precision convs are very slow), forward, every block checked in both
        # layouts (--quick: channels_last), reference timed at batch 1; about a minute on an idle 2-core
        # machine. Widen with --dtype/--layout/--mode (--mode fwd fwdbwd roughly doubles it).
        layouts = ["channels_last"] if (a.quick or a.suite == "quick") else list(LAYOUTS)
        d = dict(dtypes=["fp32"], batches=[1], layouts=layouts, modes=["fwd"])
    return dict(dtypes=a.dtype or d["dtypes"], batches=sorted(set(a.batch or d["batches"])),
                layouts=a.layout or d["layouts"], modes=a.mode or d["modes"],
                providers=a.provider or list(PROVIDERS))


def compile_mode_for(a, dtype: str, layout: str, batch: int) -> str:
    if a.compile_mode != "auto":
        return a.compile_mode
    if a.quick or a.suite == "quick":
        return "default"  # max-autotune alone would blow the quick suite's two minutes
    if dtype == "fp16" and layout == "channels_last" and batch >= 32:
        return "max-autotune-no-cudagraphs"
    return "default"


# ---------------------------------------------------------------------------------------------
# availability
# ---------------------------------------------------------------------------------------------

CPU_COMPILE = False  # --cpu-compile: exercise the compile provider without a GPU (harness testing)


def availability(op: str, provider: str, on_gpu: bool) -> tuple[bool, bool, str]:
    """(can run, is timed, why not) for a provider on this machine."""
    import importlib.util

    import fastconv
    if provider in ("eager", "eager_folded"):
        return True, True, "" if on_gpu else "CPU timing"
    if provider == "compile":
        if not on_gpu and not CPU_COMPILE:
            return False, False, "CPU run: torch.compile is measured on GPU only"
        return True, True, ""
    backend = provider[len("fastconv_"):]
    av = fastconv.backends()
    if backend == "cuda":
        if not av["cuda"]["available"]:
            return False, False, av["cuda"]["why"]
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"fastconv::{op}_cuda", "CUDA"):
            return False, False, f"fastconv._C has no CUDA kernel for {op} (not built or not written)"
        return True, True, ""
    if backend == "triton":
        if not av["triton"]["available"]:
            return False, False, av["triton"]["why"]
        if importlib.util.find_spec(f"fastconv.triton.{op}") is None:
            return False, False, f"fastconv/triton/{op}.py does not exist (no Triton kernel for {op})"
        if not on_gpu:
            return True, False, "Triton interpreter: correctness only, not timed"
        return True, True, ""
    # auto always runs: on CPU it resolves to the reference
    return True, on_gpu, "" if on_gpu else "CPU: auto resolves to the reference; not timed"


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def _fmt(v):
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    return v


def _base_row(info, roofs, entry, batch, dtype, layout, mode, provider) -> dict:
    m = block_metrics(entry, batch, DTYPES[dtype].itemsize, mode)
    row = {k: "" for k in COLUMNS}
    row.update(
        timestamp=info.timestamp, git_sha=info.git_sha, device=info.device, device_key=info.device_key,
        torch=info.torch_version, cuda=info.cuda_version, cudnn=info.cudnn_version, triton=info.triton_version,
        timing="cuda_events" if info.on_gpu else "cpu_perf_counter",
        op=entry.op, family=entry.family, families="+".join(entry.families), block=entry.key, label=entry.label,
        sources=entry.provenance(), n_sources=len(entry.sources), **entry.cfg,
        batch=batch, dtype=dtype, layout=layout, mode=mode, provider=provider,
        gflop=m.flops / 1e9, mbytes=m.bytes / 1e6, params=m.params,
        floor_ms=roofs.floor_ms(m.flops, m.bytes, dtype),
        hbm_gbps=roofs.gbps, matmul_tflops=roofs.tflops[dtype],
    )
    return row


def _check_case(entry, batch, dtype, layout, mode, device, on_gpu, a, provider, cache: dict):
    """The case a provider's correctness is checked on. GPU: the real block at min(batch, 8).
    CPU: a small input (batch 2, spatial <= --cpu-hw); the fastconv backends (Triton interpreter)
    additionally get a channel-scaled proxy of the block (--cpu-max-channels) with random weights."""
    from bench.providers import make_case
    if on_gpu:
        key = "real"
        if key not in cache:
            cache[key] = (make_case(entry, min(batch, 8), DTYPES[dtype], layout, mode, device), "")
        return cache[key]
    hw = (min(entry.cfg["H"], a.cpu_hw), min(entry.cfg["W"], a.cpu_hw))
    proxy = provider.startswith("fastconv_") and a.cpu_max_channels > 0
    s = cat.channel_scale(entry, a.cpu_max_channels) if proxy else 1
    key = f"s{s}"
    if key not in cache:
        cfg = cat.scaled_cfg(entry, s) if s > 1 else None
        note = f" (channels/{s} proxy, random weights)" if s > 1 else ""
        cache[key] = (make_case(entry, 2, DTYPES[dtype], layout, mode, device, hw=hw, cfg=cfg), note)
    return cache[key]


def _short(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".replace("\n", " ")
    return msg[:300]


def run_group(entry, dtype, layout, mode, suite, a, info, roofs, device) -> list[dict]:
    """All batches and providers of one (block, dtype, layout, mode): correctness once, then timing."""
    from bench.providers import Skip, check_case, make_case, make_runner
    on_gpu = info.on_gpu
    rows: list[dict] = []
    verdict: dict = {}   # provider -> (status, reason, err, bound, shape)
    check_cases: dict = {}
    for batch in suite["batches"]:
        try:
            case = make_case(entry, batch, DTYPES[dtype], layout, mode, device)
        except Exception as e:
            for prov in suite["providers"]:
                r = _base_row(info, roofs, entry, batch, dtype, layout, mode, prov)
                r.update(status="error", reason=f"building inputs: {_short(e)}")
                rows.append(r)
            continue
        from fastconv import tuning
        tuning.LAST.pop(entry.op, None)
        first_row = len(rows)
        for prov in suite["providers"]:
            r = _base_row(info, roofs, entry, batch, dtype, layout, mode, prov)
            rows.append(r)
            ok, timed, why = availability(entry.op, prov, on_gpu)
            if not ok:
                r.update(status="skipped", reason=why)
                continue
            if prov == "eager_folded" and not case.has_bn:
                r.update(status="skipped", reason="no BatchNorm to fold: same as eager")
                continue
            cmode = compile_mode_for(a, dtype, layout, batch) if prov == "compile" else ""
            r["compile_mode"] = cmode
            # correctness: once per (block, dtype, layout, mode, provider), at the first batch
            if prov not in verdict:
                if a.no_check:
                    verdict[prov] = ("unchecked", "", "", "", "")
                elif prov == "compile":
                    # A baseline from PyTorch: checking it would mean a second (max-autotune) compile.
                    verdict[prov] = ("unchecked", "baseline compiled once, for timing only", "", "", "")
                else:
                    try:
                        cc, note = _check_case(entry, batch, dtype, layout, mode, device, on_gpu, a, prov,
                                               check_cases)
                        chk = check_case(cc, prov, cmode or "default")
                        shape = "x".join(map(str, cc.x.shape)) + note
                        if chk.ok:
                            verdict[prov] = ("ok", "", chk.err, chk.bound, shape)
                        else:
                            verdict[prov] = ("FAIL", f"{chk.what}: max error {chk.err:.3g} > bound {chk.bound:.3g}",
                                             chk.err, chk.bound, shape)
                    except Skip as e:
                        verdict[prov] = ("skipped", str(e), "", "", "")
                    except Exception as e:
                        verdict[prov] = ("error", f"correctness run: {_short(e)}", "", "", "")
            st, reason, err, bound, shape = verdict[prov]
            r.update(status=st, reason=reason or why, max_err=err, err_bound=bound, check_shape=shape)
            if st in ("error", "skipped") or not timed:
                continue
            try:
                # Forward runs (and the compile warm-up call, so its guards match) under inference_mode.
                with torch.inference_mode() if mode == "fwd" else contextlib.nullcontext():
                    t0 = time.perf_counter()
                    runner = make_runner(case, prov, cmode or "default")
                    if prov == "compile":
                        runner.fn()  # compilation happens here and stays out of the timing
                        if on_gpu:
                            torch.cuda.synchronize()
                        r["compile_s"] = round(time.perf_counter() - t0, 2)
                    leaves = runner.leaves if mode == "fwdbwd" else None
                    if on_gpu:
                        t = time_gpu(runner.fn, a.warmup_ms, a.rep_ms, grad_to_none=leaves)
                    else:
                        t = time_cpu(runner.fn, a.cpu_time_s, grad_to_none=leaves)
            except Exception as e:
                r.update(status="error", reason=f"timing: {_short(e)}")
                if on_gpu:
                    torch.cuda.empty_cache()
                continue
            r.update(ms_median=t.median, ms_p20=t.p20, ms_p80=t.p80, timing=t.method)
            r["pct_roofline"] = 100.0 * r["floor_ms"] / t.median
            r["time_over_floor"] = t.median / r["floor_ms"]
            r["achieved_tflops"] = r["gflop"] / t.median  # GFLOP / ms == TFLOP/s
            r["achieved_gbps"] = r["mbytes"] / t.median   # MB / ms == GB/s
        # the key and choice of the op's own backend="auto" lookup (set when fastconv_auto ran on a GPU)
        key, chosen = tuning.LAST.get(entry.op, ("", ""))
        for r in rows[first_row:]:
            r["shape_key"] = key
            if r["provider"] == "fastconv_auto":
                r["backend_resolved"] = chosen or ("" if on_gpu else "reference")  # auto on CPU tensors
        del case
    _speedups(rows)
    return rows


def _speedups(rows: list[dict]) -> None:
    """Within each (batch) of a group: every timed row vs every timed baseline, and vs the faster one.
    Rows that failed their correctness check get no speedup."""
    by_batch: dict = {}
    for r in rows:
        by_batch.setdefault(r["batch"], []).append(r)
    for rs in by_batch.values():
        base = {r["provider"]: r["ms_median"] for r in rs
                if r["provider"] in BASELINES and r["ms_median"] != "" and r["status"] not in FAILING}
        best = min(base, key=base.get) if base else ""
        for r in rs:
            if r["ms_median"] == "" or r["status"] in FAILING:
                continue
            for b, t in base.items():
                if b != r["provider"]:
                    r[f"speedup_vs_{b}"] = t / r["ms_median"]
            others = {b: t for b, t in base.items() if b != r["provider"]}
            if others:
                bb = min(others, key=others.get)
                r["best_baseline"] = bb
                r["speedup_vs_best_baseline"] = others[bb] / r["ms_median"]
            elif best:
                r["best_baseline"] = best


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in COLUMNS})


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.models:
        from bench import bench_models
        rest = [x for x in (argv if argv is not None else sys.argv[1:]) if x != "--models"]
        return bench_models.main(rest)
    info = run_info()
    device = torch.device("cuda" if info.on_gpu else "cpu")
    global CPU_COMPILE
    CPU_COMPILE = a.cpu_compile
    if info.on_gpu:
        torch.backends.cudnn.benchmark = True
        print(f"bench: GPU run on {info.device} (torch {info.torch_version}, CUDA {info.cuda_version}, "
              f"cuDNN {info.cudnn_version}, Triton {info.triton_version}, git {info.git_sha})")
    else:
        print("bench: NO CUDA DEVICE. This is a CPU run: every block's fastconv backends are checked against "
              "the reference on small inputs (Triton kernels in the interpreter, TRITON_INTERPRET=1), and only "
              "the PyTorch reference providers (eager, eager_folded) are timed, on the CPU. CPU timings say "
              "nothing about GPU performance.")
    import fastconv
    for name, st in fastconv.backends().items():
        print(f"bench: backend {name}: {'available' if st['available'] else 'UNAVAILABLE'} ({st['why']})")

    _, skipped_models = cat.available_models()
    for m, why in skipped_models.items():
        if (a.family is None or cat.MODELS[m][0] in a.family) and (a.model is None or m in a.model):
            print(f"bench: SKIPPING model {m}: {why}")
    entries = cat.build_catalogue(models=a.model, families=a.family, ops=a.op)
    if a.quick or a.suite == "quick":
        entries = cat.quick_subset(entries)
    per_op = [[x for x in entries if x.op == op][:a.limit or None] for op in OPS]
    # round-robin over ops: a run cut short by --time-budget-min still has every op
    entries = [e for tier in itertools.zip_longest(*per_op) for e in tier if e is not None]
    suite = resolve_suite(a, info.on_gpu)
    if not entries:
        print("bench: no block matches the filters", file=sys.stderr)
        return 2
    groups = [(e, d, l, m) for e in entries for d in suite["dtypes"] for l in suite["layouts"] for m in suite["modes"]]
    print(f"bench: {len(entries)} blocks x {len(suite['dtypes'])} dtypes x {len(suite['layouts'])} layouts x "
          f"{len(suite['modes'])} modes x {len(suite['batches'])} batches x {len(suite['providers'])} providers "
          f"= {len(groups) * len(suite['batches']) * len(suite['providers'])} rows "
          f"(dtypes {suite['dtypes']}, batches {suite['batches']}, layouts {suite['layouts']}, "
          f"modes {suite['modes']})")

    t0 = time.perf_counter()
    roofs = measure_roofs(device, suite["dtypes"])
    print(f"bench: roofs ({roofs.how}): {roofs.gbps:.1f} GB/s, "
          + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in roofs.tflops.items()))

    from tqdm import tqdm
    rows: list[dict] = []
    bar = tqdm(groups, desc="bench", unit="grp", mininterval=1.0 if sys.stderr.isatty() else 30.0,
               file=sys.stderr, dynamic_ncols=True)
    budget_s = a.time_budget_min * 60 if a.time_budget_min else None
    done = 0
    for e, d, l, m in bar:
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            print(f"\nbench: TIME BUDGET ({a.time_budget_min} min) REACHED: ran {done} of {len(groups)} "
                  "groups; the results below are partial", file=sys.stderr)
            break
        done += 1
        bar.set_postfix_str(f"{e.label} {d} {l} {m}"[:60], refresh=False)
        rows.extend(run_group(e, d, l, m, suite, a, info, roofs, device))
    bar.close()

    out = results_dir(info, a.out)
    if not a.tag and (a.quick or a.suite != "full"):
        a.tag = "_quick" if a.quick else f"_{a.suite}"  # a smoke run must not overwrite the full results
    csv_path = out / f"blocks{a.tag}.csv"
    write_csv(rows, csv_path)
    from bench import report
    note = "" if done == len(groups) else (f"**PARTIAL RUN**: the time budget ({a.time_budget_min} min) stopped it "
                                           f"after {done} of {len(groups)} block/dtype/layout/mode groups.")
    md = report.write_summary(rows, out / f"summary{a.tag}.md", info, roofs, suite,
                              elapsed_s=time.perf_counter() - t0, compile_mode=a.compile_mode, note=note)
    pngs = [] if a.no_plots else report.write_plots(rows, out, a.tag, roofs)
    # run facts, correctness and the per-family speedups; the rest is in the file
    print("\n## ".join(md.split("\n## ")[:3]))
    print(f"bench: wrote {csv_path} ({len(rows)} rows), {out / f'summary{a.tag}.md'}"
          + "".join(f", {p}" for p in pngs))
    bad = [r for r in rows if r["status"] in FAILING]
    if bad:
        print(f"\nbench: !!! {len(bad)} FAILING ROWS (correctness failures or errors) !!!", file=sys.stderr)
        seen = set()
        for r in bad:
            k = (r["op"], r["label"], r["provider"], r["dtype"], r["layout"], r["mode"], r["reason"])
            if k in seen:
                continue
            seen.add(k)
            print(f"  {r['status']:5s} {r['provider']:15s} {r['op']:18s} {r['label']:36s} {r['dtype']} "
                  f"{r['layout']} {r['mode']}: {r['reason']}", file=sys.stderr)
            if len(seen) >= 40:
                print(f"  ... see {csv_path} (status column)", file=sys.stderr)
                break
        return 1 if a.strict else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
