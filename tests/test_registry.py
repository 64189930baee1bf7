"""The registry: adapters of every method and label count on one frozen base, routed per request."""

from __future__ import annotations

import gc
import json
import random
import shutil
import threading
import weakref

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import AdapterBaseMismatch, AdapterNotFound, BadInput, UnsafeAdapter
from zoo.hub.local import LocalHub
from zoo.serve.loading import load_folder
from zoo.serve.registry import Zoo
from zoo.testing import make_adapter

TEXTS = ["a gripping , beautifully acted film", "dull , lifeless and far too long", "it is a movie",
         "the plot is thin but the actors are great fun to watch", "bad"]
PAIRS = [("a man is sleeping .", "a person rests ."), ("the film won an award .", "the film was ignored ."),
         ("it rained all day .", "the ground is wet .")]
# name, method, label count, sentence-pair task
SPECS = [
    ("sst2-lora", "lora", 2, False),
    ("emotion-ia3", "ia3", 4, False),
    ("tweet-prompt-tuning", "prompt-tuning", 3, False),
    ("emoji-p-tuning", "p-tuning", 20, False),
    ("rte-prefix-tuning", "prefix-tuning", 2, True),
    ("sst2-last-layers", "last-layers", 2, False),
    ("hate-linear-probe", "linear-probe", 2, False),
]


def run_threads(target, n: int) -> list:
    """Run target(k) in n threads started together; returns the exceptions they raised."""
    errors, barrier = [], threading.Barrier(n)

    def wrapped(k):
        try:
            barrier.wait()
            target(k)
        except Exception as e:  # reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def inputs_for(name):
    return PAIRS if dict((s[0], s[3]) for s in SPECS)[name] else TEXTS


