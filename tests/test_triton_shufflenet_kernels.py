"""The Triton kernels of channel_shuffle, group_conv1x1 and the ShuffleNet units, called directly.

Kernel-level checks (the per-op test files cover the public ops): each launcher against
fastconv.reference on fresh random data, every group count the models use (1, 2, 3, 4, 8), odd
spatial sizes, channel counts that are not multiples of 8, stride 1/2, NCHW/NHWC, fp32/fp16/bf16,
with and without biases. Dtypes and layouts rotate across the cases instead of forming a full
product so that the file stays well under a minute in the interpreter (TRITON_INTERPRET=1).
"""
import itertools

import pytest
import torch

import fastconv
from fastconv import reference
from helpers import (FORMATS, HAS_CUDA, INTERPRET, assert_matches_reference, assert_same_format,
                     conv_weight, rand, to_format)

pytestmark = pytest.mark.skipif(not (HAS_CUDA or INTERPRET),
                                reason="Triton kernels need a CUDA device or TRITON_INTERPRET=1")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (dtype, fmt) pairs handed out round-robin to the cases of each kernel
COMBOS = list(itertools.product(DTYPES, FORMATS))


def _combo(i):
    return COMBOS[i % len(COMBOS)]


def _bias(n, on, dtype):
    return rand(n, dtype=dtype, scale=0.1) if on else None


def _check(fast, ref, tensors, dtype, fmt, what):
    """assert_matches_reference, plus: the output keeps x's memory format."""
    outs = []

    def fast_keep(*ts):
        outs.append(fast(*ts))
        return outs[-1]

    assert_matches_reference(fast_keep, ref, tensors, dtype, what)
    assert_same_format(outs[-1], tensors[0], fmt)


# ---------------------------------------------------------------------------------------------
# channel_shuffle: a permutation, so the result must be bit-exact
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,groups", [((2, 24, 7, 9), 3), ((1, 24, 9, 7), 8), ((2, 12, 5, 5), 2),
                                          ((1, 20, 7, 7), 4), ((2, 6, 1, 1), 3), ((1, 8, 3, 3), 1)])
def test_channel_shuffle_exact(shape, groups, dtype, fmt):
    from fastconv.triton import channel_shuffle
    x = to_format(rand(*shape, dtype=dtype), fmt)
    out = channel_shuffle.forward(x, groups)
    assert torch.equal(out, reference.channel_shuffle(x, groups))
    assert_same_format(out, x, fmt)


# ---------------------------------------------------------------------------------------------
# group_conv1x1
# ---------------------------------------------------------------------------------------------

# (N, C, H, W, K, groups, shuffle_in, shuffle_out, act, bias)
GCONV = [
    (2, 24, 7, 9, 48, 3, 3, 0, "relu", True),
    (1, 24, 9, 7, 24, 1, 0, 3, "none", False),
    (2, 48, 7, 7, 24, 8, 0, 8, "relu", True),
    (1, 36, 5, 5, 36, 2, 4, 3, "hardswish", False),
    (2, 20, 7, 7, 40, 4, 2, 4, "silu", True),
    (1, 24, 9, 9, 12, 3, 3, 3, "relu6", True),
    (1, 10, 3, 5, 70, 1, 2, 7, "none", True),  # K/G > one 32-wide block
    (2, 96, 7, 7, 32, 2, 0, 0, "relu", False),  # C/G > one 32-wide K step
]


