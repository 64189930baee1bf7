"""The registry: many adapters of every method and label set on one frozen base, chosen per request.

    import zoo
    z = zoo.Zoo("sentence-transformers/all-MiniLM-L6-v2")
    z.add("sst2-lora"); z.add("tweet-emotion-ia3"); z.add("rte-prefix-tuning")
    z.predict(["what a film", ("A man sleeps.", "A person rests.")], adapters=["sst2-lora", "rte-prefix-tuning"])

A mixed request: rows are grouped by what they need from the base (plain rows for LoRA, IA3 and
last-layers; rows with N virtual tokens for prompt and P-tuning; rows with an N-token prefix), each
group sorted by length and cut into batches, and each batch is ONE forward pass of the shared base in
which every row gets its own adapter's deltas (``zoo.serve.routing``). The base's weights are frozen,
shared, and bit-identical before and after. A decoder-only base is loaded once as a causal LM: it
serves causal adapters through :meth:`Zoo.generate` and classifiers through a shell sharing its
backbone. Adapters stay resident; ``max_adapters`` / ``max_bytes`` evict the least recently used.
The base is loaded and wrapped in ``zoo.serve.base``, generation is ``zoo.serve.generation``.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from zoo.artifact.record import AdapterRecord, read_record
from zoo.config.generation import check_generation, resolve_settings
from zoo.data.bases import canonical_base
from zoo.data.ids import base_problem, check, name_problem
from zoo.data.sources import resolve_model
from zoo.errors import AdapterNotFound, BadInput, ZooError
from zoo.hub.backends import parse_repo
from zoo.hub.local import LocalHub
from zoo.methods.served import AdapterWeights
from zoo.serve.adapters import read_adapter
from zoo.serve.base import load_base, release_free_memory, wrap_base
from zoo.serve.generation import GenerationHook, generate_rows
from zoo.serve.handles import AdapterHandle  # also imported from here: zoo.cli, tests
from zoo.serve.inputs import check_input, check_text, predictions
from zoo.serve.routing import prefix_cache, prompt_embeddings, route_rows, routed


def check_key(key) -> None:
    """A name the registry serves an adapter under: a plain adapter name, or a Hub repo id ``ORG/NAME[@REV]``."""
    if parse_repo(key) is None:  # parse_repo refuses a malformed repo id itself
        check(name_problem(key), "adapter name", key, BadInput)


class Zoo:
    """A frozen base model shared by many adapters; see the module docstring.

    ``hub`` finds adapters by name (the local hub by default). ``max_adapters`` / ``max_bytes``
    bound the resident adapters (None: unbounded).
    """

    def __init__(self, base: str, *, hub: LocalHub | None = None, max_adapters: int | None = None,
                 max_bytes: int | None = None, dtype=None):
        check(base_problem(base), "base model", base, BadInput)
        self.base = base = canonical_base(base)  # "roberta-large" and "FacebookAI/roberta-large" are one base
        self.hub = hub or LocalHub()
        self.max_adapters, self.max_bytes = max_adapters, max_bytes
        model, classifier, tokenizer = load_base(resolve_model(base), dtype)
        for m in {id(model): model, id(classifier): classifier}.values():
            if m is not None:
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.layout = wrap_base(model, classifier, base)
        self.model = model                # the base as loaded: a classifier, or a causal LM
        self.classifier = classifier      # what predict() runs: the model itself, or a shell sharing its backbone
        self._tokenizing = threading.Lock()  # a fast tokenizer's truncation/padding is state set per call
        if self.layout.causal:
            self.generation_hook = GenerationHook(model)  # wraps prepare_inputs_for_generation during our calls only
            # generate() tokenizes as PEFT users do: pad and truncate on the left, prompts end at the answer
            self._prompt_tokenizer = copy.deepcopy(tokenizer)
            self._prompt_tokenizer.padding_side = self._prompt_tokenizer.truncation_side = "left"
        self._known: dict[str, Path] = {}                       # name -> folder, for reloads after eviction
        self._resident: OrderedDict[str, AdapterWeights] = OrderedDict()  # LRU order, most recent last
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Lock] = {}
        self.stats = {"loads": 0, "evictions": 0}
        release_free_memory()

    # ----------------------------------------------------------------------------- adapters
    @property
    def names(self) -> list[str]:
        """Every adapter added (resident or evicted-and-reloadable), in the order added."""
        with self._lock:
            return list(self._known)

    @property
    def resident(self) -> list[str]:
        """Adapters in memory now, least recently used first."""
        with self._lock:
            return list(self._resident)

    @property
    def resident_bytes(self) -> int:
        with self._lock:
            return sum(a.nbytes for a in self._resident.values())

    def add(self, name: str | None = None, *, folder: str | Path | None = None, alias: str | None = None) -> str:
        """Load adapter ``name`` from the hub (or an adapter ``folder``) and keep it resident; returns its name.

        A bad adapter (another base, corrupt, pickled, inconsistent) raises a ZooError and changes nothing.
        ``alias`` registers it under another name (a Hub repo id, so that it cannot clash with a local
        adapter of the same name).
        """
        for key in (name, alias):
            if key is not None:
                check_key(key)
        if folder is None:
            if not name:
                raise BadInput("add() needs an adapter name or folder=")
            folder = self.hub.find(self.base, name)
        folder = Path(folder)
        weights = self._read(folder)
        if name is not None and alias is None and weights.name != name:
            raise ZooError(f"{folder} holds adapter {weights.name!r}, not {name!r}")
        key = alias or weights.name
        weights.key = key
        with self._lock:
            self._known[key] = folder
            self._resident[key] = weights
            self._resident.move_to_end(key)
            self._evict(keep=key)
        release_free_memory()
        return key

    def remove(self, name: str) -> None:
        """Forget adapter ``name``; its memory is freed once requests using it finish."""
        with self._lock:
            if name not in self._known:
                raise AdapterNotFound(self._unknown(name))
            del self._known[name]
            self._resident.pop(name, None)

    def record(self, name: str) -> AdapterRecord:
        """The adapter's zoo.json, typed."""
        return self._get(name).record

    def labels(self, name: str) -> list[str]:
        return list(self._get(name).labels)

    def _read(self, folder: Path) -> AdapterWeights:
        weights = read_adapter(folder, read_record(folder), self.layout)
        with self._lock:
            self.stats["loads"] += 1
        return weights

    def _unknown(self, name: str) -> str:
        known = ", ".join(self._known) or "none"
        return f"no adapter {name!r} in this registry for base {self.base!r} (loaded: {known}); add it with .add({name!r})"

    def _evict(self, keep: str | None = None) -> None:
        def over():
            if self.max_adapters is not None and len(self._resident) > self.max_adapters:
                return True
            return self.max_bytes is not None and sum(a.nbytes for a in self._resident.values()) > self.max_bytes

        while over():
            victim = next((n for n in self._resident if n != keep), None)
            if victim is None:
                break
            del self._resident[victim]
            self.stats["evictions"] += 1

    def _get(self, name: str) -> AdapterWeights:
        """The resident adapter, reloading it if it was evicted; marks it most recently used."""
        with self._lock:
            weights = self._resident.get(name)
            if weights is not None:
                self._resident.move_to_end(name)
                return weights
            if name not in self._known:
                raise AdapterNotFound(self._unknown(name))
            folder = self._known[name]
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:  # one reload per adapter, others wait for it
            with self._lock:
                weights = self._resident.get(name)
                if weights is not None:
                    return weights
            weights = self._read(folder)
            weights.key = name
            with self._lock:
                if name in self._known:
                    self._resident[name] = weights
                    self._evict(keep=name)
            return weights

    # ----------------------------------------------------------------------------- prediction
    def logits(self, inputs: Sequence, *, adapter: str | None = None, adapters: Sequence[str] | None = None,
               batch_size: int = 32) -> list[np.ndarray]:
        """Raw logits per input (each as long as its adapter's label set)."""
        return self._run(inputs, adapter, adapters, batch_size)[1]

    def predict(self, inputs: Sequence, *, adapter: str | None = None, adapters: Sequence[str] | None = None,
                batch_size: int = 32) -> list[dict]:
        """Per input: ``{"label", "score", "scores", "adapter"}``, each input with its own adapter."""
        rows, logits = self._run(inputs, adapter, adapters, batch_size)
        return [{**predictions(a.labels, [row])[0], "adapter": a.key} for a, row in zip(rows, logits)]

    def _resolve(self, inputs, adapter, adapters, batch_size) -> list[AdapterWeights]:
        """Each input's adapter, resolved once and held for the whole request."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"inputs must be a list, got {type(inputs).__name__}; wrap one input in a list")
        if (adapter is None) == (adapters is None):
            raise BadInput("pass either adapter=NAME or adapters=[NAME per input]")
        names = [adapter] * len(inputs) if adapter is not None else list(adapters)
        if len(names) != len(inputs):
            raise BadInput(f"{len(inputs)} inputs but {len(names)} adapter names")
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise BadInput(f"input {i}: an adapter is named by a string, not {type(name).__name__}")
        if batch_size < 1:
            raise BadInput("batch_size must be at least 1")
        resolved = {n: self._get(n) for n in dict.fromkeys(names)}
        return [resolved[n] for n in names]

    def _run(self, inputs, adapter, adapters, batch_size) -> tuple[list[AdapterWeights], list[np.ndarray]]:
        """Each input's adapter (resolved once, held for the request) and its logits."""
        rows = self._resolve(inputs, adapter, adapters, batch_size)
        for i, (item, a) in enumerate(zip(inputs, rows)):
            if a.is_causal:
                raise BadInput(f"input {i}: {a.key!r} is a causal-LM adapter: use generate(), or "
                               f"handle({a.key!r}).predict() to read its generations as labels")
            check_input(i, item, a.key, a.is_pair)
        out: list[np.ndarray | None] = [None] * len(inputs)
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(rows):
            groups.setdefault(a.group, []).append(i)
        for group, idx in groups.items():
            idx.sort(key=lambda i: _length(inputs[i]))
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                for i, row in zip(*self._forward(group, chunk, inputs, rows)):
                    out[i] = row
        return rows, out  # type: ignore[return-value]

    def _encode(self, chunk, inputs, rows):
        """Tokenize each row with its adapter's max_length, then pad the chunk together."""
        tok = self.tokenizer
        ids, types = [], []
        with self._tokenizing:
            for i in chunk:
                a, item = rows[i], inputs[i]
                args = (item[0], item[1]) if a.is_pair else (item,)
                enc = tok(*args, truncation=True, max_length=a.max_length)
                ids.append(enc["input_ids"])
                types.append(enc.get("token_type_ids"))
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        token_types = torch.zeros((len(ids), width), dtype=torch.long) if types[0] is not None else None
        left = tok.padding_side == "left"
        for r, x in enumerate(ids):
            sl = slice(width - len(x), width) if left else slice(0, len(x))
            input_ids[r, sl] = torch.tensor(x)
            mask[r, sl] = 1
            if token_types is not None:
                token_types[r, sl] = torch.tensor(types[r])
        return input_ids, mask, token_types

    def _forward(self, group: tuple, chunk: list[int], inputs, rows):
        chunk, route = route_rows(chunk, rows)
        input_ids, mask, token_types = self._encode(chunk, inputs, rows)
        kwargs = {"attention_mask": mask}
        if token_types is not None:
            kwargs["token_type_ids"] = token_types
        if self.layout.causal:
            kwargs["use_cache"] = False  # a decoder would build a KV cache that mixed replaced blocks cannot share
        model = self.classifier
        with torch.inference_mode(), routed(route):
            if group[0] == "prompt":
                n = group[1]
                embeds = model.get_input_embeddings()(input_ids)
                kwargs["attention_mask"] = torch.cat([torch.ones(len(chunk), n, dtype=mask.dtype), mask], dim=1)
                if token_types is not None:
                    kwargs["token_type_ids"] = torch.cat([torch.zeros(len(chunk), n, dtype=torch.long), token_types], 1)
                logits = model(inputs_embeds=torch.cat([prompt_embeddings(route).to(embeds.dtype), embeds], dim=1), **kwargs).logits
            elif group[0] == "prefix":
                n = group[1]
                kwargs["attention_mask"] = torch.cat([torch.ones(len(chunk), n, dtype=mask.dtype), mask], dim=1)
                kwargs["past_key_values"] = prefix_cache(route, self.model.dtype)
                logits = model(input_ids=input_ids, **kwargs).logits
            else:
                logits = model(input_ids=input_ids, **kwargs).logits
        logits = logits.float().numpy()
        return chunk, [logits[r, :len(rows[i].labels)].copy() for r, i in enumerate(chunk)]

    # ----------------------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], *, adapter: str | None = None, adapters: Sequence[str] | None = None,
                 batch_size: int = 8, stream: Callable[[int, int], None] | None = None, **generation) -> list[str]:
        """The text each causal-LM adapter generates after its prompt (prompts already templated); new text only.

        ``stream(i, token_id)``: called with each new token of prompt ``i`` as it is generated (not with beams).

        Settings: each adapter's zoo.json "generation", overridden by ``generation`` (max_new_tokens,
        do_sample, num_beams, temperature, top_p, top_k, repetition_penalty). Prompts longer than the
        adapter's max_length keep their last max_length tokens.

            z = Zoo("HuggingFaceTB/SmolLM2-135M-Instruct")
            z.add("alpaca-lora"); z.add("sst2-prompt-tuning")
            z.generate(["Review: a fine film. Sentiment:"] * 2, adapters=["alpaca-lora", "sst2-prompt-tuning"],
                       max_new_tokens=8)
            # -> [' positive, it is a fine film', ' positive']
        """
        rows = self._resolve(prompts, adapter, adapters, batch_size)
        check_generation(generation, BadInput, "generate()")
        for i, (prompt, a) in enumerate(zip(prompts, rows)):
            if not a.is_causal:
                raise BadInput(f"input {i}: {a.key!r} is a classification adapter; use predict() or logits()")
            if not isinstance(prompt, str):
                raise BadInput(f"input {i}: expected a prompt string, got {type(prompt).__name__}")
            check_text(i, prompt)
            if not prompt:
                raise BadInput(f"input {i}: the prompt is empty; generation continues a text, give it one")
        limit = self.layout.max_positions
        for a in {id(a): a for a in rows}.values() if limit else ():
            virtual = next((t.shape[0] for t in (a.prompt, a.prefix) if t is not None), 0)
            new = resolve_settings(a.record.generation, generation)["max_new_tokens"]
            if a.max_length + virtual + new > limit:
                raise BadInput(f"max_new_tokens {new} is too many for {a.key!r}: its prompts take up to {a.max_length}"
                               f"{f' + {virtual} virtual' if virtual else ''} tokens of the base's {limit} positions, "
                               f"so at most {limit - a.max_length - virtual} new tokens fit")
        if stream is not None and any(resolve_settings(a.record.generation, generation)["num_beams"] != 1
                                      for a in {id(a): a for a in rows}.values()):
            raise BadInput("streaming needs num_beams=1: beam search settles the text only at its end")
        return generate_rows(self, prompts, rows, batch_size, generation, stream)

    # ----------------------------------------------------------------------------- handles
    def handle(self, name: str, *, folder: str | Path | None = None) -> "AdapterHandle":
        """A handle bound to one adapter (added from the hub, or ``folder``, if needed): the walking-zoo API.

        Given the folder of a newer revision than the one loaded, the adapter is reloaded from it.
        """
        with self._lock:
            known = self._known.get(name)
        if known is None or (folder is not None and Path(folder).resolve() != known.resolve()):
            self.add(name, folder=folder, alias=name if folder is not None else None)
        return AdapterHandle(self, name)

    def __repr__(self):
        return f"Zoo({self.base!r}, adapters={self.names}, resident={len(self._resident)})"


def _length(item) -> int:
    return sum(map(len, item)) if isinstance(item, (tuple, list)) else len(item) if isinstance(item, str) else 0


_SHARED: dict[tuple[str, str], Zoo] = {}
_SHARED_LOCK = threading.Lock()


def shared(base: str, hub: LocalHub | None = None) -> Zoo:
    """The process-wide registry for ``base`` (and this hub): one frozen base in memory per base id."""
    hub = hub or LocalHub()
    key = (canonical_base(base), str(Path(hub.root).resolve()))
    with _SHARED_LOCK:
        registry = _SHARED.get(key)
        if registry is None:
            registry = _SHARED[key] = Zoo(base, hub=hub)
        return registry


def shared_registries() -> list[Zoo]:
    """Every process-wide registry now in memory (one per base and hub)."""
    with _SHARED_LOCK:
        return list(_SHARED.values())


def clear_shared() -> None:
    """Drop the process-wide registries (frees their bases once no handle refers to them)."""
    with _SHARED_LOCK:
        _SHARED.clear()
