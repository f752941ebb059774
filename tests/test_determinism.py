"""Run-to-run reproducibility: the same call twice gives bit-identical results.

- forward: bitwise reproducible for every op and backend, always (no atomics in any forward).
- backward: bitwise reproducible on the CPU always; on a GPU under
  ``torch.use_deterministic_algorithms(True)``. Without that flag a GPU backward may go through
  cuDNN/ATen kernels that accumulate weight gradients with atomics (today every backend's backward
  differentiates the reference composition), so it is only reported, not required (xfail).
- deterministic mode is respected: a call either reproduces bit for bit or raises the
  RuntimeError PyTorch uses for "no deterministic implementation".
"""
from __future__ import annotations

import os

import pytest
import torch

# cuBLAS reads this when a handle is created; deterministic mode refuses cuBLAS without it.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from helpers import DEVICE, HAS_CUDA  # noqa: E402
from sanitize_driver import OPS, build, runnable, standard_cfgs  # noqa: E402

SIZE = "real" if HAS_CUDA else "small"
# bf16 adds nothing on the CPU (the interpreter upcasts it), and CI time is short.
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if HAS_CUDA else [])


def _params():
    out = []
    for op in OPS:
        for be in ("reference", "triton", "cuda"):
            ok, why = runnable(op, be, DEVICE)
            out.append(pytest.param(op, be, id=f"{op}-{be}", marks=[] if ok else [pytest.mark.skip(reason=why)]))
    return out


def _cfgs(op):
    """The first (small) configuration and, on a GPU, the last (largest) one."""
    cfgs = standard_cfgs(op, SIZE)
    return [cfgs[0], cfgs[-1]] if HAS_CUDA else cfgs[:1]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits, so that -0.0 != 0.0 and NaN == NaN compare as bit patterns."""
    return t.detach().contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.stride() == b.stride() and torch.equal(_bits(a), _bits(b))


def _fwd_bwd(case, backend):
    leaves = [None if t is None else t.detach().requires_grad_(True) for t in case.leaves]
    out = case.run(backend, leaves)
    gout = torch.linspace(-1, 1, out.numel(), dtype=torch.float32, device=out.device).to(out.dtype).view(out.shape)
    grads = torch.autograd.grad(out, [t for t in leaves if t is not None], gout)
    return out.detach(), grads


@pytest.fixture
def deterministic():
    prev, prev_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op,backend", _params())
def test_forward_bitwise(op, backend, dtype):
    for cfg in _cfgs(op):
        case = build(op, cfg, dtype, DEVICE)
        first = case.run(backend)
        for _ in range(3 if HAS_CUDA else 1):
            again = case.run(backend)
            assert _same_bits(first, again), f"{op}/{backend} {dtype} {cfg}: forward differs run to run"


@pytest.mark.parametrize("op,backend", _params())
def test_backward_bitwise(op, backend):
    for cfg in _cfgs(op):
        case = build(op, cfg, torch.float32, DEVICE)
        out1, g1 = _fwd_bwd(case, backend)
        out2, g2 = _fwd_bwd(case, backend)
        assert _same_bits(out1, out2)
        same = all(_same_bits(a, b) for a, b in zip(g1, g2))
        if not same and DEVICE.type == "cuda":
            pytest.xfail(f"{op}/{backend}: GPU backward is not bitwise reproducible outside deterministic mode "
                         "(atomic accumulation); documented in docs/RELIABILITY.md")
        assert same, f"{op}/{backend} {cfg}: gradients differ run to run"


@pytest.mark.parametrize("op,backend", _params())
def test_deterministic_mode_respected(op, backend, deterministic):
    for cfg in _cfgs(op):
        case = build(op, cfg, torch.float32, DEVICE)
        try:
            out1, g1 = _fwd_bwd(case, backend)
        except RuntimeError as e:  # refusing is allowed, but only with PyTorch's determinism error
            assert "deterministic" in str(e), f"{op}/{backend}: unexpected error in deterministic mode: {e}"
            continue
        out2, g2 = _fwd_bwd(case, backend)
        assert _same_bits(out1, out2), f"{op}/{backend} {cfg}: forward differs in deterministic mode"
        for i, (a, b) in enumerate(zip(g1, g2)):
            assert _same_bits(a, b), f"{op}/{backend} {cfg}: gradient {i} differs in deterministic mode"


@pytest.mark.parametrize("op,backend", _params())
def test_fresh_inputs_same_result(op, backend):
    """Same values in new allocations (other addresses, other caching-allocator blocks) give the
    same bits: no dependence on alignment luck or on stale memory."""
    cfg = _cfgs(op)[0]
    a = build(op, cfg, torch.float32, DEVICE).run(backend)
    filler = torch.full((1 << 16,), float("nan"), device=DEVICE)  # dirty the allocator's free blocks
    del filler
    b = build(op, cfg, torch.float32, DEVICE).run(backend)
    assert _same_bits(a, b)
