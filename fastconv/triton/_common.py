"""Helpers shared by the Triton kernels: activation codes (same numbers as fastconv._common.ACTS)."""
import torch
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

