"""zoo.load(base, adapter=...) -> a model with .predict(), .labels: a handle on the shared registry, or a
model loaded on its own (a fully fine-tuned model, a method PEFT serves alone, a feature the registry
does not implement).

Example:
    import zoo
    m = zoo.load("sentence-transformers/all-MiniLM-L6-v2", adapter="sst2-lora")
    m.predict(["a gripping, beautifully acted film"])
    # -> [{'label': 'positive', 'score': 0.97, 'scores': {'negative': 0.03, 'positive': 0.97}}]
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo._quiet import quiet
from zoo.artifact.record import AdapterRecord, read_record
from zoo.config.prompts import answer, render_inputs
from zoo.data.bases import canonical_base, same_base
from zoo.data.ids import base_problem, check
from zoo.data.sources import resolve_model
from zoo.errors import (
    AdapterBaseMismatch,
    AdapterNotFound,
    BadInput,
    UnsafeAdapter,
    UnsupportedAdapter,
)
from zoo.hub.backends import HFHub, LocalBackend, choose, parse_repo
from zoo.hub.local import LocalHub
from zoo.methods import get as get_method
from zoo.methods.served import check_positions
from zoo.models.generate import generate_texts
from zoo.models.layers import max_positions
from zoo.serve.inputs import check_input, check_text, predictions
from zoo.serve.registry import check_key, shared


class AdapterModel:
    """One published adapter on its base, ready to predict."""

    def __init__(self, model, tokenizer, record: AdapterRecord, path: Path):
        self.model, self.tokenizer, self.record, self.path = model, tokenizer, record, path

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def labels(self) -> list[str]:
        return list(self.record.labels)

    @property
    def is_pair(self) -> bool:
        return self.record.is_pair

    def __repr__(self):
        r = self.record
        return f"AdapterModel({self.name!r} on {r.base_model!r}, {r.method}, labels={self.labels})"

    def _check(self, inputs) -> None:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"predict() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")
        for i, item in enumerate(inputs):
            check_input(i, item, self.name, self.is_pair)

    @property
    def is_causal(self) -> bool:
        return self.record.causal

    def generate(self, inputs, *, batch_size: int = 8, progress: bool = False, **generation) -> list[str]:
        """Causal entries: the generated answer per input, prompted as the entry was trained.

        ``generation`` overrides the entry's settings: max_new_tokens, do_sample, num_beams,
        temperature, top_p, top_k, repetition_penalty."""

        if not self.is_causal:
            raise BadInput(f"{self.name} is a classifier; use predict()")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"generate() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")
        prompts = render_inputs(self.record.prompt, self.record.examples, self.tokenizer, inputs)
        for i, prompt in enumerate(prompts):
            check_text(i, prompt)
        with quiet():  # PEFT's prompt-tuning generate warns at every step about position ids it rebuilds anyway
            return generate_texts(self.model, self.tokenizer, prompts, max_length=self.record.max_length,
                                  settings=self.record.generation, batch_size=batch_size, progress=progress,
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
                enc = self.tokenizer(*args, truncation=True, max_length=self.record.max_length,
                                     padding=True, return_tensors="pt").to(device)
                out[idx] = self.model(**enc).logits.float().cpu().numpy()
        return out

    def predict(self, inputs, *, batch_size: int = 32) -> list[dict]:
        """Per input: ``{"label": name, "score": p, "scores": {name: p for every label}}``.

        Causal classification entries answer in words: ``{"label": name or None, "text", "no_answer"}``."""
        if self.is_causal:

            if not self.labels:
                raise BadInput(f"{self.name} generates text ({self.record.task}); use generate()")
            return [answer(self.record.label_words, text) for text in self.generate(inputs, batch_size=min(batch_size, 16))]
        return predictions(self.labels, self.logits(inputs, batch_size=batch_size))


def load_folder(folder: str | Path, *, base: str | None = None) -> AdapterModel:
    """Load an adapter folder (a training run's output or a hub revision) onto a base of its own."""
    folder = Path(folder)
    record = read_record(folder)
    if base is not None and not same_base(base, record.base_model):
        raise AdapterBaseMismatch(f"adapter {record.name!r} was trained on {record.base_model!r}, not {base!r}")
    with quiet():
        model, tokenizer = get_method(record.method).load_alone(resolve_model(record.base_model), folder, record)
    where = f"adapter {record.name!r} ({folder})"
    for name, p in model.named_parameters():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise UnsafeAdapter(f"{where}: {name} holds NaN or infinite values")
    peft_config = getattr(model, "peft_config", {}).get("default")
    virtual = getattr(peft_config, "num_virtual_tokens", 0) or 0
    check_positions(record, max_positions(model.config), virtual, record.base_model, where)
    return AdapterModel(model, tokenizer, record, folder)


def load(base: str, *, adapter: str, hub=None):
    """Find ``adapter`` published for ``base``; see the module docstring.

    ``base`` is a Hub id in either form: ``roberta-large`` and ``FacebookAI/roberta-large`` are one base.
    ``adapter`` is a short name (``sst2-lora``: the local hub first, then the Hugging Face Hub when
    a token is configured) or a Hub repo id ``ORG/NAME[@REVISION]`` (downloaded once, then served
    from the local cache, offline too). ``hub`` is a ``LocalHub`` or a ``zoo.hub`` backend.

    Adapters the registry serves come back as a handle on the process-wide shared registry of
    ``base`` (``zoo.serve.registry.shared``): the base is loaded once, however many adapters are loaded.
    Fully fine-tuned models, methods PEFT serves alone (LoHa) and configurations the registry does not
    implement (DoRA, ...) load as an ``AdapterModel`` on a base of their own.
    """
    check(base_problem(base), "base model", base, BadInput)
    check_key(adapter)  # a plain name or ORG/NAME[@REV]: never a path
    base = canonical_base(base)
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
    record = read_record(folder)
    if not get_method(record.method).shares_base:
        return load_folder(folder, base=base)
    try:
        return shared(base, local_hub).handle(key, folder=folder)
    except UnsupportedAdapter as e:  # valid PEFT, but a feature the shared base does not implement (e.g. DoRA)
        warnings.warn(f"{e}; loading it on a base of its own", stacklevel=3)
        return load_folder(folder, base=base)
