"""``fastconv.optimize(model, training=True)``: swap depthwise convs for training, nothing else.

Inference optimisation folds BatchNorm into the convs, which is only right in eval mode. For
training, BatchNorm must keep normalising with batch statistics, so this swap replaces exactly one
kind of module: every plain ``nn.Conv2d`` with ``groups == in_channels`` (channel multiplier allowed)
becomes a :class:`fastconv.nn.DepthwiseConv2d` holding the **same** ``weight`` / ``bias`` Parameter
objects, at the same place in the module tree. So

- an optimizer (or a DDP wrapper, a GradScaler, an EMA copy) built before the swap keeps working;
- ``state_dict`` keys and shapes are unchanged: checkpoints load into either model;
- BatchNorm (in training mode or not), activations and every other module stay as they are;
- training/eval mode, ``requires_grad`` and device/dtype are whatever they were.

The swap works in place (sharing Parameters is its point); the returned model is the given one,
unless the model itself is a depthwise conv, whose replacement is returned.
"""
from __future__ import annotations

from torch import nn

from fastconv._common import BACKENDS
from fastconv.nn import DepthwiseConv2d, Unsupported
from fastconv.optimize import OptimizeReport

__all__ = ["optimize_for_training", "is_depthwise_conv"]


def is_depthwise_conv(m: nn.Module) -> bool:
    """An nn.Conv2d (or subclass) whose every group is one input channel, with more than one channel."""
    return (isinstance(m, nn.Conv2d) and not isinstance(m, DepthwiseConv2d) and m.in_channels > 1
            and m.groups == m.in_channels and m.out_channels % m.in_channels == 0)


def _source(m: nn.Module) -> str:
    t = type(m)
    return f"{t.__module__}.{t.__qualname__}"


def _swap(conv: nn.Module, name: str, report: OptimizeReport, backend: str):
    try:
        new = DepthwiseConv2d.from_conv(conv, backend=backend)
    except Unsupported as e:
        report._add(name=name or "<root>", status="skipped", source=_source(conv), reason=str(e))
        return None
    report._add(name=name or "<root>", status="replaced", source=_source(conv), fused=type(new).__name__,
                op="depthwise_conv2d")
    return new


def optimize_for_training(model: nn.Module, *, backend: str = "auto") -> tuple[nn.Module, OptimizeReport]:
    """Replace every depthwise ``nn.Conv2d`` of ``model`` (in place) by ``fastconv.nn.DepthwiseConv2d``
    sharing its Parameters; returns ``(model, report)``. Convs it cannot represent (padding_mode other
    than zeros, asymmetric 'same' padding, Conv2d subclasses) stay and are listed as skipped."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    report = OptimizeReport(backend)
    if is_depthwise_conv(model):
        new = _swap(model, "", report, backend)
        return (new if new is not None else model), report
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent._modules.items()):
            if child is None or not is_depthwise_conv(child):
                continue
            full = f"{parent_name}.{name}" if parent_name else name
            new = _swap(child, full, report, backend)
            if new is not None:
                parent._modules[name] = new
    return model, report
