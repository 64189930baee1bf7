"""Strangers' adapters: config, zoo.json and tensors must agree; dtypes are converted at load; max_length fits
the base; a tensor nobody uses is refused. Each refusal names what is wrong, loads nothing, and the
registry's other adapters keep answering exactly as before."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.errors import UnsafeAdapter, ZooError
from zoo.hub.local import LocalHub
from zoo.serve.registry import Zoo, clear_shared
from zoo.testing import default_method, make_adapter

TEXTS = ["a gripping, beautifully acted film", "dull and far too long", "it is a film"]
LABELS = ["negative", "positive"]
WEIGHTS = "adapter_model.safetensors"


@pytest.fixture(scope="module")
def good(tiny_bert, tmp_path_factory):
    """One good adapter per served method, written once; tests copy them before damaging the copy."""
    root = tmp_path_factory.mktemp("good")
    out = {}
    for i, method in enumerate(["lora", "ia3", "prompt-tuning", "prefix-tuning", "last-layers"]):
        out[method] = make_adapter(str(tiny_bert), root / method, name=f"sst2-{method}", method=method,
                                   labels=LABELS, seed=i)
    return out


@pytest.fixture(scope="module")
def registry(tiny_bert, good):
    z = Zoo(str(tiny_bert))
    for folder in good.values():
        z.add(folder=folder)
    yield z
    clear_shared()


def damaged(good, method, tmp_path, *, name=None) -> "Path":  # noqa: F821
    folder = tmp_path / f"bad-{method}"
    shutil.copytree(good[method], folder)
    if name:
        edit_json(folder / "zoo.json", name=name)
    return folder


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def edit_tensors(folder, fn, file=WEIGHTS):
    state = load_file(str(folder / file))
    save_file(fn(state) or state, str(folder / file))


def assert_refused_and_others_intact(registry, folder, message, before):
    names = list(registry.names)
    with pytest.raises(ZooError, match=message):
        registry.add(folder=folder)
    assert registry.names == names, "a refused adapter is not registered"
    for name, logits in before.items():
        np.testing.assert_allclose(registry.logits(TEXTS, adapter=name), logits, atol=1e-6)


@pytest.fixture()
def before(registry):
    return {name: registry.logits(TEXTS, adapter=name) for name in registry.names}


# ------------------------------------------------------------------ config, zoo.json and tensors agree
@pytest.mark.parametrize("change, message", [
    ({"r": 4}, "rank 4 .* tensors have rank 8"),
    ({"rank_pattern": {"query": 2}}, "rank 2 .* tensors have rank 8"),
    ({"base_model_name_or_path": "google-bert/bert-base-uncased"}, "base_model_name_or_path .* disagrees"),
    ({"base_model_name_or_path": "/somewhere/else/model"}, "base_model_name_or_path .* disagrees"),
    ({"peft_type": "IA3"}, "adapter_config.json says 'IA3'"),
    ({"task_type": "CAUSAL_LM"}, "task_type"),
])
def test_config_that_disagrees_with_tensors_or_zoo_json_is_refused(registry, good, tmp_path, before, change, message):
    folder = damaged(good, "lora", tmp_path, name="sst2-lora-bad")
    edit_json(folder / "adapter_config.json", **change)
    assert_refused_and_others_intact(registry, folder, message, before)


def test_the_zoo_records_the_base_id_for_plain_peft(good, tiny_bert):
    """What PEFT writes as base_model_name_or_path is zoo.json's base id, not a folder of the training machine."""
    for method in ("lora", "ia3", "prompt-tuning", "prefix-tuning"):
        config = json.loads((good[method] / "adapter_config.json").read_text())
        record = json.loads((good[method] / "zoo.json").read_text())
        assert config["base_model_name_or_path"] == record["base_model"]


