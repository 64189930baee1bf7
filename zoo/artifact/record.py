"""The files of a published adapter: which weights files a method writes, the safety checks on a
folder (safetensors only, no pickle), and zoo.json, the record of what the adapter is.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from safetensors import SafetensorError, safe_open

from zoo.config.generation import GENERATION_DEFAULTS, check_generation
from zoo.config.prompts import label_words, prompt_problem
from zoo.data.ids import base_problem, check, name_problem, shown_text
from zoo.data.untrusted import number_problem, read_json
from zoo.errors import UnsafeAdapter, UnsupportedFormat

PEFT_WEIGHTS = "adapter_model.safetensors"
LAST_LAYERS_WEIGHTS = "trained_layers.safetensors"
FULL_WEIGHTS = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def check_safe_folder(folder: Path, weights: str | None) -> None:
    """Refuse pickled weights and missing or unreadable safetensors before anything is loaded.

    ``weights`` None: an entry without weights (in-context learning), which must hold none at all."""
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if weights is None:
        stray = pickles + sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors")
        if stray:
            raise UnsafeAdapter(f"{folder}: zoo.json declares no weights but the folder holds {', '.join(stray)}")
        return
    if not (folder / weights).is_file():
        extra = f"; it holds pickled weights ({', '.join(pickles)}), which the zoo never loads" if pickles else ""
        raise UnsafeAdapter(f"adapter folder {folder} has no {weights}{extra}; re-save it with safetensors")
    try:
        with safe_open(str(folder / weights), framework="pt") as f:
            list(f.keys())
    except (SafetensorError, OSError, ValueError) as e:
        raise UnsafeAdapter(f"{folder / weights} is corrupt or truncated ({e}); publish the adapter again") from None


# What a push publishes (the local hub and the Hub alike) and a pull downloads: the record, the card, its
# plots, configs, tokenizer vocabularies and the record's own weights file. Never a pickle, a hidden
# file, a link (it could point anywhere on the pusher's disk) or anything in a subfolder.
PUBLISHED_PATTERNS = ("*.json", "*.safetensors", "README.md", "*.png", "vocab.txt", "merges.txt")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)


def published_name(name: str) -> bool:
    """A file name a push may publish: plain (no folder, no odd characters) and on the allow-list above."""
    return bool(_FILE_NAME.fullmatch(name)) and any(fnmatch.fnmatchcase(name, p) for p in PUBLISHED_PATTERNS)


def published_files(folder: Path, record: "AdapterRecord") -> list[str]:
    """The names of the files a push of ``folder`` publishes, checked: the allow-list above, and of the
    safetensors files only the record's weights. A link among them is refused (UnsafeAdapter)."""
    out = []
    for path in sorted(Path(folder).iterdir()):
        name = path.name
        if not published_name(name):
            continue
        if name.endswith(".safetensors") and name != record.weights:
            continue
        if path.is_symlink():
            raise UnsafeAdapter(f"{path} is a link; a push publishes plain files only (copy the file into the folder)")
        if path.is_file():
            out.append(name)
    if "zoo.json" not in out:
        raise UnsafeAdapter(f"{folder}: zoo.json is not a plain file")
    return out


def non_finite_tensors(path: Path) -> list[str]:
    """The floating-point tensors of a safetensors file that hold NaN or infinity, read one at a time."""
    import torch  # a push and a training's last check are the only callers; `import zoo`, `zoo list` need no torch

    bad = []
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            tensor = f.get_tensor(key)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad.append(key)
    return bad


def check_finite_weights(folder: Path, record: "AdapterRecord") -> None:
    """Refuse to publish weights that hold NaN or infinity (a run that diverged)."""
    if record.weights is None:
        return
    bad = non_finite_tensors(Path(folder) / record.weights)
    if bad:
        raise UnsafeAdapter(f"{folder}: tensor {bad[0]} of {record.weights} holds NaN or infinite values (the training "
                            "diverged); nothing was published. Train again with a lower train.learning_rate")


_FIELD = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_identity(row, where: str) -> None:
    """An adapter's name and base are safe to use as folder names and to show on a page: zoo.json comes from
    strangers (the rules: ``zoo.data.ids``)."""
    check(name_problem(row.get("name")), f"{where}: adapter name", row.get("name"), UnsafeAdapter)
    check(base_problem(row.get("base_model")), f"{where}: base model", row.get("base_model"), UnsafeAdapter)


FORMAT = "adapter-zoo/1"  # the zoo.json schema this package writes and reads
TASK_TYPES = ("SEQ_CLS", "CAUSAL_LM")
WEIGHT_FILES = (PEFT_WEIGHTS, LAST_LAYERS_WEIGHTS, FULL_WEIGHTS)
MAX_LENGTH_LIMIT = 1 << 20  # no base has more positions; a bigger number is a damaged record
MAX_LABELS = 10_000  # far beyond any task's label set; each label is a column of every answer
_REQUIRED = ("name", "base_model", "task", "method", "labels", "weights")


