"""adapter-zoo: parameter-efficient fine-tuning as a catalogue.

The public API. ``import zoo`` is cheap: it loads the recipe classes and the errors, and nothing of
torch, transformers or PEFT; ``zoo.load``, ``zoo.train`` and ``zoo.Zoo`` import those on first use.

    import zoo
    model = zoo.load("roberta-large", adapter="mnli-lora")   # either spelling of the base
    model.predict([("A man sleeps.", "A person rests.")])

    >>> import zoo
    >>> zoo.list_adapters(hub="local", base="no/such-base")
    []
"""

from zoo._quiet import quiet
from zoo._version import __version__
from zoo.config.family import Sweep, load_recipes
from zoo.config.generation import GenerationArgs
from zoo.config.overrides import apply_overrides
from zoo.config.prompts import ALPACA, ALPACA_NO_INPUT, PromptFormat
from zoo.config.recipe import (
    FullFineTuning,
    InContext,
    LastLayers,
    LinearProbe,
    Recipe,
    TrainArgs,
    load_recipe,
)
from zoo.errors import (
    AdapterBaseMismatch,
    AdapterNotFound,
    BadInput,
    DataNotFound,
    DeadlineExceeded,
    EmptyDataset,
    EntryFailed,
    EntryNotFound,
    HubError,
    ModelNotFound,
    NotAuthorized,
    QuantizationUnavailable,
    RecipeError,
    RunFailed,
    ServerBusy,
    TrainingDiverged,
    UnknownMethod,
    UnknownTask,
    UnsafeAdapter,
    UnsupportedAdapter,
    UnsupportedFormat,
    ZooError,
)


def load(base: str, *, adapter: str, hub=None):
    """Load the adapter published as ``adapter`` for ``base``; returns an object with ``.predict(inputs)``.

    ``base`` is a Hub id in either form (``roberta-large`` or ``FacebookAI/roberta-large``); see
    ``zoo.serve.loading.load``."""
    with quiet():  # torch and transformers on first use; their known import notices are not the user's
        from zoo.serve.loading import load as _load

        return _load(base, adapter=adapter, hub=hub)


def list_adapters(*, base=None, task=None, method=None, hub=None) -> list:
    """Published adapters (dicts with name, base_model, task, method, metrics...), as `zoo list` shows them.

    ``hub``: "hf" (the Hugging Face Hub) or "local"; default: the Hub when a token is configured."""
    from zoo.hub.backends import get_hub

    return get_hub(hub).list(base=base, task=task, method=method)


def train(recipe, **kwargs):
    """Train a Recipe; see ``zoo.training.train``."""
    with quiet():  # torch, transformers and PEFT, on first use only
        from zoo.training import train as _train

        return _train(recipe, **kwargs)


def __getattr__(name):
    if name == "Zoo":  # imported on first use: it pulls in torch and transformers
        with quiet():
            from zoo.serve.registry import Zoo

        return Zoo
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = [
    "Zoo", "list_adapters", "Recipe", "TrainArgs", "FullFineTuning", "LastLayers", "LinearProbe", "InContext", "Sweep", "load_recipes", "GenerationArgs",
    "PromptFormat", "ALPACA", "ALPACA_NO_INPUT", "load_recipe", "apply_overrides", "load", "train", "__version__",
    "ZooError", "RecipeError", "TrainingDiverged", "UnknownTask", "UnknownMethod", "ModelNotFound", "DataNotFound", "EmptyDataset",
    "AdapterNotFound", "AdapterBaseMismatch", "UnsafeAdapter", "UnsupportedFormat", "UnsupportedAdapter", "BadInput",
    "HubError", "QuantizationUnavailable", "EntryNotFound", "EntryFailed", "RunFailed", "ServerBusy", "DeadlineExceeded",
    "NotAuthorized",
]