@pytest.mark.parametrize("change, message", [
    ({"base_model_name_or_path": "org/another-model"}, "base_model_name_or_path 'org/another-model' disagrees"),
    # the plain-PEFT path reads the same checked config: a backtracking pattern never reaches PEFT's re.fullmatch
    ({"target_modules": "(.*q.*)+uery"}, "repeats a group"),
])
def test_peft_fallback_refuses_a_base_that_disagrees(tiny_bert, tmp_path, zoo_home, change, message):
    """DoRA is served by plain PEFT on a base of its own; the same agreement and checks hold there."""
    folder = make_adapter(str(tiny_bert), tmp_path / "dora", name="sst2-dora", labels=LABELS,
                          method=default_method("lora", use_dora=True))
    edit_json(folder / "adapter_config.json", **change)
    LocalHub().push(folder)
    with pytest.raises(UnsafeAdapter, match=message):
        zoo.load(str(tiny_bert), adapter="sst2-dora")


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("only_head", [False, True])
def test_half_and_double_precision_adapters_are_converted_at_load(registry, good, tmp_path, before, dtype, only_head):
    method = "lora"
    folder = damaged(good, method, tmp_path, name=f"sst2-{method}-cast")
    edit_tensors(folder, lambda s: {k: (v.to(dtype) if (not only_head or "classifier" in k) else v) for k, v in s.items()})
    with pytest.warns(UserWarning, match=f"stores {str(dtype).replace('torch.', '')} weights; converted to the base's float32"):
        registry.add(folder=folder)
    try:
        mixed = registry.predict(TEXTS * 2, adapters=["sst2-lora-cast"] * 3 + ["sst2-lora", "sst2-ia3", "sst2-prefix-tuning"])
        want = registry.predict(TEXTS, adapter="sst2-lora")
        atol = 2e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4  # a mixed batch pads differently
        for got, ref in zip(mixed[:3], want):
            assert abs(got["scores"]["positive"] - ref["scores"]["positive"]) < atol
        for name, logits in before.items():  # batch-mates are untouched
            np.testing.assert_allclose(registry.logits(TEXTS, adapter=name), logits, atol=1e-6)
    finally:
        registry.remove("sst2-lora-cast")


