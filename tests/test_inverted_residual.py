"""fastconv.inverted_residual vs the reference: MobileNetV2/V3 blocks, SE, no expansion, awkward shapes."""
import pytest
import torch
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (DEVICE, OPCHECK_UTILS, assert_grads_match, assert_matches_reference, assert_same_format,
                     backend_params, conv_weight, gradcheck64, rand, to_format, op_matrix)

# (N, C, H, W, E, K, k, stride, act, se_channels (0 = no SE), se_gate, expand, residual)
SMALL = [
    (2, 8, 9, 9, 48, 8, 3, 1, "relu6", 0, "hardsigmoid", True, True),  # V2, residual
    (1, 5, 7, 11, 30, 7, 3, 2, "relu6", 0, "hardsigmoid", True, False),  # odd C, stride 2
    (1, 6, 8, 8, 24, 10, 5, 1, "hardswish", 8, "hardsigmoid", True, False),  # V3 with SE
    (2, 16, 7, 7, 16, 16, 3, 2, "relu", 8, "hardsigmoid", False, False),  # V3 expand ratio 1 + SE
    (1, 4, 9, 7, 16, 4, 7, 1, "silu", 4, "sigmoid", True, True),  # EfficientNet-like k7, SE sigmoid
    (1, 3, 1, 1, 12, 5, 3, 1, "relu6", 0, "hardsigmoid", True, False),  # 1x1 spatial
]
REAL = [  # MobileNetV2 / V3-large (224x224) blocks at batch 8
    (8, 24, 56, 56, 144, 24, 3, 1, "relu6", 0, "hardsigmoid", True, True),
    (8, 32, 28, 28, 192, 64, 3, 2, "relu6", 0, "hardsigmoid", True, False),
    (8, 96, 14, 14, 576, 96, 3, 1, "relu6", 0, "hardsigmoid", True, True),
    (8, 160, 7, 7, 960, 320, 3, 1, "relu6", 0, "hardsigmoid", True, False),
    (8, 40, 28, 28, 120, 40, 5, 1, "relu", 32, "hardsigmoid", True, True),
    (8, 112, 14, 14, 672, 160, 5, 2, "hardswish", 168, "hardsigmoid", True, False),
    (8, 16, 112, 112, 16, 16, 3, 1, "relu", 0, "hardsigmoid", False, True),
]


def make(case, dtype, fmt):
    n, c, h, w, e, k_out, k, stride, act, s, gate, expand, res = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    ew = conv_weight(e, c, 1, dtype=dtype) if expand else None
    eb = rand(e, dtype=dtype, scale=0.1) if expand else None
    dw = conv_weight(e, 1, k, dtype=dtype)
    db = rand(e, dtype=dtype, scale=0.1)
    pw = conv_weight(k_out, e, 1, dtype=dtype)
    pb = rand(k_out, dtype=dtype, scale=0.1)
    se = None
    if s:
        se = (conv_weight(s, e, 1, dtype=dtype), rand(s, dtype=dtype, scale=0.1),
              conv_weight(e, s, 1, dtype=dtype), rand(e, dtype=dtype, scale=0.1))
    kw = dict(stride=stride, act=act, se_act="relu", se_gate=gate, residual=res)
    return (x, ew, dw, pw, eb, db, pb) + (se or (None,) * 4), kw


def _call(fn, kw, backend=None):
    extra = {} if backend is None else {"backend": backend}

    def f(x, ew, dw, pw, eb, db, pb, w1, b1, w2, b2):
        se = None if w1 is None else (w1, b1, w2, b2)
        return fn(x, ew, dw, pw, eb, db, pb, se=se, **kw, **extra)
    return f


@op_matrix(SMALL, REAL)
def test_matches_reference(case, dtype, fmt, backend):
    torch.manual_seed(0)
    tensors, kw = make(case, dtype, fmt)
    fast = _call(fastconv.inverted_residual, kw, backend)
    assert_matches_reference(fast, _call(reference.inverted_residual, kw), tensors, dtype, f"{backend} {case}")
    assert_same_format(fast(*tensors), tensors[0], fmt)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("case", [SMALL[0], SMALL[2], SMALL[3]], ids=["v2", "v3_se", "no_expand"])
def test_gradients_match_reference(case, backend):
    torch.manual_seed(1)
    tensors, kw = make(case, torch.float32, "nhwc")
    assert_grads_match(_call(fastconv.inverted_residual, kw, backend), _call(reference.inverted_residual, kw),
                       tensors)


def test_gradcheck_float64():
    torch.manual_seed(2)
    tensors, kw = make((1, 3, 5, 5, 6, 3, 3, 1, "hardswish", 2, "sigmoid", True, True), torch.float64, "nchw")
    gradcheck64(_call(fastconv.inverted_residual, kw), tensors)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    tensors, kw = make(SMALL[2], torch.float32, "nhwc")
    args = tensors + (1, 2, "hardswish", "relu", "hardsigmoid", False, backend)
    opcheck(torch.ops.fastconv.inverted_residual.default, args, test_utils=OPCHECK_UTILS)


def test_residual_errors():
    tensors, kw = make(SMALL[1], torch.float32, "nchw")
    x, ew, dw, pw = tensors[:4]
    with pytest.raises(ValueError, match="stride"):
        fastconv.inverted_residual(x, ew, dw, pw, stride=2, residual=True)
    with pytest.raises(ValueError, match="output channels"):
        fastconv.inverted_residual(x, ew, dw, pw, stride=1, residual=True)


def test_bad_se_and_acts():
    tensors, kw = make(SMALL[2], torch.float32, "nchw")
    x, ew, dw, pw = tensors[:4]
    with pytest.raises(ValueError, match="se"):
        fastconv.inverted_residual(x, ew, dw, pw, se=(tensors[7],))
    with pytest.raises(ValueError, match="se_gate"):
        fastconv.inverted_residual(x, ew, dw, pw, se=tuple(tensors[7:]), se_gate="relu")
    with pytest.raises(ValueError, match="act"):
        fastconv.inverted_residual(x, ew, dw, pw, act="mish")
    with pytest.raises(ValueError, match="dw_weight"):
        fastconv.inverted_residual(x, ew, rand(5, 1, 3, 3, device=DEVICE), pw)
