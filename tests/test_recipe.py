"""Recipes load by path, follow the naming rule, and take type-checked --set overrides."""

from __future__ import annotations

import pytest
from peft import LoraConfig, VeraConfig

from tests.conftest import RECIPES
from zoo import Recipe, TrainArgs, apply_overrides, load_recipe, load_recipes
from zoo.config.recipe import snake_case
from zoo.errors import RecipeError, UnknownMethod, UnknownTask
from zoo.methods import METHODS, of_recipe


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_is_valid_and_named_after_its_file(path):
    found = load_recipes(path)
    for recipe in found:
        assert recipe.name.endswith("-" + recipe.method_name)
        assert recipe.description, "the recipe's docstring becomes its card description"
        assert of_recipe(recipe).name == recipe.method_name
    if len(found) == 1:
        assert snake_case(found[0].name) == path.stem
        assert load_recipe(path) == found[0]
    else:  # a family or a sweep: <prefix>_<method>.py holds <prefix>-...-<method> adapters
        method = snake_case(found[0].method_name)
        prefix = path.stem[: -len(method) - 1]
        assert path.stem.endswith("_" + method)
        assert all(snake_case(r.name).startswith(prefix + "_") and snake_case(r.name).endswith("_" + method) for r in found)


def test_every_method_has_an_sst2_recipe():
    names = {r.name for p in RECIPES for r in load_recipes(p)}
    # QLoRA's recipes are on decoders (alpaca_qlora, mnli_llama3_qlora): a 4-bit MiniLM is no baseline anyone runs
    assert {f"sst2-{m}" for m in METHODS if m not in ("icl", "qlora")} <= names
    assert {"alpaca-qlora", "mnli-llama3-qlora"} <= names
    assert {"sst2-zero-shot-icl", "sst2-3-shot-icl"} <= names
    assert {"rte-lora", "mnli-lora", "mnli-full", "mnli-p-tuning"} <= names


def test_three_tasks_have_the_full_method_table_and_the_catalogue_its_rows():
    names = {r.name for p in RECIPES for r in load_recipes(p)}
    classification = ("full", "last-layers", "linear-probe", "lora", "ia3", "prompt-tuning", "p-tuning", "prefix-tuning")
    for task in ("sst2", "rte", "tweet-emotion"):
        assert {f"{task}-{m}" for m in classification} <= names, task
    assert {f"tweet-stance-{t}-lora" for t in ("abortion", "atheism", "climate", "feminist", "hillary")} <= names
    assert {"tweet-emotion-zero-shot-icl", "tweet-emotion-3-shot-icl"} <= names
    assert {f"tweet-{t}-lora" for t in ("emoji", "emotion", "hate", "irony", "offensive")} <= names


def test_mnli_recipes_follow_the_homework_settings():
    lora, full, ptune = (load_recipe(f"recipes/mnli_{m}.py") for m in ("lora", "full", "p_tuning"))
    assert lora.base_model == full.base_model == ptune.base_model == "FacebookAI/roberta-large"
    assert (lora.method.r, lora.method.lora_alpha, lora.method.lora_dropout) == (8, 16, 0.1)
    assert (full.train.learning_rate, full.train.batch_size) == (2e-5, 4)
    assert lora.train.learning_rate == 2e-5 and lora.task == "glue/mnli"


def test_overrides_are_typed_and_nested():
    recipe = load_recipe("recipes/sst2_lora.py")
    out = apply_overrides(recipe, ["train.epochs=1", "train.max_train_samples=2000", "method.r=4",
                                   "method.target_modules=query,value", "seed=7", "train.max_grad_norm=None",
                                   "train.group_by_length=false"])
    assert (out.train.epochs, out.train.max_train_samples, out.method.r, out.seed) == (1.0, 2000, 4, 7)
    assert set(out.method.target_modules) == {"query", "value"}
    assert out.train.max_grad_norm is None and out.train.group_by_length is False
    assert recipe.train.epochs == 1 and recipe.method.r == 16, "the original recipe is untouched"


@pytest.mark.parametrize("assignment, message", [
    ("train.epochz=1", "unknown key 'epochz'"),
    ("nope=1", "unknown key 'nope'"),
    ("train.epochs=abc", "train.epochs='abc': expected a number"),
    ("method.r=1.5", "method.r='1.5': expected an integer"),
    ("train.group_by_length=maybe", "expected true or false"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("name=Bad Name", "kebab case"),
    ("task=glue/nope", "unknown task 'glue/nope'"),
    ("train", "expected KEY=VALUE"),
    ("train=3", "is a group"),
])
def test_bad_overrides_name_the_key(assignment, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        apply_overrides(load_recipe("recipes/sst2_lora.py"), [assignment])


def test_bad_recipe_files(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("from zoo import Recipe\nrecipe = Recipe(name='x'\n")
    with pytest.raises(RecipeError, match=r"broken.py:\d+: syntax error"):
        load_recipe(broken)
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(RecipeError, match="defines no `recipe`"):
        load_recipe(empty)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.py")


def test_unknown_method_and_task():
    with pytest.raises(UnknownMethod, match="VeraConfig.*LoraConfig"):  # named by the rule, unknown to zoo.methods
        of_recipe(Recipe(name="sst2-vera", base_model="x", task="glue/sst2", method=VeraConfig()))
    with pytest.raises(UnknownMethod, match="str"):
        Recipe(name="sst2-lora", base_model="x", task="glue/sst2", method="lora")
    with pytest.raises(UnknownTask, match="known tasks: .*glue/sst2"):
        Recipe(name="foo-lora", base_model="x", task="foo", method=LoraConfig())
    with pytest.raises(RecipeError, match="must end with the method"):
        Recipe(name="sst2-ia3", base_model="x", task="glue/sst2", method=LoraConfig())
    with pytest.raises(RecipeError, match="warmup_ratio"):
        TrainArgs(warmup_ratio=1.5)


def test_describe_lists_every_settable_key_with_help():
    from zoo.config.overrides import describe

    rows = {key: (value, kind, text) for key, value, kind, text in describe(load_recipe("recipes/sst2_lora.py"))}
    assert rows["train.epochs"] == ("1", "float", "passes over the training set")
    assert rows["method.r"][:2] == ("16", "int")
    assert "seed" in rows and "train" not in rows
    recipe = load_recipe("recipes/sst2_lora.py")
    for key in ("train.epochs", "train.batch_size", "method.r", "method.lora_dropout", "seed", "train.max_train_samples"):
        assert apply_overrides(recipe, [f"{key}={rows[key][0]}"]) == recipe, key
