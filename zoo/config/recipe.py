"""Recipes: one plain Python file per task x method, exporting ``recipe = Recipe(...)``.

Example:
    >>> from zoo.config.overrides import apply_overrides
    >>> r = apply_overrides(load_recipe("recipes/sst2_lora.py"), ["train.epochs=1", "method.r=16"])
    >>> r.name, r.method_name, r.train.epochs, r.method.r
    ('sst2-lora', 'lora', 1.0, 16)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import numbers
import re
import sys
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from zoo.config.generation import (
    MAX_POSITIONS,
    GenerationArgs,
    check_numbers,
    number_problem,
    numeric_kind,
)
from zoo.config.prompts import PromptFormat
from zoo.data.tasks import data_fingerprint, get_task
from zoo.errors import RecipeError, UnknownMethod

_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass
class FullFineTuning:
    """Baseline: every weight of the base model and the head is trained (no PEFT)."""

    zoo_method: ClassVar[str] = "full"


@dataclass
class LastLayers:
    """Baseline: the classification head plus the top ``num_layers`` transformer layers are trained."""

    zoo_method: ClassVar[str] = "last-layers"
    num_layers: int = field(default=2, metadata={"help": "how many of the top transformer layers to train",
                                                  "range": ">= 0"})

    def __post_init__(self):
        check_numbers(self, "method.")


@dataclass
class LinearProbe:
    """Baseline: the encoder stays frozen and only the classification head is trained (what the course
    reports called "frozen embeddings": how much a task is already in the pretrained features)."""

    zoo_method: ClassVar[str] = "linear-probe"


@dataclass
class InContext:
    """Baseline: no training; the base model answers from its prompt (zero-shot, or k-shot with
    ``prompt.shots`` solved training examples, and an optional persona in ``prompt.system``)."""

    zoo_method: ClassVar[str] = "icl"


def method_name(method: Any) -> str:
    """The short name of a recipe's method, by one rule: the zoo's baselines say theirs, and a PEFT config is named
    after its ``peft_type`` in kebab case (``LoraConfig`` -> ``lora``, ``PromptEncoderConfig`` -> ``p-tuning``).
    Whether the zoo trains that method is ``zoo.methods``' to say (its list is the one list of methods).

        >>> method_name(LastLayers(num_layers=1))
        'last-layers'
    """
    own = getattr(type(method), "zoo_method", None)
    if isinstance(own, str):
        return own
    peft_type = getattr(method, "peft_type", None)
    if peft_type is not None and type(method).__name__.endswith("Config"):
        return str(getattr(peft_type, "value", peft_type)).lower().replace("_", "-")
    raise UnknownMethod(f"unknown method {type(method).__name__}: {method!r:.80}; use a PEFT config (LoraConfig, "
                        "IA3Config, ...) or one of the zoo's baselines: FullFineTuning(), LastLayers(n), LinearProbe(), "
                        "InContext()")


@dataclass
class TrainArgs:
    """Training settings, passed to transformers' Trainer. Each number's ``range`` is checked (with its
    kind: an integer, or a finite number; never a bool) when it is set, by ``zoo.config.generation.check_numbers``."""

    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (linear decay)", "range": "> 0"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training set", "range": "[0, 1e6]"})
    batch_size: int = field(default=16, metadata={"help": "examples per optimisation step and device", "range": ">= 1"})
    eval_batch_size: int = field(default=64, metadata={"help": "examples per evaluation batch", "range": ">= 1"})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "batches summed per optimiser step", "range": ">= 1"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay", "range": ">= 0"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "fraction of steps spent warming up", "range": "[0, 1)"})
    max_grad_norm: Optional[float] = field(
        default=1.0, metadata={"help": "gradient clipping norm; None: off", "range": ">= 0"})
    early_stopping_patience: Optional[int] = field(
        default=None, metadata={"help": "stop after this many evaluations without improvement; None: off", "range": ">= 1"}
    )
    eval_steps: Optional[int] = field(
        default=None, metadata={"help": "evaluate (and checkpoint) every N steps; None: once per epoch", "range": ">= 1"}
    )
    # Bounded again at training time by the base's positions (zoo.training.common.check_positions).
    max_length: int = field(default=128, metadata={"help": "tokens per example after truncation",
                                                   "range": f"[1, {MAX_POSITIONS}]"})
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "train on a seeded sample; None: all", "range": ">= 0"})
    max_eval_samples: Optional[int] = field(
        default=None, metadata={"help": "evaluate on a sample; None: all", "range": ">= 0"})
    max_generate_samples: int = field(
        default=200, metadata={"help": "causal LMs: validation examples answered by generation (accuracy, ROUGE)",
                               "range": ">= 0"})
    max_steps: int = field(
        default=-1, metadata={"help": "stop after N optimiser steps; -1: run all epochs", "range": "-1 or >= 1"})
    group_by_length: bool = field(
        default=True, metadata={"help": "batch examples of similar length together (less padding, faster)"}
    )
    # bench/train_speed.py, SST-2 LoRA, 4,000 examples, 3 seeds: groups of 50 batches (transformers' default) trained
    # 2.3x the tutorial's examples/s but 1.1 points below its accuracy; groups of 4 are 1.8x and level with it.
    length_group_batches: int = field(
        default=4, metadata={"help": "with group_by_length: batches per group sorted by length (transformers: 50); "
                                     "fewer mix lengths more across batches (accuracy), more save padding (speed)",
                             "range": ">= 1"})
    logging_steps: int = field(default=50, metadata={"help": "log the loss every N steps", "range": ">= 1"})
    save_total_limit: int = field(default=1, metadata={"help": "checkpoints kept for --resume", "range": ">= 1"})
    bf16: bool = field(
        default=False, metadata={"help": "bfloat16 autocast: CUDA with bf16, or a CPU with native bf16 (AMX, AVX512-BF16); "
                                         "on a CPU with AMX it paid on long inputs; without AMX it doubled a step (bench/train_speed.py)"})
    base_dropout: Optional[float] = field(
        default=None, metadata={"help": "the base model's own dropout while training (every dropout probability in its "
                                        "config: hidden, attention, head); None: the base's; the method's (lora_dropout) "
                                        "is apart. On a CPU, dropout masks are a large share of a short "
                                        "batch's step (bench/train_speed.py)", "range": "[0, 1)"})
    exact_shortcuts: bool = field(
        default=True, metadata={"help": "while training, compute the same function with less work: LoRA added inside "
                                        "the base layer's matrix product (zoo.training.fused_lora), and a BERT or "
                                        "RoBERTa classifier's last layer for the first token only, the one its head "
                                        "reads (zoo.training.first_token); false: PEFT's and transformers' own forward"})
    bf16_base: bool = field(
        default=False, metadata={"help": "the frozen base's linear layers multiply in bfloat16 while training (their "
                                         "weights cast once; the trained weights (LoRA, a head, top layers), their "
                                         "gradients and the optimizer stay float32; evaluation and the published "
                                         "adapter use the float32 base). Only where bf16 matrix products are native (a "
                                         "CPU with AMX or AVX512-BF16, a CUDA GPU with bf16); elsewhere the run says "
                                         "so and stays float32. SST-2 LoRA on MiniLM: 1.4x the examples/s, same "
                                         "accuracy (bench/train_speed.py)"})
    class_weights: Optional[str] = field(
        default=None, metadata={"help": "classifiers: 'balanced' weights each class's loss by n / (classes x its "
                                        "training count), for skewed labels and macro-F1; None: plain cross-entropy"})
    tune_offsets: bool = field(
        default=False, metadata={"help": "classifiers: after training, add to each class's logit the offset (in the "
                                         "head's bias, so the adapter stays plain PEFT) whose argmax scores best on the "
                                         "task's official metric over a seeded sample of up to 10,000 training "
                                         "examples; validation is not used. For macro-F1 over skewed labels "
                                         "(zoo.data.metrics.tune_offsets)"})

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field within its range (see the fields' metadata), and epochs or max_steps set."""
        check_numbers(self, "train.")
        if self.epochs == 0 and self.max_steps < 1:
            raise RecipeError("train.epochs must be > 0 (or set train.max_steps)")
        if self.class_weights not in (None, "balanced"):
            raise RecipeError(f"train.class_weights must be 'balanced' or None, got {self.class_weights!r:.40}")


