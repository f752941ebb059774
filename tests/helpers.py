"""Test utilities shared by every tests/test_<op>.py: devices, backends, tolerances, random inputs.

The accuracy rule (one table, per dtype): a backend's max error against an fp64 evaluation of the
reference must be <= ERR_FACTOR x PyTorch's own max error at the same dtype, plus a small absolute
floor (so exact-in-both cases, e.g. a pure permutation, still compare).
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import pytest
import torch

import fastconv
from fastconv._common import triton_interpreting

HAS_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
INTERPRET = triton_interpreting()

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
FORMATS = ["nchw", "nhwc"]

# dtype -> (ERR_FACTOR, absolute floor relative to the output's magnitude)
TOLERANCE = {
    torch.float32: (2.0, 1e-5),
    torch.float16: (2.0, 2e-3),
    torch.bfloat16: (2.0, 1.6e-2),
    torch.float64: (2.0, 1e-10),
}


def backend_params(with_reference: bool = True):
    """pytest params for every backend, skipped where it cannot run on DEVICE."""
    av = fastconv.backends()
    out = [pytest.param("reference", id="reference")] if with_reference else []
    for name in ("triton", "cuda"):
        ok = av[name]["available"] and (HAS_CUDA or (name == "triton" and INTERPRET))
        marks = [] if ok else [pytest.mark.skip(reason=f"{name}: {av[name]['why']}")]
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def to_format(t: torch.Tensor, fmt: str) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if fmt == "nhwc" else t.contiguous()


def rand(*shape, dtype=torch.float32, device=DEVICE, scale: float = 1.0, gen=None) -> torch.Tensor:
    """Fresh random data (never zeros): N(0, scale^2)."""
    return (torch.randn(*shape, dtype=torch.float64, generator=gen) * scale).to(device=device, dtype=dtype)


def conv_weight(k_out: int, c_in: int, k: int = 1, dtype=torch.float32, device=DEVICE) -> torch.Tensor:
    """Kaiming-like scale so activations stay O(1) through a block."""
    return rand(k_out, c_in, k, k, dtype=dtype, device=device, scale=(c_in * k * k) ** -0.5)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def assert_matches_reference(fast: Callable[..., torch.Tensor], ref: Callable[..., torch.Tensor],
                             tensors: Sequence, dtype: torch.dtype, what: str = "") -> None:
    """fast(*tensors) vs the fp64 truth ref(*tensors in fp64); bound = factor x ref's own error at dtype.

    ``tensors`` may contain None and non-tensors; tensors are given at ``dtype``."""
    def cast(ts, dt):
        return [t.to(dt) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in ts]

    truth = ref(*cast(tensors, torch.float64))
    ours = fast(*tensors)
    theirs = ref(*tensors)
    assert ours.shape == truth.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(truth.shape)}"
    assert ours.dtype == dtype, f"{what}: dtype {ours.dtype} != {dtype}"
    assert torch.isfinite(ours).all(), f"{what}: non-finite output"
    factor, floor = TOLERANCE[dtype]
    bound = factor * max_err(theirs, truth) + floor * max(1.0, truth.abs().max().item())
    err = max_err(ours, truth)
    assert err <= bound, f"{what}: max error {err:.3g} vs fp64 > bound {bound:.3g} (PyTorch's own: {max_err(theirs, truth):.3g})"


def assert_same_format(out: torch.Tensor, x: torch.Tensor, fmt: str) -> None:
    if fmt == "nhwc" and out.shape[1] > 1 and out.shape[2] * out.shape[3] > 1:
        assert out.is_contiguous(memory_format=torch.channels_last), "output lost channels_last"
    elif fmt == "nchw":
        assert out.is_contiguous(), "output is not NCHW-contiguous"


def small_or_real(small, real):
    """Interpreter runs get the small shape list; GPU runs get both."""
    return small if not HAS_CUDA else small + real


ENV_BACKEND = os.environ.get("FASTCONV_BACKEND")


def assert_grads_match(fast: Callable, ref: Callable, tensors: Sequence, rtol=1e-4, atol=1e-4) -> None:
    """Gradients of fast(*tensors) and ref(*tensors) w.r.t. every tensor (None entries skipped)."""
    def leaves():
        return [t.detach().clone().requires_grad_() if isinstance(t, torch.Tensor) else t for t in tensors]
    ours, theirs = leaves(), leaves()
    out_ref = ref(*theirs)
    g = rand(*out_ref.shape, dtype=out_ref.dtype, device=out_ref.device)
    out_ref.backward(g)
    fast(*ours).backward(g)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if isinstance(a, torch.Tensor):
            assert a.grad is not None, f"no gradient for input {i}"
            torch.testing.assert_close(a.grad, b.grad, rtol=rtol, atol=atol, msg=lambda m: f"input {i}: {m}")


def gradcheck64(fn: Callable, tensors: Sequence) -> None:
    """torch.autograd.gradcheck in float64 on CPU (the reference path's registered backward).

    fast_mode compares v^T J u for random u, v instead of the whole Jacobian (one column of forwards
    per input element): a wrong gradient still fails, in a fraction of the time."""
    ts = [t.detach().to(device="cpu", dtype=torch.float64).requires_grad_() if isinstance(t, torch.Tensor)
          else t for t in tensors]
    assert torch.autograd.gradcheck(fn, ts, fast_mode=True)


OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def op_matrix(small, real):
    """Parametrize a test over (case, dtype, fmt, backend): small cases everywhere, real ones on GPU."""
    marks = [pytest.mark.parametrize("case", small_or_real(small, real), ids=str),
             pytest.mark.parametrize("dtype", DTYPES, ids=str),
             pytest.mark.parametrize("fmt", FORMATS),
             pytest.mark.parametrize("backend", backend_params())]

    def deco(fn):
        for m in marks:
            fn = m(fn)
        return fn
    return deco


def randomize_bn(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics and affine parameters, so folding is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return module.eval()
