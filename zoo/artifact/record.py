"""The files of a published adapter: which weights files a method writes, the safety checks on a
folder (safetensors only, no pickle), and zoo.json, the record of what the adapter is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from safetensors import SafetensorError

from zoo.errors import UnsafeAdapter

PEFT_WEIGHTS = "adapter_model.safetensors"
LAST_LAYERS_WEIGHTS = "trained_layers.safetensors"
FULL_WEIGHTS = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def is_causal(meta: dict) -> bool:
    """A causal-LM entry (generation, verbalizer classification, in-context learning), not a classifier;
    zoo.json says so with PEFT's task type (absent: "SEQ_CLS")."""
    return meta.get("task_type") == "CAUSAL_LM"


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
        from safetensors import safe_open

        with safe_open(str(folder / weights), framework="pt") as f:
            list(f.keys())
    except (SafetensorError, OSError, ValueError) as e:
        raise UnsafeAdapter(f"{folder / weights} is corrupt or truncated ({e}); publish the adapter again") from None


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
