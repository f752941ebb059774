"""The block-shape catalogue: every fusable block of the target networks, read off the models.

Each model is built (random init, nothing downloaded) on the meta device and run once on a
(1, 3, 224, 224) input with forward hooks on its blocks; each hook records the block's input and
output shapes, and the block's modules give its config (channels, kernel, stride, expansion,
groups, SE, activations). Blocks map to fastconv ops:

  MobileNetV1 blocks, MobileNetV2 t=1 blocks           -> dwpw_conv2d
  MobileNetV2/V3 inverted residuals (V3 t=1: no expand) -> inverted_residual
  ShuffleNetV1 units                                    -> shufflenet_v1_unit, and inside them
        gconv1 (+BN+ReLU+shuffle), gconv2 (+BN)         -> group_conv1x1; the shuffle -> channel_shuffle
  ShuffleNetV2 units                                    -> shufflenet_v2_unit, their output shuffle -> channel_shuffle
  GhostNet ghost modules (timm; primary 1x1 + cheap dw + concat), MobileNetV4 universal inverted
        residuals' pw_exp -> dw_mid (timm)             -> pwdw_conv2d (concat <=> K == 2 * hidden)
  every depthwise nn.Conv2d of those models, of efficientnet_b0 and convnext_tiny (7x7), and
        RepLKNet-31B's 31x31 / 13x13 layers (listed, not built)  -> depthwise_conv2d (training op)

Identical configs are merged into one Entry that lists every (model, block index, part) it stands for.
``python -m bench.catalogue`` prints the table.
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from bench.common import OPS, SE, Stage, is_depthwise, parse_stages, randomize_bn

INPUT = (1, 3, 224, 224)
DEFAULT_BATCHES = (1, 8, 32, 128)

# Every config field, with the value it takes when it does not apply to an op (keeps the CSV square).
CFG_DEFAULTS = {
    "C": 0, "H": 0, "W": 0,        # input channels and spatial size
    "K": 0, "Ho": 0, "Wo": 0,      # output channels and spatial size
    "kernel": 0, "stride": 1,      # depthwise kernel size and stride
    "hidden": 0,                   # expanded channels E (inverted residual), bottleneck M (ShuffleNet)
    "expand": False,               # inverted residual has an expand 1x1 conv
    "groups": 1, "first_groups": 1,  # 1x1 conv groups (ShuffleNetV1: gconv2 / gconv1)
    "shuffle_out": 0,              # group_conv1x1: shuffle groups applied to its output (0 = none)
    "se": 0,                       # squeeze-excite bottleneck channels (0 = no SE)
    "act": "none",                 # main activation (dwpw: after the depthwise conv)
    "out_act": "none",             # dwpw only: activation after the pointwise conv
    "se_act": "none", "se_gate": "none",
    "residual": False,             # the block adds its input
}
CFG_FIELDS = tuple(CFG_DEFAULTS)


def _fastconv_models():
    try:
        from fastconv import models
    except Exception as e:  # the module is optional for the catalogue: skip its families, loudly
        return None, f"fastconv.models is not importable ({type(e).__name__}: {e})"
    return models, ""


def _tv(name: str) -> Callable[[], nn.Module]:
    def build():
        import torchvision.models as tvm
        return getattr(tvm, name)(weights=None)
    return build


def _timm(name: str) -> Callable[[], nn.Module]:
    def build():
        import timm
        return timm.create_model(name, pretrained=False)
    return build


def _fc(name: str, **kw) -> Callable[[], nn.Module]:
    def build():
        models, why = _fastconv_models()
        if models is None:
            raise RuntimeError(why)
        return getattr(models, name)(**kw)
    return build


# model name -> (family, constructor)
MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "mobilenet_v1_1.0": ("mobilenet_v1", _fc("mobilenet_v1", width_mult=1.0)),
    "mobilenet_v1_0.5": ("mobilenet_v1", _fc("mobilenet_v1", width_mult=0.5)),
    "mobilenet_v2": ("mobilenet_v2", _tv("mobilenet_v2")),
    "mobilenet_v3_large": ("mobilenet_v3", _tv("mobilenet_v3_large")),
    "mobilenet_v3_small": ("mobilenet_v3", _tv("mobilenet_v3_small")),
    "shufflenet_v1_g1": ("shufflenet_v1", _fc("shufflenet_v1", groups=1)),
    "shufflenet_v1_g2": ("shufflenet_v1", _fc("shufflenet_v1", groups=2)),
    "shufflenet_v1_g3": ("shufflenet_v1", _fc("shufflenet_v1", groups=3)),
    "shufflenet_v1_g4": ("shufflenet_v1", _fc("shufflenet_v1", groups=4)),
    "shufflenet_v1_g8": ("shufflenet_v1", _fc("shufflenet_v1", groups=8)),
    "shufflenet_v2_x0_5": ("shufflenet_v2", _tv("shufflenet_v2_x0_5")),
    "shufflenet_v2_x1_0": ("shufflenet_v2", _tv("shufflenet_v2_x1_0")),
    "shufflenet_v2_x1_5": ("shufflenet_v2", _tv("shufflenet_v2_x1_5")),
    "shufflenet_v2_x2_0": ("shufflenet_v2", _tv("shufflenet_v2_x2_0")),
    "ghostnet_100": ("ghostnet", _timm("ghostnet_100")),
    "mobilenetv4_conv_small": ("mobilenet_v4", _timm("mobilenetv4_conv_small")),
}
# depthwise_conv2d only: models walked for their depthwise convs (not for fused blocks), and RepLKNet-31B
# (Ding et al. 2022: channels 128/256/512/1024 at strides 4/8/16/32, kernels 31/29/27/13), whose shapes are
# listed rather than built (no torchvision/timm model).
DW_MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "efficientnet_b0": ("efficientnet", _tv("efficientnet_b0")),
    "convnext_tiny": ("convnext", _tv("convnext_tiny")),
}
# (C, H, kernel): RepLKNet-31B at 224x224, one large-kernel layer per stage (the 5x5 small-kernel
# branches are merged into the large kernel after training, and 31 stands for 29/27 as well).
REPLKNET_31B = ((128, 56, 31), (256, 28, 31), (512, 14, 31), (1024, 7, 13))
FAMILIES = tuple(dict.fromkeys([f for f, _ in MODELS.values()] + [f for f, _ in DW_MODELS.values()] + ["replknet"]))
FASTCONV_FAMILIES = ("mobilenet_v1", "shufflenet_v1")  # defined in fastconv.models, not torchvision


@dataclass(frozen=True)
class Source:
    """Where an entry comes from: block ``index`` (execution order) of ``model`` at module ``path``;
    ``part`` names a piece of the block for sub-ops ("" = the whole block)."""
    model: str
    family: str
    index: int
    path: str
    part: str = ""

    def __str__(self) -> str:
        return f"{self.model}:{self.index}" + (f".{self.part}" if self.part else "")


@dataclass
class Entry:
    op: str
    cfg: dict
    sources: list = field(default_factory=list)

    @property
    def key(self) -> str:
        return block_key(self.op, self.cfg)

    @property
    def family(self) -> str:
        return self.sources[0].family

    @property
    def families(self) -> list:
        return list(dict.fromkeys(s.family for s in self.sources))

    @property
    def label(self) -> str:
        """A short human name, e.g. ``ir 16>96>24 k3s2 @112``."""
        c = self.cfg
        at = f"@{c['H']}"
        if self.op == "dwpw_conv2d":
            return f"dwpw {c['C']}>{c['K']} k{c['kernel']}s{c['stride']} {at}"
        if self.op == "inverted_residual":
            se = "+se" if c["se"] else ""
            return f"ir {c['C']}>{c['hidden']}>{c['K']} k{c['kernel']}s{c['stride']}{se} {c['act']} {at}"
        if self.op == "depthwise_conv2d":
            m = f"x{c['K'] // c['C']}" if c["K"] != c["C"] else ""
            return f"dw {c['C']}{m} k{c['kernel']}s{c['stride']} {at}"
        if self.op == "channel_shuffle":
            return f"shuffle {c['C']} g{c['groups']} {at}"
        if self.op == "group_conv1x1":
            sh = f" sh{c['shuffle_out']}" if c["shuffle_out"] else ""
            return f"gconv {c['C']}>{c['K']} g{c['groups']}{sh} {at}"
        if self.op == "shufflenet_v1_unit":
            return f"snv1 {c['C']}>{c['K']} g{c['groups']}/{c['first_groups']} s{c['stride']} {at}"
        if self.op == "pwdw_conv2d":
            cat = "+cat" if c["K"] == 2 * c["hidden"] else ""
            return f"pwdw {c['C']}>{c['hidden']} k{c['kernel']}s{c['stride']}{cat} {at}"
        return f"snv2 {c['C']}>{c['K']} b{c['hidden']} s{c['stride']} {at}"

    def provenance(self) -> str:
        return ";".join(str(s) for s in self.sources)


def block_key(op: str, cfg: dict) -> str:
    return op + "|" + ",".join(f"{k}={cfg[k]}" for k in CFG_FIELDS)


def _cfg(**kw) -> dict:
    unknown = set(kw) - set(CFG_DEFAULTS)
    assert not unknown, unknown
    return {**CFG_DEFAULTS, **kw}


# ---------------------------------------------------------------------------------------------
# reading one block
# ---------------------------------------------------------------------------------------------

def _classify(block: nn.Module) -> Optional[str]:
    """Which kind of block this module is, by class (None: not a block we catalogue)."""
    from torchvision.models import mobilenetv2, mobilenetv3, shufflenetv2
    if isinstance(block, (mobilenetv2.InvertedResidual, mobilenetv3.InvertedResidual)):
        return "mbconv"
    if isinstance(block, shufflenetv2.InvertedResidual):
        return "shufflenet_v2"
    name = type(block).__name__
    if name == "ShuffleV1Block":
        return "shufflenet_v1"
    if name == "DepthwiseSeparable":
        return "dwsep"
    if name == "GhostModule" and type(block).__module__.startswith("timm."):
        return "ghost"
    if name == "UniversalInvertedResidual" and not isinstance(getattr(block, "dw_mid", None), nn.Identity):
        return "uir"
    return None


def pwdw_stages(kind: str, block: nn.Module) -> tuple[Stage, Stage]:
    """The (1x1, depthwise) convs of a ghost module / UIR pw_exp -> dw_mid, each with BN and act.
    timm's BatchNormAct2d carries the activation inside the BN."""
    from bench.common import act_name
    if kind == "ghost":
        pw, dw = (Stage(s[0], s[1], act_name(s[2]) or "none") for s in (block.primary_conv, block.cheap_operation))
    else:
        pw, dw = (Stage(m.conv, m.bn, act_name(m.bn.act) or "none") for m in (block.pw_exp, block.dw_mid))
    return pw, dw


