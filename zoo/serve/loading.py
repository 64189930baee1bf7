"""zoo.load(base, adapter=...) -> a model with .predict(), .labels: a handle on the shared registry, or a
model loaded on its own (a fully fine-tuned model, or a feature the registry does not serve).

Example:
    >>> import zoo
    >>> m = zoo.load("sentence-transformers/all-MiniLM-L6-v2", adapter="sst2-lora")   # doctest: +SKIP
    >>> m.predict(["a gripping, beautifully acted film"])                             # doctest: +SKIP
    [{'label': 'positive', 'score': 0.97, 'scores': {'negative': 0.03, 'positive': 0.97}}]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.artifact.record import is_causal, read_meta
from zoo.config.prompts import answer, render_inputs
from zoo.data.sources import resolve_model
from zoo.errors import (
    AdapterBaseMismatch,
    AdapterNotFound,
    BadInput,
    UnsupportedAdapter,
)
from zoo.hub.backends import HFHub, LocalBackend, choose, parse_repo
from zoo.hub.local import LocalHub
from zoo.methods import load_trained
from zoo.models.generate import generate_texts
from zoo.serve.adapters import SERVED
from zoo.serve.inputs import check_input, predictions
from zoo.serve.registry import shared


class AdapterModel:
    """One published adapter on its base, ready to predict."""

    def __init__(self, model, tokenizer, meta: dict, path: Path):
        self.model, self.tokenizer, self.meta, self.path = model, tokenizer, meta, path

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def is_pair(self) -> bool:
        return len(self.meta.get("text_fields", ["text"])) == 2

    def __repr__(self):
        return f"AdapterModel({self.name!r} on {self.meta['base_model']!r}, {self.meta['method']}, labels={self.labels})"

    def _check(self, inputs) -> None:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"predict() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")
        for i, item in enumerate(inputs):
            check_input(i, item, self.name, self.is_pair)

    @property
    def is_causal(self) -> bool:
        return is_causal(self.meta)

    def generate(self, inputs, *, batch_size: int = 8, progress: bool = False, **generation) -> list[str]:
        """Causal entries: the generated answer per input, prompted as the entry was trained.

        ``generation`` overrides the entry's settings: max_new_tokens, do_sample, num_beams,
        temperature, top_p, top_k, repetition_penalty."""

        if not self.is_causal:
            raise BadInput(f"{self.name} is a classifier; use predict()")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"generate() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")
        prompts = render_inputs(self.meta, self.tokenizer, inputs)
        return generate_texts(self.model, self.tokenizer, prompts, max_length=self.meta["max_length"],
                              settings=self.meta.get("generation", {}), batch_size=batch_size, progress=progress,
                              desc=self.name, **generation)

    def logits(self, inputs, *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Raw logits, one row per input; long inputs are truncated to the adapter's max_length."""
        if self.is_causal:
            raise BadInput(f"{self.name} is a causal-LM entry: it has no logits per label; use predict() or generate()")
        self._check(inputs)
        if len(inputs) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        order = np.argsort([sum(map(len, x)) if self.is_pair else len(x) for x in inputs], kind="stable")
        out = np.zeros((len(inputs), len(self.labels)), dtype=np.float32)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc=f"{self.name}", disable=not progress):
                idx = order[start:start + batch_size]
                if self.is_pair:
                    args = ([inputs[i][0] for i in idx], [inputs[i][1] for i in idx])
                else:
                    args = ([inputs[i] for i in idx],)
                enc = self.tokenizer(*args, truncation=True, max_length=self.meta.get("max_length", 128),
                                     padding=True, return_tensors="pt").to(device)
                out[idx] = self.model(**enc).logits.float().cpu().numpy()
        return out

    def predict(self, inputs, *, batch_size: int = 32) -> list[dict]:
        """Per input: ``{"label": name, "score": p, "scores": {name: p for every label}}``.

        Causal classification entries answer in words: ``{"label": name or None, "text", "no_answer"}``."""
        if self.is_causal:

            if not self.labels:
                raise BadInput(f"{self.name} generates text ({self.meta['task']}); use generate()")
            return [answer(self.meta, text) for text in self.generate(inputs, batch_size=min(batch_size, 16))]
        return predictions(self.labels, self.logits(inputs, batch_size=batch_size))


def load_folder(folder: str | Path, *, base: str | None = None) -> AdapterModel:
    """Load an adapter folder (a training run's output or a hub revision) onto its base model."""
    folder = Path(folder)
    meta = read_meta(folder)
    if base is not None and base != meta["base_model"]:
        raise AdapterBaseMismatch(f"adapter {meta['name']!r} was trained on {meta['base_model']!r}, not {base!r}")
    model, tokenizer = load_trained(resolve_model(meta["base_model"]), folder, meta)
    return AdapterModel(model, tokenizer, meta, folder)


def load(base: str, *, adapter: str, hub=None):
    """Find ``adapter`` published for ``base``; see the module docstring.

    ``adapter`` is a short name (``sst2-lora``: the local hub first, then the Hugging Face Hub when
    a token is configured) or a Hub repo id ``ORG/NAME[@REVISION]`` (downloaded once, then served
    from the local cache, offline too). ``hub`` is a ``LocalHub`` or a ``zoo.hub`` backend.

    Adapters the registry serves come back as a handle on the process-wide shared registry of
    ``base`` (``zoo.serve.registry.shared``): the base is loaded once, however many adapters are loaded.
    Fully fine-tuned models are whole models of their own and load as an ``AdapterModel``.
    """

    if isinstance(hub, LocalHub):
        hub = LocalBackend(hub)
    if parse_repo(adapter):
        folder = (hub if isinstance(hub, HFHub) else HFHub()).find(base, adapter)
        return _load_found(base, adapter, folder)
    local = hub if isinstance(hub, LocalBackend) else LocalBackend()
    try:
        return _load_found(base, adapter, local.find(base, adapter), local.hub)
    except AdapterNotFound:
        if hub is None and choose(None) == "hf":
            return _load_found(base, adapter, HFHub().find(base, adapter))
        if isinstance(hub, HFHub):
            return _load_found(base, adapter, hub.find(base, adapter))
        raise


def _load_found(base: str, key: str, folder: Path, local_hub: LocalHub | None = None):
    import warnings


    meta = read_meta(folder)
    if meta["method"] not in SERVED:
        return load_folder(folder, base=base)
    try:
        return shared(base, local_hub).handle(key, folder=folder)
    except UnsupportedAdapter as e:  # valid PEFT, but a feature the shared base cannot serve (e.g. DoRA)
        warnings.warn(f"{e}; loading it on a base of its own", stacklevel=3)
        return load_folder(folder, base=base)


