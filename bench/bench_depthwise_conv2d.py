"""depthwise_conv2d (the training op): per-layer forward / backward / forward+backward, and whole-model
training steps, original vs swapped.

As a module of the block suite (``python -m bench.run --op depthwise_conv2d``): the catalogue's
depthwise shapes (bench/catalogue.py: every depthwise conv of the catalogued models, efficientnet_b0,
convnext_tiny 7x7, RepLKNet-31B 31x31/13x13) in fwd and fwdbwd modes; eager = the ``nn.Conv2d``
(cuDNN), compile = torch.compile of the reference. Params: (weight (K, 1, k, k), bias (K,)).

Standalone (``python -m bench.bench_depthwise_conv2d``), the training view:
- ``--layers``: every shape x {fwd, bwd, fwdbwd} x layout x dtype; baselines ``cudnn`` (nn.Conv2d
  eager), ``native`` (PyTorch's own depthwise kernels, cuDNN disabled), ``amp`` (fp32 parameters
  under torch.autocast at the row's dtype), ``compile`` (torch.compile of F.conv2d); fastconv
  ``triton``/``cuda``. ``bwd`` times grad_x + grad_weight + grad_bias from a saved graph, and
  ``wgrad`` the weight/bias gradient alone (PyTorch: the slow part). Geomeans vs cuDNN in the summary.
- ``--models``: one SGD step (forward, loss, backward, step) of mobilenet_v2, efficientnet_b0 and
  convnext_tiny, batch 128, AMP (fp16 autocast), channels_last: original vs
  ``fastconv.optimize(model, training=True)``.
Writes bench/results/<device>/depthwise_{layers,models}.csv and depthwise.md. Without a GPU only a
tiny harness check runs (reference backend; numbers are not GPU measurements and say so).
"""
from __future__ import annotations

import argparse
import csv
import math
import zlib

import torch
import torch.nn.functional as F
from torch import nn

import fastconv
from bench.common import interpret_if_no_gpu
from fastconv import reference as ref

OP = "depthwise_conv2d"
HAS_BN = False      # eager is the bare conv: no eager_folded variant
REAL_BLOCK = False  # cases are built from the config (RepLKNet is listed, not a model here)


def param_shapes(cfg) -> list:
    return [(cfg["K"], 1, cfg["kernel"], cfg["kernel"]), (cfg["K"],)]


def folded_params(entry, block, part) -> list:
    from bench.providers import random_params
    return random_params(param_shapes(entry.cfg), zlib.crc32(entry.key.encode()))


