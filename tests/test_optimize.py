"""fastconv.optimize on every supported model family (CPU, random weights, small inputs), the report,
training-mode refusal, idempotence, dtype/format/device, compile/export and CUDA graphs
(the example server is tested in test_serving.py).

Each model is built once per module; inputs are 1x3x64x64 so the whole file stays well under 90 s on one core.
"""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from fastconv import models
from fastconv import nn as fnn
from fastconv.optimize import OptimizeReport, optimize, set_backend
from helpers import randomize_bn

HAS_CUDA = torch.cuda.is_available()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-6)).item()


def _tv(name):
    def make():
        tv = pytest.importorskip("torchvision")
        return tv.models.get_model(name, weights=None, num_classes=10)
    return make


def _timm(name):
    def make():
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False, num_classes=10)
    return make


# family -> (factory, {fused class: expected count}); counts are the blocks each architecture has
FAMILIES = {
    "tv_mobilenet_v2": (_tv("mobilenet_v2"), {"InvertedResidual": 17}),
    "tv_mobilenet_v3_large": (_tv("mobilenet_v3_large"), {"InvertedResidual": 15}),
    "tv_mobilenet_v3_small": (_tv("mobilenet_v3_small"), {"InvertedResidual": 11}),
    "tv_shufflenet_v2_x0_5": (_tv("shufflenet_v2_x0_5"), {"ShuffleV2Unit": 16}),
    # 16 MNASNet blocks plus the stem's bare dw->pw layers, found by the generic Sequential scan
    "tv_mnasnet0_5": (_tv("mnasnet0_5"), {"InvertedResidual": 16, "DepthwiseSeparableConv2d": 1}),
    "fc_mobilenet_v1": (lambda: models.mobilenet_v1(0.5, num_classes=10), {"DepthwiseSeparableConv2d": 13}),
    "fc_shufflenet_v1_g3": (lambda: models.shufflenet_v1(3, 0.5, num_classes=10), {"ShuffleV1Unit": 16}),
    "fc_shufflenet_v1_g8": (lambda: models.shufflenet_v1(8, 0.25, num_classes=10), {"ShuffleV1Unit": 16}),
    "timm_mobilenetv2_100": (_timm("mobilenetv2_100"), {"InvertedResidual": 17}),
    "timm_mobilenetv3_large_100": (_timm("mobilenetv3_large_100"), {"InvertedResidual": 15}),
    "timm_efficientnet_b0": (_timm("efficientnet_b0"), {"InvertedResidual": 16}),
    "timm_mnasnet_100": (_timm("mnasnet_100"), {"InvertedResidual": 17}),
}


@pytest.fixture(scope="module")
def x64():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def mv3_small():
    """(original, optimised, report) of torchvision mobilenet_v3_small, shared by several tests."""
    tv = pytest.importorskip("torchvision")
    m = randomize_bn(tv.models.mobilenet_v3_small(num_classes=10))
    opt, rep = optimize(m)
    return m, opt, rep


def _optimize_all(model, x, expected):
    """optimize(model) fuses exactly the ``expected`` blocks, skips nothing and computes the same."""
    with torch.no_grad():
        want = model(x)
        opt, report = optimize(model)
        got = opt(x)
    assert report.counts() == expected, str(report)
    assert report.skipped == [], str(report)
    assert rel_err(got, want) < 1e-4, f"relative error {rel_err(got, want):.3g}"
    return opt, report


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_and_counts(family, x64):
    make, expected = FAMILIES[family]
    torch.manual_seed(0)
    model = randomize_bn(make())
    before = {n: type(m) for n, m in model.named_modules()}
    opt, report = _optimize_all(model, x64, expected)
    assert {n: type(m) for n, m in model.named_modules()} == before, "inplace=False modified the original"
    assert opt is not model
    fused = [m for m in opt.modules() if isinstance(m, fnn.FUSED_MODULES)]
    assert len(fused) == sum(expected.values())
    # No BatchNorm survives inside a fused block, and no depthwise conv is left anywhere.
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in opt.modules())