def _block_entries(kind: str, block: nn.Module, shapes: dict) -> list[tuple[str, str, dict]]:
    """[(op, part, cfg)] for one block; ``shapes`` maps part -> (input shape, output shape)."""
    (_, c, h, w), (_, k, ho, wo) = shapes[""]
    if kind in ("ghost", "uir"):
        pw, dw = pwdw_stages(kind, block)
        (_, c, h, w), _ = shapes["pw"]
        _, (_, md, ho, wo) = shapes["dw"]
        m = pw.conv.out_channels
        return [("pwdw_conv2d", "pw_dw", _cfg(C=c, H=h, W=w, K=md + m if kind == "ghost" else md, Ho=ho, Wo=wo,
                                               kernel=dw.conv.kernel_size[0], stride=dw.conv.stride[0], hidden=m,
                                               act=pw.act, out_act=dw.act))]
    if kind in ("mbconv", "dwsep"):
        stages = parse_stages(block)
        convs = [s for s in stages if isinstance(s, Stage)]
        se = [s for s in stages if isinstance(s, SE)]
        dw = next(s for s in convs if is_depthwise(s.conv))
        expand = convs[0] if convs[0] is not dw else None
        project = convs[-1]
        residual = bool(getattr(block, "use_res_connect", False))
        common = dict(C=c, H=h, W=w, K=k, Ho=ho, Wo=wo, kernel=dw.conv.kernel_size[0], stride=dw.conv.stride[0],
                      residual=residual)
        torchvision_v2 = type(block).__module__.endswith("mobilenetv2")
        if kind == "dwsep" or (torchvision_v2 and expand is None):
            return [("dwpw_conv2d", "", _cfg(**common, hidden=c, act=dw.act, out_act=project.act))]
        s = se[0] if se else None
        return [("inverted_residual", "", _cfg(
            **common, hidden=dw.conv.in_channels, expand=expand is not None, act=dw.act,
            se=s.fc1.out_channels if s else 0, se_act=s.act if s else "none",
            se_gate=s.gate if s else "none"))]
    if kind == "shufflenet_v2":
        stride = block.stride
        b = block.branch2[0].out_channels
        out = [("shufflenet_v2_unit", "", _cfg(C=c, H=h, W=w, K=k, Ho=ho, Wo=wo, kernel=3, stride=stride,
                                               hidden=b, act="relu"))]
        out.append(("channel_shuffle", "shuffle", _cfg(C=k, H=ho, W=wo, K=k, Ho=ho, Wo=wo, groups=2)))
        return out
    # ShuffleNetV1 unit
    g, g1, m = block.groups, block.first_groups, block.gconv1.out_channels
    out = [("shufflenet_v1_unit", "", _cfg(C=c, H=h, W=w, K=block.gconv2.out_channels, Ho=ho, Wo=wo, kernel=3,
                                           stride=block.stride, hidden=m, groups=g, first_groups=g1,
                                           act="relu", residual=block.stride == 1))]
    out.append(("group_conv1x1", "gconv1", _cfg(C=c, H=h, W=w, K=m, Ho=h, Wo=w, groups=g1,
                                                shuffle_out=g if g > 1 else 0, act="relu")))
    if g > 1:
        out.append(("channel_shuffle", "shuffle", _cfg(C=m, H=h, W=w, K=m, Ho=h, Wo=w, groups=g)))
    (_, m2, h2, w2), (_, k2, _, _) = shapes["gconv2"]
    out.append(("group_conv1x1", "gconv2", _cfg(C=m2, H=h2, W=w2, K=k2, Ho=h2, Wo=w2, groups=g)))
    return out


