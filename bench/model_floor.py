"""MODEL, not measured: a floor per catalogue block from each CUDA kernel family's tiling.

For one block (default batch 128, fp16, channels_last) the floor is the largest of
  HBM      bytes the kernels must move / HBM bandwidth
  LSU      L1/shared-memory wavefronts / (SMs x clock x 1 wavefront per clock per SM)
  TC       tensor-core FLOPs executed (padding and recompute included) / mma.sync peak
  FMA      FP32 FMAs executed on the CUDA cores (depthwise, SE MLP) / FP32 FMA rate
and ``binds`` names the largest. The per-SM ceilings (LSU, TC, FMA) are divided by the share of SMs
a persistent grid keeps busy (the inverted residual: equal work items over min(items, SMs) CTAs).

How work is counted (the rules are in the helpers below, the tiling in ``TILING``):
- one wavefront = one 128-byte pass of the L1/shared-memory data path (128 B per clock per SM).
  Shared memory: a warp instruction costs the largest number of distinct 4-byte words it asks of
  one bank (``smem_wf``: 4 for a conflict-free 16-byte-per-lane access, 1 for a 2-byte one, more
  with bank conflicts); the irregular accesses (the depthwise stage's sliding window and its sink,
  the inverted residual's expand epilogue and accumulator staging) are simulated lane by lane
  from the kernel's index math. Global memory: distinct 128-byte lines per warp instruction
  (``gmem_wf``); cp.async moves its bytes once (``lin``: bytes / 128; .cg 16-byte copies bypass L1,
  the data is written once into shared memory); ldmatrix.x4 = 4 (the kernels pad their pitches
  to 8 mod 64 halves so the phases are conflict-free, as their headers say).
- L2 hits are free: x re-read by neighbouring tiles' halos and weights re-read by every CTA cost
  no HBM bytes within one launch. A tensor written by one launch and read by a later one (the SE
  path's h, ShuffleNet units' h, x read again by a later launch) is counted in HBM both ways.
- tensor-core FLOPs are counted as the kernels issue mma.sync: whole m16n8k16 tiles, over the rows
  and channels each warp actually runs (padding to 16 / 32 / 64, halo recompute, per-pass recompute).
- not modelled: latency, occupancy (a floor assumes the ceilings overlap perfectly), issue slots,
  integer/address math, barriers, and bank conflicts of the plain 2-D copies (assumed ideal).
Expect errors up to ~2x: this ranks designs and says which ceiling binds, it predicts no time.

The tiling of each kernel family is data (``TILING``, one dict per family, each citing the header
it was read from): when a kernel is rewritten its owner updates its entry (and, if the structure
changes, its model function) so the floor follows the code. ``Floor.lsu_parts`` breaks the LSU
count down by stage, so a report can say which stage makes a block LSU-bound.
"""
from __future__ import annotations

import functools
import math
from collections import defaultdict
from dataclasses import dataclass, field

from bench.metrics import block_metrics

LABEL = "MODEL, not measured"

# Device constants, in one place. mma.sync (HMMA, no wgmma) dense fp16 is about 60% of the
# H100's 990 TFLOP/s wgmma peak. smem_optin: the largest dynamic shared memory per CTA (227 KB),
# which the launchers' plans size their tiles against.
DEVICES = {
    "h100": dict(name="H100 SXM", sms=132, clock_hz=1.755e9, hbm_bps=3.35e12, mma_flops=600e12,
                 wgmma_flops=990e12, lsu_wf_per_clk=1.0, fp32_lanes=128, smem_optin=232448),
    "h200": dict(name="H200", sms=132, clock_hz=1.755e9, hbm_bps=4.8e12, mma_flops=600e12,
                 wgmma_flops=990e12, lsu_wf_per_clk=1.0, fp32_lanes=128, smem_optin=232448),
}

# Per kernel family tiling of the CUDA kernels (csrc/, rebuilt on csrc/stages for issue #10).
TILING = {
    # csrc/stages/depthwise.cuh (Depthwise<T, KS, S, TH, TW, RW, NT>): item = (output row, strip of
    # RW outputs, 8 channels); per item 2 LDS.128 bias (fp32), per filter row k LDS.128 weights +
    # (RW-1)S + k LDS.128 inputs (sliding window; KS = 0: k^2 weights + k^2 RW inputs), RW sink calls;
    # weights from dw_w (C, k*k) by synchronous 2-byte loads, tap-major into smem.
    "stages_depthwise": dict(src="csrc/stages/depthwise.cuh", vec=8, fast_k=(3, 5, 7), fast_s=(1, 2)),
    # csrc/dwpw_conv2d/dwpw_conv2d_kernel.cuh: 8 x 8 output tile x ALL output channels per 256-thread
    # CTA; dw computed once into a resident A tile of ca = C rounded up to cg = 32 channels (halo chunks of
    # cc <= 64 channels, <= 32 when cpad % 64, at pixel pitch halo_pitch, double-buffered by 16-byte
    # cp.async, 48 KB for both); then per 64-channel
    # output tile 64 x 64 weight slabs by cp.async, Gemm<64, 64, 2, 4> (ldmatrix + mma.sync),
    # fp32 staging tile, 16-byte store_tile (K % 8 == 0). Depthwise RW = 4 for k3 (packed taps), else 2.
    # wgmma (sm_90a, the Hopper build; header "Pw<T>"): 128-channel output tiles on WgGemm<64, 128, 1, 2>
    # (m64n64k16 per warpgroup, skipped past K), 128 x 32 core-matrix slabs (sk_wg), two-pass drain through
    # the 64-wide staging tile of the n8 chunks below K only.
    "dwpw_conv2d": dict(src="csrc/dwpw_conv2d/dwpw_conv2d_kernel.cuh", th=8, tw=8, bn=64, bk=64, nt=256,
                        wm=2, wn=4, rw_k3=4, rw=2, halo_budget=48 * 1024, cc_max=64, ldc=72, wgmma=True, cg=32,
                        sk_wg=32),
    # csrc/inverted_residual/inverted_residual_kernel.cuh + csrc/stages/ir_warp_tile.cuh (plan, ir_layout):
    # persistent grid of 256-thread CTAs (1 per SM), work item = (output tile, project pass); x halo
    # clipped to the image, compacted, channels padded to 16, resident; hidden chunks of EC = 48 with
    # We/Wp chunks double-buffered by cp.async; expand WarpTile (q = clamp(ceil(mtiles / 8), 2, EMT) m tiles
    # x 6 n8 per pass, EMT 4 for T8 NB64 / SE pass 1 T8 / T4 in fp16, else 2; bias preloaded into the
    # accumulators, one LDS.64 per pass and n8 tile) -> packed 4-byte (fp32: 8-byte) pair stores into
    # hid[IH][IW][HP = EC + 8] (conflict-free), xpos read once per m tile; hid's out-of-image pixels zeroed
    # (EC channels); Depthwise (pixel pitch HP; fast KS/S for T14/T8 k3/k5 with RW = rw14 / rw8 for NB <= 64 /
    # NB > 64: kRw14 / kRw8; generic k and T4: RW = 2) -> ap[TH TW][EC + 8]; project WarpTile accumulators
    # live across chunks, warp grid proj_wmp (T14 NB96 4 x 2, T8 NB320 2 x 4), a lone last n8 tile by
    # ldmatrix.x2; epilogue: fp32 STS.64 pair staging, 16-byte store_tile. Tiles T14 (s1, k3/5, K <= 96,
    # maps >= 9), T8 (NB 320 for K > 64, else NB 64), T4. SE: pass 1 (T14 where the fused kernel could
    # use it, any K, else T8; h + partial sums to global in one pass over the tile: row phases x 6 channel
    # groups, sum_rows),
    # se_mlp (a block per 1..se_imgs images, more than 1 only when N exceeds the SMs, each weight load
    # serving them all; FC1 and FC2 a warp per 8 rows, lanes along the reduction with 16-byte loads,
    # 9-shuffle reduce-scatter per image; its own launch: N / imgs blocks), pass 2 (T8, ap = h by
    # cp.async, A columns x gate in registers). In the sm_90a build the T8 project GEMM (fused and SE pass 2)
    # runs on wgmma, t8_wgmma: WgStrip's m64n16k16 blocks (NB 64: 2 per warpgroup fused, 4 on warpgroup 0 in
    # SE pass 2; NB 320: 10 per warpgroup), B in core matrices, a short chunk's k steps only (ceil(ecl / 16)).
    "inverted_residual": dict(src="csrc/inverted_residual/inverted_residual_kernel.cuh", ec=48, lda=56, hp=56,
                              nt=256, rw14=(7, 2), rw8=(8, 4), ctas_per_sm=1, se_rows=8, se_imgs=4,  # (at most)
                              t8_wgmma=True),
    # csrc/group_conv1x1/gconv_kernel.cuh (header + Tiles<T>, fp16/bf16): plain: 128 pixels x 128 output
    # channels x BK = 32 slices, 3-stage cp.async pipeline (all 128 weight rows, zero past Kg),
    # Gemm<128, 128, 4, 2> (32 x 64 warp tiles; warps whose 64 columns lie past Kg skip), whole-tile
    # fp32 staging [128][136], epilogue per 64 channels;
    # DW: 8 x 8 output tile x all Kg channels of a group, 3x3 dw (Depthwise RW = 4, packed taps; fp32: RW = 2) once per CTA from an smem halo
    # (cc = 32 at pixel pitch halo_pitch = 40 in fp16, double-buffered) into a resident A tile (Cg rounded up
    # to 32), output tiles of
    # dbn = 128 channels (Gemm<64, 128, 2, 4>; warps whose 32 columns lie past Kg skip), 128 x 32
    # weight slabs double-buffered, drained through the 64-channel staging tile in passes; extra
    # side-branch CTAs (64 channels of the avg-pool / passthrough copy of the same tile), except the
    # ShuffleNetV2 s1 passthrough when B % 4 == 0 (side_pair: fused into the epilogue, 16-byte runs of
    # 8 branch + 8 passthrough channels). Epilogue 16-byte when out_mul == 1, no shuffle_out,
    # Kg % 8 == 0; scalar otherwise (ShuffleNetV2's s2 interleaved store, shuffle_out).
    # wgmma (sm_90a, the Hopper build; header "GEMM ... sm_90a"): plain WgGemm<128, 128, 2, 1> (2 warpgroups of
    # m64n128k16, m64n64k16 when <= 64 columns are valid), DW WgGemm<64, 128, 1, 2> (m64n64k16 per warpgroup,
    # skipped past Kg); A by one ldmatrix.x4 per warp and k step, B read once per warpgroup.
    "group_conv1x1": dict(src="csrc/group_conv1x1/gconv_kernel.cuh", bm=128, pbn=128, bn=64, bk=32, nt=256, wm=4, wn=2,
                          th=8, tw=8, rw=4, side_c=64, halo_budget=48 * 1024, cc_max=32, ldc=72,
                          dbn=128, dwm=2, dwn=4, wgmma=True),
    # csrc/pwdw_conv2d/pwdw_conv2d_kernel.cuh: 8 x 8 output tile x 64 h channels per CTA; 1x1 on the
    # halo in blocks of 64 halo pixels (64 x 64 x slabs, single-buffered cp.async), scalar epilogue into
    # hs; scalar concat stores; Depthwise (RW = 2) with a scalar global sink (+ residual).
    "pwdw_conv2d": dict(src="csrc/pwdw_conv2d/pwdw_conv2d_kernel.cuh", th=8, tw=8, bm=64, bn=64, bk=64, nt=256,
                        wm=2, wn=4, rw=2, ldc=72),
    # csrc/depthwise_conv2d/depthwise_conv2d_kernel.cuh + .cuh launcher: TILE x TILE outputs (16, or 8
    # for maps <= 8) x cc <= 32 channels per CTA (halo + taps <= 100 KB), RW = 4, 16-byte stores from
    # registers when C % 8 == 0.
    "depthwise_conv2d": dict(src="csrc/depthwise_conv2d/depthwise_conv2d_kernel.cuh", rw=4, cc_max=32,
                             budget=100 * 1024),
    # csrc/channel_shuffle/channel_shuffle.cuh: NHWC, C % 8 == 0: per 16-byte output vector 8 scalar
    # gathers from the same input row (L1) + one 16-byte store; otherwise one element per thread.
    "channel_shuffle": dict(src="csrc/channel_shuffle/channel_shuffle.cuh", vec=8),
}


