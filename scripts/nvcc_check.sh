#!/usr/bin/env bash
# Compile one .cu file the way setup.py does (compile only, no link) and print ptxas register/spill
# reports. Usage: scripts/nvcc_check.sh csrc/<op>/<file>.cu [arch, default 90]
# Needs a CUDA build of torch in $PYTHON (default .venv/bin/python) and nvcc.
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
"$CUDA_HOME/bin/nvcc" -c "$src" -o /tmp/nvcc_check_$$.o $incs -I"$CUDA_HOME/include" \
  -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C --expt-relaxed-constexpr \
  --compiler-options -fPIC -O3 --use_fast_math -lineinfo -std=c++20 \
  -gencode=arch=compute_${arch},code=sm_${arch} -Xptxas=-v 2>&1 | grep -v "^$" | \
  sed -E 's/_Z[0-9A-Za-z_]+/&/' 
rm -f /tmp/nvcc_check_$$.o
