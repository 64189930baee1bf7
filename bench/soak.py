"""Soak: many threads of mixed requests across adapters of every method, for minutes, while adapters are
pushed (new revisions), added, removed, evicted and hostile folders are offered. Counts errors and wrong
answers (both must be 0) and samples the process's RSS.

    .venv/bin/python bench/soak.py [--minutes 10] [--threads 4] [--max-resident 4] [--base MODEL]

On the real MiniLM base (sentence-transformers/all-MiniLM-L6-v2) by default, with SST-2 validation
sentences (the data mirror: ZOO_DATA_DIR, else ../shared/data). Adapters, random weights
(``zoo.testing.make_adapter``), one per method: LoRA, QLoRA-style LoRA, IA3, prompt tuning, P-tuning,
prefix tuning and last-layers on the shared registry (``max_resident`` of them resident, so the
registry evicts and reloads all the time), full fine-tuning and LoHa loaded on their own
(``zoo.load``). Each adapter's answers to a fixed set of sentences are computed first, alone; every
answer during the soak is compared with them (probabilities within 1e-4). With ``--causal`` (the
default) one more thread sends mixed greedy generation requests to LoRA, prompt-tuning and
prefix-tuning adapters on SmolLM2-135M-Instruct, each checked word for word against the adapter's
generation alone through plain PEFT.

Churn, one thread: every ~1 s one of: push an adapter again (a new local-hub revision, same weights)
and reload it through ``zoo.load``; remove an adapter and add it back; add and remove a temporary
adapter; offer a hostile folder (NaN weights, a name that walks out of the hub, a float16 copy that
must be converted), which must be refused (or converted) without disturbing anyone.

RSS: sampled every second; "after warm-up" is the first sample after ``--warmup`` seconds (default
a tenth of the run, at least 30 s). The last line is one JSON object:
requests, rows, generations, errors, wrong, refused_as_expected, churn_events, rss_mb {start, warm, peak, end},
end_vs_warm (end / warm RSS - 1; target within 0.10).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, free_port, start_zoo  # noqa: E402,F401  (sets the environment: offline, the data mirror)

BASE = "sentence-transformers/all-MiniLM-L6-v2"
CAUSAL_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
CAUSAL = ["lora", "prompt-tuning", "prefix-tuning"]
PROMPTS = ["The capital of France is", "Three colours of the rainbow are", "A good film needs", "Once upon a time",
           "The best way to learn is", "Water boils at"]
SHARED = ["lora", "qlora", "ia3", "prompt-tuning", "p-tuning", "prefix-tuning", "last-layers"]
ALONE = ["full", "loha"]
LABELS = {2: ["negative", "positive"], 4: ["anger", "joy", "optimism", "sadness"]}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sentences(n: int) -> list[str]:
    from zoo.data.sources import data_dir
    from zoo.data.tasks import get_task, load_split

    texts = list(load_split(get_task("glue/sst2"), "validation", data_dir=data_dir(None))["text"])
    rng = random.Random(0)
    return [texts[rng.randrange(len(texts))] for _ in range(n)]


def build(base: str, work: Path) -> dict[str, Path]:
    """One published adapter per method; returns name -> source folder."""
    from zoo.hub.local import LocalHub
    from zoo.testing import default_method, make_adapter

    hub, out = LocalHub(), {}
    for seed, method in enumerate(SHARED + ALONE + ["lora"]):
        name = f"soak-{method}" if seed < len(SHARED + ALONE) else "soak-temp"
        n = 4 if seed % 2 else 2
        config = default_method("lora" if method == "qlora" else method)
        folder = make_adapter(base, work / "src" / name, name=name, method=config, labels=LABELS[n], seed=seed,
                              scale=0.05)  # as bench/registry.py: large random deltas make the base chaotic
        if method == "qlora":  # a QLoRA adapter is LoRA tensors with method "qlora" in zoo.json
            record = json.loads((folder / "zoo.json").read_text())
            (folder / "zoo.json").write_text(json.dumps({**record, "method": "qlora"}))
        if name != "soak-temp":
            hub.push(folder)
        out[name] = folder
    return out


def build_causal(work: Path) -> dict[str, Path]:
    """One causal adapter per method on SmolLM2 (random weights, as ``make_adapter`` makes them), published."""
    import torch
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

    from zoo.artifact.record import AdapterRecord
    from zoo.data.sources import resolve_model
    from zoo.hub.local import LocalHub
    from zoo.models.causal import load_base_causal

    configs = {"lora": LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
               "prompt-tuning": PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8),
               "prefix-tuning": PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8)}
    out = {}
    for seed, method in enumerate(CAUSAL):
        model, _ = load_base_causal(resolve_model(CAUSAL_BASE))
        model = get_peft_model(model, configs[method])
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=gen) * (0.02 if method == "lora" else 0.05))
        folder = work / "src" / f"gen-{method}"
        model.save_pretrained(folder, safe_serialization=True)
        AdapterRecord(name=f"gen-{method}", base_model=CAUSAL_BASE, task="tatsu-lab/alpaca", method=method, labels=(),
                      weights="adapter_model.safetensors", task_type="CAUSAL_LM", max_length=256,
                      generation={"max_new_tokens": 8}, synthetic=True).write(folder)
        LocalHub().push(folder)
        out[f"gen-{method}"] = folder
    return out


def hostile(kind: str, src: Path, work: Path) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    folder = work / f"hostile-{kind}-{time.monotonic_ns()}"
    shutil.copytree(src, folder)
    record = json.loads((folder / "zoo.json").read_text())
    state = load_file(str(folder / "adapter_model.safetensors"))
    if kind == "nan":
        key = sorted(state)[0]
        state[key] = torch.full_like(state[key], float("nan"))
    elif kind == "half":
        state = {k: v.half() for k, v in state.items()}
    save_file(state, str(folder / "adapter_model.safetensors"))
    (folder / "zoo.json").write_text(json.dumps({**record, "name": f"soak-{kind}"}))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--max-resident", type=int, default=4)
    ap.add_argument("--warmup", type=float, default=None, help="seconds before the 'warm' RSS sample")
    ap.add_argument("--base", default=BASE)
    ap.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True,
                    help="also generate with causal adapters on SmolLM2 (one more thread)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zoo-soak-"))
    os.environ["ZOO_HOME"] = str(work / "home")

    import numpy as np

    import zoo
    from zoo.errors import AdapterNotFound, BadInput, UnsafeAdapter, ZooError
    from zoo.hub.local import LocalHub
    from zoo.serve.loading import load_folder
    from zoo.serve.registry import shared as shared_registry

    rss = {"start": rss_mb()}
    print(f"building adapters in {work} ...", flush=True)
    folders = build(args.base, work)
    texts = sentences(24)
    # the answers each adapter gives alone, through plain PEFT / transformers (load_folder)
    expected = {}
    for name, folder in folders.items():
        model = load_folder(folder)
        expected[name] = np.array([[r["scores"][label] for label in model.labels] for r in model.predict(texts)])
    # A wrong answer must be visible: two adapters with the same labels differ by far more than the tolerance.
    gap = min(float(np.abs(expected[a] - expected[b]).max()) for a in expected for b in expected
              if a < b and expected[a].shape == expected[b].shape)
    print(f"smallest difference between two adapters' answers: {gap:.4f} (tolerance 1e-4)", flush=True)
    causal_expected, causal_registry, distinct = {}, None, 0
    if args.causal:  # greedy generations of each causal adapter alone, through plain PEFT
        import gc

        for name, folder in build_causal(work).items():
            model = load_folder(folder)
            causal_expected[name] = model.generate(PROMPTS)
            del model
            gc.collect()
        # a wrong route must be visible: how many prompts get different text from every causal adapter
        distinct = sum(len({causal_expected[n][i] for n in causal_expected}) == len(causal_expected)
                       for i in range(len(PROMPTS)))
        print(f"causal adapters: {distinct} of {len(PROMPTS)} prompts answered differently by each", flush=True)
        causal_registry = shared_registry(CAUSAL_BASE)
        for name in causal_expected:
            causal_registry.add(name)
    registry = shared_registry(args.base)  # the one zoo.load uses: a push + zoo.load reloads in it
    registry.max_adapters = args.max_resident
    shared = [f"soak-{m}" for m in SHARED]
    for name in shared:
        registry.add(name)
    alone = {f"soak-{m}": zoo.load(args.base, adapter=f"soak-{m}") for m in ALONE}
    hub = LocalHub()

    stats = {"requests": 0, "rows": 0, "errors": 0, "wrong": 0, "refused_as_expected": 0, "churn_events": 0}
    lock = threading.Lock()
    errors: list[str] = []
    stop = time.monotonic() + args.minutes * 60
    removed: set[str] = set()  # names the churn thread has taken out for a moment

    def note_error(what: str) -> None:
        with lock:
            stats["errors"] += 1
            if len(errors) < 20:
                errors.append(what)

    wrong_by: dict[str, int] = {}

    def check_rows(names, idx, rows) -> None:
        wrong = 0
        for name, i, row in zip(names, idx, rows):
            labels = list(row["scores"])
            got = np.array([row["scores"][label] for label in labels])
            if not np.allclose(got, expected[name][i], atol=1e-4):
                wrong += 1
                with lock:
                    wrong_by[name] = wrong_by.get(name, 0) + 1
        with lock:
            stats["wrong"] += wrong
            stats["rows"] += len(rows)
            stats["requests"] += 1

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            names: list[str] = []
            k = rng.randint(1, 12)
            idx = [rng.randrange(len(texts)) for _ in range(k)]
            try:
                if rng.random() < 0.15:  # a model loaded on its own (full fine-tuning, LoHa through PEFT)
                    name = rng.choice(sorted(alone))
                    rows = alone[name].predict([texts[i] for i in idx])
                    check_rows([name] * k, idx, rows)
                    continue
                with lock:
                    live = [n for n in shared if n not in removed]
                names = [rng.choice(live) for _ in range(k)]
                rows = registry.predict([texts[i] for i in idx], adapters=names)
                check_rows(names, idx, rows)
            except AdapterNotFound as e:  # asked for an adapter the churn thread removed a moment ago: a fair answer
                with lock:
                    taken_out = any(n in removed or n not in registry.names for n in names)
                    stats["refused_as_expected"] += taken_out
                if not taken_out:
                    note_error(f"{type(e).__name__}: {e}")
            except ZooError as e:
                note_error(f"{type(e).__name__}: {e}")
            except Exception:  # noqa: BLE001
                note_error(traceback.format_exc(limit=3))

    def generator() -> None:  # mixed generation requests over the causal adapters, checked token for token
        rng = random.Random(7)
        names = sorted(causal_expected)
        while time.monotonic() < stop:
            k = rng.randint(1, 4)
            idx = [rng.randrange(len(PROMPTS)) for _ in range(k)]
            chosen = [rng.choice(names) for _ in range(k)]
            try:
                texts_out = causal_registry.generate([PROMPTS[i] for i in idx], adapters=chosen)
            except Exception:  # noqa: BLE001
                note_error(traceback.format_exc(limit=3))
                continue
            wrong = sum(got != causal_expected[n][i] for got, n, i in zip(texts_out, chosen, idx))
            with lock:
                stats["wrong"] += wrong
                stats["rows"] += k
                stats["requests"] += 1
                stats["generations"] = stats.get("generations", 0) + k
                if wrong:
                    wrong_by["causal"] = wrong_by.get("causal", 0) + wrong

    def churn() -> None:
        rng = random.Random(99)
        n = 0
        while time.monotonic() < stop:
            time.sleep(rng.uniform(0.5, 1.5))
            event = rng.choice(["push", "push", "remove-add", "temp", "hostile"])
            name = rng.choice(shared)
            try:
                if event == "push":  # a new revision of the same weights; zoo.load picks it up
                    hub.push(folders[name])
                    zoo.load(args.base, adapter=name)
                elif event == "remove-add":
                    with lock:
                        removed.add(name)
                    registry.remove(name)
                    registry.add(name)
                    with lock:
                        removed.discard(name)
                elif event == "temp":
                    registry.add(folder=folders["soak-temp"])
                    rows = registry.predict(texts[:3], adapter="soak-temp")
                    check_rows(["soak-temp"] * 3, range(3), rows)
                    registry.remove("soak-temp")
                else:
                    kind = rng.choice(["nan", "half", "walk"])
                    if kind == "walk":
                        try:
                            zoo.load(args.base, adapter="../../../" + str(folders["soak-temp"]).lstrip("/"))
                            note_error("a name that walks out of the hub was loaded")
                        except BadInput:
                            with lock:
                                stats["refused_as_expected"] += 1
                    elif kind == "nan":
                        try:
                            registry.add(folder=hostile("nan", folders["soak-lora"], work))
                            note_error("an adapter with NaN weights was added")
                        except UnsafeAdapter:
                            with lock:
                                stats["refused_as_expected"] += 1
                    else:
                        import warnings

                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            registry.add(folder=hostile("half", folders["soak-lora"], work))
                        rows = registry.predict(texts[:4], adapter="soak-half")
                        got = np.array([[r["scores"][label] for label in r["scores"]] for r in rows])
                        if not np.allclose(got, expected["soak-lora"][:4], atol=2e-2):
                            with lock:
                                stats["wrong"] += 1
                        registry.remove("soak-half")
                n += 1
                with lock:
                    stats["churn_events"] = n
            except Exception:  # noqa: BLE001
                note_error(f"churn {event} {name}: {traceback.format_exc(limit=3)}")
                with lock:
                    removed.discard(name)

    warmup = args.warmup if args.warmup is not None else max(30.0, args.minutes * 6)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    threads.append(threading.Thread(target=churn, daemon=True))
    if causal_registry is not None:
        threads.append(threading.Thread(target=generator, daemon=True))
    began = time.monotonic()
    for t in threads:
        t.start()
    peak, warm, last_print = rss_mb(), None, began
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        now, current = time.monotonic(), rss_mb()
        peak = max(peak, current)
        if warm is None and now - began >= warmup:
            warm = current
        if now - last_print >= 60:
            last_print = now
            with lock:
                print(f"{(now - began) / 60:5.1f} min  requests {stats['requests']}  rows {stats['rows']}  errors "
                      f"{stats['errors']}  wrong {stats['wrong']}  churn {stats['churn_events']}  rss {current:.0f} MB",
                      flush=True)
    rss.update(warm=warm or peak, peak=peak, end=rss_mb())
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    result = {**stats, "causal_distinct_prompts": distinct if args.causal else None, "wrong_by_adapter": wrong_by, "adapter_gap": round(gap, 4), "minutes": args.minutes, "threads": args.threads, "resident_evictions": registry.stats,
              "rss_mb": {k: round(v, 1) for k, v in rss.items()},
              "end_vs_warm": round(rss["end"] / rss["warm"] - 1, 4)}
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    sys.exit(1 if stats["errors"] or stats["wrong"] else 0)


if __name__ == "__main__":
    main()
