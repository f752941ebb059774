"""fastconv.inverted_residual: MobileNetV2/V3 / MBConv block (expand -> dw -> [SE] -> project [+ x])."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (ACTS, SE_GATES, check_act, check_dw_weight, check_input, check_int,
                              check_param, check_pw_weight, check_spatial, conv_out_size,
                              empty_like_format, resolve_backend)
from fastconv.ops._glue import fake_grads, finish, kernel_inputs, reference_vjp, register_vjp, triton_module

OP = "inverted_residual"

torch.library.define(
    "fastconv::inverted_residual_cuda",
    "(Tensor x, Tensor? expand_weight, Tensor dw_weight, Tensor project_weight, Tensor? expand_bias, "
    "Tensor? dw_bias, Tensor? project_bias, Tensor? se_w1, Tensor? se_b1, Tensor? se_w2, Tensor? se_b2, "
    "int stride, int padding, int act, int se_act, int se_gate, bool residual) -> Tensor")


def _ref(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias,
         se_w1, se_b1, se_w2, se_b2, stride, padding, act, se_act, se_gate, residual):
    se = None if se_w1 is None else (se_w1, se_b1, se_w2, se_b2)
    return reference.inverted_residual(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias,
                                       project_bias, stride=stride, padding=padding, act=act, se=se,
                                       se_act=se_act, se_gate=se_gate, residual=residual)


@torch.library.custom_op("fastconv::inverted_residual", mutates_args=())
def _inverted_residual(x: Tensor, expand_weight: Optional[Tensor], dw_weight: Tensor, project_weight: Tensor,
                       expand_bias: Optional[Tensor], dw_bias: Optional[Tensor], project_bias: Optional[Tensor],
                       se_w1: Optional[Tensor], se_b1: Optional[Tensor], se_w2: Optional[Tensor],
                       se_b2: Optional[Tensor], stride: int, padding: int, act: str, se_act: str,
                       se_gate: str, residual: bool, backend: str) -> Tensor:
    args = (stride, padding, act, se_act, se_gate, residual)
    if backend == "reference":
        return finish(_ref(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias,
                           se_w1, se_b1, se_w2, se_b2, *args), x)
    tensors = kernel_inputs(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias,
                            se_w1, se_b1, se_w2, se_b2)
    if backend == "triton":
        out = triton_module(OP).forward(*tensors, *args)
    else:
        out = torch.ops.fastconv.inverted_residual_cuda(*tensors, stride, padding, ACTS[act], ACTS[se_act],
                                                        ACTS[se_gate], residual)
    return finish(out, x)


def _out_shape(x, dw_weight, project_weight, stride, padding):
    k = dw_weight.shape[-1]
    return (x.shape[0], project_weight.shape[0], conv_out_size(x.shape[2], k, stride, padding),
            conv_out_size(x.shape[3], k, stride, padding))


@_inverted_residual.register_fake
def _(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias, se_w1, se_b1, se_w2,
      se_b2, stride, padding, act, se_act, se_gate, residual, backend):
    return empty_like_format(x, _out_shape(x, dw_weight, project_weight, stride, padding))


@torch.library.custom_op("fastconv::inverted_residual_backward", mutates_args=())
def _inverted_residual_backward(grad: Tensor, x: Tensor, expand_weight: Optional[Tensor], dw_weight: Tensor,
                                project_weight: Tensor, expand_bias: Optional[Tensor], dw_bias: Optional[Tensor],
                                project_bias: Optional[Tensor], se_w1: Optional[Tensor], se_b1: Optional[Tensor],
                                se_w2: Optional[Tensor], se_b2: Optional[Tensor], stride: int, padding: int,
                                act: str, se_act: str, se_gate: str, residual: bool, backend: str) -> list[Tensor]:
    """One gradient per tensor input, in order (an empty tensor for a None input)."""
    tensors = (x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias,
               se_w1, se_b1, se_w2, se_b2)
    args = (stride, padding, act, se_act, se_gate, residual)
    if backend == "triton" and hasattr(triton_module(OP), "backward"):
        return triton_module(OP).backward(grad, *tensors, *args)
    return reference_vjp(_ref, grad, tensors, *args)


@_inverted_residual_backward.register_fake
def _(grad, x, *rest):
    return fake_grads(x, (x,) + tuple(rest[:10]))


register_vjp(_inverted_residual, torch.ops.fastconv.inverted_residual_backward, 11)


def inverted_residual(x: Tensor, expand_weight: Optional[Tensor], dw_weight: Tensor, project_weight: Tensor,
                      expand_bias: Optional[Tensor] = None, dw_bias: Optional[Tensor] = None,
                      project_bias: Optional[Tensor] = None, *, stride: int = 1, padding: Optional[int] = None,
                      act: str = "relu6", se: Optional[Sequence[Tensor]] = None, se_act: str = "relu",
                      se_gate: str = "hardsigmoid", residual: bool = False, backend: str = "auto") -> Tensor:
    """Fused inverted residual / MBConv block with BN folded (MobileNetV2, V3, EfficientNet).

    Shapes: x (N, C, H, W); expand_weight (E, C, 1, 1) or None for no expansion (E = C);
    dw_weight (E, 1, k, k); project_weight (K, E, 1, 1); biases (E,), (E,), (K,);
    se = (w1 (S, E, 1, 1), b1 (S,), w2 (E, S, 1, 1), b2 (E,)) -> out (N, K, H', W').

    Equivalent to::

        h = act(F.conv2d(x, expand_weight, expand_bias))            # skipped if expand_weight is None
        h = act(F.conv2d(h, dw_weight, dw_bias, stride, padding, groups=E))
        if se: s = h.mean((2, 3), keepdim=True)
               h = h * se_gate(F.conv2d(se_act(F.conv2d(s, w1, b1)), w2, b2))
        out = F.conv2d(h, project_weight, project_bias)
        out = out + x                                               # if residual

    ``padding=None`` means ``k // 2``. ``residual=True`` needs stride 1 and K == C.
    """
    check_input("x", x)
    c = x.shape[1]
    if expand_weight is None:
        e = c
        if expand_bias is not None:
            raise ValueError("expand_bias is given but expand_weight is None")
    else:
        e = check_pw_weight("expand_weight", expand_weight, x, c)
    k = check_dw_weight("dw_weight", dw_weight, x, e)
    kout = check_pw_weight("project_weight", project_weight, x, e)
    check_param("expand_bias", expand_bias, x, (e,), optional=True)
    check_param("dw_bias", dw_bias, x, (e,), optional=True)
    check_param("project_bias", project_bias, x, (kout,), optional=True)
    check_int("stride", stride)
    padding = k // 2 if padding is None else check_int("padding", padding, minimum=0)
    check_act("act", act)
    check_act("se_act", se_act)
    check_act("se_gate", se_gate, SE_GATES)
    check_spatial("inverted_residual", x.shape[2], x.shape[3], k, stride, padding)
    if not isinstance(residual, bool):
        raise TypeError(f"residual must be a bool, got {type(residual).__name__}")
    if residual:
        if stride != 1:
            raise ValueError(f"residual=True needs stride 1, got stride={stride}")
        if kout != c:
            raise ValueError(f"residual=True needs project_weight's {kout} output channels to equal x's {c}")
        if _out_shape(x, dw_weight, project_weight, stride, padding) != tuple(x.shape):
            raise ValueError(f"residual=True needs the output shape to equal x's; check padding={padding}")
    if se is None:
        se_w1 = se_b1 = se_w2 = se_b2 = None
    else:
        if not isinstance(se, (tuple, list)) or len(se) != 4:
            raise ValueError("se must be a tuple (w1, b1, w2, b2) of 1x1 conv weights and biases")
        se_w1, se_b1, se_w2, se_b2 = se
        s = check_pw_weight("se[0] (w1)", se_w1, x, e)
        check_param("se[1] (b1)", se_b1, x, (s,), optional=True)
        check_param("se[2] (w2)", se_w2, x, (e, s, 1, 1))
        check_param("se[3] (b2)", se_b2, x, (e,), optional=True)
    be = resolve_backend(OP, backend, x, "inverted_residual_cuda", (e, kout, k, stride, se is not None))
    return torch.ops.fastconv.inverted_residual(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias,
                                                project_bias, se_w1, se_b1, se_w2, se_b2, stride, padding, act,
                                                se_act, se_gate, residual, be)