@pytest.mark.parametrize("i,case", list(enumerate(GCONV)), ids=str)
def test_group_conv1x1(i, case):
    from fastconv.triton import group_conv1x1
    n, c, h, w, k, g, si, so, act, bias = case
    dtype, fmt = _combo(i)
    tensors = [to_format(rand(n, c, h, w, dtype=dtype), fmt), conv_weight(k, c // g, dtype=dtype),
               _bias(k, bias, dtype)]

    def fast(x, wt, b):
        return group_conv1x1.forward(x, wt, b, g, si, so, act)

    def ref(x, wt, b):
        return reference.group_conv1x1(x, wt, b, groups=g, shuffle_in=si or None, shuffle_out=so or None, act=act)

    _check(fast, ref, tensors, dtype, fmt, f"group_conv1x1 {case} {dtype} {fmt}")


# ---------------------------------------------------------------------------------------------
# ShuffleNet V1 unit
# ---------------------------------------------------------------------------------------------

# (N, C, H, W, M, K, groups, first_groups, stride, bias)
V1 = [
    (2, 24, 7, 9, 24, 24, 3, 3, 1, True),
    (1, 24, 9, 7, 12, 36, 3, 1, 2, False),  # stage entry: first_groups 1, concat with avg pool
    (2, 16, 5, 5, 16, 16, 2, 2, 1, True),
    (1, 32, 8, 8, 16, 32, 4, 4, 2, True),
    (1, 48, 7, 7, 24, 48, 8, 8, 1, False),
    (1, 20, 7, 7, 10, 20, 1, 1, 1, True),
    (1, 48, 9, 9, 24, 24, 8, 8, 2, True),  # K != C at stride 2
    (2, 24, 1, 1, 24, 24, 3, 3, 1, True),  # 1x1 map: every tap but the centre is padding
]


@pytest.mark.parametrize("i,case", list(enumerate(V1)), ids=str)
def test_shufflenet_v1_unit(i, case):
    from fastconv.triton import shufflenet_v1_unit
    n, c, h, w, m, k, g, g1, stride, bias = case
    dtype, fmt = _combo(i)
    tensors = [to_format(rand(n, c, h, w, dtype=dtype), fmt), conv_weight(m, c // g1, dtype=dtype),
               _bias(m, bias, dtype), conv_weight(m, 1, 3, dtype=dtype), _bias(m, bias, dtype),
               conv_weight(k, m // g, dtype=dtype), _bias(k, bias, dtype)]

    def fast(*ts):
        return shufflenet_v1_unit.forward(*ts, g, g1, stride)

    def ref(*ts):
        return reference.shufflenet_v1_unit(*ts, groups=g, first_groups=g1, stride=stride)

    _check(fast, ref, tensors, dtype, fmt, f"shufflenet_v1_unit {case} {dtype} {fmt}")


# ---------------------------------------------------------------------------------------------
# ShuffleNet V2 unit: both branch2 strategies (hidden tensor recomputed vs written once)
# ---------------------------------------------------------------------------------------------

# (N, C, H, W, B, stride, bias)
V2 = [
    (2, 24, 7, 9, 12, 1, True),
    (1, 24, 9, 7, 24, 2, False),
    (1, 10, 5, 5, 5, 1, False),  # B = 5: odd, under one 16-wide block
    (1, 20, 8, 8, 24, 2, True),  # stage entry: C != B
    (1, 72, 7, 7, 36, 1, True),  # B > one 32-wide hidden chunk
    (2, 12, 1, 1, 6, 1, True),
]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "two_kernel"])
@pytest.mark.parametrize("i,case", list(enumerate(V2)), ids=str)
def test_shufflenet_v2_unit(i, case, fuse):
    from fastconv.triton import shufflenet_v2_unit
    n, c, h, w, b, stride, bias = case
    dtype, fmt = _combo(2 * i + fuse)
    cin = c // 2 if stride == 1 else c
    tensors = [to_format(rand(n, c, h, w, dtype=dtype), fmt), conv_weight(b, cin, dtype=dtype),
               _bias(b, bias, dtype), conv_weight(b, 1, 3, dtype=dtype), _bias(b, bias, dtype),
               conv_weight(b, b, dtype=dtype), _bias(b, bias, dtype)]
    if stride == 2:
        tensors += [conv_weight(c, 1, 3, dtype=dtype), _bias(c, bias, dtype), conv_weight(b, c, dtype=dtype),
                    _bias(b, bias, dtype)]
    else:
        tensors += [None] * 4

    def fast(*ts):
        return shufflenet_v2_unit.forward(*ts, stride, fuse_hidden=fuse)

    def ref(x, *p):
        return reference.shufflenet_v2_unit(x, p[:6], None if p[6] is None else p[6:], stride=stride)

    _check(fast, ref, tensors, dtype, fmt, f"shufflenet_v2_unit {case} fuse={fuse} {dtype} {fmt}")


# ---------------------------------------------------------------------------------------------
# the public ops reach these kernels with backend="triton"
# ---------------------------------------------------------------------------------------------

def test_public_ops_triton_backend():
    torch.manual_seed(0)
    dt = torch.float32
    x = rand(1, 24, 7, 9, dtype=dt)
    torch.testing.assert_close(fastconv.channel_shuffle(x, 3, backend="triton"), reference.channel_shuffle(x, 3),
                               rtol=0, atol=0)

    wt, b = conv_weight(48, 8, dtype=dt), rand(48, dtype=dt)
    torch.testing.assert_close(
        fastconv.group_conv1x1(x, wt, b, groups=3, shuffle_in=3, shuffle_out=4, act="relu", backend="triton"),
        reference.group_conv1x1(x, wt, b, groups=3, shuffle_in=3, shuffle_out=4, act="relu"))

    v1 = (conv_weight(12, 24, dtype=dt), None, conv_weight(12, 1, 3, dtype=dt), rand(12, dtype=dt),
          conv_weight(24, 4, dtype=dt), rand(24, dtype=dt))
    torch.testing.assert_close(fastconv.shufflenet_v1_unit(x, *v1, groups=3, first_groups=1, backend="triton"),
                               reference.shufflenet_v1_unit(x, *v1, groups=3, first_groups=1))

    br2 = (conv_weight(12, 12, dtype=dt), rand(12, dtype=dt), conv_weight(12, 1, 3, dtype=dt), None,
           conv_weight(12, 12, dtype=dt), rand(12, dtype=dt))
    torch.testing.assert_close(fastconv.shufflenet_v2_unit(x, br2, backend="triton"),
                               reference.shufflenet_v2_unit(x, br2))
