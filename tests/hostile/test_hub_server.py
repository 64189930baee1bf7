"""The loopback Hub server (zoo.hub.server) against hostile and broken clients: malformed framing, JSON
and NDJSON, oversized and stalled bodies, bad paths and repo ids, alias bombs in cards, faults inside
handlers, and a bounded random pass. Normal paths use the real huggingface_hub client over HTTP; the
malformed requests are written by hand (http.client, raw sockets) to control every header and byte.
Every refusal must be a 4xx JSON reply that says what is wrong, and must leave the repos as they were."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote, quote_from_bytes, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from zoo.hub import requests as rq
from zoo.hub.server import HubServer, serve

TOKEN = "hf_HOSTILEtokenZOO1234567890abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STEADY = "tester/steady"  # never changed by any test: every refusal is checked against its head
MiB = 2**20


@pytest.fixture(scope="module")
def hf():
    """huggingface_hub in this process, allowed onto the loopback server (conftest sets HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", False)
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory, hf):
    srv = serve(tmp_path_factory.mktemp("hostile-hub"), port=0, tokens={TOKEN: "tester"}, quiet=True)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def api(server):
    from huggingface_hub import HfApi

    return HfApi(endpoint=server.endpoint, token=TOKEN)


def _folder(root, files: dict[str, str]):
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def steady(server, api, tmp_path_factory):
    """A repo with README, a and sub/b; returns its head sha, which no test may move."""
    api.create_repo(STEADY)
    card = "---\nlicense: mit\ntags: [x]\n---\n# steady\n"
    folder = _folder(tmp_path_factory.mktemp("steady") / "f", {"README.md": card, "a": "1", "sub/b": "2"})
    return api.upload_folder(folder_path=str(folder), repo_id=STEADY).oid


