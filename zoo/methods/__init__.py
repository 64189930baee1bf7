"""Layer: methods. One module per fine-tuning method, each saying in one place how it prepares a model
for training, what it saves, how the registry reads its tensors and routes them (or that PEFT serves it
on a base of its own), and what its card and the demo say about it:

    full         full fine-tuning (baseline; a whole model)      lora         LoRA and QLoRA
    last_layers  the top blocks and the head (baseline)          ia3          IA3
    linear_probe the head only, on the frozen encoder (baseline)  prompt       prompt tuning and P-tuning
    icl          in-context learning (no training; baseline)
    loha         LoHa (served by PEFT on a base of its own)      prefix       prefix tuning

``METHODS`` is the one list; every other table of methods in the zoo derives from it. Adding a method
means a module here (a :class:`~zoo.methods.base.Method`), a line in ``METHODS``, a recipe and a test.
Above the models (base loading) and artifact (the record, the files) layers; below training and serving,
which both consult it.

    >>> from zoo.methods import METHODS, get
    >>> get("qlora").title, get("lora").shares_base, get("loha").shares_base
    ('QLoRA', True, False)
"""

from __future__ import annotations

from zoo.errors import UnknownMethod
from zoo.methods.base import Method
from zoo.methods.full import FULL
from zoo.methods.ia3 import IA3
from zoo.methods.icl import ICL
from zoo.methods.last_layers import LAST_LAYERS
from zoo.methods.linear_probe import LINEAR_PROBE
from zoo.methods.loha import LOHA
from zoo.methods.lora import LORA, QLORA
from zoo.methods.prefix import PREFIX_TUNING
from zoo.methods.prompt import P_TUNING, PROMPT_TUNING

METHODS: dict[str, Method] = {m.name: m for m in (
    LORA, QLORA, IA3, PROMPT_TUNING, P_TUNING, PREFIX_TUNING, FULL, LAST_LAYERS, LINEAR_PROBE, ICL, LOHA)}


def get(name: str) -> Method:
    """The method published under ``name`` in zoo.json (``lora``, ``prefix-tuning``...)."""
    method = METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        raise UnknownMethod(f"unknown method {str(name)[:40]!r}; the zoo knows {', '.join(METHODS)}")
    return method


def of_config(config, *, quantized: bool = False) -> Method:
    """The method a recipe's config object trains: ``LoraConfig(...)`` -> LoRA (QLoRA over a 4-bit base)."""
    name = type(config).__name__
    for method in METHODS.values():
        if method.config == name and method.quantized == quantized:
            return method
    known = ", ".join(dict.fromkeys(f"{m.config} ({m.name})" for m in METHODS.values()))
    raise UnknownMethod(f"unknown method {name}: {config!r:.80}; use one of {known}")


def of_recipe(recipe) -> Method:
    """The method of a Recipe (its config, and whether it quantizes the base)."""
    return of_config(recipe.method, quantized=recipe.quantization is not None)


__all__ = ["METHODS", "Method", "get", "of_config", "of_recipe"]
