"""Static kernel report: what the sm_90 machine code of every fastconv kernel can do, no GPU needed.
(Hopper sections are read as sm_90a where the build has them -- what setup.py builds for "9.0"; the
wgmma kernels then report HGMMA as their MMA kind.)

    PYTHONPATH=. python -m bench.kernel_report                 # CUDA (built .so) + Triton (3-4 blocks/op) + floor
    PYTHONPATH=. python -m bench.kernel_report --cuda --so /path/to/_C.so
    PYTHONPATH=. python -m bench.kernel_report --cuda --obj build/.../*.o
    PYTHONPATH=. python -m bench.kernel_report --triton --full --dtype fp16 bf16   # every catalogue shape
    PYTHONPATH=. python -m bench.kernel_report --floor

Sections (see bench/README.md, "Static kernel report"):
  CUDA    per kernel of the built extension: registers, spill bytes, shared memory, theoretical
          occupancy, global load/store width mix, share of wide (>= 8 B) or asynchronous loads, MMA kind.
  Triton  per kernel x autotune config x catalogue shape, compiled for sm_90 through the real
          launchers (bench/triton_capture.py): the same columns.
  Floor   MODEL, not measured (bench/model_floor.py): per catalogue block the HBM / LSU / tensor
          core / FMA ceilings of the CUDA kernels, which binds, issue #10's bar (MobileNetV2/V3 and
          ShuffleNetV2 blocks within 1.5x of their HBM floor) with a one-line summary, and measured
          times beside it when a GPU results CSV exists under bench/results/.
Instruction counts are static (counted in the code, not executed). Output: Markdown on stdout and
CSV + Markdown under --out (default bench/results/static/).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

from bench import sass

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = ROOT / "bench" / "static_thresholds.json"
DEFAULT_OUT = ROOT / "bench" / "results" / "static"

CUDA_COLS = ["family", "kernel", "dtype", "regs", "spill_B", "smem_static_B", "threads", "warps_per_sm",
             "occ_limiter", "gld", "gld_wide_share", "gld_avg_B", "gst", "mma", "ldsm", "barriers"]
TRITON_COLS = ["family", "block", "dtype", "layout", "config", "grid", "regs", "spill_B", "smem_B", "threads",
               "warps_per_sm", "occ_limiter", "gld", "gld_wide_share", "gst", "mma", "error"]


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------

_DTYPE_TOKENS = (("__nv_bfloat16", "bf16"), ("__half", "fp16"), ("c10::BFloat16", "bf16"), ("c10::Half", "fp16"),
                 ("float", "fp32"))


def cuda_dtype(short: str) -> str:
    """fp16/bf16/fp32 from a kernel's first template argument ('-' when it is not a float type)."""
    m = re.search(r"<([^,<>]+)", short)
    if not m:
        return "-"
    arg = m.group(1).strip()
    for tok, name in _DTYPE_TOKENS:
        if arg == tok or arg.endswith(tok):
            return name
    return "-"


def cuda_family(short: str) -> str:
    """``dwpw::dwpw_conv2d_kernel<__half, 3, 64>`` -> ``dwpw::dwpw_conv2d_kernel``."""
    return short.split("<", 1)[0]


def default_so() -> Optional[str]:
    hits = sorted(glob.glob(str(ROOT / "fastconv" / "_C*.so")))
    return hits[0] if hits else None


def stale_sources(binary: str, root: Path = ROOT) -> list:
    """csrc/ files (.cu, .cuh, .h) newer than ``binary``: its machine code may not be today's (a check
    on a stale .so once passed locally and failed in CI)."""
    t = os.path.getmtime(binary)
    return sorted(str(f.relative_to(root)) for ext in ("cu", "cuh", "h") for f in (root / "csrc").rglob(f"*.{ext}")
                  if f.stat().st_mtime > t)


