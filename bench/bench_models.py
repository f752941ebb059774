"""Whole models: the model as it ships vs ``fastconv.optimize(model)``, with and without CUDA graphs.

    python -m bench.bench_models [--model NAME ...] [--backend auto cuda triton] [--no-graphs]
    python -m bench.run --models ...            (same thing)

GPU: fp16, channels_last, eval mode, inference_mode; latency at batch 1 and throughput at batch 256
(CUDA-event medians through triton.testing.do_bench), each with and without CUDA graphs on both
sides; outputs compared against an fp64 CPU evaluation of the unmodified model first.
Without a GPU: the same comparison at batch 1 in fp32 on the CPU (fastconv "auto" resolves to its
PyTorch reference there), timings labelled CPU, no CUDA graphs.
Writes bench/results/<device>/models.csv and models.md.
"""
from __future__ import annotations

import argparse
import copy
import csv
import sys

from bench.common import interpret_if_no_gpu

HAS_GPU = interpret_if_no_gpu()

import torch  # noqa: E402

from bench import catalogue as cat  # noqa: E402
from bench.common import (DTYPES, compare, memory_format, norm_dtype, norm_layout, results_dir,  # noqa: E402
                          run_info, time_cpu, time_gpu)

MODELS = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5",
          "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "mobilenet_v1_1.0",
          "shufflenet_v1_g3"]
COLUMNS = ["timestamp", "git_sha", "device", "torch", "cuda", "cudnn", "triton", "timing", "model", "side",
           "backend", "dtype", "layout", "batch", "cuda_graphs", "status", "reason", "max_err", "err_bound",
           "replaced_blocks", "ms_median", "ms_p20", "ms_p80", "images_per_s", "speedup_vs_baseline"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.bench_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", choices=list(cat.MODELS), default=None, metavar="MODEL",
                   help="default: " + " ".join(MODELS))
    p.add_argument("--backend", nargs="+", default=["auto"], choices=["auto", "cuda", "triton", "reference"])
    p.add_argument("--dtype", type=norm_dtype, default=None, help="GPU default fp16, CPU default fp32")
    p.add_argument("--layout", type=norm_layout, default="channels_last")
    p.add_argument("--latency-batch", type=int, default=1)
    p.add_argument("--throughput-batch", type=int, default=256)
    p.add_argument("--no-graphs", action="store_true", help="skip the CUDA-graph variants")
    p.add_argument("--warmup-ms", type=float, default=25.0)
    p.add_argument("--rep-ms", type=float, default=100.0)
    p.add_argument("--strict", action="store_true", help="exit 1 on any mismatch or error")
    p.add_argument("--out")
    p.add_argument("--tag", default="")
    # flags of bench.run that may come through `bench.run --models`; accepted and ignored
    p.add_argument("--quick", action="store_true", help="latency batch only, first three models")
    return p.parse_known_args(argv)[0]


class Graphed:
    """A CUDA-graph replay of ``model(x)`` on a static input (captured after warm-up on a side stream)."""

    def __init__(self, model, x):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(s)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = model(x)

    def __call__(self):
        self.graph.replay()
        return self.out


def _timer(on_gpu, a):
    if on_gpu:
        return lambda fn: time_gpu(fn, a.warmup_ms, a.rep_ms)
    return lambda fn: time_cpu(fn, 0.3, 40, min_reps=5)


