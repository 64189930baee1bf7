"""What the demo lists: one published entry (adapter, fully fine-tuned model or in-context prompt), read from
a hub listing row and checked, since listings come from strangers; and the checks on values from the page
(``check_text``, ``check_max_new_tokens``), which ``Catalogue.check_inputs`` applies to every request.

    >>> entry_of({"name": "sst2-lora", "base_model": "org/base", "task": "glue/sst2", "method": "lora"}).title
    'glue/sst2 │ sst2-lora · LoRA · base'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

from zoo.artifact.card import headline_metric
from zoo.artifact.record import check_identity
from zoo.config.generation import resolve_settings
from zoo.data.bases import canonical_base
from zoo.data.tasks import TASKS
from zoo.errors import BadInput, UnsafeAdapter
from zoo.methods import METHODS

MAX_CHARS = 2000  # per text field: a public form must not make the server tokenize a novel
MAX_NEW_TOKENS = 256  # the most new tokens one request may ask for
MAX_ID_CHARS = 1024  # an entry id, base or task from the page: Hub ids are under 100 characters, local paths longer
METHOD_NAMES = {m.name: m.title for m in METHODS.values()}  # what the page calls each method (zoo.methods)
_TASK = re.compile(r"^[A-Za-z0-9][\w./-]{0,127}$")
SEP = "::"  # an entry id is "<base>::<adapter>": one adapter name may be published for several bases


@dataclass(frozen=True)
class Entry:
    """One published adapter (or fully fine-tuned model, or in-context prompt) as the demo shows it."""

    key: str  # what zoo.load takes: a local-hub name or a Hub repo id
    name: str
    base: str
    task: str
    method: str
    causal: bool  # a causal LM entry: it generates text (and reads labels from it when it has labels)
    labelled: bool  # answers with a label: a classifier, or a causal entry with a verbalizer
    fields: tuple[str, ...]  # the input fields: ("text",), ("text", "text_pair"), ("instruction", "input")...
    revision: str  # a folder (local hub) or a commit (Hub): a new push is a new revision
    metrics: dict = field(default_factory=dict, compare=False)
    efficiency: dict = field(default_factory=dict, compare=False)
    offsets: Optional[dict] = field(default=None, compare=False)  # zoo.json's metrics.offsets: its head holds
    # offsets tuned for the metric (None: it does not)

    @property
    def id(self) -> str:
        return f"{self.base}{SEP}{self.key}"

    @property
    def pair(self) -> bool:
        return self.fields == ("text", "text_pair")

    @property
    def headline(self) -> Optional[tuple[str, float]]:
        return headline_metric(self.metrics)

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, self.method)

    @property
    def kind(self) -> str:
        """classify (label probabilities), verbalize (a label read from generated words) or generate."""
        return "verbalize" if self.causal and self.labelled else "generate" if self.causal else "classify"

    @property
    def title(self) -> str:
        """How the catalogue lists it: task, name, method, base and headline metric."""
        metric = f" · {self.headline[0]} {self.headline[1]:.3f}" if self.headline else ""
        return f"{self.task} │ {self.name} · {self.method_name} · {self.base.split('/')[-1]}{metric}"


def entry_of(row: dict) -> Entry:
    """An Entry from a hub listing row (the local hub's zoo.json, or the Hub's card data)."""

    check_identity(row, "a hub listing")  # strangers' metadata: names shown on the page and used as ids
    if not isinstance(row.get("task"), str) or not _TASK.match(row["task"]) or row.get("method") not in METHOD_NAMES:
        raise UnsafeAdapter(f"adapter {row['name']!r}: task {str(row.get('task'))[:60]!r} or method "
                            f"{str(row.get('method'))[:30]!r} is not one the zoo knows how to show")
    task = TASKS.get(row["task"])
    fields = tuple(row.get("text_fields") or (task.fields if task else ("text",)))
    causal = row.get("task_type") == "CAUSAL_LM"
    labels = row.get("labels")
    labelled = bool(labels) if labels is not None else bool(task and task.labels)
    return Entry(key=row.get("repo_id") or row["name"], name=row["name"], base=canonical_base(row["base_model"]), task=row["task"],
                 method=row["method"], causal=causal, labelled=labelled, fields=fields,
                 revision=str(row.get("revision") or row.get("path") or ""),
                 metrics=dict((row.get("metrics") or {}).get("validation") or {}),
                 efficiency=dict(row.get("efficiency") or {}),
                 offsets=_dict_or_none((row.get("metrics") or {}).get("offsets")))


def _dict_or_none(value) -> Optional[dict]:
    return dict(value) if isinstance(value, dict) else None


def kind_of(value) -> str:
    """What a JSON value is, in a user's words (for messages that must not echo a stranger's value back)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def check_text(value, what: str, *, max_chars: int = MAX_CHARS, required: bool = True) -> str:
    """A form field as text: a string of valid Unicode (encodable as UTF-8), not blank when required, at most
    ``max_chars`` characters; returned stripped. ``None`` is an empty field.

    >>> check_text("  a gripping film ", "the text")
    'a gripping film'
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be text (a JSON string), got {kind_of(value)}")
    if len(value) > max_chars:
        raise BadInput(f"{what} is {len(value):,} characters long; this demo takes at most {max_chars:,}. "
                       "Shorten it and try again.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate ("\ud800") survives JSON but no tokenizer takes it
        raise BadInput(f"{what} is not valid Unicode: U+{ord(value[e.start]):04X} at position {e.start} is half of a "
                       "surrogate pair, which has no meaning alone; send UTF-8 text") from None
    if required and not value.strip():
        raise BadInput(f"{what} is empty: type something first")
    return value.strip()


def served_settings(record, settings: dict) -> dict:
    """A request's generation settings for one entry, resolved over the entry's own (its zoo.json, a stranger's
    word): the entry's max_new_tokens is held to ``MAX_NEW_TOKENS`` when the request leaves it to the entry, so a
    record cannot make one request generate longer than any client may ask for.

        >>> from types import SimpleNamespace
        >>> served_settings(SimpleNamespace(generation={"max_new_tokens": 8000}), {})["max_new_tokens"]
        256
        >>> served_settings(SimpleNamespace(generation={"max_new_tokens": 8000}), {"max_new_tokens": 9})["max_new_tokens"]
        9
    """
    resolved = resolve_settings(record.generation, settings)
    if resolved["max_new_tokens"] > MAX_NEW_TOKENS and "max_new_tokens" not in settings:
        resolved["max_new_tokens"] = MAX_NEW_TOKENS
    return resolved


def check_max_new_tokens(value) -> int | None:
    """``None`` (the entry's own setting) or a whole number from 1 to ``MAX_NEW_TOKENS``; 24.0 is 24.

    >>> check_max_new_tokens(24.0)
    24
    """
    expected = f"send a whole number from 1 to {MAX_NEW_TOKENS}"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"max new tokens must be a number, got {kind_of(value)}; {expected}")
    shown = repr(value) if isinstance(value, float) or abs(value) < 10**12 else "a number of over 12 digits"
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise BadInput(f"max new tokens must be a whole number, got {shown}; {expected}")
    if value < 1:
        raise BadInput(f"max new tokens is {shown}, less than minimum value 1; {expected}")
    if value > MAX_NEW_TOKENS:
        raise BadInput(f"max new tokens is {shown}, greater than maximum value {MAX_NEW_TOKENS}; {expected}")
    return int(value)
