#!/usr/bin/env bash
# The whole GPU checklist in ONE device call, ordered by value, inside 10 minutes on an H200
# (device time is 15 minutes a session, the machine's start included; see shared/PLATFORM.md).
#   bash scripts/gpu_session.sh [total seconds, default 540]
# Each step runs under `timeout` with its own budget, capped by what is left of the total, and
# writes its log to $OUT as it goes, so a step that overruns costs only itself and everything
# finished before it comes back. Order (most valuable first):
#   1. build fastconv._C for this GPU's arch only, all cores            (budget 180 s)
#   2. correctness of every kernel at real sizes: the GPU tests           (budget 170 s)
#   3. the quick benchmark (fp16, a few blocks per family, all providers) (budget 110 s)
#   4. whole models vs fastconv.optimize, quick                          (budget 70 s)
#   5. compute-sanitizer on a few kernels                                (budget 40 s)
# Results: bench/results/<device>/ (CSV rows carry device name, git sha, torch/CUDA/triton
# versions) plus the logs, tarred into $OUT/09_results.tgz to be committed from the dev machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/fastconv-gpu-out}; mkdir -p "$OUT" /tmp/fastconv-gpu-extra
# The device tool returns at most 8 files: 00_steps.txt, five step logs and 09_results.tgz
# (which also holds the junit XML and the sanitizer detail).
total=${1:-540}
start=$(date +%s)
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}

left() { echo $(( total - ($(date +%s) - start) )); }
# step NAME BUDGET_S LOGFILE CMD...: run CMD with min(BUDGET_S, time left - 15 s) seconds.
step() {
  local name=$1 budget=$2 log=$3; shift 3
  local l; l=$(( $(left) - 15 ))
  (( budget > l )) && budget=$l
  if (( budget < 20 )); then echo "== $name: SKIPPED (no time left)" | tee -a "$OUT/00_steps.txt"; return; fi
  local t0; t0=$(date +%s)
  timeout -k 10 "$budget" "$@" > "$OUT/$log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc ($(( $(date +%s) - t0 )) s of $budget s)$([ $rc = 124 ] && echo ' TIMED OUT')" | tee -a "$OUT/00_steps.txt"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  git rev-parse HEAD 2>/dev/null || echo "no git"
} > "$OUT/00_steps.txt" 2>&1

arch=$(python3 -c "import torch; c=torch.cuda.get_device_capability(); print(f'{c[0]}.{c[1]}')" 2>/dev/null)
# sm_90a where the kernels use Hopper-only instructions; setup.py maps 9.0 accordingly.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch}
step build 180 01_build.log bash -c 'source scripts/env.sh && "$PY" -c "import fastconv; print(fastconv.backends())"'
export FASTCONV_SKIP_CUDA_BUILD=1   # built once above; the later steps reuse it

# CPU-only checks (host emulator, sm_90 codegen, model sweep, serving) ran in CI already.
step tests 170 02_tests.log bash scripts/test.sh -q -p no:cacheprovider --maxfail=25 --durations=15 \
  --junitxml=/tmp/fastconv-gpu-extra/02_tests.xml --ignore=tests/test_cuda_emulation.py \
  --ignore=tests/test_triton_codegen.py --ignore=tests/test_sweep.py --ignore=tests/test_serving.py \
  --ignore=tests/test_kernel_report.py
step bench_quick 110 03_bench_quick.log bash scripts/bench.sh --quick --strict
step bench_models 70 04_bench_models.log bash scripts/bench.sh --models --quick
step sanitizer 40 05_sanitizer.log env SANITIZER_TOOLS=memcheck SANITIZER_KERNEL_FILTER=fastconv \
  bash tests/sanitize.sh /tmp/fastconv-gpu-extra/05_sanitizer_detail.log

dev=$(ls -td bench/results/*/ 2>/dev/null | grep -v -e '/cpu' -e '/static' | head -1)
tar czf "$OUT/09_results.tgz" ${dev:+"$dev"} /tmp/fastconv-gpu-extra fastconv/tuned 2>/dev/null
echo "total $(( $(date +%s) - start )) s" >> "$OUT/00_steps.txt"
ls -la "$OUT"
