"""What the loopback Hub server (``zoo.hub.server``) accepts: every part of a request a client controls
(framing, URL, query, JSON and NDJSON bodies, repo ids, paths in a repo) is checked here, once, by
allow-list, before it reaches the store. A request that does not fit gets a 4xx ``{"error": ...}``
reply that says what is wrong, as the Hub's do.

The limits (the body ones are settable on ``HubServer``; ``zoo hub serve`` keeps these defaults):

    MAX_COMMIT_BYTES = 256 MiB   a commit body (NDJSON, files inline as base64); held in memory while
                                 it is checked, so about 3x that at peak: push bigger files in more commits
    MAX_JSON_BYTES = 1 MiB       the body of every other endpoint (create/delete repo, preupload, paths-info,
                                 collections)
    READ_TIMEOUT = 30 s          a client that stops sending for this long gets a 408 and is closed
    MAX_OPERATIONS = 50,000      operations in one commit
    MAX_PATH_BYTES = 1,024       a path in a repo (UTF-8), each of its segments at most 255 bytes
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_to_bytes

MiB = 2**20
MAX_COMMIT_BYTES = 256 * MiB
MAX_JSON_BYTES = 1 * MiB
READ_TIMEOUT = 30.0
MAX_OPERATIONS = 50_000
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
MAX_QUERY_FIELDS = 100
MAX_SUMMARY_CHARS = 10_000
MAX_LIST_LIMIT = 100_000

# The Hub's repo id rule: namespace/name, each of [A-Za-z0-9._-], not starting or ending with - or .,
# no -- or .., at most 96 characters (huggingface_hub's validate_repo_id).
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_FLAGS = {"true": True, "1": True, "false": False, "0": False}


class HttpReply(Exception):
    """Not an error of the zoo: an HTTP error reply, raised inside a request handler and sent as its response."""

    def __init__(self, status: int, code: str, message: str, extra: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = dict(extra or {})  # more fields of the JSON reply (a 409's "slug", as the Hub sends)


def bad(message: str) -> HttpReply:
    return HttpReply(400, "BadRequest", message)


def shown(value, limit: int = 80) -> str:
    """A client's value inside a message: quoted and escaped by repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a whole number",
             type(None): "null"}
    return names.get(type(value), "a number")


# ------------------------------------------------------------------ framing and URL
def content_length(headers) -> int:
    """The body's length from its one, all-digit Content-Length (0 when absent); chunked bodies are refused."""
    if headers.get("Transfer-Encoding") is not None:
        raise HttpReply(411, "LengthRequired", "send the body with a Content-Length; Transfer-Encoding is not supported")
    values = headers.get_all("Content-Length") or []
    if not values:
        return 0
    if len(values) > 1 or not re.fullmatch(r"[0-9]{1,15}", values[0].strip()):
        raise bad(f"Content-Length must be one whole number of bytes, got {shown(', '.join(values))}")
    return int(values[0])


def split_target(target: str) -> tuple[str, str]:
    """The path and the query of a request target, "/path?query" or "http://host/path?query"."""
    target = re.sub(r"^https?://[^/?#]*", "", target).split("#", 1)[0]
    path, _, query = target.partition("?")
    return path, query


def url_text(raw: str, what: str) -> str:
    """A percent-encoded part of the URL as text (the request line arrives as latin-1)."""
    try:
        return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        raise bad(f"the {what} in the URL is not valid UTF-8 once percent-decoded") from None


def check_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and "--" not in p and ".." not in p for p in parts) \
            or parts[1].endswith(".git"):
        raise bad(f"invalid repo id {shown(repo_id)}: a repo id is 'namespace/name', each of letters, digits, '-', "
                  "'_' and '.', not starting or ending with '-' or '.', without '--' or '..', at most 96 characters")
    return repo_id


def check_namespace(name: str, what: str = "namespace") -> str:
    """A user or organization name: one part of a repo id, by the same rule."""
    if not _REPO_PART.fullmatch(name) or "--" in name or ".." in name:
        raise bad(f"invalid {what} {shown(name)}: letters, digits, '-', '_' and '.', not starting or ending with '-' "
                  "or '.', without '--' or '..', at most 96 characters")
    return name


