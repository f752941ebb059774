"""Bad input: every row of the table in docs/RELIABILITY.md is one test here (same id).

A bad call must raise ValueError / TypeError / RuntimeError whose message names the offending
argument, before any kernel runs. Edge cases that are *valid* (empty batch, identity shuffle,
fp64, NaN/Inf values) are checked for the documented result on every runnable backend.
"""
from __future__ import annotations

import pytest
import torch

import fastconv
from helpers import DEVICE, HAS_CUDA
from sanitize_driver import OPS, build, runnable, standard_cfgs

F32 = torch.float32


def _t(*shape, dtype=F32, device="cpu"):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)


# Small valid arguments (CPU, fp32) that each row breaks in one place.
X = _t(2, 4, 6, 6)
DW = _t(4, 1, 3, 3)
PW = _t(8, 4, 1, 1)


def dwpw(x=X, dw=DW, pw=PW, *a, **kw):
    kw.setdefault("backend", "reference")
    return fastconv.dwpw_conv2d(x, dw, pw, *a, **kw)


def ir(x=X, ew=None, dw=None, pw=None, **kw):
    ew = _t(12, 4, 1, 1) if ew is None else ew
    dw = _t(12, 1, 3, 3) if dw is None else dw
    pw = _t(4, 12, 1, 1) if pw is None else pw
    kw.setdefault("backend", "reference")
    return fastconv.inverted_residual(x, ew, dw, pw, **kw)


def gconv(x=X, w=None, **kw):
    w = _t(6, 2, 1, 1) if w is None else w
    kw.setdefault("backend", "reference")
    kw.setdefault("groups", 2)
    return fastconv.group_conv1x1(x, w, **kw)


def v1(x=X, w1=None, dw=None, w2=None, **kw):
    w1 = _t(4, 2, 1, 1) if w1 is None else w1
    dw = _t(4, 1, 3, 3) if dw is None else dw
    w2 = _t(4, 2, 1, 1) if w2 is None else w2
    kw.setdefault("backend", "reference")
    kw.setdefault("groups", 2)
    return fastconv.shufflenet_v1_unit(x, w1, None, dw, None, w2, None, **kw)


def branch2(cin=2, b=2, dwk=3):
    return (_t(b, cin, 1, 1), None, _t(b, 1, dwk, dwk), None, _t(b, b, 1, 1), None)


def v2(x=X, b2=None, b1=None, **kw):
    kw.setdefault("backend", "reference")
    return fastconv.shufflenet_v2_unit(x, branch2() if b2 is None else b2, b1, **kw)


