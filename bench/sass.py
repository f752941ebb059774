"""Read sm_90 (or sm_90a) machine code without a GPU: per-kernel resources and instruction mix from cuobjdump.

Inputs are anything cuobjdump reads: the built extension (``fastconv/_C*.so``), object files
compiled with ``scripts/nvcc_check.sh``'s flags, or a Triton cubin. ``cuobjdump`` ships in the
triton wheel (``triton/backends/nvidia/bin/``); the local CUDA toolkit may not have it.

Everything here is *static*: instruction counts are counts in the code, not executed counts (a
load inside a 9-tap loop counts once). They show what kind of loads a kernel can issue, which is
what the data-movement issue (#10) is about, not how many it issues.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

# sm_90 (H100/H200) per-SM limits used for theoretical occupancy.
SM90_LIMITS = dict(regs=65536, smem=228 * 1024, smem_per_block_reserved=1024, threads=2048, blocks=32,
                   warps=64, reg_alloc_unit=256, smem_alloc_unit=128)
# A100 (sm_80): the same register file and thread limits, 164 KB of shared memory per SM
SM80_LIMITS = dict(SM90_LIMITS, smem=164 * 1024)


def limits_for(arch: str) -> dict:
    """Per-SM limits of ``arch`` ("sm_80", "sm_90", "sm_90a") for ``occupancy``."""
    return SM80_LIMITS if arch.rstrip("a") == "sm_80" else SM90_LIMITS


# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def tool(name: str) -> Optional[str]:
    """Path of cuobjdump / nvdisasm: $FASTCONV_<NAME>, the triton wheel, then PATH (None if absent)."""
    env = os.environ.get(f"FASTCONV_{name.upper()}")
    if env:
        return env
    try:
        import triton
        p = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
        if p.is_file():
            return str(p)
    except Exception:  # noqa: BLE001 - triton missing or broken: fall back to PATH
        pass
    return shutil.which(name)


def _run(args: list) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@functools.lru_cache(maxsize=4096)
def demangle(name: str) -> str:
    """C++ demangling via c++filt (the mangled name if c++filt is missing)."""
    return demangle_many([name])[0]


def demangle_many(names: list) -> list:
    exe = shutil.which("c++filt") or shutil.which("cu++filt")
    if not exe or not names:
        return list(names)
    out = subprocess.run([exe], input="\n".join(names) + "\n", capture_output=True, text=True).stdout
    res = out.splitlines()
    return res if len(res) == len(names) else list(names)


def short_name(demangled: str) -> str:
    """``void fastconv::dwpw::kernel<__half, 64, 3>(fastconv::DwpwParams)`` -> ``dwpw::kernel<__half, 64, 3>``."""
    s = re.sub(r"^void\s+", "", demangled)
    s = re.sub(r"^fastconv::", "", s)
    # drop the argument list (the last top-level parenthesis group)
    depth, cut = 0, len(s)
    for i in range(len(s) - 1, -1, -1):
        ch = s[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            depth -= 1
            if depth == 0:
                cut = i
                break
    s = s[:cut]
    s = s.replace("fastconv::", "").replace("(bool)1", "true").replace("(bool)0", "false")
    return s.strip()


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------

_FUNC = re.compile(r"^\s*Function\s*:\s*(\S+)")
_INSN = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(.*?)\s*;")
_RES_FUNC = re.compile(r"^\s*Function\s+(\S+?):\s*$")
_RES_VALS = re.compile(r"([A-Z_]+(?:\[\d+\])?):(\d+)")
_ARCH = re.compile(r"^\s*arch\s*=\s*(sm_\d+a?)")

# bytes moved per thread by a memory instruction, from its type suffix (none = 32-bit)
_WIDTH = {"U8": 1, "S8": 1, "U16": 2, "S16": 2, "64": 8, "128": 16}


def insn_width(opcode: str) -> int:
    for part in opcode.split(".")[1:]:
        if part in _WIDTH:
            return _WIDTH[part]
    return 4


def same_family(want: str, got: str) -> bool:
    """``sm_90`` selects its arch-specific variant ``sm_90a`` too (the wgmma kernels are built for sm_90a)."""
    return got == want or got.rstrip("a") == want.rstrip("a")


def pick_arch(found: Iterable[str], want: Optional[str]) -> Optional[str]:
    """The section of ``want``'s family to read among the arches ``found``: the arch-specific one
    (``sm_90a``, what fastconv builds for Hopper) before the plain one; None when none matches."""
    if want is None:
        return None
    cands = [a for a in found if same_family(want, a)]
    for a in cands:
        if a.endswith("a"):
            return a
    return cands[0] if cands else None


def split_functions(sass: str, arch: Optional[str] = "sm_90") -> dict:
    """``cuobjdump -sass`` text -> {mangled name: [instruction text without predicate]} for ``arch``.

    Sections for other architectures are skipped (a fat binary lists sm_80 and sm_90a); ``sm_90``
    reads an ``sm_90a`` section (pick_arch: only one of the two if a binary held both); arch None
    keeps every section (a bare cubin has no section headers)."""
    funcs: dict = {}
    cur = None
    in_arch = True
    heads = [ln.strip().split()[-1] for ln in sass.splitlines() if ln.strip().startswith("code for sm_")]
    chosen = pick_arch(heads, arch)
    for line in sass.splitlines():
        s = line.strip()
        if s.startswith("code for sm_"):
            in_arch = arch is None or s.split()[-1] == chosen
            cur = None
            continue
        m = _FUNC.match(line)
        if m:
            cur = m.group(1) if in_arch else None
            if cur is not None:
                funcs.setdefault(cur, [])
            continue
        if cur is None:
            continue
        m = _INSN.match(line)
        if m:
            text = m.group(1)
            if text.startswith("@"):  # predicate guard: @P0, @!PT
                text = text.split(None, 1)[1] if " " in text else ""
            if text:
                funcs[cur].append(text)
    return funcs


def parse_resource_usage(text: str, arch: Optional[str] = "sm_90") -> dict:
    """``cuobjdump --dump-resource-usage`` text -> {mangled name: {"REG": .., "STACK": .., "SHARED": ..,
    "LOCAL": .., ...}} for ``arch``."""
    out: dict = {}
    in_arch = True
    cur = None
    chosen = pick_arch([m.group(1) for m in map(_ARCH.match, text.splitlines()) if m], arch)
    for line in text.splitlines():
        m = _ARCH.match(line)
        if m:
            in_arch = arch is None or m.group(1) == chosen
            cur = None
            continue
        m = _RES_FUNC.match(line)
        if m:
            cur = m.group(1) if in_arch else None
            continue
        if cur is not None and "REG:" in line:
            out[cur] = {k: int(v) for k, v in _RES_VALS.findall(line)}
            cur = None
    return out


def parse_max_threads(elf_text: str) -> dict:
    """``cuobjdump -elf`` text -> {mangled name: max threads per block} from EIATTR_MAX_THREADS or
    EIATTR_REQNTID (set by __launch_bounds__ / Triton's reqntid)."""
    out: dict = {}
    cur = None
    want = False
    for line in elf_text.splitlines():
        if line.startswith(".nv.info."):
            cur, want = line[len(".nv.info."):].strip(), False
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("Attribute:"):
            want = s.split()[-1] in ("EIATTR_MAX_THREADS", "EIATTR_REQNTID")
        elif want and s.startswith("Value:"):
            vals = [int(v, 16) for v in s.split()[1:] if v.startswith("0x")]
            if vals:
                prod = 1
                for v in vals[:3]:
                    prod *= max(v, 1)
                out[cur] = prod
            want = False
    return out


# ---------------------------------------------------------------------------------------------
# per-kernel statistics
# ---------------------------------------------------------------------------------------------

@dataclass
class KernelStats:
    """Static facts about one kernel's machine code."""
    name: str                     # mangled
    demangled: str = ""
    regs: int = 0
    local_bytes: int = 0          # local memory per thread (register spills and local arrays)
    stack_bytes: int = 0
    spill_insns: int = 0          # STL/LDL instructions in the code
    smem_static: int = 0
    smem_dynamic: Optional[int] = None   # launch-time shared memory, when known (Triton: always)
    threads: Optional[int] = None        # threads per block, when known
    n_insns: int = 0
    gld: dict = field(default_factory=dict)   # global load width (bytes) -> count
    gld_async: int = 0            # LDGSTS (cp.async)
    gld_tma: int = 0              # UTMALDG / UBLKCP (TMA, bulk copies)
    gst: dict = field(default_factory=dict)   # global store width -> count
    gst_tma: int = 0
    lds: int = 0
    ldsm: int = 0                 # ldmatrix
    sts: int = 0
    mma: dict = field(default_factory=dict)   # HMMA.16816.F32 / HGMMA.64x64x16.F32 ... -> count
    barriers: int = 0             # BAR.SYNC / BAR.RED
    arch: str = ""                # the SASS section read ("sm_90a", "sm_90", ...; "" when unknown)

    @property
    def spills(self) -> int:
        """Bytes of local memory or spill instructions: nonzero means the kernel touches local memory."""
        return max(self.local_bytes, self.stack_bytes if self.spill_insns else 0)

    @property
    def smem(self) -> Optional[int]:
        if self.smem_dynamic is None:
            return None
        return self.smem_static + self.smem_dynamic

    @property
    def n_gld(self) -> int:
        return sum(self.gld.values()) + self.gld_async + self.gld_tma

    @property
    def vector_share(self) -> Optional[float]:
        """Share of global loads that move >= 8 bytes per thread or are asynchronous copies (None: no loads)."""
        n = self.n_gld
        if n == 0:
            return None
        wide = sum(c for w, c in self.gld.items() if w >= 8) + self.gld_async + self.gld_tma
        return wide / n

    @property
    def gld_bytes_avg(self) -> Optional[float]:
        n = sum(self.gld.values())
        return None if n == 0 else sum(w * c for w, c in self.gld.items()) / n

    @property
    def mma_kind(self) -> str:
        kinds = sorted({k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("HMMA") else "")
                        for k in self.mma})
        return "+".join(kinds) if kinds else "none"

    def gld_mix(self) -> str:
        parts = [f"{w}B:{c}" for w, c in sorted(self.gld.items())]
        if self.gld_async:
            parts.append(f"cp.async:{self.gld_async}")
        if self.gld_tma:
            parts.append(f"tma:{self.gld_tma}")
        return " ".join(parts) or "-"

    def gst_mix(self) -> str:
        parts = [f"{w}B:{c}" for w, c in sorted(self.gst.items())]
        if self.gst_tma:
            parts.append(f"tma:{self.gst_tma}")
        return " ".join(parts) or "-"

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(spills=self.spills, smem=self.smem, vector_share=self.vector_share, mma_kind=self.mma_kind)
        return d


