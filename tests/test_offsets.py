"""train.tune_offsets: per-class offsets tuned on training examples for the task's official metric, folded into the
head's bias (zoo.data.metrics.tune_offsets, zoo.training.classifier.fit_offsets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import quick_overrides
from zoo import apply_overrides, load_recipe
from zoo.data.metrics import _scorer, official_metric, tune_offsets
from zoo.data.tasks import get_task
from zoo.errors import RecipeError


@pytest.mark.parametrize("name", ["tweet_eval/emoji", "tweet_eval/irony", "tweet_eval/stance_climate", "glue/sst2"])
def test_the_fast_score_is_the_official_metric(name):
    """The confusion-count score tune_offsets climbs is the task's official metric (sklearn's, zero_division=0),
    accuracy where the task has none, with classes that are never predicted or never true."""
    task = get_task(name)
    k = len(task.labels)
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, max(1, k - 1), 300)  # the last class never true
        predictions = rng.integers(0, k, 300)
        predictions[predictions == 0] = 1 % k  # the first class never predicted
        want = official_metric(task, labels, predictions)
        want = float((predictions == labels).mean()) if want is None else want
        assert _scorer(task, labels)(predictions) == pytest.approx(want, abs=1e-12)


def _skewed(rng, n, k, skew):
    """Logits that know the label a little, with class 0 pushed up by ``skew``: most predictions say 0."""
    prior = np.linspace(3, 1, k)
    labels = rng.choice(k, n, p=prior / prior.sum())
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
    logits[:, 0] += skew
    return logits, labels


def test_offsets_undo_a_skew_and_the_gain_holds_on_new_examples():
    task = get_task("tweet_eval/emotion")  # 4 labels, macro-F1
    rng = np.random.default_rng(1)
    logits, labels = _skewed(rng, 3000, 4, skew=2.0)
    offsets, before, after = tune_offsets(logits, labels, task)
    assert offsets.shape == (4,) and abs(offsets.sum()) < 1e-9  # centred
    assert offsets[0] == offsets.min() and offsets[0] < -0.5  # class 0's push taken back
    assert after > before + 0.15
    assert after == pytest.approx(official_metric(task, labels, (logits + offsets).argmax(1)))
    fresh, fresh_labels = _skewed(rng, 3000, 4, skew=2.0)  # same distribution, examples not tuned on
    assert official_metric(task, fresh_labels, (fresh + offsets).argmax(1)) > \
        official_metric(task, fresh_labels, fresh.argmax(1)) + 0.1


def test_offsets_never_lower_the_score_and_leave_a_balanced_rule_nearly_alone():
    task = get_task("tweet_eval/emotion")
    rng = np.random.default_rng(2)
    logits, labels = _skewed(rng, 2000, 4, skew=0.0)
    offsets, before, after = tune_offsets(logits, labels, task)
    assert after >= before
    assert after - before < 0.05
    same, b, a = tune_offsets(np.eye(4)[labels] * 5.0, labels, task)  # already perfect: nothing to move
    assert b == a == 1.0 and not same.any()


def test_tuned_offsets_are_in_the_published_head(tiny_bert, shared_data, tmp_path):
    """Two runs of the same recipe and seed, one with train.tune_offsets: the published heads differ by exactly the
    recorded offsets and nothing else; zoo.json and the card say what was tuned on what; and the adapter, loaded
    with plain PEFT, predicts with them (its validation figures are the record's)."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from zoo.data.metrics import classification_metrics
    from zoo.data.tasks import load_split
    from zoo.training import train

    base = apply_overrides(load_recipe("recipes/tweet_emotion_lora.py"),
                           quick_overrides(tiny_bert, shared_data, steps=24)
                           + ["train.early_stopping_patience=None", "train.learning_rate=0.01"])
    plain = train(base, output_dir=tmp_path / "plain", progress=False)
    tuned = train(apply_overrides(base, ["train.tune_offsets=true"]), output_dir=tmp_path / "tuned", progress=False)

    record = json.loads((tuned.adapter_dir / "zoo.json").read_text())
    o = record["metrics"]["offsets"]
    task = get_task(base.task)
    assert o["split"] == "train" and o["n"] == 48 and o["metric"] == "macro-F1"  # all 48 training rows: under 10,000
    assert o["after"] >= o["before"] and list(o["per_label"]) == list(task.labels)
    assert any(v != 0 for v in o["per_label"].values())  # something to find in the head
    assert "offsets" not in json.loads((plain.adapter_dir / "zoo.json").read_text())["metrics"]
    assert "offsets tuned after training for macro-F1 on 48 training examples" in \
        (tuned.adapter_dir / "README.md").read_text()

    a = load_file(plain.adapter_dir / "adapter_model.safetensors")
    b = load_file(tuned.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    bias = [k for k in a if "classifier" in k and k.endswith("bias")]
    assert len(bias) == 1
    want = torch.tensor([o["per_label"][label] for label in task.labels])
    assert torch.allclose(b[bias[0]] - a[bias[0]], want, atol=1e-4)
    assert all(torch.equal(a[k], b[k]) for k in a if k != bias[0])

    rows = load_split(task, "validation", data_dir=shared_data, max_samples=24, seed=base.seed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=len(task.labels))
    model = PeftModel.from_pretrained(model, tuned.adapter_dir).eval()
    with torch.no_grad():
        logits = model(**tokenizer(list(rows["text"]), padding=True, truncation=True, max_length=64,
                                   return_tensors="pt")).logits
    got = classification_metrics(logits.numpy(), np.asarray(rows["label"]), task)
    assert got["official"] == pytest.approx(record["metrics"]["validation"]["official"], abs=1e-6)
    assert got["accuracy"] == pytest.approx(record["metrics"]["validation"]["accuracy"], abs=1e-6)


def test_tune_offsets_is_refused_where_there_is_no_biased_head(tiny_llama):
    """A causal LM answers in words: refused with the recipe; a head without a bias (Llama's score): refused
    before training. Set, the setting changes what a recipe trains (its fingerprint); unset, nothing."""
    from transformers import AutoModelForSequenceClassification

    from zoo.config.recipe import recipe_fingerprint
    from zoo.models.layers import output_layer

    with pytest.raises(RecipeError, match="tune_offsets moves a classification head's bias"):
        apply_overrides(load_recipe("recipes/alpaca_lora.py"), ["train.tune_offsets=true"])
    with pytest.raises(RecipeError, match="tune_offsets moves a classification head's bias"):
        apply_overrides(load_recipe("recipes/tweet_emotion_zero_shot_icl.py"), ["train.tune_offsets=true"])
    score_head = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=3)
    score_head.score.weight.requires_grad_(True)
    with pytest.raises(RecipeError, match="has no bias: leave train.tune_offsets out"):
        output_layer(score_head, 3)
    recipe = load_recipe("recipes/tweet_emotion_lora.py")
    assert recipe_fingerprint(recipe) == recipe_fingerprint(apply_overrides(recipe, ["train.tune_offsets=false"]))
    assert recipe_fingerprint(recipe) != recipe_fingerprint(apply_overrides(recipe, ["train.tune_offsets=true"]))


def test_the_report_says_which_figures_include_tuned_offsets():
    from zoo.catalogue.table import markdown, task_tables, to_csv

    def record(name, **extra):
        return {"name": name, "task": "tweet_eval/emoji", "method": "lora", "base_model": "org/b",
                "official_metric": "macro-F1", "metrics": {"validation": {"official": 0.27}, **extra},
                "efficiency": {"trainable_params": 10, "total_params": 1000}}

    rows = task_tables([record("emoji-a-lora", offsets={"split": "train", "n": 10}), record("emoji-b-lora")])
    rows = {r.adapter: r for r in rows["tweet_eval/emoji"]}
    assert rows["emoji-a-lora"].offsets and not rows["emoji-b-lora"].offsets
    table = markdown(list(rows.values()))
    assert table.count("LoRA (tuned offsets)") == 1
    assert "offsets" in to_csv(list(rows.values())).splitlines()[0]


def test_the_spaces_results_tab_marks_tuned_offsets_too(tiny_bert, tmp_path):
    from zoo.demo.catalogue import Catalogue
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub
    from zoo.testing import make_adapter

    from zoo.catalogue.table import row_of

    hub = LocalHub(tmp_path / "hub")
    records = {}
    for name, task, labels, offsets in (("sst2-lora", "glue/sst2", ("negative", "positive"), True),
                                        ("irony-lora", "tweet_eval/irony", ("non_irony", "irony"), False)):
        folder = make_adapter(str(tiny_bert), tmp_path / name, name=name, method="lora", labels=labels, task=task,
                              seed=1)
        record = json.loads((folder / "zoo.json").read_text())
        record["metrics"]["validation"] = {"accuracy": 0.8, **({} if task == "glue/sst2" else {"official": 0.7})}
        record["official_metric"] = "a stranger's name"  # a known task's metric is named by the task
        if offsets:
            record["metrics"]["offsets"] = {"split": "train", "n": 10, "per_label": {"negative": 0.1, "positive": -0.1}}
        (folder / "zoo.json").write_text(json.dumps(record))
        records[name] = record
        hub.push(folder)
    rows = {r["adapter"]: r for r in Catalogue(LocalBackend(hub)).results()}
    assert {n: r["method"] for n, r in rows.items()} == {"sst2-lora": "LoRA (tuned offsets)", "irony-lora": "LoRA"}
    assert {n: (r["metric"], r["value"]) for n, r in rows.items()} == \
        {"sst2-lora": ("accuracy", 0.8), "irony-lora": ("F1 of irony", 0.7)}
    for name, record in records.items():  # zoo report's row of the same record says the same
        assert (row_of(record).title, row_of(record).metric) == (rows[name]["method"], rows[name]["metric"])
    unknown = row_of({**records["irony-lora"], "task": "someone/else"})
    assert unknown.metric == "a stranger's name"
