"""Loading a base model with a fresh classification head for a label set (4-bit for QLoRA)."""

from __future__ import annotations

from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from zoo.data.sources import ResolvedModel
from zoo.models.dropout import dropout_overrides
from zoo.models.identity import settle
from zoo.models.quantization import load_4bit


def load_base_classifier(base: ResolvedModel, labels: tuple[str, ...], *, dtype=None, quantization=None,
                          dropout: float | None = None):
    """The base model with a fresh classification head for ``labels``; its tokenizer with a pad token.

    ``quantization`` (a BitsAndBytesConfig): the base in 4-bit for QLoRA, the head in full precision.
    ``dropout``: every dropout probability of the base (``train.base_dropout``); None: its own."""

    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=base.local_files_only)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its "classifier newly initialized" report is expected: the head is ours
    try:
        if quantization is not None:
            from functools import partial


            load = partial(load_4bit, AutoModelForSequenceClassification, quantization=quantization)
        else:
            load = AutoModelForSequenceClassification.from_pretrained
        model = load(
            base.path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            local_files_only=base.local_files_only,
            ignore_mismatched_sizes=True,  # a base that ships another head gets a fresh one for these labels
            use_safetensors=None if base.source == "hub" else True,
            **({"dtype": dtype} if dtype is not None else {}),
            **dropout_overrides(base.path, dropout, local_files_only=base.local_files_only),
        )
    finally:
        hf_logging.set_verbosity(level)
    return settle(model, tokenizer, base.model_id)


