"""Triton backend of fastconv.channel_shuffle: the permutation as one bandwidth-bound kernel.

out[:, i*g + gg] = x[:, gg*(C/g) + i]. Every element is read once and written once; the only
question is how to keep both sides contiguous:

- NCHW: a shuffle moves whole H*W planes. Each program copies BLOCK_R output planes x BLOCK_HW
  pixels; each row of the tile is a contiguous run on both sides, so loads and stores vectorise
  (the autotuner trades BLOCK_R for BLOCK_HW: small maps like 7x7 want many planes per program).
- NHWC: every pixel's C channels are one contiguous row and the shuffle permutes inside it. Each
  program owns BLOCK_P pixels x BLOCK_C channels; stores are contiguous and loads gather within
  the same row, so a warp touches the same cache lines as a plain copy would.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import empty_like_format
from fastconv.triton._common import INT32_LIMIT, autotune_configs, check_int32_indexing


def _plane_configs():
    return autotune_configs(("BLOCK_R", "BLOCK_HW"), (8, 128, 4), [
        (1, 1024, 4), (1, 2048, 8), (2, 512, 4), (4, 256, 4), (4, 1024, 8), (8, 128, 4), (16, 64, 4),
        (32, 64, 8), (64, 16, 4)])


def _row_configs():
    return autotune_configs(("BLOCK_P", "BLOCK_C"), (16, 64, 4), [
        (64, 32, 4), (32, 64, 4), (16, 128, 4), (8, 256, 4), (4, 512, 4), (32, 128, 8), (16, 256, 8),
        (64, 64, 8)])


# NCHW kernel: 1-D grid cdiv(N*C, BLOCK_R) * cdiv(H*W, BLOCK_HW) (grid.y is capped at 65535, which
# a 1024x1024 map with 16-pixel blocks exceeds); one row of the tile = one output plane (n, co)
# copied from input plane (n, ci(co)).
@triton.autotune(configs=_plane_configs(), key=["ROWS", "C", "HW"])
@triton.jit
def _shuffle_planes_kernel(x_ptr, out_ptr, ROWS, C, CPG, GROUPS, HW,
                           BLOCK_R: tl.constexpr, BLOCK_HW: tl.constexpr):
    pid = tl.program_id(0)
    nb_hw = tl.cdiv(HW, BLOCK_HW)
    rows = (pid // nb_hw) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs = (pid % nb_hw) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    n = rows // C
    co = rows % C
    ci = (co % GROUPS) * CPG + co // GROUPS
    src = (n * C + ci).to(tl.int64) * HW
    dst = rows.to(tl.int64) * HW
    mask = (rows < ROWS)[:, None] & (offs < HW)[None, :]
    v = tl.load(x_ptr + src[:, None] + offs[None, :], mask=mask)
    tl.store(out_ptr + dst[:, None] + offs[None, :], v, mask=mask)


# NHWC kernel: grid (cdiv(N*H*W, BLOCK_P), cdiv(C, BLOCK_C)) (grid.y <= 65535: C <= 4M);
# permutation inside each pixel row.
@triton.autotune(configs=_row_configs(), key=["NPIX", "C"])
@triton.jit
def _shuffle_rows_kernel(x_ptr, out_ptr, NPIX, C, CPG, GROUPS,
                         BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    ci = (co % GROUPS) * CPG + co // GROUPS
    base = pix.to(tl.int64) * C
    mask = (pix < NPIX)[:, None] & (co < C)[None, :]
    v = tl.load(x_ptr + base[:, None] + ci[None, :], mask=mask)
    tl.store(out_ptr + base[:, None] + co[None, :], v, mask=mask)


def forward(x: Tensor, groups: int) -> Tensor:
    """x: (N, C, H, W), NCHW- or NHWC-contiguous -> (N, C, H, W) in x's memory format."""
    n, c, h, w = x.shape
    out = empty_like_format(x, x.shape)
    if x.numel() == 0:
        return out
    if groups == 1 or groups == c:  # identity permutation
        out.copy_(x)
        return out
    cpg = c // groups
    check_int32_indexing("channel_shuffle", n * h * w)  # plane/pixel offsets themselves are int64
    if n * c * triton.cdiv(h * w, 16) >= INT32_LIMIT:  # bounds the 1-D plane grid of every config
        raise ValueError(f"channel_shuffle: x of shape {tuple(x.shape)} is too large for the Triton kernel")
    if x.is_contiguous():
        rows, hw = n * c, h * w
        grid = lambda meta: (triton.cdiv(rows, meta["BLOCK_R"]) * triton.cdiv(hw, meta["BLOCK_HW"]),)
        _shuffle_planes_kernel[grid](x, out, rows, c, cpg, groups, hw)
    else:
        assert x.is_contiguous(memory_format=torch.channels_last)
        npix = n * h * w
        grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]), triton.cdiv(c, meta["BLOCK_C"]))
        _shuffle_rows_kernel[grid](x, out, npix, c, cpg, groups)
    return out