def test_double_precision_that_overflows_float32_is_refused(registry, good, tmp_path, before):
    folder = damaged(good, "ia3", tmp_path, name="sst2-ia3-huge")
    edit_tensors(folder, lambda s: {k: v.double() * (1e300 if "ia3" in k else 1) for k, v in s.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_refused_and_others_intact(registry, folder, "NaN or infinite values .as float32", before)


def test_integer_tensors_are_refused(registry, good, tmp_path, before):
    folder = damaged(good, "lora", tmp_path, name="sst2-lora-int")
    edit_tensors(folder, lambda s: {k: (v.to(torch.int32) if "lora_A" in k else v) for k, v in s.items()})
    assert_refused_and_others_intact(registry, folder, "dtype torch.int32", before)


# ------------------------------------------------------------------ max_length
@pytest.mark.parametrize("value, message", [
    (100000, "max_length 100000 .* base .* has 512"),
    (510, r"max_length 510 \+ 8 virtual tokens = 518 positions"),
    ("abc", "max_length must be an integer"), (None, "max_length must be an integer"),
    (-5, "max_length must be an integer"), (0, "max_length must be an integer"),
    (True, "max_length must be an integer"), (1.5, "max_length must be an integer"), (2**40, "max_length must be"),
])
def test_max_length_out_of_the_bases_positions_is_refused_at_load(registry, good, tmp_path, before, value, message):
    folder = damaged(good, "prompt-tuning", tmp_path, name="sst2-prompt-long")
    edit_json(folder / "zoo.json", max_length=value)
    assert_refused_and_others_intact(registry, folder, message, before)


def test_max_length_is_checked_when_loaded_on_a_base_of_its_own(tiny_bert, tmp_path, zoo_home):
    folder = make_adapter(str(tiny_bert), tmp_path / "dora", name="sst2-dora", labels=LABELS,
                          method=default_method("lora", use_dora=True))
    edit_json(folder / "zoo.json", max_length=4096)
    LocalHub().push(folder)
    with pytest.raises(UnsafeAdapter, match="max_length 4096 = 4096 positions, but base .* has 512"):
        zoo.load(str(tiny_bert), adapter="sst2-dora")


def test_long_inputs_are_truncated_at_the_records_max_length(registry):
    long = " ".join(["film"] * 5000)
    assert len(registry.predict([long, "good"], adapters=["sst2-prompt-tuning", "sst2-lora"])) == 2


# ------------------------------------------------------------------ tensors nobody uses
@pytest.mark.parametrize("method, extra", [
    ("lora", "base_model.model.bert.encoder.layer.0.attention.self.query.lora_C.weight"),
    ("lora", "base_model.model.classifier.extra.weight"),
    ("lora", "something.else"),
    ("ia3", "base_model.model.classifier.bias_extra"),
    ("prompt-tuning", "base_model.prompt_encoder.extra"),
    ("prefix-tuning", "base_model.model.classifier.out_proj.weight"),
    ("last-layers", "bert.encoder.layer.1.attention.self.extra.weight"),
    ("last-layers", "classifier.extra"),
])
def test_unknown_tensors_are_refused_by_the_registry(registry, good, tmp_path, before, method, extra):
    folder = damaged(good, method, tmp_path, name=f"sst2-{method}-extra")
    file = "trained_layers.safetensors" if method == "last-layers" else WEIGHTS
    edit_tensors(folder, lambda s: {**s, extra: torch.zeros(2, 2)}, file)
    with pytest.raises(ZooError, match="unexpected tensor|no place|inconsistent|have no place|does not fit"):
        registry.add(folder=folder)
    assert f"sst2-{method}-extra" not in registry.names
    for name, logits in before.items():
        np.testing.assert_allclose(registry.logits(TEXTS, adapter=name), logits, atol=1e-6)


def test_zoo_load_never_falls_back_to_a_peft_that_ignores_tensors(tiny_bert, good, tmp_path, zoo_home):
    """An adapter the registry does not serve (here: an unknown tensor) may go to plain PEFT only if PEFT uses
    every tensor of the file; PEFT ignores unknown keys, so the load is refused, never served with a warning."""
    folder = damaged(good, "lora", tmp_path, name="sst2-lora-extra")
    edit_tensors(folder, lambda s: {**s, "base_model.model.bert.encoder.layer.0.output.dense.lora_magnitude": torch.ones(32)})
    LocalHub().push(folder)
    with pytest.raises(UnsafeAdapter, match="have no place"):
        zoo.load(str(tiny_bert), adapter="sst2-lora-extra")


def test_peft_fallback_uses_every_tensor_of_a_valid_adapter(tiny_bert, tmp_path, zoo_home):
    folder = make_adapter(str(tiny_bert), tmp_path / "dora", name="sst2-dora", labels=LABELS,
                          method=default_method("lora", use_dora=True))
    LocalHub().push(folder)
    with pytest.warns(UserWarning, match="use_dora"):
        model = zoo.load(str(tiny_bert), adapter="sst2-dora")
    assert len(model.predict(TEXTS)) == 3


# ------------------------------------------------------------------ classes that got through (2026-12-03 review)
# Each is a class, checked once where the file is read: head tensors of the template's shapes, patterns that
# cannot backtrack, numbers that are finite and bounded, JSON that is bounded, prompts that are plain.
@pytest.mark.parametrize("method, tensor, shape, message", [
    ("lora", "classifier.bias", (5,), "head has 5 outputs"),
    ("lora", "classifier.weight", (2, 31), r"shape \(2, 31\)"),
    ("ia3", "classifier.weight", (2, 33), r"shape \(2, 33\)"),
])
def test_a_head_tensor_of_another_shape_is_refused_and_mixed_batches_go_on(registry, good, tmp_path, before,
                                                                           method, tensor, shape, message):
    """A head's bias or input width that disagrees with the base loaded, then failed every shared pass it was in."""
    folder = damaged(good, method, tmp_path, name=f"sst2-{method}-head")
    key = next(k for k in load_file(str(folder / WEIGHTS)) if k.endswith(tensor))
    edit_tensors(folder, lambda s: {**s, key: torch.zeros(shape)})
    assert_refused_and_others_intact(registry, folder, message, before)
    mixed = registry.predict(TEXTS, adapters=["sst2-lora", "sst2-ia3", "sst2-prefix-tuning"])
    assert [p["label"] for p in mixed] == [registry.predict([t], adapter=a)[0]["label"]
                                           for t, a in zip(TEXTS, ["sst2-lora", "sst2-ia3", "sst2-prefix-tuning"])]


def test_a_replaced_block_tensor_of_another_shape_is_refused(registry, good, tmp_path, before):
    folder = damaged(good, "last-layers", tmp_path, name="sst2-last-layers-shape")
    file = "trained_layers.safetensors"
    state = load_file(str(folder / file))
    key = next(k for k in state if k.endswith("output.dense.bias") and "classifier" not in k)
    edit_tensors(folder, lambda s: {**s, key: torch.zeros(s[key].shape[0] + 3)}, file)
    assert_refused_and_others_intact(registry, folder, "has shape", before)


@pytest.mark.parametrize("method, change, message", [
    ("lora", {"rank_pattern": {"([a-z0-9_.]+)+Z": 8}}, "repeats a group"),
    ("lora", {"alpha_pattern": {"(": 8}}, "not a regular expression"),
    # each key is tried on every module inside '(.*\.)?(KEY)$': 4,096 keys of '.*.*.*!' took minutes per load
    ("lora", {"rank_pattern": {f"layer{i}": 8 for i in range(65)}}, "at most 64 module patterns"),
    ("lora", {"alpha_pattern": {".*.*!": 8}}, "more than 1 repetition "),
    ("lora", {"target_modules": "a*b*c*d*e*"}, "more than 3 repetitions"),
    ("lora", {"exclude_modules": "x" * 600}, "1 to 512 characters"),
    ("lora", {"layers_pattern": ["(a|aa)+$"]}, "repeats a group"),
    ("lora", {"lora_alpha": float("nan")}, "NaN is not JSON"),
    ("lora", {"lora_alpha": 1e12}, "lora_alpha must be a number of at most"),
    ("lora", {"lora_alpha": 10 ** 400}, "not a finite number below 2"),
    ("lora", {"alpha_pattern": {"query": 1e300}}, "alpha_pattern"),
    ("lora", {"r": 10 ** 9}, "r must be a number from 0 to"),
    ("ia3", {"feedforward_modules": 5}, "feedforward_modules must be a pattern"),
    ("ia3", {"feedforward_modules": [1]}, "must be a text"),
    ("ia3", {"feedforward_modules": "(.*)*output"}, "repeats a group"),
    ("prompt-tuning", {"num_virtual_tokens": 10 ** 7}, "num_virtual_tokens must be a number"),
    ("prompt-tuning", {"token_dim": True}, "token_dim must be a number"),
])
def test_adapter_config_patterns_sizes_and_scales_are_checked_where_read(registry, good, tmp_path, before, method,
                                                                          change, message):
    """A pattern that backtracks froze the process (PEFT and the registry run them over every module name); sizes
    made PEFT allocate before reading a tensor; a NaN or huge alpha answered NaN."""
    folder = damaged(good, method, tmp_path, name=f"sst2-{method}-config")
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))  # json.dumps writes NaN as NaN
    assert_refused_and_others_intact(registry, folder, message, before)