def cuda_rows(paths: Iterable[str], arch: str = "sm_90") -> list:
    rows = []
    seen = {}  # mangled name -> index in rows
    for path in paths:
        for st in sass.analyse_binary(path, arch):
            # bare cubins of other arches (nvcc_check.sh 80) are not sm_90 code; of a kernel in two
            # objects keep the first, except that an sm_90a build (wgmma) wins over a plain sm_90 one
            if st.arch and not sass.same_family(arch, st.arch):
                continue
            if st.name in seen:
                old = rows[seen[st.name]]
                if not (st.arch.endswith("a") and not old["_arch"].endswith("a")):
                    continue
                rows[seen[st.name]] = None
            short = sass.short_name(st.demangled)
            if not short.startswith(("dwpw", "ir", "gconv", "shuffle")) and "fastconv" not in st.demangled:
                continue  # not ours (e.g. torch helpers in an object)
            warps, lim = sass.occupancy(st.regs, st.threads, sass.block_smem(st.smem_static), sass.limits_for(arch))
            vs = st.vector_share
            rows.append({
                "family": cuda_family(short), "kernel": short, "dtype": cuda_dtype(short), "regs": st.regs,
                "spill_B": st.spills, "smem_static_B": st.smem_static, "threads": st.threads or "",
                "warps_per_sm": warps if warps is not None else "",
                # shared-memory instructions but nothing beyond the reservation: dynamic shared memory
                "occ_limiter": lim + (" (+dyn smem?)" if st.lds + st.sts + st.ldsm and st.smem_static <= 1024 else ""),
                "gld": st.gld_mix(), "gld_wide_share": "" if vs is None else round(vs, 3),
                "gld_avg_B": "" if st.gld_bytes_avg is None else round(st.gld_bytes_avg, 2),
                "gst": st.gst_mix(), "mma": st.mma_kind, "ldsm": st.ldsm, "barriers": st.barriers,
                "mangled": st.name, "source": os.path.basename(str(path)), "_arch": st.arch,
            })
            seen[st.name] = len(rows) - 1
    rows = [{k: v for k, v in r.items() if k != "_arch"} for r in rows if r is not None]
    return sorted(rows, key=lambda r: (r["family"], r["dtype"], r["kernel"]))


# ---------------------------------------------------------------------------------------------
# Triton
# ---------------------------------------------------------------------------------------------

# CI subset: per op, catalogue labels (prefix match) that cover every kernel and code path.
CI_BLOCKS = {
    "dwpw_conv2d": ["dwpw 128>128 k3s1"],
    "inverted_residual": ["ir 24>144>24 k3s1", "ir 40>120>40 k5s1+se"],
    "channel_shuffle": ["shuffle 232 g2"],
    "group_conv1x1": ["gconv 240>60"],
    "shufflenet_v1_unit": ["snv1 240>240"],
    "shufflenet_v2_unit": ["snv2 116>116 b58 s1"],   # the one-kernel (pw-dw-pw) branch
}


def select_entries(ops=None, quick=False, ci=False, limit=None, match=None) -> list:
    from bench import catalogue as cat
    entries = cat.build_catalogue(ops=ops)
    if match:
        entries = [e for e in entries if any(m in e.label for m in match)]
    if ci or quick:
        picked = []
        for op, prefixes in CI_BLOCKS.items():
            for p in prefixes:
                hit = next((e for e in entries if e.op == op and e.label.startswith(p)), None)
                if hit is None:  # the catalogue changed: take the op's first entry instead
                    hit = next((e for e in entries if e.op == op), None)
                if hit is not None and hit not in picked:
                    picked.append(hit)
        if quick and not ci:  # + the largest and a mid-sized block per op
            picked += [e for e in cat.quick_subset(entries, per_op=2) if e not in picked]
        order = {op: i for i, op in enumerate(CI_BLOCKS)}
        entries = sorted(picked, key=lambda e: order.get(e.op, len(order)))
    if limit:
        by_op = defaultdict(list)
        for e in entries:
            by_op[e.op].append(e)
        entries = [e for es in by_op.values() for e in es[:limit]]
    return entries


_CUBIN_CACHE: dict = {}


