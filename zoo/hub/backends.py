"""Publishing and discovery: the Hugging Face Hub and the local hub behind one interface.

The only module that imports ``huggingface_hub``. Which backend is used:

- ``--hub hf`` / ``get_hub("hf")``, or a configured token (``HF_TOKEN`` or ``huggingface-cli login``):
  the Hugging Face Hub at ``HF_ENDPOINT`` (https://huggingface.co by default);
- otherwise, or with ``--hub local``: the local hub under ``$ZOO_HOME`` (``zoo.hub.local``).

Every push is one commit (``upload_folder``): a push that fails half-way publishes nothing, and
pushing again makes a new revision. The token is handed to ``huggingface_hub`` and never printed,
logged or written; messages that come back from the server are scrubbed of it all the same.

    from zoo.hub.backends import get_hub
    hub = get_hub()
    hub.push("runs/sst2-lora/adapter")
    hub.list(base="sentence-transformers/all-MiniLM-L6-v2", method="lora")
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from zoo.artifact.card import CARD_EFFICIENCY
from zoo.artifact.record import (
    MAX_LABELS,
    PUBLISHED_PATTERNS,
    TASK_TYPES,
    check_finite_weights,
    check_safe_folder,
    published_files,
    published_name,
    read_record,
)
from zoo.data.bases import canonical_base, legacy_ids, same_base
from zoo.data.endpoint import hub_endpoint, hub_reachable
from zoo.data.ids import base_problem, check, is_local_path, name_problem, repo_problem, revision_problem, shown_text
from zoo.data.untrusted import finite
from zoo.errors import AdapterBaseMismatch, AdapterNotFound, BadInput, HubError, UnsafeAdapter, ZooError
from zoo.hub.local import LocalHub

CAUSAL_PIPELINES = ("text-generation", "summarization")  # cards written before the zoo block named the task type
MAX_SIDE_FILE_BYTES = 16 << 20  # zoo.json, adapter_config.json, the card, its plots, a tokenizer's vocabulary
DISK_HEADROOM_BYTES = 1 << 30   # a pull leaves at least this much free on the cache's disk
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".gguf")
_UNFETCHED_SUFFIXES = tuple(x for x in _WEIGHT_SUFFIXES if x != ".safetensors") + (".onnx", ".ot", ".tflite")
LISTED_BASES_GIB = 8.0  # default ZOO_BASES_GIB: MiniLM, SmolLM2-135M, roberta-large and a 1.7B model fit together


def weights_limit(base_bytes: int | None) -> int | None:
    """The largest weights file an adapter of a base whose own weights take ``base_bytes`` can need: a full
    fine-tune in float32 of a 16-bit base is twice the base, plus a head (label rows) within
    ``MAX_SIDE_FILE_BYTES``; every parameter-efficient method is far below. None when the base's size is unknown.

        >>> weights_limit(1_000_000) == 2_000_000 + MAX_SIDE_FILE_BYTES, weights_limit(None)
        (True, None)
    """
    return None if not base_bytes else 2 * base_bytes + MAX_SIDE_FILE_BYTES


def allowed_bases(spec: str | None = None) -> frozenset[str] | None:
    """The bases a server or Space may load for the entries a hub lists (``ZOO_BASES``: Hub ids or absolute folders,
    comma-separated; either spelling of a legacy id), or None when not set: any Hub id, and, from a listing on the
    Hub, no folder of this machine (``listed_base_problem``). Checked once, when the catalogue is made.

        >>> sorted(allowed_bases("roberta-large, /srv/models/mine"))
        ['/srv/models/mine', 'FacebookAI/roberta-large']
        >>> allowed_bases("") is None
        True
    """
    spec = os.environ.get("ZOO_BASES", "") if spec is None else spec
    names = [part.strip() for part in spec.split(",") if part.strip()]
    for name in names:
        check(base_problem(name), "ZOO_BASES: base model", name, BadInput)
    return frozenset(canonical_base(name) for name in names) or None


def listed_base_problem(base: str, backend, allowed: frozenset[str] | None) -> str | None:
    """Why a hub listing's entry may not make this machine load its base, or None. A listing is a stranger's word
    on the Hub: a card naming ``/srv/models/private`` would have a Space or server load (and answer with) a model
    its operator never published. With ``allowed`` (``allowed_bases``) only those bases; without, Hub ids only,
    unless the listing is the local hub (this machine's own adapters)."""
    if allowed is not None:
        if canonical_base(base) in allowed:
            return None
        return "is not one of the bases this server loads (ZOO_BASES)"
    if is_local_path(base) and getattr(backend, "kind", None) != "local":
        return ("is a folder of this machine, named by a listing on the Hub: a Hub catalogue loads Hub bases only "
                "(its operator may allow folders with ZOO_BASES)")
    return None


def listed_bases_budget(spec: str | None = None) -> int:
    """The bytes of base weights that entries of a Hub listing may bring into memory, all their bases together, when
    ``ZOO_BASES`` is not set (``ZOO_BASES_GIB``, GiB, default ``LISTED_BASES_GIB``): shared bases stay resident, so
    a stranger's cards naming many or huge bases must not fill the machine. Checked once, when the catalogue is made.

        >>> listed_bases_budget("0.5"), listed_bases_budget("") == int(LISTED_BASES_GIB * 2**30)
        (536870912, True)
    """
    spec = (os.environ.get("ZOO_BASES_GIB", "") if spec is None else spec).strip()
    if not spec:
        return int(LISTED_BASES_GIB * 2**30)
    try:
        gib = float(spec)
    except ValueError:
        gib = float("nan")
    if not 0 < gib <= 1 << 20:  # NaN and inf fail too
        raise BadInput(f"ZOO_BASES_GIB: {spec[:40]!r} is not a number of GiB above 0 (e.g. 8)")
    return int(gib * 2**30)


def _one_format_bytes(sizes: dict[str, int]) -> int | None:
    """The bytes of a base's weights from its top-level files' sizes: a repo often holds one model in several
    formats (safetensors beside pytorch_model.bin), so the largest format's total, not the sum (None: no weights)."""
    totals = [sum(v for k, v in sizes.items() if k.endswith(suffix)) for suffix in _WEIGHT_SUFFIXES]
    return max(totals) or None


def _folder_weight_bytes(folder: Path) -> int | None:
    """The bytes of a local base folder's top-level weight files (None when it holds none)."""
    try:
        return _one_format_bytes({p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()})
    except OSError:
        return None


def listing_row(card: dict, repo_id: str, revision, private: bool) -> dict | None:
    """A Hub listing row from an adapter's card metadata (YAML a stranger wrote), or None when the card is not the
    zoo's shape: the zoo block an object with a plain name, task and method, labels a list of printable names, the
    model-index's metrics and the efficiency figures finite numbers. Every caller of ``list`` (``zoo list``, the
    report, the Space, short-name loads) reads only such rows."""
    zoo = card.get("zoo")
    if not isinstance(zoo, dict) or not isinstance(zoo.get("name"), str) or name_problem(zoo["name"]):
        return None
    bases = card.get("base_model")
    base = bases[0] if isinstance(bases, list) and bases else bases
    if not isinstance(base, str) or base_problem(base):
        return None
    if not all(shown_text(zoo.get(key)) for key in ("task", "method")) or zoo.get("task_type") not in (None, *TASK_TYPES):
        return None
    labels = zoo.get("labels")
    if labels is not None and not (isinstance(labels, list) and len(labels) <= MAX_LABELS and all(map(shown_text, labels))):
        return None
    metrics = {}
    index, results = card.get("model-index"), []
    if index:
        results = index[0].get("results", []) if isinstance(index, list) and isinstance(index[0], dict) else None
        if not isinstance(results, list):
            return None
    for result in results:
        found = result.get("metrics") if isinstance(result, dict) else None
        if not isinstance(found, list) or not all(isinstance(x, dict) and shown_text(x.get("type")) and finite(x.get("value"))
                                                  for x in found):
            return None
        metrics.update({x["type"]: x["value"] for x in found})
    efficiency = {k: zoo[k] for k in CARD_EFFICIENCY if k in zoo}
    if not all(finite(v) for v in efficiency.values()):
        return None
    return {
        "name": zoo["name"], "repo_id": repo_id, "base_model": base, "task": zoo["task"], "method": zoo["method"],
        "revision": revision,
        "task_type": zoo.get("task_type") or ("CAUSAL_LM" if card.get("pipeline_tag") in CAUSAL_PIPELINES else "SEQ_CLS"),
        "labels": labels, "metrics": {"validation": metrics}, "efficiency": efficiency, "private": private,
    }


def _transport_errors() -> tuple:
    """What huggingface_hub lets through when a request fails: its HTTP errors, OS errors and the
    transport errors of its HTTP client (httpx2 in huggingface_hub 2.x, httpx before)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list = [HfHubHTTPError, OSError, ValueError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


@dataclass(frozen=True)
class Pushed:
    name: str
    base_model: str
    revision: str
    location: str  # a folder (local hub) or the repo URL (Hugging Face Hub)
    backend: str


def token_configured() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None


def choose(kind: str | None = None) -> str:
    """``hf`` or ``local``: the explicit choice, else $ZOO_HUB, else ``hf`` when a token is configured."""
    kind = kind or os.environ.get("ZOO_HUB") or ("hf" if token_configured() else "local")
    if kind not in ("hf", "local"):
        raise ZooError(f"unknown hub {kind!r}: use 'hf' (the Hugging Face Hub) or 'local' (the local hub)")
    return kind


def get_hub(kind: str | None = None):
    """The backend for ``kind`` (see module docstring)."""
    return HFHub() if choose(kind) == "hf" else LocalBackend()


def parse_repo(ref: str) -> tuple[str, str | None] | None:
    """``ORG/NAME[@REV]`` -> (repo id, revision); None for a short name (no ``/``); BadInput for anything else.

    >>> parse_repo("alice/sst2-lora@v1"), parse_repo("sst2-lora")
    (('alice/sst2-lora', 'v1'), None)
    """
    if not isinstance(ref, str):
        raise BadInput(f"an adapter is named by a string, not {type(ref).__name__}")
    if "/" not in ref:
        return None
    repo, at, rev = ref.partition("@")
    if repo.count("/") != 1 or repo.startswith("."):
        raise BadInput(f"adapter {ref[:80]!r} is neither a plain name (sst2-lora) nor a Hub repo id ORG/NAME[@REVISION]; "
                       "to load a folder use zoo.serve.loading.load_folder")
    check(repo_problem(repo), "adapter repo id", repo, BadInput)
    if at:
        check(revision_problem(rev), "revision", rev, BadInput)
    return repo, rev or None


class LocalBackend:
    """The local hub with the Hub backend's interface."""

    kind = "local"

    def __init__(self, hub: LocalHub | None = None):
        self.hub = hub or LocalHub()

    def describe(self) -> str:
        return f"the local hub ({self.hub.root})"

    def push(self, folder, *, repo_id: str | None = None, private: bool = False) -> Pushed:
        p = self.hub.push(folder)
        return Pushed(p.name, p.base_model, p.revision, str(p.path), self.kind)

    def find(self, base: str, name: str) -> Path:
        return self.hub.find(base, name)

    def list(self, **filters) -> list[dict]:
        return self.hub.list(**filters)


class HFHub:
    """The Hugging Face Hub (or any server speaking its API at ``HF_ENDPOINT``, e.g. ``zoo hub serve``)."""

    kind = "hf"

    def __init__(self, endpoint: str | None = None, token: str | None = None):
        from huggingface_hub import HfApi, get_token

        self.endpoint = (endpoint or hub_endpoint()).rstrip("/")
        self._token = token or get_token()
        self.api = HfApi(endpoint=self.endpoint, token=self._token)

    def describe(self) -> str:
        return f"the Hugging Face Hub at {self.endpoint}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _fail(self, action: str, error: Exception, hint: str = "") -> HubError:
        reason = self._scrub(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        return HubError(f"{action} on {self.describe()} failed: {reason}{hint}")

    def _check_reachable(self, action: str) -> None:
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            raise HubError(f"cannot {action}: HF_HUB_OFFLINE is set. Unset it, or use --hub local for the local hub")
        if not hub_reachable():
            raise HubError(
                f"cannot {action}: {self.describe()} cannot be reached"
                + (" (chosen because a Hugging Face token is configured)" if self._token else "")
                + "; use --hub local (or ZOO_HUB=local) for the local hub"
            )

    # ------------------------------------------------------------------ publish
    def push(self, folder, *, repo_id: str | None = None, private: bool = False) -> Pushed:
        """One commit holding the whole adapter folder; returns the new revision (commit sha)."""
        folder = Path(folder)
        record = read_record(folder)
        check_safe_folder(folder, record.weights)
        files = published_files(folder, record)
        check_finite_weights(folder, record)
        if repo_id is not None:
            check(repo_problem(repo_id), "repo id", repo_id, BadInput)
        self._check_reachable("push")
        if not self._token:
            raise HubError("pushing to the Hugging Face Hub needs a token: set HF_TOKEN or run `hf auth login`")
        try:
            if repo_id is None:
                repo_id = f"{self.api.whoami()['name']}/{record.name}"
            self.api.create_repo(repo_id, private=private, exist_ok=True)
            # One commit whose head is exactly this file set: what the previous push had and this one has
            # not (another method's adapter_config.json...) is deleted in the same commit.
            commit = self.api.upload_folder(
                folder_path=str(folder), repo_id=repo_id,
                commit_message=f"adapter-zoo: {record.name} ({record.method} on {record.base_model})",
                allow_patterns=files, delete_patterns="*",
            )
        except _transport_errors() as e:
            raise self._fail(f"pushing {record.name} to {repo_id or 'a new repo'}", e,
                             "; nothing was published (a push is one commit); run the push again") from None
        return Pushed(record.name, record.base_model, commit.oid, f"{self.endpoint}/{repo_id}", self.kind)

    # ------------------------------------------------------------------ the catalogue (zoo push --all)
    def _call(self, action: str, call, *args, **kwargs):
        """``call(*args, **kwargs)`` of huggingface_hub, its failures raised as a HubError that names ``action``."""
        try:
            return call(*args, **kwargs)
        except _transport_errors() as e:
            raise self._fail(action, e) from None

    def user(self) -> str:
        """The user the token acts as (HubError without a token or a Hub)."""
        self._check_reachable("publish")
        if not self._token:
            raise HubError("publishing to the Hugging Face Hub needs a token: set HF_TOKEN or run `hf auth login`")
        return self._call("asking the Hub whose token this is", self.api.whoami)["name"]

    def file_hashes(self, repo_id: str) -> dict[str, tuple[str, str]] | None:
        """path -> how the Hub names its content, for every file at the head of a model repo: ("sha256", hex)
        for LFS and Xet files, ("git", blob sha1) for the others. None when the repo does not exist."""
        from huggingface_hub.errors import RepositoryNotFoundError
        from huggingface_hub.hf_api import RepoFile

        try:
            entries = list(self.api.list_repo_tree(repo_id, recursive=True))
        except RepositoryNotFoundError:
            return None
        except _transport_errors() as e:
            raise self._fail(f"reading the files of {repo_id}", e) from None
        return {e.path: ("sha256", e.lfs.sha256) if e.lfs else ("git", e.blob_id)
                for e in entries if isinstance(e, RepoFile)}

    def space_exists(self, repo_id: str) -> bool:
        return self._call(f"looking for the Space {repo_id}", self.api.repo_exists, repo_id, repo_type="space")

    def collections_of(self, owner: str) -> list:
        """The owner's collections (huggingface_hub ``Collection``s; a listing shows only their first items)."""
        return self._call(f"listing the collections of {owner}", lambda: list(self.api.list_collections(owner=owner)))

    def collection(self, slug: str):
        return self._call(f"reading the collection {slug}", self.api.get_collection, slug)

    def create_collection(self, title: str, *, description: str, private: bool = False):
        """The owner's collection of this title, created if there is none."""
        return self._call(f"creating the collection {title!r}", self.api.create_collection, title,
                          description=description, private=private, exists_ok=True)

    def update_collection(self, slug: str, *, title: str, description: str):
        return self._call(f"retitling the collection {slug}", self.api.update_collection_metadata, slug, title=title,
                          description=description)

    def add_to_collection(self, slug: str, item_id: str, item_type: str, note: str | None = None):
        return self._call(f"adding {item_id} to the collection {slug}", self.api.add_collection_item, slug, item_id,
                          item_type, note=note, exists_ok=True)

    def note_collection_item(self, slug: str, item_object_id: str, note: str) -> None:
        self._call(f"updating a note in the collection {slug}", self.api.update_collection_item, slug,
                   item_object_id, note=note)

    def remove_from_collection(self, slug: str, item_object_id: str) -> None:
        self._call(f"removing an item from the collection {slug}", self.api.delete_collection_item, slug,
                   item_object_id, missing_ok=True)

    # ------------------------------------------------------------------ discover
    def list(self, *, base: str | None = None, task: str | None = None, method: str | None = None) -> list[dict]:
        """Adapter-zoo adapters on the Hub, filtered by base model, task and method (from their cards)."""
        self._check_reachable("list adapters")
        models, seen = [], set()
        for spelling in legacy_ids(base) if base else [None]:  # cards name the canonical id, older ones a legacy id
            tags = ["adapter-zoo"] + ([f"base_model:{spelling}"] if spelling else []) + ([method] if method else [])
            try:
                found = list(self.api.list_models(filter=tags, cardData=True, limit=1000))
            except _transport_errors() as e:
                raise self._fail("listing adapters", e) from None
            models += [m for m in found if m.id not in seen]
            seen.update(m.id for m in found)
        out = []
        for m in models:
            card = (m.card_data.to_dict() if m.card_data else {}) or {}
            row = listing_row(card, m.id, m.sha, bool(m.private))
            if row is None:
                continue  # strangers' card metadata: a card that is not the zoo's shape is never listed or printed
            if (task and row["task"] != task) or (method and row["method"] != method):
                continue
            out.append(row)
        return out

    def find(self, base: str, name: str) -> Path:
        """A short name (``sst2-lora``) through the index, or ``ORG/NAME[@REV]``: the downloaded folder."""
        parsed = parse_repo(name)
        if parsed:
            folder = self.pull(*parsed, base=base)
        else:
            matches = [e for e in self.list(base=base) if e["name"] == name]
            if not matches:
                raise AdapterNotFound(f"no adapter-zoo adapter {name!r} for base {base!r} on {self.describe()}")
            if len(matches) > 1:
                repos = ", ".join(e["repo_id"] for e in matches)
                raise AdapterNotFound(f"{len(matches)} adapters are named {name!r} for {base!r} ({repos}); "
                                      "load one by its repo id")
            folder = self.pull(matches[0]["repo_id"], matches[0]["revision"], base=base)
        record = read_record(folder)
        if not same_base(record.base_model, base):
            raise AdapterBaseMismatch(f"adapter {name!r} was trained on {record.base_model!r}, not {base!r}")
        return folder

    def _published_set(self, repo_id: str, revision: str | None, base: str | None = None) -> tuple[str, list[str]]:
        """(commit, file names) to download of a stranger's repo: its top-level files that a push publishes
        (``published_files``' allow-list; a pattern like ``*.json`` also matches files in subfolders, which no push
        writes), of the safetensors files only the one its zoo.json names, each side file at most
        ``MAX_SIDE_FILE_BYTES``, the weights within ``weights_limit`` of the base and the disk's free space. An
        adapter for another base than ``base`` (when given) is refused after zoo.json alone. Anything else in the
        repo is never downloaded."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.hf_api import RepoFile

        # zoo.json first, at the revision asked for (the cache records which commit 'main' is, for offline loads);
        # everything after reads that one commit, whatever is pushed meanwhile
        top = {e.path: e.size for e in self.api.list_repo_tree(repo_id, revision=revision, recursive=False)
               if isinstance(e, RepoFile)}
        if top.get("zoo.json") is None or top["zoo.json"] > MAX_SIDE_FILE_BYTES:
            raise AdapterNotFound(f"{repo_id} is not an adapter-zoo adapter: it has no zoo.json (of at most "
                                  f"{MAX_SIDE_FILE_BYTES:,} bytes)")
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=["zoo.json"],
                                        endpoint=self.endpoint, token=self._token))
        sha = folder.name  # the snapshot folder is named by its commit
        record = read_record(folder)
        if base is not None and not same_base(record.base_model, base):  # refused before its weights come down
            raise AdapterBaseMismatch(f"{repo_id} was trained on {record.base_model!r}, not {base!r}")
        if sha != revision:  # the listing above was of a branch or tag: list the commit zoo.json came from
            top = {e.path: e.size for e in self.api.list_repo_tree(repo_id, revision=sha, recursive=False)
                   if isinstance(e, RepoFile)}
        files = {name: size for name, size in top.items() if published_name(name)}
        big = sorted(name for name, size in files.items()
                     if not name.endswith(".safetensors") and (size or 0) > MAX_SIDE_FILE_BYTES)
        if big:
            raise UnsafeAdapter(f"{repo_id}: {big[0]} is {files[big[0]]:,} bytes; an adapter's "
                                f"{'records and cards' if big[0].endswith(('.json', '.md')) else 'side files'} "
                                f"are at most {MAX_SIDE_FILE_BYTES:,}")
        weights = record.weights
        if weights is not None:
            if weights not in files:
                raise UnsafeAdapter(f"{repo_id}: zoo.json names the weights {weights!r}, which the repo does not hold")
            # the caller's base; without one (`zoo pull`), the record's, which its author chose, so a bound only as
            # tight as the base it names (a stranger's path on this machine is never looked at)
            measured = base
            if measured is None and not Path(record.base_model).is_absolute():
                measured = record.base_model
            self._check_weights_size(repo_id, measured, weights, files[weights] or 0, folder)
        return sha, sorted(n for n in files if not n.endswith(".safetensors") or n == weights)

    def _base_weight_bytes(self, base: str) -> int | None:
        """The bytes of a base's own weights: a local folder's files, or its Hub repo's top-level listing (None when
        neither can be read: the bound then falls back to the disk's free space)."""
        if Path(base).is_absolute():
            return _folder_weight_bytes(Path(base))
        from huggingface_hub.hf_api import RepoFile
        try:
            return _one_format_bytes({e.path: e.size or 0 for e in self.api.list_repo_tree(canonical_base(base),
                                      recursive=False) if isinstance(e, RepoFile)})
        except Exception:  # noqa: BLE001 - a base we cannot list (gated, renamed, offline): no base-relative bound
            return None

    def listed_base_bytes(self, base: str) -> int:
        """The bytes that loading ``base``, a Hub id that a listing (a stranger's card) names, can bring down, read
        from its repo's listing before anything is downloaded: every file but the other formats' weights, which
        transformers does not fetch when the safetensors ones are there. Raises UnsafeAdapter when its weights are
        not in safetensors under transformers' own names (a stranger does not choose a pickle for this machine to
        open) or its repo cannot be listed (gated, missing)."""
        from huggingface_hub.hf_api import RepoFile
        repo = canonical_base(base)
        try:
            files = {e.path: e.size or 0 for e in self.api.list_repo_tree(repo, recursive=True)
                     if isinstance(e, RepoFile)}
        except Exception as e:  # noqa: BLE001 - gated, missing, unreachable: nothing to measure, nothing loaded
            raise UnsafeAdapter(f"its base {repo!r} could not be listed on {self.describe()} "
                                f"({type(e).__name__}), so its size is unknown") from None
        if not {"model.safetensors", "model.safetensors.index.json"} & set(files):
            raise UnsafeAdapter(f"its base {repo!r} has no model.safetensors: a base named by a Hub listing is loaded "
                                "from safetensors only (an operator may allow it with ZOO_BASES)")
        return sum(v for k, v in files.items() if not k.endswith(_UNFETCHED_SUFFIXES))

    def _check_weights_size(self, repo_id: str, base: str | None, weights: str, size: int, folder: Path) -> None:
        """Refuse, before a byte of it is fetched, a weights file larger than its base can need (``weights_limit``)
        or larger than the cache's disk can take with ``DISK_HEADROOM_BYTES`` to spare: a stranger's repo may not
        fill the disk a running server writes to."""
        limit = weights_limit(self._base_weight_bytes(base)) if base is not None else None
        if limit is not None and size > limit:
            raise UnsafeAdapter(f"{repo_id}: its weights file is {size:,} bytes; an adapter of {base} needs at most "
                                f"{limit:,} (twice the base's own weights, plus a head)")
        free = shutil.disk_usage(folder).free
        if size > free - DISK_HEADROOM_BYTES and not (folder / weights).is_file():  # not already in the cache
            raise HubError(f"{repo_id}: its weights file is {size:,} bytes and the cache's disk has {free:,} free; "
                           f"free some space (a pull leaves {DISK_HEADROOM_BYTES:,} bytes to spare) or set "
                           "HF_HUB_CACHE to a larger disk")

    def pull(self, repo_id: str, revision: str | None = None, *, base: str | None = None) -> Path:
        """Download an adapter repo into the Hugging Face cache (or find it there when offline); with ``base``, an
        adapter for another base is refused before its weights are downloaded."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        patterns = list(PUBLISHED_PATTERNS)  # what a push publishes; never a pickle
        offline = not hub_reachable()
        try:
            if not offline:  # exactly the files a push publishes, sizes checked before a byte is fetched
                revision, patterns = self._published_set(repo_id, revision, base)
            path = snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=offline,
                                     endpoint=self.endpoint, token=self._token)
        except LocalEntryNotFoundError:
            raise HubError(f"{repo_id} is not in the local cache and {self.describe()} cannot be reached; "
                           "connect once to download it") from None
        except ZooError:
            raise  # a refusal of the repo (its base, its files): said as it is, not as a failed download
        except _transport_errors() as e:
            raise self._fail(f"downloading {repo_id}", e) from None
        folder = Path(path)
        read_record(folder)  # an adapter-zoo adapter, not some other repo
        return folder
