"""The storage of the loopback Hub server (``zoo.hub.server``): model repos in a folder, with commits.

    <root>/<namespace>/<name>/
        info.json                 private flag, creation time
        refs/main                 the sha of the current commit (swapped with one atomic rename)
        commits/<sha>.json        parent, title, date, {path: blob oid}
        blobs/<oid>               file contents, content-addressed (git blob sha1)

A commit becomes visible only after its whole body has been received and its blobs written, by
the rename of ``refs/main``: a client that dies (or a server that stops) mid-commit leaves the
repo as it was.

A card's metadata (the YAML front matter of README.md) is served as ``cardData`` to anyone, so it is
bounded: at most 64 KiB of YAML, 32 levels deep, 256 KiB as JSON, and no anchors or aliases (a
284-byte "billion laughs" card would expand to 55 MiB). A commit whose README breaks these is
refused; a card stored before the check is served with empty ``cardData``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

import yaml

from zoo.hub.requests import HttpReply, check_repo_id

__all__ = ["BadCard", "HttpReply", "Store", "card_data", "card_metadata", "card_tags"]

MAX_CARD_YAML_BYTES = 64 * 1024
MAX_CARD_DATA_BYTES = 256 * 1024
MAX_CARD_DEPTH = 32
CARD_CACHE_CHARS = 32 * 2**20  # parsed cards kept (as JSON text) by blob oid: list_models parses each once
_FRONT_MATTER = re.compile(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", re.DOTALL)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _git_oid(data: bytes) -> str:
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)  # no joined copy of a big file
    return digest.hexdigest()


class BadCard(ValueError):
    """What is wrong with a card's metadata: a commit that adds it is refused with this message."""


# libyaml when it is there: the pure-Python parser takes seconds on a few thousand nested "[".
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CardLoader(_SafeLoader):
    """Safe YAML whose dates stay text, as they would in JSON."""


_CardLoader.add_constructor("tag:yaml.org,2002:timestamp", _CardLoader.construct_yaml_str)


