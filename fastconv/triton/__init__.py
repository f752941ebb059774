"""Triton kernels, one module per op: ``fastconv.triton.<op>.forward(...)`` (and ``backward``).

Imported lazily by fastconv.ops so that `import fastconv` works without triton. Launchers take
already-validated tensors (see fastconv/ops/<op>.py for the argument order) and run on CUDA
tensors, or on CPU tensors under TRITON_INTERPRET=1.
"""