# (id, call, exception type(s), regex the message must match: it names the argument)
ROWS = [
    # --- x ---
    ("x-not-tensor", lambda: dwpw(x=X.tolist()), TypeError, r"^x must be a torch.Tensor"),
    ("x-rank-3", lambda: dwpw(x=X[0]), ValueError, r"^x must be 4-D"),
    ("x-rank-5", lambda: dwpw(x=X[None]), ValueError, r"^x must be 4-D"),
    ("x-int-dtype", lambda: dwpw(x=X.to(torch.int32)), TypeError, r"^x must be float32"),
    ("x-bool-dtype", lambda: fastconv.channel_shuffle(X > 0, 2), TypeError, r"^x must be float32"),
    ("x-complex-dtype", lambda: fastconv.channel_shuffle(X.to(torch.complex64), 2), TypeError, r"^x must be float32"),
    ("x-zero-channels", lambda: dwpw(x=X[:, :0]), ValueError, r"^x has an empty channel or spatial dim"),
    ("x-zero-height", lambda: fastconv.channel_shuffle(X[:, :, :0], 2), ValueError, r"^x has an empty"),
    ("x-zero-width", lambda: gconv(x=X[..., :0]), ValueError, r"^x has an empty"),
    ("output-empty", lambda: dwpw(x=X[:, :, :2, :2], dw=_t(4, 1, 7, 7), padding=0), ValueError,
     r"dwpw_conv2d: a 7x7 conv .* gives an empty output"),
    # --- weights / biases ---
    ("weight-not-tensor", lambda: dwpw(dw=DW.tolist()), ValueError, r"^dw_weight must be a 4-D tensor"),
    ("weight-rank", lambda: dwpw(dw=DW[:, 0]), ValueError, r"^dw_weight must be a 4-D tensor"),
    ("dw-channel-mismatch", lambda: dwpw(dw=_t(5, 1, 3, 3)), ValueError, r"^dw_weight must have shape \(4, 1, 3, 3\)"),
    ("pw-channel-mismatch", lambda: dwpw(pw=_t(8, 5, 1, 1)), ValueError, r"^pw_weight must have shape"),
    ("pw-not-1x1", lambda: dwpw(pw=_t(8, 4, 3, 3)), ValueError, r"^pw_weight must be a 4-D 1x1 conv weight"),
    ("ir-expand-channel-mismatch", lambda: ir(ew=_t(12, 3, 1, 1)), ValueError, r"^expand_weight must have shape"),
    ("ir-project-channel-mismatch", lambda: ir(pw=_t(4, 11, 1, 1)), ValueError, r"^project_weight must have shape"),
    ("bias-shape", lambda: dwpw(dw_bias=_t(5)), ValueError, r"^dw_bias must have shape \(4,\)"),
    ("bias-not-tensor", lambda: dwpw(pw_bias=1.0), TypeError, r"^pw_bias must be a torch.Tensor or None"),
    ("weight-dtype-mismatch", lambda: dwpw(dw=DW.half()), TypeError, r"^dw_weight has dtype torch.float16"),
    ("bias-dtype-mismatch", lambda: dwpw(pw_bias=_t(8, dtype=torch.bfloat16)), TypeError, r"^pw_bias has dtype"),
    ("residual-dtype-mismatch", lambda: dwpw(residual=_t(2, 8, 6, 6, dtype=torch.float64)), TypeError,
     r"^residual has dtype"),
    ("kernel-even", lambda: dwpw(dw=_t(4, 1, 2, 2)), ValueError, r"^dw_weight must be square with an odd kernel"),
    ("kernel-non-square", lambda: dwpw(dw=_t(4, 1, 3, 5)), ValueError, r"^dw_weight must be square"),
    ("v1-kernel-not-3x3", lambda: v1(dw=_t(4, 1, 5, 5)), ValueError, r"^dw_weight must be 3x3"),
    ("v2-kernel-not-3x3", lambda: v2(b2=branch2(dwk=5)), ValueError, r"^branch2\[2\] \(dw_w\) must be 3x3"),
    # --- stride / padding / dilation ---
    ("stride-zero", lambda: dwpw(stride=0), ValueError, r"^stride must be >= 1, got 0"),
    ("stride-negative", lambda: ir(stride=-1), ValueError, r"^stride must be >= 1, got -1"),
    ("stride-float", lambda: dwpw(stride=2.0), TypeError, r"^stride must be an int"),
    ("stride-bool", lambda: dwpw(stride=True), TypeError, r"^stride must be an int"),
    ("unit-stride-3", lambda: v1(stride=3), ValueError, r"^stride must be 1 or 2, got 3"),
    ("unit-stride-0", lambda: v2(stride=0), ValueError, r"^stride must be >= 1, got 0"),
    ("unit-stride-bool", lambda: v1(stride=True), TypeError, r"^stride must be an int"),
    ("unit-stride-float", lambda: v2(stride=1.0), TypeError, r"^stride must be an int"),
    ("dilation-zero", lambda: dwpw(dilation=0), ValueError, r"^dilation must be >= 1"),
    ("padding-negative", lambda: dwpw(padding=-1), ValueError, r"^padding must be >= 0"),
    ("padding-float", lambda: ir(padding=1.0), TypeError, r"^padding must be an int"),
    # --- activations / backends ---
    ("act-unknown", lambda: dwpw(dw_act="mish"), ValueError, r"^dw_act must be one of"),
    ("act-not-str", lambda: dwpw(pw_act=None), ValueError, r"^pw_act must be one of"),
    ("act-gate-as-act", lambda: gconv(act="sigmoid"), ValueError, r"^act must be one of"),
    ("se-gate-unknown", lambda: ir(se_gate="relu"), ValueError, r"^se_gate must be one of"),
    ("se-act-unknown", lambda: ir(se_act="tanh"), ValueError, r"^se_act must be one of"),
    ("backend-unknown", lambda: dwpw(backend="cudnn"), ValueError, r"^backend must be one of"),
    ("backend-not-str", lambda: fastconv.channel_shuffle(X, 2, backend=None), ValueError, r"^backend must be one of"),
    ("backend-cuda-cpu-tensor", lambda: dwpw(backend="cuda"), RuntimeError,
     r"^fastconv.dwpw_conv2d: backend='cuda' (is not available|needs CUDA tensors)"),
    # --- residual ---
    ("residual-shape", lambda: dwpw(residual=_t(2, 8, 5, 6)), ValueError, r"^residual must have shape \(2, 8, 6, 6\)"),
    ("residual-stride-2", lambda: dwpw(stride=2, residual=_t(2, 8, 6, 6)), ValueError,
     r"^residual must have shape \(2, 8, 3, 3\)"),
    ("ir-residual-stride-2", lambda: ir(stride=2, residual=True), ValueError, r"^residual=True needs stride 1"),
    ("ir-residual-channels", lambda: ir(pw=_t(6, 12, 1, 1), residual=True), ValueError,
     r"^residual=True needs project_weight's 6 output channels"),
    ("ir-residual-padding", lambda: ir(padding=0, residual=True), ValueError, r"^residual=True .*padding=0"),
    ("ir-residual-not-bool", lambda: ir(residual=1), TypeError, r"^residual must be a bool"),
    ("ir-expand-bias-without-weight", lambda: fastconv.inverted_residual(
        X, None, DW, _t(4, 4, 1, 1), _t(4), backend="reference"), ValueError, r"^expand_bias is given"),
    ("ir-se-not-tuple", lambda: ir(se=_t(3, 12, 1, 1)), ValueError, r"^se must be a tuple"),
    ("ir-se-channels", lambda: ir(se=(_t(3, 11, 1, 1), None, _t(12, 3, 1, 1), None)), ValueError,
     r"^se\[0\] \(w1\) must have shape"),
    # --- groups / shuffles ---
    ("groups-not-dividing", lambda: fastconv.channel_shuffle(X, 3), ValueError, r"^groups=3 does not divide the 4 channels"),
    ("groups-zero", lambda: fastconv.channel_shuffle(X, 0), ValueError, r"^groups must be >= 1"),
    ("groups-negative", lambda: gconv(groups=-2), ValueError, r"^groups must be >= 1"),
    ("groups-float", lambda: fastconv.channel_shuffle(X, 2.0), TypeError, r"^groups must be an int"),
    ("gconv-groups-in-channels", lambda: gconv(w=_t(6, 1, 1, 1), groups=3), ValueError,
     r"^groups=3 does not divide the 4 input channels of weight"),
    ("gconv-groups-out-channels", lambda: gconv(w=_t(5, 2, 1, 1)), ValueError,
     r"^groups=2 does not divide the 5 output channels of weight"),
    ("gconv-shuffle-in-not-dividing", lambda: gconv(shuffle_in=3), ValueError, r"^shuffle_in=3 does not divide"),
    ("gconv-shuffle-out-zero", lambda: gconv(shuffle_out=0), ValueError, r"^shuffle_out must be >= 1"),
    ("v1-groups-mid", lambda: v1(w1=_t(4, 4, 1, 1), first_groups=1, groups=3), ValueError,
     r"^groups=3 does not divide w1's 4 output channels"),
    ("v1-stride1-channels", lambda: v1(w2=_t(6, 2, 1, 1)), ValueError, r"^stride 1 adds x: w2's 6 output channels"),
    ("v1-first-groups-zero", lambda: v1(first_groups=0), ValueError, r"^first_groups must be >= 1"),
    ("v2-odd-channels", lambda: v2(x=_t(2, 5, 6, 6)), ValueError, r"^stride 1 splits x's channels in two: C=5"),
    ("v2-branch1-at-stride-1", lambda: v2(b1=(DW, None, _t(2, 4, 1, 1), None)), ValueError,
     r"^branch1 is only used at stride 2"),
    ("v2-branch1-missing", lambda: v2(b2=branch2(cin=4), stride=2), ValueError, r"^stride 2 needs branch1"),
    ("v2-branch2-length", lambda: v2(b2=branch2()[:5]), ValueError, r"^branch2 must be a tuple"),
    ("v2-branch2-not-tuple", lambda: v2(b2=PW), ValueError, r"^branch2 must be a tuple"),
    ("v2-pw2-shape", lambda: v2(b2=branch2()[:4] + (_t(2, 3, 1, 1), None)), ValueError,
     r"^branch2\[4\] \(pw2_w\) must have shape \(2, 2, 1, 1\)"),
]


