"""Compile the Triton kernels for sm_90 through their real launchers, without a GPU: the one harness
behind the static report (bench/kernel_report.py) and the codegen tests (tests/triton_codegen.py,
tests/test_pwdw_conv2d.py).

1. ``recording()``: every Triton kernel object of fastconv.triton.* is replaced by a recorder, so a
   launcher (``fastconv/triton/<op>.py: forward``, called by :func:`call_launcher` with catalogue
   shapes) runs its Python (tile choice, grids, scratch) and launches nothing;
2. :func:`specialise`: each recorded call is specialised exactly as Triton's launcher would, with
   Triton's own binder (integers divisible by 16 get ``tt.divisibility``, integers equal to 1
   become constants, 16-byte aligned pointers), for every autotune config the kernel's autotuner
   would try for these arguments (its pruning included);
3. :func:`compile_spec`: compiled for sm_90 (PTX -> cubin with the wheel's ptxas).

The launcher sees either CPU tensors (the tests) or, inside :func:`fake_sm90`, fake CUDA tensors
of one H100 (torch's FakeTensorMode: real shapes, strides, storage offsets and dtypes, no memory;
pointers 512-byte aligned like the CUDA caching allocator's plus the view's offset; torch.cuda
reports the H100), so decisions a launcher takes from the device (SM count, TF32) are a real
launch's: what :func:`capture` (the report) uses. Readers of the result: :func:`resources`
(cuobjdump), :func:`ptxas_usage` (ptxas -v), :func:`load_mix` (PTX global-load widths).

Version notes: written against triton 3.8; the internals used (``create_function_from_signature``,
``JITFunction._pack_args``, ``Autotuner.prune_configs``) exist since triton 3.2.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import pkgutil
import re
import subprocess
import tempfile
import types
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch

ARCH = 90
SMEM_LIMIT = 227 * 1024  # H100 opt-in shared memory per block
FAKE_PTR_BASE = 1 << 20  # any 512-byte aligned base: only the address modulo 16 reaches Triton
SM90 = dict(name="NVIDIA H100 80GB HBM3 (kernel_report stand-in)", major=9, minor=0, multi_processor_count=132,
            total_memory=80 * 2**30, max_shared_mem=232448, max_num_regs=65536, warpSize=32,
            sm_clock_rate=1755000, mem_clock_rate=2619000, mem_bus_width=5120)
TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _triton():
    import triton
    return triton


def target():
    from triton.backends.compiler import GPUTarget
    return GPUTarget("cuda", ARCH, 32)


def tool(name: str) -> str:
    """A CUDA binary tool shipped in the triton wheel (ptxas, cuobjdump)."""
    return os.path.join(os.path.dirname(_triton().__file__), "backends", "nvidia", "bin", name)


# ---------------------------------------------------------------------------------------------
# the kernels
# ---------------------------------------------------------------------------------------------

def kernel_modules() -> list:
    """Every module under fastconv.triton (imported), except private helpers."""
    import fastconv.triton as pkg
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"fastconv.triton.{info.name}"))
    return mods


def jit_fn(kernel):
    """The JITFunction under an autotuner (or the kernel itself)."""
    from triton.runtime.jit import JITFunction
    while not isinstance(kernel, JITFunction):
        kernel = kernel.fn
    return kernel


def discover_kernels() -> dict:
    """{JITFunction: (qualified name, Autotuner or None)} for every @triton.jit kernel defined in
    fastconv.triton.* (helpers called from kernels are included; they never launch)."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction
    found = {}
    for mod in kernel_modules():
        short = mod.__name__.rsplit(".", 1)[-1]
        for obj in vars(mod).values():
            tuner, fn = None, obj
            while not isinstance(fn, JITFunction) and hasattr(fn, "fn"):
                if isinstance(fn, Autotuner):
                    tuner = fn
                fn = fn.fn
            if isinstance(fn, JITFunction) and fn.__module__ == mod.__name__:
                found[fn] = (f"{short}:{fn.__name__}", tuner)
    return found


