"""In-context learning (``InContext()``), a baseline with no training: the base model answers from its
prompt, zero-shot or with ``prompt.shots`` solved training examples (drawn with the recipe's seed and
published in zoo.json), and an optional persona (``prompt.system``).

- Saved: nothing but zoo.json (the prompt and its measured metrics); a folder holding any weights is refused.
- Served: the bare shared base, with the entry's prompt.
"""

from __future__ import annotations

from pathlib import Path

from zoo.artifact.record import AdapterRecord
from zoo.config.recipe import InContext
from zoo.methods.base import Method
from zoo.methods.served import AdapterWeights
from zoo.models.causal import load_base_causal


def prepare(model, config, task_type: str):
    return model  # nothing is trained


def save(model, config, folder: Path, tokenizer) -> None:
    return None  # a prompt, not weights: zoo.json holds it


def read(state: dict, record: AdapterRecord, layout, where: str, folder) -> AdapterWeights:
    return AdapterWeights(record, folder, None)


def load_alone(base, folder: Path, record: AdapterRecord, dtype=None):
    model, tokenizer = load_base_causal(base, dtype=dtype)
    return model.eval(), tokenizer


def usage(causal: bool) -> str:
    return "Without adapter-zoo: render the prompt above with your input and call `generate` on `{{ m.base_model }}`."


ICL = Method(
    name="icl", title="in-context", summary="no training: the base model answers from a prompt (zero- or k-shot)",
    config=InContext.__name__, weights=None, library="transformers",
    prepare=prepare, save=save, load_alone=load_alone, read=read, usage=usage,
    defaults=lambda task_type="CAUSAL_LM": InContext(),
)
