"""Compile every Triton kernel for sm_90 without a GPU (triton.compile -> PTX -> cubin via ptxas).

The interpreter (TRITON_INTERPRET=1) checks the kernels' arithmetic but never runs the GPU
compiler, which is where shared-memory overflows, layout errors and unsupported ops show up.
Run with TRITON_INTERPRET unset: `python tests/triton_codegen.py` (tests/test_triton_codegen.py
does). Prints one line per kernel variant and exits non-zero on any failure.
"""
import os
import sys
import traceback

assert os.environ.get("TRITON_INTERPRET", "0") != "1", "run without TRITON_INTERPRET"

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from fastconv.triton import channel_shuffle as cs  # noqa: E402
from fastconv.triton import depthwise_conv2d as dwc  # noqa: E402
from fastconv.triton import dwpw_conv2d as dw  # noqa: E402
from fastconv.triton import group_conv1x1 as gc  # noqa: E402
from fastconv.triton import inverted_residual as ir  # noqa: E402
from fastconv.triton import shufflenet_v1_unit as v1  # noqa: E402
from fastconv.triton import shufflenet_v2_unit as v2  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
SMEM_LIMIT = 227 * 1024  # H100 opt-in shared memory per block


def jit_fn(kernel):
    while not isinstance(kernel, triton.runtime.jit.JITFunction):
        kernel = kernel.fn
    return kernel


def compile_one(kernel, consts, dtype, cfg, fp32_ptrs=()):
    fn = jit_fn(kernel)
    consts = {**consts, **cfg.kwargs}
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*" + ("fp32" if name in fp32_ptrs else dtype)
        else:
            sig[name] = "i32"
    src = ASTSource(fn, sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    opts = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    return triton.compile(src, target=TARGET, options=opts)


def cases():
    prec = {"fp16": "tf32", "bf16": "tf32", "fp32": "ieee"}
    for dt in ("fp16", "bf16", "fp32"):
        p = prec[dt]
        yield "channel_shuffle planes", cs._shuffle_planes_kernel, {}, dt, cs._plane_configs()[0], ()
        yield "channel_shuffle rows", cs._shuffle_rows_kernel, {}, dt, cs._row_configs()[0], ()
        yield "dwpw k3", dw._dwpw_kernel, dict(KS=3, HAS_DWB=True, HAS_PWB=True, HAS_RES=True, DW_ACT=2,
                                                PW_ACT=3, DOT_FP32=False, PREC=p), dt, dw._configs()[-1], ()
        yield "dwpw k7", dw._dwpw_kernel, dict(KS=7, HAS_DWB=True, HAS_PWB=True, HAS_RES=False, DW_ACT=1,
                                                PW_ACT=0, DOT_FP32=False, PREC=p), dt, dw._configs()[-1], ()
        for se, expand, (th, tw, ks, s) in [(False, True, (8, 8, 3, 1)), (True, True, (7, 7, 5, 2)),
                                            (False, False, (7, 7, 3, 2))]:
            bp = max(16, triton.next_power_of_2(th * tw))
            ih, iw = (th - 1) * s + ks, (tw - 1) * s + ks
            consts = dict(KS=ks, STRIDE=s, TH=th, TW=tw, IH=ih, IW=iw, BLOCK_P=bp,
                          BLOCK_HP=max(16, triton.next_power_of_2(ih * iw)), HAS_EXPAND=expand, HAS_EB=expand,
                          HAS_DWB=True, HAS_PB=True, ACT=3, SE_PASS1=se, RESIDUAL=not se, DOT_FP32=False,
                          PREC=p, BLOCK_CIN=64, BLOCK_K=128)
            yield f"inverted_residual se={se} expand={expand}", ir._ir_fused_kernel, consts, dt, \
                ir._fused_configs()[-1], ("part_ptr",)
        yield "group_conv1x1", gc._gconv1x1_kernel, dict(HAS_BIAS=True, HAS_SHUF_IN=True, HAS_SHUF_OUT=True, ACT=3,
                                                         DOT_FP32=False, PREC=p), dt, gc._configs()[-1], ()
        for extra, res in [(0, True), (1, False), (2, False)]:
            yield f"v1 dw+gconv extra={extra}", v1._dw_gpw_kernel, dict(
                HAS_DWB=True, HAS_B=True, RES=res, EXTRA=extra, RELU=True, DOT_FP32=False, PREC=p), dt, \
                v1._configs()[-1], ()
        for ks, st, mult in [(3, 1, 1), (7, 2, 1), (31, 1, 1), (5, 1, 2)]:
            base = dict(KH=ks, KW=ks, SH=st, SW=st, MULT=mult)
            yield f"depthwise fwd k{ks} s{st} m{mult}", dwc._fwd_kernel, dict(**base, HAS_BIAS=True, ACT=3, GRAD=False), \
                dt, dwc._pix_configs()[0], ()
            yield f"depthwise act-grad k{ks} s{st}", dwc._fwd_kernel, dict(**base, HAS_BIAS=True, ACT=4, GRAD=True), \
                dt, dwc._pix_configs()[0], ()
            yield f"depthwise dgrad k{ks} s{st} m{mult}", dwc._dgrad_kernel, base, dt, dwc._pix_configs()[0], ()
            for cl in (True, False):
                plan = dwc.wgrad_plan(8 * 56 * 56, 96 * mult, ks, ks, cl)
                cfg = triton.Config({"BLOCK_P": plan["BLOCK_P"], "BLOCK_C": plan["BLOCK_C"]}, num_warps=plan["num_warps"])
                yield f"depthwise wgrad k{ks} s{st} m{mult} {'nhwc' if cl else 'nchw'}", dwc._wgrad_kernel, \
                    dict(**base, KW_PAD=plan["KW_PAD"], HAS_BIAS=True), dt, cfg, ("part_ptr",)
        yield "depthwise wgrad reduce", dwc._reduce_kernel, dict(BLOCK=1024), dt, \
            triton.Config({}, num_warps=4), ("part_ptr",)
        yield "v2 pw+dw+pw", v2._pw_dw_pw_kernel, dict(HAS_B1=True, HAS_DWB=True, HAS_B2=True, EXTRA=2,
                                                       DOT_FP32=False, PREC=p), dt, v2._configs()[-1], ()


def main() -> int:
    failures = 0
    for name, kernel, consts, dt, cfg, fp32_ptrs in cases():
        try:
            c = compile_one(kernel, consts, dt, cfg, fp32_ptrs)
            smem = c.metadata.shared
            ok = smem <= SMEM_LIMIT
            print(f"{'OK  ' if ok else 'FAIL'} {name} {dt} {cfg.kwargs} smem={smem}", flush=True)
            failures += not ok
        except Exception as e:  # noqa: BLE001 - report every failing variant, then fail
            failures += 1
            print(f"FAIL {name} {dt}: {type(e).__name__}: {str(e)[:800]}", flush=True)
            traceback.print_exc(limit=1)
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