def _cubin_stats(ln):
    key = ln.cubin_hash
    if key not in _CUBIN_CACHE:
        sts = sass.analyse_cubin_bytes(ln.cubin)
        _CUBIN_CACHE[key] = sts[0] if sts else None
    return _CUBIN_CACHE[key]


def _triton_rows_one(job) -> list:
    entry, dtype, layout, batch, max_configs = job
    from bench import triton_capture as tc
    keys = tc.tuner_keys()
    try:
        launches = tc.capture(entry, batch=batch, dtype=dtype, layout=layout, max_configs=max_configs)
    except Exception as e:  # noqa: BLE001 - one broken launcher must not hide the others
        return [{"family": entry.op, "block": entry.label, "dtype": dtype, "layout": layout, "config": "",
                 "error": f"launcher failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}]
    rows = []
    for ln in launches:
        row = {"family": ln.kernel, "block": entry.label, "dtype": dtype, "layout": layout,
               "config": tc.config_label(ln, keys.get(ln.kernel)), "grid": "x".join(map(str, ln.grid)),
               "error": ln.error, "op": entry.op, "key": entry.key}
        if not ln.error:
            st = _cubin_stats(ln)
            threads = ln.num_warps * 32
            smem = sass.block_smem(st.smem_static, ln.shared)
            warps, lim = sass.occupancy(st.regs, threads, smem)
            vs = st.vector_share
            row.update(regs=st.regs, spill_B=st.spills, smem_B=smem, threads=threads,
                       warps_per_sm=warps, occ_limiter=lim, gld=st.gld_mix(),
                       gld_wide_share="" if vs is None else round(vs, 3), gst=st.gst_mix(), mma=st.mma_kind)
        rows.append(row)
    return rows


def triton_rows(entries, dtypes=("fp16",), layout="channels_last", batch=128, jobs=1, max_configs=None,
                progress=True) -> list:
    jobs_list = [(e, dt, layout, batch, max_configs) for e in entries for dt in dtypes]
    rows = []
    t0 = time.time()
    if jobs > 1 and len(jobs_list) > 1:
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        with ctx.Pool(jobs) as pool:
            for i, rs in enumerate(pool.imap(_triton_rows_one, jobs_list)):
                rows.extend(rs)
                if progress:
                    print(f"[triton {i + 1}/{len(jobs_list)} {time.time() - t0:.0f}s] {jobs_list[i][0].label} "
                          f"{jobs_list[i][1]}", file=sys.stderr, flush=True)
    else:
        for i, job in enumerate(jobs_list):
            rows.extend(_triton_rows_one(job))
            if progress:
                print(f"[triton {i + 1}/{len(jobs_list)} {time.time() - t0:.0f}s] {job[0].label} {job[1]}",
                      file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# floor (MODEL)
# ---------------------------------------------------------------------------------------------

def measured_times(results_dir: Path = ROOT / "bench" / "results", batch=128) -> dict:
    """{(block key, provider): ms_median} from GPU results CSVs (fp16, channels_last, fwd, status ok)."""
    out = {}
    for path in glob.glob(str(results_dir / "*" / "blocks*.csv")):
        if Path(path).parent.name.startswith(("cpu", "static")):
            continue
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if (r.get("timing") != "cuda_events" or r.get("status") != "ok" or r.get("dtype") != "fp16"
                        or r.get("layout") not in ("channels_last", "nhwc") or r.get("mode") != "fwd"
                        or str(r.get("batch")) != str(batch)):
                    continue
                try:
                    out[(r["block"], r["provider"])] = float(r["ms_median"])
                except (KeyError, ValueError):
                    pass
    return out


def floor_rows(entries, batch=128, device="h100") -> list:
    from bench import model_floor as mf
    meas = measured_times(batch=batch)
    rows = []
    for e in entries:
        r = mf.floor_row(e, batch=batch, device=device)
        r["criterion_group"] = mf.criterion_group(e) if mf.is_criterion_block(e) else ""
        for prov in ("fastconv_cuda", "fastconv_triton", "compile", "eager_folded"):
            v = meas.get((e.key, prov))
            r[f"measured_{prov}_us"] = "" if v is None else round(v * 1e3, 1)
        rows.append(r)
    return rows


# ---------------------------------------------------------------------------------------------
# summaries, thresholds
# ---------------------------------------------------------------------------------------------

def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def summarise(rows: list, by=("family", "dtype")) -> list:
    """Per family and dtype: kernels/configs, how many spill, worst spill, wide-load share range."""
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k, "") for k in by)].append(r)
    out = []
    for key, rs in sorted(groups.items()):
        ok = [r for r in rs if not r.get("error")]
        spills = [r["spill_B"] for r in ok if _num(r.get("spill_B")) is not None]
        vs = [r["gld_wide_share"] for r in ok if _num(r.get("gld_wide_share")) is not None]
        regs = [r["regs"] for r in ok if _num(r.get("regs")) is not None]
        occ = [r["warps_per_sm"] for r in ok if _num(r.get("warps_per_sm")) is not None]
        out.append({**dict(zip(by, key)), "n": len(rs), "failed": len(rs) - len(ok),
                    "spilling": sum(1 for s in spills if s > 0), "max_spill_B": max(spills, default=""),
                    "regs": f"{min(regs)}-{max(regs)}" if regs else "",
                    "warps_per_sm": f"{min(occ)}-{max(occ)}" if occ else "",
                    "wide_share_min": min(vs, default=""), "wide_share_max": max(vs, default=""),
                    "mma": "+".join(sorted({r.get("mma", "") for r in ok if r.get("mma")}))})
    return out


