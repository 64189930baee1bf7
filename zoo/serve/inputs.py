"""What a classifier's inputs must be, and how its logits become predictions: one definition for the
registry's handles and for models loaded on their own.

    >>> predictions(["neg", "pos"], [[0.0, 0.0]])[0]["score"]
    0.5
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import BadInput


def check_text(i: int, text: str) -> None:
    """Text the tokenizer can read: a lone surrogate (``"\\ud800"``, which JSON can carry) is not Unicode text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadInput(f"input {i}: the text holds {text[e.start]!r} at position {e.start}, which is not a "
                       "character (a lone UTF-16 surrogate); send valid Unicode text") from None


def check_input(i: int, item, name: str, is_pair: bool) -> None:
    """One input fits its adapter's task: a string, or a (premise, hypothesis) pair of strings."""
    if is_pair:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise BadInput(f"input {i}: {name} is a sentence-pair task; pass (premise, hypothesis) tuples")
        for text in item:
            check_text(i, text)
    elif not isinstance(item, str):
        raise BadInput(f"input {i}: {name} expects a string, got {type(item).__name__}")
    else:
        check_text(i, item)


def predictions(labels, logits) -> list[dict]:
    """``{"label", "score", "scores"}`` per row of logits (each row as long as ``labels``)."""
    out = []
    for row in logits:
        probs = torch.softmax(torch.as_tensor(np.asarray(row, dtype=np.float32)), dim=-1).numpy()
        out.append({"label": labels[int(probs.argmax())], "score": float(probs.max()),
                    "scores": {name: float(p) for name, p in zip(labels, probs)}})
    return out


