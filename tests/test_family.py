"""Recipe files of several adapters: families (`recipes = [...]`), sweeps (`Sweep(recipe, grid)`), `--only`."""

from __future__ import annotations

import json
import math

import pytest
from peft import LoraConfig

from tests.conftest import quick_overrides
from tests.test_cli import run
from zoo import Recipe, Sweep, TrainArgs, load_recipe, load_recipes
from zoo.config.family import MAX_POINTS, only
from zoo.errors import RecipeError


@pytest.fixture()
def env(tmp_path, shared_data):
    return {"ZOO_HOME": str(tmp_path / "home"), "ZOO_DATA_DIR": str(shared_data)}


def lora_recipe(**train) -> Recipe:
    return Recipe(name="sst2-grid-lora", base_model="b", task="glue/sst2",
                  method=LoraConfig(task_type="SEQ_CLS", r=8, target_modules=["query", "value"]), train=TrainArgs(**train))


def test_the_stance_family_is_one_recipe_per_target():
    family = load_recipes("recipes/tweet_stance_lora.py")
    assert [r.task for r in family] == [f"tweet_eval/stance_{t}" for t in
                                         ("abortion", "atheism", "climate", "feminist", "hillary")]
    assert [r.name for r in family] == [f"tweet-stance-{t}-lora" for t in
                                         ("abortion", "atheism", "climate", "feminist", "hillary")]
    assert all(t.replace("tweet_eval/stance_", "") in r.description for r, t in zip(family, [r.task for r in family]))
    with pytest.raises(RecipeError, match="--only NAME"):
        load_recipe("recipes/tweet_stance_lora.py")
    assert [r.name for r in only(family, ["tweet-stance-climate-lora"])] == ["tweet-stance-climate-lora"]
    with pytest.raises(RecipeError, match="no such recipe.*tweet-stance-abortion-lora"):
        only(family, ["tweet-stance-mars-lora"])


def test_overrides_reach_every_member_of_a_family():
    family = load_recipes("recipes/tweet_stance_lora.py", ["train.epochs=1", "method.r=4"])
    assert {(r.train.epochs, r.method.r) for r in family} == {(1.0, 4)}


def test_a_sweep_is_one_recipe_per_grid_point_in_grid_order():
    sweep = Sweep(lora_recipe(), grid={"method.r": [2, 8], "train.learning_rate": [1e-4, 1e-3, 1e-2]})
    points = sweep.expand()
    assert [r.name for r in points] == [f"sst2-grid-{k}-lora" for k in range(1, 7)]
    assert [(r.method.r, r.train.learning_rate) for r in points] == [(2, 1e-4), (2, 1e-3), (2, 1e-2),
                                                                      (8, 1e-4), (8, 1e-3), (8, 1e-2)]
    assert all(r.sweep["family"] == "sst2-grid-lora" and r.sweep["grid"] == {"method.r": [2, 8],
               "train.learning_rate": [1e-4, 1e-3, 1e-2]} for r in points)
    assert points[4].sweep["point"] == {"method.r": 8, "train.learning_rate": 1e-3}
    assert len({r.to_dict()["sweep"]["point"]["method.r"] for r in points}) == 2
    # overrides apply to every point, except a swept key: the grid decides it
    assert {r.train.epochs for r in sweep.expand(["train.epochs=1"])} == {1.0}
    with pytest.raises(RecipeError, match="swept by sst2-grid-lora"):
        sweep.expand(["method.r=4"])


