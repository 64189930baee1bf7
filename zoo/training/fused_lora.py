"""LoRA's forward as two fused matrix products while training: ``addmm(bias, x, W^T)`` then, in place,
``out += scaling * (x A^T) B^T`` (one ``addmm_``), the same function as PEFT's ``base(x) + B(A(dropout(x))) * scaling``.

PEFT computes the LoRA branch, multiplies it by ``scaling`` and adds it to the base's output: two passes over a
full-size activation in the forward (the multiply, the add) and one more in the backward (the gradient times
``scaling``), for each of a MiniLM LoRA recipe's 37 adapted layers. Fused, the scaling lands on the rank-r
products and the sum is the matrix product's own accumulation. Measured here (2 cores, SST-2 LoRA on MiniLM-L6,
batches of 32): 187 -> 218 examples/s for a bare training loop; the logits are bitwise equal, gradients equal to
about 3e-6 relative (summation order). See ``bench/train_speed.py`` (``--variant own_forward=train.exact_shortcuts=false``).

With ``train.bf16_base`` every frozen float32 ``nn.Linear`` multiplies in bfloat16 against a bfloat16 copy of its
weight, made once when training starts (``cast_frozen_bases``); under LoRA, the fused forward does the base's
product so: ``addmm(bias16, x16, W16^T)`` back in float32, then the float32 LoRA product added as above. Its backward (the input's gradient through ``W``) is a bfloat16 product too; the LoRA
weights, their gradients and the optimizer stay float32. Where bf16 matrix products are native (AMX here) they
were 2.5-3.5x as fast as float32 ones for MiniLM's shapes (662 tokens x 384 x 1536: 2.2 ms -> 0.63 ms, casts
included); autocast was not faster, since it casts every frozen weight again at each call. Not exact: the
training trajectory is a bf16-rounded one's (accuracy unchanged on SST-2, bench/train_speed.py).

LoRA's dropout (``nn.Dropout`` on the branch's input, as PEFT applies it) is drawn once per layer call, as in PEFT's
forward, so the masks are the same draws. Only the plain case is fused: one active adapter, no variant (DoRA...),
no LoRA bias, an ``nn.Linear`` base (not a quantized one, not GPT-2's Conv1D), no autocast, matching dtypes.
Everything else, and every call with extra arguments (``adapter_names``: the registry's mixed batches), goes
through PEFT's forward unchanged, decided at each call. The instance's ``forward`` is replaced; weights, state dicts and saved adapters
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
    if name not in layer.lora_A or name in layer.lora_variant or type(layer.lora_dropout[name]) not in (nn.Identity, nn.Dropout):
        return None
    a, b = layer.lora_A[name], layer.lora_B[name]
    if a.bias is not None or b.bias is not None or not (x.dtype == base.weight.dtype == a.weight.dtype == b.weight.dtype):
        return None
    return name


_BF16 = "_zoo_bf16_base"  # the layer's (weight, bias) cast to bfloat16, while bf16_base is on


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x W^T + b`` for a 2-D ``x``: one ``addmm`` where there is a bias."""
    return torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()


