"""fastconv.optimize on every supported model family (CPU, random weights, small inputs), the report,
training-mode refusal, idempotence, dtype/format/device, compile/export and CUDA graphs
(the example server is tested in test_serving.py).

Each model is built once per module; inputs are 1x3x64x64 so the whole file stays well under 90 s on one core.
"""
import json

import pytest
import torch
from torch import nn

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


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_and_counts(family, x64):
    make, expected = FAMILIES[family]
    torch.manual_seed(0)
    model = randomize_bn(make())
    before = {n: type(m) for n, m in model.named_modules()}
    with torch.no_grad():
        want = model(x64)
        opt, report = optimize(model)
        got = opt(x64)
    assert report.counts() == expected, str(report)
    assert report.skipped == [], str(report)
    assert rel_err(got, want) < 1e-4, f"{family}: relative error {rel_err(got, want):.3g}"
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