def _run_hooked(model: nn.Module, handles: list) -> None:
    """One meta-device forward of ``model`` at INPUT (the hooks record shapes), then drop the hooks."""
    try:
        with torch.no_grad():
            model(torch.empty(INPUT, device="meta"))
    finally:
        for hd in handles:
            hd.remove()


def walk_model(name: str) -> list[tuple[str, Source, dict]]:
    """[(op, source, cfg)] for every catalogued block of model ``name``, in execution order."""
    family, ctor = MODELS[name]
    with torch.device("meta"):
        model = ctor().eval()
    blocks = [(path, m, _classify(m)) for path, m in model.named_modules()]
    blocks = [(path, m, kind) for path, m, kind in blocks if kind is not None]
    seen: list[tuple[str, nn.Module, str, dict]] = []
    handles = []

    def record(store: dict, part: str):
        def hook(mod, inputs, output):
            store[part] = (tuple(inputs[0].shape), tuple(output.shape))
        return hook

    for path, m, kind in blocks:
        shapes: dict = {}
        handles.append(m.register_forward_hook(record(shapes, "")))
        if kind == "shufflenet_v1":
            handles.append(m.gconv2.register_forward_hook(record(shapes, "gconv2")))
        if kind in ("ghost", "uir"):
            pw, dw = pwdw_stages(kind, m)
            handles.append(pw.conv.register_forward_hook(record(shapes, "pw")))
            handles.append(dw.conv.register_forward_hook(record(shapes, "dw")))
        # Execution order: the block-level hook fires after its children, so order by a pre-hook.
        handles.append(m.register_forward_pre_hook(lambda mod, inp, _e=(path, m, kind, shapes): seen.append(_e)))
    _run_hooked(model, handles)
    out = []
    for index, (path, m, kind, shapes) in enumerate(seen):
        for op, part, cfg in _block_entries(kind, m, shapes):
            out.append((op, Source(name, family, index, path, part), cfg))
    return out


