"""Registry benchmark: mixed-adapter throughput, memory overhead, switch and cold-load latency.

    .venv/bin/python bench/registry.py [--requests 640] [--repeats 3] [--lora recipe|peft-default]

On the real MiniLM base (sentence-transformers/all-MiniLM-L6-v2), SST-2 validation sentences, batches
of 32 (the data mirror: ZOO_DATA_DIR, else ../shared/data). Adapters are built with the shipped
recipes' method configs (LoRA r=16 on q/k/v/dense, IA3, prompt tuning and P-tuning with 20 virtual
tokens, prefix tuning with 20; --lora peft-default: LoRA r=8 on query/value) and random weights
(zoo.testing.make_adapter): serving cost does not depend on what the weights learned.
Every figure is a ratio against a baseline measured in the same run on the same inputs:

- lora_mixed_vs_base: a stream of requests, each for a random one of 6 LoRA/IA3 adapters, through
  the registry, over the bare base model (no adapter) on the same batches;
- all_methods_vs_grouped_peft: a stream with a random adapter among all five methods per request
  through the registry, over plain PEFT given every adapter's requests grouped in advance into full
  batches on that adapter's own PeftModel;
- memory_overhead: RSS growth of a fresh process that loads the registry with all adapters and reads
  every weight once (see memory_child), over the bytes of the base and adapter files, minus 1; and
  the same for one PEFT model per (PEFT type, label count), for contrast;
- switch_ms: median extra time to answer one request for a different resident adapter than the
  previous request, over the same request for the same adapter;
- cold_load_ms: median time to add an adapter from the local hub;
- for reference, on a stream over 3 LoRA adapters with equal heads (the case PEFT can mix):
  peft_adapter_names_lora_vs_base (PEFT's own mixed batch) and registry_lora_vs_base.
The last line is one JSON object with those keys.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, free_port, start_zoo  # noqa: E402,F401  (sets the environment: offline, the data mirror)

BASE = "sentence-transformers/all-MiniLM-L6-v2"
# name, recipe providing the method config, label count
ADAPTERS = [
    ("sst2-lora", "sst2_lora", 2), ("tweet-emotion-lora", "sst2_lora", 4), ("tweet-emoji-lora", "sst2_lora", 20),
    ("sst2-ia3", "sst2_ia3", 2), ("tweet-emotion-ia3", "sst2_ia3", 4), ("tweet-emoji-ia3", "sst2_ia3", 20),
    ("sst2-prompt-tuning", "sst2_prompt_tuning", 2), ("tweet-emotion-p-tuning", "sst2_p_tuning", 4),
    ("sst2-prefix-tuning", "sst2_prefix_tuning", 2),
]
DELTA = [a[0] for a in ADAPTERS[:6]]
ALL = [a[0] for a in ADAPTERS]
# For the reference row only: PEFT's own mixed batch (adapter_names=) needs LoRA adapters with equal heads.
PEFT_MIX = [("lora-a", "sst2_lora", 2), ("lora-b", "sst2_lora", 2), ("lora-c", "sst2_lora", 2)]


def build_hub(hub_root: Path, lora: str = "recipe") -> dict[str, Path]:
    from peft import LoraConfig

    from zoo.hub.local import LocalHub
    from zoo.config.recipe import load_recipe
    from zoo.testing import make_adapter

    hub = LocalHub(hub_root)
    folders = {}
    for seed, (name, recipe, n) in enumerate(ADAPTERS + PEFT_MIX):
        method = load_recipe(ROOT / "recipes" / f"{recipe}.py").method
        if recipe == "sst2_lora" and lora == "peft-default":
            method = LoraConfig(task_type="SEQ_CLS")  # r=8, alpha 8, query and value only (PEFT's BERT default)
        folder = make_adapter(BASE, hub_root.parent / "src" / name, name=name, method=method,
                              labels=[f"l{i}" for i in range(n)], seed=seed, scale=0.05, max_length=128)
        folders[name] = hub.push(folder).path
    return folders


def sentences(n: int) -> list[str]:
    from zoo.data.sources import data_dir
    from zoo.data.tasks import get_task, load_split

    ds = load_split(get_task("glue/sst2"), "validation", data_dir=data_dir(None))
    texts = list(ds["text"])
    rng = random.Random(0)
    return [texts[rng.randrange(len(texts))] for _ in range(n)]


def batches(items, size=32):
    return [items[i:i + size] for i in range(0, len(items), size)]


def interleaved(fns, repeats: int, items=(None,)) -> list[float]:
    """Total time of each fn over ``items``: per item, the fastest of ``repeats`` runs taken in turn.

    Alternating the contenders item by item puts both under the same machine noise (this is a
    shared 2-core VM: back-to-back whole runs drift by 10 %), and the minimum drops interruptions.
    """
    totals = [0.0] * len(fns)
    for item in items:
        best = [float("inf")] * len(fns)
        for _ in range(repeats):
            for k, fn in enumerate(fns):
                t = time.perf_counter()
                fn() if item is None else fn(item)
                best[k] = min(best[k], time.perf_counter() - t)
        totals = [a + b for a, b in zip(totals, best)]
    return totals


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _touch(tensors) -> None:
    """Read every element once, so that memory-mapped weights count as resident (as once served)."""
    import torch

    with torch.inference_mode():
        for t in tensors:
            float(t.float().sum()) if t.numel() else None


def _warm_code_paths(resolved) -> None:
    """Load and run a tiny model of the base's architecture once, then drop it: library code pages and
    lazy imports (the safetensors extension, the modeling module) are then resident before the
    baseline reading, for both contenders, and are not counted as model memory."""
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(resolved.path)
    for key, value in (("num_hidden_layers", 1), ("hidden_size", 32), ("intermediate_size", 64),
                       ("num_attention_heads", 2), ("vocab_size", 128)):
        if hasattr(config, key):
            setattr(config, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp)
        model = AutoModelForSequenceClassification.from_pretrained(tmp)
        with torch.inference_mode():
            model(input_ids=torch.tensor([[1, 2, 3]]))
        del model


def memory_child(kind: str, hub_root: str, folders: dict) -> None:
    """Run in a fresh process: print RSS growth of holding the base and every adapter, as JSON.

    The baseline is taken after the libraries are imported, a tokenizer of the base is loaded (text
    processing, needed by any server) and a tiny model of the same architecture was loaded and run
    once (library code, not model memory). Then everything is loaded and every weight is read once:
    transformers maps safetensors files lazily, so an unread weight would not count. Activations of
    serving are not counted for either contender.
    """
    import gc

    import peft  # noqa: F401  (imported before the baseline reading, for both kinds)
    import torch  # noqa: F401
    import transformers
    from transformers import AutoTokenizer

    from zoo.hub.local import LocalHub
    from zoo.models.classifier import load_base_classifier
    from zoo.serve.registry import Zoo
    from zoo.data.sources import resolve_model

    resolved = resolve_model(BASE)
    AutoTokenizer.from_pretrained(resolved.path)
    transformers.logging.set_verbosity_error()
    _warm_code_paths(resolved)
    gc.collect()
    before = rss_bytes()
    keep = []
    if kind == "registry":
        z = Zoo(BASE, hub=LocalHub(hub_root))
        steps = {"zoo": rss_bytes() - before}
        _touch(z.model.parameters())
        steps["touched"] = rss_bytes() - before
        for name in ALL:
            z.add(name)
        steps["adapters"] = rss_bytes() - before
        print(json.dumps(steps), file=sys.stderr)
        for name in ALL:
            weights = z._get(name)
            _touch([t for d in weights.linear.values() for t in d[1:] if isinstance(t, torch.Tensor)])
            _touch(weights.head.parameters())
            _touch([t for t in (weights.prompt, weights.prefix) if t is not None])
        keep.append(z)
        models = 1
    else:
        from peft import PeftModel

        groups: dict[tuple, list[str]] = {}
        for name, _, n in ADAPTERS:
            peft_type = json.loads((Path(folders[name]) / "adapter_config.json").read_text())["peft_type"]
            groups.setdefault((peft_type, n), []).append(name)
        for (_, n), names in groups.items():
            model, _ = load_base_classifier(resolved, tuple(f"l{i}" for i in range(n)))
            model = PeftModel.from_pretrained(model, folders[names[0]], adapter_name=names[0])
            for other in names[1:]:
                model.load_adapter(folders[other], adapter_name=other)
            _touch(model.parameters())
            keep.append(model.eval())
        models = len(groups)
    gc.collect()
    print(json.dumps({"growth": rss_bytes() - before, "models": models}))


def measure_memory(kind: str, hub_root: Path, folders: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", kind, "--hub", str(hub_root),
                          "--folders", json.dumps({k: str(v) for k, v in folders.items()})],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=640, help="requests per stream (multiple of 32)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per measurement; the best is kept")
    ap.add_argument("--lora", choices=["recipe", "peft-default"], default="recipe",
                    help="LoRA adapters as recipes/sst2_lora.py (r=16 on all 37 Linear layers) or PEFT's default "
                         "for BERT (r=8 on query and value)")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--hub", help=argparse.SUPPRESS)
    ap.add_argument("--folders", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.hub, json.loads(args.folders))
        return

    import torch
    from peft import PeftModel

    from zoo.hub.local import LocalHub
    from zoo.models.classifier import load_base_classifier
    from zoo.serve.registry import Zoo
    from zoo.data.sources import resolve_model

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-registry-"))
    hub_root = work / "hub"
    print(f"building {len(ADAPTERS)} adapters on {BASE} in {work} ...", flush=True)
    folders = build_hub(hub_root, args.lora)
    print(f"LoRA adapters: {args.lora} config", flush=True)
    texts = sentences(args.requests)
    rng = random.Random(1)
    resolved = resolve_model(BASE)

    z = Zoo(BASE, hub=LocalHub(hub_root))
    for name in ALL:
        z.add(name)
    tokenizer = z.tokenizer
    bare, _ = load_base_classifier(resolved, ("a", "b"))
    bare.eval()

    def bare_batch(item):
        with torch.inference_mode():
            enc = tokenizer(item[0], truncation=True, max_length=128, padding=True, return_tensors="pt")
            bare(**enc)

    def registry_batch(item):
        z.logits(item[0], adapters=item[1])

    def run_registry(names):
        def go():
            for chunk, chunk_names in zip(batches(texts), batches(names)):
                z.logits(chunk, adapters=chunk_names)
        return go

    delta_names = [rng.choice(DELTA) for _ in texts]

    # Sanity: the registry agrees with PEFT on a few mixed requests (a benchmark of wrong answers is worthless).
    peft_models = {}
    for name, _, n in ADAPTERS:
        model, _ = load_base_classifier(resolved, tuple(f"l{i}" for i in range(n)))
        peft_models[name] = PeftModel.from_pretrained(model, str(folders[name])).eval()
    all_names = [rng.choice(ALL) for _ in texts]
    check = z.logits(texts[:32], adapters=all_names[:32])
    with torch.inference_mode():
        for text, name, got in zip(texts[:32], all_names[:32], check):
            enc = tokenizer([text], truncation=True, max_length=128, return_tensors="pt")
            want = peft_models[name](**enc).logits[0].numpy()
            assert abs(want - got).max() < 1e-4, (name, want, got)
    print("registry == PEFT on 32 mixed requests: ok", flush=True)

    items = list(zip(batches(texts), batches(delta_names)))
    interleaved([bare_batch, registry_batch], 1, items[:2])  # warm-up
    t_bare, t_mixed = interleaved([bare_batch, registry_batch], args.repeats, items)
    n = len(texts)
    print(f"bare base:                       {n / t_bare:8.1f} req/s")
    print(f"registry, random LoRA/IA3 of 6:  {n / t_mixed:8.1f} req/s")
    lora_mixed_vs_base = t_bare / t_mixed

    def run_grouped_peft():
        by_adapter: dict[str, list[str]] = {}
        for text, name in zip(texts, all_names):
            by_adapter.setdefault(name, []).append(text)
        with torch.inference_mode():
            for name, items in by_adapter.items():
                for chunk in batches(items):
                    enc = tokenizer(chunk, truncation=True, max_length=128, padding=True, return_tensors="pt")
                    peft_models[name](**enc)

    interleaved([run_grouped_peft, run_registry(all_names)], 1)  # warm-up
    t_peft, t_all = interleaved([run_grouped_peft, run_registry(all_names)], args.repeats + 2)
    print(f"PEFT, grouped per adapter:       {n / t_peft:8.1f} req/s")
    print(f"registry, random of all 5 kinds: {n / t_all:8.1f} req/s")
    all_methods_vs_grouped_peft = t_peft / t_all

    # Reference: PEFT's own mixed LoRA batch (adapter_names=) against the registry on the same stream.
    model, _ = load_base_classifier(resolved, ("l0", "l1"))
    mix = PeftModel.from_pretrained(model, str(folders["lora-a"]), adapter_name="lora-a").eval()
    for name, _, _ in PEFT_MIX[1:]:
        mix.load_adapter(str(folders[name]), adapter_name=name)
    for name, _, _ in PEFT_MIX:
        z.add(name)
    mix_names = [rng.choice([m[0] for m in PEFT_MIX]) for _ in texts]
    mix_items = list(zip(batches(texts), batches(mix_names)))

    def peft_mixed_batch(item):
        with torch.inference_mode():
            enc = tokenizer(item[0], truncation=True, max_length=128, padding=True, return_tensors="pt")
            mix(**enc, adapter_names=item[1])

    check = z.logits(mix_items[0][0], adapters=mix_items[0][1])
    with torch.inference_mode():
        enc = tokenizer(mix_items[0][0], truncation=True, max_length=128, padding=True, return_tensors="pt")
        want = mix(**enc, adapter_names=mix_items[0][1]).logits.numpy()
    assert max(abs(w - g).max() for w, g in zip(want, check)) < 1e-4
    interleaved([bare_batch, peft_mixed_batch, registry_batch], 1, mix_items[:2])
    t_bare3, t_peft_mix, t_reg_mix = interleaved([bare_batch, peft_mixed_batch, registry_batch], args.repeats, mix_items)
    print(f"random LoRA of 3 (equal heads): bare {n / t_bare3:.1f} req/s, PEFT adapter_names= {n / t_peft_mix:.1f}, "
          f"registry {n / t_reg_mix:.1f}")
    for name, _, _ in PEFT_MIX:
        z.remove(name)

    # Switch latency: one request for adapter X after one for X (resident, same) vs after one for Y.
    same, switched = [], []
    with torch.inference_mode():
        for i in range(60):
            text = texts[i]
            x, y = ALL[i % len(ALL)], ALL[(i + 1) % len(ALL)]
            z.logits([text], adapter=x)
            t = time.perf_counter(); z.logits([text], adapter=x); same.append(time.perf_counter() - t)
            z.logits([text], adapter=y)
            t = time.perf_counter(); z.logits([text], adapter=x); switched.append(time.perf_counter() - t)
    switch_ms = max(0.0, (statistics.median(switched) - statistics.median(same)) * 1000)
    print(f"one request, same adapter:       {statistics.median(same) * 1000:8.2f} ms; "
          f"after another adapter: {statistics.median(switched) * 1000:.2f} ms")

    cold = []
    for name in ALL:
        z.remove(name)
        t = time.perf_counter(); z.add(name); cold.append(time.perf_counter() - t)
    cold_load_ms = statistics.median(cold) * 1000
    print(f"cold load from the local hub:    {cold_load_ms:8.1f} ms (median of {len(cold)}, max {max(cold) * 1000:.1f})")

    files = Path(resolved.path)
    base_bytes = sum(p.stat().st_size for p in files.glob("*.safetensors"))
    adapter_bytes = sum((Path(folders[name]) / "adapter_model.safetensors").stat().st_size for name in ALL)
    mem_reg = measure_memory("registry", hub_root, folders)
    mem_peft = measure_memory("peft", hub_root, folders)
    denom = base_bytes + adapter_bytes
    memory_overhead = mem_reg["growth"] / denom - 1
    peft_overhead = mem_peft["growth"] / denom - 1
    mib = 1 / 2**20
    print(f"base {base_bytes * mib:.1f} MiB + {len(ADAPTERS)} adapters {adapter_bytes * mib:.1f} MiB; "
          f"RSS growth: registry {mem_reg['growth'] * mib:.1f} MiB, "
          f"PEFT ({mem_peft['models']} models, one per type and label count) {mem_peft['growth'] * mib:.1f} MiB")
    result = {
        "lora_mixed_vs_base": round(lora_mixed_vs_base, 3),
        "all_methods_vs_grouped_peft": round(all_methods_vs_grouped_peft, 3),
        "memory_overhead": round(memory_overhead, 3),
        "memory_overhead_peft_per_type": round(peft_overhead, 3),
        "switch_ms": round(switch_ms, 3),
        "peft_adapter_names_lora_vs_base": round(t_bare3 / t_peft_mix, 3),
        "registry_lora_vs_base": round(t_bare3 / t_reg_mix, 3),
        "cold_load_ms": round(cold_load_ms, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
