"""Collections on the loopback Hub server (``zoo.hub.server``): what ``huggingface_hub``'s collection API reads
and writes, stored beside the repos and checked here by allow-list. The routes (``CollectionRoutes``):

    GET    /api/collections?owner=&item=&sort=&limit=          list_collections (4 items each, no position)
    POST   /api/collections  {title, namespace, description?, private?}   create_collection (409 + slug: exists)
    GET    /api/collections/OWNER/SLUG                           get_collection
    PATCH  /api/collections/OWNER/SLUG  {title?, description?, position?, private?, theme?}   -> {success, data}
    DELETE /api/collections/OWNER/SLUG                           delete_collection
    POST   /api/collections/OWNER/SLUG/items  {item: {id, type}, note?}   add_collection_item (409: already in)
    PATCH  /api/collections/OWNER/SLUG/items/ITEM_ID  {note?, position?}  update_collection_item
    DELETE /api/collections/OWNER/SLUG/items/ITEM_ID            delete_collection_item

    <root>/.collections/<owner>/<24 hex id>.json    one collection: title, description, items..., swapped
                                                    whole with one atomic rename, like a repo's head

A collection's slug is ``<owner>/<title made lowercase and dashed>-<its id>``; the server finds a collection by
the owner and the id, so a slug stays valid after a rename (only its title part changes; the id stays, as on the Hub).

Limits (the Hub's where it documents them): a title 1-60 characters, a description at most 150, an item's note
at most 500, all printable text (no control characters, no line breaks); at most 1,000 items in a collection and
1,000 collections per owner. Item types are the Hub's ``model``, ``dataset``, ``space``, ``paper`` and
``collection``; an item must exist (a model or Space repo, or a collection, of this server: it holds no
datasets or papers, so those are always "not found"), and it is in a collection at most once.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import threading
import uuid
from pathlib import Path

from zoo.hub import requests as rq
from zoo.hub.requests import HttpReply, bad, check_namespace, check_repo_id, get, shown

MAX_TITLE_CHARS = 60
MAX_DESCRIPTION_CHARS = 150
MAX_NOTE_CHARS = 500
MAX_ITEMS = 1000
MAX_COLLECTIONS = 1000  # per owner
MAX_LISTED = 1000  # collections in one listing
LISTED_ITEMS = 4  # a listing shows the first items of each collection only, as the Hub's does
THEMES = ("orange", "blue", "green", "purple", "pink", "indigo")
ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")
REPO_ITEM_TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}

_ID = re.compile(r"[0-9a-f]{24}")
_SLUG_NAME = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,99}-)?(?P<id>[0-9a-f]{24})")
_PAPER = re.compile(r"[0-9]{4}\.[0-9]{4,5}")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return uuid.uuid4().hex[:24]


def slug_of(record: dict) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", record["title"].lower()).strip("-")[:80].strip("-")
    return f"{record['owner']}/{words + '-' if words else ''}{record['id']}"


def collection_id(owner: str, name: str) -> tuple[str, str]:
    """(owner, id) of the slug ``owner/name`` from a URL; 404 for one no collection could have."""
    match = _SLUG_NAME.fullmatch(name)
    if match is None:
        raise HttpReply(404, "NotFound", f"no collection {shown(owner + '/' + name)}: a slug is OWNER/TITLE-<24 hex id>")
    return check_namespace(owner, "collection owner"), match.group("id")


def text(data: dict, key: str, where: str, limit: int, *, required: bool = False, empty: bool = True) -> str | None:
    """``data[key]`` as printable text of at most ``limit`` characters (None when absent)."""
    value = get(data, key, str, where, required=required)
    if value is None:
        return None
    if len(value) > limit:
        raise bad(f"{where}: {key!r} is {len(value)} characters; at most {limit}")
    if not value.isprintable():
        raise bad(f"{where}: {key!r} holds a control character or a line break; it must be printable text")
    if not empty and not value.strip():
        raise bad(f"{where}: {key!r} must not be empty")
    return value


def only_keys(data: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise bad(f"{where}: unknown field {shown(unknown[0])}; the fields are {', '.join(allowed)}")


def item_filter(value: str) -> tuple[str, str]:
    """The (type, id) of a listing's ``item`` filter: ``models/OWNER/NAME``, ``spaces/...``, ``papers/ID``..."""
    plural, _, ident = value.partition("/")
    kind = {f"{k}s": k for k in ITEM_TYPES}.get(plural)
    if kind is None or not ident:
        raise bad(f"query parameter 'item' must be TYPE/ID with TYPE one of models, datasets, spaces, papers, "
                  f"collections, got {shown(value)}")
    return kind, ident