# PEFT configs' numbers that the zoo's methods use: name -> (kind, range, None allowed). PEFT checks few of them
# itself; unchecked, r=0 is a traceback minutes into a run and lora_dropout=nan an adapter of NaNs. Any other field
# PEFT declares as a number is checked for its kind (None where PEFT's default is None) and finiteness.
PEFT_NUMBERS = {
    "r": (int, ">= 1", False), "lora_alpha": (float, "> 0", False), "alpha": (float, "> 0", False),
    "lora_dropout": (float, "[0, 1)", False), "rank_dropout": (float, "[0, 1)", False),
    "module_dropout": (float, "[0, 1)", False), "encoder_dropout": (float, "[0, 1)", False),
    "num_virtual_tokens": (int, f"[1, {MAX_POSITIONS}]", False), "encoder_num_layers": (int, ">= 1", False),
    "qalora_group_size": (int, ">= 1", False), "layers_to_transform": (int, ">= 0", True),
    # None: PEFT fills these in from the base (the prompt encoder's width: from token_dim)
    "encoder_hidden_size": (int, ">= 1", True), "token_dim": (int, ">= 1", True),
    "num_transformer_submodules": (int, ">= 1", True), "num_attention_heads": (int, ">= 1", True),
    "num_layers": (int, ">= 1", True),
}
_PATTERNS = {"rank_pattern": "r", "alpha_pattern": "lora_alpha"}  # per-module values of these fields


