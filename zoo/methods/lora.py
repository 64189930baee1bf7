"""LoRA (and QLoRA: LoRA trained over a 4-bit base), with PEFT's ``LoraConfig``.

- Training: ``get_peft_model``; QLoRA first readies the 4-bit base with PEFT's
  ``prepare_model_for_kbit_training`` (norms in float32, input gradients; no gradient checkpointing).
- Saved: a plain PEFT adapter (``adapter_model.safetensors``, the head inside for SEQ_CLS).
- Served: per Linear, ``A^T`` and ``scale * B^T`` (scale = alpha / r, or alpha / sqrt(r) with rsLoRA;
  per-module ``rank_pattern`` / ``alpha_pattern``), added per row by ``zoo.serve.routing.RoutedLinear``.
  A QLoRA adapter is served as LoRA on the shared full-precision base (the answers differ from the
  4-bit base by its quantization error).
- Not served on the shared base, so loaded by PEFT on a base of its own: anything outside
  ``SERVED_FIELDS`` (DoRA, ``lora_bias``, layer replication, trainable tokens, target parameters,
  LoftQ/CorDA-initialised bases, activated LoRA, ...) and any field a newer PEFT adds.
"""

from __future__ import annotations

import math

import torch
from peft import LoraConfig, prepare_model_for_kbit_training

import zoo.methods.peft_common as peft_common
from zoo.errors import AdapterBaseMismatch, UnsafeAdapter
from zoo.methods.base import Method, any_value, is_falsy
from zoo.methods.served import (
    AdapterWeights,
    check_served_fields,
    head_of,
    linear_parts,
    pattern_value,
    split_head,
)
from zoo.models.layers import linear_features

SERVED_FIELDS = {
    **peft_common.METADATA_FIELDS,
    # what the routing computes from: the tensors' own shapes, r and alpha (with their per-module patterns), rsLoRA
    "r": lambda v: type(v) is int and v > 0,
    "lora_alpha": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "use_rslora": lambda v: isinstance(v, bool),
    "rank_pattern": lambda v: v is None or (isinstance(v, dict) and all(type(x) is int and x > 0 for x in v.values())),
    "alpha_pattern": lambda v: v is None or (isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values())),
    # which modules carry an adapter: the tensors say so; dropout and initialisation do not act at inference
    **{key: any_value for key in ("target_modules", "exclude_modules", "layers_to_transform", "layers_pattern",
                                  "lora_dropout", "fan_in_fan_out", "runtime_config", "qalora_group_size",
                                  "eva_config")},
    # initialisations that rewrite the base weights (PiSSA, OLoRA, LoftQ, CorDA, LoRA-GA) need that base
    "init_lora_weights": lambda v: v in (True, False, "gaussian"),
    "bias": lambda v: v == "none",
    "modules_to_save": peft_common.head_only,
    # features the routing does not implement must be off
    **{key: is_falsy for key in ("use_dora", "lora_bias", "use_qalora", "layer_replication", "target_parameters",
                                 "trainable_token_indices", "megatron_config", "loftq_config", "corda_config",
                                 "alora_invocation_tokens", "arrow_config", "velora_config", "monteclora_config",
                                 "use_bdlora", "kasa_config", "ensure_weight_tying", "lora_ga_config")},
    "megatron_core": lambda v: v in (None, "megatron.core"),
}


def prepare_qlora(model, config, task_type: str):

    # Casts norms to float32 and enables input gradients; no gradient checkpointing (small models, CPU).
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return peft_common.prepare(model, config, task_type)


def read(state: dict, record, layout, where: str, folder) -> AdapterWeights:
    config = peft_common.read_config(folder, record, "LORA", where)
    check_served_fields(config, SERVED_FIELDS, where, "LoRA")
    head_state, rest = split_head(state, layout, "base_model.model.", record.causal)
    linear = {}
    for path, parts in linear_parts(rest, layout, where, (".lora_A.weight", ".lora_B.weight"), "LoRA").items():
        in_features, out_features = linear_features(layout.linears[path])
        a, b = parts.get(".lora_A.weight"), parts.get(".lora_B.weight")
        if a is None or b is None:
            raise UnsafeAdapter(f"{where}: module {path} has only one of lora_A / lora_B")
        r = a.shape[0]
        if a.shape != (r, in_features) or b.shape != (out_features, r):
            raise AdapterBaseMismatch(
                f"{where}: LoRA on {path} has shapes A{tuple(a.shape)} B{tuple(b.shape)}, "
                f"base {layout.base_id!r} has a {in_features}->{out_features} layer"
            )
        declared = pattern_value(config.get("rank_pattern"), path, config.get("r", 8))
        if declared != r:  # PEFT itself refuses such a folder: the scale would be alpha / the wrong rank
            raise UnsafeAdapter(f"{where}: adapter_config.json gives {path} rank {declared} (r / rank_pattern) but its "
                                f"tensors have rank {r}; the folder is inconsistent, publish it again")
        alpha = pattern_value(config.get("alpha_pattern"), path, config.get("lora_alpha", 8))
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        scaled = (b.t() * scale).contiguous()
        if not bool(torch.isfinite(scaled).all()):  # finite tensors and a finite alpha can still overflow together
            raise UnsafeAdapter(f"{where}: LoRA on {path} overflows once scaled by lora_alpha / r = {scale:g}; "
                                "the adapter would answer NaN")
        linear[path] = ("lora", a.t().contiguous(), scaled)
    return AdapterWeights(record, folder, head_of(layout, head_state, record, where), linear=linear)


def _defaults(task_type: str = "SEQ_CLS"):

    return LoraConfig(task_type=task_type, r=8, lora_alpha=16, target_modules=["query", "key", "value", "dense"])


LORA = Method(
    name="lora", title="LoRA", summary="low-rank updates B·A added to the frozen weights of chosen Linear layers",
    config="LoraConfig", peft_type="LORA", weights=peft_common.PEFT_WEIGHTS,
    prepare=peft_common.prepare, save=peft_common.save, load_alone=peft_common.load_alone, read=read,
    served_fields=SERVED_FIELDS, usage=peft_common.usage, defaults=_defaults,
)
QLORA = Method(
    name="qlora", title="QLoRA", summary="LoRA trained over a 4-bit NF4 copy of the base (bitsandbytes); "
    "a plain LoRA adapter that loads on the full-precision base too",
    config="LoraConfig", peft_type="LORA", weights=peft_common.PEFT_WEIGHTS, quantized=True,
    prepare=prepare_qlora, save=peft_common.save, load_alone=peft_common.load_alone, read=read,
    served_fields=SERVED_FIELDS, usage=peft_common.usage, defaults=_defaults,
)
