"""Training throughput: the zoo's LoRA SST-2 recipe against the plain transformers + PEFT tutorial script,
over several seeds (mean and spread of examples/s and validation accuracy on each side).

Both train the same LoRA config, learning rate, batch size and epochs on the same SST-2 sample
(seeded) and evaluate on the same validation set; only the pipeline differs. The tutorial is the
one in PEFT's docs: Trainer, tokenizer(truncation=True), DataCollatorWithPadding, evaluation each
epoch. Zoo variants (``--variant NAME=KEY=VALUE``, e.g. ``bf16=train.bf16=true``) run beside the
plain zoo recipe on the same seeds, to measure a lever rather than assume it.

    ZOO_DATA_DIR=../shared/data python bench/train_speed.py                          # 4,000 examples, 3 seeds
    ZOO_DATA_DIR=../shared/data python bench/train_speed.py --variant bf16=train.bf16=true
    ZOO_DATA_DIR=../shared/data python bench/train_speed.py --samples 0 --seeds 1    # the full training set

"End to end" is each side's wall-clock seconds from loading the base to a model trained and evaluated on the
validation set (the zoo's run also writes its adapter and card; the tutorial's counts its final evaluate()):
the Trainer's examples/s counts what falls inside its training loop, which the two sides do not fill alike.

Run it alone on the machine: a second busy process makes torch training 18-25x slower on 2 cores. Ends with
one JSON line: per side (zoo, tutorial, each variant) the mean and standard deviation of examples/s and
accuracy, the ratio of mean examples/s to the tutorial's, and the accuracy difference of the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo import apply_overrides, load_recipe  # noqa: E402
from zoo.data.sources import resolve_model  # noqa: E402
from zoo.data.tasks import get_task, load_split  # noqa: E402
from zoo.training import train  # noqa: E402


def tutorial(recipe, train_raw, eval_raw, out: Path) -> dict:
    """PEFT's sequence-classification tutorial, with the recipe's LoRA config and training settings."""
    import torch
    from peft import get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    set_seed(recipe.seed)
    path = resolve_model(recipe.base_model).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    model = get_peft_model(model, recipe.method)

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=recipe.train.max_length)

    train_ds = train_raw.map(tokenize, batched=True, remove_columns=["text"])
    eval_ds = eval_raw.map(tokenize, batched=True, remove_columns=["text"])

    def compute_metrics(p):
        return {"accuracy": float((np.argmax(p.predictions, axis=1) == p.label_ids).mean())}

    t = recipe.train
    args = TrainingArguments(
        output_dir=str(out), learning_rate=t.learning_rate, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size, num_train_epochs=t.epochs, weight_decay=t.weight_decay,
        warmup_steps=float(t.warmup_ratio), eval_strategy="epoch", save_strategy="epoch", seed=recipe.seed,
        report_to="none", dataloader_pin_memory=torch.cuda.is_available(), logging_steps=t.logging_steps,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)
    metrics = trainer.train().metrics
    accuracy = trainer.evaluate()["eval_accuracy"]
    return {"ex_per_s": float(metrics["train_samples_per_second"]), "accuracy": float(accuracy)}


def summary(runs: list[dict]) -> dict:
    def spread(key):
        values = [r[key] for r in runs]
        return round(statistics.mean(values), 4), round(statistics.stdev(values), 4) if len(values) > 1 else 0.0

    (ex, ex_sd), (acc, acc_sd), (wall, wall_sd) = spread("ex_per_s"), spread("accuracy"), spread("wall_s")
    return {"ex_per_s": ex, "ex_per_s_sd": ex_sd, "accuracy": acc, "accuracy_sd": acc_sd, "wall_s": wall,
            "wall_s_sd": wall_sd, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes/sst2_lora.py"))
    parser.add_argument("--samples", type=int, default=4000, help="training examples (0: all)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per side: 42, 43, ...")
    parser.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE[,KEY=VALUE]: a zoo run with overrides")
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="overrides for every zoo run")
    args = parser.parse_args()

    samples = args.samples or None
    base = apply_overrides(load_recipe(args.recipe),
                           [f"train.epochs={args.epochs}", f"train.max_train_samples={samples}", *args.overrides])
    variants = {"zoo": []}
    for text in args.variant:
        name, _, sets = text.partition("=")
        variants[name] = [s for s in sets.split(",") if s]
    task = get_task(base.task)
    eval_raw = load_split(task, "validation", data_dir=base.data_dir)
    print(f"bench: {base.name}, {samples or 'all'} training examples, {args.epochs} epoch(s), {eval_raw.num_rows} "
          f"validation examples, seeds {args.seeds}, sides: {', '.join(variants)}{'' if args.skip_tutorial else ', tutorial'}",
          flush=True)
    runs: dict[str, list] = {name: [] for name in variants}
    if not args.skip_tutorial:
        runs["tutorial"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(42, 42 + args.seeds):
            for name, sets in variants.items():
                recipe = apply_overrides(base, [f"seed={seed}", *sets])
                started = time.perf_counter()
                result = train(recipe, output_dir=Path(tmp) / f"{name}-{seed}", progress=False)
                row = {"seed": seed, "ex_per_s": result.efficiency["train_examples_per_second"],
                       "accuracy": result.metrics["accuracy"], "wall_s": round(time.perf_counter() - started, 2)}
                runs[name].append(row)
                print(f"{name:>10} seed {seed}: {row['ex_per_s']:8.1f} ex/s   accuracy {row['accuracy']:.4f}   "
                      f"{row['wall_s']:.1f} s end to end", flush=True)
            if not args.skip_tutorial:
                recipe = apply_overrides(base, [f"seed={seed}"])
                train_raw = load_split(task, "train", data_dir=recipe.data_dir, max_samples=samples, seed=seed)
                started = time.perf_counter()
                row = {"seed": seed, **tutorial(recipe, train_raw, eval_raw, Path(tmp) / f"tutorial-{seed}")}
                row["wall_s"] = round(time.perf_counter() - started, 2)
                runs["tutorial"].append(row)
                print(f"  tutorial seed {seed}: {row['ex_per_s']:8.1f} ex/s   accuracy {row['accuracy']:.4f}   "
                      f"{row['wall_s']:.1f} s end to end", flush=True)
    result = {name: summary(r) for name, r in runs.items()}
    if "tutorial" in result:
        t = result["tutorial"]
        for name in variants:
            result[name]["ratio_vs_tutorial"] = round(result[name]["ex_per_s"] / t["ex_per_s"], 3)
            result[name]["accuracy_minus_tutorial"] = round(result[name]["accuracy"] - t["accuracy"], 4)
            result[name]["wall_ratio_vs_tutorial"] = round(t["wall_s"] / result[name]["wall_s"], 3)
    for name, r in result.items():
        extra = (f"   x{r['ratio_vs_tutorial']:.2f} the tutorial's ex/s, accuracy {r['accuracy_minus_tutorial']:+.4f}, "
                 f"x{r['wall_ratio_vs_tutorial']:.2f} as fast end to end" if "ratio_vs_tutorial" in r else "")
        print(f"{name:>10}: {r['ex_per_s']:8.1f} ± {r['ex_per_s_sd']:.1f} ex/s   accuracy {r['accuracy']:.4f} ± "
              f"{r['accuracy_sd']:.4f}   {r['wall_s']:.1f} ± {r['wall_s_sd']:.1f} s end to end{extra}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
