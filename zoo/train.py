"""train(recipe) -> a saved adapter folder with metrics, efficiency figures and a model card.

Runs on transformers' Trainer, so ``accelerate launch -m zoo.cli train ...`` spreads it over GPUs
with no code of ours. Imports no hub code: publishing is zoo.local_hub / zoo.hub.

Example:
    >>> from zoo import load_recipe, train
    >>> result = train(load_recipe("recipes/sst2_lora.py"), output_dir="runs/sst2-lora")  # doctest: +SKIP
    >>> result.metrics["accuracy"]                                                         # doctest: +SKIP
    0.88
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .card import plot_training_curve, render_card
from .errors import ZooError
from .methods import load_base_classifier, prepare_for_training, save_trained
from .metrics import classification_metrics, majority_baseline, official_name
from .recipe import Recipe
from .sources import resolve_model
from .tasks import get_task, load_split

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the Trainer's workers would fork a busy tokenizer


@dataclass
class TrainResult:
    adapter_dir: Path  # the finished folder: weights + zoo.json + README.md
    metrics: dict
    baseline: dict
    efficiency: dict
    model: Any = field(repr=False, default=None)  # the trained model, still in memory
    main_process: bool = True  # False on the other ranks of a multi-process launch


def versions() -> dict:
    import accelerate
    import datasets
    import peft
    import safetensors
    import transformers

    from . import __version__

    return {
        "adapter-zoo": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "datasets": datasets.__version__, "accelerate": accelerate.__version__,
        "safetensors": safetensors.__version__,
    }


def tokenize_dataset(ds, tokenizer, max_length: int, is_pair: bool):
    """Tokenize without padding (the collator pads each batch) and keep each row's length for grouping."""

    def encode(batch):
        args = (batch["text"], batch["text_pair"]) if is_pair else (batch["text"],)
        enc = tokenizer(*args, truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    drop = [c for c in ds.column_names if c != "label"]
    return ds.map(encode, batched=True, remove_columns=drop, desc="tokenizing")


def _peak_memory_bytes() -> int:
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _parameter_counts(model) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):  # PEFT's own count, as users know it
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(trainable), int(sum(p.numel() for p in model.parameters()))