def _forward(self: LoraLinear, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = None if (args or kwargs) else _fusable(self, x)
    if name is None:
        return LoraLinear.forward(self, x, *args, **kwargs)
    base, a, b = self.base_layer, self.lora_A[name].weight, self.lora_B[name].weight
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    dropout = self.lora_dropout[name]  # LoRA's branch only, one call per layer as in PEFT: the same masks
    branch = flat if type(dropout) is nn.Identity else dropout(x).reshape(-1, shape[-1])
    low = vars(self).get(_BF16)  # the frozen base's product in bfloat16, back to float32 before LoRA's is added
    if low is not None:
        out = _linear(flat.to(torch.bfloat16), *low).to(flat.dtype)
    else:
        out = _linear(flat, base.weight, base.bias)
    out = out.addmm_(branch @ a.t(), b.t(), alpha=self.scaling[name])  # addmm's backward does not need its output
    return out.view(*shape[:-1], out.shape[-1])


def native_bf16(device: torch.device | str) -> bool:
    """Whether bfloat16 matrix products run natively on ``device``: a CUDA GPU that supports bf16, or a CPU with
    AMX or AVX512-BF16 (elsewhere oneDNN emulates them, slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return torch.backends.mkldnn.is_available() and any(check is not None and check() for check in checks)
    return False


def _frozen_linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A frozen ``nn.Linear``'s product in bfloat16 against its cast weight, back in the input's float32."""
    low = vars(self).get(_BF16)
    if low is None or x.dtype != torch.float32 or torch.is_autocast_enabled(x.device.type):
        return nn.Linear.forward(self, x)
    shape = x.shape
    out = _linear(x.reshape(-1, shape[-1]).to(torch.bfloat16), *low).to(x.dtype)
    return out.view(*shape[:-1], out.shape[-1])


def _bf16_copy(linear: nn.Linear) -> tuple:
    bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
    return linear.weight.detach().to(torch.bfloat16), bias


def _frozen_float32(linear) -> bool:
    return (type(linear) is nn.Linear and not linear.weight.requires_grad and linear.weight.dtype == torch.float32
            and (linear.bias is None or not linear.bias.requires_grad))


def cast_frozen_bases(model: nn.Module) -> int:
    """``train.bf16_base``: give every frozen float32 ``nn.Linear`` of ``model`` a bfloat16 copy of its weight and bias
    and a forward that uses it, and every LoRA ``Linear`` over such a base the same copy for the fused forward
    (``_forward``); returns how many layers were cast. Trained layers (a head, the top layers of last-layers
    training), other dtypes and the output embeddings (a causal LM's logits) keep float32."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    count = 0
    for module in model.modules():  # a LoRA layer comes before its base layer, which shares its copy
        if module is output or _BF16 in vars(module):
            continue
        base = getattr(module, "base_layer", None)
        if type(module) is LoraLinear and _frozen_float32(base):
            setattr(module, _BF16, _bf16_copy(base))
            setattr(base, _BF16, vars(module)[_BF16])  # PEFT's own forward (where the fused one falls back) too
            base.forward = types.MethodType(_frozen_linear_forward, base)
            count += 1
        elif _frozen_float32(module):
            setattr(module, _BF16, _bf16_copy(module))
            module.forward = types.MethodType(_frozen_linear_forward, module)
            count += 1
    return count


def drop_frozen_casts(model: nn.Module) -> None:
    """Every layer ``cast_frozen_bases`` cast back to its float32 weight and the library's own forward."""
    for module in model.modules():
        if vars(module).pop(_BF16, None) is not None and type(module) is nn.Linear:
            vars(module).pop("forward", None)


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
def training_shortcuts(model: nn.Module, exact: bool, first_token: bool = False, bf16_base: bool = False,
                       name: str = "this run"):
    """While training: with ``exact`` (``train.exact_shortcuts``) the fused LoRA forward and, for classifiers, the
    last layer for the first token only (``zoo.training.first_token``); with ``bf16_base`` (``train.bf16_base``) the
    frozen linear layers' products in bfloat16 where that is native (``cast_frozen_bases``; under LoRA through the
    fused forward, which it switches on too).
    The libraries' own forward, and float32 only, again afterwards, however the block ends."""
    low = False
    if bf16_base:
        device = next(model.parameters()).device
        low = native_bf16(device)
        if not low:
            print(f"{name}: train.bf16_base is set, but bf16 matrix products are not native on {device} (no AMX or "
                  "AVX512-BF16, or a GPU without bf16): training in float32", flush=True)
    try:
        if exact or low:
            fuse_lora_forward(model)
        if low:
            cast_frozen_bases(model)
        if exact and first_token:
            first_token_last_layer(model)
        yield model
    finally:
        drop_frozen_casts(model)
        unfuse_lora_forward(model)
        restore_last_layer(model)
