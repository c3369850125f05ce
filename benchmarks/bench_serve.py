"""Load on `iaa serve` over loopback: N requests from C concurrent clients (fewer than the queue holds).

Starts `iaa serve RUN` in a subprocess on a free loopback port, waits for /healthz, sends the requests
(httpx, a thread per client) and reports answers by status (500s apart from the designed 503), p50/p95
latency, images/s, and the server's resident memory after request 100 and after the last one. With
`--mix` (the default) every second request adds a damaged file and every third a header bomb (a PNG, JPEG,
BMP, TIFF or WebP declaring 60000 x 60000 pixels) beside its good photo, whose score must still come back.
Ends with SIGTERM and reports how the server stopped. Bounded in count and time.

    python benchmarks/bench_serve.py --run runs/demo_efficientnet_lite0 --requests 1000 --clients 4
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench_common import save_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fuzz_corpus import corpus, header_bomb  # noqa: E402  (the fuzz test's hostile files)

BOMBS = [(f"bomb.{fmt.lower()}", header_bomb(fmt, 60000)) for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP")]
DAMAGED = [(f"damaged{i}", data) for i, (_, data) in enumerate(corpus(40, seed=1)[11:])]


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
    ap.add_argument("--no-mix", dest="mix", action="store_false", help="good photos only")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server_log = open(Path(tempfile.mkdtemp(prefix="bench_serve_")) / "server.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", args.run, "--port", str(port)], cwd=ROOT,
                              stdout=server_log, stderr=subprocess.STDOUT)
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

        def request_files(i):
            files = [("files", data[i % len(data)])]
            if args.mix and i % 2 == 1:
                files.append(("files", DAMAGED[i % len(DAMAGED)]))
            if args.mix and i % 3 == 2:
                files.append(("files", BOMBS[i % len(BOMBS)]))
            return files

        def one(i):
            if time.time() > deadline:
                return None, "timeout", None
            t = time.perf_counter()
            r = httpx.post(url + "/api/score", files=request_files(i), timeout=120)
            good_scored = r.status_code == 200 and r.json()["results"][0]["score"] is not None
            return time.perf_counter() - t, r.status_code, good_scored

        done, rss_at, lock = [0], {}, threading.Lock()

        def counted(i):
            result = one(i)
            with lock:
                done[0] += 1
                if done[0] in (100, args.requests) or done[0] % max(1, args.requests // 4) == 0:
                    rss_at[done[0]] = round(rss_mb(server.pid), 1)
            return result

        t_all = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(counted, range(args.requests)))
        wall = time.perf_counter() - t_all
        after = rss_mb(server.pid)
    finally:
        t_stop = time.perf_counter()
        server.terminate()
        stop_code = server.wait(timeout=120)
        stop_s = time.perf_counter() - t_stop
        server_log.seek(0)
        said = server_log.read()
        stopped = [line for line in said.splitlines() if line.startswith("stopped after")]
    lat = np.array([t for t, code, _ in results if code == 200])
    statuses = {}
    for _, code, _ in results:
        statuses[str(code)] = statuses.get(str(code), 0) + 1
    out = {"requests": args.requests, "clients": args.clients, "side": args.side, "mix": args.mix,
           "statuses": statuses, "http_500": statuses.get("500", 0), "busy_503": statuses.get("503", 0),
           "good_photo_scored": int(sum(bool(g) for _, _, g in results)),
           "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
           "p95_s": float(np.percentile(lat, 95)) if len(lat) else None,
           "requests_per_s": len(lat) / wall, "rss_before_mb": before, "rss_after_mb": after,
           "rss_mb_after_request": rss_at, "rss_growth_100_to_last_mb": (rss_at.get(args.requests, after)
                                                                         - rss_at.get(100, before)),
           "sigterm_exit_code": stop_code, "sigterm_stop_s": round(stop_s, 2),
           "stopped": stopped[0] if stopped else None, "tracebacks_in_server_log": said.count("Traceback")}
    print(json.dumps(out, indent=2))
    save_json(args.json, out)


if __name__ == "__main__":
    main()
