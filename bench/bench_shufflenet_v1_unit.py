"""shufflenet_v1_unit cases: whole ShuffleNetV1 units (fastconv.models.ShuffleV1Block).

Eager: the unit as the model ships it. Folded params: (w1 (M, C/g1, 1, 1), b1, dw_weight (M, 1, 3, 3),
dw_bias, w2 (K, M/g, 1, 1), b2).
"""
from __future__ import annotations

from torch import nn

import fastconv
from fastconv import reference as ref
from bench.common import fold

OP = "shufflenet_v1_unit"


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    return block


def folded_params(entry, block: nn.Module, part: str) -> list:
    return [*fold(block.gconv1, block.bn1), *fold(block.dw, block.bn2), *fold(block.gconv2, block.bn3)]


def reference(cfg, x, w1, b1, dw, db, w2, b2):
    """x: (N, C, H, W) -> (N, C, H, W) at stride 1, (N, C + K, H/2, W/2) at stride 2."""
    return ref.shufflenet_v1_unit(x, w1, b1, dw, db, w2, b2, groups=cfg["groups"],
                                  first_groups=cfg["first_groups"], stride=cfg["stride"])


def fast(cfg, x, w1, b1, dw, db, w2, b2, backend):
    return fastconv.shufflenet_v1_unit(x, w1, b1, dw, db, w2, b2, groups=cfg["groups"],
                                       first_groups=cfg["first_groups"], stride=cfg["stride"], backend=backend)


def param_shapes(cfg) -> list:
    c, m, k, g, g1 = cfg["C"], cfg["hidden"], cfg["K"], cfg["groups"], cfg["first_groups"]
    return [(m, c // g1, 1, 1), (m,), (m, 1, 3, 3), (m,), (k, m // g, 1, 1), (k,)]