def floor_summary(rows: list) -> list:
    """Per op (MODEL): blocks, which ceiling binds how often, floor / HBM floor (median, worst) and
    how many blocks are within 1.5x of their HBM floor (issue #10's bar)."""
    import statistics
    out = []
    for op in dict.fromkeys(r["op"] for r in rows):
        rs = [r for r in rows if r["op"] == op]
        ratios = [r["floor_over_hbm"] for r in rs if _num(r["floor_over_hbm"]) is not None]
        binds = defaultdict(int)
        for r in rs:
            binds[r["binds"]] += 1
        out.append({"op": op, "blocks": len(rs), "binds": " ".join(f"{k}:{v}" for k, v in sorted(binds.items())),
                    "floor_over_hbm_median": round(statistics.median(ratios), 2) if ratios else "",
                    "floor_over_hbm_max": max(ratios, default=""),
                    "within_1.5x_of_hbm": sum(1 for x in ratios if x <= 1.5)})
    return out


def floor_criterion(rows: list) -> tuple:
    """(rows of the blocks issue #10's bar names, one-line summary): how many of them are within
    1.5x of their HBM floor, which ceiling binds how often, the worst five (MODEL)."""
    from bench import model_floor as mf
    bar = mf.CRITERION["max_over_hbm"]
    rs = [r for r in rows if r.get("criterion_group")]
    if not rs:
        return [], "no MobileNetV2/V3 or ShuffleNetV2 block selected"
    ok = [r for r in rs if _num(r["floor_over_hbm"]) is not None and r["floor_over_hbm"] <= bar]
    binds = defaultdict(int)
    for r in rs:
        binds[r["binds"]] += 1
    worst = sorted(rs, key=lambda r: -(_num(r["floor_over_hbm"]) or 0))[:5]

    def why(r):
        top = r.get("lsu_top_stage") if r["binds"] == "lsu" else ""
        return f"{r['block']} {r['floor_over_hbm']}x ({r['binds']}" + (f", {top}" if top else "") + ")"
    # hardware bound: useful tensor FLOPs at the dense wgmma peak vs the block's own bytes
    out_of_reach = [r for r in rs if (_num(r.get("peak_roofline_over_min_hbm")) or 0) > bar]
    line = (f"MODEL: {len(ok)} of {len(rs)} MobileNetV2/V3 and ShuffleNetV2 blocks (batch {rs[0]['batch']}, fp16, "
            f"channels_last) have a modelled floor within {bar}x of their HBM floor; binds: "
            + ", ".join(f"{k} {v}" for k, v in sorted(binds.items(), key=lambda kv: -kv[1]))
            + "; worst: " + "; ".join(why(r) for r in worst)
            + f"; {len(out_of_reach)} blocks are out of reach for any kernel that moves only their own bytes "
            f"(useful tensor FLOPs at the dense wgmma peak > {bar}x their bytes' HBM time: "
            + ", ".join(f"{r['block']} {r['peak_roofline_over_min_hbm']}x" for r in out_of_reach) + ")")
    return rs, line


