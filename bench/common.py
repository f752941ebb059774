"""What every part of the benchmark shares: names, BN folding, the accuracy rule, timers, run info.

Nothing here knows about a particular op; the per-op modules (bench/bench_<op>.py) build on it.
"""
from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

OPS = ("dwpw_conv2d", "inverted_residual", "channel_shuffle", "group_conv1x1",
       "shufflenet_v1_unit", "shufflenet_v2_unit", "pwdw_conv2d",
       "depthwise_conv2d")
BASELINES = ("eager", "eager_folded", "compile")
FASTCONV = ("fastconv_cuda", "fastconv_triton", "fastconv_auto")
PROVIDERS = BASELINES + FASTCONV
MODES = ("fwd", "fwdbwd")
LAYOUTS = ("channels_last", "nchw")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16",
                  "bfloat16": "bf16"}
_LAYOUT_ALIASES = {"nhwc": "channels_last", "cl": "channels_last", "contiguous": "nchw"}
_MODE_ALIASES = {"forward": "fwd", "fwd+bwd": "fwdbwd", "backward": "fwdbwd", "bwd": "fwdbwd"}

# Accuracy rule shared with tests/helpers.py (kept separate so the bench never imports tests/):
# error vs an fp64 evaluation <= FACTOR x PyTorch's own error at the dtype + FLOOR x max(1, |truth|).
ERR_FACTOR = 2.0
ERR_FLOOR = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
# Gradients: relative L2 error <= FACTOR x PyTorch's own + GRAD_FLOOR. The floor is wide at half
# precision because of ReLU-kink flips (see compare_grad): an unfused conv -> BN -> ReLU in fp16
# measures ~2.5% against the fp64 truth of the folded form; a wrong gradient measures O(1).
GRAD_FLOOR = {torch.float32: 1e-4, torch.float16: 5e-2, torch.bfloat16: 1.5e-1}


def dtype_name(dt: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dt]


def norm_dtype(s: str) -> str:
    s = _DTYPE_ALIASES.get(s.lower(), s.lower())
    if s not in DTYPES:
        raise ValueError(f"unknown dtype {s!r}; use one of {list(DTYPES)}")
    return s


def norm_layout(s: str) -> str:
    s = _LAYOUT_ALIASES.get(s.lower(), s.lower())
    if s not in LAYOUTS:
        raise ValueError(f"unknown layout {s!r}; use one of {list(LAYOUTS)} (or nhwc)")
    return s


def norm_mode(s: str) -> str:
    s = _MODE_ALIASES.get(s.lower(), s.lower())
    if s not in MODES:
        raise ValueError(f"unknown mode {s!r}; use one of {list(MODES)}")
    return s


def memory_format(layout: str) -> torch.memory_format:
    return torch.channels_last if layout == "channels_last" else torch.contiguous_format


def to_layout(t: Optional[Tensor], layout: str) -> Optional[Tensor]:
    if t is None or t.dim() != 4:
        return t
    return t.contiguous(memory_format=memory_format(layout))


# ---------------------------------------------------------------------------------------------
# reading blocks: activations, BN folding
# ---------------------------------------------------------------------------------------------

_ACT_TYPES = ((nn.ReLU6, "relu6"), (nn.ReLU, "relu"), (nn.Hardswish, "hardswish"), (nn.SiLU, "silu"),
              (nn.Hardsigmoid, "hardsigmoid"), (nn.Sigmoid, "sigmoid"))


def act_name(m: Optional[nn.Module]) -> Optional[str]:
    """fastconv's code for an activation module, None if m is not one."""
    if m is None:
        return None
    for cls, name in _ACT_TYPES:
        if isinstance(m, cls):
            return name
    return None


def is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1


def is_pointwise(conv: nn.Conv2d) -> bool:
    return tuple(conv.kernel_size) == (1, 1)


@dataclass
class Stage:
    """One conv of a block with the BN and activation that follow it (both may be absent)."""
    conv: nn.Conv2d
    bn: Optional[nn.BatchNorm2d] = None
    act: str = "none"


