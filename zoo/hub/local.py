"""The local hub: published adapters in a folder under ZOO_HOME, one revision per push.

Layout: ``<ZOO_HOME>/hub/<base>/<adapter name>/revisions/<rev>/`` and a ``current`` symlink that a
push swaps with one atomic rename, so readers only ever see complete revisions. ``<base>`` is the
canonical Hub id with / as -- (``FacebookAI--roberta-large``; a Hub id never holds ``--``, so one
folder is one base), or for a local base folder ``~<its name>-<hash of its path>``.

A push publishes the same allow-listed files as a Hub push (``zoo.artifact.record.published_files``),
never weights with NaN or infinity, and removes what killed pushes left behind (``.tmp-*`` folders
and ``.current-*`` links whose process is gone).

    from zoo.hub.local import LocalHub
    hub = LocalHub()
    hub.push("runs/sst2-lora/adapter")
    hub.find("sentence-transformers/all-MiniLM-L6-v2", "sst2-lora")
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from zoo.artifact.record import check_finite_weights, check_safe_folder, published_files, read_record
from zoo.data.bases import canonical_base, legacy_ids, same_base
from zoo.data.ids import base_problem, check, is_local_path, name_problem
from zoo.data.sources import zoo_home
from zoo.errors import AdapterBaseMismatch, AdapterNotFound, BadInput, ZooError

STALE_AFTER_S = 24 * 3600  # a leftover of another machine (shared folder) whose process cannot be checked


def _slug(base_id: str) -> str:
    if is_local_path(base_id):
        return f"~{base_id.rsplit('/', 1)[-1][:40]}-{hashlib.sha256(base_id.encode()).hexdigest()[:12]}"
    return base_id.replace("/", "--")


def base_slug(base: str) -> str:
    """The folder of a base in the local hub (see the module docstring).

    >>> base_slug("roberta-large"), base_slug("/org/model")
    ('FacebookAI--roberta-large', '~model-af0be3b313c2')
    """
    check(base_problem(base), "base model", base, BadInput)
    return _slug(canonical_base(base))


@dataclass(frozen=True)
class Published:
    name: str
    base_model: str
    revision: str
    path: Path


def _owner_gone(stem: str) -> bool:
    """A leftover named ``<host>-<pid>-...`` whose process no longer runs on this host."""
    host, _, rest = stem.partition("-pid")
    pid = rest.split("-", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def clean_leftovers(entry: Path) -> list[str]:
    """Remove the ``.tmp-*`` folders and ``.current-*`` links of pushes that were killed: those whose
    process is gone, or older than a day. A push under way keeps its own."""
    removed = []
    for path in list((entry / "revisions").glob(".tmp-*")) + list(entry.glob(".current-*")):
        stem = path.name.split("-", 1)[1]
        try:
            age = time.time() - path.lstat().st_mtime
        except FileNotFoundError:
            continue
        if _owner_gone(stem) or age > STALE_AFTER_S:
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


class LocalHub:
    """Adapters published to a folder; the default backend when no Hub token is configured."""

    kind = "local"

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else zoo_home() / "hub"

    def _entry(self, base: str, name: str) -> Path:
        check(name_problem(name), "adapter name", name, BadInput)
        return self.root / base_slug(base) / name

    def push(self, folder: str | Path) -> Published:
        """Publish an adapter folder as a new revision; the previous one stays until the swap."""
        folder = Path(folder)
        record = read_record(folder)
        check_safe_folder(folder, record.weights)
        files = published_files(folder, record)
        check_finite_weights(folder, record)
        entry = self._entry(record.base_model, record.name)
        revisions = entry / "revisions"
        revisions.mkdir(parents=True, exist_ok=True)
        clean_leftovers(entry)
        revision = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        mine = f"{socket.gethostname()}-pid{os.getpid()}-{revision}"
        tmp = revisions / f".tmp-{mine}"
        try:
            tmp.mkdir()
            for name in files:
                shutil.copyfile(folder / name, tmp / name, follow_symlinks=False)
            tmp.rename(revisions / revision)
        except OSError as e:
            raise ZooError(f"publishing {record.name} to the local hub {self.root} failed ({e}); "
                           "nothing was published, run the push again") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        link = entry / f".current-{mine}"
        link.symlink_to(Path("revisions") / revision)
        os.replace(link, entry / "current")  # atomic: readers see the old or the new revision, never a mix
        return Published(record.name, canonical_base(record.base_model), revision, revisions / revision)

    def find(self, base: str, name: str) -> Path:
        """The current revision folder of adapter ``name`` published for ``base``."""
        self._entry(base, name)  # checks both: nothing outside the hub is ever looked at
        for spelling in legacy_ids(base):  # the canonical folder, then one a legacy id made before ids were canonical
            current = self.root / _slug(spelling) / name / "current"
            if current.exists():
                return current.resolve()
        published = self.list()  # one pass over the hub serves both messages
        bases = sorted(e["base_model"] for e in published if e["name"] == name)
        if bases:
            raise AdapterBaseMismatch(f"adapter {name!r} was trained on {', '.join(map(repr, bases))}, not {base!r}")
        known = [e["name"] for e in published if same_base(e["base_model"], base)]
        hint = f"; adapters for this base: {', '.join(known)}" if known else "; train one with `zoo train RECIPE --push`"
        raise AdapterNotFound(f"no adapter {name!r} for base {base!r} in the local hub {self.root}{hint}")

    def list(self, *, base: str | None = None, task: str | None = None, method: str | None = None) -> list[dict]:
        """Published adapters (their zoo.json, plus ``path``), filtered by base, task and method."""
        out = []
        if not self.root.is_dir():
            return out
        for current in sorted(self.root.glob("*/*/current")):
            try:
                record = read_record(current)
            except ZooError:
                continue  # a damaged entry must not hide the others
            if current.parent.name != record.name or current.parent.parent.name not in {_slug(b) for b in legacy_ids(record.base_model)}:
                continue  # a folder whose record names another adapter or base: not where a push puts it
            if ((base and not same_base(record.base_model, base)) or (task and record.task != task)
                    or (method and record.method != method)):
                continue
            out.append({**record.to_dict(), "path": str(current.resolve())})
        return out
