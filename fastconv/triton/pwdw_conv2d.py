"""Triton backend of fastconv.pwdw_conv2d: 1x1 -> act -> depthwise k x k -> act [concat] (+ residual), one kernel.

Tiling: a persistent grid of (programs, M chunks). Program (p, g) owns BLOCK_M channels of the
1x1 output h (channels g*BLOCK_M ...) and walks the TH x TW output tiles t = p, p + programs, ...
Per tile it

1. computes h for the tile *plus its halo* -- IH x IW input pixels, IH = (TH-1)*S + D*(k-1) + 1 --
   with ``tl.dot`` over the input channels (BLOCK_C at a time), adds pw_bias, applies pw_act,
   zeroes halo pixels outside the image (the depthwise conv pads h, not x: act(bias) must not leak
   into the border) and rounds to the storage dtype, as the unfused composition stores h;
2. writes h to a private scratch slot of BLOCK_HP x BLOCK_M elements and, after a barrier, with
   concat reads the tile's own pixels of h back (the centre tap) and stores them (plus the
   residual) into out[:, :M], so there is no torch.cat;
3. reads the k*k shifted windows back, runs the depthwise conv + dw_bias + dw_act in fp32 registers, adds
   the residual and stores y (into out[:, M:] with concat). A channel multiplier m > 1 repeats
   this read for each of the m output channels of every h channel (output channel j reads h
   channel j // m, as F.conv2d with groups=M does).

Why a scratch slot: Triton has no register shifts, so the depthwise taps of h go through memory
once. The grid is persistent (a few programs per SM), so the scratch is programs x BLOCK_HP x
BLOCK_M elements (a few MB) rewritten over and over: it stays in L2. h never reaches HBM
(except its concat copy, which is part of the output).

Per-tile budget (per BLOCK_M channels; dt = element bytes; e.g. 3x3 stride 1, 6x14 tile, 8x16
halo, BLOCK_HP = 128, BLOCK_P = 128):
- FLOPs: 1x1 executed 2*BLOCK_HP*C*BLOCK_M, useful 2*TH*TW*S^2*C*BLOCK_M (each h pixel once):
  recompute = BLOCK_HP / (TH*TW*S^2) (128/84 = 1.52x here, halo rows + power-of-2 padding);
  depthwise 2*BLOCK_P*k*k*m*BLOCK_M, a small fraction of the 1x1 for C >= 16.
- Bytes: x halo IH*IW*C*dt (from HBM about once, the halo rows of neighbouring tiles from L2),
  pw weights C*BLOCK_M*dt, scratch BLOCK_HP*BLOCK_M*dt written + k*k*BLOCK_P*BLOCK_M*dt read
  (L1/L2), out TH*TW*(m [+1 with concat])*BLOCK_M*dt written (+ the same read for the residual).
  The unfused composition also writes and re-reads h (N, M, H, W) from HBM, and cat copies both.
- Registers: the 1x1 accumulator is BLOCK_HP x BLOCK_M fp32 (<= 128 x 32), the depthwise one
  BLOCK_P x BLOCK_M fp32, and every element of a loaded or stored tile carries a 64-bit address:
  BLOCK_HP, BLOCK_P <= 128, BLOCK_M <= 32 and BLOCK_HP * BLOCK_C <= 4K keep fp16/bf16 free of
  spills on sm_90 for every catalogue shape (256-row halos or BLOCK_M = 64 spilled hundreds of
  bytes). fp32 still spills 16-80 bytes in a few (shape, config) pairs where ptxas caps the kernel
  at 128 registers for occupancy (e.g. 7x7 images, C = 128-160, BLOCK_M = 32 x 8 warps), so
  ``_prune`` drops that config for fp32. `python tests/test_pwdw_conv2d.py`
  prints the whole sweep; the CI test compiles a spill-free subset.

The configs use num_stages=1, so the software pipeliner never moves a scratch load across the
barriers. Addressing goes through strides: NCHW- and NHWC-contiguous x both work; the output is
allocated in x's memory format. Forward only: gradients come from the reference (fastconv.ops).
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import conv_out_size, empty_like_format, triton_interpreting
from fastconv.triton._common import act_code, apply_act, autotune_configs, dot_fp32, dot_precision, mma
from fastconv.triton.inverted_residual import _max_programs

_MAX_BLOCK_M = 32  # largest BLOCK_M in any config: the scratch is sized for it
_MAX_ROWS = 128  # BLOCK_HP and BLOCK_P cap: 256-row tiles spill (see the codegen test)


def _configs():
    # num_stages=1: the pipeliner would stage tap tiles of the depthwise loop in shared memory and
    # could hoist scratch loads above the barrier; occupancy hides the load latency instead.
    # (16, 8) is left out: for fp32 with a small C ptxas caps it at 80 registers and spills.
    return autotune_configs(("BLOCK_M",), (32, 4), [(16, 4), (32, 8)], num_stages=1)


# Kernel: persistent grid (programs, cdiv(M, BLOCK_M)). Program (p, g) loops over TH x TW output
# tiles t = p, p + programs, ... for h channels g*BLOCK_M ... Fuses 1x1 conv (tl.dot over the halo
# tile) + pw_bias + pw_act -> L2 scratch [-> h into out[:, :M] with concat] -> depthwise k x k +
# dw_bias + dw_act (registers) + residual -> out.
def _prune(configs, named_args, **kwargs):
    """fp32 with BLOCK_M = 32 on 8 warps is capped at 128 registers by ptxas and spills on some
    shapes (tests/triton_codegen.py): keep only the spill-free configs for fp32."""
    if named_args["x_ptr"].dtype == torch.float32:
        kept = [c for c in configs if not (c.kwargs["BLOCK_M"] == 32 and c.num_warps == 8)]
        return kept or configs
    return configs


@triton.autotune(configs=_configs(), key=["C", "M", "HO", "WO", "KS", "STRIDE", "DIL", "TH", "TW", "MULT", "CONCAT"],
                 prune_configs_by={"early_config_prune": _prune})
@triton.jit
def _pwdw_kernel(x_ptr, pw_ptr, pwb_ptr, dw_ptr, dwb_ptr, res_ptr, out_ptr, scratch_ptr,
                 C, H, W, M, HO, WO, padding,
                 sxn, sxc, sxh, sxw, son, soc, soh, sow, srn, src, srh, srw,
                 tiles_w, tiles_per_img, num_tiles,
                 KS: tl.constexpr, STRIDE: tl.constexpr, DIL: tl.constexpr, MULT: tl.constexpr,
                 TH: tl.constexpr, TW: tl.constexpr, IH: tl.constexpr, IW: tl.constexpr,
                 BLOCK_P: tl.constexpr, BLOCK_HP: tl.constexpr, HAS_PWB: tl.constexpr,
                 HAS_DWB: tl.constexpr, HAS_RES: tl.constexpr, CONCAT: tl.constexpr,
                 PW_ACT: tl.constexpr, DW_ACT: tl.constexpr, DOT_FP32: tl.constexpr,
                 PREC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_M: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    g = tl.program_id(1)
    dt = out_ptr.dtype.element_ty
    slot = scratch_ptr + (g * nprog + pid).to(tl.int64) * (BLOCK_HP * BLOCK_M)
    y_off = M if CONCAT else 0  # y's first channel in out

    # output pixel p of the tile sits at (p // TW, p % TW); its tap (kh, kw) at halo row
    # (p // TW * STRIDE + kh * DIL) * IW + p % TW * STRIDE + kw * DIL
    p = tl.arange(0, BLOCK_P)
    p_r = p // TW
    p_c = p % TW
    hp = tl.arange(0, BLOCK_HP)
    hp_r = hp // IW
    hp_c = hp % IW
    m_loc = tl.arange(0, BLOCK_M)
    offs_m = g * BLOCK_M + m_loc
    mask_m = offs_m < M
    if HAS_PWB:
        pwb = tl.load(pwb_ptr + offs_m, mask=mask_m, other=0.0).to(tl.float32)

    for t in range(pid, num_tiles, nprog):
        n = (t // tiles_per_img).to(tl.int64)
        t_img = t % tiles_per_img
        oh0 = (t_img // tiles_w) * TH
        ow0 = (t_img % tiles_w) * TW
        oh = oh0 + p_r
        ow = ow0 + p_c
        mask_p = (p < TH * TW) & (oh < HO) & (ow < WO)
        ih = oh0 * STRIDE - padding + hp_r
        iw = ow0 * STRIDE - padding + hp_c
        in_img = (hp < IH * IW) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_halo = x_ptr + n * sxn + ih * sxh + iw * sxw

        # 1. h on the halo tile: [BLOCK_HP, C] @ [C, BLOCK_M]
        hacc = tl.zeros([BLOCK_HP, BLOCK_M], dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            mask_c = offs_c < C
            a = tl.load(x_halo[:, None] + offs_c[None, :] * sxc, mask=in_img[:, None] & mask_c[None, :], other=0.0)
            # pw weight (M, C): B[c, m] = w[m, c]
            b = tl.load(pw_ptr + offs_m[None, :] * C + offs_c[:, None], mask=mask_c[:, None] & mask_m[None, :],
                        other=0.0)
            hacc = mma(a, b, hacc, DOT_FP32, PREC)
        if HAS_PWB:
            hacc += pwb[None, :]
        # padded channels are zeroed too: an inf in x times their zero weights would be NaN
        hval = tl.where(in_img[:, None] & mask_m[None, :], apply_act(hacc, PW_ACT), 0.0).to(dt)

        # 2. h tile -> scratch slot
        tl.debug_barrier()  # every thread is done reading the previous tile from the slot
        tl.store(slot + hp[:, None] * BLOCK_M + m_loc[None, :], hval)
        tl.debug_barrier()  # ... and the whole tile is written before anyone reads it

        mask = mask_p[:, None] & mask_m[None, :]
        if CONCAT:  # stride 1, same size: output pixel p's own h is halo row (p_r + padding, p_c + padding)
            row = (p_r + padding) * IW + p_c + padding
            hv = tl.load(slot + row[:, None] * BLOCK_M + m_loc[None, :], mask=(p < TH * TW)[:, None], other=0.0)
            if HAS_RES:
                r_ptrs = res_ptr + n * srn + (oh * srh + ow * srw)[:, None] + offs_m[None, :] * src
                hv = (hv.to(tl.float32) + tl.load(r_ptrs, mask=mask, other=0.0).to(tl.float32)).to(dt)
            tl.store(out_ptr + n * son + (oh * soh + ow * sow)[:, None] + offs_m[None, :] * soc, hv, mask=mask)

        # 3. depthwise k x k from the slot, one pass per channel-multiplier copy
        for r in range(MULT):
            offs_o = offs_m * MULT + r  # dw output channel; reads h channel offs_m
            dacc = tl.zeros([BLOCK_P, BLOCK_M], dtype=tl.float32)
            # one tap per step, not unrolled: unrolled taps keep several [BLOCK_P, BLOCK_M] tiles of
            # 64-bit addresses live at once, which is what made this loop spill
            for tap in range(KS * KS):
                row = (p_r * STRIDE + (tap // KS) * DIL) * IW + p_c * STRIDE + (tap % KS) * DIL
                v = tl.load(slot + row[:, None] * BLOCK_M + m_loc[None, :], mask=(p < TH * TW)[:, None], other=0.0)
                wv = tl.load(dw_ptr + offs_o * (KS * KS) + tap, mask=mask_m, other=0.0)
                dacc += v.to(tl.float32) * wv.to(tl.float32)[None, :]
            if HAS_DWB:
                dacc += tl.load(dwb_ptr + offs_o, mask=mask_m, other=0.0).to(tl.float32)[None, :]
            yv = apply_act(dacc, DW_ACT).to(dt)
            if HAS_RES:  # out = y + residual: y is rounded first, as the composition stores it
                r_ptrs = res_ptr + n * srn + (oh * srh + ow * srw)[:, None] + (y_off + offs_o)[None, :] * src
                yv = (yv.to(tl.float32) + tl.load(r_ptrs, mask=mask, other=0.0).to(tl.float32)).to(dt)
            o_ptrs = out_ptr + n * son + (oh * soh + ow * sow)[:, None] + (y_off + offs_o)[None, :] * soc
            tl.store(o_ptrs, yv, mask=mask)


# ---------------------------------------------------------------------------------------------
# launcher
# ---------------------------------------------------------------------------------------------

def _rows(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def _halo(t: int, k: int, stride: int, dilation: int) -> int:
    return (t - 1) * stride + dilation * (k - 1) + 1


@functools.lru_cache(maxsize=4096)  # a Python search per layer shape
def _pick_tile(ho: int, wo: int, k: int, stride: int, dilation: int, c: int, m: int, mult: int, n: int,
               sms: int) -> tuple[int, int]:
    """Output tile (TH, TW) minimising a rough time model, per h channel, in MAC units: per tile
    BLOCK_HP * C (1x1, halo recomputed, power-of-2 padding included), BLOCK_P * k*k * m (depthwise),
    ~32 per reloaded weight (C) and a fixed 2048 (barriers, loop set-up); time = per_tile *
    max(tiles * M chunks / SMs, 1), M chunks counted at BLOCK_M = 32. Untuned guesses, to be
    replaced by measurements."""
    if triton_interpreting():
        return min(ho, 4), min(wo, 4)  # small tiles: several tiles (and halo seams) on the tiny test images
    best, best_cost = (1, 1), None
    for th in range(1, min(ho, 32) + 1):
        for tw in range(1, min(wo, 32) + 1):
            bp = _rows(th * tw)
            bhp = _rows(_halo(th, k, stride, dilation) * _halo(tw, k, stride, dilation))
            if bp > _MAX_ROWS or bhp > _MAX_ROWS:
                continue
            tiles = n * triton.cdiv(ho, th) * triton.cdiv(wo, tw)
            per_tile = bhp * c + bp * k * k * mult + 32 * c + 2048
            cost = per_tile * max(tiles * triton.cdiv(m, 32) / sms, 1.0)
            if best_cost is None or cost < best_cost:
                best, best_cost = (th, tw), cost
    return best


def launch(x: Tensor, pw_weight: Tensor, dw_weight: Tensor, pw_bias: Optional[Tensor],
           dw_bias: Optional[Tensor], residual: Optional[Tensor], stride: int, padding: int,
           dilation: int, pw_act: str, dw_act: str, concat: bool, programs: int):
    """Everything forward() passes to the kernel: (out, grid, positional args, constexprs); grid is
    None for an empty batch. Split out so tests/test_pwdw_conv2d.py compiles the exact launches
    of real shapes for sm_90 without a GPU."""
    n, c, hh, ww = x.shape
    m = pw_weight.shape[0]
    mult, ks = dw_weight.shape[0] // m, dw_weight.shape[-1]
    ho = conv_out_size(hh, ks, stride, padding, dilation)
    wo = conv_out_size(ww, ks, stride, padding, dilation)
    out = empty_like_format(x, (n, m * mult + (m if concat else 0), ho, wo))
    if n == 0:
        return out, None, (), {}
    th, tw = _pick_tile(ho, wo, ks, stride, dilation, c, m, mult, n, max(1, programs // 4))
    ih, iw = _halo(th, ks, stride, dilation), _halo(tw, ks, stride, dilation)
    block_hp = _rows(ih * iw)
    tiles_w = triton.cdiv(wo, tw)
    tiles_per_img = triton.cdiv(ho, th) * tiles_w
    num_tiles = n * tiles_per_img

    def grid(meta):
        mtiles = triton.cdiv(m, meta["BLOCK_M"])
        return max(1, min(num_tiles, programs // mtiles)), mtiles

    # slots used = grid0 * mtiles <= max(programs, mtiles), each BLOCK_HP x BLOCK_M, for any BLOCK_M
    scratch = torch.empty(max(programs * _MAX_BLOCK_M, m + _MAX_BLOCK_M) * block_hp, dtype=x.dtype,
                          device=x.device)
    res = residual if residual is not None else out  # dummy pointer, never read
    args = (x, pw_weight, pw_bias if pw_bias is not None else pw_weight, dw_weight,
            dw_bias if dw_bias is not None else dw_weight, res, out, scratch,
            c, hh, ww, m, ho, wo, padding, *x.stride(), *out.stride(), *res.stride(),
            tiles_w, tiles_per_img, num_tiles)
    consts = dict(KS=ks, STRIDE=stride, DIL=dilation, MULT=mult, TH=th, TW=tw, IH=ih, IW=iw,
                  BLOCK_P=_rows(th * tw), BLOCK_HP=block_hp, HAS_PWB=pw_bias is not None,
                  HAS_DWB=dw_bias is not None, HAS_RES=residual is not None, CONCAT=concat,
                  PW_ACT=act_code(pw_act), DW_ACT=act_code(dw_act), DOT_FP32=dot_fp32(x.dtype),
                  PREC=dot_precision(x.dtype, x.device),
                  # the x halo tile is BLOCK_HP x BLOCK_C elements, each with its own 64-bit address in
                  # registers: keep it at 4K (BLOCK_C = 32 for a 128-row halo), or the kernel spills
                  BLOCK_C=max(16, min(triton.next_power_of_2(c), 4096 // block_hp)))
    return out, grid, args, consts


def forward(x: Tensor, pw_weight: Tensor, dw_weight: Tensor, pw_bias: Optional[Tensor],
            dw_bias: Optional[Tensor], residual: Optional[Tensor], stride: int, padding: int,
            dilation: int, pw_act: str, dw_act: str, concat: bool) -> Tensor:
    """x: (N, C, H, W), pw_weight: (M, C, 1, 1), dw_weight: (M*m, 1, k, k), residual shaped like
    out or None -> (N, M*m, H', W') or, with concat, (N, M + M*m, H, W); x's memory format and dtype."""
    out, grid, args, consts = launch(x, pw_weight, dw_weight, pw_bias, dw_bias, residual, stride, padding,
                                     dilation, pw_act, dw_act, concat, _max_programs(x.device))
    if grid is not None:
        _pwdw_kernel[grid](*args, **consts)
    return out
