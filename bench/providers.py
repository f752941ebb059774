"""Cases (one block at one batch/dtype/layout/mode) and the providers that run them.

Providers:
  eager            the block as the model ships it (conv -> BN -> act modules, eval mode)
  eager_folded     the same computation with BN folded into the convs (PyTorch/cuDNN convs)
  compile          torch.compile of eager_folded (fullgraph; mode recorded per row)
  fastconv_cuda / fastconv_triton / fastconv_auto   the fastconv op with that backend
Baselines get their 4-D weights in the case's layout (what ``model.to(memory_format=...)`` gives
cuDNN); fastconv gets dense NCHW weights (what its kernels read without a copy).
"""
from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from bench.catalogue import Entry, real_block
from bench.common import Check, compare, compare_grad, memory_format, to_layout, worst

_MODULES: dict = {}


def op_module(op: str):
    """bench.bench_<op>: eager_module, folded_params, reference, fast (and HAS_BN)."""
    if op not in _MODULES:
        _MODULES[op] = importlib.import_module(f"bench.bench_{op}")
    return _MODULES[op]


@dataclass
class Case:
    entry: Entry
    batch: int
    dtype: torch.dtype
    layout: str
    mode: str
    device: torch.device
    x: Tensor
    gy: Optional[Tensor]
    eager: nn.Module
    params_base: list        # folded, for the baselines (layout-formatted weights)
    params_fast: list        # folded, dense NCHW, for fastconv
    params64: list           # folded, fp64 CPU: the source of truth

    @property
    def cfg(self) -> dict:
        return self.entry.cfg

    @property
    def mod(self):
        return op_module(self.entry.op)

    @property
    def has_bn(self) -> bool:
        return getattr(self.mod, "HAS_BN", True)


def _input(entry: Entry, batch: int, hw: Optional[tuple], dtype, layout, device, seed: int) -> Tensor:
    c = entry.cfg
    h, w = hw if hw else (c["H"], c["W"])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c["C"], h, w, generator=g, dtype=torch.float32)
    return x.to(device=device, dtype=dtype).contiguous(memory_format=memory_format(layout))


def random_params(shapes: list, seed: int) -> list:
    """fp64 CPU stand-ins for folded parameters: Kaiming-scaled weights, small biases."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for shp in shapes:
        if shp is None:
            out.append(None)
        elif len(shp) == 4:
            fan_in = shp[1] * shp[2] * shp[3]
            out.append(torch.randn(shp, generator=g, dtype=torch.float64) * fan_in ** -0.5)
        else:
            out.append(torch.randn(shp, generator=g, dtype=torch.float64) * 0.1)
    return out


def make_case(entry: Entry, batch: int, dtype: torch.dtype, layout: str, mode: str, device: torch.device,
              hw: Optional[tuple] = None, seed: int = 0, cfg: Optional[dict] = None) -> Case:
    """Inputs and parameters for one measurement.

    ``hw`` overrides the input's spatial size; ``cfg`` replaces the entry's config with a
    channel-scaled proxy (catalogue.scaled_cfg) whose parameters are random instead of the model's
    folded ones, and which has no eager module (CPU correctness checks of the fastconv backends)."""
    mod = op_module(entry.op)
    if cfg is not None and cfg != entry.cfg:
        entry = Entry(entry.op, cfg, list(entry.sources))
        eager = nn.Identity()
        p64 = random_params(mod.param_shapes(cfg), seed + 7)
    else:
        src = entry.sources[0]
        # ops whose cases are built from the config alone (depthwise_conv2d: RepLKNet is not a model here)
        block = real_block(src) if getattr(mod, "REAL_BLOCK", True) else None
        eager = copy.deepcopy(mod.eager_module(entry, block, src.part)).eval()
        eager = eager.to(device=device, dtype=dtype, memory_format=memory_format(layout))
        p64 = mod.folded_params(entry, block, src.part)
    base = [None if p is None else to_layout(p.to(device=device, dtype=dtype), layout) for p in p64]
    fast = [None if p is None else p.to(device=device, dtype=dtype).contiguous() for p in p64]
    x = _input(entry, batch, hw, dtype, layout, device, seed)
    gy = None
    if mode == "fwdbwd":
        with torch.no_grad():
            out = mod.reference(entry.cfg, x, *base)
        g = torch.Generator().manual_seed(seed + 1)
        gy = torch.randn(out.shape, generator=g).to(device=device, dtype=dtype)
        gy = gy.contiguous(memory_format=memory_format(layout))
    for p in eager.parameters():
        p.requires_grad_(mode == "fwdbwd")
    return Case(entry, batch, dtype, layout, mode, device, x, gy, eager, base, fast, p64)


# ---------------------------------------------------------------------------------------------
# providers
# ---------------------------------------------------------------------------------------------

@dataclass
class Runner:
    """A ready-to-time call: ``fn()`` runs one forward (or forward+backward); ``leaves`` get their
    .grad reset between calls; ``call(x, params)`` is the same computation on other inputs."""
    fn: Callable[[], object]
    leaves: list
    call: Callable
    note: str = ""


def _leaves(case: Case, params: list) -> tuple[Tensor, list]:
    """Fresh leaf tensors requiring grad in fwdbwd mode (the case's own tensors otherwise)."""
    if case.mode != "fwdbwd":
        return case.x, params
    x = case.x.detach().requires_grad_(True)
    ps = [None if p is None else p.detach().requires_grad_(True) for p in params]
    return x, ps


def _wrap(case: Case, f: Callable, x: Tensor, params: list, extra_leaves: list) -> Runner:
    if case.mode == "fwd":
        def fn():
            return f(x, *params)
        return Runner(fn, [], f)
    leaves = [x] + [p for p in params if p is not None] + extra_leaves
    gy = case.gy

    def fn():
        f(x, *params).backward(gy)
    return Runner(fn, leaves, f)


def make_runner(case: Case, provider: str, compile_mode: str = "default") -> Runner:
    """Raises ``Skip`` when the provider does not apply or cannot run here."""
    mod, cfg = case.mod, case.cfg
    if provider == "eager":
        x, _ = _leaves(case, [])
        m = case.eager
        return _wrap(case, lambda x_: m(x_), x, [], list(m.parameters()) if case.mode == "fwdbwd" else [])
    if provider in ("eager_folded", "compile"):
        if not case.has_bn and provider == "eager_folded":
            raise Skip("no BatchNorm to fold: same as eager")
        x, ps = _leaves(case, case.params_base)

        def f(x_, *p):
            return mod.reference(cfg, x_, *p)
        note = ""
        if provider == "compile":
            torch._dynamo.reset()  # one compiled graph per case: no recompile limits, no stale guards
            f = torch.compile(f, mode=None if compile_mode == "default" else compile_mode, fullgraph=True,
                              dynamic=False)
            note = f"compile mode={compile_mode}"
        r = _wrap(case, f, x, ps, [])
        r.note = note
        return r
    if provider.startswith("fastconv_"):
        backend = provider[len("fastconv_"):]
        x, ps = _leaves(case, case.params_fast)

        def f(x_, *p):
            return mod.fast(cfg, x_, *p, backend=backend)
        return _wrap(case, f, x, ps, [])
    raise ValueError(provider)


class Skip(Exception):
    """The provider does not apply to this case, or cannot run here (the message says why)."""


# ---------------------------------------------------------------------------------------------
# correctness
# ---------------------------------------------------------------------------------------------

def _grads(out: Tensor, leaves: list, gy: Tensor) -> list:
    live = [t for t in leaves if t is not None]
    gs = torch.autograd.grad(out, live, gy, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, live)]


