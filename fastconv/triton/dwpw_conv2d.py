"""Triton backend of fastconv.dwpw_conv2d: depthwise k x k -> act -> 1x1 -> act (+ residual), one kernel.

Fusion: every program owns BLOCK_P output pixels (flattened over N*H'*W') and BLOCK_K output
channels. It walks the input channels BLOCK_C at a time; for each chunk it evaluates the k x k
depthwise conv of those channels at its pixels in fp32 registers, adds dw_bias, applies dw_act,
rounds to the input dtype (as the unfused composition stores it) and hands that tile straight to
``tl.dot`` as the A operand of the pointwise conv. The depthwise output never reaches global
memory; pw_bias, pw_act and the residual are applied in the epilogue.

Bytes moved (ideal caching): x read once per K tile (taps of neighbouring pixels hit in L1/L2),
pw_weight once per pixel tile, out written once, residual read once. The unfused composition also
writes and re-reads the (N, C, H', W') depthwise output. When K > BLOCK_K the depthwise result is
recomputed per K tile: k*k*C FMAs per pixel, small next to the C*BLOCK_K of the matmul it feeds.

Addressing goes through strides, so NCHW- and NHWC-contiguous x both work; the output is
allocated in x's memory format. NHWC launches pass VEC (channels per 16-byte vector every pixel's
channel run is aligned to, fastconv.triton._common.channel_vec) so that taps, residual and output
move in 16-byte accesses for channel counts Triton cannot prove aligned itself (it only knows
multiples of 16). Configs whose live tiles (_live) exceed the register budget are pruned.
"""
from __future__ import annotations

from typing import Optional

import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import empty_like_format
from fastconv.triton._common import (act_code, apply_act, autotune_configs, channel_vec, check_int32_indexing, dot_fp32,
                                     dot_precision, known_multiple, mma, output_pixels, prune_by_registers)


def _configs():
    # num_stages=1: the only loads worth pipelining are the k*k tap tiles, and staging them in shared
    # memory costs k*k x stages tiles (over 200 KB for fp32); occupancy hides latency.
    # 8 warps from 64x64 tiles up: at 4 warps 128x32x64 and 64x64x128 sat at 244-255 registers
    # (fp16) and 64x32x64 spilled in fp32; _live prunes what would still not fit.
    return autotune_configs(("BLOCK_P", "BLOCK_C", "BLOCK_K"), (128, 32, 32, 4), [
        (32, 32, 64, 4), (64, 32, 64, 8), (128, 32, 64, 8), (64, 64, 128, 8), (128, 32, 128, 8)], num_stages=1)


def _live(a) -> int:
    """fp32-equivalent elements of the live register tiles: the accumulator (BLOCK_P x BLOCK_K), the
    depthwise tile (BLOCK_P x BLOCK_C) and one tap tile of x in its dtype."""
    return a["BLOCK_P"] * (a["BLOCK_K"] + a["BLOCK_C"] * (1 + a["x_ptr"].element_size() / 4))


# Kernel: grid (cdiv(N*H'*W', BLOCK_P), cdiv(K, BLOCK_K)). Tile = BLOCK_P output pixels x BLOCK_K
# output channels; reduction over C in BLOCK_C chunks. Fuses dw conv + dw_bias + dw_act (in
# registers, A operand of tl.dot) -> 1x1 conv -> pw_bias + pw_act + residual (epilogue).
@triton.autotune(configs=_configs(), key=["NPIX", "C", "K", "KS", "stride", "dilation"],
                 prune_configs_by={"early_config_prune": prune_by_registers(_live)})
