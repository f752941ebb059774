"""MODEL, not measured: a floor per catalogue block from each CUDA kernel family's tiling.

For one block (default batch 128, fp16, channels_last) the floor is the largest of
  HBM      bytes the kernels must move / HBM bandwidth
  LSU      load/store-unit wavefronts / (SMs x clock x wavefronts per clock per SM)
  TC       tensor-core FLOPs executed (padding and recompute included) / mma peak
  FMA      depthwise FMAs executed on the FP32 cores / FP32 FMA rate
and ``binds`` names the largest. Wavefronts are counted per tile from the kernel's tiling and
load widths: a warp-wide access of w bytes per lane costs max(1, 32 w / 128) wavefronts (one
128-byte L1 wavefront per clock per SM), so a scalar 2-byte load moves 64 B per wavefront and a
16-byte vector 128 B; shared-memory fragment loads are counted by bytes. L2 hits are free
(re-reads of x by neighbouring tiles count no HBM bytes). Expect errors up to ~2x: this ranks
designs and says which ceiling binds, it is no prediction of a time.

The tiling of each kernel family is data (``TILING`` below, one dict per family): when a kernel is
rewritten its owner updates its entry (and, if the structure changes, its model function) so the
floor follows the code. Each entry cites the header comment it was read from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.metrics import block_metrics

LABEL = "MODEL, not measured"

# Device constants, in one place. mma.sync (HMMA, no wgmma) dense fp16 is about 60% of the
# H100's 990 TFLOP/s wgmma peak.
DEVICES = {
    "h100": dict(name="H100 SXM", sms=132, clock_hz=1.755e9, hbm_bps=3.35e12, mma_flops=600e12,
                 wgmma_flops=990e12, lsu_wf_per_clk=1.0, fp32_lanes=128),
    "h200": dict(name="H200", sms=132, clock_hz=1.755e9, hbm_bps=4.8e12, mma_flops=600e12,
                 wgmma_flops=990e12, lsu_wf_per_clk=1.0, fp32_lanes=128),
}

# Per kernel family tiling (today's CUDA kernels, csrc/*/ header comments).
TILING = {
    # csrc/dwpw_conv2d/dwpw_conv2d_kernel.cuh: 64 pixels x BN (64 if K <= 64 else 128) per
    # 256-thread block, 32-channel chunks, dw taps scalar from global, dw weights from smem per
    # output, dw bias LDG per output; wmma 16x16x16; recompute per K tile.
    "dwpw_conv2d": dict(tp=64, bn_small=64, bn_large=128, cc=32, warps=8, tap_bytes=2, tap_reuse=1,
                        weights_per_output=True, bias_per_output=True, stage_bytes=2, store_bytes=2,
                        mma="mma_sync"),
    # csrc/inverted_residual/inverted_residual_kernel.cuh: TH x TW <= 64 output tile (pick_tile in
    # inverted_residual.cu), EC = 64 hidden chunk, KB = 64/128, halo padded to 64-row bands, x
    # staged 32 channels at a time; dw from smem hexp with weights reloaded per output.
    "inverted_residual": dict(tp=64, ec=64, kb_small=64, kb_large=128, band=64, cx=32, warps=8, tap_bytes=2,
                              tap_reuse=1, weights_per_output=True, bias_per_output=True, stage_bytes=2,
                              store_bytes=2, se_ch=32, mma="mma_sync"),
    # csrc/group_conv1x1/gconv_kernel.cuh: BM = 64 out channels x BN = 64 pixels x BK = 32, 128
    # threads (4 warps of 32 x 32), scalar synchronous loaders; DW=true: 9 scalar taps + 9 weight
    # loads (about 5 L1 lines each) per B element, recomputed per M tile.
    "group_conv1x1": dict(bm=64, bn=64, bk=32, warps=4, wm=32, wn=32, stage_bytes=2, store_bytes=2,
                          dw_weight_wavefronts=5, mma="mma_sync"),
    # csrc/channel_shuffle: 16-byte path when H*W % 8 == 0 (NCHW); NHWC gathers scalar loads per
    # 16-byte store.
    "channel_shuffle": dict(load_bytes=2, store_bytes=16),
}


@dataclass
class Floor:
    block: str
    op: str
    path: str            # which kernels the model covers
    hbm_bytes: float
    lsu_wavefronts: float
    tc_flops: float      # executed
    useful_flops: float  # the block's conv FLOPs (bench.metrics)
    dw_fmas: float
    device: dict

    @property
    def times_us(self) -> dict:
        d = self.device
        return {
            "hbm": self.hbm_bytes / d["hbm_bps"] * 1e6,
            "lsu": self.lsu_wavefronts / (d["sms"] * d["clock_hz"] * d["lsu_wf_per_clk"]) * 1e6,
            "tc": self.tc_flops / d["mma_flops"] * 1e6,
            "fma": self.dw_fmas / (d["sms"] * d["fp32_lanes"] * d["clock_hz"]) * 1e6,
        }

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
        return self.tc_flops / self.useful_mma_flops if self.useful_mma_flops else float("nan")

    useful_mma_flops: float = 0.0  # useful 1x1-conv FLOPs (what the tensor cores must do)


def _cdiv(a, b):
    return -(-a // b)


def _up(a, m):
    return _cdiv(a, m) * m


def wf(elems: float, lane_bytes: int, elem_bytes: int) -> float:
    """LSU wavefronts for a coalesced warp-wide stream of ``elems`` elements, ``lane_bytes`` per lane
    per instruction (2 = scalar fp16, 16 = 128-bit vector)."""
    instrs = elems * elem_bytes / (32 * lane_bytes)
    return instrs * max(1.0, 32 * lane_bytes / 128)


def smem_frag_wf(m, n, k, wm, wn, eb) -> float:
    """Wavefronts of the shared-memory operand fragment loads of an m x n x k tile GEMM with warp
    tiles wm x wn: each warp reads its (wm + wn) x k operands."""
    warps = _cdiv(m, wm) * _cdiv(n, wn)
    return warps * (wm + wn) * k * eb / 128


def _warp_tile(m, n, warps):
    """A warp tile for an m x n CTA tile split over ``warps`` warps (wide side first)."""
    wm, wn = m, n
    w = warps
    while w > 1:
        if wn >= wm:
            wn //= 2
        else:
            wm //= 2
        w //= 2
    return max(wm, 16), max(wn, 16)


# ---------------------------------------------------------------------------------------------
# per family
# ---------------------------------------------------------------------------------------------

def _dw_stage_wf(outputs, k, t, eb):
    """Depthwise: per output, k^2 / tap_reuse tap loads, weights (fp32, smem) and bias."""
    taps = outputs * k * k / t["tap_reuse"]
    out = wf(taps, t["tap_bytes"], eb)
    if t["weights_per_output"]:
        out += wf(outputs * k * k, 4, 4)
    if t["bias_per_output"]:
        out += wf(outputs, 2, eb)
    return out


def model_dwpw(c, n, eb):
    t = TILING["dwpw_conv2d"]
    npix = n * c["Ho"] * c["Wo"]
    bn = t["bn_small"] if c["K"] <= 64 else t["bn_large"]
    ctas = _cdiv(npix, t["tp"]) * _cdiv(c["K"], bn)
    chunks = _cdiv(c["C"], t["cc"])
    k = c["kernel"]
    wm, wn = _warp_tile(t["tp"], bn, t["warps"])
    per_chunk = (_dw_stage_wf(t["tp"] * t["cc"], k, t, eb) + wf(t["tp"] * t["cc"], 2, eb)   # dw + A tile STS
                 + 2 * wf(bn * t["cc"], t["stage_bytes"], eb)                               # B: LDG + STS
                 + smem_frag_wf(t["tp"], bn, t["cc"], wm, wn, eb))
    epi = 2 * wf(t["tp"] * bn, 4, 4) + wf(t["tp"] * bn, t["store_bytes"], eb) * (2 if c["residual"] else 1)
    lsu = ctas * (chunks * per_chunk + epi)
    tc = 2.0 * ctas * chunks * t["tp"] * t["cc"] * bn
    fma = ctas * chunks * t["tp"] * t["cc"] * k * k
    return "dwpw_conv2d_kernel", 0.0, lsu, tc, fma


def _ir_tile(ho, wo, k, s, kblocks, n, sms=132):
    def pick(d):
        if d <= 8:
            return d
        if d % 8 == 0:
            return 8
        return 7 if d % 7 == 0 else 8
    th, tw = pick(ho), pick(wo)
    while n * _cdiv(ho, th) * _cdiv(wo, tw) * kblocks < sms and (th > 4 or tw > 4):
        if th >= tw:
            th = (th + 1) // 2
        else:
            tw = (tw + 1) // 2
    return th, tw


def model_ir(c, n, eb):
    t = TILING["inverted_residual"]
    k, s, C, E, K = c["kernel"], c["stride"], c["C"], c["hidden"], c["K"]
    se = bool(c["se"])
    kb = 16 if se else (t["kb_small"] if K <= 64 else t["kb_large"])
    kblocks = 1 if se else (1 if K <= 64 else _cdiv(K, 128))
    th, tw = _ir_tile(c["Ho"], c["Wo"], k, s, kblocks, n)
    tiles = n * _cdiv(c["Ho"], th) * _cdiv(c["Wo"], tw)
    ctas = tiles * kblocks
    q = ((th - 1) * s + k) * ((tw - 1) * s + k)
    qpad = _up(q, t["band"])
    chunks = _cdiv(E, t["ec"])
    ec, tp, cx = t["ec"], t["tp"], t["cx"]
    lsu = tc = fma = 0.0
    if c["expand"]:
        steps = _cdiv(C, cx)
        wm, wn = _warp_tile(t["band"], ec, t["warps"])
        band = steps * (2 * wf(t["band"] * cx, 2, eb) + 2 * wf(ec * cx, t["stage_bytes"], eb)
                        + smem_frag_wf(t["band"], ec, cx, wm, wn, eb))
        band += 2 * wf(t["band"] * ec, 4, 4) + wf(t["band"] * ec, 2, eb)      # accumulators -> hexp
        lsu += (qpad // t["band"]) * band
        tc += 2.0 * qpad * steps * cx * ec
    else:  # hexp = x halo
        lsu += 2 * wf(qpad * ec, 2, eb)
    lsu += _dw_stage_wf(tp * ec, k, t, eb) + wf(tp * ec, 2, eb)
    fma += tp * ec * k * k
    if not se:
        wm, wn = _warp_tile(tp, kb, t["warps"])
        lsu += 2 * wf(kb * ec, t["stage_bytes"], eb) + smem_frag_wf(tp, kb, ec, wm, wn, eb)
        tc += 2.0 * tp * ec * kb
    lsu_total = ctas * chunks * lsu
    tc_total = ctas * chunks * tc
    fma_total = ctas * chunks * fma
    extra_bytes = 0.0
    path = "ir_fused_kernel"
    if se:
        # pass 1 writes h (tiles x 64 x E), pass 2 (se_project) reads it per output-channel block
        npix = n * c["Ho"] * c["Wo"]
        lsu_total += ctas * chunks * wf(tp * ec, 2, eb)                      # h stores
        kb2 = t["kb_small"] if K <= 64 else t["kb_large"]
        ctas2 = _cdiv(npix, tp) * _cdiv(K, kb2)
        steps2 = _cdiv(E, t["se_ch"])
        wm, wn = _warp_tile(tp, kb2, t["warps"])
        lsu_total += ctas2 * (steps2 * (2 * wf(tp * t["se_ch"], 2, eb) + 2 * wf(kb2 * t["se_ch"], 2, eb)
                                        + smem_frag_wf(tp, kb2, t["se_ch"], wm, wn, eb))
                              + 2 * wf(tp * kb2, 4, 4) + 2 * wf(tp * kb2, 2, eb))
        tc_total += 2.0 * ctas2 * steps2 * t["se_ch"] * tp * kb2
        extra_bytes = 2.0 * npix * E * eb                                    # h written + read
        path = "ir_fused_kernel<SE> + se_mlp + se_project"
    else:
        wm = 2 * wf(tp * kb, 4, 4) + wf(tp * kb, t["store_bytes"], eb) * (2 if c["residual"] else 1)
        lsu_total += ctas * wm
    return path, extra_bytes, lsu_total, tc_total, fma_total


def _gconv(npix, cin, kout, groups, eb, dw=False, residual=False):
    """One gconv_kernel launch: (lsu, tc, fma)."""
    t = TILING["group_conv1x1"]
    cg, kg = cin // groups, kout // groups
    ctas = groups * _cdiv(kg, t["bm"]) * _cdiv(npix, t["bn"])
    steps = _cdiv(cg, t["bk"])
    b_elems = t["bk"] * t["bn"]
    if dw:
        b_load = wf(9 * b_elems, 2, eb) + 9 * (b_elems / 32) * t["dw_weight_wavefronts"] + wf(b_elems, 2, eb)
    else:
        b_load = wf(b_elems, t["stage_bytes"], eb)
    per_step = (2 * wf(t["bm"] * t["bk"], t["stage_bytes"], eb) + b_load + wf(b_elems, 2, eb)
                + smem_frag_wf(t["bm"], t["bn"], t["bk"], t["wm"], t["wn"], eb))
    epi = 2 * wf(t["bm"] * t["bn"], 4, 4) + wf(t["bm"] * t["bn"], t["store_bytes"], eb) * (2 if residual else 1)
    lsu = ctas * (steps * per_step + epi)
    tc = 2.0 * ctas * steps * t["bm"] * t["bn"] * t["bk"]
    fma = ctas * steps * b_elems * 9 if dw else 0.0
    return lsu, tc, fma


def _shuffle_wf(elems, eb):
    t = TILING["channel_shuffle"]
    return wf(elems, t["load_bytes"], eb) + wf(elems, t["store_bytes"], eb)


def model_gconv(c, n, eb):
    lsu, tc, fma = _gconv(n * c["H"] * c["W"], c["C"], c["K"], c["groups"], eb)
    return "gconv_kernel", 0.0, lsu, tc, fma


def model_shuffle(c, n, eb):
    return "shuffle kernel", 0.0, _shuffle_wf(n * c["C"] * c["H"] * c["W"], eb), 0.0, 0.0


def model_v1(c, n, eb):
    C, M, K, g, g1 = c["C"], c["hidden"], c["K"], c["groups"], c["first_groups"]
    npix_in, npix_out = n * c["H"] * c["W"], n * c["Ho"] * c["Wo"]
    l1, t1, _ = _gconv(npix_in, C, M, g1, eb)
    l2, t2, f2 = _gconv(npix_out, M, K, g, eb, dw=True, residual=c["stride"] == 1)
    # stride 2: the avg-pool side branch (extra blocks): 9 scalar taps and one store per output
    side = wf(9 * npix_out * C, 2, eb) + wf(npix_out * C, 2, eb) if c["stride"] == 2 else 0.0
    return "gconv (gconv1) + gconv<DW> (gconv2)", 2.0 * npix_in * M * eb, l1 + l2 + side, t1 + t2, f2


def model_v2(c, n, eb):
    C, B, s = c["C"], c["hidden"], c["stride"]
    npix_in, npix_out = n * c["H"] * c["W"], n * c["Ho"] * c["Wo"]
    cin2 = C // 2 if s == 1 else C
    l1, t1, _ = _gconv(npix_in, cin2, B, 1, eb)
    l2, t2, f2 = _gconv(npix_out, B, B, 1, eb, dw=True)
    lsu, tc, fma = l1 + l2, t1 + t2, f2
    if s == 1:
        lsu += _shuffle_wf(npix_out * B, eb)                                 # pass-through half
    else:
        l3, t3, f3 = _gconv(npix_out, C, B, 1, eb, dw=True)                 # branch1
        lsu, tc, fma = lsu + l3, tc + t3, fma + f3
    return "gconv (pw1) + gconv<DW> (pw2)" + (" + gconv<DW> (branch1)" if s == 2 else ""), \
        2.0 * npix_in * B * eb, lsu, tc, fma


MODELS = {"dwpw_conv2d": model_dwpw, "inverted_residual": model_ir, "group_conv1x1": model_gconv,
          "channel_shuffle": model_shuffle, "shufflenet_v1_unit": model_v1, "shufflenet_v2_unit": model_v2}


def _useful_mma_flops(entry, n) -> float:
    """FLOPs of the block's 1x1 convs (the part tensor cores do)."""
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
    return m.flops - 2.0 * dw_macs * n


