"""Serving through Triton Inference Server (examples/serve_triton.py via PyTriton; bench/serving.py).

CPU: mobilenet_v3_small, 10 classes, 32x32, fastconv's reference backend, one server subprocess on
free loopback ports for the whole module. Every wait is bounded (server start, each request,
perf_analyzer, shutdown) and the server's process group is killed in the fixture's finalizer, so a
server that never comes up fails the tests instead of hanging them.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import glob
import importlib.util
import os
import time

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (pip install -r requirements-dev.txt)")
httpclient = pytest.importorskip("tritonclient.http",
                                 reason="tritonclient[all] is not installed (pip install -r requirements-dev.txt)")
from tritonclient.utils import InferenceServerException  # noqa: E402

from bench import serving  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL, CLASSES, SIZE, MAX_BATCH, SEED = "mobilenet_v3_small", 10, 32, 8, 3
SERVER_ARGS = ["--num-classes", str(CLASSES), "--image-size", str(SIZE), "--max-batch", str(MAX_BATCH),
               "--preferred-batch-sizes", "4,8", "--queue-delay-us", "50000", "--threads", "1",
               "--backend", "reference", "--seed", str(SEED)]
TIMEOUT = 60.0  # seconds, any one request


def _load_example():
    spec = importlib.util.spec_from_file_location("fastconv_example_serve_triton",
                                                  os.path.join(ROOT, "examples", "serve_triton.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


st = _load_example()


@pytest.fixture(scope="module")
def server():
    shm_before = set(glob.glob("/dev/shm/*"))
    srv = serving.ServerProcess(MODEL, args=SERVER_ARGS, ready_timeout=150, stop_timeout=30)
    try:
        try:
            srv.start()
        except RuntimeError as e:
            pytest.fail(f"the Triton server did not start: {e}")
        srv.shm_before = shm_before
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def local():
    """The same model, built the same way, run in this process: what the server must answer."""
    model, report = st.build_model(MODEL, num_classes=CLASSES, optimize=True, backend="reference", seed=SEED)
    assert report.num_replaced > 0
    return st.Predictor(model, image_size=SIZE, max_batch=MAX_BATCH)


def _client(srv):
    return httpclient.InferenceServerClient(srv.url, concurrency=16, connection_timeout=TIMEOUT,
                                            network_timeout=TIMEOUT)


def _input(arr, dtype="UINT8", name=st.INPUT):
    i = httpclient.InferInput(name, list(arr.shape), dtype)
    i.set_data_from_numpy(arr)
    return i


def _images(n, seed):
    return st.random_images(np.random.default_rng(seed), n, SIZE)


def _check_logits(got, want):
    assert got.shape == want.shape and got.dtype == np.float32
    scale = float(np.abs(want).max())
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * scale)


def test_concurrent_requests_match_local_model_and_are_batched(server, local):
    images = _images(24, seed=1)
    want = local(images)
    # Distinct images give distinct logits, so the comparison below would notice swapped responses.
    assert not np.allclose(want[0], want[1], rtol=1e-3, atol=0)
    client = _client(server)
    try:
        before = server.model_stats()
        pending = [client.async_infer(server.model_name, [_input(images[i:i + 1])], request_id=str(i))
                   for i in range(len(images))]
        results = [p.get_result(timeout=TIMEOUT) for p in pending]
        # a request of several images is split back correctly, too
        multi = client.infer(server.model_name, [_input(images[:3])], timeout=int(TIMEOUT * 1e6))
        after = server.model_stats()
    finally:
        client.close()
    for i, r in enumerate(results):
        _check_logits(r.as_numpy(st.OUTPUT), want[i:i + 1])
    _check_logits(multi.as_numpy(st.OUTPUT), want[:3])
    hist = serving.batch_histogram(before, after)
    assert sum(b * n for b, n in hist.items()) == len(images) + 3, hist
    assert max(hist) > 1, f"the dynamic batcher formed no batch larger than 1: {hist}"
    assert max(hist) <= MAX_BATCH, hist


def test_bad_requests_fail_cleanly_and_good_ones_keep_succeeding(server, local):
    good = _images(1, seed=2)
    want = local(good)
    client = _client(server)
    url = f"http://{server.url}/v2/models/{server.model_name}/infer"
    bad = {
        "wrong shape": lambda: client.infer(server.model_name, [_input(_images(2, 0)[:, :, :-1])]),
        "wrong dtype": lambda: client.infer(server.model_name, [_input(_images(1, 0).astype(np.float32), "FP32")]),
        "empty batch": lambda: client.infer(server.model_name, [_input(np.zeros((0, 3, SIZE, SIZE), np.uint8))]),
        "batch too large": lambda: client.infer(server.model_name, [_input(_images(MAX_BATCH + 1, 0))]),
        "wrong input name": lambda: client.infer(server.model_name, [_input(good, name="pixels")]),
        "unknown model": lambda: client.infer("no_such_model", [_input(good)]),
    }
    expect = {"wrong shape": "shape", "wrong dtype": "data-type", "empty batch": "byte size",
              "batch too large": "batch-size", "wrong input name": "pixels", "unknown model": "no_such_model"}
    try:
        # good requests in flight while the bad ones arrive: the bad ones must not take them down
        inflight = [client.async_infer(server.model_name, [_input(good)]) for _ in range(6)]
        for what, send in bad.items():
            with pytest.raises(InferenceServerException) as e:
                send()
            assert expect[what] in str(e.value), (what, str(e.value))
            _check_logits(client.infer(server.model_name, [_input(good)]).as_numpy(st.OUTPUT), want)
        garbage = [os.urandom(333), b"\x00" * 64, b'{"inputs": [{"name": "images", "shape": [1, 3, 32, 32], '
                                                  b'"datatype": "UINT8", "data": [1, 2]}]}']
        for body in garbage:
            code, text = serving._http(url, data=body, timeout=TIMEOUT)
            assert 400 <= code < 600 and b"error" in text, (code, text[:200])
            _check_logits(client.infer(server.model_name, [_input(good)]).as_numpy(st.OUTPUT), want)
        for p in inflight:
            _check_logits(p.get_result(timeout=TIMEOUT).as_numpy(st.OUTPUT), want)
    finally:
        client.close()
    assert server.proc.poll() is None, "the server died"


def _listening_addresses(port: int) -> set:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.add(addr)
    return found


def test_loopback_only_and_restricted_endpoints_need_the_token(server):
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1
    for port in (server.http_port, server.grpc_port):
        addrs = _listening_addresses(port)
        assert addrs and addrs <= loopback, (port, addrs)
    base = f"http://{server.url}"
    for path, data in (("/v2/models/stats", None), (f"/v2/models/{server.model_name}/stats", None),
                       ("/v2/repository/index", b"{}"), ("/v2/logging", None)):
        assert serving._http(base + path, data=data)[0] == 403, path
        assert serving._http(base + path, data=data, token="not-the-token")[0] == 403, path
    assert serving._http(base + "/v2/models/stats", token=server.token)[0] == 200
    # inference and health stay open
    assert serving._http(base + "/v2/health/ready")[0] == 200


def test_perf_analyzer_writes_csv(server, tmp_path):
    """A short, bounded perf_analyzer run through bench/serving.py's own path: CSV, Markdown, plot."""
    a = argparse.Namespace(gpu=False, model=[MODEL], concurrency=[4], image_size=SIZE, max_batch=MAX_BATCH,
                           preferred_batch_sizes="4,8", queue_delay_us=50000, runner=None, protocol="grpc",
                           measurement_ms=1000, request_count=40)
    info = argparse.Namespace(timestamp="t", git_sha="g", device="cpu", torch_version=torch.__version__)
    t0 = time.monotonic()
    rows = serving.measure_server(server, a, serving._base_row(a, info, MODEL, "fastconv"), str(tmp_path))
    assert time.monotonic() - t0 < 120
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    r = rows[0]
    assert r["throughput_infer_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"], r
    assert r["inferences"] >= 40 and r["executions"] >= 1, r
    with open(tmp_path / f"{MODEL}_c4.csv") as f:  # perf_analyzer's own CSV
        raw = list(csv.DictReader(f))
    assert raw and float(raw[0]["Inferences/Second"]) > 0 and float(raw[0]["p99 latency"]) > 0
    paths = serving.write_results(tmp_path, rows, a, info)
    with open(paths[0]) as f:
        written = list(csv.DictReader(f))
    assert written[0]["model"] == MODEL and float(written[0]["p99_ms"]) == r["p99_ms"]
    assert "| mobilenet_v3_small | fastconv | 4 | ok |" in paths[1].read_text()


