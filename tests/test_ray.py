"""``zoo serve --ray``: the server on a local Ray Serve cluster (loopback only, its files under a temporary home and
temp folder, shut down at the end): 2 replicas of at most 3 adapters each, 6 adapters. Every answer equals the
in-process one; adapters stick to the replicas that hold them (the share is reported); bad requests are the same
JSON errors as ``zoo serve``'s; nothing of Ray is left running afterwards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time

import httpx
import numpy as np
import pytest

from tests.test_server import BROKEN, ZOO, free_port, post, wait_healthy
from tests.test_space import TEXT, item_for, reference

pytest.importorskip("ray")


def ray_processes(marker: str) -> list:
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            pass
    return out


def test_ray_serve_two_replicas_answer_as_in_process_with_sticky_adapters(space_home, space_cat, space_backend, tmp_path):
    entries = [e for e in space_cat.entries.values() if e.kind == "classify" and e.name != BROKEN][:6]
    assert len(entries) == 6
    refs = {e.name: reference(e, space_backend, item_for(e)) for e in entries}
    port = free_port()
    temp = tempfile.mkdtemp(prefix="zr", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "ZOO_HOME": str(space_home), "HOME": str(tmp_path / "home"), "TMPDIR": temp,
           "RAY_TMPDIR": temp, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([ZOO, "serve", "--ray", "--hub", "local", "--port", str(port), "--replicas", "2",
                             "--max-adapters-per-replica", "3", "--refresh-seconds", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, 300)
        rng = random.Random(0)
        order = [e for e in entries for _ in range(6)]
        rng.shuffle(order)
        for e in order:  # each request one adapter: Serve routes it by the entry's id
            r = post(url, "/v1/classify", {"adapter": e.name, "inputs": [item_for(e)]})
            assert r.status_code == 200, r.text
            got, want = r.json()["results"][0], refs[e.name]
            assert got["label"] == want["label"]
            np.testing.assert_allclose([got["scores"][k] for k in want["scores"]], list(want["scores"].values()), atol=1e-5)
        mixed = post(url, "/v1/classify", {"adapters": [e.name for e in entries], "inputs": [item_for(e) for e in entries]})
        assert [g["label"] for g in mixed.json()["results"]] == [refs[e.name]["label"] for e in entries]
        routing = httpx.get(f"{url}/health").json()["loaded"]["ray"]
        share = routing["resident"] / routing["calls"]
        print(f"Ray Serve, 2 replicas x 3 adapters, 6 adapters: {routing['calls']} replica calls, "
              f"{share:.0%} answered by a replica that already held the adapter")
        assert routing["calls"] == len(order) + len(entries) and share >= 0.5

        bad = post(url, "/v1/classify", {"adapter": "no-such-adapter", "inputs": [TEXT]})
        assert bad.status_code == 404 and "error" in bad.json()
        assert post(url, "/v1/classify", {"adapter": "rte-lora", "inputs": [TEXT]}).status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out = proc.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    assert "Traceback" not in out, out[-3000:]
    for _ in range(30):
        if not ray_processes(temp):
            break
        time.sleep(1)
    assert ray_processes(temp) == [], "Ray's processes outlived zoo serve --ray"