def load_thresholds(path: Path = THRESHOLDS) -> dict:
    with open(path) as f:
        return json.load(f)


def dump_thresholds(th: dict) -> str:
    """JSON with one kernel family per line (diffs stay readable)."""
    lines = ["{"]
    items = list(th.items())
    for i, (k, v) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if isinstance(v, dict):
            lines.append(f" {json.dumps(k)}: {{")
            fams = sorted(v.items(), key=lambda kv: (kv[0] != "*", kv[0]))
            for j, (fam, t) in enumerate(fams):
                lines.append(f"  {json.dumps(fam)}: {json.dumps(t, sort_keys=True)}" + ("," if j < len(fams) - 1 else ""))
            lines.append(" }" + end)
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check(rows: list, section: str, thresholds: dict) -> list:
    """Violations of the committed thresholds: [message]. ``section`` is "cuda" or "triton"."""
    table = thresholds.get(section, {})
    bad = []
    for r in rows:
        if r.get("error"):
            if section == "triton" and r["error"].startswith("launcher failed"):
                bad.append(f"{section} {r['family']} {r['block']} {r['dtype']}: {r['error']}")
            continue
        t = table.get(r["family"], table.get("*"))
        if t is None:
            continue
        if r["dtype"] not in t.get("dtypes", ["fp16", "bf16", "fp32", "-"]):
            continue
        where = f"{section} {r['kernel'] if section == 'cuda' else r['family']} " \
                f"{'' if section == 'cuda' else r['block'] + ' ' + r['config'] + ' '}{r['dtype']}"
        sp = _num(r.get("spill_B"))
        if sp is not None and sp > t.get("max_spill_B", 0):
            bad.append(f"{where}: spills {sp} B (allowed {t.get('max_spill_B', 0)})")
        vs = _num(r.get("gld_wide_share"))
        if vs is not None and "min_wide_share" in t and vs + 1e-9 < t["min_wide_share"]:
            bad.append(f"{where}: wide/async global load share {vs:.3f} < {t['min_wide_share']}")
    return bad


def tightened(rows: list, section: str, old: dict, dtypes=("fp16", "bf16"), loosen: bool = False) -> dict:
    """Thresholds for ``section`` from this run: per family the worst spill and the lowest wide-load
    share (rounded down to 0.01) among fp16/bf16 kernels; never looser than ``old`` unless ``loosen``."""
    new = {k: dict(v) for k, v in old.get(section, {}).items()}
    fams = defaultdict(list)
    for r in rows:
        if not r.get("error") and r.get("dtype") in dtypes:
            fams[r["family"]].append(r)
    for fam, rs in fams.items():
        spill = max((_num(r.get("spill_B")) or 0) for r in rs)
        vs = [v for v in (_num(r.get("gld_wide_share")) for r in rs) if v is not None]
        t = new.setdefault(fam, {"dtypes": list(dtypes)})
        if loosen or "max_spill_B" not in t:
            t["max_spill_B"] = spill
        else:
            t["max_spill_B"] = min(t["max_spill_B"], spill)
        if vs:
            v = int(min(vs) * 100) / 100
            t["min_wide_share"] = v if (loosen or "min_wide_share" not in t) else max(t["min_wide_share"], v)
    return new


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def read_csv(path: Path) -> list:
    """Rows of a CSV this tool wrote, numbers back as numbers."""
    def conv(v):
        for t in (int, float):
            try:
                return t(v)
            except ValueError:
                pass
        return v
    with open(path, newline="") as f:
        return [{k: conv(v) for k, v in r.items()} for r in csv.DictReader(f)]


