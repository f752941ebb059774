"""Helpers shared by the Triton kernels: activation codes (same numbers as fastconv._common.ACTS)."""
from typing import Optional

import torch
from torch import Tensor
import triton
import triton.language as tl

from fastconv._common import ACTS, triton_interpreting


@triton.jit
def apply_act(v, ACT: tl.constexpr):
    """v: fp32 block. ACT is a compile-time code, so every branch but one is removed.
    Clamps propagate NaN like torch.relu / F.relu6 do (tl.maximum drops NaN by default)."""
    if ACT == 1:
        v = tl.maximum(v, 0.0, propagate_nan=tl.PropagateNan.ALL)
    elif ACT == 2:
        v = tl.minimum(tl.maximum(v, 0.0, propagate_nan=tl.PropagateNan.ALL), 6.0, propagate_nan=tl.PropagateNan.ALL)
    elif ACT == 3:
        v = v * tl.minimum(tl.maximum(v + 3.0, 0.0, propagate_nan=tl.PropagateNan.ALL), 6.0, propagate_nan=tl.PropagateNan.ALL) / 6.0
    elif ACT == 4:
        v = v / (1.0 + tl.exp(-v))
    elif ACT == 5:
        v = tl.minimum(tl.maximum(v + 3.0, 0.0, propagate_nan=tl.PropagateNan.ALL), 6.0, propagate_nan=tl.PropagateNan.ALL) / 6.0
    elif ACT == 6:
        v = 1.0 / (1.0 + tl.exp(-v))
    elif ACT == 7:  # gelu, erf form
        v = 0.5 * v * (1.0 + tl.math.erf(v * 0.7071067811865476))
    elif ACT == 8:  # gelu, tanh form: 0.5 * (1 + tanh(u)) == sigmoid(2u), so no tanh is needed
        v = v / (1.0 + tl.exp(-1.5957691216057308 * (v + 0.044715 * v * v * v)))
    return v


@triton.jit
def output_pixels(pid_p, BLOCK_P: tl.constexpr, NPIX, HO, WO):
    """The BLOCK_P output pixels of program pid_p, flattened over (N, H', W'): their index, mask,
    image (int64, so image offsets never overflow) and output row/column."""
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    rem = offs_p % (HO * WO)
    return offs_p, offs_p < NPIX, (offs_p // (HO * WO)).to(tl.int64), rem // WO, rem % WO


@triton.jit
def known_multiple(v, M: tl.constexpr):
    """v, which the launcher guarantees is a multiple of M, in a form the compiler can prove it of
    (tl.multiple_of has no effect on scalar arguments; v // M * M is a shift pair for M = 2^k)."""
    return v // M * M


@triton.jit
def mma(a, b, acc, DOT_FP32: tl.constexpr, PREC: tl.constexpr):
    """acc + a @ b on tensor cores; DOT_FP32 upcasts the operands (the interpreter's bf16 dot is wrong)."""
    if DOT_FP32:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=PREC)


def autotune_configs(names: tuple, interp: tuple, grid: list, num_stages=None) -> list:
    """Autotune candidates. Each ``grid`` row is (*block sizes in ``names`` order, num_warps[,
    num_stages]); a row without stages gets ``num_stages`` (None: triton's default). Under the
    interpreter, which cannot benchmark, exactly one config: ``interp`` = (*block sizes, num_warps),
    with large blocks so that programs x loop steps (its cost) stays small."""
    n = len(names)
    if triton_interpreting():
        return [triton.Config(dict(zip(names, interp[:n])), num_warps=interp[n])]
    configs = []
    for row in grid:
        stages = row[n + 1] if len(row) > n + 1 else num_stages
        kw = {} if stages is None else {"num_stages": stages}
        configs.append(triton.Config(dict(zip(names, row[:n])), num_warps=row[n], **kw))
    return configs


def act_code(act: str) -> int:
    return ACTS[act]


def dot_dtype_ok(dtype) -> bool:
    """bf16 tl.dot is wrong in the interpreter (triton#11584): launchers upcast to fp32 there."""
    return not (triton_interpreting() and dtype == torch.bfloat16)


def dot_precision(dtype: torch.dtype, device: torch.device) -> str:
    """fp32 matmuls use TF32 only where PyTorch's own convs would (cudnn.allow_tf32)."""
    if dtype == torch.float32 and not (device.type == "cuda" and torch.backends.cudnn.allow_tf32):
        return "ieee"
    return "tf32"  # triton's default; only meaningful for fp32 operands


def dot_fp32(dtype: torch.dtype) -> bool:
    """Upcast tl.dot operands to fp32 (the interpreter's bf16 dot is wrong, triton#11584)."""
    return not dot_dtype_ok(dtype)



# ---------------------------------------------------------------------------------------------
# launcher-side facts the compiler cannot see: vector width, int32 index range, register budget
# ---------------------------------------------------------------------------------------------

INT32_LIMIT = 2 ** 31 - 1


def channel_vec(*tensors: Tensor) -> int:
    """Channels per 16-byte vector that every tensor's per-pixel channel run can be loaded with: 1
    unless all are channels-innermost (NHWC, stride(1) == 1) and every other stride and the storage
    offset are multiples of it. The kernels pass it to tl.multiple_of on per-pixel offsets (and on
    the channel count), which Triton's launcher only infers for multiples of 16."""
    vec = 16 // tensors[0].element_size()
    for t in tensors:
        if t.shape[1] > 1 and t.stride(1) != 1:
            return 1
        rest = [t.storage_offset()] + [t.stride(d) for d in (0, 2, 3) if t.shape[d] > 1] + [t.shape[1]]
        while vec > 1 and any(v % vec for v in rest):
            vec //= 2
    return vec


def vec_dividing(vec: int, *counts: int) -> int:
    """The largest power of two <= vec that divides every count (channel offsets, group sizes)."""
    while vec > 1 and any(c % vec for c in counts):
        vec //= 2
    return vec


def check_int32_indexing(op: str, npix: int, *tensors: Optional[Tensor]) -> None:
    """The kernels index pixels (flattened over N*H*W) and offsets inside one image in int32 (image
    offsets are int64): refuse shapes where either would overflow instead of reading garbage."""
    if npix >= INT32_LIMIT - 4096:
        raise ValueError(f"{op}: N*H*W = {npix} pixels is too large for the Triton kernels (< 2^31)")
    for t in tensors:
        if t is None or t.numel() == 0:
            continue
        per_image = max(t.numel() // t.shape[0], t.stride(0) if t.shape[0] > 1 else 0)
        if per_image >= INT32_LIMIT:
            raise ValueError(f"{op}: {per_image} elements per image (shape {tuple(t.shape)}) is too large "
                             f"for the Triton kernels' int32 offsets (< 2^31)")


# fp32 tile elements a thread may keep live (accumulators + operands that stay in registers): with
# addresses, masks and loop state on top, more than this spills at 255 registers on sm_90
REGS_BUDGET = 128


def prune_by_registers(live_fp32, budget: float = REGS_BUDGET):
    """An autotune early_config_prune: keep the configs whose ``live_fp32(args)`` (args: the launch's
    named and constexpr arguments with the config's block sizes) fit ``budget`` per thread; if none
    does, the one that needs the fewest."""
    def prune(configs, named_args, **kwargs):
        need = [(live_fp32({**kwargs, **named_args, **c.kwargs}) / (32 * c.num_warps), c) for c in configs]
        kept = [c for n, c in need if n <= budget]
        return kept or [min(need, key=lambda t: t[0])[1]]
    return prune
