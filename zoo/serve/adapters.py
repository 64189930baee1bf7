"""Reading a published adapter folder into the tensors the registry serves, without PEFT's loader.

An adapter becomes an :class:`AdapterWeights`: per-Linear LoRA / IA3 tensors, an optional virtual
prompt (prompt tuning, P-tuning) or prefix (prefix tuning), replaced blocks (last-layers), and its
own classification head (SEQ_CLS adapters; causal-LM adapters use the base's own LM head). Every
tensor in the file must be understood and must fit the base: anything else is refused with a
message that says what is wrong, before anything is served. Only safetensors are read; nothing is
unpickled and no code from the adapter runs.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load
from torch import nn

from zoo.artifact.record import (
    LAST_LAYERS_WEIGHTS,
    PEFT_WEIGHTS,
    check_safe_folder,
    is_causal,
)
from zoo.config.generation import GENERATION_DEFAULTS, check_generation
from zoo.errors import AdapterBaseMismatch, UnsafeAdapter, UnsupportedAdapter
from zoo.models.layers import linear_features

# Methods the registry serves on a shared base, by zoo.json "method" and PEFT's peft_type.
# QLoRA is a LoRA trained over a 4-bit copy of the base: served as LoRA on the shared unquantized base
# (the answers differ from the 4-bit base by its quantization error). ICL carries no weights at all.
SERVED = {"lora": "LORA", "qlora": "LORA", "ia3": "IA3", "prompt-tuning": "PROMPT_TUNING", "p-tuning": "P_TUNING",
          "prefix-tuning": "PREFIX_TUNING", "last-layers": None, "icl": None}
TASK_TYPES = ("SEQ_CLS", "CAUSAL_LM")


@dataclass(eq=False)
class AdapterWeights:
    """One adapter as served by the registry (see module docstring)."""

    name: str
    meta: dict
    path: Path
    kind: str                                   # zoo method name
    labels: tuple[str, ...]
    head: nn.Module | None                      # None for causal-LM adapters: the base's LM head serves them
    linear: dict = field(default_factory=dict)  # Linear path -> ("lora", A^T, s*B^T) | ("ia3", vec, is_ff)
    blocks: dict = field(default_factory=dict)  # block path -> replacement module (last-layers)
    prompt: torch.Tensor | None = None          # (n_virtual, hidden) input embeddings to prepend
    prefix: torch.Tensor | None = None          # (n_virtual, layers * 2 * hidden) past keys/values
    prefix_shape: tuple | None = None           # (layers * 2, heads, head_dim)
    nbytes: int = 0
    key: str = ""                               # the name the registry serves it under

    @property
    def is_pair(self) -> bool:
        return len(self.meta.get("text_fields", ["text"])) == 2

    @property
    def max_length(self) -> int:
        return int(self.meta.get("max_length", 128))

    @property
    def is_causal(self) -> bool:
        return is_causal(self.meta)

    @property
    def group(self) -> tuple:
        """Adapters with the same group share one forward pass of the base."""
        if self.prompt is not None:
            return ("prompt", self.prompt.shape[0])
        if self.prefix is not None:
            return ("prefix", self.prefix.shape[0])
        return ("plain",)


@dataclass
class BaseLayout:
    """What the registry knows about the wrapped base: where things are and their shapes."""

    linears: dict         # path -> nn.Linear or GPT-2 Conv1D (original)
    blocks: dict          # path -> meta-device template of a replaceable block
    head_path: str | None  # the classification head; None: this base serves no SEQ_CLS adapters
    head_template: nn.Module | None
    hidden_size: int
    num_layers: int
    num_heads: int
    base_id: str
    module_types: dict = field(default_factory=dict)  # every module path -> class name, for messages
    causal: bool = False  # a decoder-only LM: serves CAUSAL_LM adapters
    prefix_heads: int = 0  # prefix tuning's key/value heads (the KV heads under grouped-query attention)
    prefix_head_dim: int = 0

    @property
    def prefix_width(self) -> int:
        """Columns of a prefix-tuning table: per layer, keys and values of every KV head (PEFT's token_dim)."""
        return self.num_layers * 2 * self.prefix_heads * self.prefix_head_dim


def _pattern_value(patterns: dict, path: str, default):
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", path):
            return value
    return default


def _is_feedforward(config: dict, path: str) -> bool:
    ff = config.get("feedforward_modules") or []
    if isinstance(ff, str):
        return bool(re.fullmatch(ff, path))
    return any(path.endswith(k) for k in ff)


def _materialize(template: nn.Module, state: dict, where: str) -> nn.Module:
    """A copy of a meta-device template whose parameters are the given tensors (shapes may differ for heads)."""
    module = copy.deepcopy(template)
    names = {n for n, _ in module.named_parameters()}
    missing = sorted(names - set(state))
    if missing:
        raise UnsafeAdapter(f"{where}: missing tensors {missing[:4]}")
    for name in names:
        owner_path, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_path) if owner_path else module
        setattr(owner, attr, nn.Parameter(state[name], requires_grad=False))
        if isinstance(owner, nn.Linear) and attr == "weight":
            owner.out_features, owner.in_features = state[name].shape
    for name, buf in list(module.named_buffers()):
        if buf.is_meta:
            raise UnsupportedAdapter(f"{where}: block has buffer {name} that the adapter does not carry")
    return module.eval()