def request(server, method, path, body=b"", headers=None, length=None):
    """(status, headers, parsed JSON body) of one request on a fresh connection; ``length``, when
    given, replaces the Content-Length header (a list: several headers)."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        lengths = [str(len(body))] if length is None else length if isinstance(length, list) else [length]
        for value in lengths:
            conn.putheader("Content-Length", value)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.getheader("Content-Type") == "application/octet-stream":
        return resp.status, resp, data
    assert resp.getheader("Content-Type") == "application/json", (resp.status, data[:200])
    return resp.status, resp, json.loads(data) if method != "HEAD" else None


def refused(server, method, path, body=b"", headers=None, length=None, status=400) -> str:
    """The error message of a request that must be refused with ``status`` and a JSON error."""
    got, resp, data = request(server, method, path, body, headers, length)
    assert got == status, (got, data)
    assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], data
    assert "Traceback" not in json.dumps(data) and resp.getheader("X-Error-Message")
    return data["error"]


def still_serving(server, api, head=None):
    """The server answers a normal request, and the steady repo is exactly as it was."""
    info = api.model_info(STEADY)
    assert {s.rfilename for s in info.siblings} == {"README.md", "a", "sub/b"}
    assert server.store.head(STEADY) == info.sha
    if head is not None:
        assert info.sha == head


def ndjson(*items) -> bytes:
    return "\n".join(json.dumps(i) for i in items).encode()


HEADER = {"key": "header", "value": {"summary": "hostile"}}
COMMIT = f"/api/models/{STEADY}/commit/main"


def add(path, content=b"x"):
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"}}


# ---------------------------------------------------------------- 1. malformed requests
MALFORMED = [  # (method, path, body, extra headers, what the message says)
    ("POST", "/api/repos/create", b"{bad", AUTH, "not valid JSON"),
    ("POST", "/api/repos/create", b"[1, 2]", AUTH, "must be a JSON object, got a list"),
    ("POST", "/api/repos/create", b'"name"', AUTH, "must be a JSON object, got a string"),
    ("POST", "/api/repos/create", b'{"name": 5}', AUTH, "'name' must be a string, got a whole number"),
    ("POST", "/api/repos/create", b'{"name": ["x"]}', AUTH, "'name' must be a string, got a list"),
    ("POST", "/api/repos/create", b'{"name": "x", "private": "yes"}', AUTH, "'private' must be true/false"),
    ("POST", "/api/repos/create", b'{"name": "x", "visibility": "hidden"}', AUTH, "'visibility' must be one of"),
    ("POST", "/api/repos/create", b'{"name": "x", "type": "dataset"}', AUTH, "'type' must be one of 'model'"),
    ("POST", "/api/repos/create", b'{"name": "x", "organization": {}}', AUTH, "'organization' must be a string"),
    ("POST", "/api/repos/create", b'{"name": NaN}', AUTH, "not valid JSON"),
    ("POST", "/api/repos/create", b"[" * 100_000, AUTH, "nested too deeply"),
    ("POST", "/api/repos/create", b'\xff\xfe{"name": "x"}', AUTH, "not valid UTF-8"),
    ("POST", "/api/repos/create", '{"name": "x"}'.encode("utf-16"), AUTH, "not valid UTF-8"),
    ("DELETE", "/api/repos/delete", b"[]", AUTH, "must be a JSON object"),
    ("DELETE", "/api/repos/delete", b"{}", AUTH, "'name' is required"),
    ("POST", "/api/validate-yaml", b"[]", {}, "must be a JSON object"),
    ("POST", "/api/validate-yaml", b'{"content": 3}', {}, "'content' must be a string"),
    ("POST", COMMIT, b"{bad\n", AUTH, "commit line 1 is not valid JSON"),
    ("POST", COMMIT, b"[1]\n", AUTH, "commit line 1 must be a JSON object, got a list"),
    ("POST", COMMIT, b'{"key": "header", "value": []}', AUTH, "'value' must be an object, got a list"),
    ("POST", COMMIT, b'{"key": 7, "value": {}}', AUTH, "'key' must be a string"),
    ("POST", COMMIT, ndjson(add("c")), AUTH, "one header line, first"),
    ("POST", COMMIT, ndjson(HEADER, HEADER), AUTH, "one header line, first"),
    ("POST", COMMIT, ndjson({"key": "header", "value": {"parentCommit": "HEAD"}}), AUTH, "parentCommit must be"),
    ("POST", COMMIT, ndjson({"key": "header", "value": {"summary": ["x"]}}), AUTH, "'summary' must be a string"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "rename", "value": {}}), AUTH, "unknown operation 'rename'"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "file", "value": {"path": "c", "content": "**not base64**"}}), AUTH,
     "content of 'c' is not valid base64"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "file", "value": {"path": "c", "content": "aGk"}}), AUTH,
     "not valid base64"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "file", "value": {"path": "c", "content": "é"}}), AUTH,
     "not valid base64"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "file", "value": {"path": "c"}}), AUTH, "'content' is required"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "file", "value": {"path": "c", "content": "", "encoding": "hex"}}),
     AUTH, "'encoding' must be one of 'base64'"),
    ("POST", COMMIT, ndjson(HEADER, add("c"), add("c")), AUTH, "'c' is added twice"),
    ("POST", COMMIT, ndjson(HEADER, {"key": "deletedFile", "value": {"path": 3}}), AUTH, "a path must be a string"),
    ("POST", COMMIT, ndjson(HEADER) + b"\n\xc3\x28", AUTH, "commit line 2 is not valid UTF-8"),
    ("POST", COMMIT, b"", AUTH, "no header line"),
    ("POST", COMMIT + "?create_pr=1", ndjson(HEADER, add("c")), AUTH, "does not take pull requests"),
    ("POST", COMMIT + "?create_pr=perhaps", ndjson(HEADER), AUTH, "'create_pr' must be true or false"),
    ("POST", f"/api/models/{STEADY}/preupload/main", b'{"files": {"path": "x"}}', AUTH, "'files' must be a list"),
    ("POST", f"/api/models/{STEADY}/preupload/main", b'{"files": [5]}', AUTH, "must be a JSON object"),
    ("POST", f"/api/models/{STEADY}/preupload/main", b'{"files": [{"path": "a", "size": "big"}]}', AUTH,
     "'size' must be a whole number"),
    ("POST", f"/api/models/{STEADY}/paths-info/main", b'{"paths": [1]}', {"Content-Type": "application/json"},
     "list of strings"),
    ("POST", f"/api/models/{STEADY}/paths-info/main", b'{"paths": {}}', {"Content-Type": "application/json"},
     "'paths' must be a list or a string"),
    ("POST", f"/api/models/{STEADY}/paths-info/main", b"paths=%ff", {}, "malformed paths-info form"),
    ("POST", f"/api/models/{STEADY}/paths-info/main", b"paths=\xff", {}, "not valid UTF-8"),
    ("GET", "/api/models?limit=abc", b"", {}, "'limit' must be a whole number"),
    ("GET", "/api/models?limit=-1", b"", {}, "'limit' must be a whole number"),
    ("GET", "/api/models?limit=1e3", b"", {}, "'limit' must be a whole number"),
    ("GET", "/api/models?limit=99999999999999999999", b"", {}, "'limit' must be a whole number"),
    ("GET", "/api/models?limit=1&limit=2", b"", {}, "given 2 times"),
    ("GET", "/api/models?cardData=maybe", b"", {}, "'cardData' must be true or false"),
    ("GET", "/api/models?search=%ff", b"", {}, "malformed query string"),
    ("GET", "/api/models?" + "&".join(f"f{i}=1" for i in range(200)), b"", {}, "malformed query string"),
    ("GET", f"/api/models/{STEADY}/tree/main?recursive=sometimes", b"", {}, "'recursive' must be true or false"),
    ("GET", f"/api/models/{STEADY}/tree/%ff", b"", {}, "not valid UTF-8"),
    ("GET", f"/{STEADY}/resolve/main/%c3%28", b"", {}, "not valid UTF-8"),
]


@pytest.mark.parametrize("method, path, body, headers, says", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_request_gets_a_400_json_error_and_changes_nothing(server, api, steady, method, path, body,
                                                                      headers, says):
    assert says in refused(server, method, path, body, headers)
    still_serving(server, api, steady)
    assert "tester/x" not in server.store.repos()  # nothing created by a refusal


BAD_LENGTHS = [("abc", 400), ("-5", 400), ("1e3", 400), ("+5", 400), ("0x10", 400), ("", 400), ("9" * 30, 400),
               (["5", "5"], 400)]


@pytest.mark.parametrize("length, status", BAD_LENGTHS, ids=[str(v) for v, _ in BAD_LENGTHS])
def test_bad_content_length_is_refused_before_reading(server, api, steady, length, status):
    for path in (COMMIT, "/api/repos/create", "/api/models"):
        msg = refused(server, "POST" if path != "/api/models" else "GET", path, b'{"name": "x"}', AUTH, length,
                      status)
        assert "Content-Length must be one whole number" in msg
    still_serving(server, api, steady)


def read_all(s: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass  # after the reply: the server closed on a body it did not want
    return out


def raw_exchange(address, data: bytes, *, half_close=False) -> bytes:
    """Everything the server sends back to ``data`` written on a raw socket, up to its close."""
    with socket.create_connection(address[:2], timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_all(s)


def parse_raw(out: bytes) -> tuple[int, dict]:
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert b"Content-Type: application/json" in head, head
    return status, json.loads(body)


RAW = [  # requests http.client would not write: a broken request line, framing, versions, methods
    (b"GARBAGE\r\n\r\n", 400, "Bad request syntax"),
    (b"\r\n", 400, "empty request line"),
    (b"GET /api/models HTTP/2.0\r\n\r\n", 400, "HTTP version not supported"),
    (b"GET /api/models HTTP/x\r\n\r\n", 400, "Bad request version"),
    (b"BREW /api/models HTTP/1.1\r\nHost: x\r\n\r\n", 405, "not allowed"),
    (b"POST /api/repos/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411,
     "Transfer-Encoding is not supported"),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "URI Too Long"),
    (b"GET /api/models HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431, "Too many headers"),
]


@pytest.mark.parametrize("data, status, says", RAW, ids=range(len(RAW)))
def test_broken_http_gets_a_json_reply_not_a_dropped_connection(server, api, steady, data, status, says):
    got, body = parse_raw(raw_exchange(server.server_address, data))
    assert got == status and says in body["error"]
    still_serving(server, api, steady)


# ---------------------------------------------------------------- 2. bounded bodies, timeouts
@pytest.fixture(scope="module")
def small(tmp_path_factory, hf):
    """A server with small limits: 4 KiB commits, 512-byte JSON bodies, a 1 s read timeout."""
    srv = serve(tmp_path_factory.mktemp("small-hub"), port=0, tokens={TOKEN: "tester"}, quiet=True,
                max_commit_bytes=4096, max_json_bytes=512, read_timeout=1.0)
    srv.store.create("tester/r", False, "tester")
    yield srv
    srv.shutdown()
    srv.server_close()


def headers_only(path, length, token=False, expect=False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Connection: close", f"Content-Length: {length}"]
    lines += [f"Authorization: Bearer {TOKEN}"] if token else []
    lines += ["Expect: 100-continue"] if expect else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_body_limits_token_first_then_size_before_reading(small):
    head = small.store.head("tester/r")
    commit = "/api/models/tester/r/commit/main"
    cases = [  # (request with a promised body that is never sent, status, message)
        (headers_only(commit, 50 * MiB), 401, "Invalid credentials"),
        (headers_only("/api/repos/create", 50 * MiB), 401, "Invalid credentials"),
        (headers_only(commit, 50 * MiB, expect=True), 401, "Invalid credentials"),
        (headers_only(commit, 10**15 - 1), 401, "Invalid credentials"),
        (headers_only(commit, 4097, token=True), 413, "at most 4096"),
        (headers_only("/api/repos/create", 513, token=True), 413, "at most 512"),
        (headers_only("/api/models/tester/r/preupload/main", 10**9, token=True), 413, "at most 512"),
        (headers_only("/api/models/tester/r/paths-info/main", 10**9), 413, "at most 512"),
        (headers_only("/api/validate-yaml", 10**9), 413, "at most 512"),
    ]
    for data, status, says in cases:
        start = time.monotonic()
        out = raw_exchange(small.server_address, data)
        assert time.monotonic() - start < 3  # answered at once: the body was never waited for
        assert not out.startswith(b"HTTP/1.1 100")  # no "100 Continue" for a body that is refused
        got, body = parse_raw(out)
        assert (got, says in body["error"]) == (status, True), body
    assert small.store.head("tester/r") == head and small.store.repos() == ["tester/r"]
    # at the limit, the body is taken
    body = ndjson(HEADER, add("ok", b"x" * 1000))
    assert len(body) <= 4096
    assert request(small, "POST", commit, body, AUTH)[0] == 200


def test_stalled_and_short_bodies_end_with_an_error_not_a_hang(small):
    head = small.store.head("tester/r")
    commit = "/api/models/tester/r/commit/main"
    start = time.monotonic()
    out = raw_exchange(small.server_address, headers_only(commit, 1000, token=True) + b'{"key": "header"')  # then silence
    assert 0.9 < time.monotonic() - start < 4
    got, body = parse_raw(out)
    assert got == 408 and "no data from the client" in body["error"]
    start = time.monotonic()
    out = raw_exchange(small.server_address, headers_only(commit, 1000, token=True) + b'{"key": "header"', half_close=True)
    assert time.monotonic() - start < 0.9  # the client closed: no need to wait for the timeout
    got, body = parse_raw(out)
    assert got == 400 and "ended after 16 of the 1000 bytes" in body["error"]
    start = time.monotonic()
    with socket.create_connection(small.server_address[:2], timeout=10) as s:  # connects, says nothing
        assert s.recv(100) == b"" and time.monotonic() - start < 4
    assert small.store.head("tester/r") == head
    assert request(small, "GET", "/api/models/tester/r")[2]["sha"] == head


def test_limits_have_documented_defaults_and_are_settable(tmp_path):
    assert (rq.MAX_COMMIT_BYTES, rq.MAX_JSON_BYTES, rq.READ_TIMEOUT) == (256 * MiB, 1 * MiB, 30.0)
    srv = HubServer(("127.0.0.1", 0), tmp_path, max_commit_bytes=10)
    try:
        assert (srv.max_commit_bytes, srv.max_json_bytes, srv.read_timeout) == (10, MiB, 30.0)
    finally:
        srv.server_close()


def _rss_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    return {k: int(line.split()[1]) for line in status.splitlines() for k in ("VmRSS", "VmHWM") if line.startswith(k + ":")}


def test_oversized_unauthenticated_bodies_do_not_grow_the_server(tmp_path):
    """`zoo hub serve` in a subprocess: 20 requests announcing 50 MB (10 send nothing, 10 stream the
    body) leave its peak memory where it was."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, ZOO_HUB_TOKEN=TOKEN, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "hub", "serve", "--root", str(tmp_path / "hub"),
                             "--port", str(port), "--user", "tester"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = ("127.0.0.1", port)
    try:
        for _ in range(100):
            try:
                raw_exchange(target, b"GET /api/models HTTP/1.1\r\nConnection: close\r\n\r\n")
                break
            except OSError:
                time.sleep(0.05)
        before = _rss_kib(proc.pid)
        start = time.monotonic()
        for i in range(10):
            path = "/api/models/tester/x/commit/main" if i % 2 else "/api/repos/create"
            assert parse_raw(raw_exchange(target, headers_only(path, 50 * 10**6)))[0] == 401
        for _ in range(10):
            with socket.create_connection(target, timeout=10) as s:
                s.sendall(headers_only("/api/models/tester/x/commit/main", 50 * 10**6))

                def stream(sock=s):
                    try:
                        for _ in range(50):
                            sock.sendall(b"\0" * 10**6)
                    except OSError:
                        pass  # the server answered and closed: the rest of the body is not wanted

                sender = threading.Thread(target=stream)
                sender.start()
                out = read_all(s)
                sender.join(10)
            assert parse_raw(out)[0] == 401
        after = _rss_kib(proc.pid)
        assert time.monotonic() - start < 8
        assert after["VmHWM"] - before["VmHWM"] < 16 * 1024, (before, after)  # KiB: no 50 MB body ever held
        assert after["VmRSS"] - before["VmRSS"] < 16 * 1024, (before, after)
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------- 3. paths and repo ids
BAD_PATHS = ["", ".", "..", "x\0y", "..\\x", "a\\b", "/etc/passwd", "a/../../b", "a/./b", "a//b", "a/", ".git/config",
             "sub/.git/HEAD", ".git", "x" * 1025, "d/" + "x" * 256, "a\nb", "tab\there", "del\x7f", "\u202egnp.exe",
             "\ud800"]


