"""Linear probe (``LinearProbe()``), a baseline: the encoder stays frozen and only the classification head
is trained, the head transformers puts on the base (BERT's pooler and classifier; RoBERTa's dense and
out_proj). It says how much of a task the pretrained features already hold: the floor every
parameter-efficient method should clear.

- Saved: only the head's tensors, in ``trained_layers.safetensors`` (the file last-layers writes, with no blocks).
- Served: on the shared base, its own head (and BERT's pooler, routed per row like a last-layers block).
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from zoo.artifact.record import LAST_LAYERS_WEIGHTS
from zoo.config.recipe import LastLayers, LinearProbe
from zoo.errors import RecipeError
import zoo.methods.last_layers as last_layers
from zoo.methods.base import Method


def prepare(model, config: LinearProbe, task_type: str):
    if task_type == "CAUSAL_LM":
        raise RecipeError("a linear probe trains a classification head; on a causal LM use last-layers, a PEFT "
                          "method or InContext()")
    return last_layers.prepare(model, LastLayers(num_layers=0), task_type)


def save(model, config, folder: Path, tokenizer) -> str:
    trained = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(folder / LAST_LAYERS_WEIGHTS), metadata={"format": "pt", "zoo_method": "linear-probe"})
    return LAST_LAYERS_WEIGHTS


def usage(causal: bool) -> str:
    return '''With plain transformers (this folder holds only the trained head, laid over the frozen base):

```python
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("{{ m.base_model }}", num_labels={{ m.labels | length }})
model.load_state_dict(load_file("path/to/this/folder/{{ m.weights }}"), strict=False)
tokenizer = AutoTokenizer.from_pretrained("{{ m.base_model }}")
```'''


LINEAR_PROBE = Method(
    name="linear-probe", title="linear probe", summary="only the classification head is trained on the frozen encoder (baseline)",
    config=LinearProbe.__name__, weights=LAST_LAYERS_WEIGHTS, library="transformers",
    prepare=prepare, save=save, load_alone=last_layers.load_alone, read=last_layers.read, usage=usage,
    defaults=lambda task_type="SEQ_CLS": LinearProbe(),
)
