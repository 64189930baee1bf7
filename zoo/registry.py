"""The registry: many adapters of every method and label set on one frozen base, chosen per request.

    >>> import zoo
    >>> z = zoo.Zoo("sentence-transformers/all-MiniLM-L6-v2")              # doctest: +SKIP
    >>> z.add("sst2-lora"); z.add("tweet-emotion-ia3"); z.add("rte-prefix-tuning")   # doctest: +SKIP
    >>> z.predict(["what a film", ("A man sleeps.", "A person rests.")],                    # doctest: +SKIP
    ...           adapters=["sst2-lora", "rte-prefix-tuning"])

How a mixed request is computed: rows are grouped by what they need from the base (plain rows
for LoRA, IA3 and last-layers; rows with N prepended virtual tokens for prompt tuning and
P-tuning; rows with an N-token prefix for prefix tuning), each group is sorted by length and cut
into batches, and each batch is ONE forward pass of the shared base in which every row gets its
own adapter's deltas (see ``zoo.routing``). The base's weights are never touched: they are frozen,
shared by every adapter, and bit-identical before and after.

A decoder-only base (Llama, GPT-2) is loaded once as a causal LM. It serves causal-LM adapters
through :meth:`Zoo.generate` (transformers' own ``generate``, so greedy, beams and sampling all
work, with every row routed to its adapter), and classification adapters on the same backbone
through a sequence-classification shell that shares it (``score`` head, last-token pooling).

Memory: adapters stay resident after use. With ``max_adapters`` or ``max_bytes`` the least
recently used adapter is evicted when the budget is exceeded and reloaded on its next request.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .adapters import GENERATION_DEFAULTS, AdapterWeights, BaseLayout, check_generation, read_adapter
from .errors import AdapterNotFound, BadInput, ZooError
from .loading import check_input, predictions
from .local_hub import LocalHub, read_meta
from .methods import head_parameter_names, load_base_classifier, transformer_layers
from .prompts import answer, render_inputs
from .routing import (Route, RoutedBlock, RoutedHead, RoutedLinear, Segment, VirtualTokens, install_generation_hook,
                      is_linear, routed, virtual_tokens)
from .sources import ResolvedModel, resolve_model

HEAD_NAMES = ("classifier", "score")


class Zoo:
    """A frozen base model shared by many adapters; see the module docstring.

    ``hub`` finds adapters by name (the local hub by default). ``max_adapters`` / ``max_bytes``
    bound the resident adapters (None: unbounded).
    """

    def __init__(self, base: str, *, hub: LocalHub | None = None, max_adapters: int | None = None,
                 max_bytes: int | None = None, dtype=None):
        self.base = base
        self.hub = hub or LocalHub()
        self.max_adapters, self.max_bytes = max_adapters, max_bytes
        model, classifier, tokenizer = _load_base(resolve_model(base), dtype)
        for m in {id(model): model, id(classifier): classifier}.values():
            if m is not None:
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.layout = self._wrap(model, classifier, base)
        self.model = model                # the base as loaded: a classifier, or a causal LM
        self.classifier = classifier      # what predict() runs: the model itself, or a shell sharing its backbone
        self._tokenizing = threading.Lock()  # a fast tokenizer's truncation/padding is state set per call
        if self.layout.causal:
            install_generation_hook(model)
            # generate() tokenizes as PEFT users do: pad and truncate on the left, prompts end at the answer
            self._prompt_tokenizer = copy.deepcopy(tokenizer)
            self._prompt_tokenizer.padding_side = self._prompt_tokenizer.truncation_side = "left"
        self._known: dict[str, Path] = {}                       # name -> folder, for reloads after eviction
        self._resident: OrderedDict[str, AdapterWeights] = OrderedDict()  # LRU order, most recent last
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Lock] = {}
        self.stats = {"loads": 0, "evictions": 0}
        _release_free_memory()

    # ----------------------------------------------------------------------------- base wrapping
    @staticmethod
    def _wrap(model, classifier, base_id: str) -> BaseLayout:
        """Put routing wrappers around the Linear layers, the top blocks and the head (once)."""
        config = model.config.get_text_config()
        causal = classifier is not model
        module_types = {n: type(m).__name__ for n, m in model.named_modules() if n}
        head_path = head_template = None
        if classifier is not None:
            head_path = next((n for n in HEAD_NAMES if isinstance(getattr(classifier, n, None), nn.Module)), None)
            if head_path is None:
                raise ZooError(f"{type(classifier).__name__} has no classifier/score head; the registry cannot serve it")
            head_template = copy.deepcopy(getattr(classifier, head_path)).to("meta")
        # Replaceable blocks: each transformer layer, and modules outside the backbone's stack that a
        # last-layers run trains (the pooler of BERT-like models, the final norm of causal LMs).
        layers = transformer_layers(model)
        names = {id(m): n for n, m in model.named_modules()}
        block_paths = {names[id(layer)]: layer for layer in layers}
        block_paths.update(_final_norms(model, layers) if causal else _poolers(model, head_path, block_paths))
        blocks = {path: copy.deepcopy(m).to("meta") for path, m in block_paths.items()}
        # The LM head is tied to the input embeddings and never adapted: it stays a plain Linear.
        skip = names.get(id(model.get_output_embeddings()), "lm_head") if causal else head_path
        linears = {n: m for n, m in model.named_modules() if is_linear(m) and not n.startswith(skip + ".") and n != skip}
        # Wrap Linears first (inside blocks), then blocks, then the head.
        for path, linear in linears.items():
            parent, _, attr = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, RoutedLinear(linear, path))
        for path in blocks:
            parent, _, attr = path.rpartition(".")
            owner = model.get_submodule(parent)
            current = owner[int(attr)] if isinstance(owner, nn.ModuleList) else getattr(owner, attr)
            wrapped = RoutedBlock(current, path)
            if isinstance(owner, nn.ModuleList):
                owner[int(attr)] = wrapped
            else:
                setattr(owner, attr, wrapped)
        if head_path is not None:
            setattr(classifier, head_path, RoutedHead(head_template, head_path))
        hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd")
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head")
        # Prefix tuning stores keys/values per KV head: PEFT's token_dim under grouped-query attention.
        as_dict = config.to_dict()
        kv_heads = as_dict.get("num_key_value_heads")
        head_dim = (as_dict.get("head_dim") or hidden // heads) if kv_heads else hidden // heads
        return BaseLayout(linears=linears, blocks=blocks, head_path=head_path, head_template=head_template,
                          hidden_size=hidden, num_layers=len(layers), num_heads=heads, base_id=base_id,
                          module_types=module_types, causal=causal, prefix_heads=kv_heads or heads,
                          prefix_head_dim=head_dim)

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
        _release_free_memory()
        return key

    def remove(self, name: str) -> None:
        """Forget adapter ``name``; its memory is freed once requests using it finish."""
        with self._lock:
            if name not in self._known:
                raise AdapterNotFound(self._unknown(name))
            del self._known[name]
            self._resident.pop(name, None)

    def meta(self, name: str) -> dict:
        return self._get(name).meta

    def labels(self, name: str) -> list[str]:
        return list(self._get(name).labels)

    def _read(self, folder: Path) -> AdapterWeights:
        meta = read_meta(folder)
        weights = read_adapter(folder, meta, self.layout)
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
        chunk, route = _route(chunk, rows)
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
                logits = model(inputs_embeds=torch.cat([_prompts(route).to(embeds.dtype), embeds], dim=1), **kwargs).logits
            elif group[0] == "prefix":
                n = group[1]
                kwargs["attention_mask"] = torch.cat([torch.ones(len(chunk), n, dtype=mask.dtype), mask], dim=1)
                kwargs["past_key_values"] = self._prefix_cache(route)
                logits = model(input_ids=input_ids, **kwargs).logits
            else:
                logits = model(input_ids=input_ids, **kwargs).logits
        logits = logits.float().numpy()
        return chunk, [logits[r, :len(rows[i].labels)].copy() for r, i in enumerate(chunk)]

    def _prefix_cache(self, route: Route):
        """Per-row past keys/values, laid out as PEFT's prefix tuning lays them out."""
        from transformers import DynamicCache

        segments = route.segments
        pkv = torch.cat([s.adapter.prefix.unsqueeze(0).expand(s.stop - s.start, -1, -1) for s in segments])
        n, shape = pkv.shape[1], segments[0].adapter.prefix_shape
        pkv = pkv.to(self.model.dtype).view(pkv.shape[0], n, *shape).permute([2, 0, 3, 1, 4]).split(2)
        return DynamicCache(pkv)

    # ----------------------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], *, adapter: str | None = None, adapters: Sequence[str] | None = None,
                 batch_size: int = 8, **generation) -> list[str]:
        """The text each causal-LM adapter generates after its prompt (prompts already templated); new text only.

        Settings: each adapter's zoo.json "generation", overridden by ``generation`` (max_new_tokens,
        do_sample, num_beams, temperature, top_p, top_k, repetition_penalty). Prompts longer than the
        adapter's max_length keep their last max_length tokens.

            >>> z = Zoo("HuggingFaceTB/SmolLM2-135M-Instruct")                               # doctest: +SKIP
            >>> z.add("alpaca-lora"); z.add("sst2-prompt-tuning")                            # doctest: +SKIP
            >>> z.generate(["Review: a fine film. Sentiment:"] * 2, adapters=["alpaca-lora", "sst2-prompt-tuning"],
            ...            max_new_tokens=8)                                                 # doctest: +SKIP
            [' positive, it is a fine film', ' positive']
        """
        rows = self._resolve(prompts, adapter, adapters, batch_size)
        check_generation(generation, BadInput, "generate()")
        for i, (prompt, a) in enumerate(zip(prompts, rows)):
            if not a.is_causal:
                raise BadInput(f"input {i}: {a.key!r} is a classification adapter; use predict() or logits()")
            if not isinstance(prompt, str):
                raise BadInput(f"input {i}: expected a prompt string, got {type(prompt).__name__}")
        settings = {id(a): _settings(a, generation) for a in rows}
        # One generate() call per group: the same virtual tokens, the same settings, and, for
        # last-layers, the same adapter (a KV cache cannot be split between replaced and shared blocks).
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(rows):
            key = (a.group, id(a) if a.blocks else None, tuple(sorted(settings[id(a)].items())))
            groups.setdefault(key, []).append(i)
        out: list[str | None] = [None] * len(prompts)
        for (group, _, items), idx in groups.items():
            idx.sort(key=lambda i: len(prompts[i]))
            for start in range(0, len(idx), batch_size):
                chunk, texts = self._generate(group, idx[start:start + batch_size], prompts, rows, dict(items))
                for i, text in zip(chunk, texts):
                    out[i] = text
        return out  # type: ignore[return-value]

    def _generate(self, group: tuple, chunk: list[int], prompts, rows, settings: dict):
        chunk, route = _route(chunk, rows)
        with self._tokenizing:
            ids = [self._prompt_tokenizer(prompts[i], truncation=True, max_length=rows[i].max_length)["input_ids"]
                   for i in chunk]
        input_ids, mask = _pad(ids, self.tokenizer.pad_token_id, left=True)
        virtual = None
        if group[0] == "prompt":
            virtual = VirtualTokens("prompt", group[1], _prompts)
        elif group[0] == "prefix":
            virtual = VirtualTokens("prefix", group[1], self._prefix_cache)
        settings["pad_token_id"] = self.tokenizer.pad_token_id  # GPT-2 ships none: the tokenizer's (eos), as zoo.causal
        # Beam search repeats each row num_beams times in place: the route follows the batch the layers see.
        with torch.inference_mode(), routed(route.repeat(settings["num_beams"])), virtual_tokens(virtual):
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **settings)
        return chunk, self.tokenizer.batch_decode(out[:, input_ids.shape[1]:], skip_special_tokens=True)

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


