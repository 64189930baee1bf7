"""The local hub: published adapters in a folder under ZOO_HOME, one revision per push.

Layout: ``<ZOO_HOME>/hub/<base id, / as -->/<adapter name>/revisions/<rev>/`` and a ``current``
symlink that a push swaps with one atomic rename, so readers only ever see complete revisions.

    from zoo.hub.local import LocalHub
    hub = LocalHub()
    hub.push("runs/sst2-lora/adapter")
    hub.find("sentence-transformers/all-MiniLM-L6-v2", "sst2-lora")
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from zoo.artifact.record import check_safe_folder, read_record
from zoo.data.bases import canonical_base, legacy_ids, same_base
from zoo.data.sources import zoo_home
from zoo.errors import AdapterBaseMismatch, AdapterNotFound, ZooError


def base_slug(base: str) -> str:
    """The folder of a base in the local hub: its canonical id with / as -- (``FacebookAI--roberta-large``)."""
    return canonical_base(base).strip("/").replace("/", "--")


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
        record = read_record(folder)
        check_safe_folder(folder, record.weights)
        entry = self._entry(record.base_model, record.name)
        revisions = entry / "revisions"
        revisions.mkdir(parents=True, exist_ok=True)
        revision = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        tmp = revisions / f".tmp-{revision}"
        try:
            shutil.copytree(folder, tmp)
            tmp.rename(revisions / revision)
        except OSError as e:
            raise ZooError(f"publishing {record.name} to the local hub {self.root} failed ({e}); "
                           "nothing was published, run the push again") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        link = entry / f".current-{revision}"
        link.symlink_to(Path("revisions") / revision)
        os.replace(link, entry / "current")  # atomic: readers see the old or the new revision, never a mix
        return Published(record.name, canonical_base(record.base_model), revision, revisions / revision)

    def find(self, base: str, name: str) -> Path:
        """The current revision folder of adapter ``name`` published for ``base``."""
        for spelling in legacy_ids(base):  # the canonical folder, then one a legacy id made before ids were canonical
            current = self.root / spelling.strip("/").replace("/", "--") / name / "current"
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
            if ((base and not same_base(record.base_model, base)) or (task and record.task != task)
                    or (method and record.method != method)):
                continue
            out.append({**record.to_dict(), "path": str(current.resolve())})
        return out
