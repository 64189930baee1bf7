"""Demo serving benchmark: many users of `zoo demo` at once, against one user at a time.

    .venv/bin/python bench/space.py [--requests 240] [--clients 20] [--repeats 2] [--concurrency 8]

Starts `zoo demo` on loopback over a local hub of bench/registry.py's 9 adapters on the real MiniLM base
(LoRA, IA3, prompt tuning, P-tuning, prefix tuning; 2 to 20 labels; random weights: serving cost does not
depend on what they learned) and sends /try requests over Gradio's REST API (httpx: a thin client, so the
figures are the server's, not gradio_client's), each an SST-2 validation sentence for a random adapter. The same requests run three ways, in the same process run:

- in_process: zoo.load(...).predict, one request at a time, no HTTP (the floor);
- sequential: one client, one request at a time, over HTTP;
- concurrent: --clients clients at once, the requests dealt between them, against the demo as shipped
  (concurrent requests to one base's classifiers coalesced into one mixed batch) and against a second demo
  started with --no-coalesce, rounds alternated between the two.

Figures: concurrent_vs_sequential and coalesced_vs_plain (throughput ratios), http_vs_in_process
(sequential throughput over the in-process one: what HTTP and Gradio's queue cost), p50/p95 latency of
each, and mismatches (answers that differ from the sequential run's beyond 1e-5: must be 0). The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, free_port, start_zoo  # noqa: E402,F401  (sets the environment: offline, the data mirror)

from bench.registry import ADAPTERS, BASE, build_hub  # noqa: E402


def sentences(n: int, seed: int = 0) -> list[str]:
    from zoo.data.tasks import get_task, load_split

    texts = load_split(get_task("glue/sst2"), "validation")["text"]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def start_demo(home: Path, *options: str):
    return start_zoo(home, "demo", *options, wait=120)


def call_try(client, url: str, entry: str, text: str) -> dict:
    """One /try request over Gradio's REST API (POST the inputs, read the event stream): a thin client, so the
    figures measure the server rather than gradio_client's own overhead on the same two cores."""
    event = client.post(f"{url}gradio_api/call/try", json={"data": [entry, text, "", 8]}).json()["event_id"]
    body = client.get(f"{url}gradio_api/call/try/{event}").text
    kind, data = None, None
    for line in body.splitlines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind in ("complete", "error"):
            data = line.split(":", 1)[1].strip()
    if kind != "complete":
        raise RuntimeError(f"/try failed: {data}")
    return json.loads(data)[3]


def timed(fn, requests):
    out, lat = [], []
    for req in requests:
        t = time.perf_counter()
        out.append(fn(req))
        lat.append(time.perf_counter() - t)
    return out, lat


def pct(values, q):
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)


def dealt(requests: list, clients: int, call) -> tuple[list, list, float]:
    """Every request once, dealt between ``clients`` threads that each send theirs one after another with
    ``call(thread index, request)``; returns the answers, their latencies and the wall time."""
    out: list = [None] * len(requests)
    lat: list = [None] * len(requests)

    def user(k: int):
        for i in range(k, len(requests), clients):
            t = time.perf_counter()
            out[i] = call(k, requests[i])
            lat[i] = time.perf_counter() - t

    threads = [threading.Thread(target=user, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, lat, time.perf_counter() - t0


def concurrent(url: str, requests: list, clients: int) -> tuple[list, list, float]:
    """Every request once over /try, dealt between ``clients`` clients."""
    import httpx

    sessions = [httpx.Client(timeout=120) for _ in range(clients)]
    return dealt(requests, clients, lambda k, r: call_try(sessions[k], url, f"{BASE}::{r[0]}", r[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="concurrent rounds per server, alternated; the best counts")
    parser.add_argument("--concurrency", type=int, default=8, help="zoo demo --concurrency")
    args = parser.parse_args()

    import httpx

    import zoo
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub

    home = Path(tempfile.mkdtemp(prefix="bench-space-"))
    build_hub(home / "hub")
    names = [a[0] for a in ADAPTERS]
    rng = random.Random(1)
    requests = [(rng.choice(names), text) for text in sentences(args.requests)]

    backend = LocalBackend(LocalHub(home / "hub"))
    handles = {n: zoo.load(BASE, adapter=n, hub=backend) for n in names}
    for n in names:  # warm every adapter once
        handles[n].predict(["warm up"])
    local, local_lat = timed(lambda r: handles[r[0]].predict([r[1]])[0], requests)
    local_s = sum(local_lat)
    zoo.serve.registry.clear_shared()

    servers = {"coalesced": start_demo(home, "--concurrency", str(args.concurrency)),
               "plain": start_demo(home, "--concurrency", str(args.concurrency), "--no-coalesce")}
    try:
        one = httpx.Client(timeout=120)
        for _, url in servers.values():
            for n in names:
                call_try(one, url, f"{BASE}::{n}", "warm up")
        url = servers["coalesced"][1]
        t0 = time.perf_counter()
        seq, seq_lat = timed(lambda r: call_try(one, url, f"{BASE}::{r[0]}", r[1]), requests)
        seq_s = time.perf_counter() - t0
        runs: dict[str, list] = {"coalesced": [], "plain": []}
        for _ in range(args.repeats):
            for kind, (_, url) in servers.items():  # alternated: both see the same state of the machine
                runs[kind].append(concurrent(url, requests, args.clients))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)

    def same(a, b):
        return a["label"] == b["label"] and all(abs(a["scores"][k] - b["scores"][k]) <= 1e-5 for k in b["scores"])

    best = {kind: min(r, key=lambda x: x[2]) for kind, r in runs.items()}
    mismatches = sum(not same(s, l) for s, l in zip(seq, local))
    mismatches += sum(not same(c, s) for r in runs.values() for out, _, _ in r for c, s in zip(out, seq))
    n = len(requests)
    conc, conc_lat, conc_s = best["coalesced"]
    plain, plain_lat, plain_s = best["plain"]
    result = {
        "requests": n, "clients": args.clients, "concurrency": args.concurrency, "adapters": len(names),
        "in_process_rps": round(n / local_s, 1), "sequential_rps": round(n / seq_s, 1),
        "concurrent_rps": round(n / conc_s, 1), "concurrent_plain_rps": round(n / plain_s, 1),
        "concurrent_vs_sequential": round(seq_s / conc_s, 3), "coalesced_vs_plain": round(plain_s / conc_s, 3),
        "http_vs_in_process": round(local_s / seq_s, 3),
        "p50_ms": {"in_process": pct(local_lat, 0.5), "sequential": pct(seq_lat, 0.5), "concurrent": pct(conc_lat, 0.5),
                   "concurrent_plain": pct(plain_lat, 0.5)},
        "p95_ms": {"in_process": pct(local_lat, 0.95), "sequential": pct(seq_lat, 0.95), "concurrent": pct(conc_lat, 0.95),
                   "concurrent_plain": pct(plain_lat, 0.95)},
        "mismatches": mismatches,
    }
    print(f"{n} /try requests over {len(names)} adapters on {BASE}: in process {result['in_process_rps']} req/s, "
          f"one HTTP client {result['sequential_rps']} req/s, {args.clients} clients {result['concurrent_rps']} req/s "
          f"(x{result['concurrent_vs_sequential']}; without coalescing {result['concurrent_plain_rps']} req/s, "
          f"coalesced x{result['coalesced_vs_plain']}); mismatches {mismatches}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
