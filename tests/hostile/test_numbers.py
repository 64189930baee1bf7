"""Hostile numbers: NaN, infinity, bools, out-of-range values and lengths past the base's positions, from
--set, recipe files and generation settings; and runs whose loss goes non-finite. Each is refused by name,
before training where it can be, and nothing is written or published (issue 13)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import (
    LoHaConfig,
    LoraConfig,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptTuningConfig,
)
from transformers import TrainerCallback

from tests.conftest import ROOT, quick_overrides
from zoo import GenerationArgs, Recipe, TrainArgs, apply_overrides, load_recipe
from zoo.config.generation import MAX_POSITIONS, check_generation, numeric_kind
from zoo.config.overrides import describe
from zoo.config.recipe import LastLayers, first_non_finite
from zoo.errors import BadInput, RecipeError, TrainingDiverged
from zoo.methods import of_config
from zoo.training import train
from zoo.models.layers import max_positions as position_limit
from zoo.training.common import check_positions

ZOO = str(Path(sys.executable).parent / "zoo")
NON_FINITE = ["nan", "NaN", "inf", "-inf", "+Infinity", "1e999"]
# One recipe per method family: every numeric key --set can reach, LoRA's, prompt tuning's, P-tuning's, LoHa's...
RECIPES = ["sst2_lora.py", "sst2_prompt_tuning.py", "sst2_p_tuning.py", "sst2_prefix_tuning.py", "sst2_loha.py",
           "sst2_last_layers.py", "alpaca_lora.py"]


def numeric_keys(path: str) -> list[str]:
    return [key for key, _, kind, _ in describe(load_recipe(ROOT / "recipes" / path))
            if kind.replace("Optional[", "").rstrip("]") in ("int", "float")]


NUMERIC = sorted({(path, key) for path in RECIPES for key in numeric_keys(path)})


def test_every_numeric_key_is_covered():
    keys = {key for _, key in NUMERIC}
    assert {"train.learning_rate", "train.epochs", "train.max_length", "seed", "generation.temperature",
            "method.lora_dropout", "method.lora_alpha", "method.r", "method.num_virtual_tokens",
            "method.encoder_dropout", "method.rank_dropout", "method.num_layers"} <= keys, keys


# ------------------------------------------------------------------------------------- 1. --set and recipe files
@pytest.mark.parametrize("path, key", NUMERIC, ids=[f"{p[:-3]}:{k}" for p, k in NUMERIC])
def test_non_finite_override_is_refused_by_name(path, key):
    recipe = load_recipe(ROOT / "recipes" / path)
    for value in NON_FINITE:
        with pytest.raises(RecipeError, match=rf"--set {key}.*(finite|NaN or infinity)"):
            apply_overrides(recipe, [f"{key}={value}"])


_LORA = load_recipe(ROOT / "recipes" / "sst2_lora.py")
_P_TUNING = load_recipe(ROOT / "recipes" / "sst2_p_tuning.py")


@settings(max_examples=400, deadline=None)
@given(recipe_and_key=st.sampled_from([(_LORA, k) for k in numeric_keys("sst2_lora.py")]
                                      + [(_P_TUNING, k) for k in numeric_keys("sst2_p_tuning.py") if k.startswith("method.")]),
       value=st.one_of(st.floats(), st.integers(min_value=-2**70, max_value=2**70), st.text(max_size=6),
                       st.sampled_from(["nan", "-inf", "1e999", "true", "null", "0x10", "1_000", " 3 ", "-0.0", "1e-400"])))
def test_any_value_is_refused_by_name_or_kept_finite_and_in_range(recipe_and_key, value):
    recipe, key = recipe_and_key
    try:
        out = apply_overrides(recipe, [f"{key}={value}"])
    except RecipeError as e:
        assert f"--set {key}" in str(e) and "\n" not in str(e)
        return
    assert first_non_finite(out, "") is None
    out.validate()  # whatever was accepted passes every rule again


def _peft_recipe(config, **extra) -> Recipe:
    return Recipe(name=f"sst2-{of_config(config).name}", base_model="x", task="glue/sst2", method=config, **extra)


def _numbers(cls) -> dict[str, bool]:
    """The number-declared fields of one of the zoo's groups: name -> whether None ("off") is allowed."""
    hints = typing.get_type_hints(cls)
    return {f.name: numeric_kind(hints[f.name])[1] for f in dataclasses.fields(cls)
            if numeric_kind(hints[f.name])[0] in (int, float)}


