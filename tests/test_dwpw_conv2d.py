"""fastconv.dwpw_conv2d vs the PyTorch reference: every backend, dtype, layout, real and awkward shapes."""
import pytest
import torch
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (DEVICE, OPCHECK_UTILS, assert_grads_match, assert_matches_reference, assert_same_format,
                     backend_params, conv_weight, gradcheck64, rand, to_format, op_matrix)

# (N, C, H, W, K, k, stride, dilation, dw_act, pw_act, bias, residual)
SMALL = [
    (2, 8, 9, 9, 16, 3, 1, 1, "relu", "relu", True, False),
    (1, 5, 7, 11, 7, 3, 2, 1, "relu6", "none", False, False),  # C, K not multiples of 8, odd non-square
    (2, 12, 8, 8, 12, 5, 1, 1, "hardswish", "none", True, True),  # residual
    (1, 6, 9, 7, 10, 7, 2, 1, "silu", "relu6", True, False),
    (1, 4, 10, 10, 6, 3, 1, 2, "none", "hardswish", False, False),  # dilation 2
    (1, 3, 1, 1, 4, 3, 1, 1, "relu", "relu", True, False),  # 1x1 spatial
]
# MobileNetV1 (224x224) depthwise-separable blocks at batch 8 (a few representative ones).
REAL = [
    (8, 32, 112, 112, 64, 3, 1, 1, "relu", "relu", True, False),
    (8, 64, 112, 112, 128, 3, 2, 1, "relu", "relu", True, False),
    (8, 256, 28, 28, 512, 3, 2, 1, "relu", "relu", True, False),
    (8, 512, 14, 14, 512, 3, 1, 1, "relu", "relu", True, False),
    (8, 1024, 7, 7, 1024, 3, 1, 1, "relu", "relu", True, False),
    (8, 32, 112, 112, 16, 3, 1, 1, "relu6", "none", True, False),  # MobileNetV2 t=1 block
    # C padded to 32 (not 64): 96 ends on a 32-deep half slab (mma.sync) with 16-channel halo chunks at
    # k5 s2; 24 is one 32-channel chunk at the bank-spread halo pitch; odd maps, residual
    (4, 96, 15, 15, 168, 5, 2, 1, "hardswish", "none", True, True),
    (2, 24, 29, 27, 40, 3, 1, 1, "relu6", "none", True, False),
]


def make(case, dtype, fmt):
    n, c, h, w, k_out, k, stride, dil, dw_act, pw_act, bias, res = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    dw = conv_weight(c, 1, k, dtype=dtype)
    pw = conv_weight(k_out, c, 1, dtype=dtype)
    dwb = rand(c, dtype=dtype, scale=0.1) if bias else None
    pwb = rand(k_out, dtype=dtype, scale=0.1) if bias else None
    pad = (k // 2) * dil
    ho, wo = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1, (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    r = to_format(rand(n, k_out, ho, wo, dtype=dtype), fmt) if res else None
    kw = dict(stride=stride, dilation=dil, dw_act=dw_act, pw_act=pw_act)
    return (x, dw, pw, dwb, pwb, r), kw


@op_matrix(SMALL, REAL)
def test_matches_reference(case, dtype, fmt, backend):
    torch.manual_seed(0)
    tensors, kw = make(case, dtype, fmt)

    def fast(x, dw, pw, dwb, pwb, r):
        return fastconv.dwpw_conv2d(x, dw, pw, dwb, pwb, residual=r, backend=backend, **kw)

    def ref(x, dw, pw, dwb, pwb, r):
        return reference.dwpw_conv2d(x, dw, pw, dwb, pwb, residual=r, **kw)

    assert_matches_reference(fast, ref, tensors, dtype, f"{backend} {case}")
    assert_same_format(fast(*tensors), tensors[0], fmt)


@pytest.mark.parametrize("backend", backend_params())
def test_gradients_match_reference(backend):
    torch.manual_seed(1)
    tensors, kw = make((2, 6, 7, 9, 10, 3, 2, 1, "relu6", "hardswish", True, True), torch.float32, "nhwc")
    assert_grads_match(lambda *t: fastconv.dwpw_conv2d(*t[:5], residual=t[5], backend=backend, **kw),
                       lambda *t: reference.dwpw_conv2d(*t[:5], residual=t[5], **kw), tensors)


def test_gradcheck_float64():
    torch.manual_seed(2)
    tensors, _ = make((1, 3, 5, 6, 4, 3, 2, 1, "silu", "none", True, True), torch.float64, "nchw")
    gradcheck64(lambda *t: fastconv.dwpw_conv2d(*t[:5], stride=2, dw_act="silu", residual=t[5]), tensors)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    tensors, kw = make((1, 4, 5, 5, 8, 3, 1, 1, "relu", "relu6", True, True), torch.float32, "nhwc")
    x, dw, pw, dwb, pwb, r = tensors
    args = (x, dw, pw, dwb, pwb, r, 1, 1, 1, "relu", "relu6", backend)
    opcheck(torch.ops.fastconv.dwpw_conv2d.default, args,
            test_utils=OPCHECK_UTILS)


def test_padding_default_and_explicit():
    tensors, kw = make((1, 4, 8, 8, 4, 5, 1, 1, "none", "none", False, False), torch.float32, "nchw")
    a = fastconv.dwpw_conv2d(*tensors[:5], backend="reference")
    b = fastconv.dwpw_conv2d(*tensors[:5], padding=2, backend="reference")
    c = fastconv.dwpw_conv2d(*tensors[:5], padding=0, backend="reference")
    torch.testing.assert_close(a, b)
    assert c.shape[-1] == 4


@pytest.mark.parametrize("bad, err, match", [
    (dict(dw_act="mish"), ValueError, "dw_act"),
    (dict(pw_act=None), ValueError, "pw_act"),
    (dict(stride=0), ValueError, "stride"),
    (dict(backend="cudnn"), ValueError, "backend"),
])
def test_bad_arguments(bad, err, match):
    tensors, _ = make((1, 4, 5, 5, 8, 3, 1, 1, "relu", "relu", False, False), torch.float32, "nchw")
    with pytest.raises(err, match=match):
        fastconv.dwpw_conv2d(*tensors[:5], **bad)


def test_bad_shapes():
    x = rand(1, 4, 5, 5, device=DEVICE)
    with pytest.raises(ValueError, match="dw_weight"):
        fastconv.dwpw_conv2d(x, rand(3, 1, 3, 3), rand(8, 4, 1, 1))
    with pytest.raises(ValueError, match="dw_weight"):
        fastconv.dwpw_conv2d(x, rand(4, 1, 2, 2), rand(8, 4, 1, 1))
    with pytest.raises(ValueError, match="pw_weight"):
        fastconv.dwpw_conv2d(x, rand(4, 1, 3, 3), rand(8, 5, 1, 1))
    with pytest.raises(ValueError, match="residual"):
        fastconv.dwpw_conv2d(x, rand(4, 1, 3, 3), rand(8, 4, 1, 1), residual=rand(1, 8, 4, 4))
    with pytest.raises(TypeError, match="pw_weight"):
        fastconv.dwpw_conv2d(x, rand(4, 1, 3, 3), rand(8, 4, 1, 1, dtype=torch.float16))
    with pytest.raises(ValueError, match="x"):
        fastconv.dwpw_conv2d(x[0], rand(4, 1, 3, 3), rand(8, 4, 1, 1))
