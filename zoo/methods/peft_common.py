"""What every PEFT method shares: get_peft_model for training, save_pretrained, PeftModel.from_pretrained
for a model of its own, and the checks of ``adapter_config.json`` before the registry reads tensors.

A PEFT adapter is published as PEFT writes it (``adapter_config.json`` + ``adapter_model.safetensors``,
a classification head inside it), so ``PeftModel.from_pretrained`` loads it without adapter-zoo.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from peft import PeftConfig, PeftModel, TaskType, get_peft_model, get_peft_model_state_dict
from safetensors import safe_open

from zoo.artifact.record import PEFT_WEIGHTS, AdapterRecord, check_safe_folder
from zoo.data.bases import same_base
from zoo.data.sources import ResolvedModel, resolve_model
from zoo.data.untrusted import finite, read_json
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


# Fields PEFT reads as regular expressions (a str target_modules is matched with re.fullmatch; layers_pattern is
# put inside one), and the dicts whose keys it matches as patterns. A stranger's pattern runs over every module
# name of the base, in PEFT (a base of its own) and in the registry's routing alike.
REGEX_FIELDS = ("target_modules", "exclude_modules", "feedforward_modules", "layers_pattern")
PATTERN_DICTS = ("rank_pattern", "alpha_pattern")
MAX_PATTERN_CHARS = 512
MAX_REPEATS = 3  # '.*' and the like; k of them cost O(len(name)**k) steps per module name
# rank_pattern / alpha_pattern: every key is tried on every adapted module, inside PEFT's own '(.*\.)?(KEY)$' (one
# repetition more), so fewer of them and fewer repetitions each. Measured here over 1,050 module names with keys
# that never match: 64 keys of one repetition 0.06 s; 64 of three 1.9 s; 4,096 of three (allowed before) ~380 s
MAX_PATTERN_KEYS = 64
MAX_KEY_REPEATS = 1
# Sizes PEFT allocates from before it reads a tensor (r x features per layer, virtual tokens x hidden...).
SIZE_FIELDS = {"r": 1 << 12, "num_virtual_tokens": 1 << 12, "encoder_hidden_size": 1 << 16, "token_dim": 1 << 16,
               "num_layers": 1 << 10, "num_attention_heads": 1 << 10, "num_transformer_submodules": 4}
MAX_SCALE = 1e6  # lora_alpha and alpha_pattern's values: LoRA scales by alpha / r


def pattern_problem(pattern, repeats: int = MAX_REPEATS) -> str | None:
    """What makes ``pattern`` unsafe to run over module names (catastrophic backtracking, an invalid expression, a
    huge text); None: nothing. Allowed: any expression without a repeated group and with at most 3 repetitions."""
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN_CHARS:
        return f"must be a text of 1 to {MAX_PATTERN_CHARS} characters"
    bare = re.sub(r"\\.", "", pattern)  # escaped characters are literals
    if re.search(r"\)\s*[*+?{]", bare):
        return "repeats a group (as in '(a+)+'), which can take exponential time; name the modules instead"
    if len(re.findall(r"[*+{]|(?<!\()\?", bare)) > repeats:
        return (f"has more than {repeats} repetition{'s' if repeats != 1 else ''} ('*', '+', '?', '{{}}'); name the "
                "modules instead")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        return f"is not a regular expression ({str(e)[:80]})"
    return None


def config_problem(config: dict) -> str | None:
    """What makes a stranger's adapter_config.json unsafe to give to PEFT or the registry, before any method looks
    at it: patterns that backtrack, sizes that allocate gigabytes, scales that overflow; None: nothing."""
    for key in REGEX_FIELDS:
        value = config.get(key)
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else None
        if value is not None and (items is None or len(items) > 4096):
            return f"{key} must be a pattern, a list of names, or null"
        for item in items or []:
            problem = pattern_problem(item)
            if problem:
                return f"{key} {str(item)[:40]!r} {problem}"
    for key in PATTERN_DICTS:
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or len(value) > MAX_PATTERN_KEYS:
            return f"{key} must be an object of at most {MAX_PATTERN_KEYS} module patterns -> value"
        for pattern, number in value.items():
            problem = pattern_problem(pattern, MAX_KEY_REPEATS)
            if problem:
                return f"{key} key {str(pattern)[:40]!r} {problem}"
            limit = SIZE_FIELDS["r"] if key == "rank_pattern" else MAX_SCALE
            if not finite(number) or not -limit <= number <= limit:
                return f"{key}[{str(pattern)[:40]!r}] must be a number of at most {limit:g} in size"
    for key, limit in SIZE_FIELDS.items():
        value = config.get(key)
        if value is not None and not (finite(value) and 0 <= value <= limit):
            return f"{key} must be a number from 0 to {limit}"
    alpha = config.get("lora_alpha")
    if alpha is not None and not (finite(alpha) and abs(alpha) <= MAX_SCALE):
        return f"lora_alpha must be a number of at most {MAX_SCALE:g} in size"
    return None


def _config(folder: Path, where: str) -> dict:
    try:
        config = read_json(folder / "adapter_config.json", f"{where}: adapter_config.json", UnsafeAdapter,
                           limit=1 << 20)
    except OSError as e:
        raise UnsafeAdapter(f"{where}: adapter_config.json is missing or cannot be read ({e.strerror or e})") from None
    if not isinstance(config, dict):
        raise UnsafeAdapter(f"{where}: adapter_config.json must hold a JSON object")
    problem = config_problem(config)
    if problem:
        raise UnsafeAdapter(f"{where}: adapter_config.json's {problem}")
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
