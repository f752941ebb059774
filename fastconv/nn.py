"""Drop-in ``nn.Module`` wrappers around the fused ops, with BN already folded into their weights.

Each module owns its parameters (trainable through autograd like any module), calls one public
fastconv op in ``forward`` and picks the op's backend from its ``backend`` attribute ("auto" by
default). Classmethod constructors copy weights out of existing unfused blocks (torchvision, timm,
``fastconv.models``), folding every BatchNorm with :func:`fold_bn`; a block they cannot represent
exactly raises :class:`Unsupported` with the reason (``fastconv.optimize`` records it).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from fastconv._common import BACKENDS, BLOCK_ACTS, SE_GATES, check_act
from fastconv.ops import (dwpw_conv2d, group_conv1x1, inverted_residual, pwdw_conv2d, shufflenet_v1_unit,
                          shufflenet_v2_unit)

__all__ = ["Unsupported", "fold_bn", "act_name", "gate_name", "DepthwiseSeparableConv2d",
           "InvertedResidual", "GroupConv1x1", "ShuffleV1Unit", "ShuffleV2Unit", "PointwiseDepthwiseConv2d",
           "FUSED_MODULES"]


class Unsupported(ValueError):
    """A block cannot be represented exactly by a fused module; the message says why."""


# ---------------------------------------------------------------------------------------------
# BN folding and activation recognition
# ---------------------------------------------------------------------------------------------

def fold_bn(conv: nn.Conv2d, bn: Optional[nn.Module]) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``conv`` followed by ``bn`` in eval mode (running statistics).

    conv.weight: (K, C/g, kh, kw) -> weight (K, C/g, kh, kw), bias (K,), in conv.weight's dtype and
    device. The arithmetic runs in float64 so folding adds no rounding beyond the final cast.
    ``bn=None`` returns the conv's own weight and bias (zeros if it has none).
    """
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    if bn is None:
        return w.clone().contiguous(), b.clone()
    if not isinstance(bn, nn.BatchNorm2d):
        raise Unsupported(f"{type(bn).__name__} is not a BatchNorm2d")
    if bn.running_mean is None or bn.running_var is None:
        raise Unsupported("BatchNorm2d without running statistics (track_running_stats=False) normalises "
                          "with batch statistics even in eval mode, so it cannot be folded")
    if bn.num_features != w.shape[0]:
        raise Unsupported(f"BatchNorm2d has {bn.num_features} features but the conv makes {w.shape[0]} channels")
    f64 = dict(dtype=torch.float64)
    scale = (bn.running_var.detach().to(**f64) + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach().to(**f64)
    shift = -bn.running_mean.detach().to(**f64) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().to(**f64)
    wf = (w.to(**f64) * scale.view(-1, 1, 1, 1)).to(w.dtype).contiguous()
    bf = (b.to(**f64) * scale + shift).to(w.dtype)
    return wf, bf


# Classes named like this in torch.nn or timm.layers compute exactly the op's activation of that name.
_ACT_NAMES = {"identity": "none", "relu": "relu", "relu6": "relu6", "hardswish": "hardswish",
              "hardswishme": "hardswish", "silu": "silu", "swish": "silu", "swishme": "silu",
              "hardsigmoid": "hardsigmoid", "hardsigmoidme": "hardsigmoid", "sigmoid": "sigmoid"}


def _act_of(m: Optional[nn.Module]) -> Optional[str]:
    if m is None:
        return "none"
    origin = type(m).__module__
    if not (origin.startswith("torch.nn") or origin.startswith("timm.")):
        return None
    name = _ACT_NAMES.get(type(m).__name__.lower())
    if name is None and isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 6.0):
        name = "relu6"
    return name


def act_name(m: Optional[nn.Module]) -> str:
    """The fastconv activation code of a block activation module (None/Identity -> "none")."""
    name = _act_of(m)
    if name not in BLOCK_ACTS:
        raise Unsupported(f"activation {type(m).__name__} is not one of {list(BLOCK_ACTS)}")
    return name


def gate_name(m: nn.Module) -> str:
    """The fastconv code of a squeeze-excitation gate module (hardsigmoid or sigmoid)."""
    name = _act_of(m)
    if name not in SE_GATES:
        raise Unsupported(f"SE gate {type(m).__name__} is not one of {list(SE_GATES)}")
    return name


def _as_act(act) -> str:
    return check_act("act", act) if isinstance(act, str) else act_name(act)


def _bn_act(bn: Optional[nn.Module]) -> str:
    """timm's BatchNormAct2d carries its activation (and a dropout that is the identity in eval)."""
    if bn is None:
        return "none"
    drop = getattr(bn, "drop", None)
    if drop is not None and not isinstance(drop, (nn.Identity, nn.Dropout)):
        raise Unsupported(f"{type(bn).__name__}.drop is {type(drop).__name__}")
    return act_name(getattr(bn, "act", None))


