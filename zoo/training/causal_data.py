"""Causal-LM training data and scores: prompt-masked examples, their collator, answer perplexity, ROUGE.

The loss is on the answer tokens only: ``encode_example`` sets the labels to -100 on every prompt position.

    >>> from zoo.training.causal_data import rouge
    >>> round(rouge(["the cat sat on the mat"], ["a cat sat on a mat"])["rouge1"], 3)
    0.667
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorForSeq2Seq

from zoo.config.prompts import render


def target_text(task, row: dict, verbalizer: dict | None) -> str:
    """What the model must answer for ``row``: the reference output, or the label's word."""
    if task.is_generation:
        return row["output"]
    label = task.labels[row["label"]]
    word = (verbalizer or {}).get(label, label.replace("_", " "))
    return word[0] if isinstance(word, (list, tuple)) else word


def prompt_values(task, row: dict) -> dict:
    return {f: row[f] for f in task.fields if f in row}


def encode_example(tokenizer, fmt: dict, values: dict, target: str, max_length: int, examples=()) -> dict:
    """Prompt + answer + EOS as token ids, with ``labels`` = -100 on every prompt position.

    The prompt and the answer are tokenized separately (the prompt exactly as at generation time).
    Too long: the prompt loses tokens from its start (its end says what to answer); an answer
    longer than 3/4 of ``max_length`` is cut.
    """
    prompt = tokenizer(render(fmt, tokenizer, values, examples))["input_ids"]
    answer = tokenizer(target, add_special_tokens=False)["input_ids"]
    answer = answer[: max(1, (3 * max_length) // 4 - 1)] + [tokenizer.eos_token_id]
    prompt = prompt[max(0, len(prompt) + len(answer) - max_length):]
    ids = prompt + answer
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(prompt) + answer}


def tokenize_causal(ds, tokenizer, fmt: dict, task, verbalizer, max_length: int, examples=()):
    """A dataset of prompt-masked examples (``input_ids``, ``attention_mask``, ``labels``, ``length``)."""

    def encode(row):
        enc = encode_example(tokenizer, fmt, prompt_values(task, row), target_text(task, row, verbalizer), max_length,
                             examples)
        enc["length"] = len(enc["input_ids"])
        return enc

    return ds.map(encode, remove_columns=ds.column_names, desc="tokenizing")


def collator(tokenizer):
    """Pads each batch on the right: pad id for inputs, -100 for labels (no loss on padding)."""

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)


def answer_perplexity(model, dataset, data_collator, *, batch_size: int = 16, progress: bool = False,
                      desc: str = "perplexity") -> dict:
    """exp(mean negative log-likelihood of the answer tokens) over ``dataset`` (prompt tokens excluded)."""

    columns = [c for c in ("input_ids", "attention_mask", "labels") if c in dataset.column_names]
    loader = DataLoader(dataset.select_columns(columns), batch_size=batch_size, collate_fn=data_collator)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc=desc, disable=not progress):
                batch = {k: v.to(device) for k, v in batch.items()}
                labels = batch.pop("labels")
                logits = model(**batch).logits.float()
                logits = logits[:, -labels.shape[1]:]  # prompt-learning methods prepend virtual tokens
                shifted, targets = logits[:, :-1], labels[:, 1:]
                mask = targets != -100
                nll = torch.nn.functional.cross_entropy(shifted[mask], targets[mask], reduction="sum")
                total += float(nll)
                count += int(mask.sum())
    finally:
        model.train(was_training)
    mean = total / max(count, 1)
    perplexity = math.exp(mean) if mean < 709 else math.inf  # exp(709.8) is past float range: a diverged model
    return {"perplexity": perplexity, "answer_nll": mean, "answer_tokens": count}


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Mean ROUGE-1/2/L F-measures (``rouge-score``, stemmed, computed locally; no Hub)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)
        for k in sums:
            sums[k] += scores[k].fmeasure
    n = max(len(predictions), 1)
    return {k: v / n for k, v in sums.items()} | {"n": len(predictions)}
