"""Untrained adapters with random weights, for tests and benchmarks of serving (not of learning).

``make_adapter`` goes through the same code as training (``prepare_for_training`` and
``save_trained``) and writes the same folder a run writes (weights, ``adapter_config.json``,
``zoo.json``), only with the trainable tensors set to random values instead of trained ones, so
that every adapter changes the base's outputs and two adapters never agree by accident.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from zoo.config.recipe import METHODS, LastLayers, method_name
from zoo.data.sources import resolve_model
from zoo.methods import prepare_for_training, save_trained
from zoo.models.classifier import load_base_classifier


def default_method(kind: str, **options):
    """A method config of the given zoo method name, with small defaults."""
    from peft import (
        IA3Config,
        LoraConfig,
        PrefixTuningConfig,
        PromptEncoderConfig,
        PromptTuningConfig,
    )


    defaults = {
        "lora": lambda: LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "key", "value", "dense"]),
        "ia3": lambda: IA3Config(task_type="SEQ_CLS"),
        "prompt-tuning": lambda: PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=8),
        "p-tuning": lambda: PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=8, encoder_hidden_size=32),
        "prefix-tuning": lambda: PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=8),
        "last-layers": lambda: LastLayers(num_layers=1),
    }
    if kind not in defaults:
        raise ValueError(f"no default for {kind!r}; known: {', '.join(METHODS)}")
    method = defaults[kind]()
    for k, v in options.items():
        setattr(method, k, v)
    return method


def make_adapter(base: str, folder: str | Path, *, name: str, method, labels, task: str = "glue/sst2",
                 pair: bool = False, max_length: int = 128, seed: int = 0, scale: float = 0.5) -> Path:
    """Write a publishable adapter folder for ``base`` with random trainable weights; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(method, str):
        method = default_method(method)
    torch.manual_seed(seed)
    model, tokenizer = load_base_classifier(resolve_model(base), tuple(labels))
    model = prepare_for_training(model, method)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                noise = torch.randn(p.shape, generator=gen) * scale
                if "ia3_l" in n:
                    p.copy_(1.0 + noise)
                elif "lora_" in n or "prompt" in n or "embedding" in n:
                    p.copy_(noise)
                else:
                    p.add_(noise * 0.1)
    model.eval()
    weights = save_trained(model, method, folder, tokenizer)
    meta = {
        "format": "adapter-zoo/1", "name": name, "base_model": base, "task": task, "method": method_name(method),
        "weights": weights, "labels": list(labels), "text_fields": ["text", "text_pair"] if pair else ["text"],
        "max_length": max_length, "metrics": {}, "efficiency": {}, "synthetic": True,
    }
    (folder / "zoo.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder
