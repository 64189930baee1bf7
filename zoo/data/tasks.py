"""What a task is: where its data lives (Hub and mirror), its labels, its official metric.

Classification tasks load into a ``datasets.Dataset`` with columns ``text``, ``text_pair`` (pair
tasks only) and ``label`` (int). Generation tasks (``kind`` "instruction" or "summarization") load
with their prompt fields (``instruction``/``input``, or ``text``) and the reference ``output``.
Mirror layout: ../shared/data/README.md; tasks not in the shared mirror document their own below.

Example:
    >>> from zoo.data.tasks import get_task, load_split
    >>> task = get_task("glue/sst2"); task.labels
    ('negative', 'positive')

    load_split(task, "validation", data_dir="../shared/data").num_rows   # -> 872
"""

from __future__ import annotations

import hashlib
import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from zoo.data.endpoint import hub_endpoint, hub_reachable
from zoo.data.sources import DATA_DIR_ENV
from zoo.data.sources import data_dir as resolve_data_dir
from zoo.errors import DataNotFound, EmptyDataset, UnknownTask

SPLITS = ("train", "validation", "test")
CARVE_FRACTION = 0.1  # validation carved from train when a mirror has none
CARVE_SEED = 1234  # fixed, independent of the recipe's seed, so every run sees the same validation set


@dataclass(frozen=True)
class Task:
    name: str  # "glue/sst2"
    short: str  # "sst2": the <task> part of adapter names
    hub_dataset: str  # "nyu-mll/glue"
    hub_config: Optional[str]
    hub_columns: tuple[str, ...]  # the Hub's text columns, renamed to text / text_pair
    labels: tuple[str, ...]
    mirror: Callable[[Path, str], Optional[dict]]  # (mirror root, split) -> columns, or None if absent
    mirror_folder: str
    hub_splits: dict = field(default_factory=lambda: {s: s for s in SPLITS})
    official: Optional[str] = None  # "macro_f1", "f1:<label>", "mean_f1:<label>,<label>"
    description: str = ""
    kind: str = "classification"  # or "instruction", "summarization": generation with a causal LM
    columns: tuple[str, ...] = ()  # generation tasks: our names for hub_columns (the last is the reference)

    @property
    def is_pair(self) -> bool:
        return self.kind == "classification" and len(self.hub_columns) == 2

    @property
    def is_generation(self) -> bool:
        return self.kind != "classification"

    @property
    def fields(self) -> tuple[str, ...]:
        """The input fields a prompt template can use (``{text}``, ``{instruction}``...)."""
        if self.is_generation:
            return self.columns[:-1]
        return ("text", "text_pair") if self.is_pair else ("text",)

    @property
    def pipeline_tag(self) -> str:
        return {"summarization": "summarization", "instruction": "text-generation"}.get(self.kind, "text-classification")


def _read_tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _label_ids(values: list[str], labels: tuple[str, ...], path: Path) -> list[int]:
    out = []
    for i, v in enumerate(values):
        v = v.strip()
        if v.isdigit() and int(v) < len(labels):
            out.append(int(v))
        elif v in labels:
            out.append(labels.index(v))
        else:
            raise DataNotFound(f"{path}: row {i + 1} has label {v!r}, expected 0..{len(labels) - 1} or one of {labels}")
    return out


def _glue_reader(files: dict[str, str], columns: tuple[str, ...], labels: tuple[str, ...]):
    def read(folder: Path, split: str):
        if split not in files or not (folder / files[split]).is_file():
            return None
        path = folder / files[split]
        rows = _read_tsv(path)
        missing = [c for c in (*columns, "label") if rows and c not in rows[0]]
        if missing:
            raise DataNotFound(f"{path}: missing column(s) {missing}; expected a header with {list(columns) + ['label']}")
        out = {"text": [r[columns[0]] for r in rows], "label": _label_ids([r["label"] for r in rows], labels, path)}
        if len(columns) == 2:
            out["text_pair"] = [r[columns[1]] for r in rows]
        return out

    return read


def _tweeteval_reader(labels: tuple[str, ...], mapping_up: int = 0):
    prefixes = {"train": "train", "validation": "val", "test": "test"}

    def read(folder: Path, split: str):
        text, lab = folder / f"{prefixes[split]}_text.txt", folder / f"{prefixes[split]}_labels.txt"
        if not text.is_file() or not lab.is_file():
            return None
        mapping = folder.parents[mapping_up - 1] / "mapping.txt" if mapping_up else folder / "mapping.txt"
        if mapping.is_file():
            names = tuple(line.split("\t")[1].strip() for line in mapping.read_text(encoding="utf-8").splitlines() if line.strip())
            if names != labels:
                raise DataNotFound(f"{mapping}: labels {names} differ from the task's {labels}")
        texts = text.read_text(encoding="utf-8").splitlines()
        ids = _label_ids(lab.read_text(encoding="utf-8").split(), labels, lab)
        if len(texts) != len(ids):
            raise DataNotFound(f"{text} has {len(texts)} lines but {lab} has {len(ids)} labels")
        return {"text": texts, "label": ids}

    return read


TASKS: dict[str, Task] = {}


def _register(task: Task) -> None:
    TASKS[task.name] = task


_register(Task(
    name="glue/sst2", short="sst2", hub_dataset="nyu-mll/glue", hub_config="sst2", hub_columns=("sentence",),
    labels=("negative", "positive"), mirror_folder="sst2",
    mirror=_glue_reader({"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}, ("sentence",), ("negative", "positive")),
    description="SST-2 movie-review sentiment (GLUE)",
))
_register(Task(
    name="glue/rte", short="rte", hub_dataset="nyu-mll/glue", hub_config="rte", hub_columns=("sentence1", "sentence2"),
    labels=("entailment", "not_entailment"), mirror_folder="rte",
    mirror=_glue_reader({"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}, ("sentence1", "sentence2"), ("entailment", "not_entailment")),
    description="RTE textual entailment, sentence pairs (GLUE)",
))
_register(Task(
    name="glue/mnli", short="mnli", hub_dataset="nyu-mll/glue", hub_config="mnli", hub_columns=("premise", "hypothesis"),
    labels=("entailment", "neutral", "contradiction"), mirror_folder="mnli",
    mirror=_glue_reader({"train": "train.tsv", "validation": "dev_matched.tsv", "test": "test_matched.tsv"}, ("sentence1", "sentence2"), ("entailment", "neutral", "contradiction")),
    hub_splits={"train": "train", "validation": "validation_matched", "test": "test_matched"},
    description="MNLI 3-way natural language inference (GLUE), matched validation",
))
_TWEETEVAL = {
    "emotion": (("anger", "joy", "optimism", "sadness"), "macro_f1"),
    "hate": (("not-hate", "hate"), "macro_f1"),
    "irony": (("non_irony", "irony"), "f1:irony"),
    "offensive": (("not-offensive", "offensive"), "macro_f1"),
    "emoji": (tuple("❤ 😍 😂 💕 🔥 😊 😎 ✨ 💙 😘 📷 🇺🇸 ☀ 💜 😉 💯 😁 🎄 📸 😜".split()), "macro_f1"),
}
for _name, (_labels, _official) in _TWEETEVAL.items():
    _register(Task(
        name=f"tweet_eval/{_name}", short=f"tweet-{_name}", hub_dataset="cardiffnlp/tweet_eval", hub_config=_name,
        hub_columns=("text",), labels=_labels, mirror_folder=f"tweeteval/{_name}", mirror=_tweeteval_reader(_labels),
        official=_official, description=f"TweetEval {_name}",
    ))
for _target in ("abortion", "atheism", "climate", "feminist", "hillary"):
    _labels = ("none", "against", "favor")
    _register(Task(
        name=f"tweet_eval/stance_{_target}", short=f"tweet-stance-{_target}", hub_dataset="cardiffnlp/tweet_eval",
        hub_config=f"stance_{_target}", hub_columns=("text",), labels=_labels,
        mirror_folder=f"tweeteval/stance/{_target}", mirror=_tweeteval_reader(_labels, mapping_up=1),
        official="mean_f1:against,favor", description=f"TweetEval stance ({_target})",
    ))


def _json_reader(files: dict[str, str], columns: tuple[str, ...]):
    """A JSON list (or JSON lines) of records with ``columns`` as keys."""
    import json

    def read(folder: Path, split: str):
        if split not in files or not (folder / files[split]).is_file():
            return None
        path = folder / files[split]
        text = path.read_text(encoding="utf-8")
        try:
            rows = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise DataNotFound(f"{path}: not valid JSON ({e})") from None
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict) or any(not isinstance(r.get(c, ""), str) for c in columns)), None)
        if bad is not None:
            raise DataNotFound(f"{path}: record {bad} must be an object with string fields {list(columns)}")
        return {c: [r.get(c, "") for r in rows] for c in columns}

    return read


def _renamed(reader, rename: dict[str, str]):
    def read(folder: Path, split: str):
        columns = reader(folder, split)
        return None if columns is None else {rename.get(k, k): v for k, v in columns.items()}

    return read


# Alpaca instruction following: the shared mirror holds a 335-record excerpt (validation carved from train).
_register(Task(
    name="tatsu-lab/alpaca", short="alpaca", hub_dataset="tatsu-lab/alpaca", hub_config=None,
    hub_columns=("instruction", "input", "output"), columns=("instruction", "input", "output"), labels=(),
    mirror_folder="alpaca", mirror=_json_reader({"train": "alpaca_data.json"}, ("instruction", "input", "output")),
    hub_splits={"train": "train"}, kind="instruction",
    description="Alpaca instruction following (instruction, optional input, response)",
))
# CNN/DailyMail: not in the shared mirror. A mirror of your own: cnn_dailymail/{train,validation}.jsonl
# with one {"article": ..., "highlights": ...} object per line.
_register(Task(
    name="abisee/cnn_dailymail", short="cnn-dailymail", hub_dataset="abisee/cnn_dailymail", hub_config="3.0.0",
    hub_columns=("article", "highlights"), columns=("text", "output"), labels=(), mirror_folder="cnn_dailymail",
    mirror=_renamed(_json_reader({"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
                                 ("article", "highlights")), {"article": "text", "highlights": "output"}),
    kind="summarization", description="CNN/DailyMail news summarization (article -> highlights)",
))
# IMDB: not in the shared mirror; the Hub has train/test only, so validation is carved from train.
# A mirror of your own: imdb/train.tsv with a header `label<TAB>text` (0 negative, 1 positive).
_register(Task(
    name="stanfordnlp/imdb", short="imdb", hub_dataset="stanfordnlp/imdb", hub_config=None, hub_columns=("text",),
    labels=("negative", "positive"), mirror_folder="imdb",
    mirror=_glue_reader({"train": "train.tsv", "test": "test.tsv"}, ("text",), ("negative", "positive")),
    hub_splits={"train": "train", "test": "test"}, description="IMDB movie-review sentiment (long reviews)",
))


def get_task(name: str) -> Task:
    """The task called ``name`` (e.g. ``glue/sst2``), or UnknownTask listing the known ones."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise UnknownTask(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def _from_columns(columns: dict):
    import datasets

    return datasets.Dataset.from_dict(columns)


def _load_mirror(task: Task, split: str, root: Path):
    folder = root / task.mirror_folder
    if not folder.is_dir():
        raise DataNotFound(
            f"data set {task.name!r}: no folder {folder} in the data mirror {root}; "
            f"check {DATA_DIR_ENV} / --data-dir (layout: ../shared/data/README.md)"
        )
    if split in ("train", "validation") and task.mirror(folder, "validation") is None:
        train = task.mirror(folder, "train")
        if train is not None:  # no validation file: carve one from train, the same for every run
            kept, held = _carve(train)
            return kept if split == "train" else held
    columns = task.mirror(folder, split)
    if columns is None:
        hint = " (test splits are withheld from the shared mirror; use --split validation)" if split == "test" else ""
        raise DataNotFound(f"data set {task.name!r} has no {split!r} split in {folder}{hint}")
    return columns


def _carve(columns: dict) -> tuple[dict, dict]:
    n = len(next(iter(columns.values())))
    order = list(range(n))
    random.Random(CARVE_SEED).shuffle(order)
    cut = max(1, int(n * CARVE_FRACTION))
    held, kept = sorted(order[:cut]), sorted(order[cut:])
    pick = lambda idx: {k: [v[i] for i in idx] for k, v in columns.items()}  # noqa: E731
    return pick(kept), pick(held)


def _load_hub(task: Task, split: str):
    import datasets

    if not hub_reachable():
        raise DataNotFound(
            f"data set {task.name!r} ({task.hub_dataset}, config {task.hub_config}): the Hub at {hub_endpoint()} "
            f"cannot be reached and no data mirror is set; set {DATA_DIR_ENV}=/path/to/mirror or pass --data-dir"
        )
    if split not in task.hub_splits and split != "test" and "train" in task.hub_splits:
        kept, held = _carve(_load_hub(task, "train").to_dict())  # no such split on the Hub: carve it
        return _from_columns(kept if split == "train" else held)
    if split not in task.hub_splits:
        raise DataNotFound(f"data set {task.name!r} has no {split!r} split on the Hub")
    try:
        ds = datasets.load_dataset(task.hub_dataset, task.hub_config, split=task.hub_splits[split])
    except ValueError as e:
        raise DataNotFound(f"data set {task.name!r}: split {split!r} not available on the Hub: {e}") from None
    if task.is_generation:
        rename = {h: c for h, c in zip(task.hub_columns, task.columns) if h != c}
        return ds.remove_columns([c for c in ds.column_names if c not in task.hub_columns]).rename_columns(rename)
    rename = {task.hub_columns[0]: "text"}
    if task.is_pair:
        rename[task.hub_columns[1]] = "text_pair"
    keep = list(rename) + ["label"]
    return ds.remove_columns([c for c in ds.column_names if c not in keep]).rename_columns(rename)


def data_fingerprint(task: Task, data_dir=None) -> str:
    """What the training data is, as a short hash: the contents of the task's mirror files for training and
    validation (never the test files), or the Hub dataset's id when there is no mirror."""
    root = resolve_data_dir(data_dir)
    if root is None:
        return f"hub:{task.hub_dataset}/{task.hub_config or ''}"
    digest = hashlib.sha256()
    folder = root / task.mirror_folder
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and "test" not in path.name.lower():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load_split(task: Task, split: str, *, data_dir=None, max_samples: Optional[int] = None, seed: int = 42):
    """Load one split as a Dataset (text, [text_pair], label); sample ``max_samples`` with ``seed``."""
    if split not in SPLITS:
        raise DataNotFound(f"unknown split {split!r}; use one of {SPLITS}")
    root = resolve_data_dir(data_dir)
    if root is not None and not root.is_dir():
        raise DataNotFound(f"data mirror {root} does not exist; fix {DATA_DIR_ENV} / --data-dir")
    ds = _from_columns(_load_mirror(task, split, root)) if root is not None else _load_hub(task, split)
    if max_samples is not None and max_samples < ds.num_rows:
        ds = ds.shuffle(seed=seed).select(range(max_samples))
    if ds.num_rows == 0:
        where = root / task.mirror_folder if root is not None else task.hub_dataset
        raise EmptyDataset(f"data set {task.name!r} split {split!r} is empty ({where}, max_samples={max_samples})")
    if task.is_generation:
        return ds
    bad = [i for i, label in enumerate(ds["label"]) if not 0 <= label < len(task.labels)]
    if bad:
        raise DataNotFound(f"data set {task.name!r} split {split!r}: {len(bad)} rows have labels outside 0..{len(task.labels) - 1} (e.g. row {bad[0]}); test labels may be hidden (-1)")
    return ds
