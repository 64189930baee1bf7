"""``zoo push --all``: the local hub's catalogue on the Hugging Face Hub, as adapter repos gathered with the demo
Space into one Hugging Face Collection.

1. Every adapter of the local hub (what ``zoo train recipes/ --push --hub local`` fills) goes to
   ``<user>/<name>`` unless the Hub already has it with the same content (below). Each push is one commit
   (``HFHub.push``). Adapters with random weights (``zoo.testing``) are never published.
2. The collection: the adapters and the Space (``--space``, default ``<user>/adapter-zoo``), titled and described
   from the comparison table (``zoo.catalogue.table``): "adapter-zoo: 12 adapters on all-MiniLM-L6-v2" and the best
   adapter of each task on validation. Each adapter's note gives its method, task and metric.

**The same content**: the head of the Hub repo holds exactly the files a push of the adapter publishes
(``published_files``: the weights, ``adapter_config.json``, ``zoo.json`` and so its fingerprint, the card, the
training curve), each byte for byte. Nothing is downloaded: the Hub's own hashes are compared with the local
files' (the sha256 it reports for LFS and Xet files such as the weights, the git blob id for the others); the
``.gitattributes`` the Hub adds to every repo is left out. So a retrained adapter, or one whose card or metrics
changed, is pushed again, and one republished unchanged (a new local revision of the same files) is not.

**Which collection**: ``--collection SLUG``, else the one of the user's collections whose title starts with
``adapter-zoo:`` (several: name one with ``--collection``), else a new one. A run changes only what differs: the
title and description when the table changed, an item added for an adapter or Space not in it yet, a note updated,
an item removed for a model or Space of the user's that left the catalogue (papers, datasets, other people's repos
added by hand stay). A second run with nothing new pushes nothing and changes nothing.

    from zoo.catalogue.collection import publish_catalogue
    from zoo.hub.backends import HFHub
    result = publish_catalogue(HFHub(), space="me/adapter-zoo")
    print(result.collection.url, [a.status for a in result.adapters])
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from zoo.artifact.record import published_files, read_record
from zoo.catalogue.table import LOWER_IS_BETTER, Row, row_of, task_tables
from zoo.data.ids import check, repo_problem
from zoo.errors import BadInput, ZooError
from zoo.hub.backends import HFHub
from zoo.hub.local import LocalHub

TITLE_PREFIX = "adapter-zoo:"  # how a run finds the collection an earlier run made (the rest of the title changes)
MAX_TITLE = 60  # the Hub's limits
MAX_DESCRIPTION = 150
MAX_NOTE = 500
SPACE_NOTE = "The demo Space: try every adapter, run all tasks at once, compare methods, see the results."
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
HOW_TO_PUBLISH_SPACE = "bash scripts/space_bundle.sh build/space && hf upload {space} build/space . --repo-type space"


@dataclass(frozen=True)
class AdapterOutcome:
    name: str
    base_model: str
    repo_id: str | None      # None when it is never published
    status: str              # "pushed", "same" (already on the Hub with the same content) or "skipped"
    revision: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class CollectionOutcome:
    slug: str
    url: str
    title: str
    description: str
    created: bool
    retitled: bool           # the title or the description changed
    added: tuple[str, ...]
    removed: tuple[str, ...]
    renoted: tuple[str, ...]
    unchanged: tuple[str, ...]
    space: str
    space_found: bool

    @property
    def changed(self) -> bool:
        return self.created or self.retitled or bool(self.added or self.removed or self.renoted)


@dataclass(frozen=True)
class CatalogueOutcome:
    adapters: tuple[AdapterOutcome, ...]
    collection: CollectionOutcome


# ---------------------------------------------------------------------- what the collection says
def _short_base(base: str) -> str:
    return base.rstrip("/").rsplit("/", 1)[-1]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def collection_title(n_adapters: int, bases: list[str]) -> str:
    """The title: how many adapters on which base (the marker ``adapter-zoo:`` first), at most 60 characters.

    >>> collection_title(3, ["sentence-transformers/all-MiniLM-L6-v2"])
    'adapter-zoo: 3 adapters on all-MiniLM-L6-v2'
    """
    where = _short_base(bases[0]) if len(set(bases)) == 1 else f"{len(set(bases))} bases"
    return _cut(f"{TITLE_PREFIX} {n_adapters} adapter{'' if n_adapters == 1 else 's'} on {where}", MAX_TITLE)


def best_rows(tables: dict[str, list[Row]]) -> dict[str, Row]:
    """task -> its best adapter or in-context row on validation (the majority baseline never counts)."""
    out = {}
    for task, rows in tables.items():
        scored = [r for r in rows if r.kind != "majority" and r.value is not None]
        if scored:
            lower = (scored[0].metric or "") in LOWER_IS_BETTER
            out[task] = (min if lower else max)(scored, key=lambda r: r.value)
    return out


def collection_description(tables: dict[str, list[Row]]) -> str:
    """The tasks and the best adapter of each, in at most 150 characters (the tasks that do not fit are counted).

    >>> from zoo.catalogue.table import Row
    >>> collection_description({"glue/sst2": [Row("glue/sst2", "LoRA", "sst2-lora", "b", "accuracy", 0.9)]})
    'Best on validation: sst2 sst2-lora 0.900.'
    """
    best = best_rows(tables)
    if not best:
        return "Parameter-efficient adapters published with adapter-zoo."
    parts = [f"{task.rsplit('/', 1)[-1]} {r.adapter} {r.value:.3f}" for task, r in best.items()]
    for shown in range(len(parts), 0, -1):
        more = len(parts) - shown
        text = "Best on validation: " + ", ".join(parts[:shown]) + (f" (+{more} more tasks)." if more else ".")
        if len(text) <= MAX_DESCRIPTION:
            return text
    return _cut(f"{len(parts)} tasks; the best on validation: {parts[0]}", MAX_DESCRIPTION)


def item_note(record: dict) -> str:
    """An adapter's note in the collection: method, task and its headline metric."""
    row = row_of(record)
    text = f"{row.method} on {row.task}"
    if row.value is not None:
        text += f": {row.metric} {row.value:.4f} (validation)"
    if row.trainable_pct is not None:
        text += f", {row.trainable_pct:.3g} % of the parameters trained"
    return _cut(text, MAX_NOTE)