def test_shutdown_leaves_nothing_behind(server):
    """Must stay the last test that uses `server` (pytest keeps file order): an orderly SIGTERM stop, then no process, segment or port is left."""
    pid = server.proc.pid
    assert server.shm_segments(), "PyTriton's shared memory was expected while serving"
    t0 = time.monotonic()
    assert server.stop(), "the orderly shutdown did not finish; the process group had to be killed"
    assert time.monotonic() - t0 < 60
    assert not server.group_alive()
    assert not glob.glob(f"/dev/shm/pytrtion{pid}-*")
    assert not {p for p in set(glob.glob("/dev/shm/*")) - server.shm_before if "pytrtion" in p}
    assert not _listening_addresses(server.http_port) and not _listening_addresses(server.grpc_port)


def test_server_that_cannot_start_fails_fast():
    """A server that dies during start-up raises (with its log) instead of hanging, and leaves no process."""
    srv = serving.ServerProcess("no_such_torchvision_model", args=["--image-size", "32"], ready_timeout=120)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with status"):
        with srv:
            pass
    assert time.monotonic() - t0 < 120
    assert not srv.group_alive()


# ---------------------------------------------------------------------------------------------
# the example's pieces, in process
# ---------------------------------------------------------------------------------------------

def test_baseline_and_fastconv_models_agree(local):
    base, report = st.build_model(MODEL, num_classes=CLASSES, optimize=False, seed=SEED)
    assert report is None
    assert not any(type(m).__module__.startswith("fastconv") for m in base.modules())
    assert any(type(m).__module__.startswith("fastconv") for m in local.model.modules())
    x = _images(3, seed=4)
    _check_logits(local(x), st.Predictor(base, image_size=SIZE, max_batch=MAX_BATCH)(x))