def check_method_numbers(config: Any) -> None:
    """A method config's numbers, by ``PEFT_NUMBERS`` and the config's own declarations (zoo baselines: their metadata)."""
    if not dataclasses.is_dataclass(config):
        return
    if getattr(type(config), "zoo_method", None):  # the zoo's baselines declare their ranges themselves
        check_numbers(config, "method.")
        return
    try:
        hints = typing.get_type_hints(type(config))
    except (NameError, TypeError):  # a declaration this Python cannot resolve: the named fields are still checked
        hints = {}
    for f in dataclasses.fields(config):
        value, name = getattr(config, f.name), f"method.{f.name}"
        if f.name in _PATTERNS and isinstance(value, dict):
            kind, spec, _ = PEFT_NUMBERS[_PATTERNS[f.name]]
            checks = [(f"{name}[{k!r}]", v, kind, spec, False) for k, v in value.items()]
        elif f.name in PEFT_NUMBERS:
            kind, spec, optional = PEFT_NUMBERS[f.name]
            many = isinstance(value, (list, tuple)) and f.name == "layers_to_transform"
            checks = [(f"{name}[{i}]", v, kind, spec, False) for i, v in enumerate(value)] if many else \
                     [(name, value, kind, spec, optional)]
        else:
            kind, optional = numeric_kind(hints.get(f.name))
            checks = [(name, value, kind, "", optional or f.default is None)] if kind in (int, float) else []
        for where, v, kind, spec, optional in checks:
            problem = number_problem(v, kind, spec, optional=optional)
            if problem:
                raise RecipeError(f"{where} {problem}")


