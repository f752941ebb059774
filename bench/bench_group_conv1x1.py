"""group_conv1x1 cases: the two grouped 1x1 convs inside ShuffleNetV1 units.

part "gconv1": gconv1 -> BN -> ReLU -> channel shuffle (groups g; no shuffle when g == 1), the conv
with the shuffle fused into its output; part "gconv2": gconv2 -> BN (no activation, no shuffle).
Folded params: (weight (K, C/groups, 1, 1), bias (K,)).
"""
from __future__ import annotations

from torch import nn

import fastconv
from fastconv import reference as ref
from bench.common import fold

OP = "group_conv1x1"


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    if part == "gconv1":
        shuffle = [nn.ChannelShuffle(block.groups)] if block.groups > 1 else []
        return nn.Sequential(block.gconv1, block.bn1, nn.ReLU(), *shuffle)
    return nn.Sequential(block.gconv2, block.bn3)


def folded_params(entry, block: nn.Module, part: str) -> list:
    if part == "gconv1":
        return list(fold(block.gconv1, block.bn1))
    return list(fold(block.gconv2, block.bn3))


def reference(cfg, x, w, b):
    """x: (N, C, H, W) -> (N, K, H, W)."""
    return ref.group_conv1x1(x, w, b, groups=cfg["groups"], shuffle_out=cfg["shuffle_out"] or None,
                             act=cfg["act"])


def fast(cfg, x, w, b, backend):
    return fastconv.group_conv1x1(x, w, b, groups=cfg["groups"], shuffle_out=cfg["shuffle_out"] or None,
                                  act=cfg["act"], backend=backend)


def param_shapes(cfg) -> list:
    return [(cfg["K"], cfg["C"] // cfg["groups"], 1, 1), (cfg["K"],)]
