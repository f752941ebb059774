"""Every Triton kernel, every autotune config, compiles for sm_90 (PTX + ptxas) as the launchers
launch it on catalogue shapes, without register spills and within shared memory, without a GPU.

test_triton_kernels_compile_for_sm90 runs tests/triton_codegen.py in a subprocess with
TRITON_INTERPRET unset (the interpreter never invokes the GPU compiler); on a GPU machine the
kernels really run, so it is skipped there. The other tests check the launcher-side facts the
kernels rely on (vector width, int32 index guards, the 1-D channel-shuffle grid) and the PTX
load counter itself."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
triton = pytest.importorskip("triton")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU compiles and runs the kernels for real")
def test_triton_kernels_compile_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "triton_codegen.py"), "--summary-only"],
                         capture_output=True, text=True, env=env, timeout=1200)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert "\n0 failures" in run.stdout, out[-6000:]
    assert " compilations " in run.stdout and "_ir_fused_kernel" in run.stdout, out[-6000:]


def test_load_mix_counts_widths():
    """The vector-load share in the report counts what it says: >= 8 bytes per thread."""
    sys.path.insert(0, str(ROOT / "tests"))
    from triton_codegen import load_mix
    ptx = ("\tld.global.b16 { %rs1 }, [ %rd1 + 0 ];\n"
           "\t@%p3 ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd2 + 0 ];\n"
           "\t@!%p4 ld.global.v2.b16 { %rs2, %rs3 }, [ %rd3 + 0 ];\n"
           "\tld.global.L1::evict_last.v2.b32 { %r5, %r6 }, [ %rd4 + 0 ];\n"
           "\tcp.async.cg.shared.global [ %r7 + 0 ], [ %rd5 + 0 ], 0x10, %r8;\n"
           "\tcp.async.ca.shared.global [ %r7 + 0 ], [ %rd5 + 0 ], 0x4, %r8;\n"
           "\tst.global.v4.b32 [ %rd6 + 0 ], { %r1, %r2, %r3, %r4 };\n")
    assert load_mix(ptx) == (6, 3)


def test_channel_vec():
    from fastconv.triton._common import channel_vec, vec_dividing
    nhwc = lambda c, dt=torch.float16: torch.empty(2, c, 5, 7, dtype=dt).contiguous(memory_format=torch.channels_last)
    assert channel_vec(nhwc(24)) == 8  # not a multiple of 16: Triton alone would not know
    assert channel_vec(nhwc(58)) == 2
    assert channel_vec(nhwc(24, torch.float32)) == 4
    assert channel_vec(torch.empty(2, 24, 5, 7, dtype=torch.float16)) == 1  # NCHW
    assert channel_vec(nhwc(48)[:, 24:]) == 8
    assert channel_vec(nhwc(48)[:, 20:]) == 4
    assert channel_vec(nhwc(24), nhwc(12)) == 4
    assert vec_dividing(8, 116, 58) == 2


def test_int32_guard_names_the_op():
    from fastconv.triton._common import check_int32_indexing
    big = torch.empty(2, 2 ** 15, 256, 256, device="meta")  # 2^31 elements per image
    with pytest.raises(ValueError, match="dwpw_conv2d.*per image"):
        check_int32_indexing("dwpw_conv2d", 2 * 256 * 256, big)
    with pytest.raises(ValueError, match="pixels"):
        check_int32_indexing("inverted_residual", 2 ** 31)
    check_int32_indexing("dwpw_conv2d", 2 * 256 * 256, torch.empty(2, 2 ** 14, 256, 256, device="meta"))


def test_channel_shuffle_grid_is_one_dimensional(monkeypatch):
    """grid.y is capped at 65535 on CUDA: a 2048x2048 map with 16-pixel blocks would exceed it."""
    from fastconv.triton import channel_shuffle as cs
    grids = []

    class Record:
        def __getitem__(self, grid):
            return lambda *a, **k: grids.append(grid)

    monkeypatch.setattr(cs, "_shuffle_planes_kernel", Record())
    cs.forward(torch.empty(1, 4, 2048, 2048, device="meta"), 2)
    (grid,) = grids
    for cfg in ({"BLOCK_R": 64, "BLOCK_HW": 16}, {"BLOCK_R": 1, "BLOCK_HW": 1024}):
        g = grid(cfg)
        assert len(g) == 1 and g[0] == triton.cdiv(4, cfg["BLOCK_R"]) * triton.cdiv(2048 * 2048, cfg["BLOCK_HW"])
