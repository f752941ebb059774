"""The Triton kernels behind dwpw_conv2d and inverted_residual, called directly (fastconv.triton.*).

Runs on CUDA, or on CPU under TRITON_INTERPRET=1 (small shapes, so the whole file stays fast).
Every case is checked against the fp64 reference with the shared tolerance rule.
"""
import pytest
import torch

import fastconv
from fastconv import reference
from helpers import (DEVICE, HAS_CUDA, INTERPRET, assert_matches_reference, assert_same_format,
                     conv_weight, rand, to_format)

pytestmark = pytest.mark.skipif(not (HAS_CUDA or INTERPRET),
                                reason="needs CUDA or TRITON_INTERPRET=1 for the Triton kernels")

if HAS_CUDA or INTERPRET:
    from fastconv.triton import dwpw_conv2d as tri_dwpw
    from fastconv.triton import inverted_residual as tri_ir

ACTS = ["none", "relu", "relu6", "hardswish", "silu"]
F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16

# (N, C, H, W, K, k, stride, dilation, dw_act, pw_act, bias, residual, dtype, fmt)
DWPW = [
    (2, 8, 9, 9, 24, 3, 1, 1, "relu", "relu6", True, False, F32, "nchw"),
    (1, 3, 7, 9, 8, 3, 2, 1, "relu6", "none", False, False, F16, "nhwc"),
    (2, 24, 9, 7, 24, 5, 1, 1, "hardswish", "none", True, True, F32, "nhwc"),
    (1, 24, 7, 7, 3, 7, 2, 1, "silu", "hardswish", True, False, F16, "nchw"),
    (1, 8, 9, 9, 8, 3, 1, 2, "none", "silu", False, True, BF16, "nhwc"),
    (1, 40, 7, 7, 40, 3, 1, 1, "relu", "relu", True, False, F32, "nchw"),  # several C and K blocks
    (2, 8, 9, 9, 24, 5, 2, 1, "relu6", "relu", True, True, BF16, "nchw"),
]


