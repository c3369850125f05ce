"""Load on `iaa serve` over loopback: N requests from C concurrent clients, each one photo.

Starts `iaa serve RUN` in a subprocess on a free loopback port, waits for /healthz, sends the requests
(httpx, a thread per client), and reports errors, p50/p95 latency, images/s, and the server's resident
memory before and after. Bounded in count and time; stops the server itself.

    python benchmarks/bench_serve.py --run runs/demo_efficientnet_lite0 --requests 300 --clients 8
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench_common import save_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def photos(side: int, n: int = 10) -> list:
    """The demo's photos shrunk to `side` px, as JPEG bytes."""
    from PIL import Image

    files = sorted((ROOT / "data" / "demo" / "images").glob("*_00_original.jpg"))[:n]
    if not files:
        sys.exit("no demo photos: run `make demo` (or `make extract DATASET=demo`) first")
    out = []
    for f in files:
        img = Image.open(f)
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append((f.name, buf.getvalue()))
    return out


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True)) / 1e6


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/demo_efficientnet_lite0")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--side", type=int, default=160, help="longest side of the photos sent (px)")
    ap.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", args.run, "--port", str(port)], cwd=ROOT)
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            sys.exit("the server did not start within 120 s")
        data = photos(args.side)
        with httpx.Client(timeout=60) as warm:  # first request builds the graph
            warm.post(url + "/api/score", files=[("files", data[0])])
        before = rss_mb(server.pid)
        deadline = time.time() + args.timeout

        def one(i):
            if time.time() > deadline:
                return None, "timeout"
            t = time.perf_counter()
            r = httpx.post(url + "/api/score", files=[("files", data[i % len(data)])], timeout=120)
            return time.perf_counter() - t, r.status_code

        quarters = []

        def counted(i):
            result = one(i)
            if (i + 1) % max(1, args.requests // 4) == 0:
                quarters.append(round(rss_mb(server.pid)))
            return result

        t_all = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(counted, range(args.requests)))
        wall = time.perf_counter() - t_all
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = np.array([t for t, code in results if code == 200])
    errors = sum(code != 200 for _, code in results)
    out = {"requests": args.requests, "clients": args.clients, "side": args.side, "errors": int(errors),
           "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
           "p95_s": float(np.percentile(lat, 95)) if len(lat) else None,
           "images_per_s": len(lat) / wall, "rss_before_mb": before, "rss_after_mb": after,
           "rss_each_quarter_mb": quarters}
    print(json.dumps(out, indent=2))
    save_json(args.json, out)


if __name__ == "__main__":
    main()
