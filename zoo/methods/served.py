"""What the registry holds for one adapter, and the vocabulary every method's reader uses to build it.

Each method module (``zoo.methods.lora``, ``.ia3``, ...) reads its own tensors into an
:class:`AdapterWeights`: per-Linear deltas (LoRA, IA3), a virtual prompt (prompt tuning, P-tuning), a
prefix (prefix tuning), replaced blocks (last-layers), and its own classification head (SEQ_CLS
adapters; causal-LM adapters use the base's LM head). Every tensor is checked against the
:class:`BaseLayout` of the shared base, which ``zoo.serve.base`` builds when it wraps the base.
``zoo.serve.routing`` then runs what is here, per row.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from zoo.artifact.record import AdapterRecord
from zoo.errors import AdapterBaseMismatch, UnsafeAdapter, UnsupportedAdapter


@dataclass(eq=False)
class AdapterWeights:
    """One adapter as served by the registry (see module docstring)."""

    record: AdapterRecord                       # its zoo.json
    path: Path
    head: nn.Module | None                      # None for causal-LM adapters: the base's LM head serves them
    linear: dict = field(default_factory=dict)  # Linear path -> ("lora", A^T, s*B^T) | ("ia3", vec, is_ff)
    blocks: dict = field(default_factory=dict)  # block path -> replacement module (last-layers)
    prompt: torch.Tensor | None = None          # (n_virtual, hidden) input embeddings to prepend
    prefix: torch.Tensor | None = None          # (n_virtual, layers * 2 * hidden) past keys/values
    prefix_shape: tuple | None = None           # (layers * 2, heads, head_dim)
    nbytes: int = 0
    key: str = ""                               # the name the registry serves it under

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.record.labels

    @property
    def is_pair(self) -> bool:
        return self.record.is_pair

    @property
    def max_length(self) -> int:
        return self.record.max_length

    @property
    def is_causal(self) -> bool:
        return self.record.causal

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
    max_positions: int | None = None  # token positions the base encodes (None: its config does not say)
    dtype: torch.dtype = torch.float32  # the base's floating-point type: adapter tensors are converted to it

    @property
    def prefix_width(self) -> int:
        """Columns of a prefix-tuning table: per layer, keys and values of every KV head (PEFT's token_dim)."""
        return self.num_layers * 2 * self.prefix_heads * self.prefix_head_dim


def check_positions(record: AdapterRecord, limit: int | None, virtual: int, base_id: str, where: str) -> None:
    """The adapter's max_length, its virtual tokens (and for a causal entry its answer) fit the base's positions."""
    if not limit:
        return
    answer = int(record.generation.get("max_new_tokens", 0) or 0) if record.causal else 0
    need = record.max_length + virtual + answer
    if need > limit:
        parts = f"max_length {record.max_length}" + (f" + {virtual} virtual tokens" if virtual else "") + (
            f" + max_new_tokens {answer}" if answer else "")
        raise UnsafeAdapter(f"{where}: {parts} = {need} positions, but base {base_id!r} has {limit}; the record is "
                            f"inconsistent (train again with train.max_length <= {limit - virtual - answer})")


def pattern_value(patterns: dict, path: str, default):
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", path):
            return value
    return default


def materialize(template: nn.Module, state: dict, where: str, outputs: int | None = None) -> nn.Module:
    """A copy of a meta-device template whose parameters are the given tensors, each of its template's shape.

    With ``outputs`` (a classification head) the last Linear's rows are the adapter's label count instead: the one
    dimension a head may change. A tensor of any other shape would load and then fail every forward pass it is in,
    and a shared pass holds other adapters' rows."""
    module = copy.deepcopy(template)
    params = dict(module.named_parameters())
    missing = sorted(set(params) - set(state))
    if missing:
        raise UnsafeAdapter(f"{where}: missing tensors {missing[:4]}")
    extra = sorted(set(state) - set(params))
    if extra:  # every tensor of the file is used, or the adapter is refused
        raise UnsafeAdapter(f"{where}: tensors {extra[:4]} have no place in the module; the folder is inconsistent")
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    last = linears[-1] if outputs is not None and linears else None
    for name, param in params.items():
        owner_path, _, attr = name.rpartition(".")
        want, got = tuple(param.shape), tuple(state[name].shape)
        if owner_path == last and got[:1] != (outputs,) and len(got) == len(want):
            raise UnsafeAdapter(f"{where}: the head has {got[0] if got else 0} outputs but zoo.json lists {outputs} "
                                f"labels ({name} {got}); the folder is inconsistent, publish it again")
        if owner_path == last:
            want = (outputs, *want[1:])
        if got != want:
            raise AdapterBaseMismatch(f"{where}: {name} has shape {got}, where the base's module needs {want}")
        owner = module.get_submodule(owner_path) if owner_path else module
        setattr(owner, attr, nn.Parameter(state[name], requires_grad=False))
        if isinstance(owner, nn.Linear) and attr == "weight":
            owner.out_features, owner.in_features = state[name].shape
    for name, buf in list(module.named_buffers()):
        if buf.is_meta:
            raise UnsupportedAdapter(f"{where}: block has buffer {name} that the adapter does not carry")
    return module.eval()


def check_head(layout: BaseLayout, state: dict, labels: tuple, where: str) -> nn.Module:
    """The adapter's classification head: the base's head template with the adapter's tensors, one output per label."""
    if layout.head_template is None:
        raise AdapterBaseMismatch(f"{where}: base {layout.base_id!r} has no classification head to serve it with")
    return materialize(layout.head_template, state, where, outputs=len(labels))


def split_head(state: dict, layout: BaseLayout, prefix: str, causal: bool = False) -> tuple[dict, dict]:
    """(head tensors, the rest) with ``prefix`` stripped; a causal adapter has no head of its own."""
    head, rest = {}, {}
    lead = prefix + layout.head_path + "." if not causal else None
    for k, v in state.items():
        if lead is not None and k.startswith(lead):
            head[k[len(lead):]] = v
        else:
            rest[k[len(prefix):] if prefix and k.startswith(prefix) else k] = v
    return head, rest


def head_of(layout: BaseLayout, state: dict, record: AdapterRecord, where: str) -> nn.Module | None:
    """The adapter's own classification head (None for a causal adapter: the base's LM head serves it)."""
    if record.causal:
        return None
    return check_head(layout, state, record.labels, where)




def linear_parts(rest: dict, layout: BaseLayout, where: str, suffixes: tuple[str, ...], what: str) -> dict[str, dict]:
    """Tensors grouped by the Linear layer they adapt: {path: {suffix: tensor}}; every tensor must end with one
    of ``suffixes`` and adapt an ``nn.Linear`` / ``Conv1D`` of the base (not the LM head)."""
    by_module: dict[str, dict] = {}
    for k, v in rest.items():
        suffix = next((s for s in suffixes if k.endswith(s)), None)
        if suffix is None:
            raise UnsupportedAdapter(f"{where}: unexpected tensor {k!r} (trained biases or extra modules are not served)")
        by_module.setdefault(k[: -len(suffix)], {})[suffix] = v
    for path in by_module:
        if path not in layout.linears and path in layout.module_types:
            raise UnsupportedAdapter(
                f"{where}: it adapts {path!r}, a {layout.module_types[path]}; the registry serves {what} "
                "on nn.Linear / Conv1D layers other than the LM head (load this adapter alone with zoo.serve.loading.load_folder)"
            )
        if path not in layout.linears:
            raise AdapterBaseMismatch(f"{where}: it adapts module {path!r}, which base {layout.base_id!r} does not have")
    return by_module


def check_served_fields(config: dict, allowed: dict, where: str, peft_type: str) -> None:
    """Serve only what the registry's routing implements: every field of ``adapter_config.json`` must be in
    ``allowed`` (field -> test of its value). Anything else raises UnsupportedAdapter naming the field, and
    the loader falls back to plain PEFT on a base of its own."""
    for key, value in config.items():
        test = allowed.get(key)
        if test is None:
            raise UnsupportedAdapter(f"{where}: {peft_type} field {key}={str(value)[:40]!r} is not one the registry "
                                     "implements; served by PEFT on a base of its own")
        if not test(value):
            raise UnsupportedAdapter(f"{where}: {peft_type} with {key}={str(value)[:40]!r} is not served by the registry; "
                                     "served by PEFT on a base of its own")
