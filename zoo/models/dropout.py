"""The base model's own dropout while training (``train.base_dropout``): every dropout probability its config
declares, whatever the architecture calls it (BERT's ``hidden_dropout_prob``, GPT-2's ``attn_pdrop``, Llama's
``attention_dropout``), read from the config before the model is built and passed to ``from_pretrained``.

Serving never sees it: models answer in eval mode, where dropout does nothing.
"""

from __future__ import annotations

from typing import Optional

from transformers import AutoConfig


def is_dropout_setting(name: str, value) -> bool:
    return isinstance(value, float) and ("dropout" in name or name.endswith("pdrop")) and not name.startswith("_")


def dropout_overrides(path: str, p: Optional[float], *, local_files_only: bool = True) -> dict:
    """``{config key: p}`` for each dropout probability of the model at ``path``; {} when ``p`` is None (the base's
    own settings). A key the config leaves None (BERT's ``classifier_dropout``: "use hidden_dropout_prob") follows
    the one it defers to."""
    if p is None:
        return {}
    config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
    return {name: float(p) for name, value in config.to_dict().items() if is_dropout_setting(name, value)}
