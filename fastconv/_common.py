"""Shared plumbing for every op: activation codes, argument checks, memory formats, backends.

Nothing here launches a kernel. The ops in ``fastconv/ops`` validate their arguments with the
``check_*`` helpers (so every backend sees the same, already-checked inputs) and pick a backend
with :func:`resolve_backend`.
"""
from __future__ import annotations

import importlib
import os
import warnings
from typing import Optional, Sequence

import torch
from torch import Tensor

# Activation codes shared with csrc/act.h and fastconv/triton/_common.py: keep in sync.
ACTS = {"none": 0, "relu": 1, "relu6": 2, "hardswish": 3, "silu": 4, "hardsigmoid": 5, "sigmoid": 6,
        "gelu": 7, "gelu_tanh": 8}
BLOCK_ACTS = ("none", "relu", "relu6", "hardswish", "silu", "gelu", "gelu_tanh")
SE_GATES = ("hardsigmoid", "sigmoid")
BACKENDS = ("reference", "triton", "cuda")
OPS = ("dwpw_conv2d", "inverted_residual", "channel_shuffle", "group_conv1x1", "shufflenet_v1_unit",
       "shufflenet_v2_unit", "pwdw_conv2d", "depthwise_conv2d")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def apply_act(x: Tensor, act: str) -> Tensor:
    """The PyTorch definition of every activation code (used by the reference)."""
    if act == "none":
        return x
    if act == "relu":
        return torch.relu(x)
    if act == "relu6":
        return torch.nn.functional.relu6(x)
    if act == "hardswish":
        return torch.nn.functional.hardswish(x)
    if act == "silu":
        return torch.nn.functional.silu(x)
    if act == "hardsigmoid":
        return torch.nn.functional.hardsigmoid(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    if act == "gelu":
        return torch.nn.functional.gelu(x)
    if act == "gelu_tanh":
        return torch.nn.functional.gelu(x, approximate="tanh")
    raise ValueError(f"unknown activation {act!r}")


# ---------------------------------------------------------------------------------------------
# argument checks: each raises with the argument's name so users can find the mistake
# ---------------------------------------------------------------------------------------------

def check_act(name: str, act, allowed: Sequence[str] = BLOCK_ACTS) -> str:
    if not isinstance(act, str) or act not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {act!r}")
    return act


def check_int(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_input(name: str, x) -> Tensor:
    """x: (N, C, H, W), floating (fp32/fp16/bf16; fp64 allowed for gradcheck), N*C*H*W may be 0 only in N."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES + (torch.float64,):
        raise TypeError(f"{name} must be float32, float16 or bfloat16, got {x.dtype}")
    if x.shape[1] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} has an empty channel or spatial dim: shape {tuple(x.shape)}")
    return x


def check_param(name: str, t, ref: Tensor, shape: Optional[Sequence[int]] = None,
                optional: bool = False) -> Optional[Tensor]:
    """A weight/bias: same dtype and device as the input ``ref``; exact shape when given."""
    if t is None:
        if optional:
            return None
        raise TypeError(f"{name} is required")
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
    if t.device != ref.device:
        raise RuntimeError(f"{name} is on {t.device} but the input is on {ref.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but the input has {ref.dtype}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    return t


def check_dw_weight(name: str, w, x: Tensor, channels: int) -> int:
    """dw weight: (C, 1, k, k), k odd. Returns k."""
    if not isinstance(w, Tensor) or w.dim() != 4:
        raise ValueError(f"{name} must be a 4-D tensor (C, 1, k, k), got "
                         f"{tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__}")
    k = w.shape[-1]
    if w.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"{name} must be square with an odd kernel size, got {tuple(w.shape)}")
    check_param(name, w, x, (channels, 1, k, k))
    return k


def check_pw_weight(name: str, w, x: Tensor, in_channels: int, groups: int = 1) -> int:
    """pw weight: (K, C // groups, 1, 1). Returns K."""
    if not isinstance(w, Tensor) or w.dim() != 4 or w.shape[2:] != (1, 1):
        raise ValueError(f"{name} must be a 4-D 1x1 conv weight (K, C/groups, 1, 1), got "
                         f"{tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__}")
    if in_channels % groups:
        raise ValueError(f"groups={groups} does not divide the {in_channels} input channels of {name}")
    if w.shape[0] % groups:
        raise ValueError(f"groups={groups} does not divide the {w.shape[0]} output channels of {name}")
    check_param(name, w, x, (w.shape[0], in_channels // groups, 1, 1))
    return w.shape[0]


def conv_out_size(size: int, k: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def check_spatial(name: str, h: int, w: int, k: int, stride: int, padding: int, dilation: int = 1):
    ho, wo = conv_out_size(h, k, stride, padding, dilation), conv_out_size(w, k, stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"{name}: a {k}x{k} conv with stride {stride}, padding {padding}, dilation "
                         f"{dilation} on a {h}x{w} input gives an empty output")
    return ho, wo


# ---------------------------------------------------------------------------------------------
# memory formats
# ---------------------------------------------------------------------------------------------

def memory_format_of(x: Tensor) -> torch.memory_format:
    """channels_last when x is channels_last-contiguous and not NCHW-contiguous, else NCHW.

    Non-contiguous views produce NCHW outputs (after a copy, documented in README)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def empty_like_format(x: Tensor, shape: Sequence[int], dtype=None) -> Tensor:
    """An uninitialised output of ``shape`` in x's memory format (used by kernels and fakes)."""
    return torch.empty(tuple(shape), dtype=dtype or x.dtype, device=x.device,
                       memory_format=memory_format_of(x))


def as_format(t: Tensor, fmt: torch.memory_format) -> Tensor:
    return t.contiguous(memory_format=fmt)


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------

def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _probe_triton() -> tuple[bool, str]:
    try:
        import triton  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the install
        return False, f"triton is not importable ({e}); pip install triton"
    if triton_interpreting():
        return True, f"triton {triton.__version__} (interpreter: TRITON_INTERPRET=1, CPU tensors)"
    if not torch.cuda.is_available():
        return False, ("triton is installed but no CUDA device is visible; set TRITON_INTERPRET=1 "
                       "to run the Triton kernels on CPU tensors (slow, for testing)")
    return True, f"triton {triton.__version__}"


def _probe_cuda_ext() -> tuple[bool, str]:
    try:
        importlib.import_module("fastconv._C")
    except Exception as e:
        return False, ("the CUDA extension fastconv._C is not built "
                       f"({type(e).__name__}: {e}); build it with `python setup.py build_ext --inplace` "
                       "on a machine with nvcc and a CUDA build of torch")
    if not torch.cuda.is_available():
        return False, "fastconv._C is built but no CUDA device is visible"
    return True, "fastconv._C loaded"


# Filled once by refresh_backends() (at `import fastconv`, after fastconv._C is loaded). resolve_backend
# reads only these plain dicts, so torch.compile can trace it without touching the dispatcher.
_STATUS: dict = {}
_CUDA_KERNELS: set = set()


def refresh_backends() -> None:
    """Probe triton and fastconv._C again (e.g. after TRITON_INTERPRET changed or _C was rebuilt)."""
    _STATUS["triton"] = _probe_triton()
    _STATUS["cuda"] = _probe_cuda_ext()
    _CUDA_KERNELS.clear()
    for op in OPS:
        if torch._C._dispatch_has_kernel_for_dispatch_key(f"fastconv::{op}_cuda", "CUDA"):
            _CUDA_KERNELS.add(f"{op}_cuda")


def _status(name: str) -> tuple[bool, str]:
    if not _STATUS:
        refresh_backends()
    return _STATUS[name]


def backends() -> dict:
    """What each backend can do here, and why not: ``{name: {"available": bool, "why": str}}``."""
    tri, tri_why = _status("triton")
    cu, cu_why = _status("cuda")
    return {
        "reference": {"available": True, "why": "pure PyTorch, any device"},
        "triton": {"available": tri, "why": tri_why},
        "cuda": {"available": cu, "why": cu_why},
    }


_warned_auto: set = set()


def resolve_backend(op: str, backend, x: Tensor, cuda_kernel: Optional[str] = None,
                    tune_key: tuple = ()) -> str:
    """Turn ``backend`` (maybe "auto") into one concrete backend for this call, or raise.

    auto: CPU tensors -> reference; CUDA tensors -> $FASTCONV_BACKEND if set, else the tuned
    table's choice for this shape (eager only; under torch.compile the static order applies),
    else cuda, then triton. A backend asked for by name that cannot run raises; auto with no
    fused backend warns once and runs the reference. ``tune_key``: the op's block configuration
    (weights' channels, kernel, stride, ...) that, with x's shape, names a row of the tuned table.
    """
    if not isinstance(backend, str) or backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get("FASTCONV_BACKEND", "")
        if env:
            if env not in BACKENDS:
                raise ValueError(f"FASTCONV_BACKEND must be one of {list(BACKENDS)}, got {env!r}")
            backend = env
        elif x.device.type != "cuda":
            return "reference"
        else:
            return _auto_cuda(op, x, cuda_kernel, tune_key)
    if backend == "reference":
        return backend
    if backend == "triton":
        ok, why = _status("triton")
        if not ok:
            raise RuntimeError(f"fastconv.{op}: backend='triton' is not available: {why}")
        if x.device.type != "cuda" and not triton_interpreting():
            raise RuntimeError(f"fastconv.{op}: backend='triton' needs CUDA tensors "
                               "(or TRITON_INTERPRET=1 for CPU tensors)")
        return backend
    # cuda
    ok, why = _status("cuda")
    if not ok:
        raise RuntimeError(f"fastconv.{op}: backend='cuda' is not available: {why}")
    if x.device.type != "cuda":
        raise RuntimeError(f"fastconv.{op}: backend='cuda' needs CUDA tensors, got {x.device}")
    if cuda_kernel is not None and cuda_kernel not in _CUDA_KERNELS:
        raise RuntimeError(f"fastconv.{op}: fastconv._C has no CUDA kernel {cuda_kernel!r}; "
                           "rebuild the extension")
    return backend


def _auto_cuda(op: str, x: Tensor, cuda_kernel: Optional[str], tune_key: tuple) -> str:
    """backend="auto" on a CUDA tensor: the tuned table's choice (eager only), else cuda, then triton."""
    key = choice = None
    if not torch.compiler.is_compiling():
        from fastconv import tuning
        key = tuning.shape_key(x, tune_key)
        choice = tuning.lookup(op, x.device, key)
    if choice is None or not _available(choice, cuda_kernel):
        choice = next((c for c in ("cuda", "triton") if _available(c, cuda_kernel)), "reference")
    if choice == "reference" and op not in _warned_auto and not torch.compiler.is_compiling():
        _warned_auto.add(op)
        warnings.warn(f"fastconv.{op}: no fused backend is available ({backends()}); "
                      "running the PyTorch reference (not fused, not fast)", stacklevel=4)
    if key is not None:
        tuning.LAST[op] = (key, choice)
    return choice


def _cuda_has(kernel_op: str) -> bool:
    """Whether fastconv._C registered a CUDA kernel for ``fastconv::<kernel_op>``."""
    if not _STATUS:
        refresh_backends()
    return kernel_op in _CUDA_KERNELS


def _available(backend: str, cuda_kernel: Optional[str]) -> bool:
    if backend == "triton":
        return _status("triton")[0]
    if backend == "cuda":
        return _status("cuda")[0] and (cuda_kernel is None or cuda_kernel in _CUDA_KERNELS)
    return backend == "reference"