TRAIN_NUMBERS, GENERATION_NUMBERS = _numbers(TrainArgs), _numbers(GenerationArgs)
METHOD_NUMBERS = [(LoraConfig, "r"), (LoraConfig, "lora_alpha"), (LoraConfig, "lora_dropout"),
                  (LoHaConfig, "r"), (LoHaConfig, "alpha"), (LoHaConfig, "rank_dropout"), (LoHaConfig, "module_dropout"),
                  (PromptTuningConfig, "num_virtual_tokens"), (PromptEncoderConfig, "encoder_dropout"),
                  (PromptEncoderConfig, "encoder_hidden_size"), (PrefixTuningConfig, "num_virtual_tokens")]


def recipe_with(group: str, name: str, value) -> Recipe:
    """The library path a recipe file takes: its groups built with ``value`` in one field."""
    if group == "train":
        return _peft_recipe(LoraConfig(task_type="SEQ_CLS"), train=TrainArgs(**{name: value}))
    if group == "generation":
        return _peft_recipe(LoraConfig(task_type="SEQ_CLS"), generation=GenerationArgs(**{name: value}))
    if group == "seed":
        return _peft_recipe(LoraConfig(task_type="SEQ_CLS"), seed=value)
    if group == "last-layers":
        return Recipe(name="sst2-last-layers", base_model="x", task="glue/sst2", method=LastLayers(num_layers=value))
    needs = {"num_virtual_tokens": 20} if group in (PromptTuningConfig, PromptEncoderConfig, PrefixTuningConfig) else {}
    return _peft_recipe(group(**{"task_type": "SEQ_CLS", **needs, name: value}))


FIELDS = ([("train", n) for n in TRAIN_NUMBERS] + [("generation", n) for n in GENERATION_NUMBERS] + [("seed", "seed")]
          + [("last-layers", "num_layers")] + METHOD_NUMBERS)
FIELD_IDS = [f"{g if isinstance(g, str) else g.__name__}.{n}" for g, n in FIELDS]


def _label(group, name) -> str:
    return name if group == "seed" else f"{group if group in ('train', 'generation') else 'method'}.{name}"


@pytest.mark.parametrize("group, name", FIELDS, ids=FIELD_IDS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, False, "3", None, [1]],
                         ids=["nan", "inf", "-inf", "True", "False", "str", "None", "list"])
def test_bad_number_in_a_recipe_is_refused_by_name(group, name, value):
    if value is None and ((group == "train" and TRAIN_NUMBERS[name]) or name == "encoder_hidden_size"):
        recipe_with(group, name, value)  # None means "off" (or "from the base") there
        return
    with pytest.raises(RecipeError, match=rf"^{re.escape(_label(group, name))} must be "):
        recipe_with(group, name, value)


def test_a_recipe_file_with_nan_is_a_one_line_error(tmp_path):
    path = tmp_path / "nan.py"
    path.write_text("from peft import LoraConfig\nfrom zoo import Recipe, TrainArgs\n"
                    "recipe = Recipe(name='sst2-lora', base_model='x', task='glue/sst2',\n"
                    "    method=LoraConfig(task_type='SEQ_CLS', rank_pattern={'query': 4}, alpha_pattern={'value': float('nan')}),\n"
                    "    train=TrainArgs(learning_rate=1e-3))\n")
    with pytest.raises(RecipeError, match=r"nan.py: method.alpha_pattern\['value'\] must be a finite number, got nan"):
        load_recipe(path)