# ---------------------------------------------------------------------------------------------
# report, idempotence, inplace, training mode
# ---------------------------------------------------------------------------------------------

def test_report_as_text_and_data(mv3_small):
    _, _, rep = mv3_small
    assert isinstance(rep, OptimizeReport) and rep.num_replaced == 11
    rows = rep.to_list()
    assert rows == rep.replaced and len(rows) == 11
    assert set(rows[0]) == {"name", "status", "source", "fused", "op", "reason"}
    assert rows[0]["name"] == "features.1" and rows[0]["op"] == "inverted_residual"
    assert rows[0]["source"] == "torchvision.models.mobilenetv3.InvertedResidual"
    text = str(rep)
    assert "replaced 11 block(s)" in text and "features.11" in text
    json.dumps(rows)  # plain data


def test_idempotent(mv3_small, x64):
    _, opt, _ = mv3_small
    again, rep2 = optimize(opt)
    assert rep2.num_replaced == 0 and rep2.skipped == [] and "nothing new" in str(rep2)
    assert [type(m) for m in again.modules()] == [type(m) for m in opt.modules()]
    with torch.no_grad():
        assert torch.equal(again(x64), opt(x64))


def test_inplace(x64):
    m = randomize_bn(models.mobilenet_v1(0.25, num_classes=4))
    with torch.no_grad():
        want = m(x64)
        same, rep = optimize(m, inplace=True)
        assert same is m and rep.num_replaced == 13
        assert isinstance(m.features[1], fnn.DepthwiseSeparableConv2d)
        assert rel_err(m(x64), want) < 1e-4


def test_training_mode_is_refused():
    m = models.mobilenet_v1(0.25, num_classes=4)
    with pytest.raises(RuntimeError, match=r"model.eval\(\)"):
        optimize(m)
    m.eval()
    m.features[3].train()
    with pytest.raises(RuntimeError, match="features.3"):
        optimize(m)


def test_fused_model_trains(x64):
    """After optimize, the folded weights are ordinary parameters: one SGD step changes the loss."""
    opt, _ = optimize(models.mobilenet_v1(0.25, num_classes=4).eval())
    opt.train()
    params = [p for m in opt.modules() if isinstance(m, fnn.FUSED_MODULES) for p in m.parameters()]
    loss = opt(x64).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in params)


def test_skipped_blocks_are_reported(x64):
    tv = pytest.importorskip("torchvision")
    from torchvision.models.mobilenetv3 import InvertedResidual as TVIR, InvertedResidualConfig
    dilated = TVIR(InvertedResidualConfig(8, 3, 16, 8, False, "RE", 1, 2, 1.0), nn.BatchNorm2d)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
        dilated,
        nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.GELU(),  # dw conv followed by nothing fusable
    )
    model = randomize_bn(model)
    with torch.no_grad():
        want = model(x64)
        opt, rep = optimize(model)
        assert rel_err(opt(x64), want) < 1e-4
    skipped = {e["name"]: e["reason"] for e in rep.skipped}
    assert "dilation" in skipped["3"]
    assert "outside any recognised block" in skipped["4"]
    assert "skipped" in str(rep) and "dilation" in str(rep)
    # The dilated block's own dw->1x1 layers are still fused by the generic scan (dwpw supports dilation).
    assert rep.counts() == {"DepthwiseSeparableConv2d": 1}


def test_generic_sequence(x64):
    model = randomize_bn(nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 16, 5, 2, 2, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.Hardswish(),
        nn.Conv2d(24, 24, 3, 1, 1, groups=24), nn.Conv2d(24, 8, 1),  # no BN, no acts
    ))
    with torch.no_grad():
        want = model(x64)
        opt, rep = optimize(model)
        assert rel_err(opt(x64), want) < 1e-4
    assert rep.counts() == {"DepthwiseSeparableConv2d": 2}
    assert isinstance(opt[3], fnn.DepthwiseSeparableConv2d) and opt[3].pw_act == "hardswish"
    assert all(isinstance(opt[i], nn.Identity) for i in (4, 5, 6, 7, 8, 10))
    assert len(opt) == len(model)  # indices stay stable