def autotuners() -> list:
    return [t for _, t in discover_kernels().values() if t is not None]


def tuner_keys() -> dict:
    """{kernel name: set of constexpr names its autotune configs set}."""
    out = {}
    for fn, (name, tuner) in discover_kernels().items():
        if tuner is not None:
            out[name] = {k for cfg in tuner.configs for k in cfg.kwargs}
    return out


# ---------------------------------------------------------------------------------------------
# 1. recording the launchers' calls
# ---------------------------------------------------------------------------------------------

class _CallRecorder:
    def __init__(self, kernel, log):
        self.kernel, self.log = kernel, log

    def __getitem__(self, grid):
        def record(*args, **kwargs):
            self.log.append((self.kernel, grid, args, kwargs))
        return record


@contextlib.contextmanager
def recording():
    """Every Triton kernel of fastconv.triton.* replaced by a recorder; yields the call log, a list
    of (kernel object, grid, args, kwargs)."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction
    log, saved = [], []
    for mod in kernel_modules():
        for name, obj in vars(mod).items():
            if isinstance(obj, (Autotuner, JITFunction)):
                saved.append((mod, name, obj))
    try:
        for mod, name, obj in saved:
            setattr(mod, name, _CallRecorder(obj, log))
        yield log
    finally:
        for mod, name, obj in saved:
            setattr(mod, name, obj)


def _fake_props(index=None):
    return types.SimpleNamespace(**SM90, L2_cache_size=50 * 2**20, gcnArchName="", uuid="stand-in")


@contextlib.contextmanager
def fake_sm90():
    """Inside: ``torch.empty(..., device="cuda")`` makes fake tensors (data_ptr 512-byte aligned plus
    the storage offset) and torch.cuda reports one H100."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("the sm_90 capture compiles the Triton kernels: run it with TRITON_INTERPRET unset")
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    old_ptr = FakeTensor.__dict__.get("data_ptr")
    patches = {"get_device_properties": _fake_props, "current_device": lambda: 0, "device_count": lambda: 1,
               "get_device_capability": lambda device=None: (ARCH // 10, ARCH % 10),
               "get_device_name": lambda device=None: SM90["name"]}
    saved = {k: getattr(torch.cuda, k) for k in patches}
    FakeTensor.data_ptr = lambda self: FAKE_PTR_BASE + self.storage_offset() * self.element_size()
    for k, v in patches.items():
        setattr(torch.cuda, k, v)
    try:
        with FakeTensorMode(allow_non_fake_inputs=False):
            yield
    finally:
        for k, v in saved.items():
            setattr(torch.cuda, k, v)
        if old_ptr is None:
            del FakeTensor.data_ptr
        else:
            FakeTensor.data_ptr = old_ptr


def make_inputs(op: str, cfg: dict, batch: int, dtype, layout: str, device: str = "cpu"):
    """(x, params): uninitialised tensors of a catalogue entry's shapes; x in ``layout`` ("nhwc" /
    "channels_last" or NCHW), params contiguous. ``dtype``: a torch dtype or "fp16"/"bf16"/"fp32"."""
    bench_mod = importlib.import_module(f"bench.bench_{op}")
    dt = TORCH_DTYPES.get(dtype, dtype)
    fmt = torch.channels_last if layout in ("channels_last", "nhwc") else torch.contiguous_format
    x = torch.empty((batch, cfg["C"], cfg["H"], cfg["W"]), dtype=dt, device=device).contiguous(memory_format=fmt)
    params = [None if s is None else torch.empty(tuple(s), dtype=dt, device=device)
              for s in bench_mod.param_shapes(cfg)]
    return x, params


def call_launcher(op: str, cfg: dict, x, p: list, all_paths: bool = False) -> None:
    """Call fastconv.triton.<op>.forward (and backward, for the training op) for a catalogue entry.

    Tensors come from bench/bench_<op>.py's param_shapes (the order the op glue passes them in);
    this adds what the glue adds (padding, the residual, None for absent branches) and the op's
    config arguments. ``all_paths``: also the paths the launcher's own choice would not take
    (ShuffleNetV2's two-kernel branch). If a launcher's signature changes, update its line here."""
    mod = importlib.import_module(f"fastconv.triton.{op}")
    k, s = cfg["kernel"], cfg["stride"]
    if op == "dwpw_conv2d":
        mod.forward(x, p[0], p[1], p[2], p[3], x if cfg["residual"] else None, s, k // 2, 1, cfg["act"],
                    cfg["out_act"])
    elif op == "inverted_residual":
        se = bool(cfg["se"])
        mod.forward(x, *p, s, k // 2, cfg["act"], cfg["se_act"] if se else "relu",
                    cfg["se_gate"] if se else "hardsigmoid", bool(cfg["residual"]))
    elif op == "channel_shuffle":
        mod.forward(x, cfg["groups"])
    elif op == "group_conv1x1":
        mod.forward(x, p[0], p[1], cfg["groups"], 0, cfg["shuffle_out"], cfg["act"])
    elif op == "shufflenet_v1_unit":
        mod.forward(x, *p, cfg["groups"], cfg["first_groups"], s)
    elif op == "shufflenet_v2_unit":
        p = list(p) + [None] * (10 - len(p))
        for fuse in ((True, False) if all_paths else (None,)):
            mod.forward(x, *p, s, fuse_hidden=fuse)
    elif op == "pwdw_conv2d":
        concat = cfg["K"] == 2 * cfg["hidden"]  # the catalogue's concat marker (bench/bench_pwdw_conv2d.py)
        mod.forward(x, p[0], p[1], p[2], p[3], None, s, k // 2, 1, "relu", "relu", concat)
    elif op == "depthwise_conv2d":  # forward and the three backward kernels (act grad, dgrad, wgrad)
        out = mod.forward(x, p[0], p[1], (s, s), (k // 2, k // 2), (1, 1), "relu")
        mod.backward(torch.empty_like(out), x, p[0], p[1], (s, s), (k // 2, k // 2), (1, 1), "hardswish",
                     True, True)
    else:
        raise KeyError(f"no launcher call for op {op!r}; add one to call_launcher in bench/triton_capture.py")


# ---------------------------------------------------------------------------------------------
# 2. specialisation (Triton's own binder)
# ---------------------------------------------------------------------------------------------

class Spec(NamedTuple):
    """One compilation: what JITFunction.run would hand to the compiler for one call and config."""
    label: dict      # the autotune config's kwargs (if any) plus w=num_warps, s=num_stages
    fn: Any          # JITFunction
    sig: dict
    consts: dict
    attrs: dict
    options: Any     # the backend's options dataclass
    grid: tuple      # (gx, gy, gz) the launch would use


_BACKEND: list = []
_BINDERS: dict = {}


def _backend():
    if not _BACKEND:
        from triton.compiler import make_backend
        _BACKEND.append(make_backend(target()))
    return _BACKEND[0]


def spread(configs: list, n: Optional[int]) -> list:
    """At most n of the configs, evenly spread (first and last kept)."""
    if not n or len(configs) <= n:
        return list(configs)
    k = len(configs)
    return [configs[i] for i in sorted({round(i * (k - 1) / max(n - 1, 1)) for i in range(n)})]


def specialise(kernel, args, kwargs, grid=None, max_configs: Optional[int] = None) -> list:
    """[Spec] for every config the kernel's autotuner would try for these arguments (as
    Autotuner.run: one config is used as is, several are pruned by its early_config_prune /
    perf_model), as JITFunction.run would build them. ``max_configs``: try at most that many of
    the autotuner's configs (evenly spread, before pruning)."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import create_function_from_signature
    fn = jit_fn(kernel)
    backend = _backend()
    if isinstance(kernel, Autotuner):
        kernel.nargs = dict(zip(kernel.arg_names, args))
        saved = kernel.configs
        kernel.configs = spread(saved, max_configs)
        try:
            configs = kernel.prune_configs(kwargs) if len(kernel.configs) > 1 else list(kernel.configs)
        finally:
            kernel.configs = saved
        variants = [({**kwargs, **c.all_kwargs()}, c) for c in configs]
    else:
        variants = [(dict(kwargs), None)]
    if fn not in _BINDERS:
        _BINDERS[fn] = create_function_from_signature(fn.signature, fn.params, backend)
    out = []
    for allkw, cfg in variants:
        allkw = {k: v for k, v in allkw.items() if v is not None}
        bound, spec, opts = _BINDERS[fn](*args, **allkw)
        options, sig, consts, attrs = fn._pack_args(backend, allkw, bound, spec, opts)
        label = dict(cfg.kwargs) if cfg is not None else {}
        label.update(w=options.num_warps, s=options.num_stages)
        g = grid(bound) if callable(grid) else (grid or (1,))
        g = tuple(g) + (1,) * (3 - len(g))
        out.append(Spec(label, fn, sig, consts, attrs, options, g))
    return out


# ---------------------------------------------------------------------------------------------
# 3. compilation and what the binaries say
# ---------------------------------------------------------------------------------------------

def compile_spec(spec: Spec):
    """triton.compile for sm_90 (raises what the compiler raises)."""
    from triton.compiler import ASTSource
    return _triton().compile(ASTSource(spec.fn, spec.sig, spec.consts, spec.attrs), target=target(),
                             options=spec.options.__dict__)


def resources(cubin: bytes) -> dict:
    """{"REG", "STACK", "SHARED", "LOCAL": int} from ``cuobjdump --dump-resource-usage``."""
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        out = subprocess.run([tool("cuobjdump"), "--dump-resource-usage", f.name], capture_output=True, text=True,
                             check=True).stdout
    finally:
        os.unlink(f.name)
    vals = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", out))
    return {k: int(v) for k, v in vals.items()}


def ptxas_usage(ptx: str) -> tuple[int, int, int]:
    """(registers, stack frame bytes, spill store + load bytes) that ptxas (triton's own) reports for
    the kernel. A small stack frame without spills is a called slow path (fp32 division), not a spill."""
    arch = re.search(r"^\.target\s+(\w+)", ptx, re.M).group(1)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        text = subprocess.run([tool("ptxas"), f"-arch={arch}", "-v", src, "-o", os.path.join(d, "k.cubin")],
                              capture_output=True, text=True, check=True).stderr
    stack, stores, loads = map(int, re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                                               r"(\d+) bytes spill loads", text).groups())
    return int(re.search(r"Used (\d+) registers", text).group(1)), stack, stores + loads


_LD = re.compile(r"^\s*(?:@!?%p\w+\s+)?(ld\.global|cp\.async\.c[ag]\.shared\.global)([.\w:]*)\s([^;]*);", re.M)
_CP_SIZE = re.compile(r"\]\s*,\s*(0x[0-9a-fA-F]+|\d+)")
_WIDTH = {"8": 1, "16": 2, "32": 4, "64": 8, "128": 16}


def load_mix(ptx: str, with_bytes: bool = False):
    """(global load instructions, those moving >= 8 bytes per thread[, bytes per thread of all of
    them, of the wide ones]); cp.async counts with its size. Static counts: a load in a loop counts once."""
    n = wide = nb = wb = 0
    for m in _LD.finditer(ptx):
        kind, suffix, operands = m.groups()
        if kind.startswith("cp.async"):
            size = _CP_SIZE.search(operands)
            nbytes = int(size.group(1), 0) if size else 4
        else:
            parts = suffix.split(".")
            vec = next((int(q[1:]) for q in parts if re.fullmatch(r"v\d", q)), 1)
            bits = next((q[1:] for q in reversed(parts) if re.fullmatch(r"[bfsu]\d+", q)), "32")
            nbytes = vec * _WIDTH.get(bits, 4)
        n += 1
        wide += nbytes >= 8
        nb += nbytes
        wb += nbytes if nbytes >= 8 else 0
    return (n, wide, nb, wb) if with_bytes else (n, wide)


# ---------------------------------------------------------------------------------------------
# the report's capture: catalogue entry -> one Launch per distinct binary
# ---------------------------------------------------------------------------------------------

@dataclass
class Launch:
    """One compiled launch: the kernel, its config, grid and binary."""
    kernel: str                   # "<module>:<function>", e.g. "dwpw_conv2d:_dwpw_kernel"
    constexprs: dict
    num_warps: int
    num_stages: int
    shared: int                   # dynamic shared memory (bytes)
    grid: tuple
    cubin: bytes = field(repr=False, default=b"")
    ptx: str = field(repr=False, default="")
    error: str = ""               # the config did not compile / fit (cubin empty)

    @property
    def cubin_hash(self) -> str:
        return hashlib.sha1(self.cubin).hexdigest()[:12] if self.cubin else ""


def _constexprs(spec: Spec) -> dict:
    names = spec.fn.arg_names
    out = {}
    for k, v in spec.consts.items():
        idx = k[0] if isinstance(k, tuple) else (names.index(k) if isinstance(k, str) else k)
        name = names[idx] if isinstance(idx, int) and idx < len(names) else str(k)
        out[name] = v.value if hasattr(v, "value") else v
    return out


def _launch(spec: Spec, name: str) -> Launch:
    """Compile one spec; a config that does not compile or fit an H100 is a Launch with its error,
    as the launch itself would raise it (shared memory is checked when a launch loads the binary)."""
    from triton.runtime.errors import OutOfResources
    try:
        c = compile_spec(spec)
        if c.metadata.shared > SM90["max_shared_mem"]:
            raise OutOfResources(c.metadata.shared, SM90["max_shared_mem"], "shared memory")
    except Exception as e:  # noqa: BLE001 - any failure of one config is a finding, not a crash
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        cx = {k: v for k, v in spec.label.items() if k not in ("w", "s")}
        return Launch(kernel=name, constexprs=cx, num_warps=spec.options.num_warps,
                      num_stages=spec.options.num_stages or 0, shared=0, grid=(), error=msg)
    md = c.metadata
    return Launch(kernel=name, constexprs=_constexprs(spec), num_warps=md.num_warps, num_stages=md.num_stages,
                  shared=md.shared, grid=spec.grid, cubin=c.asm["cubin"], ptx=c.asm["ptx"])


def capture(entry, batch: int = 128, dtype: str = "fp16", layout: str = "channels_last",
            max_configs: Optional[int] = None) -> list:
    """[Launch] of every kernel and autotune config that fastconv.triton.<op>.forward compiles for
    this catalogue entry on an H100 (fake CUDA tensors). A failing launcher raises."""
    names = {fn: name for fn, (name, _) in discover_kernels().items()}
    with fake_sm90():
        x, params = make_inputs(entry.op, entry.cfg, batch, dtype, layout, device="cuda")
        with recording() as log:
            call_launcher(entry.op, entry.cfg, x, params)
        specs = [(names.get(jit_fn(k), jit_fn(k).__name__), sp) for k, grid, args, kwargs in log
                 for sp in specialise(k, args, kwargs, grid, max_configs)]
    # one row per distinct binary (a launcher may launch the same kernel and config twice)
    seen, out = set(), []
    for name, sp in specs:
        ln = _launch(sp, name)
        key = (ln.kernel, ln.cubin_hash or ln.error, tuple(sorted(ln.constexprs.items(), key=str)), ln.num_warps,
               ln.num_stages)
        if key in seen:
            continue
        seen.add(key)
        out.append(ln)
    return out


def config_label(ln: Launch, tuner_keys: Optional[set] = None) -> str:
    """Autotune config (and launcher-chosen block sizes) of a launch, e.g. ``BLOCK_P=64,BLOCK_K=128 w4 s1``."""
    keys = [k for k in ln.constexprs if (tuner_keys and k in tuner_keys)
            or k.startswith("BLOCK") or k in ("TH", "TW")]
    parts = ",".join(f"{k}={ln.constexprs[k]}" for k in keys)
    return f"{parts} w{ln.num_warps} s{ln.num_stages}".strip()