@pytest.mark.parametrize("assignment, message", [
    ("train.epochs=-1", "train.epochs must be in [0, 1e6]"),
    ("train.epochs=1e300", "train.epochs must be in [0, 1e6]"),
    ("train.learning_rate=0", "train.learning_rate must be > 0"),
    ("train.learning_rate=-1e-3", "train.learning_rate must be > 0"),
    ("train.weight_decay=-0.1", "train.weight_decay must be >= 0"),
    ("train.warmup_ratio=1", "train.warmup_ratio must be in [0, 1)"),
    ("train.max_grad_norm=-1", "train.max_grad_norm must be >= 0"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.batch_size=-5", "train.batch_size must be >= 1"),
    ("train.batch_size=99999999999999999999999", "train.batch_size must be an integer of at most 19 digits"),
    ("train.gradient_accumulation_steps=0", "train.gradient_accumulation_steps must be >= 1"),
    ("train.eval_steps=0", "train.eval_steps must be >= 1"),
    ("train.early_stopping_patience=0", "train.early_stopping_patience must be >= 1"),
    ("train.max_steps=0", "train.max_steps must be -1 or >= 1"),
    ("train.max_steps=-2", "train.max_steps must be -1 or >= 1"),
    ("train.logging_steps=0", "train.logging_steps must be >= 1"),
    ("train.save_total_limit=0", "train.save_total_limit must be >= 1"),
    ("train.max_train_samples=-1", "train.max_train_samples must be >= 0"),
    ("train.max_generate_samples=-1", "train.max_generate_samples must be >= 0"),
    ("train.max_length=0", "train.max_length must be in [1, 1048576]"),
    ("train.max_length=-5", "train.max_length must be in [1, 1048576]"),
    ("train.max_length=true", "train.max_length='true': expected an integer"),
    ("train.max_length=abc", "train.max_length='abc': expected an integer"),
    ("train.max_length=null", "train.max_length='null': expected an integer"),
    ("train.max_length=1.5", "train.max_length='1.5': expected an integer"),
    (f"train.max_length={MAX_POSITIONS + 1}", "train.max_length must be in [1, 1048576]"),
    ("seed=-1", "seed must be in [0, 4294967295]"),
    ("seed=4294967296", "seed must be in [0, 4294967295]"),
    ("method.r=0", "method.r must be >= 1"),
    ("method.r=true", "method.r='true': expected an integer"),
    ("method.lora_alpha=0", "method.lora_alpha must be > 0"),
    ("method.lora_alpha=inf", "method.lora_alpha='inf': expected an integer, not NaN or infinity"),
    ("method.lora_dropout=1", "method.lora_dropout must be in [0, 1)"),
    ("method.lora_dropout=-0.1", "method.lora_dropout must be in [0, 1)"),
    ("method.layers_to_transform=-1", "method.layers_to_transform must be >= 0"),
    ("method.layers_to_transform=0,-1", "method.layers_to_transform[1] must be >= 0"),
    ("generation.temperature=0", "generation.temperature must be >= 0.01"),
    ("generation.temperature=1e-300", "generation.temperature must be >= 0.01"),
    ("generation.top_p=0", "generation.top_p must be in (0, 1]"),
    ("generation.top_p=1.5", "generation.top_p must be in (0, 1]"),
    ("generation.top_k=-1", "generation.top_k must be >= 0"),
    ("generation.max_new_tokens=0", "generation.max_new_tokens must be in [1, 1048576]"),
    ("generation.num_beams=0", "generation.num_beams must be in [1, 8]"),
    ("generation.num_beams=9", "generation.num_beams must be in [1, 8]"),
    ("generation.repetition_penalty=-1", "generation.repetition_penalty must be > 0"),
])
def test_out_of_range_is_refused_by_name(assignment, message):
    with pytest.raises(RecipeError) as info:
        apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"), [assignment])
    assert message in str(info.value)


@pytest.mark.parametrize("assignment, message", [
    ("method.num_virtual_tokens=0", "method.num_virtual_tokens must be in [1, 1048576]"),
    ("method.encoder_dropout=1", "method.encoder_dropout must be in [0, 1)"),
    ("method.encoder_hidden_size=0", "method.encoder_hidden_size must be >= 1"),
])
def test_out_of_range_prompt_settings_are_refused_by_name(assignment, message):
    with pytest.raises(RecipeError) as info:
        apply_overrides(load_recipe(ROOT / "recipes" / "sst2_p_tuning.py"), [assignment])
    assert message in str(info.value)


def test_values_in_range_still_pass():
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"), [
        "train.epochs=0.5", "train.warmup_ratio=0", "train.max_grad_norm=None", "train.max_grad_norm=0",
        "train.max_length=1", f"train.max_length={MAX_POSITIONS}", "seed=0", "seed=4294967295", "method.lora_dropout=0",
        "generation.top_p=1", "generation.top_k=0", "train.max_steps=-1", "train.max_steps=5", "train.epochs=0"])
    assert (recipe.train.epochs, recipe.train.max_steps, recipe.seed) == (0.0, 5, 4294967295)
    with pytest.raises(RecipeError, match=r"train.epochs must be > 0 \(or set train.max_steps\)"):
        apply_overrides(recipe, ["train.max_steps=-1"])


