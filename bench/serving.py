"""Load-test ``examples/serve_triton.py`` (Triton Inference Server via PyTriton) with ``perf_analyzer``.

    python -m bench.serving                         # GPU: mobilenet_v3_large, shufflenet_v2_x1_0
    python -m bench.serving --quick                 # CPU plumbing check (a minute or two)
    python -m bench.serving --model mobilenet_v3_large --concurrency 1 16 64 128 --max-batch 64

For each model and variant (``fastconv``: fastconv.optimize'd; ``baseline``: the same model as it
ships) it starts one server (loopback, free ports), then runs perf_analyzer once per concurrency
level (gRPC, random uint8 images) and reads Triton's statistics endpoint (with the access token)
before and after, to count the batches the dynamic batcher formed. Writes under
``bench/results/<device>/serving/``: ``serving.csv`` (one row per model, variant and concurrency:
throughput, p50/p90/p99 latency, mean batch size and histogram), ``serving.md`` (tables plus the
fastconv-vs-baseline comparison at equal p99) and ``serving.png`` (p99 latency vs throughput).
Without a GPU the numbers are CPU numbers (reference backend) and are labelled so.

The helpers (free ports, the server subprocess, perf_analyzer's environment, batch statistics) are
also what ``tests/test_serving.py`` uses.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "examples" / "serve_triton.py"
HOST = "127.0.0.1"
TOKEN_ENV = "FASTCONV_TRITON_TOKEN"
TOKEN_HEADER = "triton-access-token"
COLUMNS = ["timestamp", "git_sha", "device", "timing", "model", "variant", "image_size", "max_batch",
           "preferred_batch_sizes", "queue_delay_us", "runner", "instances", "protocol", "concurrency", "status", "measurement",
           "throughput_infer_per_s", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "avg_ms", "server_queue_ms",
           "server_compute_ms", "executions", "inferences", "mean_batch", "max_batch_seen", "batch_hist"]


# ---------------------------------------------------------------------------------------------
# the server as a subprocess
# ---------------------------------------------------------------------------------------------

def free_ports(n: int) -> list:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ; racy like any such
    choice, but only against other processes binding in the same instant)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _http(url: str, *, token: Optional[str] = None, timeout: float = 5.0, data: Optional[bytes] = None):
    """(status, body bytes) of one HTTP request; HTTP errors are returned, not raised."""
    headers = {TOKEN_HEADER: token} if token else {}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class ServerProcess:
    """``examples/serve_triton.py`` in its own process group, on free loopback ports.

    ``start()`` returns once the model reports ready, or raises RuntimeError (with the log's tail)
    when the process dies or ``ready_timeout`` passes. ``stop()`` sends SIGTERM (an orderly PyTriton
    shutdown), and SIGKILLs the whole group if anything is left after ``stop_timeout``; it returns
    whether the orderly path sufficed. Use as a context manager so a failing caller still cleans up.
    """

    def __init__(self, model: str, *, args: Sequence[str] = (), model_name: Optional[str] = None,
                 baseline: bool = False, ready_timeout: float = 180.0, stop_timeout: float = 30.0,
                 log_path: Optional[str] = None):
        self.model_name = model_name or (model + ("_baseline" if baseline else ""))
        self.http_port, self.grpc_port = free_ports(2)
        self.token = secrets.token_urlsafe(24)
        self.argv = [sys.executable, str(SERVE), "--model", model, "--model-name", self.model_name,
                     "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                     "--metrics-port", "0", *(["--baseline"] if baseline else []), *args]
        self.ready_timeout, self.stop_timeout = ready_timeout, stop_timeout
        self._own_log = log_path is None
        self.log_path = log_path or tempfile.mkstemp(prefix="fastconv-serve-", suffix=".log")[1]
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def start(self) -> "ServerProcess":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        env[TOKEN_ENV] = self.token
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=str(ROOT), start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        ready = f"http://{self.url}/v2/models/{self.model_name}/ready"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with status {self.proc.returncode} before it was ready; "
                                   f"log tail:\n{self.log_tail()}")
            try:
                if _http(ready, timeout=2)[0] == 200:
                    return self
            except (OSError, urllib.error.URLError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server not ready after {self.ready_timeout:.0f} s; log tail:\n{self.log_tail()}")
            time.sleep(0.5)

    def group_alive(self) -> bool:
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def shm_segments(self) -> list:
        """The /dev/shm segments PyTriton named after this server's pid (its prefix is pytrtion<pid>-)."""
        if self.proc is None:
            return []
        return sorted(glob.glob(f"/dev/shm/pytrtion{self.proc.pid}-*"))

    def stop(self) -> bool:
        if self.proc is None:
            return True
        orderly = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                orderly = False
        # tritonserver and its Python-backend stub are in the same group and linger a few seconds
        # after the main process; wait for them, then kill what is left.
        deadline = time.monotonic() + self.stop_timeout
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.group_alive():
            orderly = False
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(50):
                if not self.group_alive():
                    break
                time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        return orderly

    def model_stats(self) -> dict:
        """Triton's statistics for this model (a restricted endpoint: sent with the token)."""
        code, body = _http(f"http://{self.url}/v2/models/{self.model_name}/stats", token=self.token, timeout=10)
        if code != 200:
            raise RuntimeError(f"statistics endpoint answered {code}: {body[:200]!r}")
        return json.loads(body)["model_stats"][0]

    def __enter__(self) -> "ServerProcess":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_log and exc[0] is None:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass


def batch_histogram(before: dict, after: dict) -> dict:
    """{batch size: executions} the dynamic batcher formed between two model_stats snapshots."""
    def hist(stats):
        return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}
    h0, h1 = hist(before), hist(after)
    return {b: h1[b] - h0.get(b, 0) for b in sorted(h1) if h1[b] - h0.get(b, 0) > 0}