def count_instructions(st: KernelStats, insns: Iterable[str]) -> KernelStats:
    """Fill the instruction-mix fields of ``st`` from SASS instruction texts (predicates stripped)."""
    for text in insns:
        op = text.split(None, 1)[0]
        base = op.split(".")[0]
        st.n_insns += 1
        if base == "LDG":
            w = insn_width(op)
            st.gld[w] = st.gld.get(w, 0) + 1
        elif base == "LDGSTS":
            st.gld_async += 1
        elif base in ("UTMALDG", "UBLKCP", "UTMAPF"):
            if base != "UTMAPF":
                st.gld_tma += 1
        elif base in ("STG", "ST") and (base == "STG" or ".E" in op):
            w = insn_width(op)
            st.gst[w] = st.gst.get(w, 0) + 1
        elif base in ("UTMASTG", "UTMAREDG"):
            st.gst_tma += 1
        elif base in ("STL", "LDL"):
            st.spill_insns += 1
        elif base == "LDS":
            st.lds += 1
        elif base == "LDSM":
            st.ldsm += 1
        elif base == "STS":
            st.sts += 1
        elif base in ("HMMA", "HGMMA", "IMMA", "IGMMA", "DMMA", "BGMMA", "QGMMA"):
            st.mma[op] = st.mma.get(op, 0) + 1
        elif base == "BAR" and (".SYNC" in op or ".RED" in op or op == "BAR"):
            st.barriers += 1
    return st


