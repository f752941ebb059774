#!/usr/bin/env bash
# The static kernel report (bench/README.md, "Static kernel report"): set up (scripts/env.sh builds
# fastconv._C when nvcc and a CUDA torch are there; FASTCONV_SKIP_CUDA_BUILD=1 skips it), then
# python -m bench.kernel_report with your arguments. No GPU needed; TRITON_INTERPRET must be unset.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
unset TRITON_INTERPRET
exec "$PY" -m bench.kernel_report "$@"
