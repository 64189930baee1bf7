"""adapter-zoo: parameter-efficient fine-tuning as a catalogue.

    >>> import zoo
    >>> model = zoo.load("sentence-transformers/all-MiniLM-L6-v2", adapter="sst2-lora")   # doctest: +SKIP
    >>> model.predict(["a gripping, beautifully acted film"])                             # doctest: +SKIP
"""

__version__ = "0.1.0"

import warnings  # noqa: E402

# PEFT still calls a transformers API deprecated in 5.x; the warning is theirs to fix, not the user's.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
# datasets' Dataset.sort still uses a pyarrow option deprecated in pyarrow 25; same story.
warnings.filterwarnings("ignore", message=".*null_placement.*", category=FutureWarning)
# PEFT prints this for every prompt-tuning generate step in transformers 5 (the ids are rebuilt anyway).
warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")

import logging  # noqa: E402

# bitsandbytes logs, at import (peft imports it), that an optional CPU inference kernel from the Hub's
# `kernels` package is missing; 4-bit training works without it (zoo/quantization.py), so say nothing.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: "kernels-community" not in record.getMessage())

from .errors import (  # noqa: E402
    AdapterBaseMismatch,
    AdapterNotFound,
    BadInput,
    DataNotFound,
    EmptyDataset,
    ModelNotFound,
    RecipeError,
    UnknownMethod,
    UnknownTask,
    UnsafeAdapter,
    ZooError,
)
from .prompts import ALPACA, ALPACA_NO_INPUT, PromptFormat  # noqa: E402
from .recipe import (  # noqa: E402
    FullFineTuning, GenerationArgs, InContext, LastLayers, Recipe, TrainArgs, apply_overrides, load_recipe,
)


def load(base: str, *, adapter: str, hub=None):
    """Load the adapter published as ``adapter`` for ``base``; returns an object with ``.predict(inputs)``."""
    from .loading import load as _load

    return _load(base, adapter=adapter, hub=hub)


def list_adapters(*, base=None, task=None, method=None, hub=None) -> list:
    """Published adapters (dicts with name, base_model, task, method, metrics...), as `zoo list` shows them.

    ``hub``: "hf" (the Hugging Face Hub) or "local"; default: the Hub when a token is configured."""
    from .hub import get_hub

    return get_hub(hub).list(base=base, task=task, method=method)


def __getattr__(name):
    if name == "Zoo":  # imported on first use: it pulls in torch and transformers
        from .registry import Zoo

        return Zoo
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def train(recipe, **kwargs):
    """Train a Recipe; see zoo.train.train."""
    from .train import train as _train

    return _train(recipe, **kwargs)


__all__ = [
    "Zoo", "list_adapters", "Recipe", "TrainArgs", "FullFineTuning", "LastLayers", "InContext", "GenerationArgs",
    "PromptFormat", "ALPACA", "ALPACA_NO_INPUT", "load_recipe", "apply_overrides", "load", "train",
    "ZooError", "RecipeError", "UnknownTask", "UnknownMethod", "ModelNotFound", "DataNotFound", "EmptyDataset",
    "AdapterNotFound", "AdapterBaseMismatch", "UnsafeAdapter", "BadInput",
]