def stats_from_text(sass: str, resources: str = "", elf: str = "", arch: Optional[str] = "sm_90") -> list:
    """KernelStats for every function in ``cuobjdump -sass`` text (plus resource usage / ELF text)."""
    funcs = split_functions(sass, arch)
    res = parse_resource_usage(resources, arch) if resources else {}
    heads = [ln.strip().split()[-1] for ln in sass.splitlines() if ln.strip().startswith("code for sm_")]
    section = pick_arch(heads, arch) if arch else (heads[0] if heads else "")
    threads = parse_max_threads(elf) if elf else {}
    names = list(funcs)
    dem = demangle_many(names)
    out = []
    for name, d in zip(names, dem):
        r = res.get(name, {})
        st = KernelStats(name=name, demangled=d, regs=r.get("REG", 0), local_bytes=r.get("LOCAL", 0),
                         stack_bytes=r.get("STACK", 0), smem_static=r.get("SHARED", 0),
                         threads=threads.get(name), arch=section or "")
        out.append(count_instructions(st, funcs[name]))
    return out


def analyse_binary(path: str, arch: str = "sm_90") -> list:
    """KernelStats of every ``arch`` kernel in a .so / .o / cubin (raises if cuobjdump is missing)."""
    exe = tool("cuobjdump")
    if exe is None:
        raise RuntimeError("cuobjdump not found (it ships in the triton wheel: triton/backends/nvidia/bin/); "
                           "set FASTCONV_CUOBJDUMP=/path/to/cuobjdump")
    path = str(path)
    # a bare cubin (one architecture, no "code for sm_XX" / "arch =" headers): take everything
    pick = None if _is_bare_cubin(path) else arch
    arch_args = [] if pick is None else ["-arch", arch]
    # three independent dumps of a ~50 MB .so: run them side by side (each is one busy process)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        sass, res, elf = pool.map(_run, [[exe, flag, *arch_args, path]
                                         for flag in ("-sass", "--dump-resource-usage", "-elf")])
    return stats_from_text(sass, res, elf, pick)


