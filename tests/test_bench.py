"""Fast CPU tests of the benchmark suite's own logic: catalogue, formulas, proxies, CSV, tuner."""
from __future__ import annotations

import csv
import os
from collections import Counter

import pytest
import torch
from torch import nn

from bench import catalogue as cat
from bench.common import OPS, fold
from bench.metrics import block_metrics

pytest.importorskip("torchvision")

HAVE_FC_MODELS = not cat.available_models()[1]


def _walk(name):
    return cat._walk_cached(name)


def _count(name):
    return Counter(op for op, _, _ in _walk(name))


# ---------------------------------------------------------------------------------------------
# catalogue: block counts per model (known architectures) and provenance
# ---------------------------------------------------------------------------------------------

def test_torchvision_block_counts():
    assert _count("mobilenet_v2") == {"dwpw_conv2d": 1, "inverted_residual": 16}
    assert _count("mobilenet_v3_large") == {"inverted_residual": 15}
    assert _count("mobilenet_v3_small") == {"inverted_residual": 11}
    for w in ("x0_5", "x1_0", "x1_5", "x2_0"):
        assert _count(f"shufflenet_v2_{w}") == {"shufflenet_v2_unit": 16, "channel_shuffle": 16}


@pytest.mark.skipif(not HAVE_FC_MODELS, reason="fastconv.models not importable")
def test_fastconv_model_block_counts():
    for wm in ("1.0", "0.5"):
        assert _count(f"mobilenet_v1_{wm}") == {"dwpw_conv2d": 13}
    assert _count("shufflenet_v1_g1") == {"shufflenet_v1_unit": 16, "group_conv1x1": 32}
    for g in (2, 3, 4, 8):
        assert _count(f"shufflenet_v1_g{g}") == {"shufflenet_v1_unit": 16, "group_conv1x1": 32, "channel_shuffle": 16}


def test_block_configs_read_from_modules():
    v2 = [(op, src, cfg) for op, src, cfg in _walk("mobilenet_v2")]
    op, src, cfg = v2[0]  # the t=1 block: dw 3x3 32ch + ReLU6, pw 32->16, no activation
    assert (op, src.index, src.path) == ("dwpw_conv2d", 0, "features.1")
    assert (cfg["C"], cfg["H"], cfg["K"], cfg["act"], cfg["out_act"]) == (32, 112, 16, "relu6", "none")
    op, src, cfg = v2[1]
    assert op == "inverted_residual"
    assert (cfg["C"], cfg["hidden"], cfg["K"], cfg["stride"], cfg["H"], cfg["Ho"]) == (16, 96, 24, 2, 112, 56)
    assert cfg["expand"] and not cfg["residual"] and cfg["se"] == 0
    v3s = _walk("mobilenet_v3_small")
    _, _, c0 = v3s[0]  # expand ratio 1, SE, stride 2, ReLU
    assert (c0["expand"], c0["hidden"], c0["se"], c0["stride"], c0["act"], c0["se_gate"]) == (False, 16, 8, 2, "relu",
                                                                                            "hardsigmoid")
    _, _, c3 = v3s[3]  # 24 -> 96 -> 40, k5 s2, SE 24, hardswish
    assert (c3["kernel"], c3["hidden"], c3["se"], c3["act"], c3["K"]) == (5, 96, 24, "hardswish", 40)
    snv2 = _walk("shufflenet_v2_x1_0")
    op, _, c = snv2[0]
    assert op == "shufflenet_v2_unit" and (c["C"], c["hidden"], c["K"], c["stride"], c["Ho"]) == (24, 58, 116, 2, 28)
    op, src, c = snv2[1]
    assert op == "channel_shuffle" and src.part == "shuffle" and (c["C"], c["groups"], c["H"]) == (116, 2, 28)


