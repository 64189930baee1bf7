"""Recipe files that define several adapters: a family (``recipes = [Recipe(...), ...]``, e.g. one per stance
target) and a sweep (``Sweep(recipe, grid={...})``: one adapter per point of a grid of settings).

A sweep's points are named after the recipe with the point's number before the method
(``imdb-prompt-tuning`` -> ``imdb-03-prompt-tuning``), and each carries ``sweep`` = the family name, the grid
and its own values, which training writes into zoo.json and the card, and ``zoo report`` draws as a heat map.

Example:
    >>> from zoo.config.recipe import Recipe
    >>> from peft import LoraConfig
    >>> s = Sweep(Recipe(name="sst2-rank-lora", base_model="b", task="glue/sst2", method=LoraConfig(r=8)),
    ...           grid={"method.r": [4, 8], "train.learning_rate": [1e-4, 5e-4]})
    >>> [(r.name, r.method.r, r.train.learning_rate) for r in s.expand()][:2]
    [('sst2-rank-1-lora', 4, 0.0001), ('sst2-rank-2-lora', 4, 0.0005)]
    >>> s.expand()[3].sweep["point"]
    {'method.r': 8, 'train.learning_rate': 0.0005}
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from zoo.config.overrides import apply_overrides
from zoo.config.recipe import Recipe, RecipeGroup, run_recipe_file, with_docstring
from zoo.errors import RecipeError

MAX_POINTS = 100  # a grid past this is a typo (or a cluster job), not a catalogue row


@dataclass
class Sweep(RecipeGroup):
    """A grid over one recipe: each combination of the values is an adapter of its own.

    ``grid`` maps dotted recipe keys (what ``--set`` takes: ``method.r``, ``train.learning_rate``) to the
    values to try (numbers, strings, booleans)."""

    recipe: Recipe
    grid: dict

    def __post_init__(self):
        if not isinstance(self.recipe, Recipe):
            raise RecipeError(f"Sweep(recipe=...) must be a zoo.Recipe, got {type(self.recipe).__name__}")
        if not isinstance(self.grid, dict) or not self.grid:
            raise RecipeError("Sweep(grid=...) must map recipe keys to lists of values, e.g. {'method.r': [4, 8, 16]}")
        count = 1
        for key, values in self.grid.items():
            if not isinstance(key, str) or key in ("name", "sweep") or key.startswith(("sweep.", "name.")):
                raise RecipeError(f"Sweep grid key {key!r}: sweep a setting (method.r, train.learning_rate...), "
                                  "not the name")
            if not isinstance(values, (list, tuple)) or not values:
                raise RecipeError(f"Sweep grid {key}: give a non-empty list of values, got {values!r:.60}")
            for v in values:
                if isinstance(v, float) and not math.isfinite(v) or not isinstance(v, (int, float, str, bool)):
                    raise RecipeError(f"Sweep grid {key}: values must be finite numbers, strings or booleans, got {v!r:.60}")
            if len(set(map(json.dumps, values))) != len(values):
                raise RecipeError(f"Sweep grid {key}: a value is listed twice in {list(values)}")
            count *= len(values)
        if count > MAX_POINTS:
            raise RecipeError(f"Sweep grid has {count} points; at most {MAX_POINTS} (split it into several sweeps)")
        self.expand()  # every point checked when the file is read, not after the first ones trained

    def expand(self, overrides: Sequence[str] = ()) -> list[Recipe]:
        """The grid's recipes, in grid order (the last key varies fastest), ``overrides`` applied first
        (an override of a swept key is refused: the grid decides it)."""
        swept = [o for o in overrides if o.partition("=")[0].strip() in self.grid]
        if swept:
            raise RecipeError(f"--set {swept[0].partition('=')[0].strip()}: swept by {self.recipe.name}'s grid; "
                              "pick grid points with --only NAME, or edit the grid")
        base = apply_overrides(self.recipe, list(overrides))
        stem = base.name[: -len(base.method_name) - 1]
        keys = list(self.grid)
        combos = list(itertools.product(*(self.grid[k] for k in keys)))
        width = len(str(len(combos)))
        out = []
        for k, combo in enumerate(combos, 1):
            point = dict(zip(keys, combo))
            recipe = apply_overrides(base, [f"{key}={_text(value)}" for key, value in point.items()])
            for key, value in point.items():
                got = _get(recipe, key)
                if got != value or type(got) is bool and type(value) is not bool:
                    raise RecipeError(f"Sweep grid {key}: {value!r} does not fit the setting (read as {got!r})")
            name = f"{stem}-{k:0{width}d}-{base.method_name}"
            sweep = {"family": base.name, "grid": {key: list(v) for key, v in self.grid.items()}, "point": point}
            out.append(dataclasses.replace(recipe, name=name, sweep=sweep))
        return out


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _get(recipe: Recipe, key: str):
    obj = recipe
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def load_recipes(path: str | Path, overrides: Iterable[str] = ()) -> list[Recipe]:
    """Every recipe a file defines, with ``overrides`` (``KEY=VALUE``) applied: its ``recipe`` (a Recipe or a
    Sweep), or its ``recipes`` list (a family: Recipes and Sweeps). Names must differ."""
    path = Path(path)
    overrides = list(overrides)
    module = run_recipe_file(path)
    one, many = getattr(module, "recipe", None), getattr(module, "recipes", None)
    if one is None and many is None:
        raise RecipeError(f"{path}: defines no `recipe`; end the file with `recipe = Recipe(...)` "
                          "(or `recipes = [...]` for a family)")
    if one is not None and many is not None:
        raise RecipeError(f"{path}: defines both `recipe` and `recipes`; keep one")
    if many is not None and (not isinstance(many, (list, tuple)) or not many):
        raise RecipeError(f"{path}: `recipes` must be a non-empty list of Recipe(...) or Sweep(...)")
    out = []
    for item in ([one] if many is None else many):
        if isinstance(item, Sweep):
            described = dataclasses.replace(item.recipe, description=with_docstring(item.recipe, module).description)
            try:
                out += Sweep(described, item.grid).expand(overrides)
            except RecipeError as e:
                raise RecipeError(f"{path}: {e}") from None
        elif isinstance(item, Recipe):
            out.append(apply_overrides(with_docstring(item, module), overrides))
        else:
            raise RecipeError(f"{path}: {type(item).__name__} is not a zoo.Recipe or zoo.Sweep")
    names = [r.name for r in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RecipeError(f"{path}: two recipes are named {twice[0]!r}; names must differ")
    return out


def only(recipes: list[Recipe], names: Sequence[str], where: str = "") -> list[Recipe]:
    """The recipes named (``--only``), in the order given; an unknown name is an error listing the known ones."""
    if not names:
        return recipes
    by_name = {r.name: r for r in recipes}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        listed = ", ".join(by_name) if len(by_name) <= 40 else ", ".join(list(by_name)[:40]) + ", ..."
        raise RecipeError(f"--only {unknown[0]!r}: no such recipe{' in ' + where if where else ''}; there are: {listed}")
    return [by_name[n] for n in dict.fromkeys(names)]


__all__ = ["Sweep", "load_recipes", "only", "MAX_POINTS"]
