"""Training a classifier (a head on an encoder, or on a decoder's last token) with transformers' Trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    TrainerCallback,
    set_seed,
)

from zoo.artifact.plots import plot_training_curve
from zoo.artifact.record import AdapterRecord
from zoo.config.recipe import Recipe, run_fingerprint
from zoo.data.bases import canonical_base
from zoo.data.metrics import classification_metrics, majority_baseline, official_name, tune_offsets
from zoo.data.sources import resolve_model
from zoo.data.tasks import get_task, load_split
from zoo.errors import ZooError
from zoo.methods import Method, of_recipe
from zoo.models.classifier import load_base_classifier
from zoo.models.layers import output_layer
from zoo.training.fused_lora import training_shortcuts
from zoo.training.threads import FollowFreeCores
from zoo.training.common import (
    ZooTrainer,
    StopOnNonFinite,
    TrainClock,
    resumed_time_note,
    TrainResult,
    check_finite_metrics,
    check_finite_weights,
    check_positions,
    folder_size,
    parameter_counts,
    peak_memory,
    start_peak_memory,
    provenance,
    training_arguments,
    write_atomically,
    write_record_and_card,
)


def tokenize_dataset(ds, tokenizer, max_length: int, is_pair: bool):
    """Tokenize without padding (the collator pads each batch) and keep each row's length for grouping."""

    def encode(batch):
        args = (batch["text"], batch["text_pair"]) if is_pair else (batch["text"],)
        enc = tokenizer(*args, truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    drop = [c for c in ds.column_names if c != "label"]
    return ds.map(encode, batched=True, remove_columns=drop, desc="tokenizing")


def balanced_loss(labels, classes: int):
    """Cross-entropy with each class weighted by n / (classes x its count) in ``labels`` (the training set's), so
    every class weighs the same in total: the loss macro-F1 rewards. Passed to the Trainer as ``compute_loss_func``
    (summed over the batch, divided by the Trainer's item count: gradient accumulation stays exact)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes).astype(np.float64)
    weights = torch.tensor(len(labels) / (classes * np.maximum(counts, 1.0)), dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        each = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        weighted = each * weights.to(logits.device)[labels]
        return weighted.sum() / num_items_in_batch if num_items_in_batch else weighted.mean()

    loss.weights = weights
    return loss


class FinalEvaluationAfter(TrainerCallback):
    """No evaluation inside the Trainer's loop after its last step when nothing there needs it (no best epoch to
    choose): the run evaluates its final model right after (``trainer.predict``), and evaluating it twice cost a
    4,000-sentence SST-2 run 12 % of its training time. The checkpoint is still written."""

    def _skip(self, args, state, control):
        if state.max_steps and state.global_step >= state.max_steps and not args.load_best_model_at_end:
            control.should_evaluate = False

    def on_step_end(self, args, state, control, **kwargs):
        self._skip(args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._skip(args, state, control)


OFFSET_EXAMPLES = 10_000  # training examples that train.tune_offsets scores on (emoji: 36 s to predict, 0.3 s to tune)


def fit_offsets(trainer, train_ds, task, seed: int, logits_of) -> dict:
    """``train.tune_offsets``: per-class offsets tuned on a seeded sample of the training set for the task's
    official metric (zoo.data.metrics.tune_offsets), added to the head's bias, so the published adapter (plain
    PEFT) predicts with them. Returns what zoo.json records of it."""
    rows = np.random.default_rng(seed).permutation(train_ds.num_rows)[:OFFSET_EXAMPLES]
    sample = train_ds.select(np.sort(rows)).sort("length")
    prediction = trainer.predict(sample)
    offsets, before, after = tune_offsets(logits_of(prediction), prediction.label_ids, task)
    offsets = np.round(offsets, 4)  # what zoo.json records is what the head adds
    head = output_layer(trainer.model, len(task.labels))  # found again: loading the best checkpoint may swap modules
    with torch.no_grad():
        head.bias += torch.as_tensor(offsets, dtype=head.bias.dtype, device=head.bias.device)
    metric = official_name(task) or "accuracy"
    if trainer.is_world_process_zero():
        print(f"offsets tuned for {metric} on {sample.num_rows:,} training examples: {before:.4f} -> {after:.4f} there")
    return {"split": "train", "n": int(sample.num_rows), "metric": metric,
            "before": round(before, 4), "after": round(after, 4),
            "per_label": {label: float(v) for label, v in zip(task.labels, offsets)}}


def train_classifier(
    recipe: Recipe,
    *,
    output_dir: Optional[str | Path] = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: tuple = (),
    method: Method | None = None,
    fingerprint: dict | None = None,
) -> TrainResult:
    """Train ``recipe``, evaluate on validation, write ``<output_dir>/adapter`` (default runs/<name>)."""
    method = method or of_recipe(recipe)
    fingerprint = fingerprint or run_fingerprint(recipe)  # before PEFT fills in the config (modules_to_save...)
    start_peak_memory()

    task = get_task(recipe.task)
    t = recipe.train
    output_dir = Path(output_dir or Path("runs") / recipe.name)
    checkpoints = output_dir / "checkpoints"
    if resume and not any(checkpoints.glob("checkpoint-*")):
        raise ZooError(f"--resume: no checkpoint under {checkpoints}; run once without --resume")

    # Everything that can fail on bad input fails here, before any training time is spent.
    base = resolve_model(recipe.base_model)
    check_positions(recipe, base)
    train_raw = load_split(task, "train", data_dir=recipe.data_dir, max_samples=t.max_train_samples, seed=recipe.seed)
    eval_raw = load_split(task, "validation", data_dir=recipe.data_dir, max_samples=t.max_eval_samples, seed=recipe.seed)

    set_seed(recipe.seed)
    model, tokenizer = load_base_classifier(base, task.labels, quantization=recipe.quantization,
                                            dropout=t.base_dropout)
    model = method.prepare(model, recipe.method, "SEQ_CLS")
    if t.tune_offsets:
        output_layer(model, len(task.labels))  # a head without a bias is refused now, not after training
    trainable, total = parameter_counts(model)
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

    clock = TrainClock()
    trainer = ZooTrainer(
        group_size=t.length_group_batches,
        model=model,
        args=training_arguments(recipe, checkpoints, metric, progress),
        compute_loss_func=balanced_loss(train_raw["label"], len(task.labels)) if t.class_weights == "balanced" else None,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[*callbacks, *([EarlyStoppingCallback(t.early_stopping_patience)] if t.early_stopping_patience else []),
                   FinalEvaluationAfter(), FollowFreeCores(), clock, StopOnNonFinite()],  # last: it sees what every other callback of the step did
    )
    with training_shortcuts(model, t.exact_shortcuts, first_token=True, bf16_base=t.bf16_base, name=recipe.name):  # then the libraries' own forward again
        output = trainer.train(resume_from_checkpoint=True if resume else None)
    wall = clock.seconds()  # with the time before an interruption when resumed
    resumed_time_note(clock, recipe.name)

    offsets = None  # of the final (or best) model, on training examples only: validation stays the judge
    if t.tune_offsets:
        offsets = fit_offsets(trainer, train_ds, task, recipe.seed, logits_of)
    prediction = trainer.predict(eval_ds)  # of the final (or, with early stopping, the best) model
    metrics = classification_metrics(logits_of(prediction), prediction.label_ids, task)
    check_finite_metrics(metrics, trainer.state.global_step, trainer.args)
    baseline = {"majority": majority_baseline(train_raw["label"], eval_raw["label"], task)}
    history = [
        {k: v for k, v in row.items() if k in ("step", "epoch", "loss", "eval_loss", "eval_accuracy")}
        for row in trainer.state.log_history
    ]
    if not any("eval_loss" in row and row.get("step") == trainer.state.global_step for row in history):
        history.append({"step": trainer.state.global_step, "epoch": float(output.metrics.get("epoch", t.epochs)),
                        "eval_loss": metrics["loss"], "eval_accuracy": metrics["accuracy"]})  # the final evaluation
    efficiency = {
        "total_params": total,
        "trainable_params": trainable,
        "trainable_ratio": trainable / total,
        "train_seconds": round(wall, 2),
        "train_examples_per_second": round(float(output.metrics.get("train_samples_per_second", 0.0)), 2),
        "train_examples": train_ds.num_rows,
        "epochs": float(output.metrics.get("epoch", t.epochs)),
        "steps": int(output.global_step),
        **dict(zip(("peak_memory_bytes", "peak_memory_kind"), peak_memory())),
        "device": str(trainer.args.device),
    }
    trained = trainer.model

    def build(folder: Path):
        weights = method.save(trained, recipe.method, folder, tokenizer)
        check_finite_weights(folder, trainer.state.global_step, trainer.args)
        curve = "training_curve.png" if plot_training_curve(history, folder / "training_curve.png", recipe.name) else None
        efficiency["adapter_bytes"] = folder_size(folder, {weights})
        record = AdapterRecord(
            name=recipe.name, base_model=canonical_base(recipe.base_model), task=task.name,
            task_description=task.description, method=method.name, weights=weights, labels=tuple(task.labels),
            text_fields=("text", "text_pair") if task.is_pair else ("text",), max_length=t.max_length,
            metrics={"validation": metrics, **({"offsets": offsets} if offsets else {})},
            official_metric=official_name(task), baseline=baseline,
            efficiency=efficiency, history=tuple(history), training_curve=curve, **provenance(recipe, task, fingerprint),
        )
        write_record_and_card(folder, record, method)

    adapter_dir = output_dir / "adapter"
    main_process = trainer.is_world_process_zero()  # under `accelerate launch`, one process writes
    if main_process:
        write_atomically(build, adapter_dir)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics, baseline=baseline, efficiency=efficiency,
                       model=trained, main_process=main_process, rank=trainer.args.process_index,
                       processes=trainer.args.world_size)