def _square(conv: nn.Conv2d, what: str) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, dilation) of a conv with square, symmetric, zero padding."""
    if not isinstance(conv, nn.Conv2d):
        raise Unsupported(f"{what} is {type(conv).__name__}, not nn.Conv2d")
    _check_plain_conv(conv, what)
    if conv.padding_mode != "zeros":
        raise Unsupported(f"{what} uses padding_mode={conv.padding_mode!r}")
    if isinstance(conv.padding, str):
        raise Unsupported(f"{what} uses padding={conv.padding!r}")
    k, s, p, d = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    if k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or d[0] != d[1]:
        raise Unsupported(f"{what} is not square/symmetric (kernel {k}, stride {s}, padding {p}, dilation {d})")
    return k[0], s[0], p[0], d[0]


def _check_plain_conv(conv: nn.Conv2d, what: str) -> None:
    """Raise Unsupported unless ``conv`` computes exactly what ``nn.Conv2d.forward`` does: a plain
    nn.Conv2d, or our own DepthwiseConv2d (what ``optimize(training=True)`` leaves) without a fused act."""
    if type(conv) is DepthwiseConv2d:
        if conv.act != "none":
            # conv -> act: a following BatchNorm or fused block would have to see the conv alone
            raise Unsupported(f"{what} is a DepthwiseConv2d with act={conv.act!r} fused into it")
        return
    if type(conv) is not nn.Conv2d:
        # a subclass may change forward (timm's Conv2dSame pads asymmetrically at run time)
        raise Unsupported(f"{what} is {type(conv).__name__} (dynamic or custom padding)")


def _check_dw(conv: nn.Conv2d, what: str = "depthwise conv") -> tuple[int, int, int, int]:
    k, s, p, d = _square(conv, what)
    c = conv.in_channels
    if conv.groups != c or conv.out_channels != c:
        raise Unsupported(f"{what} is not depthwise (in {c}, out {conv.out_channels}, groups {conv.groups})")
    if k % 2 == 0:
        raise Unsupported(f"{what} has an even kernel size {k}")
    return k, s, p, d


def _check_pw(conv: nn.Conv2d, what: str = "pointwise conv", groups: int = 1) -> None:
    k, s, p, d = _square(conv, what)
    if (k, s, p) != (1, 1, 0):
        raise Unsupported(f"{what} is not a 1x1 stride-1 unpadded conv (kernel {k}, stride {s}, padding {p})")
    if conv.groups != groups:
        raise Unsupported(f"{what} has groups={conv.groups}, expected {groups}")


def _identity(m: Optional[nn.Module], what: str) -> None:
    if m is not None and not isinstance(m, (nn.Identity, nn.Dropout)):
        raise Unsupported(f"{what} is {type(m).__name__}, not the identity")


def _se_params(se: nn.Module) -> tuple[tuple[Tensor, ...], str, str, int]:
    """(w1, b1, w2, b2), se_act, se_gate, squeeze channels of torchvision SqueezeExcitation or timm SqueezeExcite."""
    if hasattr(se, "fc1") and hasattr(se, "scale_activation"):  # torchvision.ops.SqueezeExcitation
        pool = getattr(se, "avgpool", None)
        if not isinstance(pool, nn.AdaptiveAvgPool2d) or pool.output_size not in (1, (1, 1)):
            raise Unsupported("SqueezeExcitation.avgpool is not a global average pool")
        fc1, fc2, a, g = se.fc1, se.fc2, se.activation, se.scale_activation
    elif hasattr(se, "conv_reduce") and hasattr(se, "gate"):  # timm SqueezeExcite
        if hasattr(se, "bn") and not isinstance(se.bn, nn.Identity):
            raise Unsupported("timm SE with a BatchNorm is not supported")
        fc1, fc2, a, g = se.conv_reduce, se.conv_expand, se.act1, se.gate
    else:
        raise Unsupported(f"squeeze-excitation module {type(se).__name__} is not recognised")
    _check_pw(fc1, "SE reduce conv")
    _check_pw(fc2, "SE expand conv")
    w1, b1 = fold_bn(fc1, None)
    w2, b2 = fold_bn(fc2, None)
    return (w1, b1, w2, b2), act_name(a), gate_name(g), fc1.out_channels


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    return backend


def _param(shape: Sequence[int], fan_in: int, **kw) -> nn.Parameter:
    """nn.Conv2d's default init: kaiming_uniform_(a=sqrt(5)) reduces to U(+-1/sqrt(fan_in)), biases too."""
    t = torch.empty(tuple(shape), **kw)
    bound = 1.0 / math.sqrt(max(1, fan_in))
    with torch.no_grad():
        t.uniform_(-bound, bound)
    return nn.Parameter(t)


def _copy_(p: Optional[nn.Parameter], t: Optional[Tensor]) -> None:
    if p is None or t is None:
        if (p is None) != (t is None):
            raise Unsupported("bias presence mismatch while copying weights")
        return
    with torch.no_grad():
        p.copy_(t.reshape(p.shape))


class _Fused(nn.Module):
    """Shared plumbing: factory kwargs and the backend attribute."""

    def __init__(self, backend: str):
        super().__init__()
        self.backend = _check_backend(backend)

    def _fk(self, device, dtype) -> dict:
        return {"device": device, "dtype": dtype or torch.get_default_dtype()}


# ---------------------------------------------------------------------------------------------
# DepthwiseSeparableConv2d
# ---------------------------------------------------------------------------------------------