def eager_module(entry, block, part) -> nn.Module:
    c = entry.cfg
    conv = nn.Conv2d(c["C"], c["K"], c["kernel"], c["stride"], c["kernel"] // 2, groups=c["C"])
    w, b = folded_params(entry, block, part)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(b)
    return conv


def reference(cfg, x, w, b):
    """x: (N, C, H, W) -> (N, K, H', W')."""
    return ref.depthwise_conv2d(x, w, b, stride=cfg["stride"])


def fast(cfg, x, w, b, backend):
    return fastconv.depthwise_conv2d(x, w, b, stride=cfg["stride"], backend=backend)


# ---------------------------------------------------------------------------------------------
# standalone: per-layer fwd / bwd / fwdbwd / wgrad with the training baselines
# ---------------------------------------------------------------------------------------------

LAYER_PROVIDERS = ("cudnn", "native", "amp", "compile", "fastconv_triton", "fastconv_cuda")
LAYER_MODES = ("fwd", "bwd", "fwdbwd", "wgrad")


def _layer_fn(provider, cfg, w32, b32, dtype):
    """A function (x, w, b) -> y and the (w, b) it should be called with."""
    s, p, c = cfg["stride"], cfg["kernel"] // 2, cfg["C"]
    if provider in ("cudnn", "native"):
        def f(x, w, b):
            with torch.backends.cudnn.flags(enabled=provider == "cudnn"):
                return F.conv2d(x, w, b, s, p, 1, c)
        return f, (w32.to(dtype), b32.to(dtype))
    if provider == "amp":
        def f(x, w, b):
            with torch.autocast(x.device.type, dtype=dtype):
                return F.conv2d(x, w, b, s, p, 1, c)
        return f, (w32, b32)
    if provider == "compile":
        torch._dynamo.reset()
        return torch.compile(lambda x, w, b: F.conv2d(x, w, b, s, p, 1, c), fullgraph=True), \
            (w32.to(dtype), b32.to(dtype))
    backend = provider[len("fastconv_"):]
    return (lambda x, w, b: fastconv.depthwise_conv2d(x, w, b, stride=s, backend=backend)), \
        (w32.to(dtype), b32.to(dtype))


def _runnable(provider, on_gpu):
    if provider == "amp" or provider == "compile":
        return on_gpu, "GPU only"
    if provider.startswith("fastconv_"):
        be = provider[len("fastconv_"):]
        av = fastconv.backends()[be]
        if not av["available"] or not on_gpu:
            return False, av["why"] if not av["available"] else "GPU only"
        if be == "cuda" and not torch._C._dispatch_has_kernel_for_dispatch_key(
                "fastconv::depthwise_conv2d_cuda", "CUDA"):
            return False, "no depthwise_conv2d CUDA kernel in fastconv._C"
    return True, ""


def time_layer(provider, cfg, batch, dtype, layout, mode, device, timer):
    """Milliseconds of one (provider, shape, mode) measurement."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg["C"], cfg["H"], cfg["W"], generator=g).to(device, dtype).contiguous(memory_format=fmt)
    w32 = (torch.randn(cfg["K"], 1, cfg["kernel"], cfg["kernel"], generator=g) / cfg["kernel"]).to(device)
    b32 = (torch.randn(cfg["K"], generator=g) * 0.1).to(device)
    f, (w, b) = _layer_fn(provider, cfg, w32, b32, dtype)
    if mode == "fwd":
        with torch.no_grad():
            return timer(lambda: f(x, w, b), None)
    leaves_x = x.detach().requires_grad_(mode != "wgrad")
    w, b = w.detach().requires_grad_(), b.detach().requires_grad_()
    leaves = ([leaves_x] if mode != "wgrad" else []) + [w, b]
    y = f(leaves_x, w, b)
    gy = torch.randn(y.shape, generator=g).to(device, y.dtype).contiguous(memory_format=fmt)
    if mode == "fwdbwd":
        return timer(lambda: torch.autograd.grad(f(leaves_x, w, b), leaves, gy), None)
    return timer(lambda: torch.autograd.grad(y, leaves, gy, retain_graph=True), None)


def _geomean(v):
    v = [x for x in v if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")


def run_layers(a, on_gpu, device, timer) -> list[dict]:
    from bench import catalogue as cat
    entries = cat.build_catalogue(ops=[OP])
    if a.limit:
        entries = entries[:a.limit]
    rows = []
    for e in entries:
        cfg = e.cfg
        for dtype_name in a.dtype:
            dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
            for layout in a.layout:
                for mode in a.mode:
                    for batch in a.batch:
                        base = None
                        for prov in LAYER_PROVIDERS:
                            row = dict(label=e.label, C=cfg["C"], H=cfg["H"], K=cfg["K"], kernel=cfg["kernel"],
                                       stride=cfg["stride"], families="+".join(e.families), batch=batch,
                                       dtype=dtype_name, layout=layout, mode=mode, provider=prov)
                            ok, why = _runnable(prov, on_gpu)
                            if prov == "amp" and dtype == torch.float32:
                                ok, why = False, "amp rows are fp16/bf16"
                            if not ok:
                                rows.append({**row, "status": "skipped", "reason": why})
                                continue
                            try:
                                ms = time_layer(prov, cfg, batch, dtype, layout, mode, device, timer)
                            except Exception as ex:  # noqa: BLE001 - record and go on
                                rows.append({**row, "status": "error", "reason": f"{type(ex).__name__}: {ex}"[:300]})
                                continue
                            if prov == "cudnn":
                                base = ms
                            rows.append({**row, "status": "ok", "ms": ms,
                                         "speedup_vs_cudnn": base / ms if base else ""})
                            print(f"{e.label:28s} b{batch} {dtype_name} {layout} {mode:6s} {prov:16s} {ms:9.4f} ms",
                                  flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# standalone: whole-model training step
# ---------------------------------------------------------------------------------------------

TRAIN_MODELS = ("mobilenet_v2", "efficientnet_b0", "convnext_tiny")


def time_model(name, swapped, batch, hw, device, dtype, timer):
    import torchvision.models as tvm
    torch.manual_seed(0)
    model = getattr(tvm, name)(weights=None, num_classes=1000).to(device).to(memory_format=torch.channels_last)
    model.train()
    if swapped:
        fastconv.optimize(model, training=True)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")
    x = torch.randn(batch, 3, hw, hw, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return timer(step, None)


def run_models(a, on_gpu, device, timer) -> list[dict]:
    rows = []
    batch, hw = (a.model_batch, 224) if on_gpu else (2, 32)
    dtype = torch.float16 if on_gpu else torch.float32
    for name in a.models_list:
        times = {}
        for swapped in (False, True):
            try:
                times[swapped] = time_model(name, swapped, batch, hw, device, dtype, timer)
                status, reason = "ok", ""
            except Exception as ex:  # noqa: BLE001
                times[swapped], status, reason = float("nan"), "error", f"{type(ex).__name__}: {ex}"[:300]
            rows.append(dict(model=name, variant="swapped" if swapped else "original", batch=batch, hw=hw,
                             dtype=str(dtype).replace("torch.", ""), layout="channels_last", ms=times[swapped],
                             status=status, reason=reason))
        rows[-1]["speedup_vs_original"] = times[False] / times[True] if times[True] else ""
        print(f"{name}: original {times[False]:.3f} ms, swapped {times[True]:.3f} ms", flush=True)
    return rows


def _write(path, rows):
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def summary(layer_rows, model_rows, info) -> str:
    L = [f"# depthwise_conv2d training benchmark — {info.device}", "",
         f"git {info.git_sha}, torch {info.torch_version}, triton {info.triton_version}, timing "
         + ("CUDA events (triton do_bench, L2 flushed)" if info.on_gpu else
            "CPU wall clock: a harness check, NOT a GPU measurement"), ""]
    if layer_rows:
        L += ["| mode | dtype | layout | provider | layers | geomean speedup vs cudnn |", "|---|---|---|---|---|---|"]
        keys = sorted({(r["mode"], r["dtype"], r["layout"], r["provider"]) for r in layer_rows if r["status"] == "ok"})
        for mode, dt, lay, prov in keys:
            sp = [r["speedup_vs_cudnn"] for r in layer_rows if (r["mode"], r["dtype"], r["layout"], r["provider"]) ==
                  (mode, dt, lay, prov) and r["status"] == "ok" and r.get("speedup_vs_cudnn") not in ("", None)]
            L.append(f"| {mode} | {dt} | {lay} | {prov} | {len(sp)} | {_geomean(sp):.3f} |")
        L.append("")
    if model_rows:
        L += ["| model | batch | variant | ms/step | speedup |", "|---|---|---|---|---|"]
        for r in model_rows:
            L.append(f"| {r['model']} | {r['batch']} | {r['variant']} | {r['ms']:.3f} | {r.get('speedup_vs_original', '')} |")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    from bench.common import results_dir, run_info, time_cpu, time_gpu
    p = argparse.ArgumentParser(prog="python -m bench.bench_depthwise_conv2d", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", action="store_true", help="per-layer measurements (default: both)")
    p.add_argument("--models", action="store_true", help="whole-model training steps (default: both)")
    p.add_argument("--dtype", nargs="+", default=None, choices=["fp32", "fp16", "bf16"])
    p.add_argument("--layout", nargs="+", default=None, choices=["channels_last", "nchw"])
    p.add_argument("--mode", nargs="+", default=None, choices=LAYER_MODES)
    p.add_argument("--batch", nargs="+", type=int, default=None)
    p.add_argument("--limit", type=int, default=0, help="at most this many shapes")
    p.add_argument("--model-batch", type=int, default=128)
    p.add_argument("--model", dest="models_list", nargs="+", default=list(TRAIN_MODELS), choices=TRAIN_MODELS)
    p.add_argument("--out", help="results folder (default bench/results/<device>/)")
    a = p.parse_args(argv)
    # Set before the first Triton kernel import (fastconv imports them lazily); not at module import,
    # which the block suite and its tests do too.
    on_gpu = interpret_if_no_gpu()
    fastconv.refresh_backends()
    device = torch.device("cuda" if on_gpu else "cpu")
    a.dtype = a.dtype or (["fp16", "fp32"] if on_gpu else ["fp32"])
    a.layout = a.layout or (["channels_last", "nchw"] if on_gpu else ["channels_last"])
    a.mode = a.mode or list(LAYER_MODES)
    a.batch = a.batch or ([32, 128] if on_gpu else [1])
    if not on_gpu:
        a.limit = a.limit or 2
        a.models_list = a.models_list[:1]
    both = not (a.layers or a.models)

    def timer(fn, leaves):
        return (time_gpu(fn, 10.0, 40.0) if on_gpu else time_cpu(fn, budget_s=0.05, max_reps=3)).median
    info = run_info()
    out = results_dir(info, a.out)
    layer_rows = run_layers(a, on_gpu, device, timer) if (a.layers or both) else []
    model_rows = run_models(a, on_gpu, device, timer) if (a.models or both) else []
    _write(out / "depthwise_layers.csv", layer_rows)
    _write(out / "depthwise_models.csv", model_rows)
    (out / "depthwise.md").write_text(summary(layer_rows, model_rows, info))
    print(f"wrote {out}/depthwise_layers.csv, depthwise_models.csv, depthwise.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

