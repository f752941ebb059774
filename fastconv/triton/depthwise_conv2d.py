"""Triton backend of fastconv.depthwise_conv2d: forward, input gradient, weight/bias gradient.

Notation: x (N, C, H, W); weight (C*m, 1, KH, KW) with channel multiplier m (output channel o reads
input channel o // m); out / grad (N, C*m, H', W'). Every kernel addresses its tensors through
strides, so NCHW- and NHWC-dense tensors both work (the op glue hands over one of the two).

Kernels
- ``_fwd_kernel``: a program owns BLOCK_P output pixels (flattened over N*H'*W') x BLOCK_C output
  channels and sums the KH*KW taps in fp32 registers (kh a loop, kw unrolled), adds the bias and
  applies the activation. With GRAD=True the same kernel recomputes the pre-activation z and writes
  grad * act'(z) instead: the backward's "pre-activation gradient", so the forward saves nothing
  but its inputs (the act derivative costs one extra forward pass, no extra activation memory).
- ``_dgrad_kernel``: grad_x is a transposed depthwise conv. A program owns BLOCK_P *input* pixels x
  BLOCK_C input channels; input pixel i receives tap (kh, kw) from output pixel
  (i + pad - k*dil) / stride when that is an integer in range (stride 2: a gather where 3 of 4 taps
  are masked off; no scatter, so no atomics). Taps are visited in a fixed order per element: the
  result does not depend on the block config.
- ``_wgrad_kernel`` + ``_reduce_kernel``: grad_w[o, kh, kw] = sum over N*H'*W' of
  gz[o, p] * x[o // m, tap(p, kh, kw)], grad_b[o] = sum gz[o, p]. Grid (tiles, channel blocks, KH):
  each program walks its tile's pixels BLOCK_P at a time, gathering a (BLOCK_P, BLOCK_C, KW_PAD)
  block of x (one kernel row, all kw at once) against a (BLOCK_P, BLOCK_C) block of gz, and writes
  its fp32 partial sums to part[tile]. ``_reduce_kernel`` then adds the tiles in index order. No
  atomics, and the tile split and block sizes are a fixed function of the shape (never autotuned),
  so the weight gradient is bitwise reproducible run to run.

Per-program register budget: fwd/dgrad BLOCK_P*BLOCK_C fp32 accumulators; wgrad
BLOCK_P*BLOCK_C*KW_PAD <= 8192 gathered values (KW_PAD = next power of two >= KW).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import empty_like_format, memory_format_of, triton_interpreting
from fastconv.triton._common import act_code, apply_act, autotune_configs, output_pixels


@triton.jit
def act_grad(g, z, ACT: tl.constexpr):
    """g * act'(z), fp32 blocks, with PyTorch's conventions at the kinks (relu'(0) = 0,
    relu6/hardtanh pass the gradient strictly inside (0, 6), hardswish' = z/3 + 1/2 on [-3, 3]) and
    its NaN behaviour (a NaN pre-activation passes the gradient through the clamps)."""
    if ACT == 1:
        g = tl.where(z <= 0.0, 0.0, g)
    elif ACT == 2:
        g = tl.where((z <= 0.0) | (z >= 6.0), 0.0, g)
    elif ACT == 3:
        g = tl.where(z < -3.0, 0.0, tl.where(z <= 3.0, g * (z / 3.0 + 0.5), g))
    elif ACT == 4:
        s = 1.0 / (1.0 + tl.exp(-z))
        g = g * s * (1.0 + z * (1.0 - s))
    elif ACT == 7:  # gelu (erf): Phi(z) + z phi(z)
        g = g * (0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476)) + z * 0.3989422804014327 * tl.exp(-0.5 * z * z))
    elif ACT == 8:  # gelu (tanh): t = tanh(u), u = sqrt(2/pi) (z + 0.044715 z^3), tanh as 1 - 2 / (1 + e^(2u))
        u = 0.7978845608028654 * (z + 0.044715 * z * z * z)
        t = 1.0 - 2.0 / (1.0 + tl.exp(2.0 * u))
        g = g * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * z * z))
    return g


def _pix_configs():
    # num_stages=1: the loads are KH*KW gathers, not a pipelined K-loop. 16 accumulators per thread:
    # 32 (128 x 32 on 4 warps) spill on sm_90 (255 registers + stack, tests/triton_codegen.py).
    return autotune_configs(("BLOCK_P", "BLOCK_C"), (128, 32, 4), [
        (64, 32, 4), (32, 64, 4), (128, 32, 8), (64, 64, 8), (128, 16, 4), (256, 8, 4), (512, 4, 4)],
        num_stages=1)


# Grid (cdiv(N*H'*W', BLOCK_P), cdiv(C*m, BLOCK_C)); tile BLOCK_P output pixels x BLOCK_C output
# channels; fuses bias + act (GRAD=False) or recomputed-z act derivative (GRAD=True).
@triton.autotune(configs=_pix_configs(), key=["NPIX", "C_OUT", "H", "W", "sxc", "KH", "KW", "SH", "SW", "GRAD"])
@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, g_ptr, out_ptr,
                NPIX, C_OUT, H, W, HO, WO,
                sxn, sxc, sxh, sxw, son, soc, soh, sow,
                PH, PW, DH, DW,
                KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, MULT: tl.constexpr,
                HAS_BIAS: tl.constexpr, ACT: tl.constexpr, GRAD: tl.constexpr,
                BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    offs_p, mask_p, n, oh, ow = output_pixels(pid_p, BLOCK_P, NPIX, HO, WO)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C_OUT
    ci = offs_c // MULT
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW
    # One tile of 64-bit pointers at tap (0, 0); every tap adds a scalar offset (per-tap pointer tiles
    # of the unrolled kw loop cost 255 registers and a stack on sm_90 for k = 7).
    x_tap0 = x_ptr + (n * sxn + ih0 * sxh + iw0 * sxw)[:, None] + (ci * sxc)[None, :]
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for kh in range(KH):  # a loop (kw unrolled): KH*KW unrolled taps make 31x31 compile forever
        ih = ih0 + kh * DH
        row_ok = mask_p & (ih >= 0) & (ih < H)
        for kw in tl.static_range(KW):
            iw = iw0 + kw * DW
            ok = row_ok & (iw >= 0) & (iw < W)
            v = tl.load(x_tap0 + (kh * DH * sxh + kw * DW * sxw),
                        mask=ok[:, None] & mask_c[None, :], other=0.0)
            wv = tl.load(w_ptr + offs_c * (KH * KW) + (kh * KW + kw), mask=mask_c, other=0.0)
            acc += v.to(tl.float32) * wv.to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)[None, :]
    mask = mask_p[:, None] & mask_c[None, :]
    o_off = (n * son + oh * soh + ow * sow)[:, None] + offs_c[None, :] * soc
    if GRAD:  # grad has out's layout (same strides)
        g = tl.load(g_ptr + o_off, mask=mask, other=0.0).to(tl.float32)
        res = act_grad(g, acc, ACT)
    else:
        res = apply_act(acc, ACT)
    tl.store(out_ptr + o_off, res.to(out_ptr.dtype.element_ty), mask=mask)


# Grid (cdiv(N*H*W, BLOCK_P), cdiv(C, BLOCK_C)); tile BLOCK_P input pixels x BLOCK_C input channels;
# gathers the KH*KW*m (output pixel, output channel) contributions of each, in a fixed order.
@triton.autotune(configs=_pix_configs(), key=["NPIX", "C_IN", "HO", "WO", "sgc", "KH", "KW", "SH", "SW"])
@triton.jit
def _dgrad_kernel(g_ptr, w_ptr, dx_ptr,
                  NPIX, C_IN, H, W, HO, WO,
                  sgn, sgc, sgh, sgw, sdn, sdc, sdh, sdw,
                  PH, PW, DH, DW,
                  KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, MULT: tl.constexpr,
                  BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    offs_p, mask_p, n, ih, iw = output_pixels(pid_p, BLOCK_P, NPIX, H, W)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C_IN
    g_pix = g_ptr + n * sgn
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for kh in range(KH):
        th = ih + PH - kh * DH
        oh = th // SH
        row_ok = mask_p & (th >= 0) & (oh < HO)
        if SH > 1:
            row_ok = row_ok & (th % SH == 0)
        for kw in tl.static_range(KW):
            tw = iw + PW - kw * DW
            ow = tw // SW
            ok = row_ok & (tw >= 0) & (ow < WO)
            if SW > 1:
                ok = ok & (tw % SW == 0)
            for j in tl.static_range(MULT):
                oc = offs_c * MULT + j
                gv = tl.load(g_pix[:, None] + (oh * sgh + ow * sgw)[:, None] + (oc * sgc)[None, :],
                             mask=ok[:, None] & mask_c[None, :], other=0.0)
                wv = tl.load(w_ptr + oc * (KH * KW) + (kh * KW + kw), mask=mask_c, other=0.0)
                acc += gv.to(tl.float32) * wv.to(tl.float32)[None, :]
    d_off = (n * sdn + ih * sdh + iw * sdw)[:, None] + offs_c[None, :] * sdc
    tl.store(dx_ptr + d_off, acc.to(dx_ptr.dtype.element_ty), mask=mask_p[:, None] & mask_c[None, :])


# Grid (T tiles, cdiv(C*m, BLOCK_C), KH); tile = PIX_PER_TILE output pixels x BLOCK_C channels x one
# kernel row (KW_PAD taps); writes fp32 partials part[tile, o*KH*KW + kh*KW + kw] and, for kh == 0,
# the bias partial part[tile, C*m*KH*KW + o].
@triton.jit
def _wgrad_kernel(g_ptr, x_ptr, part_ptr,
                  NPIX, C_OUT, H, W, HO, WO, PIX_PER_TILE, L,
                  sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                  PH, PW, DH, DW,
                  KH: tl.constexpr, KW: tl.constexpr, KW_PAD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                  MULT: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    tile = tl.program_id(0)
    pid_c = tl.program_id(1)
    kh = tl.program_id(2)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C_OUT
    ci = offs_c // MULT
    kws = tl.arange(0, KW_PAD)
    mask_kw = kws < KW
    acc = tl.zeros([BLOCK_C, KW_PAD], dtype=tl.float32)
    bacc = tl.zeros([BLOCK_C], dtype=tl.float32)
    p_lo = tile * PIX_PER_TILE
    p_hi = tl.minimum(p_lo + PIX_PER_TILE, NPIX)
    for p0 in range(p_lo, p_hi, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        mask_p = offs_p < p_hi
        rem = offs_p % (HO * WO)
        n = (offs_p // (HO * WO)).to(tl.int64)
        oh = rem // WO
        ow = rem % WO
        gv = tl.load(g_ptr + (n * sgn + oh * sgh + ow * sgw)[:, None] + (offs_c * sgc)[None, :],
                     mask=mask_p[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
        ih = oh * SH - PH + kh * DH
        row_ok = mask_p & (ih >= 0) & (ih < H)
        iw = (ow * SW - PW)[:, None] + (kws * DW)[None, :]  # (P, KW_PAD)
        ok = row_ok[:, None] & (iw >= 0) & (iw < W) & mask_kw[None, :]
        xo = (n * sxn + ih * sxh)[:, None] + iw * sxw  # (P, KW_PAD)
        xv = tl.load(x_ptr + xo[:, None, :] + (ci * sxc)[None, :, None],
                     mask=ok[:, None, :] & mask_c[None, :, None], other=0.0).to(tl.float32)
        acc += tl.sum(gv[:, :, None] * xv, axis=0)
        if HAS_BIAS:
            bacc += tl.sum(gv, axis=0)
    base = part_ptr + tile.to(tl.int64) * L
    w_off = offs_c[:, None] * (KH * KW) + kh * KW + kws[None, :]
    tl.store(base + w_off, acc, mask=mask_c[:, None] & mask_kw[None, :])
    if HAS_BIAS:
        tl.store(base + C_OUT * KH * KW + offs_c, bacc, mask=mask_c & (kh == 0))


# Grid (cdiv(L, BLOCK),); adds the T partial rows in index order (the deterministic half of the
# weight gradient) and casts: columns < NW go to dw_ptr, the rest (the bias) to db_ptr.
@triton.jit
def _reduce_kernel(part_ptr, dw_ptr, db_ptr, T, L, NW, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < L
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    ptrs = part_ptr + offs
    for _ in range(T):  # pointer increments: T * L may pass 2^31
        acc += tl.load(ptrs, mask=mask, other=0.0)
        ptrs += L
    tl.store(dw_ptr + offs, acc.to(dw_ptr.dtype.element_ty), mask=mask & (offs < NW))
    tl.store(db_ptr + (offs - NW), acc.to(db_ptr.dtype.element_ty), mask=mask & (offs >= NW))


# ---------------------------------------------------------------------------------------------
# launchers
# ---------------------------------------------------------------------------------------------

def _out_hw(h, w, kh, kw, stride, padding, dilation):
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return ho, wo


def _conv(x, weight, bias, grad, stride, padding, dilation, act, out_dtype=None) -> Tensor:
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = _out_hw(h, w, kh, kw, stride, padding, dilation)
    out = empty_like_format(x, (n, c_out, ho, wo), out_dtype)
    npix = n * ho * wo
    if npix == 0:
        return out
    if grad is not None:
        assert grad.stride() == out.stride(), "grad must have the output's layout"
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]), triton.cdiv(c_out, meta["BLOCK_C"]))
    _fwd_kernel[grid](
        x, weight, bias if bias is not None else weight, grad if grad is not None else out, out,
        npix, c_out, h, w, ho, wo, *x.stride(), *out.stride(), padding[0], padding[1], dilation[0], dilation[1],
        KH=kh, KW=kw, SH=stride[0], SW=stride[1], MULT=c_out // c, HAS_BIAS=bias is not None,
        ACT=act_code(act), GRAD=grad is not None)
    return out


def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int], padding: Sequence[int],
            dilation: Sequence[int], act: str) -> Tensor:
    """x: (N, C, H, W) NCHW- or NHWC-dense, weight: (C*m, 1, KH, KW), bias: (C*m,) or None
    -> act(conv) (N, C*m, H', W') in x's memory format and dtype."""
    return _conv(x, weight, bias, None, stride, padding, dilation, act)


def preact_grad(grad: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, dilation,
                act: str) -> Tensor:
    """grad * act'(z) with z = conv(x, weight) + bias recomputed; grad laid out like the output."""
    return _conv(x, weight, bias, grad, stride, padding, dilation, act)


def grad_input(gz: Tensor, weight: Tensor, x_shape: Sequence[int], like: Tensor, stride, padding,
               dilation) -> Tensor:
    """gz: (N, C*m, H', W') pre-activation gradient -> grad_x (N, C, H, W) in ``like``'s memory format."""
    n, c, h, w = x_shape
    c_out, _, kh, kw = weight.shape
    _, _, ho, wo = gz.shape
    dx = empty_like_format(like, (n, c, h, w), gz.dtype)
    npix = n * h * w
    if npix == 0:
        return dx
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]), triton.cdiv(c, meta["BLOCK_C"]))
    _dgrad_kernel[grid](
        gz, weight, dx, npix, c, h, w, ho, wo, *gz.stride(), *dx.stride(),
        padding[0], padding[1], dilation[0], dilation[1],
        KH=kh, KW=kw, SH=stride[0], SW=stride[1], MULT=c_out // c)
    return dx


def wgrad_plan(npix: int, c_out: int, kh: int, kw: int, channels_last: bool) -> dict:
    """The weight-gradient kernel's blocks and tile split: a fixed function of the shape (never
    autotuned), which is what makes the summation order, and so the bits, reproducible."""
    kw_pad = triton.next_power_of_2(kw)
    budget = 8192 // kw_pad  # BLOCK_P * BLOCK_C
    if channels_last:  # channels contiguous: wide channel blocks
        block_c = min(64, max(4, triton.next_power_of_2(c_out)), budget // 4)
        block_p = budget // block_c
    else:  # pixels contiguous: long pixel blocks
        block_p = min(256, max(16, triton.next_power_of_2(npix)), budget // 2)
        block_c = max(1, min(budget // block_p, triton.next_power_of_2(c_out)))
    block_p = max(1, min(block_p, max(16, triton.next_power_of_2(npix))))
    progs_per_tile = triton.cdiv(c_out, block_c) * kh
    # enough programs to fill a big GPU (132 SMs x a few), but tiles of at least a few blocks so
    # the partial buffer and the reduce stay small; under the interpreter, few programs (its cost).
    target = 4 if triton_interpreting() else max(1, triton.cdiv(1024, progs_per_tile))
    steps = max(1, triton.cdiv(triton.cdiv(npix, block_p), target))
    pix_per_tile = steps * block_p
    return dict(BLOCK_P=block_p, BLOCK_C=block_c, KW_PAD=kw_pad, tiles=triton.cdiv(npix, pix_per_tile),
                pix_per_tile=pix_per_tile, num_warps=4 if block_p * block_c * kw_pad <= 4096 else 8)


def grad_weight(gz: Tensor, x: Tensor, weight_shape: Sequence[int], has_bias: bool, stride, padding,
                dilation) -> tuple[Tensor, Tensor]:
    """gz: (N, C*m, H', W'), x: (N, C, H, W) (same memory format) -> (grad_w (C*m, 1, KH, KW),
    grad_b (C*m,) or an empty tensor), in x's dtype, fp32 accumulation, deterministic."""
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight_shape
    _, _, ho, wo = gz.shape
    npix = n * ho * wo
    dw = torch.empty(tuple(weight_shape), dtype=x.dtype, device=x.device)
    db = torch.empty(c_out if has_bias else 0, dtype=x.dtype, device=x.device)
    if npix == 0:
        return dw.zero_(), db.zero_()
    nw = c_out * kh * kw
    length = nw + (c_out if has_bias else 0)
    plan = wgrad_plan(npix, c_out, kh, kw, memory_format_of(x) == torch.channels_last)
    tiles = plan["tiles"]
    part = torch.empty((tiles, length), dtype=torch.float32, device=x.device)
    _wgrad_kernel[(tiles, triton.cdiv(c_out, plan["BLOCK_C"]), kh)](
        gz, x, part, npix, c_out, h, w, ho, wo, plan["pix_per_tile"], length, *gz.stride(), *x.stride(),
        padding[0], padding[1], dilation[0], dilation[1],
        KH=kh, KW=kw, KW_PAD=plan["KW_PAD"], SH=stride[0], SW=stride[1], MULT=c_out // c, HAS_BIAS=has_bias,
        BLOCK_P=plan["BLOCK_P"], BLOCK_C=plan["BLOCK_C"], num_warps=plan["num_warps"])
    block = 1024
    _reduce_kernel[(triton.cdiv(length, block),)](part, dw, db if has_bias else dw, tiles, length, nw,
                                                  BLOCK=block, num_warps=4)
    return dw, db


def backward(grad: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, dilation,
             act: str, need_input: bool, need_weight: bool) -> list[Tensor]:
    """[grad_x, grad_weight, grad_bias] (empty tensors for what is not needed or a None bias).
    grad and x are dense in the same memory format."""
    gz = grad if act == "none" else preact_grad(grad, x, weight, bias, stride, padding, dilation, act)
    dx = grad_input(gz, weight, x.shape, x, stride, padding, dilation) if need_input else x.new_empty(0)
    if not need_weight:  # fresh empties: a custom op's outputs may not alias each other
        return [dx, x.new_empty(0), x.new_empty(0)]
    dw, db = grad_weight(gz, x, weight.shape, bias is not None, stride, padding, dilation)
    return [dx, dw, db]
