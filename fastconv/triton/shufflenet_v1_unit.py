"""Triton backend of fastconv.shufflenet_v1_unit: two kernels, one intermediate.

    y = relu(gconv1(x)); y = shuffle(y, g); y = dw3x3(y, stride); y = gconv2(y)
    out = relu(x + y)                           (stride 1)
    out = relu(cat([avg_pool3x3s2(x), y]))      (stride 2)

Kernel 1 (fastconv/triton/group_conv1x1.py): gconv1 + b1 + relu, with the shuffle folded into
its store index, writes the hidden tensor h (N, M, H, W) already in shuffled channel order.
Kernel 2 (below): per tile of output pixels and one group of gconv2, the 3x3 depthwise conv of
that group's M/g hidden channels is evaluated on the fly from h (never stored), rounded to the
input dtype and fed to tl.dot as the A operand; the epilogue adds b2, then the residual x
(stride 1) and the relu, and stores into the output. At stride 2 extra programs of the same
launch compute relu(avg_pool2d(x, 3, 2, 1)) (count_include_pad, so a fixed /9) straight into
channels [0, C) while the conv path stores at channel C + k: the concat is a channel offset.

HBM traffic: x read by kernel 1 and again by kernel 2's residual/pool (once each), h written
once and read once (the 3x3 taps of neighbouring pixels hit in L1/L2), out written once. The
unfused composition also writes/re-reads a shuffled copy, the dw output, the conv output and
the add/cat result. Keeping h out of HBM too would mean recomputing gconv1 at 9 taps per
output pixel (9x its FLOPs); for these channel counts that costs more than h's round trip.

Kernel 2 is shared with fastconv/triton/shufflenet_v2_unit.py (interleaved store, pass-through).
"""
from __future__ import annotations

from typing import Optional

import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import conv_out_size, empty_like_format
from fastconv.triton import group_conv1x1
from fastconv.triton._common import (apply_act, autotune_configs, channel_vec, check_int32_indexing, dot_fp32,
                                     dot_precision, known_multiple, mma, output_pixels, vec_dividing)

EXTRA_NONE, EXTRA_AVGPOOL, EXTRA_PASSTHROUGH = 0, 1, 2


def _configs():
    # num_stages=1 (as in dwpw_conv2d): with 2 stages the pipeliner also prefetched the tap tiles
    # of the row loop and every config spilled (255 registers + 0.1-2.4 KB). 8 warps from
    # 128-pixel or 128-channel tiles up: the depthwise tile, its tap tile and the accumulator are
    # all live in registers (128x128 sat at 255 registers in fp16).
    return autotune_configs(("BLOCK_P", "BLOCK_N", "BLOCK_K"), (64, 32, 32, 4), [
        (64, 16, 32, 4), (64, 32, 32, 4), (128, 32, 32, 8), (64, 64, 32, 4), (128, 64, 32, 8),
        (64, 128, 32, 8), (32, 64, 64, 4)], num_stages=1)


def _prune(configs, named_args, **kwargs):
    """Blocks that fit the group: BLOCK_N in [min(32, n), n] for n = KG rounded up to a power of two
    (>= 16; >= 32 in fp32; n = 32 for ShuffleNetV2's interleaved stores, where 64 spilled), BLOCK_K <=
    CG rounded up (>= 32). Wider tiles only add masked lanes and spilled, as did 16-wide ones in fp32."""
    n = 32 if named_args["OUT_MUL"] != 1 else max(16 if named_args["h_ptr"].element_size() < 4 else 32,
                                                  triton.next_power_of_2(named_args["KG"]))
    k = max(32, triton.next_power_of_2(named_args["CG"]))
    return [c for c in configs if min(32, n) <= c.kwargs["BLOCK_N"] <= n and c.kwargs["BLOCK_K"] <= k] or configs


