"""Publishing to the local hub, zoo.load, predict, and what a stranger's broken adapter gets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import quick_overrides
from zoo import apply_overrides, load_recipe
from zoo.errors import (
    AdapterBaseMismatch,
    AdapterNotFound,
    BadInput,
    UnsafeAdapter,
    ZooError,
)
from zoo.hub.local import LocalHub
from zoo.training import train

SENTENCES = ["a gripping , beautifully acted film", "dull , lifeless and far too long", "it is a movie"]


@pytest.fixture(scope="module")
def trained(tiny_bert, shared_data, tmp_path_factory):
    """One tiny run per method kind: a PEFT adapter, full fine-tuning, last layers (and a pair task)."""
    out = {}
    root = tmp_path_factory.mktemp("runs")
    for recipe_file in ("sst2_lora", "sst2_full", "sst2_last_layers", "sst2_prefix_tuning", "rte_lora"):
        recipe = apply_overrides(load_recipe(f"recipes/{recipe_file}.py"), quick_overrides(tiny_bert, shared_data, steps=6))
        out[recipe_file] = train(recipe, output_dir=root / recipe_file, progress=False)
    return out


def _in_memory_logits(result, texts, pairs=None):
    from transformers import AutoTokenizer

    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(meta["base_model"])
    args = (texts, pairs) if pairs else (texts,)
    enc = tokenizer(*args, truncation=True, max_length=meta["max_length"], padding=True, return_tensors="pt")
    model = result.model.eval()
    with torch.inference_mode():
        return model(**enc).logits.numpy()


@pytest.mark.parametrize("kind", ["sst2_lora", "sst2_full", "sst2_last_layers", "sst2_prefix_tuning"])
def test_published_adapter_predicts_like_the_trained_model(kind, trained, tiny_bert, zoo_home):
    result = trained[kind]
    LocalHub().push(result.adapter_dir)
    name = json.loads((result.adapter_dir / "zoo.json").read_text())["name"]
    handle = zoo.load(str(tiny_bert), adapter=name)
    assert handle.labels == ["negative", "positive"]
    predictions = handle.predict(SENTENCES)
    expected = torch.softmax(torch.from_numpy(_in_memory_logits(result, SENTENCES)), -1).numpy()
    for row, probs in zip(predictions, expected):
        assert set(row) == {"label", "score", "scores"}
        assert row["label"] == handle.labels[int(probs.argmax())]
        np.testing.assert_allclose([row["scores"][label] for label in handle.labels], probs, atol=1e-5)
        assert row["score"] == pytest.approx(max(row["scores"].values()))
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_plain_peft_reproduces_zoo_load(trained, tiny_bert, zoo_home):
    """Someone without adapter-zoo loads the published folder with PeftModel.from_pretrained."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    published = LocalHub().push(trained["sst2_lora"].adapter_dir)
    handle = zoo.load(str(tiny_bert), adapter="sst2-lora")
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    plain = PeftModel.from_pretrained(base, str(published.path)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    enc = tokenizer(SENTENCES, truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.inference_mode():
        probs = torch.softmax(plain(**enc).logits, -1).numpy()
    ours = np.array([[row["scores"][label] for label in handle.labels] for row in handle.predict(SENTENCES)])
    np.testing.assert_allclose(ours, probs, atol=1e-6)
    # and the head really is inside the adapter: a fresh base alone predicts something else
    with torch.inference_mode():
        bare = torch.softmax(AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)(**enc).logits, -1).numpy()
    assert not np.allclose(bare, probs, atol=1e-4)


def test_pair_task_predicts_on_pairs(trained, tiny_bert, zoo_home):
    LocalHub().push(trained["rte_lora"].adapter_dir)
    handle = zoo.load(str(tiny_bert), adapter="rte-lora")
    pairs = [("A man is playing a guitar.", "A person makes music."), ("The sky is green.", "Cats bark loudly.")]
    rows = handle.predict(pairs)
    expected = _in_memory_logits(trained["rte_lora"], [p[0] for p in pairs], [p[1] for p in pairs])
    assert [r["label"] for r in rows] == [handle.labels[i] for i in expected.argmax(1)]
    with pytest.raises(BadInput, match="sentence-pair"):
        handle.predict(["only one sentence"])


def test_bad_inputs_are_clear_errors(trained, tiny_bert, zoo_home):
    LocalHub().push(trained["sst2_lora"].adapter_dir)
    handle = zoo.load(str(tiny_bert), adapter="sst2-lora")
    assert handle.predict([]) == []
    with pytest.raises(BadInput, match="list"):
        handle.predict("not a list")
    with pytest.raises(BadInput, match="input 1"):
        handle.predict(["fine", 42])
    long = handle.predict(["great " * 20_000])  # 120,000 characters: truncated, not a crash
    assert long[0]["label"] in handle.labels
    assert handle.predict(SENTENCES[:1]) == handle.predict(SENTENCES)[:1]  # still serving


def test_unknown_name_and_wrong_base(trained, tiny_bert, zoo_home):
    LocalHub().push(trained["sst2_lora"].adapter_dir)
    with pytest.raises(AdapterNotFound, match="sst2-nope.*sst2-lora"):
        zoo.load(str(tiny_bert), adapter="sst2-nope")
    with pytest.raises(AdapterBaseMismatch, match=r"trained on .*tiny-bert.*not 'FacebookAI/roberta-large'"):
        zoo.load("FacebookAI/roberta-large", adapter="sst2-lora")


def test_pickle_only_and_corrupt_adapters_are_refused(trained, tiny_bert, tmp_path, zoo_home):
    from zoo.serve.loading import load_folder

    source = trained["sst2_lora"].adapter_dir
    pickled = tmp_path / "pickled"
    shutil.copytree(source, pickled)
    state = {"w": torch.zeros(1)}
    torch.save(state, pickled / "adapter_model.bin")
    (pickled / "adapter_model.safetensors").unlink()
    with pytest.raises(UnsafeAdapter, match="pickled weights"):
        load_folder(pickled)
    with pytest.raises(UnsafeAdapter):
        LocalHub().push(pickled)

    truncated = tmp_path / "truncated"
    shutil.copytree(source, truncated)
    weights = truncated / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UnsafeAdapter, match="corrupt or truncated"):
        load_folder(truncated)
    assert LocalHub().list() == [], "nothing broken was published"


