"""What every PEFT method shares: get_peft_model for training, save_pretrained, PeftModel.from_pretrained
for a model of its own, and the checks of ``adapter_config.json`` before the registry reads tensors.

A PEFT adapter is published as PEFT writes it (``adapter_config.json`` + ``adapter_model.safetensors``,
a classification head inside it), so ``PeftModel.from_pretrained`` loads it without adapter-zoo.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from peft import PeftConfig, PeftModel, TaskType, get_peft_model, get_peft_model_state_dict
from safetensors import safe_open

from zoo.artifact.record import PEFT_WEIGHTS, AdapterRecord, check_safe_folder
from zoo.data.bases import same_base
from zoo.data.sources import ResolvedModel, resolve_model
from zoo.errors import AdapterBaseMismatch, RecipeError, UnsafeAdapter, ZooError
from zoo.methods.base import any_value
from zoo.models.causal import load_base_causal
from zoo.models.classifier import load_base_classifier

# Fields of every PEFT config that describe the adapter, not its computation.
METADATA_FIELDS = {key: any_value for key in (
    "peft_type", "task_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode")}
HEADS = ("classifier", "score")  # modules_to_save that PEFT sets for SEQ_CLS: the head the registry serves per adapter


def head_only(value) -> bool:
    """modules_to_save names nothing but the classification head (which the registry serves per adapter)."""
    return value is None or (isinstance(value, list) and all(v in HEADS for v in value))


def prepare(model, config: PeftConfig, task_type: str):
    """get_peft_model with the recipe's config (its task_type filled in from the recipe's task)."""
    if config.task_type is None:
        config = dataclasses.replace(config, task_type=TaskType(task_type))
    elif config.task_type != task_type:  # TaskType is a str enum: "SEQ_CLS" compares equal
        raise RecipeError(f"method.task_type is {config.task_type!r}; this recipe needs {task_type}")
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        raise RecipeError(f"method ({type(config).__name__}) does not fit {type(model).__name__}: {e}") from None


def save(model, config, folder: Path, tokenizer) -> str:
    """PEFT's own save: adapter_config.json and adapter_model.safetensors.

    ``save_embedding_layers=False``: the zoo never resizes a base's vocabulary, and PEFT's "auto" finds that out
    by asking the Hub for the base's config.json (a network call per save, a warning offline, a wait where the
    Hub is firewalled), or copies a whole embedding matrix into the adapter when a recipe targets it."""
    model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
    return PEFT_WEIGHTS


def load_alone(base: ResolvedModel, folder: Path, record: AdapterRecord, dtype=None):
    """PeftModel.from_pretrained on a base of its own (QLoRA adapters on the full-precision base)."""
    check_safe_folder(folder, PEFT_WEIGHTS)
    if record.causal:
        model, tokenizer = load_base_causal(base, dtype=dtype)
    else:
        model, tokenizer = load_base_classifier(base, record.labels, dtype=dtype)
    where = f"adapter {record.name!r} ({folder})"
    check_config_base(_config(folder, where), record, where)
    try:
        model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise AdapterBaseMismatch(f"{folder}: {record.method} adapter does not fit base {base.model_id!r}: {e}") from None
    # PEFT ignores tensors it has no place for; the zoo refuses them (an adapter is exactly what it holds).
    with safe_open(str(folder / PEFT_WEIGHTS), framework="pt") as f:
        unused = sorted(set(f.keys()) - set(get_peft_model_state_dict(model)))
    if unused:
        raise UnsafeAdapter(f"{where}: tensors {unused[:4]} have no place in the {record.method} adapter PEFT builds "
                            "from its adapter_config.json; the folder is inconsistent, publish it again")
    return model.eval(), tokenizer


def _config(folder: Path, where: str) -> dict:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnsafeAdapter(f"{where}: adapter_config.json is missing or not JSON ({e})") from None
    if not isinstance(config, dict):
        raise UnsafeAdapter(f"{where}: adapter_config.json must hold a JSON object")
    return config


def check_config_base(config: dict, record: AdapterRecord, where: str) -> None:
    """adapter_config.json's base_model_name_or_path names zoo.json's base: the same Hub id (either form), or
    the folder that base resolves to on this machine (what PEFT wrote before the zoo recorded ids)."""
    value = config.get("base_model_name_or_path")
    if value is None or value == "" or (isinstance(value, str) and same_base(value, record.base_model)):
        return
    if isinstance(value, str) and value.startswith("/"):
        try:
            here = resolve_model(record.base_model).path
        except ZooError:
            here = None
        if here is not None and Path(value).resolve() == Path(here).resolve():
            return
    raise UnsafeAdapter(f"{where}: adapter_config.json's base_model_name_or_path {str(value)[:80]!r} disagrees with "
                        f"zoo.json's base_model {record.base_model!r}; the folder is inconsistent (set "
                        "base_model_name_or_path to the base's Hub id, or publish it again)")


def read_config(folder: Path, record: AdapterRecord, peft_type: str, where: str) -> dict:
    """adapter_config.json, agreeing with zoo.json on the base, the method and the task type."""
    config = _config(folder, where)
    check_config_base(config, record, where)
    if config.get("peft_type") != peft_type:
        raise UnsafeAdapter(f"{where}: zoo.json says {record.method!r} but adapter_config.json says {config.get('peft_type')!r}")
    if config.get("task_type") not in (None, record.task_type):
        raise UnsafeAdapter(f"{where}: zoo.json says task_type {record.task_type!r} but adapter_config.json says "
                            f"{config.get('task_type')!r}; the folder is inconsistent, publish it again")
    return config


def usage(causal: bool) -> str:
    """The card's section on loading a PEFT adapter without adapter-zoo."""
    if causal:
        return '''With plain PEFT (no adapter-zoo needed):

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{{ m.base_model }}"), "path/to/this/folder").eval()
tokenizer = AutoTokenizer.from_pretrained("{{ m.base_model }}")
```'''
    return '''With plain PEFT (no adapter-zoo needed; the classification head is inside the adapter):

```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer
base = AutoModelForSequenceClassification.from_pretrained("{{ m.base_model }}", num_labels={{ m.labels | length }})
model = PeftModel.from_pretrained(base, "path/to/this/folder").eval()
tokenizer = AutoTokenizer.from_pretrained("{{ m.base_model }}")
```'''
