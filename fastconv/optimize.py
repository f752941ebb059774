"""``fastconv.optimize(model)``: fold BatchNorm and swap recognised blocks for fused fastconv modules.

Three passes, each on what the previous one left:

1. exact rewrites (``fastconv.graph.prepare``): reparameterisable blocks to their deploy form, timm's
   MixedConv2d as one conv;
2. block rules by exact class (below), where a block's class pins down what it computes;
3. chains on the dataflow graph (``fastconv.graph.fuse_graphs``, torch.fx), whatever classes or
   functional calls produce them: 1x1 -> dw -> [SE] -> 1x1 (+x), dw -> 1x1 (+x), 1x1 -> dw (+cat).

Block rules (exact class, so subclasses with a different forward are left to the graph pass):

* torchvision: MobileNetV2 / MobileNetV3 ``InvertedResidual``, MNASNet ``_InvertedResidual``,
  ShuffleNetV2 ``InvertedResidual``;
* timm (``timm.models._efficientnet_blocks``): ``InvertedResidual`` and ``DepthwiseSeparableConv``
  (mobilenetv2_*, mobilenetv3_*, efficientnet_*, mnasnet_*, ...);
* fastconv.models: ``DepthwiseSeparable`` (MobileNetV1) and ``ShuffleV1Block`` (ShuffleNet V1);
* inside any plain ``nn.Sequential``: depthwise conv [BN] [act] followed by 1x1 conv [BN] [act]
  (bare layers or conv-BN-act Sequentials such as torchvision's ``Conv2dNormActivation``).

Everything else is left as it is; the report says, per depthwise conv, what stayed unfused and why.
See docs/OPTIMIZE.md.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from torch import nn

from fastconv._common import BACKENDS
from fastconv.graph import fuse_graphs, is_depthwise, prepare
from fastconv.nn import (BACKEND_MODULES, FUSED_MODULES, DepthwiseConv2d, DepthwiseSeparableConv2d, GroupConv1x1,
                         InvertedResidual, PointwiseDepthwiseConv2d, ShuffleV1Unit, ShuffleV2Unit, Unsupported,
                         _bn_act, _cna, act_name)

__all__ = ["optimize", "OptimizeReport", "set_backend"]

_OPS = {DepthwiseSeparableConv2d: "dwpw_conv2d", InvertedResidual: "inverted_residual",
        GroupConv1x1: "group_conv1x1", ShuffleV1Unit: "shufflenet_v1_unit", ShuffleV2Unit: "shufflenet_v2_unit",
        PointwiseDepthwiseConv2d: "pwdw_conv2d"}


@dataclass
class _Entry:
    name: str
    status: str  # "replaced" | "skipped" | "rewritten" (an exact rewrite before fusion)
    source: str
    fused: Optional[str] = None
    op: Optional[str] = None
    reason: Optional[str] = None


class OptimizeReport:
    """What ``optimize`` did. ``str(report)`` is a table; ``report.to_list()`` the same as dicts with
    keys name, status ("replaced" / "skipped" / "rewritten"), source (original class, layer sequence or
    graph chain), fused (fastconv.nn class), op (fastconv op), reason (why it was skipped; for
    "rewritten", the exact rewrite applied). Every depthwise conv still in the model afterwards has
    its own "skipped" row."""

    def __init__(self, backend: str):
        self.backend = backend
        self.entries: list[_Entry] = []

    def _add(self, **kw) -> None:
        self.entries.append(_Entry(**kw))

    @property
    def replaced(self) -> list[dict]:
        return [asdict(e) for e in self.entries if e.status == "replaced"]

    @property
    def skipped(self) -> list[dict]:
        return [asdict(e) for e in self.entries if e.status == "skipped"]

    @property
    def num_replaced(self) -> int:
        return sum(e.status == "replaced" for e in self.entries)

    def counts(self) -> dict:
        """fused class name -> how many blocks became one."""
        out: dict = {}
        for e in self.entries:
            if e.status == "replaced":
                out[e.fused] = out.get(e.fused, 0) + 1
        return out

    def to_list(self) -> list[dict]:
        return [asdict(e) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __str__(self) -> str:
        counts = ", ".join(f"{k} x{v}" for k, v in self.counts().items()) or "nothing new"
        lines = [f"fastconv.optimize (backend={self.backend}): replaced {self.num_replaced} block(s) "
                 f"[{counts}], skipped {len(self.skipped)}"]
        width = max([len(e.name) for e in self.entries] + [4])
        for e in self.entries:
            if e.status == "replaced":
                lines.append(f"  replaced  {e.name:<{width}}  {e.source} -> {e.fused} ({e.op})")
            elif e.status == "rewritten":
                lines.append(f"  rewritten {e.name:<{width}}  {e.source}: {e.reason}")
            else:
                lines.append(f"  skipped   {e.name:<{width}}  {e.source}: {e.reason}")
        return "\n".join(lines)

    __repr__ = __str__


# ---------------------------------------------------------------------------------------------
# block recognition: (module path, class name) -> converter
# ---------------------------------------------------------------------------------------------

def _timm_ds(block: nn.Module, backend: str) -> nn.Module:
    # No pointwise activation: an inverted residual without expansion (which also carries SE);
    # with one: the plain dw->pw op.
    if _bn_act(getattr(block, "bn2", None)) == "none":
        return InvertedResidual.from_timm(block, backend)
    return DepthwiseSeparableConv2d.from_timm(block, backend)


def _fastconv_ds(block: nn.Module, backend: str) -> nn.Module:
    return DepthwiseSeparableConv2d.from_modules(block.dw, block.dw_bn, block.pw, block.pw_bn,
                                                 block.dw_act, block.pw_act, backend=backend)


_TIMM_BLOCKS = ("timm.models._efficientnet_blocks", "timm.models.efficientnet_blocks")
_BLOCKS: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("torchvision.models.mobilenetv2", "InvertedResidual"): InvertedResidual.from_torchvision,
    ("torchvision.models.mobilenetv3", "InvertedResidual"): InvertedResidual.from_torchvision,
    ("torchvision.models.mnasnet", "_InvertedResidual"): InvertedResidual.from_torchvision,
    ("torchvision.models.shufflenetv2", "InvertedResidual"): ShuffleV2Unit.from_torchvision,
    ("fastconv.models", "DepthwiseSeparable"): _fastconv_ds,
    ("fastconv.models", "ShuffleV1Block"): ShuffleV1Unit.from_module,
}
for _m in _TIMM_BLOCKS:
    _BLOCKS[(_m, "InvertedResidual")] = InvertedResidual.from_timm
    _BLOCKS[(_m, "DepthwiseSeparableConv")] = _timm_ds


def _key(m: nn.Module) -> tuple[str, str]:
    return type(m).__module__, type(m).__qualname__


def _source(m: nn.Module) -> str:
    mod, name = _key(m)
    return f"{mod}.{name}"


_is_depthwise = is_depthwise


# ---------------------------------------------------------------------------------------------
# generic dw -> pw sequences inside nn.Sequential
# ---------------------------------------------------------------------------------------------

def _is_act(m: nn.Module) -> bool:
    try:
        act_name(m)
    except Unsupported:
        return False
    return not isinstance(m, nn.Identity)


def _unit_at(items: list, i: int):
    """(conv, bn, act, items consumed) for a conv unit starting at items[i], else None."""
    it = items[i]
    if type(it) is nn.Sequential or type(it).__name__ == "Conv2dNormActivation":
        try:
            conv, bn, act = _cna(it)
        except Unsupported:
            return None
        return conv, bn, act, 1
    if not isinstance(it, nn.Conv2d):
        return None
    j, bn, act = i + 1, None, "none"
    if j < len(items) and isinstance(items[j], nn.BatchNorm2d):
        bn = items[j]
        try:
            act = _bn_act(bn)
        except Unsupported:
            return None
        j += 1
    if act == "none" and j < len(items) and _is_act(items[j]):
        act = act_name(items[j])
        j += 1
    return it, bn, act, j - i


def _scan_sequential(seq: nn.Sequential, prefix: str, report: OptimizeReport, backend: str) -> None:
    names = list(seq._modules.keys())
    items = list(seq._modules.values())
    i = 0
    while i < len(items) - 1:
        first = _unit_at(items, i)
        if first is None or not _is_depthwise(first[0]):
            i += 1
            continue
        second = _unit_at(items, i + first[3]) if i + first[3] < len(items) else None
        if second is None or second[0].kernel_size != (1, 1) or second[0].groups != 1:
            i += 1
            continue
        n = first[3] + second[3]
        label = "+".join(type(m).__name__ for m in items[i:i + n])
        name = f"{prefix}.{names[i]}" if prefix else names[i]
        try:
            fused = DepthwiseSeparableConv2d.from_modules(first[0], first[1], second[0], second[1], first[2],
                                                          second[2], backend=backend)
        except Unsupported as e:
            report._add(name=name, status="skipped", source=f"Sequential[{label}]", reason=str(e))
            i += n
            continue
        _match_grad(fused, items[i:i + n])
        seq._modules[names[i]] = fused
        for k in names[i + 1:i + n]:  # keep indices stable for code that indexes the Sequential
            seq._modules[k] = nn.Identity()
        report._add(name=name, status="replaced", source=f"Sequential[{label}]",
                    fused=type(fused).__name__, op=_OPS[type(fused)])
        i += n


# ---------------------------------------------------------------------------------------------
# the walk
# ---------------------------------------------------------------------------------------------

def _match_grad(fused: nn.Module, originals) -> None:
    """Frozen weights stay frozen."""
    params = [p for m in originals for p in m.parameters()]
    if params and not any(p.requires_grad for p in params):
        fused.requires_grad_(False)


def _try_block(m: nn.Module, name: str, report: OptimizeReport, backend: str) -> Optional[nn.Module]:
    conv = _BLOCKS.get(_key(m))
    if conv is None:
        return None
    try:
        fused = conv(m, backend)
    except Unsupported as e:
        report._add(name=name or "<root>", status="skipped", source=_source(m), reason=str(e))
        return None
    _match_grad(fused, [m])
    report._add(name=name or "<root>", status="replaced", source=_source(m), fused=type(fused).__name__,
                op=_OPS[type(fused)])
    return fused


def _walk(module: nn.Module, prefix: str, report: OptimizeReport, backend: str) -> None:
    for name, child in list(module._modules.items()):
        if child is None or isinstance(child, FUSED_MODULES):
            continue
        full = f"{prefix}.{name}" if prefix else name
        fused = _try_block(child, full, report, backend)
        if fused is not None:
            module._modules[name] = fused
        else:
            _walk(child, full, report, backend)
    if type(module) is nn.Sequential:
        _scan_sequential(module, prefix, report, backend)


def _report_leftovers(model: nn.Module, report: OptimizeReport, reasons: dict) -> None:
    """One "skipped" row per depthwise conv still in the model, with the graph pass's reason and the
    block rule's, when a block around it was refused."""
    blocks = {e.name: e.reason for e in report.entries if e.status == "skipped"}
    for name, m in model.named_modules():
        if not _is_depthwise(m):
            continue
        why = [reasons.get(name, "depthwise conv outside any recognised block or fusable chain")]
        if isinstance(m, DepthwiseConv2d):  # not fused with its neighbours, but no plain conv either
            why.append(f"it still runs fastconv.depthwise_conv2d (backend={m.backend})")
        why += [f"block {s}: {r}" for s, r in blocks.items() if name.startswith(s + ".") or s == "<root>"]
        report._add(name=name or "<root>", status="skipped", source=_source(m), reason="; ".join(why))


