"""The demo's engine: the published catalogue, and one input answered by one or many of its entries.

The Gradio app (``zoo.demo.app``, ``spaces/app.py``, ``zoo demo``) only lays this out on a page, so
everything it shows is computed (and tested) here. Models load on first use: every adapter the
registry serves sits on the one shared frozen base of its base model (``zoo.serve.registry.shared``), and
a fully fine-tuned model, a whole model of its own, is loaded once. Many entries asked at once are
answered as one mixed batch per base.

    from zoo.demo.catalogue import Catalogue
    cat = Catalogue(hub="local")
    cat.answer("sentence-transformers/all-MiniLM-L6-v2::sst2-lora", "a gripping film")["label"]
    # -> 'positive'
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from zoo.artifact.record import AdapterRecord
from zoo.catalogue.table import Row, row_of
from zoo.config.generation import check_generation, resolve_settings
from zoo.config.prompts import answer, render_inputs
from zoo.data.bases import LEGACY_IDS, canonical_base, same_base
from zoo.demo.entries import (
    MAX_CHARS,
    MAX_ID_CHARS,
    SEP,
    Entry,
    check_max_new_tokens,
    check_text,
    entry_of,
    served_settings,
)
from zoo.errors import BadInput, EntryFailed, EntryNotFound, UnsafeAdapter, ZooError
from zoo.hub.backends import allowed_bases, get_hub, listed_base_problem, listed_bases_budget
from zoo.serve.batching import Coalescer
from zoo.serve.loading import load
from zoo.serve.registry import AdapterHandle, shared_registries

log = logging.getLogger("zoo.demo.catalogue")
# fully fine-tuned entries kept in memory at once, least recently used unloaded first: unlike adapters (which share a
# base and which the registry evicts), each is a whole model, and a listing may hold any number of them
MAX_WHOLE_MODELS = 4

class Catalogue:
    """The entries published on a hub, and their models, loaded on first use and kept.

    ``hub``: "local", "hf" or a backend of ``zoo.hub`` (default: the Hub when a token is configured).
    ``max_whole_models``: fully fine-tuned entries held at once (least recently used unloaded first).
    ``bases``: the bases its entries may load (``zoo.hub.backends.allowed_bases``; default ``ZOO_BASES``, and when
    that is not set any Hub id in safetensors within ``ZOO_BASES_GIB`` for all of them together, and folders of
    this machine only from the local hub).
    """

    def __init__(self, hub=None, *, max_chars: int = MAX_CHARS, strict: bool = True, coalesce: bool = True,
                 bases: Optional[str] = None, max_whole_models: int = MAX_WHOLE_MODELS):

        self.backend = hub if hasattr(hub, "list") else get_hub(hub)
        self.max_chars = max_chars
        self.allowed = allowed_bases(bases)
        self.max_whole_models = max(1, int(max_whole_models))
        self.budget = listed_bases_budget()  # bytes of Hub bases a listing may bring in (without ZOO_BASES)
        self._base_bytes: dict[str, int] = {}  # Hub bases admitted for a listing's entries -> their bytes
        # concurrent requests to classifiers of one base run as one mixed batch (zoo.serve.batching); bench/space.py measures it
        self.coalesce = coalesce
        self.problem: Optional[str] = None  # why the last listing failed (strict=False keeps serving what it had)
        self.skipped: list[str] = []  # listed entries left out, and why (unsafe names, unknown methods)
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], object] = {}  # (entry id, revision) -> loaded model
        self._gates: dict[str, threading.Lock] = {}  # one load at a time per entry
        self._serial: dict[str, threading.Lock] = {}  # a whole model runs one request at a time (its tokenizer has state)
        self._batchers: dict[object, Coalescer] = {}  # per shared base (and generation): concurrent requests coalesced
        self.entries: dict[str, Entry] = {}
        self.refresh(strict=strict)

    def describe(self) -> str:
        return self.backend.describe()

    def refresh(self, *, strict: bool = True) -> list[Entry]:
        """List the hub again: new pushes appear, a new revision is loaded on its next request.

        ``strict=False``: a hub that cannot be listed leaves the entries as they were and sets ``problem``."""
        try:
            rows = self.backend.list()
        except ZooError as e:
            self.problem = f"the catalogue could not be listed: {e}"
            if strict:
                raise
            log.warning(self.problem)
            return list(self.entries.values())
        found, self.skipped = [], []
        for row in rows:
            try:
                entry = entry_of(row)
                problem = listed_base_problem(entry.base, self.backend, self.allowed)
                if problem:
                    raise UnsafeAdapter(f"adapter {entry.name!r}: its base {entry.base[:120]!r} {problem}")
                found.append(entry)
            except (UnsafeAdapter, KeyError, TypeError, ValueError, AttributeError) as e:  # one odd card must not hide the rest
                self.skipped.append(str(e) if isinstance(e, UnsafeAdapter) else f"malformed listing row ({e!r})")
                log.warning("catalogue: skipped %s", self.skipped[-1])
        found.sort(key=lambda e: (e.task, e.base, e.method, e.name))
        with self._lock:
            gone = set(self.entries) - {e.id for e in found}
            self.entries = {e.id: e for e in found}
            self.problem = None
            dropped = [(k, m) for k, m in self._models.items() if k[0] in gone]
            for k, _ in dropped:
                del self._models[k]
        for (entry_id, _), model in dropped:  # unpublished: out of memory too (requests under way keep their copy)
            _unload(model)
            log.info("catalogue: %s is no longer published; unloaded", entry_id)
        return found

    def unload(self, entry_id: str) -> bool:
        """Take an entry's model out of memory (its adapter off the shared base); loaded again on its next use.
        Safe to call twice, or for an entry that is not loaded (False then)."""
        with self._lock:
            dropped = [(k, m) for k, m in self._models.items() if k[0] == entry_id]
            for k, _ in dropped:
                del self._models[k]
        for _, model in dropped:
            _unload(model)
        return bool(dropped)

    # ------------------------------------------------------------------ lookup
    def get(self, entry_id: str) -> Entry:
        """An entry by id (``<base>::<adapter>``), or by adapter name when only one base has it."""
        entry_id = check_text(entry_id, "the adapter's id", max_chars=MAX_ID_CHARS, required=False)
        if not entry_id:
            raise EntryNotFound("choose an adapter from the catalogue first")
        entries = self.entries
        if entry_id in entries:
            return entries[entry_id]
        base, sep, key = entry_id.partition(SEP)
        # "roberta-large::x" is "FacebookAI/roberta-large::x": by the table only, a stranger's id never reaches the network
        base = LEGACY_IDS.get(base, base)
        if sep and f"{base}{SEP}{key}" in entries:
            return entries[f"{base}{SEP}{key}"]
        named = [e for e in entries.values() if entry_id in (e.key, e.name)]
        if len(named) == 1:
            return named[0]
        if named:
            raise EntryNotFound(f"{entry_id!r} is published for several bases; use one of: {', '.join(e.id for e in named)}")
        raise EntryNotFound(f"no entry {entry_id[:200]!r} in the catalogue of {self.describe()} "
                            f"({len(entries)} entries); reload the catalogue if it was just published")

    def check_inputs(self, values: dict) -> dict:
        """The values of one request from the page or its API, each checked by its name against what it may be,
        before anything uses it; a ZooError says what is wrong and what is expected.

        ``entry``: an entry id of this catalogue, returned as its Entry; ``base``, ``task``: ones it lists;
        ``results_task``: a task, or "all tasks" (None); ``text``: text, required; ``second``: text, optional;
        ``max_new_tokens``: None or a whole number from 1 to 256. Texts are at most ``max_chars`` characters
        of valid Unicode, returned stripped.

            cat.check_inputs({"entry": "sst2-lora", "text": " a film ", "max_new_tokens": 24.0})
            # -> {"entry": Entry(name="sst2-lora", ...), "text": "a film", "max_new_tokens": 24}
        """
        checks = {
            "entry": self.get,
            "base": lambda v: self._listed(v, "base model", self.bases()),
            "task": lambda v: self._listed(v, "task", self.tasks()),
            "results_task": lambda v: None if v in (None, "", "all tasks") else self._listed(v, "task", self.tasks()),
            "text": lambda v: check_text(v, "the text", max_chars=self.max_chars),
            "second": lambda v: check_text(v, "the second text", max_chars=self.max_chars, required=False),
            "max_new_tokens": check_max_new_tokens,
        }
        return {name: checks[name](value) for name, value in values.items()}

    def _listed(self, value, what: str, listed: list[str]) -> str:
        """``value`` if it is one of ``listed`` (a base may be given in its legacy spelling)."""
        value = check_text(value, f"the {what}", max_chars=MAX_ID_CHARS, required=False)
        value = LEGACY_IDS.get(value, value)
        if value in listed:
            return value
        shown = ", ".join(listed[:12]) + (", ..." if len(listed) > 12 else "")
        if not value:
            raise EntryNotFound(f"choose a {what} first: one of {shown or 'none yet'}")
        raise EntryNotFound(f"no {what} {value[:200]!r} in the catalogue of {self.describe()}; "
                            f"pick one of: {shown or 'none yet'}")

    def tasks(self) -> list[str]:
        """Tasks, the one with most entries first (the "compare methods" default)."""
        counts: dict[str, int] = {}
        for e in self.entries.values():
            counts[e.task] = counts.get(e.task, 0) + 1
        return sorted(counts, key=lambda t: (-counts[t], t))

    def bases(self) -> list[str]:
        """Bases, the one with most labelled entries first (the "all tasks at once" default)."""
        counts: dict[str, int] = {}
        for e in self.entries.values():
            counts[e.base] = counts.get(e.base, 0) + (1 if e.labelled else 0)
        return sorted(counts, key=lambda b: (-counts[b], b))

    # ------------------------------------------------------------------ models
    def model(self, entry: Entry):
        """The loaded model of ``entry``: a handle on its base's shared registry, or a whole model."""
        key = (entry.id, entry.revision)
        with self._lock:
            if key in self._models:
                self._models[key] = self._models.pop(key)  # most recently used last (whole models go oldest first)
                return self._models[key]
            gate = self._gates.setdefault(entry.id, threading.Lock())
        with gate:
            with self._lock:
                if key in self._models:
                    return self._models[key]

            admitted = False
            try:
                admitted = self._admit_base(entry.base)
                model = load(entry.base, adapter=entry.key, hub=self.backend)
            except ZooError as e:
                self._release_base(entry.base, admitted)
                raise EntryFailed(f"{entry.name} could not be loaded: {e}") from None
            except Exception as e:  # a stranger's adapter may break in ways nobody listed; keep serving the rest
                self._release_base(entry.base, admitted)
                log.exception("loading %s failed", entry.id)
                raise EntryFailed(f"{entry.name} could not be loaded ({type(e).__name__}: {str(e)[:300]})") from None
            with self._lock:
                self._models = {k: v for k, v in self._models.items() if k[0] != entry.id}  # an older revision goes
                self._models[key] = model
                whole = [k for k, m in self._models.items() if not isinstance(m, AdapterHandle)]
                for k in whole[:max(0, len(whole) - self.max_whole_models)]:  # each a model of its own: a bound
                    del self._models[k]  # requests under way keep their copy; loaded again on next use
                    log.info("catalogue: %s unloaded (%d whole models at most)", k[0], self.max_whole_models)
            return model

    def _admit_base(self, base: str) -> bool:
        """Whether ``base`` was admitted now for a Hub listing's entry (False: no admission needed, or already in).

        A shared base stays in memory once loaded, and a listing is a stranger's word: without ``ZOO_BASES`` (the
        operator's list) a base of a Hub listing is loaded only in safetensors and while all such bases together
        stay within ``ZOO_BASES_GIB``, measured from the Hub's listing before a byte is downloaded. Raises
        UnsafeAdapter (the entry is refused; the others keep serving)."""
        if self.allowed is not None or getattr(self.backend, "kind", None) == "local":
            return False
        base = canonical_base(base)
        with self._lock:
            if base in self._base_bytes:
                return False
        size = self.backend.listed_base_bytes(base)
        with self._lock:
            if base in self._base_bytes:
                return False
            held = sum(self._base_bytes.values())
            if held + size > self.budget:
                raise UnsafeAdapter(
                    f"its base {base!r} needs {size / 2**30:.2f} GiB and the bases this catalogue holds for the Hub's "
                    f"listing take {held / 2**30:.2f} of {self.budget / 2**30:.2f} GiB (ZOO_BASES_GIB); an operator "
                    "may raise it, or name the bases to serve with ZOO_BASES")
            self._base_bytes[base] = size
        return True

    def _release_base(self, base: str, admitted: bool) -> None:
        """Give back what ``_admit_base`` counted when that base's first load failed and nothing holds it: a
        stranger's broken entries may not use up the budget of the bases that do load."""
        base = canonical_base(base)
        if admitted and not any(same_base(z.base, base) for z in shared_registries()):
            with self._lock:
                self._base_bytes.pop(base, None)

    def loaded(self) -> dict:
        """What is in memory: each shared base with its resident adapters, and the whole models."""

        registries = shared_registries()
        with self._lock:
            models = dict(self._models)
        bases: dict[str, list] = {}
        for z in registries:
            bases.setdefault(z.base, []).append(sorted(z.resident))
        whole = sorted(k[0] for k, m in models.items() if not isinstance(m, AdapterHandle))
        return {"shared_bases": {b: {"copies_in_memory": len(v), "adapters": v[0]} for b, v in bases.items()},
                "whole_models": whole}

    # ------------------------------------------------------------------ answering
    @staticmethod
    def item(entry: Entry, first: str, second: str):
        """The model input for ``entry`` from the form's two text fields (already checked by ``check_text``)."""
        if entry.pair and not second:
            raise BadInput(f"{entry.name} is a sentence-pair task: fill in the second text (the hypothesis) too")
        if entry.pair:
            return (first, second)
        if len(entry.fields) > 1 and entry.causal:  # an instruction and its optional input
            return {entry.fields[0]: first, entry.fields[1]: second}
        return first

    @staticmethod
    def _settings(max_new_tokens) -> dict:
        n = check_max_new_tokens(None if isinstance(max_new_tokens, str) and not max_new_tokens else max_new_tokens)
        return {} if n is None else {"max_new_tokens": n}

    def answer(self, entry_id: str, text, second="", *, max_new_tokens=None) -> dict:
        """One input through one entry: ``{"label", "score", "scores"}`` or ``{"label", "text"}`` or ``{"text"}``,
        plus ``latency_ms`` and the entry's identity. Raises a ZooError with a message for the user."""
        entry = self.get(entry_id)
        return self.answer_many([entry.id], text, second, max_new_tokens=max_new_tokens, strict=True)[0]

    def answer_many(self, entry_ids, text, second="", *, max_new_tokens=None, strict: bool = False) -> list[dict]:
        """One input through many entries: the registry's entries of one base as one mixed batch, per base.

        A row per entry, in order; an entry that cannot answer (fails to load, needs a second text)
        gets ``{"error": message}`` and the others still answer. ``strict``: raise that error instead."""
        settings = self._settings(max_new_tokens)
        text = check_text(text, "the text", max_chars=self.max_chars)
        second = check_text(second, "the second text", max_chars=self.max_chars, required=False)
        entries = [self.get(i) for i in entry_ids]
        items: list = []
        for e in entries:
            try:
                items.append(self.item(e, text, second))
            except ZooError as err:
                if strict:
                    raise
                items.append(err)
        return self.answer_rows(list(zip(entries, items)), settings=settings, strict=strict)

    def answer_rows(self, rows_in: list[tuple[Entry, object]], *, settings: dict | None = None, strict: bool = False,
                    streams: dict[int, Callable[[int], None]] | None = None) -> list[dict]:
        """Many (entry, model input) rows, each its own entry: one mixed batch per base (and per generation setting).

        The inputs are checked by the caller (``item``, or the server's request schema); an input that is a ZooError
        is that row's answer. ``settings``: generation settings for the causal rows (checked here). ``streams``:
        row index -> a function called with each new token id of that row's generation, as it is generated.
        A row per input, in order; a row that cannot answer gets ``{"error": message}`` (``strict``: raised)."""
        settings = dict(settings or {})
        check_generation(settings, BadInput, "the request")
        rows: list[dict] = [{"entry": e.id, "adapter": e.name, "task": e.task, "method": e.method, "base": e.base}
                            for e, _ in rows_in]
        todo: dict[tuple, list[tuple[int, object, object]]] = {}  # (group) -> [(row, model, input)]
        for i, (e, item) in enumerate(rows_in):
            try:
                if isinstance(item, ZooError):
                    raise item
                model = self.model(e)
            except ZooError as err:
                if strict:
                    raise
                rows[i]["error"] = str(err)
                continue
            zoo = getattr(model, "zoo", None)
            group = ("shared", id(zoo), e.causal) if zoo is not None else ("whole", e.id, e.causal)
            todo.setdefault(group, []).append((i, model, item))
        for group, members in todo.items():
            start = time.perf_counter()
            batch = len(members)
            try:
                outputs, batch = self._run_group(group, members, settings, streams or {})
            except ZooError as err:
                if strict:  # the request's fault stays the request's fault (HTTP 400), anything else failed (500)
                    raise (err if isinstance(err, BadInput) else EntryFailed(str(err))) from None
                outputs = [{"error": str(err)}] * len(members)
            except Exception as err:  # never a stack trace to the page; the log has it
                log.exception("answering with %s failed", [rows[i]["entry"] for i, _, _ in members])
                message = f"failed ({type(err).__name__}: {str(err)[:300]})"
                if strict:
                    raise EntryFailed(message) from None
                outputs = [{"error": message}] * len(members)
            ms = round(1000 * (time.perf_counter() - start), 1)
            for (i, _, _), out in zip(members, outputs):
                rows[i].update(out, latency_ms=ms, batch=batch)
        return rows

    def _run_group(self, group: tuple, members: list, settings: dict, streams: dict) -> tuple[list[dict], int]:
        """The members' outputs, and how many rows the call that computed them held."""
        kind, _, causal = group
        models = [m for _, m, _ in members]
        items = [x for _, _, x in members]
        if kind == "whole":  # a fully fine-tuned model: its own weights, one request at a time
            model = models[0]
            with self._lock:
                serial = self._serial.setdefault(group[1], threading.Lock())
            with serial:
                if not causal:
                    return [_classified(p) for p in model.predict(items)], len(items)
                settings = _held(settings, model.record)
                texts = model.generate(items, **settings)  # streamed whole once done (zoo.server)
                prompts = render_inputs(model.record.prompt, model.record.examples, model.tokenizer, items)
                limit = resolve_settings(model.record.generation, settings)["max_new_tokens"]
                out = []
                for prompt, text in zip(prompts, texts):
                    made = len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
                    out.append({**generated(model.record, text), "completion_tokens": made,
                                "prompt_tokens": min(len(model.tokenizer(prompt)["input_ids"]), model.record.max_length),
                                "finish_reason": "stop" if made < limit else "length"})
            return out, len(items)
        zoo = models[0].zoo
        names = [m.name for m in models]
        if not causal and self.coalesce:  # one forward pass for these rows and other users' rows of the moment
            return self._coalescer(zoo).submit(list(zip(names, items)))
        if not causal:
            return [_classified(p) for p in zoo.predict(items, adapters=names)], len(items)
        prompts = [render_inputs(m.record.prompt, m.record.examples, zoo.tokenizer, [x])[0] for m, x in zip(models, items)]
        eos = _eos_ids(zoo)
        held = [_held(settings, m.record) for m in models]
        resolved = [resolve_settings(m.record.generation, h) for m, h in zip(models, held)]
        tokens = [_Tokens(streams.get(i), counting=r["num_beams"] == 1, eos=eos) for (i, _, _), r in zip(members, resolved)]
        rows = list(zip(names, prompts, tokens, held))
        if self.coalesce:  # one call for these rows and other users' of the moment (a generate per distinct settings)
            texts, batch = self._generation_coalescer(zoo).submit(rows)
        else:
            texts, batch = _generate_mixed(zoo, rows), len(prompts)
        out = []
        for m, prompt, text, t, r in zip(models, prompts, texts, tokens, resolved):
            limit = r["max_new_tokens"]
            with zoo._tokenizing:  # a tokenizer is not safe to share between threads
                prompt_tokens = min(len(zoo._prompt_tokenizer(prompt, truncation=True, max_length=m.record.max_length
                                                              )["input_ids"]), m.record.max_length)
                made = t.seen if t.counted else len(zoo.tokenizer(text, add_special_tokens=False)["input_ids"])
            stopped = t.stopped if t.counted else made < limit
            out.append({**generated(m.record, text), "prompt_tokens": prompt_tokens, "completion_tokens": made,
                        "finish_reason": "stop" if stopped else "length"})
        return out, batch

    def _coalescer(self, zoo) -> Coalescer:
        """The batcher of one shared base: concurrent requests to any of its classifiers become one mixed batch."""
        with self._lock:
            batcher = self._batchers.get(id(zoo))
            if batcher is None:
                def run(rows, zoo=zoo):
                    return [_classified(p) for p in zoo.predict([x for _, x in rows], adapters=[n for n, _ in rows])]

                batcher = self._batchers[id(zoo)] = Coalescer(run)
            return batcher

    def _generation_coalescer(self, zoo) -> Coalescer:
        """The generation batcher of one shared base: one worker thread per base, whatever the settings (a batcher
        per distinct settings kept a thread alive for each temperature a client ever sent)."""
        key = (id(zoo), "generate")
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = self._batchers[key] = Coalescer(lambda rows, zoo=zoo: _generate_mixed(zoo, rows),
                                                          max_items=16)
            return batcher

    # ------------------------------------------------------------------ results
    def result_rows(self, task: Optional[str] = None) -> list[Row]:
        """The comparison rows from the published cards: one per entry (of ``task``, or all), computed by the same
        code as ``zoo report`` (``zoo.catalogue.table.row_of``)."""
        return [row for _, row in self._rows(task)]

    def _rows(self, task: Optional[str]) -> list[tuple[str, Row]]:
        """(entry id, row) pairs from one snapshot of the entries, so that an id always goes with its own row."""
        return [(e.id, row_of({"name": e.name, "task": e.task, "method": e.method, "base_model": e.base,
                               "metrics": {"validation": e.metrics, **({"offsets": e.offsets} if e.offsets is not None else {})},
                               "efficiency": e.efficiency}))
                for e in list(self.entries.values()) if not task or e.task == task]

    def results(self, task: Optional[str] = None) -> list[dict]:
        """:meth:`result_rows` as the Results tab's table rows (with each entry's id)."""
        return [{"task": r.task, "adapter": r.adapter, "method": r.title,
                 "base": r.base, "metric": r.metric,
                 "value": r.value, "trainable_params": r.trainable_params, "trainable_pct": r.trainable_pct,
                 "train_seconds": r.train_seconds, "adapter_mib": r.adapter_mib, "entry": i}
                for i, r in self._rows(task)]


