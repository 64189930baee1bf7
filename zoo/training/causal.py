"""train(recipe) for causal language models: instruction tuning, summarization, verbalizer
classification, QLoRA, and in-context-learning baselines (measured, not trained).

The loss is on the answer tokens only (``zoo.causal.encode_example`` masks the prompt). Metrics:
held-out answer perplexity (with the base model's, measured before training, for comparison);
ROUGE-1/2/L of generated summaries; accuracy and "no answer" rate of verbalized generations.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
from transformers import EarlyStoppingCallback, set_seed

from zoo.artifact.plots import plot_training_curve
from zoo.artifact.record import AdapterRecord
from zoo.config.prompts import label_words, render, verbalize
from zoo.config.recipe import InContext, Recipe, run_fingerprint
from zoo.data.bases import canonical_base
from zoo.data.metrics import classification_metrics, majority_baseline, official_name
from zoo.data.sources import resolve_model
from zoo.data.tasks import get_task, load_split
from zoo.errors import ZooError
from zoo.methods import Method, of_recipe
from zoo.models.causal import load_base_causal
from zoo.models.generate import generate_texts
from zoo.training.causal_data import (
    answer_perplexity,
    collator,
    prompt_values,
    rouge,
    target_text,
    tokenize_causal,
)
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

SAMPLES_IN_CARD = 3


def score_generations(task, words: dict[str, list[str]], texts: list[str], rows) -> dict:
    """Classification read from generations (``words``: each label's words, ``AdapterRecord.label_words``),
    or ROUGE against the references."""

    if task.is_generation:
        return rouge(texts, [r["output"] for r in rows])
    labels = np.asarray([r["label"] for r in rows])
    chosen = [verbalize(words, t) for t in texts]
    # A generation that names no label is wrong: one-hot on a label it cannot match (ids shifted by one).
    logits = np.zeros((len(texts), len(task.labels)), dtype=np.float64)
    for i, label in enumerate(chosen):
        if label is not None:
            logits[i, task.labels.index(label)] = 1.0
        else:
            logits[i, (labels[i] + 1) % len(task.labels)] = 1.0
    scores = classification_metrics(logits, labels, task)
    scores.pop("loss")
    scores["no_answer_rate"] = float(np.mean([c is None for c in chosen]))
    return scores


def pick_shots(train_raw, task, k: int, seed: int) -> list[int]:
    """k training rows for the prompt; for classification, labels take turns (3 shots of one label
    would teach the model to answer that label), in a seeded order."""
    rng = random.Random(seed)
    order = list(range(train_raw.num_rows))
    rng.shuffle(order)
    if not task.labels:
        return order[:k]
    by_label: dict[int, list[int]] = {}
    for i in order:
        by_label.setdefault(train_raw[i]["label"], []).append(i)
    labels = sorted(by_label)
    rng.shuffle(labels)
    picked = []
    while len(picked) < min(k, len(order)):
        for label in labels:
            if by_label[label] and len(picked) < k:
                picked.append(by_label[label].pop(0))
    rng.shuffle(picked)
    return picked


def evaluate_generations(model, tokenizer, task, record: AdapterRecord, rows: list[dict], *, batch_size: int,
                         progress: bool):
    """(metrics, texts) of generating an answer for each validation row with the entry's prompt."""
    prompts = [render(record.prompt, tokenizer, prompt_values(task, r), list(record.examples)) for r in rows]
    texts = generate_texts(model, tokenizer, prompts, max_length=record.max_length, settings=record.generation,
                           batch_size=batch_size, progress=progress, desc="generating (validation)")
    return score_generations(task, record.label_words, texts, rows), prompts, texts


def train_causal(recipe: Recipe, *, output_dir=None, resume: bool = False, progress: bool = True, callbacks=(),
                 method: Method | None = None, fingerprint: dict | None = None):
    """Train (or, in context, only measure) a causal recipe; write ``<output_dir>/adapter``."""
    fingerprint = fingerprint or run_fingerprint(recipe)  # before PEFT fills in the config (modules_to_save...)
    start_peak_memory()

    method = method or of_recipe(recipe)
    task = get_task(recipe.task)
    t = recipe.train
    output_dir = Path(output_dir or Path("runs") / recipe.name)
    checkpoints = output_dir / "checkpoints"
    icl = isinstance(recipe.method, InContext)
    if resume and (icl or not any(checkpoints.glob("checkpoint-*"))):
        raise ZooError(f"--resume: no checkpoint under {checkpoints}; run once without --resume")

    base = resolve_model(recipe.base_model)
    check_positions(recipe, base)
    train_raw = load_split(task, "train", data_dir=recipe.data_dir, max_samples=t.max_train_samples, seed=recipe.seed)
    eval_raw = load_split(task, "validation", data_dir=recipe.data_dir, max_samples=t.max_eval_samples, seed=recipe.seed)
    fmt = recipe.prompt.to_dict()
    examples = []
    if recipe.prompt.shots:  # k-shot: solved training examples, drawn once with the recipe's seed and published
        examples = [{**prompt_values(task, train_raw[i]), "output": target_text(task, train_raw[i], recipe.verbalizer)}
                    for i in pick_shots(train_raw, task, recipe.prompt.shots, recipe.seed)]
    verbalizer = None
    if task.labels:
        verbalizer = label_words(task.labels, {k: [v] if isinstance(v, str) else list(v)
                                               for k, v in (recipe.verbalizer or {}).items()})
    record = AdapterRecord(  # what the entry is; the measured figures are added when it is written
        name=recipe.name, base_model=canonical_base(recipe.base_model), task=task.name,
        task_description=task.description, task_kind=task.kind, task_type="CAUSAL_LM", method=method.name,
        weights=method.weights, labels=tuple(task.labels), text_fields=tuple(task.fields), max_length=t.max_length,
        prompt=fmt, examples=tuple(examples), verbalizer=verbalizer, generation=recipe.generation.to_dict(),
    )

    set_seed(recipe.seed)
    model, tokenizer = load_base_causal(base, quantization=recipe.quantization, dropout=recipe.train.base_dropout)
    data_collator = collator(tokenizer)
    eval_ds = tokenize_causal(eval_raw, tokenizer, fmt, task, recipe.verbalizer, t.max_length, examples).sort("length")
    generate_rows = [eval_raw[i] for i in range(min(eval_raw.num_rows, t.max_generate_samples))]
    baseline: dict = {}
    if task.labels:

        baseline["majority"] = majority_baseline(train_raw["label"], eval_raw["label"], task)
    # The base model's held-out answer perplexity, before any training: the number training must lower.
    baseline["base_model"] = answer_perplexity(model, eval_ds, data_collator, batch_size=t.eval_batch_size,
                                               progress=progress, desc="perplexity (base model)")
    if progress:
        print(f"base model: answer perplexity {baseline['base_model']['perplexity']:.3f}", flush=True)

    history: list[dict] = []
    started = time.perf_counter()
    if icl:
        trained, trainable, total, steps, rate, epochs = model, 0, sum(p.numel() for p in model.parameters()), 0, 0.0, 0.0
        train_examples = 0
    else:
        model = method.prepare(model, recipe.method, "CAUSAL_LM")
        trainable, total = parameter_counts(model)
        train_ds = tokenize_causal(train_raw, tokenizer, fmt, task, recipe.verbalizer, t.max_length)
        clock = TrainClock()
        trainer = ZooTrainer(
            group_size=t.length_group_batches,
            model=model,
            args=training_arguments(recipe, checkpoints, "loss", progress, greater_is_better=False),
            train_dataset=train_ds, eval_dataset=eval_ds, data_collator=data_collator,
            callbacks=[*callbacks, *([EarlyStoppingCallback(t.early_stopping_patience)] if t.early_stopping_patience else []),
                   FollowFreeCores(), clock, StopOnNonFinite()],  # last: it sees what every other callback of the step did
        )
        with training_shortcuts(model, t.exact_shortcuts, bf16_base=t.bf16_base, name=recipe.name):  # then PEFT's own forward again
            output = trainer.train(resume_from_checkpoint=True if resume else None)
        resumed_time_note(clock, recipe.name)
        trained = trainer.model
        steps, epochs = int(output.global_step), float(output.metrics.get("epoch", t.epochs))
        rate = round(float(output.metrics.get("train_samples_per_second", 0.0)), 2)
        train_examples = train_ds.num_rows
        history = [{k: v for k, v in row.items() if k in ("step", "epoch", "loss", "eval_loss")}
                   for row in trainer.state.log_history]
    wall = time.perf_counter() - started + (0.0 if icl else clock.before)  # with the time before an interruption

    if icl:  # the base model with this prompt: measured above already
        metrics = dict(baseline["base_model"])
    else:
        metrics = answer_perplexity(trained, eval_ds, data_collator, batch_size=t.eval_batch_size, progress=progress,
                                    desc="perplexity (adapter)")
        check_finite_metrics(metrics, trainer.state.global_step, trainer.args)  # before minutes of generating
    metrics["n"] = eval_raw.num_rows
    if progress:
        print(f"{recipe.name}: answer perplexity {metrics['perplexity']:.3f} "
              f"(base model {baseline['base_model']['perplexity']:.3f})", flush=True)
    samples = []
    if generate_rows and (task.labels or task.kind == "summarization"):
        scores, prompts, texts = evaluate_generations(trained, tokenizer, task, record, generate_rows,
                                                      batch_size=t.eval_batch_size, progress=progress)
        metrics.update({k: v for k, v in scores.items() if k != "n"})
        metrics["generated_n"] = scores["n"]
        samples = [{"prompt": p, "reference": target_text(task, r, recipe.verbalizer), "generated": x}
                   for p, r, x in list(zip(prompts, generate_rows, texts))[:SAMPLES_IN_CARD]]
    elif generate_rows:
        rows = generate_rows[:SAMPLES_IN_CARD]
        prompts = [render(fmt, tokenizer, prompt_values(task, r), examples) for r in rows]
        texts = generate_texts(trained, tokenizer, prompts, max_length=t.max_length, settings=record.generation,
                               batch_size=t.eval_batch_size, desc="samples")
        samples = [{"prompt": p, "reference": r["output"], "generated": x} for p, r, x in zip(prompts, rows, texts)]

    efficiency = {
        "total_params": int(total), "trainable_params": int(trainable), "trainable_ratio": trainable / total,
        "train_seconds": round(wall, 2) if not icl else 0.0, "train_examples_per_second": rate,
        "train_examples": train_examples, "epochs": epochs, "steps": steps,
        **dict(zip(("peak_memory_bytes", "peak_memory_kind"), peak_memory())),
        "device": str(next(trained.parameters()).device),
        "quantized_base": recipe.quantization is not None,
    }

    def build(folder: Path):
        weights = method.save(trained, recipe.method, folder, tokenizer)
        if not icl:
            check_finite_weights(folder, trainer.state.global_step, trainer.args)
        curve = "training_curve.png" if plot_training_curve(history, folder / "training_curve.png", recipe.name) else None
        efficiency["adapter_bytes"] = folder_size(folder, {weights}) if weights else 0
        full = record.replace(
            weights=weights, metrics={"validation": metrics}, official_metric=official_name(task) if task.labels else None,
            baseline=baseline, efficiency=efficiency, samples=tuple(samples), history=tuple(history),
            training_curve=curve, **provenance(recipe, task, fingerprint),
        )
        write_record_and_card(folder, full, method)

    adapter_dir = output_dir / "adapter"
    main_process = icl or trainer.is_world_process_zero()  # under `accelerate launch`, one process writes
    if main_process:
        write_atomically(build, adapter_dir)
    if not icl:
        trainer.accelerator.wait_for_everyone()
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics, baseline=baseline, efficiency=efficiency, model=trained,
                       main_process=main_process, rank=0 if icl else trainer.args.process_index,
                       processes=1 if icl else trainer.args.world_size)
