"""Triton backend of fastconv.shufflenet_v2_unit: no split copy, no cat, no shuffle pass.

    stride 1: out = shuffle(cat([x[:, :B], branch2(x[:, B:])]), 2)
    stride 2: out = shuffle(cat([branch1(x), branch2(x)]), 2)
    branch2(z) = relu(pw2(dw3x3(relu(pw1(z)), stride))), branch1(z) = relu(pw(dw3x3(z, 2)))

shuffle(cat([a, b]), 2) puts a's channel i at 2i and b's channel i at 2i + 1, so every kernel
stores its result at channel 2i (+1): the cat and the shuffle are the store index. The split is a
channel-offset view of x (strided reads, no copy).

Branch2, fused path (_pw_dw_pw_kernel, one kernel, hidden tensor never in HBM): per tile of output
pixels, for each chunk of hidden channels, pw1 + b1 + relu is evaluated by tl.dot at each of the 9
tap positions of every output pixel (zero outside the image, like the dw conv's padding), weighted
by the dw taps in fp32 registers, + dw bias, rounded to the input dtype and fed to tl.dot with
pw2. Epilogue: + b2, relu, store at channel 2k+1. The price is recomputing pw1 at 9 taps per output
pixel: 9x pw1's FLOPs at stride 1, 2.25x at stride 2 (a quarter of the output pixels).

Branch2, two-kernel path: pw1 + relu (group_conv1x1's kernel, reading the x[:, B:] view) writes
the hidden tensor once; shufflenet_v1_unit's dw+pw kernel computes the dw on the fly from it, does
pw2 + b2 + relu and stores at 2k+1. One intermediate, written once and read once.

Which is faster depends on B (recompute FLOPs grow with B^2, the intermediate's bytes with B):
_fuse_hidden picks. At stride 1 the pass-through half (x[:, i] -> out[:, 2i]) is done by extra
programs of the branch2 launch. At stride 2 branch1 is one more launch of the dw+pw kernel
(dw3x3/2 on the fly -> pw -> b -> relu) storing at channel 2k.
"""
from __future__ import annotations

from typing import Optional

import triton
import triton.language as tl
from torch import Tensor

from fastconv._common import conv_out_size, empty_like_format
from fastconv.triton import group_conv1x1
from fastconv.triton._common import apply_act, autotune_configs, dot_fp32, dot_precision, mma, output_pixels
from fastconv.triton.shufflenet_v1_unit import EXTRA_NONE, EXTRA_PASSTHROUGH, _extra_tile, launch_dw_gpw

# Fused (recompute) vs two-kernel branch2. Estimated from an H100 roofline (~3 TB/s, fp16 tensor
# cores at a fraction of peak), not measured: recompute wins at stride 2 and for narrow branches.
FUSE_MAX_B_STRIDE1 = 64


def _fuse_hidden(b: int, stride: int) -> bool:
    return stride == 2 or b <= FUSE_MAX_B_STRIDE1


def _configs():
    return autotune_configs(("BLOCK_P", "BLOCK_N", "BLOCK_H", "BLOCK_CI"), (64, 32, 32, 32, 4), [
        (64, 64, 32, 32, 4, 2), (64, 128, 32, 32, 4, 2), (64, 128, 32, 64, 8, 2), (128, 64, 32, 32, 8, 2),
        (128, 128, 32, 32, 8, 2), (64, 256, 32, 32, 8, 2), (32, 256, 32, 64, 8, 2), (32, 128, 64, 32, 4, 2),
        (128, 256, 32, 32, 8, 1)])