@functools.lru_cache(maxsize=None)
def _walk_cached(name: str) -> tuple:
    return tuple(walk_model(name))


def walk_depthwise(name: str) -> list[tuple[str, Source, dict]]:
    """[("depthwise_conv2d", source, cfg)] for every depthwise nn.Conv2d of model ``name`` (MODELS or
    DW_MODELS), in execution order; "replknet_31b" gives the listed REPLKNET_31B layers."""
    if name == "replknet_31b":
        return [("depthwise_conv2d", Source(name, "replknet", i, f"stages.{i}.large_kernel"),
                 _cfg(C=c, H=h, W=h, K=c, Ho=h, Wo=h, kernel=k, hidden=c)) for i, (c, h, k) in enumerate(REPLKNET_31B)]
    family, ctor = (MODELS.get(name) or DW_MODELS[name])
    with torch.device("meta"):
        model = ctor().eval()
    found: list = []
    handles = [m.register_forward_hook(lambda mod, inp, out, _p=path: found.append((_p, mod, inp[0].shape, out.shape)))
               for path, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1 and m.out_channels % m.in_channels == 0]
    _run_hooked(model, handles)
    out = []
    for index, (path, conv, (_, c, h, w), (_, k, ho, wo)) in enumerate(found):
        out.append(("depthwise_conv2d", Source(name, family, index, path),
                    _cfg(C=c, H=h, W=w, K=k, Ho=ho, Wo=wo, kernel=conv.kernel_size[0], stride=conv.stride[0],
                         hidden=c)))
    return out


