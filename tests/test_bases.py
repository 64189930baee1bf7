"""Base ids compare by identity: a legacy Hub id and its organisation form are one base, everywhere.

The mission's own line, `zoo.load("roberta-large", adapter="mnli-lora")` after training the shipped
`recipes/mnli_lora.py` (base `FacebookAI/roberta-large`), runs here on a tiny RoBERTa standing in for
roberta-large: $ZOO_MODEL_PATHS points that id at a local folder, as a user with a local copy would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import zoo
from tests.conftest import ROOT, quick_overrides
from zoo.data.bases import LEGACY_IDS, canonical_base, legacy_ids, same_base
from zoo.data.sources import resolve_model
from zoo.errors import AdapterBaseMismatch, ModelNotFound


@pytest.mark.parametrize("legacy, canonical", [
    ("roberta-large", "FacebookAI/roberta-large"), ("roberta-base", "FacebookAI/roberta-base"),
    ("bert-base-uncased", "google-bert/bert-base-uncased"), ("gpt2", "openai-community/gpt2"),
    ("distilbert-base-uncased", "distilbert/distilbert-base-uncased"), ("t5-small", "google-t5/t5-small"),
    ("xlm-roberta-base", "FacebookAI/xlm-roberta-base"), ("distilgpt2", "distilbert/distilgpt2"),
])
def test_legacy_ids_have_one_canonical_form(legacy, canonical):
    assert canonical_base(legacy) == canonical == canonical_base(canonical)
    assert same_base(legacy, canonical) and same_base(canonical, legacy)
    assert legacy_ids(legacy) == [canonical, legacy]


def test_other_ids_and_folders_are_left_alone(tmp_path):
    for model_id in ("sentence-transformers/all-MiniLM-L6-v2", "my-org/roberta-large", str(tmp_path)):
        assert canonical_base(model_id) == model_id
    assert not same_base("roberta-large", "roberta-base")
    assert not same_base("roberta-large", "my-org/roberta-large")
    assert all("/" in v and "/" not in k for k, v in LEGACY_IDS.items())


def test_resolver_points_either_spelling_at_a_local_copy(tiny_roberta, monkeypatch):
    monkeypatch.setenv("ZOO_MODEL_PATHS", f"roberta-large={tiny_roberta}")  # the legacy spelling in the setting
    for spelling in ("roberta-large", "FacebookAI/roberta-large"):
        resolved = resolve_model(spelling)
        assert resolved.path == str(tiny_roberta.resolve()) and resolved.model_id == spelling
    monkeypatch.setenv("ZOO_MODEL_PATHS", f"FacebookAI/roberta-large={tiny_roberta.parent / 'nothing'}")
    with pytest.raises(ModelNotFound, match="ZOO_MODEL_PATHS points 'roberta-large'"):
        resolve_model("roberta-large")


def test_every_legacy_id_in_the_table_finds_the_copy_of_its_organisation_form(tiny_bert, monkeypatch):
    assert len(LEGACY_IDS) >= 40
    for legacy, canonical in LEGACY_IDS.items():
        monkeypatch.setenv("ZOO_MODEL_PATHS", f"{canonical}={tiny_bert}")
        assert resolve_model(legacy).path == resolve_model(canonical).path == str(tiny_bert.resolve()), legacy


def test_the_mission_line_works_after_training_the_shipped_mnli_recipe(tiny_roberta, tiny_bert, mnli_mirror, tmp_path):
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "ZOO_MODEL_PATHS": f"FacebookAI/roberta-large={tiny_roberta}"}
    sets = [a for o in quick_overrides(tiny_bert, mnli_mirror) if not o.startswith("base_model=") for a in ("--set", o)]
    trained = subprocess.run([sys.executable, "-m", "zoo", "train", "recipes/mnli_lora.py", *sets, "--push", "--no-progress",
                              "--output-dir", str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-2000:]
    record = json.loads((tmp_path / "run" / "adapter" / "zoo.json").read_text())
    assert record["base_model"] == "FacebookAI/roberta-large"  # the canonical form is what is recorded
    card = (tmp_path / "run" / "adapter" / "README.md").read_text()
    assert "base_model: FacebookAI/roberta-large" in card
    assert (tmp_path / "home" / "hub" / "FacebookAI--roberta-large" / "mnli-lora" / "current").is_dir()

    # the users' own line, in a fresh process, and the organisation form: the same adapter on the same base
    code = ("import json, zoo\n"
            "a = zoo.load('roberta-large', adapter='mnli-lora')\n"
            "b = zoo.load('FacebookAI/roberta-large', adapter='mnli-lora')\n"
            "x = [('A man is playing a guitar.', 'A person makes music.')]\n"
            "print(json.dumps([a.predict(x)[0]['scores'], b.predict(x)[0]['scores'], a.zoo is b.zoo, a.zoo.base]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    legacy, canonical, same_registry, base = json.loads(out.stdout.strip().splitlines()[-1])
    assert legacy == canonical and same_registry and base == "FacebookAI/roberta-large"
    assert set(legacy) == {"entailment", "neutral", "contradiction"}

    listing = subprocess.run([sys.executable, "-m", "zoo", "list", "--base", "roberta-large"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert listing.returncode == 0 and "mnli-lora" in listing.stdout, listing.stderr


def test_registry_and_local_hub_take_either_form(tiny_bert, tmp_path, monkeypatch):
    from zoo.demo.catalogue import Catalogue
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub
    from zoo.serve.registry import Zoo, clear_shared
    from zoo.testing import make_adapter

    monkeypatch.setenv("ZOO_MODEL_PATHS", f"google-bert/bert-base-uncased={tiny_bert}")
    hub = LocalHub(tmp_path / "hub")
    folder = make_adapter("bert-base-uncased", tmp_path / "a", name="sst2-lora", method="lora",
                          labels=["negative", "positive"])
    assert json.loads((folder / "zoo.json").read_text())["base_model"] == "google-bert/bert-base-uncased"
    hub.push(folder)
    assert [r["name"] for r in hub.list(base="bert-base-uncased")] == ["sst2-lora"]
    assert [r["name"] for r in hub.list(base="google-bert/bert-base-uncased")] == ["sst2-lora"]
    assert hub.find("bert-base-uncased", "sst2-lora") == hub.find("google-bert/bert-base-uncased", "sst2-lora")
    with pytest.raises(AdapterBaseMismatch, match="google-bert/bert-base-uncased"):
        hub.find("bert-base-cased", "sst2-lora")

    z = Zoo("bert-base-uncased", hub=hub)
    assert z.base == "google-bert/bert-base-uncased"
    z.add("sst2-lora")
    first = z.predict(["a fine film"], adapter="sst2-lora")
    try:
        handle = zoo.load("google-bert/bert-base-uncased", adapter="sst2-lora", hub=hub)
        assert handle.predict(["a fine film"])[0]["scores"] == pytest.approx(first[0]["scores"], abs=1e-6)
        cat = Catalogue(LocalBackend(hub))
        entry = cat.get("bert-base-uncased::sst2-lora")  # the demo's ids take either form too
        assert entry.id == "google-bert/bert-base-uncased::sst2-lora"
    finally:
        clear_shared()
