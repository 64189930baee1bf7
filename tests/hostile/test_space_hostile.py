"""The demo Space against hostile requests: bodies too large to read, and values of the wrong type, range or
encoding where the API expects text, a number or an id. `zoo demo` runs as a subprocess on loopback (its RSS is
read from /proc); raw HTTP sends what gradio_client would refuse to encode (lone surrogates, NaN)."""

from __future__ import annotations

import http.client
import json
import re
import runpy
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.test_space import BROKEN, SECOND, TEXT
from tests.test_space_app import client, free_port, start_demo, stop, try_args
from zoo.demo.limits import body_limit
from zoo.errors import BadInput, ZooError

LIMIT = body_limit(2000)  # what `zoo demo` refuses above with its default --max-chars
ROUTES = ["gradio_api/queue/join", "gradio_api/call/try", "gradio_api/run/predict", "gradio_api/api/try"]
INTERNAL = re.compile(r"internal error|Traceback|File \"|\b[A-Z]\w*(Error|Exception)\b")


@pytest.fixture(scope="module")
def app(space_home):
    proc, url, log = start_demo(space_home)
    yield proc, url
    stop(proc, log)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        kib = next(line for line in status if line.startswith("VmRSS:")).split()[1]
    return int(kib) / 1024


def post(url: str, path: str, body: bytes, *, chunked: bool = False, content_type: str = "application/json"):
    """One POST with http.client: a Content-Length, or chunked (1 MiB chunks, no length); returns (status, text)."""
    host, port = url.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        if chunked:
            chunks = (body[i:i + 2**20] for i in range(0, len(body), 2**20))
            conn.request("POST", "/" + path, body=chunks, headers={"Content-Type": content_type}, encode_chunked=True)
        else:
            conn.request("POST", "/" + path, body=body, headers={"Content-Type": content_type})
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def oversized(megabytes: int) -> bytes:
    return json.dumps({"data": ["x", "y" * (megabytes << 20), "", 8], "fn_index": 0, "session_hash": "big"}).encode()


def call(url: str, api: str, values: list) -> tuple[str, object]:
    """One request through the HTTP API (/gradio_api/call/<api>) with the JSON written here, so any value gets
    through (json escapes lone surrogates; NaN is allowed): ("complete", outputs) or ("error", message)."""
    body = json.dumps({"data": values}).encode()
    with httpx.Client(timeout=120) as http_client:
        sent = http_client.post(f"{url}gradio_api/call/{api}", content=body,
                                headers={"content-type": "application/json"})
        if sent.status_code != 200:
            return "http", (sent.status_code, sent.text)
        stream = http_client.get(f"{url}gradio_api/call/{api}/{sent.json()['event_id']}").text
    events = [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
              for block in stream.split("\n\n")]
    last = [e for e in events if e.get("event") in ("complete", "error")][-1]
    data = json.loads(last["data"])
    if last["event"] == "error" and isinstance(data, dict):
        return "error", data.get("error")
    return last["event"], data


def readable(message) -> bool:
    """A sentence a user can act on: text, not null, no internal exception name, no trace."""
    return (isinstance(message, str) and len(message) > 15 and " " in message and not INTERNAL.search(message)
            and len(message) < 3000)


def known_answer(url: str, entry_id: str) -> dict:
    kind, outputs = call(url, "try", [entry_id, TEXT, "", 8])
    assert kind == "complete", outputs
    raw = outputs[3]
    return {"label": raw["label"], "scores": raw["scores"]}