def _row(r):
    return r if isinstance(r, type(pytest.param(0))) else pytest.param(*r, id=r[0])


@pytest.mark.parametrize("name,call,exc,msg", [_row(r) for r in ROWS])
def test_bad_input(name, call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_rows_have_unique_ids():
    ids = [r.values[0] if hasattr(r, "values") else r[0] for r in ROWS]
    assert len(ids) == len(set(ids))


def test_backend_triton_unavailable_for_cpu_tensors(monkeypatch):
    """Without TRITON_INTERPRET=1, backend='triton' on CPU tensors cannot run: a clear error,
    whether triton is missing, has no GPU, or just needs CUDA tensors."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match=r"^fastconv.channel_shuffle: backend='triton' (is not available|needs CUDA)"):
        fastconv.channel_shuffle(X, 2, backend="triton")


def test_fastconv_backend_env_unknown(monkeypatch):
    monkeypatch.setenv("FASTCONV_BACKEND", "fast")
    with pytest.raises(ValueError, match=r"^FASTCONV_BACKEND must be one of"):
        fastconv.channel_shuffle(X, 2)  # backend="auto" reads the variable


def test_float64_is_accepted():
    """fp64 is outside the fast dtypes but accepted (gradcheck); the reference computes it."""
    out = dwpw(x=X.double(), dw=DW.double(), pw=PW.double())
    assert out.dtype == torch.float64 and out.shape == (2, 8, 6, 6)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["reference", "triton", "cuda"])
def test_device_mismatch(backend):
    with pytest.raises(RuntimeError, match=r"^dw_weight is on cpu but the input is on cuda"):
        dwpw(x=X.cuda(), pw=PW.cuda(), backend=backend)
    with pytest.raises(RuntimeError, match=r"^residual is on cpu"):
        dwpw(x=X.cuda(), dw=DW.cuda(), pw=PW.cuda(), residual=_t(2, 8, 6, 6), backend=backend)


# ---------------------------------------------------------------------------------------------
# valid edge cases, on every runnable backend
# ---------------------------------------------------------------------------------------------

def _op_backend_params(xfail: dict = None):
    out = []
    for op in OPS:
        for be in ("reference", "triton", "cuda"):
            ok, why = runnable(op, be, DEVICE)
            marks = [] if ok else [pytest.mark.skip(reason=why)]
            if ok and xfail and (op, be) in xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=xfail[(op, be)]))
            out.append(pytest.param(op, be, id=f"{op}-{be}", marks=marks))
    return out


@pytest.mark.parametrize("op,backend", _op_backend_params())
def test_empty_batch(op, backend):
    """N=0 is valid: an empty output of the right shape (and empty gradients), no kernel launch needed."""
    case = build(op, dict(standard_cfgs(op)[0], n=0), F32, DEVICE)
    want = case.ref(case.leaves)
    leaves = [None if t is None else t.detach().requires_grad_(True) for t in case.leaves]
    out = case.run(backend, leaves)
    assert out.shape == want.shape and out.shape[0] == 0 and out.dtype == F32
    live = [t for t in leaves if t is not None]
    grads = torch.autograd.grad(out, live, torch.zeros_like(out), allow_unused=True)
    for g, t in zip(grads, live):
        assert g is None or g.shape == t.shape
        assert g is None or t.shape[0] != 0 or g.numel() == 0


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("backend", ["reference", "triton", "cuda"])
def test_channel_shuffle_identity(groups, backend):
    """groups=1 and groups=C are identity permutations; forward and backward must still work and
    return new tensors (a custom op may not return a view of its input)."""
    ok, why = runnable("channel_shuffle", backend, DEVICE)
    if not ok:
        pytest.skip(why)
    x0 = X.to(DEVICE)
    x = x0.detach().clone().requires_grad_(True)
    out = fastconv.channel_shuffle(x, groups, backend=backend)
    assert torch.equal(out, x0) and out.data_ptr() != x.data_ptr()
    (g,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert torch.equal(g, torch.ones_like(x0))


def _poisoned_case(op, backend, value):
    case = build(op, standard_cfgs(op)[0], F32, DEVICE)
    x = case.leaves[0].detach().clone()
    x[0, x.shape[1] // 2, x.shape[2] // 2, x.shape[3] // 2] = value
    case.leaves[0] = x
    return case


def _masks(t):
    return t.isnan(), t == float("inf"), t == float("-inf")


@pytest.mark.parametrize("op,backend", _op_backend_params())
def test_nan_propagates(op, backend):
    """NaN in x -> NaN exactly where the reference (the math) puts it: not swallowed by an
    activation's max() or a masked load, and not leaked into other samples."""
    case = _poisoned_case(op, backend, float("nan"))
    want = case.ref([None if t is None else t.double() for t in case.leaves])
    got = case.run(backend)
    assert want.isnan().any()
    assert not want[1:].isnan().any()  # only sample 0 was poisoned
    assert torch.equal(got.isnan(), want.isnan()), (
        f"{op}/{backend}: NaN at {got.isnan().sum().item()} positions, the reference at {want.isnan().sum().item()}")


def _inf_params():
    out = []
    for p in _op_backend_params():
        for sign in (1.0, -1.0):
            out.append(pytest.param(*p.values, sign, id=f"{p.id}-{'+' if sign > 0 else '-'}inf", marks=p.marks))
    return out


@pytest.mark.parametrize("op,backend,sign", _inf_params())
def test_inf_propagates(op, backend, sign):
    """+-Inf in x -> the same NaN / +Inf / -Inf positions as the reference (inf - inf inside a
    sum is NaN, which a relu must then keep)."""
    case = _poisoned_case(op, backend, sign * float("inf"))
    want = case.ref([None if t is None else t.double() for t in case.leaves])
    got = case.run(backend)
    for name, g, w in zip(("nan", "+inf", "-inf"), _masks(got), _masks(want)):
        assert torch.equal(g, w), f"{op}/{backend}: {name} at {g.sum().item()} positions, reference {w.sum().item()}"
