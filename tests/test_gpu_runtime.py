"""GPU runtime contract of the fused backends: streams, CUDA graphs, concurrency, huge tensors.

- Every op launches on the *current* stream and never synchronises the host (checked with
  ``torch.cuda.set_sync_debug_mode("error")``), so it composes with streams and graph capture.
- Every op can be captured in a CUDA graph; replaying after refilling the static inputs gives the
  right answer for the new data.
- Two streams, and two host threads with a stream each, can run ops concurrently.
- An op whose input exceeds 2^31 elements is either correct (checked on the batch items whose
  offsets lie past 2^31) or rejected with an error that says so; never silently wrong.

All tests need a CUDA device (they are skipped without one) and are marked ``gpu``.
"""
from __future__ import annotations

import re
import threading

import pytest
import torch

from helpers import HAS_CUDA, assert_matches_reference
from sanitize_driver import FUSED, OPS, build, runnable, standard_cfgs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")]

CUDA = torch.device("cuda")
DT = torch.float16


def _params():
    out = []
    for op in OPS:
        for be in FUSED:
            ok, why = runnable(op, be, CUDA) if HAS_CUDA else (False, "no CUDA device")
            out.append(pytest.param(op, be, id=f"{op}-{be}", marks=[] if ok else [pytest.mark.skip(reason=why)]))
    return out


PARAMS = _params()


def _cfg(op, seed=0):
    """A real-size configuration in channels_last (the layout the fused kernels are tuned for)."""
    return dict(standard_cfgs(op, "real")[-1], seed=seed)


def _case(op, seed=0, dtype=DT):
    return build(op, _cfg(op, seed), dtype, CUDA)


def _assert_right(out, case, dtype=DT, what=""):
    """out (computed already) vs the fp64 reference of the case's current leaves."""
    assert_matches_reference(lambda *t: out, lambda *t: case.ref(list(t)), case.leaves, dtype, what=what)


def _warm(case, backend):
    """The first call compiles / autotunes (which synchronises); the contract is about later calls."""
    case.run(backend)
    torch.cuda.synchronize()


def _refill(dst_case, src_case):
    for d, s in zip(dst_case.leaves, src_case.leaves):
        if d is not None:
            d.copy_(s)


@pytest.mark.parametrize("op,backend", PARAMS)
def test_side_stream_no_sync(op, backend):
    """On a side stream whose x is rewritten behind a GPU busy-wait, the op must see the new x
    (it runs on the current stream) and must not synchronise the host."""
    case, new = _case(op, 0), _case(op, 1)
    _warm(case, backend)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        torch.cuda._sleep(20_000_000)  # keeps s busy so work on another stream would race ahead
        _refill(case, new)
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = case.run(backend)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    _assert_right(out, case, what=f"{op}/{backend} on a side stream")


@pytest.mark.parametrize("op,backend", PARAMS)
def test_cuda_graph_capture_replay(op, backend):
    case = _case(op, 0)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm up off the default stream, as capture requires
        for _ in range(2):
            case.run(backend)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = case.run(backend)
    for seed in (1, 2):
        _refill(case, _case(op, seed))
        g.replay()
        torch.cuda.synchronize()
        _assert_right(out, case, what=f"{op}/{backend} graph replay, seed {seed}")
    del g


@pytest.mark.parametrize("op,backend", PARAMS)
def test_two_streams_concurrently(op, backend):
    cases = [_case(op, 1), _case(op, 2)]
    for c in cases:
        _warm(c, backend)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    outs = [[], []]
    for st in streams:
        st.wait_stream(torch.cuda.current_stream())
    for _ in range(3):  # interleave launches so the two streams overlap on the device
        for i, (c, st) in enumerate(zip(cases, streams)):
            with torch.cuda.stream(st):
                outs[i].append(c.run(backend))
    torch.cuda.synchronize()
    for i, c in enumerate(cases):
        for o in outs[i]:
            assert torch.equal(o, outs[i][0])
        _assert_right(outs[i][0], c, what=f"{op}/{backend} stream {i}")


