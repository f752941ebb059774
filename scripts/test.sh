#!/usr/bin/env bash
# README's test command: set up (scripts/env.sh), build fastconv._C if possible, run pytest.
# Without a CUDA device the Triton kernels run in the interpreter (TRITON_INTERPRET=1) and the
# GPU-only tests are skipped. Extra arguments go to pytest; FASTCONV_TEST_WORKERS=N sets the number
# of pytest-xdist workers (default: one per core up to 4 without a GPU, 1 with one).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
workers=${FASTCONV_TEST_WORKERS:-1}
if ! "$PY" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
  export TRITON_INTERPRET=1
  echo "fastconv: no CUDA device: Triton kernels run in the interpreter, GPU tests are skipped" >&2
  # The interpreter is single-threaded Python: one pytest worker per core (at most 4). With a GPU
  # the tests stay in one process (one CUDA context, no contention for the device).
  workers=${FASTCONV_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}
fi
par=()
if [ "$workers" != 1 ] && "$PY" -c "import xdist" >/dev/null 2>&1; then
  par=(-n "$workers" --dist worksteal)   # worksteal: idle workers take queued tests from busy ones
  echo "fastconv: $workers pytest workers (pytest-xdist; FASTCONV_TEST_WORKERS=1 runs them in one process)" >&2
fi
exec "$PY" -m pytest -q "${par[@]}" "$@"
