"""fastconv.pwdw_conv2d: pointwise 1x1 -> act -> depthwise k x k -> act [concat] (+ residual), one op.

GhostNet's Ghost module (primary 1x1 + cheap depthwise + concat), HGNetV2's light conv and the
1x1 -> dw halves of MobileNetV4 blocks.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (ACTS, _cuda_has, _status, check_act, check_input, check_int, check_param,
                              check_pw_weight, check_spatial, conv_out_size, empty_like_format,
                              resolve_backend)
from fastconv.ops._glue import fake_grads, finish, kernel_inputs, like, reference_vjp, register_vjp, triton_module

OP = "pwdw_conv2d"

torch.library.define(
    "fastconv::pwdw_conv2d_cuda",
    "(Tensor x, Tensor pw_weight, Tensor dw_weight, Tensor? pw_bias, Tensor? dw_bias, Tensor? residual, "
    "int stride, int padding, int dilation, int pw_act, int dw_act, bool concat) -> Tensor")


def _out_shape(x, pw_weight, dw_weight, stride, padding, dilation, concat):
    k = dw_weight.shape[-1]
    m, md = pw_weight.shape[0], dw_weight.shape[0]
    return (x.shape[0], m + md if concat else md, conv_out_size(x.shape[2], k, stride, padding, dilation),
            conv_out_size(x.shape[3], k, stride, padding, dilation))


@torch.library.custom_op("fastconv::pwdw_conv2d", mutates_args=())
def _pwdw_conv2d(x: Tensor, pw_weight: Tensor, dw_weight: Tensor, pw_bias: Optional[Tensor],
                 dw_bias: Optional[Tensor], residual: Optional[Tensor], stride: int, padding: int,
                 dilation: int, pw_act: str, dw_act: str, concat: bool, backend: str) -> Tensor:
    if backend == "reference":
        out = reference.pwdw_conv2d(x, pw_weight, dw_weight, pw_bias, dw_bias, stride=stride, padding=padding,
                                    dilation=dilation, pw_act=pw_act, dw_act=dw_act, concat=concat,
                                    residual=residual)
        return finish(out, x)
    xk, pw_weight, dw_weight, pw_bias, dw_bias = kernel_inputs(x, pw_weight, dw_weight, pw_bias, dw_bias)
    residual = like(residual, x)
    if backend == "triton":
        out = triton_module(OP).forward(xk, pw_weight, dw_weight, pw_bias, dw_bias, residual,
                                        stride, padding, dilation, pw_act, dw_act, concat)
    else:
        out = torch.ops.fastconv.pwdw_conv2d_cuda(xk, pw_weight, dw_weight, pw_bias, dw_bias, residual, stride,
                                                  padding, dilation, ACTS[pw_act], ACTS[dw_act], concat)
    return finish(out, x)


@_pwdw_conv2d.register_fake
def _(x, pw_weight, dw_weight, pw_bias, dw_bias, residual, stride, padding, dilation, pw_act, dw_act, concat,
      backend):
    return empty_like_format(x, _out_shape(x, pw_weight, dw_weight, stride, padding, dilation, concat))


@torch.library.custom_op("fastconv::pwdw_conv2d_backward", mutates_args=())
def _pwdw_conv2d_backward(grad: Tensor, x: Tensor, pw_weight: Tensor, dw_weight: Tensor,
                          pw_bias: Optional[Tensor], dw_bias: Optional[Tensor], stride: int, padding: int,
                          dilation: int, pw_act: str, dw_act: str, concat: bool, backend: str) -> list[Tensor]:
    """Returns [grad_x, grad_pw_weight, grad_dw_weight, grad_pw_bias, grad_dw_bias]
    (an empty tensor for a bias that is None)."""
    tensors = (x, pw_weight, dw_weight, pw_bias, dw_bias)
    if backend == "triton" and hasattr(triton_module(OP), "backward"):
        return triton_module(OP).backward(grad, *tensors, stride, padding, dilation, pw_act, dw_act, concat)
    return reference_vjp(lambda *t: reference.pwdw_conv2d(
        *t, stride=stride, padding=padding, dilation=dilation, pw_act=pw_act, dw_act=dw_act, concat=concat),
        grad, tensors)


@_pwdw_conv2d_backward.register_fake
def _(grad, x, pw_weight, dw_weight, pw_bias, dw_bias, stride, padding, dilation, pw_act, dw_act, concat, backend):
    return fake_grads(x, (x, pw_weight, dw_weight, pw_bias, dw_bias))


register_vjp(_pwdw_conv2d, torch.ops.fastconv.pwdw_conv2d_backward, 5, residual_index=5)


def _check_dw_weight(w, x: Tensor, m: int) -> tuple[int, int]:
    """dw_weight: (M*mult, 1, k, k), k odd, mult >= 1. Returns (k, mult)."""
    if not isinstance(w, Tensor) or w.dim() != 4 or w.shape[1] != 1:
        raise ValueError(f"dw_weight must be a 4-D depthwise weight (M*multiplier, 1, k, k), got "
                         f"{tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__}")
    k = w.shape[-1]
    if w.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"dw_weight must be square with an odd kernel size, got {tuple(w.shape)}")
    if w.shape[0] == 0 or w.shape[0] % m:
        raise ValueError(f"dw_weight has {w.shape[0]} output channels, which is not a positive multiple of "
                         f"pw_weight's {m} output channels (the depthwise conv's groups)")
    check_param("dw_weight", w, x, tuple(w.shape))
    return k, w.shape[0] // m


def pwdw_conv2d(x: Tensor, pw_weight: Tensor, dw_weight: Tensor, pw_bias: Optional[Tensor] = None,
                dw_bias: Optional[Tensor] = None, *, stride: int = 1, padding: Optional[int] = None,
                dilation: int = 1, pw_act: str = "none", dw_act: str = "none", concat: bool = False,
                residual: Optional[Tensor] = None, backend: str = "auto") -> Tensor:
    """Fused pointwise -> depthwise conv (GhostNet Ghost module, HGNetV2 light conv, MobileNetV4).

    Shapes: x (N, C, H, W); pw_weight (M, C, 1, 1); dw_weight (M*m, 1, k, k), k odd, channel
    multiplier m >= 1; pw_bias (M,); dw_bias (M*m,); residual shaped like out
    -> out (N, M*m, H', W'), or (N, M + M*m, H, W) with ``concat=True``.

    Equivalent to::

        h = pw_act(F.conv2d(x, pw_weight, pw_bias))
        y = dw_act(F.conv2d(h, dw_weight, dw_bias, stride, padding, dilation, groups=M))
        out = torch.cat([h, y], 1) if concat else y
        out = out + residual            # if residual is given

    ``padding=None`` means ``(k // 2) * dilation``. ``concat=True`` needs stride 1 and an output of
    x's spatial size. The output keeps x's memory format.
    """
    check_input("x", x)
    c = x.shape[1]
    m = check_pw_weight("pw_weight", pw_weight, x, c)
    k, mult = _check_dw_weight(dw_weight, x, m)
    check_param("pw_bias", pw_bias, x, (m,), optional=True)
    check_param("dw_bias", dw_bias, x, (m * mult,), optional=True)
    check_int("stride", stride)
    check_int("dilation", dilation)
    padding = (k // 2) * dilation if padding is None else check_int("padding", padding, minimum=0)
    check_act("pw_act", pw_act)
    check_act("dw_act", dw_act)
    if not isinstance(concat, bool):
        raise TypeError(f"concat must be a bool, got {type(concat).__name__}")
    ho, wo = check_spatial("pwdw_conv2d", x.shape[2], x.shape[3], k, stride, padding, dilation)
    if concat and (stride != 1 or (ho, wo) != tuple(x.shape[2:])):
        raise ValueError(f"concat=True needs stride 1 and a depthwise output of x's spatial size "
                         f"{tuple(x.shape[2:])}; got stride={stride}, padding={padding}, dilation={dilation} "
                         f"-> {(ho, wo)}")
    shape = _out_shape(x, pw_weight, dw_weight, stride, padding, dilation, concat)
    check_param("residual", residual, x, shape, optional=True)
    if backend == "cuda" and _status("cuda")[0] and not _cuda_has("pwdw_conv2d_cuda"):
        raise RuntimeError("fastconv.pwdw_conv2d: backend='cuda' is not available: this op has no CUDA kernel "
                           "in this build of fastconv._C; use backend='triton' (or 'auto', which picks it)")
    be = resolve_backend(OP, backend, x, "pwdw_conv2d_cuda", (m, mult, k, stride, padding, dilation, concat))
    return torch.ops.fastconv.pwdw_conv2d(x, pw_weight, dw_weight, pw_bias, dw_bias, residual, stride, padding,
                                          dilation, pw_act, dw_act, concat, be)
