"""Compile every Triton kernel, every autotune config, for sm_90 without a GPU, as real launches would.

The interpreter (TRITON_INTERPRET=1) checks the kernels' arithmetic but never runs the GPU
compiler, which is where register spills, shared-memory overflows, layout errors and unsupported
ops show up. This script runs the real launchers (fastconv.triton.<op>.forward) on CPU tensors of
real catalogue block shapes (bench/catalogue.py) with every kernel object replaced by a recorder,
so nothing launches: each recorded call is then specialised exactly as Triton's launcher would
(Triton's own binder: integers divisible by 16 get ``tt.divisibility``, integers equal to 1 become
constants, pointers 16-byte aligned) for every autotune config the kernel's pruning keeps, compiled
to a cubin, and measured:

  regs / local (spill) bytes / shared memory  from ``cuobjdump --dump-resource-usage`` of the cubin
                                             (the triton wheel ships cuobjdump);
  vec%  the share of global-load instructions in the PTX (ld.global + cp.async) that move >= 8
        bytes per thread (static instruction count, not weighted by trip counts); vec_bytes%
        the same weighted by the bytes each instruction moves.

Fails (exit 1) on any compile error, any spill (local memory), or shared memory over the sm_90
limit. Shapes: every catalogue block (bench/catalogue.py) at batch 1 and 32. ``--all`` compiles
every distinct specialisation in both layouts (long); the default (what
tests/test_triton_codegen.py runs in CI) compiles, in NHWC (the performance path), fp16 and fp32
(bf16 allocates registers as fp16 does; --dtypes adds it), every autotune config of every kernel
variant once, at the catalogue launch with the largest tile.

    python tests/triton_codegen.py [--all] [--ops dwpw_conv2d,...] [--dtypes fp16,...] [-j 2]
Run with TRITON_INTERPRET unset.
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The harness (recording the launchers, Triton's binder, compiling, reading the binaries) lives in
# bench/triton_capture.py, shared with the static report; this file picks what to compile and judges it.
from bench.triton_capture import (SMEM_LIMIT, TORCH_DTYPES as DTYPES, call_launcher, compile_spec,  # noqa: E402,F401
                                  jit_fn, load_mix, make_inputs, recording, resources, specialise, target)

TARGET = target()
# The default mode compiles, per kernel, dtype, layout, autotune config and value of these
# structural parameters, the one catalogue launch with the largest tile (product of the
# launcher-chosen BLOCK_* constants): the worst case for registers. --all compiles every distinct
# specialisation.
_STRUCTURAL = {"KS", "STRIDE", "stride", "SE_PASS1", "HAS_EXPAND", "EXTRA", "PASS", "RESIDUAL", "RES", "HAS_RES",
               "HAS_SHUF_IN", "HAS_SHUF_OUT"}


def launch_op(op: str, cfg: dict, batch: int, dtype, fmt: str) -> None:
    """Runs fastconv.triton.<op>.forward on uninitialised CPU tensors of a catalogue shape (inside
    recording() nothing is computed), every path the launcher has."""
    call_launcher(op, cfg, *make_inputs(op, cfg, batch, dtype, fmt), all_paths=True)


_JOBS: list = []


def _compile_job(i: int) -> dict:
    spec = _JOBS[i][1]
    t0 = time.time()
    try:
        c = compile_spec(spec)
        r = resources(c.asm["cubin"])
        n, wide, nb, wb = load_mix(c.asm["ptx"], with_bytes=True)
        return dict(ok=True, regs=r.get("REG", -1), spill=r.get("LOCAL", 0) + r.get("STACK", 0),
                    smem=c.metadata.shared, loads=n, wide=wide, bytes=nb, wide_bytes=wb, secs=time.time() - t0)
    except Exception as e:  # noqa: BLE001 - report every failing variant, then fail
        return dict(ok=False, error=f"{type(e).__name__}: {str(e)[:600]}", secs=time.time() - t0)


def _spec_key(spec, dtype: str, fmt: str, coarse: bool):
    """(dedup key, tile size) of one specialisation."""
    label, fn, sig, consts, attrs = spec.label, spec.fn, spec.sig, spec.consts, spec.attrs
    names = fn.arg_names
    size = 1
    for k, v in consts.items():
        if names[k[0]].startswith("BLOCK_") and names[k[0]] not in label:
            size *= v
    if coarse:
        consts = {k: v for k, v in consts.items() if names[k[0]] in _STRUCTURAL}
        return (fn.__name__, dtype, fmt, repr(sorted(label.items())), repr(sorted(consts.items()))), size
    return (fn.__name__, repr(sorted(sig.items())), repr(sorted(consts.items())), repr(sorted(attrs.items())),
            repr(sorted(label.items()))), size


def collect(ops, dtypes, full: bool, fmts=("nhwc", "nchw"), shapes=None, kernels=None, batches=None) -> list:
    """Unique (kernel, op, dtype, layout, shape label, specialisation) jobs; ``shapes``: substrings
    of catalogue labels to keep, ``kernels``: kernel names to keep (None: all)."""
    from bench.catalogue import build_catalogue
    entries = [e for e in build_catalogue() if e.op in ops]
    if shapes:
        entries = [e for e in entries if any(q in e.label for q in shapes)]
    batches = batches or (1, 32)
    jobs = {}
    for e in entries:
        for dname in dtypes:
            for fmt in fmts:
                for b in batches:
                    with recording() as log:
                        launch_op(e.op, e.cfg, b, DTYPES[dname], fmt)
                    for kernel, _grid, args, kwargs in log:
                        if kernels and jit_fn(kernel).__name__ not in kernels:
                            continue
                        for spec in specialise(kernel, args, kwargs):
                            key, size = _spec_key(spec, dname, fmt, coarse=not full)
                            if key not in jobs or size > jobs[key][0]:
                                jobs[key] = (size, (dict(kernel=spec[1].__name__, op=e.op, dtype=dname, fmt=fmt,
                                                         shape=f"{e.label} n{b}"), spec))
    jobs = [j for _, j in jobs.values()]
    return jobs


def main(argv=None) -> int:
    from fastconv._common import OPS
    assert os.environ.get("TRITON_INTERPRET", "0") != "1", "run without TRITON_INTERPRET"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="every catalogue shape, batch 1 and 32, both layouts")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--dtypes", default="", help="fp16,bf16,fp32 (default: fp16,fp32; all three with --all)")
    ap.add_argument("--fmts", default="", help="nhwc,nchw (default: nhwc, both with --all)")
    ap.add_argument("--shapes", default="", help="comma-separated substrings of catalogue labels")
    ap.add_argument("--kernels", default="", help="comma-separated kernel names")
    ap.add_argument("--batches", default="", help="comma-separated batch sizes (default: 1, or 1,32 with --all)")
    ap.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--list", action="store_true", help="count the compilations, compile nothing")
    ap.add_argument("--summary-only", action="store_true", help="only the per-kernel summary table")
    a = ap.parse_args(argv)
    t0 = time.time()
    dtypes = (a.dtypes or ("fp16,bf16,fp32" if a.all else "fp16,fp32")).split(",")
    jobs = collect(a.ops.split(","), dtypes, a.all, (a.fmts or ("nhwc,nchw" if a.all else "nhwc")).split(","),
                   [q for q in a.shapes.split(",") if q], [q for q in a.kernels.split(",") if q],
                   [int(q) for q in a.batches.split(",") if q])
    _JOBS[:] = jobs
    if a.list:
        for meta, spec in jobs:
            print(meta, spec[0])
        return 0
    print(f"{len(jobs)} compilations ({time.time() - t0:.1f} s to record the launches)", flush=True)
    with contextlib.ExitStack() as stack:
        if a.jobs > 1:
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(a.jobs))
            results = pool.imap(_compile_job, range(len(jobs)), chunksize=1)
        else:
            results = map(_compile_job, range(len(jobs)))
        failures, summary = _report(jobs, results, a.summary_only)
    print(f"{failures} failures ({time.time() - t0:.0f} s)")
    return 1 if failures else 0


def _report(jobs, results, summary_only):
    failures = 0
    summary = defaultdict(lambda: dict(n=0, spilled=0, regs=0, vec=[], wide=0, loads=0, wb=0, nb=0))
    for (meta, spec), r in zip(jobs, results):
        label = spec[0]
        ok = r["ok"] and r["spill"] == 0 and r["smem"] <= SMEM_LIMIT
        failures += not ok
        where = f"{meta['kernel']} {meta['dtype']} {meta['fmt']} [{meta['shape']}] {label}"
        if not r["ok"]:
            print(f"FAIL {where}: {r['error']}", flush=True)
            continue
        vec = 100.0 * r["wide"] / max(1, r["loads"])
        vecb = 100.0 * r["wide_bytes"] / max(1, r["bytes"])
        if not summary_only or not ok:
            print(f"{'OK  ' if ok else 'FAIL'} {where} regs={r['regs']} spill={r['spill']} smem={r['smem']} "
                  f"loads={r['loads']} vec={vec:.0f}% vec_bytes={vecb:.0f}% ({r['secs']:.1f}s)", flush=True)
        s = summary[(meta["kernel"], meta["dtype"], meta["fmt"])]
        s["n"] += 1
        s["spilled"] += r["spill"] > 0
        s["regs"] = max(s["regs"], r["regs"])
        s["vec"].append(vec)
        s["wide"] += r["wide"]
        s["loads"] += r["loads"]
        s["wb"] += r["wide_bytes"]
        s["nb"] += r["bytes"]
    print("\nkernel                      dtype layout  compiled spilled max_regs  vec% (worst config / all)  "
          "vec% of load bytes")
    for (kern, dt, fmt), s in sorted(summary.items()):
        print(f"{kern:27s} {dt:5s} {fmt:6s} {s['n']:8d} {s['spilled']:7d} {s['regs']:8d}  "
              f"{min(s['vec']):3.0f}% / {100.0 * s['wide'] / max(1, s['loads']):3.0f}%"
              f"{100.0 * s['wb'] / max(1, s['nb']):19.0f}%")
    return failures, summary


if __name__ == "__main__":
    sys.exit(main())
