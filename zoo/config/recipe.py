"""Recipes: one plain Python file per task x method, exporting ``recipe = Recipe(...)``.

Example:
    >>> from zoo.config.overrides import apply_overrides
    >>> r = apply_overrides(load_recipe("recipes/sst2_lora.py"), ["train.epochs=1", "method.r=16"])
    >>> r.name, r.method_name, r.train.epochs, r.method.r
    ('sst2-lora', 'lora', 1.0, 16)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from zoo.config.generation import GenerationArgs
from zoo.config.prompts import PromptFormat
from zoo.data.tasks import get_task
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
    num_layers: int = field(default=2, metadata={"help": "how many of the top transformer layers to train"})

    def __post_init__(self):
        if not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise RecipeError(f"method.num_layers must be an integer >= 0, got {self.num_layers!r}")


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
                        "IA3Config, ...) or one of the zoo's baselines: FullFineTuning(), LastLayers(n), InContext()")


@dataclass
class TrainArgs:
    """Training settings, passed to transformers' Trainer."""

    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (linear decay)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=16, metadata={"help": "examples per optimisation step and device"})
    eval_batch_size: int = field(default=64, metadata={"help": "examples per evaluation batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches summed per optimiser step"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "fraction of steps spent warming up"})
    max_grad_norm: Optional[float] = field(default=1.0, metadata={"help": "gradient clipping norm; None: off"})
    early_stopping_patience: Optional[int] = field(
        default=None, metadata={"help": "stop after this many evaluations without improvement; None: off"}
    )
    eval_steps: Optional[int] = field(
        default=None, metadata={"help": "evaluate (and checkpoint) every N steps; None: once per epoch"}
    )
    max_length: int = field(default=128, metadata={"help": "tokens per example after truncation"})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "train on a seeded sample; None: all"})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "evaluate on a sample; None: all"})
    max_generate_samples: int = field(
        default=200, metadata={"help": "causal LMs: validation examples answered by generation (accuracy, ROUGE)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after N optimiser steps; -1: run all epochs"})
    group_by_length: bool = field(
        default=True, metadata={"help": "batch examples of similar length together (less padding, faster)"}
    )
    logging_steps: int = field(default=50, metadata={"help": "log the loss every N steps"})
    save_total_limit: int = field(default=1, metadata={"help": "checkpoints kept for --resume"})

    def __post_init__(self):
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise RecipeError(f"train.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.learning_rate <= 0:
            raise RecipeError(f"train.learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise RecipeError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise RecipeError("train.epochs must be > 0 (or set train.max_steps)")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise RecipeError(f"train.{name} must be >= 0 or None, got {getattr(self, name)!r}")


@dataclass
class Recipe:
    """One adapter to train: which base, which task, which method, how."""

    name: str = field(metadata={"help": "the adapter's short name, <task>-<method> in kebab case"})
    base_model: str = field(metadata={"help": "Hub id (or local folder) of the base model"})
    task: str = field(metadata={"help": "task id, e.g. glue/sst2 (see zoo.data.tasks.TASKS)"})
    method: Any = field(metadata={"help": "a PEFT config (LoraConfig, ...), FullFineTuning() or LastLayers(n)"})
    train: TrainArgs = field(default_factory=TrainArgs, metadata={"help": "training settings"})
    seed: int = field(default=42, metadata={"help": "seed for sampling, initialisation and data order"})
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

    def __post_init__(self):
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
        if self.causal:
            if self.prompt is None:
                raise RecipeError(f"{self.name}: a causal-LM recipe needs prompt=PromptFormat(template=...) "
                                  f"over the task's fields {list(task.fields)}")
            unknown = [f for f in self.prompt.fields if f not in task.fields]
            if unknown:
                raise RecipeError(f"prompt.template uses {unknown}; task {task.name} has fields {list(task.fields)}")
            if isinstance(self.method, FullFineTuning):
                raise RecipeError("full fine-tuning of causal LMs is not a zoo method; use last-layers or a PEFT method")
        elif self.verbalizer is not None or self.prompt is not None:
            raise RecipeError("prompt/verbalizer are for causal LMs: use a PEFT config with task_type='CAUSAL_LM' or InContext()")
        if self.verbalizer is not None:
            if task.is_generation or set(self.verbalizer) != set(task.labels):
                raise RecipeError(f"verbalizer must map every label of {task.name} {list(task.labels)} to a word")

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
        })


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else str(v)))


def snake_case(name: str) -> str:
    """Recipe file stem for an adapter name: ``sst2-prompt-tuning`` -> ``sst2_prompt_tuning``."""
    return name.replace("-", "_")


def load_recipe(path: str | Path) -> Recipe:
    """Import a recipe file by path and return its ``recipe`` (the file's docstring fills ``description``)."""
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
    recipe = getattr(module, "recipe", None)
    if recipe is None:
        raise RecipeError(f"{path}: defines no `recipe`; end the file with `recipe = Recipe(...)`")
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"{path}: `recipe` is a {type(recipe).__name__}, not a zoo.Recipe")
    if not recipe.description and module.__doc__:
        recipe = dataclasses.replace(recipe, description=module.__doc__.strip().splitlines()[0])
    return recipe



__all__ = ["Recipe", "TrainArgs", "GenerationArgs", "FullFineTuning", "LastLayers", "InContext",
           "method_name", "load_recipe", "snake_case"]
