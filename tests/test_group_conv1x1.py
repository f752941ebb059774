"""fastconv.group_conv1x1 (grouped 1x1 conv with folded shuffles) vs the reference."""
import pytest
import torch
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (DEVICE, OPCHECK_UTILS, assert_grads_match, assert_matches_reference, assert_same_format,
                     backend_params, conv_weight, gradcheck64, rand, to_format, op_matrix)

# (N, C, H, W, K, groups, shuffle_in, shuffle_out, act, bias)
SMALL = [
    (2, 12, 7, 9, 24, 3, None, 3, "relu", True),
    (1, 24, 5, 5, 12, 4, 4, None, "none", False),
    (2, 8, 9, 9, 16, 2, 2, 2, "relu6", True),
    (1, 40, 3, 5, 16, 8, None, None, "hardswish", True),
    (1, 6, 4, 4, 9, 1, 3, 3, "silu", False),  # groups 1, odd K
    (2, 18, 1, 1, 18, 3, 3, 2, "relu", True),
]
REAL = [  # ShuffleNetV1 g=3 / g=8 grouped 1x1 convs at batch 8 (224x224)
    (8, 240, 28, 28, 60, 3, None, 3, "relu", True),
    (8, 60, 28, 28, 240, 3, None, None, "none", True),
    (8, 960, 7, 7, 240, 3, None, 3, "relu", True),
    (8, 384, 28, 28, 96, 8, None, 8, "relu", True),
    (8, 96, 28, 28, 384, 8, None, None, "none", True),
]


def make(case, dtype, fmt):
    n, c, h, w, k_out, g, s_in, s_out, act, bias = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    wt = conv_weight(k_out, c // g, 1, dtype=dtype)
    b = rand(k_out, dtype=dtype, scale=0.1) if bias else None
    return (x, wt, b), dict(groups=g, shuffle_in=s_in, shuffle_out=s_out, act=act)


@op_matrix(SMALL, REAL)
def test_matches_reference(case, dtype, fmt, backend):
    torch.manual_seed(0)
    tensors, kw = make(case, dtype, fmt)
    fast = lambda *t: fastconv.group_conv1x1(*t, backend=backend, **kw)
    assert_matches_reference(fast, lambda *t: reference.group_conv1x1(*t, **kw), tensors, dtype, f"{backend} {case}")
    assert_same_format(fast(*tensors), tensors[0], fmt)


@pytest.mark.parametrize("backend", backend_params())
def test_gradients_match_reference(backend):
    torch.manual_seed(1)
    tensors, kw = make(SMALL[2], torch.float32, "nhwc")
    assert_grads_match(lambda *t: fastconv.group_conv1x1(*t, backend=backend, **kw),
                       lambda *t: reference.group_conv1x1(*t, **kw), tensors)


def test_gradcheck_float64():
    tensors, kw = make((1, 6, 3, 4, 6, 3, 2, 3, "silu", True), torch.float64, "nchw")
    gradcheck64(lambda *t: fastconv.group_conv1x1(*t, **kw), tensors)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    (x, w, b), kw = make(SMALL[0], torch.float32, "nhwc")
    opcheck(torch.ops.fastconv.group_conv1x1.default, (x, w, b, 3, 0, 3, "relu", backend), test_utils=OPCHECK_UTILS)


def test_bad_groups_and_shuffles():
    x = rand(1, 12, 4, 4, device=DEVICE)
    with pytest.raises(ValueError, match="groups"):
        fastconv.group_conv1x1(x, rand(10, 12 // 5, 1, 1, device=DEVICE), groups=5)
    with pytest.raises(ValueError, match="weight"):
        fastconv.group_conv1x1(x, rand(12, 12, 1, 1, device=DEVICE), groups=3)
    with pytest.raises(ValueError, match="shuffle_in"):
        fastconv.group_conv1x1(x, rand(12, 4, 1, 1, device=DEVICE), groups=3, shuffle_in=5)
    with pytest.raises(ValueError, match="shuffle_out"):
        fastconv.group_conv1x1(x, rand(9, 4, 1, 1, device=DEVICE), groups=3, shuffle_out=2)
    with pytest.raises(TypeError, match="groups"):
        fastconv.group_conv1x1(x, rand(12, 4, 1, 1, device=DEVICE), groups=None)
