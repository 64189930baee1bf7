"""The local hub: published adapters in a folder under ZOO_HOME, one revision per push.

Layout: ``<ZOO_HOME>/hub/<base id, / as -->/<adapter name>/revisions/<rev>/`` and a ``current``
symlink that a push swaps with one atomic rename, so readers only ever see complete revisions.

Example:
    >>> from zoo.local_hub import LocalHub
    >>> hub = LocalHub()                                                       # doctest: +SKIP
    >>> hub.push("runs/sst2-lora/adapter")                                     # doctest: +SKIP
    >>> hub.find("sentence-transformers/all-MiniLM-L6-v2", "sst2-lora")        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import AdapterBaseMismatch, AdapterNotFound, UnsafeAdapter, ZooError
from .methods import check_safe_folder

ZOO_HOME_ENV = "ZOO_HOME"


def zoo_home() -> Path:
    """$ZOO_HOME, else $XDG_CACHE_HOME/adapter-zoo, else ~/.cache/adapter-zoo."""
    if os.environ.get(ZOO_HOME_ENV):
        return Path(os.environ[ZOO_HOME_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "adapter-zoo"


def base_slug(base: str) -> str:
    return base.strip("/").replace("/", "--")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_BASE = re.compile(r"^[\w][\w./@:+-]{0,255}$|^/[\w./@:+-]{1,255}$")


def check_identity(meta: dict, where: str) -> None:
    """An adapter's name and base are safe to use as folder names and to show on a page: zoo.json comes from strangers."""
    name, base = meta.get("name"), meta.get("base_model")
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise UnsafeAdapter(f"{where}: adapter name {str(name)[:80]!r} is not a plain name (letters, digits, '.', '_', '-')")
    if not isinstance(base, str) or not _BASE.match(base) or any(part in ("..", ".") for part in base.split("/")):
        raise UnsafeAdapter(f"{where}: base model {str(base)[:80]!r} is not a model id or a plain path")


def read_meta(folder: Path) -> dict:
    path = folder / "zoo.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnsafeAdapter(f"{folder} is not an adapter-zoo folder: no zoo.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnsafeAdapter(f"{path} is not valid JSON ({e})") from None
    for key in ("name", "base_model", "task", "method", "labels", "weights"):
        if key not in meta:
            raise UnsafeAdapter(f"{path} lacks {key!r}")
    check_identity(meta, str(path))
    return meta


@dataclass(frozen=True)
class Published:
    name: str
    base_model: str
    revision: str
    path: Path


class LocalHub:
    """Adapters published to a folder; the default backend when no Hub token is configured."""

    kind = "local"

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else zoo_home() / "hub"

    def _entry(self, base: str, name: str) -> Path:
        return self.root / base_slug(base) / name

    def push(self, folder: str | Path) -> Published:
        """Publish an adapter folder as a new revision; the previous one stays until the swap."""
        folder = Path(folder)
        meta = read_meta(folder)
        check_safe_folder(folder, meta["weights"])
        entry = self._entry(meta["base_model"], meta["name"])
        revisions = entry / "revisions"
        revisions.mkdir(parents=True, exist_ok=True)
        revision = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        tmp = revisions / f".tmp-{revision}"
        try:
            shutil.copytree(folder, tmp)
            tmp.rename(revisions / revision)
        except OSError as e:
            raise ZooError(f"publishing {meta['name']} to the local hub {self.root} failed ({e}); "
                           "nothing was published, run the push again") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        link = entry / f".current-{revision}"
        link.symlink_to(Path("revisions") / revision)
        os.replace(link, entry / "current")  # atomic: readers see the old or the new revision, never a mix
        return Published(meta["name"], meta["base_model"], revision, revisions / revision)

    def find(self, base: str, name: str) -> Path:
        """The current revision folder of adapter ``name`` published for ``base``."""
        current = self._entry(base, name) / "current"
        if current.exists():
            return current.resolve()
        published = self.list()  # one pass over the hub serves both messages
        bases = sorted(e["base_model"] for e in published if e["name"] == name)
        if bases:
            raise AdapterBaseMismatch(f"adapter {name!r} was trained on {', '.join(map(repr, bases))}, not {base!r}")
        known = [e["name"] for e in published if e["base_model"] == base]
        hint = f"; adapters for this base: {', '.join(known)}" if known else "; train one with `zoo train RECIPE --push`"
        raise AdapterNotFound(f"no adapter {name!r} for base {base!r} in the local hub {self.root}{hint}")

    def list(self, *, base: str | None = None, task: str | None = None, method: str | None = None) -> list[dict]:
        """Published adapters (their zoo.json, plus ``path``), filtered by base, task and method."""
        out = []
        if not self.root.is_dir():
            return out
        for current in sorted(self.root.glob("*/*/current")):
            try:
                meta = read_meta(current)
            except ZooError:
                continue  # a damaged entry must not hide the others
            if (base and meta["base_model"] != base) or (task and meta["task"] != task) or (method and meta["method"] != method):
                continue
            out.append({**meta, "path": str(current.resolve())})
        return out