@dataclass
class SE:
    """A squeeze-excite module read as (fc1, fc2, inner act, gate)."""
    fc1: nn.Conv2d
    fc2: nn.Conv2d
    act: str
    gate: str


def _is_se(m: nn.Module) -> bool:
    return hasattr(m, "fc1") and hasattr(m, "fc2") and hasattr(m, "scale_activation")


def parse_stages(block: nn.Module) -> list:
    """The block's convs in registration order, each with its BN and activation, and SE modules
    as single items. Registration order is execution order for every block we catalogue."""
    items: list = []

    def walk(m: nn.Module):
        for child in m.children():
            if _is_se(child):
                items.append(SE(child.fc1, child.fc2, act_name(child.activation) or "none",
                                act_name(child.scale_activation) or "none"))
            elif isinstance(child, nn.Conv2d):
                items.append(Stage(child))
            elif isinstance(child, nn.BatchNorm2d):
                assert isinstance(items[-1], Stage) and items[-1].bn is None, "BN without a conv"
                items[-1].bn = child
            elif act_name(child) is not None:
                assert isinstance(items[-1], Stage), "activation without a conv"
                items[-1].act = act_name(child)
            else:
                walk(child)

    walk(block)
    return items


def fold(conv: nn.Conv2d, bn: Optional[nn.BatchNorm2d]) -> tuple[Tensor, Optional[Tensor]]:
    """Conv (+ eval-mode BN) as one conv: (weight, bias) in float64 on CPU."""
    w = conv.weight.detach().double().cpu()
    b = None if conv.bias is None else conv.bias.detach().double().cpu()
    if bn is None:
        return w, b
    scale = bn.weight.detach().double().cpu() / torch.sqrt(bn.running_var.double().cpu() + bn.eps)
    shift = bn.bias.detach().double().cpu() - bn.running_mean.double().cpu() * scale
    w = w * scale.view(-1, 1, 1, 1)
    b = shift if b is None else b * scale + shift
    return w, b


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Give every BN non-trivial statistics so that folding is actually exercised (fresh torchvision
    models have mean 0, var 1, gamma 1, beta 0, which would hide a folding bug)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model


# ---------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------

