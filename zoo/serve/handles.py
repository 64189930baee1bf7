"""Adapter handles: one adapter of a shared :class:`~zoo.serve.registry.Zoo`, with the API ``zoo.load`` returns.

A handle holds only the registry and a name; every call goes through the registry, so many handles
on one base share one frozen model in memory, and an evicted adapter is reloaded on its next use.
Classification adapters answer ``.predict`` / ``.logits``; causal-LM adapters ``.generate``, and, if
they have labels, ``.predict`` by reading their generations as labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from zoo.config.prompts import answer, render_inputs
from zoo.errors import BadInput
from zoo.serve.inputs import predictions


class AdapterHandle:
    """One adapter of a shared :class:`Zoo`: ``.predict``, ``.logits``, ``.labels`` as ``zoo.load`` returns."""

    def __init__(self, registry, name: str):
        self.zoo, self.name = registry, name

    @property
    def record(self):
        """The adapter's zoo.json, typed (``zoo.artifact.record.AdapterRecord``)."""
        return self.zoo.record(self.name)

    @property
    def labels(self) -> list[str]:
        return self.zoo.labels(self.name)

    @property
    def is_pair(self) -> bool:
        return self.record.is_pair

    @property
    def path(self) -> Path:
        return self.zoo._known[self.name]

    @property
    def is_causal(self) -> bool:
        return self.record.causal

    def logits(self, inputs, *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Raw logits, one row per input; long inputs are truncated to the adapter's max_length."""

        if self.is_causal:
            raise BadInput(f"{self.name!r} is a causal-LM adapter: it has no logits per label; "
                           "use .generate(inputs) for text, or .predict(inputs) for its answers read as labels")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"predict() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")
        n = len(self.labels)
        if len(inputs) == 0:
            return np.zeros((0, n), dtype=np.float32)
        step = max(batch_size * 8, 256) if progress else len(inputs)
        parts = []
        for start in tqdm(range(0, len(inputs), step), desc=self.name, disable=not progress):
            part = list(inputs[start:start + step])
            parts.extend(self.zoo.logits(part, adapter=self.name, batch_size=batch_size))
        return np.stack(parts).astype(np.float32)

    def predict(self, inputs, *, batch_size: int = 32) -> list[dict]:
        """Per input: ``{"label": name, "score": p, "scores": {name: p for every label}}``.

        A causal-LM adapter with labels answers by generating: ``{"label": name or None, "text": generation,
        "no_answer": bool}`` (``zoo.config.prompts.answer``).
        """
        if self.is_causal:
            if not self.labels:
                raise BadInput(f"{self.name!r} generates free text and has no labels; use .generate(inputs)")
            return [answer(self.record.label_words, text) for text in self.generate(inputs, batch_size=batch_size)]
        return predictions(self.labels, self.logits(inputs, batch_size=batch_size))

    def generate(self, inputs, *, batch_size: int = 8, progress: bool = False, **generation) -> list[str]:
        """The adapter's generation for each input, rendered with its zoo.json prompt format (new text only).

            handle = zoo.load("HuggingFaceTB/SmolLM2-135M-Instruct", adapter="alpaca-lora")
            handle.generate([{"instruction": "Name a colour.", "input": ""}], max_new_tokens=8)
            # -> ['Blue.']
        """
        if not self.is_causal:
            raise BadInput(f"{self.name!r} is a classification adapter; use .predict(inputs) or .logits(inputs)")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"generate() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")

        prompts = render_inputs(self.record.prompt, self.record.examples, self.zoo.tokenizer, inputs)
        step = batch_size * 4 if progress else max(len(prompts), 1)  # progress: report every few batches
        out: list[str] = []
        for start in tqdm(range(0, len(prompts), step), desc=self.name, disable=not progress):
            out += self.zoo.generate(prompts[start:start + step], adapter=self.name, batch_size=batch_size, **generation)
        return out

    def __repr__(self):
        r = self.record
        return f"AdapterHandle({self.name!r} on {r.base_model!r}, {r.method}, labels={self.labels})"
