"""Tokens per second of the zoo's own generate against vLLM, on the same prompts, in one run.

    ZOO_VLLM_PYTHON=.venv-vllm/bin/python .venv/bin/python bench/vllm_tokens.py [--requests 16] [--tokens 64]

Needs vLLM's environment (`bash scripts/vllm_env.sh`). Builds a local hub on SmolLM2-135M-Instruct with two LoRA
adapters (tests/test_vllm_serve.py's smollm2_zoo: Alpaca LoRA trained a few steps, two copies with other
weights), then, one after the other (never side by side: 2 cores):

- zoo: `zoo serve` (the zoo's own engine: coalesced generate on the shared base) answers --requests concurrent
  greedy completions of --tokens tokens, the adapters alternating;
- vllm: `zoo serve --engine vllm` answers the same requests (the zoo front renders the prompts, vLLM's
  continuous batching generates).

Figures: completion tokens per second of each, vllm_vs_zoo, and the requests whose greedy text differs:
text_mismatches (the zoo's coalesced batch against vLLM), text_mismatches_zoo_alone (the zoo answering each
request alone, untimed, against vLLM), zoo_batched_vs_alone_differ (the zoo against itself: float32 greedy
near-ties tip differently in a left-padded batch). The last line is one JSON object. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, free_port, start_zoo  # noqa: E402,F401  (sets the environment: offline, the data mirror)

PROMPTS = ["Write a short poem about the sea.", "Explain what a neural network is.", "Give three tips for sleeping well.",
           "Describe a cat to someone who has never seen one.", "Why is the sky blue?", "Suggest a name for a bakery.",
           "Write a haiku about autumn.", "List four fruits and their colours.", "How do plants make food?",
           "Summarise the plot of Romeo and Juliet.", "What makes a good friend?", "Explain gravity to a child.",
           "Write a tweet about coffee.", "Describe your ideal holiday.", "What is the capital of France and why?",
           "Give advice to a new programmer."]


def start(home: Path, *options: str, wait: float):
    return start_zoo(home, "serve", "--refresh-seconds", "0", "--timeout", "900", *options, wait=wait)


def run(url: str, jobs: list[tuple[str, str]], tokens: int) -> tuple[list[str], int, float]:
    import httpx

    def one(job):
        model, prompt = job
        r = httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": tokens,
                                                      "temperature": 0}, timeout=900)
        r.raise_for_status()
        data = r.json()
        return data["choices"][0]["text"], data["usage"]["completion_tokens"]

    start_t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        out = list(pool.map(one, jobs))
    seconds = time.perf_counter() - start_t
    return [t for t, _ in out], sum(n for _, n in out), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    python = os.environ.get("ZOO_VLLM_PYTHON") or str(ROOT / ".venv-vllm/bin/python")
    if not Path(python).exists():
        raise SystemExit("vLLM's environment is missing: bash scripts/vllm_env.sh (or set ZOO_VLLM_PYTHON)")
    from tests.test_vllm_serve import smollm2_zoo

    work = Path(tempfile.mkdtemp(prefix="zoo-vllm-bench-"))
    home = work / "home"
    names = smollm2_zoo(home, work / "runs")
    jobs = [(names[i % len(names)], PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)]
    figures: dict = {"requests": args.requests, "max_tokens": args.tokens, "adapters": names}
    texts = {}
    for engine, options, wait in (("zoo", (), 300), ("vllm", ("--engine", "vllm", "--vllm-python", python,
                                                              "--vllm-port", str(free_port())), 900)):
        proc, url = start(home, *options, wait=wait)
        try:
            run(url, jobs[:2], 4)  # warm: adapters loaded, first compilation done
            texts[engine], made, seconds = run(url, jobs, args.tokens)
            if engine == "zoo":  # untimed: each request alone, as vLLM computes each (no left-padded batch)
                texts["zoo_alone"] = [run(url, [job], args.tokens)[0][0] for job in jobs]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        figures[f"{engine}_tokens"] = made
        figures[f"{engine}_seconds"] = round(seconds, 2)
        figures[f"{engine}_tokens_per_s"] = round(made / seconds, 1)
        print(f"{engine:5s} {made} tokens in {seconds:.1f} s: {made / seconds:.1f} tokens/s", flush=True)
    figures["vllm_vs_zoo"] = round(figures["vllm_tokens_per_s"] / figures["zoo_tokens_per_s"], 2)
    figures["text_mismatches"] = sum(a != b for a, b in zip(texts["zoo"], texts["vllm"]))
    figures["text_mismatches_zoo_alone"] = sum(a != b for a, b in zip(texts["zoo_alone"], texts["vllm"]))
    figures["zoo_batched_vs_alone_differ"] = sum(a != b for a, b in zip(texts["zoo"], texts["zoo_alone"]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
