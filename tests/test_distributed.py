"""Training on more than one process, as the README says: ``accelerate launch --multi_gpu --num_processes 2 -m zoo
train ...`` on a machine without GPUs runs transformers' Trainer under DDP over gloo: both processes train the same
steps together, only process 0 writes and publishes, and the published adapter loads and predicts.

(accelerate 1.15's ``--cpu --num_processes 2`` starts one process unless MPI is set up (``--mpirun_hostfile``):
its simple launcher ignores the count. ``--multi_gpu`` is its torch.distributed launcher, GPUs or not.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import zoo
from tests.conftest import quick_overrides

ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def test_accelerate_launch_two_processes_trains_together_and_publishes_once(tiny_bert, shared_data, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    sets = [f"--set={o}" for o in quick_overrides(tiny_bert, shared_data, steps=4)]
    cmd = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
           "-m", "zoo", "train", "recipes/sst2_lora.py", *sets, "--push", "--hub", "local",
           "--output-dir", str(tmp_path / "run"), "--no-progress"]
    env = {**os.environ, "ZOO_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "ACCELERATE_CONFIG_FILE": str(tmp_path / "no-config.yaml")}  # the flags alone, not a user's config
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "sst2-lora: process 0 of 2 trained 4 steps together; it writes and publishes" in log
    assert "sst2-lora: process 1 of 2 trained 4 steps together; process 0 publishes" in log
    assert log.count("published sst2-lora") == 1, "only process 0 publishes"

    revisions = list((home / "hub").glob("*/sst2-lora/revisions/*"))
    assert len(revisions) == 1
    record = json.loads((revisions[0] / "zoo.json").read_text())
    assert record["efficiency"]["steps"] == 4
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub

    model = zoo.load(str(tiny_bert), adapter="sst2-lora", hub=LocalBackend(LocalHub(home / "hub")))
    [p] = model.predict(["a gripping film"])
    assert p["label"] in ("negative", "positive") and abs(sum(p["scores"].values()) - 1) < 1e-5
