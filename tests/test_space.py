"""The demo's engine (zoo.demo.catalogue): the catalogue from the hub, answers equal to zoo.load's, one mixed batch per
base, bad adapters and bad inputs failing alone, and the results table from the published cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.demo.catalogue import Catalogue, EntryFailed, EntryNotFound
from zoo.errors import BadInput, ZooError
from zoo.hub.backends import LocalBackend
from zoo.hub.local import LocalHub

TEXT = "a gripping , beautifully acted film"
SECOND = "the film is good"
BROKEN = "tweet-hate-lora"


def published(space_home: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads((p / "zoo.json").read_text()) for p in (space_home / "hub").glob("*/*/current")}


def reference(entry, space_backend, item):
    """What a user gets from zoo.load for the same input."""
    model = zoo.load(entry.base, adapter=entry.key, hub=space_backend)
    if entry.kind == "generate":
        return {"text": model.generate([item])[0]}
    return model.predict([item])[0]


def item_for(entry):
    if entry.pair:
        return (TEXT, SECOND)
    if entry.kind == "generate":
        return {"instruction": TEXT, "input": SECOND}
    return TEXT


def test_catalogue_lists_every_published_entry_grouped_by_task(space_cat, space_home):
    metas = published(space_home)
    assert sorted(e.name for e in space_cat.entries.values()) == sorted(metas)
    tasks = [e.task for e in space_cat.entries.values()]
    assert tasks == sorted(tasks), "entries are grouped by task"
    kinds = {e.name: e.kind for e in space_cat.entries.values()}
    assert kinds["sst2-lora"] == kinds["sst2-full"] == "classify"
    assert kinds["alpaca-lora"] == "generate" and kinds["sst2-zero-shot-icl"] == "verbalize"
    assert space_cat.get("rte-lora").pair and not space_cat.get("sst2-lora").pair
    lora = space_cat.get("sst2-lora")
    accuracy = metas["sst2-lora"]["metrics"]["validation"]["accuracy"]
    assert lora.title.startswith("glue/sst2 │ sst2-lora · LoRA · ") and f"accuracy {accuracy:.3f}" in lora.title
    assert space_cat.bases()[0] == lora.base, "the base with most classifiers comes first"


def test_every_entry_answers_as_zoo_load_does(space_cat, space_backend):
    for entry in space_cat.entries.values():
        if entry.name == BROKEN:
            continue
        got = space_cat.answer(entry.id, *([TEXT, SECOND] if entry.pair or entry.kind == "generate" else [TEXT]))
        want = reference(entry, space_backend, item_for(entry))
        assert got["latency_ms"] >= 0 and got["entry"] == entry.id
        if entry.kind == "classify":
            assert got["label"] == want["label"], entry.name
            np.testing.assert_allclose([got["scores"][k] for k in want["scores"]], list(want["scores"].values()), atol=1e-5)
        else:
            assert got["text"] == want["text"], entry.name
            if entry.kind == "verbalize":
                assert got["label"] == want["label"]


def test_entries_of_one_base_answer_as_one_mixed_batch(space_cat, space_backend, monkeypatch):
    from zoo.serve.registry import _SHARED, Zoo

    calls = []
    original = Zoo.predict

    def counting(self, inputs, **kwargs):
        calls.append((self.base, len(inputs)))
        return original(self, inputs, **kwargs)

    monkeypatch.setattr(Zoo, "predict", counting)
    base = space_cat.bases()[0]
    ids = [e.id for e in space_cat.entries.values() if e.base == base and e.name != BROKEN]
    rows = space_cat.answer_many(ids, TEXT, SECOND)
    served = [r for r in rows if r["method"] != "full"]
    assert calls == [(base, len(served))], "one registry call for every served adapter of the base"
    assert all(r["batch"] == len(served) for r in served)
    registries = [z for (b, root), z in _SHARED.items() if b == base and root == str(space_backend.hub.root.resolve())]
    assert len(registries) == 1, "one shared base in memory"
    for r in rows:  # mixed or alone, the same answer
        alone = space_cat.answer(r["entry"], TEXT, SECOND)
        assert r["label"] == alone["label"]
        np.testing.assert_allclose(list(r["scores"].values()), list(alone["scores"].values()), atol=2e-3)
    first, second = space_cat.answer(ids[0], TEXT, SECOND), space_cat.answer(ids[1], TEXT, SECOND)
    assert first["scores"] != second["scores"], "two adapters, two answers"
    assert space_cat.answer(ids[0], TEXT, SECOND)["scores"] == first["scores"], "switching back reproduces the first exactly"


def test_a_damaged_adapter_fails_alone(space_cat):
    broken = space_cat.get(BROKEN)
    sst2 = space_cat.get("sst2-lora")
    before = space_cat.answer(sst2.id, TEXT)
    with pytest.raises(EntryFailed, match=r"tweet-hate-lora could not be loaded: .*(corrupt|truncated)"):
        space_cat.answer(broken.id, TEXT)
    ids = [e.id for e in space_cat.entries.values() if e.base == broken.base and e.labelled]
    rows = {r["adapter"]: r for r in space_cat.answer_many(ids, TEXT)}
    assert "could not be loaded" in rows[BROKEN]["error"] and "Traceback" not in rows[BROKEN]["error"]
    assert "sentence-pair task: fill in the second text" in rows["rte-lora"]["error"], "a pair entry without its second sentence says so"
    answered = [n for n, r in rows.items() if "error" not in r]
    assert "sst2-lora" in answered and "tweet-emotion-lora" in answered and len(answered) == len(rows) - 2
    assert space_cat.answer(sst2.id, TEXT)["scores"] == before["scores"], "the rest keeps working, unchanged"


def test_bad_inputs_get_clear_errors(space_cat):
    sst2 = space_cat.get("sst2-lora").id
    before = space_cat.answer(sst2, TEXT)
    with pytest.raises(BadInput, match="2,001 characters long; this demo takes at most 2,000"):
        space_cat.answer(sst2, "x" * 2001)
    with pytest.raises(BadInput, match="empty"):
        space_cat.answer(sst2, "   ")
    with pytest.raises(BadInput, match="must be text"):
        space_cat.answer(sst2, 42)
    with pytest.raises(BadInput, match="rte-lora is a sentence-pair task: fill in the second text"):
        space_cat.answer(space_cat.get("rte-lora").id, TEXT)
    with pytest.raises(BadInput, match="max new tokens"):
        space_cat.answer(space_cat.get("alpaca-lora").id, TEXT, max_new_tokens=10_000)
    with pytest.raises(EntryNotFound, match="no entry 'nope'"):
        space_cat.answer("nope", TEXT)
    small = Catalogue(space_cat.backend, max_chars=10)
    with pytest.raises(BadInput, match="at most 10"):
        small.answer(sst2, TEXT)
    assert space_cat.answer(sst2, TEXT)["scores"] == before["scores"]


def test_results_table_comes_from_the_cards(space_cat, space_home):
    metas = published(space_home)
    rows = {r["adapter"]: r for r in space_cat.results()}
    assert set(rows) == set(metas)
    assert all(space_cat.entries[r["entry"]].name == r["adapter"] for r in rows.values()), "each row names its own entry"
    for name in ("sst2-lora", "rte-lora", "sst2-full", "alpaca-lora", "sst2-zero-shot-icl"):
        meta, row = metas[name], rows[name]
        eff, val = meta["efficiency"], meta["metrics"]["validation"]
        metric = "accuracy" if "accuracy" in val else "perplexity"
        assert row["metric"] == metric and row["value"] == round(val[metric], 4), name
        assert row["trainable_params"] == eff["trainable_params"] and row["train_seconds"] == eff["train_seconds"]
        assert row["adapter_mib"] == round(eff["adapter_bytes"] / 2**20, 3)
    assert rows["sst2-zero-shot-icl"]["trainable_params"] == 0
    assert rows["sst2-full"]["trainable_pct"] == 100.0 and rows["sst2-lora"]["trainable_pct"] < 100
    assert {r["adapter"] for r in space_cat.results("glue/rte")} == {"rte-lora"}

    from zoo.demo.app import results_plot

    sst2 = space_cat.result_rows("glue/sst2")
    fig = results_plot(sst2, "sst2")  # zoo report's figure: adapters as points, in-context entries as lines
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert points == sum(1 for r in sst2 if r.kind == "adapter" and r.value is not None and r.trainable_params) > 0
    assert any(r.kind == "in-context" for r in sst2) and len(fig.axes[0].lines) == sum(
        1 for r in sst2 if r.kind != "adapter" and r.value is not None)
    assert fig.axes[0].get_xscale() == "log"


def test_refresh_picks_up_a_new_revision(tiny_bert, tmp_path):
    from zoo.testing import make_adapter

    hub = LocalHub(tmp_path / "hub")
    hub.push(make_adapter(str(tiny_bert), tmp_path / "a", name="sst2-lora", method="lora", labels=("negative", "positive"), seed=1))
    fresh = Catalogue(LocalBackend(hub))
    first = fresh.answer("sst2-lora", TEXT)
    hub.push(make_adapter(str(tiny_bert), tmp_path / "b", name="sst2-lora", method="lora", labels=("negative", "positive"), seed=2))
    assert fresh.answer("sst2-lora", TEXT)["scores"] == first["scores"], "the listed revision until a reload"
    fresh.refresh()
    assert fresh.answer("sst2-lora", TEXT)["scores"] != first["scores"], "the new revision after a reload"
    with pytest.raises(ZooError):
        Catalogue(LocalBackend(hub)).answer("sst2-ia3", TEXT)


def test_strangers_odd_metadata_is_refused_and_the_rest_is_listed(tiny_bert, tmp_path):
    """zoo.json and cards come from strangers: names become folder names, ids and page text."""
    from zoo.demo.catalogue import entry_of
    from zoo.errors import UnsafeAdapter
    from zoo.testing import make_adapter

    hub = LocalHub(tmp_path / "hub")
    good = make_adapter(str(tiny_bert), tmp_path / "good", name="sst2-lora", method="lora", labels=("negative", "positive"))
    hub.push(good)
    for i, (key, value) in enumerate([("name", "x](javascript:alert(1))"), ("name", "../../escape"),
                                      ("base_model", "../outside"), ("name", "a`b")]):
        bad = make_adapter(str(tiny_bert), tmp_path / f"bad{i}", name="sst2-ia3", method="ia3", labels=("negative", "positive"))
        meta = json.loads((bad / "zoo.json").read_text())
        meta[key] = value
        (bad / "zoo.json").write_text(json.dumps(meta))
        with pytest.raises(UnsafeAdapter, match="not a plain name|not a model id"):
            hub.push(bad)
        planted = tmp_path / "hub" / "planted" / f"e{i}"  # as if written into the hub folder by hand
        shutil.copytree(bad, planted / "revisions" / "r1")
        (planted / "current").symlink_to(Path("revisions") / "r1")
    assert not list((tmp_path).glob("escape*")) and not (tmp_path / "outside").exists()
    fresh = Catalogue(LocalBackend(hub))
    assert [e.name for e in fresh.entries.values()] == ["sst2-lora"]
    assert fresh.answer("sst2-lora", TEXT)["label"] in ("negative", "positive")
    with pytest.raises(UnsafeAdapter, match="not one the zoo knows"):
        entry_of({"name": "sst2-magic", "base_model": "org/base", "task": "glue/sst2", "method": "magic"})


def test_headline_is_the_tasks_official_metric_when_it_has_one():
    from zoo.artifact.card import headline_metric

    assert headline_metric({"accuracy": 0.8, "official": 0.7, "macro_f1": 0.7}) == ("official", 0.7)
    assert headline_metric({"accuracy": 0.8, "macro_f1": 0.79}) == ("accuracy", 0.8)
    assert headline_metric({"perplexity": 8.0}) == ("perplexity", 8.0)
    assert headline_metric({}) is None


def test_concurrent_generations_with_the_same_settings_share_one_call(space_cat, space_backend):
    from tests.test_registry import run_threads

    entry = space_cat.get("alpaca-lora")
    want = reference(entry, space_backend, item_for(entry))["text"]
    rows: list = []

    def ask(_):
        rows.append(space_cat.answer_rows([(entry, item_for(entry))], strict=True)[0])

    assert run_threads(ask, 8) == []
    assert [r["text"] for r in rows] == [want] * 8, "each request gets its own answer, as alone"
    assert max(r["batch"] for r in rows) > 1, "requests that arrived together shared a generate call"
    assert all(r["finish_reason"] in ("stop", "length") and r["completion_tokens"] >= 1 for r in rows)


def test_an_entry_s_own_max_new_tokens_is_held_to_what_a_request_may_ask(space_cat, space_backend, tmp_path):
    """An entry's zoo.json (a stranger's) set max_new_tokens up to the base's positions, and a request that left the
    length to the entry generated that many tokens on the base's one generation worker, whatever the server's limit
    on what clients may ask (256)."""
    from zoo.demo.entries import MAX_NEW_TOKENS

    entry = space_cat.get("alpaca-lora")
    folder = tmp_path / "alpaca-long"
    shutil.copytree(space_backend.find(entry.base, entry.key), folder)
    meta = json.loads((folder / "zoo.json").read_text())
    meta.update(name="alpaca-long", max_length=64, generation={**meta.get("generation", {}), "max_new_tokens": 900,
                                                                "do_sample": False, "repetition_penalty": 1.0})
    (folder / "zoo.json").write_text(json.dumps(meta))
    hub = LocalHub(tmp_path / "hub")
    hub.push(folder)
    cat = Catalogue(LocalBackend(hub))
    long = cat.get("alpaca-long")
    row = cat.answer_rows([(long, item_for(long))], strict=True)[0]
    assert row["completion_tokens"] == MAX_NEW_TOKENS and row["finish_reason"] == "length", row
    asked = cat.answer_rows([(long, item_for(long))], settings={"max_new_tokens": 5}, strict=True)[0]
    assert asked["completion_tokens"] <= 5
    assert zoo.load(long.base, adapter="alpaca-long", hub=cat.backend).record.generation["max_new_tokens"] == 900


def test_fully_fine_tuned_entries_are_held_to_a_bound_least_recently_used_first_out(space_cat, space_backend, tmp_path):
    """Each fully fine-tuned entry is a model of its own (adapters share a base, and the registry evicts them): a
    listing with many of them filled memory one first use at a time. The catalogue holds ``max_whole_models``."""
    entry = space_cat.get("sst2-full")
    hub = LocalHub(tmp_path / "hub")
    for name in ("sst2-full-a", "sst2-full-b", "sst2-full-c"):
        folder = tmp_path / name
        shutil.copytree(space_backend.find(entry.base, entry.key), folder)
        meta = json.loads((folder / "zoo.json").read_text())
        (folder / "zoo.json").write_text(json.dumps({**meta, "name": name}))
        hub.push(folder)
    cat = Catalogue(LocalBackend(hub), max_whole_models=2)
    want = space_cat.answer("sst2-full", TEXT)["scores"]
    for name, held in (("sst2-full-a", ["sst2-full-a"]), ("sst2-full-b", ["sst2-full-a", "sst2-full-b"]),
                       ("sst2-full-a", ["sst2-full-a", "sst2-full-b"]),  # a is now the most recent: b goes next
                       ("sst2-full-c", ["sst2-full-a", "sst2-full-c"]), ("sst2-full-b", ["sst2-full-b", "sst2-full-c"])):
        assert cat.answer(name, TEXT)["scores"] == want, name
        assert [i.split("::")[-1] for i in cat.loaded()["whole_models"]] == held, name
    rows = cat.answer_many([cat.get(n).id for n in ("sst2-full-a", "sst2-full-b", "sst2-full-c")], TEXT)
    assert [r["scores"] for r in rows] == [want] * 3 and len(cat.loaded()["whole_models"]) == 2, rows
