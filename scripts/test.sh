#!/usr/bin/env bash
# README's test command: set up (scripts/env.sh), build fastconv._C if possible, run pytest.
# Without a CUDA device the Triton kernels run in the interpreter (TRITON_INTERPRET=1) and the
# GPU-only tests are skipped. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if ! "$PY" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
  export TRITON_INTERPRET=1
  echo "fastconv: no CUDA device: Triton kernels run in the interpreter, GPU tests are skipped" >&2
fi
exec "$PY" -m pytest -q "$@"
