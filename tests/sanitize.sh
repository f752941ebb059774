#!/usr/bin/env bash
# Run every CUDA-backend op (tests/sanitize_driver.py) under compute-sanitizer's memcheck,
# racecheck and initcheck; one log for all of them.
#
#   bash tests/sanitize.sh [LOG] [-- extra driver args, e.g. --backend triton --size real --grad]
#
# LOG defaults to bench/results/sanitizer.log. Exit status: 0 clean, 1 any sanitizer error or
# wrong result, 0 with a "skipped" message when there is no compute-sanitizer, CUDA device or
# built extension (so CPU CI can call it harmlessly).
# Environment: SANITIZER_TOOLS (default "memcheck racecheck initcheck"), PYTHON (default: .venv
# python if present, else python3), SANITIZER_KERNEL_FILTER (a kernel-name substring: only those
# kernels are instrumented; default: all kernels, incl. PyTorch's copies).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
LOG="bench/results/sanitizer.log"
if [[ $# -gt 0 && "$1" != "--" ]]; then LOG="$1"; shift; fi
[[ "${1:-}" == "--" ]] && shift
DRIVER_ARGS=("$@")
TOOLS="${SANITIZER_TOOLS:-memcheck racecheck initcheck}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

skip() { echo "sanitize.sh: skipped: $*" >&2; exit 0; }

SAN="$(command -v compute-sanitizer || true)"
if [[ -z "$SAN" && -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/compute-sanitizer" ]]; then
  SAN="$CUDA_HOME/bin/compute-sanitizer"
fi
[[ -n "$SAN" ]] || skip "compute-sanitizer not found (it ships with the CUDA toolkit)"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - <<'EOF' || skip "no CUDA device, or fastconv._C is not built"
import sys, torch, fastconv
ok = torch.cuda.is_available() and fastconv.backends()["cuda"]["available"]
sys.exit(0 if ok else 1)
EOF

mkdir -p "$(dirname "$LOG")"
: > "$LOG"
{
  echo "# fastconv sanitizer run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $("$SAN" --version | tail -1)"
  echo "# $("$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())')"
  echo "# driver args: ${DRIVER_ARGS[*]:-(default: --backend cuda)}"
} >> "$LOG"

# Without the caching allocator every tensor is its own cudaMalloc, so memcheck sees an
# out-of-bounds access past a tensor's end instead of landing in a neighbour in the same block.
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
FILTER=()
[[ -n "${SANITIZER_KERNEL_FILTER:-}" ]] && FILTER=(--kernel-name "kns=$SANITIZER_KERNEL_FILTER")

status=0
for tool in $TOOLS; do
  echo "=== $tool ===" | tee -a "$LOG"
  tmp="$(mktemp)"
  "$SAN" --tool "$tool" "${FILTER[@]}" --error-exitcode 86 --print-limit 200 \
    "$PYTHON" tests/sanitize_driver.py "${DRIVER_ARGS[@]}" > "$tmp" 2>&1
  rc=$?
  cat "$tmp" >> "$LOG"
  summary="$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$tmp" | tail -1)"
  rm -f "$tmp"
  if [[ $rc -ne 0 ]]; then
    echo "$tool: FAILED (exit $rc) ${summary}" | tee -a "$LOG"
    status=1
  elif [[ -n "$summary" ]] && ! grep -qE ' 0 (errors|hazards)' <<<"$summary"; then
    echo "$tool: FAILED ${summary}" | tee -a "$LOG"
    status=1
  else
    echo "$tool: clean ${summary}" | tee -a "$LOG"
  fi
done
echo "sanitize.sh: $([[ $status -eq 0 ]] && echo clean || echo ERRORS); log: $LOG" | tee -a "$LOG"
exit $status