def test_root_block_and_frozen_params():
    block = randomize_bn(models.ShuffleV1Block(24, 24, 6, groups=3, stride=1))
    block.requires_grad_(False)
    fused, rep = optimize(block)
    assert isinstance(fused, fnn.ShuffleV1Unit) and rep.replaced[0]["name"] == "<root>"
    assert not any(p.requires_grad for p in fused.parameters())


def test_backend_argument():
    m = models.mobilenet_v1(0.25, num_classes=4).eval()
    opt, rep = optimize(m, backend="reference")
    assert rep.backend == "reference"
    assert all(b.backend == "reference" for b in opt.modules() if isinstance(b, fnn.FUSED_MODULES))
    set_backend(opt, "auto")
    assert all(b.backend == "auto" for b in opt.modules() if isinstance(b, fnn.FUSED_MODULES))
    with pytest.raises(ValueError, match="backend"):
        optimize(m, backend="fastest")


def test_set_backend_reaches_training_depthwise_convs(x64):
    """optimize(training=True) leaves DepthwiseConv2d modules; set_backend must reach them, and their
    forward must read it (backend='cuda' on CPU tensors raises, naming the backend)."""
    m, _ = optimize(models.mobilenet_v1(0.25, num_classes=4), training=True, backend="reference")
    dws = [b for b in m.modules() if isinstance(b, fnn.DepthwiseConv2d)]
    assert len(dws) == 13 and all(b.backend == "reference" for b in dws)
    assert set_backend(m, "triton") is m
    assert all(b.backend == "triton" for b in dws)
    set_backend(m, "cuda")
    if not HAS_CUDA:
        with pytest.raises(RuntimeError, match="backend='cuda'"):
            m(x64)
    with pytest.raises(ValueError, match="backend"):
        set_backend(m, "fastest")


@pytest.mark.parametrize("family", ["tv_mobilenet_v2", "fc_mobilenet_v1", "tv_mnasnet0_5"])
def test_inference_optimize_after_training_swap(family, x64):
    """A DepthwiseConv2d (what optimize(training=True) puts in) fuses like the nn.Conv2d it replaced:
    same block counts (class rules and the Sequential scan), nothing skipped, same output."""
    make, expected = FAMILIES[family]
    torch.manual_seed(0)
    model, _ = optimize(make(), training=True, backend="reference")
    model = randomize_bn(model)
    assert any(isinstance(b, fnn.DepthwiseConv2d) for b in model.modules())
    opt, _ = _optimize_all(model, x64, expected)
    assert not any(isinstance(b, nn.Conv2d) and b.groups > 1 for b in opt.modules())


