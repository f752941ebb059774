"""fastconv.depthwise_conv2d: act(depthwise conv + bias), with fast backward kernels, for training.

Ops (schemas declared here, whether or not fastconv._C is built):
- ``fastconv::depthwise_conv2d``          the forward (autograd -> the backward op below)
- ``fastconv::depthwise_conv2d_backward`` [grad_x, grad_weight, grad_bias]; the Triton backend runs
  real kernels (transposed conv gather for grad_x, per-tile partials + fixed-order reduce for
  grad_weight/grad_bias: bitwise reproducible); the reference backend runs ATen's backward ops.
- ``fastconv::depthwise_conv2d_cuda``     the CUDA forward kernel schema (csrc/depthwise_conv2d/, when
  built; multiplier 1, square kernels: other calls go to Triton). Its backward uses the Triton kernels.

The activation's derivative is applied to the incoming gradient at the recomputed pre-activation
(the backward re-runs the forward conv fused with ``grad * act'(z)``), so the forward saves only its
inputs, never an activation. Autocast (CUDA and CPU) casts x, weight and bias to the autocast dtype,
like PyTorch's own convs.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastconv import reference
from fastconv._common import (ACTS, _cuda_has, _status, check_act, check_input, check_int, check_param,
                              conv_out_size, empty_like_format, memory_format_of, resolve_backend)
from fastconv.ops._glue import finish, kernel_inputs, like, triton_module

OP = "depthwise_conv2d"
# Why backend="cuda" cannot run this op when fastconv._C is built but registers no kernel for it.
CUDA_MISSING = ("fastconv._C was built without the depthwise_conv2d CUDA kernel (csrc/depthwise_conv2d/); "
                "rebuild the extension, or use backend='triton' (backend='auto' picks it)")


def cuda_unsupported(x: Tensor, weight: Tensor, stride, dilation) -> str:
    """Why the CUDA forward kernel cannot take this call ("" if it can): it covers channel multiplier 1,
    square kernels, the same stride and dilation in both dimensions (the Triton kernels cover the rest)."""
    if weight.shape[0] != x.shape[1]:
        return "a channel multiplier"
    if weight.shape[2] != weight.shape[3]:
        return "non-square kernels"
    if stride[0] != stride[1] or dilation[0] != dilation[1]:
        return "different strides or dilations per dimension"
    if weight.shape[-1] >= 64 or stride[0] >= 64 or dilation[0] >= 64:
        return "kernel size, stride or dilation of 64 or more"
    return ""


torch.library.define(
    "fastconv::depthwise_conv2d_cuda",
    "(Tensor x, Tensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, int act) -> Tensor")


def _out_shape(x, weight, stride, padding, dilation):
    kh, kw = weight.shape[-2:]
    return (x.shape[0], weight.shape[0], conv_out_size(x.shape[2], kh, stride[0], padding[0], dilation[0]),
            conv_out_size(x.shape[3], kw, stride[1], padding[1], dilation[1]))


@torch.library.register_fake("fastconv::depthwise_conv2d_cuda")
def _(x, weight, bias, stride, padding, dilation, act):
    return empty_like_format(x, _out_shape(x, weight, stride, padding, dilation))


@torch.library.custom_op("fastconv::depthwise_conv2d", mutates_args=())
def _depthwise_conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
                      dilation: list[int], act: str, backend: str) -> Tensor:
    if backend == "reference":
        out = reference.depthwise_conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                         act=act)
        return finish(out, x)
    xk, weight, bias = kernel_inputs(x, weight, bias)
    if backend == "triton":
        out = triton_module(OP).forward(xk, weight, bias, stride, padding, dilation, act)
    else:
        out = torch.ops.fastconv.depthwise_conv2d_cuda(xk, weight, bias, stride, padding, dilation, ACTS[act])
    return finish(out, x)


@_depthwise_conv2d.register_fake
def _(x, weight, bias, stride, padding, dilation, act, backend):
    return empty_like_format(x, _out_shape(x, weight, stride, padding, dilation))


def _backward_backend(backend: str) -> str:
    """The CUDA backend has no backward kernels of its own: its gradients use the Triton kernels
    (same CUDA tensors), or the reference where triton is missing."""
    if backend == "cuda":
        return "triton" if _status("triton")[0] else "reference"
    return backend


@torch.library.custom_op("fastconv::depthwise_conv2d_backward", mutates_args=())
def _depthwise_conv2d_backward(grad: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                               stride: list[int], padding: list[int], dilation: list[int], act: str,
                               need_input: bool, need_weight: bool, backend: str) -> list[Tensor]:
    """Returns [grad_x, grad_weight, grad_bias]; an empty tensor for a gradient not asked for
    (need_input / need_weight: grad_bias goes with grad_weight) or for a None bias."""
    be = _backward_backend(backend)
    if be == "triton":
        xk, weight_k, bias_k = kernel_inputs(x, weight, bias)
        out = triton_module(OP).backward(like(grad, xk), xk, weight_k, bias_k, stride, padding, dilation, act,
                                         need_input, need_weight)
        if need_input:
            out[0] = out[0].contiguous(memory_format=memory_format_of(x))
        return out
    return _reference_backward(grad, x, weight, bias, stride, padding, dilation, act, need_input, need_weight)


def _act_backward(grad: Tensor, z: Tensor, act: str) -> Tensor:
    """grad * act'(z) with PyTorch's own backward kernels (same conventions as autograd)."""
    if act == "relu":
        return torch.ops.aten.threshold_backward(grad, z, 0)
    if act == "relu6":
        return torch.ops.aten.hardtanh_backward(grad, z, 0.0, 6.0)
    if act == "hardswish":
        return torch.ops.aten.hardswish_backward(grad, z)
    if act == "silu":
        return torch.ops.aten.silu_backward(grad, z)
    if act in ("gelu", "gelu_tanh"):
        return torch.ops.aten.gelu_backward(grad, z, approximate="none" if act == "gelu" else "tanh")
    if act != "none":
        raise ValueError(f"depthwise_conv2d: no derivative for act {act!r}")
    return grad


def _reference_backward(grad, x, weight, bias, stride, padding, dilation, act, need_input, need_weight):
    """The reference backward, spelled with ATen's backward ops (what autograd of the reference runs):
    recompute z = conv(x) + bias for the act's derivative, then aten.convolution_backward."""
    gz = grad
    if act != "none":
        z = torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, x.shape[1])
        gz = _act_backward(grad.to(z.dtype), z, act)
    gx, gw, gb = torch.ops.aten.convolution_backward(
        gz, x, weight, None if bias is None else [bias.shape[0]], stride, padding, dilation, False, [0, 0],
        x.shape[1], [need_input, need_weight, need_weight and bias is not None])
    # a fresh empty tensor per missing gradient: a custom op's outputs may not alias each other
    gx = gx.contiguous(memory_format=memory_format_of(x)) if need_input else x.new_empty(0)
    gw = gw.contiguous() if need_weight else x.new_empty(0)
    gb = gb if (need_weight and bias is not None) else x.new_empty(0)
    return [gx, gw, gb]


