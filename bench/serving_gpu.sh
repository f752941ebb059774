#!/usr/bin/env bash
# One bounded GPU-session run of the serving benchmark (bench/serving.py) on a machine without
# network: unpacks serving_bundle.tar.xz (made by bench/serving_bundle.sh) when it is there, prints
# the stack, runs, and tars bench/results/<device>/serving/ into $OUT when $OUT is set.
#   bash bench/serving_gpu.sh [extra bench.serving arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f serving_bundle.tar.xz ] && [ ! -d .serving_site ]; then
  tar -xJf serving_bundle.tar.xz
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d .serving_site ]; then
  # absolute paths: tritonserver and its Python-backend stub inherit them
  export PYTHONPATH=$PWD/.serving_site:$PYTHONPATH PATH=$PWD/.serving_site/bin:$PATH
fi
PY=${PYTHON:-python3}
"$PY" -c "import numpy, torch, pytriton, fastconv; print('numpy', numpy.__version__, '| torch', torch.__version__, \
'| cuda', torch.cuda.is_available(), '| fastconv backends', fastconv.backends())" || exit 1
# 2 models x 2 variants x 4 concurrencies; the budget stops starting servers, each start warms up
# and captures graphs for every batch bucket first.
timeout 560 "$PY" -m bench.serving --concurrency 1 16 64 128 --measurement-ms 2000 --time-budget-min 7 "$@"
rc=$?
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/serving_results.tar.gz" bench/results/*/serving 2>/dev/null || true
fi
exit $rc
