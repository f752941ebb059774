"""``fastconv.optimize`` over a sweep of torchvision and timm lightweight CNNs (random weights, eval, CPU,
reference backend, 2x3x32x32 input).

Per model: the optimised model's output must be within 2x PyTorch's own fp32 error (the original
model in fp32 against the original in fp64); and the depthwise convs are counted **at run time**
with a ``TorchDispatchMode``: an ``aten.convolution`` with groups == C_in > 1 seen at the top level
runs unfused, one seen inside a ``fastconv::*`` op (the mode sees the custom op as one call; a
nested mode opened inside it sees the reference backend's own convs) runs fused. Over the sweep at
least 90% of the depthwise convs must run inside fused ops.

Deselect with ``-m "not sweep"``. Regenerate the table in docs/OPTIMIZE.md with
``PYTHONPATH=. python tests/test_sweep.py [-v] [model ...]``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastconv.optimize import optimize
from helpers import randomize_bn

pytestmark = pytest.mark.sweep

# (op, index of groups); below the autograd keys (inside a custom op) aten.conv2d is seen undecomposed
_CONVS = {torch.ops.aten.convolution.default: 8, torch.ops.aten.conv2d.default: 6}


def _is_dw(func, args, kwargs) -> bool:
    i = _CONVS.get(func)
    if i is None:
        return False
    x = args[0]
    groups = args[i] if len(args) > i else kwargs.get("groups", 1)
    return groups > 1 and x.dim() == 4 and groups == x.shape[1]


class _Inner(TorchDispatchMode):
    """Counts depthwise convs run by the implementation of one fused op."""

    def __init__(self):
        super().__init__()
        self.dw = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if _is_dw(func, args, kwargs or {}):
            self.dw += 1
        return func(*args, **(kwargs or {}))


class DepthwiseCounter(TorchDispatchMode):
    """Top-level depthwise ``aten.convolution`` calls (unfused) vs those inside ``fastconv::*`` ops (fused).

    While a mode handles a call it is off the mode stack, so the ops a fused op runs inside (the
    reference backend's F.conv2d) are invisible to it. To see them, the fused op is redispatched
    straight to its device kernel under a nested ``_Inner`` mode (calling it plainly would only
    show the nested mode the fastconv op itself again)."""

    def __init__(self):
        super().__init__()
        self.unfused = 0
        self.fused = 0
        self.fused_ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_dw(func, args, kwargs):
            self.unfused += 1
        if func.namespace == "fastconv":
            inner = _Inner()
            x = args[0]
            key = torch._C.DispatchKey.CUDA if x.is_cuda else torch._C.DispatchKey.CPU
            with inner:
                out = func.redispatch(torch._C.DispatchKeySet(key), *args, **kwargs)
            self.fused += inner.dw
            name = func.__name__.split(".")[0]
            self.fused_ops[name] = self.fused_ops.get(name, 0) + 1
            return out
        return func(*args, **kwargs)


def _tv(name):
    def make():
        import torchvision
        return torchvision.models.get_model(name, weights=None)
    return make


def _timm(name, **kw):
    def make():
        import timm
        return timm.create_model(name, pretrained=False, **kw)
    return make


# label -> factory. Lightweight CNNs people deploy: the table and the rest of timm's
# MobileNet/EfficientNet/NAS families, plus torchvision's.
MODELS = {
    "tv/mobilenet_v2": _tv("mobilenet_v2"),
    "tv/mobilenet_v3_large": _tv("mobilenet_v3_large"),
    "tv/mobilenet_v3_small": _tv("mobilenet_v3_small"),
    "tv/shufflenet_v2_x1_0": _tv("shufflenet_v2_x1_0"),
    "tv/mnasnet1_0": _tv("mnasnet1_0"),
    "tv/efficientnet_b0": _tv("efficientnet_b0"),
    "tv/efficientnet_b3": _tv("efficientnet_b3"),
    "tv/efficientnet_v2_s": _tv("efficientnet_v2_s"),
    "timm/mobilenetv2_100": _timm("mobilenetv2_100"),
    "timm/mobilenetv3_large_100": _timm("mobilenetv3_large_100"),
    "timm/mobilenetv3_small_100": _timm("mobilenetv3_small_100"),
    "timm/mobilenetv4_conv_small": _timm("mobilenetv4_conv_small"),
    "timm/mobilenetv4_conv_medium": _timm("mobilenetv4_conv_medium"),
    "timm/efficientnet_b0": _timm("efficientnet_b0"),
    "timm/efficientnet_lite0": _timm("efficientnet_lite0"),
    "timm/mnasnet_100": _timm("mnasnet_100"),
    "timm/spnasnet_100": _timm("spnasnet_100"),
    "timm/fbnetc_100": _timm("fbnetc_100"),
    "timm/fbnetv3_b": _timm("fbnetv3_b"),
    "timm/hardcorenas_a": _timm("hardcorenas_a"),
    "timm/tinynet_e": _timm("tinynet_e"),
    "timm/lcnet_100": _timm("lcnet_100"),
    "timm/ghostnet_100": _timm("ghostnet_100"),
    "timm/mixnet_s": _timm("mixnet_s"),
    "timm/rexnet_100": _timm("rexnet_100"),
    "timm/legacy_xception": _timm("legacy_xception"),
    "timm/xception41": _timm("xception41"),
    "timm/repvit_m1": _timm("repvit_m1"),
    "timm/mobileone_s0": _timm("mobileone_s0"),
}

MIN_FUSED_FRACTION = 0.90
# The fp64 reference run dominates the time (no fast fp64 convs on CPU): the smallest input every model takes.
SIZE = 32


@dataclass
class Result:
    model: str
    dw_before: int  # depthwise convs the original runs
    dw_after: int  # depthwise convs the optimised model runs (MixNet's split convs become one)
    fused: int  # ... of which inside fused fastconv ops
    err: float  # max |optimised - fp64 original|
    err_fp32: float  # max |fp32 original - fp64 original|
    seconds: float  # CPU time (this machine is shared: wall time says little)
    fused_ops: dict
    report: object

    @property
    def fraction(self) -> float:
        return self.fused / self.dw_after if self.dw_after else 1.0


def _count(model, x):
    counter = DepthwiseCounter()
    with torch.no_grad(), counter:
        out = model(x)
    return out, counter


def run_model(label: str, backend: str = "reference") -> Result:
    t0 = time.process_time()
    torch.manual_seed(0)
    model = randomize_bn(MODELS[label]())
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    want, before = _count(model, x)
    with torch.no_grad():
        truth = model.double()(x.double())
    model.float()
    opt, report = optimize(model, backend=backend)
    got, after = _count(opt, x)
    return Result(label, before.unfused, after.unfused + after.fused, after.fused,
                  (got.double() - truth).abs().max().item(), (want.double() - truth).abs().max().item(),
                  time.process_time() - t0, after.fused_ops, report)


def test_counter_sees_fused_ops_as_one_call():
    """The counting premise: a fastconv op is opaque to the outer mode, its reference convs are seen inside."""
    import fastconv
    x = torch.randn(1, 8, 9, 9)
    dw, pw = torch.randn(8, 1, 3, 3), torch.randn(16, 8, 1, 1)
    counter = DepthwiseCounter()
    with torch.no_grad(), counter:
        fastconv.dwpw_conv2d(x, dw, pw, backend="reference")
        torch.nn.functional.conv2d(x, dw, groups=8)
        torch.nn.functional.conv2d(x, pw)
    assert (counter.unfused, counter.fused) == (1, 1)
    assert counter.fused_ops == {"dwpw_conv2d": 1}


_RESULTS: dict[str, Result] = {}


@pytest.mark.parametrize("label", list(MODELS))
def test_model(label):
    r = run_model(label)
    _RESULTS[label] = r
    assert r.err <= 2 * r.err_fp32 + 1e-7, (
        f"{label}: optimised error {r.err:.3g} vs fp32 error {r.err_fp32:.3g}\n{r.report}")
    assert r.dw_after > 0


def test_sweep_fused_fraction():
    missing = [m for m in MODELS if m not in _RESULTS]
    if missing:
        pytest.skip(f"needs every test_model run first (missing {missing[:3]}...)")
    assert len(MODELS) >= 25
    fused = sum(r.fused for r in _RESULTS.values())
    total = sum(r.dw_after for r in _RESULTS.values())
    assert fused / total >= MIN_FUSED_FRACTION, table(list(_RESULTS.values()))


def table(results: list[Result]) -> str:
    lines = ["| model | dw convs (run time) | fused | fraction | err / fp32 err | fused ops |",
             "|---|---|---|---|---|---|"]
    for r in results:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(r.fused_ops.items()))
        dw = f"{r.dw_before}" if r.dw_before == r.dw_after else f"{r.dw_before} -> {r.dw_after}"
        lines.append(f"| {r.model} | {dw} | {r.fused} | {r.fraction:.0%} | {r.err / max(r.err_fp32, 1e-30):.2f} "
                     f"| {ops} |")
    fused = sum(r.fused for r in results)
    total = sum(r.dw_after for r in results)
    lines.append(f"| **all {len(results)}** | {total} | {fused} | {fused / max(total, 1):.1%} | | |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    labels = [a for a in argv if not a.startswith("-")] or list(MODELS)
    results = []
    for label in labels:
        r = run_model(label)
        results.append(r)
        print(f"{label}: {r.fused}/{r.dw_after} fused, err {r.err:.3g} (fp32 {r.err_fp32:.3g}), {r.seconds:.1f}s",
              file=sys.stderr)
        if "-v" in argv:
            print(r.report, file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
