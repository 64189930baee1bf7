"""The exact shortcuts taken while training (train.exact_shortcuts): LoRA fused into the base layer's matrix
product (zoo.training.fused_lora) and a BERT or RoBERTa classifier's last layer for the first token only
(zoo.training.first_token). Each computes the same function and gradients where it applies, leaves the model's
own forward everywhere else, and leaves no trace in what a run publishes."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from tests.conftest import ROOT, quick_overrides
from zoo import apply_overrides, load_recipe
from zoo.config.recipe import recipe_fingerprint
from zoo.training.first_token import first_token_last_layer, restore_last_layer
from zoo.training.fused_lora import (
    _fusable,
    cast_frozen_bases,
    drop_frozen_casts,
    fuse_lora_forward,
    training_shortcuts,
    unfuse_lora_forward,
)


def lora_classifier(tiny_bert, **config):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(  # no dropout: outputs comparable in train mode
        tiny_bert, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings = dict(task_type="SEQ_CLS", r=4, lora_alpha=12, lora_dropout=0.0, target_modules=["query", "value", "dense"])
    model = get_peft_model(model, LoraConfig(**{**settings, **config}))
    for name, p in model.named_parameters():  # B starts at zero: give the branch something to add
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.2)
    return model


def batch(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    b = tokenizer(["a fine film , really", "not good at all , and long", "it is"], padding=True, return_tensors="pt")
    b["labels"] = torch.tensor([0, 1, 2])
    return b


def run(model, b):
    model.zero_grad()
    out = model(**b)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_the_fused_forward_computes_what_pefts_does(tiny_bert):
    model, b = lora_classifier(tiny_bert), batch(tiny_bert)
    model.train()
    logits, grads = run(model, b)
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    assert fuse_lora_forward(model) == len(layers) > 0
    calls = []
    for layer in layers:  # every layer takes the fused path on this batch
        layer.register_forward_hook(lambda m, args, out: calls.append(_fusable(m, args[0]) is not None))
    fused_logits, fused_grads = run(model, b)
    assert calls and all(calls)
    torch.testing.assert_close(fused_logits, logits, rtol=1e-5, atol=1e-6)
    assert fused_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(fused_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
    unfuse_lora_forward(model)
    assert not any("forward" in vars(m) for m in layers)
    torch.testing.assert_close(run(model, b)[0], logits)


def test_the_fused_forward_draws_loras_dropout_as_pefts_does(tiny_bert):
    model, b = lora_classifier(tiny_bert, lora_dropout=0.3), batch(tiny_bert)
    model.train()
    torch.manual_seed(7)
    logits, grads = run(model, b)
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    fuse_lora_forward(model)
    calls = []
    for layer in layers:
        layer.register_forward_hook(lambda m, args, out: calls.append(_fusable(m, args[0]) is not None))
    torch.manual_seed(7)  # the same generator state: the same masks, drawn in the same order
    fused_logits, fused_grads = run(model, b)
    assert calls and all(calls)
    torch.testing.assert_close(fused_logits, logits, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(fused_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
    torch.manual_seed(8)
    assert not torch.allclose(run(model, b)[0], logits)  # the dropout is really drawn


@pytest.mark.parametrize("case", ["dora", "lora_bias", "disabled", "mixed_batch", "autocast", "two_adapters"])
def test_what_the_fused_forward_does_not_cover_goes_through_pefts_forward(tiny_bert, case):
    config = {"dora": {"use_dora": True}, "lora_bias": {"lora_bias": True}}.get(case, {})
    model, b = lora_classifier(tiny_bert, **config), batch(tiny_bert)
    model.eval()  # dropout off: PEFT's own output is deterministic, so the two can be compared
    with torch.no_grad():
        if case == "two_adapters":
            model.add_adapter("other", LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query", "value"]))
            for layer in model.modules():  # both active in the LoRA layers (the head holds one at a time)
                if type(layer) is LoraLinear:
                    layer.set_adapter(["default", "other"])
        expected = model(**b).logits if case not in ("disabled", "mixed_batch", "autocast") else None
        fuse_lora_forward(model)
        layer = next(m for m in model.modules() if type(m) is LoraLinear)
        x = torch.randn(2, 5, layer.in_features)
        if case == "disabled":
            with model.disable_adapter():
                assert _fusable(layer, x) is None
                unfused = model(**b).logits
            unfuse_lora_forward(model)
            with model.disable_adapter():
                torch.testing.assert_close(unfused, model(**b).logits, rtol=0, atol=0)
            return
        if case == "mixed_batch":  # the registry's mixed batches pass adapter_names: PEFT's forward
            names = ["default", "__base__", "default"]
            got = model(**b, adapter_names=names).logits
            unfuse_lora_forward(model)
            torch.testing.assert_close(got, model(**b, adapter_names=names).logits, rtol=0, atol=0)
            return
        if case == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert _fusable(layer, x) is None
                got = model(**b).logits
            unfuse_lora_forward(model)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                torch.testing.assert_close(got, model(**b).logits, rtol=0, atol=0)
            return
        assert _fusable(layer, x) is None
        torch.testing.assert_close(model(**b).logits, expected, rtol=0, atol=0)


def test_a_conv1d_base_layer_is_left_to_peft(tiny_gpt2):
    """GPT-2's projections are Conv1D (weights stored transposed, PEFT's fan_in_fan_out): not fused."""
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2),
                           LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        fuse_lora_forward(model)
        layers = [m for m in model.modules() if type(m) is LoraLinear]
        assert layers and all(_fusable(m, torch.randn(1, 4, m.in_features)) is None for m in layers)
        torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=0, atol=0)


def test_exact_shortcuts_change_neither_the_fingerprint_nor_what_a_run_publishes(tiny_bert, shared_data, tmp_path):
    from zoo.training import train

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"),
                             quick_overrides(tiny_bert, shared_data) + ["train.bf16_base=false"])  # float32 both sides
    off = apply_overrides(recipe, ["train.exact_shortcuts=false"])
    assert recipe.train.exact_shortcuts is True
    assert recipe_fingerprint(off) == recipe_fingerprint(recipe)
    results = {}
    for name, r in (("fused", recipe), ("peft", off)):
        results[name] = train(r, output_dir=tmp_path / name, progress=False)
    a, b = results["fused"], results["peft"]
    assert a.metrics["accuracy"] == b.metrics["accuracy"]
    assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], rel=1e-4)
    assert not any("forward" in vars(m) for m in a.model.modules() if type(m) is LoraLinear)
    # a plain PEFT adapter either way: PeftModel loads it, and its config says nothing of the fused forward
    config = json.loads((a.adapter_dir / "adapter_config.json").read_text())
    assert "fused" not in json.dumps(config)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    loaded = PeftModel.from_pretrained(base, a.adapter_dir)
    assert not any("forward" in vars(m) for m in loaded.modules() if type(m) is LoraLinear)


def first_token_model(folder, method=None):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if method is not None:
        model = get_peft_model(model, method)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.2)
    model.train()
    return model


@pytest.mark.parametrize("base", ["tiny_bert", "tiny_roberta"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_last_layer_for_the_first_token_only_gives_the_same_logits_and_gradients(base, method, tiny_bert, request):
    folder = request.getfixturevalue(base)
    config = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "key", "value", "dense"]) \
        if method == "lora" else None
    model, b = first_token_model(folder, config), batch(tiny_bert)  # three rows of three lengths: padding masked
    logits, grads = run(model, b)
    assert first_token_last_layer(model)
    layer = next(m for m in model.modules() if type(m).__name__.endswith("Encoder")).layer[-1]
    rows = []
    layer.register_forward_hook(lambda m, args, out: rows.append(out.shape[1]))
    cut_logits, cut_grads = run(model, b)
    assert rows == [1]  # the last layer computed one row per example
    torch.testing.assert_close(cut_logits, logits, rtol=1e-5, atol=1e-6)
    assert cut_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(cut_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
    restore_last_layer(model)
    rows.clear()
    run(model, b)
    assert rows == [b["input_ids"].shape[1]] and "forward" not in vars(layer)


def test_the_first_token_shortcut_is_not_taken_where_it_does_not_hold(tiny_bert, tiny_llama):
    # a decoder's classifier reads the last token: not on the allow-list
    assert not first_token_last_layer(AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=3))
    # prefix tuning hands every layer a cache: the layer's own forward runs, the logits are the same
    from peft import PrefixTuningConfig

    model, b = first_token_model(tiny_bert, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3)), batch(tiny_bert)
    with torch.no_grad():
        expected = model(**b).logits
        assert first_token_last_layer(model)
        torch.testing.assert_close(model(**b).logits, expected, rtol=0, atol=0)


BF16 = "_zoo_bf16_base"


@pytest.fixture
def casts(monkeypatch):
    """bf16 taken as native (the path runs on any CPU); the list of what each cast_frozen_bases call cast."""
    import zoo.training.fused_lora as fused

    counts = []
    real = fused.cast_frozen_bases
    monkeypatch.setattr(fused, "native_bf16", lambda device: True)
    monkeypatch.setattr(fused, "cast_frozen_bases", lambda model: counts.append(real(model)) or counts[-1])
    return counts


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_bf16_base_multiplies_the_frozen_base_in_bfloat16_and_trains_float32_lora(tiny_bert):
    model, b = lora_classifier(tiny_bert), batch(tiny_bert)
    model.train()
    logits, grads = run(model, b)
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    bases = {id(m.base_layer) for m in layers}
    plain = [m for name, m in model.named_modules() if type(m) is torch.nn.Linear and id(m) not in bases]
    frozen = [m for m in plain if not m.weight.requires_grad]  # the keys, the pooler: no LoRA on them
    assert frozen and len(frozen) < len(plain)  # the head is trained
    fuse_lora_forward(model)
    assert cast_frozen_bases(model) == len(layers) + len(frozen)
    for layer in layers:
        weight, bias = vars(layer)[BF16]
        assert weight.dtype == bias.dtype == torch.bfloat16 and not weight.requires_grad
        assert torch.equal(weight, layer.base_layer.weight.detach().to(torch.bfloat16))
        assert vars(layer.base_layer)[BF16] is vars(layer)[BF16]  # one copy, PEFT's fallback path uses it too
    for linear in plain:
        assert (BF16 in vars(linear) and "forward" in vars(linear)) == (linear in frozen)
    low_logits, low_grads = run(model, b)
    assert low_logits.dtype == torch.float32 and not torch.equal(low_logits, logits)  # rounded: really bf16 products
    torch.testing.assert_close(low_logits, logits, rtol=0.05, atol=0.05)
    assert low_grads.keys() == grads.keys()
    for name in grads:  # the trained tensors and their gradients stay float32, pointing where float32's do
        assert low_grads[name].dtype == torch.float32
        assert cosine(low_grads[name], grads[name]) > 0.99, name
    assert all(p.dtype == torch.float32 for p in model.parameters())
    drop_frozen_casts(model)
    unfuse_lora_forward(model)
    assert not any(BF16 in vars(m) or "forward" in vars(m) for m in model.modules())
    torch.testing.assert_close(run(model, b)[0], logits, rtol=0, atol=0)


def test_bf16_base_leaves_trained_layers_and_a_causal_lms_logits_in_float32(tiny_bert, tiny_llama):
    model = lora_classifier(tiny_bert)
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    layers[0].base_layer.weight.requires_grad_(True)  # trained, so a copy made once would go stale
    cast_frozen_bases(model)
    assert BF16 not in vars(layers[0]) and BF16 not in vars(layers[0].base_layer)
    assert all(BF16 in vars(m) for m in layers[1:])
    head = model.base_model.model.classifier.modules_to_save["default"]
    assert BF16 not in vars(head) and "forward" not in vars(head)
    lm = AutoModelForCausalLM.from_pretrained(tiny_llama)
    lm.requires_grad_(False)
    assert cast_frozen_bases(lm) > 0
    assert BF16 not in vars(lm.get_output_embeddings())
    drop_frozen_casts(lm)
    assert not any(BF16 in vars(m) or "forward" in vars(m) for m in lm.modules())


def test_bf16_base_is_switched_on_only_where_native_and_always_off_after(tiny_bert, monkeypatch, capsys):
    import zoo.training.fused_lora as fused

    assert fused.native_bf16("meta") is False
    model = lora_classifier(tiny_bert)
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    monkeypatch.setattr(fused, "native_bf16", lambda device: False)
    with training_shortcuts(model, exact=False, bf16_base=True, name="sst2-lora"):
        assert not any(BF16 in vars(m) or "forward" in vars(m) for m in model.modules())  # float32, PEFT's own forward
    out = capsys.readouterr().out
    assert "sst2-lora: train.bf16_base is set, but bf16 matrix products are not native on cpu" in out
    assert "training in float32" in out
    monkeypatch.setattr(fused, "native_bf16", lambda device: True)
    with pytest.raises(RuntimeError, match="interrupted"):
        with training_shortcuts(model, exact=False, bf16_base=True):
            assert all(BF16 in vars(m) and "forward" in vars(m) for m in layers)
            raise RuntimeError("interrupted")
    assert not any(BF16 in vars(m) or "forward" in vars(m) for m in model.modules())  # however the block ends


def test_bf16_base_is_part_of_the_recipe_and_publishes_a_float32_plain_peft_adapter(tiny_bert, shared_data, tmp_path,
                                                                                    casts):
    from safetensors.torch import load_file

    from zoo.training import train

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "sst2_lora.py"), quick_overrides(tiny_bert, shared_data))
    assert recipe.train.bf16_base is True
    off = apply_overrides(recipe, ["train.bf16_base=false"])
    assert recipe_fingerprint(off) != recipe_fingerprint(recipe)  # it changes what is trained
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    assert casts and casts[0] > 0
    assert not any(BF16 in vars(m) or "forward" in vars(m) for m in result.model.modules())
    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    assert meta["recipe"]["train"]["bf16_base"] is True
    tensors = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert tensors and all(t.dtype == torch.float32 for t in tensors.values())
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    PeftModel.from_pretrained(base, result.adapter_dir)


def test_bf16_base_trains_a_causal_lora_too(tiny_llama, shared_data, tmp_path, casts):
    from tests.test_causal import quick
    from zoo.training import train

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "alpaca_lora.py"),
                             quick(tiny_llama, shared_data, steps=2) + ["train.bf16_base=true"])
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    assert casts and casts[0] > 0
    assert not any(BF16 in vars(m) or "forward" in vars(m) for m in result.model.modules())
    assert json.loads((result.adapter_dir / "zoo.json").read_text())["recipe"]["train"]["bf16_base"] is True


@pytest.mark.parametrize("recipe_file, message", [("sst2_full.py", "sst2-full trains every weight"),
                                                   ("sst2_zero_shot_icl.py", "trains nothing"),
                                                   ("alpaca_qlora.py", "a QLoRA base is 4-bit")])
def test_bf16_base_is_refused_where_there_is_no_frozen_float32_base(recipe_file, message):
    from zoo.errors import RecipeError

    with pytest.raises(RecipeError, match=f"train.bf16_base .*{message}"):
        apply_overrides(load_recipe(ROOT / "recipes" / recipe_file), ["train.bf16_base=true"])


@pytest.mark.parametrize("recipe_file", ["sst2_ia3.py", "sst2_prompt_tuning.py", "sst2_linear_probe.py",
                                         "sst2_last_layers.py"])
def test_bf16_base_trains_every_method_with_a_frozen_base(recipe_file, tiny_bert, shared_data, tmp_path, casts):
    from zoo.training import train

    extra = ["method.num_layers=1"] if recipe_file == "sst2_last_layers.py" else []  # the tiny base has 2 layers
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / recipe_file),
                             quick_overrides(tiny_bert, shared_data, steps=2) + ["train.bf16_base=true", *extra])
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    assert casts and casts[0] > 0
    assert not any(BF16 in vars(m) or "forward" in vars(m) for m in result.model.modules()
                   if type(m) is torch.nn.Linear)