def test_label_count_mismatch_is_refused(trained, tmp_path):
    from zoo.serve.loading import load_folder

    folder = tmp_path / "relabelled"
    shutil.copytree(trained["sst2_lora"].adapter_dir, folder)
    meta = json.loads((folder / "zoo.json").read_text())
    meta["labels"] = ["a", "b", "c"]
    (folder / "zoo.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterBaseMismatch, match="does not fit"):
        load_folder(folder)


def test_push_twice_makes_a_new_revision_and_a_failed_push_shows_nothing(trained, zoo_home, monkeypatch):
    hub = LocalHub()
    first = hub.push(trained["sst2_lora"].adapter_dir)
    second = hub.push(trained["sst2_lora"].adapter_dir)
    assert first.revision != second.revision
    assert hub.find(json.loads((first.path / "zoo.json").read_text())["base_model"], "sst2-lora") == second.path
    assert first.path.is_dir(), "the previous revision is kept"

    def broken_copy(src, dst, **kwargs):
        Path(dst).write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr("zoo.hub.local.shutil.copyfile", broken_copy)
    with pytest.raises(ZooError, match="disk full.*nothing was published"):
        hub.push(trained["sst2_full"].adapter_dir)
    assert [e["name"] for e in hub.list()] == ["sst2-lora"]
    assert not list(hub.root.rglob(".tmp-*")), "no half-written revision left behind"