@pytest.mark.parametrize("path", BAD_PATHS, ids=range(len(BAD_PATHS)))
def test_commit_paths_are_checked_for_every_operation(server, api, steady, path):
    ops = [add(path), {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": "0" * 64, "size": 1}},
           {"key": "deletedFile", "value": {"path": path}}, {"key": "deletedFolder", "value": {"path": path + "/"}},
           ]
    for op in ops:
        msg = refused(server, "POST", COMMIT, ndjson(HEADER, add("fine.txt"), op), AUTH)
        assert "invalid path" in msg and repr(path)[:30] in msg, msg
    msg = refused(server, "POST", f"/api/models/{STEADY}/preupload/main",
                  json.dumps({"files": [{"path": path, "size": 1, "sample": ""}]}).encode(), AUTH)
    assert "invalid path" in msg
    still_serving(server, api, steady)


def test_lfs_and_clashing_or_missing_paths_are_refused_whole(server, api, steady):
    lfs = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "0" * 64, "size": 1}}
    cases = [
        (ndjson(HEADER, add("new"), lfs), 400, "regular uploads only"),
        (ndjson(HEADER, add("new"), add("a/inner")), 400, "'a' would be both a file and a folder"),
        (ndjson(HEADER, add("new"), add("sub")), 400, "'sub' would be both a file and a folder"),
        (ndjson(HEADER, add("new"), {"key": "deletedFile", "value": {"path": "gone"}}), 404, "cannot delete 'gone'"),
        (ndjson(HEADER, add("new"), {"key": "deletedFolder", "value": {"path": "nodir/"}}), 404, "cannot delete folder"),
        (ndjson({"key": "header", "value": {"parentCommit": "0" * 40}}, add("new")), 412, "is not the head"),
    ]
    for body, status, says in cases:
        assert says in refused(server, "POST", COMMIT, body, AUTH, status=status)
    still_serving(server, api, steady)


