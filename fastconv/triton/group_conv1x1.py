"""Triton backend of fastconv.group_conv1x1: grouped 1x1 conv with both channel shuffles folded in.

A grouped 1x1 conv is G independent GEMMs (pixels x C/G) @ (C/G x K/G). A channel shuffle is a
fixed permutation of channel indices, so neither shuffle ever touches memory on its own:

- shuffle_in: the A-operand loader reads channel ``src(c) = (c % s) * (C/s) + c // s`` of x where
  the unshuffled conv would read channel c (a gather inside each pixel's channels);
- shuffle_out: the epilogue stores output channel k at ``dst(k) = (k % (K/s)) * s + k // (K/s)``.

The kernel also serves as stage 1 of the ShuffleNet units (fastconv/triton/shufflenet_v*_unit.py).
"""
from __future__ import annotations

from typing import Optional

import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import empty_like_format
from fastconv.triton._common import (act_code, apply_act, autotune_configs, channel_vec, check_int32_indexing, dot_fp32,
                                     dot_precision, known_multiple, mma, prune_by_registers, vec_dividing)


def pix_stride(t: Tensor) -> int:
    """Stride of the flattened h*W + w pixel index of a dense NCHW/NHWC tensor (or a channel slice
    of one): h's stride is W times w's whenever both dims matter."""
    return t.stride(3) if t.shape[3] > 1 else t.stride(2)


def _configs():
    # Tiles above 64 fp32 accumulator registers per thread go to 8 warps: at 4 warps 128x32 and
    # 128x64 sat at the 255-register cap and 64x128x64 spilled; 256x128 spilled even at 8.
    return autotune_configs(("BLOCK_P", "BLOCK_N", "BLOCK_K"), (64, 32, 32, 4), [
        (64, 16, 32, 4), (128, 16, 32, 4), (64, 32, 64, 4), (128, 32, 32, 8), (128, 64, 32, 8),
        (128, 64, 64, 8), (128, 128, 32, 8), (256, 64, 32, 8), (64, 128, 64, 8)], num_stages=3)


def _live(a) -> float:
    """fp32-equivalent live elements: the accumulator plus the A and B tiles in their dtype (fp32
    256x64x32 spilled at 8 warps: score 104 per thread, the configs kept score <= 96)."""
    return a["BLOCK_P"] * a["BLOCK_N"] + (a["BLOCK_P"] + a["BLOCK_N"]) * a["BLOCK_K"] * a["x_ptr"].element_size() / 4


# Kernel: grid (cdiv(N*H*W, BLOCK_P), G * cdiv(K/G, BLOCK_N)). Tile = BLOCK_P pixels x BLOCK_N
# output channels of one group; K-loop over that group's C/G input channels, BLOCK_K at a time
# (blocks >= 16 for tl.dot, tails masked). Fuses shuffle_in (loader index), bias + act and
# shuffle_out (store index).
@triton.autotune(configs=_configs(), key=["NPIX", "CG", "KG", "G"],
                 prune_configs_by={"early_config_prune": prune_by_registers(_live, budget=100)})