@_depthwise_conv2d_backward.register_fake
def _(grad, x, weight, bias, stride, padding, dilation, act, need_input, need_weight, backend):
    gx = empty_like_format(x, x.shape) if need_input else x.new_empty(0)
    gw = weight.new_empty(weight.shape) if need_weight else x.new_empty(0)
    gb = bias.new_empty(bias.shape) if (need_weight and bias is not None) else x.new_empty(0)
    return [gx, gw, gb]


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, act, backend = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.cfg = (stride, padding, dilation, act)
    ctx.backend = backend


def _backward(ctx, grad):
    x, weight, bias = ctx.saved_tensors
    need_x = ctx.needs_input_grad[0]
    need_w = ctx.needs_input_grad[1] or (bias is not None and ctx.needs_input_grad[2])
    gx, gw, gb = torch.ops.fastconv.depthwise_conv2d_backward(
        grad.contiguous(memory_format=memory_format_of(x)), x, weight, bias, *ctx.cfg, need_x, need_w,
        ctx.backend)
    return (gx if need_x else None, gw if ctx.needs_input_grad[1] else None,
            gb if (bias is not None and ctx.needs_input_grad[2]) else None, None, None, None, None, None)


_depthwise_conv2d.register_autograd(_backward, setup_context=_setup_context)


def _register_autocast(device_type: str) -> None:
    """Like PyTorch's convs under autocast: floating inputs are cast to the region's autocast dtype
    (torch.get_autocast_dtype, so fp16 and bf16 both work), then the op runs with autocast off.
    (torch.library.register_autocast fixes one cast dtype, hence this.)"""
    key = "Autocast" + torch._C._dispatch_key_for_device(device_type)
    dispatch_key = getattr(torch._C.DispatchKey, key)
    op = torch.ops.fastconv.depthwise_conv2d.default

    def cast(args):
        dt = torch.get_autocast_dtype(device_type)
        return [a.to(dt) if isinstance(a, Tensor) and a.is_floating_point() and a.device.type == device_type
                and a.dtype != torch.float64 else a for a in args]

    def run(*args):
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(dispatch_key)):
            return op(*cast(args))

    if op.has_kernel_for_dispatch_key(dispatch_key):
        op.py_kernels.pop(dispatch_key)
    op.py_impl(dispatch_key)(run)  # used while tracing (torch.compile)
    _LIB.impl("depthwise_conv2d", lambda _ks, *args: run(*args), key, with_keyset=True)