def first_non_finite(value: Any, path: str, depth: int = 0) -> Optional[tuple[str, Any]]:
    """(dotted path, value) of the first NaN or infinity anywhere in ``value`` (dataclasses, dicts, lists, to_dict())."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return None if math.isfinite(value) else (path, value)
    if depth > 8 or isinstance(value, (str, bytes, numbers.Number, type(None))):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value) if f.init]
        sep = "."
    elif isinstance(value, dict):
        items, sep = [(f"[{k!r}]", v) for k, v in value.items()], ""
    elif isinstance(value, (list, tuple, set, frozenset)):
        items, sep = [(f"[{i}]", v) for i, v in enumerate(value)], ""
    elif callable(getattr(value, "to_dict", None)):  # e.g. a BitsAndBytesConfig
        return first_non_finite(value.to_dict(), path, depth + 1)
    else:
        return None
    for key, item in items:
        found = first_non_finite(item, f"{path}{sep if path else ''}{key}", depth + 1)
        if found:
            return found
    return None


@dataclass
class Recipe:
    """One adapter to train: which base, which task, which method, how."""

    name: str = field(metadata={"help": "the adapter's short name, <task>-<method> in kebab case"})
    base_model: str = field(metadata={"help": "Hub id (or local folder) of the base model"})
    task: str = field(metadata={"help": "task id, e.g. glue/sst2 (see zoo.data.tasks.TASKS)"})
    method: Any = field(metadata={"help": "a PEFT config (LoraConfig, ...), FullFineTuning(), LastLayers(n), LinearProbe() "
                                               "or InContext()"})
    train: TrainArgs = field(default_factory=TrainArgs, metadata={"help": "training settings"})
    seed: int = field(default=42, metadata={"help": "seed for sampling, initialisation and data order",
                                            "range": "[0, 4294967295]"})  # numpy's seeds are 32-bit
    data_dir: Optional[str] = field(
        default=None, metadata={"help": "local data mirror folder; None: $ZOO_DATA_DIR, else the Hub"}
    )
    description: str = field(default="", metadata={"help": "one line for the card (the recipe's docstring)"})
    prompt: Optional[PromptFormat] = field(
        default=None, metadata={"help": "causal LMs: how an example becomes a prompt (generation tasks and verbalizers)"})
    verbalizer: Optional[dict] = field(
        default=None, metadata={"help": "causal classification: label -> answer word(s); None: the label names"})
    generation: GenerationArgs = field(default_factory=GenerationArgs, metadata={"help": "generation settings"})
    quantization: Any = field(
        default=None, metadata={"help": "a transformers BitsAndBytesConfig: train LoRA over a 4-bit base (QLoRA)"})
    sweep: Optional[dict] = field(
        default=None, metadata={"help": "set by zoo.Sweep: the sweep's name, its grid and this point's values"})

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every check of a recipe: names, task, groups, and every number in it (training calls this again,
        so a recipe changed after it was built is checked too)."""
        if not isinstance(self.name, str) or not _KEBAB.match(self.name):
            raise RecipeError(f"name must be kebab case like 'sst2-lora', got {self.name!r}")
        method = self.method_name
        if not self.name.endswith("-" + method):
            raise RecipeError(f"name {self.name!r} must end with the method, '-{method}' (names are <task>-<method>)")
        if not isinstance(self.base_model, str) or not self.base_model:
            raise RecipeError(f"base_model must be a Hub id or a folder, got {self.base_model!r}")
        task = get_task(self.task)
        if not isinstance(self.train, TrainArgs):
            raise RecipeError(f"train must be TrainArgs(...), got {type(self.train).__name__}")
        if self.prompt is not None and not isinstance(self.prompt, PromptFormat):
            raise RecipeError(f"prompt must be PromptFormat(...), got {type(self.prompt).__name__}")
        if not isinstance(self.generation, GenerationArgs):
            raise RecipeError(f"generation must be GenerationArgs(...), got {type(self.generation).__name__}")
        if self.quantization is not None:
            if type(self.quantization).__name__ != "BitsAndBytesConfig" or not getattr(self.quantization, "load_in_4bit", False):
                raise RecipeError("quantization must be BitsAndBytesConfig(load_in_4bit=True, ...) (QLoRA)")
            if method_name(self.method) != "lora":
                raise RecipeError(f"quantization (QLoRA) goes with LoraConfig, not {type(self.method).__name__}")
        unfrozen = {"full": "trains every weight", "icl": "trains nothing"}.get(method_name(self.method))
        if self.train.bf16_base and unfrozen:
            raise RecipeError(f"train.bf16_base casts the frozen base's layers; {self.name} {unfrozen}: "
                              "leave it out, or use train.bf16 (autocast)")
        if self.train.tune_offsets and self.causal:
            raise RecipeError(f"train.tune_offsets moves a classification head's bias; {self.name} has no head "
                              "(a causal LM answers in words): leave it out")
        if self.train.bf16_base and self.quantization is not None:
            raise RecipeError("train.bf16_base casts a float32 base; a QLoRA base is 4-bit with its own compute dtype "
                              "(quantization.bnb_4bit_compute_dtype): leave it out")
        if self.causal:
            if self.prompt is None:
                raise RecipeError(f"{self.name}: a causal-LM recipe needs prompt=PromptFormat(template=...) "
                                  f"over the task's fields {list(task.fields)}")
            unknown = [f for f in self.prompt.fields if f not in task.fields]
            if unknown:
                raise RecipeError(f"prompt.template uses {unknown}; task {task.name} has fields {list(task.fields)}")
            if isinstance(self.method, FullFineTuning):
                raise RecipeError("full fine-tuning of causal LMs is not a zoo method; use last-layers or a PEFT method")
            if self.train.class_weights is not None:
                raise RecipeError("train.class_weights is for classifiers; a causal LM is trained on its answer tokens")
            if isinstance(self.method, LinearProbe):
                raise RecipeError("a linear probe trains a classification head; on a causal LM use last-layers, "
                                  "a PEFT method or InContext()")
        elif self.verbalizer is not None or self.prompt is not None:
            raise RecipeError("prompt/verbalizer are for causal LMs: use a PEFT config with task_type='CAUSAL_LM' or InContext()")
        if self.verbalizer is not None:
            if task.is_generation or set(self.verbalizer) != set(task.labels):
                raise RecipeError(f"verbalizer must map every label of {task.name} {list(task.labels)} to a word")
        if self.sweep is not None and not (
                isinstance(self.sweep, dict) and set(self.sweep) == {"family", "grid", "point"}
                and isinstance(self.sweep["family"], str) and isinstance(self.sweep["grid"], dict)
                and isinstance(self.sweep["point"], dict) and set(self.sweep["point"]) == set(self.sweep["grid"])):
            raise RecipeError("sweep is set by zoo.Sweep (family, grid, point); leave it out of a recipe")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """No NaN or infinity anywhere, then each group's numbers: their kinds and ranges."""
        found = first_non_finite(self, "")
        if found:
            raise RecipeError(f"{found[0]} must be a finite number, got {found[1]!r}")
        check_numbers(self, "")
        self.train.validate()
        check_numbers(self.generation, "generation.")
        if self.prompt is not None:
            check_numbers(self.prompt, "prompt.")
        check_method_numbers(self.method)

    @property
    def method_name(self) -> str:
        name = method_name(self.method)
        return "qlora" if name == "lora" and self.quantization is not None else name

    @property
    def causal(self) -> bool:
        """Trained (or prompted) as a causal LM: generation tasks, CAUSAL_LM PEFT configs, in-context learning."""

        task_type = getattr(self.method, "task_type", None)
        return (get_task(self.task).is_generation or isinstance(self.method, InContext)
                or str(task_type) == "CAUSAL_LM" or (task_type is None and self.prompt is not None))

    def to_dict(self) -> dict:
        """A JSON-ready description of the recipe (PEFT configs as their own to_dict())."""
        method = self.method.to_dict() if hasattr(self.method, "peft_type") else dataclasses.asdict(self.method)
        return _jsonable({
            "name": self.name,
            "base_model": self.base_model,
            "task": self.task,
            "method": self.method_name,
            "method_config": _jsonable(method),
            "train": dataclasses.asdict(self.train),
            "seed": self.seed,
            "data_dir": self.data_dir,
            "description": self.description,
            "prompt": self.prompt.to_dict() if self.prompt else None,
            "verbalizer": self.verbalizer,
            "generation": self.generation.to_dict(),
            "quantization": self.quantization.to_dict() if self.quantization is not None else None,
            "sweep": self.sweep,
        })


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else str(v)))