def test_infer_callable_splits_a_batch_and_refuses_bad_requests(local):
    """The PyTriton callable on its own: responses line up with requests of different sizes; a request
    that reached it wrong (Triton normally rejects these first) raises a clear error."""
    from pytriton.exceptions import PyTritonBadParameterError

    infer = st.make_infer(local)
    x = _images(6, seed=6)
    want = local(x)
    out = infer([{st.INPUT: x[:1]}, {st.INPUT: x[1:4]}, {st.INPUT: x[4:]}])
    assert [o[st.OUTPUT].shape[0] for o in out] == [1, 3, 2]
    _check_logits(np.concatenate([o[st.OUTPUT] for o in out]), want)
    for bad, match in ((x[:0], "empty batch"), (x[:1, :, :-1], "expected uint8"),
                       (x[:1].astype(np.float32), "expected uint8")):
        with pytest.raises(PyTritonBadParameterError, match=match):
            infer([{st.INPUT: x[:1]}, {st.INPUT: bad}])


def test_predictor_and_options_validate():
    model, _ = st.build_model(MODEL, num_classes=CLASSES, optimize=False)
    with pytest.raises(ValueError, match="runner"):
        st.Predictor(model, image_size=SIZE, max_batch=2, runner="cuda-graphs")  # CPU
    with pytest.raises(ValueError, match="input_dtype"):
        st.Predictor(model, image_size=SIZE, max_batch=2, input_dtype="int16")
    for bad in (["--preferred-batch-sizes", "4,64", "--max-batch", "8"], ["--max-batch", "0"],
                ["--queue-delay-us", "-1"], ["--preferred-batch-sizes", "a,b"], ["--instances", "0"],
                ["--instances", "2", "--runner", "reduce-overhead"]):
        with pytest.raises(SystemExit):
            st.parse_args(bad)
    a = st.parse_args(["--preferred-batch-sizes", "4,8", "--max-batch", "8"])
    assert a.preferred_batch_sizes == [4, 8] and a.address == "127.0.0.1"
    assert st.batch_buckets(6) == [1, 2, 4, 6] and st.batch_buckets(8) == [1, 2, 4, 8]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("runner", ["cuda-graphs", "eager"])
def test_cuda_runners_match_eager(runner):
    """fp16 + channels_last on the GPU: the graph runner answers like the plain model, at every size."""
    model, _ = st.build_model(MODEL, num_classes=CLASSES, optimize=True, device="cuda", seed=SEED)
    p = st.Predictor(model, image_size=64, max_batch=8, device="cuda", runner=runner)
    p.warmup()
    ref = st.Predictor(model, image_size=64, max_batch=8, device="cuda")
    x = st.random_images(np.random.default_rng(5), 8, 64)
    for n in (1, 3, 8):
        got, want = p(x[:n]), ref(x[:n])
        assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max() + 1e-6
