"""Prefix tuning (``PrefixTuningConfig``): learned keys and values prepended at every attention layer.

- Training: ``get_peft_model``. Saved: a plain PEFT adapter whose ``prompt_embeddings`` are the
  (n, layers x 2 x kv-heads x head size) past keys and values (the projection, if any, already applied).
- Served: rows with an n-position prefix share one forward pass (``("prefix", n)`` group) with a
  per-row ``DynamicCache``, laid out as PEFT lays it out.
"""

from __future__ import annotations

from peft import PrefixTuningConfig

import zoo.methods.peft_common as peft_common
from zoo.errors import AdapterBaseMismatch
from zoo.methods.base import Method, any_value
from zoo.methods.prompt import SHARED_FIELDS, virtual_embeddings
from zoo.methods.served import AdapterWeights, head_of

SERVED_FIELDS = {**SHARED_FIELDS, **{key: any_value for key in ("init_weights", "encoder_hidden_size", "prefix_projection")}}


def read(state: dict, record, layout, where: str, folder) -> AdapterWeights:
    _, head_state, emb = virtual_embeddings(state, record, layout, where, folder, "PREFIX_TUNING", SERVED_FIELDS)
    want = layout.prefix_width
    if emb.shape[1] != want:
        raise AdapterBaseMismatch(
            f"{where}: prefix width {emb.shape[1]} does not fit base {layout.base_id!r} ({layout.num_layers} layers "
            f"x 2 x {layout.prefix_heads} key/value heads x head size {layout.prefix_head_dim} = {want})"
        )
    return AdapterWeights(record, folder, head_of(layout, head_state, record, where), prefix=emb,
                          prefix_shape=(layout.num_layers * 2, layout.prefix_heads, layout.prefix_head_dim))


def _defaults(task_type: str = "SEQ_CLS"):

    return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=8)


PREFIX_TUNING = Method(
    name="prefix-tuning", title="prefix tuning", summary="learned keys and values prepended at every attention layer",
    config="PrefixTuningConfig", peft_type="PREFIX_TUNING", weights=peft_common.PEFT_WEIGHTS,
    prepare=peft_common.prepare, save=peft_common.save, load_alone=peft_common.load_alone, read=read,
    served_fields=SERVED_FIELDS, usage=peft_common.usage, defaults=_defaults,
)
