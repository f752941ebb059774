"""fastconv.dwpw_conv2d: depthwise k x k -> act -> pointwise 1x1 -> act (+ residual), one op."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (ACTS, check_act, check_dw_weight, check_input, check_int, check_param,
                              check_pw_weight, check_spatial, empty_like_format, resolve_backend)
from fastconv.ops._glue import fake_grads, finish, kernel_inputs, like, reference_vjp, register_vjp, triton_module

OP = "dwpw_conv2d"

torch.library.define(
    "fastconv::dwpw_conv2d_cuda",
    "(Tensor x, Tensor dw_weight, Tensor pw_weight, Tensor? dw_bias, Tensor? pw_bias, Tensor? residual, "
    "int stride, int padding, int dilation, int dw_act, int pw_act) -> Tensor")


def _out_shape(x, dw_weight, pw_weight, stride, padding, dilation):
    k = dw_weight.shape[-1]
    ho = (x.shape[2] + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (x.shape[3] + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    return (x.shape[0], pw_weight.shape[0], ho, wo)


@torch.library.custom_op("fastconv::dwpw_conv2d", mutates_args=())
def _dwpw_conv2d(x: Tensor, dw_weight: Tensor, pw_weight: Tensor, dw_bias: Optional[Tensor],
                 pw_bias: Optional[Tensor], residual: Optional[Tensor], stride: int, padding: int,
                 dilation: int, dw_act: str, pw_act: str, backend: str) -> Tensor:
    if backend == "reference":
        out = reference.dwpw_conv2d(x, dw_weight, pw_weight, dw_bias, pw_bias, stride=stride,
                                    padding=padding, dilation=dilation, dw_act=dw_act, pw_act=pw_act,
                                    residual=residual)
        return finish(out, x)
    xk, dw_weight, pw_weight, dw_bias, pw_bias = kernel_inputs(x, dw_weight, pw_weight, dw_bias, pw_bias)
    residual = like(residual, x)
    if backend == "triton":
        out = triton_module(OP).forward(xk, dw_weight, pw_weight, dw_bias, pw_bias, residual,
                                        stride, padding, dilation, dw_act, pw_act)
    else:
        out = torch.ops.fastconv.dwpw_conv2d_cuda(xk, dw_weight, pw_weight, dw_bias, pw_bias, residual,
                                                  stride, padding, dilation, ACTS[dw_act], ACTS[pw_act])
    return finish(out, x)


@_dwpw_conv2d.register_fake
def _(x, dw_weight, pw_weight, dw_bias, pw_bias, residual, stride, padding, dilation, dw_act, pw_act, backend):
    return empty_like_format(x, _out_shape(x, dw_weight, pw_weight, stride, padding, dilation))


@torch.library.custom_op("fastconv::dwpw_conv2d_backward", mutates_args=())
def _dwpw_conv2d_backward(grad: Tensor, x: Tensor, dw_weight: Tensor, pw_weight: Tensor,
                          dw_bias: Optional[Tensor], pw_bias: Optional[Tensor], stride: int, padding: int,
                          dilation: int, dw_act: str, pw_act: str, backend: str) -> list[Tensor]:
    """Returns [grad_x, grad_dw_weight, grad_pw_weight, grad_dw_bias, grad_pw_bias]
    (an empty tensor for a bias that is None)."""
    tensors = (x, dw_weight, pw_weight, dw_bias, pw_bias)
    if backend == "triton" and hasattr(triton_module(OP), "backward"):
        return triton_module(OP).backward(grad, *tensors, stride, padding, dilation, dw_act, pw_act)
    return reference_vjp(lambda *t: reference.dwpw_conv2d(
        *t, stride=stride, padding=padding, dilation=dilation, dw_act=dw_act, pw_act=pw_act), grad, tensors)


@_dwpw_conv2d_backward.register_fake
def _(grad, x, dw_weight, pw_weight, dw_bias, pw_bias, stride, padding, dilation, dw_act, pw_act, backend):
    return fake_grads(x, (x, dw_weight, pw_weight, dw_bias, pw_bias))


register_vjp(_dwpw_conv2d, torch.ops.fastconv.dwpw_conv2d_backward, 5, residual_index=5)


def dwpw_conv2d(x: Tensor, dw_weight: Tensor, pw_weight: Tensor, dw_bias: Optional[Tensor] = None,
                pw_bias: Optional[Tensor] = None, *, stride: int = 1, padding: Optional[int] = None,
                dilation: int = 1, dw_act: str = "none", pw_act: str = "none",
                residual: Optional[Tensor] = None, backend: str = "auto") -> Tensor:
    """Fused depthwise-separable conv (MobileNetV1 block, MobileNetV2 t=1 block).

    Shapes: x (N, C, H, W); dw_weight (C, 1, k, k), k odd; pw_weight (K, C, 1, 1);
    dw_bias (C,); pw_bias (K,); residual (N, K, H', W') -> out (N, K, H', W').

    Equivalent to::

        y = dw_act(F.conv2d(x, dw_weight, dw_bias, stride, padding, dilation, groups=C))
        out = pw_act(F.conv2d(y, pw_weight, pw_bias))
        out = out + residual            # if residual is given

    ``padding=None`` means ``(k // 2) * dilation``. The output keeps x's memory format.
    """
    check_input("x", x)
    c = x.shape[1]
    k = check_dw_weight("dw_weight", dw_weight, x, c)
    kout = check_pw_weight("pw_weight", pw_weight, x, c)
    check_param("dw_bias", dw_bias, x, (c,), optional=True)
    check_param("pw_bias", pw_bias, x, (kout,), optional=True)
    check_int("stride", stride)
    check_int("dilation", dilation)
    padding = (k // 2) * dilation if padding is None else check_int("padding", padding, minimum=0)
    check_act("dw_act", dw_act)
    check_act("pw_act", pw_act)
    shape = _out_shape(x, dw_weight, pw_weight, stride, padding, dilation)
    check_spatial("dwpw_conv2d", x.shape[2], x.shape[3], k, stride, padding, dilation)
    check_param("residual", residual, x, shape, optional=True)
    be = resolve_backend(OP, backend, x, "dwpw_conv2d_cuda", (kout, k, stride, padding, dilation))
    return torch.ops.fastconv.dwpw_conv2d(x, dw_weight, pw_weight, dw_bias, pw_bias, residual, stride,
                                          padding, dilation, dw_act, pw_act, be)
