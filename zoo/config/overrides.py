"""Dotted, type-checked ``KEY=VALUE`` overrides of a recipe (``zoo train ... --set train.epochs=1``).

Example:
    >>> from zoo.config.recipe import load_recipe
    >>> from zoo.config.overrides import apply_overrides
    >>> r = apply_overrides(load_recipe("recipes/sst2_lora.py"), ["train.epochs=1", "method.r=16"])
    >>> apply_overrides(r, ["train.epochz=1"])
    Traceback (most recent call last):
    ...
    zoo.errors.RecipeError: --set train.epochz: unknown key 'epochz' on TrainArgs; known keys: base_dropout, batch_size, bf16, bf16_base, class_weights, early_stopping_patience, epochs, eval_batch_size, eval_steps, exact_shortcuts, gradient_accumulation_steps, group_by_length, learning_rate, length_group_batches, logging_steps, max_eval_samples, max_generate_samples, max_grad_norm, max_length, max_steps, max_train_samples, save_total_limit, tune_offsets, warmup_ratio, weight_decay
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from typing import Any, Literal, Union

from zoo.config.recipe import Recipe
from zoo.errors import RecipeError


def apply_overrides(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Apply ``KEY=VALUE`` overrides (dotted keys, type-checked) and return a new, re-validated recipe."""
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=1")
        recipe = _set_path(recipe, key.split("."), raw, key)
    return recipe


def _set_path(obj, parts: list[str], raw: str, key: str):
    head, rest = parts[0], parts[1:]
    fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
    if head not in fields or (not fields[head].init):
        known = ", ".join(sorted(n for n, f in fields.items() if f.init))
        raise RecipeError(f"--set {key}: unknown key {head!r} on {type(obj).__name__}; known keys: {known}")
    if rest:
        child = getattr(obj, head)
        if not dataclasses.is_dataclass(child):
            raise RecipeError(f"--set {key}: {head!r} is a plain value, it has no field {rest[0]!r}")
        value = _set_path(child, rest, raw, key)
    else:
        hint = typing.get_type_hints(type(obj)).get(head, Any)
        value = _coerce(raw, hint, key)
    try:
        return dataclasses.replace(obj, **{head: value})
    except RecipeError as e:
        raise RecipeError(f"--set {key}: {e}") from None
    except (TypeError, ValueError) as e:
        raise RecipeError(f"--set {key}={raw}: rejected by {type(obj).__name__}: {e}") from None


def describe(recipe: Recipe) -> list[tuple[str, str, str, str]]:
    """Every key --set can change: (dotted key, current value, type, help), recipe fields then nested ones."""
    rows = []

    def walk(obj, prefix):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, repr(value), _type_name(hints.get(f.name, Any)), f.metadata.get("help", "")))

    walk(recipe, "")
    return rows


def _coerce(raw: str, hint, key: str):
    """Parse a command-line string into the field's declared type, or raise naming the key."""
    text = raw.strip()
    origin = typing.get_origin(hint)
    if hint is Any:
        return text
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if type(None) in options and text.lower() in ("none", "null"):
            return None
        if len([o for o in options if o is not type(None)]) == 1:  # Optional[X]: X's own message
            return _coerce(text, next(o for o in options if o is not type(None)), key)
        # Try the most specific types first so "8" becomes 8, not "8" or [8], when both are allowed: scalars, then
        # lists, then text. By kind, never by the Union's own order: typing caches Union[int, list[int]] and
        # Union[list[int], int] as one object whose order is whichever the process built first (a test's result
        # depended on which tests ran before it).
        for option in sorted((o for o in options if o is not type(None)),
                             key=lambda o: (o is str, typing.get_origin(o) in (list, tuple, set))):
            try:
                return _coerce(text, option, key)
            except RecipeError:
                pass
        raise RecipeError(f"--set {key}={raw!r}: expected {_type_name(hint)}")
    if origin is Literal:
        if text in typing.get_args(hint):
            return text
        raise RecipeError(f"--set {key}={raw!r}: expected one of {typing.get_args(hint)}")
    if origin in (list, tuple, set):
        (item,) = typing.get_args(hint)[:1] or (str,)
        items = _parse_list(text)
        if items is None:
            raise RecipeError(f"--set {key}={raw!r}: expected a list, e.g. a,b or [\"a\",\"b\"]")
        return [_coerce(str(i), item, key) for i in items]
    if hint is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise RecipeError(f"--set {key}={raw!r}: expected true or false")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            odd = _reads_as_non_finite(text)
            raise RecipeError(f"--set {key}={raw!r}: expected an integer" + (", not NaN or infinity" if odd else "")) from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise RecipeError(f"--set {key}={raw!r}: expected a number") from None
        if not math.isfinite(value):  # float() reads nan, inf and 1e999; no setting of the zoo means them
            raise RecipeError(f"--set {key}={raw!r}: expected a finite number, not NaN or infinity")
        return value
    if hint is str:
        return text
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(text)
        except ValueError:
            raise RecipeError(f"--set {key}={raw!r}: expected one of {[m.value for m in hint]}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        raise RecipeError(f"--set {key}: is a group; set one of its fields, e.g. {key}.<field>=VALUE")
    raise RecipeError(f"--set {key}: cannot be set from the command line (type {_type_name(hint)}); edit the recipe")


def _reads_as_non_finite(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _parse_list(text: str):
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None
    return [t.strip() for t in text.split(",") if t.strip()]


def _type_name(hint) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "").replace("NoneType", "None")
