"""inverted_residual cases: MobileNetV2 (t > 1) and MobileNetV3 blocks, with or without SE.

Eager: the torchvision block. Folded params: (expand_w (E, C, 1, 1) or None, dw_w (E, 1, k, k),
project_w (K, E, 1, 1), expand_b or None, dw_b, project_b, se_w1 (S, E, 1, 1), se_b1, se_w2 (E, S, 1, 1),
se_b2) with the SE entries None for blocks without SE. V3 blocks with expand ratio 1 have no expand conv.
"""
from __future__ import annotations

from torch import nn

import fastconv
from fastconv import reference as ref
from bench.common import SE, Stage, fold, is_depthwise, parse_stages

OP = "inverted_residual"


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    return block


def folded_params(entry, block: nn.Module, part: str) -> list:
    items = parse_stages(block)
    convs = [s for s in items if isinstance(s, Stage)]
    se = next((s for s in items if isinstance(s, SE)), None)
    dw = next(s for s in convs if is_depthwise(s.conv))
    ew, eb = fold(convs[0].conv, convs[0].bn) if convs[0] is not dw else (None, None)
    dw_w, dw_b = fold(dw.conv, dw.bn)
    pw, pb = fold(convs[-1].conv, convs[-1].bn)
    if se is None:
        s = [None] * 4
    else:
        s = [*fold(se.fc1, None), *fold(se.fc2, None)]
    return [ew, dw_w, pw, eb, dw_b, pb, *s]


def _kw(cfg):
    return dict(stride=cfg["stride"], act=cfg["act"], residual=bool(cfg["residual"]),
                se_act=cfg["se_act"] if cfg["se"] else "relu",
                se_gate=cfg["se_gate"] if cfg["se"] else "hardsigmoid")


def reference(cfg, x, ew, dw, pw, eb, db, pb, s1w, s1b, s2w, s2b):
    """x: (N, C, H, W) -> (N, K, H', W'), cuDNN convs with BN folded."""
    se = (s1w, s1b, s2w, s2b) if s1w is not None else None
    return ref.inverted_residual(x, ew, dw, pw, eb, db, pb, se=se, **_kw(cfg))


def fast(cfg, x, ew, dw, pw, eb, db, pb, s1w, s1b, s2w, s2b, backend):
    se = (s1w, s1b, s2w, s2b) if s1w is not None else None
    return fastconv.inverted_residual(x, ew, dw, pw, eb, db, pb, se=se, backend=backend, **_kw(cfg))


def param_shapes(cfg) -> list:
    c, e, k, kk, s = cfg["C"], cfg["hidden"], cfg["K"], cfg["kernel"], cfg["se"]
    ex = cfg["expand"]
    se = [(s, e, 1, 1), (s,), (e, s, 1, 1), (e,)] if s else [None] * 4
    return [(e, c, 1, 1) if ex else None, (e, 1, kk, kk), (k, e, 1, 1), (e,) if ex else None, (e,), (k,), *se]
