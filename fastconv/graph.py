"""Graph-level recognition for ``fastconv.optimize``: fusable chains found in a model's dataflow.

``optimize`` first applies its exact-class block rules; this module then handles whatever they did
not, whatever module classes or functional calls produce it:

1. exact rewrites (:func:`prepare`): reparameterisable blocks (MobileOne, RepViT, FastViT, ...)
   switched to their deploy form through their own ``reparameterize`` / ``switch_to_deploy`` /
   timm ``fuse`` methods; timm's ``MixedConv2d`` (MixNet) as ONE conv (depthwise: the kernels
   zero-padded to the largest size, centred; 1x1: a block-diagonal weight);
2. torch.fx tracing, module by module in post-order (children first), with conv / BatchNorm /
   activation modules as leaves; a module fx cannot trace becomes a leaf of its parent's trace;
3. on each graph, after dropping the identities of eval mode (``nn.Identity``, dropout, drop path),
   every depthwise conv in topological order is matched greedily against, in this order:

   * ``1x1 [BN] [act] -> dw [BN] [act] -> [SE] -> 1x1 [BN] [+ x]``    -> ``InvertedResidual``
   * ``dw [BN] [act] -> 1x1 [BN] [act] [+ x]``                         -> ``DepthwiseSeparableConv2d``
   * ``dw [BN] [act] -> SE -> 1x1 [BN] [+ x]``                         -> ``InvertedResidual`` (no expansion)
   * ``1x1 [BN] [act] -> dw [BN] [act] [-> cat([1x1 out, dw out], 1)]`` -> ``PointwiseDepthwiseConv2d``

   where act is a module (``nn.ReLU``, timm's ``Swish``, ...) or a call (``F.relu``, ``torch.sigmoid``,
   ``x.relu()``, ...), BN is ``nn.BatchNorm2d`` or timm's ``BatchNormAct2d`` (whose activation
   counts), SE is ``h * gate(conv1x1(act(conv1x1(mean(h)))))`` written any of the usual ways, and
   ``+ x`` is ``+`` / ``torch.add`` / ``+=`` of the chain's input. A last activation the op has no
   code for stays in the graph after the fused op. The matched nodes are replaced by one call to
   the fused module, stored under the depthwise conv's own name; the module whose graph changed
   becomes a ``torch.fx.GraphModule`` (its plain attributes copied over).

Every depthwise conv left unfused gets a reason (``reasons``), which ``optimize`` puts in its report.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from fastconv import _common
from fastconv.nn import (FUSED_MODULES, DepthwiseSeparableConv2d, InvertedResidual, PointwiseDepthwiseConv2d,
                         Unsupported, _act_of, _check_dw, _check_plain_conv, _check_pw, _copy_, fold_bn)

__all__ = ["prepare", "fuse_graphs", "GraphPass", "module_act", "is_depthwise"]


def is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _block_acts() -> tuple:
    # read at call time: activations added to the ops later (gelu) are picked up without a change here
    return _common.BLOCK_ACTS


# ---------------------------------------------------------------------------------------------
# activations: modules and calls
# ---------------------------------------------------------------------------------------------

def module_act(m: nn.Module) -> Optional[str]:
    """Activation code of a module that computes one exactly (also codes the ops may not support yet,
    such as "gelu"), else None. Identity-like modules are "none"."""
    if isinstance(m, nn.GELU) and type(m) is nn.GELU:
        return "gelu" if m.approximate == "none" else "gelu_tanh"
    origin = type(m).__module__
    if origin.startswith("timm.") and type(m).__name__ in ("GELU", "GELUTanh"):
        return "gelu" if type(m).__name__ == "GELU" else "gelu_tanh"
    return _act_of(m)


_FN_ACTS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu_: "relu", F.relu6: "relu6",
    F.hardswish: "hardswish", F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.hardsigmoid: "hardsigmoid", torch.sigmoid_: "sigmoid",
}
_METHOD_ACTS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}


def _node_act(root: nn.Module, n: fx.Node) -> Optional[str]:
    """Activation code of a node applying an elementwise activation to its first argument, else None."""
    if n.op == "call_module":
        return module_act(root.get_submodule(n.target))
    if n.op == "call_function":
        if n.target is F.gelu:
            approx = n.kwargs.get("approximate", n.args[1] if len(n.args) > 1 else "none")
            return "gelu" if approx == "none" else "gelu_tanh"
        if n.target is F.hardtanh:
            lo = n.kwargs.get("min_val", n.args[1] if len(n.args) > 1 else -1.0)
            hi = n.kwargs.get("max_val", n.args[2] if len(n.args) > 2 else 1.0)
            return "relu6" if (lo, hi) == (0.0, 6.0) else None
        return _FN_ACTS.get(n.target)
    if n.op == "call_method" and len(n.args) == 1:
        return _METHOD_ACTS.get(n.target)
    return None


# ---------------------------------------------------------------------------------------------
# 1. exact rewrites before tracing
# ---------------------------------------------------------------------------------------------

def _merge_mixed(m: nn.Module) -> nn.Conv2d:
    """timm MixedConv2d (split channels, one conv per split, cat) -> one equivalent nn.Conv2d."""
    convs = list(m.values())
    if not convs or not all(isinstance(c, nn.Conv2d) for c in convs):
        raise Unsupported("MixedConv2d with modules that are not nn.Conv2d")
    for i, c in enumerate(convs):
        _check_plain_conv(c, f"MixedConv2d conv {i}")
    if list(m.splits) != [c.in_channels for c in convs]:
        raise Unsupported("MixedConv2d splits do not match its convs")
    c0 = convs[0]
    for c in convs:
        k, s, p, d = c.kernel_size, c.stride, c.padding, c.dilation
        if (isinstance(p, str) or c.padding_mode != "zeros" or k[0] != k[1] or k[0] % 2 == 0 or s != c0.stride
                or d != c0.dilation or d[0] != d[1] or p != ((k[0] - 1) // 2 * d[0],) * 2):
            raise Unsupported("MixedConv2d convs differ in stride/dilation or are not centred odd kernels")
        if (c.bias is None) != (c0.bias is None):
            raise Unsupported("MixedConv2d convs differ in bias")
    cin = sum(c.in_channels for c in convs)
    cout = sum(c.out_channels for c in convs)
    kmax = max(c.kernel_size[0] for c in convs)
    dw = all(c.groups == c.in_channels == c.out_channels for c in convs)
    pw = all(c.groups == 1 and c.kernel_size == (1, 1) for c in convs)
    if not (dw or pw):
        raise Unsupported("MixedConv2d that is neither depthwise nor 1x1")
    w0 = c0.weight
    merged = nn.Conv2d(cin, cout, kmax, c0.stride, (kmax - 1) // 2 * c0.dilation[0], c0.dilation,
                       groups=cin if dw else 1, bias=c0.bias is not None, device=w0.device, dtype=w0.dtype)
    with torch.no_grad():
        merged.weight.zero_()
        o = i = 0
        for c in convs:
            k = c.kernel_size[0]
            off = (kmax - k) // 2
            if dw:
                merged.weight[o:o + c.out_channels, :, off:off + k, off:off + k] = c.weight
            else:  # block-diagonal: each split's outputs see only its own inputs
                merged.weight[o:o + c.out_channels, i:i + c.in_channels] = c.weight
            if c.bias is not None:
                merged.bias[o:o + c.out_channels] = c.bias
            o += c.out_channels
            i += c.in_channels
    merged.weight.requires_grad_(w0.requires_grad)
    if merged.bias is not None:
        merged.bias.requires_grad_(w0.requires_grad)
    return merged.train(m.training)


def _is_mixed(m: nn.Module) -> bool:
    return type(m).__name__ == "MixedConv2d" and type(m).__module__.startswith("timm.")


def prepare(model: nn.Module, log: Callable[..., None]) -> nn.Module:
    """Exact rewrites, in place (the root may be replaced: use the return value).

    ``log(name=..., source=..., reason=...)`` is called for each rewrite and each refusal."""
    def rewrite(child: nn.Module, full: str) -> nn.Module:
        """child, or what replaces it; then its own children, recursively."""
        kind = type(child).__name__
        if _is_mixed(child):
            try:
                merged = _merge_mixed(child)
                log(name=full, status="rewritten", source=kind,
                    reason="mixed kernels merged into one conv (smaller kernels zero-padded, centred)")
                return merged
            except Unsupported as e:
                log(name=full, status="skipped", source=kind, reason=str(e))
                return child
        # the model's own deploy-form switch; timm's ``fuse`` returns the replacement module
        if callable(getattr(child, "reparameterize", None)):
            child.reparameterize()
            log(name=full, status="rewritten", source=kind, reason="reparameterize()")
        elif callable(getattr(child, "switch_to_deploy", None)):
            child.switch_to_deploy()
            log(name=full, status="rewritten", source=kind, reason="switch_to_deploy()")
        elif callable(getattr(child, "fuse", None)) and type(child).__module__.startswith("timm."):
            fused = child.fuse()
            if isinstance(fused, nn.Module) and fused is not child:
                log(name=full, status="rewritten", source=kind, reason=f"fuse() -> {type(fused).__name__}")
                child = fused
        for name, sub in list(child._modules.items()):
            if sub is not None and not isinstance(sub, FUSED_MODULES):
                child._modules[name] = rewrite(sub, f"{full}.{name}" if full else name)
        return child

    # deploy-form modules are built fresh, in training mode: the model as a whole was in eval
    return rewrite(model, "").eval()


# ---------------------------------------------------------------------------------------------
# 2. tracing
# ---------------------------------------------------------------------------------------------

def _timm_notrace() -> tuple[tuple, tuple]:
    try:
        from timm.layers import _fx
        return tuple(_fx.get_notrace_modules()), tuple(_fx.get_notrace_functions())
    except Exception:  # timm missing or too old: nothing registered
        return (), ()


class _Tracer(fx.Tracer):
    def __init__(self, opaque: set):
        self._notrace_modules, fns = _timm_notrace()
        super().__init__(autowrap_functions=fns)
        self.opaque = opaque

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if id(m) in self.opaque or isinstance(m, FUSED_MODULES + (nn.Conv2d, nn.BatchNorm2d)):
            return True
        if self._notrace_modules and isinstance(m, self._notrace_modules):
            return True
        if module_act(m) is not None:
            return True
        return super().is_leaf_module(m, qualname)


def _passthrough(root: nn.Module, n: fx.Node) -> bool:
    """Nodes that are the identity in eval mode."""
    if n.op == "call_module":
        m = root.get_submodule(n.target)
        if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout)) and len(n.args) == 1:
            return True
        return type(m).__name__ == "DropPath" and not m.training and len(n.args) == 1
    if n.op == "call_function" and n.target in (F.dropout, F.dropout2d):
        return n.kwargs.get("training", n.args[2] if len(n.args) > 2 else True) is False
    return False


# ---------------------------------------------------------------------------------------------
# 3. matching
# ---------------------------------------------------------------------------------------------

@dataclass
class _Unit:
    """conv [BN] [act]: the nodes, what they compute, and where the unit's value comes out."""
    conv: nn.Conv2d
    bn: Optional[nn.Module]
    act: str
    nodes: list
    tail: Optional[str] = None  # an activation module (BatchNormAct2d's) to call after the fused op
    act_in_bn: bool = False  # the activation is BatchNormAct2d's own, not a node of its own

    @property
    def out(self) -> fx.Node:
        return self.nodes[-1]

    @property
    def node(self) -> fx.Node:
        return self.nodes[0]

    def describe(self) -> str:
        c = self.conv
        kind = "dw" if is_depthwise(c) else ("1x1" if c.kernel_size == (1, 1) else f"{c.kernel_size[0]}x{c.kernel_size[1]}")
        if is_depthwise(c):
            kind += f" {c.kernel_size[0]}x{c.kernel_size[1]}/{c.stride[0]}"
        parts = [f"Conv2d({kind})"]
        if self.bn is not None:
            parts.append(type(self.bn).__name__)
        if self.act != "none":
            parts.append(self.act)
        return "+".join(parts)


