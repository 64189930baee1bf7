"""What the demo lists: one published entry (adapter, fully fine-tuned model or in-context prompt), read from
a hub listing row and checked, since listings come from strangers; and the checks on text from the page.

    >>> entry_of({"name": "sst2-lora", "base_model": "org/base", "task": "glue/sst2", "method": "lora"}).title
    'glue/sst2 │ sst2-lora · LoRA · base'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from zoo.artifact.card import headline_metric
from zoo.artifact.record import check_identity
from zoo.data.bases import canonical_base
from zoo.data.tasks import TASKS
from zoo.errors import BadInput, UnsafeAdapter
from zoo.methods import METHODS

MAX_CHARS = 2000  # per text field: a public form must not make the server tokenize a novel
MAX_NEW_TOKENS = 256  # the most new tokens one request may ask for
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
                 efficiency=dict(row.get("efficiency") or {}))


def check_text(value, what: str, *, max_chars: int = MAX_CHARS, required: bool = True) -> str:
    """A form field as text: a string, not blank when required, at most ``max_chars`` characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise BadInput(f"{what} is {len(value):,} characters long; this demo takes at most {max_chars:,}. "
                       "Shorten it and try again.")
    if required and not value.strip():
        raise BadInput(f"{what} is empty: type something first")
    return value.strip()
