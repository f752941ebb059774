"""fastconv.nn: BN folding, the fused modules (forward, autograd, repr) and their from_* constructors (CPU)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastconv import models, reference
from fastconv import nn as fnn
from helpers import randomize_bn


def close(a, b, rtol=1e-4):
    scale = max(1.0, b.abs().max().item())
    err = (a - b).abs().max().item()
    assert err <= rtol * scale, f"max abs error {err:.3g} (scale {scale:.3g})"


# ---------------------------------------------------------------------------------------------
# fold_bn / activations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("conv_bias,affine,groups", [(False, True, 1), (True, True, 4), (False, False, 8)])
def test_fold_bn_matches_conv_bn(conv_bias, affine, groups):
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=groups, bias=conv_bias)
    bn = randomize_bn(nn.BatchNorm2d(16, affine=affine, eps=1e-3))
    x = torch.randn(2, 8, 6, 6)
    w, b = fnn.fold_bn(conv, bn)
    assert w.shape == conv.weight.shape and b.shape == (16,) and not w.requires_grad
    with torch.no_grad():
        close(F.conv2d(x, w, b, padding=1, groups=groups), bn(conv(x)), 1e-5)


def test_fold_bn_rejects_batch_statistics():
    conv = nn.Conv2d(4, 4, 1)
    with pytest.raises(fnn.Unsupported, match="running statistics"):
        fnn.fold_bn(conv, nn.BatchNorm2d(4, track_running_stats=False))
    w, b = fnn.fold_bn(conv, None)
    assert torch.equal(w, conv.weight) and torch.equal(b, conv.bias)


def test_act_names():
    assert fnn.act_name(nn.ReLU(inplace=True)) == "relu"
    assert fnn.act_name(nn.ReLU6()) == "relu6"
    assert fnn.act_name(nn.Hardswish()) == "hardswish"
    assert fnn.act_name(nn.SiLU()) == "silu"
    assert fnn.act_name(nn.Identity()) == "none" and fnn.act_name(None) == "none"
    assert fnn.gate_name(nn.Hardsigmoid()) == "hardsigmoid" and fnn.gate_name(nn.Sigmoid()) == "sigmoid"
    with pytest.raises(fnn.Unsupported):
        fnn.act_name(nn.GELU())
    with pytest.raises(fnn.Unsupported):
        fnn.gate_name(nn.ReLU())

    class MyReLU(nn.ReLU):  # user subclasses may change forward: not trusted
        pass
    with pytest.raises(fnn.Unsupported):
        fnn.act_name(MyReLU())


# ---------------------------------------------------------------------------------------------
# modules: forward vs reference, gradients, repr
# ---------------------------------------------------------------------------------------------

def _check_grads(module, x, ref_fn):
    """Autograd through the module equals autograd through ref_fn(x, *params) (same parameters)."""
    x = x.clone().requires_grad_(True)
    out = module(x)
    g = torch.randn_like(out)
    out.backward(g)
    names = [n for n, _ in module.named_parameters()]
    leaves = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]
    x2 = x.detach().clone().requires_grad_(True)
    ref = ref_fn(x2, dict(zip(names, leaves)))
    close(out.detach(), ref.detach())
    ref.backward(g)
    close(x.grad, x2.grad)
    for n, leaf in zip(names, leaves):
        p = dict(module.named_parameters())[n]
        assert p.grad is not None, n
        close(p.grad, leaf.grad)


def test_depthwise_separable_module():
    torch.manual_seed(0)
    m = fnn.DepthwiseSeparableConv2d(6, 6, 5, stride=1, dw_act="relu6", pw_act="hardswish", residual=True)
    _check_grads(m, torch.randn(2, 6, 7, 7), lambda x, p: reference.dwpw_conv2d(
        x, p["dw_weight"], p["pw_weight"], p["dw_bias"], p["pw_bias"], padding=2, dw_act="relu6",
        pw_act="hardswish", residual=x))
    r = repr(m)
    assert "dw_act=relu6" in r and "residual=True" in r and "backend=auto" in r


def test_inverted_residual_module_with_se():
    torch.manual_seed(0)
    m = fnn.InvertedResidual(8, 8, expand_channels=16, kernel_size=3, act="hardswish", se_channels=4,
                             se_act="relu", se_gate="hardsigmoid")
    assert m.residual
    _check_grads(m, torch.randn(2, 8, 6, 6), lambda x, p: reference.inverted_residual(
        x, p["expand_weight"], p["dw_weight"], p["project_weight"], p["expand_bias"], p["dw_bias"],
        p["project_bias"], act="hardswish", se=(p["se_w1"], p["se_b1"], p["se_w2"], p["se_b2"]), residual=True))
    assert "se_channels=4" in repr(m)


def test_inverted_residual_module_no_expand():
    torch.manual_seed(0)
    m = fnn.InvertedResidual(8, 12, kernel_size=3, stride=2, act="relu6")
    assert m.expand_weight is None and not m.residual
    _check_grads(m, torch.randn(1, 8, 9, 9), lambda x, p: reference.inverted_residual(
        x, None, p["dw_weight"], p["project_weight"], None, p["dw_bias"], p["project_bias"], stride=2, act="relu6"))


def test_group_conv1x1_module():
    torch.manual_seed(0)
    m = fnn.GroupConv1x1(12, 24, 3, shuffle_in=3, shuffle_out=4, act="relu")
    _check_grads(m, torch.randn(2, 12, 4, 4), lambda x, p: reference.group_conv1x1(
        x, p["weight"], p["bias"], groups=3, shuffle_in=3, shuffle_out=4, act="relu"))


@pytest.mark.parametrize("stride", [1, 2])
def test_shuffle_v1_module(stride):
    torch.manual_seed(0)
    m = fnn.ShuffleV1Unit(12, 12 if stride == 1 else 36, 6, groups=3, stride=stride)
    _check_grads(m, torch.randn(2, 12, 8, 8), lambda x, p: reference.shufflenet_v1_unit(
        x, p["w1"], p["b1"], p["dw_weight"], p["dw_bias"], p["w2"], p["b2"], groups=3, stride=stride))


@pytest.mark.parametrize("stride", [1, 2])
def test_shuffle_v2_module(stride):
    torch.manual_seed(0)
    m = fnn.ShuffleV2Unit(8, 8 if stride == 1 else 16, stride)

    def ref(x, p):
        b2 = (p["pw1_weight"], p["pw1_bias"], p["dw_weight"], p["dw_bias"], p["pw2_weight"], p["pw2_bias"])
        b1 = None if stride == 1 else (p["b1_dw_weight"], p["b1_dw_bias"], p["b1_pw_weight"], p["b1_pw_bias"])
        return reference.shufflenet_v2_unit(x, b2, b1, stride=stride)
    _check_grads(m, torch.randn(2, 8, 6, 6), ref)


def test_module_arguments_are_checked():
    with pytest.raises(ValueError, match="backend"):
        fnn.InvertedResidual(4, 4, backend="fast")
    with pytest.raises(ValueError, match="act"):
        fnn.InvertedResidual(4, 4, act="mish")
    with pytest.raises(ValueError, match="residual"):
        fnn.DepthwiseSeparableConv2d(4, 8, residual=True)
    with pytest.raises(ValueError, match="groups"):
        fnn.GroupConv1x1(10, 12, 3)


def test_dtype_device_and_state_dict_roundtrip():
    m = fnn.InvertedResidual(4, 4, expand_channels=8, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    m2 = fnn.InvertedResidual(4, 4, expand_channels=8, dtype=torch.float64)
    m2.load_state_dict(m.state_dict())
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    assert torch.equal(m(x), m2(x))


# ---------------------------------------------------------------------------------------------
# from_* constructors
# ---------------------------------------------------------------------------------------------

def _same(block, fused, x):
    with torch.no_grad():
        close(fused(x), block(x))


def test_from_torchvision_mobilenet_v2():
    tv = pytest.importorskip("torchvision")
    feats = tv.models.mobilenet_v2().features
    for i, shape in ((1, (2, 32, 8, 8)), (2, (2, 16, 8, 8)), (3, (2, 24, 8, 8))):  # t=1, stride 2, residual
        block = randomize_bn(feats[i], i)
        fused = fnn.InvertedResidual.from_torchvision(block)
        assert fused.residual == block.use_res_connect and fused.act == "relu6"
        _same(block, fused, torch.randn(*shape))
    assert fnn.InvertedResidual.from_torchvision(feats[1]).expand_weight is None


def test_from_torchvision_mobilenet_v3_se_hardswish():
    tv = pytest.importorskip("torchvision")
    feats = tv.models.mobilenet_v3_small().features
    # [1]: no expansion + SE + ReLU, stride 2; [4]: expansion + SE + Hardswish, 5x5 stride 2
    for i, c in ((1, 16), (4, 24), (5, 40)):
        block = randomize_bn(feats[i], i)
        fused = fnn.InvertedResidual.from_torchvision(block)
        assert fused.se_channels > 0 and fused.se_gate == "hardsigmoid" and fused.se_act == "relu"
        _same(block, fused, torch.randn(2, c, 10, 10))
    assert fnn.InvertedResidual.from_torchvision(feats[4]).act == "hardswish"


def test_from_torchvision_dilated_block_is_unsupported():
    tv = pytest.importorskip("torchvision")
    from torchvision.models.mobilenetv3 import InvertedResidual as TVIR, InvertedResidualConfig
    block = TVIR(InvertedResidualConfig(16, 3, 32, 16, False, "RE", 1, 2, 1.0), nn.BatchNorm2d).eval()
    with pytest.raises(fnn.Unsupported, match="dilation"):
        fnn.InvertedResidual.from_torchvision(block)


@pytest.mark.parametrize("idx", [0, 1])
def test_from_torchvision_shufflenet_v2(idx):
    tv = pytest.importorskip("torchvision")
    block = randomize_bn(tv.models.shufflenet_v2_x0_5().stage2[idx])
    fused = fnn.ShuffleV2Unit.from_torchvision(block)
    assert fused.stride == (2 if idx == 0 else 1)
    _same(block, fused, torch.randn(2, 24 if idx == 0 else 48, 8, 8))


def test_from_timm_blocks():
    timm = pytest.importorskip("timm")
    m = timm.create_model("efficientnet_b0", pretrained=False)
    ds, ir = randomize_bn(m.blocks[0][0], 1), randomize_bn(m.blocks[1][1], 2)
    f_ds = fnn.InvertedResidual.from_timm(ds)  # DS conv with SE (SiLU, sigmoid gate), no expansion
    assert f_ds.expand_weight is None and f_ds.act == "silu" and f_ds.se_gate == "sigmoid" and f_ds.se_act == "silu"
    _same(ds, f_ds, torch.randn(2, 32, 8, 8))
    f_ir = fnn.InvertedResidual.from_timm(ir)
    assert f_ir.residual and f_ir.expand_channels == 144
    _same(ir, f_ir, torch.randn(2, 24, 8, 8))


def test_from_timm_ds_with_pointwise_act():
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv
    block = randomize_bn(DepthwiseSeparableConv(8, 8, 3, pw_act=True, act_layer=nn.ReLU6))
    with pytest.raises(fnn.Unsupported, match="pointwise"):
        fnn.InvertedResidual.from_timm(block)
    fused = fnn.DepthwiseSeparableConv2d.from_timm(block)
    assert fused.pw_act == "relu6" and fused.residual
    _same(block, fused, torch.randn(2, 8, 6, 6))


def test_from_modules_and_models():
    mv1 = randomize_bn(models.mobilenet_v1(0.25, num_classes=4))
    blk = mv1.features[2]
    fused = fnn.DepthwiseSeparableConv2d.from_modules(blk.dw, blk.dw_bn, blk.pw, blk.pw_bn, blk.dw_act, "relu")
    assert fused.stride == 2
    _same(blk, fused, torch.randn(2, 16, 8, 8))
    sv1 = randomize_bn(models.shufflenet_v1(3, 0.5, num_classes=4))
    for unit, c in ((sv1.stage2[0], 24), (sv1.stage2[1], 120), (sv1.stage3[0], 120)):
        f = fnn.ShuffleV1Unit.from_module(unit)
        assert (f.groups, f.first_groups, f.stride) == (unit.groups, unit.first_groups, unit.stride)
        _same(unit, f, torch.randn(2, c, 8, 8))


def test_group_conv_from_modules():
    conv, bn = nn.Conv2d(12, 24, 1, groups=4, bias=False), randomize_bn(nn.BatchNorm2d(24))
    f = fnn.GroupConv1x1.from_modules(conv, bn, nn.ReLU(), shuffle_out=4)
    x = torch.randn(2, 12, 5, 5)
    with torch.no_grad():
        close(f(x), F.channel_shuffle(torch.relu(bn(conv(x))), 4))