def snake_case(name: str) -> str:
    """Recipe file stem for an adapter name: ``sst2-prompt-tuning`` -> ``sst2_prompt_tuning``."""
    return name.replace("-", "_")


# Fields of a PEFT config's to_dict() that say where and with what it ran, not what it trains.
_VOLATILE = ("base_model_name_or_path", "peft_version", "revision", "inference_mode", "auto_mapping")


# Settings added after adapters were built with fingerprints, with their defaults: left out of the hash while at
# their default (which trains what was trained before they existed), so that adding one does not make `zoo train` rebuild the zoo.
_LATER_SETTINGS = (("train", "base_dropout", None), ("train", "bf16_base", False), ("train", "tune_offsets", False))
# Settings that choose how a run computes, not what it trains (the same function, up to float summation order):
# never in the hash.
_HOW_SETTINGS = (("train", "exact_shortcuts"),)


def recipe_fingerprint(recipe: Recipe) -> str:
    """A short hash of everything that decides what a recipe trains (not its description, not where the base
    was read from): two runs with the same fingerprint and the same data train the same adapter."""
    data = recipe.to_dict()
    data.pop("description", None)
    for group, key, default in _LATER_SETTINGS:  # at their default, settings added later leave the built zoo's hashes as they were
        settings = data.get(group) or {}
        value = settings.get(key, default)
        if value == default and type(value) is type(default):
            settings.pop(key, None)
    for group, key in _HOW_SETTINGS:
        (data.get(group) or {}).pop(key, None)
    data["method_config"] = {k: v for k, v in (data.get("method_config") or {}).items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_fingerprint(recipe: Recipe) -> dict:
    """What decides the adapter a run trains: the recipe's hash and its data's (zoo.json "fingerprint"); a build
    skips a recipe whose built adapter has the same. Take it before training: PEFT fills in its config."""
    return {"recipe": recipe_fingerprint(recipe), "data": data_fingerprint(get_task(recipe.task), recipe.data_dir)}


def run_recipe_file(path: str | Path):
    """Import a recipe file by path (a fresh module each time) and return the module; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    module_name = f"_zoo_recipe_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise RecipeError(f"{path}:{e.lineno}: syntax error in recipe: {e.msg}") from None
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None
    except Exception as e:
        raise RecipeError(f"{path}: importing the recipe failed: {type(e).__name__}: {e}") from e
    finally:
        sys.modules.pop(module_name, None)
    return module


def with_docstring(recipe: Recipe, module) -> Recipe:
    """The recipe, its description taken from the file's docstring when it has none of its own."""
    if not recipe.description and module.__doc__:
        return dataclasses.replace(recipe, description=module.__doc__.strip().splitlines()[0])
    return recipe


class RecipeGroup:
    """The base of what stands for several recipes in a recipe file's ``recipe`` (``zoo.Sweep``), so that this
    module can tell it from a Recipe without importing the module that defines it."""


def load_recipe(path: str | Path) -> Recipe:
    """Import a recipe file by path and return its ``recipe`` (the file's docstring fills ``description``).
    A file of several recipes (a family or a sweep) is read with ``zoo.config.family.load_recipes``."""
    module = run_recipe_file(path)
    recipe = getattr(module, "recipe", None)
    if getattr(module, "recipes", None) is not None or isinstance(recipe, RecipeGroup):
        raise RecipeError(f"{path}: defines several recipes (a family or a sweep); pick one with "
                          f"`zoo train {path} --only NAME`, or read them all with zoo.load_recipes")
    if recipe is None:
        raise RecipeError(f"{path}: defines no `recipe`; end the file with `recipe = Recipe(...)`")
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"{path}: `recipe` is a {type(recipe).__name__}, not a zoo.Recipe")
    return with_docstring(recipe, module)


__all__ = ["Recipe", "TrainArgs", "GenerationArgs", "FullFineTuning", "LastLayers", "LinearProbe", "InContext",
           "method_name", "load_recipe", "run_recipe_file", "with_docstring", "recipe_fingerprint", "run_fingerprint", "snake_case", "check_method_numbers", "first_non_finite", "PEFT_NUMBERS"]
