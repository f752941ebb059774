"""Valid calls of every public fastconv op, and the driver that tests/sanitize.sh runs under
compute-sanitizer.

A *case* is one valid call: a flat list of tensors (the leaves autograd differentiates; ``None``
where an optional tensor is absent) plus two functions over such a list: the public op with a
chosen backend, and the plain reference composition (``fastconv.reference``, no custom op). The
builders take a dict of sizes so hypothesis (tests/test_fuzz.py), the fixed lists of the
determinism / GPU-runtime tests and this driver all build calls the same way.

This module imports only torch and fastconv (no pytest, no hypothesis): compute-sanitizer runs it
as a plain script.

    python tests/sanitize_driver.py [--backend cuda] [--device cuda] [--size small|real]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

import fastconv
from fastconv import reference


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _cuda_has(kernel_op: str) -> bool:
    """Whether fastconv._C registered a CUDA implementation for fastconv::<kernel_op>."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"fastconv::{kernel_op}", "CUDA")


OPS = ("dwpw_conv2d", "inverted_residual", "channel_shuffle", "group_conv1x1",
       "shufflenet_v1_unit", "shufflenet_v2_unit", "depthwise_conv2d")
FUSED = ("triton", "cuda")
# How x (and a residual) can be laid out in memory; every one is a valid input.
LAYOUTS = ("nchw", "nhwc", "slice", "offset", "permuted", "nhwc_offset")


def runnable(op: str, backend: str, device: torch.device) -> tuple[bool, str]:
    """Can ``backend`` run ``op`` on ``device`` here? Fused backends land one kernel at a time, so a
    missing fastconv/triton/<op>.py or CUDA kernel means "skip", not "fail"."""
    if backend == "reference":
        return True, ""
    av = fastconv.backends()[backend]
    if not av["available"]:
        return False, f"{backend}: {av['why']}"
    if backend == "triton":
        if device.type != "cuda" and not triton_interpreting():
            return False, "triton on CPU tensors needs TRITON_INTERPRET=1"
        if importlib.util.find_spec(f"fastconv.triton.{op}") is None:
            return False, f"fastconv/triton/{op}.py does not exist yet"
        return True, ""
    if device.type != "cuda":
        return False, "cuda backend needs a CUDA device"
    if not _cuda_has(f"{op}_cuda"):
        return False, f"fastconv._C has no {op}_cuda kernel yet"
    return True, ""


# ---------------------------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------------------------

