"""A stranger's record, as zoo.json (local hub) or card metadata (Hub listing): every number finite and bounded,
prompts plain format strings over plain fields, labels present for a classifier, the card's shape the zoo's.
Whatever it holds, `zoo list`, `zoo report`, the Space's Results tab and short-name loads either skip the record
or show it; none of them fails on it (a huge integer crashed all four with OverflowError)."""

from __future__ import annotations

import json
import math

import pytest

from zoo.artifact.card import headline_metric
from zoo.artifact.record import AdapterRecord
from zoo.catalogue.table import task_tables
from zoo.config.generation import check_generation, number_problem as setting_problem
from zoo.config.prompts import fields_of, prompt_problem
from zoo.data.untrusted import finite, number_problem
from zoo.errors import UnsafeAdapter
from zoo.hub.backends import listing_row
from zoo.hub.local import LocalHub
from zoo.testing import make_adapter

GOOD = {"format": "adapter-zoo/1", "name": "sst2-lora", "base_model": "org/base", "task": "glue/sst2", "method": "lora",
        "labels": ["negative", "positive"], "weights": "adapter_model.safetensors",
        "metrics": {"validation": {"accuracy": 0.9}}, "efficiency": {"trainable_params": 10, "total_params": 1000}}
CAUSAL = {**GOOD, "name": "sst2-icl", "method": "icl", "task_type": "CAUSAL_LM", "weights": None,
          "prompt": {"template": "Review: {text}", "chat": False, "shots": 1, "answer_prefix": ""},
          "examples": [{"text": "fine", "output": "positive"}]}
HUGE = 10 ** 400


@pytest.mark.parametrize("value, ok", [(0, True), (-3, True), (2.5, True), (2 ** 63 - 1, True), (2 ** 63, False),
                                       (HUGE, False), (-HUGE, False), (float("nan"), False), (float("inf"), False),
                                       (1e300, False), (True, False), ("1", False), (None, False)])
def test_finite_never_converts_an_integer_to_a_float(value, ok):
    assert finite(value) is ok


def test_number_problem_names_the_first_bad_number_and_bounds_depth():
    assert number_problem({"a": [1, {"b": HUGE}]}) == "a.1.b is not a finite number below 2**63"
    assert number_problem({"x\x1b[2J": math.inf}) == "x?[2J is not a finite number below 2**63"
    deep: list = []
    for _ in range(40):
        deep = [deep]
    assert "nested more than" in number_problem(deep)
    assert number_problem({"a": [1, 2.5, "text", None, True]}) is None


@pytest.mark.parametrize("where, value", [
    ("metrics", {"validation": {"accuracy": HUGE}}), ("metrics", {"validation": {"accuracy": math.nan}}),
    ("efficiency", {"trainable_params": HUGE}), ("baseline", {"majority": {"accuracy": -math.inf}}),
    ("recipe", {"train": {"learning_rate": 1e309}}), ("sweep", {"family": "f", "grid": {"r": [HUGE]}, "point": {"r": 1}}),
])
def test_a_record_with_a_number_no_run_measures_is_refused(where, value):
    with pytest.raises(UnsafeAdapter, match="not a finite number below 2"):
        AdapterRecord.from_dict({**GOOD, where: value})


def test_a_classifier_needs_labels_and_a_free_text_entry_may_have_none():
    with pytest.raises(UnsafeAdapter, match="needs its labels"):
        AdapterRecord.from_dict({**GOOD, "labels": []})
    assert AdapterRecord.from_dict({**CAUSAL, "labels": [], "examples": [], "prompt": None}).labels == ()


