"""fastconv.depthwise_conv2d: forward and every gradient vs fp64, every backend/dtype/layout; bitwise
reproducible gradients; autocast; opcheck; torch.compile(fullgraph) forward+backward; bad input."""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import fastconv
from fastconv import reference
from helpers import (DEVICE, HAS_CUDA, OPCHECK_UTILS, TOLERANCE, assert_matches_reference,
                     assert_same_format, backend_params, max_err, op_matrix, rand, to_format)

# (N, C, H, W, m, k, stride, dilation, act, bias)
SMALL = [
    (2, 8, 9, 9, 1, 3, 1, 1, "relu", True),
    (1, 5, 7, 11, 1, 3, 2, 1, "relu6", False),    # C not a multiple of 8, odd non-square map, stride 2
    (2, 6, 8, 8, 2, 5, 1, 1, "hardswish", True),  # channel multiplier 2
    (1, 6, 9, 7, 1, 7, 2, 1, "silu", True),       # ConvNeXt kernel, stride 2
    (1, 4, 10, 10, 1, 3, 1, 2, "none", False),    # dilation 2
    (1, 3, 12, 11, 1, 9, 1, 1, "relu", True),
    (1, 3, 1, 1, 1, 3, 1, 1, "relu6", True),      # 1x1 map
]
# RepLKNet kernels on small maps (the interpreter's cost is programs x k^2 taps): test_large_kernels.
LARGE = [
    (1, 4, 15, 14, 1, 13, 2, 1, "none", True),
    (1, 3, 12, 13, 1, 31, 1, 1, "relu", True),    # most taps fall in the padding: the masks are exercised
]
# Real shapes (GPU only): MobileNetV2 / EfficientNet 3x3 and 5x5, ConvNeXt 7x7, RepLKNet 13 / 31.
REAL = [
    (8, 96, 112, 112, 1, 3, 2, 1, "relu6", True),
    (8, 144, 56, 56, 1, 3, 1, 1, "relu6", True),
    (8, 240, 28, 28, 1, 5, 1, 1, "silu", True),
    (8, 960, 7, 7, 1, 3, 1, 1, "relu6", True),
    (8, 96, 56, 56, 1, 7, 1, 1, "none", True),
    (8, 384, 14, 14, 1, 7, 1, 1, "none", True),
    (4, 256, 28, 28, 1, 13, 1, 1, "none", True),
    (4, 256, 28, 28, 1, 31, 1, 1, "none", True),
    (4, 1024, 7, 7, 1, 31, 1, 1, "none", True),
]


def make(case, dtype, fmt, requires_grad=False):
    n, c, h, w, m, k, stride, dil, act, bias = case
    x = to_format(rand(n, c, h, w, dtype=dtype), fmt)
    wt = rand(c * m, 1, k, k, dtype=dtype, scale=k ** -1)
    b = rand(c * m, dtype=dtype, scale=0.1) if bias else None
    return (x, wt, b), dict(stride=stride, dilation=dil, act=act)


def _fp64_cl(t):
    # PyTorch's CPU fp64 depthwise conv is very slow on NCHW: evaluate the truth channels_last.
    return t.to(torch.float64).contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t.to(torch.float64)