def test_training_swap_graph_chains_and_leftover_report():
    """Graph-pass chains made of DepthwiseConv2d fuse too; one left alone is reported as a
    DepthwiseConv2d still running the fastconv op, and one with a fused act says why it stays."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), _DwPwAdd(16), _Ghost(16, 8),
                          nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.GELU())
    model, _ = optimize(model, training=True, backend="reference")
    assert isinstance(model[1].dw, fnn.DepthwiseConv2d) and isinstance(model[3], fnn.DepthwiseConv2d)
    opt, rep = _graph_case(model, torch.randn(2, 3, 9, 11),
                           {"DepthwiseSeparableConv2d": 1, "PointwiseDepthwiseConv2d": 1})
    (row,) = rep.skipped
    assert row["name"] == "3" and row["source"] == "fastconv.nn.DepthwiseConv2d"
    assert "outside any recognised block" in row["reason"] and "fastconv.depthwise_conv2d" in row["reason"]
    assert "padding" not in row["reason"]
    acted = nn.Sequential(fnn.DepthwiseConv2d(8, 8, 3, padding=1, act="relu"), nn.Conv2d(8, 8, 1)).eval()
    _, rep = optimize(acted)
    assert rep.num_replaced == 0 and any("act='relu'" in e["reason"] for e in rep.skipped), str(rep)


def test_dtype_and_memory_format(x64):
    m = randomize_bn(models.shufflenet_v1(2, 0.25, num_classes=4)).double().to(memory_format=torch.channels_last)
    x = x64.double().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want = m(x)
        opt, _ = optimize(m)
        seen = []
        def hook(mod, inp, out):
            seen.append(out.is_contiguous(memory_format=torch.channels_last))
        hooks = [b.register_forward_hook(hook) for b in opt.modules() if isinstance(b, fnn.ShuffleV1Unit)]
        got = opt(x)
        for h in hooks:
            h.remove()
    assert all(p.dtype == torch.float64 for p in opt.parameters())
    assert seen and all(seen), "a fused block dropped channels_last"
    assert rel_err(got, want) < 1e-10


# ---------------------------------------------------------------------------------------------
# torch.compile / torch.export / CUDA graphs
# ---------------------------------------------------------------------------------------------

def test_export(mv3_small, x64):
    _, opt, _ = mv3_small
    ep = torch.export.export(opt, (x64,))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert sum("fastconv.inverted_residual" in t for t in targets) == 11
    with torch.no_grad():
        assert rel_err(ep.module()(x64), opt(x64)) < 1e-6


def test_compile_fullgraph(mv3_small, x64):
    """Dynamo traces the whole optimised model with no graph break (aot_eager: no C++ codegen)."""
    _, opt, _ = mv3_small
    torch._dynamo.reset()
    compiled = torch.compile(opt, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert rel_err(compiled(x64), opt(x64)) < 1e-6


def test_compile_inductor_small():
    m = randomize_bn(nn.Sequential(models.DepthwiseSeparable(8, 16), models.DepthwiseSeparable(16, 16, 2)))
    opt, _ = optimize(m)
    x = torch.randn(1, 8, 12, 12)
    torch._dynamo.reset()
    compiled = torch.compile(opt, fullgraph=True)
    with torch.no_grad():
        assert rel_err(compiled(x), m(x)) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_fp16_channels_last_and_graph_capture():
    tv = pytest.importorskip("torchvision")
    m = randomize_bn(tv.models.mobilenet_v3_large(num_classes=10)).cuda().half().to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 128, 128, device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want = m(x)
        opt, rep = optimize(m)
        assert rep.num_replaced == 15
        assert all(p.device.type == "cuda" and p.dtype == torch.float16 for p in opt.parameters())
        got = opt(x)
        assert rel_err(got, want) < 3e-2
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                opt(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        static_x = x.clone()
        with torch.cuda.graph(g):
            static_out = opt(static_x)
        static_x.copy_(torch.randn_like(x))
        g.replay()
        torch.cuda.synchronize()
        assert rel_err(static_out, opt(static_x)) < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_compile_fullgraph():
    """On CUDA, backend="auto" resolution must also trace without graph breaks."""
    tv = pytest.importorskip("torchvision")
    m = randomize_bn(tv.models.mobilenet_v3_small(num_classes=10)).cuda().half().to(memory_format=torch.channels_last)
    opt, _ = optimize(m)
    x = torch.randn(4, 3, 96, 96, device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    compiled = torch.compile(opt, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert rel_err(compiled(x), opt(x)) < 1e-3


# ---------------------------------------------------------------------------------------------
# graph-level recognition (fastconv.graph): classes optimize has no rule for, functional calls
# ---------------------------------------------------------------------------------------------


class _DwPwAdd(nn.Module):
    """dw -> BN -> F.hardswish -> 1x1 -> F.relu, torch.add(x): no class rule knows this block."""

    def __init__(self, c):
        super().__init__()
        self.dw, self.bn, self.pw = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c), nn.Conv2d(c, c, 1)

    def forward(self, x):
        return torch.add(F.relu(self.pw(F.hardswish(self.bn(self.dw(x))))), x)


class _IRFunctionalSE(nn.Module):
    """1x1 -> BN -> SiLU -> dw 5x5/s -> BN -> F.silu -> SE (written out) -> 1x1 -> BN, out += x."""

    def __init__(self, c, e, stride=1):
        super().__init__()
        self.exp, self.bn1, self.act = nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.SiLU()
        self.dw, self.bn2 = nn.Conv2d(e, e, 5, stride, 2, groups=e, bias=False), nn.BatchNorm2d(e)
        self.se1, self.se2 = nn.Conv2d(e, 4, 1), nn.Conv2d(4, e, 1)
        self.proj, self.bn3 = nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c)
        self.stride = stride

    def forward(self, x):
        h = F.silu(self.bn2(self.dw(self.act(self.bn1(self.exp(x))))))
        h = h * torch.sigmoid(self.se2(F.relu(self.se1(h.mean((2, 3), keepdim=True)))))
        out = self.bn3(self.proj(h))
        if self.stride == 1:
            out += x
        return out


class _Ghost(nn.Module):
    def __init__(self, c, m):
        super().__init__()
        self.primary = nn.Sequential(nn.Conv2d(c, m, 1, bias=False), nn.BatchNorm2d(m), nn.ReLU(inplace=True))
        self.cheap = nn.Sequential(nn.Conv2d(m, m, 3, 1, 1, groups=m, bias=False), nn.BatchNorm2d(m), nn.ReLU())

    def forward(self, x):
        a = self.primary(x)
        return torch.cat([a, self.cheap(a)], dim=1)


class _DwSeProjGelu(nn.Module):
    """RepViT-like: dw -> SE (modules) -> 1x1 -> GELU -> 1x1; the IR op has no project activation."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, 1, 1, groups=c)
        self.pool, self.fc1, self.fc2 = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 8, 1), nn.Conv2d(8, c, 1)
        self.relu, self.gate = nn.ReLU(), nn.Hardsigmoid()
        self.conv1, self.gelu, self.conv2 = nn.Conv2d(c, 2 * c, 1), nn.GELU(), nn.Conv2d(2 * c, c, 1)

    def forward(self, x):
        h = self.dw(x)
        h = h * self.gate(self.fc2(self.relu(self.fc1(self.pool(h)))))
        return self.conv2(self.gelu(self.conv1(h)))