@triton.jit
def _extra_tile(x_ptr, out_ptr, q, n, oh, ow, mask_p, H, W, CX, stride,
                sxn, sxc, sxh, sxw, son, soc, soh, sow,
                EXTRA: tl.constexpr, XVEC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """The branch that needs no GEMM, for BLOCK_N channels (block q) of x at the tile's pixels:
    relu(avg_pool 3x3/2 pad 1) -> out channel c, or the v2 pass-through x[:, c] -> out channel 2c.
    XVEC: x's channel runs start XVEC-aligned (NHWC)."""
    c = q * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_c = c < CX
    x_img = n * sxn
    mask = mask_p[:, None] & mask_c[None, :]
    if EXTRA == 1:
        s = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
        for kh in range(3):  # a loop: 9 unrolled taps keep 9 pointer tiles live
            ih = oh * stride - 1 + kh
            row_ok = mask_p & (ih >= 0) & (ih < H)
            for kw in tl.static_range(3):
                iw = ow * stride - 1 + kw
                ok = row_ok & (iw >= 0) & (iw < W)
                pix = x_img + ih * sxh + iw * sxw
                if XVEC > 1:
                    pix = tl.multiple_of(pix, XVEC)
                s += tl.load(x_ptr + pix[:, None] + c[None, :] * sxc, mask=ok[:, None] & mask_c[None, :],
                             other=0.0).to(tl.float32)
        v = apply_act(s / 9.0, 1)
        oc = c
    else:
        pix = x_img + oh * sxh + ow * sxw
        if XVEC > 1:
            pix = tl.multiple_of(pix, XVEC)
        v = tl.load(x_ptr + pix[:, None] + c[None, :] * sxc, mask=mask)
        oc = 2 * c
    o_ptrs = out_ptr + (n * son + oh * soh + ow * sow)[:, None] + oc[None, :] * soc
    tl.store(o_ptrs, v.to(out_ptr.dtype.element_ty), mask=mask)


# Kernel 2: grid (cdiv(N*H'*W', BLOCK_P), G * cdiv(K/G, BLOCK_N) + cdiv(CX, BLOCK_N)).
# Tile = BLOCK_P output pixels x BLOCK_N output channels of one gconv2 group; reduction over the
# group's CG hidden channels BLOCK_K at a time, each chunk's 3x3 depthwise conv computed in
# registers from h. Fuses dw + dw_bias -> grouped 1x1 -> bias -> (+ residual x) -> relu -> store
# at channel OUT_MUL*k + OUT_OFF; the trailing CX/BLOCK_N programs run _extra_tile instead.
@triton.autotune(configs=_configs(), key=["NPIX", "CG", "KG", "G", "CX", "stride"],
                 prune_configs_by={"early_config_prune": _prune})
@triton.jit
def _dw_gpw_kernel(h_ptr, dww_ptr, dwb_ptr, w_ptr, b_ptr, x_ptr, out_ptr,
                   NPIX, H, W, HO, WO, CG, KG, G, CX, stride, OUT_MUL, OUT_OFF,
                   shn, shc, shh, shw, sxn, sxc, sxh, sxw, son, soc, soh, sow,
                   HAS_DWB: tl.constexpr, HAS_B: tl.constexpr, RES: tl.constexpr,
                   EXTRA: tl.constexpr, RELU: tl.constexpr, DOT_FP32: tl.constexpr,
                   PREC: tl.constexpr, HVEC: tl.constexpr, XVEC: tl.constexpr, OVEC: tl.constexpr,
                   BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_q = tl.program_id(1)
    dt = out_ptr.dtype.element_ty

    offs_p, mask_p, n, oh, ow = output_pixels(pid_p, BLOCK_P, NPIX, HO, WO)

    NB_N = tl.cdiv(KG, BLOCK_N)
    if HVEC > 1:  # NHWC h, CG a multiple of HVEC: every group's channel run is HVEC-aligned
        CG = known_multiple(CG, HVEC)
    if OVEC > 1:  # the same for x (residual) and out, with KG and OUT_OFF
        KG = known_multiple(KG, OVEC)
    if pid_q < G * NB_N:
        g = pid_q // NB_N
        offs_n = (pid_q % NB_N) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_n = offs_n < KG
        k = g * KG + offs_n
        h_img = n * shn
        ih0 = oh * stride - 1
        iw0 = ow * stride - 1

        acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
        for j0 in range(0, CG, BLOCK_K):
            j = j0 + tl.arange(0, BLOCK_K)
            mask_j = j < CG
            c = g * CG + j
            dw = tl.zeros([BLOCK_P, BLOCK_K], dtype=tl.float32)
            for kh in range(3):  # a loop: 9 unrolled taps keep 9 pointer tiles live (spills)
                ih = ih0 + kh
                row_ok = mask_p & (ih >= 0) & (ih < H)
                for kw in tl.static_range(3):
                    iw = iw0 + kw
                    ok = row_ok & (iw >= 0) & (iw < W)
                    pix = h_img + ih * shh + iw * shw
                    if HVEC > 1:
                        pix = tl.multiple_of(pix, HVEC)
                    v = tl.load(h_ptr + pix[:, None] + c[None, :] * shc, mask=ok[:, None] & mask_j[None, :],
                                other=0.0).to(tl.float32)
                    wv = tl.load(dww_ptr + c * 9 + (kh * 3 + kw), mask=mask_j, other=0.0)
                    dw += v * wv.to(tl.float32)[None, :]
            if HAS_DWB:
                dw += tl.load(dwb_ptr + c, mask=mask_j, other=0.0).to(tl.float32)[None, :]
            a = dw.to(dt)  # the unfused composition stores the dw output at this precision
            # weight (K, CG): B[j, n] = w[g*KG + n, j]
            b = tl.load(w_ptr + k[None, :] * CG + j[:, None], mask=mask_j[:, None] & mask_n[None, :],
                        other=0.0)
            acc = mma(a, b, acc, DOT_FP32, PREC)

        if HAS_B:
            acc += tl.load(b_ptr + k, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        mask = mask_p[:, None] & mask_n[None, :]
        if RES:
            r_pix = n * sxn + oh * sxh + ow * sxw
            if OVEC > 1:
                r_pix = tl.multiple_of(r_pix, OVEC)
            acc += tl.load(x_ptr + r_pix[:, None] + k[None, :] * sxc, mask=mask, other=0.0).to(tl.float32)
        if RELU:
            acc = apply_act(acc, 1)
        o_pix = n * son + oh * soh + ow * sow + OUT_OFF * soc
        if OVEC > 1:
            o_pix = tl.multiple_of(o_pix, OVEC)
        o_ptrs = out_ptr + o_pix[:, None] + (k * OUT_MUL)[None, :] * soc
        tl.store(o_ptrs, acc.to(dt), mask=mask)
    else:
        if EXTRA != 0:
            _extra_tile(x_ptr, out_ptr, pid_q - G * NB_N, n, oh, ow, mask_p, H, W, CX, stride,
                        sxn, sxc, sxh, sxw, son, soc, soh, sow, EXTRA, XVEC, BLOCK_P, BLOCK_N)


def launch_dw_gpw(h: Tensor, dw_weight: Tensor, dw_bias: Optional[Tensor], weight: Tensor,
                  bias: Optional[Tensor], x: Optional[Tensor], out: Tensor, groups: int, stride: int,
                  out_mul: int, out_off: int, res: bool, extra: int, cx: int, relu: bool = True) -> None:
    """out[:, out_mul*k + out_off] = relu(gconv(dw3x3(h, stride)) (+ x[:, k] if res)), plus the
    ``extra`` branch over x's first ``cx`` channels.

    h: (N, M, H, W); dw_weight: (M, 1, 3, 3); weight: (K, M/groups, 1, 1); x: (N, >=cx, ., .);
    out: (N, ., H', W'). Every tensor dense NCHW/NHWC (or a channel slice of one)."""
    n, m, hh, ww = h.shape
    kout = weight.shape[0]
    ho, wo = out.shape[2], out.shape[3]
    npix = n * ho * wo
    if npix == 0:
        return
    cg, kg = m // groups, kout // groups
    xt = x if x is not None else h  # dummy pointer when neither residual nor extra branch reads x
    check_int32_indexing("shufflenet unit", n * max(hh * ww, ho * wo), h, xt, out)
    hvec = vec_dividing(channel_vec(h), cg)
    xvec = vec_dividing(channel_vec(xt), cx) if extra != EXTRA_NONE else 1
    # stores (and the residual read) vectorise only for a dense, aligned channel run per group
    ovec = vec_dividing(min(channel_vec(out), channel_vec(xt) if res else 16), kg, out_off) if out_mul == 1 else 1
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]),
                         groups * triton.cdiv(kg, meta["BLOCK_N"]) + triton.cdiv(cx, meta["BLOCK_N"]))
    _dw_gpw_kernel[grid](
        h, dw_weight, dw_bias if dw_bias is not None else dw_weight, weight,
        bias if bias is not None else weight, xt, out,
        npix, hh, ww, ho, wo, cg, kg, groups, cx, stride, out_mul, out_off,
        *h.stride(), *xt.stride(), *out.stride(),
        HAS_DWB=dw_bias is not None, HAS_B=bias is not None, RES=res, EXTRA=extra, RELU=relu,
        DOT_FP32=dot_fp32(h.dtype), PREC=dot_precision(h.dtype, h.device), HVEC=hvec, XVEC=xvec, OVEC=ovec)