def _is_bare_cubin(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(64)
    # ELF with e_machine = 190 (EM_CUDA)
    return head[:4] == b"\x7fELF" and len(head) > 20 and int.from_bytes(head[18:20], "little") == 190


def analyse_cubin_bytes(data: bytes) -> list:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(data)
        name = f.name
    try:
        return analyse_binary(name)
    finally:
        os.unlink(name)


# ---------------------------------------------------------------------------------------------
# occupancy
# ---------------------------------------------------------------------------------------------

def block_smem(static: int, dynamic: Optional[int] = 0) -> int:
    """Shared memory one block holds on sm_90: cuobjdump's SHARED already includes the 1 KB per-block
    system reservation (nvcc 12+/13 report 1024 for a kernel without shared memory) unless it says 0."""
    reserve = 0 if static >= SM90_LIMITS["smem_per_block_reserved"] else SM90_LIMITS["smem_per_block_reserved"]
    return static + (dynamic or 0) + reserve


def occupancy(regs: int, threads: Optional[int], smem_block: Optional[int], limits: dict = SM90_LIMITS) -> tuple:
    """Theoretical (warps per SM, limiter) of a kernel: registers (allocated per warp in units of
    256), shared memory per block (``block_smem``: reservation included), threads and blocks per
    SM. ``smem_block`` None counts as 1 KB (limiter then says "smem?"). Returns (None, "threads?")
    when threads per block is unknown."""
    if not threads:
        return None, "threads?"
    wpb = -(-threads // 32)
    lim = {}
    if regs:
        per_warp = -(-regs * 32 // limits["reg_alloc_unit"]) * limits["reg_alloc_unit"]
        lim["regs"] = (limits["regs"] // per_warp) // wpb
    unit = limits["smem_alloc_unit"]
    s = max(smem_block or 0, limits["smem_per_block_reserved"])
    per_block = -(-s // unit) * unit
    lim["smem" if smem_block is not None else "smem?"] = limits["smem"] // per_block
    lim["threads"] = limits["threads"] // (wpb * 32)
    lim["blocks"] = limits["blocks"]
    blocks = min(lim.values())
    order = ("threads", "blocks", "regs", "smem", "smem?")  # on a tie, name the hardware maximum first
    limiter = min(lim, key=lambda k: (lim[k], order.index(k)))
    return blocks * wpb, limiter
