"""Compile the Triton kernels for sm_90 through their real launchers, without a GPU.

A launcher (``fastconv/triton/<op>.py: forward``) is called on fake CUDA tensors (torch's
FakeTensorMode: real shapes, strides, storage offsets and dtypes, no memory) while Triton's active
driver is a stand-in that reports an sm_90 device. Every launch then goes through Triton's real
argument specialisation (integers divisible by 16, 16-byte aligned pointers: fake pointers are
512-byte aligned like the CUDA caching allocator's, plus the view's storage offset) and the real
autotuner, whose benchmark function compiles each config once instead of timing it. The stand-in
records each compiled binary (cubin) and launch grid instead of launching.

Version notes: written against triton 3.8; the internals used (``driver.set_active``, the driver's
``utils.load_binary`` / ``launcher_cls`` / ``get_benchmarker`` hooks, the autotuner's kernel_call
closure) exist since triton 3.0. Each is guarded, and a failure names what broke.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import pkgutil
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

FAKE_PTR_BASE = 1 << 20  # any 512-byte aligned base: only the address modulo 16 reaches Triton
SM90 = dict(name="NVIDIA H100 80GB HBM3 (kernel_report stand-in)", major=9, minor=0, multi_processor_count=132,
            total_memory=80 * 2**30, max_shared_mem=232448, max_num_regs=65536, warpSize=32,
            sm_clock_rate=1755000, mem_clock_rate=2619000, mem_bus_width=5120)


@dataclass
class Launch:
    """One recorded launch: the kernel, its config, grid and compiled binary."""
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


def _triton():
    import triton
    return triton


def kernel_modules() -> list:
    """Every module under fastconv.triton (imported), except private helpers."""
    import fastconv.triton as pkg
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"fastconv.triton.{info.name}"))
    return mods


def discover_kernels() -> dict:
    """{JITFunction: (qualified name, Autotuner or None)} for every @triton.jit kernel defined in
    fastconv.triton.* (helpers called from kernels are included; they never launch)."""
    triton = _triton()
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
    del triton
    return found


def autotuners() -> list:
    return [t for _, t in discover_kernels().values() if t is not None]


# Compiled kernels outlive a capture (Triton's in-memory cache keeps them, with the launcher and
# function handle the stand-in gave them), so the launcher looks up the *current* recorder and the
# handle -> cubin map is process-wide.
_BINARIES: dict = {}      # function handle -> (kernel name, cubin)
_CURRENT: list = []       # the recorder of the active stand_in_sm90 (a stack)


class _Recorder:
    def __init__(self):
        self.launches: list = []
        self.binaries = _BINARIES
        self.names = {fn: name for fn, (name, _) in discover_kernels().items()}

    def name_of(self, fn) -> str:
        return self.names.get(fn, f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__name__', fn)}")


def _constexprs(src) -> dict:
    fn = src.fn
    out = {}
    for k, v in getattr(src, "constants", {}).items():
        idx = k[0] if isinstance(k, tuple) else (fn.arg_names.index(k) if isinstance(k, str) else k)
        name = fn.arg_names[idx] if isinstance(idx, int) and idx < len(fn.arg_names) else str(k)
        out[name] = v.value if hasattr(v, "value") else v
    return out


class _Launcher:
    """Stands in for the CUDA launcher of one compiled kernel: records instead of launching."""

    def __init__(self, src, metadata):
        self.src, self.metadata = src, metadata

    def __call__(self, gx, gy, gz, stream, function, *rest):
        if not _CURRENT:
            raise RuntimeError("kernel_report: a kernel compiled by the stand-in driver was launched outside "
                               "stand_in_sm90()")
        rec = _CURRENT[-1]
        name, cubin = _BINARIES.get(function, ("", b""))
        md = self.metadata
        rec.launches.append(Launch(
            kernel=rec.name_of(self.src.fn), constexprs=_constexprs(self.src), num_warps=md.num_warps,
            num_stages=md.num_stages, shared=md.shared, grid=(gx, gy, gz), cubin=cubin))


class _Utils:
    def __init__(self, five: bool):
        self.five = five

    def get_device_properties(self, device):
        return dict(SM90)

    def load_binary(self, name, kernel, shared, device):
        h = len(_BINARIES) + 1
        _BINARIES[h] = (name, bytes(kernel))
        # registers/spills are read from the cubin later (cuobjdump); report 0 here
        return (h, h, 0, 0, 1024) if self.five else (h, h, 0, 0)


class StandInDriver:
    """Triton driver for an sm_90 device that compiles and records but never launches."""

    def __init__(self, rec: _Recorder, arch: int = 90):
        from triton.backends.compiler import GPUTarget
        from triton.compiler.compiler import CompiledKernel
        try:
            five = "n_max_threads" in inspect.getsource(CompiledKernel._init_handles)
        except (OSError, TypeError, AttributeError):
            five = True
        self.rec = rec
        self.target = GPUTarget("cuda", arch, 32)
        self.utils = _Utils(five)
        self.launcher_cls = _Launcher

    @staticmethod
    def is_active():
        return True

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def set_current_device(self, device):
        pass

    def get_current_stream(self, device=None):
        return 0

    def get_device_capability(self, device=0):
        return (self.target.arch // 10, self.target.arch % 10)

    def get_active_torch_device(self):
        return torch.device("cuda", 0)

    def get_device_interface(self):
        return torch.cuda

    def map_python_to_cpp_type(self, ty: str) -> str:
        return "void*" if ty.startswith("*") else ty

    def get_empty_cache_for_benchmark(self):
        return None

    def clear_cache(self, cache):
        pass

    def get_benchmarker(self):
        return self._compile_instead_of_bench

    def _compile_instead_of_bench(self, kernel_call, quantiles=None, **kw):
        """The autotuner's do_bench: run (= compile and record) the config once, time 0. A config
        that does not compile or fit is recorded with its error and gets time inf."""
        try:
            kernel_call()
            t = 0.0
        except Exception as e:  # noqa: BLE001 - any failure of one config is a finding, not a crash
            self._record_failure(kernel_call, e)
            t = float("inf")
        return [t, t, t] if quantiles is not None else t

    def _record_failure(self, kernel_call, exc):
        cells = dict(zip(kernel_call.__code__.co_freevars, kernel_call.__closure__ or ()))
        try:
            config = cells["config"].cell_contents
            tuner = cells["self"].cell_contents
            fn = tuner.fn
            while hasattr(fn, "fn") and not hasattr(fn, "arg_names"):
                fn = fn.fn
            name = self.rec.name_of(fn)
            cx, nw, ns = dict(config.kwargs), config.num_warps, config.num_stages
        except (KeyError, AttributeError, ValueError):
            name, cx, nw, ns = "?", {}, 0, 0
        msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        self.rec.launches.append(Launch(kernel=name, constexprs=cx, num_warps=nw, num_stages=ns or 0, shared=0,
                                        grid=(), error=msg))


def _fake_props(index=None):
    return types.SimpleNamespace(**SM90, L2_cache_size=50 * 2**20, gcnArchName="", uuid="stand-in")


@contextlib.contextmanager
def stand_in_sm90(arch: int = 90, max_configs: Optional[int] = None):
    """Inside: Triton launches compile for sm_``arch`` and are recorded (yields the recorder);
    ``torch.empty(..., device="cuda")`` makes fake tensors; torch.cuda reports one H100.
    ``max_configs``: autotuners try at most that many of their configs (evenly spread; CI)."""
    import os
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("kernel_report compiles the Triton kernels: run it with TRITON_INTERPRET unset")
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    from triton.runtime import driver
    rec = _Recorder()
    tuners = autotuners()
    all_configs = {id(t): t.configs for t in tuners}
    stand_in = StandInDriver(rec, arch)
    saved_bench = {}
    for tuner in tuners:  # every entry re-tunes (= compiles every config) for its own shapes
        tuner.cache.clear()
        # do_bench is a cached_property (triton 3.2+) or a plain attribute: shadow it either way
        saved_bench[id(tuner)] = tuner.__dict__.get("do_bench")
        tuner.__dict__["do_bench"] = stand_in.get_benchmarker()
        if max_configs and len(tuner.configs) > max_configs:
            n = len(tuner.configs)
            pick = sorted({round(i * (n - 1) / max(max_configs - 1, 1)) for i in range(max_configs)})
            tuner.configs = [tuner.configs[i] for i in pick]
    old_ptr = FakeTensor.__dict__.get("data_ptr")
    patches = {"get_device_properties": _fake_props, "current_device": lambda: 0, "device_count": lambda: 1,
               "get_device_capability": lambda device=None: (arch // 10, arch % 10),
               "get_device_name": lambda device=None: SM90["name"]}
    saved = {k: getattr(torch.cuda, k) for k in patches}
    # the previous active driver, restored as is (reset_active() would probe for a GPU and fail here)
    prev = driver.__dict__.get("_active", None)
    driver.set_active(stand_in)
    FakeTensor.data_ptr = lambda self: FAKE_PTR_BASE + self.storage_offset() * self.element_size()
    for k, v in patches.items():
        setattr(torch.cuda, k, v)
    _CURRENT.append(rec)
    try:
        with FakeTensorMode(allow_non_fake_inputs=False):
            yield rec
    finally:
        _CURRENT.pop()
        for k, v in saved.items():
            setattr(torch.cuda, k, v)
        if old_ptr is None:
            del FakeTensor.data_ptr
        else:
            FakeTensor.data_ptr = old_ptr
        if "_active" in driver.__dict__:
            driver._active = prev
        else:  # pragma: no cover - other triton versions keep no private slot
            with contextlib.suppress(Exception):
                driver.reset_active()
        for tuner in tuners:
            tuner.configs = all_configs[id(tuner)]
            tuner.cache.clear()
            if saved_bench.get(id(tuner)) is None:
                tuner.__dict__.pop("do_bench", None)
            else:
                tuner.__dict__["do_bench"] = saved_bench[id(tuner)]


# ---------------------------------------------------------------------------------------------
# launcher calls per op: catalogue entry -> the arguments of fastconv.triton.<op>.forward
# ---------------------------------------------------------------------------------------------
# Tensors come from bench/bench_<op>.py's param_shapes (the order the op glue passes them in);
# these functions add what the glue adds (padding, the residual, None for absent branches) and
# the op's config arguments. If a launcher's signature changes, update its line here.

def _dwpw(cfg, x, p):
    dw, pw, db, pb = p
    return (x, dw, pw, db, pb, x if cfg["residual"] else None, cfg["stride"], cfg["kernel"] // 2, 1,
            cfg["act"], cfg["out_act"])


def _ir(cfg, x, p):
    return (x, *p, cfg["stride"], cfg["kernel"] // 2, cfg["act"], cfg["se_act"] if cfg["se"] else "none",
            cfg["se_gate"] if cfg["se"] else "none", cfg["residual"])


def _shuffle(cfg, x, p):
    return (x, cfg["groups"])


def _gconv(cfg, x, p):
    return (x, *p, cfg["groups"], 0, cfg["shuffle_out"], cfg["act"])


def _v1(cfg, x, p):
    return (x, *p, cfg["groups"], cfg["first_groups"], cfg["stride"])


def _v2(cfg, x, p):
    p = list(p) + [None] * (10 - len(p))
    return (x, *p, cfg["stride"])


LAUNCH_ARGS: dict = {"dwpw_conv2d": _dwpw, "inverted_residual": _ir, "channel_shuffle": _shuffle,
                     "group_conv1x1": _gconv, "shufflenet_v1_unit": _v1, "shufflenet_v2_unit": _v2}

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def fake_inputs(entry, batch: int, dtype: str, layout: str):
    """(x, params) fake CUDA tensors for a catalogue entry (call inside stand_in_sm90)."""
    bench_mod = importlib.import_module(f"bench.bench_{entry.op}")
    dt = TORCH_DTYPES[dtype]
    c = entry.cfg
    fmt = torch.channels_last if layout in ("channels_last", "nhwc") else torch.contiguous_format
    x = torch.empty((batch, c["C"], c["H"], c["W"]), dtype=dt, device="cuda").contiguous(memory_format=fmt)
    params = [None if s is None else torch.empty(tuple(s), dtype=dt, device="cuda")
              for s in bench_mod.param_shapes(c)]
    return x, params


def capture(entry, batch: int = 128, dtype: str = "fp16", layout: str = "channels_last",
            max_configs: Optional[int] = None) -> list:
    """[Launch] of every kernel and autotune config that fastconv.triton.<op>.forward compiles for
    this catalogue entry. A failing launcher raises."""
    mod = importlib.import_module(f"fastconv.triton.{entry.op}")
    args_of: Optional[Callable] = LAUNCH_ARGS.get(entry.op)
    if args_of is None:
        raise KeyError(f"kernel_report: no launcher call for op {entry.op!r}; add one to LAUNCH_ARGS in "
                       "bench/triton_capture.py")
    with stand_in_sm90(max_configs=max_configs) as rec:
        x, params = fake_inputs(entry, batch, dtype, layout)
        mod.forward(*args_of(entry.cfg, x, params))
    # one row per distinct binary: the autotuner's final run repeats the chosen config
    seen, out = set(), []
    for ln in rec.launches:
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


def tuner_keys() -> dict:
    """{kernel name: set of constexpr names its autotune configs set}."""
    out = {}
    for fn, (name, tuner) in discover_kernels().items():
        if tuner is not None:
            out[name] = {k for cfg in tuner.configs for k in cfg.kwargs}
    return out


