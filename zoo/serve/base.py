"""The shared base: what it is, how it is loaded once, and how it is wrapped for per-row routing.

A classifier base (BERT, RoBERTa, MiniLM) is loaded as itself. A decoder-only base (Llama, GPT-2) is
loaded once as a causal LM, with a sequence-classification shell around its own backbone so that
classification adapters trained on that backbone are served too. :func:`wrap_base` then puts the
routing wrappers of ``zoo.serve.routing`` around every Linear, every block a last-layers adapter may
replace, and the head, once, and returns the :class:`~zoo.methods.served.BaseLayout` that every adapter
is checked against when it is read. :func:`release_free_memory` hands the heap pages that loading
freed back to the OS.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from zoo.data.sources import ResolvedModel
from zoo.errors import ZooError
from zoo.methods.served import BaseLayout
from zoo.models.classifier import load_base_classifier
from zoo.models.layers import head_parameter_names, is_linear, max_positions, transformer_layers
from zoo.serve.routing import RoutedBlock, RoutedHead, RoutedLinear

HEAD_NAMES = ("classifier", "score")


def load_base(resolved: ResolvedModel, dtype):
    """(model, classifier, tokenizer): a classifier twice, or a causal LM and a classification shell sharing its backbone."""

    config = AutoConfig.from_pretrained(resolved.path, local_files_only=resolved.local_files_only)
    if not _is_decoder_only(config):
        model, tokenizer = load_base_classifier(resolved, ("0", "1"), dtype=dtype)
        return model, model, tokenizer
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=resolved.local_files_only)
    if tokenizer.pad_token is None:  # as load_base_classifier: decoder-only bases (GPT-2) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        resolved.path, local_files_only=resolved.local_files_only, use_safetensors=None if resolved.source == "hub" else True,
        **({"dtype": dtype} if dtype is not None else {}),
    )
    return model, _classifier_shell(model, tokenizer), tokenizer


def _is_decoder_only(config) -> bool:
    """A causal LM (Llama, GPT-2, ...): by its saved architecture, else by its model type."""

    if getattr(config, "is_encoder_decoder", False):
        return False
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.architectures or []):
        return True
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _classifier_shell(model, tokenizer):
    """``AutoModelForSequenceClassification`` around the causal LM's own backbone (no weights of its own), or None.

    Its forward is transformers' (last non-pad token pooling, as the adapters were trained with); its
    head is replaced by the per-adapter RoutedHead, so one base in memory serves both kinds.
    """

    config = copy.deepcopy(model.config)
    if config.pad_token_id is None:  # pooling finds the last token by the pad id, as load_base_classifier sets it
        config.pad_token_id = tokenizer.pad_token_id
    try:
        with torch.device("meta"):
            shell = AutoModelForSequenceClassification.from_config(config)
    except (ValueError, KeyError):  # no sequence-classification class for this architecture
        return None
    if shell.base_model_prefix != model.base_model_prefix:
        return None
    setattr(shell, shell.base_model_prefix, model.base_model)
    return shell.eval()


def wrap_base(model, classifier, base_id: str) -> BaseLayout:
    """Put routing wrappers around the Linear layers, the top blocks and the head (once)."""
    config = model.config.get_text_config()
    causal = classifier is not model
    module_types = {n: type(m).__name__ for n, m in model.named_modules() if n}
    head_path = head_template = None
    if classifier is not None:
        head_path = next((n for n in HEAD_NAMES if isinstance(getattr(classifier, n, None), nn.Module)), None)
        if head_path is None:
            raise ZooError(f"{type(classifier).__name__} has no classifier/score head; the registry cannot serve it")
        head_template = copy.deepcopy(getattr(classifier, head_path)).to("meta")
    # Replaceable blocks: each transformer layer, and modules outside the backbone's stack that a
    # last-layers run trains (the pooler of BERT-like models, the final norm of causal LMs).
    layers = transformer_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    block_paths = {names[id(layer)]: layer for layer in layers}
    block_paths.update(_final_norms(model, layers) if causal else _poolers(model, head_path, block_paths))
    blocks = {path: copy.deepcopy(m).to("meta") for path, m in block_paths.items()}
    # The LM head is tied to the input embeddings and never adapted: it stays a plain Linear.
    skip = names.get(id(model.get_output_embeddings()), "lm_head") if causal else head_path
    linears = {n: m for n, m in model.named_modules() if is_linear(m) and not n.startswith(skip + ".") and n != skip}
    # Wrap Linears first (inside blocks), then blocks, then the head.
    for path, linear in linears.items():
        parent, _, attr = path.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, RoutedLinear(linear, path))
    for path in blocks:
        parent, _, attr = path.rpartition(".")
        owner = model.get_submodule(parent)
        current = owner[int(attr)] if isinstance(owner, nn.ModuleList) else getattr(owner, attr)
        wrapped = RoutedBlock(current, path)
        if isinstance(owner, nn.ModuleList):
            owner[int(attr)] = wrapped
        else:
            setattr(owner, attr, wrapped)
    if head_path is not None:
        setattr(classifier, head_path, RoutedHead(head_template, head_path))
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd")
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head")
    # Prefix tuning stores keys/values per KV head: PEFT's token_dim under grouped-query attention.
    as_dict = config.to_dict()
    kv_heads = as_dict.get("num_key_value_heads")
    head_dim = (as_dict.get("head_dim") or hidden // heads) if kv_heads else hidden // heads
    return BaseLayout(linears=linears, blocks=blocks, head_path=head_path, head_template=head_template,
                      hidden_size=hidden, num_layers=len(layers), num_heads=heads, base_id=base_id,
                      module_types=module_types, causal=causal, prefix_heads=kv_heads or heads,
                      prefix_head_dim=head_dim, max_positions=max_positions(config),
                      dtype=next(model.parameters()).dtype)


def _poolers(model, head_path: str, block_paths: dict) -> dict:
    """Modules outside the layer stack that a classification last-layers run trains (BERT's pooler)."""
    head_params = {n.rsplit(".", 1)[0] for n in head_parameter_names(model) if not n.startswith(head_path + ".")}
    return {name: module for name, module in model.named_modules()
            if name and any(p == name or p.startswith(name + ".") for p in head_params)
            and name.count(".") == 1 and name not in block_paths}


def _final_norms(model, layers: nn.ModuleList) -> dict:
    """Trained modules of a causal last-layers run beside the top blocks: the backbone's final norm."""
    prefix = model.base_model_prefix
    return {f"{prefix}.{name}": child for name, child in model.base_model.named_children()
            if child is not layers and not isinstance(child, nn.Embedding) and any(True for _ in child.parameters())}


def release_free_memory() -> None:
    """Hand heap pages freed by loading (file buffers, temporaries) back to the OS (glibc only).

    A long-lived server otherwise keeps them as resident memory it will rarely reuse."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None
