"""LoHa (``LoHaConfig``): low-rank Hadamard products as weight updates (PEFT's LyCORIS family).

Added as the proof that a method is one module, a recipe and a test: PEFT trains, saves and loads it;
the registry does not reimplement its forward (``read`` is None), so ``zoo.load`` serves each LoHa
adapter with PEFT on a base of its own, and the demo and ``zoo list`` show it like any other entry.
"""

from __future__ import annotations

from peft import LoHaConfig

import zoo.methods.peft_common as peft_common
from zoo.methods.base import Method


def _defaults(task_type: str = "SEQ_CLS"):

    return LoHaConfig(task_type=task_type, r=4, alpha=8, target_modules=["query", "value"])


LOHA = Method(
    name="loha", title="LoHa", summary="low-rank Hadamard-product updates of chosen layers (served by PEFT, on a base of its own)",
    config="LoHaConfig", peft_type="LOHA", weights=peft_common.PEFT_WEIGHTS,
    prepare=peft_common.prepare, save=peft_common.save, load_alone=peft_common.load_alone,
    usage=peft_common.usage, defaults=_defaults,
)