@dataclass
class _SE:
    nodes: list
    params: tuple
    act: str
    gate: str

    @property
    def out(self) -> fx.Node:
        return self.nodes[-1]


@dataclass
class _Match:
    fused: nn.Module
    op: str
    inp: fx.Node
    nodes: list
    tail: Optional[str] = None
    desc: list = field(default_factory=list)


_ADDS = (operator.add, torch.add, operator.iadd)


def _describe_node(n: fx.Node) -> str:
    t = n.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _bn_code(bn: nn.Module) -> Optional[str]:
    """Activation code carried by timm's BatchNormAct2d ("none" for a plain BN), None if not foldable."""
    drop = getattr(bn, "drop", None)
    if drop is not None and not isinstance(drop, (nn.Identity, nn.Dropout)):
        return None
    act = getattr(bn, "act", None)
    if act is None:
        return "none"
    return module_act(act)


class GraphPass:
    """Fuses the chains of one traced module. ``root``: the traced module (node targets are relative
    to it), ``prefix``: its name in the model (for the report)."""

    def __init__(self, root: nn.Module, graph: fx.Graph, prefix: str, backend: str):
        self.root, self.graph, self.prefix, self.backend = root, graph, prefix, backend
        self.matches: list[tuple[str, _Match]] = []
        self.reasons: dict[str, str] = {}
        self.consumed: set = set()
        self.replacements: dict[str, nn.Module] = {}

    # -- helpers ------------------------------------------------------------------------------
    def name(self, target: str) -> str:
        return f"{self.prefix}.{target}" if self.prefix else target

    def mod(self, n: Any) -> Optional[nn.Module]:
        if isinstance(n, fx.Node) and n.op == "call_module":
            return self.replacements.get(n.target) or self.root.get_submodule(n.target)
        return None

    def act(self, n: fx.Node) -> Optional[str]:
        m = self.mod(n)
        return module_act(m) if m is not None else _node_act(self.root, n)

    def conv(self, n: Any) -> Optional[nn.Conv2d]:
        m = self.mod(n)
        return m if isinstance(m, nn.Conv2d) else None

    @staticmethod
    def sole_user(n: fx.Node) -> Optional[fx.Node]:
        """The only user of n, if it takes n as its first argument."""
        if len(n.users) != 1:
            return None
        u = next(iter(n.users))
        return u if u.args and u.args[0] is n else None

    def is_pw(self, u: Optional[_Unit]) -> bool:
        c = u.conv if u is not None else None
        return (type(c) is nn.Conv2d and c.kernel_size == (1, 1) and c.groups == 1 and c.stride == (1, 1)
                and c.padding == (0, 0))

    def unit(self, c: fx.Node) -> Optional[_Unit]:
        conv = self.conv(c)
        if conv is None or len(c.args) != 1 or c.kwargs:
            return None
        u = _Unit(conv, None, "none", [c])
        nxt = self.sole_user(u.out)
        bn = self.mod(nxt)
        if (isinstance(bn, nn.BatchNorm2d) and len(nxt.args) == 1 and bn.num_features == conv.out_channels
                and bn.running_mean is not None and not bn.training):
            code = _bn_code(bn)
            if code is not None:
                u.bn = bn
                u.nodes.append(nxt)
                if code in _block_acts():
                    u.act, u.act_in_bn = code, code != "none"
                else:  # e.g. GELU inside BatchNormAct2d before the ops support it: call it after
                    u.tail = f"{nxt.target}.act"
                    return u
        if u.act == "none":
            nxt = self.sole_user(u.out)
            if nxt is not None and self.act(nxt) in _block_acts() and nxt not in self.consumed:
                u.act = self.act(nxt)
                u.nodes.append(nxt)
        return u

    def producer(self, x: Any) -> Optional[_Unit]:
        """The conv unit whose value is x, if any."""
        n = x
        for _ in range(3):
            if not isinstance(n, fx.Node):
                return None
            if self.conv(n) is not None:
                u = self.unit(n)
                return u if u is not None and u.out is x else None
            n = n.args[0] if n.args else None
        return None

    def _is_gpool(self, n: fx.Node, h: fx.Node) -> bool:
        if not n.args or n.args[0] is not h:
            return False
        if n.op == "call_method" and n.target == "mean" or n.op == "call_function" and n.target is torch.mean:
            dims = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
            keep = n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False)
            return keep is True and isinstance(dims, (tuple, list)) and sorted(d % 4 for d in dims) == [2, 3]
        m = self.mod(n)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return m.output_size in (1, (1, 1))
        if n.op == "call_function" and n.target is F.adaptive_avg_pool2d:
            size = n.kwargs.get("output_size", n.args[1] if len(n.args) > 1 else None)
            return size in (1, (1, 1), [1, 1])
        return False

    @staticmethod
    def _is_mul(n: fx.Node) -> bool:
        return (n.op == "call_function" and n.target in (operator.mul, torch.mul) or
                n.op == "call_method" and n.target == "mul") and len(n.args) == 2 and not n.kwargs

    def se(self, h: fx.Node) -> Optional[_SE]:
        """h * gate(conv(act(conv(mean(h))))) -> the SE nodes and parameters."""
        users = list(h.users)
        if len(users) != 2:
            return None
        pools = [u for u in users if self._is_gpool(u, h)]
        muls = [u for u in users if self._is_mul(u) and h in u.args]
        if len(pools) != 1 or len(muls) != 1:
            return None
        pool, mul = pools[0], muls[0]
        nodes = [pool]
        c1 = self.sole_user(pool)
        a = self.sole_user(c1) if c1 is not None else None
        c2 = self.sole_user(a) if a is not None else None
        g = self.sole_user(c2) if c2 is not None else None
        conv1, conv2 = self.conv(c1), self.conv(c2)
        if conv1 is None or conv2 is None or g is None or a is None:
            return None
        act, gate = self.act(a), self.act(g)
        if act not in _block_acts() or gate not in _common.SE_GATES:
            return None
        try:
            _check_pw(conv1, "SE reduce conv")
            _check_pw(conv2, "SE expand conv")
        except Unsupported:
            return None
        if conv2.out_channels != conv1.in_channels or conv1.in_channels != self.unit_channels(h):
            return None
        if set(mul.args) != {h, g} or len(g.users) != 1:
            return None
        nodes += [c1, a, c2, g, mul]
        return _SE(nodes, (*fold_bn(conv1, None), *fold_bn(conv2, None)), act, gate)

    def unit_channels(self, h: fx.Node) -> Optional[int]:
        u = self.producer(h)
        return u.conv.out_channels if u is not None else None

    def residual(self, out: fx.Node, x: Any) -> Optional[fx.Node]:
        """The node adding x to out (out + x, x + out, torch.add, out += x), if out's only use."""
        if len(out.users) != 1:
            return None
        u = next(iter(out.users))
        if u.kwargs or len(u.args) != 2:
            return None
        if u.op == "call_function" and u.target in _ADDS:
            if u.target is operator.iadd and u.args[0] is not out:
                return None  # x += out mutates x, which others may read
        elif not (u.op == "call_method" and u.target == "add"):
            return None
        return u if set(u.args) == {out, x} and u.args[0] is not u.args[1] else None

    def pw_next(self, h: fx.Node) -> Optional[_Unit]:
        nxt = self.sole_user(h)
        if nxt is None or self.conv(nxt) is None or nxt in self.consumed:
            return None
        u = self.unit(nxt)
        return u if self.is_pw(u) else None

    # -- matching -----------------------------------------------------------------------------
    def run(self) -> None:
        for n in list(self.graph.nodes):
            if _passthrough(self.root, n):
                n.replace_all_uses_with(n.args[0])
                self.graph.erase_node(n)
        for n in list(self.graph.nodes):
            if n in self.consumed or n.graph is not self.graph:
                continue
            c = self.conv(n)
            if c is None or not is_depthwise(c):
                continue
            name = self.name(n.target)
            try:
                m = self.match(n)
                if m is None:
                    continue
                self.commit(n, m)
            except Unsupported as e:
                self.reasons[name] = str(e)
                continue
            self.matches.append((name, m))
            self.reasons.pop(name, None)

    def match(self, d: fx.Node) -> Optional[_Match]:
        name = self.name(d.target)
        D = self.unit(d)
        if D is None:
            raise Unsupported("depthwise conv called with extra arguments")
        _check_dw(D.conv)
        x = d.args[0]
        E = self.producer(x)
        if E is not None and (not self.is_pw(E) or any(k in self.consumed for k in E.nodes) or E.tail):
            E = None
        se = self.se(D.out) if D.tail is None else None
        h = se.out if se is not None else D.out
        P = self.pw_next(h) if D.tail is None else None
        dil = D.conv.dilation[0]
        why = []
        if E is not None and P is not None and len(x.users) == 1:
            if E.act != D.act:
                why.append(f"expand activation {E.act} differs from depthwise activation {D.act}")
            elif dil != 1:
                why.append("the inverted_residual op has no dilation")
            else:
                return self.ir(E, D, se, P, E.node.args[0])
        if P is not None and se is None and D.tail is None:
            return self.dwpw(D, P, x)
        if P is not None and se is not None and dil == 1:
            return self.ir(None, D, se, P, x)
        if E is not None:
            m = self.pwdw(E, D, x)
            if m is not None:
                return m
        if P is None:
            after = [_describe_node(u) for u in D.out.users]
            why.append(f"no 1x1 conv right after it (its output goes to {', '.join(after) or 'nothing'})"
                       if se is None else "SE not followed by a 1x1 conv")
        if E is None:
            why.append("no 1x1 conv right before it")
        self.reasons[name] = "depthwise conv outside any recognised block or fusable chain: " + "; ".join(why)
        return None

    def _finish_pw(self, P: _Unit, act_ok: bool) -> tuple[list, str, Optional[str]]:
        """The project/pointwise unit's nodes the fused op absorbs, the activation it applies, and a
        tail module. An activation the op cannot apply there stays in the graph (a later node)."""
        nodes, act, tail = list(P.nodes), P.act, P.tail
        if act != "none" and not act_ok:
            if P.act_in_bn:
                tail = f"{P.nodes[-1].target}.act"
            else:
                nodes = nodes[:-1]
            act = "none"
        return nodes, act, tail

    def ir(self, E: Optional[_Unit], D: _Unit, se: Optional[_SE], P: _Unit, x: Any) -> _Match:
        nodes_p, _, tail = self._finish_pw(P, act_ok=False)
        nodes = ([] if E is None else E.nodes) + D.nodes + ([] if se is None else se.nodes) + nodes_p
        k, s, p, _ = _check_dw(D.conv)
        c_in = D.conv.in_channels if E is None else E.conv.in_channels
        if E is not None and E.conv.out_channels != D.conv.in_channels:
            raise Unsupported("expand conv output channels differ from the depthwise conv's")
        if P.conv.in_channels != D.conv.out_channels:
            raise Unsupported("project conv input channels differ from the depthwise conv's")
        residual = False
        if tail is None and nodes_p[-1] is P.out and P.act == "none" and s == 1 and c_in == P.conv.out_channels:
            add = self.residual(P.out, x)
            if add is not None:
                nodes.append(add)
                residual = True
        w = D.conv.weight
        m = InvertedResidual(c_in, P.conv.out_channels, expand_channels=None if E is None else E.conv.out_channels,
                             kernel_size=k, stride=s, padding=p, act=D.act,
                             se_channels=0 if se is None else se.params[0].shape[0],
                             se_act="relu" if se is None else se.act,
                             se_gate="hardsigmoid" if se is None else se.gate, residual=residual,
                             backend=self.backend, device=w.device, dtype=w.dtype)
        pairs = list(zip((m.dw_weight, m.dw_bias), fold_bn(D.conv, D.bn)))
        pairs += list(zip((m.project_weight, m.project_bias), fold_bn(P.conv, P.bn)))
        if E is not None:
            pairs += list(zip((m.expand_weight, m.expand_bias), fold_bn(E.conv, E.bn)))
        if se is not None:
            pairs += list(zip((m.se_w1, m.se_b1, m.se_w2, m.se_b2), se.params))
        for prm, t in pairs:
            _copy_(prm, t)
        desc = ([] if E is None else [E.describe()]) + [D.describe()] + (["SE"] if se else []) + [P.describe()]
        return _Match(m, "inverted_residual", x, nodes, tail, desc + (["+x"] if residual else []))

    def dwpw(self, D: _Unit, P: _Unit, x: Any) -> _Match:
        nodes_p, pw_act, tail = self._finish_pw(P, act_ok=True)
        nodes = D.nodes + nodes_p
        residual = False
        if tail is None and D.conv.stride == (1, 1) and D.conv.in_channels == P.conv.out_channels:
            add = self.residual(P.out, x)
            if add is not None:
                nodes.append(add)
                residual = True
        m = DepthwiseSeparableConv2d.from_modules(D.conv, D.bn, P.conv, P.bn, D.act, pw_act, residual=residual,
                                                  backend=self.backend)
        return _Match(m, "dwpw_conv2d", x, nodes, tail, [D.describe(), P.describe()] + (["+x"] if residual else []))

    def pwdw(self, E: _Unit, D: _Unit, x: Any) -> Optional[_Match]:
        e_out, users = E.out, set(E.out.users)
        cat = next(iter(D.out.users)) if D.tail is None and len(D.out.users) == 1 else None
        concat = (cat is not None and cat.op == "call_function" and cat.target is torch.cat and len(cat.args) >= 1
                  and list(cat.args[0]) == [e_out, D.out] and users == {D.node, cat}
                  and cat.kwargs.get("dim", cat.args[1] if len(cat.args) > 1 else 0) in (1, -3))
        if not concat and users != {D.node}:
            return None
        nodes = E.nodes + D.nodes + ([cat] if concat else [])
        m = PointwiseDepthwiseConv2d.from_modules(E.conv, E.bn, D.conv, D.bn, E.act, D.act, concat=concat,
                                                  backend=self.backend)
        return _Match(m, "pwdw_conv2d", E.node.args[0], nodes, D.tail,
                      [E.describe(), D.describe()] + (["cat"] if concat else []))

    # -- rewriting ----------------------------------------------------------------------------
    def commit(self, d: fx.Node, m: _Match) -> None:
        nodes = list(dict.fromkeys(m.nodes))
        inside = set(nodes)
        out = nodes[-1]
        for n in nodes[:-1]:
            if any(u not in inside for u in n.users):
                raise Unsupported(f"the intermediate {n.name} is also used outside the chain")
        target = d.target
        self.replacements[target] = m.fused
        with self.graph.inserting_after(out):
            new = self.graph.call_module(target, (m.inp,))
        out.replace_all_uses_with(new)
        last = new
        if m.tail is not None:
            with self.graph.inserting_after(new):
                last = self.graph.call_module(m.tail, (new,))
            new.replace_all_uses_with(last, delete_user_cb=lambda u: u is not last)
        order = {n: i for i, n in enumerate(self.graph.nodes)}
        for n in sorted(nodes, key=order.__getitem__, reverse=True):
            self.graph.erase_node(n)
        self.consumed |= inside

    def build(self) -> fx.GraphModule:
        """A GraphModule computing the rewritten graph, with the original leaves and the fused modules."""
        attrs: dict[str, Any] = {}
        for n in self.graph.nodes:
            if n.op in ("call_module", "get_attr"):
                if n.target in self.replacements:
                    attrs[n.target] = self.replacements[n.target]
                    continue
                obj: Any = self.root
                for part in n.target.split("."):
                    obj = getattr(obj, part)
                attrs[n.target] = obj
        self.graph.lint()
        gm = fx.GraphModule(attrs, self.graph)
        for k, v in vars(self.root).items():
            if not k.startswith("_") and k != "training" and not hasattr(gm, k):
                setattr(gm, k, v)
        return gm.train(self.root.training)


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------