BAD_REPO_IDS = ["a--b/x", "-a/x", "a/x-", "a/.x", "a/x.", "a/x..y", "a/" + "x" * 97, "a/x.git", "a%2Fb/c",
                "%2e%2e/x", "a/%00", "a/x%20y", "a/%c3%a9"]


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS, ids=range(len(BAD_REPO_IDS)))
def test_repo_ids_are_checked_like_the_hubs(server, api, steady, repo_id):
    for method, path in [("GET", f"/api/models/{repo_id}"), ("GET", f"/{repo_id}/resolve/main/a"),
                         ("GET", f"/api/models/{repo_id}/tree/main"), ("POST", f"/api/models/{repo_id}/commit/main")]:
        assert "invalid repo id" in refused(server, method, path, ndjson(HEADER), AUTH)
    organization, name = unquote(repo_id).split("/", 1)
    body = json.dumps({"name": name, "organization": organization}).encode()
    assert "invalid repo id" in refused(server, "POST", "/api/repos/create", body, AUTH)
    still_serving(server, api, steady)


def test_unusual_but_valid_names_still_work(server, api, tmp_path):
    """The checks are an allow-list of what the Hub takes, not a refusal of everything unusual."""
    api.create_repo("tester/Odd_name.v2-x")
    folder = _folder(tmp_path / "f", {"dir with space/naïve résumé.txt": "é", "-leading-dash": "1", "a.b/c": "2"})
    api.upload_folder(folder_path=str(folder), repo_id="tester/Odd_name.v2-x")
    assert set(api.list_repo_files("tester/Odd_name.v2-x")) == {"dir with space/naïve résumé.txt", "-leading-dash", "a.b/c"}
    status, _, data = request(server, "GET", "/tester/Odd_name.v2-x/resolve/main/" + quote("dir with space/naïve résumé.txt"))
    assert (status, data) == (200, "é".encode())