def _training_arguments(recipe: Recipe, checkpoints: Path, metric: str, progress: bool, greater_is_better: bool = True):
    from transformers import TrainingArguments

    t = recipe.train
    strategy = "steps" if t.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(checkpoints),
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        weight_decay=t.weight_decay,
        warmup_steps=float(t.warmup_ratio),  # a float in [0, 1) is a ratio of all steps
        max_grad_norm=t.max_grad_norm if t.max_grad_norm is not None else 0.0,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=t.eval_steps,
        save_steps=t.eval_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=t.early_stopping_patience is not None,
        metric_for_best_model=metric,
        greater_is_better=greater_is_better,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        logging_steps=t.logging_steps,
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _write_atomically(build, final: Path) -> None:
    """Build a folder next to ``final`` and swap it in with renames: no half-written folder is ever visible."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def folder_size(folder: Path, names=None) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and (names is None or p.name in names))


def train(
    recipe: Recipe,
    *,
    output_dir: Optional[str | Path] = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: tuple = (),
) -> TrainResult:
    """Train ``recipe``, evaluate on validation, write ``<output_dir>/adapter`` (default runs/<name>)."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, set_seed

    if recipe.causal:  # generation, verbalizer classification, QLoRA on decoders, in-context baselines
        from .train_causal import train_causal

        return train_causal(recipe, output_dir=output_dir, resume=resume, progress=progress, callbacks=callbacks)
    task = get_task(recipe.task)
    t = recipe.train
    output_dir = Path(output_dir or Path("runs") / recipe.name)
    checkpoints = output_dir / "checkpoints"
    if resume and not any(checkpoints.glob("checkpoint-*")):
        raise ZooError(f"--resume: no checkpoint under {checkpoints}; run once without --resume")

    # Everything that can fail on bad input fails here, before any training time is spent.
    base = resolve_model(recipe.base_model)
    train_raw = load_split(task, "train", data_dir=recipe.data_dir, max_samples=t.max_train_samples, seed=recipe.seed)
    eval_raw = load_split(task, "validation", data_dir=recipe.data_dir, max_samples=t.max_eval_samples, seed=recipe.seed)

    set_seed(recipe.seed)
    model, tokenizer = load_base_classifier(base, task.labels, quantization=recipe.quantization)
    model = prepare_for_training(model, recipe.method, quantized=recipe.quantization is not None)
    trainable, total = _parameter_counts(model)
    train_ds = tokenize_dataset(train_raw, tokenizer, t.max_length, task.is_pair)
    # Sorted by length, evaluation batches carry almost no padding; the metrics do not depend on order.
    eval_ds = tokenize_dataset(eval_raw, tokenizer, t.max_length, task.is_pair).sort("length")

    metric = "official" if task.official else "accuracy"

    def logits_of(prediction):  # some models return (logits, hidden states, ...)
        return prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions

    def compute_metrics(prediction):
        scores = classification_metrics(logits_of(prediction), prediction.label_ids, task)
        scores.pop("n")
        return scores

    trainer = Trainer(
        model=model,
        args=_training_arguments(recipe, checkpoints, metric, progress),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[*callbacks, *([EarlyStoppingCallback(t.early_stopping_patience)] if t.early_stopping_patience else [])],
    )
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    wall = time.perf_counter() - started

    prediction = trainer.predict(eval_ds)  # of the final (or, with early stopping, the best) model
    metrics = classification_metrics(logits_of(prediction), prediction.label_ids, task)
    baseline = {"majority": majority_baseline(train_raw["label"], eval_raw["label"], task)}
    history = [
        {k: v for k, v in row.items() if k in ("step", "epoch", "loss", "eval_loss", "eval_accuracy")}
        for row in trainer.state.log_history
    ]
    efficiency = {
        "total_params": total,
        "trainable_params": trainable,
        "trainable_ratio": trainable / total,
        "train_seconds": round(wall, 2),
        "train_examples_per_second": round(float(output.metrics.get("train_samples_per_second", 0.0)), 2),
        "train_examples": train_ds.num_rows,
        "epochs": float(output.metrics.get("epoch", t.epochs)),
        "steps": int(output.global_step),
        "peak_memory_bytes": _peak_memory_bytes(),
        "peak_memory_kind": "cuda_max_allocated" if torch.cuda.is_available() else "process_max_rss",
        "device": str(trainer.args.device),
    }
    trained = trainer.model

    def build(folder: Path):
        weights = save_trained(trained, recipe.method, folder, tokenizer)
        curve = "training_curve.png" if plot_training_curve(history, folder / "training_curve.png", recipe.name) else None
        efficiency["adapter_bytes"] = folder_size(folder, {weights})
        meta = {
            "format": "adapter-zoo/1",
            "name": recipe.name,
            "base_model": recipe.base_model,
            "task": task.name,
            "task_description": task.description,
            "method": recipe.method_name,
            "weights": weights,
            "labels": list(task.labels),
            "text_fields": ["text", "text_pair"] if task.is_pair else ["text"],
            "max_length": t.max_length,
            "metrics": {"validation": metrics},
            "official_metric": official_name(task),
            "baseline": baseline,
            "efficiency": efficiency,
            "recipe": recipe.to_dict(),
            "data_source": str(recipe.data_dir or os.environ.get("ZOO_DATA_DIR") or f"hub:{task.hub_dataset}"),
            "history": history,
            "training_curve": curve,
            "versions": versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (folder / "zoo.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        (folder / "README.md").write_text(render_card(meta))

    adapter_dir = output_dir / "adapter"
    main_process = trainer.is_world_process_zero()  # under `accelerate launch`, one process writes
    if main_process:
        _write_atomically(build, adapter_dir)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics, baseline=baseline, efficiency=efficiency,
                       model=trained, main_process=main_process)

