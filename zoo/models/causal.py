"""Loading a causal LM base (Llama, GPT-2, SmolLM2) with its tokenizer, optionally in 4-bit (QLoRA)."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from zoo.data.sources import ResolvedModel
from zoo.errors import RecipeError
from zoo.models.dropout import dropout_overrides
from zoo.models.identity import settle
from zoo.models.quantization import load_4bit


def load_base_causal(base: ResolvedModel, *, quantization=None, dtype=None, dropout: float | None = None):
    """The causal LM and its tokenizer (with a pad token); 4-bit when ``quantization`` is a BitsAndBytesConfig."""

    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=base.local_files_only)
    kwargs = {"local_files_only": base.local_files_only, "use_safetensors": None if base.source == "hub" else True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    kwargs.update(dropout_overrides(base.path, dropout, local_files_only=base.local_files_only))
    if quantization is not None:

        model = load_4bit(AutoModelForCausalLM, base.path, quantization, **kwargs)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
        except ValueError as e:  # an encoder (BERT) has no causal-LM head
            raise RecipeError(f"base {base.model_id!r} is not a causal language model ({e}); "
                              "causal recipes need a decoder such as SmolLM2, GPT-2 or Llama") from None
    return settle(model, tokenizer, base.model_id)