# ---------------------------------------------------------------- 4. deletions in a commit
def test_upload_folder_with_delete_patterns_makes_head_exactly_the_new_files(server, api, tmp_path):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo = "tester/replaced"
    api.create_repo(repo)
    old = api.upload_folder(folder_path=str(_folder(tmp_path / "v1", {"a": "1", "b": "2", "d/x": "3"})),
                            repo_id=repo).oid
    new = api.upload_folder(folder_path=str(_folder(tmp_path / "v2", {"a": "1 again", "c": "4"})), repo_id=repo,
                            delete_patterns="*").oid
    assert set(api.list_repo_files(repo)) == {"a", "c"}
    assert set(api.list_repo_files(repo, revision=old)) == {"a", "b", "d/x"}
    assert server.store.commit_info(repo, new)["parent"] == old  # one commit: deletions and additions together
    # create_commit with file and folder deletions, next to an addition
    api.create_commit(repo, operations=[CommitOperationAdd("d/y", b"5")], commit_message="add d/y")
    api.create_commit(repo, commit_message="swap", operations=[
        CommitOperationDelete("a"), CommitOperationDelete("d/"), CommitOperationAdd("e", b"6")])
    assert set(api.list_repo_files(repo)) == {"c", "e"}


# ---------------------------------------------------------------- 5. cards
LAUGHS = ("---\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
          + "".join(f"{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
          + "tags: *i\n---\n# laughs\n")


def test_cards_with_anchors_or_aliases_are_refused_and_never_expanded(server, api, steady, tmp_path):
    from huggingface_hub import CommitOperationAdd

    assert len(LAUGHS) < 600
    for card in (LAUGHS, "---\nbase: &b x\nlicense: mit\n---\n", "---\ntags: [*undefined]\n---\n"):
        # huggingface_hub asks validate-yaml about a README before it commits; a raw commit skips that
        with pytest.raises(ValueError, match="aliases/anchors are not accepted in card metadata"):
            api.create_commit(STEADY, operations=[CommitOperationAdd("README.md", card.encode())], commit_message="x")
        msg = refused(server, "POST", COMMIT, ndjson(HEADER, add("README.md", card.encode())), AUTH)
        assert msg.startswith("README.md: aliases/anchors are not accepted in card metadata"), msg
    big = "---\n" + "".join(f"k{i}: {'v' * 60}\n" for i in range(1200)) + "---\n"
    assert "longer than 65536 bytes" in refused(server, "POST", COMMIT, ndjson(HEADER, add("README.md", big.encode())), AUTH)
    still_serving(server, api, steady)
    # a card stored before this check (written past the server): empty cardData, a small reply
    server.store.create("tester/old-card", False, "tester")
    server.store.commit("tester/old-card", None, "old", {"README.md": LAUGHS.encode()}, [], [])
    status, resp, info = request(server, "GET", "/api/models/tester/old-card")
    assert status == 200 and info["cardData"] == {} and int(resp.getheader("Content-Length")) < 4096
    status, resp, _ = request(server, "GET", "/api/models?cardData=true&full=true")
    assert status == 200 and int(resp.getheader("Content-Length")) < 16384
    assert not api.model_info("tester/old-card").card_data  # the real client reads it too


BROKEN_CARDS = ["a: 0b_", "a: 0x_", "a: !!int x", "a: !!float x", "a: !!bool x", "a: !!python/name:os.system",
                "? [a]\n: 1", "- just\n- a list", "[" * 5000, "a: !!binary ~~\n? !!binary aGk=\n: x", "\x00"]


def test_odd_card_metadata_is_served_as_json_and_broken_metadata_as_none(server, api, steady):
    from huggingface_hub import CommitOperationAdd

    card = ("---\ndate: 2024-01-02\ntags: 5\nbase_model: [1, {x: y}]\nlibrary_name: {bad: 1}\nscore: .inf\n"
            "when: 2024-13-45T03:04:05Z\n---\n# odd\n")
    api.create_repo("tester/odd-card")
    api.create_commit("tester/odd-card", operations=[CommitOperationAdd("README.md", card.encode())], commit_message="c")
    status, _, info = request(server, "GET", "/api/models/tester/odd-card")
    assert status == 200 and info["cardData"]["date"] == "2024-01-02" and info["library_name"] is None
    assert info["tags"] == ["base_model:1"] and info["cardData"]["when"] == "2024-13-45T03:04:05Z"
    for i, meta in enumerate(BROKEN_CARDS):
        readme = f"---\n{meta}\n---\n# broken\n".encode()
        msg = refused(server, "POST", COMMIT, ndjson(HEADER, add("README.md", readme)), AUTH)
        assert msg.startswith("README.md: the card metadata"), msg
        server.store.create(f"tester/broken-{i}", False, "tester")  # stored past the check: still served
        server.store.commit(f"tester/broken-{i}", None, "old", {"README.md": readme}, [], [])
        status, _, info = request(server, "GET", f"/api/models/tester/broken-{i}")
        assert status == 200 and info["cardData"] == {}
    assert request(server, "GET", "/api/models?cardData=true")[0] == 200
    still_serving(server, api, steady)


# ---------------------------------------------------------------- 6. faults, routes, methods
class _Broken:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise OSError(5, "disk on fire SECRET-DETAIL")
        return fail


def test_a_fault_in_any_handler_is_a_500_json_reply_without_traceback(server, api, steady, monkeypatch):
    routes = [("GET", f"/api/models/{STEADY}", b""), ("GET", f"/api/models/{STEADY}/revision/main", b""),
              ("GET", "/api/models", b""), ("GET", f"/api/models/{STEADY}/tree/main", b""),
              ("GET", f"/api/models/{STEADY}/refs", b""), ("GET", f"/api/models/{STEADY}/commits/main", b""),
              ("GET", f"/{STEADY}/resolve/main/a", b""), ("HEAD", f"/{STEADY}/resolve/main/a", b""),
              ("POST", f"/api/models/{STEADY}/paths-info/main", b"paths=a"),
              ("POST", f"/api/models/{STEADY}/preupload/main", b'{"files": []}'),
              ("POST", COMMIT, ndjson(HEADER)), ("POST", "/api/repos/create", b'{"name": "y"}'),
              ("DELETE", "/api/repos/delete", b'{"name": "y"}')]
    monkeypatch.setattr(server, "store", _Broken())
    for method, path, body in routes:
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request(method, path, body=body, headers=AUTH)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        assert resp.status == 500 and resp.getheader("Content-Type") == "application/json", (method, path)
        if method != "HEAD":
            assert json.loads(data)["error"].startswith("internal server error")
            assert b"Traceback" not in data and b"SECRET" not in data and b"OSError" not in data
    monkeypatch.setattr(server, "user_for", _Broken().user_for)
    status, _, data = request(server, "GET", "/api/whoami-v2", headers=AUTH)
    assert status == 500 and "internal server error" in data["error"]
    monkeypatch.undo()
    still_serving(server, api, steady)


def test_unknown_routes_are_404_and_wrong_methods_405(server, api, steady):
    for method, path in [("GET", "/nope"), ("GET", "/api/datasets/a/b"), ("POST", "/api/models/x"), ("GET", "*"),
                         ("GET", "/api/models/a/b/c/d/e"), ("GET", "//[x")]:
        assert "no route" in refused(server, method, path, status=404)
    got, body = parse_raw(raw_exchange(server.server_address, b"GET http://[::1/x HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert got == 404 and "no route" in body["error"]
    for method, path in [("POST", f"/api/models/{STEADY}"), ("GET", COMMIT), ("DELETE", "/api/models"),
                         ("PUT", "/api/repos/create"), ("PATCH", f"/api/models/{STEADY}"), ("OPTIONS", "/api/models"),
                         ("GET", "/api/repos/delete")]:
        assert "not allowed" in refused(server, method, path, status=405)
    status, _, _ = request(server, "HEAD", COMMIT)
    assert status == 405
    status, _, info = request(server, "GET", f"http://example.org/api/models/{STEADY}#frag")  # absolute form
    assert status == 200 and info["sha"] == steady
    still_serving(server, api, steady)


# ---------------------------------------------------------------- a bounded random pass
ROUTES = ["commit", "preupload", "create", "model_info", "tree", "paths_info", "resolve", "list"]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
_paths = st.one_of(st.sampled_from(["a", "sub/b", "README.md", "new.txt", "d/e", "", ".", "..", "/a", "a/../b",
                                    ".git/x", "sub/"]), st.text(max_size=12))
_b64 = st.one_of(st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=12))
_op = st.fixed_dictionaries({
    "key": st.sampled_from(["file", "file", "deletedFile", "deletedFolder", "lfsFile", "header", "other", 3]),
    "value": st.one_of(st.fixed_dictionaries({"path": _paths}, optional={
        "content": _b64, "encoding": st.sampled_from(["base64", "hex", 3]), "summary": _json_values,
        "parentCommit": st.sampled_from(["0" * 40, "HEAD", 5])}), _json_values)})
_commits = st.tuples(  # a header line, then operations: now and then a valid commit
    st.fixed_dictionaries({}, optional={"summary": st.one_of(st.text(max_size=10), _json_values),
                                        "parentCommit": st.sampled_from(["0" * 40, "HEAD", None])}),
    st.lists(_op, max_size=4)).map(lambda hv: ndjson({"key": "header", "value": hv[0]}, *hv[1]))
_bodies = st.one_of(
    _commits, _commits, st.binary(max_size=200), _json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"files": st.lists(st.fixed_dictionaries({"path": _paths}), max_size=3),
                                        "name": _paths, "organization": _json_values, "private": _json_values,
                                        "paths": st.lists(_paths, max_size=3)}).map(lambda v: json.dumps(v).encode()),
    st.lists(_paths, max_size=3).map(lambda ps: urlencode([("paths", p) for p in ps]).encode()))