_LIB = torch.library.Library("fastconv", "FRAGMENT")
for _dev in ("cuda", "cpu"):
    _register_autocast(_dev)


def _pair(name: str, v, minimum: int) -> list[int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {v!r}")
        return [check_int(name, v[0], minimum), check_int(name, v[1], minimum)]
    v = check_int(name, v, minimum)
    return [v, v]


def _check_weight(weight, x: Tensor) -> tuple[int, int]:
    """weight: (C*m, 1, kh, kw). Returns (kh, kw)."""
    c = x.shape[1]
    if not isinstance(weight, Tensor) or weight.dim() != 4 or weight.shape[1] != 1:
        raise ValueError(f"weight must be a 4-D depthwise weight (C*m, 1, kh, kw) with C={c}, got "
                         f"{tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__}")
    if weight.shape[0] == 0 or weight.shape[0] % c:
        raise ValueError(f"weight has {weight.shape[0]} output channels: must be a positive multiple of the "
                         f"{c} input channels (channel multiplier)")
    kh, kw = weight.shape[-2:]
    if kh < 1 or kw < 1:
        raise ValueError(f"weight has an empty kernel {tuple(weight.shape)}")
    return kh, kw


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, stride=1, padding=None,
                     dilation=1, act: str = "none", backend: str = "auto") -> Tensor:
    """Depthwise convolution with bias and activation, forward and backward fast.

    Shapes: x (N, C, H, W); weight (C*m, 1, kh, kw) (channel multiplier m >= 1; any kernel size,
    odd sizes 3..31 are the tested ones, non-square works); bias (C*m,) -> out (N, C*m, H', W').

    Equivalent to::

        act(F.conv2d(x, weight, bias, stride, padding, dilation, groups=C))

    ``stride``, ``padding``, ``dilation``: an int or an (h, w) pair; ``padding=None`` means
    ``dilation * (k // 2)`` per dimension ("same" for odd k at stride 1). ``act`` is one of
    ``fastconv._common.BLOCK_ACTS``. fp32/fp16/bf16 with fp32 accumulation; the output keeps x's
    memory format (NCHW or channels_last). Under ``torch.autocast`` the inputs are cast to the
    autocast dtype, as for ``F.conv2d``. Gradients flow to x, weight and bias; with the Triton
    backend they are bitwise reproducible run to run.
    """
    check_input("x", x)
    kh, kw = _check_weight(weight, x)
    c_out = weight.shape[0]
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")
    st = _pair("stride", stride, 1)
    dil = _pair("dilation", dilation, 1)
    pad = [dil[0] * (kh // 2), dil[1] * (kw // 2)] if padding is None else _pair("padding", padding, 0)
    check_act("act", act)
    for i, (size, k) in enumerate(((x.shape[2], kh), (x.shape[3], kw))):
        if conv_out_size(size, k, st[i], pad[i], dil[i]) < 1:
            raise ValueError(f"depthwise_conv2d: a {kh}x{kw} kernel with stride {st}, padding {pad}, dilation "
                             f"{dil} on a {x.shape[2]}x{x.shape[3]} input gives an empty output")
    autocast = torch.is_autocast_enabled(x.device.type) if x.device.type in ("cuda", "cpu") else False
    if not autocast:  # under autocast the op casts weight/bias to the autocast dtype itself
        check_param("weight", weight, x)
        check_param("bias", bias, x, optional=True)
    elif weight.device != x.device or (bias is not None and bias.device != x.device):
        raise RuntimeError(f"weight and bias must be on x's device {x.device}")
    if backend == "cuda" and _status("cuda")[0] and not _cuda_has("depthwise_conv2d_cuda"):
        raise RuntimeError(f"fastconv.{OP}: backend='cuda' is not available: {CUDA_MISSING}")
    be = resolve_backend(OP, backend, x, "depthwise_conv2d_cuda", (c_out, kh, kw, *st, *pad, *dil, act))
    why = cuda_unsupported(x, weight, st, dil) if be == "cuda" else ""
    if why and backend == "cuda":
        raise RuntimeError(f"fastconv.{OP}: backend='cuda' does not support {why}; use backend='triton' "
                           "(backend='auto' picks it)")
    if why:
        be = "triton" if _status("triton")[0] else "reference"
    return torch.ops.fastconv.depthwise_conv2d(x, weight, bias, st, pad, dil, act, be)