def test_lora_that_overflows_once_scaled_is_refused(registry, good, tmp_path, before):
    folder = damaged(good, "lora", tmp_path, name="sst2-lora-overflow")
    edit_json(folder / "adapter_config.json", lora_alpha=1e6, r=8)
    edit_tensors(folder, lambda s: {k: (v * 1e36 if "lora_B" in k else v) for k, v in s.items()})
    assert_refused_and_others_intact(registry, folder, "overflows once scaled", before)


@pytest.mark.parametrize("raw, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply|not valid JSON"),
    ('{"name": ' + "9" * 5000 + "}", "not valid JSON"),
    ('{"name": "x", "metrics": {"validation": {"accuracy": 1e400}}}', "not a finite number"),
    ('{"name": "x", "metrics": {"validation": {"accuracy": ' + "9" * 400 + "}}}", "not a finite number"),
    ('{"name": "x", "pad": "' + "x" * (5 << 20) + '"}', "bytes; a record is at most"),
])
def test_zoo_json_that_python_reads_but_no_record_holds_is_refused(registry, good, tmp_path, before, raw, message):
    folder = damaged(good, "lora", tmp_path)
    (folder / "zoo.json").write_text(raw)
    assert_refused_and_others_intact(registry, folder, message, before)


def test_a_classifier_without_labels_is_refused(registry, good, tmp_path, before):
    folder = damaged(good, "lora", tmp_path, name="sst2-lora-nolabels")
    edit_json(folder / "zoo.json", labels=[])
    assert_refused_and_others_intact(registry, folder, "needs its labels", before)
