"""Build fastconv: the CUDA extension fastconv._C from csrc/ when possible, else pure Python/Triton.

Environment:
  FASTCONV_SKIP_CUDA_BUILD=1   never build the extension
  TORCH_CUDA_ARCH_LIST         default "8.0;9.0+PTX": sm_80 and sm_90a machine code plus compute_90 PTX
                               for newer GPUs. The kernels need sm_80+ (cp.async, ldmatrix, mma.sync in
                               csrc/stages); gconv's fp16/bf16 GEMMs use wgmma on Hopper, which only the
                               arch-specific sm_90a target has, so fastconv builds Hopper as sm_90a:
                               "9.0" and "9.0a" both give sm_90a SASS (never sm_90 and sm_90a of one
                               kernel side by side), "+PTX" adds the portable PTX of that arch without
                               the "a" (compute_90: mma.sync, JIT-compiled on GPUs newer than the list).
                               setup.py turns the list into -gencode flags itself (_gencode_flags);
                               entries it cannot parse (named arches, "native") are left to torch,
                               which then builds plain sm_90 (mma.sync only). On a GPU machine, build
                               only its arch ("9.0") to halve the compile time.
  CUDA_HOME                    the toolkit root; found from nvcc on PATH when unset
  MAX_JOBS                     parallel nvcc jobs (ninja)
"""
import glob
import os
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def _find_cuda_home():
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if not nvcc:
        return None
    real = Path(nvcc).resolve()
    # nvcc on PATH may be a wrapper script: read the real compiler's path out of it.
    try:
        text = real.read_text(errors="ignore")
        for tok in text.split():
            if tok.endswith("/bin/nvcc") and Path(tok).exists():
                real = Path(tok).resolve()
                break
    except OSError:
        pass
    return str(real.parent.parent)


def _check_arch_list(archs):
    """csrc/stages uses sm_80 instructions: fail the build with a clear message, not a ptxas error."""
    for a in archs.replace(",", ";").replace(" ", ";").split(";"):
        a = a.strip().split("+")[0].rstrip("af")
        try:
            too_old = float(a) < 8.0
        except ValueError:  # empty or a named arch ("Hopper"): let torch interpret it
            continue
        if too_old:
            raise SystemExit(f"fastconv: TORCH_CUDA_ARCH_LIST={archs!r} contains {a}; the CUDA kernels need "
                             "compute capability 8.0 or newer (cp.async, ldmatrix, mma.sync)")


def _gencode_flags(archs):
    """TORCH_CUDA_ARCH_LIST -> nvcc -gencode flags ("9.0" / "9.0a" -> sm_90a SASS, "+PTX" -> plain
    compute_XY PTX), or None when an entry is not a plain number (torch's own handling then)."""
    sass, ptx = [], []
    for a in archs.replace(",", ";").replace(" ", ";").split(";"):
        a = a.strip()
        if not a:
            continue
        ver, plus = a.split("+")[0], a.endswith("+PTX")
        num = ver.rstrip("af").replace(".", "")
        if not num.isdigit() or "." not in ver:
            return None
        code = num + ("a" if num == "90" or ver.endswith("a") else "f" if ver.endswith("f") else "")
        sass.append(f"-gencode=arch=compute_{code},code=sm_{code}")
        if plus:
            ptx.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    flags = list(dict.fromkeys(sass + ptx))
    return flags or None


def _extensions():
    if os.environ.get("FASTCONV_SKIP_CUDA_BUILD") == "1":
        print("fastconv: FASTCONV_SKIP_CUDA_BUILD=1, installing without the CUDA extension", file=sys.stderr)
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        print("fastconv: torch not importable at build time, installing without the CUDA extension", file=sys.stderr)
        return [], {}
    cuda_home = _find_cuda_home()
    if torch.version.cuda is None or cuda_home is None:
        print(f"fastconv: no CUDA build of torch (torch.version.cuda={torch.version.cuda}) or no nvcc "
              f"(CUDA_HOME={cuda_home}); installing without the CUDA extension", file=sys.stderr)
        return [], {}
    os.environ["CUDA_HOME"] = cuda_home
    cpp_extension.CUDA_HOME = cuda_home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    _check_arch_list(os.environ["TORCH_CUDA_ARCH_LIST"])
    # Op glue files without device code are .cpp (the host compiler reads ATen in ~15 s; nvcc in ~43 s);
    # csrc/host_emu/ holds the emulator harnesses, not part of the extension.
    cpp = [p for p in glob.glob("csrc/**/*.cpp", recursive=True) if not p.startswith("csrc/host_emu/")]
    sources = sorted(cpp) + sorted(glob.glob("csrc/**/*.cu", recursive=True))
    include_dirs = [str(ROOT / "csrc")]
    # torch's CUDA wheels ship headers (cuBLAS etc.) a minimal toolkit may lack.
    import site
    for sp in site.getsitepackages():
        for sub in ("nvidia/cu13/include", "nvidia/cuda_runtime/include"):
            p = Path(sp) / sub
            if p.is_dir():
                include_dirs.append(str(p))
    nvcc_flags = ["-O3", "--use_fast_math", "--expt-relaxed-constexpr",
                  "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                  "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-lineinfo"]
    if os.environ.get("FASTCONV_PTXAS_VERBOSE") == "1":
        nvcc_flags.append("-Xptxas=-v")
    gencode = _gencode_flags(os.environ["TORCH_CUDA_ARCH_LIST"])
    if gencode:  # (torch adds no arch flags of its own once the nvcc flags name one)
        nvcc_flags += gencode
        print("fastconv: nvcc " + " ".join(gencode), file=sys.stderr)
    ext = cpp_extension.CUDAExtension(
        "fastconv._C", sources, include_dirs=include_dirs,
        extra_compile_args={"cxx": ["-O3"], "nvcc": nvcc_flags})
    return [ext], {"build_ext": cpp_extension.BuildExtension}


ext_modules, cmdclass = _extensions()

setup(
    packages=find_packages(include=["fastconv", "fastconv.*"]),
    package_data={"fastconv": ["tuned/*.json"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
