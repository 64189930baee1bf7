"""The server's request boundary (zoo.server.requests) against arbitrary JSON: whatever a client sends, a request
is either refused with BadInput (which the server answers 400 with its message) or returned holding only what the
endpoint takes: names as bounded text, inputs as bounded texts, pairs or field objects, settings the registry
knows with values in range. No other exception, ever, and no value a later layer would have to check again."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.config.generation import check_generation
from zoo.errors import BadInput
from zoo.server.requests import MAX_INPUTS, classify_request, completion_request, parse_json

MAX = 50
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.integers(min_value=-10**400, max_value=10**400),  # past a float's range: no OverflowError
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=60))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(st.text(max_size=12), inner, max_size=5)),
                           max_leaves=20)
KEYS = ["adapter", "adapters", "inputs", "model", "prompt", "messages", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stream", "stream_options", "n", "stop", "seed", "user", "logprobs", "echo", "x"]
bodies = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)
plausible = st.fixed_dictionaries({"adapter": st.one_of(st.text(max_size=20), json_values),
                                   "inputs": st.lists(st.one_of(st.text(max_size=80), st.lists(st.text(max_size=30), max_size=3),
                                                                json_values), max_size=4)})
chats = st.fixed_dictionaries({"model": st.text(min_size=1, max_size=20),
                               "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", 1]),
                                                                           "content": json_values}), max_size=2)},
                              optional={"max_tokens": json_values, "temperature": json_values, "top_p": json_values,
                                        "stream": json_values, "stream_options": json_values})


def clean_text(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX and value == value.strip() and bool(value)


def check_input(x) -> None:
    if isinstance(x, tuple):
        assert len(x) == 2 and all(clean_text(t) for t in x)
    elif isinstance(x, dict):
        assert 1 <= len(x) <= 4 and all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX for k, v in x.items())
    else:
        assert clean_text(x)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(bodies, plausible))
def test_classify_boundary_takes_only_what_it_allows(body):
    try:
        req = classify_request(body, max_chars=MAX)
    except BadInput as e:
        assert str(e) and "Traceback" not in str(e)
        return
    assert 1 <= len(req.inputs) <= MAX_INPUTS and len(req.adapters) == len(req.inputs)
    assert all(isinstance(a, str) and a.strip() for a in req.adapters)
    for x in req.inputs:
        check_input(x)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(bodies, chats), st.booleans())
def test_completion_boundary_takes_only_what_it_allows(body, chat):
    try:
        req = completion_request(body, max_chars=MAX, chat=chat)
    except BadInput as e:
        assert str(e)
        return
    check_generation(req.settings, AssertionError, "checked request")  # every setting known and in range
    assert isinstance(req.stream, bool) and isinstance(req.include_usage, bool)
    assert all(math.isfinite(v) for v in req.settings.values() if isinstance(v, float))
    for x in req.inputs:
        check_input(x)


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b'"text"', b"NaN", b'{"a": Infinity}', b"\x00\xff",
                                 b"[" * 100_000 + b"]" * 100_000, json.dumps({"a": 1}).encode("utf-16")])
def test_bodies_that_are_not_one_json_object_are_refused(raw):
    with pytest.raises(BadInput):
        parse_json(raw)


def test_a_json_object_is_read():
    assert parse_json(b'{"adapter": "x", "inputs": ["y"]}') == {"adapter": "x", "inputs": ["y"]}


@pytest.mark.parametrize("key, value", [("temperature", 10 ** 400), ("top_p", -(10 ** 400)), ("temperature", 2 ** 64),
                                        ("max_tokens", 10 ** 400), ("seed", 10 ** 400)])
def test_integers_too_big_for_a_float_are_refused_not_raised(key, value):
    with pytest.raises(BadInput, match=key.replace("_tokens", "")):
        completion_request({"model": "m", "prompt": "x", key: value}, max_chars=MAX, chat=False)


@pytest.mark.parametrize("t", [1e-300, 5e-324, 1e-5, 0.0099])
def test_a_temperature_too_small_to_sample_with_is_greedy(t):
    """logits / 1e-300 overflow and transformers' sampling failed on NaN probabilities (a 500); vLLM reads such a
    temperature as greedy, and so does the zoo (below zoo.config.generation.MIN_TEMPERATURE)."""
    req = completion_request({"model": "m", "prompt": "x", "temperature": t}, max_chars=MAX, chat=False)
    assert req.settings == {"do_sample": False}
    assert completion_request({"model": "m", "prompt": "x", "temperature": 0.01}, max_chars=MAX,
                              chat=False).settings == {"do_sample": True, "temperature": 0.01}