@pytest.fixture(scope="module")
def adapters(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("registry-adapters")
    return {name: make_adapter(str(tiny_bert), root / name, name=name, method=kind, pair=pair,
                               labels=[f"{name}-{i}" for i in range(n)], seed=k + 1)
            for k, (name, kind, n, pair) in enumerate(SPECS)}


@pytest.fixture(scope="module")
def alone(adapters):
    """Each adapter's logits when loaded alone with plain PEFT (or its own model for last-layers)."""
    return {name: load_folder(folder).logits(inputs_for(name)) for name, folder in adapters.items()}


@pytest.fixture()
def registry(tiny_bert, adapters, tmp_path):
    z = Zoo(str(tiny_bert), hub=LocalHub(tmp_path / "hub"))
    for folder in adapters.values():
        z.add(folder=folder)
    return z


def _answers(z, names_inputs):
    names = [n for n, _ in names_inputs]
    return z.logits([x for _, x in names_inputs], adapters=names)


def test_every_method_on_one_base_matches_plain_peft(registry, alone):
    base_before = {n: p.detach().clone() for n, p in registry.model.named_parameters()}
    assert sorted(registry.names) == sorted(s[0] for s in SPECS)
    for name in registry.names:
        got = np.stack(registry.logits(inputs_for(name), adapter=name))
        assert got.shape == alone[name].shape
        np.testing.assert_allclose(got, alone[name], atol=1e-5, err_msg=name)
    # adapters differ from each other (a registry that ignored the adapter would fail here)
    assert not np.allclose(np.stack(registry.logits(TEXTS, adapter="sst2-lora")),
                           np.stack(registry.logits(TEXTS, adapter="sst2-last-layers")), atol=1e-3)
    # A -> B -> A reproduces A exactly
    first = registry.logits(TEXTS, adapter="sst2-lora")
    registry.logits(TEXTS, adapter="emotion-ia3")
    registry.logits(PAIRS, adapter="rte-prefix-tuning")
    again = registry.logits(TEXTS, adapter="sst2-lora")
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    # the base is untouched, bit for bit
    for n, p in registry.model.named_parameters():
        assert torch.equal(p, base_before[n]), n
        assert not p.requires_grad


def test_mixed_batch_gives_each_row_its_own_adapter(registry, alone):
    rng = random.Random(0)
    requests = []
    for _ in range(40):
        name = rng.choice(registry.names)
        i = rng.randrange(len(inputs_for(name)))
        requests.append((name, i))
    got = registry.logits([inputs_for(n)[i] for n, i in requests], adapters=[n for n, _ in requests], batch_size=16)
    for (name, i), row in zip(requests, got):
        np.testing.assert_allclose(row, alone[name][i], atol=1e-5, err_msg=name)
    predictions = registry.predict([inputs_for(n)[i] for n, i in requests[:6]], adapters=[n for n, _ in requests[:6]])
    for (name, i), p in zip(requests[:6], predictions):
        assert p["adapter"] == name
        assert p["label"] == registry.labels(name)[int(np.argmax(alone[name][i]))]
        assert set(p["scores"]) == set(registry.labels(name))


def test_eight_threads_never_see_each_others_adapters(registry):
    rng = random.Random(1)
    plans = []
    for _ in range(8):
        plan = []
        for _ in range(25):
            size = rng.randint(1, 6)
            names = [rng.choice(registry.names) for _ in range(size)]
            plan.append((names, [rng.choice(inputs_for(n)) for n in names]))
        plans.append(plan)
    expected = [[registry.logits(inputs, adapters=names) for names, inputs in plan] for plan in plans]
    results: list = [None] * 8

    def worker(k):
        results[k] = [registry.logits(inputs, adapters=names) for names, inputs in plans[k]]

    for _ in range(3):
        errors = run_threads(worker, 8)
        assert not errors, errors
        for k in range(8):
            for want, got in zip(expected[k], results[k]):
                for a, b in zip(want, got):
                    np.testing.assert_allclose(b, a, atol=1e-6)


def test_memory_budget_evicts_least_recently_used_and_reloads(tiny_bert, adapters, alone, tmp_path):
    z = Zoo(str(tiny_bert), hub=LocalHub(tmp_path / "hub"), max_adapters=2)
    for name in ("sst2-lora", "emotion-ia3", "tweet-prompt-tuning"):
        z.add(folder=adapters[name])
    assert z.names == ["sst2-lora", "emotion-ia3", "tweet-prompt-tuning"]
    assert z.resident == ["emotion-ia3", "tweet-prompt-tuning"]
    loads = z.stats["loads"]
    got = np.stack(z.logits(TEXTS, adapter="sst2-lora"))  # evicted: reloaded on demand
    np.testing.assert_allclose(got, alone["sst2-lora"], atol=1e-5)
    assert z.stats["loads"] == loads + 1
    assert z.resident == ["tweet-prompt-tuning", "sst2-lora"]
    z.logits(TEXTS, adapter="tweet-prompt-tuning")  # touch: now emotion-ia3 would be the next victim
    assert z.resident == ["sst2-lora", "tweet-prompt-tuning"]

    by_bytes = Zoo(str(tiny_bert), hub=LocalHub(tmp_path / "hub"))
    by_bytes.add(folder=adapters["sst2-lora"])
    by_bytes.max_bytes = by_bytes.resident_bytes + 1
    by_bytes.add(folder=adapters["emotion-ia3"])
    assert by_bytes.resident == ["emotion-ia3"] and by_bytes.resident_bytes <= by_bytes.max_bytes
    np.testing.assert_allclose(np.stack(by_bytes.logits(TEXTS, adapter="sst2-lora")), alone["sst2-lora"], atol=1e-5)


def test_eviction_under_concurrent_load_still_answers_right(tiny_bert, adapters, alone, tmp_path):
    """4 threads cycle through 3 adapters with room for 2: evictions and reloads race with forwards."""
    z = Zoo(str(tiny_bert), hub=LocalHub(tmp_path / "hub"), max_adapters=2)
    names = ["sst2-lora", "emotion-ia3", "sst2-last-layers"]
    for name in names:
        z.add(folder=adapters[name])

    def worker(k):
        for i in range(12):
            name = names[(i + k) % 3]
            got = np.stack(z.logits(TEXTS, adapter=name))
            np.testing.assert_allclose(got, alone[name], atol=1e-5, err_msg=name)

    errors = run_threads(worker, 4)
    assert not errors, errors
    assert len(z.resident) <= 2 and z.stats["evictions"] > 0 and z.names == names


def test_removed_adapter_frees_its_memory(registry):
    weights = registry._get("sst2-lora")
    ref = weakref.ref(weights)
    tensor_ref = weakref.ref(next(iter(weights.linear.values()))[1])
    before = registry.resident_bytes
    del weights
    registry.remove("sst2-lora")
    gc.collect()
    assert ref() is None and tensor_ref() is None
    assert registry.resident_bytes < before
    assert "sst2-lora" not in registry.names
    with pytest.raises(AdapterNotFound, match="sst2-lora"):
        registry.predict(TEXTS, adapter="sst2-lora")


def _still_serving(z, alone):
    for name in ("emotion-ia3", "rte-prefix-tuning"):
        np.testing.assert_allclose(np.stack(z.logits(inputs_for(name), adapter=name)), alone[name], atol=1e-5)


def test_bad_adapters_are_refused_and_the_rest_keeps_serving(registry, alone, adapters, tiny_bert, tmp_path):
    from transformers import BertConfig, BertModel

    # trained for another base: the message names both bases
    other = tmp_path / "other-base"
    shutil.copytree(tiny_bert, other)
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=1505, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=96)).save_pretrained(other)
    foreign = make_adapter(str(other), tmp_path / "foreign", name="foreign-lora", method="lora", labels=["a", "b"])
    with pytest.raises(AdapterBaseMismatch) as e:
        registry.add(folder=foreign)
    assert str(other) in str(e.value) and str(tiny_bert) in str(e.value)
    # ... and the same weights relabelled as ours: refused on shapes, not loaded half-way
    forged = tmp_path / "forged"
    shutil.copytree(foreign, forged)
    meta = json.loads((forged / "zoo.json").read_text())
    (forged / "zoo.json").write_text(json.dumps({**meta, "base_model": str(tiny_bert), "name": "forged-lora"}))
    with pytest.raises(UnsafeAdapter, match="base_model_name_or_path .* disagrees"):  # the config still says
        registry.add(folder=forged)
    config = json.loads((forged / "adapter_config.json").read_text())
    (forged / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(tiny_bert)}))
    with pytest.raises(AdapterBaseMismatch, match="shape"):
        registry.add(folder=forged)
    assert "forged-lora" not in registry.names and "foreign-lora" not in registry.names
    _still_serving(registry, alone)

    # unknown names
    with pytest.raises(AdapterNotFound, match="nope"):
        registry.predict(TEXTS, adapter="nope")
    with pytest.raises(AdapterNotFound):
        registry.add("nope")

    # truncated weights, pickle-only folder, a head that does not match the label list
    truncated = tmp_path / "truncated"
    shutil.copytree(adapters["sst2-lora"], truncated)
    data = (truncated / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeAdapter, match="corrupt or truncated"):
        registry.add(folder=truncated)
    garbage = tmp_path / "garbage"
    shutil.copytree(adapters["sst2-lora"], garbage)
    (garbage / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}")
    with pytest.raises(UnsafeAdapter):
        registry.add(folder=garbage)
    pickled = tmp_path / "pickled"
    shutil.copytree(adapters["sst2-lora"], pickled)
    (pickled / "adapter_model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, pickled / "adapter_model.bin")
    with pytest.raises(UnsafeAdapter, match="pickle"):
        registry.add(folder=pickled)
    relabelled = tmp_path / "relabelled"
    shutil.copytree(adapters["emotion-ia3"], relabelled)
    meta = json.loads((relabelled / "zoo.json").read_text())
    (relabelled / "zoo.json").write_text(json.dumps({**meta, "name": "relabelled", "labels": ["a", "b", "c"]}))
    with pytest.raises(UnsafeAdapter, match="4 outputs but zoo.json lists 3 labels"):
        registry.add(folder=relabelled)
    nonfinite = tmp_path / "nonfinite"
    shutil.copytree(adapters["sst2-lora"], nonfinite)
    from safetensors.torch import load_file, save_file

    state = load_file(str(nonfinite / "adapter_model.safetensors"))
    key = next(k for k in state if "lora_B" in k)
    state[key][0, 0] = float("nan")
    save_file(state, str(nonfinite / "adapter_model.safetensors"))
    with pytest.raises(UnsafeAdapter, match="NaN"):
        registry.add(folder=nonfinite)
    assert sorted(registry.names) == sorted(s[0] for s in SPECS)
    _still_serving(registry, alone)


def test_bad_requests_get_clear_errors_and_long_inputs_are_truncated(registry, alone):
    assert registry.predict([], adapter="sst2-lora") == []
    assert registry.predict([], adapters=[]) == []
    with pytest.raises(BadInput, match="2 inputs but 1 adapter"):
        registry.predict(TEXTS[:2], adapters=["sst2-lora"])
    with pytest.raises(BadInput, match="either adapter"):
        registry.predict(TEXTS)
    with pytest.raises(BadInput, match="wrap one input in a list"):
        registry.predict("a string", adapter="sst2-lora")
    with pytest.raises(BadInput, match="sentence-pair"):
        registry.predict(["not a pair"], adapter="rte-prefix-tuning")
    with pytest.raises(BadInput, match="expects a string"):
        registry.predict([("a", "b")], adapter="sst2-lora")
    huge = "a gripping film " * 6250  # 100,000 characters
    assert len(huge) == 100_000
    out = registry.predict([huge, TEXTS[0]], adapters=["sst2-lora", "emoji-p-tuning"])
    assert out[0]["label"] in registry.labels("sst2-lora") and len(out[1]["scores"]) == 20
    head = " ".join(huge.split()[:200])  # far beyond max_length tokens: the same truncated input
    np.testing.assert_allclose(registry.logits([huge], adapter="sst2-lora")[0],
                               registry.logits([head], adapter="sst2-lora")[0], atol=1e-6)
    _still_serving(registry, alone)


def test_zoo_load_shares_one_base_and_reloads_new_revisions(tiny_bert, adapters, alone, zoo_home):
    hub = LocalHub()
    for name in ("sst2-lora", "emotion-ia3"):
        hub.push(adapters[name])
    a = zoo.load(str(tiny_bert), adapter="sst2-lora")
    b = zoo.load(str(tiny_bert), adapter="emotion-ia3")
    assert a.zoo is b.zoo
    assert sorted(a.zoo.names) == ["emotion-ia3", "sst2-lora"]
    base_tensors = [p for p in a.zoo.model.parameters()]
    assert all(p is q for p, q in zip(base_tensors, b.zoo.model.parameters()))
    np.testing.assert_allclose(a.logits(TEXTS), alone["sst2-lora"], atol=1e-5)
    np.testing.assert_allclose(b.logits(TEXTS), alone["emotion-ia3"], atol=1e-5)
    assert a.labels == ["sst2-lora-0", "sst2-lora-1"]
    # a newer revision under the same name replaces the loaded one on the next zoo.load
    retrained = make_adapter(str(tiny_bert), zoo_home / "retrained", name="sst2-lora", method="lora",
                             labels=["sst2-lora-0", "sst2-lora-1"], seed=99)
    hub.push(retrained)
    again = zoo.load(str(tiny_bert), adapter="sst2-lora")
    assert again.zoo is a.zoo
    assert not np.allclose(again.logits(TEXTS), alone["sst2-lora"], atol=1e-4)
    np.testing.assert_allclose(again.logits(TEXTS), load_folder(retrained).logits(TEXTS), atol=1e-5)


def test_adapter_with_unserved_feature_is_refused_by_the_registry_but_zoo_load_still_works(tiny_bert, registry,
                                                                                          alone, zoo_home):
    from peft import LoraConfig

    from zoo.errors import UnsupportedAdapter

    dora = make_adapter(str(tiny_bert), zoo_home / "dora", name="sst2-dora", labels=["negative", "positive"],
                        method=LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"], use_dora=True))
    with pytest.raises(UnsupportedAdapter, match="use_dora"):
        registry.add(folder=dora)
    _still_serving(registry, alone)
    LocalHub().push(dora)
    with pytest.warns(UserWarning, match="base of its own"):
        handle = zoo.load(str(tiny_bert), adapter="sst2-dora")
    np.testing.assert_allclose(handle.logits(TEXTS), load_folder(dora).logits(TEXTS), atol=1e-6)


def test_roberta_base_with_a_pooling_head_serves_every_method(tiny_roberta, tmp_path):
    """RoBERTa: no pooler, a head (dense + out_proj) that pools token 0 itself, as roberta-large for MNLI."""
    folders = {kind: make_adapter(str(tiny_roberta), tmp_path / kind, name=f"mnli-{kind}", method=kind,
                                  labels=[f"l{i}" for i in range(n)], seed=k + 1)
               for k, (kind, n) in enumerate([("lora", 3), ("ia3", 2), ("prompt-tuning", 4), ("p-tuning", 2),
                                              ("prefix-tuning", 5), ("last-layers", 3)])}
    z = Zoo(str(tiny_roberta), hub=LocalHub(tmp_path / "hub"))
    alone = {}
    for kind, folder in folders.items():
        z.add(folder=folder)
        alone[f"mnli-{kind}"] = load_folder(folder).logits(TEXTS)
    names = [n for n in alone for _ in range(2)]
    random.Random(2).shuffle(names)
    idx = [i % len(TEXTS) for i in range(len(names))]
    got = z.logits([TEXTS[i] for i in idx], adapters=names)
    for name, i, row in zip(names, idx, got):
        np.testing.assert_allclose(row, alone[name][i], atol=1e-5, err_msg=name)
