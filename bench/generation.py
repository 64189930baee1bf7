"""Causal serving benchmark: greedy generation on SmolLM2 through the registry, mixed adapters per batch.

    .venv/bin/python bench/generation.py [--prompts 32] [--new-tokens 24] [--repeats 2]

On the real SmolLM2-135M-Instruct (offline package), Alpaca instructions from the data mirror in
the chat template, batches of 8, greedy decoding of up to --new-tokens tokens (a batch stops when
all its rows reached EOS; `short_rows_in_check` counts early stops among 8 registry rows). Three LoRA adapters with the alpaca_lora recipe's config
(r=16 on all 7 projections) and random weights: serving cost does not depend on what they learned.
Ratios against baselines measured in the same run, contenders timed alternately batch by batch:

- registry_mixed_vs_base: each prompt for a random one of the 3 adapters, one mixed
  ``Zoo.generate`` per batch, over the bare base's ``generate`` on the same batches;
- registry_mixed_vs_grouped_peft: the same stream over plain PEFT given each adapter's prompts
  grouped in advance into full batches on a PeftModel holding the 3 adapters (``set_adapter``).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, free_port, start_zoo  # noqa: E402,F401  (sets the environment: offline, the data mirror)
DATA = Path(os.environ.get("ZOO_DATA_DIR") or ROOT.parent / "shared" / "data")
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
NAMES = ["alpaca-lora-a", "alpaca-lora-b", "alpaca-lora-c"]


def build_adapters(root: Path) -> dict[str, Path]:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from zoo.config.recipe import load_recipe
    from zoo.data.sources import resolve_model

    recipe = load_recipe(ROOT / "recipes" / "alpaca_lora.py")
    path = resolve_model(BASE).path
    folders = {}
    for seed, name in enumerate(NAMES):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), recipe.method)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        folder = root / name
        model.save_pretrained(folder)
        meta = {"format": "adapter-zoo/1", "name": name, "base_model": BASE, "task": "tatsu-lab/alpaca", "method": "lora",
                "task_type": "CAUSAL_LM", "weights": "adapter_model.safetensors", "labels": [], "max_length": 256,
                "prompt": recipe.prompt.to_dict(), "generation": recipe.generation.to_dict(), "synthetic": True}
        (folder / "zoo.json").write_text(json.dumps(meta))
        folders[name] = folder
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    __import__("zoo")  # first: it quiets bitsandbytes' log about an optional CPU kernel
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from zoo.models.generate import encode_prompts
    from zoo.config.prompts import render
    from zoo.serve.registry import Zoo
    from zoo.data.sources import resolve_model

    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-gen-"))
    folders = build_adapters(tmp)
    z = Zoo(BASE)
    for name, folder in folders.items():
        z.add(folder=folder)
    fmt = json.loads((folders[NAMES[0]] / "zoo.json").read_text())["prompt"]
    records = json.loads((DATA / "alpaca" / "alpaca_data.json").read_text())[: args.prompts]
    prompts = [render(fmt, z.tokenizer, {"instruction": r["instruction"], "input": r["input"]}) for r in records]
    rng = random.Random(0)
    owners = [rng.choice(NAMES) for _ in prompts]
    batches = [list(range(i, min(i + 8, len(prompts)))) for i in range(0, len(prompts), 8)]
    settings = dict(max_new_tokens=args.new_tokens, do_sample=False)

    path = resolve_model(BASE).path
    bare = AutoModelForCausalLM.from_pretrained(path).eval()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), str(folders[NAMES[0]]),
                                           adapter_name=NAMES[0]).eval()
    for name in NAMES[1:]:
        peft_model.load_adapter(str(folders[name]), adapter_name=name)
    tok = z.tokenizer

    def hf_generate(model, idx):
        enc = encode_prompts(tok, [prompts[i] for i in idx], 256)
        with torch.inference_mode():
            model.generate(**enc, pad_token_id=tok.pad_token_id, **settings)

    def registry(idx):
        z.generate([prompts[i] for i in idx], adapters=[owners[i] for i in idx], max_new_tokens=args.new_tokens)

    grouped = {n: [i for i in range(len(prompts)) if owners[i] == n] for n in NAMES}
    peft_batches = [(n, idx[j:j + 8]) for n, idx in grouped.items() for j in range(0, len(idx), 8)]

    def peft_grouped():
        for name, idx in peft_batches:
            peft_model.set_adapter(name)
            hf_generate(peft_model, idx)

    # Every contender stops a batch at EOS; rows that end early are counted, to read the ratios with.
    lengths = z.generate(prompts[:8], adapters=owners[:8], max_new_tokens=args.new_tokens)
    times = {"base": float("inf"), "registry": float("inf"), "peft_grouped": float("inf")}
    for _ in range(args.repeats):
        t = {"base": 0.0, "registry": 0.0}
        for idx in batches:  # alternate contenders batch by batch: a noisy VM drifts, both see the drift
            start = time.perf_counter()
            hf_generate(bare, idx)
            t["base"] += time.perf_counter() - start
            start = time.perf_counter()
            registry(idx)
            t["registry"] += time.perf_counter() - start
        start = time.perf_counter()
        peft_grouped()
        t["peft_grouped"] = time.perf_counter() - start
        times = {k: min(times[k], t[k]) for k in times}
    result = {
        "prompts": len(prompts), "new_tokens": args.new_tokens,
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "registry_mixed_vs_base": round(times["base"] / times["registry"], 3),
        "registry_mixed_vs_grouped_peft": round(times["peft_grouped"] / times["registry"], 3),
        "short_rows_in_check": sum(len(tok(x, add_special_tokens=False)["input_ids"]) < args.new_tokens - 2 for x in lengths),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