# ---------------------------------------------------------------------------------------------
# perf_analyzer
# ---------------------------------------------------------------------------------------------

def perf_analyzer_binary() -> Optional[str]:
    """The perf_analyzer that the tritonclient 2.51 wheel installs next to this interpreter, or on PATH."""
    here = Path(sys.executable).parent / "perf_analyzer"
    if here.exists():
        return str(here)
    from shutil import which
    return which("perf_analyzer")


def perf_analyzer_env() -> dict:
    """os.environ plus an LD_LIBRARY_PATH on which perf_analyzer finds libb64.so.0d and libcudart.so.12.

    The wheel's binary links both but ships neither; PyTriton's wheel bundles renamed copies
    (nvidia_pytriton.libs/libb64-<hash>.so.0d, libcudart-<hash>.so.12.*), which are linked here under
    the names the binary asks for. Nothing is changed when PyTriton is not installed."""
    env = dict(os.environ)
    import importlib.util
    spec = importlib.util.find_spec("pytriton")
    # next to the pytriton package (a site-packages folder, or a --target folder: bench/serving_bundle.sh)
    libs = Path(spec.origin).parent.parent / "nvidia_pytriton.libs" if spec and spec.origin else None
    if libs is None or not libs.is_dir():
        return env
    folder = Path(tempfile.gettempdir()) / f"fastconv-perf-analyzer-libs-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    for pattern, name in (("libb64-*.so.0d", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12")):
        found = sorted(libs.glob(pattern))
        link = folder / name
        if link.is_symlink() and not link.exists():  # dangling: the venv moved or was rebuilt
            link.unlink()
        if found and not link.exists():
            try:
                link.symlink_to(found[0])
            except FileExistsError:
                pass  # another process made it meanwhile
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(folder)] + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
    return env


