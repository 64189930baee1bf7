"""IA3, with PEFT's ``IA3Config``: learned vectors that rescale activations.

- Training: ``get_peft_model``. Saved: a plain PEFT adapter.
- Served: per Linear, a vector that scales the layer's input (feed-forward modules) or its output
  (attention projections), per row, in ``zoo.serve.routing.RoutedLinear``.
- Fields outside ``SERVED_FIELDS`` load through PEFT on a base of its own.
"""

from __future__ import annotations

import re

from peft import IA3Config

import zoo.methods.peft_common as peft_common
from zoo.errors import AdapterBaseMismatch
from zoo.methods.base import Method, any_value
from zoo.methods.served import (
    AdapterWeights,
    check_served_fields,
    head_of,
    linear_parts,
    split_head,
)
from zoo.models.layers import linear_features

SERVED_FIELDS = {
    **peft_common.METADATA_FIELDS,
    **{key: any_value for key in ("target_modules", "exclude_modules", "feedforward_modules", "fan_in_fan_out",
                                  "init_ia3_weights")},
    "modules_to_save": peft_common.head_only,
}


def is_feedforward(config: dict, path: str) -> bool:
    """PEFT's rule: a module listed in (or matching) feedforward_modules scales its input, others their output."""
    ff = config.get("feedforward_modules") or []
    if isinstance(ff, str):
        return bool(re.fullmatch(ff, path))
    return any(path.endswith(k) for k in ff)


def read(state: dict, record, layout, where: str, folder) -> AdapterWeights:
    config = peft_common.read_config(folder, record, "IA3", where)
    check_served_fields(config, SERVED_FIELDS, where, "IA3")
    head_state, rest = split_head(state, layout, "base_model.model.", record.causal)
    linear = {}
    for path, parts in linear_parts(rest, layout, where, (".ia3_l",), "IA3").items():
        in_features, out_features = linear_features(layout.linears[path])
        vec = parts[".ia3_l"]
        ff = is_feedforward(config, path)
        want = (1, in_features) if ff else (out_features, 1)
        if tuple(vec.shape) != want:
            raise AdapterBaseMismatch(f"{where}: {path}.ia3_l has shape {tuple(vec.shape)}, base {layout.base_id!r} needs {want}")
        linear[path] = ("ia3", vec.flatten().contiguous(), ff)
    return AdapterWeights(record, folder, head_of(layout, head_state, record, where), linear=linear)


def _defaults(task_type: str = "SEQ_CLS"):

    return IA3Config(task_type=task_type)


IA3 = Method(
    name="ia3", title="IA3", summary="learned vectors that rescale the activations of chosen layers",
    config="IA3Config", peft_type="IA3", weights=peft_common.PEFT_WEIGHTS,
    prepare=peft_common.prepare, save=peft_common.save, load_alone=peft_common.load_alone, read=read,
    served_fields=SERVED_FIELDS, usage=peft_common.usage, defaults=_defaults,
)
