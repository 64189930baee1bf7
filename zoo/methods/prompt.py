"""Prompt tuning (``PromptTuningConfig``) and P-tuning (``PromptEncoderConfig``): learned virtual tokens
prepended to every input's embeddings.

- Training: ``get_peft_model``. Saved: a plain PEFT adapter whose ``prompt_embeddings`` are the final
  (n, hidden) embeddings; P-tuning's prompt encoder has already produced them at save time.
- Served: rows with n virtual tokens share one forward pass of the base (``("prompt", n)`` group); in
  ``generate`` each row reads [padding; prompt; tokens], as it was trained.
"""

from __future__ import annotations

from peft import PromptEncoderConfig, PromptTuningConfig

import zoo.methods.peft_common as peft_common
from zoo.errors import AdapterBaseMismatch, UnsafeAdapter, UnsupportedAdapter
from zoo.methods.base import Method, any_value
from zoo.methods.served import AdapterWeights, check_served_fields, head_of, split_head

SHARED_FIELDS = {
    **peft_common.METADATA_FIELDS,
    "num_virtual_tokens": lambda v: type(v) is int and v > 0,
    "num_transformer_submodules": lambda v: v in (None, 1),  # encoder-decoder prompts are not served
    **{key: any_value for key in ("token_dim", "num_attention_heads", "num_layers")},
    "modules_to_save": peft_common.head_only,
}
PROMPT_TUNING_FIELDS = {**SHARED_FIELDS, **{key: any_value for key in (
    "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path", "tokenizer_kwargs")}}
P_TUNING_FIELDS = {**SHARED_FIELDS, **{key: any_value for key in (
    "encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers", "encoder_dropout")}}


def virtual_embeddings(state: dict, record, layout, where: str, folder, peft_type: str, allowed: dict):
    """(config, head state, the (n, width) prompt_embeddings) of a prompt-learning adapter, checked."""
    config = peft_common.read_config(folder, record, peft_type, where)
    check_served_fields(config, allowed, where, peft_type)
    head_state, rest = split_head(state, layout, "base_model.", record.causal)
    emb = rest.pop("prompt_embeddings", None)
    if rest:
        raise UnsupportedAdapter(f"{where}: unexpected tensors {sorted(rest)[:4]}")
    if emb is None or emb.dim() != 2:
        raise UnsafeAdapter(f"{where}: no 2-d prompt_embeddings tensor")
    n = config.get("num_virtual_tokens")
    if emb.shape[0] != n:
        raise UnsafeAdapter(f"{where}: prompt_embeddings has {emb.shape[0]} rows, adapter_config says {n} virtual tokens")
    return config, head_state, emb


def _reader(peft_type: str, allowed: dict):
    def read(state: dict, record, layout, where: str, folder) -> AdapterWeights:
        _, head_state, emb = virtual_embeddings(state, record, layout, where, folder, peft_type, allowed)
        if emb.shape[1] != layout.hidden_size:
            raise AdapterBaseMismatch(f"{where}: prompt width {emb.shape[1]} does not fit base {layout.base_id!r} "
                                      f"(hidden {layout.hidden_size})")
        return AdapterWeights(record, folder, head_of(layout, head_state, record, where), prompt=emb)
    return read


def _prompt_tuning_defaults(task_type: str = "SEQ_CLS"):

    return PromptTuningConfig(task_type=task_type, num_virtual_tokens=8)


def _p_tuning_defaults(task_type: str = "SEQ_CLS"):

    return PromptEncoderConfig(task_type=task_type, num_virtual_tokens=8, encoder_hidden_size=32)


PROMPT_TUNING = Method(
    name="prompt-tuning", title="prompt tuning", summary="learned virtual token embeddings prepended to every input",
    config="PromptTuningConfig", peft_type="PROMPT_TUNING", weights=peft_common.PEFT_WEIGHTS,
    prepare=peft_common.prepare, save=peft_common.save, load_alone=peft_common.load_alone,
    read=_reader("PROMPT_TUNING", PROMPT_TUNING_FIELDS), served_fields=PROMPT_TUNING_FIELDS,
    usage=peft_common.usage, defaults=_prompt_tuning_defaults,
)
P_TUNING = Method(
    name="p-tuning", title="P-tuning", summary="virtual token embeddings produced by a small trained prompt encoder",
    config="PromptEncoderConfig", peft_type="P_TUNING", weights=peft_common.PEFT_WEIGHTS,
    prepare=peft_common.prepare, save=peft_common.save, load_alone=peft_common.load_alone,
    read=_reader("P_TUNING", P_TUNING_FIELDS), served_fields=P_TUNING_FIELDS,
    usage=peft_common.usage, defaults=_p_tuning_defaults,
)