@pytest.mark.parametrize("prompt, examples, message", [
    ({"template": "{text:>3000000000}"}, [], "conversion or format spec"),
    ({"template": "{text!r}"}, [], "conversion or format spec"),
    ({"template": "{0}"}, [], "plain name"),
    ({"template": "{text.__class__}"}, [], "plain name"),
    ({"template": ""}, [], "non-empty"),
    ({"chat": False}, [], "template"),
    ({"template": "{text}", "answer_prefix": 5}, [], "answer_prefix must be text"),
    ({"template": "{text}", "system": ["x"]}, [], "system must be text"),
    ({"template": "{text}", "chat": "yes"}, [], "chat must be true or false"),
    ({"template": "{text}", "shots": 10 ** 6}, [], "shots must be an integer"),
    ({"template": "{text}", "evil": 1}, [], "unknown keys"),
    ({"template": "x" * 20_001 + "{text}"}, [], "at most 20,000"),
    ({"template": "{text}"}, [{"text": "a"}], "examples.0. must hold"),
    ({"template": "{text}"}, [{"text": 1, "output": "b"}], "map field names to texts"),
    ({"template": "{text}"}, [{"text": "a", "output": "b"}] * 65, "at most 64"),
    (None, [{"text": "a", "output": "b"}], "prompt must be an object"),
    # loaded, then a KeyError at every request (and, in the Space, for every causal entry asked with it)
    ({"template": "{text}", "template_no_input": "{secret}"}, [], "template_no_input uses field.*secret"),
    ({"template": "{instruction} {input}"}, [{"instruction": "a", "output": "b"}], "examples.0. must hold"),
])
def test_a_prompt_or_example_that_is_not_plain_is_refused(prompt, examples, message):
    with pytest.raises(UnsafeAdapter, match=message):
        AdapterRecord.from_dict({**CAUSAL, "prompt": prompt, "examples": examples})


def test_the_zoo_s_own_prompts_pass():
    from zoo.config.prompts import ALPACA, ALPACA_NO_INPUT

    assert prompt_problem({"template": ALPACA, "template_no_input": ALPACA_NO_INPUT, "chat": True, "system": None,
                           "shots": 0, "answer_prefix": ""}, []) is None
    assert AdapterRecord.from_dict(CAUSAL).examples == ({"text": "fine", "output": "positive"},)
    # Alpaca's: an example without an input is formatted with template_no_input
    assert prompt_problem({"template": ALPACA, "template_no_input": ALPACA_NO_INPUT},
                          [{"instruction": "a", "output": "b"}]) is None
    assert fields_of("{instruction}\n\n{input} {{literal}}") == ["instruction", "input"]


def test_settings_numbers_of_any_size_are_refused_not_raised():
    assert "at most 19 digits" in setting_problem(HUGE, float, "> 0")
    assert "at most 19 digits" in setting_problem(HUGE, int, ">= 1")
    with pytest.raises(UnsafeAdapter, match="temperature must be >= 0.01"):
        check_generation({"temperature": 1e-300}, UnsafeAdapter, "zoo.json")


@pytest.mark.parametrize("validation, shown", [
    ({"accuracy": True}, None), ({"accuracy": math.nan}, None), ({"official": HUGE, "accuracy": 0.5}, ("accuracy", 0.5)),
    ({"accuracy": 0.75}, ("accuracy", 0.75)),
])
def test_the_headline_metric_is_a_finite_figure(validation, shown):
    assert headline_metric(validation) == shown


def test_the_table_shows_no_figure_for_what_no_run_measures():
    rows = task_tables([{**GOOD, "metrics": {"validation": {"accuracy": math.nan}},
                         "efficiency": {"trainable_params": -10, "total_params": HUGE, "train_seconds": math.inf,
                                        "adapter_bytes": 1e300}}])["glue/sst2"]
    row = rows[-1]
    assert (row.value, row.trainable_params, row.trainable_pct, row.train_seconds, row.adapter_mib) == (None,) * 5