def _graph_pass(model: nn.Module, report: OptimizeReport, backend: str) -> tuple[nn.Module, dict]:
    result = fuse_graphs(model, backend)
    refused = {e.name: e for e in report.entries if e.status == "skipped"}
    for name, m in result.matches:
        source = "graph[" + " -> ".join(m.desc) + "]"
        # a block its class rule refused but whose chain the graph pass fused: one row, saying both
        for block, e in list(refused.items()):
            if name.startswith(block + ".") or block == "<root>":
                source += f" (block {block} {e.source}: {e.reason})"
                report.entries.remove(e)
                del refused[block]
        report._add(name=name, status="replaced", source=source, fused=type(m.fused).__name__, op=m.op)
    return result.model, result.reasons


def _check_eval(model: nn.Module) -> None:
    training = [n or "<root>" for n, m in model.named_modules() if m.training]
    if training:
        where = "the model" if training[0] == "<root>" else f"submodule {training[0]!r}"
        raise RuntimeError(
            f"fastconv.optimize: {where} is in training mode. Folding BatchNorm uses its running statistics, "
            "which is only what the model computes in eval mode; call model.eval() first. (To train with "
            "fused blocks, optimize the eval-mode model and fine-tune the fused modules: their folded "
            "weights and biases are ordinary trainable parameters.)")


