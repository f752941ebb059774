"""fastconv: fused depthwise/pointwise/grouped convolutions for lightweight CNNs.

Public ops (see README.md for the "equivalent to" table):
``dwpw_conv2d``, ``inverted_residual``, ``channel_shuffle``, ``group_conv1x1``,
``shufflenet_v1_unit``, ``shufflenet_v2_unit``, ``pwdw_conv2d``, ``depthwise_conv2d`` (training: fast
backward too); ``backends()`` says what can run here.
Modules in ``fastconv.nn``, models in ``fastconv.models``, ``optimize(model)`` for whole models.
"""
from fastconv._common import backends, refresh_backends
from fastconv.ops import (_load_extension, channel_shuffle, depthwise_conv2d, dwpw_conv2d, group_conv1x1,
                          inverted_residual, pwdw_conv2d, shufflenet_v1_unit, shufflenet_v2_unit)

_load_extension()

from fastconv import models, nn  # noqa: E402  (after the ops: the modules call them)
from fastconv.optimize import OptimizeReport, optimize, set_backend  # noqa: E402

__version__ = "0.1.0"
__all__ = ["OptimizeReport", "backends", "channel_shuffle", "depthwise_conv2d", "dwpw_conv2d", "group_conv1x1",
           "inverted_residual", "models", "nn", "optimize", "pwdw_conv2d", "refresh_backends", "set_backend",
           "shufflenet_v1_unit",
           "shufflenet_v2_unit"]
