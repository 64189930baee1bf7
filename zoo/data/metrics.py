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


def official_metric(task: Task, labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """TweetEval's official metric for the task (see the data README); None where the task has none."""
    if task.official is None:
        return None
    ids = list(range(len(task.labels)))
    if task.official == "macro_f1":
        return float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0))
    kind, _, names = task.official.partition(":")
    per_class = f1_score(labels, predictions, labels=ids, average=None, zero_division=0)
    chosen = [per_class[task.labels.index(n)] for n in names.split(",")]
    if kind == "f1":
        return float(chosen[0])
    if kind == "mean_f1":
        return float(np.mean(chosen))
    raise ValueError(f"unknown official metric {task.official!r} for task {task.name}")


def official_name(task: Task) -> str | None:
    if task.official is None:
        return None
    if task.official == "macro_f1":
        return "macro-F1"
    kind, _, names = task.official.partition(":")
    return f"F1 of {names}" if kind == "f1" else f"mean F1 of {' and '.join(names.split(','))}"


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
