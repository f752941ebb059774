"""fastconv.channel_shuffle vs torch.nn.functional.channel_shuffle (exact: it is a permutation)."""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (DEVICE, OPCHECK_UTILS, assert_same_format, backend_params, rand, to_format, op_matrix)

SMALL = [(2, 6, 5, 7, 2), (1, 12, 3, 3, 3), (2, 24, 9, 9, 4), (1, 16, 1, 1, 8), (3, 9, 4, 5, 3), (1, 8, 7, 7, 1)]
REAL = [(32, 116, 28, 28, 2), (32, 232, 14, 14, 2), (32, 240, 28, 28, 3), (32, 1088, 7, 7, 8)]


@op_matrix(SMALL, REAL)
def test_matches_torch(case, dtype, fmt, backend):
    n, c, h, w, g = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    out = fastconv.channel_shuffle(x, g, backend=backend)
    assert torch.equal(out, F.channel_shuffle(x.contiguous(), g))
    assert torch.equal(out, reference.channel_shuffle(x, g))
    assert_same_format(out, x, fmt)


@pytest.mark.parametrize("backend", backend_params())
def test_non_contiguous_input(backend):
    x = rand(2, 12, 9, 10)[:, :, ::2, 1:]
    out = fastconv.channel_shuffle(x, 3, backend=backend)
    assert torch.equal(out, F.channel_shuffle(x.contiguous(), 3))


@pytest.mark.parametrize("backend", backend_params())
def test_gradient_is_inverse_shuffle(backend):
    x = rand(2, 12, 5, 5).requires_grad_()
    g = rand(2, 12, 5, 5)
    fastconv.channel_shuffle(x, 3, backend=backend).backward(g)
    x2 = x.detach().clone().requires_grad_()
    F.channel_shuffle(x2, 3).backward(g)
    assert torch.equal(x.grad, x2.grad)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    opcheck(torch.ops.fastconv.channel_shuffle.default, (rand(2, 6, 3, 3), 3, backend), test_utils=OPCHECK_UTILS)


def test_bad_groups():
    x = rand(1, 6, 3, 3, device=DEVICE)
    with pytest.raises(ValueError, match="groups"):
        fastconv.channel_shuffle(x, 4)
    with pytest.raises(ValueError, match="groups"):
        fastconv.channel_shuffle(x, 0)
    with pytest.raises(TypeError, match="groups"):
        fastconv.channel_shuffle(x, 2.0)