class _Untraceable(nn.Module):
    """Data-dependent control flow: fx cannot trace it, so it is a leaf of its parent's trace."""

    def __init__(self, c):
        super().__init__()
        self.inner = _DwPwAdd(c)
        self.dw = nn.Conv2d(c, c, 3, 1, 1, groups=c)

    def forward(self, x):
        x = self.inner(x)
        return self.dw(x) if x.sum() > 0 else -self.dw(x)


def _graph_case(model, x, expected_counts):
    model = randomize_bn(model)
    with torch.no_grad():
        want = model(x)
        opt, rep = optimize(model)
        got = opt(x)
    assert rep.counts() == expected_counts, str(rep)
    assert rel_err(got, want) < 1e-5, str(rep)
    return opt, rep


def test_graph_dwpw_functional_residual():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), _DwPwAdd(16), _DwPwAdd(16))
    opt, rep = _graph_case(model, torch.randn(2, 3, 17, 15), {"DepthwiseSeparableConv2d": 2})
    assert [e["name"] for e in rep.replaced] == ["1.dw", "2.dw"]
    assert "hardswish" in rep.replaced[0]["source"] and "+x" in rep.replaced[0]["source"]
    fused = opt.get_submodule("1.dw")
    assert isinstance(fused, fnn.DepthwiseSeparableConv2d) and fused.residual and fused.pw_act == "relu"
    assert isinstance(opt[1], fx.GraphModule) and rep.skipped == []
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in opt.modules())


@pytest.mark.parametrize("stride", [1, 2])
def test_graph_inverted_residual_functional_se(stride):
    model = nn.Sequential(nn.Conv2d(3, 12, 3, 1, 1), _IRFunctionalSE(12, 36, stride))
    opt, rep = _graph_case(model, torch.randn(2, 3, 13, 13), {"InvertedResidual": 1})
    ir = opt.get_submodule("1.dw")
    assert ir.se_channels == 4 and ir.se_gate == "sigmoid" and ir.act == "silu" and ir.residual == (stride == 1)


