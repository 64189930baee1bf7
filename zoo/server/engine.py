"""What the HTTP server runs, without HTTP: admission (a bounded queue, a deadline per request), the catalogue's
entries resolved from a request's names, their inputs checked against each entry, and the rows answered
through the catalogue (mixed batches per base, concurrent requests coalesced), with token streams.

    engine = Engine(Catalogue(hub="local"), max_queue=64, timeout=60)
    rows = await engine.run(engine.classify, ClassifyRequest(["sst2-lora"], ["a gripping film"]))
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from zoo.demo.catalogue import Catalogue
from zoo.demo.entries import Entry
from zoo.errors import BadInput, DeadlineExceeded, EntryNotFound, ServerBusy
from zoo.server.metrics import Metrics
from zoo.server.requests import ClassifyRequest, CompletionRequest

REFRESH_ON_MISS_SECONDS = 1.0  # an unknown name lists the hub again, at most this often (a new push is found at once)


class Engine:
    """``max_queue`` requests at most admitted (running or waiting) at once, each with a thread of its own so that
    the catalogue's coalescers batch them; one more is refused (ServerBusy) without touching the others. A
    request not answered within ``timeout`` seconds gets DeadlineExceeded; its rows finish in the background and
    its place in the queue is given back when they do, so the bound holds for the work actually running."""

    def __init__(self, catalogue: Catalogue, *, max_queue: int = 64, timeout: float = 60.0,
                 metrics: Optional[Metrics] = None):
        if max_queue < 1 or not timeout > 0:
            raise ValueError("max_queue must be at least 1 and timeout positive")
        self.catalogue, self.max_queue, self.timeout = catalogue, max_queue, timeout
        self.metrics = metrics or Metrics()
        self.inflight = 0
        self._executor = ThreadPoolExecutor(max_workers=max_queue, thread_name_prefix="zoo-serve")
        self._listed_at = 0.0
        self._listing = threading.Lock()
        self._decoders: dict[int, object] = {}

    # ------------------------------------------------------------------ admission
    def admit(self) -> None:
        if self.inflight >= self.max_queue:
            self.metrics.rejected.labels("queue_full").inc()
            raise ServerBusy(f"the server is busy: {self.inflight} requests are queued or running (at most "
                             f"{self.max_queue}); try again in a second")
        self.inflight += 1
        self.metrics.queue.set(self.inflight)

    def _release(self) -> None:
        self.inflight -= 1
        self.metrics.queue.set(self.inflight)

    def start(self, fn: Callable, *args) -> asyncio.Future:
        """``fn(*args)`` on the request's own thread, for an admitted request; its place is given back when it ends."""
        loop = asyncio.get_running_loop()
        future = self._executor.submit(fn, *args)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return asyncio.wrap_future(future)

    async def run(self, fn: Callable, *args):
        """Admit, run ``fn(*args)`` on a thread, and wait at most the deadline."""
        self.admit()
        try:
            started = self.start(fn, *args)
        except BaseException:
            self._release()  # admitted but never started (the server is shutting down)
            raise
        try:
            return await asyncio.wait_for(started, self.timeout)
        except asyncio.TimeoutError:
            self.metrics.rejected.labels("deadline").inc()
            raise DeadlineExceeded(f"no answer within the server's deadline of {self.timeout:g} s; the server is "
                                   "loaded or the request is large: try again, or send fewer inputs") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ entries
    def entry(self, name: str) -> Entry:
        """The entry a request names; an unknown name lists the hub again first (rate-limited), so a new push
        is served at once."""
        try:
            return self.catalogue.get(name)
        except EntryNotFound:
            if not self.refresh(min_age=REFRESH_ON_MISS_SECONDS):
                raise
        return self.catalogue.get(name)

    def refresh(self, *, min_age: float = 0.0) -> bool:
        """List the hub again (unless it was listed less than ``min_age`` seconds ago); False if it was not."""
        with self._listing:
            if time.monotonic() - self._listed_at < min_age:
                return False
            self._listed_at = time.monotonic()
            self.catalogue.refresh(strict=False)
            return True

    def models(self, engine_of: Callable[[Entry], str] = lambda e: "zoo") -> list[dict]:
        """The servable entries, as ``GET /v1/models`` lists them (a name shared by several bases: ``base::name``),
        each with the engine that answers it."""
        entries = list(self.catalogue.entries.values())
        counts: dict[str, int] = {}
        for e in entries:
            counts[e.name] = counts.get(e.name, 0) + 1
        return [{"id": e.name if counts[e.name] == 1 else e.id, "object": "model", "created": 0,
                 "owned_by": "adapter-zoo", "root": e.base, "parent": e.base,
                 "zoo": {"task": e.task, "method": e.method, "kind": e.kind, "base": e.base, "revision": e.revision,
                         "metrics": e.metrics, "engine": engine_of(e)}} for e in entries]

    # ------------------------------------------------------------------ answering (on the request's thread)
    def classify(self, request: ClassifyRequest) -> list[dict]:
        entries = [self.entry(n) for n in request.adapters]
        for i, e in enumerate(entries):
            if e.kind == "generate":
                raise BadInput(f"adapters[{i}]: {e.name} generates text without labels; ask /v1/completions")
        rows = [(e, entry_input(e, x, i)) for i, (e, x) in enumerate(zip(entries, request.inputs))]
        out = self.catalogue.answer_rows(rows, strict=True)
        self._observe_batches(out, ["generate" if e.causal else "classify" for e in entries])
        return out

    def _observe_batches(self, rows: list[dict], kinds: list[str]) -> None:
        """One observation per model call, not per row: the rows a call answered share its size and time."""
        calls = {(kind, row.get("batch", 1), row.get("latency_ms")) for row, kind in zip(rows, kinds)}
        for kind, batch, _ in calls:
            self.metrics.batch.labels(kind).observe(batch)

    def complete(self, request: CompletionRequest, entry: Entry,
                 streams: Optional[dict[int, Callable[[int], None]]] = None) -> list[dict]:
        rows = [(entry, entry_input(entry, x, i)) for i, x in enumerate(request.inputs)]
        out = self.catalogue.answer_rows(rows, settings=request.settings, strict=True, streams=streams)
        self._observe_batches(out, ["generate"] * len(out))
        for row in out:
            self.metrics.tokens.labels(entry.name).inc(row.get("completion_tokens", 0))
        return out

    def causal_entry(self, name: str) -> Entry:
        entry = self.entry(name)
        if not entry.causal:
            raise BadInput(f"model {entry.name!r} is a classifier ({entry.method} on {entry.base}); it does not "
                           "generate: ask POST /v1/classify")
        return entry

    def decoder(self, entry: Entry):
        """A tokenizer of the entry's base kept for decoding streams (its own copy: tokenizers are not shared
        between threads), or None for a whole model (streamed as one piece)."""
        model = self.catalogue.model(entry)
        zoo = getattr(model, "zoo", None)
        if zoo is None:
            return None
        with self._listing:
            if id(zoo) not in self._decoders:
                self._decoders[id(zoo)] = (copy.deepcopy(zoo.tokenizer), threading.Lock())
            return self._decoders[id(zoo)]


def entry_input(entry: Entry, value, i: int):
    """A request's input as the entry takes it: a text, a (text, text_pair) pair for a pair task, or the fields
    of an instruction; anything else is refused with what the entry takes."""
    fields = entry.fields
    if entry.pair:
        if not isinstance(value, tuple):
            raise BadInput(f"input {i}: {entry.name} is a sentence-pair task: send [text, text_pair]")
        return value
    if isinstance(value, tuple):
        raise BadInput(f"input {i}: {entry.name} takes one text, not a pair")
    if isinstance(value, dict):
        if not entry.causal or len(fields) < 2:
            raise BadInput(f"input {i}: {entry.name} takes one text, not an object of fields")
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise BadInput(f"input {i}: {entry.name} has no field {unknown[0][:40]!r}; its fields: {', '.join(fields)}")
        if not value.get(fields[0]):
            raise BadInput(f"input {i}: {fields[0]!r} is required")
        return value
    return value  # a causal entry's prompt format reads a text as its first field (an instruction without input)