def run_perf_analyzer(server: ServerProcess, concurrency: int, csv_path: str, *, protocol: str = "grpc",
                      measurement_ms: int = 2000, max_trials: int = 5, request_count: int = 0,
                      timeout: float = 300.0, extra: Sequence[str] = ()) -> dict:
    """One perf_analyzer run at one concurrency; returns its CSV row (numbers as floats, latencies in
    microseconds as perf_analyzer writes them) plus "mode". Raises RuntimeError with its output on
    failure.

    Default: time windows of ``measurement_ms`` until three agree within 25% (at most ``max_trials``).
    If that never settles (a busy machine), or with ``request_count`` > 0, one measurement of exactly
    that many requests (default 50 per concurrent client, at least 200): bounded whatever the noise."""
    exe = perf_analyzer_binary()
    if exe is None:
        raise RuntimeError("perf_analyzer not found (pip install tritonclient[all]==2.51.0: later wheels lack it)")
    url = server.grpc_url if protocol == "grpc" else server.url
    header = (f"triton-grpc-protocol-{TOKEN_HEADER}" if protocol == "grpc" else TOKEN_HEADER) + f":{server.token}"
    cmd = [exe, "-m", server.model_name, "-u", url, "-i", protocol, "-H", header,
           "--concurrency-range", f"{concurrency}:{concurrency}", "--input-data", "random",
           "--stability-percentage", "25", "-f", csv_path, *extra]
    windows = ["--measurement-interval", str(measurement_ms), "--max-trials", str(max_trials)]
    counted = ["--request-count", str(request_count or max(200, 50 * concurrency))]
    deadline = time.monotonic() + timeout
    for mode, args in ([("count", counted)] if request_count else [("windows", windows), ("count", counted)]):
        if os.path.exists(csv_path):
            os.unlink(csv_path)
        left = deadline - time.monotonic()
        if left <= 1:
            raise RuntimeError(f"perf_analyzer: no time left of {timeout:.0f} s")
        try:
            out = subprocess.run(cmd + args, env=perf_analyzer_env(), capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired as e:
            tail = (e.stdout or b"")[-2000:]
            raise RuntimeError(f"perf_analyzer did not finish in {timeout:.0f} s: {tail!r}") from None
        text = (out.stdout + out.stderr).strip()
        if out.returncode == 0 and os.path.exists(csv_path):
            break
        if "stable measurement" not in text:  # a real failure, not noise: do not retry
            break
    if out.returncode != 0 or not os.path.exists(csv_path):
        last = text.splitlines()[-1] if text else ""
        raise RuntimeError(f"perf_analyzer exited {out.returncode} without a CSV ({last}):\n{text[-3000:]}")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise RuntimeError(f"perf_analyzer wrote an empty CSV:\n{text[-3000:]}")
    row = {k.strip(): float(v) for k, v in rows[-1].items() if k and v not in (None, "")}
    row["mode"] = mode
    return row


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    import torch

    gpu = torch.cuda.is_available()
    p = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=None,
                   help="torchvision models (GPU default: mobilenet_v3_large shufflenet_v2_x1_0; CPU: mobilenet_v3_small)")
    p.add_argument("--variant", nargs="+", choices=["fastconv", "baseline"], default=["fastconv", "baseline"])
    p.add_argument("--concurrency", nargs="+", type=int, default=None,
                   help="GPU default: 1 4 16 32 64 128; CPU: 1 4 8")
    p.add_argument("--image-size", type=int, default=None, help="GPU default 224, CPU 64")
    p.add_argument("--max-batch", type=int, default=None, help="GPU default 64, CPU 8")
    p.add_argument("--preferred-batch-sizes", default=None, help="e.g. 16,32,64")
    p.add_argument("--queue-delay-us", type=int, default=None, help="GPU default 500, CPU 5000")
    p.add_argument("--runner", default=None, help="server --runner (GPU default cuda-graphs)")
    p.add_argument("--instances", type=int, default=1, help="server --instances (model instances)")
    p.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    p.add_argument("--measurement-ms", type=int, default=None, help="perf_analyzer window (GPU 3000, CPU 1500)")
    p.add_argument("--request-count", type=int, default=0,
                   help="measure exactly this many requests per concurrency instead of stable time windows")
    p.add_argument("--threads", type=int, default=None, help="server torch threads (CPU default 1)")
    p.add_argument("--time-budget-min", type=float, default=0,
                   help="start no new server after this many minutes (0: no limit); the results so far are written")
    p.add_argument("--quick", action="store_true", help="one model, two concurrencies, short windows")
    p.add_argument("--out", help="results folder (default bench/results/<device>/serving/)")
    a = p.parse_args(argv)
    a.gpu = gpu
    a.model = a.model or (["mobilenet_v3_large", "shufflenet_v2_x1_0"] if gpu else ["mobilenet_v3_small"])
    a.concurrency = a.concurrency or ([1, 4, 16, 32, 64, 128] if gpu else [1, 4, 8])
    a.image_size = a.image_size or (224 if gpu else 64)
    a.max_batch = a.max_batch or (64 if gpu else 8)
    a.queue_delay_us = a.queue_delay_us if a.queue_delay_us is not None else (500 if gpu else 5000)
    a.measurement_ms = a.measurement_ms or (3000 if gpu else 1500)
    a.threads = a.threads if a.threads is not None else (0 if gpu else 1)
    if a.quick:
        a.model, a.concurrency, a.measurement_ms = a.model[:1], [1, max(a.concurrency)], min(a.measurement_ms, 1000)
    return a