def _dwpw_case(case):
    n, c, h, w, k_out, k, s, d, dw_act, pw_act, bias, res, dtype, fmt = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    dw, pw = conv_weight(c, 1, k, dtype=dtype), conv_weight(k_out, c, 1, dtype=dtype)
    dwb = rand(c, dtype=dtype, scale=0.3) if bias else None
    pwb = rand(k_out, dtype=dtype, scale=0.3) if bias else None
    pad = (k // 2) * d
    ho, wo = (h + 2 * pad - d * (k - 1) - 1) // s + 1, (w + 2 * pad - d * (k - 1) - 1) // s + 1
    r = to_format(rand(n, k_out, ho, wo, dtype=dtype), fmt) if res else None
    return (x, dw, pw, dwb, pwb, r), (s, pad, d, dw_act, pw_act)


@pytest.mark.parametrize("case", DWPW, ids=str)
def test_dwpw_kernel(case):
    torch.manual_seed(0)
    tensors, (s, pad, d, dw_act, pw_act) = _dwpw_case(case)

    def fast(x, dw, pw, dwb, pwb, r):
        return tri_dwpw.forward(x, dw, pw, dwb, pwb, r, s, pad, d, dw_act, pw_act)

    def ref(x, dw, pw, dwb, pwb, r):
        return reference.dwpw_conv2d(x, dw, pw, dwb, pwb, stride=s, padding=pad, dilation=d,
                                     dw_act=dw_act, pw_act=pw_act, residual=r)

    assert_matches_reference(fast, ref, tensors, case[-2], str(case))
    assert_same_format(fast(*tensors), tensors[0], case[-1])


def test_dwpw_public_op():
    """Through fastconv.dwpw_conv2d(backend="triton"): the op glue reaches this kernel."""
    torch.manual_seed(1)
    tensors, (s, pad, d, dw_act, pw_act) = _dwpw_case(DWPW[2])
    x, dw, pw, dwb, pwb, r = tensors
    out = fastconv.dwpw_conv2d(x, dw, pw, dwb, pwb, stride=s, dilation=d, dw_act=dw_act, pw_act=pw_act,
                               residual=r, backend="triton")
    want = reference.dwpw_conv2d(x, dw, pw, dwb, pwb, stride=s, dilation=d, dw_act=dw_act, pw_act=pw_act,
                                 residual=r)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    assert out.is_contiguous(memory_format=torch.channels_last)


# (N, C, H, W, E (0 = no expand), K, k, stride, act, se (S or 0), residual, bias, dtype, fmt)
IR = [
    (2, 8, 9, 9, 24, 8, 3, 1, "relu6", 0, True, True, F32, "nchw"),
    (1, 8, 9, 7, 24, 16, 3, 2, "relu6", 0, False, True, F16, "nhwc"),
    (1, 24, 7, 9, 40, 24, 5, 1, "hardswish", 0, True, False, F32, "nhwc"),
    (2, 3, 9, 9, 8, 8, 7, 2, "silu", 0, False, True, F16, "nchw"),
    (1, 24, 7, 7, 0, 8, 3, 1, "relu", 0, False, True, F32, "nhwc"),  # no expansion
    (1, 8, 9, 9, 0, 8, 5, 2, "relu6", 0, False, False, BF16, "nchw"),
    (2, 8, 9, 9, 24, 8, 3, 1, "hardswish", 8, True, True, F32, "nhwc"),  # SE
    (1, 8, 9, 7, 40, 24, 5, 2, "silu", 4, False, True, F16, "nchw"),
    (1, 24, 7, 7, 0, 24, 3, 1, "none", 8, True, False, F32, "nchw"),  # SE, no expansion
    (2, 8, 7, 9, 24, 8, 3, 1, "relu", 4, True, True, BF16, "nhwc"),
    (1, 40, 7, 7, 80, 40, 3, 1, "relu6", 0, True, True, F32, "nchw"),  # several C/E/K blocks
]


def _ir_case(case):
    n, c, h, w, e, k_out, k, s, act, se, res, bias, dtype, fmt = case
    hidden = e or c
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    ew = conv_weight(e, c, 1, dtype=dtype) if e else None
    dw, pw = conv_weight(hidden, 1, k, dtype=dtype), conv_weight(k_out, hidden, 1, dtype=dtype)
    b = (lambda m: rand(m, dtype=dtype, scale=0.3)) if bias else (lambda m: None)
    eb = b(e) if e else None
    sep = [None] * 4
    if se:
        sep = [conv_weight(se, hidden, 1, dtype=dtype), b(se), conv_weight(hidden, se, 1, dtype=dtype), b(hidden)]
    return (x, ew, dw, pw, eb, b(hidden), b(k_out), *sep), (s, k // 2, act, "relu", "hardsigmoid", res)


@pytest.mark.parametrize("case", IR, ids=str)
def test_inverted_residual_kernel(case):
    torch.manual_seed(0)
    tensors, args = _ir_case(case)

    def fast(*t):
        return tri_ir.forward(*t, *args)

    def ref(x, ew, dw, pw, eb, db, pb, w1, b1, w2, b2):
        s, pad, act, se_act, se_gate, res = args
        se = None if w1 is None else (w1, b1, w2, b2)
        return reference.inverted_residual(x, ew, dw, pw, eb, db, pb, stride=s, padding=pad, act=act, se=se,
                                           se_act=se_act, se_gate=se_gate, residual=res)

    assert_matches_reference(fast, ref, tensors, case[-2], str(case))
    assert_same_format(fast(*tensors), tensors[0], case[-1])


@pytest.mark.parametrize("se_act,se_gate", [("hardswish", "sigmoid"), ("silu", "hardsigmoid")])
def test_inverted_residual_se_acts(se_act, se_gate):
    torch.manual_seed(2)
    tensors, args = _ir_case((1, 8, 7, 7, 24, 8, 3, 1, "relu", 8, True, True, F32, "nchw"))
    args = args[:3] + (se_act, se_gate) + args[5:]
    se = tuple(tensors[7:])
    out = tri_ir.forward(*tensors, *args)
    want = reference.inverted_residual(*tensors[:7], stride=1, padding=1, act="relu", se=se, se_act=se_act,
                                       se_gate=se_gate, residual=True)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tile", [(1, 1), (3, 5), (8, 8)])
def test_inverted_residual_tile_shapes(tile, monkeypatch):
    """The halo / scratch indexing for tile shapes the GPU heuristic may pick."""
    monkeypatch.setattr(tri_ir, "_pick_tile", lambda *a, **k: tile)
    torch.manual_seed(3)
    for case in [(1, 8, 9, 9, 24, 8, 3, 1, "relu6", 0, True, True, F32, "nhwc"),
                 (1, 8, 9, 9, 24, 8, 5, 2, "relu6", 4, False, True, F32, "nchw")]:
        tensors, args = _ir_case(case)
        se = None if tensors[7] is None else tuple(tensors[7:])
        out = tri_ir.forward(*tensors, *args)
        want = reference.inverted_residual(*tensors[:7], stride=args[0], padding=args[1], act=args[2], se=se,
                                           residual=args[5])
        torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)


def test_inverted_residual_public_op():
    torch.manual_seed(4)
    tensors, (s, pad, act, se_act, se_gate, res) = _ir_case(IR[6])
    x, ew, dw, pw, eb, db, pb, *se = tensors
    out = fastconv.inverted_residual(x, ew, dw, pw, eb, db, pb, stride=s, act=act, se=tuple(se),
                                     residual=res, backend="triton")
    want = reference.inverted_residual(x, ew, dw, pw, eb, db, pb, stride=s, act=act, se=tuple(se), residual=res)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy's inf * 0
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_inverted_residual_nonfinite_input(value):
    """A poisoned input pixel: padded (zero-weight) hidden channels must not turn inf into NaN."""
    torch.manual_seed(5)
    tensors, args = _ir_case((1, 8, 7, 7, 24, 8, 3, 1, "relu6", 0, False, True, F32, "nchw"))
    x = tensors[0].clone()
    x[0, 3, 3, 3] = value
    out = tri_ir.forward(x, *tensors[1:], *args)
    want = reference.inverted_residual(x.double(), *[t.double() if t is not None else None for t in tensors[1:7]],
                                       stride=1, padding=1, act="relu6")
    assert torch.equal(out.isnan(), want.isnan())
    assert torch.equal(out.isinf(), want.isinf())