@pytest.mark.parametrize("grid, message", [
    ({}, "map recipe keys"),
    ({"method.r": []}, "non-empty list"),
    ({"method.r": 4}, "non-empty list"),
    ({"method.r": [4, 4]}, "listed twice"),
    ({"train.learning_rate": [1e-3, math.nan]}, "finite numbers"),
    ({"train.learning_rate": [1e-3, -1.0]}, "learning_rate"),
    ({"method.r": ["four"]}, "integer"),
    ({"method.r": [2.5]}, "method.r"),
    ({"train.epochz": [1, 2]}, "unknown key 'epochz'"),
    ({"name": ["a", "b"]}, "not the name"),
    ({"method.r": list(range(1, 12)), "train.epochs": list(range(1, 11))}, f"at most {MAX_POINTS}"),
])
def test_a_bad_grid_is_refused_when_the_file_is_read(grid, message):
    with pytest.raises(RecipeError, match=message):
        Sweep(lora_recipe(), grid=grid)


def test_a_file_of_recipes_says_what_is_wrong(tmp_path):
    cases = {
        "recipes = []\n": "non-empty list",
        "recipes = [1]\n": "not a zoo.Recipe or zoo.Sweep",
        "from zoo import Recipe\nr = Recipe(name='sst2-a-ia3', base_model='b', task='glue/sst2', method=__import__('peft').IA3Config())\n"
        "recipe = r\nrecipes = [r]\n": "both `recipe` and `recipes`",
        "from zoo import Recipe\nr = Recipe(name='sst2-a-ia3', base_model='b', task='glue/sst2', method=__import__('peft').IA3Config())\n"
        "recipes = [r, r]\n": "two recipes are named 'sst2-a-ia3'",
    }
    for k, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"f{k}.py"
        path.write_text(text)
        with pytest.raises(RecipeError, match=message):
            load_recipes(path)


def test_shipped_sweeps_expand_to_their_grids():
    budget = load_recipes("recipes/sst2_budget_prompt_tuning.py")
    assert len(budget) == 12 and {(r.train.max_train_samples, r.method.num_virtual_tokens) for r in budget} == {
        (n, v) for n in (500, 1000, 2000, 4000) for v in (5, 10, 20)}
    rank = load_recipes("recipes/sst2_rank_lora.py")
    assert len(rank) == 9 and {r.method.r for r in rank} == {2, 8, 32}


def test_cli_only_trains_the_named_member_and_recipe_lists_them(tiny_bert, shared_data, tmp_path, env):
    listing = run(["recipe", "recipes/sst2_rank_lora.py"], env).stdout
    assert "9 recipes" in listing and "sst2-rank-5-lora" in listing and "method.r=8, train.learning_rate=0.001" in listing
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=2) if not o.startswith("train.max_train_samples")
            for a in ("--set", o)]
    out = run(["train", "recipes/sst2_rank_lora.py", "--only", "sst2-rank-5-lora", *sets,
               "--output-dir", str(tmp_path / "run"), "--push", "--no-progress"], env)
    assert "published sst2-rank-5-lora" in out.stdout and "sst2-rank-4-lora" not in out.stdout + out.stderr
    published = env["ZOO_HOME"] + "/hub"
    (meta_file,) = [p for p in __import__("pathlib").Path(published).rglob("zoo.json") if "sst2-rank-5-lora" in str(p)]
    meta = json.loads(meta_file.read_text())
    assert meta["sweep"] == {"family": "sst2-rank-lora", "grid": {"method.r": [2, 8, 32],
                             "train.learning_rate": [3e-4, 1e-3, 3e-3]}, "point": {"method.r": 8, "train.learning_rate": 1e-3}}
    card = (meta_file.parent / "README.md").read_text()
    assert "## Sweep" in card and "`method.r=8`" in card and "sst2-rank-lora" in card
    bad = run(["train", "recipes/sst2_rank_lora.py", "--only", "sst2-rank-10-lora", *sets], env, check=False)
    assert bad.returncode == 2 and "no such recipe" in bad.stderr and "sst2-rank-1-lora" in bad.stderr
    swept = run(["train", "recipes/sst2_rank_lora.py", "--set", "method.r=4"], env, check=False)
    assert swept.returncode == 2 and "swept by sst2-rank-lora" in swept.stderr
