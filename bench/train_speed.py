"""Training throughput: the zoo's LoRA SST-2 recipe against the plain transformers + PEFT tutorial script.

Both train the same LoRA config, learning rate, batch size and epochs on the same SST-2 sample
(seeded) and evaluate on the same validation set; only the pipeline differs. The tutorial is the
one in PEFT's docs: Trainer, tokenizer(truncation=True), DataCollatorWithPadding, evaluation each
epoch. The seeds' course reports padded every example to max_length; that style runs too.

    ZOO_DATA_DIR=../shared/data python bench/train_speed.py                  # 8,000 examples, 1 epoch
    ZOO_DATA_DIR=../shared/data python bench/train_speed.py --samples 0      # the full training set

Ends with one JSON line: zoo_ex_per_s, tutorial_ex_per_s, ratio, zoo_accuracy, tutorial_accuracy
(and max_length_ex_per_s, ratio_vs_max_length, max_length_accuracy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo import apply_overrides, load_recipe  # noqa: E402
from zoo.data.sources import resolve_model  # noqa: E402
from zoo.data.tasks import get_task, load_split  # noqa: E402
from zoo.training import train  # noqa: E402


def tutorial(recipe, train_raw, eval_raw, out: Path, *, padding: str | bool = False) -> dict:
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
        return tokenizer(batch["text"], truncation=True, max_length=recipe.train.max_length, padding=padding)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes/sst2_lora.py"))
    parser.add_argument("--samples", type=int, default=8000, help="training examples (0: all)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--skip-max-length", action="store_true", help="skip the padding='max_length' run")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="extra recipe overrides")
    args = parser.parse_args()

    samples = args.samples or None
    recipe = apply_overrides(load_recipe(args.recipe), [f"train.epochs={args.epochs}", f"train.max_train_samples={samples}", *args.overrides])
    task = get_task(recipe.task)
    train_raw = load_split(task, "train", data_dir=recipe.data_dir, max_samples=samples, seed=recipe.seed)
    eval_raw = load_split(task, "validation", data_dir=recipe.data_dir)
    print(f"bench: {recipe.name}, {train_raw.num_rows} training examples, {args.epochs} epoch(s), "
          f"{eval_raw.num_rows} validation examples", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        zoo_run = train(recipe, output_dir=Path(tmp) / "zoo", progress=False)
        zoo = {"ex_per_s": zoo_run.efficiency["train_examples_per_second"], "accuracy": zoo_run.metrics["accuracy"]}
        print(f"zoo:       {zoo['ex_per_s']:8.1f} ex/s   accuracy {zoo['accuracy']:.4f}", flush=True)
        tut = tutorial(recipe, train_raw, eval_raw, Path(tmp) / "tutorial")
        print(f"tutorial:  {tut['ex_per_s']:8.1f} ex/s   accuracy {tut['accuracy']:.4f}", flush=True)
        result = {
            "zoo_ex_per_s": round(zoo["ex_per_s"], 2), "tutorial_ex_per_s": round(tut["ex_per_s"], 2),
            "ratio": round(zoo["ex_per_s"] / tut["ex_per_s"], 3),
            "zoo_accuracy": round(zoo["accuracy"], 4), "tutorial_accuracy": round(tut["accuracy"], 4),
        }
        if not args.skip_max_length:
            padded = tutorial(recipe, train_raw, eval_raw, Path(tmp) / "padded", padding="max_length")
            print(f"max_length:{padded['ex_per_s']:8.1f} ex/s   accuracy {padded['accuracy']:.4f}", flush=True)
            result.update({"max_length_ex_per_s": round(padded["ex_per_s"], 2),
                           "ratio_vs_max_length": round(zoo["ex_per_s"] / padded["ex_per_s"], 3),
                           "max_length_accuracy": round(padded["accuracy"], 4)})
    print(f"ratio zoo/tutorial: {result['ratio']:.2f}x", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