MAX_SWEEP_POINTS = 1000  # trainings in one grid: the report draws a cell for each (the zoo's own sweeps have 9 and 12)


def _sweep_ok(v) -> bool:
    """A sweep point as zoo.Sweep writes it: names printable, values plain JSON scalars, the point on the grid."""
    scalar = lambda x: x is None or isinstance(x, (bool, int, str)) or isinstance(x, float) and math.isfinite(x)  # noqa: E731
    if not (isinstance(v, dict) and set(v) == {"family", "grid", "point"} and shown_text(v["family"])
            and isinstance(v["grid"], dict) and isinstance(v["point"], dict) and 0 < len(v["grid"]) <= 8):
        return False
    grid_ok = all(shown_text(k) and isinstance(vals, list) and 0 < len(vals) <= 100 and all(map(scalar, vals))
                  for k, vals in v["grid"].items())
    grid_ok = grid_ok and math.prod(len(vals) for vals in v["grid"].values()) <= MAX_SWEEP_POINTS
    return grid_ok and set(v["point"]) == set(v["grid"]) and all(scalar(x) for x in v["point"].values())


@dataclass(frozen=True)
class AdapterRecord:
    """zoo.json, read and checked once: what an adapter is (name, base, task, method, labels, prompt...)
    and what was measured (metrics, efficiency). Every consumer reads these fields; nothing else parses
    zoo.json. Keys a newer minor version adds are kept in ``extra`` and written back unchanged.

        >>> r = AdapterRecord.from_dict({"format": FORMAT, "name": "sst2-lora", "base_model": "org/base",
        ...     "task": "glue/sst2", "method": "lora", "labels": ["negative", "positive"],
        ...     "weights": "adapter_model.safetensors"})
        >>> r.labels, r.causal, r.is_pair, r.max_length
        (('negative', 'positive'), False, False, 128)
        >>> AdapterRecord.from_dict({**r.to_dict(), "format": "adapter-zoo/2"})
        Traceback (most recent call last):
        ...
        zoo.errors.UnsupportedFormat: zoo.json: format 'adapter-zoo/2' is not one this adapter-zoo reads (it reads adapter-zoo/1); upgrade adapter-zoo to load this adapter
    """

    name: str
    base_model: str
    task: str
    method: str
    labels: tuple[str, ...]
    weights: str | None
    format: str = FORMAT
    task_type: str = "SEQ_CLS"
    text_fields: tuple[str, ...] = ("text",)
    max_length: int = 128
    task_description: str = ""
    task_kind: str | None = None
    prompt: dict | None = None            # causal entries: the PromptFormat as a dict
    examples: tuple[dict, ...] = ()       # k-shot entries: the solved examples shown before each input
    verbalizer: dict | None = None        # causal classification: label -> words that count as it
    generation: dict = field(default_factory=dict)   # causal entries: generation settings (see config.generation)
    metrics: dict = field(default_factory=dict)      # {"validation": {...}}
    official_metric: str | None = None
    baseline: dict = field(default_factory=dict)
    efficiency: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    samples: tuple[dict, ...] = ()
    history: tuple[dict, ...] = ()
    training_curve: str | None = None
    data_source: str | None = None
    versions: dict = field(default_factory=dict)
    created: str | None = None
    synthetic: bool = False               # random weights (zoo.testing): for serving tests, never a result
    fingerprint: dict = field(default_factory=dict)  # {"recipe": hash, "data": hash}: a rebuild skips what matches
    sweep: dict | None = None             # a sweep's point: {"family": name, "grid": {key: [values]}, "point": {key: value}}
    extra: dict = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ derived facts
    @property
    def causal(self) -> bool:
        """A causal-LM entry (generation, verbalizer classification, in-context learning), not a classifier."""
        return self.task_type == "CAUSAL_LM"

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    @property
    def validation(self) -> dict:
        """The validation metrics (empty when none were measured)."""
        return dict(self.metrics.get("validation") or {})

    @property
    def label_words(self) -> dict[str, list[str]]:
        """label -> the words that count as that label in a generation (causal classification)."""
        return label_words(self.labels, self.verbalizer)

    # ------------------------------------------------------------------ reading and writing
    @classmethod
    def from_dict(cls, data, where: str = "zoo.json") -> "AdapterRecord":
        """Check a zoo.json dict (strangers write these) and return the record; UnsafeAdapter names what is wrong."""
        if not isinstance(data, dict):
            raise UnsafeAdapter(f"{where}: must hold a JSON object, not {type(data).__name__}")
        fmt = data.get("format", FORMAT)  # records written before the field existed are format 1
        if fmt != FORMAT:
            raise UnsupportedFormat(f"{where}: format {str(fmt)[:40]!r} is not one this adapter-zoo reads (it reads "
                                    f"{FORMAT}); upgrade adapter-zoo to load this adapter")
        for key in _REQUIRED:
            if key not in data:
                raise UnsafeAdapter(f"{where} lacks {key!r}")
        check_identity(data, where)
        problem = number_problem(data)  # a dict built in memory (a Hub card, a test) gets the file's check too
        if problem:
            raise UnsafeAdapter(f"{where}: {problem}")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["extra"] = {k: v for k, v in data.items() if k not in known}

        def need(key, ok, what):
            if key in data and not ok(data[key]):
                raise UnsafeAdapter(f"{where}: {key} must be {what}, got {str(data[key])[:60]!r}")

        # shown on pages and terminals: printable (no control characters, no escape sequences), bounded
        need("task", shown_text, "a task id")
        need("method", shown_text, "a method name")
        need("labels", lambda v: isinstance(v, list) and len(v) <= MAX_LABELS and all(map(shown_text, v))
             and len(set(v)) == len(v), f"a list of at most {MAX_LABELS} distinct label names ([] for free text)")
        if data.get("task_type", "SEQ_CLS") == "SEQ_CLS" and not data["labels"]:
            raise UnsafeAdapter(f"{where}: a classifier (task_type SEQ_CLS) needs its labels; the list is empty")
        need("weights", lambda v: v is None or v in WEIGHT_FILES, f"null or one of {', '.join(WEIGHT_FILES)}")
        need("task_type", lambda v: v in TASK_TYPES, f"one of {', '.join(TASK_TYPES)}")
        need("text_fields", lambda v: isinstance(v, list) and 1 <= len(v) <= 4 and all(
            isinstance(x, str) and _FIELD.fullmatch(x) for x in v), "a list of 1 to 4 field names")
        need("max_length", lambda v: type(v) is int and 1 <= v <= MAX_LENGTH_LIMIT,
             f"an integer from 1 to {MAX_LENGTH_LIMIT}")
        for key in ("metrics", "baseline", "efficiency", "recipe", "versions", "generation", "fingerprint"):
            need(key, lambda v: isinstance(v, dict), "an object")
        for key in ("metrics", "baseline"):  # every listing, the Space and the report read a split's figures
            need(key, lambda v: all(isinstance(x, dict) for x in v.values()),
                 "an object of objects (a split or baseline -> its figures)")
        for key in ("prompt", "verbalizer"):
            need(key, lambda v: v is None or isinstance(v, dict), "an object or null")
        for key in ("examples", "samples", "history"):
            need(key, lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "a list of objects")
        if data.get("prompt") is not None or data.get("examples"):  # formatted for every input of a causal entry
            problem = prompt_problem(data.get("prompt"), data.get("examples") or [])
            if problem:
                raise UnsafeAdapter(f"{where}: {problem}")
        if data.get("verbalizer") is not None:
            need("verbalizer", lambda v: all(k in data["labels"] and isinstance(w, list) and all(map(shown_text, w))
                                             for k, w in v.items()), "label -> list of words, for its own labels")
        need("sweep", lambda v: v is None or _sweep_ok(v),
             "null or {family, grid: {key: [values]}, point: {key: value}} of plain names and values")
        if data.get("generation"):
            # keys a newer zoo.json may add are ignored; the known ones must make sense
            check_generation({k: v for k, v in data["generation"].items() if k in GENERATION_DEFAULTS},
                             UnsafeAdapter, where)
        if data.get("method") == "icl" and data.get("task_type") != "CAUSAL_LM":
            raise UnsafeAdapter(f"{where}: method 'icl' needs task_type 'CAUSAL_LM', not {data.get('task_type')!r}")
        for key in ("labels", "text_fields", "examples", "samples", "history"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict:
        """The zoo.json object (JSON-ready), known fields in a fixed order, then the extra keys."""
        out = {"format": self.format}
        for f in fields(self):
            if f.name in ("format", "extra"):
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return {**out, **self.extra}

    def write(self, folder: Path) -> Path:
        """Write ``folder/zoo.json`` (the one place zoo.json is written)."""
        path = Path(folder) / "zoo.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def replace(self, **changes) -> "AdapterRecord":
        return dataclasses.replace(self, **changes)


def read_record(folder: Path) -> AdapterRecord:
    """The checked record of an adapter folder (its zoo.json), or UnsafeAdapter saying what is wrong."""
    path = Path(folder) / "zoo.json"
    try:
        data = read_json(path, str(path), UnsafeAdapter)  # bounded; NaN, infinity, huge integers refused
    except FileNotFoundError:
        raise UnsafeAdapter(f"{folder} is not an adapter-zoo folder: no zoo.json") from None
    except OSError as e:
        raise UnsafeAdapter(f"{path} cannot be read ({e.strerror or e})") from None
    return AdapterRecord.from_dict(data, str(path))
