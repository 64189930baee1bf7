"""Load test of `zoo serve` on loopback: many concurrent clients, mixed adapters, a fixed time.

    .venv/bin/python bench/serve_load.py [--clients 32] [--seconds 60] [--max-queue 16]

Starts `zoo serve --max-queue 16` over bench/registry.py's local hub of 9 adapters on the real MiniLM base,
precomputes every answer in process with zoo.load(...).predict, then runs --clients HTTP clients for --seconds:
each posts /v1/classify with 1 to 4 SST-2 sentences, each for a random adapter (mixed adapters in one request),
and checks every answer (label exact, probabilities within 1e-5). A client that gets 429 waits its Retry-After
and tries again. The server's RSS is read after --warmup seconds of the same load (the plateau: allocators at their
working set), at the end of the measured load, and after 10 s idle.

Pass: wrong == 0, no 5xx, some 429 (the queue was full: --clients > --max-queue), RSS after idle within 10 %
of the plateau (no growth past the working set). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve import start_server  # noqa: E402  (sets the environment: offline, the data mirror)
from bench.registry import ADAPTERS, BASE, build_hub  # noqa: E402
from bench.space import pct, sentences  # noqa: E402


def rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=20, help="seconds of the same load before the plateau is read")
    args = parser.parse_args()

    import httpx

    import zoo
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub

    home = Path(tempfile.mkdtemp(prefix="bench-serve-load-"))
    build_hub(home / "hub")
    names = [a[0] for a in ADAPTERS]
    texts = sentences(args.sentences)
    backend = LocalBackend(LocalHub(home / "hub"))
    expected = {}
    for n in names:
        for text, p in zip(texts, zoo.load(BASE, adapter=n, hub=backend).predict(texts)):
            expected[(n, text)] = p
    zoo.serve.registry.clear_shared()

    proc, url = start_server(home, "--max-queue", str(args.max_queue), "--timeout", "120")
    codes: Counter = Counter()
    wrong: list = []
    latencies: list = []
    lock = threading.Lock()
    try:
        warm = httpx.Client(timeout=120)
        for n in names:
            warm.post(f"{url}/v1/classify", json={"adapter": n, "inputs": texts[:4]}).raise_for_status()
        def client(k: int, stop: float, check: bool):
            rng = random.Random(k)
            session = httpx.Client(timeout=300)
            while time.monotonic() < stop:
                rows = [(rng.choice(names), rng.choice(texts)) for _ in range(rng.randint(1, 4))]
                t = time.perf_counter()
                r = session.post(f"{url}/v1/classify", json={"adapters": [a for a, _ in rows],
                                                             "inputs": [x for _, x in rows]})
                if not check:
                    if r.status_code == 429:
                        time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                with lock:
                    codes[r.status_code] += 1
                if r.status_code == 429:  # as a client should: wait the Retry-After
                    time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                if r.status_code != 200:
                    with lock:
                        wrong.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - t)
                for (a, x), got in zip(rows, r.json()["results"]):
                    want = expected[(a, x)]
                    if got["label"] != want["label"] or any(abs(got["scores"][c] - want["scores"][c]) > 1e-5
                                                            for c in want["scores"]):
                        with lock:
                            wrong.append(f"{a}: {got} != {want}")

        def load(seconds: float, check: bool) -> float:
            stop = time.monotonic() + seconds
            threads = [threading.Thread(target=client, args=(k, stop, check)) for k in range(args.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - t0

        load(args.warmup, check=False)  # the same load, to let the allocators reach their working set
        plateau = rss(proc.pid)
        elapsed = load(args.seconds, check=True)
        loaded = rss(proc.pid)
        health = warm.get(f"{url}/health").json()
        time.sleep(10)
        idle = rss(proc.pid)
        metrics = warm.get(f"{url}/metrics").text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    server_errors = sum(v for c, v in codes.items() if c >= 500)
    result = {
        "clients": args.clients, "seconds": round(elapsed, 1), "max_queue": args.max_queue, "adapters": len(names),
        "requests": sum(codes.values()), "answered": codes.get(200, 0), "status": dict(sorted(codes.items())),
        "answered_rps": round(codes.get(200, 0) / elapsed, 1), "wrong": len(wrong), "server_errors": server_errors,
        "p50_ms": pct(latencies, 0.5) if latencies else None, "p95_ms": pct(latencies, 0.95) if latencies else None,
        "queue_after": health["queue"],
        "rss_mib": {"plateau": round(plateau / 2**20, 1), "end_of_load": round(loaded / 2**20, 1),
                    "after_idle": round(idle / 2**20, 1)},
        "rss_after_vs_plateau": round(idle / plateau, 3),
        "rejected_queue_full": next((float(line.split()[-1]) for line in metrics.splitlines()
                                     if line.startswith('zoo_rejected_total{reason="queue_full"}')), 0.0),
    }
    result["pass"] = (result["wrong"] == 0 and server_errors == 0 and codes.get(429, 0) > 0
                      and result["rss_after_vs_plateau"] <= 1.10 and health["queue"] == 0)
    for line in wrong[:5]:
        print("WRONG", line)
    print(f"{result['requests']} requests from {args.clients} clients in {result['seconds']} s: {result['answered']} "
          f"answered ({result['answered_rps']} req/s), status {result['status']}, wrong {len(wrong)}, RSS "
          f"{result['rss_mib']['plateau']} -> {result['rss_mib']['end_of_load']} -> {result['rss_mib']['after_idle']} MiB "
          f"-> {'PASS' if result['pass'] else 'FAIL'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
