"""What ``train.tune_offsets`` adds to a published adapter's validation figure, and whether the gain is one split's.

An adapter trained with ``train.tune_offsets`` holds its offsets in the head's bias and records them in zoo.json
(``metrics.offsets.per_label``), so its logits without them are its logits minus the offsets, exactly. This loads
the adapter from a hub, scores the validation split both ways (the recorded figure is "with"), and then checks the
rule itself, independently of the training examples it was tuned on: offsets tuned afresh on one half of
validation, scored on the other half, for ``--splits`` random halvings (mean and spread of the gain). No training.

    ZOO_DATA_DIR=../shared/data python bench/offsets_gain.py tweet-emoji-lora --hub local

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench._common  # noqa: E402,F401  (sets the environment)

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo.data.metrics import official_metric, tune_offsets  # noqa: E402
from zoo.data.tasks import get_task, load_split  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("adapter", help="an adapter trained with train.tune_offsets, e.g. tweet-emoji-lora")
    parser.add_argument("--base", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--hub", default="local")
    parser.add_argument("--splits", type=int, default=6, help="random halvings of validation (default 6)")
    args = parser.parse_args()

    handle = zoo.load(args.base, adapter=args.adapter, hub=args.hub)
    record = handle.record
    recorded = record.metrics.get("offsets")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("per_label"), dict):
        sys.exit(f"{args.adapter} was not trained with train.tune_offsets (no metrics.offsets in its zoo.json)")
    task = get_task(record.task)
    offsets = np.array([float(recorded["per_label"][label]) for label in task.labels])
    rows = load_split(task, "validation")
    inputs = list(zip(rows["text"], rows["text_pair"])) if task.is_pair else list(rows["text"])
    with_offsets = handle.logits(inputs, batch_size=64, progress=True).astype(np.float64)
    without = with_offsets - offsets
    labels = np.asarray(rows["label"])
    score = lambda logits: official_metric(task, labels, logits.argmax(1))  # noqa: E731
    result = {"adapter": args.adapter, "validation_n": int(len(labels)), "recorded": record.validation.get("official"),
              "with_offsets": round(score(with_offsets), 4), "without_offsets": round(score(without), 4)}
    print(f"{args.adapter}: validation {record.official_metric} {result['without_offsets']:.4f} without the offsets, "
          f"{result['with_offsets']:.4f} with them (recorded {result['recorded']:.4f}); tuned on "
          f"{recorded.get('n'):,} training examples")

    rng = np.random.default_rng(0)
    gains = []
    for _ in range(args.splits):
        order = rng.permutation(len(labels))
        for tune, judge in ((order[: len(order) // 2], order[len(order) // 2:]),
                            (order[len(order) // 2:], order[: len(order) // 2])):
            fresh, _, _ = tune_offsets(without[tune], labels[tune], task)
            before = official_metric(task, labels[judge], without[judge].argmax(1))
            after = official_metric(task, labels[judge], (without[judge] + fresh).argmax(1))
            gains.append(after - before)
    result["half_split_gain_mean"] = round(statistics.mean(gains), 4)
    result["half_split_gain_sd"] = round(statistics.stdev(gains), 4) if len(gains) > 1 else 0.0
    print(f"offsets tuned on one half of validation, scored on the other ({len(gains)} halves): gain "
          f"{result['half_split_gain_mean']:+.4f} +- {result['half_split_gain_sd']:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