# ------------------------------------------------------------------ 1. bodies bounded before parsing
def test_oversized_bodies_are_refused_before_gradio_reads_them(app, space_cat):
    proc, url = app
    good = space_cat.get("sst2-lora").id
    before = known_answer(url, good)
    body = oversized(50)
    for path in ROUTES:
        for chunked in (False, True):
            status, text = post(url, path, body, chunked=chunked)
            assert status == 413, (path, chunked, status, text[:200])
            assert f"request body over {LIMIT:,} bytes" in text and "ZOO_DEMO_MAX_BODY" in text
    part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
    multipart = part + b"z" * (50 << 20) + b"\r\n--b--\r\n"
    for chunked in (False, True):  # uploads: the demo takes none; a big one is refused like any body
        status, _ = post(url, "gradio_api/upload", multipart, chunked=chunked,
                         content_type="multipart/form-data; boundary=b")
        assert status == 413
    conn = http.client.HTTPConnection(url.split("//")[1].strip("/"), timeout=60)  # one kept-alive connection:
    for size in (50 << 20, 100):  # the refused body is drained, the next request on it is read as a request
        conn.request("POST", "/gradio_api/call/try", body=json.dumps({"data": [good, TEXT, "x" * size, 8]}).encode(),
                     headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        assert (answer.status, answer.read() and size) in ((413, 50 << 20), (200, 100))
    conn.close()
    padded = json.dumps({"data": [good, TEXT, "", 8]}).encode()  # exactly at the limit: read; one byte over: refused
    assert post(url, "gradio_api/call/try", padded + b" " * (LIMIT - len(padded)))[0] == 200
    assert post(url, "gradio_api/call/try", padded + b" " * (LIMIT + 1 - len(padded)), chunked=True)[0] == 413
    assert known_answer(url, good) == before and proc.poll() is None


def test_rss_stays_flat_under_oversized_bodies(app, space_cat):
    """20 refused 30 MB bodies (10 with a Content-Length to queue/join, 10 chunked to call/try) leave RSS within
    50 MB of where a normal request left it; before the limit, 30 refused 50 MB bodies grew it by 1.5 GB."""
    proc, url = app
    good = space_cat.get("sst2-lora").id
    start = rss_mib(proc.pid)
    before = known_answer(url, good)
    known_answer(url, good)
    warm = rss_mib(proc.pid)
    body, t0 = oversized(30), time.perf_counter()
    for _ in range(10):
        assert post(url, "gradio_api/queue/join", body)[0] == 413
        assert post(url, "gradio_api/call/try", body, chunked=True)[0] == 413
    seconds = time.perf_counter() - t0
    after = rss_mib(proc.pid)
    assert known_answer(url, good) == before
    end = rss_mib(proc.pid)
    print(f"\nRSS MiB: start {start:.0f}, after warm-up {warm:.0f}, after 20 x 30 MB refused ({seconds:.1f} s) "
          f"{after:.0f}, end {end:.0f}")
    assert after - warm < 50 and end - warm < 50, (start, warm, after, end)


def test_space_limit_is_settable_and_covers_the_space_launch(space_home, space_cat, monkeypatch):
    """spaces/app.py as a Space runs it (GRADIO_SERVER_* from the environment), with ZOO_DEMO_MAX_BODY=4096."""
    port = free_port()
    for key, value in {"ZOO_HOME": str(space_home), "ZOO_HUB": "local", "ZOO_DEMO_MAX_BODY": "4096", "HF_TOKEN": "",
                       "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    space = runpy.run_path(str(ROOT / "spaces" / "app.py"))
    space["launch"](space["demo"], host=None, port=None, quiet=True, block=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        padded = json.dumps({"data": [space_cat.get("sst2-lora").id, TEXT, "", 8]}).encode()
        for path in ROUTES:
            assert post(url, path, padded + b" " * (4097 - len(padded)))[0] == 413, path
            assert post(url, path, padded + b" " * (4097 - len(padded)), chunked=True)[0] == 413, path
        assert call(url, "try", [space_cat.get("sst2-lora").id, TEXT, "", 8])[0] == "complete"
    finally:
        space["demo"].close()
    monkeypatch.setenv("ZOO_DEMO_MAX_BODY", "lots")
    with pytest.raises(BadInput, match="ZOO_DEMO_MAX_BODY must be a whole number of bytes"):
        space["launch"](space["demo"], host=None, port=None, quiet=True, block=False)
    with pytest.raises(BadInput, match="at least 1,024 bytes"):
        space["launch"](space["demo"], host=None, port=None, quiet=True, block=False, max_body=10)


# ------------------------------------------------------------------ 2. values checked at the boundary
def test_hostile_values_get_a_sentence_and_the_app_keeps_answering(app, space_cat):
    from gradio_client.exceptions import AppError

    _, url = app
    good, alpaca, base = space_cat.get("sst2-lora").id, space_cat.get("alpaca-lora").id, space_cat.bases()[0]
    before = known_answer(url, good)
    raw_cases = [  # raw HTTP: gradio_client cannot encode a lone surrogate nor NaN
        ("try", [good, "\ud800", "", 8], "not valid Unicode: U+D800 at position 0"),
        ("try", [good, "fine \udfff text", "", 8], "not valid Unicode: U+DFFF at position 5"),
        ("try", [good, TEXT, "\ud83d", 8], "the second text is not valid Unicode"),
        ("try", ["\ud800::x", TEXT, "", 8], "the adapter's id is not valid Unicode"),
        ("all_tasks", [base, "\ud800", ""], "not valid Unicode"),
        ("compare", ["glue/sst2", TEXT, "", float("nan")], "max new tokens must be a whole number, got nan"),
        ("try", [good, TEXT, "", float("inf")], "max new tokens must be a whole number, got inf"),
        ("try", [], "this endpoint takes 4 values, got 0"),
        ("all_tasks", [base], "this endpoint takes 3 values, got 1"),
        ("results", [{"a": 1}], "the task must be text (a JSON string), got a JSON object"),
        ("results", ["no/such-task"], "no task 'no/such-task' in the catalogue"),
    ]
    for api, values, message in raw_cases:
        kind, said = call(url, api, values)
        assert kind == "error" and message in said and readable(said), (api, values, said)
    c = client(url)
    cases = [
        ("/try", (alpaca, TEXT, "", "many"), "must be a number, got text; send a whole number from 1 to 256"),
        ("/try", (alpaca, TEXT, "", "24"), "max new tokens must be a number, got text"),
        ("/try", (alpaca, TEXT, "", 2.5), "max new tokens must be a whole number, got 2.5"),
        ("/try", (alpaca, TEXT, "", True), "max new tokens must be a number, got true (a boolean)"),
        ("/try", (alpaca, TEXT, "", 0), "less than minimum value 1"),
        ("/try", (good, {"text": TEXT}, "", 8), "the text must be text (a JSON string), got a JSON object"),
        ("/try", (good, [TEXT], "", 8), "the text must be text (a JSON string), got a list"),
        ("/try", (good, 42, "", 8), "the text must be text (a JSON string), got a number"),
        ("/try", (good, None, "", 8), "the text is empty"),
        ("/try", (good, TEXT, {"b": 1}, 8), "the second text must be text (a JSON string), got a JSON object"),
        ("/try", ({"id": good}, TEXT, "", 8), "the adapter's id must be text (a JSON string), got a JSON object"),
        ("/try", (None, TEXT, "", 8), "choose an adapter from the catalogue first"),
        ("/try", ("x" * 5000, TEXT, "", 8), "the adapter's id is 5,000 characters long"),
        ("/try", ("org/unknown::sst2-lora", TEXT, "", 8), "no entry 'org/unknown::sst2-lora' in the catalogue"),
        ("/all_tasks", ({"b": 1}, TEXT, ""), "the base model must be text (a JSON string), got a JSON object"),
        ("/all_tasks", ("org/no-such-base", TEXT, ""), "no base model 'org/no-such-base' in the catalogue"),
        ("/all_tasks", (base, [1, 2], ""), "the text must be text (a JSON string), got a list"),
        ("/compare", ([], TEXT, "", 8), "the task must be text (a JSON string), got a list"),
        ("/compare", ("glue/nope", TEXT, "", 8), "no task 'glue/nope' in the catalogue"),
        ("/compare", ("glue/sst2", TEXT, "", 10**20), "greater than maximum value 256"),
        ("/results", (7,), "the task must be text (a JSON string), got a number"),
    ]
    for api, args, message in cases:
        with pytest.raises(AppError) as info:
            c.predict(*args, api_name=api)
        assert message in str(info.value) and readable(str(info.value)), (api, args, str(info.value))
    assert known_answer(url, good) == before
    assert call(url, "all_tasks", [base, TEXT, SECOND])[0] == "complete"


# ------------------------------------------------------------------ properties
TEXTS = st.one_of(
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs", "Cc", "Cf", "Co", "Zl", "Zp"])), max_size=60),
    st.integers(1995, 2005).map(lambda n: "é" * n),  # around the 2,000-character limit
    st.integers(0, 3).map(lambda n: " \t\n\u00a0" * n),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | TEXTS,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)
FIELDS = ["entry", "base", "task", "results_task", "text", "second", "max_new_tokens"]


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(FIELDS), value=st.one_of(JSON, st.integers(-3, 300), st.sampled_from(
    ["sst2-lora", "glue/sst2", "all tasks", "no/such::thing", "::", "sst2-lora\x00", "roberta-large::sst2-lora"])))
def test_check_inputs_accepts_or_says_why(space_cat, field, value):
    try:
        checked = space_cat.check_inputs({field: value})[field]
    except ZooError as e:
        assert readable(str(e)), (field, ascii(value)[:200], str(e))
        str(e).encode("utf-8")  # a message Gradio can send as JSON
        return
    if field == "entry":
        assert checked.id in space_cat.entries
    elif field in ("base", "task"):
        assert checked in (space_cat.bases() if field == "base" else space_cat.tasks())
    elif field == "max_new_tokens":
        assert checked is None or (type(checked) is int and 1 <= checked <= 256)
    elif field == "results_task":
        assert checked is None or checked in space_cat.tasks()
    else:
        assert isinstance(checked, str) and len(checked) <= 2000 and checked == checked.strip()
        checked.encode("utf-8")
        assert field == "second" or checked


def ids_of(space_cat):
    return [e.id for e in space_cat.entries.values() if e.name != BROKEN]


def test_random_values_through_the_api_answer_or_say_why(app, space_cat):
    _, url = app
    answered = known_answer(url, space_cat.get("sst2-lora").id)
    entries, bases = ids_of(space_cat), space_cat.bases()
    seen = {"complete": 0, "error": 0}

    def check(api, values):
        kind, said = call(url, api, values)
        assert kind in ("complete", "error"), (api, ascii(values)[:300], said)
        seen[kind] += 1
        if kind == "error":
            assert readable(said), (api, ascii(values)[:300], said)

    def one_hostile(data, valid: list, api: str):
        """Valid values, one of them (or none) replaced by a random string or JSON value."""
        values = [data.draw(v) for v in valid]
        k = data.draw(st.integers(-1, len(values) - 1))
        if k >= 0:
            values[k] = data.draw(st.one_of(TEXTS, JSON))
        check(api, values)

    @settings(max_examples=45, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def try_endpoint(data):
        one_hostile(data, [st.sampled_from(entries), st.sampled_from([TEXT, SECOND]), st.sampled_from(["", SECOND]),
                           st.integers(1, 48)], "try")

    @settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def all_tasks_endpoint(data):
        one_hostile(data, [st.sampled_from(bases), st.sampled_from([TEXT, SECOND]), st.sampled_from(["", SECOND])],
                    "all_tasks")

    try_endpoint()
    all_tasks_endpoint()
    print(f"\nrandom pass: {seen['complete']} answered, {seen['error']} refused with a message")
    assert seen["complete"] and seen["error"]
    assert known_answer(url, space_cat.get("sst2-lora").id) == answered
    _, _, timing, raw = client(url).predict(*try_args(space_cat.get("sst2-lora")), api_name="/try")
    assert raw["label"] == answered["label"] and "answered in" in timing
