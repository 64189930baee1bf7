"""Evaluating a loaded adapter on a split of its task: the metrics ``zoo eval`` prints.

The handle comes from ``zoo.load`` (either kind: a registry handle or a model loaded on its own);
this module only calls its ``logits`` / ``generate``, so training code never imports serving code.
"""

from __future__ import annotations

import numpy as np

from zoo.data.metrics import classification_metrics
from zoo.data.tasks import get_task, load_split
from zoo.errors import BadInput
from zoo.training.causal import score_generations


def evaluate(handle, split: str, *, data_dir=None, max_samples=None, batch_size: int = 64,
             progress: bool = False) -> dict:
    """accuracy, macro_f1, loss, n (and official) of a loaded adapter on one split of its task."""

    task = get_task(handle.record.task)
    ds = load_split(task, split, data_dir=data_dir, max_samples=max_samples)
    if handle.record.causal:

        if not (task.labels or task.kind == "summarization"):
            raise BadInput(f"{handle.name}: {task.kind} entries are measured by answer perplexity, at training time "
                           f"(in zoo.json); zoo eval scores classification and summarization entries")
        rows = [ds[i] for i in range(ds.num_rows)]
        texts = handle.generate([{f: r[f] for f in task.fields} for r in rows], batch_size=min(batch_size, 16), progress=progress)
        return score_generations(task, handle.record.label_words, texts, rows)
    inputs = list(zip(ds["text"], ds["text_pair"])) if task.is_pair else ds["text"]
    logits = handle.logits(inputs, batch_size=batch_size, progress=progress)
    return classification_metrics(logits, np.asarray(ds["label"]), task)
