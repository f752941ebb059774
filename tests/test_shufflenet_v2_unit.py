"""fastconv.shufflenet_v2_unit vs the reference (torchvision's InvertedResidual with BN folded)."""
import pytest
import torch
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (OPCHECK_UTILS, assert_grads_match, assert_matches_reference, assert_same_format,
                     backend_params, conv_weight, gradcheck64, rand, to_format, op_matrix)

# (N, C, H, W, B (branch channels), stride, bias)
SMALL = [
    (2, 8, 7, 7, 4, 1, True),
    (1, 6, 9, 7, 5, 2, True),  # stride 2: C=6 -> 2B=10, odd sizes
    (1, 12, 5, 5, 6, 1, False),
    (2, 24, 8, 8, 24, 2, True),
    (1, 10, 1, 1, 5, 1, True),
]
REAL = [  # ShuffleNetV2 x1.0 (224x224) units at batch 8
    (8, 24, 56, 56, 58, 2, True),
    (8, 116, 28, 28, 58, 1, True),
    (8, 116, 28, 28, 116, 2, True),
    (8, 232, 14, 14, 116, 1, True),
    (8, 464, 7, 7, 232, 1, True),
]


def make(case, dtype, fmt):
    n, c, h, w, b, stride, bias = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    opt = (lambda size: rand(size, dtype=dtype, scale=0.1)) if bias else (lambda size: None)
    cin2 = c // 2 if stride == 1 else c
    branch2 = (conv_weight(b, cin2, 1, dtype=dtype), opt(b), conv_weight(b, 1, 3, dtype=dtype), opt(b),
               conv_weight(b, b, 1, dtype=dtype), opt(b))
    branch1 = ((conv_weight(c, 1, 3, dtype=dtype), opt(c), conv_weight(b, c, 1, dtype=dtype), opt(b))
               if stride == 2 else (None,) * 4)
    return (x,) + branch2 + branch1, stride


def _call(fn, stride, **extra):
    def f(x, *t):
        b1 = None if t[6] is None else t[6:]
        return fn(x, t[:6], b1, stride=stride, **extra)
    return f


@op_matrix(SMALL, REAL)
def test_matches_reference(case, dtype, fmt, backend):
    torch.manual_seed(0)
    tensors, stride = make(case, dtype, fmt)
    fast = _call(fastconv.shufflenet_v2_unit, stride, backend=backend)
    assert_matches_reference(fast, _call(reference.shufflenet_v2_unit, stride), tensors, dtype, f"{backend} {case}")
    assert_same_format(fast(*tensors), tensors[0], fmt)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("case", [SMALL[0], SMALL[1]], ids=["stride1", "stride2"])
def test_gradients_match_reference(case, backend):
    torch.manual_seed(1)
    tensors, stride = make(case, torch.float32, "nhwc")
    assert_grads_match(_call(fastconv.shufflenet_v2_unit, stride, backend=backend),
                       _call(reference.shufflenet_v2_unit, stride), tensors)


@pytest.mark.parametrize("case", [SMALL[0], SMALL[1]], ids=["stride1", "stride2"])
def test_gradcheck_float64(case):
    tensors, stride = make((1,) + case[1:], torch.float64, "nchw")
    gradcheck64(_call(fastconv.shufflenet_v2_unit, stride), tensors)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    tensors, stride = make(SMALL[1], torch.float32, "nhwc")
    opcheck(torch.ops.fastconv.shufflenet_v2_unit.default, tensors + (stride, backend), test_utils=OPCHECK_UTILS)


def test_bad_arguments():
    tensors, stride = make(SMALL[0], torch.float32, "nchw")
    x, branch2 = tensors[0], tensors[1:7]
    with pytest.raises(ValueError, match="branch1"):
        fastconv.shufflenet_v2_unit(x, branch2, stride=2)
    with pytest.raises(ValueError, match="branch2"):
        fastconv.shufflenet_v2_unit(x, branch2[:5])
    with pytest.raises(ValueError, match="even"):
        fastconv.shufflenet_v2_unit(rand(1, 7, 5, 5, device=x.device), branch2)
    with pytest.raises(ValueError, match="stride"):
        fastconv.shufflenet_v2_unit(x, branch2, stride=3)
