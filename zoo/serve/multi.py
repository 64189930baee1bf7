"""Several adapters on the same inputs, as ``zoo predict --adapter A --adapter B`` asks: one mixed batch of
the shared registry when every adapter is a classifier on one base, else each adapter in turn (causal
entries answer in words, whole models run alone).

    >>> split_pair("A man sleeps. ||| A person rests.")
    ('A man sleeps.', 'A person rests.')
"""

from __future__ import annotations

from typing import Sequence

from zoo.errors import BadInput
from zoo.serve.handles import AdapterHandle

PAIR_SEPARATOR = " ||| "  # a sentence pair written as one string (the CLI's convention)


def split_pair(text: str) -> tuple[str, str]:
    if PAIR_SEPARATOR not in text:
        raise BadInput(f"a sentence-pair task needs 'premise{PAIR_SEPARATOR}hypothesis', got {text[:60]!r}")
    first, second = text.split(PAIR_SEPARATOR, 1)
    return first.strip(), second.strip()


def predict_each(models: Sequence, texts: Sequence[str]) -> list[dict]:
    """Every text through every model (handles or whole models from ``zoo.load``), grouped by model.

    Rows: ``{"adapter", "input", "label", "score", "scores"}`` for classifiers, ``{"adapter", "input", "label",
    "text"(, "no_answer")}`` for causal entries. Pair adapters read ``premise ||| hypothesis``."""
    inputs, owners = [], []
    for model in models:
        for text in texts:
            inputs.append(split_pair(text) if model.is_pair else text)
            owners.append(model)
    causal = any(m.is_causal for m in models)
    registries = {id(m.zoo) for m in models if isinstance(m, AdapterHandle)}
    if not causal and len(registries) == 1 and all(isinstance(m, AdapterHandle) for m in models):
        rows = models[0].zoo.predict(inputs, adapters=[m.name for m in owners])  # one mixed batch
    else:
        rows = []
        for model in models:
            mine = [x for x, o in zip(inputs, owners) if o is model]
            if model.is_causal and not model.labels:
                rows += [{"label": None, "text": t} for t in model.generate(mine)]
            else:
                rows += model.predict(mine)
    out = []
    for owner, item, row in zip(owners, inputs, rows):
        text = PAIR_SEPARATOR.join(item) if isinstance(item, tuple) else item
        out.append({"adapter": owner.name, "input": text,
                    **{k: row[k] for k in ("label", "score", "scores", "text", "no_answer") if k in row}})
    return out