def check_case(case: Case, provider: str, compile_mode: str = "default") -> Check:
    """See _check_case. On CPU it runs single-threaded: the small fp64 convs of the truth spend far
    longer in thread hand-offs than in arithmetic (100x on a busy 2-core machine)."""
    if case.device.type != "cpu":
        return _check_case(case, provider, compile_mode)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _check_case(case, provider, compile_mode)
    finally:
        torch.set_num_threads(n)


def _check_case(case: Case, provider: str, compile_mode: str = "default") -> Check:
    """The provider's output (and, in fwdbwd mode, the gradients of the input and of every
    parameter it takes) vs an fp64 evaluation of the PyTorch composition on the CPU.

    eager_folded is checked against the eager module in fp64: that catches a folding mistake in
    the benchmark itself; everything else is checked against the folded reference."""
    mod, cfg, dt = case.mod, case.cfg, case.dtype
    # fp64 truth on the case's device; channels_last throughout, because PyTorch's CPU fp64
    # depthwise conv is pathologically slow on NCHW tensors (seconds for a 2x64x6x6 input).
    dev, cl = case.device, torch.channels_last
    x64 = case.x.detach().to(dev, torch.float64).contiguous(memory_format=cl)
    p64 = [None if p is None else to_layout(p.to(dev), "channels_last") for p in case.params64]
    gy64 = None if case.gy is None else case.gy.detach().to(dev, torch.float64).contiguous(memory_format=cl)

    if provider == "eager_folded":
        m64 = copy.deepcopy(case.eager).to(dev, torch.float64, memory_format=cl)
        params_truth, truth_fn = [], (lambda x_, *p: m64(x_))
        m_dt = case.eager
        theirs_fn, theirs_params = (lambda x_, *p: m_dt(x_)), []
    else:
        params_truth, truth_fn = p64, (lambda x_, *p: mod.reference(cfg, x_, *p))
        theirs_fn, theirs_params = (lambda x_, *p: mod.reference(cfg, x_, *p)), case.params_base
    if provider == "eager":
        ours_params = []
    elif provider.startswith("fastconv_"):
        ours_params = case.params_fast
    else:
        ours_params = case.params_base
    ours_fn = make_runner(case, provider, compile_mode).call

    if case.mode == "fwd":
        with torch.inference_mode():
            truth = truth_fn(x64, *params_truth)
            theirs = theirs_fn(case.x, *theirs_params)
            ours = ours_fn(case.x, *ours_params)
        return compare(ours.cpu(), theirs.cpu(), truth.cpu(), dt, "output")

    def run(fn, x, params):
        x = x.detach().requires_grad_(True)
        ps = [None if p is None else p.detach().requires_grad_(True) for p in params]
        out = fn(x, *ps)
        return out, [x] + [p for p in ps if p is not None]

    # Gradients are compared for x and, where the provider takes folded params, for each of them.
    out_t, leaves_t = run(truth_fn, x64, params_truth)
    out_r, leaves_r = run(theirs_fn, case.x, theirs_params)
    out_o, leaves_o = run(ours_fn, case.x, ours_params)
    checks = [compare(out_o.detach().cpu(), out_r.detach().cpu(), out_t.detach().cpu(), dt, "output")]
    g_t = _grads(out_t, leaves_t, gy64)
    g_r = _grads(out_r, leaves_r, case.gy)
    g_o = _grads(out_o, leaves_o, case.gy)
    n = min(len(g_t), len(g_r), len(g_o))  # eager compares only grad_x (its params are BN-unfolded)
    names = ["grad_x"] + [f"grad_param{i}" for i in range(n - 1)]
    for name, a, b, t in zip(names, g_o[:n], g_r[:n], g_t[:n]):
        checks.append(compare_grad(a.cpu(), b.cpu(), t.cpu(), dt, name))
    return worst(checks)
