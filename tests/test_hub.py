"""The Hugging Face Hub backend, with the real huggingface_hub client over HTTP against a loopback
Hub server (zoo.hub.server) started here. Clients run as subprocesses: HF_ENDPOINT and
HF_HUB_OFFLINE are read when huggingface_hub is imported, and this process imports it offline."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import ROOT, quick_overrides
from zoo.hub.server import serve

ZOO = str(ROOT / ".venv" / "bin" / "zoo")
TOKEN = "hf_FAKEtokenZOO1234567890abcdefSECRET"
TEXTS = ["a gripping , beautifully acted film", "dull , lifeless and far too long", "it is a movie"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = serve(tmp_path_factory.mktemp("hub-server"), port=0, tokens={TOKEN: "zoo-tester"}, quiet=True)
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("hub-home")


def env_for(server, home, **extra):
    env = dict(os.environ)
    env.update(HF_ENDPOINT=server.endpoint if server else extra.pop("endpoint"), HF_TOKEN=TOKEN, HF_HUB_OFFLINE="0",
               HF_HOME=str(home / "hf"), ZOO_HOME=str(home / "zoo"), TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


OUTPUTS: list[str] = []  # everything the clients printed, for the token check


def run(args, env, check=True):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    OUTPUTS.append(proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def python(code, env, check=True):
    return run([sys.executable, "-c", textwrap.dedent(code)], env, check=check)


@pytest.fixture(scope="module")
def published(server, home, tiny_bert, shared_data):
    """Train the SST-2 LoRA recipe a few steps and push it to the loopback Hub with `zoo train --push`."""
    env = env_for(server, home)
    out = home / "run"
    sets = [a for o in quick_overrides(tiny_bert, shared_data) for a in ("--set", o)]
    proc = run([ZOO, "train", "recipes/sst2_lora.py", *sets, "--output-dir", str(out), "--push", "--no-progress"], env)
    return {"adapter_dir": out / "adapter", "stdout": proc.stdout, "stderr": proc.stderr, "env": env}


def local_logits(folder, texts=TEXTS):
    from zoo.serve.loading import load_folder

    return load_folder(folder).logits(texts)


def test_train_push_list_and_load_by_short_name_and_repo_id(published, server, home, tiny_bert):
    env = published["env"]
    assert f"to the Hugging Face Hub at {server.endpoint}" in published["stdout"]
    assert "zoo-tester/sst2-lora" in published["stdout"]
    head = server.store.head("zoo-tester/sst2-lora")
    files = server.store.files("zoo-tester/sst2-lora", head)
    assert {"adapter_model.safetensors", "adapter_config.json", "zoo.json", "README.md", "training_curve.png"} <= set(files)
    assert server.store.read("zoo-tester/sst2-lora", files["training_curve.png"]).startswith(b"\x89PNG")
    assert b"![training curve](training_curve.png)" in server.store.read("zoo-tester/sst2-lora", files["README.md"])
    assert not any(p.endswith((".bin", ".pt")) for p in files)

    listed = run([ZOO, "list", "--base", str(tiny_bert), "--method", "lora"], env)
    assert "sst2-lora" in listed.stdout and "zoo-tester/sst2-lora" in listed.stdout
    assert "Hugging Face Hub" in listed.stderr
    assert "sst2-lora" not in run([ZOO, "list", "--task", "glue/rte"], env).stdout
    assert "sst2-lora" not in run([ZOO, "list", "--method", "ia3"], env).stdout

    got = python(f"""
        import json, zoo
        base = {str(tiny_bert)!r}
        texts = {TEXTS!r}
        a = zoo.load(base, adapter="sst2-lora")
        b = zoo.load(base, adapter="zoo-tester/sst2-lora")
        c = zoo.load(base, adapter="zoo-tester/sst2-lora@{head}")
        print(json.dumps({{k: h.logits(texts).tolist() for k, h in (("short", a), ("repo", b), ("rev", c))}}))
        print(json.dumps(zoo.list_adapters(base=base, task="glue/sst2", hub="hf")))
    """, env)
    lines = got.stdout.strip().splitlines()
    results, listing = json.loads(lines[-2]), json.loads(lines[-1])
    want = local_logits(published["adapter_dir"])
    for key in ("short", "repo", "rev"):
        np.testing.assert_allclose(np.array(results[key]), want, atol=1e-5, err_msg=key)
    assert [e["repo_id"] for e in listing] == ["zoo-tester/sst2-lora"]
    assert listing[0]["method"] == "lora" and listing[0]["task"] == "glue/sst2"


def test_plain_peft_and_cards_read_the_pushed_repo_without_our_package(published, tiny_bert):
    meta = json.loads((published["adapter_dir"] / "zoo.json").read_text())
    got = python(f"""
        import json, torch
        from huggingface_hub import HfApi, ModelCard
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        base = {str(tiny_bert)!r}
        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
        model = PeftModel.from_pretrained(model, "zoo-tester/sst2-lora").eval()
        with torch.inference_mode():
            logits = model(**tok({TEXTS!r}, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits
        card = ModelCard.load("zoo-tester/sst2-lora")
        info = HfApi().model_info("zoo-tester/sst2-lora")
        evals = [(r.metric_type, r.metric_value) for r in info.card_data.eval_results]
        print(json.dumps({{"logits": logits.tolist(), "card": card.data.to_dict(), "evals": evals,
                           "tags": info.tags, "library": info.library_name}}))
    """, published["env"])
    out = json.loads(got.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(out["logits"]), local_logits(published["adapter_dir"]), atol=1e-5)
    card = out["card"]
    assert card["base_model"] == str(tiny_bert) and card["library_name"] == "peft"
    assert {"adapter-zoo", "glue-sst2", "lora"} <= set(card["tags"])
    validation = meta["metrics"]["validation"]
    assert dict(out["evals"])["accuracy"] == pytest.approx(round(validation["accuracy"], 4))
    assert dict(out["evals"])["macro_f1"] == pytest.approx(round(validation["macro_f1"], 4))
    assert out["library"] == "peft" and f"base_model:{tiny_bert}" in out["tags"]


def test_half_way_push_publishes_nothing_and_a_rerun_completes(published, server, home):
    env = published["env"]
    folder = published["adapter_dir"]
    push = [ZOO, "push", str(folder), "--hub", "hf", "--repo-id", "zoo-tester/halfway"]
    # one connection dropped mid-commit: huggingface_hub retries, and exactly one commit lands
    server.fail_commits = 1
    run(push, env)
    rev1 = server.store.head("zoo-tester/halfway")
    initial = server.store.commit_info("zoo-tester/halfway", rev1)["parent"]
    assert server.store.files("zoo-tester/halfway", initial) == {}
    assert server.store.commit_info("zoo-tester/halfway", initial)["parent"] is None
    # the server keeps dying mid-commit: the push fails, says so, and the repo is as it was
    server.fail_commits = 100
    try:
        failed = run(push, env, check=False)
    finally:
        server.fail_commits = 0
    assert failed.returncode == 2
    assert "nothing was published" in failed.stderr and "Traceback" not in failed.stderr
    assert server.store.head("zoo-tester/halfway") == rev1
    # the rerun completes as a new revision with the same files: never a mix
    second = run(push, env)
    rev2 = server.store.head("zoo-tester/halfway")
    assert rev2 != rev1 and rev2 in second.stdout
    assert server.store.files("zoo-tester/halfway", rev1) == server.store.files("zoo-tester/halfway", rev2)
    assert server.store.commit_info("zoo-tester/halfway", rev2)["parent"] == rev1


def test_token_never_written_or_printed(published, home):
    # every client run above, and every file written under the homes and the run folder
    assert OUTPUTS and not any(TOKEN in text for text in OUTPUTS)
    for path in list(home.rglob("*")):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    # an error from the Hub (a wrong token) does not echo it either
    bad = dict(published["env"], HF_TOKEN="hf_WRONGtokenZOO0987654321")
    proc = run([ZOO, "push", str(published["adapter_dir"]), "--hub", "hf"], bad, check=False)
    assert proc.returncode == 2 and "hf_WRONGtokenZOO0987654321" not in proc.stdout + proc.stderr


def _dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed once the socket is: nothing listens there


def test_no_network_says_which_hub_and_cached_adapters_still_load(published, home, tiny_bert):
    # downloaded once while the Hub answers (this test's own download: it must not rely on another test's)
    python(f"""
        import zoo
        zoo.load({str(tiny_bert)!r}, adapter="zoo-tester/sst2-lora")
    """, published["env"])
    env = env_for(None, home, endpoint=_dead_endpoint())
    proc = run([ZOO, "push", str(published["adapter_dir"])], env, check=False)
    assert proc.returncode == 2
    assert "cannot be reached" in proc.stderr and "token is configured" in proc.stderr and "--hub local" in proc.stderr
    listed = run([ZOO, "list"], env, check=False)
    assert listed.returncode == 2 and "--hub local" in listed.stderr
    local = run([ZOO, "push", str(published["adapter_dir"]), "--hub", "local"], env)
    assert "the local hub" in local.stdout
    got = python(f"""
        import json, zoo
        h = zoo.load({str(tiny_bert)!r}, adapter="zoo-tester/sst2-lora")   # downloaded earlier: from the cache
        print(json.dumps(h.logits({TEXTS!r}).tolist()))
    """, dict(env, HF_HUB_OFFLINE="1"))
    np.testing.assert_allclose(np.array(json.loads(got.stdout.strip().splitlines()[-1])),
                               local_logits(published["adapter_dir"]), atol=1e-5)


def test_zoo_hub_serve_shares_a_hub_over_http(published, tmp_path, home, tiny_bert):
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(published["env"], ZOO_HUB_TOKEN=TOKEN)
    proc = subprocess.Popen([ZOO, "hub", "serve", "--root", str(tmp_path / "team-hub"), "--port", str(port),
                             "--user", "team"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/api/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        client = env_for(None, home, endpoint=endpoint)
        pushed = run([ZOO, "push", str(published["adapter_dir"]), "--hub", "hf"], client)
        assert "team/sst2-lora" in pushed.stdout
        listed = json.loads(urllib.request.urlopen(f"{endpoint}/api/models?filter=adapter-zoo", timeout=5).read())
        assert [m["id"] for m in listed] == ["team/sst2-lora"]
        readonly = run([ZOO, "push", str(published["adapter_dir"]), "--hub", "hf", "--repo-id", "team/other"],
                       dict(client, HF_TOKEN="hf_notTheTeamToken000000"), check=False)
        assert readonly.returncode == 2
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    OUTPUTS.append(out + err)
    assert TOKEN not in out + err and "serving" in out


def test_card_parses_with_huggingface_hubs_own_parser(published, tiny_bert):
    from huggingface_hub import ModelCard

    folder = published["adapter_dir"]
    meta = json.loads((folder / "zoo.json").read_text())
    card = ModelCard((folder / "README.md").read_text())
    data = card.data.to_dict()
    assert data["base_model"] == str(tiny_bert) and data["library_name"] == "peft"
    assert data["pipeline_tag"] == "text-classification" and data["license"] == "apache-2.0"
    assert data["datasets"] == ["nyu-mll/glue"] and {"adapter-zoo", "glue-sst2", "lora"} <= set(data["tags"])
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    for key in ("accuracy", "macro_f1"):
        assert results[key] == pytest.approx(round(meta["metrics"]["validation"][key], 4))
    assert all(r.dataset_split == "validation" and r.dataset_name == "glue/sst2" for r in card.data.eval_results)
    for section in ("## Results", "## Efficiency", "## Training curve", "## Hyperparameters", "## How to use",
                    "PeftModel.from_pretrained", "zoo.load(", "## Intended use and limitations"):
        assert section in card.text, section


def test_demo_catalogue_reads_the_hub_cards_and_answers(published, tiny_bert):
    """The Space's catalogue on the Hub: entries and the results table from the cards alone, answers via zoo.load."""
    got = python(f"""
        import json
        from zoo.demo.catalogue import Catalogue
        cat = Catalogue("hf")
        entry = cat.get({str(tiny_bert) + "::zoo-tester/sst2-lora"!r})
        print(json.dumps({{"kind": entry.kind, "pair": entry.pair, "title": entry.title, "describe": cat.describe(),
                          "results": cat.results("glue/sst2"), "answer": cat.answer(entry.id, {TEXTS[0]!r})}}))
    """, {**published["env"], "ZOO_BASES": str(tiny_bert)})  # a Hub listing loads a folder base only when allowed
    out = json.loads(got.stdout.strip().splitlines()[-1])
    meta = json.loads((published["adapter_dir"] / "zoo.json").read_text())
    eff = meta["efficiency"]
    assert out["kind"] == "classify" and not out["pair"] and "the Hugging Face Hub" in out["describe"]
    row = next(r for r in out["results"] if r["entry"].endswith("::zoo-tester/sst2-lora"))
    assert row["metric"] == "accuracy" and row["value"] == round(meta["metrics"]["validation"]["accuracy"], 4)
    assert (row["trainable_params"], row["train_seconds"]) == (eff["trainable_params"], eff["train_seconds"])
    assert row["adapter_mib"] == round(eff["adapter_bytes"] / 2**20, 3)
    assert row["trainable_pct"] == round(100 * eff["trainable_params"] / eff["total_params"], 3)
    probs = np.exp(local_logits(published["adapter_dir"], TEXTS[:1])[0])
    probs /= probs.sum()
    assert out["answer"]["label"] == meta["labels"][int(probs.argmax())]
    np.testing.assert_allclose([out["answer"]["scores"][k] for k in meta["labels"]], probs, atol=1e-5)


def test_private_repo_is_hidden_from_anonymous_readers(published, server):
    import urllib.error
    import urllib.request

    env = published["env"]
    run([ZOO, "push", str(published["adapter_dir"]), "--repo-id", "zoo-tester/secret-sst2", "--private"], env)
    assert server.store.info("zoo-tester/secret-sst2")["private"] is True
    anonymous = json.loads(urllib.request.urlopen(f"{server.endpoint}/api/models?filter=adapter-zoo", timeout=5).read())
    assert "zoo-tester/secret-sst2" not in [m["id"] for m in anonymous]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{server.endpoint}/zoo-tester/secret-sst2/resolve/main/zoo.json", timeout=5)
    assert e.value.code == 404
    assert "zoo-tester/secret-sst2" in run([ZOO, "list", "--hub", "hf"], env).stdout


def test_causal_adapter_and_icl_entry_on_the_hub(server, home, tiny_llama, shared_data):
    """A causal LoRA adapter and an in-context entry pushed to the Hub: plain PEFT generates the same
    text from the repo as zoo.load does, and the weightless entry loads and answers too."""
    from tests.test_causal import quick

    env = env_for(server, home, ZOO_HOME=str(home / "zoo-causal"))
    sets = [a for o in quick(tiny_llama, shared_data, steps=2) for a in ("--set", o)]
    for recipe, out in (("recipes/alpaca_lora.py", "causal-lora"), ("recipes/sst2_zero_shot_icl.py", "causal-icl")):
        run([ZOO, "train", recipe, *sets, "--output-dir", str(home / out), "--push", "--no-progress"], env)
    files = server.store.files("zoo-tester/sst2-zero-shot-icl", server.store.head("zoo-tester/sst2-zero-shot-icl"))
    assert set(files) == {"zoo.json", "README.md"}  # a prompt and its measured metrics, no weights
    got = python(f"""
        import json, torch, zoo
        from huggingface_hub import HfApi
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        base = {str(tiny_llama)!r}
        handle = zoo.load(base, adapter="zoo-tester/alpaca-lora")
        ours = handle.generate(["Name a colour."], max_new_tokens=6)
        tok = AutoTokenizer.from_pretrained(base)
        prompt = tok.apply_chat_template([{{"role": "user", "content": "Name a colour."}}], tokenize=False,
                                         add_generation_prompt=True)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "zoo-tester/alpaca-lora").eval()
        enc = tok([prompt], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=6, do_sample=False, repetition_penalty=1.1)  # the recipe's
        plain = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        icl = zoo.load(base, adapter="zoo-tester/sst2-zero-shot-icl").predict(["a gripping film"])
        info = HfApi().model_info("zoo-tester/alpaca-lora")
        print(json.dumps({{"ours": ours, "plain": plain, "icl": icl, "pipeline": info.pipeline_tag,
                           "same_base": handle.zoo is zoo.load(base, adapter="zoo-tester/sst2-zero-shot-icl").zoo}}))
    """, env)
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert out["ours"] == out["plain"] and out["pipeline"] == "text-generation" and out["same_base"]
    assert set(out["icl"][0]) >= {"label", "text", "no_answer"}
