"""Layer: training. ``train(recipe)`` -> a finished adapter folder (weights, zoo.json, card, curve).

Sits above the methods (how each method prepares and saves a model), the models (base loading) and
the artifact layer (the record and its card), and beside ``zoo.serve``: training never imports
serving code, nor any hub code (publishing is the CLI's next step, ``zoo.hub``). It runs on
transformers' Trainer, so ``accelerate launch -m zoo train ...`` spreads it over GPUs with no code
of ours.

    from zoo import load_recipe, train
    result = train(load_recipe("recipes/sst2_lora.py"), output_dir="runs/sst2-lora")
    result.metrics["accuracy"]
    # -> 0.88
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from zoo._quiet import quiet
from zoo.config.recipe import Recipe, run_fingerprint
from zoo.data.sources import data_dir as resolve_data_dir
from zoo.data.sources import resolve_model
from zoo.data.tasks import get_task
from zoo.errors import ModelNotFound
from zoo.methods import of_recipe
from zoo.training.causal import train_causal
from zoo.training.classifier import train_classifier
from zoo.training.common import TrainResult


def train(recipe: Recipe, *, output_dir: Optional[str | Path] = None, resume: bool = False, progress: bool = True,
          callbacks: tuple = ()) -> TrainResult:
    """Train ``recipe``, evaluate it on validation, write ``<output_dir>/adapter`` (default ``runs/<name>``).

    Classifiers train with a head; causal recipes (generation, verbalizer classification, QLoRA on
    decoders, in-context baselines) are prompt-masked language modelling."""
    recipe.validate()  # again: a recipe changed after it was built (recipe.train.epochs = ...) is checked here too
    method = of_recipe(recipe)  # an unknown method fails here, before any data or model is loaded
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the Trainer's workers would fork a busy tokenizer
    run = train_causal if recipe.causal else train_classifier
    fingerprint = run_fingerprint(recipe)  # of the recipe as given: PEFT fills in its config while training
    with quiet():
        return run(recipe, output_dir=output_dir, resume=resume, progress=progress, callbacks=callbacks, method=method,
                   fingerprint=fingerprint)


def needs_network(recipe: Recipe) -> Optional[str]:
    """Why ``recipe`` cannot train on this machine without the Hub (its base model is only on the Hub, or its
    task's data is not in the local mirror), or None when it can. Looks, downloads nothing."""
    try:
        if resolve_model(recipe.base_model).source == "hub":
            return f"base model {recipe.base_model} would be downloaded from the Hub"
    except ModelNotFound:
        return f"base model {recipe.base_model} is not on this machine"
    task = get_task(recipe.task)
    root = resolve_data_dir(recipe.data_dir)
    if root is None:
        return f"no local data mirror (set ZOO_DATA_DIR) for {task.name}"
    if not (root / task.mirror_folder).is_dir():
        return f"task {task.name} is not in the data mirror {root}"
    return None


__all__ = ["train", "TrainResult", "needs_network"]