class _Tokens:
    """One row's new tokens, counted (and passed on to ``send`` as they come, when streamed) where the row's
    settings allow it (``counting``: no beam search). A row run again (its mixed batch failed, so each request
    reruns alone) passes on only the tokens it had not passed on yet."""

    def __init__(self, send: Optional[Callable[[int], None]], *, counting: bool, eos: set[int]):
        if send is not None and not counting:
            raise BadInput("this entry generates with beam search, which settles its text only at the end: "
                           "ask without streaming")
        self.send, self.counting, self.eos = send, counting, eos
        self.sent = self.seen = 0
        self.counted = self.stopped = False

    def start(self, counted: bool) -> None:
        self.seen, self.counted, self.stopped = 0, counted, False

    def __call__(self, token: int) -> None:
        self.seen += 1
        self.stopped = token in self.eos
        if self.seen > self.sent and self.send is not None:
            self.sent += 1
            self.send(token)


def _unload(model) -> None:
    if isinstance(model, AdapterHandle):
        try:
            model.zoo.remove(model.name)
        except ZooError:  # already removed
            pass


def _eos_ids(zoo) -> set[int]:
    eos = getattr(zoo.model.generation_config, "eos_token_id", None)
    return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])


def _held(settings: dict, record) -> dict:
    """A request's settings for one entry: as sent, or with max_new_tokens when the entry's own (its zoo.json)
    would generate longer than a request may ask (``served_settings``); unchanged otherwise, so that entries with
    their own settings still share one generate call."""
    held = served_settings(record, settings)["max_new_tokens"]
    if resolve_settings(record.generation, settings)["max_new_tokens"] == held:
        return settings
    return {**settings, "max_new_tokens": held}


