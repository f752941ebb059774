#!/usr/bin/env bash
# README's first command: set up (scripts/env.sh), build fastconv._C when possible, run the benchmark.
#   bash scripts/bench.sh [--quick] [--family F] [--op OP] [--dtype D] [--batch N] [--strict] ...
#                                            per-block suite (python -m bench.run --help)
#   bash scripts/bench.sh --models [...]     whole models, baseline vs fastconv.optimize
#   bash scripts/bench.sh tune CSV...        write fastconv/tuned/<device>.json from results
#   bash scripts/bench.sh report CSV         regenerate summary.md and plots from a blocks.csv
# Without a CUDA device it says so, checks every catalogue block against the reference (Triton
# kernels in the interpreter) and times only the PyTorch reference, on the CPU.
# Results: bench/results/<device>/ (CPU runs: bench/results/cpu/).
set -euo pipefail
export FASTCONV_BUILD_OPTIONAL=${FASTCONV_BUILD_OPTIONAL:-1}
export FASTCONV_BUILD_ONLY_WITH_GPU=${FASTCONV_BUILD_ONLY_WITH_GPU:-1}
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if ! "$PY" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
  export TRITON_INTERPRET=1
  echo "fastconv: NO CUDA DEVICE: CPU run (Triton kernels in the interpreter, only the reference is timed)" >&2
fi
case "${1:-}" in
  tune) shift; exec "$PY" -m bench.tune "$@" ;;
  report) shift; exec "$PY" -m bench.report "$@" ;;
  *) exec "$PY" -m bench.run "$@" ;;
esac
