"""Readable PyTorch for every fastconv op: the ground truth the fused kernels are tested against.

These run on any device and dtype. They take already-validated arguments (the public functions in
``fastconv.ops`` check them) and spell out exactly the composition each op is defined to equal.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fastconv._common import apply_act


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """x: (N, C, H, W) -> (N, C, H, W), channel g*(C/groups)+i moves to i*groups+g."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, stride=1, padding=None,
                     dilation=1, act: str = "none") -> Tensor:
    """x: (N, C, H, W), weight: (C*m, 1, kh, kw) -> (N, C*m, H', W'); stride/padding/dilation int or
    (h, w); padding None = dilation * (k // 2)."""
    kh, kw = weight.shape[-2:]
    stride = tuple(stride) if isinstance(stride, (tuple, list)) else (stride, stride)
    dilation = tuple(dilation) if isinstance(dilation, (tuple, list)) else (dilation, dilation)
    if padding is None:
        padding = (dilation[0] * (kh // 2), dilation[1] * (kw // 2))
    padding = tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding)
    return apply_act(F.conv2d(x, weight, bias, stride, padding, dilation, groups=x.shape[1]), act)


def dwpw_conv2d(x: Tensor, dw_weight: Tensor, pw_weight: Tensor, dw_bias: Optional[Tensor] = None,
                pw_bias: Optional[Tensor] = None, *, stride: int = 1, padding: Optional[int] = None,
                dilation: int = 1, dw_act: str = "none", pw_act: str = "none",
                residual: Optional[Tensor] = None) -> Tensor:
    """x: (N, C, H, W), dw_weight: (C, 1, k, k), pw_weight: (K, C, 1, 1) -> (N, K, H', W')."""
    k = dw_weight.shape[-1]
    if padding is None:
        padding = (k // 2) * dilation
    y = apply_act(F.conv2d(x, dw_weight, dw_bias, stride, padding, dilation, groups=x.shape[1]), dw_act)
    out = apply_act(F.conv2d(y, pw_weight, pw_bias), pw_act)
    if residual is not None:
        out = out + residual
    return out


def pwdw_conv2d(x: Tensor, pw_weight: Tensor, dw_weight: Tensor, pw_bias: Optional[Tensor] = None,
                dw_bias: Optional[Tensor] = None, *, stride: int = 1, padding: Optional[int] = None,
                dilation: int = 1, pw_act: str = "none", dw_act: str = "none", concat: bool = False,
                residual: Optional[Tensor] = None) -> Tensor:
    """x: (N, C, H, W), pw_weight: (M, C, 1, 1), dw_weight: (M*m, 1, k, k)
    -> (N, M*m, H', W'), or (N, M + M*m, H, W) with concat (h in front of y)."""
    k = dw_weight.shape[-1]
    if padding is None:
        padding = (k // 2) * dilation
    h = apply_act(F.conv2d(x, pw_weight, pw_bias), pw_act)
    y = apply_act(F.conv2d(h, dw_weight, dw_bias, stride, padding, dilation, groups=h.shape[1]), dw_act)
    out = torch.cat([h, y], 1) if concat else y
    if residual is not None:
        out = out + residual
    return out


def squeeze_excite(h: Tensor, se: Sequence[Tensor], se_act: str = "relu",
                   se_gate: str = "hardsigmoid") -> Tensor:
    """h: (N, C, H, W), se = (w1: (S, C, 1, 1), b1: (S,), w2: (C, S, 1, 1), b2: (C,)) -> h * gate."""
    w1, b1, w2, b2 = se
    s = h.mean(dim=(2, 3), keepdim=True)
    s = apply_act(F.conv2d(s, w1, b1), se_act)
    s = apply_act(F.conv2d(s, w2, b2), se_gate)
    return h * s


def inverted_residual(x: Tensor, expand_weight: Optional[Tensor], dw_weight: Tensor,
                      project_weight: Tensor, expand_bias: Optional[Tensor] = None,
                      dw_bias: Optional[Tensor] = None, project_bias: Optional[Tensor] = None, *,
                      stride: int = 1, padding: Optional[int] = None, act: str = "relu6",
                      se: Optional[Sequence[Tensor]] = None, se_act: str = "relu",
                      se_gate: str = "hardsigmoid", residual: bool = False) -> Tensor:
    """x: (N, C, H, W), expand_weight: (E, C, 1, 1) or None (no expansion, E = C),
    dw_weight: (E, 1, k, k), project_weight: (K, E, 1, 1) -> (N, K, H', W')."""
    k = dw_weight.shape[-1]
    if padding is None:
        padding = k // 2
    h = x if expand_weight is None else apply_act(F.conv2d(x, expand_weight, expand_bias), act)
    h = apply_act(F.conv2d(h, dw_weight, dw_bias, stride, padding, groups=h.shape[1]), act)
    if se is not None:
        h = squeeze_excite(h, se, se_act, se_gate)
    out = F.conv2d(h, project_weight, project_bias)
    if residual:
        out = out + x
    return out


def group_conv1x1(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *, groups: int,
                  shuffle_in: Optional[int] = None, shuffle_out: Optional[int] = None,
                  act: str = "none") -> Tensor:
    """x: (N, C, H, W), weight: (K, C/groups, 1, 1) -> (N, K, H, W)."""
    y = channel_shuffle(x, shuffle_in) if shuffle_in else x
    y = apply_act(F.conv2d(y, weight, bias, groups=groups), act)
    return channel_shuffle(y, shuffle_out) if shuffle_out else y


def shufflenet_v1_unit(x: Tensor, w1: Tensor, b1: Optional[Tensor], dw_weight: Tensor,
                       dw_bias: Optional[Tensor], w2: Tensor, b2: Optional[Tensor], *, groups: int,
                       first_groups: Optional[int] = None, stride: int = 1) -> Tensor:
    """x: (N, C, H, W), w1: (M, C/g1, 1, 1), dw_weight: (M, 1, 3, 3), w2: (K, M/g, 1, 1).
    stride 1 -> (N, C, H, W) (K == C); stride 2 -> (N, C + K, H', W')."""
    y = torch.relu(F.conv2d(x, w1, b1, groups=first_groups or groups))
    y = channel_shuffle(y, groups)
    y = F.conv2d(y, dw_weight, dw_bias, stride, 1, groups=y.shape[1])
    y = F.conv2d(y, w2, b2, groups=groups)
    if stride == 1:
        return torch.relu(x + y)
    return torch.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), y], 1))