def test_dedup_provenance():
    entries = cat.build_catalogue(models=["mobilenet_v2", "shufflenet_v2_x1_0", "shufflenet_v2_x0_5"])
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))
    # every block of every model stands in exactly one fused-op entry; the training op
    # (depthwise_conv2d) catalogues each depthwise conv of those blocks again, once
    srcs = [(s.model, s.index, s.part) for e in entries if e.op != "depthwise_conv2d" for s in e.sources]
    assert len(srcs) == len(set(srcs))
    dws = [(s.model, s.index, s.part) for e in entries if e.op == "depthwise_conv2d" for s in e.sources]
    assert dws and len(dws) == len(set(dws))
    total = sum(len(_walk(m)) for m in ("mobilenet_v2", "shufflenet_v2_x1_0", "shufflenet_v2_x0_5"))
    assert len(srcs) == total
    # MobileNetV2's three 64 -> 384 -> 64 blocks (features 8, 9, 10) share one entry
    e = next(e for e in entries if e.op == "inverted_residual" and e.cfg["C"] == 64 and e.cfg["K"] == 64)
    assert [(s.model, s.index, s.path) for s in e.sources] == [
        ("mobilenet_v2", 7, "features.8"), ("mobilenet_v2", 8, "features.9"), ("mobilenet_v2", 9, "features.10")]
    assert e.provenance() == "mobilenet_v2:7;mobilenet_v2:8;mobilenet_v2:9"
    # all entries of an entry share its config
    for e in entries:
        if e.op == "depthwise_conv2d":  # its sources are single convs, not _walk's blocks
            continue
        for s in e.sources:
            assert any(cfg == e.cfg and op == e.op for op, src, cfg in _walk(s.model) if src == s)


def test_filters():
    es = cat.build_catalogue(families=["shufflenet_v2"], ops=["channel_shuffle"])
    assert es and all(e.op == "channel_shuffle" and e.family == "shufflenet_v2" for e in es)
    with pytest.raises(ValueError):
        cat.build_catalogue(ops=["nope"])


# ---------------------------------------------------------------------------------------------
# formulas
# ---------------------------------------------------------------------------------------------

def _entry(model, index, part=""):
    op, src, cfg = next((op, s, c) for op, s, c in _walk(model) if s.index == index and s.part == part)
    return cat.Entry(op, cfg, [src])


def test_flops_bytes_hand_checked_inverted_residual():
    e = _entry("mobilenet_v2", 1)  # 16 -> 96 -> 24, 3x3 stride 2, 112x112 -> 56x56
    macs = 16 * 96 * 112 * 112 + 9 * 96 * 56 * 56 + 96 * 24 * 56 * 56
    assert macs == 29_202_432
    params = (96 * 16 + 96) + (96 * 9 + 96) + (24 * 96 + 24)
    m = block_metrics(e, 1, 2, "fwd")
    assert (m.macs, m.flops, m.params) == (macs, 2 * macs, params)
    assert m.bytes == (16 * 112 * 112 + 24 * 56 * 56 + params) * 2
    m8 = block_metrics(e, 8, 4, "fwdbwd")
    assert m8.flops == 3 * 2 * 8 * macs
    assert m8.bytes == (3 * 8 * 16 * 112 * 112 + 2 * 8 * 24 * 56 * 56 + 3 * params) * 4


def test_flops_hand_checked_shufflenet_v2_stride2():
    e = _entry("shufflenet_v2_x1_0", 0)  # 24 -> 116 (B = 58), 56 -> 28
    macs = (24 * 58 * 56 * 56 + 9 * 58 * 28 * 28 + 58 * 58 * 28 * 28) + (9 * 24 * 28 * 28 + 24 * 58 * 28 * 28)
    assert block_metrics(e, 1, 4, "fwd").macs == macs
    sh = _entry("shufflenet_v2_x1_0", 0, "shuffle")
    m = block_metrics(sh, 2, 2, "fwd")
    assert (m.macs, m.params, m.bytes) == (0, 0, 2 * (2 * 116 * 28 * 28) * 2)


