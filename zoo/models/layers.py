"""Where things are inside a transformers model: its stack of blocks, its head, its Linear layers.

Shared by training (which parameters a method unfreezes) and serving (which modules the registry wraps).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.errors import RecipeError

try:  # GPT-2's projections
    from transformers.pytorch_utils import Conv1D as _Conv1D

    _CONV1D: tuple = (_Conv1D,)
except ImportError:  # pragma: no cover
    _CONV1D = ()


def transformer_layers(model) -> torch.nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the model (encoder.layer, model.layers, h)."""
    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not stacks:
        raise RecipeError(f"{type(model).__name__} has no stack of layers; last-layers fine-tuning cannot apply")
    return max(stacks, key=len)


def head_parameter_names(model) -> list[str]:
    """Parameters outside the backbone (the classifier), plus the pooler that feeds it (BERT)."""
    prefix = model.base_model_prefix
    return [n for n, _ in model.named_parameters() if not n.startswith(prefix + ".") or ".pooler." in n]


def causal_trained_names(model, num_layers: int) -> list[str]:
    """Last-layers on a causal LM: the top blocks and the final norm; never embeddings (tied to the LM head)."""
    layers = transformer_layers(model)
    names = {id(p): n for n, p in model.named_parameters()}
    chosen = [names[id(p)] for layer in (layers[len(layers) - num_layers:] if num_layers else []) for p in layer.parameters()]
    in_layers = {id(p) for p in layers.parameters()}
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    prefix = model.base_model_prefix + "."
    chosen += [n for n, p in model.named_parameters()
               if n.startswith(prefix) and id(p) not in in_layers and id(p) not in embeddings]  # e.g. model.norm
    return chosen


def linear_features(module: nn.Module) -> tuple[int, int]:
    """(in, out) features of an ``nn.Linear``, or of a transformers ``Conv1D`` (weight stored (in, out))."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return tuple(module.weight.shape)


def is_linear(module: nn.Module) -> bool:
    """A layer RoutedLinear can serve: ``nn.Linear`` or transformers' ``Conv1D``."""
    return isinstance(module, (nn.Linear, *_CONV1D))


POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length")
# RoBERTa's family numbers positions from padding_idx + 1, so max_position_embeddings - padding_idx - 1 are usable.
_POSITIONS_AFTER_PADDING = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                                      "data2vec-text", "xmod", "longformer", "mpnet"})


def max_positions(config) -> int | None:
    """How many tokens a base reads at once (its position table); None if its config names no limit. An adapter's
    max_length (plus its virtual tokens, plus a causal entry's answer) must fit in it.

        >>> from transformers import BertConfig, RobertaConfig
        >>> max_positions(BertConfig(max_position_embeddings=512)), max_positions(RobertaConfig(max_position_embeddings=514, pad_token_id=1))
        (512, 512)
    """
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in POSITION_FIELDS:
        value = getattr(config, key, None)
        if type(value) is int and value > 0:
            if getattr(config, "model_type", None) in _POSITIONS_AFTER_PADDING:
                value -= (getattr(config, "pad_token_id", None) or 0) + 1
            return value
    return None


def output_layer(model, classes: int) -> nn.Linear:
    """The trained Linear that writes a classifier's logits (BERT's classifier, RoBERTa's out_proj; under PEFT the
    copy in ``modules_to_save``), with its bias: where ``train.tune_offsets`` puts its offsets."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == classes
             and m.weight.requires_grad and not hasattr(m, "base_layer")]
    if len(found) != 1 or found[0].bias is None:
        what = "no bias" if len(found) == 1 else f"{len(found)} trained Linear layers with {classes} outputs"
        raise RecipeError(f"train.tune_offsets needs one trained output layer with a bias; {type(model).__name__} "
                          f"has {what}: leave train.tune_offsets out")
    return found[0]
