"""Causal language models: loading, prompt-masked examples, generation, perplexity and ROUGE.

One generation convention everywhere (training-time evaluation, ``zoo.load(...).generate``, the
registry): prompts are tokenized with left padding and left truncation to the adapter's
``max_length``, and only the new tokens are decoded, without special tokens.

Example:
    >>> from zoo.causal import rouge
    >>> round(rouge(["the cat sat on the mat"], ["a cat sat on a mat"])["rouge1"], 3)
    0.667
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .errors import BadInput, RecipeError
from .generation import check_generation, resolve_settings  # the registry's rules, for a model loaded alone too
from .prompts import render
from .sources import ResolvedModel

def load_base_causal(base: ResolvedModel, *, quantization=None, dtype=None):
    """The causal LM and its tokenizer (with a pad token); 4-bit when ``quantization`` is a BitsAndBytesConfig."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=base.local_files_only)
    kwargs = {"local_files_only": base.local_files_only, "use_safetensors": None if base.source == "hub" else True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if quantization is not None:
        from .quantization import load_4bit

        model = load_4bit(AutoModelForCausalLM, base.path, quantization, **kwargs)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
        except ValueError as e:  # an encoder (BERT) has no causal-LM head
            raise RecipeError(f"base {base.model_id!r} is not a causal language model ({e}); "
                              "causal recipes need a decoder such as SmolLM2, GPT-2 or Llama") from None
    if tokenizer.pad_token is None:  # GPT-2 and Llama ship without one
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


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
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)


def generation_kwargs(settings: dict, tokenizer, **overrides) -> dict:
    """transformers.generate keyword arguments from a recipe's generation settings and per-call overrides."""
    check_generation(overrides, BadInput, "generate()")
    merged = resolve_settings(settings, overrides)
    merged["pad_token_id"] = tokenizer.pad_token_id
    return merged


def encode_prompts(tokenizer, prompts: Sequence[str], max_length: int):
    tokenizer.padding_side = "left"  # decoder-only generation continues from the last real token
    tokenizer.truncation_side = "left"  # a long prompt keeps its end, where the question is
    return tokenizer(list(prompts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def generate_texts(model, tokenizer, prompts: Sequence[str], *, max_length: int, settings: dict,
                   batch_size: int = 8, progress: bool = False, desc: str = "generating", **overrides) -> list[str]:
    """Each prompt's continuation (new tokens only, decoded without special tokens), in input order."""
    from tqdm.auto import tqdm

    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise BadInput(f"prompt {i}: expected a string, got {type(p).__name__}")
    kwargs = generation_kwargs(settings, tokenizer, **overrides)
    if _virtual_tokens_before_padding(model):
        # PEFT puts prompt-tuning / P-tuning tokens before the left padding and counts positions over
        # the pads, so a padded row's answer would depend on its batch: one prompt at a time, as trained.
        batch_size = 1
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths: less padding
    out = [""] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
                idx = order[start:start + batch_size]
                enc = encode_prompts(tokenizer, [prompts[i] for i in idx], max_length).to(device)
                generated = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
                texts = tokenizer.batch_decode(generated[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                for i, text in zip(idx, texts):
                    out[i] = text
    finally:
        model.train(was_training)
    return out


def _virtual_tokens_before_padding(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return config is not None and config.peft_type in ("PROMPT_TUNING", "P_TUNING")  # PeftType is a str enum


def answer_perplexity(model, dataset, data_collator, *, batch_size: int = 16, progress: bool = False,
                      desc: str = "perplexity") -> dict:
    """exp(mean negative log-likelihood of the answer tokens) over ``dataset`` (prompt tokens excluded)."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

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
    return {"perplexity": math.exp(mean), "answer_nll": mean, "answer_tokens": count}


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