# Kernel: grid (cdiv(N*H'*W', BLOCK_P), cdiv(B, BLOCK_N) + cdiv(CX, BLOCK_N)). Tile = BLOCK_P output
# pixels x BLOCK_N branch outputs; outer loop over hidden channels BLOCK_H at a time, inside it the
# 9 taps, inside those the pw1 reduction over CIN (BLOCK_CI at a time). Fuses pw1 + b1 + relu ->
# dw3x3 + dw_b -> pw2 + b2 + relu -> interleaved store; trailing programs do the pass-through.
@triton.autotune(configs=_configs(), key=["NPIX", "CIN", "B", "stride"])
@triton.jit
def _pw_dw_pw_kernel(z_ptr, w1_ptr, b1_ptr, dww_ptr, dwb_ptr, w2_ptr, b2_ptr, x_ptr, out_ptr,
                     NPIX, H, W, HO, WO, CIN, B, CX, stride, OUT_MUL, OUT_OFF,
                     szn, szc, szh, szw, sxn, sxc, sxh, sxw, son, soc, soh, sow,
                     HAS_B1: tl.constexpr, HAS_DWB: tl.constexpr, HAS_B2: tl.constexpr,
                     EXTRA: tl.constexpr, DOT_FP32: tl.constexpr, PREC: tl.constexpr,
                     BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr,
                     BLOCK_CI: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_q = tl.program_id(1)
    dt = out_ptr.dtype.element_ty

    offs_p, mask_p, n, oh, ow = output_pixels(pid_p, BLOCK_P, NPIX, HO, WO)

    NB_N = tl.cdiv(B, BLOCK_N)
    if pid_q < NB_N:
        offs_n = pid_q * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_n = offs_n < B
        z_img = z_ptr + n * szn
        ih0 = oh * stride - 1
        iw0 = ow * stride - 1

        acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
        for h0 in range(0, B, BLOCK_H):
            hc = h0 + tl.arange(0, BLOCK_H)
            mask_h = hc < B
            dw = tl.zeros([BLOCK_P, BLOCK_H], dtype=tl.float32)
            for kh in tl.static_range(3):
                ih = ih0 + kh
                row_ok = mask_p & (ih >= 0) & (ih < H)
                for kw in tl.static_range(3):
                    iw = iw0 + kw
                    ok = row_ok & (iw >= 0) & (iw < W)
                    tap = z_img + ih * szh + iw * szw
                    pre = tl.zeros([BLOCK_P, BLOCK_H], dtype=tl.float32)
                    for c0 in range(0, CIN, BLOCK_CI):
                        ci = c0 + tl.arange(0, BLOCK_CI)
                        mask_ci = ci < CIN
                        a = tl.load(tap[:, None] + ci[None, :].to(tl.int64) * szc,
                                    mask=ok[:, None] & mask_ci[None, :], other=0.0)
                        # pw1 (B, CIN): B-operand[ci, h] = w1[h, ci]
                        b = tl.load(w1_ptr + hc[None, :] * CIN + ci[:, None],
                                    mask=mask_ci[:, None] & mask_h[None, :], other=0.0)
                        pre = mma(a, b, pre, DOT_FP32, PREC)
                    if HAS_B1:
                        pre += tl.load(b1_ptr + hc, mask=mask_h, other=0.0).to(tl.float32)[None, :]
                    # the dw conv zero-pads the *hidden* tensor: relu(b1) must not leak in; padded
                    # hidden lanes are zeroed too, else an Inf in x makes Inf*0 = NaN there, which
                    # the pw2 dot would spread to every output channel
                    pre = tl.where(ok[:, None] & mask_h[None, :], apply_act(pre, 1), 0.0)
                    wv = tl.load(dww_ptr + hc * 9 + (kh * 3 + kw), mask=mask_h, other=0.0)
                    dw += pre * wv.to(tl.float32)[None, :]
            if HAS_DWB:
                dw += tl.load(dwb_ptr + hc, mask=mask_h, other=0.0).to(tl.float32)[None, :]
            a2 = dw.to(dt)  # the unfused composition stores the dw output at this precision
            # pw2 (B, B): B-operand[h, k] = w2[k, h]
            b2 = tl.load(w2_ptr + offs_n[None, :] * B + hc[:, None],
                         mask=mask_h[:, None] & mask_n[None, :], other=0.0)
            acc = mma(a2, b2, acc, DOT_FP32, PREC)

        if HAS_B2:
            acc += tl.load(b2_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        acc = apply_act(acc, 1)
        oc = offs_n.to(tl.int64) * OUT_MUL + OUT_OFF
        o_ptrs = out_ptr + (n * son + oh * soh + ow * sow)[:, None] + oc[None, :] * soc
        tl.store(o_ptrs, acc.to(dt), mask=mask_p[:, None] & mask_n[None, :])
    else:
        if EXTRA != 0:
            _extra_tile(x_ptr, out_ptr, pid_q - NB_N, n, oh, ow, mask_p, H, W, CX, stride,
                        sxn, sxc, sxh, sxw, son, soc, soh, sow, EXTRA, BLOCK_P, BLOCK_N)


def _launch_fused(z: Tensor, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, x: Tensor, out: Tensor,
                  stride: int, extra: int, cx: int) -> None:
    """out[:, 2k+1] = branch2(z)[:, k]; extra programs copy x[:, c] -> out[:, 2c] for c < cx."""
    n, cin, h, w = z.shape
    b = pw1_w.shape[0]
    ho, wo = out.shape[2], out.shape[3]
    npix = n * ho * wo
    if npix == 0:
        return
    grid = lambda meta: (triton.cdiv(npix, meta["BLOCK_P"]),
                         triton.cdiv(b, meta["BLOCK_N"]) + triton.cdiv(cx, meta["BLOCK_N"]))
    _pw_dw_pw_kernel[grid](
        z, pw1_w, pw1_b if pw1_b is not None else pw1_w, dw_w, dw_b if dw_b is not None else dw_w,
        pw2_w, pw2_b if pw2_b is not None else pw2_w, x, out,
        npix, h, w, ho, wo, cin, b, cx, stride, 2, 1,
        *z.stride(), *x.stride(), *out.stride(),
        HAS_B1=pw1_b is not None, HAS_DWB=dw_b is not None, HAS_B2=pw2_b is not None, EXTRA=extra,
        DOT_FP32=dot_fp32(z.dtype), PREC=dot_precision(z.dtype, z.device))


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
        _launch_fused(z, pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b, x, out, stride, extra, cx)
    else:
        hid = empty_like_format(x, (n, b, h, w))
        group_conv1x1.launch(z, pw1_w, pw1_b, hid, 1, 0, 0, "relu")
        launch_dw_gpw(hid, dw_w, dw_b, pw2_w, pw2_b, x, out, 1, stride, 2, 1, res=False, extra=extra, cx=cx)
    return out
