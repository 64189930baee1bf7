"""Generation through the registry: causal-LM adapters, routed per row inside transformers' own ``generate``.

:meth:`zoo.serve.registry.Zoo.generate` checks a request; :func:`generate_rows` then groups its rows (the
same virtual tokens, the same settings, and for last-layers the same adapter), cuts each group
into batches by prompt length, and runs one ``generate`` per batch with the batch's route set, so
greedy, beams and sampling all work with every row using its own adapter. Prompt tuning, P-tuning
and prefix tuning add their virtual tokens through a hook on the model's
``prepare_inputs_for_generation`` (:class:`GenerationHook`, installed for the length of a call), as PEFT's
``PeftModelForCausalLM`` does for one adapter. The generation settings that a causal adapter's
zoo.json "generation" and ``generate(**settings)`` may give are defined and checked here too.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from zoo.config.generation import resolve_settings
from zoo.methods.served import AdapterWeights
from zoo.serve.routing import (
    Route,
    current_route,
    prefix_cache,
    prompt_embeddings,
    route_rows,
    routed,
)


# ------------------------------------------------------------------------------- batches
def generate_rows(zoo, prompts, rows: list[AdapterWeights], batch_size: int, generation: dict,
                  stream: Callable[[int, int], None] | None = None) -> list[str]:
    """The new text for each prompt, ``rows[i]`` being its adapter (resolved and checked by ``Zoo.generate``).

    ``stream(i, token_id)``, when given, is called with each new token of prompt ``i`` as it is generated
    (greedy and sampling; special tokens included, decode them as the answer is decoded: without them)."""
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
            chunk, texts = _generate_batch(zoo, group, idx[start:start + batch_size], prompts, rows, dict(items), stream)
            for i, text in zip(chunk, texts):
                out[i] = text
    return out  # type: ignore[return-value]


class RowStreamer:
    """A transformers streamer for a batch of rows: each new token goes to ``stream(prompt index, token id)``.

    ``generate`` first puts the prompt ids (2-d), then one token per row per step (1-d); rows that finished get
    padding until the batch ends, which is not theirs to stream."""

    def __init__(self, chunk: list[int], stream: Callable[[int, int], None], eos: set[int]):
        self.chunk, self.stream, self.eos = chunk, stream, eos
        self.done = [False] * len(chunk)
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True  # the prompt ids: not new text
            return
        for r, token in enumerate(value.reshape(len(self.chunk), -1)[:, -1].tolist()):
            if not self.done[r]:
                self.stream(self.chunk[r], int(token))
                self.done[r] = token in self.eos

    def end(self) -> None:
        pass


def _eos_ids(model) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])


def _generate_batch(zoo, group: tuple, chunk: list[int], prompts, rows, settings: dict, stream=None):
    chunk, route = route_rows(chunk, rows)
    with zoo._tokenizing:
        ids = [zoo._prompt_tokenizer(prompts[i], truncation=True, max_length=rows[i].max_length)["input_ids"]
               for i in chunk]
    input_ids, mask = _pad(ids, zoo.tokenizer.pad_token_id, left=True)
    virtual = None
    if group[0] == "prompt":
        virtual = VirtualTokens("prompt", group[1], prompt_embeddings)
    elif group[0] == "prefix":
        virtual = VirtualTokens("prefix", group[1], lambda route: prefix_cache(route, zoo.model.dtype))
    settings["pad_token_id"] = zoo.tokenizer.pad_token_id  # GPT-2 ships none: the tokenizer's (eos), as zoo.causal
    # Beam search repeats each row num_beams times in place: the route follows the batch the layers see.
    with (torch.inference_mode(), routed(route.repeat(settings["num_beams"])), virtual_tokens(virtual),
          zoo.generation_hook.installed()):
        streamer = RowStreamer(chunk, stream, _eos_ids(zoo.model)) if stream is not None else None
        out = zoo.model.generate(input_ids=input_ids, attention_mask=mask, streamer=streamer, **settings)
    return chunk, zoo.tokenizer.batch_decode(out[:, input_ids.shape[1]:], skip_special_tokens=True)


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
    return resolve_settings(adapter.record.generation, overrides)


# ------------------------------------------------------------------------------- virtual tokens
_VIRTUAL: contextvars.ContextVar["VirtualTokens | None"] = contextvars.ContextVar("zoo_virtual", default=None)


@dataclass(frozen=True)
class VirtualTokens:
    """What every row of one ``generate`` call gets before its tokens: ``kind`` is "prompt" or "prefix".

    ``make(route)`` builds them for the batch the model sees (rows repeated for beams): the
    (rows, n, hidden) prompt embeddings, or a prefilled ``DynamicCache`` of n positions.
    """

    kind: str
    n: int
    make: Callable[[Route], object]


@contextlib.contextmanager
def virtual_tokens(value: VirtualTokens | None):
    token = _VIRTUAL.set(value)
    try:
        yield
    finally:
        _VIRTUAL.reset(token)


class GenerationHook:
    """Adds the current call's virtual tokens inside ``model.generate``, only while a registry generate runs.

    transformers' ``generate`` calls ``model.prepare_inputs_for_generation`` at each step. While at least
    one registry ``generate`` is running, an instance attribute wraps the class's own method and adds
    the virtual tokens of the calling context (a ContextVar, like the route: concurrent calls never see
    each other's tokens); when the last one finishes the attribute is removed, so between calls, and for
    anyone else holding the model, it is the untouched transformers model.
    """

    def __init__(self, model):
        self.model = model
        self.embed = model.get_input_embeddings()
        self._lock = threading.Lock()
        self._active = 0

    def _wrapper(self):
        original = type(self.model).prepare_inputs_for_generation.__get__(self.model)
        embed = self.embed

        def prepare_inputs_for_generation(*args, **kwargs):
            inputs = original(*args, **kwargs)
            virtual = _VIRTUAL.get()
            return inputs if virtual is None else _add_virtual_tokens(inputs, virtual, embed)

        return prepare_inputs_for_generation

    @contextlib.contextmanager
    def installed(self):
        with self._lock:
            if self._active == 0:
                self.model.prepare_inputs_for_generation = self._wrapper()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    del self.model.prepare_inputs_for_generation  # the class's own method again


def _add_virtual_tokens(inputs: dict, virtual: VirtualTokens, embed: nn.Module) -> dict:
    """PEFT's ``PeftModelForCausalLM.prepare_inputs_for_generation`` (peft 0.21), with per-row tokens.

    Prefix tuning is laid out as PEFT lays it out: n cached positions before the (left-padded) row,
    positions shifted by n. Prompt tuning differs on purpose: PEFT puts the n prompt embeddings
    before the left padding and counts positions over the padding, so a row's answer changes with
    the padding its batch needs. Here each row reads [padding; prompt; tokens] with positions from
    0 at its prompt, as when it is alone (and as in training, where padding is on the right):
    answers never depend on the other rows of a batch.
    """
    ids = inputs["input_ids"]
    cache = inputs.get("past_key_values")
    first = cache is None or cache.get_seq_length() == 0
    mask = inputs.get("attention_mask")
    n, rows = virtual.n, ids.shape[0]
    if mask is not None and mask.dim() != 2:
        raise RuntimeError("virtual tokens need a 2-d attention mask (a compiled static cache is not supported)")
    positions = inputs.get("position_ids")
    if virtual.kind == "prefix":
        if mask is not None:  # generate drops an all-ones mask; without one, nothing is masked either way
            inputs["attention_mask"] = torch.cat([mask.new_ones((rows, n)), mask], dim=1)
        if positions is not None:
            inputs["position_ids"] = positions + n
        if first:
            inputs["past_key_values"] = virtual.make(current_route())
        return inputs
    if mask is not None:  # left padding: [padding; prompt; tokens] has the zeros first, like the mask itself
        inputs["attention_mask"] = torch.cat([mask, mask.new_ones((rows, n))], dim=1)
    if not first:
        if positions is not None:
            inputs["position_ids"] = positions + n
        return inputs
    embeds = embed(ids)
    seq = torch.cat([virtual.make(current_route()).to(embeds.dtype), embeds], dim=1)  # [prompt; padding; tokens]
    if positions is not None:
        positions = torch.cat([torch.arange(n, device=positions.device).expand(rows, n), positions + n], dim=1)
    if mask is not None:  # move each row's prompt after its padding
        pads = (mask == 0).sum(dim=1, keepdim=True)
        j = torch.arange(n + ids.shape[1], device=ids.device).expand(rows, -1)
        order = torch.where(j < pads, j + n, torch.where(j < pads + n, j - pads, j))
        seq = seq.gather(1, order.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))
        positions = positions.gather(1, order) if positions is not None else None
    inputs.update(inputs_embeds=seq, input_ids=None, position_ids=positions)
    return inputs