def item_index(record: dict, object_id: str) -> int:
    """Where the item ``object_id`` (its ``_id``, not the repo id) is in the collection; 404 when it is not."""
    for index, item in enumerate(record["items"]):
        if item["_id"] == object_id:
            return index
    raise HttpReply(404, "NotFound", f"no item {shown(object_id)} in collection {slug_of(record)}")


def item_target(data: dict, where: str) -> tuple[str, str]:
    """The (type, id) that an add-item body's ``item`` names, checked by the rules of its type."""
    item = get(data, "item", dict, where, required=True)
    only_keys(item, ("id", "type"), f"{where}: item")
    kind = get(item, "type", str, f"{where}: item", required=True, choices=ITEM_TYPES)
    ident = get(item, "id", str, f"{where}: item", required=True)
    if kind in REPO_ITEM_TYPES:
        check_repo_id(ident)
    elif kind == "paper" and not _PAPER.fullmatch(ident):
        raise bad(f"{where}: a paper is named by its arXiv id (2307.09288), got {shown(ident)}")
    elif kind == "collection":
        owner, _, name = ident.partition("/")
        collection_id(owner, name)
    return kind, ident


class CollectionStore:
    """Collections in ``<root>/.collections``; safe for concurrent requests (one lock for writes)."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / ".collections"
        self._lock = threading.Lock()

    def _path(self, owner: str, cid: str) -> Path:
        check_namespace(owner, "collection owner")
        if not _ID.fullmatch(cid):
            raise HttpReply(404, "NotFound", f"no collection with id {shown(cid)}")
        return self.root / owner / f"{cid}.json"

    def load(self, owner: str, cid: str) -> dict:
        try:
            return json.loads(self._path(owner, cid).read_text())
        except FileNotFoundError:
            raise HttpReply(404, "NotFound", f"Collection {owner}/...-{cid} not found") from None

    def of_owner(self, owner: str) -> list[dict]:
        folder = self.root / check_namespace(owner, "collection owner")
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                out.append(json.loads(path.read_text()))
            except FileNotFoundError:
                continue  # deleted while listing
        return sorted(out, key=lambda r: (r.get("position", 0), r["created"]))

    def owners(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def _save(self, record: dict) -> None:
        path = self._path(record["owner"], record["id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)  # readers see the old collection or the new one, never half of one

    def _same_title(self, owner: str, title: str, other_than: str | None = None) -> dict | None:
        return next((r for r in self.of_owner(owner) if r["title"] == title and r["id"] != other_than), None)

    def create(self, owner: str, title: str, description: str | None, private: bool) -> tuple[dict, bool]:
        """(the collection, True), or (the owner's collection of that title, False): a title is unique per owner."""
        with self._lock:
            existing = self._same_title(owner, title)
            if existing is not None:
                return existing, False
            mine = self.of_owner(owner)
            if len(mine) >= MAX_COLLECTIONS:
                raise bad(f"{owner} has {len(mine)} collections; this server holds at most {MAX_COLLECTIONS} per owner")
            now = _now()
            record = {"id": new_id(), "owner": owner, "title": title, "description": description or "",
                      "private": private, "theme": "green", "position": len(mine), "created": now, "lastUpdated": now,
                      "items": []}
            self._save(record)
            return record, True

    def change(self, owner: str, cid: str, edit) -> dict:
        """Apply ``edit(record)`` (which raises HttpReply to refuse, changing nothing) and store the result."""
        with self._lock:
            record = self.load(owner, cid)
            before = json.dumps(record)
            edit(record)
            if json.dumps(record) == before:
                return record  # nothing changed: neither the file nor lastUpdated
            if self._same_title(owner, record["title"], other_than=cid):
                raise HttpReply(409, "Conflict", f"{owner} already has a collection titled {shown(record['title'])}")
            record["lastUpdated"] = _now()
            self._save(record)
            return record

    def delete(self, owner: str, cid: str) -> None:
        with self._lock:
            self.load(owner, cid)
            self._path(owner, cid).unlink()


def render(record: dict, visible, *, listed: bool = False) -> dict:
    """The Hub's JSON for a collection; ``visible(type, id)`` hides items the caller may not see. A listing
    shows the first items only and no ``position`` (``list_collections`` numbers them itself)."""
    items = []
    for position, item in enumerate(record["items"]):
        if not visible(item["type"], item["id"]):
            continue
        out = {"_id": item["_id"], "id": item["id"], "type": item["type"], "position": position}
        if item["type"] in REPO_ITEM_TYPES:
            out.update(author=item["id"].split("/")[0], repoType=item["type"])
        elif item["type"] == "collection":
            out["slug"] = item["id"]
        if item.get("note"):
            out["note"] = {"text": item["note"], "html": html.escape(item["note"])}
        items.append(out)
    owner = record["owner"]
    out = {"slug": slug_of(record), "title": record["title"], "description": record["description"],
           "owner": {"_id": owner, "name": owner, "fullname": owner, "type": "user", "avatarUrl": "", "isPro": False,
                     "isHf": False, "isHfAdmin": False, "isMod": False},
           "items": items[:LISTED_ITEMS] if listed else items, "lastUpdated": record["lastUpdated"],
           "theme": record["theme"], "private": record["private"], "upvotes": 0, "isUpvotedByUser": False,
           "gating": False}
    if not listed:
        out["position"] = record.get("position", 0)
    return out


class CollectionRoutes:
    """The collection routes of ``zoo.hub.server.Handler`` (a mixin: it uses the handler's token, body and reply
    plumbing, and the server's stores). Every write checks the token first (401), then that the collection is
    visible (404) and the caller's (403), and only then reads the body."""

    def _visible(self, user: str | None):
        """``visible(type, id)``: the item exists here and ``user`` may see it (a token reads private repos,
        as everywhere on this server; a private collection only its owner)."""
        def visible(kind: str, ident: str) -> bool:
            try:
                if kind in ("model", "space"):
                    info = (self.server.spaces if kind == "space" else self.server.store).info(ident)
                    return not info.get("private") or user is not None
                if kind == "collection":
                    owner, _, name = ident.partition("/")
                    record = self.server.collections.load(*collection_id(owner, name))
                    return not record["private"] or user == record["owner"]
            except HttpReply:
                return False
            return False  # datasets and papers: this server holds none
        return visible

    def _collection(self, owner: str, slug: str, user: str | None, write: bool = False) -> dict:
        """The collection ``owner/slug`` as ``user`` may see it (404 if not), and change it (403 if not)."""
        owner, cid = collection_id(owner, slug)
        record = self.server.collections.load(owner, cid)
        if record["private"] and user != record["owner"]:
            raise HttpReply(404, "NotFound", f"Collection {owner}/...-{cid} not found")
        if write and user != record["owner"]:
            raise HttpReply(403, "Forbidden", f"collection {shown(owner + '/' + slug)} belongs to {owner}; "
                            "only its owner may change it")
        return record

    def _collection_body(self, where: str, keys: tuple[str, ...]) -> dict:
        data = rq.json_object(self._body(self.server.max_json_bytes), where)
        only_keys(data, keys, where)
        return data

    def list_collections(self, query):
        user = self._user(required=False)
        store = self.server.collections
        owners = [check_namespace(o, "owner") for o in query.get("owner", [])] or store.owners()
        wanted = [item_filter(i) for i in query.get("item", [])]
        sort = rq.query_one(query, "sort")
        if sort is not None and sort not in ("lastModified", "trending", "upvotes"):
            raise bad(f"query parameter 'sort' must be lastModified, trending or upvotes, got {shown(sort)}")
        limit = rq.query_int(query, "limit", MAX_LISTED, high=MAX_LISTED)
        found = [r for o in owners for r in store.of_owner(o) if not r["private"] or r["owner"] == user]
        found = [r for r in found if all(any((i["type"], i["id"]) == w for i in r["items"]) for w in wanted)]
        if sort == "lastModified":
            found.sort(key=lambda r: r["lastUpdated"], reverse=True)
        visible = self._visible(user)
        self._json([render(r, visible, listed=True) for r in found[:limit]])

    def get_collection(self, query, owner, slug):
        user = self._user(required=False)
        self._json(render(self._collection(owner, slug, user), self._visible(user)))

    def create_collection(self, query):
        user, where = self._user(), "the create-collection body"
        data = self._collection_body(where, ("title", "namespace", "description", "private", "resourceGroupId"))
        if data.get("resourceGroupId") is not None:
            raise bad(f"{where}: resource groups belong to organizations; this server has none")
        title = text(data, "title", where, MAX_TITLE_CHARS, required=True, empty=False)
        namespace = check_namespace(get(data, "namespace", str, where) or user)
        if namespace != user:
            raise HttpReply(403, "Forbidden", f"you ({user}) may create collections in your own namespace only, "
                            f"not in {shown(namespace)}")
        description = text(data, "description", where, MAX_DESCRIPTION_CHARS)
        private = bool(get(data, "private", bool, where))
        record, created = self.server.collections.create(user, title, description, private)
        if not created:  # huggingface_hub's exists_ok reads the slug of the existing one from this reply
            raise HttpReply(409, "Conflict", f"you already have a collection titled {shown(title)}",
                            {"slug": slug_of(record)})
        self._json(render(record, self._visible(user)))

    def update_collection(self, query, owner, slug):
        user, where = self._user(), "the update-collection body"
        record = self._collection(owner, slug, user, write=True)
        data = self._collection_body(where, ("title", "description", "position", "private", "theme"))
        changes = {"title": text(data, "title", where, MAX_TITLE_CHARS, empty=False),
                   "description": text(data, "description", where, MAX_DESCRIPTION_CHARS),
                   "position": get(data, "position", int, where), "private": get(data, "private", bool, where),
                   "theme": get(data, "theme", str, where, choices=THEMES)}
        if changes["position"] is not None and not 0 <= changes["position"] < MAX_COLLECTIONS:
            raise bad(f"{where}: 'position' must be from 0 to {MAX_COLLECTIONS - 1}")
        changes = {k: v for k, v in changes.items() if v is not None}
        record = self.server.collections.change(record["owner"], record["id"], lambda r: r.update(changes))
        self._json({"success": True, "data": render(record, self._visible(user))})

    def delete_collection(self, query, owner, slug):
        user = self._user()
        record = self._collection(owner, slug, user, write=True)
        self.server.collections.delete(record["owner"], record["id"])
        self._json({"success": True})

    def add_collection_item(self, query, owner, slug):
        user, where = self._user(), "the add-item body"
        record = self._collection(owner, slug, user, write=True)
        data = self._collection_body(where, ("item", "note", "exists_ok"))
        get(data, "exists_ok", bool, where)
        kind, ident = item_target(data, where)
        note = text(data, "note", where, MAX_NOTE_CHARS)
        if not self._visible(user)(kind, ident):  # the Hub answers 404 for an item that does not exist
            held = "" if kind in ("model", "space", "collection") else " (this server holds no datasets or papers)"
            raise HttpReply(404, "NotFound", f"no {kind} {shown(ident)} on this server{held}")
        if kind == "collection":
            target = self.server.collections.load(*collection_id(*ident.split("/")))
            if target["id"] == record["id"]:
                raise bad(f"{where}: a collection cannot hold itself")
            ident = slug_of(target)

        def add(r):
            if any((i["type"], i["id"]) == (kind, ident) for i in r["items"]):
                raise HttpReply(409, "Conflict", f"{kind} {shown(ident)} is already in this collection")
            if len(r["items"]) >= MAX_ITEMS:
                raise bad(f"a collection holds at most {MAX_ITEMS} items; this one is full")
            r["items"].append({"_id": new_id(), "type": kind, "id": ident, "note": note or None})

        record = self.server.collections.change(record["owner"], record["id"], add)
        self._json(render(record, self._visible(user)))

    def update_collection_item(self, query, owner, slug, item):
        user, where = self._user(), "the update-item body"
        record = self._collection(owner, slug, user, write=True)
        data = self._collection_body(where, ("note", "position"))
        note = text(data, "note", where, MAX_NOTE_CHARS)
        position = get(data, "position", int, where)

        def edit(r):
            index = item_index(r, item)
            if note is not None:
                r["items"][index]["note"] = note or None
            if position is not None:
                if not 0 <= position < len(r["items"]):
                    raise bad(f"{where}: 'position' must be from 0 to {len(r['items']) - 1}")
                r["items"].insert(position, r["items"].pop(index))

        record = self.server.collections.change(record["owner"], record["id"], edit)
        self._json({"success": True, "data": render(record, self._visible(user))})

    def delete_collection_item(self, query, owner, slug, item):
        user = self._user()
        record = self._collection(owner, slug, user, write=True)
        self.server.collections.change(record["owner"], record["id"], lambda r: r["items"].pop(item_index(r, item)))
        self._json({"success": True})