def optimize(model: nn.Module, *, backend: str = "auto", inplace: bool = False,
             training: bool = False) -> tuple[nn.Module, OptimizeReport]:
    """Fold BatchNorm into conv weights and replace every recognised block or graph chain with its fused module.

    Returns ``(model, report)``: the optimised model (a deep copy unless ``inplace=True``; the root
    itself may be replaced when it is a recognised block, or a ``torch.fx.GraphModule`` when a chain
    spans its direct children) and an :class:`OptimizeReport`.

    The model must be in eval mode (``RuntimeError`` otherwise). Device, dtype, parameter
    ``requires_grad`` and the input's memory format carry through. Running it again on its result
    replaces nothing. ``backend`` is stored on each new fused module ("auto": the fastest backend
    available for each call's device and shape); change it later with :func:`set_backend`.
    """
    if training:  # depthwise convs only, Parameters shared, in place, BatchNorm untouched: fastconv/train.py
        from fastconv.train import optimize_for_training
        return optimize_for_training(model, backend=backend)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    _check_eval(model)
    if not inplace:
        model = copy.deepcopy(model)
    report = OptimizeReport(backend)
    if isinstance(model, FUSED_MODULES):
        return model, report
    model = prepare(model, report._add)
    root = _try_block(model, "", report, backend)
    if root is not None:
        return root.eval(), report
    _walk(model, "", report, backend)
    model, reasons = _graph_pass(model, report, backend)
    _report_leftovers(model, report, reasons)
    for m in model.modules():
        if isinstance(m, FUSED_MODULES):
            m.eval()
    return model, report


def set_backend(model: nn.Module, backend: str) -> nn.Module:
    """Set ``backend`` on every fastconv module in ``model`` (in place): the fused blocks and the
    ``DepthwiseConv2d`` of ``optimize(model, training=True)``; returns model."""
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    for m in model.modules():
        if isinstance(m, BACKEND_MODULES):
            m.backend = backend
    return model
