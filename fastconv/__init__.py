"""fastconv: fused depthwise/pointwise/grouped convolutions for lightweight CNNs.

Public ops (see README.md for the "equivalent to" table):
``dwpw_conv2d``, ``inverted_residual``, ``channel_shuffle``, ``group_conv1x1``,
``shufflenet_v1_unit``, ``shufflenet_v2_unit``; ``backends()`` says what can run here.
"""
from fastconv._common import backends
from fastconv.ops import (channel_shuffle, dwpw_conv2d, group_conv1x1, inverted_residual,
                          shufflenet_v1_unit, shufflenet_v2_unit)
from fastconv.ops import _load_extension

_load_extension()

__version__ = "0.1.0"
__all__ = ["backends", "channel_shuffle", "dwpw_conv2d", "group_conv1x1", "inverted_residual",
           "shufflenet_v1_unit", "shufflenet_v2_unit"]