def test_fold_matches_conv_bn():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8)
    cat.randomize_bn(nn.Sequential(conv, bn), 3)
    w, b = fold(conv, bn)
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    ref = nn.Sequential(conv, bn).double().eval()(x)
    out = torch.nn.functional.conv2d(x, w, b, padding=1, groups=8)
    assert torch.allclose(out, ref, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# channel-scaled proxies are valid op configs
# ---------------------------------------------------------------------------------------------

def test_proxies_are_valid_configs():
    from bench.providers import make_case, op_module
    entries = cat.build_catalogue()
    for e in entries:
        s = cat.channel_scale(e, 32)
        cfg = cat.scaled_cfg(e, s)
        assert max(cfg["C"], cfg["K"], cfg["hidden"]) <= 32 + 8 * max(cfg["groups"], cfg["first_groups"]) or s == 1
        case = make_case(e, 1, torch.float32, "channels_last", "fwd", torch.device("cpu"), hw=(4, 4), cfg=cfg)
        out = op_module(e.op).fast(cfg, case.x, *case.params_fast, backend="reference")  # runs the op's checks
        assert torch.isfinite(out).all(), e.label


# ---------------------------------------------------------------------------------------------
# runner output and tuner
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def pinned_interpret(monkeypatch):
    """bench.run sets TRITON_INTERPRET=1 when there is no GPU; keep that from leaking into later tests."""
    monkeypatch.setenv("TRITON_INTERPRET", os.environ.get("TRITON_INTERPRET", "0"))


def test_run_writes_csv_md(tmp_path, pinned_interpret):
    from bench import run
    # on a GPU, fastconv_auto would test the kernels rather than the harness: keep to the reference there
    provs = ["eager", "eager_folded", "fastconv_auto" if not torch.cuda.is_available() else "eager"]
    rc = run.main(["--family", "shufflenet_v2", "--op", "channel_shuffle", "shufflenet_v2_unit", "--limit", "1",
                   "--dtype", "fp32", "--batch", "1", "--layout", "channels_last", "--mode", "fwd",
                   "--provider", *dict.fromkeys(provs), "--out", str(tmp_path), "--no-plots", "--strict"])
    assert rc == 0
    with open(tmp_path / "blocks.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == run.COLUMNS
        rows = list(reader)
    assert len(rows) == 2 * len(set(provs))
    assert {r["provider"] for r in rows} == set(provs)
    for r in rows:
        assert r["status"] in ("ok", "skipped"), r
        assert r["device"] and r["torch"] and r["git_sha"] and r["timestamp"]
    folded = [r for r in rows if r["provider"] == "eager_folded" and r["op"] == "shufflenet_v2_unit"][0]
    assert folded["status"] == "ok" and float(folded["ms_median"]) > 0 and float(folded["speedup_vs_eager"]) > 0
    assert float(folded["floor_ms"]) > 0 and folded["shape_key"] == ""  # set by the op's own auto lookup, on GPU only
    shuffle_folded = [r for r in rows if r["provider"] == "eager_folded" and r["op"] == "channel_shuffle"][0]
    assert shuffle_folded["status"] == "skipped"
    assert (tmp_path / "summary.md").read_text().startswith("# fastconv block benchmark")


def test_speedups_and_failures_not_hidden():
    from bench.run import _speedups
    rows = [dict(batch=1, provider=p, ms_median=t, status=s) for p, t, s in
            [("eager", 4.0, "ok"), ("eager_folded", 2.0, "ok"), ("compile", "", "skipped"),
             ("fastconv_cuda", 1.0, "ok"), ("fastconv_triton", 0.5, "FAIL")]]
    for r in rows:
        r.update({k: "" for k in ("speedup_vs_eager", "speedup_vs_eager_folded", "speedup_vs_compile",
                                  "best_baseline", "speedup_vs_best_baseline")})
    _speedups(rows)
    cu = rows[3]
    assert (cu["speedup_vs_eager"], cu["speedup_vs_eager_folded"], cu["best_baseline"],
            cu["speedup_vs_best_baseline"]) == (4.0, 2.0, "eager_folded", 2.0)
    assert rows[4]["speedup_vs_best_baseline"] == ""  # a failing backend gets no speedup


def test_tune_picks_fastest_correct_backend():
    from bench.tune import choose
    base = dict(device_key="nvidia_h100", op="dwpw_conv2d", mode="fwd", timing="cuda_events")
    rows = [dict(base, provider="fastconv_cuda", status="ok", ms_median="2.0", shape_key="A"),
            dict(base, provider="fastconv_triton", status="ok", ms_median="1.0", shape_key="A"),
            dict(base, provider="fastconv_cuda", status="ok", ms_median="1.0", shape_key="B"),
            dict(base, provider="fastconv_triton", status="FAIL", ms_median="0.1", shape_key="B"),
            dict(base, provider="eager", status="ok", ms_median="0.01", shape_key="B"),
            dict(base, provider="fastconv_triton", status="ok", ms_median="0.1", shape_key="C", timing="cpu_perf_counter")]
    assert choose(rows) == {"nvidia_h100": {"dwpw_conv2d": {"A": "triton", "B": "cuda"}}}


def test_every_op_has_a_bench_module():
    from bench.providers import op_module
    for op in OPS:
        m = op_module(op)
        for fn in ("eager_module", "folded_params", "reference", "fast", "param_shapes"):
            assert callable(getattr(m, fn)), (op, fn)


def test_wrong_backend_is_reported_and_strict_fails(tmp_path, monkeypatch, pinned_interpret):
    from bench import run
    from bench.providers import op_module
    mod = op_module("channel_shuffle")
    real = mod.fast
    monkeypatch.setattr(mod, "fast", lambda cfg, x, backend: real(cfg, x, backend=backend).flip(1))
    args = ["--family", "shufflenet_v2", "--op", "channel_shuffle", "--limit", "1", "--dtype", "fp32", "--batch", "1",
            "--layout", "nchw", "--mode", "fwd", "--provider", "eager", "fastconv_auto", "--out", str(tmp_path),
            "--no-plots"]
    assert run.main(args) == 0
    assert run.main(args + ["--strict"]) == 1
    with open(tmp_path / "blocks.csv", newline="") as f:
        rows = {r["provider"]: r for r in csv.DictReader(f)}
    assert rows["fastconv_auto"]["status"] == "FAIL" and "max error" in rows["fastconv_auto"]["reason"]
    assert rows["eager"]["status"] == "ok"
    assert "FAILED" in (tmp_path / "summary.md").read_text()


def test_accuracy_rules():
    from bench.common import compare, compare_grad
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(4, 16, 32, 32, generator=g, dtype=torch.float64)
    theirs = truth.half()
    assert compare(truth.half(), theirs, truth, torch.float16).ok
    bad = truth.half().clone()
    bad[0, 0, 0, 0] += 1.0
    assert not compare(bad, theirs, truth, torch.float16).ok
    # gradients: a few kink flips pass, a gradient that is off by a constant factor does not
    flipped = truth.clone()
    flipped.view(-1)[::2000] = 0  # 0.05% of the elements: ~2% relative L2
    assert compare_grad(flipped.half(), theirs, truth, torch.float16).ok
    assert not compare_grad((truth * 0.7).half(), theirs, truth, torch.float16).ok
    assert not compare_grad(truth.half()[:, :8], theirs, truth, torch.float16).ok


def test_tune_shared_shape_key_uses_total_time():
    from bench.tune import choose
    base = dict(device_key="d", op="inverted_residual", mode="fwd", timing="cuda_events", status="ok", shape_key="K")
    rows = [dict(base, block="b1", provider="fastconv_cuda", ms_median="1.0"),
            dict(base, block="b1", provider="fastconv_triton", ms_median="2.0"),
            dict(base, block="b2", provider="fastconv_cuda", ms_median="5.0"),
            dict(base, block="b2", provider="fastconv_triton", ms_median="3.0")]
    assert choose(rows) == {"d": {"inverted_residual": {"K": "triton"}}}  # 6.0 vs 5.0 in total