@pytest.mark.parametrize("key", ["temperature", "top_p", "repetition_penalty", "max_new_tokens", "num_beams", "top_k"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, "1"], ids=["nan", "inf", "-inf", "True", "str"])
def test_generation_settings_from_any_source_are_refused_by_name(key, value):
    with pytest.raises(BadInput, match=rf"generate\(\): generation setting {key} must be"):
        check_generation({key: value}, BadInput, "generate()")


def test_a_recipe_changed_after_it_was_built_is_checked_by_train(tiny_bert, shared_data, tmp_path):
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"), quick_overrides(tiny_bert, shared_data))
    recipe.train.learning_rate = float("nan")  # dataclasses are mutable: train() checks again
    with pytest.raises(RecipeError, match="train.learning_rate must be a finite number, got nan"):
        train(recipe, output_dir=tmp_path / "run", progress=False)
    recipe.train.learning_rate, recipe.method.lora_dropout = 1e-3, float("inf")
    with pytest.raises(RecipeError, match="method.lora_dropout must be a finite number, got inf"):
        train(recipe, output_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- 3. max_length vs positions
def test_position_limits_of_the_test_bases(tiny_bert, tiny_roberta, tiny_llama, tiny_gpt2):
    from transformers import AutoConfig

    limits = {name: position_limit(AutoConfig.from_pretrained(path))
              for name, path in (("bert", tiny_bert), ("roberta", tiny_roberta), ("llama", tiny_llama), ("gpt2", tiny_gpt2))}
    assert limits == {"bert": 512, "roberta": 599, "llama": 1024, "gpt2": 1024}  # RoBERTa's start after padding_idx 0


def _resolved(path):
    from zoo.data.sources import resolve_model

    return resolve_model(str(path))


@pytest.mark.parametrize("recipe_file, base, sets, message", [
    ("sst2_lora.py", "bert", ["train.max_length=513"], "(train.max_length=513 = 513); set train.max_length to at most 512"),
    ("sst2_lora.py", "bert", ["train.max_length=100000"],
     "at most 512 positions (train.max_length=100000 = 100000); set train.max_length to at most 512"),
    ("sst2_lora.py", "roberta", ["train.max_length=600"], "at most 599 positions"),
    ("sst2_prompt_tuning.py", "bert", ["train.max_length=500"],
     "(train.max_length=500 + method.num_virtual_tokens=20 = 520); set train.max_length to at most 492"),
    ("sst2_p_tuning.py", "bert", ["train.max_length=500"], "method.num_virtual_tokens=20"),
    ("sst2_prefix_tuning.py", "bert", ["train.max_length=500"], "method.num_virtual_tokens"),
    ("sst2_prompt_tuning.py", "bert", ["method.num_virtual_tokens=600", "train.max_length=8"],
     "lower method.num_virtual_tokens"),
    ("alpaca_lora.py", "llama", ["train.max_length=1000", "generation.max_new_tokens=64"],
     "(train.max_length=1000 + generation.max_new_tokens=64 = 1064); set train.max_length to at most 960"),
    ("alpaca_prompt_tuning.py", "gpt2", ["train.max_length=1000", "generation.max_new_tokens=8"],
     "train.max_length=1000 + method.num_virtual_tokens=20 + generation.max_new_tokens=8 = 1028"),
])
def test_max_length_past_the_base_positions_is_refused_before_training(recipe_file, base, sets, message, tiny_bert,
                                                                        tiny_roberta, tiny_llama, tiny_gpt2):
    path = {"bert": tiny_bert, "roberta": tiny_roberta, "llama": tiny_llama, "gpt2": tiny_gpt2}[base]
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / recipe_file), [f"base_model={path}", *sets])
    with pytest.raises(RecipeError) as info:
        check_positions(recipe, _resolved(path))
    text = str(info.value)
    assert message in text, text
    assert text.startswith(f"train.max_length={recipe.train.max_length} does not fit base {str(path)!r}")