class DepthwiseSeparableConv2d(_Fused):
    """dw kxk conv -> dw_act -> 1x1 conv -> pw_act (+ x), BN folded; ``fastconv.dwpw_conv2d``.

    x: (N, C, H, W) -> (N, K, H', W'). ``residual=True`` adds the block input after pw_act (needs
    stride 1 and K == C), the way timm's DepthwiseSeparableConv does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, dilation: int = 1, *, dw_act: str = "relu",
                 pw_act: str = "relu", residual: bool = False, bias: bool = True, backend: str = "auto",
                 device=None, dtype=None):
        super().__init__(backend)
        fk = self._fk(device, dtype)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if residual and (stride != 1 or in_channels != out_channels):
            raise ValueError("residual=True needs stride 1 and in_channels == out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding = (kernel_size // 2) * dilation if padding is None else padding
        self.dw_act, self.pw_act = check_act("dw_act", dw_act), check_act("pw_act", pw_act)
        self.residual = residual
        self.dw_weight = _param((in_channels, 1, kernel_size, kernel_size), kernel_size ** 2, **fk)
        self.pw_weight = _param((out_channels, in_channels, 1, 1), in_channels, **fk)
        self.dw_bias = _param((in_channels,), kernel_size ** 2, **fk) if bias else None
        self.pw_bias = _param((out_channels,), in_channels, **fk) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return dwpw_conv2d(x, self.dw_weight, self.pw_weight, self.dw_bias, self.pw_bias, stride=self.stride,
                           padding=self.padding, dilation=self.dilation, dw_act=self.dw_act,
                           pw_act=self.pw_act, residual=x if self.residual else None, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, dw_act={self.dw_act}, pw_act={self.pw_act}, "
                f"residual={self.residual}, backend={self.backend}")

    @classmethod
    def from_modules(cls, dw: nn.Conv2d, dw_bn: Optional[nn.Module], pw: nn.Conv2d, pw_bn: Optional[nn.Module],
                     dw_act="relu", pw_act="relu", *, residual: bool = False,
                     backend: str = "auto") -> "DepthwiseSeparableConv2d":
        """From unfused layers: ``dw`` (depthwise Conv2d), optional BNs, activations as strings or modules."""
        k, s, p, d = _check_dw(dw)
        _check_pw(pw)
        if pw.in_channels != dw.out_channels:
            raise Unsupported(f"pointwise conv takes {pw.in_channels} channels, depthwise makes {dw.out_channels}")
        dww, dwb = fold_bn(dw, dw_bn)
        pww, pwb = fold_bn(pw, pw_bn)
        m = cls(dw.in_channels, pw.out_channels, k, s, p, d, dw_act=_as_act(dw_act), pw_act=_as_act(pw_act),
                residual=residual, backend=backend, device=dww.device, dtype=dww.dtype)
        for prm, t in ((m.dw_weight, dww), (m.dw_bias, dwb), (m.pw_weight, pww), (m.pw_bias, pwb)):
            _copy_(prm, t)
        return m

    @classmethod
    def from_timm(cls, block: nn.Module, backend: str = "auto") -> "DepthwiseSeparableConv2d":
        """timm ``DepthwiseSeparableConv`` without SE (any pointwise activation)."""
        if getattr(block, "conv_s2d", None) is not None:
            raise Unsupported("space-to-depth stem (conv_s2d) is not supported")
        _identity(getattr(block, "aa", None), "anti-aliasing layer (aa)")
        if not isinstance(getattr(block, "se", None), (nn.Identity, type(None))):
            raise Unsupported("has squeeze-excitation: use InvertedResidual.from_timm")
        return cls.from_modules(block.conv_dw, block.bn1, block.conv_pw, block.bn2, _bn_act(block.bn1),
                                _bn_act(block.bn2), residual=bool(block.has_skip), backend=backend)


# ---------------------------------------------------------------------------------------------
# InvertedResidual
# ---------------------------------------------------------------------------------------------

class InvertedResidual(_Fused):
    """[1x1 expand -> act] -> dw kxk -> act -> [SE] -> 1x1 project [+ x], BN folded; ``fastconv.inverted_residual``.

    x: (N, C, H, W) -> (N, K, H', W'). ``expand_channels=None`` means no expansion conv (MobileNetV2
    t=1, MobileNetV3's first blocks, EfficientNet's DS blocks). ``se_channels`` > 0 adds squeeze-
    excitation (squeeze conv E -> S with se_act, excite conv S -> E with se_gate). ``residual=None``
    adds x whenever stride is 1 and K == C.
    """

    def __init__(self, in_channels: int, out_channels: int, *, expand_channels: Optional[int] = None,
                 kernel_size: int = 3, stride: int = 1, padding: Optional[int] = None, act: str = "relu6",
                 se_channels: int = 0, se_act: str = "relu", se_gate: str = "hardsigmoid",
                 residual: Optional[bool] = None, bias: bool = True, backend: str = "auto",
                 device=None, dtype=None):
        super().__init__(backend)
        fk = self._fk(device, dtype)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        can_add = stride == 1 and in_channels == out_channels
        if residual is None:
            residual = can_add
        elif residual and not can_add:
            raise ValueError("residual=True needs stride 1 and in_channels == out_channels")
        e = in_channels if expand_channels is None else expand_channels
        self.in_channels, self.out_channels, self.expand_channels = in_channels, out_channels, expand_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.act = check_act("act", act)
        self.se_channels = se_channels
        self.se_act = check_act("se_act", se_act)
        self.se_gate = check_act("se_gate", se_gate, SE_GATES)
        self.residual = bool(residual)
        if expand_channels is None:
            self.register_parameter("expand_weight", None)
            self.register_parameter("expand_bias", None)
        else:
            self.expand_weight = _param((e, in_channels, 1, 1), in_channels, **fk)
            self.expand_bias = _param((e,), in_channels, **fk) if bias else None
        self.dw_weight = _param((e, 1, kernel_size, kernel_size), kernel_size ** 2, **fk)
        self.dw_bias = _param((e,), kernel_size ** 2, **fk) if bias else None
        self.project_weight = _param((out_channels, e, 1, 1), e, **fk)
        self.project_bias = _param((out_channels,), e, **fk) if bias else None
        if se_channels:
            self.se_w1 = _param((se_channels, e, 1, 1), e, **fk)
            self.se_b1 = _param((se_channels,), e, **fk)
            self.se_w2 = _param((e, se_channels, 1, 1), se_channels, **fk)
            self.se_b2 = _param((e,), se_channels, **fk)
        else:
            for n in ("se_w1", "se_b1", "se_w2", "se_b2"):
                self.register_parameter(n, None)

    def forward(self, x: Tensor) -> Tensor:
        se = None if self.se_w1 is None else (self.se_w1, self.se_b1, self.se_w2, self.se_b2)
        return inverted_residual(x, self.expand_weight, self.dw_weight, self.project_weight, self.expand_bias,
                                 self.dw_bias, self.project_bias, stride=self.stride, padding=self.padding,
                                 act=self.act, se=se, se_act=self.se_act, se_gate=self.se_gate,
                                 residual=self.residual, backend=self.backend)

    def extra_repr(self) -> str:
        se = ""
        if self.se_channels:
            se = f"se_channels={self.se_channels}, se_act={self.se_act}, se_gate={self.se_gate}, "
        return (f"{self.in_channels}, {self.out_channels}, expand_channels={self.expand_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, act={self.act}, "
                f"{se}residual={self.residual}, backend={self.backend}")

    @classmethod
    def from_parts(cls, expand: Optional[tuple], dw: tuple, project: tuple, *, act: str,
                   se: Optional[nn.Module] = None, residual: bool, backend: str = "auto") -> "InvertedResidual":
        """From unfused layers: expand = (conv, bn) or None, dw = (conv, bn), project = (conv, bn);
        ``se`` a torchvision SqueezeExcitation / timm SqueezeExcite (or None)."""
        k, s, p, d = _check_dw(dw[0])
        if d != 1:
            raise Unsupported(f"depthwise conv has dilation {d} (fastconv.inverted_residual has no dilation)")
        c_in = dw[0].in_channels
        if expand is not None:
            _check_pw(expand[0], "expand conv")
            if expand[0].out_channels != c_in:
                raise Unsupported("expand conv output channels differ from the depthwise conv's")
            c_in = expand[0].in_channels
        _check_pw(project[0], "project conv")
        se_t, se_act, se_gate, se_ch = (None, "relu", "hardsigmoid", 0) if se is None else _se_params(se)
        dww, dwb = fold_bn(*dw)
        pjw, pjb = fold_bn(*project)
        m = cls(c_in, project[0].out_channels, expand_channels=None if expand is None else expand[0].out_channels,
                kernel_size=k, stride=s, padding=p, act=act, se_channels=se_ch, se_act=se_act, se_gate=se_gate,
                residual=residual, backend=backend, device=dww.device, dtype=dww.dtype)
        pairs = [(m.dw_weight, dww), (m.dw_bias, dwb), (m.project_weight, pjw), (m.project_bias, pjb)]
        if expand is not None:
            pairs += list(zip((m.expand_weight, m.expand_bias), fold_bn(*expand)))
        if se_t is not None:
            pairs += list(zip((m.se_w1, m.se_b1, m.se_w2, m.se_b2), se_t))
        for prm, t in pairs:
            _copy_(prm, t)
        return m

    @classmethod
    def from_torchvision(cls, block: nn.Module, backend: str = "auto") -> "InvertedResidual":
        """torchvision MobileNetV2 ``InvertedResidual`` (``.conv``) or MobileNetV3 ``InvertedResidual``
        (``.block``, with SqueezeExcitation), or MNASNet ``_InvertedResidual`` (``.layers``)."""
        if hasattr(block, "layers") and hasattr(block, "apply_residual"):  # MNASNet
            return cls._from_flat(list(block.layers), bool(block.apply_residual), backend)
        seq = getattr(block, "conv", None)
        if seq is None:
            seq = getattr(block, "block", None)
        if not isinstance(seq, nn.Sequential):
            raise Unsupported(f"{type(block).__name__} has no .conv/.block Sequential")
        units, se = [], None
        items = list(seq)
        i = 0
        while i < len(items):
            it = items[i]
            if isinstance(it, nn.Sequential):  # Conv2dNormActivation: conv, [bn], [act]
                units.append(_cna(it))
                i += 1
            elif isinstance(it, nn.Conv2d):  # MobileNetV2's bare project conv + BN
                bn = items[i + 1] if i + 1 < len(items) and isinstance(items[i + 1], nn.BatchNorm2d) else None
                units.append((it, bn, "none"))
                i += 2 if bn is not None else 1
            elif hasattr(it, "scale_activation"):
                if se is not None or len(units) == 0:
                    raise Unsupported("unexpected squeeze-excitation position")
                se = it
                i += 1
            else:
                raise Unsupported(f"unexpected layer {type(it).__name__} in {type(block).__name__}")
        return cls._from_units(units, se, bool(block.use_res_connect), backend)

    @classmethod
    def _from_flat(cls, layers: list, residual: bool, backend: str) -> "InvertedResidual":
        """[conv, bn, act, conv, bn, act, conv, bn] style lists (MNASNet)."""
        units, i = [], 0
        while i < len(layers):
            conv = layers[i]
            if not isinstance(conv, nn.Conv2d):
                raise Unsupported(f"unexpected layer {type(conv).__name__}")
            bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d) else None
            i += 1 + (bn is not None)
            act = "none"
            if i < len(layers) and not isinstance(layers[i], nn.Conv2d):
                act = act_name(layers[i])
                i += 1
            units.append((conv, bn, act))
        return cls._from_units(units, None, residual, backend)

    @classmethod
    def _from_units(cls, units: list, se, residual: bool, backend: str) -> "InvertedResidual":
        if len(units) == 3:
            expand, dw, project = units
        elif len(units) == 2:
            expand, (dw, project) = None, units
        else:
            raise Unsupported(f"expected 2 or 3 conv layers, found {len(units)}")
        if project[2] != "none":
            raise Unsupported(f"project conv has activation {project[2]} (fused op has none there)")
        act = dw[2]
        if expand is not None and expand[2] != act:
            raise Unsupported(f"expand activation {expand[2]} differs from depthwise activation {act}")
        return cls.from_parts(None if expand is None else expand[:2], dw[:2], project[:2], act=act, se=se,
                              residual=residual, backend=backend)

    @classmethod
    def from_timm(cls, block: nn.Module, backend: str = "auto") -> "InvertedResidual":
        """timm ``InvertedResidual`` or ``DepthwiseSeparableConv`` (no pointwise activation)."""
        if getattr(block, "conv_s2d", None) is not None:
            raise Unsupported("space-to-depth stem (conv_s2d) is not supported")
        _identity(getattr(block, "aa", None), "anti-aliasing layer (aa)")
        se = getattr(block, "se", None)
        se = None if isinstance(se, (nn.Identity, type(None))) else se
        if hasattr(block, "conv_pwl"):  # InvertedResidual
            act = _bn_act(block.bn1)
            if _bn_act(block.bn2) != act:
                raise Unsupported(f"expand activation {act} differs from depthwise activation {_bn_act(block.bn2)}")
            if _bn_act(block.bn3) != "none":
                raise Unsupported("project conv has an activation")
            expand, project = (block.conv_pw, block.bn1), (block.conv_pwl, block.bn3)
        elif hasattr(block, "conv_dw") and hasattr(block, "conv_pw"):  # DepthwiseSeparableConv
            act = _bn_act(block.bn1)
            if _bn_act(block.bn2) != "none":
                raise Unsupported("pointwise conv has an activation: use DepthwiseSeparableConv2d.from_timm")
            expand, project = None, (block.conv_pw, block.bn2)
        else:
            raise Unsupported(f"{type(block).__name__} is not a timm InvertedResidual/DepthwiseSeparableConv")
        return cls.from_parts(expand, (block.conv_dw, block.bn2 if expand is not None else block.bn1), project,
                              act=act, se=se, residual=bool(block.has_skip), backend=backend)


def _cna(seq: nn.Sequential) -> tuple:
    """(conv, bn or None, act name) of a conv-[bn]-[act] Sequential (torchvision Conv2dNormActivation)."""
    items = list(seq)
    if not items or not isinstance(items[0], nn.Conv2d):
        raise Unsupported(f"{type(seq).__name__} does not start with a Conv2d")
    conv, rest = items[0], items[1:]
    bn = rest.pop(0) if rest and isinstance(rest[0], nn.BatchNorm2d) else None
    if len(rest) > 1:
        raise Unsupported(f"{type(seq).__name__} has extra layers")
    act = act_name(rest[0]) if rest else "none"
    if bn is not None and _bn_act(bn) != "none":
        if act != "none":
            raise Unsupported("two activations after one conv")
        act = _bn_act(bn)
    return conv, bn, act


# ---------------------------------------------------------------------------------------------
# GroupConv1x1
# ---------------------------------------------------------------------------------------------

class GroupConv1x1(_Fused):
    """[shuffle_in] -> grouped 1x1 conv -> act -> [shuffle_out]; ``fastconv.group_conv1x1``.

    x: (N, C, H, W) -> (N, K, H, W); shuffles are never materialised by the fused backends.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int, *, shuffle_in: Optional[int] = None,
                 shuffle_out: Optional[int] = None, act: str = "none", bias: bool = True,
                 backend: str = "auto", device=None, dtype=None):
        super().__init__(backend)
        fk = self._fk(device, dtype)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.shuffle_in, self.shuffle_out = shuffle_in, shuffle_out
        self.act = check_act("act", act)
        self.weight = _param((out_channels, in_channels // groups, 1, 1), in_channels // groups, **fk)
        self.bias = _param((out_channels,), in_channels // groups, **fk) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return group_conv1x1(x, self.weight, self.bias, groups=self.groups, shuffle_in=self.shuffle_in,
                             shuffle_out=self.shuffle_out, act=self.act, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, groups={self.groups}, shuffle_in={self.shuffle_in}, "
                f"shuffle_out={self.shuffle_out}, act={self.act}, backend={self.backend}")

    @classmethod
    def from_modules(cls, conv: nn.Conv2d, bn: Optional[nn.Module] = None, act="none", *,
                     shuffle_in: Optional[int] = None, shuffle_out: Optional[int] = None,
                     backend: str = "auto") -> "GroupConv1x1":
        _check_pw(conv, "grouped 1x1 conv", groups=conv.groups)
        w, b = fold_bn(conv, bn)
        m = cls(conv.in_channels, conv.out_channels, conv.groups, shuffle_in=shuffle_in, shuffle_out=shuffle_out,
                act=_as_act(act), backend=backend, device=w.device, dtype=w.dtype)
        _copy_(m.weight, w)
        _copy_(m.bias, b)
        return m


# ---------------------------------------------------------------------------------------------
# ShuffleNet units
# ---------------------------------------------------------------------------------------------

class ShuffleV1Unit(_Fused):
    """ShuffleNet V1 unit, BN folded; ``fastconv.shufflenet_v1_unit``.

    x: (N, C, H, W) -> (N, C, H, W) at stride 1 (out_channels == C), (N, out_channels, H', W') at
    stride 2 (the conv branch makes out_channels - C channels, after avg-pooled x).
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, *, groups: int, stride: int = 1,
                 first_groups: Optional[int] = None, bias: bool = True, backend: str = "auto",
                 device=None, dtype=None):
        super().__init__(backend)
        fk = self._fk(device, dtype)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit adds its input: in_channels must equal out_channels")
        g1 = groups if first_groups is None else first_groups
        branch = out_channels - in_channels if stride == 2 else out_channels
        self.in_channels, self.out_channels, self.mid_channels = in_channels, out_channels, mid_channels
        self.groups, self.first_groups, self.stride = groups, g1, stride
        self.w1 = _param((mid_channels, in_channels // g1, 1, 1), in_channels // g1, **fk)
        self.b1 = _param((mid_channels,), in_channels // g1, **fk) if bias else None
        self.dw_weight = _param((mid_channels, 1, 3, 3), 9, **fk)
        self.dw_bias = _param((mid_channels,), 9, **fk) if bias else None
        self.w2 = _param((branch, mid_channels // groups, 1, 1), mid_channels // groups, **fk)
        self.b2 = _param((branch,), mid_channels // groups, **fk) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return shufflenet_v1_unit(x, self.w1, self.b1, self.dw_weight, self.dw_bias, self.w2, self.b2,
                                  groups=self.groups, first_groups=self.first_groups, stride=self.stride,
                                  backend=self.backend)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, mid_channels={self.mid_channels}, groups={self.groups}, "
                f"first_groups={self.first_groups}, stride={self.stride}, backend={self.backend}")

    @classmethod
    def from_module(cls, block: nn.Module, backend: str = "auto") -> "ShuffleV1Unit":
        """From ``fastconv.models.ShuffleV1Block`` (or anything with its attributes and semantics)."""
        for a in ("gconv1", "bn1", "dw", "bn2", "gconv2", "bn3", "stride", "groups", "first_groups"):
            if not hasattr(block, a):
                raise Unsupported(f"{type(block).__name__} has no attribute {a!r}")
        k, s, p, d = _check_dw(block.dw)
        if (k, p, d) != (3, 1, 1) or s != block.stride:
            raise Unsupported(f"depthwise conv must be 3x3, padding 1, stride {block.stride}")
        _check_pw(block.gconv1, "gconv1", groups=block.first_groups)
        _check_pw(block.gconv2, "gconv2", groups=block.groups)
        w1, b1 = fold_bn(block.gconv1, block.bn1)
        dw, dwb = fold_bn(block.dw, block.bn2)
        w2, b2 = fold_bn(block.gconv2, block.bn3)
        c = block.gconv1.in_channels
        out = c + w2.shape[0] if block.stride == 2 else w2.shape[0]
        m = cls(c, out, w1.shape[0], groups=block.groups, stride=block.stride, first_groups=block.first_groups,
                backend=backend, device=w1.device, dtype=w1.dtype)
        for prm, t in ((m.w1, w1), (m.b1, b1), (m.dw_weight, dw), (m.dw_bias, dwb), (m.w2, w2), (m.b2, b2)):
            _copy_(prm, t)
        return m


class ShuffleV2Unit(_Fused):
    """ShuffleNet V2 unit (torchvision ``InvertedResidual``), BN folded; ``fastconv.shufflenet_v2_unit``.

    x: (N, C, H, W) -> (N, C, H, W) at stride 1 (out_channels == C), (N, out_channels, H', W') at stride 2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, bias: bool = True,
                 backend: str = "auto", device=None, dtype=None):
        super().__init__(backend)
        fk = self._fk(device, dtype)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if out_channels % 2:
            raise ValueError(f"out_channels must be even, got {out_channels}")
        b = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit keeps its width: in_channels must equal out_channels")
        cin2 = b if stride == 1 else in_channels
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pw1_weight = _param((b, cin2, 1, 1), cin2, **fk)
        self.pw1_bias = _param((b,), cin2, **fk) if bias else None
        self.dw_weight = _param((b, 1, 3, 3), 9, **fk)
        self.dw_bias = _param((b,), 9, **fk) if bias else None
        self.pw2_weight = _param((b, b, 1, 1), b, **fk)
        self.pw2_bias = _param((b,), b, **fk) if bias else None
        if stride == 2:
            self.b1_dw_weight = _param((in_channels, 1, 3, 3), 9, **fk)
            self.b1_dw_bias = _param((in_channels,), 9, **fk) if bias else None
            self.b1_pw_weight = _param((b, in_channels, 1, 1), in_channels, **fk)
            self.b1_pw_bias = _param((b,), in_channels, **fk) if bias else None
        else:
            for n in ("b1_dw_weight", "b1_dw_bias", "b1_pw_weight", "b1_pw_bias"):
                self.register_parameter(n, None)

    def forward(self, x: Tensor) -> Tensor:
        branch2 = (self.pw1_weight, self.pw1_bias, self.dw_weight, self.dw_bias, self.pw2_weight, self.pw2_bias)
        branch1 = None if self.stride == 1 else (self.b1_dw_weight, self.b1_dw_bias, self.b1_pw_weight,
                                                 self.b1_pw_bias)
        return shufflenet_v2_unit(x, branch2, branch1, stride=self.stride, backend=self.backend)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, backend={self.backend}"

    @classmethod
    def from_torchvision(cls, block: nn.Module, backend: str = "auto") -> "ShuffleV2Unit":
        """From ``torchvision.models.shufflenetv2.InvertedResidual``."""
        stride = getattr(block, "stride", None)
        b2, b1 = list(getattr(block, "branch2", [])), list(getattr(block, "branch1", []))
        kinds2 = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
        if len(b2) != 8 or not all(isinstance(m, t) for m, t in zip(b2, kinds2)):
            raise Unsupported("branch2 is not conv1x1-BN-ReLU-dw3x3-BN-conv1x1-BN-ReLU")
        pw1, bn1, _, dw, bn2, pw2, bn3, _ = b2
        _check_pw(pw1, "branch2 first 1x1")
        _check_pw(pw2, "branch2 second 1x1")
        k, s, p, d = _check_dw(dw, "branch2 depthwise conv")
        if (k, p, d) != (3, 1, 1) or s != stride or stride not in (1, 2):
            raise Unsupported(f"branch2 depthwise conv is not 3x3/pad 1 at the block's stride {stride}")
        c_in = pw1.in_channels * (2 if stride == 1 else 1)
        m = cls(c_in, 2 * pw2.out_channels, stride, backend=backend, device=pw1.weight.device,
                dtype=pw1.weight.dtype)
        pairs = list(zip((m.pw1_weight, m.pw1_bias), fold_bn(pw1, bn1)))
        pairs += list(zip((m.dw_weight, m.dw_bias), fold_bn(dw, bn2)))
        pairs += list(zip((m.pw2_weight, m.pw2_bias), fold_bn(pw2, bn3)))
        if stride == 2:
            kinds1 = [nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
            if len(b1) != 5 or not all(isinstance(x, t) for x, t in zip(b1, kinds1)):
                raise Unsupported("branch1 is not dw3x3-BN-conv1x1-BN-ReLU")
            bdw, bbn1, bpw, bbn2, _ = b1
            k, s, p, d = _check_dw(bdw, "branch1 depthwise conv")
            if (k, s, p, d) != (3, 2, 1, 1):
                raise Unsupported("branch1 depthwise conv is not 3x3 stride 2 pad 1")
            _check_pw(bpw, "branch1 1x1")
            pairs += list(zip((m.b1_dw_weight, m.b1_dw_bias), fold_bn(bdw, bbn1)))
            pairs += list(zip((m.b1_pw_weight, m.b1_pw_bias), fold_bn(bpw, bbn2)))
        elif b1:
            raise Unsupported("stride-1 unit with a non-empty branch1")
        for prm, t in pairs:
            _copy_(prm, t)
        return m


FUSED_MODULES = (DepthwiseSeparableConv2d, InvertedResidual, GroupConv1x1, ShuffleV1Unit, ShuffleV2Unit)


# ---------------------------------------------------------------------------------------------
# PointwiseDepthwiseConv2d (graph-level fusion: GhostNet's Ghost module, 1x1 -> dw chains)
# ---------------------------------------------------------------------------------------------

class PointwiseDepthwiseConv2d(_Fused):
    """1x1 conv -> pw_act -> dw kxk -> dw_act [-> cat with the 1x1 output] (+ x), BN folded;
    ``fastconv.pwdw_conv2d``.

    x: (N, C, H, W) -> (N, M, H', W'), or (N, 2M, H, W) with ``concat=True`` (GhostNet's Ghost module:
    primary 1x1 conv, cheap depthwise conv, both concatenated). ``residual=True`` adds x at the end.
    """

    def __init__(self, in_channels: int, mid_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, dilation: int = 1, *, pw_act: str = "relu", dw_act: str = "relu",
                 concat: bool = False, residual: bool = False, bias: bool = True, backend: str = "auto",
                 device=None, dtype=None):
        super().__init__(backend)
        fk = self._fk(device, dtype)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if concat and stride != 1:
            raise ValueError("concat=True needs stride 1")
        out = 2 * mid_channels if concat else mid_channels
        if residual and (stride != 1 or in_channels != out):
            raise ValueError("residual=True needs stride 1 and as many output channels as input channels")
        self.in_channels, self.mid_channels, self.out_channels = in_channels, mid_channels, out
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding = (kernel_size // 2) * dilation if padding is None else padding
        self.pw_act, self.dw_act = check_act("pw_act", pw_act), check_act("dw_act", dw_act)
        self.concat, self.residual = concat, residual
        self.pw_weight = _param((mid_channels, in_channels, 1, 1), in_channels, **fk)
        self.dw_weight = _param((mid_channels, 1, kernel_size, kernel_size), kernel_size ** 2, **fk)
        self.pw_bias = _param((mid_channels,), in_channels, **fk) if bias else None
        self.dw_bias = _param((mid_channels,), kernel_size ** 2, **fk) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return pwdw_conv2d(x, self.pw_weight, self.dw_weight, self.pw_bias, self.dw_bias, stride=self.stride,
                           padding=self.padding, dilation=self.dilation, pw_act=self.pw_act, dw_act=self.dw_act,
                           concat=self.concat, residual=x if self.residual else None, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.mid_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, pw_act={self.pw_act}, dw_act={self.dw_act}, "
                f"concat={self.concat}, residual={self.residual}, backend={self.backend}")

    @classmethod
    def from_modules(cls, pw: nn.Conv2d, pw_bn: Optional[nn.Module], dw: nn.Conv2d, dw_bn: Optional[nn.Module],
                     pw_act="relu", dw_act="relu", *, concat: bool = False, residual: bool = False,
                     backend: str = "auto") -> "PointwiseDepthwiseConv2d":
        """From unfused layers: ``pw`` (1x1 Conv2d), ``dw`` (depthwise Conv2d), optional BNs, activations
        as strings or modules."""
        _check_pw(pw)
        k, s, p, d = _check_dw(dw)
        if dw.in_channels != pw.out_channels:
            raise Unsupported(f"depthwise conv takes {dw.in_channels} channels, the 1x1 conv makes {pw.out_channels}")
        if concat and s != 1:
            raise Unsupported("concatenation after a strided depthwise conv")
        pww, pwb = fold_bn(pw, pw_bn)
        dww, dwb = fold_bn(dw, dw_bn)
        m = cls(pw.in_channels, pw.out_channels, k, s, p, d, pw_act=_as_act(pw_act), dw_act=_as_act(dw_act),
                concat=concat, residual=residual, backend=backend, device=pww.device, dtype=pww.dtype)
        for prm, t in ((m.pw_weight, pww), (m.pw_bias, pwb), (m.dw_weight, dww), (m.dw_bias, dwb)):
            _copy_(prm, t)
        return m


FUSED_MODULES = FUSED_MODULES + (PointwiseDepthwiseConv2d,)


# ---------------------------------------------------------------------------------------------
# DepthwiseConv2d (training: BatchNorm stays a separate module; fast forward and backward)
# ---------------------------------------------------------------------------------------------

from fastconv.ops.depthwise_conv2d import depthwise_conv2d as _depthwise_conv2d  # noqa: E402


def _same_padding(kernel_size, dilation, stride) -> tuple[int, int]:
    """nn.Conv2d's padding='same' as symmetric padding, when it is symmetric (odd kernel, stride 1)."""
    if any(k % 2 == 0 for k in kernel_size) or any(s != 1 for s in stride):
        raise Unsupported(f"padding='same' with kernel {kernel_size}, stride {stride} pads asymmetrically")
    return tuple(d * (k // 2) for k, d in zip(kernel_size, dilation))


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(C, C*m, k, stride, padding, dilation, groups=C, bias)`` computed by
    ``fastconv.depthwise_conv2d`` (fast forward *and* backward: made for training).

    x: (N, C, H, W) -> (N, C*m, H', W'). A subclass of ``nn.Conv2d`` with the same constructor
    (``groups`` is always ``in_channels``), attributes, parameters (``weight`` (C*m, 1, kh, kw),
    ``bias`` (C*m,)) and ``state_dict`` keys, plus ``act`` (an activation fused after the conv, "none"
    by default) and ``backend``. :meth:`from_conv` wraps an existing depthwise conv, sharing its
    Parameter objects (an optimizer built before the swap keeps training them).
    """

    def __init__(self, in_channels: int, out_channels: Optional[int] = None, kernel_size=3, stride=1,
                 padding=0, dilation=1, groups: Optional[int] = None, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None, *, act: str = "none",
                 backend: str = "auto"):
        out_channels = in_channels if out_channels is None else out_channels
        if groups is not None and groups != in_channels:
            raise ValueError(f"DepthwiseConv2d has groups == in_channels ({in_channels}), got groups={groups}")
        if out_channels % in_channels:
            raise ValueError(f"out_channels ({out_channels}) must be a multiple of in_channels ({in_channels})")
        if padding_mode != "zeros":
            raise ValueError(f"DepthwiseConv2d supports padding_mode='zeros' only, got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, in_channels, bias,
                         padding_mode, device, dtype)
        self.act = check_act("act", act)
        self.backend = _check_backend(backend)
        self._numeric_padding()

    def _numeric_padding(self) -> None:
        if self.padding == "valid":
            self._pad = (0, 0)
        elif self.padding == "same":
            self._pad = _same_padding(self.kernel_size, self.dilation, self.stride)
        else:
            self._pad = tuple(self.padding)

    def forward(self, x: Tensor) -> Tensor:
        return _depthwise_conv2d(x, self.weight, self.bias, stride=self.stride, padding=self._pad,
                                 dilation=self.dilation, act=self.act, backend=self.backend)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", act={self.act}, backend={self.backend}"

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, act: str = "none", backend: str = "auto") -> "DepthwiseConv2d":
        """A DepthwiseConv2d computing exactly ``conv`` (an ``nn.Conv2d`` with groups == in_channels),
        holding the *same* ``weight`` / ``bias`` Parameter objects; training mode is kept.
        Raises :class:`Unsupported` (with the reason) for convs it cannot represent."""
        if type(conv) is not nn.Conv2d:
            raise Unsupported(f"{type(conv).__name__} is not a plain nn.Conv2d (a subclass may change forward)")
        c = conv.in_channels
        if conv.groups != c or conv.out_channels % c:
            raise Unsupported(f"not depthwise (in {c}, out {conv.out_channels}, groups {conv.groups})")
        if conv.padding_mode != "zeros":
            raise Unsupported(f"padding_mode={conv.padding_mode!r}")
        if conv.padding == "same":
            _same_padding(conv.kernel_size, conv.dilation, conv.stride)
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "transposed",
                     "output_padding", "groups", "padding_mode", "_reversed_padding_repeated_twice"):
            setattr(m, attr, getattr(conv, attr))
        # the same Parameter objects: optimizers, hooks and DDP see no change
        m.register_parameter("weight", conv.weight)
        m.register_parameter("bias", conv.bias)
        m.act = check_act("act", act)
        m.backend = _check_backend(backend)
        m._numeric_padding()
        m.train(conv.training)
        return m


__all__ += ["DepthwiseConv2d", "BACKEND_MODULES"]

# Every module whose forward picks its op's backend from ``self.backend`` (what set_backend reaches).
# DepthwiseConv2d is not in FUSED_MODULES: it is one conv, still fusable with its neighbours.
BACKEND_MODULES = FUSED_MODULES + (DepthwiseConv2d,)
