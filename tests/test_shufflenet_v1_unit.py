"""fastconv.shufflenet_v1_unit vs the reference: groups 1, 2, 3, 4, 8; stride 1 and 2."""
import pytest
import torch
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (OPCHECK_UTILS, assert_grads_match, assert_matches_reference, assert_same_format,
                     backend_params, conv_weight, gradcheck64, rand, to_format, op_matrix)

# (N, C, H, W, M (bottleneck), K (gconv2 out), groups, first_groups, stride, bias)
SMALL = [
    (2, 12, 7, 7, 6, 12, 3, None, 1, True),
    (1, 12, 9, 7, 6, 12, 3, None, 2, True),
    (1, 8, 8, 8, 8, 8, 2, None, 1, False),
    (1, 24, 5, 5, 12, 24, 4, None, 1, True),
    (1, 24, 9, 9, 16, 16, 8, 1, 2, True),  # first unit: ungrouped gconv1, stride 2
    (2, 6, 3, 3, 4, 6, 1, None, 1, True),  # g = 1
]
REAL = [  # ShuffleNetV1 (224x224) units at batch 8
    (8, 24, 56, 56, 60, 216, 3, 1, 2, True),
    (8, 240, 28, 28, 60, 240, 3, None, 1, True),
    (8, 240, 28, 28, 120, 240, 3, None, 2, True),
    (8, 960, 7, 7, 240, 960, 3, None, 1, True),
    (8, 384, 28, 28, 96, 384, 8, None, 1, True),
    (8, 144, 28, 28, 36, 144, 1, None, 1, True),
]


def make(case, dtype, fmt):
    n, c, h, w, m, k_out, g, g1, stride, bias = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    g1e = g1 or g
    opt = (lambda size: rand(size, dtype=dtype, scale=0.1)) if bias else (lambda size: None)
    tensors = (x, conv_weight(m, c // g1e, 1, dtype=dtype), opt(m), conv_weight(m, 1, 3, dtype=dtype), opt(m),
               conv_weight(k_out, m // g, 1, dtype=dtype), opt(k_out))
    return tensors, dict(groups=g, first_groups=g1, stride=stride)


@op_matrix(SMALL, REAL)
def test_matches_reference(case, dtype, fmt, backend):
    torch.manual_seed(0)
    tensors, kw = make(case, dtype, fmt)
    fast = lambda *t: fastconv.shufflenet_v1_unit(*t, backend=backend, **kw)
    assert_matches_reference(fast, lambda *t: reference.shufflenet_v1_unit(*t, **kw), tensors, dtype,
                             f"{backend} {case}")
    assert_same_format(fast(*tensors), tensors[0], fmt)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("case", [SMALL[0], SMALL[1]], ids=["stride1", "stride2"])
def test_gradients_match_reference(case, backend):
    torch.manual_seed(1)
    tensors, kw = make(case, torch.float32, "nhwc")
    assert_grads_match(lambda *t: fastconv.shufflenet_v1_unit(*t, backend=backend, **kw),
                       lambda *t: reference.shufflenet_v1_unit(*t, **kw), tensors)


def test_gradcheck_float64():
    tensors, kw = make((1, 4, 5, 5, 4, 4, 2, None, 2, True), torch.float64, "nchw")
    gradcheck64(lambda *t: fastconv.shufflenet_v1_unit(*t, **kw), tensors)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    tensors, kw = make(SMALL[1], torch.float32, "nhwc")
    opcheck(torch.ops.fastconv.shufflenet_v1_unit.default, tensors + (3, 3, 2, backend), test_utils=OPCHECK_UTILS)


def test_bad_arguments():
    tensors, kw = make(SMALL[0], torch.float32, "nchw")
    with pytest.raises(ValueError, match="stride"):
        fastconv.shufflenet_v1_unit(*tensors, groups=3, stride=3)
    with pytest.raises(ValueError, match="groups"):
        fastconv.shufflenet_v1_unit(*tensors, groups=4)
    x, w1, b1, dw, db, w2, b2 = tensors
    with pytest.raises(ValueError, match="w2"):
        fastconv.shufflenet_v1_unit(x, w1, b1, dw, db, conv_weight(9, 2, 1), None, groups=3)
    with pytest.raises(ValueError, match="dw_weight"):
        fastconv.shufflenet_v1_unit(x, w1, b1, conv_weight(6, 1, 5), db, w2, b2, groups=3)