# ---------------------------------------------------------------------- the same content
def local_hashes(folder: Path) -> dict[str, dict[str, str]]:
    """file -> {"sha256": ..., "git": git blob sha1} for every file a push of ``folder`` publishes."""
    folder = Path(folder)
    out = {}
    for name in published_files(folder, read_record(folder)):
        path = folder / name
        sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % path.stat().st_size)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(2**20), b""):
                sha256.update(chunk)
                git.update(chunk)
        out[name] = {"sha256": sha256.hexdigest(), "git": git.hexdigest()}
    return out


def same_content(local: dict[str, dict[str, str]], remote: dict[str, tuple[str, str]] | None) -> bool:
    """The Hub's head holds exactly the files of ``local``, each with the same content (see the module docstring)."""
    if remote is None:
        return False
    remote = {path: h for path, h in remote.items() if path != ".gitattributes"}
    return set(remote) == set(local) and all(local[path][kind] == value for path, (kind, value) in remote.items())


# ---------------------------------------------------------------------- the run
def push_adapters(hub: HFHub, entries: list[dict], owner: str, *, private: bool = False, report=None
                  ) -> list[AdapterOutcome]:
    """Push each local-hub entry (``LocalHub.list()``) whose Hub copy differs; ``report(outcome)`` after each."""
    outcomes = []
    for entry in entries:
        if entry.get("synthetic"):
            outcome = AdapterOutcome(entry["name"], entry["base_model"], None, "skipped",
                                     reason="random weights (zoo.testing), never published")
        else:
            repo_id = f"{owner}/{entry['name']}"
            if same_content(local_hashes(Path(entry["path"])), hub.file_hashes(repo_id)):
                outcome = AdapterOutcome(entry["name"], entry["base_model"], repo_id, "same")
            else:
                pushed = hub.push(entry["path"], repo_id=repo_id, private=private)
                outcome = AdapterOutcome(entry["name"], entry["base_model"], repo_id, "pushed", pushed.revision)
        outcomes.append(outcome)
        if report:
            report(outcome)
    return outcomes


def _find_collection(hub: HFHub, owner: str, slug: str | None, title: str, description: str, private: bool):
    """(the collection, whether it was created now): see "Which collection" in the module docstring."""
    if slug:
        return hub.collection(slug), False
    ours = [c for c in hub.collections_of(owner) if c.title.startswith(TITLE_PREFIX)]
    if len(ours) > 1:
        raise ZooError(f"{len(ours)} collections of {owner} have titles starting with {TITLE_PREFIX!r} "
                       f"({', '.join(c.slug for c in ours)}); name the one to update with --collection SLUG")
    if ours:
        return hub.collection(ours[0].slug), False
    return hub.create_collection(title, description=description, private=private), True