def _release_free_memory() -> None:
    """Hand heap pages freed by loading (file buffers, temporaries) back to the OS (glibc only).

    A long-lived server otherwise keeps them as resident memory it will rarely reuse."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _length(item) -> int:
    return sum(map(len, item)) if isinstance(item, (tuple, list)) else len(item) if isinstance(item, str) else 0


def _route(chunk: list[int], rows) -> tuple[list[int], Route]:
    """The chunk reordered so each adapter's rows are one slice (adapters replacing blocks last), and its route."""
    order: dict[int, list[int]] = OrderedDict()
    for i in sorted(chunk, key=lambda i: bool(rows[i].blocks)):
        order.setdefault(id(rows[i]), []).append(i)
    chunk = [i for members in order.values() for i in members]
    segments, start = [], 0
    for members in order.values():
        segments.append(Segment(rows[members[0]], start, start + len(members)))
        start += len(members)
    return chunk, Route(tuple(segments), len(chunk))


def _prompts(route: Route) -> torch.Tensor:
    """Each row's virtual prompt embeddings (prompt tuning, P-tuning): (rows, n, hidden)."""
    return torch.cat([s.adapter.prompt.unsqueeze(0).expand(s.stop - s.start, -1, -1) for s in route.segments])


def _pad(ids: list[list[int]], pad: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        sl = slice(width - len(x), width) if left else slice(0, len(x))
        input_ids[r, sl] = torch.tensor(x, dtype=torch.long)
        mask[r, sl] = 1
    return input_ids, mask


def _settings(adapter: AdapterWeights, overrides: dict) -> dict:
    """Generation settings for one adapter: defaults, its zoo.json "generation", then the caller's."""
    own = {k: v for k, v in (adapter.meta.get("generation") or {}).items() if k in GENERATION_DEFAULTS}
    settings = {**GENERATION_DEFAULTS, **own, **overrides}
    if not settings["do_sample"]:  # greedy and beam search ignore these; passing them only makes transformers warn
        for key in ("temperature", "top_p", "top_k"):
            settings.pop(key)
    return settings


def _is_decoder_only(config) -> bool:
    """A causal LM (Llama, GPT-2, ...): by its saved architecture, else by its model type."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        return False
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.architectures or []):
        return True
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _load_base(resolved: ResolvedModel, dtype):
    """(model, classifier, tokenizer): a classifier twice, or a causal LM and a classification shell sharing its backbone."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(resolved.path, local_files_only=resolved.local_files_only)
    if not _is_decoder_only(config):
        model, tokenizer = load_base_classifier(resolved, ("0", "1"), dtype=dtype)
        return model, model, tokenizer
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=resolved.local_files_only)
    if tokenizer.pad_token is None:  # as load_base_classifier: decoder-only bases (GPT-2) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        resolved.path, local_files_only=resolved.local_files_only, use_safetensors=None if resolved.source == "hub" else True,
        **({"dtype": dtype} if dtype is not None else {}),
    )
    return model, _classifier_shell(model, tokenizer), tokenizer


