"""fastconv.channel_shuffle: the ShuffleNet channel permutation as one bandwidth-bound kernel."""
from __future__ import annotations

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import check_input, check_int, empty_like_format, resolve_backend
from fastconv.ops._glue import finish, kernel_inputs, triton_module

OP = "channel_shuffle"

torch.library.define("fastconv::channel_shuffle_cuda", "(Tensor x, int groups) -> Tensor")


@torch.library.custom_op("fastconv::channel_shuffle", mutates_args=())
def _channel_shuffle(x: Tensor, groups: int, backend: str) -> Tensor:
    if backend == "reference":
        return finish(reference.channel_shuffle(x, groups), x)
    (xk,) = kernel_inputs(x)
    if backend == "triton":
        out = triton_module(OP).forward(xk, groups)
    else:
        out = torch.ops.fastconv.channel_shuffle_cuda(xk, groups)
    return finish(out, x)


@_channel_shuffle.register_fake
def _(x, groups, backend):
    return empty_like_format(x, x.shape)


def _setup(ctx, inputs, output):
    ctx.groups, ctx.backend = inputs[1], inputs[2]


def _backward(ctx, grad):
    # The inverse of a shuffle with g groups is a shuffle with C/g groups.
    return torch.ops.fastconv.channel_shuffle(grad, grad.shape[1] // ctx.groups, ctx.backend), None, None


_channel_shuffle.register_autograd(_backward, setup_context=_setup)


def channel_shuffle(x: Tensor, groups: int, backend: str = "auto") -> Tensor:
    """Channel shuffle. x: (N, C, H, W) -> (N, C, H, W); out[:, i*groups + g] = x[:, g*(C//groups) + i].

    Equivalent to ``torch.nn.functional.channel_shuffle(x, groups)``.
    """
    check_input("x", x)
    check_int("groups", groups)
    if x.shape[1] % groups:
        raise ValueError(f"groups={groups} does not divide the {x.shape[1]} channels of x")
    be = resolve_backend(OP, backend, x, "channel_shuffle_cuda", (groups,))
    return torch.ops.fastconv.channel_shuffle(x, groups, be)
