"""A bounded property-based pass (hypothesis, fixed seed and budget) over what callers hand the registry:
``predict`` / ``logits`` inputs and adapter lists, and ``generate`` prompts and settings. Every call
either answers in the documented shape or raises a ZooError with a message; never another exception,
and the known answers are the same afterwards."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_registry_causal import make_causal_adapter
from zoo.errors import ZooError
from zoo.serve.registry import Zoo, clear_shared
from zoo.testing import make_adapter

LABELS = ["negative", "positive"]
KNOWN = ["a gripping, beautifully acted film", "dull and far too long"]
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# Text as strangers send it: any code point (lone surrogates included), control characters, long runs.
texts = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),
    st.text(alphabet=st.sampled_from("ab \x00\n\t\u202e\ufeff\ud800é漢😀"), max_size=60),
    st.builds(lambda c, n: c * n, st.sampled_from(["film ", "x", "\u0301", "😀"]), st.integers(0, 4000)),
)
junk = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(max_size=8),
                 st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))
items = st.one_of(texts, st.tuples(texts, texts), st.lists(texts, max_size=3), junk)


@pytest.fixture(scope="module")
def classifiers(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    z = Zoo(str(tiny_bert), max_adapters=4)  # small: fuzzing also evicts and reloads
    for i, method in enumerate(["lora", "ia3", "prompt-tuning", "prefix-tuning", "last-layers"]):
        z.add(folder=make_adapter(str(tiny_bert), root / method, name=f"sst2-{method}", method=method, labels=LABELS,
                                  seed=i))
    z.add(folder=make_adapter(str(tiny_bert), root / "rte", name="rte-lora", method="lora",
                              labels=["entailment", "not_entailment"], pair=True, seed=9))
    yield z
    clear_shared()


def test_predict_answers_or_refuses_clearly(classifiers):
    z = classifiers
    names = list(z.names)
    known = {n: z.logits([("a", "b")] * 2 if n == "rte-lora" else KNOWN, adapter=n) for n in names}
    adapter_lists = st.lists(st.one_of(st.sampled_from(names), st.sampled_from(["nope", "../x", "", "a\n"]), junk),
                             max_size=6)

    answered = []

    def well_typed(ads):  # each adapter with an input of its kind: the texts are what vary
        return st.tuples(st.just(ads), st.tuples(*[st.tuples(texts, texts) if a == "rte-lora" else texts for a in ads]))

    chaos = st.tuples(st.one_of(st.lists(st.sampled_from(names), max_size=6), adapter_lists),
                      st.one_of(st.lists(items, max_size=6), junk, texts))

    @FUZZ
    @given(case=st.one_of(st.lists(st.sampled_from(names), max_size=6).flatmap(well_typed), chaos),
           one=st.one_of(st.none(), st.none(), st.sampled_from(names)))
    def check(case, one):
        adapters, inputs = case
        inputs = list(inputs) if isinstance(inputs, tuple) else inputs
        try:
            if one is not None:
                rows = z.predict(inputs, adapter=one)
                owners = [one] * len(rows)
            else:
                rows = z.predict(inputs, adapters=adapters)
                owners = adapters
        except ZooError as e:
            assert str(e).strip() and "Traceback" not in str(e)
            return
        assert len(rows) == len(inputs)
        for row, owner in zip(rows, owners):
            labels = z.labels(owner)
            assert row["label"] in labels and set(row["scores"]) == set(labels)
            assert all(math.isfinite(p) for p in row["scores"].values())
            assert abs(sum(row["scores"].values()) - 1) < 1e-4
        answered.append(len(rows))

    check()
    assert sum(1 for n in answered if n) >= 60, "the pass must exercise real answers, not only refusals"
    for n in names:
        again = z.logits([("a", "b")] * 2 if n == "rte-lora" else KNOWN, adapter=n)
        np.testing.assert_allclose(again, known[n], atol=1e-5)


@pytest.fixture(scope="module")
def causal(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-causal")
    z = Zoo(str(tiny_llama))
    for i, method in enumerate(["lora", "prompt-tuning", "prefix-tuning"]):
        z.add(folder=make_causal_adapter(tiny_llama, root / method, name=f"gen-{method}", method=method, seed=i))
    yield z
    clear_shared()


def test_generate_answers_or_refuses_clearly(causal):
    z = causal
    names = list(z.names)
    known = z.generate(KNOWN, adapters=names[:2], max_new_tokens=6)
    values = st.one_of(st.integers(-3, 24), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                       st.booleans(), st.text(max_size=4), st.none())
    settings_st = st.dictionaries(st.sampled_from(["max_new_tokens", "num_beams", "do_sample", "temperature", "top_p",
                                                   "top_k", "repetition_penalty", "bogus"]), values, max_size=3)

    answered = []

    valid = st.fixed_dictionaries({}, optional={
        "max_new_tokens": st.integers(1, 8), "do_sample": st.booleans(), "temperature": st.floats(0.1, 2),
        "top_k": st.integers(0, 50), "top_p": st.floats(0.1, 1), "num_beams": st.integers(1, 3),
        "repetition_penalty": st.floats(0.5, 2)})
    def same_length(prompt):
        return st.integers(1, 3).flatmap(lambda n: st.tuples(st.lists(prompt, min_size=n, max_size=n),
                                                            st.lists(st.sampled_from(names), min_size=n, max_size=n)))

    @settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(same_length(texts), same_length(texts), same_length(texts), same_length(st.one_of(texts, junk)),
                          st.tuples(st.lists(texts, max_size=3), st.lists(st.sampled_from(names), max_size=3))),
           generation=st.one_of(valid, valid, settings_st))
    def check(case, generation):
        prompts, adapters = case
        generation.setdefault("max_new_tokens", 4)
        if isinstance(generation.get("max_new_tokens"), int) and not isinstance(generation["max_new_tokens"], bool):
            generation["max_new_tokens"] = min(generation["max_new_tokens"], 10**7)
        try:
            out = z.generate(prompts, adapters=adapters, **generation)
        except ZooError as e:
            assert str(e).strip()
            return
        assert len(out) == len(prompts) and all(isinstance(t, str) for t in out)
        answered.append(len(out))

    check()
    assert len(answered) >= 30, "the pass must exercise real generations, not only refusals"
    assert z.generate(KNOWN, adapters=names[:2], max_new_tokens=6) == known