CARD = {"base_model": "org/base", "pipeline_tag": "text-classification",
        "zoo": {"name": "sst2-lora", "task": "glue/sst2", "method": "lora", "task_type": "SEQ_CLS",
                "labels": ["negative", "positive"], "trainable_params": 10, "total_params": 1000},
        "model-index": [{"name": "sst2-lora", "results": [{"metrics": [{"type": "accuracy", "value": 0.9}]}]}]}


def test_a_zoo_card_becomes_a_listing_row():
    row = listing_row(json.loads(json.dumps(CARD)), "someone/sst2-lora", "abc", False)
    assert (row["name"], row["task"], row["metrics"], row["efficiency"]["trainable_params"]) == (
        "sst2-lora", "glue/sst2", {"validation": {"accuracy": 0.9}}, 10)
    assert listing_row({**CARD, "model-index": None}, "someone/sst2-lora", "abc", False)["metrics"] == {"validation": {}}


@pytest.mark.parametrize("change", [
    {"zoo": "x"}, {"zoo": ["sst2-lora"]}, {"zoo": {**CARD["zoo"], "method": [1]}},
    {"zoo": {**CARD["zoo"], "task": "\x1b[2J"}}, {"zoo": {**CARD["zoo"], "task": None}},
    {"zoo": {**CARD["zoo"], "task_type": "EVIL"}}, {"zoo": {**CARD["zoo"], "labels": "negative"}},
    {"zoo": {**CARD["zoo"], "labels": [{"a": 1}]}}, {"zoo": {**CARD["zoo"], "trainable_params": HUGE}},
    {"zoo": {**CARD["zoo"], "total_params": "many"}}, {"base_model": ["../x"]}, {"base_model": 5},
    {"model-index": ["x"]}, {"model-index": {"results": []}}, {"model-index": [{"results": "abc"}]},
    {"model-index": [{"results": [{"metrics": [{"type": "accuracy", "value": HUGE}]}]}]},
    {"model-index": [{"results": [{"metrics": [{"type": "accuracy", "value": "0.9"}]}]}]},
    {"model-index": [{"results": [{"metrics": "accuracy"}]}]}, {"model-index": [{"results": [5]}]},
])
def test_a_card_not_of_the_zoo_s_shape_is_never_listed(change):
    assert listing_row({**CARD, **change}, "someone/x", "abc", False) is None


def test_the_local_hub_lists_around_a_damaged_record_and_the_report_reads_the_rest(tiny_bert, tmp_path):
    hub = LocalHub(tmp_path / "hub")
    for name in ("sst2-lora", "sst2-lora-huge"):
        hub.push(make_adapter(str(tiny_bert), tmp_path / name, name=name, method="lora", labels=["negative", "positive"]))
    record = next(hub.root.glob("*/sst2-lora-huge/current"))
    data = json.loads((record / "zoo.json").read_text())
    data["metrics"] = {"validation": {"accuracy": HUGE}}
    (record / "zoo.json").write_text(json.dumps(data))
    assert [r["name"] for r in hub.list()] == ["sst2-lora"]


@pytest.mark.parametrize("raw, says", [
    ("NaN", "not valid JSON"), ("[1]", "JSON object"), ('{"peft_type": "LORA", "r": 1e400}', "not a finite number"),
    ('{"peft_type": "LORA", "r": "8", "target_modules": ["q_proj"]}', "not a LoRA rank"),
    ('{"peft_type": "LORA", "r": 8, "target_modules": [1]}', "does not name modules"),
    ('{"peft_type": "LORA", "r": 8, "target_modules": {"q_proj": 1}}', "does not name modules"),
    ('{"peft_type": "\\u001b[2J' + "x" * 500 + '"}', "is not LORA"),
])
def test_the_vllm_export_refuses_a_strangers_adapter_config_in_words(tmp_path, raw, says):
    from zoo.server.vllm import refusal

    (tmp_path / "adapter_config.json").write_text(raw)
    why, _ = refusal({"task_type": "CAUSAL_LM", "method": "lora"}, tmp_path)
    assert says in why and len(why) < 200
