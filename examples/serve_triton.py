"""Serve a fastconv-optimised image classifier through Triton Inference Server (PyTriton).

PyTriton (``pip install nvidia-pytriton``) starts the real ``tritonserver`` binary; Triton's dynamic
batcher groups concurrent requests into batches and hands them to ``infer`` below, which runs them
through the model in one call. Any Triton client speaks to it (``tritonclient``, ``perf_analyzer``,
KServe v2 HTTP/gRPC).

    # GPU: fp16 + channels_last, fused blocks, one CUDA graph per batch-size bucket
    python examples/serve_triton.py --model mobilenet_v3_large --runner cuda-graphs
    # the same model without fastconv, for comparison
    python examples/serve_triton.py --model mobilenet_v3_large --runner cuda-graphs --baseline
    # CPU (reference backend: checks the plumbing, not fast)
    python examples/serve_triton.py --model mobilenet_v3_small --image-size 64 --threads 1

Model ``<name>`` (default: the torchvision model name, plus ``_baseline`` with ``--baseline``):
  input  ``images``  UINT8 (3, S, S) per request: raw RGB pixels, scaled and ImageNet-normalised on
                     the device (a quarter of the bytes of float32 through every copy); with
                     ``--input-dtype fp32``: FP32 (3, S, S), already normalised. Triton adds the batch
                     dimension.
  output ``logits``  FP32 (num_classes,)

It binds 127.0.0.1 only unless ``--address`` says otherwise. Triton's restricted endpoints
(statistics, model repository, shared memory, trace, logging) need the header
``triton-access-token`` (HTTP) / ``triton-grpc-protocol-triton-access-token`` (gRPC) with the token
from ``$FASTCONV_TRITON_TOKEN`` (or a random one, written to ``--token-file``). Inference and
health are open. Weights are random (``weights=None``): nothing is downloaded.

Every batch size 1..max_batch is run once before the server starts, so Triton reports the model
ready only when no request will pay for compilation, autotuning or graph capture.
SIGINT/SIGTERM shut the server down cleanly (no process, no /dev/shm segment left).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import threading
from typing import Callable, Optional, Sequence

import numpy as np
import torch

HOST = "127.0.0.1"
INPUT, OUTPUT = "images", "logits"
TOKEN_ENV = "FASTCONV_TRITON_TOKEN"
RUNNERS = ("eager", "cuda-graphs", "reduce-overhead")
INPUT_DTYPES = {"uint8": np.uint8, "fp32": np.float32}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def build_model(name: str, *, num_classes: int = 1000, optimize: bool = True, device: str = "cpu",
                half: Optional[bool] = None, channels_last: Optional[bool] = None, backend: str = "auto",
                seed: int = 0):
    """A torchvision classifier (random weights from ``seed``) in eval mode on ``device``; fp16 +
    channels_last on CUDA unless told otherwise; fused by fastconv.optimize when ``optimize``.
    Returns (model, report); report is None without ``optimize``."""
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes).eval()
    on_gpu = torch.device(device).type == "cuda"
    half = on_gpu if half is None else half
    channels_last = on_gpu if channels_last is None else channels_last
    model = model.to(device=device, dtype=torch.float16 if half else torch.float32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    report = None
    if optimize:
        # The drop-in step: fold BN, swap recognised blocks for fused fastconv modules.
        from fastconv.optimize import optimize as fc_optimize
        model, report = fc_optimize(model, backend=backend, inplace=True)
    return model, report


def batch_buckets(max_batch: int) -> list:
    """Powers of two up to max_batch, and max_batch itself: the shapes a CUDA graph is captured for."""
    return sorted({min(max_batch, 1 << i) for i in range(max_batch.bit_length() + 1)})


class _GraphRunner:
    """One CUDA graph per batch-size bucket; a batch is padded up to its bucket, so a replay costs one
    small copy in and out instead of per-kernel launch overhead (which dominates small CNNs)."""

    def __init__(self, model, example: torch.Tensor, max_batch: int, channels_last: bool):
        self.buckets = batch_buckets(max_batch)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        inputs = {b: example.new_zeros((b,) + tuple(example.shape[1:])).contiguous(memory_format=fmt)
                  for b in self.buckets}
        # Warm up on a side stream (lazy init, Triton compilation and autotuning, cuDNN plans) so none
        # of it lands inside a capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for x in inputs.values():
                for _ in range(3):
                    model(x)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        self.graphs = {}
        with torch.no_grad():
            for b, static_in in inputs.items():
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    static_out = model(static_in)
                self.graphs[b] = (g, static_in, static_out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        b = next(b for b in self.buckets if b >= n)
        g, static_in, static_out = self.graphs[b]
        static_in[:n].copy_(x)
        if n < b:
            static_in[n:].zero_()
        g.replay()
        return static_out[:n].clone()


class Predictor:
    """The model plus what a server does around it: host -> device, dtype and layout in, logits out.

    ``runner``: "eager"; "cuda-graphs" (one graph per bucket, see _GraphRunner); "reduce-overhead"
    (torch.compile's CUDA-graph mode on the same buckets).
    """

    def __init__(self, model, *, image_size: int, max_batch: int, device: str = "cpu", runner: str = "eager",
                 input_dtype: str = "uint8"):
        if runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
        if input_dtype not in INPUT_DTYPES:
            raise ValueError(f"input_dtype must be one of {tuple(INPUT_DTYPES)}, got {input_dtype!r}")
        self.input_dtype = INPUT_DTYPES[input_dtype]
        self.device = torch.device(device)
        if runner != "eager" and self.device.type != "cuda":
            raise ValueError(f"runner={runner!r} needs a CUDA device, got device={device!r}")
        self.model, self.image_size, self.max_batch, self.runner_name = model, image_size, max_batch, runner
        p = next(model.parameters())
        self.dtype = p.dtype
        self.channels_last = self.device.type == "cuda"
        self._mean = torch.tensor(_MEAN, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
        self._inv_std = (1.0 / torch.tensor(_STD, device=self.device)).to(self.dtype).view(1, 3, 1, 1)
        self._lock = threading.Lock()  # one batch at a time per predictor
        # One stream per predictor, so that several (--instances) overlap one's copies with another's
        # kernels; the warm-up, the capture and every request of a predictor run on it.
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        with self._on_stream():
            self._build_runner(model, runner)

    def _on_stream(self):
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def _build_runner(self, model, runner: str) -> None:
        image_size, max_batch = self.image_size, self.max_batch
        if runner == "cuda-graphs":
            example = torch.zeros(1, 3, image_size, image_size, device=self.device, dtype=self.dtype)
            self._run = _GraphRunner(model, example, max_batch, self.channels_last)
        elif runner == "reduce-overhead":
            # Static shapes padded to the buckets: a handful of graphs (under dynamo's recompile limit)
            # instead of one per batch size.
            compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True, dynamic=False)
            buckets = batch_buckets(max_batch)

            def run(x: torch.Tensor) -> torch.Tensor:
                n = x.shape[0]
                b = next(b for b in buckets if b >= n)
                if n < b:
                    x = torch.cat([x, x.new_zeros((b - n,) + tuple(x.shape[1:]))])
                    x = x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
                return compiled(x)[:n].clone()  # clone: the next replay overwrites the graph's output
            self._run = run
        else:
            self._run = model

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """(N, 3, S, S) uint8 pixels or float32 normalised -> the model's input on its device."""
        x = torch.from_numpy(images).to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = (x.to(self.dtype) * (1.0 / 255.0) - self._mean) * self._inv_std
        else:
            x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images: (N, 3, S, S) in the input dtype -> logits (N, num_classes) float32."""
        with self._lock, torch.no_grad(), self._on_stream():
            logits = self._run(self.prepare(images))
            return logits.float().cpu().numpy()  # .cpu() waits for this stream only

    def warmup(self) -> None:
        """Run every batch size once (compilation, autotuning and graph capture happen here, not in a
        request). Random data, not zeros: some kernels pick paths by value (e.g. subnormals)."""
        s = self.image_size
        gen = np.random.default_rng(0)
        for n in range(1, self.max_batch + 1):
            self(random_images(gen, n, s, self.input_dtype))
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def random_images(gen: np.random.Generator, n: int, size: int, dtype=np.uint8) -> np.ndarray:
    """(n, 3, size, size) test images in the wire format: uint8 pixels or float32 normalised values."""
    if np.dtype(dtype) == np.uint8:
        return gen.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    return gen.standard_normal((n, 3, size, size), dtype=np.float32)


def make_infer(predictor: Predictor) -> Callable:
    """PyTriton's callable: the requests Triton's dynamic batcher grouped -> one response each, from
    one model call on their concatenation.

    Triton checks every request against the model config (dtype, item shape, 1 <= n <= max batch)
    before it is queued, so a bad request never joins a batch. The checks here are a last line of
    defence: PyTriton can only fail a whole batch (an exception becomes the error of each of its
    requests; the server keeps serving)."""
    from pytriton.exceptions import PyTritonBadParameterError

    s = predictor.image_size
    item = (3, s, s)
    dtype = np.dtype(predictor.input_dtype)

    def infer(requests: Sequence[dict]) -> list:
        arrays = [r[INPUT] for r in requests]
        for a in arrays:
            if a.dtype != dtype or tuple(a.shape[1:]) != item:
                raise PyTritonBadParameterError(f"{INPUT}: expected {dtype} (N, 3, {s}, {s}), "
                                                f"got {a.dtype} {tuple(a.shape)}")
            if a.shape[0] == 0:
                raise PyTritonBadParameterError(f"{INPUT}: empty batch (0 images)")
        logits = predictor(np.concatenate(arrays) if len(arrays) > 1 else arrays[0])
        out, start = [], 0
        for a in arrays:
            out.append({OUTPUT: logits[start:start + a.shape[0]]})
            start += a.shape[0]
        return out

    return infer


def _parse_sizes(text: str) -> list:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mobilenet_v3_large", help="a torchvision classification model name")
    ap.add_argument("--model-name", default=None, help="name in Triton (default: --model, + _baseline)")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--baseline", action="store_true", help="serve the same model without fastconv")
    ap.add_argument("--backend", default="auto", help="fastconv backend (default auto; CPU: reference)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--runner", choices=RUNNERS, default=None,
                    help="how the model runs (default: cuda-graphs on CUDA, eager on CPU)")
    ap.add_argument("--fp32", action="store_true", help="keep fp32 on GPU (default there: fp16)")
    ap.add_argument("--input-dtype", choices=tuple(INPUT_DTYPES), default="uint8",
                    help="wire format of 'images': uint8 pixels (normalised on the device) or fp32 normalised")
    ap.add_argument("--max-batch", type=int, default=32, help="Triton max_batch_size")
    ap.add_argument("--instances", type=int, default=1,
                    help="model instances (each its own CUDA stream and graphs; Triton runs them concurrently)")
    ap.add_argument("--preferred-batch-sizes", type=_parse_sizes, default=None,
                    help="dynamic batcher preferred sizes, e.g. 8,16,32 (default: none)")
    ap.add_argument("--queue-delay-us", type=int, default=2000,
                    help="dynamic batcher max_queue_delay_microseconds: how long a request waits for company")
    ap.add_argument("--address", default=HOST, help="bind address (default 127.0.0.1, loopback only)")
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics (0: off)")
    ap.add_argument("--token-file", default=None,
                    help=f"write the access token here (mode 0600) when ${TOKEN_ENV} is not set")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--log-verbose", type=int, default=0, help="tritonserver verbosity")
    args = ap.parse_args(argv)
    if args.max_batch < 1:
        ap.error("--max-batch must be >= 1")
    bad = [b for b in args.preferred_batch_sizes or [] if not 1 <= b <= args.max_batch]
    if bad:
        ap.error(f"--preferred-batch-sizes {bad} outside 1..--max-batch ({args.max_batch})")
    if args.queue_delay_us < 0:
        ap.error("--queue-delay-us must be >= 0")
    if args.instances < 1:
        ap.error("--instances must be >= 1")
    if args.instances > 1 and args.runner == "reduce-overhead":
        ap.error("--runner reduce-overhead keeps its CUDA graphs per thread: use one instance or cuda-graphs")
    return args


def _access_token(token_file: Optional[str]) -> str:
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token
    token = secrets.token_urlsafe(32)
    if token_file:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
    return token


def _python_libdir_first() -> None:
    """Triton's Python backend stub loads libpython from the library path; with a venv built on another
    Python (e.g. pyenv) it would pick the system one and fail. Put this interpreter's LIBDIR first;
    tritonserver is a child process, so setting it here is enough."""
    import sysconfig

    libdir = sysconfig.get_config_var("LIBDIR")
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if libdir and libdir not in paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir] + paths)


def _check_numpy() -> None:
    """PyTriton 0.7 (and tritonclient 2.51) require numpy < 2; under numpy 2.4 the server answers
    every request with an empty output tensor instead of failing. Refuse to start instead."""
    if int(np.__version__.split(".")[0]) >= 2 and os.environ.get("FASTCONV_ALLOW_NUMPY2") != "1":
        raise SystemExit(f"serve_triton: numpy {np.__version__} is installed; PyTriton 0.7 needs numpy < 2 "
                         "(under numpy 2 its responses come back empty). Install numpy<2 in this environment "
                         "(see examples/README.md), or set FASTCONV_ALLOW_NUMPY2=1 to try anyway.")


def main(argv=None) -> None:
    args = parse_args(argv)
    _check_numpy()
    if args.threads:
        torch.set_num_threads(args.threads)
    runner = args.runner or ("cuda-graphs" if torch.device(args.device).type == "cuda" else "eager")
    model, report = build_model(args.model, num_classes=args.num_classes, optimize=not args.baseline,
                                device=args.device, half=False if args.fp32 else None, backend=args.backend,
                                seed=args.seed)
    if report is not None:
        print(report, file=sys.stderr)
    # The instances share the weights; each has its own stream, graphs and input/output buffers.
    predictors = [Predictor(model, image_size=args.image_size, max_batch=args.max_batch, device=args.device,
                            runner=runner, input_dtype=args.input_dtype) for _ in range(args.instances)]
    for p in predictors:
        p.warmup()

    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    _python_libdir_first()
    name = args.model_name or (args.model + ("_baseline" if args.baseline else ""))
    config = TritonConfig(http_address=args.address, http_port=args.http_port,
                          grpc_address=args.address, grpc_port=args.grpc_port,
                          allow_metrics=args.metrics_port > 0,
                          metrics_address=args.address if args.metrics_port > 0 else None,
                          metrics_port=args.metrics_port if args.metrics_port > 0 else None,
                          exit_timeout_secs=5, log_verbose=args.log_verbose)
    security = TritonSecurityConfig(access_token=_access_token(args.token_file))
    batcher = DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us,
                             preferred_batch_size=args.preferred_batch_sizes)
    s = args.image_size

    # A background process started by a non-interactive shell ignores SIGINT; SIGTERM would kill us
    # before Triton's context manager cleans up. Both become KeyboardInterrupt -> orderly stop.
    def _stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    try:
        with Triton(config=config, security_config=security) as triton:
            triton.bind(model_name=name, infer_func=[make_infer(p) for p in predictors],
                        inputs=[Tensor(name=INPUT, dtype=predictors[0].input_dtype, shape=(3, s, s))],
                        outputs=[Tensor(name=OUTPUT, dtype=np.float32, shape=(args.num_classes,))],
                        config=ModelConfig(max_batch_size=args.max_batch, batcher=batcher),
                        strict=True)
            print(f"serving {name} ({'baseline' if args.baseline else 'fastconv'}, {args.device}, {runner}) on "
                  f"http://{args.address}:{args.http_port} grpc {args.address}:{args.grpc_port} "
                  f"(max batch {args.max_batch}, preferred {args.preferred_batch_sizes}, "
                  f"queue delay {args.queue_delay_us} us)", file=sys.stderr, flush=True)
            triton.serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
