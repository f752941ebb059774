"""A small image-classification server with dynamic batching, to show fastconv in a serving path.

Standard library only (http.server + threading) on top of torch/torchvision/fastconv. It listens on
127.0.0.1 only. Requests are queued; one worker thread takes the first request, waits up to
``--batch-window-ms`` for more (up to ``--max-batch``), runs them as one batch and answers each.

    python examples/serve.py --model mobilenet_v3_large --optimize --port 8080
    python examples/serve.py --model shufflenet_v2_x1_0 --optimize --cuda-graphs   # GPU

Endpoints:
  POST /predict   body: one image, (3, S, S) as raw uint8 (3*S*S bytes, scaled by 1/255 and
                  ImageNet-normalised) or float32 little-endian (4*3*S*S bytes, used as is).
                  Answer: {"top5": [[class, prob], ...], "batch": n, "queue_ms": q, "infer_ms": t}
  GET  /health    {"status": "ok", "model": ..., "device": ..., "optimized": ..., "report": ...}
  GET  /stats     request/batch counters and the batch-size histogram

Weights are random (torchvision ``weights=None``): nothing is downloaded. Swap in your own model.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import torch

HOST = "127.0.0.1"
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def build_model(name: str, *, num_classes: int = 1000, optimize: bool = False, device: str = "cpu",
                half: Optional[bool] = None, channels_last: Optional[bool] = None, backend: str = "auto"):
    """A torchvision classifier (random weights) in eval mode on ``device``; fp16 + channels_last on
    CUDA unless told otherwise; fused by fastconv.optimize when ``optimize``. Returns (model, report)."""
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes).eval()
    on_gpu = torch.device(device).type == "cuda"
    half = on_gpu if half is None else half
    channels_last = on_gpu if channels_last is None else channels_last
    model = model.to(device=device, dtype=torch.float16 if half else torch.float32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    report = None
    if optimize:
        # Drop-in step: fold BN, swap recognised blocks for fused fastconv modules.
        from fastconv.optimize import optimize as fc_optimize
        model, report = fc_optimize(model, backend=backend, inplace=True)
    return model, report


class _GraphRunner:
    """One CUDA graph per batch-size bucket (powers of two up to max_batch); a batch is padded up to
    its bucket, so replay costs one small copy in and out instead of per-kernel launch overhead."""

    def __init__(self, model, example: torch.Tensor, max_batch: int, channels_last: bool):
        self.buckets = sorted({min(max_batch, 1 << i) for i in range(max_batch.bit_length() + 1)})
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        inputs = {b: example.new_zeros((b,) + tuple(example.shape[1:])).contiguous(memory_format=fmt)
                  for b in self.buckets}
        # Warm up on a side stream (lazy init, Triton compilation and autotuning, cuDNN plans) so
        # nothing of that lands inside a capture.
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


class _HTTPServer(ThreadingHTTPServer):
    # The default listen backlog (5) drops SYNs when many clients connect at once, which shows up
    # as 1 s (SYN retransmit) latency outliers.
    request_queue_size = 512


class InferenceServer:
    """Dynamic-batching HTTP server around ``model``. ``start()`` returns the bound port."""

    def __init__(self, model, *, image_size: int = 224, device: str = "cpu", max_batch: int = 32,
                 batch_window_ms: float = 2.0, cuda_graphs: bool = False, channels_last: Optional[bool] = None,
                 info: Optional[dict] = None):
        self.model = model
        self.image_size = image_size
        self.device = torch.device(device)
        p = next(model.parameters())
        self.dtype = p.dtype
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        self.max_batch = max_batch
        self.window = batch_window_ms / 1000.0
        self.info = dict(info or {})
        self.queue: "queue.Queue" = queue.Queue()
        self.stats = {"requests": 0, "batches": 0, "errors": 0, "batch_hist": {}}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._threads: list[threading.Thread] = []
        self.runner = self._forward
        if cuda_graphs:
            if self.device.type != "cuda":
                raise RuntimeError("--cuda-graphs needs a CUDA device")
            example = self._prepare(torch.zeros(1, 3, image_size, image_size))
            self.runner = _GraphRunner(model, example, max_batch, self.channels_last)
        self.info["cuda_graphs"] = cuda_graphs

    # -- model side ------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)

    def decode(self, body: bytes) -> torch.Tensor:
        """One request body -> (3, S, S) float32 CPU tensor."""
        s = self.image_size
        n = 3 * s * s
        if len(body) == n:
            x = torch.frombuffer(bytearray(body), dtype=torch.uint8).view(1, 3, s, s).float() / 255.0
            return ((x - _MEAN) / _STD)[0]
        if len(body) == 4 * n:
            return torch.frombuffer(bytearray(body), dtype=torch.float32).view(3, s, s)
        raise ValueError(f"body must be {n} bytes (uint8 3x{s}x{s}) or {4 * n} (float32), got {len(body)}")

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.perf_counter() + self.window
            while len(batch) < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list) -> None:
        t0 = time.perf_counter()
        try:
            x = self._prepare(torch.stack([item[0] for item in batch]))
            logits = self.runner(x)
            probs = torch.softmax(logits.float(), dim=1)
            top = probs.topk(min(5, probs.shape[1]), dim=1)
            vals, idx = top.values.cpu().tolist(), top.indices.cpu().tolist()
        except Exception as e:  # answer every waiting request instead of hanging them
            for _, fut, _ in batch:
                fut.set_exception(e)
            with self._lock:
                self.stats["errors"] += len(batch)
            return
        infer_ms = (time.perf_counter() - t0) * 1000
        for i, (_, fut, t_in) in enumerate(batch):
            fut.set_result({"top5": [[c, round(p, 6)] for c, p in zip(idx[i], vals[i])], "batch": len(batch),
                            "queue_ms": round((t0 - t_in) * 1000, 3), "infer_ms": round(infer_ms, 3)})
        with self._lock:
            self.stats["requests"] += len(batch)
            self.stats["batches"] += 1
            h = self.stats["batch_hist"]
            h[len(batch)] = h.get(len(batch), 0) + 1

    def submit(self, image: torch.Tensor) -> Future:
        fut: Future = Future()
        self.queue.put((image, fut, time.perf_counter()))
        return fut

    # -- HTTP side -------------------------------------------------------------------------
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so a load generator reuses connections
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

            def log_message(self, fmt, *args):  # quiet: one line per request would dominate the cost
                pass

            def _send(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/health":
                    self._send(200, {"status": "ok", **server.info})
                elif self.path == "/stats":
                    with server._lock:
                        self._send(200, json.loads(json.dumps(server.stats)))
                else:
                    self._send(404, {"error": f"no route {self.path}"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != "/predict":
                    self._send(404, {"error": f"no route {self.path}"})
                    return
                try:
                    image = server.decode(body)
                except ValueError as e:
                    self._send(400, {"error": str(e)})
                    return
                try:
                    self._send(200, server.submit(image).result(timeout=60))
                except Exception as e:
                    self._send(500, {"error": f"{type(e).__name__}: {e}"})

        return Handler

    def start(self, port: int = 0) -> int:
        """Bind 127.0.0.1:port (0 = any free port), start the HTTP and batching threads; return the port."""
        self._httpd = _HTTPServer((HOST, port), self._handler())
        self._httpd.daemon_threads = True
        self._threads = [threading.Thread(target=self._worker, name="batcher", daemon=True),
                         threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                          name="http", daemon=True)]
        for t in self._threads:
            t.start()
        return self._httpd.server_address[1]

    def shutdown(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mobilenet_v3_large", help="a torchvision classification model name")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--batch-window-ms", type=float, default=2.0,
                    help="how long the first request of a batch waits for company")
    ap.add_argument("--optimize", action="store_true", help="fuse blocks with fastconv.optimize")
    ap.add_argument("--backend", default="auto", help="fastconv backend for fused blocks")
    ap.add_argument("--cuda-graphs", action="store_true", help="capture one CUDA graph per batch-size bucket")
    ap.add_argument("--fp32", action="store_true", help="keep fp32 on GPU (default there: fp16)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads (0: torch's default); on a busy CPU host 1 is often fastest")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, report = build_model(args.model, num_classes=args.num_classes, optimize=args.optimize,
                                device=args.device, half=False if args.fp32 else None, backend=args.backend)
    if report is not None:
        print(report, file=sys.stderr)
    info = {"model": args.model, "device": args.device, "optimized": args.optimize,
            "replaced": report.num_replaced if report is not None else 0, "pid": os.getpid()}
    server = InferenceServer(model, image_size=args.image_size, device=args.device, max_batch=args.max_batch,
                             batch_window_ms=args.batch_window_ms, cuda_graphs=args.cuda_graphs, info=info)
    port = server.start(args.port)
    print(f"serving {args.model} on http://{HOST}:{port} (max batch {args.max_batch}, "
          f"window {args.batch_window_ms} ms, optimize={args.optimize}, cuda_graphs={args.cuda_graphs})",
          file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