def test_graph_ghost_concat():
    opt, rep = _graph_case(nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), _Ghost(8, 12)), torch.randn(2, 3, 11, 11),
                           {"PointwiseDepthwiseConv2d": 1})
    g = opt.get_submodule("1.cheap.0")
    assert g.concat and g.out_channels == 24 and rep.replaced[0]["op"] == "pwdw_conv2d"


def test_graph_unsupported_last_activation_stays_after_the_op():
    opt, rep = _graph_case(_DwSeProjGelu(16), torch.randn(2, 16, 9, 9), {"InvertedResidual": 1})
    assert isinstance(opt, fx.GraphModule)  # the root itself was rewritten
    calls = [n.target for n in opt.graph.nodes if n.op == "call_module"]
    assert calls == ["dw", "gelu", "conv2"]  # IR(dw, SE, conv1), then the GELU and the last 1x1


def test_graph_fallback_for_untraceable_modules():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), _Untraceable(8))
    opt, rep = _graph_case(model, torch.randn(1, 3, 8, 8), {"DepthwiseSeparableConv2d": 1})
    assert isinstance(opt[1], _Untraceable) and isinstance(opt[1].inner, fx.GraphModule)
    skipped = {e["name"]: e["reason"] for e in rep.skipped}
    assert list(skipped) == ["1.dw"] and "torch.fx cannot trace" in skipped["1.dw"]


def test_graph_reason_when_an_intermediate_is_shared():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw, self.pw = nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.Conv2d(8, 8, 1)

        def forward(self, x):
            h = self.dw(x)
            return self.pw(h) + h  # h is needed outside any fused op

    opt, rep = _graph_case(Shared(), torch.randn(1, 8, 6, 6), {})
    (row,) = rep.skipped
    assert row["name"] == "dw" and "no 1x1 conv right after it" in row["reason"] and "add" in row["reason"]


def test_graph_idempotent_dtype_format():
    model = randomize_bn(nn.Sequential(nn.Conv2d(3, 12, 3, 1, 1), _IRFunctionalSE(12, 24), _DwPwAdd(12), _Ghost(12, 6)))
    model = model.double().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want = model(x)
        opt, rep = optimize(model)
        got = opt(x)
        again, rep2 = optimize(opt)
        assert torch.equal(again(x), got)
    assert rep.num_replaced == 3 and rep2.num_replaced == 0 and rep2.skipped == []
    # (every GraphModule instance has a class of its own: compare names)
    assert [type(m).__name__ for m in again.modules()] == [type(m).__name__ for m in opt.modules()]
    assert all(p.dtype == torch.float64 for p in opt.parameters())
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(got, want) < 1e-10
    assert not opt.training and not any(m.training for m in opt.modules())


def test_mixed_conv_becomes_one_conv():
    timm = pytest.importorskip("timm")
    from timm.layers import MixedConv2d
    from fastconv.graph import _merge_mixed
    x = torch.randn(2, 20, 9, 9)
    swapped, _ = optimize(MixedConv2d(20, 20, [3, 5, 7], stride=1, depthwise=True), training=True)
    assert all(isinstance(c, fnn.DepthwiseConv2d) for c in swapped.values())  # as after a training swap
    for mixed in (MixedConv2d(20, 20, [3, 5, 7], stride=2, depthwise=True), swapped,
                  MixedConv2d(20, 30, [1, 1], stride=1)):
        merged = _merge_mixed(mixed.eval())
        assert type(merged) is nn.Conv2d
        with torch.no_grad():
            assert rel_err(merged(x), mixed(x)) < 1e-6
    assert merged.groups == 1 and merged.kernel_size == (1, 1)


def test_reparameterize_first():
    timm = pytest.importorskip("timm")
    model = randomize_bn(timm.create_model("mobileone_s0", pretrained=False, num_classes=10))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
        opt, rep = optimize(model)
        got = opt(x)
    assert rel_err(got, want) < 1e-4
    assert any(e.status == "rewritten" and "reparameterize" in e.reason for e in rep.entries)
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in opt.modules()), str(rep)
