"""What every op's registration shares: input normalisation, backend tables, gradient plumbing.

Each ``fastconv/ops/<op>.py`` declares two custom ops, ``fastconv::<op>`` and
``fastconv::<op>_backward``, plus the CUDA kernel schema ``fastconv::<op>_cuda`` whose
implementation is registered by ``csrc/<op>/`` when the extension is built.
"""
from __future__ import annotations

import importlib
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from fastconv._common import empty_like_format, memory_format_of


def kernel_inputs(x: Tensor, *params: Optional[Tensor]):
    """Fused kernels see x as NCHW- or NHWC-contiguous and dense parameters.

    A non-contiguous view of x is copied to NCHW first (one extra read+write of x)."""
    fmt = memory_format_of(x)
    return (x.contiguous(memory_format=fmt),) + tuple(None if p is None else p.contiguous() for p in params)


def like(t: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
    """A tensor shaped like an activation (e.g. a residual), laid out in x's memory format."""
    return None if t is None else t.contiguous(memory_format=memory_format_of(x))


def triton_module(op: str):
    """fastconv.triton.<op>, imported lazily so `import fastconv` never needs triton."""
    return importlib.import_module(f"fastconv.triton.{op}")


def finish(out: Tensor, x: Tensor) -> Tensor:
    """The output keeps the input's memory format, whatever the backend produced, and never aliases x
    (custom ops may not return views of inputs; e.g. a shuffle with one group is the identity)."""
    fmt = memory_format_of(x)
    if out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return out.clone(memory_format=fmt)
    return out.contiguous(memory_format=fmt)


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _grad_like(t: Optional[Tensor], ref: Tensor) -> Tensor:
    if t is None:  # a missing bias has no gradient: an empty placeholder keeps the list's length fixed
        return ref.new_empty(0)
    if t.dim() == 4:
        return empty_like_format(t, t.shape)
    return t.new_empty(t.shape)


def fake_grads(x: Tensor, tensors: Sequence[Optional[Tensor]]) -> list[Tensor]:
    return [_grad_like(t, x) for t in tensors]


def reference_vjp(fn: Callable, grad: Tensor, tensors: Sequence[Optional[Tensor]], *args, **kwargs) -> list[Tensor]:
    """Gradients of ``fn(*tensors, *args, **kwargs)`` for every tensor, by differentiating the reference
    composition (recomputes the forward; uses cuDNN/ATen on GPU).

    torch.func.vjp rather than torch.autograd.grad: inside a custom op's implementation the autograd
    dispatch keys are excluded, and functorch's transform re-enables differentiation at its own level."""
    live = [i for i, t in enumerate(tensors) if t is not None]

    def f(*live_tensors):
        full = list(tensors)
        for i, t in zip(live, live_tensors):
            full[i] = t
        return fn(*full, *args, **kwargs)

    _, vjp = torch.func.vjp(f, *[tensors[i] for i in live])
    gs = iter(vjp(grad))
    result = []
    for t in tensors:
        if t is None:
            result.append(grad.new_empty(0))
            continue
        g = next(gs)
        result.append(g.contiguous(memory_format=memory_format_of(t)) if g.dim() == 4 else g.contiguous())
    return result


def grads_or_none(grads: Sequence[Tensor], tensors: Sequence[Optional[Tensor]]) -> list[Optional[Tensor]]:
    """Autograd wants None for inputs that were None."""
    return [None if t is None else g for g, t in zip(grads, tensors)]


def register_vjp(op, backward_op, n_tensors: int, residual_index: Optional[int] = None) -> None:
    """Autograd for ``op`` whose first ``n_tensors`` inputs are differentiable tensors (saved), followed
    optionally by a residual input at ``residual_index`` (its gradient is the incoming gradient, so it
    is not saved), then non-tensor config. ``backward_op(grad, *tensors, *config)`` returns one gradient
    per saved tensor (empty for a None input)."""
    n_skip = n_tensors + (residual_index is not None)

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.cfg = inputs[n_skip:]
        ctx.has_residual = residual_index is not None and inputs[residual_index] is not None

    def backward(ctx, grad):
        tensors = ctx.saved_tensors
        grads = grads_or_none(backward_op(grad.contiguous(), *tensors, *ctx.cfg), tensors)
        if residual_index is not None:
            grads.append(grad if ctx.has_residual else None)
        return (*grads,) + (None,) * len(ctx.cfg)

    op.register_autograd(backward, setup_context=setup)
