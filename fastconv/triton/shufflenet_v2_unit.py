"""Triton backend of fastconv.shufflenet_v2_unit: no split copy, no cat, no shuffle pass.

    stride 1: out = shuffle(cat([x[:, :B], branch2(x[:, B:])]), 2)
    stride 2: out = shuffle(cat([branch1(x), branch2(x)]), 2)
    branch2(z) = relu(pw2(dw3x3(relu(pw1(z)), stride))), branch1(z) = relu(pw(dw3x3(z, 2)))

shuffle(cat([a, b]), 2) puts a's channel i at 2i and b's channel i at 2i + 1, so every kernel
stores its result at channel 2i (+1): the cat and the shuffle are the store index. The split is a
channel-offset view of x (strided reads, no copy).

Branch2, fused path (one kernel, the hidden tensor never in HBM): branch2 is an inverted residual
without the residual (expand = pw1 + relu, dw3x3 + bias with no activation, project = pw2 + bias
+ relu), so it runs on fastconv/triton/inverted_residual.py's ``_ir_fused_kernel``: each program
owns a TH x TW tile of output pixels; per chunk of BLOCK_E hidden channels it computes pw1 once on
the tile plus its 1-pixel halo with tl.dot into an L2-resident scratch slot, then the 9 shifted
depthwise taps from the slot, then pw2 as tl.dot. Epilogue: + b2, relu, store at channel 2k+1;
at stride 1 the K-tile-0 programs also copy the pass-through half x[:, c] -> out[:, 2c].
pw1 is computed on ((TH-1)*s + 3) x ((TW-1)*s + 3) halo pixels per TH x TW output tile, i.e.
halo / (TH*TW*s^2) times its unfused FLOPs (was 9x at stride 1 and 2.25x at stride 2 when every
tap recomputed it). With the tiles inverted_residual._pick_tile chooses at batch 32: 1.6x for
116 channels @28 (4x28 tiles, 6x30 halo), 2.1x for 176/244 @28 (2x28), 1.7x for 232 @14 (4x14),
1.15x at stride 2 (7x7 tiles, 15x15 halo); at batch 1 it prefers many 1x1-1x7 tiles to fill
the SMs, up to 9x (no worse than before).
Per-tile budget (8 warps): BLOCK_P <= 128 output pixels, BLOCK_HP <= 256 halo pixels, the project
accumulator BLOCK_P x BLOCK_K fp32 <= 8K elements (32 registers per thread), BLOCK_E = 16-64
hidden channels per chunk; the autotuner drops configs whose register score
(inverted_residual._fused_live) would spill; scratch: BLOCK_HP x 64 elements per program in L2.
The split is not a view for this path: the kernel reads x's own base with a channel offset, so a
16-byte-aligned NHWC x keeps vector loads.

Branch2, two-kernel path: pw1 + relu (group_conv1x1's kernel, reading the x[:, B:] view) writes
the hidden tensor once; shufflenet_v1_unit's dw+pw kernel computes the dw on the fly from it, does
pw2 + b2 + relu and stores at 2k+1. One intermediate, written once and read once.

_fuse_hidden picks the fused path everywhere (its halo recompute is cheap next to the hidden
tensor's HBM round trip); the two-kernel path stays reachable with ``fuse_hidden=False``. At
stride 2 branch1 is one more launch of the dw+pw kernel (dw3x3/2 on the fly -> pw -> b -> relu)
storing at channel 2k.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from fastconv._common import conv_out_size, empty_like_format
from fastconv.triton import group_conv1x1, inverted_residual
from fastconv.triton.shufflenet_v1_unit import EXTRA_NONE, EXTRA_PASSTHROUGH, launch_dw_gpw

def _fuse_hidden(b: int, stride: int) -> bool:
    """One kernel (pw1 on the tile halo, hidden tile in L2 scratch) vs two kernels (hidden tensor in
    HBM). Not measured: the fused path recomputes pw1 on the halo (1.3-4.5x its FLOPs, see above)
    and saves 2 x B x H x W elements of HBM traffic, which at an H100's ~200 FLOP/byte is worth
    more than the recompute for every ShuffleNetV2 width."""
    return True


def _launch_fused(x: Tensor, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, out: Tensor, stride: int,
                  cin_off: int, cx: int) -> None:
    """out[:, 2k+1] = branch2(x[:, cin_off:])[:, k]; also x[:, c] -> out[:, 2c] for c < cx."""
    inverted_residual._launch_fused(x, pw1_w, dw_w, pw2_w, pw1_b, dw_b, pw2_b, out, None, stride, 1, "relu",
                                    False, False, dw_act="none", proj_act="relu", out_mul=2, out_off=1,
                                    cin_off=cin_off, cx=cx)


def forward(x: Tensor, pw1_w: Tensor, pw1_b: Optional[Tensor], dw_w: Tensor, dw_b: Optional[Tensor],
            pw2_w: Tensor, pw2_b: Optional[Tensor], b1_dw_w: Optional[Tensor], b1_dw_b: Optional[Tensor],
            b1_pw_w: Optional[Tensor], b1_pw_b: Optional[Tensor], stride: int,
            fuse_hidden: Optional[bool] = None) -> Tensor:
    """x: (N, C, H, W); pw1_w: (B, Cin2, 1, 1) (Cin2 = C/2 at stride 1, C at stride 2);
    dw_w: (B, 1, 3, 3); pw2_w: (B, B, 1, 1); b1_dw_w: (C, 1, 3, 3), b1_pw_w: (B, C, 1, 1) (stride 2
    only) -> (N, C, H, W) at stride 1, (N, 2B, H', W') at stride 2, in x's memory format and dtype.

    fuse_hidden: None = _fuse_hidden's choice; True/False force the one-kernel / two-kernel branch2."""
    n, c, h, w = x.shape
    b = pw1_w.shape[0]
    if fuse_hidden is None:
        fuse_hidden = _fuse_hidden(b, stride)
    if stride == 1:
        out = empty_like_format(x, (n, c, h, w))
        z = x[:, b:]  # the split: a channel-offset view, read with x's strides
        extra, cx = EXTRA_PASSTHROUGH, b
    else:
        out = empty_like_format(x, (n, 2 * b, conv_out_size(h, 3, stride, 1), conv_out_size(w, 3, stride, 1)))
        z = x
        extra, cx = EXTRA_NONE, 0
        launch_dw_gpw(x, b1_dw_w, b1_dw_b, b1_pw_w, b1_pw_b, None, out, 1, stride, 2, 0,
                      res=False, extra=EXTRA_NONE, cx=0)
    if fuse_hidden:
        _launch_fused(x, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, out, stride, b if stride == 1 else 0, cx)
    else:
        hid = empty_like_format(x, (n, b, h, w))
        group_conv1x1.launch(z, pw1_w, pw1_b, hid, 1, 0, 0, "relu")
        launch_dw_gpw(hid, dw_w, dw_b, pw2_w, pw2_b, x, out, 1, stride, 2, 1, res=False, extra=extra, cx=cx)
    return out