def md_table(cols: list, rows: list) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in cols) + " |")
    return "\n".join(out)


def write_csv(path: Path, rows: list, cols: Optional[list] = None) -> None:
    if not rows:
        return
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


FLOOR_COLS = ["block", "kernels", "hbm_MB", "lsu_Mwf", "tc_GFLOP_exec", "tc_exec_over_useful", "hbm_us", "lsu_us",
              "tc_us", "fma_us", "floor_us", "binds", "floor_over_hbm", "measured_fastconv_cuda_us",
              "measured_fastconv_triton_us", "lsu_top_stage"]
CRITERION_COLS = ["criterion_group", "block", "binds", "floor_over_hbm", "floor_over_min_hbm", "roofline_over_min_hbm",
                  "peak_roofline_over_min_hbm", "hbm_us", "floor_us",
                  "lsu_us", "tc_us", "fma_us", "tc_exec_over_useful", "lsu_top_stage", "sm_busy"]


def render(cuda: Optional[list], triton: Optional[list], floor: Optional[list], meta: dict) -> str:
    L = ["# fastconv static kernel report (sm_90, no GPU)", "",
         f"Generated {meta['when']} by `{meta['cmd']}` (git {meta['git']}). Instruction counts are static "
         "(counted in the machine code, not executed). `gld_wide_share` = share of global load instructions "
         "that move >= 8 bytes per thread or are asynchronous copies (LDGSTS / TMA). Occupancy = theoretical "
         "warps/SM from registers, threads and shared memory per block including the 1 KB system reservation "
         "(65536 regs, 228 KB, 2048 threads, 32 blocks).", ""]
    if cuda is not None:
        L += ["## CUDA kernels", ""] + [f"**Stale binary:** {w}." for w in meta.get("cuda_stale", [])] + [
              f"Source: {meta.get('cuda_src', '')}. `smem_static_B` is cuobjdump's SHARED "
              "(static + the 1 KB reservation). Dynamic shared memory is set at launch and not in the binary: "
              "occupancy uses static shared memory only (limiter marked `+dyn smem?` when the kernel has none).", ""]
        if cuda:
            L += ["### Per family", "", md_table(list(summarise(cuda)[0].keys()), summarise(cuda)), "",
                  "### Per kernel", "", md_table(CUDA_COLS, cuda), ""]
        else:
            L += [meta.get("cuda_skip", "no CUDA kernels found"), ""]
    if triton is not None:
        L += ["## Triton kernels", "", f"Compiled for sm_90 through `fastconv/triton/<op>.py: forward` on fake CUDA "
              f"tensors (batch {meta.get('batch')}, {meta.get('layout')}), every autotune config"
              f"{' (at most %s per kernel)' % meta['max_configs'] if meta.get('max_configs') else ''}; "
              f"blocks: {meta.get('triton_blocks')}.", ""]
        if triton:
            s = summarise(triton)
            L += ["### Per kernel (all shapes and configs)", "", md_table(list(s[0].keys()), s), "",
                  "### Per kernel, shape and config", "", md_table(TRITON_COLS, triton), ""]
    if floor is not None:
        L += ["## Modelled floor per block (MODEL, not measured)", "",
              f"bench/model_floor.py, the CUDA kernels' tiling (`TILING`, each entry citing its kernel header), batch "
              f"{meta.get('batch')}, fp16, channels_last, {meta.get('device_name')}: ceilings in µs (HBM bytes / "
              "bandwidth, L1/shared-memory wavefronts / (SMs x clock), tensor-core FLOPs executed / mma.sync peak, "
              "FP32 FMAs / FP32 rate); `binds` = the largest; `floor_over_hbm` = modelled floor / HBM floor; "
              "`floor_over_min_hbm` = the same against the block's own bytes (x, weights, out once: "
              "intermediates the kernels round-trip through HBM, such as the SE path's h, count against it); "
              "`roofline_over_min_hbm` = the block's own roofline (its bytes once, its useful tensor-core FLOPs and "
              "FMAs at mma.sync / FP32 rates) over the same: above 1.5 no mma.sync kernel meets the bar; "
              "`peak_roofline_over_min_hbm` = the same with the useful tensor FLOPs at the dense fp16 wgmma peak "
              "(990 TFLOP/s) and no FMA term, a hardware bound: above 1.5 no kernel that moves only the block's "
              "own bytes meets the bar; "
              "`lsu_top_stage` = the stage with the most wavefronts. Measured columns come from GPU results CSVs "
              "under bench/results/ when they exist.", ""]
        if floor:
            crit, line = floor_criterion(floor)
            L += ["### Issue #10's bar: MobileNetV2/V3 and ShuffleNetV2 blocks within 1.5x of the HBM floor", "",
                  line, ""]
            if crit:
                L += [md_table(CRITERION_COLS, crit), ""]
            L += ["### Per op", "", md_table(list(floor_summary(floor)[0].keys()), floor_summary(floor)), "",
                  "### Per block", "", md_table(FLOOR_COLS, floor), ""]
    return "\n".join(L)