def _classifier_shell(model, tokenizer):
    """``AutoModelForSequenceClassification`` around the causal LM's own backbone (no weights of its own), or None.

    Its forward is transformers' (last non-pad token pooling, as the adapters were trained with); its
    head is replaced by the per-adapter RoutedHead, so one base in memory serves both kinds.
    """
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(model.config)
    if config.pad_token_id is None:  # pooling finds the last token by the pad id, as load_base_classifier sets it
        config.pad_token_id = tokenizer.pad_token_id
    try:
        with torch.device("meta"):
            shell = AutoModelForSequenceClassification.from_config(config)
    except (ValueError, KeyError):  # no sequence-classification class for this architecture
        return None
    if shell.base_model_prefix != model.base_model_prefix:
        return None
    setattr(shell, shell.base_model_prefix, model.base_model)
    return shell.eval()


def _poolers(model, head_path: str, block_paths: dict) -> dict:
    """Modules outside the layer stack that a classification last-layers run trains (BERT's pooler)."""
    head_params = {n.rsplit(".", 1)[0] for n in head_parameter_names(model) if not n.startswith(head_path + ".")}
    return {name: module for name, module in model.named_modules()
            if name and any(p == name or p.startswith(name + ".") for p in head_params)
            and name.count(".") == 1 and name not in block_paths}


