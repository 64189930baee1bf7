"""Full fine-tuning (``FullFineTuning()``), a baseline: every weight of the base and the head is trained.

- Saved: a complete transformers model (``model.safetensors``, config, tokenizer).
- Served: as a model of its own (it cannot share a base); ``zoo.load`` loads it whole.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from zoo.artifact.record import FULL_WEIGHTS, AdapterRecord, check_safe_folder
from zoo.config.recipe import FullFineTuning
from zoo.errors import UnsafeAdapter
from zoo.methods.base import Method


def prepare(model, config, task_type: str):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def save(model, config, folder: Path, tokenizer) -> str:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return FULL_WEIGHTS


def load_alone(base, folder: Path, record: AdapterRecord, dtype=None):
    """The folder is the whole model: no base is loaded."""

    check_safe_folder(folder, FULL_WEIGHTS)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # in the dtype asked for (float32 by default), whatever the file stores: a half-precision file
    # would otherwise give a half-precision model
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True, dtype=dtype or torch.float32)
    if model.config.num_labels != len(record.labels):
        raise UnsafeAdapter(f"{folder}: model has {model.config.num_labels} labels, zoo.json lists {len(record.labels)}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def usage(causal: bool) -> str:
    return '''With plain transformers (this folder is a complete model):

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
```'''


FULL = Method(
    name="full", title="full fine-tuning", summary="every weight of the base model and the head is trained (baseline)",
    config=FullFineTuning.__name__, weights=FULL_WEIGHTS, library="transformers",
    prepare=prepare, save=save, load_alone=load_alone, usage=usage, defaults=lambda task_type="SEQ_CLS": FullFineTuning(),
)
