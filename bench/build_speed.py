"""Whole-zoo build time before and after the training shortcuts, projected from step times measured in one run.

The offline zoo takes 5.8 h of training on 2 cores, too long to build twice to compare. For every recipe with a
record in ``--records`` (docs/records: the build's zoo.json files), this trains a few optimizer steps twice on the
recipe's own settings and data sample: once as the recipe is now ("now": train.exact_shortcuts on, and
train.bf16_base where the recipe sets it) and once with both levers off ("before": the libraries' forward in
float32, how the records built before 2026-12-03 13:00 UTC were trained). Each side's time per step is the median of
the steps after ``--warmup`` (step end to step end: forward, backward, optimizer, data, callbacks).

The projection scales each record's training seconds by its recipe's ratio: a record trained before the shortcuts
(its zoo.json has no ``train.exact_shortcuts``) is the "before" figure and ``seconds x now / before`` the "after"
one; a record trained with them is the "after" figure and ``seconds x before / now`` the "before" one. In-context
rows train nothing (ratio 1). Evaluation inside the records' seconds is scaled like training: it is a small share
and takes the same forward.

    ZOO_DATA_DIR=../shared/data python bench/build_speed.py                      # every recorded recipe
    ZOO_DATA_DIR=../shared/data python bench/build_speed.py --only sst2-lora --only rte-lora

Run it alone on the machine (a second busy process makes torch training 18-25x slower on 2 cores). Ends with one JSON
line: per recipe the two step times and the ratio, and the projected totals.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT  # noqa: E402  (sets the environment)

from transformers import TrainerCallback  # noqa: E402

from zoo import apply_overrides  # noqa: E402
from zoo.config.family import load_recipes  # noqa: E402
from zoo.config.recipe import method_name  # noqa: E402
from zoo.training import train  # noqa: E402

BEFORE = ["train.exact_shortcuts=false", "train.bf16_base=false"]


class StepClock(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def step_seconds(recipe, overrides: list[str], out: Path, warmup: int) -> float:
    clock = StepClock()
    train(apply_overrides(recipe, overrides), output_dir=out, progress=False, callbacks=(clock,))
    gaps = [b - a for a, b in zip(clock.ends, clock.ends[1:])][max(warmup - 1, 0):]
    if not gaps:
        raise SystemExit(f"{recipe.name}: no step after the warm-up was timed; raise --steps")
    return statistics.median(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default=str(ROOT / "docs" / "records"), help="a ZOO_HOME holding hub/<base>/<name>/current/zoo.json")
    parser.add_argument("--recipes", default=str(ROOT / "recipes"))
    parser.add_argument("--only", action="append", default=[], help="adapter names to measure (default: every record)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run, warm-up included (12 "
                        "were too few: tweet-emotion-lora x1.01 with 12, x1.13 with 40, x1.15 over a whole epoch)")
    parser.add_argument("--causal-steps", type=int, default=12, help="the same for causal LMs (seconds per step)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    records = {p.parent.parent.name: json.loads(p.read_text()) for p in Path(args.records).glob("hub/*/*/current/zoo.json")}
    recipes = {r.name: r for path in sorted(Path(args.recipes).glob("*.py")) if not path.name.startswith("_")
               for r in load_recipes(path)}
    names = [n for n in sorted(records) if n in recipes and (not args.only or n in args.only)]
    if not names:
        raise SystemExit(f"no recipe in {args.recipes} has a record in {args.records}" + (f" among {args.only}" if args.only else ""))
    print(f"build speed: {len(names)} recipes, {args.steps} steps each side ({args.causal_steps} for causal LMs; "
          f"{args.warmup} warm-up), records in {args.records}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names, 1):
            recipe, record = recipes[name], records[name]
            seconds = float(record["efficiency"]["train_seconds"])
            trained_with = "exact_shortcuts" in (record.get("recipe", {}).get("train") or {})
            row = {"name": name, "method": method_name(recipe.method), "record_seconds": seconds,
                   "record_trained_with_shortcuts": trained_with}
            if method_name(recipe.method) == "icl":
                row.update(now_s=None, before_s=None, ratio=1.0)
            else:
                t = recipe.train
                steps = args.causal_steps if recipe.causal else args.steps
                sample = steps * t.batch_size * t.gradient_accumulation_steps
                quick = [f"train.max_steps={steps}", f"train.max_train_samples={sample}", "train.max_eval_samples=16",
                         "train.early_stopping_patience=None", "train.eval_steps=None"]
                if recipe.causal:
                    quick.append("train.max_generate_samples=0")
                now = step_seconds(recipe, quick, Path(tmp) / f"{name}-now", args.warmup)
                before = step_seconds(recipe, quick + BEFORE, Path(tmp) / f"{name}-before", args.warmup)
                row.update(now_s=round(now, 4), before_s=round(before, 4), ratio=round(before / now, 3))
            ratio = row["ratio"]
            row["before_seconds"] = round(seconds * ratio if trained_with else seconds, 1)
            row["after_seconds"] = round(seconds if trained_with else seconds / ratio, 1)
            rows.append(row)
            step = "" if row["now_s"] is None else f"{row['before_s'] * 1e3:7.1f} -> {row['now_s'] * 1e3:7.1f} ms/step"
            print(f"[{i}/{len(names)}] {name:34} {step:30} x{ratio:.2f}   record {seconds:8.1f} s -> "
                  f"before {row['before_seconds']:8.1f} s, after {row['after_seconds']:8.1f} s", flush=True)
    before, after = sum(r["before_seconds"] for r in rows), sum(r["after_seconds"] for r in rows)
    print(f"projected training time of these {len(rows)}: before {before:,.0f} s ({before / 3600:.2f} h), "
          f"after {after:,.0f} s ({after / 3600:.2f} h): x{before / after:.2f}", flush=True)
    print(json.dumps({"recipes": rows, "before_seconds": round(before, 1), "after_seconds": round(after, 1),
                      "ratio": round(before / after, 3)}))


if __name__ == "__main__":
    main()
