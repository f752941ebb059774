"""pwdw_conv2d cases: GhostNet ghost modules (primary 1x1 -> cheap depthwise, concatenated) and
MobileNetV4 universal inverted residuals' pw_exp -> dw_mid (timm).

Eager: the two convs as the model ships them (1x1 -> BN -> act -> dw -> BN -> act [-> cat]); a ghost
module's own slice of the concatenation to its output width is not part of the op.
Folded params: (pw_weight (M, C, 1, 1), dw_weight (M, 1, k, k), pw_bias (M,), dw_bias (M,)).
The catalogue marks concat by K == 2 * hidden (M).
"""
from __future__ import annotations

import torch
from torch import nn

import fastconv
from fastconv import reference as ref
from bench.catalogue import pwdw_stages
from bench.common import fold

OP = "pwdw_conv2d"


class _PwDw(nn.Module):
    def __init__(self, pw: nn.Module, dw: nn.Module, concat: bool):
        super().__init__()
        self.pw, self.dw, self.concat = pw, dw, concat

    def forward(self, x):
        h = self.pw(x)
        y = self.dw(h)
        return torch.cat([h, y], 1) if self.concat else y


def _kind(block: nn.Module) -> str:
    return "ghost" if type(block).__name__ == "GhostModule" else "uir"


def eager_module(entry, block: nn.Module, part: str) -> nn.Module:
    if _kind(block) == "ghost":
        return _PwDw(block.primary_conv, block.cheap_operation, True)
    return _PwDw(block.pw_exp, block.dw_mid, False)


def folded_params(entry, block: nn.Module, part: str) -> list:
    pw, dw = pwdw_stages(_kind(block), block)
    pw_w, pw_b = fold(pw.conv, pw.bn)
    dw_w, dw_b = fold(dw.conv, dw.bn)
    return [pw_w, dw_w, pw_b, dw_b]


def _kw(cfg):
    return dict(stride=cfg["stride"], pw_act=cfg["act"], dw_act=cfg["out_act"], concat=cfg["K"] == 2 * cfg["hidden"])


def reference(cfg, x, pw_w, dw_w, pw_b, dw_b):
    """x: (N, C, H, W) -> (N, M [+ M], H', W'), cuDNN convs with BN folded."""
    return ref.pwdw_conv2d(x, pw_w, dw_w, pw_b, dw_b, **_kw(cfg))


def fast(cfg, x, pw_w, dw_w, pw_b, dw_b, backend):
    return fastconv.pwdw_conv2d(x, pw_w, dw_w, pw_b, dw_b, backend=backend, **_kw(cfg))


def param_shapes(cfg) -> list:
    c, m, kk = cfg["C"], cfg["hidden"], cfg["kernel"]
    return [(m, c, 1, 1), (m, 1, kk, kk), (m,), (m,)]