def forward(x: Tensor, w1: Tensor, b1: Optional[Tensor], dw_weight: Tensor, dw_bias: Optional[Tensor],
            w2: Tensor, b2: Optional[Tensor], groups: int, first_groups: int, stride: int) -> Tensor:
    """x: (N, C, H, W), w1: (M, C/first_groups, 1, 1), dw_weight: (M, 1, 3, 3),
    w2: (K, M/groups, 1, 1) -> (N, C, H, W) at stride 1 (K == C), (N, C + K, H', W') at stride 2,
    in x's memory format and dtype."""
    n, c, h, w = x.shape
    m, kout = w1.shape[0], w2.shape[0]
    hid = empty_like_format(x, (n, m, h, w))
    group_conv1x1.launch(x, w1, b1, hid, first_groups or groups, 0, groups, "relu")
    if stride == 1:
        out = empty_like_format(x, (n, kout, h, w))
        launch_dw_gpw(hid, dw_weight, dw_bias, w2, b2, x, out, groups, 1, 1, 0,
                      res=True, extra=EXTRA_NONE, cx=0)
    else:
        ho, wo = conv_out_size(h, 3, stride, 1), conv_out_size(w, 3, stride, 1)
        out = empty_like_format(x, (n, c + kout, ho, wo))
        launch_dw_gpw(hid, dw_weight, dw_bias, w2, b2, x, out, groups, stride, 1, c,
                      res=False, extra=EXTRA_AVGPOOL, cx=c)
    return out
