"""Torch threads against a busy neighbour: the SST-2 LoRA recipe on a sample, trained (1) alone, (2) beside a
process that keeps one core busy, with torch's threads fixed at the core count, (3) beside the same process
with the zoo's FollowFreeCores (threads = the cores left free). Prints examples/s of each and the ratios.

    ZOO_DATA_DIR=../shared/data python bench/threads.py [--samples 960]

Run it with nothing else on the machine (that is what it measures). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = str(Path(sys.executable).parent / "zoo")


def run(samples: int, out: Path, *, neighbour: bool, fixed: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if fixed:
        env["OMP_NUM_THREADS"] = str(os.cpu_count())  # what torch takes anyway; FollowFreeCores then stays off
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    try:
        subprocess.run([ZOO, "train", str(ROOT / "recipes/sst2_lora.py"), "--set", f"train.max_train_samples={samples}",
                        "--set", "train.epochs=1", "--set", "train.max_eval_samples=64", "--output-dir", str(out),
                        "--no-progress"], env=env, check=True, capture_output=True, text=True)
    finally:
        if busy:
            busy.kill()
            busy.wait()
    record = json.loads((out / "adapter" / "zoo.json").read_text())
    return float(record["efficiency"]["train_examples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=960)
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, neighbour, fixed in (("alone", False, False), ("busy_fixed_threads", True, True),
                                       ("busy_following", True, False)):
            result[name] = round(run(args.samples, Path(tmp) / name, neighbour=neighbour, fixed=fixed), 2)
            print(f"{name:>20}: {result[name]:8.1f} ex/s", flush=True)
    result["fixed_vs_alone"] = round(result["busy_fixed_threads"] / result["alone"], 3)
    result["following_vs_alone"] = round(result["busy_following"] / result["alone"], 3)
    result["following_vs_fixed"] = round(result["busy_following"] / result["busy_fixed_threads"], 2)
    print(f"beside a busy process: fixed threads x{result['fixed_vs_alone']:.3f} of alone, following free cores "
          f"x{result['following_vs_alone']:.3f} ({result['following_vs_fixed']:.1f}x the fixed)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
