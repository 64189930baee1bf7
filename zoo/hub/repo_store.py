"""The storage of the loopback Hub server (``zoo.hub.server``): model repos in a folder, with commits.

    <root>/<namespace>/<name>/
        info.json                 private flag, creation time
        refs/main                 the sha of the current commit (swapped with one atomic rename)
        commits/<sha>.json        parent, title, date, {path: blob oid}
        blobs/<oid>               file contents, content-addressed (git blob sha1)

A commit becomes visible only after its whole body has been received and its blobs written, by
the rename of ``refs/main``: a client that dies (or a server that stops) mid-commit leaves the
repo as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import threading
import uuid
from pathlib import Path

import yaml

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def card_data(readme: bytes | None) -> dict:
    """The YAML front matter of a README, as the Hub exposes it in cardData."""
    if not readme:
        return {}
    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return {}
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def card_tags(data: dict) -> list[str]:
    """Tags the Hub derives from a card: its tags, library, license and base model."""
    tags = [str(t) for t in data.get("tags") or []]
    if data.get("library_name"):
        tags.append(str(data["library_name"]))
    if data.get("license"):
        tags.append(f"license:{data['license']}")
    bases = data.get("base_model") or []
    for b in [bases] if isinstance(bases, str) else bases:
        tags.append(f"base_model:{b}")
    if data.get("pipeline_tag"):
        tags.append(str(data["pipeline_tag"]))
    return list(dict.fromkeys(tags))


class HttpReply(Exception):
    """Not an error of the zoo: an HTTP error reply, raised inside a request handler and sent as its response."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Store:
    """Model repos in a folder (see module docstring); safe for concurrent requests."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def repo(self, repo_id: str) -> Path:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(NAME_RE.match(p) and p not in (".", "..") for p in parts):
            raise HttpReply(400, "BadRequest", f"invalid repo id {repo_id!r}")
        return self.root / parts[0] / parts[1]

    def exists(self, repo_id: str) -> bool:
        return (self.repo(repo_id) / "info.json").is_file()

    def info(self, repo_id: str) -> dict:
        try:
            return json.loads((self.repo(repo_id) / "info.json").read_text())
        except FileNotFoundError:
            raise HttpReply(404, "RepoNotFound", f"Repository Not Found for url: {repo_id}") from None

    def create(self, repo_id: str, private: bool, owner: str) -> bool:
        with self._lock:
            if self.exists(repo_id):
                return False
            path = self.repo(repo_id)
            for sub in ("refs", "commits", "blobs"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            self._write_atomic(path / "info.json", json.dumps({"private": private, "createdAt": _now(), "owner": owner}))
            self._commit_locked(repo_id, None, "initial commit", {})
            return True

    def delete(self, repo_id: str) -> None:
        import shutil

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

    def size(self, repo_id: str, oid: str) -> int:
        return (self.repo(repo_id) / "blobs" / oid).stat().st_size

    def commit(self, repo_id: str, parent: str | None, title: str, adds: dict[str, bytes],
               deletes: list[str], deleted_folders: list[str]) -> str:
        with self._lock:
            head = self.head(repo_id)
            if parent and parent != head:
                raise HttpReply(412, "PreconditionFailed", f"parent commit {parent} is not the head {head}")
            files = dict(self.files(repo_id, head))
            for path in deletes:
                files.pop(path, None)
            for folder in deleted_folders:
                files = {p: o for p, o in files.items() if not p.startswith(folder.rstrip("/") + "/")}
            for path, data in adds.items():
                oid = _git_oid(data)
                blob = self.repo(repo_id) / "blobs" / oid
                if not blob.exists():
                    self._write_atomic(blob, data)
                files[path] = oid
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


