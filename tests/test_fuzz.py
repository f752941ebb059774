"""Property-based fuzzing of every public op and backend against the reference composition.

Each example draws one valid call (sizes incl. 1 and odd channel counts, kernel sizes, strides,
groups, activations, dtype, memory layout of x incl. non-contiguous views and storage offsets,
non-contiguous weights) and checks the output with the project's accuracy rule
(helpers.assert_matches_reference); the gradient tests compare autograd gradients of every tensor
argument with autograd through the plain reference composition, under the same rule.

Budget: CPU/CI draws small shapes and stops running new examples once the module's CPU-time
budget (FASTCONV_FUZZ_BUDGET_S, default 100 s here) is spent, split over the runnable
(test, op, backend) triples (at least MIN_EXAMPLES each). On a GPU the shapes grow and the
example count is FASTCONV_FUZZ_EXAMPLES (forward; gradients get a quarter of it). Examples are
derandomized (the same every run) unless FASTCONV_FUZZ_RANDOM=1. The counts are printed at the end of the module
(and appended as JSON to $FASTCONV_FUZZ_LOG when set).
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastconv._common import BLOCK_ACTS, SE_GATES, memory_format_of  # noqa: E402
from helpers import DEVICE, HAS_CUDA, TOLERANCE, assert_matches_reference, max_err  # noqa: E402
from sanitize_driver import LAYOUTS, OPS, build, randn, runnable  # noqa: E402

BACKENDS = ("reference", "triton", "cuda")
_ENV_N = int(os.environ.get("FASTCONV_FUZZ_EXAMPLES", "0") or 0)
BUDGET_S = float(os.environ.get("FASTCONV_FUZZ_BUDGET_S", "420" if HAS_CUDA else "100"))
RANDOM = os.environ.get("FASTCONV_FUZZ_RANDOM") == "1"
MIN_EXAMPLES = 3

COUNTS: Counter = Counter()


def _examples(backend: str, grad: bool) -> int:
    if _ENV_N:
        return max(1, _ENV_N // 4) if grad else _ENV_N
    if HAS_CUDA:
        return 15 if grad else 60
    if backend == "reference":
        return 8 if grad else 25
    return 4 if grad else 10  # the Triton interpreter is slow


def _params():
    out = []
    for op in OPS:
        for be in BACKENDS:
            ok, why = runnable(op, be, DEVICE)
            out.append(pytest.param(op, be, id=f"{op}-{be}", marks=[] if ok else [pytest.mark.skip(reason=why)]))
    return out


PARAMS = _params()
# Each runnable (test, op, backend) gets a slice of the budget; fused backends get three shares
# because the Triton interpreter is slow and they are what the fuzzing is for.
_TOTAL_SHARES = 2 * sum(1 if p.values[1] == "reference" else 3 for p in PARAMS if not p.marks) or 1


def _slice_s(backend: str) -> float:
    return BUDGET_S * (1 if backend == "reference" else 3) / _TOTAL_SHARES


@pytest.fixture(scope="module", autouse=True)
def _fuzz_report(request):
    t0 = time.monotonic()
    yield
    per = ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items()) if "/" in k)
    msg = (f"fuzz: {COUNTS['forward']} forward + {COUNTS['grad']} gradient cases, "
           f"{COUNTS['failures']} failures, {COUNTS['budget_skipped']} examples skipped over the time budget, "
           f"{time.monotonic() - t0:.0f} s [{per}]")
    # Teardown output is captured like a test's; write past the capture so it shows without -s.
    capman = request.config.pluginmanager.getplugin("capturemanager")
    tr = request.config.pluginmanager.getplugin("terminalreporter")
    if capman is not None and tr is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line("")
            tr.write_line(msg)
    else:
        print(msg)
    log = os.environ.get("FASTCONV_FUZZ_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"device": str(DEVICE), **COUNTS}) + "\n")


# ---------------------------------------------------------------------------------------------
# strategies: each returns a cfg dict for sanitize_driver.build
# ---------------------------------------------------------------------------------------------

def _limits(big: bool):
    """(max batch, max channels, max spatial) for small (CPU / interpreter) or real (GPU) shapes."""
    return (8, 160, 64) if big else (2, 12, 10)


@st.composite
def _common(draw, big):
    nmax, _, hmax = _limits(big)
    return dict(n=draw(st.integers(1, nmax)), h=draw(st.integers(1, hmax)), w=draw(st.integers(1, hmax)),
                layout=draw(st.sampled_from(LAYOUTS)), scramble=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31 - 1)))


def _chan(draw, big, lo=1):
    cmax = _limits(big)[1]
    # Small counts (incl. 1 and odd ones) are where tails go wrong; draw them often even on a GPU.
    return draw(st.one_of(st.integers(lo, 12), st.integers(lo, cmax)))


@st.composite
def dwpw_cfg(draw, big):
    cfg = draw(_common(big))
    k = draw(st.sampled_from([1, 3, 3, 5, 7]))
    dil = draw(st.sampled_from([1, 1, 1, 2]))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    pad = draw(st.one_of(st.none(), st.integers(0, (k // 2) * dil)))
    p = (k // 2) * dil if pad is None else pad
    span = dil * (k - 1) + 1
    assume(cfg["h"] + 2 * p >= span and cfg["w"] + 2 * p >= span)
    cfg.update(c=_chan(draw, big), kout=_chan(draw, big), k=k, stride=stride, dilation=dil, padding=pad,
               dw_act=draw(st.sampled_from(BLOCK_ACTS)), pw_act=draw(st.sampled_from(BLOCK_ACTS)),
               dw_bias=draw(st.booleans()), pw_bias=draw(st.booleans()), residual=draw(st.booleans()))
    return cfg


@st.composite
def ir_cfg(draw, big):
    cfg = draw(_common(big))
    c = _chan(draw, big)
    residual = draw(st.booleans())
    k = draw(st.sampled_from([3, 5, 7]))
    stride = 1 if residual else draw(st.sampled_from([1, 2]))
    pad = None if residual else draw(st.one_of(st.none(), st.none(), st.integers(0, k // 2)))
    p = k // 2 if pad is None else pad
    assume(cfg["h"] + 2 * p >= k and cfg["w"] + 2 * p >= k)
    cfg.update(c=c, kout=c if residual else _chan(draw, big), k=k, stride=stride, padding=pad,
               residual=residual, expand=draw(st.one_of(st.none(), st.integers(1, 6).map(lambda t: t * c))),
               se=draw(st.one_of(st.none(), st.integers(1, 8))), act=draw(st.sampled_from(BLOCK_ACTS)),
               se_act=draw(st.sampled_from(BLOCK_ACTS)), se_gate=draw(st.sampled_from(SE_GATES)),
               bias=draw(st.booleans()))
    return cfg


@st.composite
def shuffle_cfg(draw, big):
    cfg = draw(_common(big))
    g = draw(st.integers(1, 8))
    m = draw(st.integers(1, 30 if big else 4))
    cfg.update(c=g * m, groups=g)
    return cfg


def _divisor(draw, n):
    return draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))


@st.composite
def gconv_cfg(draw, big):
    cfg = draw(_common(big))
    g = draw(st.integers(1, 8))
    per = 20 if big else 4
    c, kout = g * draw(st.integers(1, per)), g * draw(st.integers(1, per))
    cfg.update(c=c, kout=kout, groups=g, act=draw(st.sampled_from(BLOCK_ACTS)), bias=draw(st.booleans()),
               shuffle_in=_divisor(draw, c) if draw(st.booleans()) else None,
               shuffle_out=_divisor(draw, kout) if draw(st.booleans()) else None)
    return cfg


@st.composite
def v1_cfg(draw, big):
    cfg = draw(_common(big))
    g = draw(st.sampled_from([1, 2, 3, 4, 8]))
    per = 30 if big else 3
    c = g * draw(st.integers(1, per))
    stride = draw(st.sampled_from([1, 2]))
    cfg.update(c=c, mid=g * draw(st.integers(1, per)), groups=g, stride=stride,
               kout=c if stride == 1 else g * draw(st.integers(1, per)),
               first_groups=draw(st.sampled_from([None, None, 1])), bias=draw(st.booleans()))
    return cfg


@st.composite
def v2_cfg(draw, big):
    cfg = draw(_common(big))
    stride = draw(st.sampled_from([1, 2]))
    if stride == 1:
        cfg.update(c=2 * draw(st.integers(1, _limits(big)[1] // 2)))
    else:
        cfg.update(c=_chan(draw, big), branch=_chan(draw, big))
    cfg.update(stride=stride, bias=draw(st.booleans()))
    return cfg


@st.composite
def dw_cfg(draw, big):
    cfg = draw(_common(big))
    k = draw(st.sampled_from([1, 3, 3, 5, 7, 9]))
    kw = draw(st.sampled_from([k, k, k, 3]))  # sometimes non-square
    dil = draw(st.sampled_from([1, 1, 1, 2]))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    pad = draw(st.one_of(st.none(), st.integers(0, (max(k, kw) // 2) * dil)))
    ph, pw = ((k // 2) * dil, (kw // 2) * dil) if pad is None else (pad, pad)
    assume(cfg["h"] + 2 * ph >= dil * (k - 1) + 1 and cfg["w"] + 2 * pw >= dil * (kw - 1) + 1)
    cfg.update(c=_chan(draw, big), k=k, kw=kw, mult=draw(st.sampled_from([1, 1, 1, 2])), stride=stride,
               dilation=dil, padding=pad, act=draw(st.sampled_from(BLOCK_ACTS)), bias=draw(st.booleans()))
    return cfg


STRATEGIES = {"dwpw_conv2d": dwpw_cfg, "inverted_residual": ir_cfg, "channel_shuffle": shuffle_cfg,
              "group_conv1x1": gconv_cfg, "shufflenet_v1_unit": v1_cfg, "shufflenet_v2_unit": v2_cfg,
              "depthwise_conv2d": dw_cfg}
FWD_DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16])
GRAD_DTYPES = st.sampled_from([torch.float32, torch.float32, torch.float16, torch.bfloat16])


def _settings(backend: str, grad: bool):
    return settings(max_examples=_examples(backend, grad), deadline=None, derandomize=not RANDOM,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=True)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

def check_forward(case, backend: str, dtype) -> None:
    got = {}

    def fast(*t):
        got["out"] = case.call(list(t), backend)
        return got["out"]

    assert_matches_reference(fast, lambda *t: case.ref(list(t)), case.leaves, dtype, what=repr(case))
    fmt = memory_format_of(case.leaves[0])
    assert got["out"].is_contiguous(memory_format=fmt), f"{case}: output not in x's memory format {fmt}"


def check_grads(case, backend: str, dtype) -> None:
    """Autograd through the public op vs autograd through the reference composition (fp64 truth)."""
    leaves = [None if t is None else t.detach().requires_grad_(True) for t in case.leaves]
    out = case.run(backend, leaves)
    gout = randn(out.shape, dtype, out.device, torch.Generator().manual_seed(1))
    live = [t for t in leaves if t is not None]
    ours = torch.autograd.grad(out, live, gout)

    def ref_grads(dt):
        lv = [None if t is None else t.detach().to(dt).requires_grad_(True) for t in case.leaves]
        used = [t for t in lv if t is not None]
        gs = torch.autograd.grad(case.ref(lv), used, gout.to(dt), allow_unused=True)
        return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, used)]

    truth, theirs = ref_grads(torch.float64), ref_grads(dtype)
    factor, floor = TOLERANCE[dtype]
    names = [i for i, t in enumerate(case.leaves) if t is not None]
    for i, o, tr, th in zip(names, ours, truth, theirs):
        assert o.shape == tr.shape and o.dtype == dtype, f"{case}: grad of leaf {i}: {o.shape}/{o.dtype}"
        assert torch.isfinite(o).all(), f"{case}: grad of leaf {i} is not finite"
        bound = factor * max_err(th, tr) + floor * max(1.0, tr.abs().max().item() if tr.numel() else 0.0)
        err = max_err(o, tr)
        assert err <= bound, f"{case}: grad of leaf {i}: max error {err:.3g} > bound {bound:.3g}"


def _run_one(kind: str, op: str, backend: str, cfg: dict, dtype, state: dict) -> None:
    # CPU time, not wall time: CI machines are shared. The first MIN_EXAMPLES always run. Once an
    # example failed, hypothesis shrinks it: never skip then, or shrinking would see "passes".
    over = time.process_time() - state["t0"] > _slice_s(backend)
    if over and state["ran"] >= MIN_EXAMPLES and not state["failed"]:
        COUNTS["budget_skipped"] += 1
        return
    state["ran"] += 1
    case = build(op, cfg, dtype, DEVICE)
    try:
        (check_grads if kind == "grad" else check_forward)(case, backend, dtype)
    except Exception:
        state["failed"] = True
        COUNTS["failures"] += 1
        raise
    COUNTS[kind] += 1
    COUNTS[f"{kind}/{op}/{backend}"] += 1


def _big(backend: str) -> bool:
    return HAS_CUDA and backend != "reference"


@pytest.mark.parametrize("op,backend", PARAMS)
def test_fuzz_forward(op, backend):
    state = {"t0": time.process_time(), "failed": False, "ran": 0}

    @_settings(backend, grad=False)
    @given(cfg=STRATEGIES[op](_big(backend)), dtype=FWD_DTYPES)
    def run(cfg, dtype):
        _run_one("forward", op, backend, cfg, dtype, state)

    run()


@pytest.mark.parametrize("op,backend", PARAMS)
def test_fuzz_grad(op, backend):
    state = {"t0": time.process_time(), "failed": False, "ran": 0}

    @_settings(backend, grad=True)
    @given(cfg=STRATEGIES[op](_big(backend)), dtype=GRAD_DTYPES)
    def run(cfg, dtype):
        _run_one("grad", op, backend, cfg, dtype, state)

    run()