def test_max_length_at_the_limit_trains_and_reads_a_long_input(tiny_bert, shared_data, tmp_path):
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"),
                             quick_overrides(tiny_bert, shared_data, steps=1) + ["train.max_length=512"])
    check_positions(recipe, _resolved(tiny_bert))  # exactly the table: fine
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    from zoo.serve.loading import load_folder

    long = " ".join(["a gripping film"] * 400)  # 1,200 words, far past 512 tokens
    assert load_folder(result.adapter_dir).predict([long])[0]["label"] in ("negative", "positive")
    too_long = apply_overrides(recipe, ["train.max_length=513"])
    with pytest.raises(RecipeError, match="train.max_length=513 does not fit base"):
        train(too_long, output_dir=tmp_path / "too-long", progress=False)
    assert not (tmp_path / "too-long").exists(), "refused before any data, model or folder"


# ------------------------------------------------------------------------------------- 2. a run that diverges
class PoisonAt(TrainerCallback):
    """A fault: one trained weight becomes NaN at the end of ``step`` (``step=None``: after training ended)."""

    def __init__(self, step):
        self.step = step

    def _poison(self, model):
        with torch.no_grad():
            next(p for p in model.parameters() if p.requires_grad).view(-1)[0] = float("nan")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            self._poison(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.step is None:
            self._poison(model)


def _diverging(tiny_bert, shared_data, recipe_file="sst2_lora.py", extra=()):
    return apply_overrides(load_recipe(ROOT / "recipes" / recipe_file),
                           quick_overrides(tiny_bert, shared_data, steps=3) + list(extra))


@pytest.mark.parametrize("recipe_file, extra, callback, message", [
    ("sst2_lora.py", ["train.learning_rate=1e30"], None, r"training diverged at step [123]: "),
    ("sst2_full.py", ["train.learning_rate=1e30"], None, r"training diverged at step [123]: "),
    ("sst2_lora.py", ["train.weight_decay=1e30", "train.learning_rate=1e3"], None, r"training diverged at step [123]: "),
    ("sst2_lora.py", [], PoisonAt(2), r"training diverged at step 2: 1 trained tensor\(s\) hold NaN or infinity"),
    ("sst2_ia3.py", [], PoisonAt(1), r"training diverged at step 1: "),
    ("sst2_lora.py", [], PoisonAt(None), r"training diverged at step 3: the validation loss is nan"),
], ids=["lora-lr", "full-lr", "weight-decay", "nan-weight-step-2", "ia3-nan-step-1", "nan-after-training"])
def test_a_diverging_run_stops_naming_the_step_and_writes_nothing(recipe_file, extra, callback, message, tiny_bert,
                                                                   shared_data, tmp_path):
    recipe = _diverging(tiny_bert, shared_data, recipe_file, extra)
    with pytest.raises(TrainingDiverged, match=message) as info:
        train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(callback,) if callback else ())
    assert "Lower train.learning_rate" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "adapter").exists()
    assert not list((tmp_path / "run").glob(".adapter.*")), "no temporary folder left behind"


@pytest.mark.parametrize("recipe_file, weights", [("sst2_lora.py", "adapter_model.safetensors"),
                                                   ("sst2_last_layers.py", "trained_layers.safetensors")])
def test_the_last_line_of_defence_refuses_non_finite_weights_at_save(recipe_file, weights, tiny_bert, shared_data,
                                                                     tmp_path, monkeypatch):
    import zoo.training.classifier

    monkeypatch.setattr(zoo.training.classifier, "check_finite_metrics", lambda *a: None)  # a fault the others miss
    recipe = _diverging(tiny_bert, shared_data, recipe_file)
    with pytest.raises(TrainingDiverged, match=f"at step 3: {weights} holds NaN or infinity in "):
        train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(PoisonAt(None),))
    assert not (tmp_path / "run" / "adapter").exists()
    assert not list((tmp_path / "run").glob(".adapter.*")), "the half-built folder is removed"


@pytest.mark.parametrize("event, payload, message", [
    ("on_log", {"logs": {"loss": float("nan"), "learning_rate": 1e-3}}, "the training loss is nan"),
    ("on_log", {"logs": {"loss": float("inf")}}, "the training loss is inf"),
    ("on_evaluate", {"metrics": {"eval_loss": float("nan"), "eval_accuracy": 0.5}}, "the validation loss is nan"),
    ("on_evaluate", {"metrics": {"eval_loss": float("-inf")}}, "the validation loss is -inf"),
])
def test_a_non_finite_loss_alone_stops_the_run(event, payload, message, tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from zoo.training.common import StopOnNonFinite

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=0.5, report_to="none")
    state = TrainerState(global_step=7)
    with pytest.raises(TrainingDiverged, match=rf"at step 7: {message}; nothing was written. Lower train.learning_rate "
                                               r"\(now 0.5\)"):
        getattr(StopOnNonFinite(), event)(args, state, TrainerControl(), **payload)
    getattr(StopOnNonFinite(), event)(args, state, TrainerControl(), **{k: {"loss": 0.7, "eval_loss": 0.7, "grad_norm": float("inf")}
                                                                        for k in payload})  # finite: carries on