@pytest.mark.parametrize("op,backend", PARAMS)
def test_two_threads_concurrently(op, backend):
    cases = [_case(op, 3), _case(op, 4)]
    for c in cases:
        _warm(c, backend)
    outs, errors = [None, None], []

    def worker(i):
        try:
            st = torch.cuda.Stream()
            st.wait_stream(torch.cuda.default_stream())
            with torch.cuda.stream(st):  # the current stream is per thread
                res = [cases[i].run(backend) for _ in range(5)]
            st.synchronize()
            outs[i] = res
        except Exception as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, c in enumerate(cases):
        for o in outs[i]:
            assert torch.equal(o, outs[i][0])
        _assert_right(outs[i][0], c, what=f"{op}/{backend} thread {i}")


@pytest.mark.skipif(HAS_CUDA and torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("op,backend", PARAMS)
def test_second_device(op, backend):
    """Tensors on cuda:1 while cuda:0 is current: the op must switch devices (device guard)."""
    case = build(op, _cfg(op), DT, torch.device("cuda", 1))
    with torch.cuda.device(0):
        out = case.run(backend)
    assert out.device == torch.device("cuda", 1)
    torch.cuda.synchronize(1)
    _assert_right(out, case, what=f"{op}/{backend} on cuda:1")


# ---------------------------------------------------------------------------------------------
# tensors past 2^31 elements
# ---------------------------------------------------------------------------------------------

BIG_N, BIG_HW = 1024, (362, 363)  # x: 1024 x 16 x 362 x 363 = 2.15e9 elements > 2^31
BIG_CFG = {
    "dwpw_conv2d": dict(c=16, kout=16, k=3, dw_act="relu"),
    "inverted_residual": dict(c=16, kout=16, expand=32, k=3, residual=True),
    "channel_shuffle": dict(c=16, groups=4),
    "group_conv1x1": dict(c=16, kout=16, groups=2, shuffle_out=2, act="relu"),
    "shufflenet_v1_unit": dict(c=16, mid=8, kout=16, groups=2),
    "shufflenet_v2_unit": dict(c=16),
}
REJECT_MSG = r"(2\^31|2\*\*31|int32|32-bit|too large|too many elements|exceeds)"


@pytest.mark.slow
@pytest.mark.parametrize("op,backend", PARAMS)
def test_more_than_2_31_elements(op, backend):
    cfg = dict(BIG_CFG[op], n=1, h=4, w=4, layout="nchw")
    small = build(op, cfg, DT, CUDA)  # weights of the right shapes; x is replaced below
    shape = (BIG_N, cfg["c"]) + BIG_HW
    numel = BIG_N * cfg["c"] * BIG_HW[0] * BIG_HW[1]
    assert numel > 2**31
    need = 3 * numel * 2 + (2 << 30)  # x, output, one temporary, slack
    if torch.cuda.mem_get_info()[0] < need:
        pytest.skip(f"needs {need / 2**30:.0f} GiB free on the GPU")
    leaves = list(small.leaves)
    leaves[0] = torch.randn(shape, device=CUDA, dtype=DT)
    out = got = None
    try:
        try:
            out = small.run(backend, leaves)
            torch.cuda.synchronize()
        except (RuntimeError, ValueError) as e:
            # Rejected: allowed, if the message says why.
            assert re.search(REJECT_MSG, str(e)), f"{op}/{backend} failed on a >2^31 tensor without saying why: {e}"
            return
        assert out.shape[0] == BIG_N
        # Batch items whose offsets lie past 2^31 elements (and the first, as a control).
        for sl in (slice(0, 1), slice(BIG_N - 2, BIG_N)):
            sub = [leaves[0][sl]] + leaves[1:]
            if op == "dwpw_conv2d" and sub[5] is not None:
                sub[5] = sub[5][sl]
            got = out[sl]
            assert_matches_reference(lambda *t: got, lambda *t: small.ref(list(t)), sub, DT,
                                     what=f"{op}/{backend} >2^31 elements, batch items {sl}")
    finally:
        leaves = out = got = None
        torch.cuda.empty_cache()