def _has_unfused_dw(m: nn.Module) -> bool:
    if isinstance(m, FUSED_MODULES):
        return False
    if is_depthwise(m):
        return True
    return any(_has_unfused_dw(c) for c in m.children())


@dataclass
class GraphResult:
    model: nn.Module
    matches: list  # (name, _Match)
    reasons: dict  # dw conv name -> why it stayed unfused


def fuse_graphs(model: nn.Module, backend: str) -> GraphResult:
    """Post-order over the modules that contain an unfused depthwise conv: trace, match, rewrite."""
    opaque: set = set()
    matches: list = []
    reasons: dict = {}

    def visit(m: nn.Module, prefix: str) -> nn.Module:
        for name, child in list(m._modules.items()):
            if child is not None and _has_unfused_dw(child):
                m._modules[name] = visit(child, f"{prefix}.{name}" if prefix else name)
        if not m._modules or isinstance(m, FUSED_MODULES) or not _has_unfused_dw(m):
            return m
        try:
            graph = _Tracer(opaque).trace(m)
        except Exception as e:  # noqa: BLE001 - fx raises many kinds; the module just stays a leaf
            opaque.add(id(m))
            msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            for n, sub in m.named_modules():
                full = ".".join(p for p in (prefix, n) if p)
                if is_depthwise(sub) and full not in reasons:
                    reasons[full] = f"inside {prefix or '<root>'} ({type(m).__name__}), which torch.fx cannot trace: {msg}"
            return m
        gp = GraphPass(m, graph, prefix, backend)
        gp.run()
        reasons.update(gp.reasons)
        for name, _ in gp.matches:
            reasons.pop(name, None)
        if not gp.matches:
            return m
        matches.extend(gp.matches)
        return gp.build()

    return GraphResult(visit(model, ""), matches, reasons)
