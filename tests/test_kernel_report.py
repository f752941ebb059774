"""The static kernel report (bench/kernel_report.py) in CI: the SASS parser on canned text, the
occupancy and floor models on known cases, and the committed thresholds
(bench/static_thresholds.json) on today's machine code: no spill, no drop of the wide/async
global-load share in the fused kernels. CUDA: the .so scripts/test.sh builds (skipped, with the
reason, when it is not built). Triton: the CI subset compiled for sm_90 through the real
launchers, in a subprocess without TRITON_INTERPRET (the interpreter never runs the compiler)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import kernel_report as kr
from bench import sass

ROOT = Path(__file__).resolve().parent.parent

CANNED_SASS = """
Fatbin elf code:
================
arch = sm_80
	code for sm_80
		Function : _ZN8fastconv4dwpw6kernelI6__halfLi3ELi64EEEvNS_10DwpwParamsE
        /*0000*/                   LDG.E.128 R4, desc[UR4][R2.64] ;           /* 0x0000000402047981 */
Fatbin elf code:
================
arch = sm_90
	code for sm_90
		Function : _ZN8fastconv4dwpw6kernelI6__halfLi3ELi64EEEvNS_10DwpwParamsE
	.headerflags	@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                     /* 0x00000a00ff017b82 */
                                                                              /* 0x000fe20000000800 */
        /*0010*/                   LDG.E.U16 R4, desc[UR4][R2.64] ;           /* 0x0000000402047981 */
        /*0020*/               @P0 LDG.E.U16.CONSTANT R5, desc[UR4][R2.64+0x2] ;
        /*0030*/                   LDG.E R6, desc[UR4][R8.64] ;
        /*0040*/                   LDG.E.64 R10, desc[UR4][R8.64] ;
        /*0050*/              @!P1 LDGSTS.E.BYPASS.LTC128B.128 [R3], desc[UR4][R8.64] ;
        /*0060*/                   LDS.U16 R7, [R3] ;
        /*0070*/                   LDSM.16.M88.4 R12, [R3] ;
        /*0080*/                   HMMA.16816.F32 R16, R12, R14, R16 ;
        /*0090*/                   HFMA2.MMA R20, -RZ, RZ, 0, 0 ;
        /*00a0*/                   STL [R1], R4 ;
        /*00b0*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*00c0*/                   STG.E.U16 desc[UR4][R8.64], R4 ;
        /*00d0*/                   STG.E.128 desc[UR4][R8.64], R4 ;
        /*00e0*/                   EXIT ;
		Function : _Z5otherv
        /*0000*/                   UTMALDG.2D [UR8], [UR4] ;
        /*0010*/                   HGMMA.64x64x16.F32 R24, gdesc[UR4], R24 ;
        /*0020*/                   EXIT ;
"""

CANNED_RES = """
Resource usage:
arch = sm_80
 Function _ZN8fastconv4dwpw6kernelI6__halfLi3ELi64EEEvNS_10DwpwParamsE:
  REG:64 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:400
arch = sm_90
 Function _ZN8fastconv4dwpw6kernelI6__halfLi3ELi64EEEvNS_10DwpwParamsE:
  REG:80 STACK:16 SHARED:1024 LOCAL:8 CONSTANT[0]:400 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _Z5otherv:
  REG:168 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:384
"""

CANNED_ELF = """
.nv.info._ZN8fastconv4dwpw6kernelI6__halfLi3ELi64EEEvNS_10DwpwParamsE
	<0x1>
	Attribute:	EIATTR_MAXREG_COUNT
	Format:	EIFMT_HVAL
	Value:	0xff
	<0x2>
	Attribute:	EIATTR_MAX_THREADS
	Format:	EIFMT_SVAL
	Value:	0x100 0x1 0x1