def floor(entry, batch: int = 128, elem_bytes: int = 2, device: str = "h100") -> Floor:
    """The modelled floor of one catalogue block on today's CUDA kernels (MODEL, not measured)."""
    c = entry.cfg
    path, extra, lsu, tc, fma = MODELS[entry.op](c, batch, elem_bytes)
    m = block_metrics(entry, batch, elem_bytes, "fwd")
    f = Floor(block=entry.label, op=entry.op, path=path, hbm_bytes=m.bytes + extra, lsu_wavefronts=lsu,
              tc_flops=tc, useful_flops=m.flops, dw_fmas=fma, device=DEVICES[device])
    f.useful_mma_flops = _useful_mma_flops(entry, batch)
    return f


def floor_row(entry, batch=128, elem_bytes=2, device="h100") -> dict:
    f = floor(entry, batch, elem_bytes, device)
    t = f.times_us
    return {
        "model": LABEL, "op": entry.op, "block": entry.label, "key": entry.key, "kernels": f.path,
        "batch": batch, "hbm_MB": round(f.hbm_bytes / 1e6, 2), "lsu_Mwf": round(f.lsu_wavefronts / 1e6, 2),
        "tc_GFLOP_exec": round(f.tc_flops / 1e9, 3), "tc_GFLOP_useful": round(f.useful_mma_flops / 1e9, 3),
        "tc_exec_over_useful": round(f.tc_waste, 2) if f.useful_mma_flops else "",
        "dw_GFMA": round(f.dw_fmas / 1e9, 3),
        "hbm_us": round(t["hbm"], 1), "lsu_us": round(t["lsu"], 1), "tc_us": round(t["tc"], 1),
        "fma_us": round(t["fma"], 1), "floor_us": round(f.floor_us, 1), "binds": f.binds,
        "floor_over_hbm": round(f.over_hbm, 2) if math.isfinite(f.over_hbm) else "",
    }