def _git_sha() -> str:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.kernel_report", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda", action="store_true", help="CUDA section (default: all sections)")
    ap.add_argument("--triton", action="store_true", help="Triton section")
    ap.add_argument("--floor", action="store_true", help="modelled floor section (MODEL, not measured)")
    ap.add_argument("--so", help="the built extension (default: fastconv/_C*.so)")
    ap.add_argument("--obj", nargs="+", help="object files / cubins instead of the .so")
    ap.add_argument("--arch", default="sm_90", choices=["sm_90", "sm_80"],
                    help="CUDA: whose machine code to read (sm_90 = the sm_90a build; sm_80 needs a build with "
                         "8.0 in TORCH_CUDA_ARCH_LIST, the default one); the same thresholds apply")
    ap.add_argument("--op", nargs="+", help="ops (default: all)")
    ap.add_argument("--match", nargs="+", help="only catalogue blocks whose label contains one of these")
    ap.add_argument("--full", action="store_true",
                    help="Triton: every catalogue block (hours on 2 cores when the Triton cache is cold)")
    ap.add_argument("--ci", action="store_true", help="Triton: the CI subset (one or two blocks per op)")
    ap.add_argument("--limit", type=int, help="Triton: at most N blocks per op")
    ap.add_argument("--dtype", nargs="+", default=["fp16"], choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--layout", default="channels_last", choices=["channels_last", "nchw"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-configs", type=int, help="Triton: at most N autotune configs per kernel (evenly spread)")
    ap.add_argument("--jobs", type=int, default=1, help="Triton: parallel compile processes")
    ap.add_argument("--device", default="h100", choices=["h100", "h200"], help="floor model constants")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (CSV + report.md)")
    ap.add_argument("--check", action="store_true", help="exit 1 on a violation of bench/static_thresholds.json")
    ap.add_argument("--write-thresholds", action="store_true",
                    help="tighten bench/static_thresholds.json to this run (never loosens without --loosen)")
    ap.add_argument("--loosen", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no Markdown on stdout")
    ap.add_argument("--reuse", help="take the CUDA / Triton sections from this earlier --out folder's CSVs "
                                    "(re-render, e.g. with measured times) instead of recomputing them")
    a = ap.parse_args(argv)
    every = not (a.cuda or a.triton or a.floor)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git": _git_sha(), "batch": a.batch,
            "layout": a.layout, "max_configs": a.max_configs,
            "cmd": "python -m bench.kernel_report " + " ".join(argv if argv is not None else sys.argv[1:])}
    cuda = triton = floor = None
    violations = []
    th = load_thresholds() if THRESHOLDS.exists() else {}
    reuse = Path(a.reuse) if a.reuse else None
    if reuse and (a.cuda or every) and (reuse / "cuda.csv").exists():
        cuda = read_csv(reuse / "cuda.csv")
        srcs = sorted({str(r.get("source", "")) for r in cuda} - {""})
        meta["cuda_src"] = f"reused from {reuse / 'cuda.csv'}" + (f" (binaries: {', '.join(srcs)})" if srcs else "")
        write_csv(out / "cuda.csv", cuda, CUDA_COLS + ["mangled", "source"])
        violations += check(cuda, "cuda", th)
    elif a.cuda or every:
        paths = a.obj or ([a.so] if a.so else ([default_so()] if default_so() else []))
        if not paths:
            cuda = []
            meta["cuda_skip"] = ("fastconv/_C*.so is not built (scripts/test.sh builds it; or pass --so PATH / "
                                 "--obj FILES): CUDA section skipped")
            print(meta["cuda_skip"], file=sys.stderr)
        else:
            for p in paths:
                newer = stale_sources(p)
                if newer:
                    meta.setdefault("cuda_stale", []).append(
                        f"{p} is older than {len(newer)} source file(s) under csrc/ ({', '.join(newer[:3])}"
                        f"{', ...' if len(newer) > 3 else ''}): rebuild it, or this report is not today's code")
                    print("WARNING: " + meta["cuda_stale"][-1], file=sys.stderr)
            meta["cuda_src"] = ", ".join(str(p) for p in paths) + ("" if a.arch == "sm_90" else f", {a.arch} machine code "
                                                                    "(occupancy with 164 KB of shared memory per SM)")
            cuda = cuda_rows(paths, a.arch)
            write_csv(out / "cuda.csv", cuda, CUDA_COLS + ["mangled", "source"])
            violations += check(cuda, "cuda", th)
    entries = None
    if reuse and (a.triton or every) and (reuse / "triton.csv").exists():
        triton = read_csv(reuse / "triton.csv")
        for r in triton:
            r["error"] = r.get("error") or ""
        meta["triton_blocks"] = f"reused from {reuse / 'triton.csv'}, {len({r['block'] for r in triton})} blocks"
        write_csv(out / "triton.csv", triton, TRITON_COLS + ["op", "key"])
        violations += check(triton, "triton", th)
    elif a.triton or every:
        entries = select_entries(a.op, quick=not (a.full or a.ci or a.match), ci=a.ci, limit=a.limit, match=a.match)
        meta["triton_blocks"] = ("CI subset" if a.ci else "every catalogue block" if a.full
                                 else "matching --match" if a.match else "quick subset (CI blocks + 2 per op)") + \
            f", {len(entries)} blocks x {', '.join(a.dtype)}"
        triton = triton_rows(entries, a.dtype, a.layout, a.batch, a.jobs, a.max_configs)
        write_csv(out / "triton.csv", triton, TRITON_COLS + ["op", "key"])
        violations += check(triton, "triton", th)
    if a.floor or every:
        from bench import catalogue as cat
        from bench import model_floor as mf
        meta["device_name"] = mf.DEVICES[a.device]["name"]
        fentries = cat.build_catalogue(ops=a.op)
        if a.match:
            fentries = [e for e in fentries if any(m in e.label for m in a.match)]
        floor = floor_rows(fentries, a.batch, a.device)
        write_csv(out / "floor.csv", floor)
        if floor:
            print(floor_criterion(floor)[1], file=sys.stderr)
    text = render(cuda, triton, floor, meta)
    (out / "report.md").write_text(text + "\n")
    if not a.quiet:
        print(text)
    if a.write_thresholds:
        new = dict(th) if th else {"_about": "see bench/README.md, Static kernel report"}
        if cuda:
            new["cuda"] = tightened(cuda, "cuda", th, loosen=a.loosen)
        if triton:
            new["triton"] = tightened(triton, "triton", th, loosen=a.loosen)
        if triton:
            import triton as _tr
            new["_triton_version"] = _tr.__version__
        THRESHOLDS.write_text(dump_thresholds(new))
        print(f"wrote {THRESHOLDS}", file=sys.stderr)
    print(f"kernel_report: wrote {out}/report.md (+ CSVs)", file=sys.stderr)
    if violations:
        print("threshold violations (bench/static_thresholds.json):\n  " + "\n  ".join(violations), file=sys.stderr)
        if a.check:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
