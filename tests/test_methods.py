"""One module per method, one list of methods; the registry serves only the configurations it implements.

Anything outside a method's allow-list of adapter_config.json fields (DoRA, lora_bias, layer replication,
a field a newer PEFT adds...) is refused by the registry and loads through plain PEFT on a base of its
own, with a warning that names the field, and answers exactly as PEFT does. LoHa, added as one module,
a recipe and this test, is trained, published and served through PEFT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import quick_overrides
from zoo.config.prompts import render_inputs
from zoo.config.recipe import method_name
from zoo.errors import UnsafeAdapter, UnsupportedAdapter
from zoo.hub.local import LocalHub
from zoo.methods import METHODS, get, of_config
from zoo.models.generate import generate_texts
from zoo.serve.loading import AdapterModel
from zoo.serve.registry import AdapterHandle, Zoo, clear_shared
from zoo.testing import make_adapter

TEXTS = ["a gripping, beautifully acted film", "dull and far too long", "it is a film"]
LABELS = ["negative", "positive"]


def peft_logits(base, folder) -> np.ndarray:
    """The adapter through plain PEFT and transformers, without adapter-zoo."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(LABELS))
    model = PeftModel.from_pretrained(model, str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    with torch.inference_mode():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()


@pytest.fixture(autouse=True)
def _fresh_registries():
    yield
    clear_shared()


def test_every_table_of_methods_derives_from_the_one_list():
    from zoo.demo.entries import METHOD_NAMES

    assert METHOD_NAMES == {m.name: m.title for m in METHODS.values()}
    for name, method in METHODS.items():
        assert get(name) is method
        config = method.defaults()
        assert of_config(config, quantized=method.quantized) is method
        if not method.quantized:  # QLoRA is LoRA's config over a 4-bit base
            assert method_name(config) == name, "the config layer's naming rule agrees with the list"
        assert method.text(causal=False).title == method.title and method.summary
        assert method.shares_base == (method.read is not None)
    assert not get("full").shares_base and not get("loha").shares_base and get("icl").shares_base


@pytest.mark.parametrize("field, options", [
    ("use_dora", {"use_dora": True}),
    ("lora_bias", {"lora_bias": True}),
    ("init_lora_weights", {"init_lora_weights": "pissa"}),
])
def test_unserved_lora_fields_load_through_peft_with_a_warning(field, options, tiny_bert, zoo_home):
    from peft import LoraConfig

    folder = make_adapter(str(tiny_bert), zoo_home / field, name="sst2-lora", labels=LABELS, seed=3,
                          method=LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"], **options))
    z = Zoo(str(tiny_bert), hub=LocalHub())
    with pytest.raises(UnsupportedAdapter, match=field):
        z.add(folder=folder)
    LocalHub().push(folder)
    with pytest.warns(UserWarning, match=f"{field}.*base of its own"):
        model = zoo.load(str(tiny_bert), adapter="sst2-lora")
    assert isinstance(model, AdapterModel)
    np.testing.assert_allclose(model.logits(TEXTS), peft_logits(tiny_bert, folder), atol=1e-5)


def test_a_field_the_registry_does_not_know_is_never_served_silently(tiny_bert, zoo_home):
    folder = make_adapter(str(tiny_bert), zoo_home / "new", name="sst2-lora", labels=LABELS, method="lora", seed=4)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_hyperspace": False}))
    with pytest.raises(UnsupportedAdapter, match="use_hyperspace"):
        Zoo(str(tiny_bert), hub=LocalHub()).add(folder=folder)


def test_layer_replication_loads_through_peft(tiny_llama, zoo_home):
    """PEFT replicates decoder layers (Llama's model.layers); the registry does not, so PEFT serves it."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.artifact.record import AdapterRecord

    folder = zoo_home / "replicated"
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(
        task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"], layer_replication=[[0, 2], [1, 2]]))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    AdapterRecord(name="alpaca-lora", base_model=str(tiny_llama), task="tatsu-lab/alpaca", method="lora",
                  weights="adapter_model.safetensors", labels=(), task_type="CAUSAL_LM", text_fields=("instruction", "input"),
                  max_length=64, prompt={"template": "{instruction}", "chat": False},
                  generation={"max_new_tokens": 6}).write(folder)
    with pytest.raises(UnsupportedAdapter, match="layer_replication"):
        Zoo(str(tiny_llama), hub=LocalHub()).add(folder=folder)
    LocalHub().push(folder)
    with pytest.warns(UserWarning, match="layer_replication"):
        loaded = zoo.load(str(tiny_llama), adapter="alpaca-lora")
    assert isinstance(loaded, AdapterModel) and isinstance(loaded.model, PeftModel)
    assert len(loaded.model.base_model.model.model.layers) == 3  # PEFT built the replicated stack
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    inputs = ["Name a colour.", "Give three tips for staying healthy."]
    prompts = render_inputs(loaded.record.prompt, (), tokenizer, inputs)  # the entry's own prompt format
    want = generate_texts(reference, tokenizer, prompts, max_length=64, settings={"max_new_tokens": 6})
    assert loaded.generate(inputs) == want


def test_rank_and_alpha_patterns_are_served_by_the_registry_as_peft_computes_them(tiny_bert, zoo_home):
    from peft import LoraConfig

    folder = make_adapter(str(tiny_bert), zoo_home / "patterns", name="sst2-lora", labels=LABELS, seed=5,
                          method=LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"],
                                            rank_pattern={"query": 8}, alpha_pattern={"value": 32}))
    z = Zoo(str(tiny_bert), hub=LocalHub())
    z.add(folder=folder)  # served on the shared base: these fields are in LoRA's allow-list
    np.testing.assert_allclose(np.stack(z.logits(TEXTS, adapter="sst2-lora")), peft_logits(tiny_bert, folder), atol=1e-5)
    shapes = {path: d[1].shape for path, d in z._get("sst2-lora").linear.items()}
    assert {s[1] for p, s in shapes.items() if p.endswith("query")} == {8}
    assert {s[1] for p, s in shapes.items() if p.endswith("value")} == {4}

    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "rank_pattern": {}}))  # config says 4, tensors 8
    with pytest.raises(UnsafeAdapter, match="rank 4 .* tensors have rank 8"):
        Zoo(str(tiny_bert), hub=LocalHub()).add(folder=folder)


def test_loha_trains_publishes_and_serves_through_peft(tiny_bert, shared_data, tmp_path, zoo_home):
    from safetensors.torch import load_file

    from zoo import apply_overrides, load_recipe
    from zoo.training import train

    recipe = apply_overrides(load_recipe("recipes/sst2_loha.py"), quick_overrides(tiny_bert, shared_data, steps=4))
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    folder = result.adapter_dir
    record = json.loads((folder / "zoo.json").read_text())
    assert record["method"] == "loha" and json.loads((folder / "adapter_config.json").read_text())["peft_type"] == "LOHA"
    weights = load_file(str(folder / "adapter_model.safetensors"))
    assert any("hada_w1_a" in k for k in weights) and any("classifier" in k for k in weights)
    assert "LoHa" in (folder / "README.md").read_text()
    LocalHub().push(folder)
    assert [r["method"] for r in zoo.list_adapters(hub="local")] == ["loha"]
    model = zoo.load(str(tiny_bert), adapter="sst2-loha")
    assert isinstance(model, AdapterModel) and not isinstance(model, AdapterHandle)  # PEFT serves it, on its own base
    np.testing.assert_allclose(model.logits(TEXTS), peft_logits(tiny_bert, folder), atol=1e-5)
    # trained: LoHa's second factor starts at zero, so a nonzero one is what training moved
    assert any(k.endswith("hada_w2_b") and weights[k].abs().sum() > 0 for k in weights)


@pytest.mark.parametrize("kind", ["classifier", "causal"])
def test_a_published_adapter_names_its_base_by_hub_id_not_by_the_folder_it_was_read_from(kind, tiny_bert, tiny_llama,
                                                                                           tmp_path):
    """A base read from a local copy (the offline PyPI packages, the converted GGUF, the cache) must still be
    written into adapter_config.json as its Hub id: PEFT reads the model's own ``name_or_path``, and a folder of
    this machine there makes the published repo unloadable elsewhere (and refused by the zoo on a machine whose
    copy lies elsewhere)."""
    from peft import LoraConfig, get_peft_model

    from zoo.data.sources import ResolvedModel
    from zoo.models.causal import load_base_causal
    from zoo.models.classifier import load_base_classifier

    folder = tiny_bert if kind == "classifier" else tiny_llama
    base = ResolvedModel(model_id="some-org/some-base", path=str(folder), source="folder")
    if kind == "classifier":
        model, _ = load_base_classifier(base, ("negative", "positive"))
        config = LoraConfig(task_type="SEQ_CLS", target_modules=["query", "value"], r=2)
    else:
        model, _ = load_base_causal(base)
        config = LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj", "v_proj"], r=2)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "some-org/some-base"
