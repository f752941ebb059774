"""Triton backend of fastconv.inverted_residual: expand 1x1 -> act -> dw k x k -> act -> [SE] -> project 1x1 (+ x).

Without SE: one persistent kernel (``_ir_fused_kernel``). Each program owns a TH x TW tile of
output pixels of one image and BLOCK_K output channels, and walks the hidden (expanded) channels
BLOCK_E at a time. Per hidden chunk it

1. computes the expanded tile for the output tile *plus its halo* -- the IH x IW input pixels,
   IH = (TH-1)*stride + k -- with ``tl.dot`` over the input channels, adds the bias, applies act,
   zeroes pixels outside the image (the depthwise conv pads h, not x) and writes it to a private
   scratch slot of BLOCK_HP x BLOCK_E elements;
2. after a ``tl.debug_barrier()`` reads the k*k shifted windows back from the slot, runs the
   depthwise conv + bias + act in fp32 registers and rounds to the input dtype;
3. feeds that tile as the A operand of ``tl.dot`` with the project weight, accumulating the
   project conv over hidden chunks. Project bias and the residual are the epilogue.

Why a scratch slot and not registers: the depthwise conv needs the hidden tile shifted by every
tap, and Triton has no register shifts, so the tile goes through memory once. The kernel is
persistent (grid = a few programs per SM, each looping over tiles) so there are only
``programs x BLOCK_HP x BLOCK_E`` scratch elements (a few MB) that are rewritten over and over:
they stay in L2 and are almost never written back to HBM. The expanded tensor (N, E, H, W) never
reaches HBM.

Trade-off (the alternative is recomputing the expansion for every tap, which needs no scratch but
costs k*k times the expand FLOPs -- 9x for 3x3, 25x for 5x5):
- HBM bytes: x read once per K tile (plus halo rows, from L2), weights once per tile, out written
  once. Unfused: + 2 x (N, E, H, W) (write + read of the expanded tensor) + 2 x (N, E, H', W').
- Recompute: expand FLOPs x BLOCK_HP / (TH*TW*stride^2), e.g. 1.3x for a 14x14 tile with 3x3
  stride 1 (16x16 halo), 1.8x for a 12x12 tile with 5x5; plus a full recompute of
  expand + dw per K tile when K > BLOCK_K (rare: BLOCK_K goes up to 256).
- L2 traffic: the hidden tile is written once and read k*k times per chunk.
The configs use num_stages=1, so Triton's software pipeliner never moves a scratch load across
the barriers; even if it did pipeline the innermost (kh) tap loop, its loads all sit after the
barrier of the same hidden chunk.

Per-tile budget (sm_90, 8 warps, no config spills at any catalogue shape, checked by
tests/triton_codegen.py): BLOCK_P <= 128, BLOCK_HP <= 256, BLOCK_P x BLOCK_K <= 8K fp32, and the
autotuner's early_config_prune drops BLOCK_E choices whose register score (_fused_live) is over
160 per thread. NHWC launches pass VEC/OVEC (channels per 16-byte vector that the launcher knows
every pixel's channel run is aligned to) so that x, residual and out move in 16-byte loads and
stores even for C = 24, 40, 72, ... (Triton itself only proves multiples of 16).

The fused kernel also runs ShuffleNetV2's branch2 (fastconv/triton/shufflenet_v2_unit.py):
DW_ACT / PROJ_ACT choose the activations after the depthwise and project convs, OUT_MUL/OUT_OFF
the output channel (2k + 1), CIN_OFF the first channel of x that the expansion reads, and
PASS/CX the pass-through copy of x's first CX channels to out channels 0, 2, 4, ...

With SE (squeeze-excite needs the global mean of the depthwise output before the project conv),
two passes:
- pass 1 (same kernel, SE_PASS1): expand + dw as above, grid over (tiles, hidden chunks); writes
  h = dw output (N, H', W', E) in the input dtype and per-tile fp32 partial sums of h
  (N, tiles, E). HBM: read x, write h.
- ``_se_gate_kernel`` (one program per image): sums the partials, mean, the two tiny 1x1 convs +
  activations -> gate (N, E) in fp32. HBM: negligible.
- ``_ir_project_kernel``: out = (h * gate) @ project^T + bias (+ x), the gate applied to the A
  operand while loading it. HBM: read h (+ x), write out.
Versus unfused SE it saves the expanded tensor entirely and the write + read of h * gate.

Forward only: gradients come from PyTorch autograd through the reference (fastconv.ops glue).
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import empty_like_format, triton_interpreting
from fastconv.triton._common import (act_code, apply_act, autotune_configs, channel_vec, check_int32_indexing, dot_fp32,
                                     dot_precision, known_multiple, mma, prune_by_registers, vec_dividing)

_MAX_BLOCK_E = 64  # largest BLOCK_E in any config: the scratch is sized for it


def _fused_configs():
    # num_stages=1: the pipeliner would stage the tap tiles of the innermost (kh) loop in shared
    # memory (hundreds of KB for fp32); the input-channel loop is short (C / BLOCK_CIN steps), so
    # there is little latency to hide that occupancy does not already hide. _fused_live prunes
    # the ones that would spill for the launch's tile.
    # 8 warps: at 4 warps every tile shape sat at the 255-register cap and most spilled. The one
    # 4-warp config is for fp32 5x5 stride 2 only, where ptxas held 8 warps to 128 registers and
    # spilled (_prune_fused).
    return autotune_configs(("BLOCK_E",), (32, 4), [(16, 8), (32, 8), (64, 8), (16, 4)], num_stages=1)


def _fused_live(a) -> float:
    """A register-pressure score (fp32 registers x threads) of the fused kernel for config/launch
    ``a``, fitted to ptxas on sm_90 (tests/triton_codegen.py): the depthwise accumulator
    (BLOCK_P x BLOCK_E), the project accumulator with its epilogue pointers (2 x BLOCK_P x BLOCK_K),
    the expand accumulator plus its x operand (BLOCK_HP x (BLOCK_E + BLOCK_CIN)), the project
    weight tile with its pointers (BLOCK_E x BLOCK_K). k x k x BLOCK_E x 2-byte > 2 KB (5x5 with 64
    hidden channels, or 32 in fp32) spilled at every tile size, and so did fp32 with 64: excluded."""
    if a["KS"] ** 2 * a["BLOCK_E"] * a["x_ptr"].element_size() > 2048 or a["x_ptr"].element_size() * a["BLOCK_E"] > 128:
        return float("inf")
    half = a["x_ptr"].element_size() / 4
    p, e, k = a["BLOCK_P"], a["BLOCK_E"], a["BLOCK_K"]
    live = p * e + (0 if a["SE_PASS1"] else 2 * p * k + e * k * (half + 2))
    if a["HAS_EXPAND"]:
        return live + a["BLOCK_HP"] * (e + a["BLOCK_CIN"] * half)
    return live + p * e * half


def _prune_fused(configs, named_args, **kwargs):
    four = named_args["x_ptr"].element_size() == 4 and kwargs["KS"] >= 5 and kwargs["STRIDE"] == 2
    configs = [c for c in configs if (c.num_warps == 4) == four] or configs
    return prune_by_registers(_fused_live, budget=160)(configs, named_args, **kwargs)


def _project_configs():
    # 128x64x128 (8 warps) and 64x64x128 (4 warps) spilled: the gated A tile is built in fp32 next
    # to the accumulator, so accumulator + A tile stay <= 64 fp32 registers per thread.
    return autotune_configs(("BLOCK_P", "BLOCK_E", "BLOCK_K"), (128, 32, 32, 4), [
        (64, 32, 64, 4), (128, 32, 64, 8), (64, 64, 128, 8), (128, 32, 128, 8)], num_stages=3)


# Kernel: persistent grid (programs, G1). Program (p, g) loops over TH x TW output tiles
# t = p, p + programs, ...; g is the BLOCK_K tile of the project conv (no SE), or the BLOCK_E
# hidden chunk (SE pass 1). Fuses expand 1x1 + bias + act (halo tile -> L2 scratch) -> dw k x k +
# bias + act (registers) -> project 1x1 as tl.dot (A operand) + bias + residual; or, in SE pass 1,
# stops after dw and writes h plus per-tile channel sums.
@triton.autotune(configs=_fused_configs(),
                 key=["C", "E", "K", "HO", "WO", "KS", "STRIDE", "TH", "TW", "SE_PASS1", "HAS_EXPAND"],
                 prune_configs_by={"early_config_prune": _prune_fused})
@triton.jit
def _ir_fused_kernel(x_ptr, ew_ptr, eb_ptr, dww_ptr, dwb_ptr, pw_ptr, pb_ptr, out_ptr, h_ptr, part_ptr,
                     scratch_ptr,
                     C, H, W, E, K, HO, WO, padding, CIN_OFF, OUT_MUL, OUT_OFF, CX,
                     sxn, sxc, sxh, sxw, son, soc, soh, sow,
                     tiles_w, tiles_per_img, num_tiles,
                     KS: tl.constexpr, STRIDE: tl.constexpr, TH: tl.constexpr, TW: tl.constexpr,
                     IH: tl.constexpr, IW: tl.constexpr, BLOCK_P: tl.constexpr,
                     BLOCK_HP: tl.constexpr, HAS_EXPAND: tl.constexpr,
                     HAS_EB: tl.constexpr, HAS_DWB: tl.constexpr, HAS_PB: tl.constexpr,
                     ACT: tl.constexpr, DW_ACT: tl.constexpr, PROJ_ACT: tl.constexpr,
                     SE_PASS1: tl.constexpr, RESIDUAL: tl.constexpr, PASS: tl.constexpr,
                     DOT_FP32: tl.constexpr, PREC: tl.constexpr, VEC: tl.constexpr, OVEC: tl.constexpr,
                     BLOCK_CIN: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_E: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    g = tl.program_id(1)
    dt = x_ptr.dtype.element_ty

    slot = scratch_ptr + (g * nprog + pid).to(tl.int64) * (BLOCK_HP * BLOCK_E)
    if SE_PASS1:
        e_start = g * BLOCK_E
        e_step = tl.num_programs(1) * BLOCK_E
        k_start = 0
    else:
        e_start = 0
        e_step = BLOCK_E
        k_start = g * BLOCK_K

    # output pixel p of the tile sits at (p // TW, p % TW); its tap (kh, kw) at halo row
    # (p // TW * STRIDE + kh) * IW + p % TW * STRIDE + kw
    p = tl.arange(0, BLOCK_P)
    p_r = p // TW
    p_c = p % TW
    hp = tl.arange(0, BLOCK_HP)
    hp_r = hp // IW
    hp_c = hp % IW
    e_loc = tl.arange(0, BLOCK_E)
    if VEC > 1:  # NHWC x, C and CIN_OFF multiples of VEC: channel runs start VEC-aligned
        C = known_multiple(C, VEC)
        CIN_OFF = known_multiple(CIN_OFF, VEC)
        if not HAS_EXPAND:  # the depthwise conv reads x's E == C channels itself
            E = known_multiple(E, VEC)
    if OVEC > 1:  # the same for out and K
        K = known_multiple(K, OVEC)
    offs_k = k_start + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K

    for t in range(pid, num_tiles, nprog):
        n = t // tiles_per_img
        t_img = t % tiles_per_img
        oh0 = (t_img // tiles_w) * TH
        ow0 = (t_img % tiles_w) * TW
        oh = oh0 + p_r
        ow = ow0 + p_c
        mask_p = (p < TH * TW) & (oh < HO) & (ow < WO)
        x_img = n.to(tl.int64) * sxn
        if HAS_EXPAND:
            ih = oh0 * STRIDE - padding + hp_r
            iw = ow0 * STRIDE - padding + hp_c
            in_img = (hp < IH * IW) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            x_halo = x_img + ih * sxh + iw * sxw
            if VEC > 1:
                x_halo = tl.multiple_of(x_halo, VEC)

        acc = tl.zeros([BLOCK_P, BLOCK_K], dtype=tl.float32)
        for e0 in range(e_start, E, e_step):
            offs_e = e0 + e_loc
            mask_e = offs_e < E
            if HAS_EXPAND:
                hacc = tl.zeros([BLOCK_HP, BLOCK_E], dtype=tl.float32)
                for c0 in range(0, C, BLOCK_CIN):
                    offs_c = c0 + tl.arange(0, BLOCK_CIN)
                    mask_c = offs_c < C
                    a = tl.load(x_ptr + x_halo[:, None] + (CIN_OFF + offs_c)[None, :] * sxc,
                                mask=in_img[:, None] & mask_c[None, :], other=0.0)
                    # expand weight (E, C): B[c, e] = w[e, c]
                    b = tl.load(ew_ptr + offs_e[None, :] * C + offs_c[:, None],
                                mask=mask_c[:, None] & mask_e[None, :], other=0.0)
                    hacc = mma(a, b, hacc, DOT_FP32, PREC)
                if HAS_EB:
                    hacc += tl.load(eb_ptr + offs_e, mask=mask_e, other=0.0).to(tl.float32)[None, :]
                hval = apply_act(hacc, ACT)
                # zero padding belongs to the hidden tensor: act(bias) must not leak into the border.
                # Padded channels are zeroed too: an inf in x times their zero weights is NaN,
                # which the zero dw / project weights would then spread to every output channel.
                hval = tl.where(in_img[:, None] & mask_e[None, :], hval, 0.0).to(dt)
                tl.debug_barrier()  # every thread is done reading the previous chunk from the slot
                tl.store(slot + hp[:, None] * BLOCK_E + e_loc[None, :], hval)
                tl.debug_barrier()  # ... and the whole tile is written before anyone reads it

            dacc = tl.zeros([BLOCK_P, BLOCK_E], dtype=tl.float32)
            for kh in range(KS):  # a loop, not unrolled: k*k unrolled taps compile slowly
                for kw in tl.static_range(KS):
                    if HAS_EXPAND:
                        row = (p_r * STRIDE + kh) * IW + p_c * STRIDE + kw
                        v = tl.load(slot + row[:, None] * BLOCK_E + e_loc[None, :],
                                    mask=(p < TH * TW)[:, None], other=0.0)
                    else:  # no expansion: the depthwise conv reads x itself
                        ih2 = oh * STRIDE - padding + kh
                        iw2 = ow * STRIDE - padding + kw
                        ok = mask_p & (ih2 >= 0) & (ih2 < H) & (iw2 >= 0) & (iw2 < W)
                        tap = x_img + ih2 * sxh + iw2 * sxw
                        if VEC > 1:
                            tap = tl.multiple_of(tap, VEC)
                        v = tl.load(x_ptr + tap[:, None] + offs_e[None, :] * sxc,
                                    mask=ok[:, None] & mask_e[None, :], other=0.0)
                    wv = tl.load(dww_ptr + offs_e * (KS * KS) + (kh * KS + kw), mask=mask_e, other=0.0)
                    dacc += v.to(tl.float32) * wv.to(tl.float32)[None, :]
            if HAS_DWB:
                dacc += tl.load(dwb_ptr + offs_e, mask=mask_e, other=0.0).to(tl.float32)[None, :]
            hd = apply_act(dacc, DW_ACT).to(dt)

            if SE_PASS1:
                pix = (n.to(tl.int64) * HO + oh) * WO + ow
                m2 = mask_p[:, None] & mask_e[None, :]
                tl.store(h_ptr + pix[:, None] * E + offs_e[None, :], hd, mask=m2)
                # the mean is taken over h as stored (rounded to the input dtype)
                psum = tl.sum(tl.where(m2, hd.to(tl.float32), 0.0), axis=0)
                tl.store(part_ptr + (n.to(tl.int64) * tiles_per_img + t_img) * E + offs_e, psum, mask=mask_e)
            else:
                # project weight (K, E): B[e, k] = w[k, e]; padded hidden channels are exactly 0
                b = tl.load(pw_ptr + offs_k[None, :] * E + offs_e[:, None],
                            mask=mask_e[:, None] & mask_k[None, :], other=0.0)
                a = hd
                acc = mma(a, b, acc, DOT_FP32, PREC)

        if not SE_PASS1:
            if HAS_PB:
                acc += tl.load(pb_ptr + offs_k, mask=mask_k, other=0.0).to(tl.float32)[None, :]
            acc = apply_act(acc, PROJ_ACT)
            mask = mask_p[:, None] & mask_k[None, :]
            x_pix = x_img + oh * sxh + ow * sxw
            if VEC > 1:
                x_pix = tl.multiple_of(x_pix, VEC)
            if RESIDUAL:  # stride 1, K == C, same spatial size: x at the output pixel
                acc += tl.load(x_ptr + x_pix[:, None] + offs_k[None, :] * sxc,
                               mask=mask, other=0.0).to(tl.float32)
            o_pix = n.to(tl.int64) * son + oh * soh + ow * sow
            if OVEC > 1:
                o_pix = tl.multiple_of(o_pix, OVEC)
            o_ptrs = out_ptr + o_pix[:, None] + (offs_k * OUT_MUL + OUT_OFF)[None, :] * soc
            tl.store(o_ptrs, acc.to(dt), mask=mask)
            if PASS:  # ShuffleNetV2 stride 1: the pass-through half x[:, c] -> out[:, 2c], c < CX
                if g == 0:
                    for c0 in range(0, CX, BLOCK_K):
                        offs_x = c0 + tl.arange(0, BLOCK_K)
                        mx = mask_p[:, None] & (offs_x < CX)[None, :]
                        v = tl.load(x_ptr + x_pix[:, None] + offs_x[None, :] * sxc, mask=mx)
                        tl.store(out_ptr + o_pix[:, None] + (2 * offs_x)[None, :] * soc, v, mask=mx)


# Kernel: grid (N,). One image per program: sums pass 1's per-tile partials into the channel
# mean, then the SE MLP (E -> S -> E, 1x1 convs as broadcast-multiply + reductions) + acts.
@triton.jit
def _se_gate_kernel(part_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, gate_ptr, T, E, S, inv_hw,
                    HAS_B1: tl.constexpr, HAS_B2: tl.constexpr, SE_ACT: tl.constexpr,
                    SE_GATE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr,
                    BLOCK_S: tl.constexpr):
    n = tl.program_id(0)
    offs_s = tl.arange(0, BLOCK_S)
    mask_s = offs_s < S
    part = part_ptr + n.to(tl.int64) * T * E
    s1 = tl.zeros([BLOCK_S], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < E
        pooled = tl.zeros([BLOCK_E], dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            offs_t = t0 + tl.arange(0, BLOCK_T)
            v = tl.load(part + offs_t[:, None] * E + offs_e[None, :],
                        mask=(offs_t < T)[:, None] & mask_e[None, :], other=0.0)
            pooled += tl.sum(v, axis=0)
        w1 = tl.load(w1_ptr + offs_s[:, None] * E + offs_e[None, :],
                     mask=mask_s[:, None] & mask_e[None, :], other=0.0).to(tl.float32)
        s1 += tl.sum(w1 * (pooled * inv_hw)[None, :], axis=1)
    if HAS_B1:
        s1 += tl.load(b1_ptr + offs_s, mask=mask_s, other=0.0).to(tl.float32)
    s1 = tl.where(mask_s, apply_act(s1, SE_ACT), 0.0)
    for e0 in range(0, E, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < E
        w2 = tl.load(w2_ptr + offs_e[:, None] * S + offs_s[None, :],
                     mask=mask_e[:, None] & mask_s[None, :], other=0.0).to(tl.float32)
        gv = tl.sum(w2 * s1[None, :], axis=1)
        if HAS_B2:
            gv += tl.load(b2_ptr + offs_e, mask=mask_e, other=0.0).to(tl.float32)
        tl.store(gate_ptr + n * E + offs_e, apply_act(gv, SE_GATE), mask=mask_e)


# Kernel: grid (cdiv(N*H'*W', BLOCK_P), cdiv(K, BLOCK_K)). Tile = BLOCK_P pixels x BLOCK_K output
# channels, reduction over E. Fuses the SE gate multiply (on the A operand as it is loaded) ->
# project 1x1 (tl.dot) -> bias + residual.
@triton.autotune(configs=_project_configs(), key=["NPIX", "E", "K"])
@triton.jit
def _ir_project_kernel(h_ptr, gate_ptr, pw_ptr, pb_ptr, x_ptr, out_ptr, NPIX, E, K, HW, WO,
                       sxn, sxc, sxh, sxw, son, soc, soh, sow,
                       HAS_PB: tl.constexpr, RESIDUAL: tl.constexpr, DOT_FP32: tl.constexpr,
                       PREC: tl.constexpr, EVEC: tl.constexpr, OVEC: tl.constexpr, BLOCK_P: tl.constexpr,
                       BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_k = tl.program_id(1)
    dt = out_ptr.dtype.element_ty
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < NPIX
    if OVEC > 1:  # NHWC x and out, K a multiple of OVEC
        K = known_multiple(K, OVEC)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    n = offs_p // HW
    rem = offs_p % HW
    oh = rem // WO
    ow = rem % WO
    h_rows = offs_p.to(tl.int64) * E
    g_rows = n * E
    if EVEC > 1:  # E a multiple of EVEC: h's and the gate's rows start vector-aligned
        E = known_multiple(E, EVEC)
        h_rows = tl.multiple_of(h_rows, EVEC)
        g_rows = tl.multiple_of(g_rows, EVEC)

    acc = tl.zeros([BLOCK_P, BLOCK_K], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < E
        m = mask_p[:, None] & mask_e[None, :]
        hv = tl.load(h_ptr + h_rows[:, None] + offs_e[None, :], mask=m, other=0.0).to(tl.float32)
        gv = tl.load(gate_ptr + g_rows[:, None] + offs_e[None, :], mask=m, other=0.0)
        a = (hv * gv).to(dt)
        b = tl.load(pw_ptr + offs_k[None, :] * E + offs_e[:, None],
                    mask=mask_e[:, None] & mask_k[None, :], other=0.0)
        acc = mma(a, b, acc, DOT_FP32, PREC)

    if HAS_PB:
        acc += tl.load(pb_ptr + offs_k, mask=mask_k, other=0.0).to(tl.float32)[None, :]
    n64 = n.to(tl.int64)
    mask = mask_p[:, None] & mask_k[None, :]
    x_pix = n64 * sxn + oh * sxh + ow * sxw
    o_pix = n64 * son + oh * soh + ow * sow
    if OVEC > 1:
        x_pix = tl.multiple_of(x_pix, OVEC)
        o_pix = tl.multiple_of(o_pix, OVEC)
    if RESIDUAL:
        acc += tl.load(x_ptr + x_pix[:, None] + offs_k[None, :] * sxc, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + o_pix[:, None] + offs_k[None, :] * soc, acc.to(dt), mask=mask)


# ---------------------------------------------------------------------------------------------
# launchers
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _num_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _max_programs(device: torch.device) -> int:
    if device.type != "cuda":
        return 2  # interpreter: programs run one after another; 2 still exercises the tile loop
    return 4 * _num_sms(device.index if device.index is not None else torch.cuda.current_device())


def _halo(th: int, tw: int, k: int, stride: int) -> int:
    return ((th - 1) * stride + k) * ((tw - 1) * stride + k)


@functools.lru_cache(maxsize=4096)  # a Python search over ~1000 shapes: once per layer shape
def _pick_tile(ho: int, wo: int, k: int, stride: int, c: int, e_k: int, expand: bool,
               n: int, programs: int, max_bp: int) -> tuple[int, int]:
    """Output tile (TH, TW) minimising a rough time model (per hidden channel, in MAC units):
    per tile BLOCK_HP * C expand MACs (the halo is recomputed), BLOCK_P * (BLOCK_K + k*k)
    dw/project MACs, the C + BLOCK_K weights every tile reloads (~32 MACs each) and a fixed cost
    (barriers, loop set-up); time = per_tile * max(tiles / SMs, 1). Untuned guesses, to be
    replaced by measurements. BLOCK_P <= max_bp and BLOCK_HP <= 256 (registers), both >= 16."""
    if triton_interpreting():
        return 4, 4  # small tiles: several tiles (and halo seams) even on the tiny test images
    sms = max(1, programs // 4)
    best, best_cost = (1, 1), None
    for th in range(1, min(ho, 32) + 1):
        for tw in range(1, min(wo, 32) + 1):
            bp = max(16, triton.next_power_of_2(th * tw))
            bhp = max(16, triton.next_power_of_2(_halo(th, tw, k, stride)))
            if bp > max_bp or (expand and bhp > 256):
                continue
            tiles = n * triton.cdiv(ho, th) * triton.cdiv(wo, tw)
            per_tile = (bhp * c + 32 * c if expand else 0) + bp * (e_k + k * k) + 32 * e_k + 2048
            cost = per_tile * max(tiles / sms, 1.0)
            if best_cost is None or cost < best_cost:
                best, best_cost = (th, tw), cost
    return best


def _launch_fused(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias,
                  out, h, stride, padding, act, se_pass1, residual, dw_act=None, proj_act="none",
                  out_mul=1, out_off=0, cin_off=0, cx=0):
    """Launches _ir_fused_kernel; returns the tile count per image (pass 1 needs it).

    dw_act: the activation after the depthwise conv (None: ``act``); proj_act: after the project
    conv's bias; the project output channel k is stored at out channel out_mul * k + out_off. The
    expansion reads x's channels [cin_off, cin_off + C) (a split without a view: the kernel sees
    x's own 16-byte-aligned base); the K-tile-0 programs also copy x's first ``cx`` channels to
    out channels 0, 2, 4, ... (ShuffleNetV2's units run on this kernel)."""
    n, _, hh, ww = x.shape
    c = expand_weight.shape[1] if expand_weight is not None else x.shape[1]
    e, ks = dw_weight.shape[0], dw_weight.shape[-1]
    kout = project_weight.shape[0]
    ho, wo = out.shape[2], out.shape[3]
    expand = expand_weight is not None
    programs = _max_programs(x.device)
    if se_pass1:
        block_k, ktiles = 16, 1
    else:
        block_k = max(16, min(triton.next_power_of_2(kout), 256))
        ktiles = triton.cdiv(kout, block_k)
    # the project accumulator is BLOCK_P x BLOCK_K fp32: keep it <= 8K elements (32 registers per
    # thread at 8 warps); 16K spilled next to a 256-pixel halo tile (ShuffleNetV2 176 @28)
    max_bp = 128 if se_pass1 else max(16, min(128, 8192 // block_k))
    th, tw = _pick_tile(ho, wo, ks, stride, c, 0 if se_pass1 else block_k, expand, n, programs, max_bp)
    block_p = max(16, triton.next_power_of_2(th * tw))
    block_hp = max(16, triton.next_power_of_2(_halo(th, tw, ks, stride))) if expand else 16
    tiles_w = triton.cdiv(wo, tw)
    tiles_per_img = triton.cdiv(ho, th) * tiles_w
    num_tiles = n * tiles_per_img
    # program (p, g) owns scratch slot g * grid0 + p of BLOCK_HP x BLOCK_E elements
    if se_pass1:
        grid0 = max(1, min(num_tiles, programs // triton.cdiv(e, _MAX_BLOCK_E)))
        part = torch.empty((n, tiles_per_img, e), dtype=torch.float32, device=x.device)
        grid = lambda meta: (grid0, triton.cdiv(e, meta["BLOCK_E"]))
        scratch_elems = grid0 * (e + _MAX_BLOCK_E) * block_hp  # >= cdiv(e, BE) * BE for any BE
    else:
        grid0 = max(1, min(num_tiles, programs // ktiles))
        part = out  # dummy, never touched
        grid = (grid0, ktiles)
        scratch_elems = grid0 * ktiles * block_hp * _MAX_BLOCK_E
    scratch = torch.empty(scratch_elems if expand else 1, dtype=x.dtype, device=x.device)
    dummy = dw_weight
    check_int32_indexing("inverted_residual", n * max(hh * ww, ho * wo), x, out)
    vec = vec_dividing(channel_vec(x), cin_off, cx)
    ovec = channel_vec(out) if out_mul == 1 and not se_pass1 else 1
    _ir_fused_kernel[grid](
        x, expand_weight if expand else dummy, expand_bias if expand_bias is not None else dummy,
        dw_weight, dw_bias if dw_bias is not None else dummy, project_weight,
        project_bias if project_bias is not None else dummy, out, h if h is not None else out, part,
        scratch,
        c, hh, ww, e, kout, ho, wo, padding, cin_off, out_mul, out_off, cx, *x.stride(), *out.stride(),
        tiles_w, tiles_per_img, num_tiles,
        KS=ks, STRIDE=stride, TH=th, TW=tw, IH=(th - 1) * stride + ks, IW=(tw - 1) * stride + ks,
        BLOCK_P=block_p, BLOCK_HP=block_hp, HAS_EXPAND=expand,
        HAS_EB=expand_bias is not None, HAS_DWB=dw_bias is not None,
        HAS_PB=project_bias is not None, ACT=act_code(act), DW_ACT=act_code(act if dw_act is None else dw_act),
        PROJ_ACT=act_code(proj_act), SE_PASS1=se_pass1, RESIDUAL=residual, PASS=cx > 0,
        DOT_FP32=dot_fp32(x.dtype), PREC=dot_precision(x.dtype, x.device), VEC=vec, OVEC=ovec,
        # fp32 5x5: a 64-wide x operand next to the tap tiles spilled even at 16 hidden channels
        BLOCK_CIN=16 if x.element_size() == 4 and ks >= 5 else max(16, min(triton.next_power_of_2(c), 64)),
        BLOCK_K=block_k)
    return part, tiles_per_img


def forward(x: Tensor, expand_weight: Optional[Tensor], dw_weight: Tensor, project_weight: Tensor,
            expand_bias: Optional[Tensor], dw_bias: Optional[Tensor], project_bias: Optional[Tensor],
            se_w1: Optional[Tensor], se_b1: Optional[Tensor], se_w2: Optional[Tensor],
            se_b2: Optional[Tensor], stride: int, padding: int, act: str, se_act: str, se_gate: str,
            residual: bool) -> Tensor:
    """x: (N, C, H, W), expand_weight: (E, C, 1, 1) or None, dw_weight: (E, 1, k, k),
    project_weight: (K, E, 1, 1), se_w1: (S, E, 1, 1), se_w2: (E, S, 1, 1) or all se_* None
    -> (N, K, H', W') in x's memory format and dtype."""
    n, c, hh, ww = x.shape
    e, ks = dw_weight.shape[0], dw_weight.shape[-1]
    kout = project_weight.shape[0]
    ho = (hh + 2 * padding - ks) // stride + 1
    wo = (ww + 2 * padding - ks) // stride + 1
    out = empty_like_format(x, (n, kout, ho, wo))
    if n == 0:
        return out
    if se_w1 is None:
        _launch_fused(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias, project_bias,
               out, None, stride, padding, act, False, residual)
        return out

    # pass 1: h = dw(act(expand(x))) as (N, H', W', E) + per-tile channel sums
    h = torch.empty((n, ho, wo, e), dtype=x.dtype, device=x.device)
    part, tiles = _launch_fused(x, expand_weight, dw_weight, project_weight, expand_bias, dw_bias,
                         project_bias, out, h, stride, padding, act, True, False)
    # SE MLP -> gate (N, E) fp32
    s = se_w1.shape[0]
    gate = torch.empty((n, e), dtype=torch.float32, device=x.device)
    block_s = max(16, triton.next_power_of_2(s))
    _se_gate_kernel[(n,)](
        part, se_w1, se_b1 if se_b1 is not None else se_w1, se_w2, se_b2 if se_b2 is not None else se_w2,
        gate, tiles, e, s, 1.0 / (ho * wo),
        HAS_B1=se_b1 is not None, HAS_B2=se_b2 is not None, SE_ACT=act_code(se_act),
        SE_GATE=act_code(se_gate), BLOCK_T=16, BLOCK_E=max(16, min(64, 4096 // block_s)),
        BLOCK_S=block_s, num_warps=4)
    # pass 2: out = (h * gate) @ project^T + bias (+ x)
    npix = n * ho * wo
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]), triton.cdiv(kout, meta["BLOCK_K"]))
    _ir_project_kernel[grid](
        h, gate, project_weight, project_bias if project_bias is not None else project_weight, x, out,
        npix, e, kout, ho * wo, wo, *x.stride(), *out.stride(),
        HAS_PB=project_bias is not None, RESIDUAL=residual, DOT_FP32=dot_fp32(x.dtype),
        PREC=dot_precision(x.dtype, x.device), EVEC=vec_dividing(16 // x.element_size(), e),
        OVEC=min(channel_vec(out), channel_vec(x) if residual else 16))
    return out