@triton.jit
def _gconv1x1_kernel(x_ptr, w_ptr, b_ptr, out_ptr,
                     NPIX, HW, C, CG, K, KG, G, SHUF_IN, SHUF_OUT,
                     sxn, sxc, sxp, son, soc, sop,
                     HAS_BIAS: tl.constexpr, HAS_SHUF_IN: tl.constexpr, HAS_SHUF_OUT: tl.constexpr,
                     ACT: tl.constexpr, DOT_FP32: tl.constexpr, PREC: tl.constexpr, VEC: tl.constexpr,
                     OVEC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_q = tl.program_id(1)
    NB_N = tl.cdiv(KG, BLOCK_N)
    g = pid_q // NB_N
    nb = pid_q % NB_N
    dt = out_ptr.dtype.element_ty

    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < NPIX
    n = (offs_p // HW).to(tl.int64)
    hw = (offs_p % HW).to(tl.int64)
    x_pix = n * sxn + hw * sxp
    if VEC > 1:  # NHWC x, CG a multiple of VEC, no input shuffle: each group's channels are one aligned run
        x_pix = tl.multiple_of(x_pix, VEC)
        CG = known_multiple(CG, VEC)
    o_pix = n * son + hw * sop
    if OVEC > 1:  # the same for out, KG and no output shuffle
        o_pix = tl.multiple_of(o_pix, OVEC)
        KG = known_multiple(KG, OVEC)

    offs_n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < KG
    k = g * KG + offs_n

    acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
    for j0 in range(0, CG, BLOCK_K):
        j = j0 + tl.arange(0, BLOCK_K)
        mask_j = j < CG
        c = g * CG + j
        if HAS_SHUF_IN:
            cpg = C // SHUF_IN
            c = (c % SHUF_IN) * cpg + c // SHUF_IN
        a = tl.load(x_ptr + x_pix[:, None] + c[None, :] * sxc, mask=mask_p[:, None] & mask_j[None, :], other=0.0)
        # weight (K, CG): B[j, n] = w[g*KG + n, j]
        b = tl.load(w_ptr + k[None, :] * CG + j[:, None], mask=mask_j[:, None] & mask_n[None, :], other=0.0)
        acc = mma(a, b, acc, DOT_FP32, PREC)

    if HAS_BIAS:
        acc += tl.load(b_ptr + k, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    acc = apply_act(acc, ACT)
    oc = k
    if HAS_SHUF_OUT:
        kpg = K // SHUF_OUT
        oc = (k % kpg) * SHUF_OUT + k // kpg
    o_ptrs = out_ptr + o_pix[:, None] + oc[None, :] * soc
    tl.store(o_ptrs, acc.to(dt), mask=mask_p[:, None] & mask_n[None, :])


def launch(x: Tensor, weight: Tensor, bias: Optional[Tensor], out: Tensor, groups: int,
           shuffle_in: int, shuffle_out: int, act: str) -> Tensor:
    """Writes act(gconv(shuffle(x, shuffle_in))) shuffled by shuffle_out into ``out``.

    x: (N, C, H, W) dense NCHW/NHWC or a channel slice of one; weight: (K, C/groups, 1, 1);
    out: (N, K, H, W) dense in either format (0 = no shuffle)."""
    n, c, h, w = x.shape
    kout = weight.shape[0]
    npix = n * h * w
    if npix == 0:
        return out
    cg, kg = c // groups, kout // groups
    check_int32_indexing("group_conv1x1", npix, x, out)
    has_in, has_out = bool(shuffle_in) and shuffle_in > 1, bool(shuffle_out) and shuffle_out > 1
    vec = 1 if has_in else vec_dividing(channel_vec(x), cg)
    ovec = 1 if has_out else vec_dividing(channel_vec(out), kg)
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]), groups * triton.cdiv(kg, meta["BLOCK_N"]))
    _gconv1x1_kernel[grid](
        x, weight, bias if bias is not None else weight, out,
        npix, h * w, c, cg, kout, kg, groups, shuffle_in or 1, shuffle_out or 1,
        x.stride(0), x.stride(1), pix_stride(x), out.stride(0), out.stride(1), pix_stride(out),
        HAS_BIAS=bias is not None, HAS_SHUF_IN=has_in, HAS_SHUF_OUT=has_out, ACT=act_code(act),
        DOT_FP32=dot_fp32(x.dtype), PREC=dot_precision(x.dtype, x.device), VEC=vec, OVEC=ovec)
    return out


def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int, shuffle_in: int,
            shuffle_out: int, act: str) -> Tensor:
    """x: (N, C, H, W), weight: (K, C/groups, 1, 1), bias: (K,) or None -> (N, K, H, W) in x's
    memory format and dtype. shuffle_in / shuffle_out: 0 = no shuffle."""
    out = empty_like_format(x, (x.shape[0], weight.shape[0], x.shape[2], x.shape[3]))
    return launch(x, weight, bias, out, groups, shuffle_in, shuffle_out, act)
