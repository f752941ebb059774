"""Op registration: importing this declares every fastconv::* schema (with or without fastconv._C)."""
from fastconv.ops.channel_shuffle import channel_shuffle
from fastconv.ops.depthwise_conv2d import depthwise_conv2d
from fastconv.ops.dwpw_conv2d import dwpw_conv2d
from fastconv.ops.group_conv1x1 import group_conv1x1
from fastconv.ops.inverted_residual import inverted_residual
from fastconv.ops.pwdw_conv2d import pwdw_conv2d
from fastconv.ops.shufflenet_v1_unit import shufflenet_v1_unit
from fastconv.ops.shufflenet_v2_unit import shufflenet_v2_unit


def _load_extension() -> None:
    """Import fastconv._C after the schemas exist so its TORCH_LIBRARY_IMPL blocks attach to them.
    A missing or broken extension is recorded (see fastconv.backends()), never raised here."""
    from fastconv._common import refresh_backends
    refresh_backends()


__all__ = ["channel_shuffle", "depthwise_conv2d", "dwpw_conv2d", "group_conv1x1", "inverted_residual",
           "pwdw_conv2d",
           "shufflenet_v1_unit", "shufflenet_v2_unit"]
