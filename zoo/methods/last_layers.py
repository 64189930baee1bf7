"""Last-layers fine-tuning (``LastLayers(num_layers)``), a baseline: the top transformer blocks are trained,
with the head (classifiers) or the final norm (causal LMs; the tied embeddings stay frozen).

- Saved: only the trained tensors, in ``trained_layers.safetensors``, to be laid over the base.
- Served: the registry wraps each replaceable block; rows of such an adapter run through its own
  copy of the block (``zoo.serve.routing.RoutedBlock``), other rows through the shared one.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from zoo.artifact.record import LAST_LAYERS_WEIGHTS, AdapterRecord, check_safe_folder
from zoo.config.recipe import LastLayers
from zoo.errors import (
    AdapterBaseMismatch,
    RecipeError,
    UnsafeAdapter,
    UnsupportedAdapter,
)
from zoo.methods.base import Method
from zoo.methods.served import AdapterWeights, head_of, materialize, split_head
from zoo.models.causal import load_base_causal
from zoo.models.classifier import load_base_classifier
from zoo.models.layers import (
    causal_trained_names,
    head_parameter_names,
    transformer_layers,
)


def prepare(model, config: LastLayers, task_type: str):
    layers = transformer_layers(model)
    if config.num_layers > len(layers):
        raise RecipeError(f"method.num_layers={config.num_layers} but the base has only {len(layers)} layers")
    for p in model.parameters():
        p.requires_grad_(False)
    params = dict(model.named_parameters())
    if task_type == "CAUSAL_LM":
        for n in causal_trained_names(model, config.num_layers):
            params[n].requires_grad_(True)
        return model
    for layer in layers[len(layers) - config.num_layers:] if config.num_layers else []:
        for p in layer.parameters():
            p.requires_grad_(True)
    for n in head_parameter_names(model):
        params[n].requires_grad_(True)
    return model


def save(model, config, folder: Path, tokenizer) -> str:
    trained = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(folder / LAST_LAYERS_WEIGHTS), metadata={"format": "pt", "zoo_method": "last-layers"})
    return LAST_LAYERS_WEIGHTS


def read(state: dict, record: AdapterRecord, layout, where: str, folder) -> AdapterWeights:
    head_state, rest = split_head(state, layout, "", record.causal)
    blocks = {}
    for path, template in layout.blocks.items():
        lead = path + "."
        sub = {k[len(lead):]: v for k, v in rest.items() if k.startswith(lead)}
        if not sub:
            continue
        try:
            block = materialize(template, sub, f"{where}, block {path}")
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
    return AdapterWeights(record, folder, head_of(layout, head_state, record, where), blocks=blocks)


def load_alone(base, folder: Path, record: AdapterRecord, dtype=None):
    check_safe_folder(folder, LAST_LAYERS_WEIGHTS)
    if record.causal:
        model, tokenizer = load_base_causal(base, dtype=dtype)
    else:
        model, tokenizer = load_base_classifier(base, record.labels, dtype=dtype)
    state = load_file(str(folder / LAST_LAYERS_WEIGHTS))
    own = dict(model.named_parameters())
    unknown = [k for k in state if k not in own]
    bad = [k for k in state if k in own and own[k].shape != state[k].shape]
    if unknown or bad:
        raise AdapterBaseMismatch(
            f"{folder}: trained layers do not fit base {base.model_id!r} "
            f"(unknown tensors {unknown[:3]}, wrong shapes {bad[:3]}); was it trained on {record.base_model!r}?"
        )
    model.load_state_dict(state, strict=False)
    return model.eval(), tokenizer


def usage(causal: bool) -> str:
    auto, what = ("AutoModelForCausalLM", "the trained top layers and final norm") if causal else \
        ("AutoModelForSequenceClassification", "the trained top layers and head")
    labels = "" if causal else ", num_labels={{ m.labels | length }}"
    return f'''With plain transformers (this folder holds only {what}, laid over the base):

```python
from safetensors.torch import load_file
from transformers import {auto}, AutoTokenizer
model = {auto}.from_pretrained("{{{{ m.base_model }}}}"{labels})
model.load_state_dict(load_file("path/to/this/folder/{{{{ m.weights }}}}"), strict=False)
tokenizer = AutoTokenizer.from_pretrained("{{{{ m.base_model }}}}")
```'''


LAST_LAYERS = Method(
    name="last-layers", title="last layers", summary="the top transformer blocks and the head (or final norm) are trained (baseline)",
    config=LastLayers.__name__, weights=LAST_LAYERS_WEIGHTS, library="transformers",
    prepare=prepare, save=save, load_alone=load_alone, read=read, usage=usage,
    defaults=lambda task_type="SEQ_CLS": LastLayers(num_layers=1),
)
