"""Generation settings: the recipe's ``GenerationArgs`` group, and the rules every other source of
settings (a causal adapter's zoo.json "generation", ``generate(**settings)``, a web form) is checked by.

    >>> from zoo.config.generation import GenerationArgs, resolve_settings
    >>> GenerationArgs(max_new_tokens=8).max_new_tokens
    8
    >>> resolve_settings({"num_beams": 2}, {"max_new_tokens": 4})["num_beams"]
    2
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from zoo.errors import RecipeError, ZooError


@dataclass
class GenerationArgs:
    """How causal LMs generate, in evaluation and for users of the published adapter (transformers' generate)."""

    max_new_tokens: int = field(default=64, metadata={"help": "tokens generated at most per answer"})
    do_sample: bool = field(default=False, metadata={"help": "sample (with temperature/top_p/top_k) instead of greedy/beam"})
    num_beams: int = field(default=1, metadata={"help": "beam search width; 1: greedy or sampling"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (with do_sample)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (with do_sample)"})
    top_k: int = field(default=50, metadata={"help": "sample from the k most likely tokens (with do_sample)"})
    repetition_penalty: float = field(default=1.0, metadata={"help": "penalise repeated tokens; 1.0: off"})

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.num_beams < 1:
            raise RecipeError(f"generation.max_new_tokens and generation.num_beams must be >= 1, got {self.max_new_tokens}, {self.num_beams}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.repetition_penalty <= 0:
            raise RecipeError("generation: temperature > 0, 0 < top_p <= 1, top_k >= 0 and repetition_penalty > 0 are required")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------- settings
# Generation settings a causal adapter's zoo.json "generation" and generate(**settings) may give, with defaults.
GENERATION_DEFAULTS = GenerationArgs().to_dict()  # the recipe's defaults: one definition of the settings
_GENERATION_RULES = {  # key -> (accepted types, test, what the value must be)
    "max_new_tokens": (int, lambda v: v >= 1, "an integer >= 1"),
    "num_beams": (int, lambda v: v >= 1, "an integer >= 1"),
    "do_sample": (bool, lambda v: True, "true or false"),
    "temperature": ((int, float), lambda v: v > 0, "a number > 0"),
    "top_p": ((int, float), lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "top_k": (int, lambda v: v >= 0, "an integer >= 0"),
    "repetition_penalty": ((int, float), lambda v: v > 0, "a number > 0"),
}


def check_generation(settings: dict, error: type[ZooError], where: str) -> None:
    """Every setting is a known key with a sensible value, else ``error`` naming the key and what it must be."""
    unknown = sorted(set(settings) - set(GENERATION_DEFAULTS))
    if unknown:
        raise error(f"{where}: unknown generation setting(s) {unknown}; allowed: {', '.join(GENERATION_DEFAULTS)}")
    for key, value in settings.items():
        types, ok, must = _GENERATION_RULES[key]
        if isinstance(value, bool) != (types is bool) or not isinstance(value, types) or not ok(value):
            raise error(f"{where}: generation setting {key}={value!r} must be {must}")


def resolve_settings(own: dict | None, overrides: dict) -> dict:
    """Generation settings: the defaults, an adapter's zoo.json "generation", then the caller's."""
    own = {k: v for k, v in (own or {}).items() if k in GENERATION_DEFAULTS}
    settings = {**GENERATION_DEFAULTS, **own, **overrides}
    if not settings["do_sample"]:  # greedy and beam search ignore these; passing them only makes transformers warn
        for key in ("temperature", "top_p", "top_k"):
            settings.pop(key)
    return settings
