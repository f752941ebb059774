"""Cross-op behaviour: backend selection, availability errors, torch.compile, memory formats."""
import pytest
import torch

import fastconv
from fastconv import _common
from helpers import HAS_CUDA, INTERPRET, assert_matches_reference, backend_params, conv_weight, rand


def _block_inputs():
    x = rand(2, 8, 7, 7)
    return x, conv_weight(8, 1, 3), conv_weight(16, 8, 1)


def test_backends_report():
    b = fastconv.backends()
    assert set(b) == {"reference", "triton", "cuda"}
    assert b["reference"]["available"] is True
    for v in b.values():
        assert isinstance(v["why"], str) and v["why"]
    if not HAS_CUDA:
        assert b["cuda"]["available"] is False


def test_auto_on_cpu_is_reference():
    x = torch.randn(1, 4, 5, 5)
    assert _common.resolve_backend("dwpw_conv2d", "auto", x) == "reference"


def test_env_override(monkeypatch):
    x = torch.randn(1, 4, 5, 5)
    monkeypatch.setenv("FASTCONV_BACKEND", "reference")
    assert _common.resolve_backend("dwpw_conv2d", "auto", x) == "reference"
    monkeypatch.setenv("FASTCONV_BACKEND", "bogus")
    with pytest.raises(ValueError, match="FASTCONV_BACKEND"):
        _common.resolve_backend("dwpw_conv2d", "auto", x)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error without a GPU")
def test_unavailable_backend_says_how_to_get_it():
    x, dw, pw = _block_inputs()
    with pytest.raises(RuntimeError, match="backend='cuda' is not available"):
        fastconv.dwpw_conv2d(x, dw, pw, backend="cuda")
    if not INTERPRET:
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            fastconv.dwpw_conv2d(x, dw, pw, backend="triton")


def test_unknown_backend():
    x, dw, pw = _block_inputs()
    with pytest.raises(ValueError, match="backend"):
        fastconv.dwpw_conv2d(x, dw, pw, backend="cudnn")


def test_non_contiguous_view_input():
    base = rand(2, 8, 9, 9)
    x = base[:, :, 1:8, ::1].transpose(2, 3)  # non-contiguous, not channels_last
    _, dw, pw = _block_inputs()
    out = fastconv.dwpw_conv2d(x, dw, pw, backend="reference")
    ref = fastconv.reference.dwpw_conv2d(x.contiguous(), dw, pw)
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous()


def test_channels_last_preserved_and_empty_batch():
    x, dw, pw = _block_inputs()
    out = fastconv.dwpw_conv2d(x.to(memory_format=torch.channels_last), dw, pw)
    assert out.is_contiguous(memory_format=torch.channels_last)
    empty = fastconv.dwpw_conv2d(x[:0], dw, pw)
    assert empty.shape == (0, 16, 7, 7)


def _all_ops(x, dw, pw, w_exp, dw_e, w_proj, gw):
    y = fastconv.dwpw_conv2d(x, dw, pw, dw_act="relu", pw_act="relu")
    y = fastconv.channel_shuffle(y, 2)
    y = fastconv.group_conv1x1(y, gw, groups=2, shuffle_out=2, act="relu")
    return fastconv.inverted_residual(y, w_exp, dw_e, w_proj, residual=True)


def test_compile_fullgraph_no_graph_breaks():
    torch._dynamo.reset()
    x, dw, pw = _block_inputs()
    args = (x, dw, pw, conv_weight(32, 16, 1), conv_weight(32, 1, 3), conv_weight(16, 32, 1), conv_weight(16, 8, 1))
    expected = _all_ops(*args)
    compiled = torch.compile(_all_ops, fullgraph=True)  # inductor
    torch.testing.assert_close(compiled(*args), expected)
    explain = torch._dynamo.explain(_all_ops)(*args)
    assert explain.graph_break_count == 0


def test_compile_training_step():
    torch._dynamo.reset()
    x, dw, pw = _block_inputs()
    dw.requires_grad_()

    def step(x, dw, pw):
        return fastconv.dwpw_conv2d(x, dw, pw, dw_act="relu6").square().mean()

    loss = torch.compile(step, fullgraph=True, backend="aot_eager")(x, dw, pw)
    loss.backward()
    dw2 = dw.detach().clone().requires_grad_()
    step(x, dw2, pw).backward()
    torch.testing.assert_close(dw.grad, dw2.grad)


def test_tuned_table_key_names_the_block(monkeypatch):
    """Two blocks with the same input but different weights get different tuned-table rows, and
    auto's choice and key are recorded for the benchmark."""
    from fastconv import tuning
    x = torch.randn(2, 8, 7, 7).to(memory_format=torch.channels_last)
    k64, k128 = tuning.shape_key(x, (64, 3, 1)), tuning.shape_key(x, (128, 3, 1))
    assert k64 != k128 and k64.startswith("(2, 8, 7, 7)|float32|nhwc")
    seen = {}

    def fake_lookup(op, device, key):
        seen["key"] = key
        return "triton"
    monkeypatch.setattr(tuning, "lookup", fake_lookup)
    monkeypatch.setattr(_common, "_available", lambda backend, kernel: True)
    assert _common._auto_cuda("dwpw_conv2d", x, "dwpw_conv2d_cuda", (64, 3, 1)) == "triton"
    assert seen["key"] == k64 and tuning.LAST["dwpw_conv2d"] == (k64, "triton")


def _act_case(op, act, dtype):
    """(fast(backend), ref, tensors) for one op with every activation slot set to ``act``."""
    x = rand(2, 8, 7, 7, dtype=dtype, scale=2.0)  # wide enough to reach both GELU tails
    w = lambda *s: conv_weight(*s, dtype=dtype)  # noqa: E731
    b = lambda n: rand(n, dtype=dtype, scale=0.3)  # noqa: E731
    if op == "dwpw_conv2d":
        kw = dict(dw_act=act, pw_act=act)
        tensors = (x, w(8, 1, 3), w(16, 8, 1), b(8), b(16))
    elif op == "group_conv1x1":
        kw = dict(groups=2, shuffle_out=2, act=act)
        tensors = (x, w(16, 4, 1), b(16))
    else:  # inverted_residual with SE (two-pass Triton path) or without (one fused kernel)
        se = (w(4, 16, 1), b(4), w(16, 4, 1), b(16)) if op == "inverted_residual+se" else None
        kw = dict(act=act, se=se, se_act=act, residual=True)
        tensors = (x, w(16, 8, 1), w(16, 1, 3), w(8, 16, 1), b(16), b(16), b(8))
        op = "inverted_residual"
    fast = lambda backend: lambda *t: getattr(fastconv, op)(*t, **kw, backend=backend)  # noqa: E731
    ref = lambda *t: getattr(fastconv.reference, op)(*t, **{k: (tuple(s.to(t[0].dtype) for s in v)  # noqa: E731
                                                               if k == "se" and v else v) for k, v in kw.items()})
    return fast, ref, tensors


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("op", ["dwpw_conv2d", "group_conv1x1", "inverted_residual", "inverted_residual+se"])
def test_gelu_acts_match_fp64(op, act, dtype, backend):
    """The GELU codes (7: erf, 8: tanh form) in every backend's activation table, against fp64."""
    torch.manual_seed(0)
    fast, ref, tensors = _act_case(op, act, dtype)
    assert_matches_reference(fast(backend), ref, tensors, dtype, f"{op} {act} {backend}")