"""


def _canned():
    sts = {s.name: s for s in sass.stats_from_text(CANNED_SASS, CANNED_RES, CANNED_ELF)}
    return sts["_ZN8fastconv4dwpw6kernelI6__halfLi3ELi64EEEvNS_10DwpwParamsE"], sts["_Z5otherv"]


def test_sass_parser_on_canned_snippet():
    k, other = _canned()
    # sm_80 section ignored: its LDG.E.128 and REG:64 must not leak into the sm_90 numbers
    assert k.gld == {2: 2, 4: 1, 8: 1}
    assert k.gld_async == 1 and k.gld_tma == 0
    assert k.vector_share == pytest.approx(2 / 5)  # LDG.E.64 + LDGSTS out of 5 global loads
    assert k.gld_bytes_avg == pytest.approx((2 + 2 + 4 + 8) / 4)
    assert k.gst == {2: 1, 16: 1}
    assert k.mma == {"HMMA.16816.F32": 1} and k.mma_kind == "HMMA.16816"  # HFMA2.MMA is no MMA
    assert (k.lds, k.ldsm, k.barriers, k.spill_insns) == (1, 1, 1, 1)
    assert (k.regs, k.local_bytes, k.smem_static, k.threads) == (80, 8, 1024, 256)
    assert k.spills == 16  # stack frame with spill instructions
    assert other.gld_tma == 1 and other.vector_share == 1.0 and other.mma_kind == "HGMMA"
    assert other.spills == 0 and other.threads is None


def test_names_and_dtypes():
    k, _ = _canned()
    short = sass.short_name(k.demangled)
    if k.demangled == k.name:
        pytest.skip("c++filt is not installed: names stay mangled")
    assert short == "dwpw::kernel<__half, 3, 64>"
    assert kr.cuda_dtype(short) == "fp16" and kr.cuda_family(short) == "dwpw::kernel"
    assert kr.cuda_dtype("gconv::gconv_kernel<__nv_bfloat16, true>") == "bf16"
    assert kr.cuda_dtype("shuffle::shuffle_nhwc_kernel<unsigned long, 2, unsigned int>") == "-"


def test_occupancy():
    assert sass.occupancy(80, 256, 20 * 1024) == (24, "regs")        # dwpw BN=64 k3 (review: 24, regs)
    assert sass.occupancy(110, 256, 40 * 1024) == (16, "regs")
    assert sass.occupancy(255, 256, 32 * 1024) == (8, "regs")        # Triton w8 at the register cap
    assert sass.occupancy(64, 256, 115 * 1024) == (8, "smem")        # one 115 KB block per SM
    assert sass.block_smem(0) == 1024 and sass.block_smem(19200, 4096) == 23296  # SHARED includes the 1 KB
    assert sass.occupancy(16, 128, 0) == (64, "threads")
    assert sass.occupancy(16, 32, 0) == (32, "blocks")
    assert sass.occupancy(80, None, 0) == (None, "threads?")


def test_thresholds_check_catches_spills_and_vector_drop():
    th = {"cuda": {"dwpw::k": {"dtypes": ["fp16"], "max_spill_B": 0, "min_wide_share": 0.5}}}
    good = {"family": "dwpw::k", "kernel": "dwpw::k<__half>", "dtype": "fp16", "spill_B": 0, "gld_wide_share": 0.6}
    assert kr.check([good], "cuda", th) == []
    assert len(kr.check([dict(good, spill_B=8)], "cuda", th)) == 1
    assert len(kr.check([dict(good, gld_wide_share=0.4)], "cuda", th)) == 1
    assert kr.check([dict(good, dtype="fp32", spill_B=8)], "cuda", th) == []   # not a checked dtype
    new = kr.tightened([dict(good, gld_wide_share=0.72)], "cuda", th)
    assert new["dwpw::k"]["min_wide_share"] == 0.72 and new["dwpw::k"]["max_spill_B"] == 0
    assert kr.tightened([dict(good, gld_wide_share=0.3)], "cuda", th)["dwpw::k"]["min_wide_share"] == 0.5


def test_floor_model_reproduces_the_review():
    """shared/reviews/kernels-2026-12.md section 3: executed / useful tensor-core FLOPs 3.6x on
    MobileNetV2 24->144->24 @56 and 2.2x on 96->576->96 @14, LSU-bound (MODEL numbers)."""
    from bench import catalogue as cat
    from bench import model_floor as mf
    es = {e.label: e for e in cat.build_catalogue(ops=["inverted_residual", "dwpw_conv2d"])}
    a = mf.floor(next(e for k, e in es.items() if k.startswith("ir 24>144>24 k3s1")))
    b = mf.floor(next(e for k, e in es.items() if k.startswith("ir 96>576>96 k3s1")))
    d = mf.floor(next(e for k, e in es.items() if k.startswith("dwpw 128>128 k3s1")))
    assert a.tc_flops / 1e9 == pytest.approx(19.7, rel=0.02) and a.tc_waste == pytest.approx(3.56, rel=0.02)
    assert b.tc_waste == pytest.approx(2.18, rel=0.02)
    assert 80e6 < a.lsu_wavefronts < 120e6 and 25e6 < b.lsu_wavefronts < 40e6 and 40e6 < d.lsu_wavefronts < 60e6
    assert a.binds == b.binds == d.binds == "lsu"
    assert d.hbm_bytes / 1e6 == pytest.approx(206, rel=0.01)


def test_cuda_kernels_meet_thresholds():
    so = kr.default_so()
    if so is None:
        pytest.skip("fastconv/_C*.so is not built (scripts/test.sh builds it when nvcc and a CUDA torch exist)")
    if sass.tool("cuobjdump") is None:
        pytest.skip("cuobjdump not found (it ships in the triton wheel)")
    rows = kr.cuda_rows([so])
    if not rows:
        pytest.skip(f"{so} has no sm_90 code (TORCH_CUDA_ARCH_LIST without 9.0)")
    fams = {r["family"].split("::")[0] for r in rows}
    assert {"dwpw", "ir", "gconv"} <= fams, fams
    bad = kr.check(rows, "cuda", kr.load_thresholds())
    assert not bad, "\n".join(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU runs the kernels for real; this checks codegen without one")
def test_triton_kernels_meet_thresholds(tmp_path):
    triton = pytest.importorskip("triton")
    calibrated = kr.load_thresholds().get("_triton_version")
    if calibrated and calibrated != triton.__version__:
        pytest.skip(f"Triton thresholds were calibrated with triton {calibrated} (spills depend on its compiler); "
                    f"this is {triton.__version__}: regenerate with --write-thresholds --loosen on purpose")
    if sass.tool("cuobjdump") is None:
        pytest.skip("cuobjdump not found (it ships in the triton wheel)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "bench.kernel_report", "--triton", "--ci", "--max-configs", "3", "--jobs", "2",
           "--check", "--quiet", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    rows = list(__import__("csv").DictReader(open(tmp_path / "triton.csv")))
    kernels = {r["family"] for r in rows if not r["error"]}
    assert {"dwpw_conv2d:_dwpw_kernel", "inverted_residual:_ir_fused_kernel"} <= kernels, kernels
    # the ShuffleNetV1 unit's gconv1 has the standalone gconv block's shape: its compiled kernels come
    # from Triton's cache and must still be recorded for the unit
    v1 = {r["family"] for r in rows if r["op"] == "shufflenet_v1_unit" and not r["error"]}
    assert {"group_conv1x1:_gconv1x1_kernel", "shufflenet_v1_unit:_dw_gpw_kernel"} <= v1, v1