def main(argv=None) -> int:
    a = parse_args(argv)
    info = run_info()
    on_gpu = info.on_gpu
    device = torch.device("cuda" if on_gpu else "cpu")
    try:
        import fastconv
        optimize = fastconv.optimize
    except (ImportError, AttributeError) as e:
        print(f"bench_models: fastconv.optimize is not available ({e}); nothing to compare. SKIPPED.")
        return 0
    dtype = a.dtype or ("fp16" if on_gpu else "fp32")
    dt = DTYPES[dtype]
    names = a.model or MODELS
    if a.quick:
        names = names[:3]
    avail, skipped = cat.available_models()
    batches = [a.latency_batch] if (a.quick or not on_gpu) else [a.latency_batch, a.throughput_batch]
    graphs = [False] if (not on_gpu or a.no_graphs) else [False, True]
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        print(f"bench_models: GPU {info.device}, {dtype}, {a.layout}, batches {batches}, CUDA graphs {graphs}")
    else:
        print(f"bench_models: NO CUDA DEVICE: CPU run at batch {batches} in {dtype}: correctness of "
              "fastconv.optimize plus CPU timings (orientation only; fastconv auto = its PyTorch reference "
              "on CPU), no CUDA graphs.")
    timer = _timer(on_gpu, a)
    rows = []

    def row(**kw):
        r = {k: "" for k in COLUMNS}
        r.update(timestamp=info.timestamp, git_sha=info.git_sha, device=info.device, torch=info.torch_version,
                 cuda=info.cuda_version, cudnn=info.cudnn_version, triton=info.triton_version,
                 timing="cuda_events" if on_gpu else "cpu_perf_counter", dtype=dtype, layout=a.layout)
        r.update(kw)
        rows.append(r)
        return r

    for name in names:
        if name not in avail:
            row(model=name, status="skipped", reason=skipped.get(name, "not buildable"))
            print(f"bench_models: SKIPPING {name}: {skipped.get(name)}")
            continue
        base_cpu = copy.deepcopy(cat.real_model(name)).eval()
        base = copy.deepcopy(base_cpu).to(device=device, dtype=dt, memory_format=memory_format(a.layout))
        g = torch.Generator().manual_seed(0)
        x_check = torch.randn(2, 3, 224, 224, generator=g)
        with torch.inference_mode():
            # fp64 truth on the run's device, channels_last (CPU fp64 depthwise convs are very slow in NCHW)
            cl = torch.channels_last
            m64 = copy.deepcopy(base_cpu).to(device=device, dtype=torch.float64, memory_format=cl)
            truth = m64(x_check.to(device, torch.float64).contiguous(memory_format=cl)).cpu()
            del m64
            xc = x_check.to(device=device, dtype=dt).contiguous(memory_format=memory_format(a.layout))
            theirs = base(xc).float().cpu()
        sides = [("baseline", "", base, "")]
        for be in a.backend:
            try:
                opt, rep = optimize(copy.deepcopy(base), backend=be)
                with torch.inference_mode():
                    ours = opt(xc).float().cpu()
                chk = compare(ours, theirs, truth, dt, "logits")
                st = "ok" if chk.ok else "FAIL"
                why = "" if chk.ok else f"logits: max error {chk.err:.3g} > bound {chk.bound:.3g}"
                sides.append(("fastconv", be, opt, (st, why, chk.err, chk.bound, rep.num_replaced)))
            except Exception as e:
                row(model=name, side="fastconv", backend=be, status="error",
                    reason=f"optimize/check: {type(e).__name__}: {e}"[:300])
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, generator=g).to(device=device, dtype=dt)
            x = x.contiguous(memory_format=memory_format(a.layout))
            for use_graph in graphs:
                base_ms = None
                for side, be, model, verdict in sides:
                    st, why, err, bound, nrep = verdict if verdict else ("ok", "", "", "", "")
                    r = row(model=name, side=side, backend=be, batch=batch, cuda_graphs=use_graph, status=st,
                            reason=why, max_err=err, err_bound=bound, replaced_blocks=nrep)
                    try:
                        with torch.inference_mode():
                            fn = Graphed(model, x) if use_graph else (lambda m=model: m(x))
                            t = timer(fn)
                    except Exception as e:
                        r.update(status="error", reason=f"timing: {type(e).__name__}: {e}"[:300])
                        if on_gpu:
                            torch.cuda.empty_cache()
                        continue
                    r.update(ms_median=t.median, ms_p20=t.p20, ms_p80=t.p80, timing=t.method,
                             images_per_s=batch / (t.median * 1e-3))
                    if side == "baseline":
                        base_ms = t.median
                    elif base_ms and st == "ok":
                        r["speedup_vs_baseline"] = base_ms / t.median
                    print(f"  {name:20s} {side:9s} {be:5s} b{batch:<4d} graphs={str(use_graph):5s} "
                          f"{t.median:9.3f} ms  {batch / (t.median * 1e-3):10.1f} img/s  {st} {why}")
        del base, sides
        if on_gpu:
            torch.cuda.empty_cache()

    out = results_dir(info, a.out)
    path = out / f"models{a.tag}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    md = _markdown(rows, info, on_gpu)
    (out / f"models{a.tag}.md").write_text(md)
    print(md)
    print(f"bench_models: wrote {path} and {out / f'models{a.tag}.md'}")
    bad = [r for r in rows if r["status"] in ("FAIL", "error")]
    if bad:
        print(f"bench_models: !!! {len(bad)} FAILING ROWS !!!", file=sys.stderr)
        for r in bad:
            print(f"  {r['status']} {r['model']} {r['side']} {r['backend']}: {r['reason']}", file=sys.stderr)
        return 1 if a.strict else 0
    return 0


def _markdown(rows, info, on_gpu) -> str:
    from bench.report import md_table, num
    head = [f"# fastconv whole-model benchmark: {info.device}", ""]
    if not on_gpu:
        head += ["> **CPU run (no CUDA device)**: correctness of `fastconv.optimize` and CPU timings for "
                 "orientation only (fastconv runs its PyTorch reference on CPU).", ""]
    head += [f"- {info.timestamp}, git {info.git_sha}, torch {info.torch_version}, CUDA {info.cuda_version}, "
             f"cuDNN {info.cudnn_version}, Triton {info.triton_version}",
             "- baseline: the model as it ships (eval, unfused BN) in the same dtype/layout; fastconv: "
             "`fastconv.optimize(model, backend=...)`. images/s = batch / median time.", "", ""]
    table = []
    for r in rows:
        table.append([r["model"], r["side"], r["backend"], r["batch"], r["cuda_graphs"], r["status"],
                      r["replaced_blocks"], f"{num(r['ms_median']):.3f}" if num(r["ms_median"]) else "-",
                      f"{num(r['images_per_s']):.0f}" if num(r["images_per_s"]) else "-",
                      f"{num(r['speedup_vs_baseline']):.2f}x" if num(r["speedup_vs_baseline"]) else "-",
                      str(r["reason"]).replace("|", "/")[:120]])
    return "\n".join(head) + md_table(["model", "side", "backend", "batch", "graphs", "status", "fused blocks",
                                       "ms (median)", "images/s", "speedup", "note"], table) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