def sync_collection(hub: HFHub, owner: str, *, title: str, description: str, items: list[tuple[str, str, str]],
                    space: str, space_found: bool, slug: str | None = None, private: bool = False) -> CollectionOutcome:
    """Make the collection hold ``items`` ((id, type, note) each, in order for new ones) with this title and
    description, changing only what differs."""
    found, created = _find_collection(hub, owner, slug, title, description, private)
    current = {(i.item_type, i.item_id): i for i in found.items}  # read whole (get_collection), before any change
    retitled = not created and (found.title != title or (found.description or "") != description)
    if retitled:
        found = hub.update_collection(found.slug, title=title, description=description)  # a new slug, the same id
    slug = found.slug
    added, renoted, unchanged = [], [], []
    for ident, kind, note in items:
        item = current.get((kind, ident))
        if item is None:
            hub.add_to_collection(slug, ident, kind, note)
            added.append(ident)
        elif (item.note or "") != note:
            hub.note_collection_item(slug, item.item_object_id, note)
            renoted.append(ident)
        else:
            unchanged.append(ident)
    wanted = {(kind, ident) for ident, kind, _ in items}
    removed = []
    for (kind, ident), item in current.items():  # ours (a model or Space of the owner) that left the catalogue
        if kind in ("model", "space") and ident.startswith(owner + "/") and (kind, ident) not in wanted:
            hub.remove_from_collection(slug, item.item_object_id)
            removed.append(ident)
    return CollectionOutcome(slug=slug, url=found.url, title=title, description=description, created=created,
                             retitled=retitled, added=tuple(added), removed=tuple(removed), renoted=tuple(renoted),
                             unchanged=tuple(unchanged), space=space, space_found=space_found)


def publish_catalogue(hub: HFHub, local: LocalHub | None = None, *, space: str | None = None,
                      collection: str | None = None, private: bool = False, report=None) -> CatalogueOutcome:
    """Push what the Hub lacks of the local hub, then bring the collection up to date (module docstring).
    ``report(AdapterOutcome)`` is called as each adapter is done; a failure raises a ZooError, and a rerun
    continues where it stopped (what was pushed is then the same on the Hub)."""
    local = local or LocalHub()
    entries = sorted(local.list(), key=lambda e: (e["task"], e["name"], e["base_model"]))
    if not entries:
        raise ZooError(f"the local hub {local.root} holds no adapters; build them with "
                       "`zoo train recipes/ --push --hub local`")
    if all(e.get("synthetic") for e in entries):
        raise ZooError(f"the local hub {local.root} holds only adapters with random weights (zoo.testing), which are "
                       "never published; build real ones with `zoo train recipes/ --push --hub local`")
    names: dict[str, str] = {}
    for e in entries:
        if not e.get("synthetic") and names.setdefault(e["name"], e["base_model"]) != e["base_model"]:
            raise ZooError(f"two adapters are named {e['name']!r} ({names[e['name']]} and {e['base_model']}); both would "
                           f"go to the repo <user>/{e['name']}. Nothing was pushed: rename one (its recipe's name)")
    if space is not None:
        check(repo_problem(space), "Space", space, BadInput)
    if collection is not None and not _SLUG.fullmatch(collection):
        raise BadInput(f"collection {collection[:80]!r} is not a slug OWNER/TITLE-ID (the end of the collection's URL)")
    owner = hub.user()
    space = space or f"{owner}/adapter-zoo"
    outcomes = push_adapters(hub, entries, owner, private=private, report=report)
    published = [e for e, o in zip(entries, outcomes) if o.repo_id]
    tables = task_tables(published)
    title = collection_title(len(published), [e["base_model"] for e in published])
    space_found = hub.space_exists(space)
    items = ([(space, "space", SPACE_NOTE)] if space_found else [])
    items += [(o.repo_id, "model", item_note(e)) for e, o in zip(entries, outcomes) if o.repo_id]
    result = sync_collection(hub, owner, title=title, description=collection_description(tables), items=items,
                             space=space, space_found=space_found, slug=collection, private=private)
    return CatalogueOutcome(tuple(outcomes), result)
