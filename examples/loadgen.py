"""Closed-loop load generator for examples/serve.py, loopback only, bounded in count and in time.

    python examples/loadgen.py --port 8080 --requests 2000 --duration 30 --concurrency 32

``--concurrency`` threads each keep one keep-alive connection and send requests back to back until
``--requests`` have been sent in total or ``--duration`` seconds have passed, whichever comes first.
Prints one summary line and then one JSON object (throughput, p50/p90/p99/max latency in ms,
errors, the server's batch histogram); ``--json-out`` also writes the JSON to a file.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from typing import Optional

HOST = "127.0.0.1"


def _percentile(sorted_vals: list, q: float) -> Optional[float]:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def run(port: int, *, requests: int = 1000, duration: float = 30.0, concurrency: int = 8,
        image_size: int = 224, warmup: int = 0, timeout: float = 60.0) -> dict:
    """Send at most ``requests`` POST /predict within ``duration`` seconds; return the summary dict."""
    if requests < 1 or duration <= 0 or concurrency < 1:
        raise ValueError("requests, duration and concurrency must be positive")
    body = os.urandom(3 * image_size * image_size)  # a uint8 image
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}

    def one(conn) -> int:
        conn.request("POST", "/predict", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status

    if warmup:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        for _ in range(warmup):
            one(conn)
        conn.close()

    lock = threading.Lock()
    budget = [requests]
    latencies: list = []
    errors: list = []
    t_start = time.perf_counter()
    t_end = t_start + duration

    def worker():
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            while time.perf_counter() < t_end:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    status = one(conn)
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
                    continue
                dt = (time.perf_counter() - t0) * 1000.0
                with lock:
                    if status == 200:
                        latencies.append(dt)
                    else:
                        errors.append(f"HTTP {status}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + timeout + 5)
    elapsed = time.perf_counter() - t_start

    stats = None
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", "/stats")
        stats = json.loads(conn.getresponse().read())
        conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        pass

    lat = sorted(latencies)
    return {
        "port": port, "concurrency": concurrency, "image_size": image_size,
        "requests_ok": len(lat), "errors": len(errors), "first_errors": errors[:5],
        "elapsed_s": round(elapsed, 3),
        "throughput_rps": round(len(lat) / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": {k: (round(v, 3) if v is not None else None) for k, v in
                       (("p50", _percentile(lat, 50)), ("p90", _percentile(lat, 90)),
                        ("p99", _percentile(lat, 99)), ("max", lat[-1] if lat else None))},
        "server_stats": stats,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080, help="server port on 127.0.0.1")
    ap.add_argument("--requests", type=int, default=1000, help="stop after this many requests in total")
    ap.add_argument("--duration", type=float, default=30.0, help="stop after this many seconds")
    ap.add_argument("--concurrency", type=int, default=8, help="parallel keep-alive connections")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=10, help="requests sent (and not timed) first")
    ap.add_argument("--json-out", help="also write the JSON summary here")
    args = ap.parse_args(argv)
    res = run(args.port, requests=args.requests, duration=args.duration, concurrency=args.concurrency,
              image_size=args.image_size, warmup=args.warmup)
    lat = res["latency_ms"]
    print(f"{res['requests_ok']} ok, {res['errors']} errors in {res['elapsed_s']} s: "
          f"{res['throughput_rps']} req/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms "
          f"(concurrency {args.concurrency})")
    print(json.dumps(res))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=2)
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