@functools.lru_cache(maxsize=None)
def _walk_dw_cached(name: str) -> tuple:
    return tuple(walk_depthwise(name))


def available_models() -> tuple[list[str], dict[str, str]]:
    """(models that can be built here, {skipped model: why})."""
    models, why = _fastconv_models()
    ok, skipped = [], {}
    for name in MODELS:
        if models is None and MODELS[name][0] in FASTCONV_FAMILIES:
            skipped[name] = why
        else:
            ok.append(name)
    return ok, skipped


def build_catalogue(models: Optional[Iterable[str]] = None, families: Optional[Iterable[str]] = None,
                    ops: Optional[Iterable[str]] = None) -> list[Entry]:
    """Deduplicated entries, in order of first appearance (models in MODELS order)."""
    names, _ = available_models()
    if models is not None:
        wanted = set(models)
        unknown = wanted - set(MODELS) - set(DW_MODELS) - {"replknet_31b"}
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {list(MODELS)}")
        names = [n for n in names if n in wanted]
    if families is not None:
        fams = set(families)
        unknown = fams - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown family(ies) {sorted(unknown)}; known: {list(FAMILIES)}")
        names = [n for n in names if MODELS[n][0] in fams]
    op_set = set(ops) if ops is not None else set(OPS)
    unknown = op_set - set(OPS)
    if unknown:
        raise ValueError(f"unknown op(s) {sorted(unknown)}; known: {list(OPS)}")
    by_key: dict[str, Entry] = {}
    walks = [(n, _walk_cached) for n in names]
    if "depthwise_conv2d" in op_set:
        dw_names = [n for n in (list(MODELS) + list(DW_MODELS) + ["replknet_31b"]) if models is None or n in models]
        dw_names = [n for n in dw_names if n in names or n not in MODELS]
        if families is not None:
            dw_names = [n for n in dw_names if (MODELS.get(n) or DW_MODELS.get(n) or ("replknet",))[0] in fams]
        walks += [(n, _walk_dw_cached) for n in dw_names]
    for name, walk in walks:
        for op, src, cfg in walk(name):
            if op not in op_set:
                continue
            key = block_key(op, cfg)
            if key not in by_key:
                by_key[key] = Entry(op, cfg)
            by_key[key].sources.append(src)
    entries = list(by_key.values())
    return sorted(entries, key=lambda e: OPS.index(e.op))


