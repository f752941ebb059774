"""dwpw_conv2d cases: MobileNetV1 depthwise-separable blocks and MobileNetV2 t=1 blocks.

Eager: the block as the model ships it (dw -> BN -> act -> pw -> BN [-> act]).
Folded params: (dw_weight (C, 1, k, k), pw_weight (K, C, 1, 1), dw_bias (C,), pw_bias (K,)).
"""
from __future__ import annotations

from torch import nn

import fastconv
from fastconv import reference as ref
from bench.common import Stage, fold, parse_stages

OP = "dwpw_conv2d"


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    return block


def folded_params(entry, block: nn.Module, part: str) -> list:
    dw, pw = [s for s in parse_stages(block) if isinstance(s, Stage)]
    dw_w, dw_b = fold(dw.conv, dw.bn)
    pw_w, pw_b = fold(pw.conv, pw.bn)
    return [dw_w, pw_w, dw_b, pw_b]


def _kw(cfg):
    return dict(stride=cfg["stride"], dw_act=cfg["act"], pw_act=cfg["out_act"])


def reference(cfg, x, dw_w, pw_w, dw_b, pw_b):
    """x: (N, C, H, W) -> (N, K, H', W'), cuDNN convs with BN folded."""
    return ref.dwpw_conv2d(x, dw_w, pw_w, dw_b, pw_b, residual=x if cfg["residual"] else None, **_kw(cfg))


def fast(cfg, x, dw_w, pw_w, dw_b, pw_b, backend):
    return fastconv.dwpw_conv2d(x, dw_w, pw_w, dw_b, pw_b, residual=x if cfg["residual"] else None,
                                backend=backend, **_kw(cfg))


def param_shapes(cfg) -> list:
    c, k, kk = cfg["C"], cfg["K"], cfg["kernel"]
    return [(c, 1, kk, kk), (k, c, 1, 1), (c,), (k,)]