def randn(shape, dtype, device, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """N(0, scale^2) drawn in fp64 on the CPU, so values do not depend on the device or dtype."""
    return (torch.randn(tuple(shape), dtype=torch.float64, generator=gen) * scale).to(device=device, dtype=dtype)


def weight(k_out, c_in, k, dtype, device, gen) -> torch.Tensor:
    """(k_out, c_in, k, k), Kaiming-like scale so activations stay O(1) through a block."""
    return randn((k_out, c_in, k, k), dtype, device, gen, scale=(c_in * k * k) ** -0.5)


def lay_out(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as t (N, C, H, W) in another memory layout."""
    n, c, h, w = t.shape
    if layout == "nchw":
        return t.contiguous()
    if layout == "nhwc":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "slice":  # strided in C and W, non-zero storage offset
        buf = torch.zeros((n, c + 1, h, 2 * w), dtype=t.dtype, device=t.device)
        view = buf[:, 1:, :, ::2]
        view.copy_(t)
        return view
    if layout == "offset":  # NCHW-contiguous but starting 3 elements into its storage (misaligned)
        flat = torch.zeros(t.numel() + 3, dtype=t.dtype, device=t.device)
        flat[3:].copy_(t.reshape(-1))
        return flat[3:].view(n, c, h, w)
    if layout == "nhwc_offset":
        flat = torch.zeros(t.numel() + 1, dtype=t.dtype, device=t.device)
        flat[1:].copy_(t.permute(0, 2, 3, 1).reshape(-1))
        return flat[1:].view(n, h, w, c).permute(0, 3, 1, 2)
    if layout == "permuted":  # stored as (N, H, C, W): neither NCHW nor NHWC
        return t.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
    raise ValueError(layout)


def scramble(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A non-contiguous copy of a weight or bias (reversed storage order / every other element)."""
    if t is None:
        return None
    if t.dim() == 1:
        buf = torch.zeros(2 * t.numel(), dtype=t.dtype, device=t.device)
        buf[::2].copy_(t)
        return buf[::2]
    order = tuple(range(t.dim() - 1, -1, -1))
    return t.permute(order).contiguous().permute(order)


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    op: str
    leaves: list
    call: Callable[[Sequence, str], torch.Tensor]  # (leaves, backend) -> public op's output
    ref: Callable[[Sequence], torch.Tensor]         # leaves -> reference composition's output
    cfg: dict = field(default_factory=dict)

    def run(self, backend: str, leaves: Optional[Sequence] = None) -> torch.Tensor:
        return self.call(self.leaves if leaves is None else leaves, backend)

    def __repr__(self) -> str:
        shapes = [None if t is None else tuple(t.shape) for t in self.leaves]
        return f"Case({self.op}, {self.cfg}, leaves={shapes})"


def _finish(op, leaves, call, ref, cfg, dtype, device):
    """Apply the cfg's layout to x (and any activation-shaped tensor) and optionally scramble params."""
    layout = cfg.get("layout", "nchw")
    leaves = list(leaves)
    leaves[0] = lay_out(leaves[0], layout)
    for i in cfg.get("act_shaped", ()):
        if leaves[i] is not None:
            leaves[i] = lay_out(leaves[i], layout)
    if cfg.get("scramble", False):
        leaves = [leaves[0]] + [t if i in cfg.get("act_shaped", ()) else scramble(t)
                                for i, t in enumerate(leaves[1:], 1)]
    return Case(op, leaves, call, ref, {k: v for k, v in cfg.items() if k != "act_shaped"})


def build(op: str, cfg: dict, dtype=torch.float32, device="cpu") -> Case:
    """One valid call of ``op``; ``cfg`` holds sizes and options (see the per-op builders)."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    return _BUILDERS[op](dict(cfg), dtype, device, gen)


def _dwpw(cfg, dtype, dev, gen):
    n, c, kout, h, w, k = (cfg[s] for s in ("n", "c", "kout", "h", "w", "k"))
    stride, dil, pad = cfg.get("stride", 1), cfg.get("dilation", 1), cfg.get("padding")
    dw_act, pw_act = cfg.get("dw_act", "none"), cfg.get("pw_act", "none")
    p = (k // 2) * dil if pad is None else pad
    ho, wo = (h + 2 * p - dil * (k - 1) - 1) // stride + 1, (w + 2 * p - dil * (k - 1) - 1) // stride + 1
    leaves = [randn((n, c, h, w), dtype, dev, gen), weight(c, 1, k, dtype, dev, gen),
              weight(kout, c, 1, dtype, dev, gen),
              randn((c,), dtype, dev, gen, 0.1) if cfg.get("dw_bias", True) else None,
              randn((kout,), dtype, dev, gen, 0.1) if cfg.get("pw_bias", True) else None,
              randn((n, kout, ho, wo), dtype, dev, gen) if cfg.get("residual", False) else None]
    kw = dict(stride=stride, padding=pad, dilation=dil, dw_act=dw_act, pw_act=pw_act)

    def call(t, be):
        return fastconv.dwpw_conv2d(*t[:5], residual=t[5], backend=be, **kw)

    def ref(t):
        return reference.dwpw_conv2d(*t[:5], residual=t[5], **kw)
    cfg["act_shaped"] = (5,)
    return _finish("dwpw_conv2d", leaves, call, ref, cfg, dtype, dev)


def _ir(cfg, dtype, dev, gen):
    n, c, h, w, k = (cfg[s] for s in ("n", "c", "h", "w", "k"))
    e, kout, s = cfg.get("expand"), cfg["kout"], cfg.get("se")
    hid = c if e is None else e
    stride, pad, act = cfg.get("stride", 1), cfg.get("padding"), cfg.get("act", "relu6")
    se_act, se_gate, res = cfg.get("se_act", "relu"), cfg.get("se_gate", "hardsigmoid"), cfg.get("residual", False)
    bias = cfg.get("bias", True)
    leaves = [randn((n, c, h, w), dtype, dev, gen),
              None if e is None else weight(e, c, 1, dtype, dev, gen),
              weight(hid, 1, k, dtype, dev, gen), weight(kout, hid, 1, dtype, dev, gen),
              randn((e,), dtype, dev, gen, 0.1) if bias and e is not None else None,
              randn((hid,), dtype, dev, gen, 0.1) if bias else None,
              randn((kout,), dtype, dev, gen, 0.1) if bias else None]
    if s:
        leaves += [weight(s, hid, 1, dtype, dev, gen), randn((s,), dtype, dev, gen, 0.1) if bias else None,
                   weight(hid, s, 1, dtype, dev, gen), randn((hid,), dtype, dev, gen, 0.1) if bias else None]
    else:
        leaves += [None] * 4
    kw = dict(stride=stride, padding=pad, act=act, se_act=se_act, se_gate=se_gate, residual=res)

    def se_of(t):
        return None if t[7] is None else tuple(t[7:11])

    def call(t, be):
        return fastconv.inverted_residual(*t[:7], se=se_of(t), backend=be, **kw)

    def ref(t):
        return reference.inverted_residual(*t[:7], se=se_of(t), **kw)
    return _finish("inverted_residual", leaves, call, ref, cfg, dtype, dev)


def _shuffle(cfg, dtype, dev, gen):
    n, c, h, w, g = (cfg[s] for s in ("n", "c", "h", "w", "groups"))
    leaves = [randn((n, c, h, w), dtype, dev, gen)]

    def call(t, be):
        return fastconv.channel_shuffle(t[0], g, backend=be)

    def ref(t):
        return reference.channel_shuffle(t[0], g)
    return _finish("channel_shuffle", leaves, call, ref, cfg, dtype, dev)


def _gconv(cfg, dtype, dev, gen):
    n, c, kout, h, w, g = (cfg[s] for s in ("n", "c", "kout", "h", "w", "groups"))
    kw = dict(groups=g, shuffle_in=cfg.get("shuffle_in"), shuffle_out=cfg.get("shuffle_out"),
              act=cfg.get("act", "none"))
    leaves = [randn((n, c, h, w), dtype, dev, gen), weight(kout, c // g, 1, dtype, dev, gen),
              randn((kout,), dtype, dev, gen, 0.1) if cfg.get("bias", True) else None]

    def call(t, be):
        return fastconv.group_conv1x1(*t, backend=be, **kw)

    def ref(t):
        return reference.group_conv1x1(*t, **kw)
    return _finish("group_conv1x1", leaves, call, ref, cfg, dtype, dev)


def _v1(cfg, dtype, dev, gen):
    n, c, m, kout, h, w, g = (cfg[s] for s in ("n", "c", "mid", "kout", "h", "w", "groups"))
    g1, stride, bias = cfg.get("first_groups"), cfg.get("stride", 1), cfg.get("bias", True)
    leaves = [randn((n, c, h, w), dtype, dev, gen), weight(m, c // (g1 or g), 1, dtype, dev, gen),
              randn((m,), dtype, dev, gen, 0.1) if bias else None, weight(m, 1, 3, dtype, dev, gen),
              randn((m,), dtype, dev, gen, 0.1) if bias else None, weight(kout, m // g, 1, dtype, dev, gen),
              randn((kout,), dtype, dev, gen, 0.1) if bias else None]

    def call(t, be):
        return fastconv.shufflenet_v1_unit(*t, groups=g, first_groups=g1, stride=stride, backend=be)

    def ref(t):
        return reference.shufflenet_v1_unit(*t, groups=g, first_groups=g1, stride=stride)
    return _finish("shufflenet_v1_unit", leaves, call, ref, cfg, dtype, dev)


def _v2(cfg, dtype, dev, gen):
    n, c, h, w = (cfg[s] for s in ("n", "c", "h", "w"))
    stride, bias = cfg.get("stride", 1), cfg.get("bias", True)
    b = c // 2 if stride == 1 else cfg["branch"]
    cin2 = c // 2 if stride == 1 else c

    def bvec(size):
        return randn((size,), dtype, dev, gen, 0.1) if bias else None
    leaves = [randn((n, c, h, w), dtype, dev, gen), weight(b, cin2, 1, dtype, dev, gen), bvec(b),
              weight(b, 1, 3, dtype, dev, gen), bvec(b), weight(b, b, 1, dtype, dev, gen), bvec(b)]
    if stride == 2:
        leaves += [weight(c, 1, 3, dtype, dev, gen), bvec(c), weight(b, c, 1, dtype, dev, gen), bvec(b)]
    else:
        leaves += [None] * 4

    def branch1(t):
        return None if t[7] is None else tuple(t[7:11])

    def call(t, be):
        return fastconv.shufflenet_v2_unit(t[0], tuple(t[1:7]), branch1(t), stride=stride, backend=be)

    def ref(t):
        return reference.shufflenet_v2_unit(t[0], tuple(t[1:7]), branch1(t), stride=stride)
    return _finish("shufflenet_v2_unit", leaves, call, ref, cfg, dtype, dev)


def _dw(cfg, dtype, dev, gen):
    n, c, h, w, k = (cfg[s] for s in ("n", "c", "h", "w", "k"))
    m, kw_ = cfg.get("mult", 1), cfg.get("kw", k)
    kw = dict(stride=cfg.get("stride", 1), padding=cfg.get("padding"), dilation=cfg.get("dilation", 1),
              act=cfg.get("act", "none"))
    leaves = [randn((n, c, h, w), dtype, dev, gen),
              randn((c * m, 1, k, kw_), dtype, dev, gen, scale=(k * kw_) ** -0.5),
              randn((c * m,), dtype, dev, gen, 0.1) if cfg.get("bias", True) else None]

    def call(t, be):
        if be == "cuda" and (m > 1 or kw_ != k):  # beyond the CUDA kernel: auto routes it to triton
            be = "auto"
        return fastconv.depthwise_conv2d(*t, backend=be, **kw)

    def ref(t):
        return reference.depthwise_conv2d(*t, **kw)
    return _finish("depthwise_conv2d", leaves, call, ref, cfg, dtype, dev)


_BUILDERS = {"depthwise_conv2d": _dw, "dwpw_conv2d": _dwpw, "inverted_residual": _ir, "channel_shuffle": _shuffle,
             "group_conv1x1": _gconv, "shufflenet_v1_unit": _v1, "shufflenet_v2_unit": _v2}


def standard_cfgs(op: str, size: str = "small") -> list[dict]:
    """A few fixed configurations per op, covering the block shapes the kernels specialise on
    (stride 1/2, odd channel counts, every kernel size, SE, shuffles). ``size="real"`` adds
    ImageNet-like shapes for the GPU."""
    real = size == "real"
    if op == "dwpw_conv2d":
        out = [dict(n=2, c=8, kout=16, h=9, w=7, k=3, dw_act="relu6", pw_act="relu6"),
               dict(n=1, c=5, kout=3, h=8, w=8, k=5, stride=2, dw_act="hardswish", residual=False),
               dict(n=2, c=16, kout=16, h=6, w=5, k=7, pw_act="silu", residual=True, dw_bias=False),
               dict(n=1, c=3, kout=7, h=10, w=9, k=3, stride=2, dilation=2, layout="nhwc")]
        if real:
            out += [dict(n=8, c=128, kout=128, h=56, w=56, k=3, dw_act="relu", pw_act="relu"),
                    dict(n=4, c=96, kout=192, h=28, w=28, k=5, stride=2, layout="nhwc", dw_act="relu6")]
    elif op == "inverted_residual":
        out = [dict(n=2, c=8, kout=8, expand=24, h=8, w=8, k=3, residual=True),
               dict(n=1, c=6, kout=10, expand=None, h=9, w=7, k=5, stride=2, act="hardswish"),
               dict(n=2, c=8, kout=12, expand=16, h=7, w=7, k=7, se=4, act="silu", se_gate="sigmoid"),
               dict(n=1, c=5, kout=5, expand=15, h=6, w=6, k=3, se=3, residual=True, layout="nhwc")]
        if real:
            out += [dict(n=8, c=32, kout=32, expand=192, h=28, w=28, k=3, residual=True),
                    dict(n=4, c=40, kout=80, expand=240, h=28, w=28, k=5, stride=2, se=64, act="hardswish",
                         layout="nhwc")]
    elif op == "channel_shuffle":
        out = [dict(n=2, c=12, h=5, w=7, groups=3), dict(n=1, c=8, h=4, w=4, groups=2, layout="nhwc"),
               dict(n=3, c=30, h=3, w=1, groups=5)]
        if real:
            out += [dict(n=16, c=232, h=14, w=14, groups=2), dict(n=8, c=240, h=28, w=28, groups=8, layout="nhwc")]
    elif op == "group_conv1x1":
        out = [dict(n=2, c=12, kout=6, h=5, w=5, groups=3, shuffle_out=3, act="relu"),
               dict(n=1, c=8, kout=16, h=7, w=3, groups=2, shuffle_in=2, layout="nhwc"),
               dict(n=2, c=9, kout=9, h=4, w=6, groups=1, bias=False)]
        if real:
            out += [dict(n=16, c=240, kout=240, h=28, w=28, groups=3, shuffle_out=3, act="relu"),
                    dict(n=8, c=480, kout=120, h=14, w=14, groups=8, shuffle_in=8, layout="nhwc")]
    elif op == "shufflenet_v1_unit":
        out = [dict(n=2, c=12, mid=6, kout=12, h=6, w=6, groups=3),
               dict(n=1, c=6, mid=6, kout=6, h=7, w=5, groups=3, stride=2, first_groups=1),
               dict(n=2, c=8, mid=4, kout=8, h=5, w=5, groups=2, layout="nhwc")]
        if real:
            out += [dict(n=8, c=240, mid=60, kout=240, h=28, w=28, groups=3),
                    dict(n=8, c=240, mid=120, kout=240, h=28, w=28, groups=3, stride=2, layout="nhwc")]
    elif op == "shufflenet_v2_unit":
        out = [dict(n=2, c=8, h=6, w=6), dict(n=1, c=6, h=7, w=5, stride=2, branch=5),
               dict(n=2, c=10, h=5, w=3, layout="nhwc")]
        if real:
            out += [dict(n=16, c=116, h=28, w=28), dict(n=16, c=116, h=28, w=28, stride=2, branch=116,
                                                         layout="nhwc")]
    elif op == "depthwise_conv2d":
        out = [dict(n=2, c=8, h=9, w=7, k=3, act="relu6"),
               dict(n=1, c=5, h=11, w=10, k=7, stride=2, act="hardswish", layout="nhwc"),
               dict(n=2, c=6, h=8, w=8, k=5, mult=2, dilation=2, act="silu", bias=False),
               dict(n=1, c=3, h=12, w=12, k=13, layout="nhwc")]
        if real:
            out += [dict(n=8, c=144, h=56, w=56, k=3, stride=2, layout="nhwc", act="relu6"),
                    dict(n=4, c=384, h=14, w=14, k=7, layout="nhwc"),
                    dict(n=2, c=256, h=28, w=28, k=31, layout="nhwc")]
    else:
        raise ValueError(op)
    return out


# ---------------------------------------------------------------------------------------------
# the sanitizer driver
# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", action="append", choices=FUSED + ("reference",),
                   help="backend(s) to run (default: cuda)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", default="small", choices=("small", "real"))
    p.add_argument("--grad", action="store_true", help="also run backward")
    args = p.parse_args(argv)
    backends = args.backend or ["cuda"]
    device = torch.device(args.device)
    ran = skipped = bad = 0
    for be in backends:
        for op in OPS:
            ok, why = runnable(op, be, device)
            if not ok:
                print(f"skip {op}/{be}: {why}")
                skipped += 1
                continue
            for cfg in standard_cfgs(op, args.size):
                for dtype in (torch.float32, torch.float16, torch.bfloat16):
                    case = build(op, cfg, dtype, device)
                    if args.grad:
                        for t in case.leaves:
                            if t is not None:
                                t.requires_grad_(True)
                    out = case.run(be)
                    if args.grad:
                        out.backward(torch.ones_like(out))
                    # The reference runs on the CPU so that only fastconv's kernels (and a few
                    # copies) run under the sanitizer.
                    want = case.ref([None if t is None else t.detach().cpu().double() for t in case.leaves])
                    got = out.detach().cpu().double()
                    err = (got - want).abs().max().item() if got.numel() else 0.0
                    tol = {torch.float32: 1e-3, torch.float16: 5e-2, torch.bfloat16: 2e-1}[dtype]
                    tol *= max(1.0, want.abs().max().item())
                    ran += 1
                    if not (err <= tol):
                        bad += 1
                        print(f"MISMATCH {op}/{be} {dtype} {cfg}: max err {err:.3g} > {tol:.3g}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(f"sanitize_driver: {ran} calls, {skipped} op/backend pairs skipped, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
