"""fastconv.shufflenet_v2_unit: torchvision's ShuffleNetV2 InvertedResidual (BN folded), one op."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (check_dw_weight, check_input, check_int, check_param, check_pw_weight, check_spatial,
                              conv_out_size, empty_like_format, resolve_backend)
from fastconv.ops._glue import fake_grads, finish, kernel_inputs, reference_vjp, register_vjp, triton_module

OP = "shufflenet_v2_unit"

torch.library.define(
    "fastconv::shufflenet_v2_unit_cuda",
    "(Tensor x, Tensor pw1_w, Tensor? pw1_b, Tensor dw_w, Tensor? dw_b, Tensor pw2_w, Tensor? pw2_b, "
    "Tensor? b1_dw_w, Tensor? b1_dw_b, Tensor? b1_pw_w, Tensor? b1_pw_b, int stride) -> Tensor")


def _ref(x, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, b1_dw_w, b1_dw_b, b1_pw_w, b1_pw_b, stride):
    branch1 = None if b1_dw_w is None else (b1_dw_w, b1_dw_b, b1_pw_w, b1_pw_b)
    return reference.shufflenet_v2_unit(x, (pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b), branch1, stride=stride)


def _out_shape(x, pw2_w, stride):
    if stride == 1:
        return tuple(x.shape)
    return (x.shape[0], 2 * pw2_w.shape[0], conv_out_size(x.shape[2], 3, stride, 1),
            conv_out_size(x.shape[3], 3, stride, 1))


@torch.library.custom_op("fastconv::shufflenet_v2_unit", mutates_args=())
def _shufflenet_v2_unit(x: Tensor, pw1_w: Tensor, pw1_b: Optional[Tensor], dw_w: Tensor, dw_b: Optional[Tensor],
                        pw2_w: Tensor, pw2_b: Optional[Tensor], b1_dw_w: Optional[Tensor],
                        b1_dw_b: Optional[Tensor], b1_pw_w: Optional[Tensor], b1_pw_b: Optional[Tensor],
                        stride: int, backend: str) -> Tensor:
    tensors = (x, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, b1_dw_w, b1_dw_b, b1_pw_w, b1_pw_b)
    if backend == "reference":
        return finish(_ref(*tensors, stride), x)
    tensors = kernel_inputs(*tensors)
    if backend == "triton":
        out = triton_module(OP).forward(*tensors, stride)
    else:
        out = torch.ops.fastconv.shufflenet_v2_unit_cuda(*tensors, stride)
    return finish(out, x)


@_shufflenet_v2_unit.register_fake
def _(x, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, b1_dw_w, b1_dw_b, b1_pw_w, b1_pw_b, stride, backend):
    return empty_like_format(x, _out_shape(x, pw2_w, stride))


@torch.library.custom_op("fastconv::shufflenet_v2_unit_backward", mutates_args=())
def _shufflenet_v2_unit_backward(grad: Tensor, x: Tensor, pw1_w: Tensor, pw1_b: Optional[Tensor], dw_w: Tensor,
                                 dw_b: Optional[Tensor], pw2_w: Tensor, pw2_b: Optional[Tensor],
                                 b1_dw_w: Optional[Tensor], b1_dw_b: Optional[Tensor], b1_pw_w: Optional[Tensor],
                                 b1_pw_b: Optional[Tensor], stride: int, backend: str) -> list[Tensor]:
    """One gradient per tensor input, in order (an empty tensor for a None input)."""
    tensors = (x, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, b1_dw_w, b1_dw_b, b1_pw_w, b1_pw_b)
    if backend == "triton" and hasattr(triton_module(OP), "backward"):
        return triton_module(OP).backward(grad, *tensors, stride)
    return reference_vjp(_ref, grad, tensors, stride)


@_shufflenet_v2_unit_backward.register_fake
def _(grad, x, *rest):
    return fake_grads(x, (x,) + tuple(rest[:10]))


register_vjp(_shufflenet_v2_unit, torch.ops.fastconv.shufflenet_v2_unit_backward, 11)


def shufflenet_v2_unit(x: Tensor, branch2: Sequence[Optional[Tensor]],
                       branch1: Optional[Sequence[Optional[Tensor]]] = None, *, stride: int = 1,
                       backend: str = "auto") -> Tensor:
    """ShuffleNet V2 unit (torchvision ``InvertedResidual``) with BN folded.

    branch2 = (pw1_w (B, Cin2, 1, 1), pw1_b, dw_w (B, 1, 3, 3), dw_b, pw2_w (B, B, 1, 1), pw2_b), with
    Cin2 = C/2 at stride 1 and C at stride 2; branch1 = (dw_w (C, 1, 3, 3), dw_b, pw_w (B, C, 1, 1), pw_b),
    stride 2 only. x (N, C, H, W) -> out (N, C, H, W) at stride 1, (N, 2B, H', W') at stride 2.

    Equivalent to::

        if stride == 1: x1, x2 = x.chunk(2, 1); out = torch.cat([x1, branch2(x2)], 1)
        else:           out = torch.cat([branch1(x), branch2(x)], 1)
        out = F.channel_shuffle(out, 2)

    with branch2(z) = relu(pw2(dw3x3(relu(pw1(z)), stride))) and branch1(z) = relu(pw(dw3x3(z, 2))).
    """
    check_input("x", x)
    if check_int("stride", stride) not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    c = x.shape[1]
    if not isinstance(branch2, (tuple, list)) or len(branch2) != 6:
        raise ValueError("branch2 must be a tuple (pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b)")
    pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b = branch2
    if stride == 1:
        if branch1 is not None:
            raise ValueError("branch1 is only used at stride 2; pass branch1=None at stride 1")
        if c % 2:
            raise ValueError(f"stride 1 splits x's channels in two: C={c} must be even")
        cin2 = c // 2
    else:
        if not isinstance(branch1, (tuple, list)) or len(branch1) != 4:
            raise ValueError("stride 2 needs branch1 = (dw_w, dw_b, pw_w, pw_b)")
        cin2 = c
    b = check_pw_weight("branch2[0] (pw1_w)", pw1_w, x, cin2)
    check_param("branch2[1] (pw1_b)", pw1_b, x, (b,), optional=True)
    if check_dw_weight("branch2[2] (dw_w)", dw_w, x, b) != 3:
        raise ValueError("branch2[2] (dw_w) must be 3x3")
    check_param("branch2[3] (dw_b)", dw_b, x, (b,), optional=True)
    check_param("branch2[4] (pw2_w)", pw2_w, x, (b, b, 1, 1))
    check_param("branch2[5] (pw2_b)", pw2_b, x, (b,), optional=True)
    if stride == 1:
        if b != cin2:
            raise ValueError(f"stride 1 needs branch2's {b} channels to equal half of x's {c}")
        b1 = (None, None, None, None)
    else:
        b1 = tuple(branch1)
        if check_dw_weight("branch1[0] (dw_w)", b1[0], x, c) != 3:
            raise ValueError("branch1[0] (dw_w) must be 3x3")
        check_param("branch1[1] (dw_b)", b1[1], x, (c,), optional=True)
        check_param("branch1[2] (pw_w)", b1[2], x, (b, c, 1, 1))
        check_param("branch1[3] (pw_b)", b1[3], x, (b,), optional=True)
    check_spatial("shufflenet_v2_unit", x.shape[2], x.shape[3], 3, stride, 1)
    be = resolve_backend(OP, backend, x, "shufflenet_v2_unit_cuda", (b, stride))
    return torch.ops.fastconv.shufflenet_v2_unit(x, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, *b1, stride, be)
