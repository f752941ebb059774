"""Work and traffic per block (classic formulas), the measured machine roofs, and the floor.

MACs count convolutions only, the classic way (elementwise ops, pooling and BN are free):
  depthwise k x k:   k^2 * C * H' * W'
  pointwise / 1x1:   (C / groups) * K * H' * W'
  squeeze-excite:    E * S + S * E (two 1x1 convs on a 1x1 map)
FLOPs = 2 x MACs. Minimal bytes = every input, weight/bias (BN folded) and output touched once.

Forward+backward ("fwdbwd") uses the usual approximations: FLOPs = 3 x forward (one pass for the
input gradient, one for the weight gradients), and bytes = forward (x, w read; y written) plus
backward (dy, x, w read; dx, dw written): 3 x |x| + 3 x |w| + 2 x |y|.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from bench.common import DTYPES


@dataclass
class BlockMetrics:
    macs: int      # per batch
    flops: int
    bytes: int
    params: int    # folded parameter count (weights + biases)
    in_elems: int
    out_elems: int


def _params_and_macs(op: str, c: dict) -> tuple[int, int]:
    """(folded parameter count, MACs per image)."""
    C, H, W, K, Ho, Wo, k = c["C"], c["H"], c["W"], c["K"], c["Ho"], c["Wo"], c["kernel"]
    if op == "dwpw_conv2d":
        params = C * k * k + C + K * C + K
        macs = k * k * C * Ho * Wo + C * K * Ho * Wo
    elif op == "inverted_residual":
        E, S = c["hidden"], c["se"]
        params = (E * C + E if c["expand"] else 0) + E * k * k + E + K * E + K
        macs = (C * E * H * W if c["expand"] else 0) + k * k * E * Ho * Wo + E * K * Ho * Wo
        if S:
            params += S * E + S + E * S + E
            macs += 2 * E * S
    elif op == "group_conv1x1":
        g = c["groups"]
        params = K * (C // g) + K
        macs = (C // g) * K * H * W
    elif op == "channel_shuffle":
        params, macs = 0, 0
    elif op == "depthwise_conv2d":
        params = K * k * k + K
        macs = k * k * K * Ho * Wo
    elif op == "shufflenet_v1_unit":
        M, g, g1 = c["hidden"], c["groups"], c["first_groups"]
        params = M * (C // g1) + M + M * 9 + M + K * (M // g) + K
        macs = (C // g1) * M * H * W + 9 * M * Ho * Wo + (M // g) * K * Ho * Wo
    elif op == "shufflenet_v2_unit":
        B = c["hidden"]
        if c["stride"] == 1:
            cin2 = C // 2
            params = B * cin2 + B + B * 9 + B + B * B + B
            macs = cin2 * B * H * W + 9 * B * H * W + B * B * H * W
        else:
            params = (B * C + B + B * 9 + B + B * B + B) + (C * 9 + C + B * C + B)
            macs = C * B * H * W + 9 * B * Ho * Wo + B * B * Ho * Wo + 9 * C * Ho * Wo + C * B * Ho * Wo
    elif op == "pwdw_conv2d":
        M = c["hidden"]
        params = M * C + M + M * k * k + M
        macs = C * M * H * W + k * k * M * Ho * Wo
    else:
        raise ValueError(op)
    return params, macs


def block_metrics(entry, batch: int, elem_size: int, mode: str) -> BlockMetrics:
    c = entry.cfg
    params, macs = _params_and_macs(entry.op, c)
    in_el = batch * c["C"] * c["H"] * c["W"]
    out_el = batch * c["K"] * c["Ho"] * c["Wo"]
    macs *= batch
    if mode == "fwd":
        flops = 2 * macs
        nbytes = (in_el + out_el + params) * elem_size
    else:
        flops = 3 * 2 * macs
        nbytes = (3 * in_el + 2 * out_el + 3 * params) * elem_size
    return BlockMetrics(macs, flops, nbytes, params, in_el, out_el)


# ---------------------------------------------------------------------------------------------
# roofs
# ---------------------------------------------------------------------------------------------

@dataclass
class Roofs:
    """Measured on the run's device at the start of the run."""
    gbps: float                 # device-to-device copy bandwidth, GB/s (1e9 bytes)
    tflops: dict                # dtype name -> dense matmul TFLOP/s (1e12)
    how: str

    def floor_ms(self, flops: float, nbytes: float, dtype: str) -> float:
        return max(nbytes / (self.gbps * 1e9), flops / (self.tflops[dtype] * 1e12)) * 1e3


def measure_roofs(device: torch.device, dtypes=tuple(DTYPES)) -> Roofs:
    if device.type == "cuda":
        from triton.testing import do_bench
        n = 1 << 30  # 1 GiB each way: far beyond L2
        src = torch.empty(n, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median")
        gbps = 2 * n / (ms * 1e-3) / 1e9
        del src, dst
        tfl = {}
        m = 8192
        for name in dtypes:
            a = torch.randn(m, m, device=device, dtype=DTYPES[name])
            b = torch.randn(m, m, device=device, dtype=DTYPES[name])
            ms = do_bench(lambda: a @ b, warmup=25, rep=200, return_mode="median")
            tfl[name] = 2 * m ** 3 / (ms * 1e-3) / 1e12
            del a, b
        torch.cuda.empty_cache()
        tf32 = torch.backends.cuda.matmul.allow_tf32
        how = (f"1 GiB device-to-device copy; {m}^3 matmul per dtype "
               f"(fp32 with torch.backends.cuda.matmul.allow_tf32={tf32}); triton do_bench medians")
        return Roofs(gbps, tfl, how)

    def best(fn, reps=5):
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts)

    n = 64 << 20
    src = torch.empty(n, dtype=torch.uint8)
    dst = torch.empty_like(src)
    gbps = 2 * n / best(lambda: dst.copy_(src)) / 1e9
    tfl = {}
    for name in dtypes:
        m = 1024 if name == "fp32" else 256  # CPU half-precision matmul is slow: keep it short
        a = torch.randn(m, m, dtype=DTYPES[name])
        b = torch.randn(m, m, dtype=DTYPES[name])
        tfl[name] = 2 * m ** 3 / best(lambda: a @ b, 3) / 1e12
    return Roofs(gbps, tfl, f"CPU: {n >> 20} MiB memcpy, matmul (1024^3 fp32, 256^3 fp16/bf16), best of a few")
