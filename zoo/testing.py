"""Untrained adapters with random weights, for tests and benchmarks of serving (not of learning).

``make_adapter`` goes through the same code as training (the method's ``prepare`` and ``save``, see
``zoo.methods``) and writes the same folder a run writes (weights, ``adapter_config.json``,
``zoo.json``), only with the trainable tensors set to random values instead of trained ones, so
that every adapter changes the base's outputs and two adapters never agree by accident.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.artifact.record import AdapterRecord
from zoo.config.recipe import method_name
from zoo.data.bases import canonical_base
from zoo.data.sources import resolve_model
from zoo.methods import METHODS, get, of_config
from zoo.models.classifier import load_base_classifier


def default_method(kind: str, **options):
    """A method config of the given zoo method name, with the method's own small defaults."""
    if kind not in METHODS or METHODS[kind].defaults is None:
        raise ValueError(f"no default for {kind!r}; known: {', '.join(METHODS)}")
    method = get(kind).defaults("SEQ_CLS")
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
    spec = of_config(method)
    torch.manual_seed(seed)
    model, tokenizer = load_base_classifier(resolve_model(base), tuple(labels))
    model = spec.prepare(model, method, "SEQ_CLS")
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
    weights = spec.save(model, method, folder, tokenizer)
    AdapterRecord(
        name=name, base_model=canonical_base(base), task=task, method=method_name(method), weights=weights,
        labels=tuple(labels), text_fields=("text", "text_pair") if pair else ("text",), max_length=max_length,
        synthetic=True,
    ).write(folder)
    return folder


def perturbed_copy(folder: str | Path, out: str | Path, *, name: str, seed: int, scale: float = 0.05) -> Path:
    """A copy of a published LoRA adapter folder under another ``name``, its LoRA tensors moved by random noise
    (``scale`` times their own spread, at least ``scale``): a second adapter that generates differently from the
    first and from the base, for serving tests of causal entries that are cheap to train only a few steps."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    out = Path(out)
    shutil.copytree(folder, out)
    weights = out / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    gen = torch.Generator().manual_seed(seed)
    for key, t in tensors.items():
        if "lora_" in key:
            spread = max(float(t.float().std()), 1.0)
            tensors[key] = (t.float() + torch.randn(t.shape, generator=gen) * scale * spread).to(t.dtype)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    record = json.loads((out / "zoo.json").read_text())
    record.update(name=name, synthetic=True)
    (out / "zoo.json").write_text(json.dumps(record, indent=2))
    return out