def test_a_diverging_causal_run_stops(tiny_llama, shared_data, tmp_path):
    from tests.test_causal import quick

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "alpaca_lora.py"),
                             quick(tiny_llama, shared_data, steps=2) + ["train.learning_rate=1e30"])
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2: the validation loss is nan"):
        train(recipe, output_dir=tmp_path / "run", progress=False)  # weights of 1e30 are finite; their answers are not
    assert not (tmp_path / "run" / "adapter").exists()


# ------------------------------------------------------------------------------------- the CLI, as users run it
def zoo(args, env, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([ZOO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_cli_nan_and_too_long_settings_are_one_line_and_write_nothing(tiny_bert, shared_data, tmp_path):
    env = {"ZOO_HOME": str(tmp_path / "home")}
    quick = quick_overrides(tiny_bert, shared_data)
    proc = zoo(["train", "recipes/sst2_lora.py", *_sets(quick + ["train.learning_rate=nan"]),
                "--output-dir", str(tmp_path / "run"), "--push", "--hub", "local", "--no-progress"], env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == ("error: RecipeError: --set train.learning_rate='nan': "
                                   "expected a finite number, not NaN or infinity"), proc.stderr
    proc = zoo(["train", "recipes/sst2_lora.py", *_sets(quick + ["train.max_length=100000"]),
                "--output-dir", str(tmp_path / "run"), "--push", "--hub", "local", "--no-progress"], env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert (f"error: RecipeError: train.max_length=100000 does not fit base {str(tiny_bert)!r}, which reads at most "
            f"512 positions (train.max_length=100000 = 100000); set train.max_length to at most 512") == errors[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists(), "nothing written, nothing published"


def _files(folder: Path) -> dict:
    """Every file and folder under ``folder`` (hidden ones too), with the bytes of each file."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _hub_state(home: Path) -> dict:
    """Every file under the local hub with its bytes, and where each `current` link points."""
    return {"files": _files(home), "links": {str(p.relative_to(home)): os.readlink(p) for p in home.rglob("current")}}


def test_cli_diverging_push_exits_non_zero_and_keeps_the_published_revision(tiny_bert, shared_data, tmp_path, zoo_home):
    from zoo.hub.local import LocalHub

    run_dir = tmp_path / "run"
    good = apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"), quick_overrides(tiny_bert, shared_data, steps=2))
    LocalHub(zoo_home / "hub").push(train(good, output_dir=run_dir, progress=False).adapter_dir)  # the good revision
    before_hub = _hub_state(zoo_home)
    assert before_hub["links"], "the good run is the current revision"
    before_run = _files(run_dir)

    bad = zoo(["train", "recipes/sst2_lora.py",
               *_sets(quick_overrides(tiny_bert, shared_data, steps=3) + ["train.learning_rate=1e30"]),
               "--output-dir", str(run_dir), "--push", "--hub", "local", "--no-progress"], {"ZOO_HOME": str(zoo_home)})
    assert bad.returncode == 2, bad.stdout + bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "TrainingDiverged: training diverged at step" in errors[0] and "Lower train.learning_rate (now 1e+30)" in errors[0]
    assert "published" not in bad.stdout and "adapter written" not in bad.stdout

    assert _hub_state(zoo_home) == before_hub, "the published revision and its weights are untouched"
    assert not list(zoo_home.rglob(".tmp-*")) and not list(zoo_home.rglob(".current-*"))
    assert _files(run_dir) == before_run, "the previous run's folder (adapter, checkpoints) is untouched"

    from zoo.serve.loading import load_folder

    current = LocalHub(zoo_home / "hub").find(str(tiny_bert), "sst2-lora")  # still answers, from the good weights
    out = load_folder(current).predict(["a gripping film"])[0]
    assert out["label"] in ("negative", "positive") and 0 <= out["score"] <= 1