def _server_args(a) -> list:
    args = ["--image-size", str(a.image_size), "--max-batch", str(a.max_batch),
            "--queue-delay-us", str(a.queue_delay_us), "--threads", str(a.threads)]
    if a.preferred_batch_sizes:
        args += ["--preferred-batch-sizes", a.preferred_batch_sizes]
    if a.runner:
        args += ["--runner", a.runner]
    if getattr(a, "instances", 1) > 1:
        args += ["--instances", str(a.instances)]
    return args


def _base_row(a, info, model: str, variant: str) -> dict:
    return {"timestamp": info.timestamp, "git_sha": info.git_sha, "device": info.device,
            "timing": "gpu_perf_analyzer" if a.gpu else "cpu_perf_analyzer", "model": model, "variant": variant,
            "image_size": a.image_size, "max_batch": a.max_batch, "preferred_batch_sizes": a.preferred_batch_sizes or "",
            "queue_delay_us": a.queue_delay_us, "runner": a.runner or ("cuda-graphs" if a.gpu else "eager"),
            "instances": getattr(a, "instances", 1), "protocol": a.protocol}


def measure_server(srv: ServerProcess, a, base: dict, workdir: str) -> list:
    """perf_analyzer at each of ``a.concurrency`` against a running server: one result row each."""
    rows = []
    for c in a.concurrency:
        before = srv.model_stats()
        path = os.path.join(workdir, f"{srv.model_name}_c{c}.csv")
        try:
            r = run_perf_analyzer(srv, c, path, protocol=a.protocol, measurement_ms=a.measurement_ms,
                                  request_count=a.request_count)
        except RuntimeError as e:
            rows.append({**base, "concurrency": c, "status": f"error: {str(e).splitlines()[0][:200]}"})
            print(f"[serving]   c={c}: {e}", file=sys.stderr)
            continue
        hist = batch_histogram(before, srv.model_stats())
        execs = sum(hist.values())
        infers = sum(b * n for b, n in hist.items())
        us = 1e-3  # perf_analyzer's latencies are in microseconds
        row = {**base, "concurrency": c, "status": "ok", "measurement": r["mode"],
               "throughput_infer_per_s": round(r["Inferences/Second"], 2),
               **{f"p{q}_ms": round(r[f"p{q} latency"] * us, 3) for q in (50, 90, 95, 99)},
               "avg_ms": round(r["Avg latency"] * us, 3) if "Avg latency" in r else "",
               "server_queue_ms": round(r["Server Queue"] * us, 3) if "Server Queue" in r else "",
               "server_compute_ms": round(r["Server Compute Infer"] * us, 3) if "Server Compute Infer" in r else "",
               "executions": execs, "inferences": infers,
               "mean_batch": round(infers / execs, 2) if execs else "",
               "max_batch_seen": max(hist) if hist else "",
               "batch_hist": " ".join(f"{b}:{n}" for b, n in hist.items())}
        rows.append(row)
        print(f"[serving]   c={c}: {row['throughput_infer_per_s']} infer/s, p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms, mean batch {row['mean_batch']}", file=sys.stderr, flush=True)
    return rows


def measure(a, info, model: str, variant: str, workdir: str) -> list:
    base = _base_row(a, info, model, variant)
    log = os.path.join(workdir, f"{model}_{variant}.log")
    print(f"[serving] {model} {variant}: starting the server", file=sys.stderr, flush=True)
    try:
        with ServerProcess(model, baseline=variant == "baseline", args=_server_args(a), log_path=log) as srv:
            return measure_server(srv, a, base, workdir)
    except RuntimeError as e:
        print(f"[serving] {model} {variant}: {e}", file=sys.stderr)
        return [{**base, "concurrency": "", "status": f"error: {str(e).splitlines()[0][:200]}"}]


def _num(v) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def compare_at_equal_p99(rows: list, model: str) -> Optional[dict]:
    """fastconv vs baseline for one model: each side's max throughput, and fastconv's best throughput
    among its points whose p99 is no worse than the baseline's p99 at the baseline's best point."""
    pts = {v: [(_num(r["throughput_infer_per_s"]), _num(r["p99_ms"]), r["concurrency"]) for r in rows
               if r["model"] == model and r["variant"] == v and _num(r.get("throughput_infer_per_s")) is not None]
           for v in ("fastconv", "baseline")}
    if not pts["fastconv"] or not pts["baseline"]:
        return None
    base_best = max(pts["baseline"])
    fast_best = max(pts["fastconv"])
    within = [p for p in pts["fastconv"] if p[1] <= base_best[1]]
    fast_eq = max(within) if within else None
    c64 = {v: next((p[1] for p in pts[v] if p[2] == 64), None) for v in pts}
    return {"baseline_max": base_best[0], "baseline_p99": base_best[1], "fastconv_max": fast_best[0],
            "fastconv_at_equal_p99": fast_eq[0] if fast_eq else None,
            "ratio_at_equal_p99": round(fast_eq[0] / base_best[0], 3) if fast_eq and base_best[0] else None,
            "p99_c64_fastconv": c64["fastconv"], "p99_c64_baseline": c64["baseline"]}


