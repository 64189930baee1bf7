"""Classification metrics: accuracy, macro-F1, loss, the task's official metric, the majority baseline.

Example:
    >>> import numpy as np
    >>> from zoo.data.tasks import get_task
    >>> from zoo.data.metrics import classification_metrics
    >>> m = classification_metrics(np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([0, 0]), get_task("glue/sst2"))
    >>> m["accuracy"], m["n"]
    (0.5, 2)
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.metrics import f1_score

from zoo.data.tasks import Task


def _official(task: Task) -> tuple[str, list[int]] | None:
    """The task's official metric as (kind, the class ids it averages F1 over); None where it has none. The one
    reader of ``Task.official`` ("macro_f1", "f1:NAME", "mean_f1:A,B"): the metric, its name and the fast scorer
    of ``tune_offsets`` all go through it."""
    if task.official is None:
        return None
    if task.official == "macro_f1":
        return "macro_f1", list(range(len(task.labels)))
    kind, _, names = task.official.partition(":")
    chosen = names.split(",")
    if kind not in ("f1", "mean_f1") or not names or (kind == "f1") != (len(chosen) == 1) \
            or any(n not in task.labels for n in chosen):
        raise ValueError(f"unknown official metric {task.official!r} for task {task.name}")
    return kind, [task.labels.index(n) for n in chosen]


def official_metric(task: Task, labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """TweetEval's official metric for the task (see the data README); None where the task has none."""
    official = _official(task)
    if official is None:
        return None
    per_class = f1_score(labels, predictions, labels=list(range(len(task.labels))), average=None, zero_division=0)
    return float(np.mean(per_class[official[1]]))


def official_name(task: Task) -> str | None:
    official = _official(task)
    if official is None:
        return None
    kind, chosen = official
    if kind == "macro_f1":
        return "macro-F1"
    names = [task.labels[i] for i in chosen]
    return f"F1 of {names[0]}" if kind == "f1" else f"mean F1 of {' and '.join(names)}"


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def classification_metrics(logits: np.ndarray, labels: np.ndarray, task: Task) -> dict:
    """accuracy, macro_f1, loss (mean cross-entropy), n and, where defined, official."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    predictions = logits.argmax(axis=1)
    ids = list(range(len(task.labels)))
    out = {
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0)),
        "loss": _cross_entropy(logits, labels),
        "n": int(len(labels)),
    }
    official = official_metric(task, labels, predictions)
    if official is not None:
        out["official"] = official
    return out


def majority_baseline(train_labels, eval_labels, task: Task) -> dict:
    """Always predict the most frequent training label: the floor every adapter must beat."""
    majority = Counter(int(label) for label in train_labels).most_common(1)[0][0]
    eval_labels = np.asarray(eval_labels)
    predictions = np.full_like(eval_labels, majority)
    ids = list(range(len(task.labels)))
    out = {
        "label": task.labels[majority],
        "accuracy": float((predictions == eval_labels).mean()),
        "macro_f1": float(f1_score(eval_labels, predictions, labels=ids, average="macro", zero_division=0)),
    }
    official = official_metric(task, eval_labels, predictions)
    if official is not None:
        out["official"] = official
    return out


def _scorer(task: Task, labels: np.ndarray):
    """predictions -> the task's official metric (accuracy where it has none), from a confusion count: the same
    figures as ``official_metric`` (sklearn's, zero_division=0) at a fraction of the cost, for ``tune_offsets``."""
    k = len(task.labels)
    labels = np.asarray(labels, dtype=np.int64)
    true = np.bincount(labels, minlength=k)
    official = _official(task)
    if official is None:
        return lambda p: float((p == labels).mean())
    chosen = official[1]

    def score(predictions: np.ndarray) -> float:
        tp = np.bincount(labels[predictions == labels], minlength=k)
        denominator = true + np.bincount(predictions, minlength=k)  # 2tp + fp + fn
        f1 = np.divide(2.0 * tp, denominator, out=np.zeros(k), where=denominator > 0)
        return float(f1[chosen].mean())

    return score


def tune_offsets(logits: np.ndarray, labels: np.ndarray, task: Task, *, rounds: int = 3,
                 span: float = 1.5, points: int = 31) -> tuple[np.ndarray, float, float]:
    """Per-class offsets added to ``logits`` whose argmax scores best on the task's official metric (accuracy
    where it has none): (offsets, score before, score after). A class-weighted loss sets each class's share of
    the predictions only roughly, and macro-F1 is decided by those shares; on TweetEval emoji, balanced weights
    left the commonest emoji (21 % of tweets) with 2 % of the predictions.

    Coordinate ascent: each class's offset in turn takes the best of ``points`` values in [-span, span] x the
    logits' typical spread (the others held), for at most ``rounds`` rounds; ties keep the current value, so
    the score never falls. The offsets are centred (an argmax does not see a shift of them all)."""
    logits = np.asarray(logits, dtype=np.float64)
    k = logits.shape[1]
    score = _scorer(task, labels)
    before = best = score(logits.argmax(axis=1))
    spread = float(np.median(logits.std(axis=1))) or 1.0
    grid = np.linspace(-span, span, points) * spread
    offsets = np.zeros(k)
    for _ in range(rounds):
        changed = False
        for c in range(k):
            others = logits + offsets
            others[:, c] = -np.inf
            rival, rival_class = others.max(axis=1), others.argmax(axis=1)
            for value in grid:
                s = score(np.where(logits[:, c] + value > rival, c, rival_class))
                if s > best + 1e-12:
                    best, offsets[c], changed = s, value, True
        if not changed:
            break
    return offsets - offsets.mean(), before, best
