"""fastconv.group_conv1x1: grouped 1x1 conv with channel shuffles folded into its indexing."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (ACTS, check_act, check_input, check_int, check_param, check_pw_weight,
                              empty_like_format, resolve_backend)
from fastconv.ops._glue import fake_grads, finish, kernel_inputs, reference_vjp, register_vjp, triton_module

OP = "group_conv1x1"

torch.library.define(
    "fastconv::group_conv1x1_cuda",
    "(Tensor x, Tensor weight, Tensor? bias, int groups, int shuffle_in, int shuffle_out, int act) -> Tensor")


def _ref(x, weight, bias, groups, shuffle_in, shuffle_out, act):
    return reference.group_conv1x1(x, weight, bias, groups=groups, shuffle_in=shuffle_in or None,
                                   shuffle_out=shuffle_out or None, act=act)


@torch.library.custom_op("fastconv::group_conv1x1", mutates_args=())
def _group_conv1x1(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int, shuffle_in: int,
                   shuffle_out: int, act: str, backend: str) -> Tensor:
    """shuffle_in / shuffle_out: 0 means no shuffle."""
    if backend == "reference":
        return finish(_ref(x, weight, bias, groups, shuffle_in, shuffle_out, act), x)
    xk, weight, bias = kernel_inputs(x, weight, bias)
    if backend == "triton":
        out = triton_module(OP).forward(xk, weight, bias, groups, shuffle_in, shuffle_out, act)
    else:
        out = torch.ops.fastconv.group_conv1x1_cuda(xk, weight, bias, groups, shuffle_in, shuffle_out, ACTS[act])
    return finish(out, x)


@_group_conv1x1.register_fake
def _(x, weight, bias, groups, shuffle_in, shuffle_out, act, backend):
    return empty_like_format(x, (x.shape[0], weight.shape[0], x.shape[2], x.shape[3]))


@torch.library.custom_op("fastconv::group_conv1x1_backward", mutates_args=())
def _group_conv1x1_backward(grad: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int,
                            shuffle_in: int, shuffle_out: int, act: str, backend: str) -> list[Tensor]:
    """[grad_x, grad_weight, grad_bias] (grad_bias empty when bias is None)."""
    if backend == "triton" and hasattr(triton_module(OP), "backward"):
        return triton_module(OP).backward(grad, x, weight, bias, groups, shuffle_in, shuffle_out, act)
    return reference_vjp(_ref, grad, (x, weight, bias), groups, shuffle_in, shuffle_out, act)


@_group_conv1x1_backward.register_fake
def _(grad, x, weight, bias, groups, shuffle_in, shuffle_out, act, backend):
    return fake_grads(x, (x, weight, bias))


register_vjp(_group_conv1x1, torch.ops.fastconv.group_conv1x1_backward, 3)


def group_conv1x1(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, groups: int,
                  shuffle_in: Optional[int] = None, shuffle_out: Optional[int] = None, act: str = "none",
                  backend: str = "auto") -> Tensor:
    """Grouped 1x1 conv with optional channel shuffles before and after (never materialised).

    Shapes: x (N, C, H, W); weight (K, C/groups, 1, 1); bias (K,) -> out (N, K, H, W).

    Equivalent to::

        y = F.channel_shuffle(x, shuffle_in) if shuffle_in else x
        y = act(F.conv2d(y, weight, bias, groups=groups))
        y = F.channel_shuffle(y, shuffle_out) if shuffle_out else y
    """
    check_input("x", x)
    check_int("groups", groups)
    c = x.shape[1]
    kout = check_pw_weight("weight", weight, x, c, groups)
    check_param("bias", bias, x, (kout,), optional=True)
    check_act("act", act)
    for name, s, ch in (("shuffle_in", shuffle_in, c), ("shuffle_out", shuffle_out, kout)):
        if s is not None:
            check_int(name, s)
            if ch % s:
                raise ValueError(f"{name}={s} does not divide the {ch} channels it shuffles")
    be = resolve_backend(OP, backend, x, "group_conv1x1_cuda", (kout, groups, shuffle_in, shuffle_out))
    return torch.ops.fastconv.group_conv1x1(x, weight, bias, groups, shuffle_in or 0, shuffle_out or 0, act, be)
