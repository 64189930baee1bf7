"""How each method turns a base model into something to train, and how its result is saved and loaded.

PEFT methods (LoRA, IA3, prompt tuning, P-tuning, prefix tuning) save a plain PEFT adapter
(``adapter_config.json`` + ``adapter_model.safetensors``, the classification head inside it).
Full fine-tuning saves a plain transformers model. Last-layers fine-tuning saves only the trained
tensors (top layers + head) in ``trained_layers.safetensors``, to be laid over the base.
Everything is safetensors: nothing here ever unpickles.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from peft import PeftConfig, PeftModel, TaskType, get_peft_model
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo.artifact.record import (
    FULL_WEIGHTS,
    LAST_LAYERS_WEIGHTS,
    PEFT_WEIGHTS,
    check_safe_folder,
    is_causal,
)
from zoo.config.recipe import FullFineTuning, InContext, LastLayers, method_name
from zoo.data.sources import ResolvedModel
from zoo.errors import AdapterBaseMismatch, RecipeError, UnsafeAdapter
from zoo.models.causal import load_base_causal
from zoo.models.classifier import load_base_classifier
from zoo.models.layers import (
    causal_trained_names,
    head_parameter_names,
    transformer_layers,
)


def prepare_for_training(model, method, task_type: str = "SEQ_CLS", *, quantized: bool = False):
    """Wrap or unfreeze ``model`` for ``method``; returns the model to hand to the Trainer.

    ``task_type`` is PEFT's: "SEQ_CLS" (a classification head) or "CAUSAL_LM" (generation).
    ``quantized``: a 4-bit base (QLoRA), readied with PEFT's ``prepare_model_for_kbit_training``."""
    name = method_name(method)
    if quantized:
        from peft import prepare_model_for_kbit_training

        # Casts norms to float32 and enables input gradients; no gradient checkpointing (small models, CPU).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if isinstance(method, PeftConfig):
        if method.task_type is None:
            method = dataclasses.replace(method, task_type=TaskType(task_type))
        elif method.task_type != task_type:  # TaskType is a str enum: "SEQ_CLS" compares equal
            raise RecipeError(f"method.task_type is {method.task_type!r}; this recipe needs {task_type}")
        try:
            return get_peft_model(model, method)
        except ValueError as e:
            raise RecipeError(f"method ({name}) does not fit {type(model).__name__}: {e}") from None
    if isinstance(method, FullFineTuning):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if isinstance(method, LastLayers):
        layers = transformer_layers(model)
        if method.num_layers > len(layers):
            raise RecipeError(f"method.num_layers={method.num_layers} but the base has only {len(layers)} layers")
        for p in model.parameters():
            p.requires_grad_(False)
        params = dict(model.named_parameters())
        if task_type == "CAUSAL_LM":
            for n in causal_trained_names(model, method.num_layers):
                params[n].requires_grad_(True)
            return model
        for layer in layers[len(layers) - method.num_layers:] if method.num_layers else []:
            for p in layer.parameters():
                p.requires_grad_(True)
        for n in head_parameter_names(model):
            params[n].requires_grad_(True)
        return model
    raise RecipeError(f"method {name} has no training setup")  # unreachable: method_name() rejects others


def save_trained(model, method, folder: Path, tokenizer) -> str | None:
    """Write the trained weights into ``folder``; returns the weights file name (None: no weights)."""
    if isinstance(method, PeftConfig):
        model.save_pretrained(folder, safe_serialization=True)
        return PEFT_WEIGHTS
    if isinstance(method, FullFineTuning):
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        return FULL_WEIGHTS
    if isinstance(method, InContext):
        return None  # a prompt, not weights: zoo.json holds it
    trained = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(folder / LAST_LAYERS_WEIGHTS), metadata={"format": "pt", "zoo_method": "last-layers"})
    return LAST_LAYERS_WEIGHTS


def load_trained(base: ResolvedModel, folder: Path, meta: dict, *, dtype=None):
    """Rebuild the trained model from a published folder (zoo.json read into ``meta``): (model, tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    kind, labels = meta["method"], tuple(meta["labels"])
    if kind == "full":
        check_safe_folder(folder, FULL_WEIGHTS)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
        if model.config.num_labels != len(labels):
            raise UnsafeAdapter(f"{folder}: model has {model.config.num_labels} labels, zoo.json lists {len(labels)}")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model.eval(), tokenizer
    if is_causal(meta):

        if kind == "icl":  # a prompt on the bare base: no weights to check or load
            model, tokenizer = load_base_causal(base, dtype=dtype)
            return model.eval(), tokenizer
    weights = LAST_LAYERS_WEIGHTS if kind == "last-layers" else PEFT_WEIGHTS
    check_safe_folder(folder, weights)
    if is_causal(meta):
        model, tokenizer = load_base_causal(base, dtype=dtype)  # QLoRA adapters too: served on the full-precision base
    else:
        model, tokenizer = load_base_classifier(base, labels, dtype=dtype)
    if kind == "last-layers":
        state = load_file(str(folder / weights))
        own = dict(model.named_parameters())
        unknown = [k for k in state if k not in own]
        bad = [k for k in state if k in own and own[k].shape != state[k].shape]
        if unknown or bad:
            raise AdapterBaseMismatch(
                f"{folder}: trained layers do not fit base {base.model_id!r} "
                f"(unknown tensors {unknown[:3]}, wrong shapes {bad[:3]}); was it trained on {meta.get('base_model')!r}?"
            )
        model.load_state_dict(state, strict=False)
        return model.eval(), tokenizer
    config = json.loads((folder / "adapter_config.json").read_text())
    try:
        model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as e:
        raise AdapterBaseMismatch(f"{folder}: {config.get('peft_type')} adapter does not fit base {base.model_id!r}: {e}") from None
    return model.eval(), tokenizer