def _v2_branch2(z: Tensor, branch2: Sequence[Tensor], stride: int) -> Tensor:
    pw1_w, pw1_b, dw_w, dw_b, pw2_w, pw2_b = branch2
    h = torch.relu(F.conv2d(z, pw1_w, pw1_b))
    h = F.conv2d(h, dw_w, dw_b, stride, 1, groups=h.shape[1])
    return torch.relu(F.conv2d(h, pw2_w, pw2_b))


def _v2_branch1(z: Tensor, branch1: Sequence[Tensor]) -> Tensor:
    dw_w, dw_b, pw_w, pw_b = branch1
    h = F.conv2d(z, dw_w, dw_b, 2, 1, groups=z.shape[1])
    return torch.relu(F.conv2d(h, pw_w, pw_b))


def shufflenet_v2_unit(x: Tensor, branch2: Sequence[Tensor],
                       branch1: Optional[Sequence[Tensor]] = None, *, stride: int = 1) -> Tensor:
    """x: (N, C, H, W). stride 1: branch2 acts on x[:, C/2:], output (N, C, H, W);
    stride 2: both branches act on x, output (N, 2*B, H', W') with B = pw2_w.shape[0]."""
    if stride == 1:
        x1, x2 = x.chunk(2, 1)
        out = torch.cat([x1, _v2_branch2(x2, branch2, 1)], 1)
    else:
        out = torch.cat([_v2_branch1(x, branch1), _v2_branch2(x, branch2, stride)], 1)
    return channel_shuffle(out, 2)