def _generate(zoo, settings: dict, rows: list) -> list[str]:
    """(adapter name, prompt, _Tokens) rows through one registry generate call; tokens are counted (and streamed)
    when no row searches with beams."""
    counted = all(t.counting for _, _, t in rows)
    for _, _, tokens in rows:
        tokens.start(counted)
    stream = (lambda i, token: rows[i][2](token)) if counted else None
    return zoo.generate([p for _, p, _ in rows], adapters=[n for n, _, _ in rows], stream=stream, **settings)


def _generate_mixed(zoo, rows: list) -> list[str]:
    """(adapter name, prompt, _Tokens, settings) rows: one generate call per distinct settings (a call has one
    set), the texts in the rows' order."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, _, _, settings) in enumerate(rows):
        groups.setdefault(tuple(sorted(settings.items())), []).append(i)
    texts: list = [None] * len(rows)
    for members in groups.values():
        settings = rows[members[0]][3]
        for i, text in zip(members, _generate(zoo, settings, [rows[i][:3] for i in members])):
            texts[i] = text
    return texts


def _classified(p: dict) -> dict:
    return {"label": p["label"], "score": p["score"], "scores": p["scores"]}


def generated(record: AdapterRecord, text: str) -> dict:
    """A causal entry's generation, read as a label when the entry has labels (``zoo.config.prompts.answer``)."""
    if record.labels:
        read = answer(record.label_words, text)
        return {"label": read["label"], "text": text, "no_answer": read["no_answer"]}
    return {"text": text}
