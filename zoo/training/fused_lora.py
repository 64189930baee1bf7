"""LoRA's forward as two fused matrix products while training: ``addmm(bias, x, W^T)`` then, in place,
``out += scaling * (x A^T) B^T`` (one ``addmm_``), the same function as PEFT's ``base(x) + B(A(dropout(x))) * scaling``.

PEFT computes the LoRA branch, multiplies it by ``scaling`` and adds it to the base's output: two passes over a
full-size activation in the forward (the multiply, the add) and one more in the backward (the gradient times
``scaling``), for each of a MiniLM LoRA recipe's 37 adapted layers. Fused, the scaling lands on the rank-r
products and the sum is the matrix product's own accumulation. Measured here (2 cores, SST-2 LoRA on MiniLM-L6,
batches of 32): 187 -> 218 examples/s for a bare training loop; the logits are bitwise equal, gradients equal to
about 3e-6 relative (summation order). See ``bench/train_speed.py`` (``--variant own_forward=train.exact_shortcuts=false``).

Only the plain case is fused: one active adapter, no dropout, no variant (DoRA...), no LoRA bias, an
``nn.Linear`` base (not a quantized one, not GPT-2's Conv1D), no autocast, matching dtypes. Everything else, and
every call with extra arguments (``adapter_names``: the registry's mixed batches), goes through PEFT's forward
unchanged, decided at each call. The instance's ``forward`` is replaced; weights, state dicts and saved adapters
are PEFT's own.
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn

from zoo.training.first_token import first_token_last_layer, restore_last_layer


def _fusable(layer: LoraLinear, x: torch.Tensor) -> str | None:
    """The active adapter's name when this call can be fused, else None."""
    base = layer.base_layer
    if (layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1 or type(base) is not nn.Linear
            or getattr(layer, "fan_in_fan_out", False) or torch.is_autocast_enabled(x.device.type)):
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in layer.lora_variant or not isinstance(layer.lora_dropout[name], nn.Identity):
        return None
    a, b = layer.lora_A[name], layer.lora_B[name]
    if a.bias is not None or b.bias is not None or not (x.dtype == base.weight.dtype == a.weight.dtype == b.weight.dtype):
        return None
    return name


def _forward(self: LoraLinear, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = None if (args or kwargs) else _fusable(self, x)
    if name is None:
        return LoraLinear.forward(self, x, *args, **kwargs)
    base, a, b = self.base_layer, self.lora_A[name].weight, self.lora_B[name].weight
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    out = torch.addmm(base.bias, flat, base.weight.t()) if base.bias is not None else flat @ base.weight.t()
    out = out.addmm_(flat @ a.t(), b.t(), alpha=self.scaling[name])  # addmm's backward does not need its output
    return out.view(*shape[:-1], out.shape[-1])


def fuse_lora_forward(model: nn.Module) -> int:
    """Give every PEFT LoRA ``Linear`` of ``model`` the fused forward (see the module's docstring); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is LoraLinear:
            module.forward = types.MethodType(_forward, module)
            count += 1
    return count


def unfuse_lora_forward(model: nn.Module) -> None:
    """Back to PEFT's own forward (the class's) on every layer ``fuse_lora_forward`` changed."""
    for module in model.modules():
        if type(module) is LoraLinear and "forward" in vars(module):
            del module.forward


@contextmanager
def exact_shortcuts(model: nn.Module, on: bool, first_token: bool = False):
    """While training (``train.exact_shortcuts``): the fused LoRA forward and, for classifiers, the last layer for
    the first token only (``zoo.training.first_token``); the libraries' own forward again afterwards, however the
    block ends."""
    if on:
        fuse_lora_forward(model)
        if first_token:
            first_token_last_layer(model)
    try:
        yield model
    finally:
        unfuse_lora_forward(model)
        restore_last_layer(model)