_url_parts = st.one_of(st.sampled_from(["main", "steady", "a", "sub%2Fb", "sub/b", "README.md", "0" * 40, ""]),
                       st.text(max_size=10).map(lambda t: quote(t, safe="")),
                       st.binary(max_size=10).map(lambda b: quote_from_bytes(b, safe="")))
_query_dicts = st.dictionaries(st.sampled_from(["limit", "recursive", "cardData", "full", "author", "search", "filter",
                                     "create_pr", "expand"]),
                    st.one_of(st.sampled_from(["true", "false", "1", "0", "tester", "steady", "license:mit"]),
                              st.text(max_size=8)), max_size=3).map(urlencode)
_queries = st.one_of(st.just(""), _query_dicts, st.binary(max_size=30).map(lambda b: quote_from_bytes(b, safe="=&%")))
_headers = st.dictionaries(
    st.sampled_from(["Content-Type", "Expect", "Accept", "Range", "X-Junk"]),
    st.one_of(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "100-continue", "bytes=0-1"]),
              st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)), max_size=3)
FUZZ = "tester/fuzz"  # the only repo a random request may change (by a valid commit)


def _target(route: str, rev: str, file: str) -> tuple[str, str]:
    return {"commit": ("POST", f"/api/models/{FUZZ}/commit/main"),
            "commit_rev": ("POST", f"/api/models/{FUZZ}/commit/{rev}"),
            "preupload": ("POST", f"/api/models/{FUZZ}/preupload/{rev}"),
            "create": ("POST", "/api/repos/create"),
            "model_info": ("GET", f"/api/models/tester/{file}"),
            "revision": ("GET", f"/api/models/{STEADY}/revision/{rev}"),
            "tree": ("GET", f"/api/models/{STEADY}/tree/{rev}/{file}"),
            "paths_info": ("POST", f"/api/models/{STEADY}/paths-info/{rev}"),
            "resolve": ("GET", f"/{STEADY}/resolve/{rev}/{file}"),
            "list": ("GET", "/api/models")}[route]


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(["commit", "commit", "commit_rev", "preupload", "create", "model_info", "revision", "tree",
                              "paths_info", "resolve", "list"]),
       rev=_url_parts, file=_url_parts, query=_queries, body=_bodies, headers=_headers,
       token=st.sampled_from([True, True, False]),
       length=st.sampled_from([None] * 18 + ["-1", "abc", "0", "1", "1e2", " "]))
