"""``zoo serve`` over real HTTP: the CLI as a subprocess on loopback, driven with httpx and the official openai
client. Answers equal zoo.load's (labels exact, probabilities to 1e-5, greedy text exact, streamed or not);
every bad request is a JSON error with its status and leaves the server serving; a full queue answers 429 with
Retry-After, a late answer 504; the token is required where set; the catalogue follows pushes and removals."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

import zoo
from tests.test_space import SECOND, TEXT, item_for, reference

ZOO = str(Path(sys.executable).parent / "zoo")
BROKEN = "tweet-hate-lora"  # damaged in space_home's hub after it was published
LOGS: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc, url: str, seconds: float) -> None:
    """Until ``url``/health answers 200; fails with the server's output if it exits or takes ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the server did not start: {proc.communicate(timeout=30)}")
        time.sleep(0.2)


@contextmanager
def serving(home: Path, *args: str, env: dict | None = None, wait: float = 120):
    """``zoo serve`` on a free loopback port over ``home``'s local hub; yields its URL; checks it never sent or
    logged a traceback."""
    port = free_port()
    environ = {**os.environ, "ZOO_HOME": str(home), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen([ZOO, "serve", "--hub", "local", "--port", str(port), *args], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, wait)
        yield url
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        LOGS.append(out + err)


@pytest.fixture(scope="module")
def server(space_home):
    with serving(space_home, "--refresh-seconds", "0") as url:
        yield url


def post(url: str, path: str, body, **kw) -> httpx.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(f"{url}{path}", content=data, headers={"content-type": "application/json", **kw.pop("headers", {})},
                      timeout=kw.pop("timeout", 120), **kw)


def openai_client(url: str, **kw):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def wire(item):
    return list(item) if isinstance(item, tuple) else item


# ------------------------------------------------------------------------------------------- answers
def test_classify_equals_zoo_load_alone_and_mixed(server, space_cat, space_backend):
    entries = [e for e in space_cat.entries.values() if e.kind != "generate" and e.name != BROKEN]
    assert {"classify", "verbalize"} <= {e.kind for e in entries} and len(entries) >= 8
    refs = {e.name: reference(e, space_backend, item_for(e)) for e in entries}

    def same(got, ref, name):
        assert got["label"] == ref["label"], name
        if "scores" in ref:
            assert set(got["scores"]) == set(ref["scores"]), name
            np.testing.assert_allclose([got["scores"][k] for k in ref["scores"]], list(ref["scores"].values()),
                                       atol=1e-5, err_msg=name)
        else:  # a causal entry read as a label: its generation
            assert got["text"] == ref["text"], name

    for e in entries:  # each alone, named as the catalogue lists it
        r = post(server, "/v1/classify", {"adapter": e.name, "inputs": [wire(item_for(e))]})
        assert r.status_code == 200, r.text
        [got] = r.json()["results"]
        assert got["adapter"] == e.name
        same(got, refs[e.name], e.name)
    # all of them in one request: one mixed batch per base, each row its own adapter
    r = post(server, "/v1/classify", {"adapters": [e.name for e in entries], "inputs": [wire(item_for(e)) for e in entries]})
    assert r.status_code == 200, r.text
    for e, got in zip(entries, r.json()["results"]):
        same(got, refs[e.name], e.name)


def test_models_lists_every_entry_for_the_openai_client(server, space_cat):
    listed = {m.id: m for m in openai_client(server).models.list().data}
    assert set(listed) == {e.name for e in space_cat.entries.values()}
    assert listed["alpaca-lora"].model_extra["zoo"]["kind"] == "generate"
    assert listed["sst2-lora"].model_extra["zoo"]["task"] == "glue/sst2"


def test_openai_completions_and_chat_equal_zoo_generate(server, space_cat, space_backend):
    entry = space_cat.get("alpaca-lora")
    model = zoo.load(entry.base, adapter=entry.key, hub=space_backend)
    prompts = ["Name a colour.", "Write a word about films."]
    want = model.generate(prompts, max_new_tokens=8)
    client = openai_client(server)

    got = client.completions.create(model="alpaca-lora", prompt=prompts, max_tokens=8)
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want
    assert got.usage.completion_tokens > 0 and got.usage.total_tokens == got.usage.prompt_tokens + got.usage.completion_tokens
    greedy = client.completions.create(model="alpaca-lora", prompt=prompts[0], max_tokens=8, temperature=0)
    assert greedy.choices[0].text == model.generate([prompts[0]], max_new_tokens=8, do_sample=False)[0]
    assert greedy.choices[0].finish_reason in ("stop", "length")

    chat = client.chat.completions.create(model="alpaca-lora", messages=[{"role": "user", "content": prompts[0]}],
                                          max_tokens=8)
    assert chat.choices[0].message.content == want[0] and chat.choices[0].message.role == "assistant"

    # streamed: the pieces add up to the same text; the usage chunk comes last
    chunks = list(client.completions.create(model="alpaca-lora", prompt=prompts[1], max_tokens=8, stream=True,
                                            stream_options={"include_usage": True}))
    pieces = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(pieces) == want[1]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= len([p for p in pieces if p])
    streamed_chat = client.chat.completions.create(model="alpaca-lora", messages=[{"role": "user", "content": prompts[0]}],
                                                   max_tokens=8, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed_chat if c.choices) == want[0]


def test_generation_settings_share_one_worker_per_base_and_mixed_calls_answer_each_as_alone(space_cat, space_backend):
    """A coalescer per distinct setting kept a thread for every temperature a client ever sent (a stranger could
    make thousands); now one per base, and a call that holds rows of several settings runs one generate per set."""
    from zoo.config.prompts import render_inputs
    from zoo.demo.catalogue import _eos_ids, _generate_mixed, _Tokens

    entry = space_cat.get("alpaca-lora")
    prompt = "Name a colour."
    space_cat.answer_rows([(entry, prompt)], settings={"max_new_tokens": 2}, strict=True)  # loaded, its worker started
    threads, batchers = threading.active_count(), len(space_cat._batchers)
    for i in range(12):
        row = space_cat.answer_rows([(entry, prompt)], settings={"max_new_tokens": 2, "do_sample": True,
                                                                  "temperature": 0.5 + i / 1000}, strict=True)[0]
        assert isinstance(row["text"], str)
    assert len(space_cat._batchers) == batchers and threading.active_count() <= threads

    model = space_cat.model(entry)
    settings = [{"max_new_tokens": 3, "do_sample": False}, {"max_new_tokens": 6, "do_sample": False}]
    alone = [model.generate([prompt], **s)[0] for s in settings]
    rendered = render_inputs(model.record.prompt, model.record.examples, model.zoo.tokenizer, [prompt])[0]
    rows = [(model.name, rendered, _Tokens(None, counting=True, eos=_eos_ids(model.zoo)), s) for s in settings * 2]
    assert _generate_mixed(model.zoo, rows) == alone * 2


def test_verbalizing_entry_generates_through_completions_too(server, space_cat, space_backend):
    entry = space_cat.get("sst2-zero-shot-icl")
    want = zoo.load(entry.base, adapter=entry.key, hub=space_backend).generate([TEXT])[0]
    got = openai_client(server).completions.create(model="sst2-zero-shot-icl", prompt=TEXT)
    assert got.choices[0].text == want


# ------------------------------------------------------------------------------------------- errors
BAD = [
    ("/v1/classify", b"{not json", 400, "not valid JSON"),
    ("/v1/classify", b"\xff\xfe", 400, "UTF-8"),
    ("/v1/classify", [1, 2], 400, "JSON object"),
    ("/v1/classify", {"adapter": "sst2-lora"}, 400, "inputs"),
    ("/v1/classify", {"adapter": "sst2-lora", "inputs": [TEXT], "extra": 1}, 400, "unknown field 'extra'"),
    ("/v1/classify", {"adapter": "sst2-lora", "adapters": ["sst2-lora"], "inputs": [TEXT]}, 400, "either"),
    ("/v1/classify", {"adapter": "no-such-adapter", "inputs": [TEXT]}, 404, "no entry"),
    ("/v1/classify", {"adapter": "rte-lora", "inputs": [TEXT]}, 400, "sentence-pair"),
    ("/v1/classify", {"adapter": "sst2-lora", "inputs": [[TEXT, SECOND]]}, 400, "one text"),
    ("/v1/classify", {"adapter": "sst2-lora", "inputs": ["x" * 2001]}, 400, "2,001 characters"),
    ("/v1/classify", {"adapter": "sst2-lora", "inputs": [TEXT] * 65}, 400, "at most 64"),
    ("/v1/classify", {"adapter": "sst2-lora", "inputs": ["\ud800"]}, 400, "surrogate"),
    ("/v1/classify", {"adapter": "alpaca-lora", "inputs": [TEXT]}, 400, "/v1/completions"),
    ("/v1/classify", {"adapter": ["sst2-lora"], "inputs": [TEXT]}, 400, "adapter must be"),
    ("/v1/completions", {"model": "sst2-lora", "prompt": TEXT}, 400, "/v1/classify"),
    ("/v1/completions", {"model": "alpaca-lora", "prompt": TEXT, "n": 2}, 400, "n is not supported"),
    ("/v1/completions", {"model": "alpaca-lora", "prompt": TEXT, "logprobs": 3}, 400, "logprobs"),
    ("/v1/completions", {"model": "alpaca-lora", "prompt": TEXT, "max_tokens": 100000}, 400, "max_tokens"),
    ("/v1/completions", {"model": "alpaca-lora", "prompt": TEXT, "temperature": "hot"}, 400, "temperature"),
    ("/v1/completions", {"model": "alpaca-lora", "prompt": TEXT, "temperature": float("nan")}, 400, "JSON"),
    ("/v1/completions", {"model": "alpaca-lora", "prompt": TEXT, "stream": "yes"}, 400, "stream"),
    ("/v1/completions", {"model": "alpaca-lora"}, 400, "prompt"),
    ("/v1/chat/completions", {"model": "alpaca-lora", "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": "alpaca-lora", "messages": [{"role": "system", "content": "x"},
                                                                   {"role": "user", "content": TEXT}]}, 400, "one"),
    ("/v1/chat/completions", {"model": "alpaca-lora", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, 400, "images"),
]


@pytest.mark.parametrize("path,body,status,says", BAD, ids=[f"{i}-{b[0].rsplit('/', 1)[-1]}" for i, b in enumerate(BAD)])
def test_bad_requests_get_a_json_error_and_the_server_goes_on(server, path, body, status, says):
    if isinstance(body, dict) and any(isinstance(v, float) and v != v for v in body.values()):
        body = json.dumps(body)  # Python writes NaN; JSON has no NaN: the server must refuse it
    r = post(server, path, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert says in error["message"] and "Traceback" not in r.text
    assert post(server, "/v1/classify", {"adapter": "sst2-lora", "inputs": [TEXT]}).status_code == 200


def test_broken_adapter_fails_alone_without_a_traceback(server):
    r = post(server, "/v1/classify", {"adapter": BROKEN, "inputs": [TEXT]})
    assert r.status_code == 500 and "could not be loaded" in r.json()["error"]["message"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert post(server, "/v1/classify", {"adapter": "sst2-ia3", "inputs": [TEXT]}).status_code == 200


def test_body_limit_unknown_routes_and_methods(server):
    r = post(server, "/v1/classify", b'{"adapter": "sst2-lora", "inputs": ["' + b"x" * 7_000_000 + b'"]}')
    assert r.status_code == 413 and "at most" in r.json()["error"]["message"]
    r = httpx.get(f"{server}/v1/nothing")
    assert r.status_code == 404 and "the endpoints are" in r.json()["error"]["message"]
    r = httpx.get(f"{server}/v1/classify")
    assert r.status_code == 405 and "error" in r.json()


def test_metrics_count_requests_latency_batches_and_residents(server):
    assert post(server, "/v1/classify", {"adapter": "sst2-lora", "inputs": [TEXT, "a dull film"]}).status_code == 200
    post(server, "/v1/classify", {"adapter": "no-such-adapter", "inputs": [TEXT]})
    text = httpx.get(f"{server}/metrics").text
    assert 'zoo_requests_total{adapter="sst2-lora",endpoint="classify",status="200"}' in text
    assert 'zoo_requests_total{adapter="-",endpoint="classify",status="404"}' in text, "a stranger's name is not a label"
    assert "no-such-adapter" not in text
    assert 'zoo_request_seconds_bucket{adapter="sst2-lora",endpoint="classify",le="+Inf"}' in text
    assert 'zoo_batch_rows_count{kind="classify"}' in text and "zoo_queue_depth 0.0" in text
    assert "zoo_resident_adapters{base=" in text and "zoo_adapter_evictions_total{base=" in text


# ------------------------------------------------------------------------------------------- token, load
def test_token_is_required_where_set_and_never_logged(space_home):
    secret = "s3cret-token-for-the-test"
    with serving(space_home, "--token-env", "ZOO_TEST_TOKEN", "--refresh-seconds", "0",
                 env={"ZOO_TEST_TOKEN": secret}) as url:
        body = {"adapter": "sst2-lora", "inputs": [TEXT]}
        assert post(url, "/v1/classify", body).status_code == 401
        assert post(url, "/v1/classify", body, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401 and httpx.get(f"{url}/health").status_code == 200
        assert post(url, "/v1/classify", body, headers={"authorization": f"Bearer {secret}"}).status_code == 200
        assert openai_client(url, api_key=secret).models.list().data
    assert secret not in LOGS[-1]
    out = subprocess.run([ZOO, "serve", "--hub", "local", "--token-env", "ZOO_UNSET_VAR"], capture_output=True, text=True,
                         env={**os.environ, "ZOO_HOME": str(space_home)}, timeout=120)
    assert out.returncode != 0 and "ZOO_UNSET_VAR" in out.stderr and "Traceback" not in out.stderr


def test_full_queue_answers_429_and_late_answers_504_without_harming_others(space_home):
    with serving(space_home, "--max-queue", "2", "--timeout", "30", "--refresh-seconds", "0") as url:
        body = {"model": "alpaca-lora", "prompt": "Name a colour.", "max_tokens": 48}
        barrier = threading.Barrier(8)

        def one(_):
            barrier.wait()
            return post(url, "/v1/completions", body)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(8)))
        codes = sorted(r.status_code for r in answers)
        assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes
        busy = next(r for r in answers if r.status_code == 429)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]["message"]
        texts = {r.json()["choices"][0]["text"] for r in answers if r.status_code == 200}
        assert len(texts) == 1, "every admitted request got the same greedy answer"
        for _ in range(100):
            if httpx.get(f"{url}/health").json()["queue"] == 0:
                break
            time.sleep(0.1)
        assert httpx.get(f"{url}/health").json()["queue"] == 0
    with serving(space_home, "--timeout", "0.001", "--refresh-seconds", "0") as url:
        r = post(url, "/v1/completions", {"model": "alpaca-lora", "prompt": "Name a colour.", "max_tokens": 48})
        assert r.status_code == 504 and "deadline" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/health").status_code == 200


# ------------------------------------------------------------------------------------------- a living catalogue
def test_pushes_new_revisions_and_removals_are_served_without_a_restart(space_home, tmp_path, tiny_bert):
    from zoo.data.tasks import TASKS
    from zoo.hub.local import LocalHub
    from zoo.testing import make_adapter

    home = tmp_path / "home"
    shutil.copytree(space_home, home, symlinks=True)
    hub = LocalHub(home / "hub")
    labels = TASKS["glue/sst2"].labels

    def push(seed):
        folder = make_adapter(str(tiny_bert), tmp_path / f"new-{seed}", name="sst2-new-lora", method="lora",
                              labels=labels, seed=seed, scale=1.0)
        hub.push(folder)
        return zoo.load(str(tiny_bert), adapter="sst2-new-lora", hub=hub).predict([TEXT])[0]

    with serving(home, "--refresh-seconds", "0.3") as url:
        ask = {"adapter": "sst2-new-lora", "inputs": [TEXT]}
        assert post(url, "/v1/classify", ask).status_code == 404
        first = push(1)
        started = time.monotonic()
        while (r := post(url, "/v1/classify", ask)).status_code == 404 and time.monotonic() - started < 5:
            time.sleep(0.1)  # an unknown name lists the hub again (at most once a second), as does the timer
        assert r.status_code == 200 and r.json()["results"][0]["scores"] == pytest.approx(first["scores"], abs=1e-5)
        second = push(2)
        assert second["scores"] != pytest.approx(first["scores"], abs=1e-3)
        for _ in range(50):
            got = post(url, "/v1/classify", ask).json()["results"][0]["scores"]
            if got == pytest.approx(second["scores"], abs=1e-5):
                break
            time.sleep(0.2)
        assert got == pytest.approx(second["scores"], abs=1e-5), "the new revision is served"
        shutil.rmtree(hub.find(str(tiny_bert), "sst2-new-lora").parent.parent)
        time.sleep(1.5)  # past the periodic refresh
        assert post(url, "/v1/classify", ask).status_code == 404
        assert post(url, "/v1/classify", {"adapter": "sst2-lora", "inputs": [TEXT]}).status_code == 200


STREAM_TEXTS = ["The film is a delight, from start to finish.", "naïve café, crème brûlée: très bien !",
                "emoji 😀👍🏽 and 中文字符 mixed with   spaces\tand\nlines", "a<|im_end|>b end"]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_streamed_pieces_add_up_to_the_whole_decode_with_short_windows(fixture, request):
    """Byte-level BPE (multi-byte characters split across tokens) and WordPiece (``##`` pieces): the pieces a
    stream sends add up to the text decoded at once, and no token costs a decode of more than a short window
    (the stream is linear in its length, not quadratic)."""
    from transformers import AutoTokenizer

    from zoo.server.streaming import IncrementalText

    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    for text in STREAM_TEXTS * 2:
        ids = tokenizer(text * 8, add_special_tokens=False)["input_ids"]
        stream, pieces, longest = IncrementalText(), [], 0
        for token in ids:
            pieces.append(stream.push(tokenizer, token))
            longest = max(longest, len(stream.ids) - stream.prefix)
        assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
        assert len(ids) > 30 and longest <= 12, (len(ids), longest)
    late = IncrementalText()  # tokens that come before the tokenizer is known wait in the window
    ids = tokenizer(STREAM_TEXTS[0], add_special_tokens=False)["input_ids"]
    assert late.push(None, ids[0]) == ""
    assert "".join([late.push(tokenizer, t) for t in ids[1:]]) == tokenizer.decode(ids, skip_special_tokens=True)