def _check_events(text: str) -> None:
    """Refuse anchors, aliases and deep nesting from the parse events, before any value is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise BadCard(f"aliases/anchors are not accepted in card metadata (line {event.start_mark.line + 1})")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_CARD_DEPTH:
                raise BadCard(f"the card metadata is nested deeper than {MAX_CARD_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def card_metadata(readme: bytes) -> dict:
    """The YAML front matter of a README as JSON-ready data ({} without one); BadCard says what is wrong."""
    cut = MAX_CARD_YAML_BYTES + 64  # the front matter comes first: never decode a whole big README
    head = readme[:cut].decode("utf-8", errors="replace")
    match = _FRONT_MATTER.match(head)
    if not match:
        if re.match(r"---[ \t]*\r?\n", head) and len(readme) > cut:
            raise BadCard(f"the card metadata (YAML front matter) is longer than {MAX_CARD_YAML_BYTES} bytes")
        return {}
    if len(match.group(1).encode()) > MAX_CARD_YAML_BYTES:
        raise BadCard(f"the card metadata (YAML front matter) is longer than {MAX_CARD_YAML_BYTES} bytes")
    try:
        _check_events(match.group(1))
        data = yaml.load(match.group(1), Loader=_CardLoader)
    except BadCard:
        raise
    except (yaml.YAMLError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as e:
        # a value that is not what its tag says ("!!int x", "0x_") is as invalid as a syntax error
        raise BadCard(f"the card metadata is not valid YAML: {' '.join(str(e).split())[:200]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadCard(f"the card metadata must be a YAML mapping, not a {type(data).__name__}")
    try:
        text = json.dumps(data, default=str)
    except (TypeError, ValueError):
        raise BadCard("the card metadata has keys that are not text or numbers") from None
    if len(text) > MAX_CARD_DATA_BYTES:
        raise BadCard(f"the card metadata is over {MAX_CARD_DATA_BYTES} bytes as JSON")
    return json.loads(text)


def card_data(readme: bytes | None) -> dict:
    """The card metadata the Hub exposes as cardData: {} for a card without usable metadata."""
    try:
        return card_metadata(readme) if readme else {}
    except BadCard:
        return {}


def _texts(value) -> list[str]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(v) for v in items if isinstance(v, (str, int, float)) and not isinstance(v, bool)]


def card_tags(data: dict) -> list[str]:
    """Tags the Hub derives from a card: its tags, library, license and base model."""
    tags = _texts(data.get("tags"))
    tags += _texts(data.get("library_name"))[:1]
    tags += [f"license:{v}" for v in _texts(data.get("license"))[:1]]
    tags += [f"base_model:{b}" for b in _texts(data.get("base_model"))]
    tags += _texts(data.get("pipeline_tag"))[:1]
    return list(dict.fromkeys(tags))


class Store:
    """Model repos in a folder (see module docstring); safe for concurrent requests."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cards: dict[str, str] = {}  # README blob oid -> its cardData as JSON text
        self._cards_lock = threading.Lock()

    def repo(self, repo_id: str) -> Path:
        namespace, name = check_repo_id(repo_id).split("/")
        return self.root / namespace / name

    def exists(self, repo_id: str) -> bool:
        return (self.repo(repo_id) / "info.json").is_file()

    def info(self, repo_id: str) -> dict:
        try:
            return json.loads((self.repo(repo_id) / "info.json").read_text())
        except FileNotFoundError:
            raise HttpReply(404, "RepoNotFound", f"Repository Not Found for url: {repo_id}") from None

    def create(self, repo_id: str, private: bool, owner: str, **extra) -> bool:
        with self._lock:
            if self.exists(repo_id):
                return False
            path = self.repo(repo_id)
            for sub in ("refs", "commits", "blobs"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            info = {"private": private, "createdAt": _now(), "owner": owner, **extra}  # extra: a Space's sdk
            self._write_atomic(path / "info.json", json.dumps(info))
            self._commit_locked(repo_id, None, "initial commit", {})
            return True

    def delete(self, repo_id: str) -> None:
        self.info(repo_id)
        with self._lock:
            shutil.rmtree(self.repo(repo_id))

    @staticmethod
    def _write_atomic(path: Path, text: str | bytes) -> None:
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        tmp.write_bytes(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)

    def head(self, repo_id: str) -> str:
        self.info(repo_id)
        return (self.repo(repo_id) / "refs" / "main").read_text().strip()

    def resolve(self, repo_id: str, revision: str) -> str:
        head = self.head(repo_id)
        if revision in ("main", head):
            return head
        if re.fullmatch(r"[0-9a-f]{40}", revision) and (self.repo(repo_id) / "commits" / f"{revision}.json").is_file():
            return revision
        raise HttpReply(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def commit_info(self, repo_id: str, sha: str) -> dict:
        return json.loads((self.repo(repo_id) / "commits" / f"{sha}.json").read_text())

    def files(self, repo_id: str, sha: str) -> dict[str, str]:
        return self.commit_info(repo_id, sha)["files"]

    def read(self, repo_id: str, oid: str) -> bytes:
        return (self.repo(repo_id) / "blobs" / oid).read_bytes()

    def card(self, repo_id: str, files: dict[str, str]) -> dict:
        """The cardData of a commit's README.md: parsed once per blob, since a blob never changes."""
        oid = files.get("README.md")
        if oid is None:
            return {}
        text = self._cards.get(oid)
        if text is None:
            text = json.dumps(card_data(self.read(repo_id, oid)))
            with self._cards_lock:
                if sum(map(len, self._cards.values())) + len(text) > CARD_CACHE_CHARS:
                    self._cards.clear()
                self._cards[oid] = text
        return json.loads(text)  # a fresh copy for each reply

    def size(self, repo_id: str, oid: str) -> int:
        return (self.repo(repo_id) / "blobs" / oid).stat().st_size

    def commit(self, repo_id: str, parent: str | None, title: str, adds: dict[str, bytes],
               deletes: list[str], deleted_folders: list[str]) -> str:
        """Deletions, then additions, as one new head; nothing changes unless all of them apply."""
        with self._lock:
            head = self.head(repo_id)
            if parent and parent != head:
                raise HttpReply(412, "PreconditionFailed", f"parent commit {parent} is not the head {head}")
            files = dict(self.files(repo_id, head))
            for path in deletes:
                if files.pop(path, None) is None:
                    raise HttpReply(404, "EntryNotFound", f"cannot delete {path!r}: no such file at {head}")
            for folder in deleted_folders:
                kept = {p: o for p, o in files.items() if not p.startswith(folder + "/")}
                if len(kept) == len(files):
                    raise HttpReply(404, "EntryNotFound", f"cannot delete folder {folder!r}: no such folder at {head}")
                files = kept
            oids = {path: _git_oid(data) for path, data in adds.items()}
            files.update(oids)
            folders: set[str] = set()
            for p in files:  # every folder above every file, each added once
                i = p.rfind("/")
                while i > 0 and p[:i] not in folders:
                    folders.add(p[:i])
                    i = p.rfind("/", 0, i)
            clash = next((p for p in sorted(files) if p in folders), None)
            if clash is not None:
                raise HttpReply(400, "BadRequest", f"{clash!r} would be both a file and a folder")
            for path, oid in oids.items():
                blob = self.repo(repo_id) / "blobs" / oid
                if not blob.exists():
                    self._write_atomic(blob, adds[path])
            return self._commit_locked(repo_id, head, title, files)

    def _commit_locked(self, repo_id: str, parent: str | None, title: str, files: dict) -> str:
        record = {"parent": parent, "title": title, "date": _now(), "files": files}
        sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode() + uuid.uuid4().bytes).hexdigest()
        path = self.repo(repo_id)
        self._write_atomic(path / "commits" / f"{sha}.json", json.dumps(record))
        self._write_atomic(path / "refs" / "main", sha)  # the commit becomes visible here, atomically
        return sha

    def repos(self) -> list[str]:
        return sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in self.root.glob("*/*/info.json"))