def test_random_requests_get_a_4xx_or_2xx_json_reply_and_move_nothing(fuzz_env, route, rev, file, query, body,
                                                                      headers, token, length):
    server, steady_head = fuzz_env
    fuzz_head = server.store.head(FUZZ)
    method, path = _target(route, rev, file)
    headers = {**headers, **(AUTH if token else {})}
    status, _, data = request(server, method, path + (f"?{query}" if query else ""),
                              body if method == "POST" else b"", headers, length)
    assert 200 <= status < 500, (status, data)
    if status >= 400:
        assert isinstance(data, dict) and isinstance(data.get("error"), str), data
    assert server.store.head(STEADY) == steady_head
    if not (route.startswith("commit") and status == 200):
        assert server.store.head(FUZZ) == fuzz_head


_commit_paths = st.one_of(_paths, st.text(st.characters(codec="utf-8"), min_size=1, max_size=20))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(header=st.fixed_dictionaries({}, optional={"summary": st.text(max_size=10)}),
       ops=st.lists(st.fixed_dictionaries({
           "key": st.sampled_from(["file", "file", "file", "deletedFile", "deletedFolder", "lfsFile"]),
           "value": st.fixed_dictionaries({"path": _commit_paths, "content": _b64})}), max_size=5))
def test_random_commits_either_apply_whole_or_change_nothing(fuzz_env, header, ops):
    """Commits from the NDJSON grammar with random paths and contents: a 200 moves the head to a file set
    whose every path is one the Hub takes; anything else leaves the head where it was."""
    server, _ = fuzz_env
    before = server.store.files(FUZZ, server.store.head(FUZZ))
    status, _, data = request(server, "POST", f"/api/models/{FUZZ}/commit/main",
                              ndjson({"key": "header", "value": header}, *ops), AUTH)
    assert 200 <= status < 500 and (status == 200) == ("commitOid" in data), (status, data)
    after = server.store.files(FUZZ, server.store.head(FUZZ))
    if status != 200:
        assert after == before and data["error"]
        return
    assert all(rq.path_problem(p) is None for p in after)
    added = {op["value"]["path"] for op in ops if op["key"] == "file"}
    assert added <= set(after)
    for op in ops:
        if op["key"] == "file":
            oid = after[op["value"]["path"]]
            assert server.store.read(FUZZ, oid) == base64.b64decode(op["value"]["content"])


@pytest.fixture(scope="module")
def fuzz_env(server, api, steady, tmp_path_factory):
    folder = _folder(tmp_path_factory.mktemp("fuzz") / "f", {"a": "1", "d/e": "2", "README.md": "---\nlicense: mit\n---\n"})
    api.create_repo(FUZZ)
    api.upload_folder(folder_path=str(folder), repo_id=FUZZ)
    return server, steady