def parse_query(raw: str, what: str = "query string") -> dict[str, list[str]]:
    try:
        return parse_qs(raw, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as e:  # UnicodeDecodeError is a ValueError too
        raise bad(f"malformed {what} ({e.__class__.__name__}: {str(e)[:100]})") from None


def query_one(query: dict, name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    if not values:
        return default
    if len(values) > 1:
        raise bad(f"query parameter {name!r} is given {len(values)} times; give it once")
    return values[0]


def query_int(query: dict, name: str, default: int, high: int = MAX_LIST_LIMIT) -> int:
    text = query_one(query, name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) > high:
        raise bad(f"query parameter {name!r} must be a whole number from 0 to {high}, got {shown(text)}")
    return int(text)


def query_flag(query: dict, name: str) -> bool:
    text = query_one(query, name, "false")
    if text.lower() not in _FLAGS:
        raise bad(f"query parameter {name!r} must be true or false, got {shown(text)}")
    return _FLAGS[text.lower()]


# ------------------------------------------------------------------ JSON bodies
def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def json_bytes(value) -> bytes:
    return json.dumps(value).encode()


def parse_text(body: bytes | memoryview, what: str) -> str:
    try:
        return str(body, "utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"{what} is not valid UTF-8 (byte {e.start})") from None


def parse_json(body: bytes, what: str):
    return load_json(parse_text(body, what), what)


def load_json(text: str, what: str):
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise bad(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise bad(f"{what} is not valid JSON: {str(e)[:120]}") from None


def json_object(body: bytes, what: str) -> dict:
    value = parse_json(body, what) if body.strip() else {}
    if not isinstance(value, dict):
        raise bad(f"{what} must be a JSON object, got {_kind(value)}")
    return value


def get(obj: dict, key: str, kind: type | tuple, where: str, *, required: bool = False, choices=None):
    """``obj[key]`` when it is of ``kind`` (and in ``choices``); None when absent or null, unless required."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = obj.get(key)
    if value is None:
        if required:
            raise bad(f"{where}: {key!r} is required")
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise bad(f"{where}: {key!r} must be {' or '.join(_kind(k()) for k in kinds)}, got {_kind(value)}")
    if choices is not None and value not in choices:
        raise bad(f"{where}: {key!r} must be one of {', '.join(map(repr, choices))}, got {shown(value)}")
    return value


def path_problem(path: str) -> str | None:
    """What is wrong with a path in a repo, as the Hub sees it (None when it is fine)."""
    if not path:
        return "it is empty"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    if path.startswith("/"):
        return "it starts with '/' (paths are relative to the repo root)"
    if "\\" in path:
        return "it contains a backslash (paths use '/')"
    if not path.isprintable():
        return "it contains a control or other non-printable character"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return "it has an empty, '.' or '..' segment"
        if segment == ".git":
            return "it is inside a '.git' folder"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def repo_path(path, where: str) -> str:
    if not isinstance(path, str):
        raise bad(f"{where}: a path must be a string, got {_kind(path)}")
    problem = path_problem(path)
    if problem:
        raise bad(f"{where}: invalid path {shown(path)}: {problem}")
    return path


# ------------------------------------------------------------------ commits
def _base64(text: str, what: str) -> bytes:
    # Checked and decoded from the str itself: no ASCII copy of what can be most of a 256 MiB body
    try:
        if _BASE64.fullmatch(text):
            return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        pass
    raise bad(f"{what} is not valid base64")


def _lines(body: bytes) -> Iterator[memoryview]:
    """The lines of a body as views into it: a commit body is not copied line by line."""
    view, start = memoryview(body), 0
    while start < len(body):
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end + 1
        yield view[start:end]
        start = end


@dataclass
class Commit:
    """A commit body, checked: what ``Store.commit`` applies in one step."""

    summary: str = "commit"
    parent: str | None = None
    adds: dict[str, bytes] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


def parse_commit(body: bytes) -> Commit:
    """The NDJSON commit body huggingface_hub sends: a header line, then one operation a line
    (``file`` with base64 content, ``lfsFile``, ``deletedFile``, ``deletedFolder``)."""
    commit, header, count = Commit(), None, 0
    for number, line in enumerate(_lines(body), 1):
        where = f"commit line {number}"
        text = parse_text(line, where)
        if not text or text.isspace():
            continue
        item = load_json(text, where)
        del text  # a line can be most of the body: hold one copy of it at a time
        if not isinstance(item, dict):
            raise bad(f"{where} must be a JSON object, got {_kind(item)}")
        key = get(item, "key", str, where, required=True)
        value = get(item, "value", dict, where, required=True)
        if (header is None) != (key == "header"):
            raise bad(f"{where}: a commit has one header line, first; got {shown(key)}")
        count += 1
        if count > MAX_OPERATIONS + 1:
            raise bad(f"a commit holds at most {MAX_OPERATIONS} operations; split it")
        if key == "header":
            header = value
            summary = get(value, "summary", str, where)
            get(value, "description", str, where)
            if summary is not None and len(summary) > MAX_SUMMARY_CHARS:
                raise bad(f"{where}: the summary is longer than {MAX_SUMMARY_CHARS} characters")
            commit.summary = summary or "commit"
            commit.parent = get(value, "parentCommit", str, where)
            if commit.parent is not None and not _SHA1.fullmatch(commit.parent):
                raise bad(f"{where}: parentCommit must be a 40-hex commit sha, got {shown(commit.parent)}")
        elif key == "file":
            path = repo_path(value.get("path"), where)
            content = get(value, "content", str, where, required=True)
            get(value, "encoding", str, where, choices=("base64",))
            if path in commit.adds:
                raise bad(f"{where}: {shown(path)} is added twice in this commit")
            commit.adds[path] = _base64(content, f"{where}: the content of {shown(path)}")
        elif key == "lfsFile":
            path = repo_path(value.get("path"), where)
            raise bad(f"{where}: {shown(path)} is an LFS file; this server takes regular uploads only "
                      "(its preupload answers uploadMode 'regular')")
        elif key in ("deletedFile", "deletedFolder"):
            path = value.get("path")
            if key == "deletedFolder" and isinstance(path, str) and path.endswith("/"):
                path = path[:-1]  # huggingface_hub sends "folder/" for a folder
            (commit.deletes if key == "deletedFile" else commit.folders).append(repo_path(path, where))
        else:
            raise bad(f"{where}: unknown operation {shown(key)}; expected header, file, lfsFile, deletedFile "
                      "or deletedFolder")
    if header is None:
        raise bad("the commit body has no header line")
    return commit