def max_err(a: Tensor, b: Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


@dataclass
class Check:
    ok: bool
    err: float
    bound: float
    what: str = ""

    @property
    def ratio(self) -> float:
        return self.err / self.bound if self.bound > 0 else float("inf")


def compare(ours: Tensor, theirs: Tensor, truth: Tensor, dtype: torch.dtype, what: str = "") -> Check:
    """ours/theirs at dtype vs the fp64 truth; theirs is PyTorch's composition at dtype."""
    if tuple(ours.shape) != tuple(truth.shape):
        return Check(False, float("inf"), 0.0, f"{what}: shape {tuple(ours.shape)} != {tuple(truth.shape)}")
    if not torch.isfinite(ours).all():
        return Check(False, float("inf"), 0.0, f"{what}: non-finite values")
    tmax = truth.abs().max().item() if truth.numel() else 0.0
    bound = ERR_FACTOR * max_err(theirs, truth) + ERR_FLOOR[dtype] * max(1.0, tmax)
    err = max_err(ours, truth)
    return Check(err <= bound, err, bound, what)


def compare_grad(ours: Tensor, theirs: Tensor, truth: Tensor, dtype: torch.dtype, what: str = "") -> Check:
    """Gradients by relative L2 error: rel(ours) <= FACTOR x rel(theirs) + FLOOR.

    Not max error: at low precision a pre-activation that rounds to the other side of a ReLU kink
    flips that element's gradient between zero and a full value. A single rounding of an fp32
    accumulator keeps the sign, so the PyTorch composition rarely flips, but anything that rounds
    an intermediate (unfused BN, a fused kernel's fp16 intermediates) flips some elements, each
    worth a whole gradient value: single elements say little, the norm still exposes real bugs."""
    if tuple(ours.shape) != tuple(truth.shape):
        return Check(False, float("inf"), 0.0, f"{what}: shape {tuple(ours.shape)} != {tuple(truth.shape)}")
    if not torch.isfinite(ours).all():
        return Check(False, float("inf"), 0.0, f"{what}: non-finite values")
    t = truth.double()
    norm = max(t.norm().item(), 1e-30)
    rel_ours = (ours.double() - t).norm().item() / norm
    rel_theirs = (theirs.double() - t).norm().item() / norm
    bound = ERR_FACTOR * rel_theirs + GRAD_FLOOR[dtype]
    return Check(rel_ours <= bound, rel_ours, bound, f"{what} (relative L2)")


def worst(checks: Sequence[Check]) -> Check:
    bad = [c for c in checks if not c.ok]
    if bad:
        return max(bad, key=lambda c: c.ratio)
    return max(checks, key=lambda c: c.ratio)


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------

@dataclass
class Timing:
    median: float
    p20: float
    p80: float
    method: str  # "cuda_events" or "cpu_perf_counter"


def time_gpu(fn: Callable[[], object], warmup_ms: float, rep_ms: float,
             grad_to_none: Optional[Sequence[Tensor]] = None) -> Timing:
    """CUDA-event timing through triton.testing.do_bench, which flushes L2 before every call."""
    from triton.testing import do_bench
    q = do_bench(fn, warmup=warmup_ms, rep=rep_ms, grad_to_none=grad_to_none, quantiles=[0.5, 0.2, 0.8])
    return Timing(float(q[0]), float(q[1]), float(q[2]), "cuda_events")


def time_cpu(fn: Callable[[], object], budget_s: float = 0.5, max_reps: int = 200,
             grad_to_none: Optional[Sequence[Tensor]] = None, min_reps: int = 15) -> Timing:
    """Wall-clock medians for CPU runs (no cache flush: the numbers are for orientation only).

    At least ``min_reps`` timed calls after two warm-ups, more until ``budget_s`` is spent: with
    three reps a single scheduler hiccup on a 2-core machine made one block read 100x faster than
    its baseline. The p20/p80 spread travels with the median so a noisy row can be seen as one."""
    def call():
        if grad_to_none:
            for t in grad_to_none:
                t.grad = None
        fn()

    call()  # warm-ups: first-call allocations, lazy init and cold caches stay out of the numbers
    call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    q = statistics.quantiles(times, n=10, method="inclusive")
    return Timing(statistics.median(times), q[1], q[7], "cpu_perf_counter")


# ---------------------------------------------------------------------------------------------
# run metadata
# ---------------------------------------------------------------------------------------------

def git_sha() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except Exception:
        return "unknown"


@dataclass
class RunInfo:
    device: str
    device_key: str
    on_gpu: bool
    torch_version: str = field(default_factory=lambda: torch.__version__)
    cuda_version: str = field(default_factory=lambda: str(torch.version.cuda))
    cudnn_version: str = ""
    triton_version: str = ""
    git_sha: str = field(default_factory=git_sha)
    timestamp: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                           .strftime("%Y-%m-%dT%H:%M:%SZ"))

    def __post_init__(self):
        try:
            self.cudnn_version = str(torch.backends.cudnn.version())
        except Exception:
            self.cudnn_version = "none"
        try:
            import triton
            self.triton_version = triton.__version__
        except Exception:
            self.triton_version = "none"


def run_info() -> RunInfo:
    if torch.cuda.is_available():
        from fastconv import tuning
        dev = torch.device("cuda")
        return RunInfo(torch.cuda.get_device_name(dev), tuning.device_key(dev), True)
    return RunInfo("cpu", "cpu", False)


def results_dir(info: RunInfo, override: Optional[str] = None) -> Path:
    d = Path(override) if override else RESULTS / info.device_key
    d.mkdir(parents=True, exist_ok=True)
    return d


def interpret_if_no_gpu() -> bool:
    """Without a CUDA device the Triton kernels can only run in the interpreter; this must be set
    before fastconv's Triton modules are imported. Returns whether a GPU is present."""
    has = torch.cuda.is_available()
    if not has:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return has
