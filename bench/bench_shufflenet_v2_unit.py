"""shufflenet_v2_unit cases: torchvision ShuffleNetV2 units (InvertedResidual), output shuffle included.

Eager: the torchvision unit. Folded params: branch2 (pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b) then, at
stride 2, branch1 (dw_w, dw_b, pw_w, pw_b).
"""
from __future__ import annotations

from torch import nn

import fastconv
from fastconv import reference as ref
from bench.common import Stage, fold, parse_stages

OP = "shufflenet_v2_unit"


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    return block


def _branch(seq: nn.Module) -> list:
    out = []
    for s in parse_stages(seq):
        assert isinstance(s, Stage)
        out.extend(fold(s.conv, s.bn))
    return out


def folded_params(entry, block: nn.Module, part: str) -> list:
    b2 = _branch(block.branch2)
    return b2 + (_branch(block.branch1) if block.stride > 1 else [])


def reference(cfg, x, *p):
    """x: (N, C, H, W) -> (N, C, H, W) at stride 1, (N, 2B, H/2, W/2) at stride 2."""
    b1 = tuple(p[6:]) if cfg["stride"] > 1 else None
    return ref.shufflenet_v2_unit(x, tuple(p[:6]), b1, stride=cfg["stride"])


def fast(cfg, x, *p, backend):
    b1 = tuple(p[6:]) if cfg["stride"] > 1 else None
    return fastconv.shufflenet_v2_unit(x, tuple(p[:6]), b1, stride=cfg["stride"], backend=backend)


def param_shapes(cfg) -> list:
    c, b = cfg["C"], cfg["hidden"]
    cin2 = c // 2 if cfg["stride"] == 1 else c
    shapes = [(b, cin2, 1, 1), (b,), (b, 1, 3, 3), (b,), (b, b, 1, 1), (b,)]
    if cfg["stride"] > 1:
        shapes += [(c, 1, 3, 3), (c,), (b, c, 1, 1), (b,)]
    return shapes