# ---------------------------------------------------------------------------------------------
# counting rules
# ---------------------------------------------------------------------------------------------

def _cdiv(a, b):
    return -(-a // b)


def _up(a, m):
    return _cdiv(a, m) * m


def lin(nbytes: float) -> float:
    """Wavefronts of a coalesced, conflict-free stream of >= 4 bytes per lane (cp.async, 16-byte
    vectors, ldmatrix): one per 128 bytes."""
    return nbytes / 128.0


def scalar(elems: float) -> float:
    """Wavefronts of coalesced <= 4-byte-per-lane accesses: one per warp instruction."""
    return elems / 32.0


def smem_wf(addrs, width: int) -> int:
    """Shared-memory wavefronts of one warp instruction: the most distinct 4-byte words any of the
    32 banks is asked for (``addrs``: byte address per lane, None = inactive lane)."""
    banks = defaultdict(set)
    for a in addrs:
        if a is None:
            continue
        for w in range(max(1, width // 4)):
            word = a // 4 + w
            banks[word % 32].add(word)
    return max((len(s) for s in banks.values()), default=0)


def gmem_wf(addrs, width: int) -> int:
    """Global-memory wavefronts of one warp instruction: distinct 128-byte lines touched."""
    lines = set()
    for a in addrs:
        if a is None:
            continue
        lines.update(range(a // 128, (a + width - 1) // 128 + 1))
    return len(lines)


class Count:
    """LSU wavefronts by stage, tensor-core FLOPs, FP32 FMAs, extra HBM bytes."""

    def __init__(self):
        self.lsu = defaultdict(float)
        self.tc = 0.0      # tensor-core FLOPs issued as mma.sync (HMMA)
        self.tc_wg = 0.0   # ... issued as wgmma (HGMMA, sm_90a)
        self.fma = 0.0
        self.hbm_extra = 0.0

    def add(self, other: "Count", times: float = 1.0) -> "Count":
        for k, v in other.lsu.items():
            self.lsu[k] += v * times
        self.tc += other.tc * times
        self.tc_wg += other.tc_wg * times
        self.fma += other.fma * times
        self.hbm_extra += other.hbm_extra * times
        return self


# ---------------------------------------------------------------------------------------------
# shared stages
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def depthwise_stage(k: int, s: int, th: int, tw: int, rw: int, cc: int, iw: int, eb: int, sink: tuple,
                    fast: bool = True, ldi: int = 0, nt: int = 256, cw: int = 0) -> tuple:
    """(smem wavefronts of compute, global wavefronts of the sink, FP32 FMAs) of one
    ``Depthwise::compute`` call over a cc-channel chunk, simulated warp by warp.

    Items (g, strip, oy), g fastest: item it = t, t + nt, ... for thread t; bias (2 LDS.128 fp32)
    per item, k taps per filter row per item.
    sink: ("smem", lda) -- 16-byte STS of 8 channels at row * lda + 8 g (elements; an A tile);
          ("gvec", pitch) -- 16-byte STG at pixel * pitch + 8 g (pixel = row of a tile at the
          image's top-left corner, pitch = channels of the tensor; image width in sink[2]);
          ("gscalar", pitch, width) -- 8 scalar 2-byte STG per call (pwdw's sink).
    ldi: the input's pixel pitch in elements (compute's ldi; 0 = cc).
    cw: channels computed (compute's cw: the inverted residual's short last chunk; 0 = cc): the items
    of groups g >= cw / 8 are skipped (their lanes idle)."""
    ng = cc // 8
    ngw = (cw or cc) // 8
    pc = ldi or cc
    strips = tw // rw
    positions = th * strips
    win = (rw - 1) * s + k

    def warps():
        """Per warp instruction of the item loop: the 32 lanes' (g, strip, oy) or None."""
        items = positions * ng
        for base in range(0, items, 32):
            yield [None if it >= items or it % ng >= ngw else (it % ng, (it // ng) % strips, (it // ng) // strips)
                   for it in range(base, base + 32)]

    smem = glob = 0.0
    for lanes in warps():
        if all(L is None for L in lanes):
            continue
        for h in range(2):  # bias per item
            smem += smem_wf([None if L is None else (L[0] * 8 + 4 * h) * 4 for L in lanes], 16)
        if fast:  # one filter row's k taps per row (a uniform shift per row keeps the pattern)
            for kx in range(k):
                smem += k * smem_wf([None if L is None else (kx * cc + L[0] * 8) * eb for L in lanes], 16)
            for ix in range(win):
                smem += k * smem_wf([None if L is None else ((L[2] * s * iw + L[1] * rw * s + ix) * pc + L[0] * 8) * eb
                                     for L in lanes], 16)
        else:
            for ky in range(k):
                for kx in range(k):
                    smem += smem_wf([None if L is None else ((ky * k + kx) * cc + L[0] * 8) * eb for L in lanes], 16)
                    for j in range(rw):
                        smem += smem_wf([None if L is None else
                                         (((L[2] * s + ky) * iw + (L[1] * rw + j) * s + kx) * pc + L[0] * 8) * eb
                                         for L in lanes], 16)
        for j in range(rw):
            rows = [None if L is None else (L[2] * tw + L[1] * rw + j, L[0]) for L in lanes]
            if sink[0] == "smem":
                smem += smem_wf([None if r is None else (r[0] * sink[1] + r[1] * 8) * eb for r in rows], 16)
            elif sink[0] == "gvec":
                width = sink[2]
                glob += gmem_wf([None if r is None else
                                 (((r[0] // tw) * width + r[0] % tw) * sink[1] + r[1] * 8) * eb for r in rows], 16)
            else:  # 8 scalar stores of consecutive channels
                width = sink[2]
                for c in range(8):
                    glob += gmem_wf([None if r is None else
                                     (((r[0] // tw) * width + r[0] % tw) * sink[1] + r[1] * 8 + c) * eb
                                     for r in rows], eb)
    fma = positions * ngw * rw * 8 * k * k
    return smem, glob, fma


def dw_weights(cc: int, kk: int) -> float:
    """Depthwise::load_weights: cc k^2 scalar LDG + STS, cc bias LDG + fp32 STS."""
    return 2 * scalar(cc * kk) + 2 * scalar(cc)


def _dw_chunk(k: int, s: int, th: int, tw: int, rw: int, cc: int, iw: int, ih: int, eb: int, sink: tuple,
              xbytes: int, c: Count, halo: bool = True, ldi: int = 0, nt: int = 256,
              fast: bool | None = None, cw: int = 0, copy_cc: int = 0) -> None:
    """One depthwise chunk: halo copy (cp.async or scalar), taps, compute (+ sink). fast: the
    compile-time KS/S path (None: k and s in TILING["stages_depthwise"]'s fast sets); cw: the
    channels computed (0 = cc; the taps keep pitch cc); copy_cc: the channels the halo copy moves (0 = cc)."""
    if halo:
        nbytes = ih * iw * (copy_cc or cc) * eb  # (a pitch ldi > cc pads columns the copy skips)
        c.lsu["dw halo copy"] += lin(nbytes) if xbytes >= 4 else 2 * scalar(nbytes / eb)
    c.lsu["dw taps"] += dw_weights(cc, k * k)
    if fast is None:
        fast = k in TILING["stages_depthwise"]["fast_k"] and s in TILING["stages_depthwise"]["fast_s"]
    sm, gl, fma = depthwise_stage(k, s, th, tw, rw, cc, iw, eb, sink, fast, ldi, nt, cw)
    c.lsu["dw compute (smem)"] += sm
    c.lsu["dw sink (global)"] += gl
    c.fma += fma


def gemm_slab(bm: int, bn: int, bk: int, wm: int, wn: int) -> tuple:
    """stages::Gemm<T, bm, bn, wm, wn>::mma over one bk-deep slab: (ldmatrix wavefronts, FLOPs)."""
    mt, nt8 = bm // wm // 16, bn // wn // 8
    ksteps = bk // 16
    x4 = wm * wn * ksteps * (mt + nt8 // 2)
    return 4.0 * x4, 2.0 * bm * bn * bk


def gemm_slab_wgmma(bm: int, bn: int, bk: int, wg_m: int, wg_n: int) -> tuple:
    """stages::WgTile over one bk-deep slab: wg_m x wg_n warpgroups, each an m64 x (bn / wg_n) wgmma
    with A from registers (every warp one ldmatrix.x4 of its 16 rows per 16-deep k step) and B read
    by the tensor cores from shared memory (its bytes once per warpgroup, counted as wavefronts: the
    same 128 B per clock shared-memory path). (wavefronts, FLOPs)."""
    ksteps = bk // 16
    a_wf = wg_m * wg_n * 4 * ksteps * 4.0 * (bm // wg_m // 64)
    b_wf = wg_m * wg_n * ksteps * (bn // wg_n) * 16 * 2 / 128
    return a_wf + b_wf, 2.0 * bm * bn * bk


def store_tile(valid_rows: int, kvalid: int, vec: bool, residual: bool, bias: bool = True) -> float:
    """stages::store_tile (and gconv's epilogue): vec: per 8 channels 2 LDS.128 (fp32) + 16-byte
    bias / residual LDG + one 16-byte STG; scalar: one LDS, LDG and STG per element."""
    if vec:
        items = valid_rows * _cdiv(kvalid, 8)
        return lin(items * (32 + 16 * bias + 16 * residual + 16))
    return scalar(valid_rows * kvalid) * (2 + bias + residual)


def vec_bytes(pitch_elems: int, eb: int) -> int:
    """stages::vec_bytes for an aligned base: the widest of 16/8/4 dividing the row pitch in bytes."""
    for b in (16, 8, 4):
        if (pitch_elems * eb) % b == 0:
            return b
    return 0


# ---------------------------------------------------------------------------------------------
# dwpw_conv2d
# ---------------------------------------------------------------------------------------------

def halo_pitch(cc: int, eb: int) -> int:
    """stages::halo_pitch (depthwise.cuh): a halo pixel narrower than a 128-byte bank row is padded by 16 bytes."""
    return cc + 16 // eb if cc * eb < 128 else cc


def _halo_cc(t, ih, iw, eb, cc_max, padded=False):
    """The plans' channel chunk: the widest of cc_max, cc_max / 2, ... whose two halos fit the budget
    (padded: at halo_pitch)."""
    cc = cc_max
    while cc > 8 and 2 * ih * iw * (halo_pitch(cc, eb) if padded else cc) * eb > t["halo_budget"]:
        cc //= 2
    return cc


def model_dwpw(c, n, eb, dev):
    t = TILING["dwpw_conv2d"]
    k, s, C, K = c["kernel"], c["stride"], c["C"], c["K"]
    th, tw = t["th"], t["tw"]
    ih, iw = (th - 1) * s + k, (tw - 1) * s + k
    cpad = _up(C, t["cg"])  # reduction padding CG = 32 (an odd multiple of 32: chunks of <= 32 channels)
    cc = _halo_cc(t, ih, iw, eb, t["cc_max"] if cpad % t["bk"] == 0 else t["cg"], padded=True)
    ldh = halo_pitch(cc, eb)
    # resident A tile: 64 x (ca + 8) T next to 2 halos / 2 slabs, the fp32 staging tile and taps
    fixed = 2 * max(ih * iw * ldh * eb, t["bn"] * (t["bk"] + 8) * eb) + 64 * t["ldc"] * 4 + k * k * cc * eb + cc * 4
    resident = 64 * (cpad + 8) * eb + fixed <= dev["smem_optin"]
    tiles = n * _cdiv(c["Ho"], th) * _cdiv(c["Wo"], tw)
    nkt = _cdiv(K, t["bn"])
    per = Count()
    xbytes = vec_bytes(C, eb)
    lda = cpad + 8
    for j in range(cpad // cc):
        _dw_chunk(k, s, th, tw, t["rw_k3"] if k == 3 else t["rw"], cc, iw, ih, eb, ("smem", lda, 0), xbytes, per,
                  ldi=ldh)
    if t.get("wgmma"):  # 128-channel output tiles, warpgroup g: m64 x n64 over columns 64 g.. (skipped past K)
        sk = t["sk_wg"]
        for n0 in range(0, K, 128):
            wgs = _cdiv(min(128, K - n0), 64)
            frag, flops = gemm_slab_wgmma(64, wgs * 64, sk, 1, wgs)
            per.lsu["pw weight slabs (cp.async)"] += cpad // sk * lin(wgs * 64 * sk * eb)
            per.lsu["pw ldmatrix"] += cpad // sk * frag
            per.tc_wg += cpad // sk * flops
            per.lsu["epilogue"] += lin(64 * _up(min(128, K - n0), 8) * 4)  # staged n8 chunks < K only
    else:  # 64-deep slabs, the last one 32 deep when cpad is an odd multiple of 32 (its copy still 64 wide)
        for d in [t["bk"]] * (cpad // t["bk"]) + [cpad % t["bk"]] * (cpad % t["bk"] > 0):
            frag, flops = gemm_slab(64, t["bn"], d, t["wm"], t["wn"])
            per.lsu["pw weight slabs (cp.async)"] += nkt * lin(t["bn"] * t["bk"] * eb)
            per.lsu["pw ldmatrix"] += nkt * frag
            per.tc += nkt * flops
        per.lsu["epilogue"] += nkt * lin(64 * t["bn"] * 4)  # accumulators -> fp32 staging (float2)
    valid = c["Ho"] * c["Wo"] / (_cdiv(c["Ho"], th) * _cdiv(c["Wo"], tw))  # mean valid rows per tile
    per.lsu["epilogue"] += store_tile(valid, K, K % 8 == 0, c["residual"])
    out = Count().add(per, tiles)
    if not resident:  # dw recomputed per output tile (never at catalogue shapes in fp16)
        out.lsu["dw compute (smem)"] *= nkt
        out.fma *= nkt
    return "dwpw_conv2d_kernel" + ("" if resident else " (C split: dw recomputed)"), out, 1.0


# ---------------------------------------------------------------------------------------------
# inverted_residual
# ---------------------------------------------------------------------------------------------

EC = TILING["inverted_residual"]["ec"]
LDA = TILING["inverted_residual"]["lda"]
HP = TILING["inverted_residual"]["hp"]
_KFUSED, _KSE1, _KSE2 = 0, 1, 2
SUM_GROUPS = EC // 8                                          # ir::kSumGroups
SUM_ROWS_MAX = TILING["inverted_residual"]["nt"] // SUM_GROUPS  # ir::kSumRowsMax (42)


def _sum_rows(p: int) -> int:
    """ir::sum_rows: SE pass 1's row phases for a tile of p pixels."""
    return min(p // 4, SUM_ROWS_MAX)


def _ir_layout_bytes(mode, expand, k, s, tile, cp, nbr, eb):
    """ir_layout<T>(...).bytes (inverted_residual_kernel.cuh)."""
    ih = iw = (tile - 1) * s + k
    mx, mp, ldx = _up(ih * iw, 16), _up(tile * tile, 16), cp + 8
    off = 0

    def take(b):
        nonlocal off
        off = (off + 127) & ~127
        o = off
        off += int(b)
        return o

    if mode != _KSE2:
        take(4 * mx)
        take(eb * k * k * EC)
        take(4 * EC)
        take(4 * EC)
        if expand:
            take(eb * mx * ldx)
        if mode == _KSE1:
            take(4 * SUM_ROWS_MAX * EC)  # red: the channel sums' row phases
    else:
        take(4 * EC)  # gs: the chunk's SE gate
    u = (off + 127) & ~127
    if mode != _KSE2:
        take(eb * ih * iw * HP)
    take(eb * mp * LDA)
    we_buf = _up(eb * EC * ldx, 128) if expand and mode != _KSE2 else 0
    take(2 * we_buf)
    wp_buf = _up(eb * nbr * LDA, 128) if mode != _KSE1 else 0
    take(2 * wp_buf)
    end = off
    if mode != _KSE1:
        off = u
        take(4 * mp * (nbr + 8))
        end = max(end, off)
    return end


def _proj_wmp(tile, nt8p):
    """ir::proj_wmp: warps along M of the project GEMM (halved for the wide variants, nt8p > 4)."""
    mtiles = _up(tile * tile, 16) // 16
    wmp = 8 if mtiles >= 8 else (4 if mtiles >= 4 else mtiles)
    return wmp // 2 if nt8p > 4 and wmp > 1 else wmp


def _nb_of(tile, nt8p):
    return 8 // _proj_wmp(tile, nt8p) * nt8p * 8


def ir_plan(c, mode, eb, smem_max):
    """ir::plan: (tile, nt8p, nb, npass)."""
    k, s, K = c["kernel"], c["stride"], c["K"]
    fast = k in (3, 5) and s in (1, 2)
    cp = _up(c["C"], 16)
    cand = []
    if fast and s == 1 and c["Ho"] >= 9 and c["Wo"] >= 9 and (mode == _KSE1 or (mode == _KFUSED and K <= 96)):
        cand.append((14, 4 if mode == _KSE1 or K <= 32 else 6))
    if mode != _KSE1 and K > 64:
        cand.append((8, 10))
    cand += [(8, 4), (4, 2)]
    for tile, nt8p in cand:
        nbr = min(_nb_of(tile, nt8p), _up(K, 16))
        if _ir_layout_bytes(mode, bool(c["expand"]), k, s, tile, cp, nbr, eb) <= smem_max:
            nb = _nb_of(tile, nt8p)
            return tile, nt8p, nb, (1 if mode == _KSE1 else _cdiv(K, nb))
    raise ValueError(f"no inverted residual variant fits for {c}")


def _tile_cfg(tile, nt8p):
    p = tile * tile
    mp = _up(p, 16)
    mtiles = mp // 16
    wmp = _proj_wmp(tile, nt8p)
    wnp = 8 // wmp
    return dict(P=p, MP=mp, MTILES=mtiles, WMP=wmp, WNP=wnp, MTW=_cdiv(mtiles, wmp), NB=wnp * nt8p * 8)


def _warp_tile_mma(cfg, nt8p, kpass, ksteps):
    """The project WarpTile of every warp over ksteps 16-deep steps: (ldmatrix wavefronts, FLOPs, busy
    warps): per k step mt A ldmatrix.x4, nt8 // 2 B .x4 and an .x2 (2 wavefronts) for an odd nt8; a warp
    with no m or n8 tiles issues nothing (WarpTile::mma returns)."""
    wf = flops = busy = 0
    for w in range(8):
        wm, wn = w % cfg["WMP"], w // cfg["WMP"]
        mt = min(cfg["MTW"], _cdiv(cfg["MTILES"] - wm, cfg["WMP"]))
        nt8 = max(0, min(nt8p, _cdiv(kpass, 8) - wn * nt8p))
        if mt <= 0 or nt8 <= 0:
            continue
        wf += ksteps * (4 * (mt + nt8 // 2) + 2 * (nt8 % 2))
        flops += 2.0 * ksteps * 16 * mt * 16 * nt8 * 8
        busy += 1
    return wf, flops, busy


@functools.lru_cache(maxsize=None)
def _acc_staging_wf(ldc: int) -> int:
    """WarpTile::for_each -> cs: one fp32 pair STS.64 per (m tile, n8 tile, half) (ldc = nbr + 8)."""
    return smem_wf([((lane >> 2) * ldc + (lane & 3) * 2) * 4 for lane in range(32)], 8)


@functools.lru_cache(maxsize=None)
def _expand_epilogue_wf(eb: int) -> tuple:
    """Expand epilogue -> hid: (per (m tile, n8 tile) two packed pair STS (2 eb bytes per lane; rows g and
    g + 8; halo pixels of a row are consecutive in hid, pitch HP), per (warp pass, n8 tile) one LDS.64 of
    the bias pair (WarpTile::init_cols)); the xpos loads, two per m tile, are added by the caller."""
    sts = sum(smem_wf([(((lane >> 2) + 8 * h) * HP + (lane & 3) * 2) * eb for lane in range(32)], 2 * eb)
              for h in (0, 1))
    bias = smem_wf([(lane & 3) * 2 * 4 for lane in range(32)], 8)
    return sts, bias


@functools.lru_cache(maxsize=None)
def _hid_zero_fill_wf(ih, iw, y_lo, y_hi, x_lo, x_hi, eb) -> int:
    """The zero fill of hid's halo pixels outside the image: 16-byte STS of the EC channels of those
    pixels only (pitch HP), i = tid .. IH IW VP step NT, simulated per warp instruction."""
    vp = EC * eb // 16
    tot = 0
    for base in range(0, ih * iw * vp, 32):
        addrs = []
        for i in range(base, min(base + 32, ih * iw * vp)):
            q = i // vp
            y, x = divmod(q, iw)
            out = y < y_lo or y >= y_hi or x < x_lo or x >= x_hi
            addrs.append((q * HP * eb + (i % vp) * 16) if out else None)
        tot += smem_wf(addrs, 16)
    return tot


@functools.lru_cache(maxsize=None)
def _se_sums_wf(p: int, ecl: int) -> float:
    """SE pass 1's per-tile channel sums beyond the h copy (which adds them in registers): thread (q, g) =
    (tid / 6, tid % 6), tid < 6 R (R = _sum_rows(p)), two STS.128 of its 8 sums into red[q][EC] (channels
    8 g + 4 h .. at slots h EC / 2 + 4 g ..); after a barrier thread t < EC adds slot t's R partials (LDS.32)
    when its channel is < ecl."""
    tot = 0.0
    rows = _sum_rows(p)
    n = SUM_GROUPS * rows
    for w0 in range(0, n, 32):
        lanes = [(t // SUM_GROUPS, t % SUM_GROUPS) for t in range(w0, min(n, w0 + 32))]
        for h in (0, 1):  # red[q]: channels 8 g + 4 h .. at slot h EC / 2 + 4 g ..
            tot += smem_wf([(q * EC + h * (EC // 2) + 4 * g) * 4 for q, g in lanes], 16)
    for w0 in range(0, EC, 32):  # thread t < EC adds slot t (channel (sl / 4) 8 + 4 hi + sl % 4) if < ecl
        ts = [t for t in range(w0, min(EC, w0 + 32))
              if ((t % (EC // 2)) >> 2) * 8 + (t >= EC // 2) * 4 + (t % (EC // 2) & 3) < ecl]
        tot += rows * smem_wf([t * 4 for t in ts], 4)
    return tot


@functools.lru_cache(maxsize=None)
def _se_fc_wf(rows: int, depth: int, eb: int, imgs: int = 1) -> float:
    """se_mlp_kernel's se_rows over a rows x depth row-major weight matrix, one block of imgs images,
    per warp pass of R = 8 rows: per 16-byte step (lanes along depth, 8 or 4 elements each; scalar
    2/4-byte steps when depth * eb % 16 != 0) each image's fp32 slice of v (LDS.128s, once per 8 rows;
    8-element slices read half-swapped on lanes 4-7 of 8, conflict-free) and one global load per valid
    row, shared by the images (distinct 128-byte lines, 128-byte aligned matrix); then per image 9
    shuffles (counted as one wavefront each) and the 8-lane bias load + store of the 8 results."""
    r = TILING["inverted_residual"]["se_rows"]
    vec = (depth * eb) % 16 == 0
    v = 16 // eb if vec else 1
    tot = 0.0
    for r0 in range(0, rows, r):
        for d0 in range(0, depth, 32 * v):
            lanes = [d0 + lane * v for lane in range(32) if d0 + lane * v < depth]
            if not vec:
                tot += imgs * smem_wf([d * 4 for d in lanes], 4)
            for q in range(v // 4 if vec else 0):  # lanes 4-7 of 8 swap the order of their two halves
                tot += imgs * smem_wf([d * 4 + 16 * (q ^ ((d // v >> 2) & 1 if v == 8 else 0)) for d in lanes], 16)
            for row in range(r0, min(rows, r0 + r)):
                tot += gmem_wf([(row * depth + d) * eb for d in lanes], v * eb)
        tot += imgs * (9 + 2)
    return tot


def _wg_strip_mma(nblk: int, kpass: int, ksteps: int) -> tuple:
    """stages::WgStrip over ksteps k steps (SE pass 2 on wgmma): warpgroup wg issues its blocks of
    m64n16k16 below ceil(kpass / 16) (blocks [wg nblk, (wg + 1) nblk)); per k step each busy warpgroup's 4
    warps load A (one ldmatrix.x4 each) and the tensor cores read each issued block of B once (16 x 16
    halves: 4 wavefronts). (wavefronts, FLOPs, busy warps, n8 tiles stored by the busy warps)."""
    nb = [max(0, min(nblk, _cdiv(kpass, 16) - wg * nblk)) for wg in range(2)]
    busy = 4 * sum(1 for b in nb if b)
    wf = ksteps * (busy * 4 + sum(nb) * 16 * 16 * 2 / 128)
    return wf, 2.0 * ksteps * 64 * 16 * 16 * sum(nb), busy, 4 * 2 * sum(nb)


def _ir_t8_wgmma(cfg, eb) -> bool:
    """ir_kernel's kWgProj: the T8 project GEMM (fused and SE pass 2) on wgmma in the sm_90a build."""
    return eb == 2 and cfg["P"] == 64 and TILING["inverted_residual"]["t8_wgmma"]


def _ir_project_pass(cfg, nt8p, nbr, kpass, E, valid, K, residual, eb, cnt, se_pass2=False):
    """One project pass of a work item (fused, or SE pass 2 with its h tile and gated Wp): weight
    chunks, WarpTile ldmatrix + mma per hidden chunk (T8 in fp16/bf16: WgStrip on wgmma; both run the
    chunk's ceil(ecl / 16) k steps), accumulator staging and store_tile."""
    wg = _ir_t8_wgmma(cfg, eb)
    for ch in range(_cdiv(E, EC)):
        ecl = min(EC, E - ch * EC)
        if se_pass2:
            cnt.lsu["SE pass 2 loads"] += lin(cfg["MP"] * EC * eb) + lin(nbr * EC * eb)
            cnt.lsu["SE pass 2 gate scale"] += 2 * scalar(EC)  # gs: gate LDG + STS
        else:
            cnt.lsu["weights (cp.async)"] += lin(nbr * EC * eb)
        if wg:
            ks = _cdiv(ecl, 16)
            wf, fl, busy, n8_tiles = _wg_strip_mma(10 if cfg["NB"] > 64 else (4 if se_pass2 else 2), kpass, ks)
            cnt.tc_wg += fl
        else:
            wf, fl, busy = _warp_tile_mma(cfg, nt8p, kpass, _cdiv(ecl, 16))
            cnt.tc += fl
            ks = _cdiv(ecl, 16)
        cnt.lsu["project ldmatrix"] += wf
        if se_pass2:  # mma<true>: 2 LDS.64 of gs per k step and busy warp
            cnt.lsu["SE pass 2 gate scale"] += busy * ks * 2
    if not wg:
        n8_tiles = sum(max(0, min(nt8p, _cdiv(kpass, 8) - (w // cfg["WMP"]) * nt8p)) *
                       min(cfg["MTW"], _cdiv(cfg["MTILES"] - w % cfg["WMP"], cfg["WMP"])) for w in range(8))
    cnt.lsu["epilogue"] += n8_tiles * 2 * _acc_staging_wf(nbr + 8)
    cnt.lsu["epilogue"] += store_tile(valid, kpass, K % 8 == 0, residual)


def _ir_dw_strip(tile: int, nt8p: int, k: int, s: int) -> tuple:
    """(RW, fast path) of ir_kernel's Depthwise as dispatch_ks instantiates it (kRw14 / kRw8)."""
    t = TILING["inverted_residual"]
    if tile == 14 and k in (3, 5) and s == 1:
        return t["rw14"][0 if nt8p <= 4 else 1], True
    if tile == 8 and k in (3, 5) and s in (1, 2):
        return t["rw8"][0 if nt8p <= 4 else 1], True
    return 2, False


def model_ir(c, n, eb, dev):
    t = TILING["inverted_residual"]
    k, s, C, E, K = c["kernel"], c["stride"], c["C"], c["hidden"], c["K"]
    expand, se = bool(c["expand"]), bool(c["se"])
    Ho, Wo, H, W = c["Ho"], c["Wo"], c["H"], c["W"]
    pad = k // 2
    cp = _up(C, 16)
    nchunks = _cdiv(E, EC)
    chunk_w = [_up(min(EC, E - ch * EC), 16) for ch in range(nchunks)]  # the kernel's cw per chunk
    total = Count()
    sms = dev["sms"] * t["ctas_per_sm"]
    launches = []  # (LSU wavefronts, share of SMs busy) per persistent launch

    def util(items):  # each of min(items, SMs) persistent CTAs runs ceil(items / grid) items
        grid = min(items, sms)
        return items / (_cdiv(items, grid) * sms)

    def front(tile, nt8p, count):  # steps 0-2 of one work item, summed over one image's tiles
        ih = iw = (tile - 1) * s + k
        tiles_h, tiles_w = _cdiv(Ho, tile), _cdiv(Wo, tile)
        cfg = _tile_cfg(tile, nt8p)
        # EMT (the kernel's compile-time cap; 4 only on the tensor-core path, eb == 2) and the run-time
        # m tiles per pass q = clamp(ceil(mtiles / 8), 2, EMT)
        emt = 4 if eb == 2 and cfg["MTW"] * nt8p <= 4 else 2
        sts_wf, bias_wf = _expand_epilogue_wf(eb)
        for th in range(tiles_h):
            for tw in range(tiles_w):
                h0, w0 = th * tile * s - pad, tw * tile * s - pad
                rh = max(0, min(ih, H - h0) - max(0, -h0))
                rw_ = max(0, min(iw, W - w0) - max(0, -w0))
                mx = rh * rw_
                mxp = _up(mx, 16)
                count.lsu["x halo / xpos"] += scalar(_up(ih * iw, 16))
                if expand:
                    if mx < ih * iw:
                        y_lo, x_lo = max(0, -h0), max(0, -w0)
                        count.lsu["hid zero fill"] += _hid_zero_fill_wf(ih, iw, y_lo, min(ih, H - h0), x_lo,
                                                                        min(iw, W - w0), eb)
                    xb = vec_bytes(C, eb)
                    count.lsu["x halo / xpos"] += lin(mxp * cp * eb) if xb >= 4 else 2 * scalar(mxp * cp)
                    mtiles = mxp // 16
                    q = min(emt, max(2, _cdiv(mtiles, 8)))
                    for mi in range(0, mtiles, q):
                        mte = min(q, mtiles - mi)
                        # chunks x ksteps x (mte A + 3 B ldmatrix.x4): all EC columns, a short chunk too
                        count.lsu["expand ldmatrix"] += nchunks * (cp // 16) * (mte + EC // 16) * 4
                        count.tc += nchunks * 2.0 * mte * 16 * cp * EC
                        count.lsu["expand epilogue (hid)"] += nchunks * (mte * ((EC // 8) * sts_wf + 2) +
                                                                         (EC // 8) * bias_wf)
                    count.lsu["weights (cp.async)"] += nchunks * lin(EC * cp * eb)
                    count.lsu["dw taps"] += nchunks * 2 * scalar(EC)  # expand bias
                rw, fast = _ir_dw_strip(tile, nt8p, k, s)
                for cw in chunk_w:  # a short last chunk computes its channels rounded to 16
                    cwk = cw if fast and eb == 2 else EC
                    narrow = tile == 14 and cwk == 16 and not expand  # a 16-channel x chunk at pitch 24
                    _dw_chunk(k, s, tile, tile, rw, EC, iw, ih, eb, ("smem", LDA, 0),
                              vec_bytes(C, eb), count, halo=not expand, ldi=24 if narrow else HP, fast=fast,
                              cw=cwk, copy_cc=16 if narrow else EC)

    if not se:
        tile, nt8p, nb, npass = ir_plan(c, _KFUSED, eb, dev["smem_optin"])
        cfg = _tile_cfg(tile, nt8p)
        img = Count()
        for p in range(npass):
            front(tile, nt8p, img)
        tiles_img = _cdiv(Ho, tile) * _cdiv(Wo, tile)
        back = Count()
        for p in range(npass):
            _ir_project_pass(cfg, nt8p, min(nb, _up(K, 16)), min(nb, K - p * nb), E, Ho * Wo / tiles_img, K,
                             c["residual"], eb, back)
        total.add(img, n).add(back, n * tiles_img)
        launches.append((sum(total.lsu.values()), util(n * tiles_img * npass)))
        path = f"ir_kernel T{tile} NB{nb}" + (f" x{npass} passes" if npass > 1 else "")
    else:
        # pass 1: steps 0-2, h tile -> hbuf (16-byte), per-tile channel sums
        tile, nt8p, _, _ = ir_plan(c, _KSE1, eb, dev["smem_optin"])
        img = Count()
        front(tile, nt8p, img)
        tiles_img = _cdiv(Ho, tile) * _cdiv(Wo, tile)
        p1 = Count()
        P = tile * tile
        valid = Ho * Wo / tiles_img
        for ch in range(nchunks):
            ecl = min(EC, E - ch * EC)
            # lds16 + stg16 per 8 channels (summed in registers on the way), red, the partial STG
            p1.lsu["SE h store + sums"] += lin(valid * _up(ecl, 8) * eb * 2) + _se_sums_wf(P, ecl) + lin(ecl * 4)
        total.add(img, n).add(p1, n * tiles_img)
        launches.append((sum(total.lsu.values()), util(n * tiles_img)))
        npix = n * Ho * Wo
        total.hbm_extra += npix * E * eb * 2                 # h written by pass 1, read by pass 2
        total.hbm_extra += n * tiles_img * E * 4 * 2         # partial sums written, read by se_mlp
        total.hbm_extra += n * E * 4 * 2                     # gate
        # se_mlp: partial sums (coalesced fp32), FC1 (S x E) and FC2 (E x S) by se_rows
        S = c["se"]
        # ir::se_mlp_imgs: images per block only past one block per SM (a block of 4 does ~2x one's work)
        imgs = max(1, min(t["se_imgs"], n // dev["sms"]))
        blocks = _cdiv(n, imgs)
        mlp = lin(n * tiles_img * E * 4) + blocks * (_se_fc_wf(S, E, eb, imgs) + _se_fc_wf(E, S, eb, imgs))
        total.lsu["SE mlp"] += mlp
        launches.append((mlp, util(blocks)))
        total.fma += n * 2 * S * E
        # pass 2: ap = h tile, Wp chunk x gate, project GEMM, epilogue
        tile2, nt8p2, nb2, npass2 = ir_plan(c, _KSE2, eb, dev["smem_optin"])
        cfg = _tile_cfg(tile2, nt8p2)
        tiles2 = _cdiv(Ho, tile2) * _cdiv(Wo, tile2)
        p2 = Count()
        nbr = min(nb2, _up(K, 16))
        for p in range(npass2):
            _ir_project_pass(cfg, nt8p2, nbr, min(nb2, K - p * nb2), E, Ho * Wo / tiles2, K, c["residual"], eb, p2,
                             se_pass2=True)
        total.add(p2, n * tiles2)
        launches.append((sum(p2.lsu.values()) * n * tiles2, util(n * tiles2 * npass2)))
        if c["residual"]:
            total.hbm_extra += n * C * H * W * eb            # x read again by pass 2 (a later launch)
        path = f"ir_kernel<SePass1> T{tile} + se_mlp + ir_kernel<SePass2> T{tile2} NB{nb2}"
    # share of SMs busy, weighted by each launch's LSU work (the ceiling that binds these blocks)
    return path, total, sum(w for w, _ in launches) / sum(w / u for w, u in launches)


# ---------------------------------------------------------------------------------------------
# gconv family (group_conv1x1, ShuffleNet units)
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _scatter_row_wf(mul: int, shuffle: int, kvalid: int, ktot: int, eb: int) -> float:
    """Scalar channel-fastest epilogue stores of one pixel row of a 64-channel tile (gconv's epilogue,
    NHWC; two warp instructions of 32 channels): channel n lands at out_mul * shuffle_dst(n)."""
    tot = 0
    for half in (0, 32):
        addrs = []
        for lane in range(32):
            n_ = half + lane
            if n_ >= kvalid:
                addrs.append(None)
                continue
            oc = n_
            if shuffle:
                cpg = ktot // shuffle
                oc = (n_ % cpg) * shuffle + n_ // cpg
            addrs.append(mul * oc * eb)
        tot += gmem_wf(addrs, eb)
    return tot


def gconv_plain(npix, cg, kg, groups, eb, x_pitch, x_c0, out_pitch, out_mul=1, shuffle_out=0, residual=False) -> Count:
    """One plain gconv launch: per (128-pixel block, group) the 128-channel output tiles."""
    t = TILING["group_conv1x1"]
    pbn, wcol = t["pbn"], t["pbn"] // t["wn"]
    nk = _cdiv(cg, t["bk"])
    per = Count()
    xb = min(vec_bytes(x_pitch, eb), vec_bytes(x_c0, eb) if x_c0 else 16, vec_bytes(cg, eb))
    wb = vec_bytes(cg, eb)
    a_bytes, w_bytes = t["bm"] * t["bk"] * eb, pbn * t["bk"] * eb
    vec = out_mul == 1 and not shuffle_out and kg % 8 == 0 and out_pitch % 8 == 0
    for n0 in range(0, kg, pbn):  # one CTA per tile; only the warp columns covering valid channels run
        ncols = min(pbn, kg - n0)
        active = _cdiv(ncols, wcol)
        per.lsu["pw A (x) copy"] += nk * (lin(a_bytes) if xb >= 4 else 2 * scalar(a_bytes / eb))
        per.lsu["pw weights (cp.async)"] += nk * (lin(w_bytes) if wb >= 4 else 2 * scalar(w_bytes / eb))
        if t.get("wgmma"):  # 2 warpgroups of m64 x n128 (m64 x n64 when <= 64 columns are valid)
            nw = 64 if ncols <= 64 else pbn
            active = nw // wcol
            frag, fl = gemm_slab_wgmma(t["bm"], nw, t["bk"], t["bm"] // 64, 1)
            per.tc_wg += nk * fl
        else:
            frag, fl = gemm_slab(t["bm"], active * wcol, t["bk"], t["wm"], active)
            per.tc += nk * fl
        per.lsu["pw ldmatrix"] += nk * frag
        per.lsu["epilogue"] += lin(t["bm"] * active * wcol * 4)  # accumulators -> Cs
        for m0 in range(0, ncols, t["bn"]):  # epilogue passes of 64 channels
            kv = min(t["bn"], ncols - m0)
            if vec:
                per.lsu["epilogue"] += store_tile(t["bm"], kv, True, residual)
            else:
                per.lsu["epilogue"] += scalar(t["bm"] * kv) * (1 + 1 + residual)  # LDS Cs, LDG bias (+res)
                per.lsu["epilogue"] += t["bm"] * _scatter_row_wf(out_mul, shuffle_out, kv, kg * groups, eb)
    return Count().add(per, _cdiv(npix, t["bm"]) * groups)


def gconv_dw(n, H, W, Ho, Wo, s, cg, kg, groups, eb, x_pitch, out_pitch, out_mul=1, residual=False,
             side=None, side_c=0, side_pitch=0) -> Count:
    """One DW gconv launch (dw3x3 once per 8 x 8 tile into a resident A tile, then all Kg)."""
    t = TILING["group_conv1x1"]
    th, tw = t["th"], t["tw"]
    ih, iw = (th - 1) * s + 3, (tw - 1) * s + 3
    cc = _halo_cc(t, ih, iw, eb, t["cc_max"], padded=True)
    cpad = _up(cg, t["bk"])
    tiles = n * _cdiv(Ho, th) * _cdiv(Wo, tw)
    nkt = _cdiv(kg, t["bn"])
    xb = min(vec_bytes(x_pitch, eb), vec_bytes(cg, eb) if groups > 1 else 16)
    per = Count()
    for j in range(cpad // cc):
        _dw_chunk(3, s, th, tw, t["rw"], cc, iw, ih, eb, ("smem", cpad + 8, 0), xb, per, ldi=halo_pitch(cc, eb))
    slabs = cpad // t["bk"]
    wb = vec_bytes(cg, eb)
    dbn, wcol = t["dbn"], t["dbn"] // t["dwn"]  # output channels per tile, per warp column
    for n0 in range(0, kg, dbn):  # output tiles: only the warp columns covering valid channels run
        active = _cdiv(min(dbn, kg - n0), wcol)
        if t.get("wgmma"):  # warpgroup g: m64 x n64 over columns 64 g.. (skipped past Kg)
            wgs = _cdiv(min(dbn, kg - n0), 64)
            active = _cdiv(wgs * 64, wcol)
            frag, fl = gemm_slab_wgmma(64, wgs * 64, t["bk"], 1, wgs)
            per.tc_wg += slabs * fl
        else:
            frag, fl = gemm_slab(64, active * wcol, t["bk"], t["dwm"], active)
            per.tc += slabs * fl
        slab_bytes = active * wcol * t["bk"] * eb  # weight rows up to the last active warp column
        per.lsu["pw weights (cp.async)"] += slabs * (lin(slab_bytes) if wb >= 4 else 2 * scalar(slab_bytes / eb))
        per.lsu["pw ldmatrix"] += slabs * frag
    passes = _cdiv(kg, t["bn"])  # 64-channel Cs passes (a DBN tile drains in two)
    per.lsu["epilogue"] += passes * lin(64 * t["bn"] * 4)
    valid = Ho * Wo / (_cdiv(Ho, th) * _cdiv(Wo, tw))
    vec = out_mul == 1 and kg % 8 == 0 and out_pitch % 8 == 0
    # side_pair (plan): the s1 passthrough copy interleaved with the branch in the epilogue
    pair = (side == "copy" and out_mul == 2 and s == 1 and groups * kg == side_c and kg % 4 == 0
            and (groups == 1 or kg % 8 == 0) and out_pitch % 8 == 0 and side_pitch % 8 == 0 and not residual)
    if pair:
        # per 8 GEMM channels 2 LDS.128 of Cs, 16-byte bias and side_x LDG, two STG.128; the Kg % 8 == 4
        # tail (pair_store<T, 4>: one lane per row, 4 rows per warp): one LDS.128 (distinct banks across
        # the rows: 1), an 8-byte bias LDG (one line: 1), an 8-byte side_x LDG and one STG.128 (a line
        # per row: 4 + 4) -- 10 per 4 rows
        per.lsu["epilogue"] += lin(valid * (kg // 8) * (32 + 16 + 16 + 32))
        if kg % 8:
            per.lsu["epilogue"] += valid * 2.5
    elif vec:
        per.lsu["epilogue"] += store_tile(valid, kg, True, residual)
    else:
        per.lsu["epilogue"] += scalar(valid * kg) * (1 + 1 + residual)
        per.lsu["epilogue"] += valid * sum(_scatter_row_wf(out_mul, 0, min(64, kg - m0), kg, eb)
                                           for m0 in range(0, kg, 64))
    out = Count().add(per, tiles * groups)
    if side and not pair:  # side-branch CTAs: 8-channel loads when side_x's C % 8 == 0, stores interleaved or 16-byte
        sc = Count()
        vec_in = side_pitch % 8 == 0
        taps = 9 if side == "pool" else 1
        items = valid * side_c / 8
        if vec_in:
            sc.lsu["side branch"] += lin(items * 16 * taps)
            if out_mul == 1 and out_pitch % 8 == 0:
                sc.lsu["side branch"] += lin(items * 16)
            else:  # 8 scalar stores per item, lanes 8 per pixel at 16-channel (x out_mul) spacing
                addrs = [((lane // 8) * out_pitch + out_mul * (lane % 8) * 8) * eb for lane in range(32)]
                sc.lsu["side branch"] += (items / 32) * 8 * gmem_wf(addrs, eb)
        else:
            sc.lsu["side branch"] += scalar(valid * side_c) * (taps + 1)
        out.add(sc, tiles)
    return out


def model_gconv(c, n, eb, dev):
    g = c["groups"]
    npix = n * c["H"] * c["W"]
    cnt = gconv_plain(npix, c["C"] // g, c["K"] // g, g, eb, c["C"], 0, c["K"], shuffle_out=c["shuffle_out"])
    return "gconv_kernel (plain)", cnt, 1.0


def model_v1(c, n, eb, dev):
    C, M, K, g, g1, s = c["C"], c["hidden"], c["K"], c["groups"], c["first_groups"], c["stride"]
    H, W, Ho, Wo = c["H"], c["W"], c["Ho"], c["Wo"]
    cnt = gconv_plain(n * H * W, C // g1, M // g1, g1, eb, C, 0, M, shuffle_out=g if g > 1 else 0)
    out_c = C if s == 1 else C + K
    cnt.add(gconv_dw(n, H, W, Ho, Wo, s, M // g, K // g, g, eb, M, out_c, residual=s == 1,
                     side="pool" if s == 2 else None, side_c=C, side_pitch=C))
    cnt.hbm_extra += 2.0 * n * H * W * M * eb  # h written by gconv1, read by gconv2
    if s == 1:
        cnt.hbm_extra += n * C * H * W * eb    # x read again (residual) by the second launch
    else:
        cnt.hbm_extra += n * C * H * W * eb    # x read again by the avg-pool side CTAs
    return "gconv (gconv1) + gconv<DW> (gconv2" + (" + avg-pool side)" if s == 2 else ")"), cnt, 1.0


def model_v2(c, n, eb, dev):
    C, B, s = c["C"], c["hidden"], c["stride"]
    H, W, Ho, Wo = c["H"], c["W"], c["Ho"], c["Wo"]
    cin2 = C // 2 if s == 1 else C
    cnt = gconv_plain(n * H * W, cin2, B, 1, eb, C, C // 2 if s == 1 else 0, B)
    cnt.add(gconv_dw(n, H, W, Ho, Wo, s, B, B, 1, eb, B, 2 * B, out_mul=2,
                     side="copy" if s == 1 else None, side_c=B, side_pitch=C))
    cnt.hbm_extra += 2.0 * n * H * W * B * eb  # h written by pw1, read by the DW launch
    path = "gconv (pw1) + gconv<DW> (dw + pw2, interleaved store" + (" + passthrough side)" if s == 1 else ")")
    if s == 2:
        cnt.add(gconv_dw(n, H, W, Ho, Wo, 2, C, B, 1, eb, C, 2 * B, out_mul=2))
        cnt.hbm_extra += n * C * H * W * eb    # x read again by branch1 (a later launch)
        path += " + gconv<DW> (branch1)"
    return path, cnt, 1.0


# ---------------------------------------------------------------------------------------------
# channel_shuffle, pwdw_conv2d, depthwise_conv2d
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _shuffle_warp_wf(C: int, groups: int, eb: int) -> float:
    """NHWC vector path: one warp = 32 output vectors (8 channels each): 8 scalar gathers + 1 STG.128.
    Averaged over the first few warps (rows wrap every C / 8 vectors)."""
    cpg = C // groups
    tot = 0.0
    warps = max(1, min(16, C // 8))
    for w in range(warps):
        for j in range(8):
            addrs = []
            for lane in range(32):
                base = (w * 32 + lane) * 8
                row, oc = divmod(base + j, C)
                addrs.append((row * C + (oc % groups) * cpg + oc // groups) * eb)
            tot += gmem_wf(addrs, eb)
        tot += 4
    return tot / warps


def model_shuffle(c, n, eb, dev):
    C, g = c["C"], c["groups"]
    elems = n * C * c["H"] * c["W"]
    cnt = Count()
    if C % TILING["channel_shuffle"]["vec"] == 0:
        cnt.lsu["shuffle"] += elems / 256 * _shuffle_warp_wf(C, g, eb)
    else:  # one element per thread: a gathered scalar load and a coalesced scalar store
        cpg = C // g
        addrs = [((l // C) * C + ((l % C) % g) * cpg + (l % C) // g) * eb for l in range(32)]
        cnt.lsu["shuffle"] += elems / 32 * (1 + gmem_wf(addrs, eb))
    return "shuffle_nhwc_kernel", cnt, 1.0


def model_pwdw(c, n, eb, dev):
    t = TILING["pwdw_conv2d"]
    k, s, C, M, K = c["kernel"], c["stride"], c["C"], c["hidden"], c["K"]
    concat = K == 2 * M
    th, tw = t["th"], t["tw"]
    ih, iw = (th - 1) * s + k, (tw - 1) * s + k
    hp = ih * iw
    tiles = n * _cdiv(c["Ho"], th) * _cdiv(c["Wo"], tw)
    ctas = tiles * _cdiv(M, t["bn"])
    per = Count()
    xb = vec_bytes(C, eb)
    blocks = _cdiv(hp, t["bm"])
    slabs = _cdiv(C, t["bk"])
    slab = t["bm"] * t["bk"] * eb
    a_copy = lin(slab) if xb >= 4 else 2 * scalar(slab / eb)
    per.lsu["pw A (x halo) + weights"] += blocks * slabs * (a_copy + lin(slab))
    frag, fl = gemm_slab(t["bm"], t["bn"], t["bk"], t["wm"], t["wn"])
    per.lsu["pw ldmatrix"] += blocks * slabs * frag
    per.tc += blocks * slabs * fl
    per.lsu["h epilogue (scalar)"] += blocks * (lin(t["bm"] * t["bn"] * 4)) + scalar(hp * t["bn"]) * 3
    pitch = K
    if concat:
        per.lsu["concat stores"] += scalar(th * tw * t["bn"]) * 2
    _dw_chunk(k, s, th, tw, t["rw"], t["bn"], iw, ih, eb, ("gscalar", pitch, c["Wo"]), xb, per, halo=False)
    cnt = Count().add(per, ctas)
    return "pwdw_conv2d_kernel", cnt, 1.0


def model_depthwise(c, n, eb, dev):
    t = TILING["depthwise_conv2d"]
    k, s, C = c["kernel"], c["stride"], c["C"]
    if c["K"] != C:
        return "(channel multiplier: Triton)", Count(), 1.0
    tile = 16 if c["Ho"] > 8 or c["Wo"] > 8 else 8
    ih = iw = (tile - 1) * s + k
    cc = min(_up(C, 8), t["cc_max"])
    while cc > 8 and _up(ih * iw * cc * eb, 1) + k * k * cc * eb + cc * 4 > t["budget"]:
        cc -= 8
    tiles = _cdiv(c["Ho"], tile) * _cdiv(c["Wo"], tile) * n * _cdiv(C, cc)
    per = Count()
    sink = ("gvec", C, c["Wo"]) if C % 8 == 0 else ("gscalar", C, c["Wo"])
    _dw_chunk(k, s, tile, tile, t["rw"], cc, iw, ih, eb, sink, vec_bytes(C, eb), per, nt=tile * tile)
    return f"depthwise_conv2d_fwd_kernel T{tile}", Count().add(per, tiles), 1.0


MODELS = {"dwpw_conv2d": model_dwpw, "inverted_residual": model_ir, "group_conv1x1": model_gconv,
          "channel_shuffle": model_shuffle, "shufflenet_v1_unit": model_v1, "shufflenet_v2_unit": model_v2,
          "pwdw_conv2d": model_pwdw, "depthwise_conv2d": model_depthwise}


# ---------------------------------------------------------------------------------------------
# the floor
# ---------------------------------------------------------------------------------------------

@dataclass
class Floor:
    block: str
    op: str
    path: str            # which kernels the model covers
    hbm_bytes: float
    lsu_wavefronts: float
    tc_flops: float      # executed as mma.sync
    useful_flops: float  # the block's conv FLOPs (bench.metrics)
    dw_fmas: float
    device: dict
    useful_mma_flops: float = 0.0  # useful 1x1-conv FLOPs (what the tensor cores must do)
    min_hbm_bytes: float = 0.0     # the block's own bytes (bench.metrics: x, weights, out once)
    useful_fmas: float = 0.0       # the block's depthwise / SE FMAs
    busy: float = 1.0              # share of SMs a persistent grid keeps busy
    tc_wg_flops: float = 0.0       # executed as wgmma (sm_90a)
    lsu_parts: dict = field(default_factory=dict)

    @property
    def times_us(self) -> dict:
        d = self.device
        per_sm = 1e6 / self.busy
        return {
            "hbm": self.hbm_bytes / d["hbm_bps"] * 1e6,
            "lsu": self.lsu_wavefronts / (d["sms"] * d["clock_hz"] * d["lsu_wf_per_clk"]) * per_sm,
            "tc": (self.tc_flops / d["mma_flops"] + self.tc_wg_flops / d["wgmma_flops"]) * per_sm,
            "fma": self.dw_fmas / (d["sms"] * d["fp32_lanes"] * d["clock_hz"]) * per_sm,
        }

    @property
    def roofline_us(self) -> float:
        """What any mma.sync + FP32 kernel must take: the block's own bytes, useful tensor-core FLOPs
        and useful FMAs at the device's rates (no padding, recompute or intermediates)."""
        d = self.device
        return max(self.min_hbm_bytes / d["hbm_bps"], self.useful_mma_flops / d["mma_flops"],
                   self.useful_fmas / (d["sms"] * d["fp32_lanes"] * d["clock_hz"])) * 1e6

    @property
    def peak_roofline_us(self) -> float:
        """What ANY kernel that moves only the block's own bytes must take: those bytes at HBM bandwidth,
        its useful 1x1 FLOPs at the dense fp16 tensor-core peak (wgmma). Above 1.5x the HBM floor, the
        bar of issue #10 cannot be met by any such kernel (only by one that moves more bytes)."""
        d = self.device
        return max(self.min_hbm_bytes / d["hbm_bps"], self.useful_mma_flops / d["wgmma_flops"]) * 1e6

    @property
    def floor_us(self) -> float:
        return max(self.times_us.values())

    @property
    def binds(self) -> str:
        t = self.times_us
        return max(t, key=t.get)

    @property
    def over_hbm(self) -> float:
        t = self.times_us
        return self.floor_us / t["hbm"] if t["hbm"] else float("nan")

    @property
    def tc_waste(self) -> float:
        return (self.tc_flops + self.tc_wg_flops) / self.useful_mma_flops if self.useful_mma_flops else float("nan")

    @property
    def lsu_top(self) -> str:
        """The stage with the most LSU wavefronts and its share."""
        if not self.lsu_parts or not self.lsu_wavefronts:
            return ""
        k = max(self.lsu_parts, key=self.lsu_parts.get)
        return f"{k} {self.lsu_parts[k] / self.lsu_wavefronts:.0%}"


def _useful(entry, n) -> tuple:
    """(FLOPs of the block's 1x1 convs -- what the tensor cores must do --, FMAs of its depthwise convs
    and SE MLP -- what the FP32 cores must do)."""
    c = entry.cfg
    m = block_metrics(entry, n, 2, "fwd")
    k = c["kernel"]
    dw_macs = 0
    if entry.op == "dwpw_conv2d":
        dw_macs = k * k * c["C"] * c["Ho"] * c["Wo"]
    elif entry.op == "inverted_residual":
        dw_macs = k * k * c["hidden"] * c["Ho"] * c["Wo"] + 2 * c["hidden"] * c["se"]
    elif entry.op == "shufflenet_v1_unit":
        dw_macs = 9 * c["hidden"] * c["Ho"] * c["Wo"]
    elif entry.op == "shufflenet_v2_unit":
        dw_macs = 9 * c["hidden"] * c["Ho"] * c["Wo"] + (9 * c["C"] * c["Ho"] * c["Wo"] if c["stride"] == 2 else 0)
    elif entry.op == "pwdw_conv2d":
        dw_macs = k * k * c["hidden"] * c["Ho"] * c["Wo"]
    elif entry.op == "depthwise_conv2d":
        dw_macs = k * k * c["K"] * c["Ho"] * c["Wo"]
    return m.flops - 2.0 * dw_macs * n, float(dw_macs * n)


def _useful_mma_flops(entry, n) -> float:
    return _useful(entry, n)[0]


def floor(entry, batch: int = 128, elem_bytes: int = 2, device: str = "h100") -> Floor:
    """The modelled floor of one catalogue block on the CUDA kernels (MODEL, not measured)."""
    c = entry.cfg
    dev = DEVICES[device]
    path, cnt, busy = MODELS[entry.op](c, batch, elem_bytes, dev)
    m = block_metrics(entry, batch, elem_bytes, "fwd")
    parts = {k: v for k, v in cnt.lsu.items() if v}
    f = Floor(block=entry.label, op=entry.op, path=path, hbm_bytes=m.bytes + cnt.hbm_extra,
              lsu_wavefronts=sum(parts.values()), tc_flops=cnt.tc, useful_flops=m.flops, dw_fmas=cnt.fma,
              device=dev, busy=busy, lsu_parts=parts, min_hbm_bytes=m.bytes, tc_wg_flops=cnt.tc_wg)
    f.useful_mma_flops, f.useful_fmas = _useful(entry, batch)
    return f


def floor_row(entry, batch=128, elem_bytes=2, device="h100") -> dict:
    f = floor(entry, batch, elem_bytes, device)
    t = f.times_us
    return {
        "model": LABEL, "op": entry.op, "block": entry.label, "key": entry.key, "kernels": f.path,
        "families": "+".join(entry.families), "batch": batch,
        "hbm_MB": round(f.hbm_bytes / 1e6, 2), "lsu_Mwf": round(f.lsu_wavefronts / 1e6, 2),
        "tc_GFLOP_exec": round((f.tc_flops + f.tc_wg_flops) / 1e9, 3),
        "tc_GFLOP_useful": round(f.useful_mma_flops / 1e9, 3),
        "tc_wgmma_share": round(f.tc_wg_flops / (f.tc_flops + f.tc_wg_flops), 2) if f.tc_flops + f.tc_wg_flops else "",
        "tc_exec_over_useful": round(f.tc_waste, 2) if f.useful_mma_flops and (f.tc_flops + f.tc_wg_flops) else "",
        "dw_GFMA": round(f.dw_fmas / 1e9, 3),
        "hbm_us": round(t["hbm"], 1), "lsu_us": round(t["lsu"], 1), "tc_us": round(t["tc"], 1),
        "fma_us": round(t["fma"], 1), "floor_us": round(f.floor_us, 1), "binds": f.binds,
        "floor_over_hbm": round(f.over_hbm, 2) if math.isfinite(f.over_hbm) else "",
        # against the block's own bytes: intermediates the kernels round-trip through HBM count here
        "hbm_min_MB": round(f.min_hbm_bytes / 1e6, 2),
        "floor_over_min_hbm": round(f.floor_us / (f.min_hbm_bytes / f.device["hbm_bps"] * 1e6), 2)
        if f.min_hbm_bytes else "",
        # the block's own roofline (bytes once, useful FLOPs at mma.sync / FP32 rates) over its HBM floor:
        # > 1.5 means no mma.sync kernel can meet issue #10's bar for this block
        "roofline_over_min_hbm": round(f.roofline_us / (f.min_hbm_bytes / f.device["hbm_bps"] * 1e6), 2)
        if f.min_hbm_bytes else "",
        # the same at the dense tensor-core peak (wgmma), FMAs left out: a hardware bound for any kernel
        # that moves only the block's bytes; > 1.5 means the bar is out of reach for every such kernel
        "peak_roofline_over_min_hbm": round(f.peak_roofline_us / (f.min_hbm_bytes / f.device["hbm_bps"] * 1e6), 2)
        if f.min_hbm_bytes else "",
        "sm_busy": round(f.busy, 3), "lsu_top_stage": f.lsu_top,
    }


# ---------------------------------------------------------------------------------------------
# issue #10's bar: every MobileNetV2/V3 and ShuffleNetV2 block within 1.5x of its HBM floor
# ---------------------------------------------------------------------------------------------

CRITERION = dict(families=("mobilenet_v2", "mobilenet_v3", "shufflenet_v2"),
                 ops=("dwpw_conv2d", "inverted_residual", "shufflenet_v2_unit"), max_over_hbm=1.5)


def is_criterion_block(entry) -> bool:
    """A whole block (not a sub-op such as ShuffleNetV2's output shuffle, which the unit folds into
    its store) of one of the networks issue #10's floor bar names."""
    return entry.op in CRITERION["ops"] and bool(set(entry.families) & set(CRITERION["families"]))


def criterion_group(entry) -> str:
    """The block family a CI bound is recorded for (tests/test_kernel_report.py)."""
    c = entry.cfg
    if entry.op == "shufflenet_v2_unit":
        return f"shufflenet_v2 s{c['stride']}"
    fam = next(f for f in CRITERION["families"] if f in entry.families)
    if entry.op == "dwpw_conv2d":
        return f"{fam} dwpw"
    return f"{fam} ir" + ("+se" if c["se"] else "")
