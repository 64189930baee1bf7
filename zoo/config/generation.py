"""Generation settings: the recipe's ``GenerationArgs`` group, and the rules every other source of
settings (a causal adapter's zoo.json "generation", ``generate(**settings)``, a web form) is checked by.

Also the config layer's one rule for numbers (``number_problem``): a field declared ``int`` takes an
integer, one declared ``float`` a finite number, never a bool, NaN or infinity, and its ``range``
(field metadata, e.g. ``">= 1"``, ``"[0, 1)"``, ``"-1 or >= 1"``) says what else it must be.

    >>> from zoo.config.generation import GenerationArgs, resolve_settings
    >>> GenerationArgs(max_new_tokens=8).max_new_tokens
    8
    >>> resolve_settings({"num_beams": 2}, {"max_new_tokens": 4})["num_beams"]
    2
    >>> number_problem(float("nan"), float, "> 0")
    'must be a finite number, got nan'
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Union

from zoo.errors import RecipeError, ZooError

MIN_TEMPERATURE = 0.01  # below it sampling is greedy in all but name (a logit gap of 0.1 becomes a factor e**10);
# far below it logits / temperature overflow (1e-300 made transformers' sampling fail on NaN probabilities)

MAX_BEAMS = 8  # each beam is a sequence generated in the batch: a stranger's zoo.json with 2,000 would hold a server's
# generation worker (and its memory) for every other user; summarization recipes use 4

MAX_POSITIONS = 1 << 20  # no base has more positions (the adapter record's MAX_LENGTH_LIMIT): a bigger count is a typo


# ------------------------------------------------------------------------------- numbers
def numeric_kind(hint) -> tuple[type | None, bool]:
    """(int, float or bool; or None when ``hint`` declares no number) and whether None is allowed too."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    optional = type(None) in options
    kinds = [o for o in options if o is not type(None)]
    if len(kinds) == 1 and kinds[0] in (int, float, bool):
        return kinds[0], optional
    return None, optional


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _in_range(value, spec: str) -> bool:
    """``spec``: ``"> 0"``, ``">= 1"``, ``"[0, 1)"``, ``"(0, 1]"``, a bare number, or alternatives joined by ' or '."""
    for part in (p.strip() for p in spec.split(" or ")):
        interval = re.fullmatch(r"([\[(])\s*(\S+),\s*(\S+?)\s*([\])])", part)
        if interval:
            low, high = float(interval[2]), float(interval[3])
            above = low <= value if interval[1] == "[" else low < value
            below = value <= high if interval[4] == "]" else value < high
            if above and below:
                return True
        elif part[0] in "<>":
            op, _, bound = part.partition(" ")
            if _COMPARE[op](value, float(bound)):
                return True
        elif value == float(part):
            return True
    return False


def number_problem(value, kind: type, spec: str = "", *, optional: bool = False) -> str | None:
    """What is wrong with ``value`` for a field of ``kind`` (int, float, bool) and range ``spec``; None: nothing."""
    if value is None:
        return None if optional else f"must be {_kind_words(kind)}, got None"
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r:.40}"
    if isinstance(value, bool):
        return f"must be {_kind_words(kind)}, not true or false"
    if not isinstance(value, numbers.Integral if kind is int else numbers.Real):
        return f"must be {_kind_words(kind)}, got {value!r:.40}"
    if isinstance(value, numbers.Integral):  # compared as an integer: math.isfinite(10 ** 400) raises OverflowError
        if abs(value) >= 1 << 63:  # torch and numpy keep counts in 64 bits
            return f"must be {'an integer' if kind is int else 'a number'} of at most 19 digits, got {value!r:.40}"
    elif not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if spec and not _in_range(value, spec):
        words = " or ".join(("in " if p.strip()[0] in "[(" else "") + p.strip() for p in spec.split(" or "))
        return f"must be {words}, got {value!r:.40}"
    return None


def _kind_words(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false"}[kind]


def check_numbers(obj, prefix: str, error: type[ZooError] = RecipeError) -> None:
    """Every number-declared field of the dataclass ``obj`` is a number of its kind within its metadata ``range``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        kind, optional = numeric_kind(hints.get(f.name))
        if kind is not None:
            problem = number_problem(getattr(obj, f.name), kind, f.metadata.get("range", ""), optional=optional)
            if problem:
                raise error(f"{prefix}{f.name} {problem}")


# ------------------------------------------------------------------------------- the recipe's group
@dataclass
class GenerationArgs:
    """How causal LMs generate, in evaluation and for users of the published adapter (transformers' generate)."""

    max_new_tokens: int = field(default=64, metadata={"help": "tokens generated at most per answer",
                                                      "range": f"[1, {MAX_POSITIONS}]"})
    do_sample: bool = field(default=False, metadata={"help": "sample (with temperature/top_p/top_k) instead of greedy/beam"})
    num_beams: int = field(default=1, metadata={"help": "beam search width; 1: greedy or sampling",
                                                "range": f"[1, {MAX_BEAMS}]"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (with do_sample); below 0.01 the "
                                                      "logits / temperature overflow: use do_sample=false for greedy",
                                                      "range": f">= {MIN_TEMPERATURE}"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (with do_sample)", "range": "(0, 1]"})
    top_k: int = field(default=50, metadata={"help": "sample from the k most likely tokens (with do_sample)", "range": ">= 0"})
    repetition_penalty: float = field(default=1.0, metadata={"help": "penalise repeated tokens; 1.0: off", "range": "> 0"})

    def __post_init__(self):
        check_numbers(self, "generation.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------- settings
# Generation settings a causal adapter's zoo.json "generation" and generate(**settings) may give, with defaults.
GENERATION_DEFAULTS = GenerationArgs().to_dict()  # the recipe's defaults: one definition of the settings
_GENERATION_RULES = {  # key -> (kind, range): GenerationArgs' own declarations, so the two cannot disagree
    f.name: (numeric_kind(typing.get_type_hints(GenerationArgs)[f.name])[0], f.metadata.get("range", ""))
    for f in dataclasses.fields(GenerationArgs)
}


def check_generation(settings: dict, error: type[ZooError], where: str) -> None:
    """Every setting is a known key with a sensible value, else ``error`` naming the key and what it must be."""
    unknown = sorted(set(settings) - set(GENERATION_DEFAULTS))
    if unknown:
        raise error(f"{where}: unknown generation setting(s) {unknown}; allowed: {', '.join(GENERATION_DEFAULTS)}")
    for key, value in settings.items():
        kind, spec = _GENERATION_RULES[key]
        problem = number_problem(value, kind, spec)
        if problem:
            raise error(f"{where}: generation setting {key} {problem}")


def resolve_settings(own: dict | None, overrides: dict) -> dict:
    """Generation settings: the defaults, an adapter's zoo.json "generation", then the caller's."""
    own = {k: v for k, v in (own or {}).items() if k in GENERATION_DEFAULTS}
    settings = {**GENERATION_DEFAULTS, **own, **overrides}
    if not settings["do_sample"]:  # greedy and beam search ignore these; passing them only makes transformers warn
        for key in ("temperature", "top_p", "top_k"):
            settings.pop(key)
    return settings