def _final_norms(model, layers: nn.ModuleList) -> dict:
    """Trained modules of a causal last-layers run beside the top blocks: the backbone's final norm."""
    prefix = model.base_model_prefix
    return {f"{prefix}.{name}": child for name, child in model.base_model.named_children()
            if child is not layers and not isinstance(child, nn.Embedding) and any(True for _ in child.parameters())}


class AdapterHandle:
    """One adapter of a shared :class:`Zoo`: ``.predict``, ``.logits``, ``.labels`` as ``zoo.load`` returns."""

    def __init__(self, registry: Zoo, name: str):
        self.zoo, self.name = registry, name

    @property
    def meta(self) -> dict:
        return self.zoo.meta(self.name)

    @property
    def labels(self) -> list[str]:
        return self.zoo.labels(self.name)

    @property
    def is_pair(self) -> bool:
        return len(self.meta.get("text_fields", ["text"])) == 2

    @property
    def path(self) -> Path:
        return self.zoo._known[self.name]

    @property
    def is_causal(self) -> bool:
        return self.meta.get("task_type", "SEQ_CLS") == "CAUSAL_LM"

    def logits(self, inputs, *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Raw logits, one row per input; long inputs are truncated to the adapter's max_length."""
        from tqdm.auto import tqdm

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
        "no_answer": bool}`` (``zoo.prompts.answer``).
        """
        if self.is_causal:
            if not self.labels:
                raise BadInput(f"{self.name!r} generates free text and has no labels; use .generate(inputs)")
            return [answer(self.meta, text) for text in self.generate(inputs, batch_size=batch_size)]
        return predictions(self.labels, self.logits(inputs, batch_size=batch_size))

    def generate(self, inputs, *, batch_size: int = 8, **generation) -> list[str]:
        """The adapter's generation for each input, rendered with its zoo.json prompt format (new text only).

            >>> handle = zoo.load("HuggingFaceTB/SmolLM2-135M-Instruct", adapter="alpaca-lora")   # doctest: +SKIP
            >>> handle.generate([{"instruction": "Name a colour.", "input": ""}], max_new_tokens=8)  # doctest: +SKIP
            ['Blue.']
        """
        if not self.is_causal:
            raise BadInput(f"{self.name!r} is a classification adapter; use .predict(inputs) or .logits(inputs)")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BadInput(f"generate() takes a list of inputs, got {type(inputs).__name__}; wrap one input in a list")
        prompts = render_inputs(self.meta, self.zoo.tokenizer, inputs)
        return self.zoo.generate(prompts, adapter=self.name, batch_size=batch_size, **generation)

    def __repr__(self):
        meta = self.meta
        return f"AdapterHandle({self.name!r} on {meta['base_model']!r}, {meta['method']}, labels={self.labels})"


_SHARED: dict[tuple[str, str], Zoo] = {}
_SHARED_LOCK = threading.Lock()


def shared(base: str, hub: LocalHub | None = None) -> Zoo:
    """The process-wide registry for ``base`` (and this hub): one frozen base in memory per base id."""
    hub = hub or LocalHub()
    key = (base, str(Path(hub.root).resolve()))
    with _SHARED_LOCK:
        registry = _SHARED.get(key)
        if registry is None:
            registry = _SHARED[key] = Zoo(base, hub=hub)
        return registry


def clear_shared() -> None:
    """Drop the process-wide registries (frees their bases once no handle refers to them)."""
    with _SHARED_LOCK:
        _SHARED.clear()

