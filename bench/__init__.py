"""fastconv's benchmark suite: block-shape catalogue, providers per op, runner, tuner.

Entry points: ``python -m bench.run`` (per-block benchmark, see bench/README.md),
``python -m bench.bench_models`` (whole models), ``python -m bench.tune`` (tuned tables),
``python -m bench.catalogue`` (print the catalogue).
"""
