"""channel_shuffle cases: the shuffle inside ShuffleNetV1 units (after gconv1) and at the end of
ShuffleNetV2 units (groups 2). No parameters and no BN, so there is no "eager_folded" provider.

Eager: what the model runs: ``F.channel_shuffle`` (ShuffleNetV1, fastconv.models) or torchvision's
view/transpose/contiguous ``channel_shuffle`` (ShuffleNetV2).
"""
from __future__ import annotations

from torch import nn

import fastconv
from fastconv import reference as ref

OP = "channel_shuffle"
HAS_BN = False


class _TorchvisionShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        from torchvision.models.shufflenetv2 import channel_shuffle
        return channel_shuffle(x, self.groups)


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    g = entry.cfg["groups"]
    if entry.sources[0].family == "shufflenet_v2":
        return _TorchvisionShuffle(g)
    return nn.ChannelShuffle(g)


def folded_params(entry, block: nn.Module, part: str) -> list:
    return []


def reference(cfg, x):
    """x: (N, C, H, W) -> (N, C, H, W)."""
    return ref.channel_shuffle(x, cfg["groups"])


def fast(cfg, x, backend):
    return fastconv.channel_shuffle(x, cfg["groups"], backend=backend)


def param_shapes(cfg) -> list:
    return []
