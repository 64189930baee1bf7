"""One comparison table for every SST-2 method: validation accuracy, trainable parameters, time.

Trains each `recipes/sst2_*.py` on the same seeded sample of SST-2 (same epochs), one after the
other, and prints a Markdown table plus one JSON line per method. The table the course reports
built by hand, made by one command:

    ZOO_DATA_DIR=../shared/data python bench/methods_table.py --samples 10000 --epochs 1
    ZOO_DATA_DIR=../shared/data python bench/methods_table.py --samples 0   # full set, recipe epochs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo import apply_overrides, load_recipe  # noqa: E402
from zoo.training import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10000, help="training examples per method (0: all)")
    parser.add_argument("--epochs", type=float, default=None, help="epochs for every method (default: each recipe's)")
    parser.add_argument("--only", nargs="*", default=None, help="recipe stems to run, e.g. sst2_lora sst2_ia3")
    args = parser.parse_args()

    recipes = sorted((ROOT / "recipes").glob("sst2_*.py"))
    if args.only:
        recipes = [p for p in recipes if p.stem in args.only]
    rows = []
    print("| method | val. accuracy | macro-F1 | trainable params | % of total | train time (s) | ex/s | adapter (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in recipes:
        overrides = [f"train.max_train_samples={args.samples or None}"]
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        recipe = apply_overrides(load_recipe(path), overrides)
        with tempfile.TemporaryDirectory() as tmp:
            result = train(recipe, output_dir=tmp, progress=False)
        m, e = result.metrics, result.efficiency
        row = {"method": recipe.method_name, "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
               "trainable_params": e["trainable_params"], "trainable_ratio": e["trainable_ratio"],
               "train_seconds": e["train_seconds"], "examples_per_second": e["train_examples_per_second"],
               "adapter_mib": round(e["adapter_bytes"] / 2**20, 2), "train_examples": e["train_examples"],
               "epochs": e["epochs"]}
        rows.append(row)
        print(f"| {row['method']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {row['trainable_params']:,} | "
              f"{100 * row['trainable_ratio']:.2f} | {row['train_seconds']:.0f} | {row['examples_per_second']:.1f} | "
              f"{row['adapter_mib']:.2f} |", flush=True)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