@triton.jit
def _dwpw_kernel(x_ptr, dww_ptr, pww_ptr, dwb_ptr, pwb_ptr, res_ptr, out_ptr,
                 NPIX, C, H, W, K, HO, WO,
                 sxn, sxc, sxh, sxw, son, soc, soh, sow, srn, src, srh, srw,
                 stride, padding, dilation,
                 KS: tl.constexpr, HAS_DWB: tl.constexpr, HAS_PWB: tl.constexpr, HAS_RES: tl.constexpr,
                 DW_ACT: tl.constexpr, PW_ACT: tl.constexpr, DOT_FP32: tl.constexpr,
                 PREC: tl.constexpr, VEC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
                 BLOCK_K: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_k = tl.program_id(1)
    dt = out_ptr.dtype.element_ty

    offs_p, mask_p, n, oh, ow = output_pixels(pid_p, BLOCK_P, NPIX, HO, WO)
    ih0 = oh * stride - padding
    iw0 = ow * stride - padding
    x_img = n * sxn  # per-pixel image offset (n is int64: large batches)
    if VEC > 1:  # NHWC, C a multiple of VEC: every pixel's channel run starts VEC-aligned
        C = known_multiple(C, VEC)
        K = known_multiple(K, VEC)

    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K

    acc = tl.zeros([BLOCK_P, BLOCK_K], dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        mask_c = offs_c < C
        dw = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
        for kh in range(KS):  # a loop, not unrolled: k*k unrolled taps make 7x7 compile for minutes
            ih = ih0 + kh * dilation
            row_ok = mask_p & (ih >= 0) & (ih < H)
            for kw in tl.static_range(KS):
                iw = iw0 + kw * dilation
                ok = row_ok & (iw >= 0) & (iw < W)
                pix = x_img + ih * sxh + iw * sxw
                if VEC > 1:
                    pix = tl.multiple_of(pix, VEC)
                ptrs = x_ptr + pix[:, None] + offs_c[None, :] * sxc
                v = tl.load(ptrs, mask=ok[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
                wv = tl.load(dww_ptr + offs_c * (KS * KS) + (kh * KS + kw), mask=mask_c, other=0.0)
                dw += v * wv.to(tl.float32)[None, :]
        if HAS_DWB:
            dw += tl.load(dwb_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)[None, :]
        # every block act maps 0 -> 0, so padded channels stay exactly zero
        a = apply_act(dw, DW_ACT).to(dt)
        # pw_weight (K, C): B[c, k] = w[k, c]
        b = tl.load(pww_ptr + offs_k[None, :] * C + offs_c[:, None],
                    mask=mask_c[:, None] & mask_k[None, :], other=0.0)
        acc = mma(a, b, acc, DOT_FP32, PREC)

    if HAS_PWB:
        acc += tl.load(pwb_ptr + offs_k, mask=mask_k, other=0.0).to(tl.float32)[None, :]
    acc = apply_act(acc, PW_ACT)
    mask = mask_p[:, None] & mask_k[None, :]
    if HAS_RES:
        r_pix = n * srn + oh * srh + ow * srw
        if VEC > 1:
            r_pix = tl.multiple_of(r_pix, VEC)
        acc += tl.load(res_ptr + r_pix[:, None] + offs_k[None, :] * src, mask=mask, other=0.0).to(tl.float32)
    o_pix = n * son + oh * soh + ow * sow
    if VEC > 1:
        o_pix = tl.multiple_of(o_pix, VEC)
    o_ptrs = out_ptr + o_pix[:, None] + offs_k[None, :] * soc
    tl.store(o_ptrs, acc.to(dt), mask=mask)


def forward(x: Tensor, dw_weight: Tensor, pw_weight: Tensor, dw_bias: Optional[Tensor],
            pw_bias: Optional[Tensor], residual: Optional[Tensor], stride: int, padding: int,
            dilation: int, dw_act: str, pw_act: str) -> Tensor:
    """x: (N, C, H, W), dw_weight: (C, 1, k, k), pw_weight: (K, C, 1, 1), residual: (N, K, H', W')
    or None -> (N, K, H', W') in x's memory format and dtype."""
    n, c, h, w = x.shape
    ks = dw_weight.shape[-1]
    kout = pw_weight.shape[0]
    ho = (h + 2 * padding - dilation * (ks - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (ks - 1) - 1) // stride + 1
    out = empty_like_format(x, (n, kout, ho, wo))
    npix = n * ho * wo
    if npix == 0:
        return out
    check_int32_indexing("dwpw_conv2d", npix, x, residual, out)
    res = residual if residual is not None else out  # dummy pointer, never read
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]), triton.cdiv(kout, meta["BLOCK_K"]))
    _dwpw_kernel[grid](
        x, dw_weight, pw_weight, dw_bias if dw_bias is not None else dw_weight,
        pw_bias if pw_bias is not None else pw_weight, res, out,
        npix, c, h, w, kout, ho, wo, *x.stride(), *out.stride(), *res.stride(),
        stride, padding, dilation,
        KS=ks, HAS_DWB=dw_bias is not None, HAS_PWB=pw_bias is not None,
        HAS_RES=residual is not None, DW_ACT=act_code(dw_act), PW_ACT=act_code(pw_act),
        DOT_FP32=dot_fp32(x.dtype), PREC=dot_precision(x.dtype, x.device),
        VEC=channel_vec(*[t for t in (x, residual, out) if t is not None]))
    return out
