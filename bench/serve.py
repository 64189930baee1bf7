"""`zoo serve` throughput against the in-process registry, on the same requests.

    .venv/bin/python bench/serve.py [--requests 480] [--clients 16] [--repeats 2]

Builds bench/registry.py's local hub of 9 adapters on the real MiniLM base (LoRA, IA3, prompt tuning,
P-tuning, prefix tuning; 2 to 20 labels), draws --requests SST-2 validation sentences, each for a random
adapter, and runs them, in the same process run:

- in_process: --clients threads calling zoo.load(...).predict([text]) on the shared registry (no HTTP; each
  call its own forward pass);
- server: --clients HTTP clients (httpx) posting /v1/classify to `zoo serve` on loopback (concurrent requests
  coalesced into mixed batches);
- server_one_client: one client, one request at a time (what HTTP costs a request);
- with --ray: `zoo serve --ray` with 1 replica, then with 2 (on 2 cores the ratio measures Ray's overhead, not
  scaling: the replicas share the same cores).

Rounds alternate between in_process and server; the best of --repeats counts for each. Figures:
server_vs_in_process (throughput ratio at --clients; the issue's target is >= 0.8), p50/p95 latency, and
mismatches (answers differing from the in-process ones beyond 1e-5: must be 0). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, free_port, start_zoo  # noqa: E402,F401  (sets the environment: offline, the data mirror)

from bench.registry import ADAPTERS, BASE, build_hub  # noqa: E402
from bench.space import dealt, pct, sentences  # noqa: E402


def start_server(home: Path, *options: str):
    env = {}
    if "--ray" in options:  # Ray's files (sockets: short paths) and token under folders of this run
        temp = tempfile.mkdtemp(prefix="zr", dir="/tmp")
        env = {"TMPDIR": temp, "RAY_TMPDIR": temp, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    return start_zoo(home, "serve", "--refresh-seconds", "0", *options, wait=120, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=480)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also zoo serve --ray with 1 and with 2 replicas")
    args = parser.parse_args()

    import httpx

    import zoo
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub

    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    build_hub(home / "hub")
    names = [a[0] for a in ADAPTERS]
    rng = random.Random(1)
    requests = [(rng.choice(names), text) for text in sentences(args.requests)]

    backend = LocalBackend(LocalHub(home / "hub"))
    handles = {n: zoo.load(BASE, adapter=n, hub=backend) for n in names}
    for n in names:
        handles[n].predict(["warm up"])
    proc, url = start_server(home)
    sessions = [httpx.Client(timeout=300) for _ in range(args.clients)]

    def http(k, req):
        r = sessions[k].post(f"{url}/v1/classify", json={"adapter": req[0], "inputs": [req[1]]})
        r.raise_for_status()
        return r.json()["results"][0]

    try:
        for n in names:
            http(0, (n, "warm up"))
        runs: dict[str, list] = {"in_process": [], "server": []}
        for _ in range(args.repeats):  # alternated: both see the same state of the machine
            runs["in_process"].append(dealt(requests, args.clients, lambda k, r: handles[r[0]].predict([r[1]])[0]))
            runs["server"].append(dealt(requests, args.clients, http))
        one = dealt(requests[: max(1, len(requests) // 4)], 1, http)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    ray_runs = {}
    for replicas in ((1, 2) if args.ray else ()):  # one deployment at a time: each holds the machine's cores
        proc, url = start_server(home, "--ray", "--replicas", str(replicas), "--max-adapters-per-replica", "9")
        try:
            for n in names:
                http(0, (n, "warm up"))
            ray_runs[replicas] = min((dealt(requests, args.clients, http) for _ in range(args.repeats)),
                                     key=lambda x: x[2])
        finally:
            proc.terminate()
            proc.wait(timeout=120)

    def same(a, b):
        return a["label"] == b["label"] and all(abs(a["scores"][k] - b["scores"][k]) <= 1e-5 for k in b["scores"])

    best = {kind: min(r, key=lambda x: x[2]) for kind, r in runs.items()}
    local = best["in_process"][0]
    mismatches = sum(not same(s, w) for out, _, _ in runs["server"] for s, w in zip(out, local))
    n = len(requests)
    result = {
        "requests": n, "clients": args.clients, "adapters": len(names), "base": BASE,
        "in_process_rps": round(n / best["in_process"][2], 1), "server_rps": round(n / best["server"][2], 1),
        "server_one_client_rps": round(len(one[0]) / one[2], 1),
        "server_vs_in_process": round(best["in_process"][2] / best["server"][2], 3),
        "p50_ms": {k: pct(best[k][1], 0.5) for k in best} | {"server_one_client": pct(one[1], 0.5)},
        "p95_ms": {k: pct(best[k][1], 0.95) for k in best} | {"server_one_client": pct(one[1], 0.95)},
        "mismatches": mismatches,
    }
    if ray_runs:
        mismatches += sum(not same(s, w) for out, _, _ in ray_runs.values() for s, w in zip(out, local))
        result["mismatches"] = mismatches
        result.update({f"ray_{k}_replica_rps": round(n / v[2], 1) for k, v in ray_runs.items()})
        result["ray_2_vs_1_replicas"] = round(ray_runs[1][2] / ray_runs[2][2], 3)
        result["ray_1_replica_vs_server"] = round(best["server"][2] / ray_runs[1][2], 3)
        print(f"Ray Serve: 1 replica {result['ray_1_replica_rps']} req/s (x{result['ray_1_replica_vs_server']} zoo serve), "
              f"2 replicas {result['ray_2_replica_rps']} req/s (x{result['ray_2_vs_1_replicas']} one replica; on 2 cores "
              "an overhead measure: the replicas share the cores)")
    print(f"{n} /v1/classify requests over {len(names)} adapters, {args.clients} clients: in process "
          f"{result['in_process_rps']} req/s, zoo serve {result['server_rps']} req/s "
          f"(x{result['server_vs_in_process']}; one client {result['server_one_client_rps']} req/s); "
          f"mismatches {mismatches}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
