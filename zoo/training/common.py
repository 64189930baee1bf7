"""What every training run shares: its result, the Trainer's arguments from a recipe, the efficiency
figures (parameter counts, peak memory, sizes), library versions, and the atomic write of the
finished adapter folder.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerate
import datasets
import peft
import safetensors
import torch
import transformers
from transformers import TrainingArguments

from zoo._version import __version__
from zoo.artifact.card import render_card
from zoo.artifact.record import AdapterRecord
from zoo.config.recipe import Recipe


@dataclass
class TrainResult:
    adapter_dir: Path  # the finished folder: weights + zoo.json + README.md
    metrics: dict
    baseline: dict
    efficiency: dict
    model: Any = field(repr=False, default=None)  # the trained model, still in memory
    main_process: bool = True  # False on the other ranks of a multi-process launch


def versions() -> dict:


    return {
        "adapter-zoo": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "datasets": datasets.__version__, "accelerate": accelerate.__version__,
        "safetensors": safetensors.__version__,
    }


def peak_memory_bytes() -> int:
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def parameter_counts(model) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):  # PEFT's own count, as users know it
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(trainable), int(sum(p.numel() for p in model.parameters()))


def training_arguments(recipe: Recipe, checkpoints: Path, metric: str, progress: bool, greater_is_better: bool = True):

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


def write_atomically(build, final: Path) -> None:
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




def provenance(recipe: Recipe, task) -> dict:
    """What every record says of its run: the resolved recipe, where the data came from, library versions, when."""
    return {"recipe": recipe.to_dict(), "versions": versions(),
            "data_source": str(recipe.data_dir or os.environ.get("ZOO_DATA_DIR") or f"hub:{task.hub_dataset}"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_record_and_card(folder: Path, record: AdapterRecord, method) -> None:
    """zoo.json and the model card (README.md) of a finished adapter folder."""
    record.write(folder)
    (folder / "README.md").write_text(render_card(record, method.text(causal=record.causal)))
