#!/usr/bin/env bash
# Compile one .cu file the way setup.py does (compile only, no link) and print one line per kernel:
# registers, spill bytes, stack frame (from ptxas -v), demangled.
# Usage: scripts/nvcc_check.sh csrc/<op>/<file>.cu [arch, default 90; e.g. 80, 90, 90a]
# Env: PYTHON (a CUDA build of torch, default .venv/bin/python), DEVICE_ONLY=1 (skip the host
# compile: -cubin, about twice as fast), RAW=1 (print the unfiltered ptxas output as well),
# KEEP=path (keep the object, or the cubin with DEVICE_ONLY=1, at path: for bench.kernel_report --obj).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
src=$1; arch=${2:-90}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(grep -o '/[^ ]*/bin/nvcc' "$(command -v nvcc)" 2>/dev/null || command -v nvcc)")")")}
export CUDA_HOME
incs=$($PY - <<'PY'
import site, sysconfig
from pathlib import Path
from torch.utils.cpp_extension import include_paths
paths = include_paths() + [sysconfig.get_paths()["include"], "csrc"]
for sp in site.getsitepackages():
    p = Path(sp) / "nvidia/cu13/include"
    if p.is_dir(): paths.append(str(p))
print(" ".join("-I" + p for p in paths))
PY
)
out=/tmp/nvcc_check_$$
mode=(-c -o "$out.o" --compiler-options -fPIC -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C)
[ "${DEVICE_ONLY:-0}" = 1 ] && mode=(-cubin -o "$out.cubin")
log=$("$CUDA_HOME/bin/nvcc" "$src" "${mode[@]}" $incs -I"$CUDA_HOME/include" \
  --expt-relaxed-constexpr -O3 --use_fast_math -lineinfo -std=c++20 \
  -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__ \
  -gencode=arch=compute_${arch},code=sm_${arch} -Xptxas=-v 2>&1) || { echo "$log"; rm -f "$out".*; exit 1; }
[ -n "${KEEP:-}" ] && cp "$out".* "$KEEP"
rm -f "$out".*
[ "${RAW:-0}" = 1 ] && echo "$log"
echo "$log" | grep -E "error|warning" | grep -v "ptxas info" || true
echo "$log" | awk '
  /Compiling entry function/ { match($0, /_Z[0-9A-Za-z_]+/); fn = substr($0, RSTART, RLENGTH) }
  /bytes stack frame/ { stack = $1; spill = $5 + $9 }
  /Used [0-9]+ registers/ { match($0, /Used [0-9]+/); regs = substr($0, RSTART + 5, RLENGTH - 5)
                            printf "%s\tregs=%s\tspill=%d\tstack=%s\n", fn, regs, spill, stack }' |
  { if command -v c++filt >/dev/null; then c++filt; else cat; fi } |
  sed -E 's/\(fastconv::[A-Za-z]+Params\)//; s/fastconv::[a-z_]+:://g'
