"""The CUDA kernels run on the CPU: csrc/host_emu/ compiles kernel sources with g++ against stand-in
CUDA headers (one std::thread per CUDA thread, std::barrier for __syncthreads, exact wmma emulation;
the csrc/stages primitives -- cp.async queued until its wait, ldmatrix and mma.sync per lane with the
PTX fragment layouts -- in csrc/host_emu/stages/) under ASan/UBSan and checks them against
double-precision references. This is how GPU-less CI tests the index math of csrc/; real-hardware
behaviour (the PTX itself, timing) needs the GPU."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMU = ROOT / "csrc" / "host_emu"
HARNESSES = sorted(p.name for p in EMU.glob("*_emu_test.cpp"))
# Harnesses that take (which kernels, which dtypes) arguments run as several cases, so that pytest
# workers share the longest ones (the emulation is one busy core per run); together the cases cover
# what a run without arguments covers.
SPLITS = {
    "mobilenet_emu_test.cpp": [(w, d) for w in ("d", "i") for d in ("f", "h", "b")],
    "shufflenet_emu_test.cpp": [("sgvw", d) for d in ("f", "h", "b")],
}
# Build variants (name -> extra g++ flags, the cases to run): shufflenet's "wgmma" build runs the
# fp16/bf16 gconv GEMMs on the wgmma twin (the sm_90a path; fp32 and channel_shuffle do not change),
# mobilenet's the fp16/bf16 dwpw GEMM and the inverted residual's T8 project GEMM (fused, SE pass 2).
VARIANTS = {
    "shufflenet_emu_test.cpp": {"wgmma": (["-DFASTCONV_EMU_WGMMA=1"], [("gvw", d) for d in ("h", "b")])},
    # mobilenet's "wgmma" build: dwpw's fp16/bf16 pointwise GEMM (128-channel tiles) and the inverted
    # residual's T8 project GEMM (stages::WgStrip) on the wgmma twin. fp16 only: bf16 differs from fp16 in the
    # mma's type suffix alone, the gconv wgmma build runs both, and CI must stay under 30 minutes (the
    # dwpw wgmma case takes ~4 CPU-minutes per dtype, the inverted residual's ~2).
    "mobilenet_emu_test.cpp": {"wgmma": (["-DFASTCONV_EMU_WGMMA=1"], [("d", "h"), ("i", "h")])},
}
CASES = [(h, "", args) for h in HARNESSES for args in SPLITS.get(h, [()])]
CASES += [(h, v, args) for h in HARNESSES for v, (_, cases) in VARIANTS.get(h, {}).items() for args in cases]
_built = {}


def _build(harness, variant, tmp_path_factory):
    """Compile a harness (variant) once per pytest run: the ASan builds are the bulk of this file's
    CPU time, so pytest-xdist workers share one executable (built under a file lock in the run's
    common temp dir) instead of each worker compiling every harness its cases land on."""
    key = (harness, variant)
    if key not in _built:
        from filelock import FileLock  # (a dependency of torch)
        root = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            root = root.parent  # shared by the workers of this run
        (root / "emu").mkdir(exist_ok=True)
        exe = root / "emu" / (harness.replace(".cpp", "") + (f"_{variant}" if variant else ""))
        with FileLock(str(exe) + ".lock"):
            if not exe.exists():
                flags = VARIANTS[harness][variant][0] if variant else []
                tmp = exe.with_suffix(".tmp")
                # -O0 -g1: the sanitized builds at -O1 -g took 3-7x longer to compile (mobilenet 302 s
                # against 41 s here) for cases that then run ~1.6x faster (10 s against 17 s): -O0
                # is the cheaper total, and line tables (-g1) keep ASan/UBSan reports pointing at lines.
                cmd = ["g++", "-std=c++20", "-O0", "-g1", "-fsanitize=address,undefined", *flags, f"-I{EMU}",
                       f"-I{ROOT / 'csrc'}", str(EMU / harness), "-o", str(tmp), "-pthread"]
                build = subprocess.run(cmd, capture_output=True, text=True)
                assert build.returncode == 0, build.stderr[-4000:]
                tmp.rename(exe)
        _built[key] = exe
    return _built[key]


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ (C++20)")
@pytest.mark.parametrize("harness,variant,args", CASES,
                         ids=[h.replace("_emu_test.cpp", "") + (f"[{v}]" if v else "") + ("-" + "-".join(a) if a else "")
                              for h, v, a in CASES])
def test_cuda_kernels_under_host_emulation(harness, variant, args, tmp_path_factory):
    exe = _build(harness, variant, tmp_path_factory)
    env = dict(os.environ, UBSAN_OPTIONS="halt_on_error=1", ASAN_OPTIONS="detect_leaks=0")
    run = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=600)
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    assert "0 failures" in run.stdout, tail
    assert "PASS" in run.stdout, tail