def quick_subset(entries: list[Entry], per_op: int = 2) -> list[Entry]:
    """A few representative entries per op: the largest by activation size and one mid-sized."""
    from bench.metrics import block_metrics
    out = []
    for op in OPS:
        es = [e for e in entries if e.op == op]
        if not es:
            continue
        es = sorted(es, key=lambda e: block_metrics(e, 1, 2, "fwd").bytes)
        picks: list[Entry] = []
        for e in (es[-1], es[len(es) // 2]):
            if all(e is not q for q in picks):
                picks.append(e)
        out.extend(picks[:per_op])
    return out


# ---------------------------------------------------------------------------------------------
# channel-scaled proxies (CPU correctness checks through the Triton interpreter)
# ---------------------------------------------------------------------------------------------

def _up(v: int, s: int, mult: int = 1) -> int:
    """ceil(v / s) rounded up to a multiple of ``mult`` (at least ``mult``)."""
    q = -(-v // s)
    return max(mult, -(-q // mult) * mult)


def channel_scale(entry: Entry, max_channels: int) -> int:
    """The smallest power of two s with (widest channel count of the entry) / s <= max_channels."""
    c = entry.cfg
    widest = max(c["C"], c["K"], c["hidden"])
    s = 1
    while widest / s > max_channels:
        s *= 2
    return s


def scaled_cfg(entry: Entry, s: int) -> dict:
    """The entry's config with every channel count divided by ``s`` (rounded up), keeping what the op
    requires: group divisibility, residual/stride-1 equalities, SNv2's even split. Spatial fields are
    left alone (the check sets its own input size)."""
    import math
    c = dict(entry.cfg)
    if s == 1:
        return c
    op = entry.op
    if op == "dwpw_conv2d":
        c["C"] = c["hidden"] = _up(c["C"], s)
        c["K"] = c["C"] if c["residual"] else _up(c["K"], s)
    elif op == "inverted_residual":
        c["C"] = _up(c["C"], s)
        c["hidden"] = _up(c["hidden"], s) if c["expand"] else c["C"]
        c["K"] = c["C"] if c["residual"] else _up(c["K"], s)
        c["se"] = _up(c["se"], s) if c["se"] else 0
    elif op == "group_conv1x1":
        g = c["groups"]
        c["C"] = _up(c["C"], s, g)
        c["K"] = _up(c["K"], s, math.lcm(g, c["shuffle_out"] or 1))
    elif op == "channel_shuffle":
        c["C"] = c["K"] = _up(c["C"], s, c["groups"])
    elif op == "depthwise_conv2d":
        m = c["K"] // c["C"]
        c["C"] = c["hidden"] = _up(c["C"], s)
        c["K"] = c["C"] * m
    elif op == "shufflenet_v1_unit":
        g, g1 = c["groups"], c["first_groups"]
        c["hidden"] = _up(c["hidden"], s, math.lcm(g, g1))
        if c["stride"] == 1:
            c["C"] = c["K"] = _up(c["C"], s, math.lcm(g, g1))
        else:
            c["C"] = _up(c["C"], s, g1)
            c["K"] = _up(c["K"], s, g)
    elif op == "pwdw_conv2d":
        concat = c["K"] == 2 * c["hidden"]
        c["C"] = _up(c["C"], s)
        c["hidden"] = _up(c["hidden"], s)
        c["K"] = 2 * c["hidden"] if concat else c["hidden"]
    elif op == "shufflenet_v2_unit":
        c["hidden"] = _up(c["hidden"], s)
        if c["stride"] == 1:
            c["C"] = c["K"] = 2 * c["hidden"]
        else:
            c["C"] = _up(c["C"], s)
            c["K"] = 2 * c["hidden"]
    return c


# ---------------------------------------------------------------------------------------------
# real modules for the eager providers
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def real_model(name: str) -> nn.Module:
    """Model ``name`` on CPU in fp32, eval mode, with seeded random BN statistics."""
    _, ctor = MODELS[name]
    torch.manual_seed(zlib.crc32(name.encode()))
    return randomize_bn(ctor(), zlib.crc32(name.encode())).eval()


def real_block(src: Source) -> nn.Module:
    return real_model(src.model).get_submodule(src.path)


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="Print the block-shape catalogue.")
    p.add_argument("--family", nargs="*")
    p.add_argument("--op", nargs="*")
    p.add_argument("--sources", action="store_true", help="list every (model:block) an entry stands for")
    a = p.parse_args(argv)
    _, skipped = available_models()
    for m, why in skipped.items():
        print(f"SKIPPED model {m}: {why}")
    entries = build_catalogue(families=a.family, ops=a.op)
    for op in OPS:
        es = [e for e in entries if e.op == op]
        if es:
            print(f"{op}: {len(es)} shapes, {sum(len(e.sources) for e in es)} blocks")
    for e in entries:
        print(f"{e.op:20s} {e.label:40s} x{len(e.sources):<3d}" + (f" {e.provenance()}" if a.sources else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
