"""Generation with one model: the convention every path of the zoo follows.

Prompts are tokenized with left padding and left truncation to the adapter's ``max_length``, and
only the new tokens are decoded, without special tokens. Used by training-time evaluation and by
models loaded on their own (``zoo.serve.loading``); the registry routes the same settings per row.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from zoo.config.generation import (  # the registry's rules, for a model loaded alone too
    check_generation,
    resolve_settings,
)
from zoo.errors import BadInput


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


