# Sourced by scripts/test.sh and scripts/bench.sh: find or make a Python with fastconv's
# dependencies, then build the CUDA extension in place when a toolkit is there. Sets $PY.
#  - FASTCONV_PYTHON=/path/to/python  use that interpreter as is
#  - else ./.venv if it exists (refreshed when requirements-dev.txt changes)
#  - else the system python3 if it already has a CUDA build of torch, triton and pytest
#    (the GPU machine, which has no network)
#  - else create ./.venv and pip install requirements-dev.txt
# FASTCONV_SKIP_CUDA_BUILD=1 skips the extension build; FASTCONV_BUILD_OPTIONAL=1 (set by bench.sh)
# turns a failed build into a warning (the cuda backend is then reported unavailable);
# FASTCONV_BUILD_ONLY_WITH_GPU=1 (set by bench.sh) skips the build where no CUDA device is visible
# (nothing built there could run; the test command keeps compiling every .cu).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ="$ROOT/requirements-dev.txt"

have_stack() { "$1" -c "import torch, triton, pytest; assert torch.version.cuda" >/dev/null 2>&1; }

if [ -n "${FASTCONV_PYTHON:-}" ]; then
  PY=$FASTCONV_PYTHON
elif [ ! -x "$ROOT/.venv/bin/python" ] && have_stack python3; then
  PY=$(command -v python3)
else
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "fastconv: creating $ROOT/.venv" >&2
    python3 -m venv "$ROOT/.venv"
  fi
  PY=$ROOT/.venv/bin/python
  stamp="$ROOT/.venv/.fastconv-req"
  if [ ! -f "$stamp" ] || ! cmp -s "$REQ" "$stamp"; then
    echo "fastconv: installing requirements-dev.txt into .venv (the CUDA build of torch is ~5 GB)" >&2
    # --no-compile: no byte-compiling of every installed module (torch alone has thousands); Python
    # compiles what it imports on first use.
    "$PY" -m pip install -q --disable-pip-version-check --no-compile -r "$REQ"
    cp "$REQ" "$stamp"
  fi
fi
export PY
echo "fastconv: using $PY ($("$PY" -c 'import torch; print("torch", torch.__version__)'))" >&2

# Build fastconv._C in place (ninja makes it incremental) when nvcc and a CUDA torch are present.
if [ "${FASTCONV_BUILD_ONLY_WITH_GPU:-0}" = "1" ] && [ "${FASTCONV_SKIP_CUDA_BUILD:-0}" != "1" ] && \
   ! "$PY" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
  echo "fastconv: no CUDA device: not building fastconv._C (it could not run here)" >&2
  export FASTCONV_SKIP_CUDA_BUILD=1
fi
if [ "${FASTCONV_SKIP_CUDA_BUILD:-0}" != "1" ] && command -v nvcc >/dev/null 2>&1 && \
   "$PY" -c "import torch; assert torch.version.cuda" >/dev/null 2>&1; then
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    # On a GPU machine build for that GPU only (fast). Without one (CI) the build is a compile check
    # and the input of the static kernel report, which reads Hopper machine code: "9.0" only halves
    # the time of setup.py's default (sm_80 + sm_90a + PTX, what `pip install` builds). setup.py
    # builds "9.0" (an H100/H200's detected capability too) as sm_90a: gconv's wgmma path needs it.
    arch=$("$PY" -c "import torch; c=torch.cuda.get_device_capability() if torch.cuda.is_available() else None; print(f'{c[0]}.{c[1]}' if c else '')" 2>/dev/null || true)
    export TORCH_CUDA_ARCH_LIST=${arch:-9.0}
  fi
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  echo "fastconv: building fastconv._C (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0+PTX})" >&2
  log=$(mktemp)
  if ! (cd "$ROOT" && "$PY" setup.py -q build_ext --inplace >"$log" 2>&1); then
    grep -E "error|Error" "$log" | head -40 >&2 || true
    tail -20 "$log" >&2
    echo "fastconv: building the CUDA extension FAILED (full log: $log)" >&2
    if [ "${FASTCONV_BUILD_OPTIONAL:-0}" = "1" ]; then
      echo "fastconv: continuing WITHOUT the cuda backend (FASTCONV_BUILD_OPTIONAL=1)" >&2
    else
      exit 1
    fi
  fi
  rm -f "$log"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