def _check_head(layout: BaseLayout, state: dict, labels: tuple, where: str) -> nn.Module:
    head = _materialize(layout.head_template, state, where)
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    if last.out_features != len(labels):
        raise UnsafeAdapter(
            f"{where}: the head has {last.out_features} outputs but zoo.json lists {len(labels)} labels "
            f"({', '.join(labels)}); the folder is inconsistent, publish it again"
        )
    if last.in_features != layout.hidden_size and len([m for m in head.modules() if isinstance(m, nn.Linear)]) == 1:
        raise AdapterBaseMismatch(f"{where}: head expects hidden size {last.in_features}, base {layout.base_id!r} has {layout.hidden_size}")
    return head


def read_adapter(folder: Path, meta: dict, layout: BaseLayout) -> AdapterWeights:
    """Parse and check one published folder against the base layout."""
    kind = meta["method"]
    name = meta["name"]
    where = f"adapter {name!r} ({folder})"
    if kind not in SERVED:
        if kind == "full":
            raise UnsupportedAdapter(
                f"{where} is a fully fine-tuned model, not an adapter: it cannot share a base; "
                "load it on its own with zoo.load()"
            )
        raise UnsupportedAdapter(f"{where}: method {kind!r} is not served by the registry")
    if meta["base_model"] != layout.base_id:
        raise AdapterBaseMismatch(
            f"{where} was trained on base {meta['base_model']!r}, but this registry serves base {layout.base_id!r}; "
            f"load it with zoo.load({meta['base_model']!r}, adapter={name!r})"
        )
    _check_task(meta, layout, where)
    if kind == "icl":  # in-context learning: the prompt is the whole adapter, the bare base serves it
        check_safe_folder(folder, None)  # and a folder that claims no weights must hold none
        return AdapterWeights(name, meta, folder, kind, tuple(meta["labels"]), None)
    weights = LAST_LAYERS_WEIGHTS if kind == "last-layers" else PEFT_WEIGHTS
    check_safe_folder(folder, weights)
    try:
        # Read into memory we own: tensors viewing a memory-mapped file would keep the whole mapping
        # resident beside the copies made below, and would change if the file were rewritten.
        state = load((folder / weights).read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise UnsafeAdapter(f"{folder / weights} is corrupt or truncated ({e}); publish the adapter again") from None
    for k, v in state.items():
        if not v.is_floating_point():
            raise UnsafeAdapter(f"{where}: tensor {k} has dtype {v.dtype}; adapters hold floating-point weights")
        if not torch.isfinite(v).all():
            raise UnsafeAdapter(f"{where}: tensor {k} holds NaN or infinite values")
    nbytes = sum(v.numel() * v.element_size() for v in state.values())
    if kind == "last-layers":
        out = _read_last_layers(state, meta, layout, where, folder)
    else:
        out = _read_peft(state, meta, layout, where, folder)
    out.nbytes = nbytes
    return out


def _check_task(meta: dict, layout: BaseLayout, where: str) -> None:
    """The adapter's task type is one this base serves (a causal adapter needs a decoder-only base)."""
    task_type = meta.get("task_type", "SEQ_CLS")
    if task_type not in TASK_TYPES:
        raise UnsupportedAdapter(f"{where}: task_type {task_type!r} is not served; the registry serves {', '.join(TASK_TYPES)}")
    if task_type == "CAUSAL_LM" and not layout.causal:
        raise UnsupportedAdapter(f"{where} is a causal-LM adapter, but base {layout.base_id!r} is not a decoder-only LM")
    if task_type == "SEQ_CLS" and layout.head_template is None:
        raise UnsupportedAdapter(
            f"{where} is a classification adapter, but base {layout.base_id!r} has no sequence-classification "
            "class in transformers; load it alone with zoo.serve.loading.load_folder"
        )
    if meta["method"] == "icl" and task_type != "CAUSAL_LM":
        raise UnsafeAdapter(f"{where}: method 'icl' needs task_type 'CAUSAL_LM' in zoo.json, not {task_type!r}")
    if task_type == "CAUSAL_LM":
        generation = meta.get("generation") or {}
        if not isinstance(generation, dict):
            raise UnsafeAdapter(f"{where}: zoo.json 'generation' must be a dict of settings, got {type(generation).__name__}")
        # keys a newer zoo.json may add are ignored; the known ones must make sense
        check_generation({k: v for k, v in generation.items() if k in GENERATION_DEFAULTS}, UnsafeAdapter, where)
        max_length = meta.get("max_length", 128)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise UnsafeAdapter(f"{where}: zoo.json max_length must be an integer >= 1, got {max_length!r}")
        if not isinstance(meta["labels"], list) or not all(isinstance(x, str) for x in meta["labels"]):
            raise UnsafeAdapter(f"{where}: zoo.json labels must be a list of label names ([] for free text)")


def _split_head(state: dict, layout: BaseLayout, prefix: str, causal: bool = False) -> tuple[dict, dict]:
    """(head tensors, the rest) with ``prefix`` stripped; a causal adapter has no head of its own."""
    head, rest = {}, {}
    lead = prefix + layout.head_path + "." if not causal else None
    for k, v in state.items():
        if lead is not None and k.startswith(lead):
            head[k[len(lead):]] = v
        else:
            rest[k[len(prefix):] if prefix and k.startswith(prefix) else k] = v
    return head, rest


def _head(layout: BaseLayout, state: dict, meta: dict, where: str) -> nn.Module | None:
    if is_causal(meta):
        return None
    return _check_head(layout, state, tuple(meta["labels"]), where)


def _read_last_layers(state, meta, layout: BaseLayout, where, folder) -> AdapterWeights:
    causal = is_causal(meta)
    head_state, rest = _split_head(state, layout, "", causal)
    blocks = {}
    for path, template in layout.blocks.items():
        lead = path + "."
        sub = {k[len(lead):]: v for k, v in rest.items() if k.startswith(lead)}
        if not sub:
            continue
        try:
            block = _materialize(template, sub, f"{where}, block {path}")
        except UnsafeAdapter as e:
            raise UnsupportedAdapter(f"{e}; the registry replaces whole blocks only") from None
        for n, p in block.named_parameters():
            want = template.get_parameter(n).shape
            if p.shape != want:
                raise AdapterBaseMismatch(f"{where}: {path}.{n} has shape {tuple(p.shape)}, base {layout.base_id!r} has {tuple(want)}")
        blocks[path] = block
        for k in list(rest):
            if k.startswith(lead):
                del rest[k]
    if rest:
        raise UnsupportedAdapter(
            f"{where}: tensors {sorted(rest)[:4]} are not whole top blocks of base {layout.base_id!r}; "
            "the registry cannot serve them (load it alone with zoo.serve.loading.load_folder)"
        )
    head = _head(layout, head_state, meta, where)
    return AdapterWeights(meta["name"], meta, folder, "last-layers", tuple(meta["labels"]), head, blocks=blocks)


def _read_peft(state, meta, layout: BaseLayout, where, folder) -> AdapterWeights:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnsafeAdapter(f"{where}: adapter_config.json is missing or not JSON ({e})") from None
    peft_type = config.get("peft_type")
    if peft_type != SERVED[meta["method"]]:
        raise UnsafeAdapter(f"{where}: zoo.json says {meta['method']!r} but adapter_config.json says {peft_type!r}")
    task_type = meta.get("task_type", "SEQ_CLS")
    if config.get("task_type") not in (None, task_type):
        raise UnsafeAdapter(f"{where}: zoo.json says task_type {task_type!r} but adapter_config.json says "
                            f"{config.get('task_type')!r}; the folder is inconsistent, publish it again")
    causal = task_type == "CAUSAL_LM"
    labels = tuple(meta["labels"])
    if peft_type in ("LORA", "IA3"):
        head_state, rest = _split_head(state, layout, "base_model.model.", causal)
        linear = _read_linear_deltas(rest, config, layout, where)
        head = _head(layout, head_state, meta, where)
        return AdapterWeights(meta["name"], meta, folder, meta["method"], labels, head, linear=linear)
    head_state, rest = _split_head(state, layout, "base_model.", causal)
    emb = rest.pop("prompt_embeddings", None)
    if rest:
        raise UnsupportedAdapter(f"{where}: unexpected tensors {sorted(rest)[:4]}")
    if emb is None or emb.dim() != 2:
        raise UnsafeAdapter(f"{where}: no 2-d prompt_embeddings tensor")
    n = int(config.get("num_virtual_tokens") or 0)
    if int(config.get("num_transformer_submodules") or 1) != 1:
        raise UnsupportedAdapter(f"{where}: encoder-decoder prompts are not served by the registry")
    if emb.shape[0] != n:
        raise UnsafeAdapter(f"{where}: prompt_embeddings has {emb.shape[0]} rows, adapter_config says {n} virtual tokens")
    head = _head(layout, head_state, meta, where)
    out = AdapterWeights(meta["name"], meta, folder, meta["method"], labels, head)
    if peft_type == "PREFIX_TUNING":
        want = layout.prefix_width
        if emb.shape[1] != want:
            raise AdapterBaseMismatch(
                f"{where}: prefix width {emb.shape[1]} does not fit base {layout.base_id!r} ({layout.num_layers} layers "
                f"x 2 x {layout.prefix_heads} key/value heads x head size {layout.prefix_head_dim} = {want})"
            )
        out.prefix = emb
        out.prefix_shape = (layout.num_layers * 2, layout.prefix_heads, layout.prefix_head_dim)
    else:
        if emb.shape[1] != layout.hidden_size:
            raise AdapterBaseMismatch(f"{where}: prompt width {emb.shape[1]} does not fit base {layout.base_id!r} (hidden {layout.hidden_size})")
        out.prompt = emb
    return out


def _read_linear_deltas(rest: dict, config: dict, layout: BaseLayout, where: str) -> dict:
    if config.get("peft_type") == "LORA":
        for flag in ("use_dora", "lora_bias", "use_qalora"):
            if config.get(flag):
                raise UnsupportedAdapter(f"{where}: LoRA with {flag}=true is not served by the registry")
        if config.get("layer_replication") or config.get("target_parameters") or config.get("trainable_token_indices"):
            raise UnsupportedAdapter(f"{where}: LoRA with layer replication, target_parameters or trainable tokens is not served")
    linear = {}
    suffixes = (".lora_A.weight", ".lora_B.weight", ".ia3_l")
    by_module: dict[str, dict] = {}
    for k, v in rest.items():
        suffix = next((s for s in suffixes if k.endswith(s)), None)
        if suffix is None:
            raise UnsupportedAdapter(f"{where}: unexpected tensor {k!r} (trained biases or extra modules are not served)")
        by_module.setdefault(k[: -len(suffix)], {})[suffix] = v
    for path, parts in by_module.items():
        base = layout.linears.get(path)
        if base is None and path in layout.module_types:
            raise UnsupportedAdapter(
                f"{where}: it adapts {path!r}, a {layout.module_types[path]}; the registry serves LoRA and IA3 "
                "on nn.Linear / Conv1D layers other than the LM head (load this adapter alone with zoo.serve.loading.load_folder)"
            )
        if base is None:
            raise AdapterBaseMismatch(f"{where}: it adapts module {path!r}, which base {layout.base_id!r} does not have")
        in_features, out_features = linear_features(base)
        if ".ia3_l" in parts:
            vec = parts[".ia3_l"]
            ff = _is_feedforward(config, path)
            want = (1, in_features) if ff else (out_features, 1)
            if tuple(vec.shape) != want:
                raise AdapterBaseMismatch(f"{where}: {path}.ia3_l has shape {tuple(vec.shape)}, base {layout.base_id!r} needs {want}")
            linear[path] = ("ia3", vec.flatten().contiguous(), ff)
            continue
        a, b = parts.get(".lora_A.weight"), parts.get(".lora_B.weight")
        if a is None or b is None:
            raise UnsafeAdapter(f"{where}: module {path} has only one of lora_A / lora_B")
        r = a.shape[0]
        if a.shape != (r, in_features) or b.shape != (out_features, r):
            raise AdapterBaseMismatch(
                f"{where}: LoRA on {path} has shapes A{tuple(a.shape)} B{tuple(b.shape)}, "
                f"base {layout.base_id!r} has a {in_features}->{out_features} layer"
            )
        alpha = _pattern_value(config.get("alpha_pattern"), path, config.get("lora_alpha", 8))
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        linear[path] = ("lora", a.t().contiguous(), (b.t() * scale).contiguous())
    return linear
