#!/usr/bin/env bash
# One call on the GPU machine does the whole GPU checklist (device time is scarce; see
# shared/PLATFORM.md): build, GPU tests, fuzzing at real sizes, compute-sanitizer, the quick and
# headline benchmarks, whole models, and the tuned auto table. Logs and CSVs go to $OUT (the device
# tool returns at most 8 files) and results stay under bench/results/<device>/ to be committed.
#   bash scripts/gpu_session.sh [minutes for the headline suite, default 12]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/fastconv-gpu-out}; mkdir -p "$OUT"
budget=${1:-12}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/00_device.txt" 2>&1
{
  echo "== tests (GPU) =="
  bash scripts/test.sh -x -q -p no:cacheprovider --durations=15 2>&1 | tail -60
  echo "== fuzz at real sizes =="
  FASTCONV_FUZZ_EXAMPLES=${FASTCONV_FUZZ_EXAMPLES:-150} bash scripts/test.sh -q -p no:cacheprovider tests/test_fuzz.py 2>&1 | tail -15
} > "$OUT/01_tests.log" 2>&1
bash tests/sanitize.sh "$OUT/02_sanitizer.log" > /dev/null 2>&1 || echo "sanitizer reported errors" >> "$OUT/02_sanitizer.log"
bash scripts/bench.sh --quick --strict > "$OUT/03_bench_quick.log" 2>&1
bash scripts/bench.sh --suite headline --time-budget-min "$budget" > "$OUT/04_bench_headline.log" 2>&1
bash scripts/bench.sh --models --quick > "$OUT/05_bench_models.log" 2>&1
dev=$(ls -td bench/results/*/ 2>/dev/null | grep -v '/cpu' | head -1)
if [ -n "$dev" ]; then
  bash scripts/bench.sh tune "$dev"/*.csv > "$OUT/06_tune.log" 2>&1
  tar czf "$OUT/07_results.tgz" "$dev" fastconv/tuned 2>/dev/null
fi
ls -la "$OUT"