def write_markdown(path: Path, rows: list, a, info) -> None:
    label = "GPU" if a.gpu else "CPU (reference backend; says nothing about GPU serving)"
    lines = [f"# Serving: Triton Inference Server (PyTriton) + perf_analyzer, {info.device}", "",
             f"{label}. {info.timestamp}, git {info.git_sha}, torch {info.torch_version}.",
             f"Image {a.image_size}x{a.image_size} uint8 over {a.protocol}, max batch {a.max_batch}, preferred "
             f"{a.preferred_batch_sizes or 'none'}, queue delay {a.queue_delay_us} us, runner "
             f"{a.runner or ('cuda-graphs' if a.gpu else 'eager')}, {getattr(a, 'instances', 1)} instance(s); latencies are perf_analyzer's client-side ones.", ""]
    cols = ["model", "variant", "concurrency", "status", "measurement", "throughput_infer_per_s", "p50_ms", "p90_ms", "p99_ms",
            "server_queue_ms", "server_compute_ms", "mean_batch", "max_batch_seen"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    lines += ["", "## fastconv vs baseline", "",
              "Bar (issue #13): fastconv's max throughput >= 1.3x the baseline's at equal p99.", "",
              "| model | baseline max infer/s (p99 ms) | fastconv max infer/s | fastconv infer/s at p99 <= baseline's "
              "| ratio | p99 at c=64 fastconv / baseline (ms) |", "|---|---|---|---|---|---|"]
    for m in a.model:
        c = compare_at_equal_p99(rows, m)
        if c is None:
            lines.append(f"| {m} | missing data | | | | |")
            continue
        c = {k: "n/a" if v is None else v for k, v in c.items()}
        lines.append(f"| {m} | {c['baseline_max']} ({c['baseline_p99']}) | {c['fastconv_max']} | "
                     f"{c['fastconv_at_equal_p99']} | {c['ratio_at_equal_p99']} | "
                     f"{c['p99_c64_fastconv']} / {c['p99_c64_baseline']} |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, rows: list, a) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in a.model:
        for v, style in (("fastconv", "-o"), ("baseline", "--s")):
            pts = sorted((_num(r["throughput_infer_per_s"]), _num(r["p99_ms"]), r["concurrency"]) for r in rows
                         if r["model"] == m and r["variant"] == v and _num(r.get("throughput_infer_per_s")) is not None)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{m} {v}")
            for x, y, c in pts:
                ax.annotate(f"c{c}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("throughput (inferences/s)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title(f"Triton + perf_analyzer ({'GPU' if a.gpu else 'CPU, reference backend'})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_results(out: Path, rows: list, a, info, tag: str = "") -> list:
    """serving<tag>.csv, .md and (with matplotlib) .png under ``out``; returns the paths written."""
    paths = [out / f"serving{tag}.csv", out / f"serving{tag}.md"]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    write_markdown(paths[1], rows, a, info)
    if write_plot(out / f"serving{tag}.png", rows, a):
        paths.append(out / f"serving{tag}.png")
    return paths


def main(argv=None) -> int:
    a = parse_args(argv)
    from bench.common import results_dir, run_info

    info = run_info()
    out = Path(a.out) if a.out else results_dir(info) / "serving"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastconv-serving-") as work:
        t0 = time.monotonic()
        for m in a.model:
            for v in a.variant:
                if a.time_budget_min and time.monotonic() - t0 > 60 * a.time_budget_min:
                    print(f"[serving] time budget spent: {m} {v} not measured", file=sys.stderr)
                    rows.append({**_base_row(a, info, m, v), "concurrency": "", "status": "skipped: time budget"})
                    continue
                rows += measure(a, info, m, v, work)
        for f in glob.glob(os.path.join(work, "*.log")):  # keep the server logs next to the results
            os.replace(f, out / os.path.basename(f))
    tag = "_quick" if a.quick else ""
    written = write_results(out, rows, a, info, tag)
    print(f"[serving] wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0 if rows and all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