def _grads(fn, tensors, gy):
    leaves = [None if t is None else t.detach().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    live = [t for t in leaves if t is not None]
    return out.detach(), list(torch.autograd.grad(out, live, gy))


def assert_grads_vs_fp64(fast, ref, tensors, dtype, what=""):
    """Every gradient of fast vs an fp64 evaluation of ref, bound = factor x ref's own error at dtype
    + floor x max(1, |truth|) (the project's accuracy rule, applied per gradient)."""
    with torch.no_grad():
        y = ref(*tensors)
    gy = rand(*y.shape, dtype=dtype, device=y.device).contiguous(memory_format=torch.channels_last
                                                                   if y.is_contiguous(memory_format=torch.channels_last)
                                                                   and not y.is_contiguous() else torch.contiguous_format)
    _, truth = _grads(ref, [None if t is None else _fp64_cl(t) for t in tensors], _fp64_cl(gy))
    _, theirs = _grads(ref, tensors, gy)
    _, ours = _grads(fast, tensors, gy)
    factor, floor = TOLERANCE[dtype]
    for name, a, b, t in zip(("grad_x", "grad_weight", "grad_bias"), ours, theirs, truth):
        assert a.shape == t.shape and a.dtype == dtype, f"{what} {name}: {a.shape} {a.dtype}"
        assert torch.isfinite(a).all(), f"{what} {name}: non-finite"
        bound = factor * max_err(b, t) + floor * max(1.0, t.abs().max().item())
        err = max_err(a, t)
        assert err <= bound, f"{what} {name}: max error {err:.3g} vs fp64 > bound {bound:.3g}"
    return ours


@op_matrix(SMALL, REAL)
def test_matches_reference(case, dtype, fmt, backend):
    _check_case(case, dtype, fmt, backend)


def _skip_unsupported_cuda(backend, x, w, stride, dilation):
    from fastconv.ops.depthwise_conv2d import cuda_unsupported
    pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
    why = cuda_unsupported(x, w, pair(stride), pair(dilation)) if backend == "cuda" else ""
    if why:
        pytest.skip(f"the CUDA kernel does not cover {why} (auto routes it to triton)")


def _check_case(case, dtype, fmt, backend):
    torch.manual_seed(0)
    tensors, kw = make(case, dtype, fmt)
    _skip_unsupported_cuda(backend, tensors[0], tensors[1], kw["stride"], kw["dilation"])

    def fast(x, w, b):
        return fastconv.depthwise_conv2d(x, w, b, backend=backend, **kw)

    def ref(x, w, b):
        return reference.depthwise_conv2d(x, w, b, **kw)

    assert_matches_reference(fast, ref, tensors, dtype, f"{backend} {case}")
    assert_same_format(fast(*tensors), tensors[0], fmt)
    ours = assert_grads_vs_fp64(fast, ref, tensors, dtype, f"{backend} {case}")
    assert_same_format(ours[0], tensors[0], fmt)


# k = 13 in both layouts and dtypes; k = 31 (961 taps: minutes per case in the interpreter) once,
# NHWC fp32: its masks are what it adds, and they do not depend on layout or dtype.
LARGE_MATRIX = [(LARGE[0], fmt, dtype) for fmt in ("nchw", "nhwc") for dtype in (torch.float32, torch.bfloat16)]
LARGE_MATRIX.append((LARGE[1], "nhwc", torch.float32))


@pytest.mark.parametrize("case,fmt,dtype", LARGE_MATRIX, ids=str)
@pytest.mark.parametrize("backend", backend_params())
def test_large_kernels(case, fmt, dtype, backend):
    _check_case(case, dtype, fmt, backend)


@pytest.mark.parametrize("backend", backend_params())
def test_non_square_kernel_and_pair_arguments(backend):
    torch.manual_seed(3)
    x = rand(2, 4, 9, 10).contiguous(memory_format=torch.channels_last)
    w = rand(4, 1, 3, 5, scale=0.3)
    b = rand(4, scale=0.1)
    kw = dict(stride=(2, 1), padding=(1, 3), dilation=(1, 2), act="silu")
    _skip_unsupported_cuda(backend, x, w, kw["stride"], kw["dilation"])
    assert_matches_reference(lambda *t: fastconv.depthwise_conv2d(*t, backend=backend, **kw),
                             lambda *t: reference.depthwise_conv2d(*t, **kw), (x, w, b), torch.float32)
    assert_grads_vs_fp64(lambda *t: fastconv.depthwise_conv2d(*t, backend=backend, **kw),
                         lambda *t: reference.depthwise_conv2d(*t, **kw), (x, w, b), torch.float32)


@pytest.mark.parametrize("backend", backend_params())
def test_non_contiguous_input(backend):
    torch.manual_seed(4)
    big = rand(2, 10, 11, 13)
    x = big[:, 1:9:2, 1:, ::2]  # a strided view: neither NCHW- nor NHWC-dense
    w = rand(4, 1, 3, 3, scale=0.3)
    b = rand(4, scale=0.1)
    kw = dict(stride=2, act="relu6")
    out = fastconv.depthwise_conv2d(x, w, b, backend=backend, **kw)
    torch.testing.assert_close(out, reference.depthwise_conv2d(x, w, b, **kw), rtol=1e-5, atol=1e-5)
    assert_grads_vs_fp64(lambda *t: fastconv.depthwise_conv2d(*t, backend=backend, **kw),
                         lambda *t: reference.depthwise_conv2d(*t, **kw), (x, w, b), torch.float32)


def _bits(t):
    return t.detach().contiguous().view({2: torch.int16, 4: torch.int32}[t.element_size()])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("backend", backend_params(with_reference=False))
def test_gradients_bitwise_reproducible(backend, dtype):
    """Two runs, fresh leaves each time: identical bits for grad_x, grad_weight, grad_bias. The shape
    is big enough that the weight gradient really is split into several tiles and reduced."""
    from fastconv.triton import depthwise_conv2d as tk
    torch.manual_seed(5)
    case = (4, 6, 24, 24, 1, 5, 1, 1, "hardswish", True)
    tensors, kw = make(case, dtype, "nhwc")
    n, c, h, w = tensors[0].shape
    assert tk.wgrad_plan(n * h * w, c, 5, 5, True)["tiles"] > 1
    gy = rand(n, c, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)

    def run():
        return _grads(lambda *t: fastconv.depthwise_conv2d(*t, backend=backend, **kw), tensors, gy)

    (y1, g1), (y2, g2) = run(), run()
    assert torch.equal(_bits(y1), _bits(y2))
    for a, b in zip(g1, g2):
        assert torch.equal(_bits(a), _bits(b)), "gradients differ run to run"


@pytest.mark.parametrize("backend", backend_params())
def test_only_some_gradients(backend):
    """x frozen (a first layer) or weight frozen: the other gradients are still right."""
    torch.manual_seed(6)
    x, w, b = rand(1, 4, 7, 7), rand(4, 1, 3, 3, scale=0.3), rand(4, scale=0.1)
    for need in ((False, True, True), (True, False, False), (True, False, True)):
        leaves = [t.detach().requires_grad_(r) for t, r in zip((x, w, b), need)]
        refs = [t.detach().requires_grad_(r) for t, r in zip((x, w, b), need)]
        fastconv.depthwise_conv2d(*leaves, act="relu", backend=backend).square().sum().backward()
        reference.depthwise_conv2d(*refs, act="relu").square().sum().backward()
        for a, r, req in zip(leaves, refs, need):
            assert (a.grad is None) == (not req)
            if req:
                torch.testing.assert_close(a.grad, r.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("backend", backend_params())
def test_autocast_like_pytorch_conv(backend, dtype):
    """Under autocast the op computes in the autocast dtype like F.conv2d, and fp32 parameters get
    fp32 gradients."""
    dev = DEVICE.type
    if dev == "cpu" and dtype == torch.float16 and not torch.amp.is_autocast_available("cpu"):
        pytest.skip("no CPU autocast")
    torch.manual_seed(7)
    x, w, b = rand(2, 4, 8, 8), rand(4, 1, 3, 3, scale=0.3), rand(4, scale=0.1)
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    with torch.autocast(dev, dtype=dtype):
        ours = fastconv.depthwise_conv2d(*leaves, act="relu", backend=backend)
        theirs = F.relu(F.conv2d(x, w, b, 1, 1, 1, 4))
    assert ours.dtype == theirs.dtype == dtype
    torch.testing.assert_close(ours.float(), reference.depthwise_conv2d(x, w, b, act="relu"), rtol=0.05, atol=0.05)
    ours.float().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.float32 for t in leaves)


@pytest.mark.parametrize("backend", backend_params())
def test_opcheck(backend):
    torch.manual_seed(8)
    x = rand(1, 4, 6, 5).contiguous(memory_format=torch.channels_last)
    m, st = (1, [2, 2]) if backend == "cuda" else (2, [2, 1])  # multiplier 2 beyond the CUDA kernel
    w, b = rand(4 * m, 1, 3, 3, scale=0.3), rand(4 * m, scale=0.1)
    args = (x, w, b, st, [1, 1], [1, 1], "hardswish", backend)
    opcheck(torch.ops.fastconv.depthwise_conv2d.default, args, test_utils=OPCHECK_UTILS)
    gy = rand(*torch.ops.fastconv.depthwise_conv2d(*args).shape).contiguous(memory_format=torch.channels_last)
    opcheck(torch.ops.fastconv.depthwise_conv2d_backward.default,
            (gy, x, w, b, st, [1, 1], [1, 1], "hardswish", True, True, backend),
            test_utils=("test_schema", "test_faketensor"))
    opcheck(torch.ops.fastconv.depthwise_conv2d_backward.default,
            (gy, x, w, None, st, [1, 1], [1, 1], "none", False, True, backend),
            test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("backend", backend_params())
def test_compile_fullgraph_forward_backward(backend):
    """One opaque node forward and one backward op: fullgraph compiles (0 graph breaks) and matches eager."""
    torch._dynamo.reset()
    torch.manual_seed(9)
    x, w, b = rand(2, 4, 7, 7), rand(4, 1, 5, 5, scale=0.2), rand(4, scale=0.1)

    def f(x, w, b):
        return (fastconv.depthwise_conv2d(x, w, b, stride=2, act="silu", backend=backend) * 2).sum()

    # aot_eager: dynamo + AOT autograd (fake tensors, the joint graph) without inductor's C++ codegen,
    # which adds nothing for an opaque op and a minute of CI time on two cores.
    cf = torch.compile(f, fullgraph=True, backend="aot_eager" if backend != "reference" else "inductor")
    eager = _grads(f, (x, w, b), torch.tensor(1.0))
    comp = _grads(cf, (x, w, b), torch.tensor(1.0))
    torch.testing.assert_close(comp[0], eager[0])
    for a, e in zip(comp[1], eager[1]):
        torch.testing.assert_close(a, e)
    explain = torch._dynamo.explain(f)(x, w, b)
    assert explain.graph_break_count == 0


def test_padding_default_and_explicit():
    x, w = rand(1, 4, 8, 8), rand(4, 1, 5, 5)
    a = fastconv.depthwise_conv2d(x, w, backend="reference")
    torch.testing.assert_close(a, fastconv.depthwise_conv2d(x, w, padding=2, backend="reference"))
    assert fastconv.depthwise_conv2d(x, w, padding=0).shape[-1] == 4
    assert fastconv.depthwise_conv2d(x, w, dilation=2).shape[-2:] == (8, 8)  # None -> dilation * (k // 2)


def test_cuda_backend_says_why_when_missing():
    ok = fastconv.backends()["cuda"]["available"]
    from fastconv._common import _cuda_has
    if ok and _cuda_has("depthwise_conv2d_cuda"):
        pytest.skip("the CUDA kernel is built here")
    with pytest.raises(RuntimeError, match="backend='cuda' is not available"):
        fastconv.depthwise_conv2d(rand(1, 4, 5, 5), rand(4, 1, 3, 3), backend="cuda")


X = rand(1, 4, 6, 6, device="cpu")
W = rand(4, 1, 3, 3, device="cpu")


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(x=X[0]), ValueError, r"^x must be 4-D"),
    (dict(x=X.int()), TypeError, r"^x must be float32"),
    (dict(weight=rand(3, 1, 3, 3, device="cpu")), ValueError, r"^weight has 3 output channels"),
    (dict(weight=rand(4, 2, 3, 3, device="cpu")), ValueError, r"^weight must be a 4-D depthwise weight"),
    (dict(weight=rand(4, 3, 3, device="cpu")), ValueError, r"^weight must be a 4-D depthwise weight"),
    (dict(weight=W.half()), TypeError, r"^weight has dtype"),
    (dict(bias=rand(5, device="cpu")), ValueError, r"^bias must have shape \(4,\)"),
    (dict(bias=[0.0] * 4), TypeError, r"^bias must be a torch.Tensor"),
    (dict(stride=0), ValueError, r"^stride must be >= 1"),
    (dict(stride=1.5), TypeError, r"^stride must be an int"),
    (dict(padding=(1, 1, 1)), ValueError, r"^padding must be an int or a pair"),
    (dict(padding=-1), ValueError, r"^padding must be >= 0"),
    (dict(dilation=0), ValueError, r"^dilation must be >= 1"),
    (dict(act="mish"), ValueError, r"^act must be one of"),
    (dict(backend="cudnn"), ValueError, r"^backend must be one of"),
    (dict(weight=rand(4, 1, 9, 9, device="cpu"), padding=0), ValueError, r"gives an empty output"),
])
def test_bad_input(kwargs, err, match):
    kw = dict(x=X, weight=W)
    kw.update(kwargs)
    with pytest.raises(err, match=match):
        fastconv.depthwise_conv2d(kw.pop("x"), kw.pop("weight"), **kw)


@pytest.mark.skipif(not HAS_CUDA, reason="device mismatch needs a GPU")
def test_device_mismatch():
    with pytest.raises(RuntimeError, match="weight"):
        fastconv.depthwise_conv2d(rand(1, 4, 5, 5), rand(4, 1, 3, 3, device="cpu"))

