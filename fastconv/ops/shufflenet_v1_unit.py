"""fastconv.shufflenet_v1_unit: gconv1 -> relu -> shuffle -> dw3x3 -> gconv2 -> add/concat -> relu."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (check_dw_weight, check_input, check_int, check_param, check_pw_weight,
                              check_spatial, conv_out_size, empty_like_format, resolve_backend)
from fastconv.ops._glue import fake_grads, finish, kernel_inputs, reference_vjp, register_vjp, triton_module

OP = "shufflenet_v1_unit"

torch.library.define(
    "fastconv::shufflenet_v1_unit_cuda",
    "(Tensor x, Tensor w1, Tensor? b1, Tensor dw_weight, Tensor? dw_bias, Tensor w2, Tensor? b2, "
    "int groups, int first_groups, int stride) -> Tensor")


def _ref(x, w1, b1, dw_weight, dw_bias, w2, b2, groups, first_groups, stride):
    return reference.shufflenet_v1_unit(x, w1, b1, dw_weight, dw_bias, w2, b2, groups=groups,
                                        first_groups=first_groups, stride=stride)


def _out_shape(x, w2, stride):
    if stride == 1:
        return tuple(x.shape)
    return (x.shape[0], x.shape[1] + w2.shape[0], conv_out_size(x.shape[2], 3, 2, 1),
            conv_out_size(x.shape[3], 3, 2, 1))


@torch.library.custom_op("fastconv::shufflenet_v1_unit", mutates_args=())
def _shufflenet_v1_unit(x: Tensor, w1: Tensor, b1: Optional[Tensor], dw_weight: Tensor, dw_bias: Optional[Tensor],
                        w2: Tensor, b2: Optional[Tensor], groups: int, first_groups: int, stride: int,
                        backend: str) -> Tensor:
    if backend == "reference":
        return finish(_ref(x, w1, b1, dw_weight, dw_bias, w2, b2, groups, first_groups, stride), x)
    tensors = kernel_inputs(x, w1, b1, dw_weight, dw_bias, w2, b2)
    if backend == "triton":
        out = triton_module(OP).forward(*tensors, groups, first_groups, stride)
    else:
        out = torch.ops.fastconv.shufflenet_v1_unit_cuda(*tensors, groups, first_groups, stride)
    return finish(out, x)


@_shufflenet_v1_unit.register_fake
def _(x, w1, b1, dw_weight, dw_bias, w2, b2, groups, first_groups, stride, backend):
    return empty_like_format(x, _out_shape(x, w2, stride))


@torch.library.custom_op("fastconv::shufflenet_v1_unit_backward", mutates_args=())
def _shufflenet_v1_unit_backward(grad: Tensor, x: Tensor, w1: Tensor, b1: Optional[Tensor], dw_weight: Tensor,
                                 dw_bias: Optional[Tensor], w2: Tensor, b2: Optional[Tensor], groups: int,
                                 first_groups: int, stride: int, backend: str) -> list[Tensor]:
    """One gradient per tensor input, in order (an empty tensor for a None bias)."""
    tensors = (x, w1, b1, dw_weight, dw_bias, w2, b2)
    if backend == "triton" and hasattr(triton_module(OP), "backward"):
        return triton_module(OP).backward(grad, *tensors, groups, first_groups, stride)
    return reference_vjp(_ref, grad, tensors, groups, first_groups, stride)


@_shufflenet_v1_unit_backward.register_fake
def _(grad, x, w1, b1, dw_weight, dw_bias, w2, b2, groups, first_groups, stride, backend):
    return fake_grads(x, (x, w1, b1, dw_weight, dw_bias, w2, b2))


register_vjp(_shufflenet_v1_unit, torch.ops.fastconv.shufflenet_v1_unit_backward, 7)


def shufflenet_v1_unit(x: Tensor, w1: Tensor, b1: Optional[Tensor], dw_weight: Tensor, dw_bias: Optional[Tensor],
                       w2: Tensor, b2: Optional[Tensor], *, groups: int, first_groups: Optional[int] = None,
                       stride: int = 1, backend: str = "auto") -> Tensor:
    """ShuffleNet V1 unit with BN folded.

    Shapes: x (N, C, H, W); w1 (M, C/g1, 1, 1) with g1 = first_groups or groups; dw_weight (M, 1, 3, 3);
    w2 (K, M/groups, 1, 1). Stride 1: K == C, out (N, C, H, W). Stride 2: out (N, C + K, H', W').

    Equivalent to::

        y = relu(F.conv2d(x, w1, b1, groups=first_groups or groups))
        y = F.channel_shuffle(y, groups)
        y = F.conv2d(y, dw_weight, dw_bias, stride, 1, groups=M)
        y = F.conv2d(y, w2, b2, groups=groups)
        out = relu(x + y) if stride == 1 else relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), y], 1))
    """
    check_input("x", x)
    check_int("groups", groups)
    g1 = groups if first_groups is None else check_int("first_groups", first_groups)
    c = x.shape[1]
    m = check_pw_weight("w1", w1, x, c, g1)
    if m % groups:
        raise ValueError(f"groups={groups} does not divide w1's {m} output channels")
    check_param("b1", b1, x, (m,), optional=True)
    k = check_dw_weight("dw_weight", dw_weight, x, m)
    if k != 3:
        raise ValueError(f"dw_weight must be 3x3, got {k}x{k}")
    check_param("dw_bias", dw_bias, x, (m,), optional=True)
    kout = check_pw_weight("w2", w2, x, m, groups)
    check_param("b2", b2, x, (kout,), optional=True)
    if check_int("stride", stride) not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    if stride == 1 and kout != c:
        raise ValueError(f"stride 1 adds x: w2's {kout} output channels must equal x's {c}")
    check_spatial("shufflenet_v1_unit", x.shape[2], x.shape[3], 3, stride, 1)
    be = resolve_backend(OP, backend, x, "shufflenet_v1_unit_cuda", (m, kout, groups, g1, stride))
    return torch.ops.fastconv.shufflenet_v1_unit(x, w1, b1, dw_weight, dw_bias, w2, b2, groups, g1, stride, be)
