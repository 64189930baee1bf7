"""The registry serves causal-LM adapters of every method on one shared decoder-only base and generates text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.test_registry import run_threads

# PEFT's own generate (the reference) warns on every prompt-tuning step that it drops position ids
pytestmark = pytest.mark.filterwarnings("ignore:Position ids are not supported:UserWarning")

ML = 48  # max_length of every test adapter: the longest prompt below is cut on the left
GENERATION = {"max_new_tokens": 64, "do_sample": False, "num_beams": 1, "temperature": 1.0, "top_p": 1.0, "top_k": 50}
PROMPTS = [
    "Review: a gripping, beautifully acted film\nSentiment:",
    "bad",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nName three colours of the rainbow and say why the sky is blue.\n\n### Response:\n",
    "the plot is thin but the actors are great fun to watch",
    "<|im_start|>user\nIs this positive? what a film<|im_end|>\n<|im_start|>assistant\n",
]
# name -> method; every causal method, including weightless in-context learning
SPECS = {"alpaca-lora": "lora", "sst2-ia3": "ia3", "sst2-prompt-tuning": "prompt-tuning", "rte-p-tuning": "p-tuning",
         "alpaca-prefix-tuning": "prefix-tuning", "alpaca-last-layers": "last-layers", "sst2-icl": "icl",
         "alpaca-qlora": "qlora"}
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LLAMA_TOP = ("model.layers.1.", "model.norm.")  # what a last-layers run trains: the top block and the final norm


def peft_config(method: str, linears=LLAMA_LINEARS, conv1d: bool = False):
    from peft import (
        IA3Config,
        LoraConfig,
        PrefixTuningConfig,
        PromptEncoderConfig,
        PromptTuningConfig,
    )

    return {
        "lora": lambda: LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=linears, fan_in_fan_out=conv1d),
        "qlora": lambda: LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
        "ia3": lambda: IA3Config(task_type="CAUSAL_LM", fan_in_fan_out=conv1d),
        "prompt-tuning": lambda: PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6),
        "p-tuning": lambda: PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=6, encoder_hidden_size=16),
        "prefix-tuning": lambda: PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5),
    }[method]()


def make_causal_adapter(base: Path, folder: Path, *, name: str, method: str, seed: int, labels=(), scale: float = 0.5,
                        linears=LLAMA_LINEARS, top=LLAMA_TOP, conv1d: bool = False) -> Path:
    """A publishable causal adapter folder with random trainable tensors, big enough to change greedy outputs."""
    from peft import get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    weights = None
    if method == "last-layers":  # the top block and the final norm, perturbed; never the tied lm_head
        model = AutoModelForCausalLM.from_pretrained(base)
        params = dict(model.named_parameters())
        state = {n: (p.detach() + torch.randn(p.shape, generator=gen) * scale).contiguous()
                 for n, p in params.items() if n.startswith(top)}
        weights = "trained_layers.safetensors"
        save_file(state, str(folder / weights), metadata={"format": "pt"})
    elif method != "icl":
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), peft_config(method, linears, conv1d))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.requires_grad:
                    noise = torch.randn(p.shape, generator=gen) * scale
                    p.copy_(1.0 + 2 * noise if "ia3_l" in n else noise)
        model.save_pretrained(folder, safe_serialization=True)
        weights = "adapter_model.safetensors"
    meta = {"format": "adapter-zoo/1", "name": name, "base_model": str(base), "task": "alpaca", "method": method,
            "task_type": "CAUSAL_LM", "weights": weights, "labels": list(labels), "max_length": ML,
            "generation": GENERATION, "prompt": {"template": "{text}", "chat": False}}
    (folder / "zoo.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def reference(base: Path, folder: Path, prompts, **settings) -> list[str]:
    """The same prompts through plain PEFT (or the base with the trained layers laid over it), alone.

    One left-padded batch, except for prompt tuning and P-tuning: there PEFT puts the virtual tokens
    before the left padding and counts positions over it, so a padded row's answer depends on its
    batch. The registry answers every row as if it were alone: the reference is each prompt on its own.
    """
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = json.loads((folder / "zoo.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(base)
    if meta["method"] == "last-layers":
        missing, unexpected = model.load_state_dict(load_file(str(folder / meta["weights"])), strict=False)
        assert not unexpected
    elif meta["method"] != "icl":
        model = PeftModel.from_pretrained(model, str(folder))
    model.eval()
    tok = AutoTokenizer.from_pretrained(base)
    tok.pad_token = tok.pad_token or tok.eos_token  # GPT-2 ships without one
    tok.padding_side, tok.truncation_side = "left", "left"
    settings = {"max_new_tokens": 12, "do_sample": False, **settings}
    batches = [[p] for p in prompts] if meta["method"] in ("prompt-tuning", "p-tuning") else [list(prompts)]
    texts = []
    for batch in batches:
        enc = tok(batch, truncation=True, max_length=meta["max_length"], padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, pad_token_id=tok.pad_token_id, **settings)
        texts += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return texts


@pytest.fixture(scope="module")
def folders(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("causal-adapters")
    return {name: make_causal_adapter(tiny_llama, root / name, name=name, method=method, seed=k + 1)
            for k, (name, method) in enumerate(SPECS.items())}


@pytest.fixture(scope="module")
def alone(tiny_llama, folders) -> dict[str, list[str]]:
    """Each adapter's greedy texts for PROMPTS (one left-padded batch), loaded alone with plain PEFT."""
    return {name: reference(tiny_llama, folder, PROMPTS) for name, folder in folders.items()}


@pytest.fixture(scope="module")
def registry(tiny_llama, folders, tmp_path_factory):
    from zoo.hub.local import LocalHub
    from zoo.serve.registry import Zoo

    z = Zoo(str(tiny_llama), hub=LocalHub(tmp_path_factory.mktemp("causal-hub")))
    for folder in folders.values():
        z.add(folder=folder)
    return z


def test_every_causal_method_in_one_mixed_call_matches_plain_peft(registry, alone):
    import random

    from transformers import LlamaForCausalLM

    assert isinstance(registry.model, LlamaForCausalLM) and registry.layout.causal
    requests = [(name, i) for name in SPECS for i in range(len(PROMPTS))]
    random.Random(0).shuffle(requests)  # adapters and prompt lengths interleaved: answers come back in input order
    got = registry.generate([PROMPTS[i] for _, i in requests], adapters=[n for n, _ in requests], max_new_tokens=12)
    for (name, i), text in zip(requests, got):
        assert text == alone[name][i], (name, i)
    # the virtual tokens were added inside generate by a hook that exists only during the registry's calls:
    # between them the shared model is the untouched transformers model
    assert "prepare_inputs_for_generation" not in vars(registry.model)
    assert registry.generation_hook._active == 0
    # every adapter changes what the bare base says (ICL is the bare base), and two methods differ
    for name in SPECS:
        if name != "sst2-icl":
            assert alone[name] != alone["sst2-icl"], name
    assert alone["alpaca-lora"] != alone["sst2-ia3"] and any(len(t) > 4 for t in alone["alpaca-lora"])
    # a row's answer does not depend on its batch: one adapter per call, batches cut small (other padding)
    for name in ("alpaca-prefix-tuning", "rte-p-tuning"):
        assert registry.generate(PROMPTS, adapter=name, batch_size=2, max_new_tokens=12) == alone[name], name


def test_streamed_tokens_of_a_mixed_batch_decode_to_each_rows_answer(registry, alone):
    from zoo.errors import BadInput

    requests = [(name, i) for name in SPECS for i in range(len(PROMPTS))]
    tokens: dict[int, list[int]] = {}
    got = registry.generate([PROMPTS[i] for _, i in requests], adapters=[n for n, _ in requests], max_new_tokens=12,
                            stream=lambda row, token: tokens.setdefault(row, []).append(token))
    eos = registry.model.generation_config.eos_token_id
    for row, ((name, i), text) in enumerate(zip(requests, got)):
        assert text == alone[name][i]
        streamed = tokens.get(row, [])
        assert registry.tokenizer.decode(streamed, skip_special_tokens=True) == text, (name, i)
        assert len(streamed) <= 12 and eos not in streamed[:-1], "nothing is streamed for a row after its end"
    with pytest.raises(BadInput, match="num_beams=1"):
        registry.generate(PROMPTS[:1], adapter="alpaca-lora", num_beams=2, stream=lambda row, token: None)


def test_beam_search_on_a_mixed_batch_matches_peft_beam_search(registry, folders, tiny_llama):
    names = ["alpaca-lora", "sst2-prompt-tuning", "alpaca-prefix-tuning", "alpaca-last-layers", "sst2-ia3"]
    prompts = PROMPTS[:4]
    got = registry.generate([p for _ in names for p in prompts], adapters=[n for n in names for _ in prompts],
                            max_new_tokens=8, num_beams=3)
    for k, name in enumerate(names):
        want = reference(tiny_llama, folders[name], prompts, max_new_tokens=8, num_beams=3)
        assert got[k * len(prompts):(k + 1) * len(prompts)] == want, name


def test_base_stays_frozen_switching_back_reproduces_and_threads_agree(registry, alone):
    before = {n: p.detach().clone() for n, p in registry.model.named_parameters()}
    first = registry.generate(PROMPTS, adapter="alpaca-lora", max_new_tokens=12)
    registry.generate(PROMPTS, adapter="sst2-prompt-tuning", max_new_tokens=12)
    registry.generate(PROMPTS[:2], adapter="alpaca-last-layers", max_new_tokens=12)
    assert registry.generate(PROMPTS, adapter="alpaca-lora", max_new_tokens=12) == first == alone["alpaca-lora"]
    plans = [["alpaca-lora", "rte-p-tuning"], ["alpaca-prefix-tuning", "sst2-icl"], ["alpaca-last-layers", "sst2-ia3"],
             ["alpaca-qlora", "alpaca-last-layers"]]
    results: list = [None] * len(plans)

    def worker(k):
        names = [plans[k][i % 2] for i in range(len(PROMPTS))]
        results[k] = (names, [registry.generate(PROMPTS, adapters=names, max_new_tokens=12) for _ in range(2)])

    assert not run_threads(worker, len(plans))
    for names, runs in results:
        for texts in runs:
            assert texts == [alone[n][i] for i, n in enumerate(names)]
    for n, p in registry.model.named_parameters():
        assert torch.equal(p, before[n]), n
        assert not p.requires_grad


def test_handles_generate_predict_and_refuse_logits(registry, tiny_llama, alone, tmp_path, zoo_home):
    import zoo
    from zoo.config.prompts import answer, render_inputs
    from zoo.errors import BadInput
    from zoo.hub.local import LocalHub
    from zoo.serve.registry import AdapterHandle, clear_shared

    folder = make_causal_adapter(tiny_llama, tmp_path / "verbalizer", name="sst2-verbalizer", method="lora", seed=7,
                                 labels=["negative", "positive"])
    meta = json.loads((folder / "zoo.json").read_text())
    fmt = {"template": "Review: {text}\nSentiment:", "chat": True, "answer_prefix": " "}
    (folder / "zoo.json").write_text(json.dumps({**meta, "prompt": fmt, "generation": {**GENERATION, "max_new_tokens": 6}}))
    handle = registry.handle("sst2-verbalizer", folder=folder)
    texts = ["what a film", "dull and far too long"]
    prompts = render_inputs(handle.record.prompt, handle.record.examples, registry.tokenizer, texts)
    assert prompts[0].startswith("<|im_start|>user\nReview: what a film") and prompts[0].endswith("assistant\n ")
    generated = handle.generate(texts)  # zoo.json's max_new_tokens=6 applies
    assert generated == reference(tiny_llama, folder, prompts, max_new_tokens=6)
    assert handle.generate(texts, max_new_tokens=3) == reference(tiny_llama, folder, prompts, max_new_tokens=3)
    assert handle.predict(texts) == [answer(handle.record.label_words, t) for t in generated]
    with pytest.raises(BadInput, match="generate"):
        handle.logits(texts)
    with pytest.raises(BadInput, match="causal-LM adapter"):
        registry.predict(texts, adapter="sst2-verbalizer")
    with pytest.raises(BadInput, match="no labels"):
        registry.handle("alpaca-lora").predict(texts)
    registry.remove("sst2-verbalizer")
    # zoo.load hands out a handle on the process-wide registry of the base, which generates the same
    LocalHub().push(folder)
    try:
        loaded = zoo.load(str(tiny_llama), adapter="sst2-verbalizer")
        assert isinstance(loaded, AdapterHandle) and loaded.generate(texts) == generated
    finally:
        clear_shared()


def test_classification_adapters_share_the_causal_base(registry, tiny_llama, alone, tmp_path):
    """SEQ_CLS adapters (score head, last-token pooling) on the same Llama backbone as the causal ones."""
    import numpy as np
    from peft import LoraConfig

    from zoo.errors import BadInput
    from zoo.serve.loading import load_folder
    from zoo.testing import make_adapter

    texts = ["a gripping , beautifully acted film", "dull", "it is a movie that is long"]
    methods = {"cls-lora": LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"]),
               "cls-prefix-tuning": "prefix-tuning", "cls-prompt-tuning": "prompt-tuning", "cls-last-layers": "last-layers"}
    want = {}
    for k, (name, method) in enumerate(methods.items()):
        folder = make_adapter(str(tiny_llama), tmp_path / name, name=name, method=method,
                              labels=["a", "b", "c"][:2 + k % 2], seed=k + 11)
        registry.add(folder=folder)
        want[name] = load_folder(folder).logits(texts)
    names = [name for name in methods for _ in texts]  # one call: LoRA and last-layers rows share a forward
    got = registry.logits(texts * len(methods), adapters=names)
    for k, name in enumerate(methods):
        np.testing.assert_allclose(np.stack(got[3 * k:3 * k + 3]), want[name], atol=1e-5, err_msg=name)
    assert not np.allclose(want["cls-lora"], want["cls-prompt-tuning"], atol=1e-3)  # both 2 labels
    assert registry.classifier.model is registry.model.model  # one backbone in memory
    assert registry.generate(PROMPTS, adapter="sst2-prompt-tuning", max_new_tokens=12) == alone["sst2-prompt-tuning"]
    with pytest.raises(BadInput, match="classification adapter"):
        registry.generate(["hi"], adapter="cls-lora")
    for name in methods:
        registry.remove(name)


def test_bad_adapters_and_bad_inputs_leave_the_registry_serving(registry, folders, tiny_llama, alone, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from zoo.errors import (
        AdapterBaseMismatch,
        AdapterNotFound,
        BadInput,
        UnsafeAdapter,
        UnsupportedAdapter,
    )

    names = list(registry.names)
    # trained on another base (wider hidden size): the message names both bases; relabelled: refused on shapes
    other = tmp_path / "other-base"
    shutil.copytree(tiny_llama, other)
    config = LlamaConfig.from_pretrained(tiny_llama)
    config.hidden_size, config.intermediate_size, config.head_dim = 48, 96, 12
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(other)
    for method in ("lora", "prefix-tuning", "last-layers"):
        foreign = make_causal_adapter(other, tmp_path / f"foreign-{method}", name=f"foreign-{method}", method=method, seed=3)
        with pytest.raises(AdapterBaseMismatch) as e:
            registry.add(folder=foreign)
        assert str(other) in str(e.value) and str(tiny_llama) in str(e.value)
        meta = json.loads((foreign / "zoo.json").read_text())
        (foreign / "zoo.json").write_text(json.dumps({**meta, "base_model": str(tiny_llama)}))
        if method != "last-layers":  # a PEFT config still names the other base: refused for that first
            with pytest.raises(UnsafeAdapter, match="base_model_name_or_path .* disagrees"):
                registry.add(folder=foreign)
            peft_conf = json.loads((foreign / "adapter_config.json").read_text())
            peft_conf["base_model_name_or_path"] = str(tiny_llama)
            (foreign / "adapter_config.json").write_text(json.dumps(peft_conf))
        with pytest.raises(AdapterBaseMismatch, match="shape|width"):
            registry.add(folder=foreign)

    def broken(name: str, source: str = "alpaca-lora") -> Path:
        folder = tmp_path / name
        shutil.copytree(folders[source], folder)
        meta = json.loads((folder / "zoo.json").read_text())
        (folder / "zoo.json").write_text(json.dumps({**meta, "name": name}))
        return folder

    truncated = broken("truncated")
    data = (truncated / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeAdapter, match="corrupt or truncated"):
        registry.add(folder=truncated)
    pickled = broken("pickled")
    (pickled / "adapter_model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, pickled / "adapter_model.bin")
    with pytest.raises(UnsafeAdapter, match="pickle"):
        registry.add(folder=pickled)
    icl_with_weights = broken("icl-with-weights", "sst2-icl")
    torch.save({"x": torch.zeros(1)}, icl_with_weights / "adapter_model.bin")
    with pytest.raises(UnsafeAdapter, match="no weights"):
        registry.add(folder=icl_with_weights)
    mislabelled = broken("mislabelled")
    config_path = mislabelled / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "task_type": "SEQ_CLS"}))
    with pytest.raises(UnsafeAdapter, match="task_type"):
        registry.add(folder=mislabelled)
    bad_settings = broken("bad-settings")
    meta = json.loads((bad_settings / "zoo.json").read_text())
    (bad_settings / "zoo.json").write_text(json.dumps({**meta, "generation": {**GENERATION, "num_beams": 0}}))
    with pytest.raises(UnsafeAdapter, match="num_beams"):
        registry.add(folder=bad_settings)
    with_head = broken("with-lm-head", "alpaca-last-layers")
    state = load_file(str(with_head / "trained_layers.safetensors"))
    save_file({**state, "lm_head.weight": torch.zeros(config.vocab_size, 32)}, str(with_head / "trained_layers.safetensors"))
    with pytest.raises(UnsupportedAdapter, match="lm_head"):
        registry.add(folder=with_head)
    assert registry.names == names

    # bad requests: typed errors that say what to do
    with pytest.raises(BadInput, match="input 1: expected a prompt string"):
        registry.generate(["fine", ("not", "a string")], adapter="alpaca-lora")
    with pytest.raises(BadInput, match="allowed: max_new_tokens"):
        registry.generate(["fine"], adapter="alpaca-lora", max_tokens=3)
    with pytest.raises(BadInput, match="num_beams"):
        registry.generate(["fine"], adapter="alpaca-lora", num_beams=0)
    with pytest.raises(BadInput, match="wrap one input in a list"):
        registry.generate("fine", adapter="alpaca-lora")
    with pytest.raises(BadInput, match="2 inputs but 1 adapter"):
        registry.generate(["a", "b"], adapters=["alpaca-lora"])
    with pytest.raises(AdapterNotFound, match="nope"):
        registry.generate(["a"], adapter="nope")
    assert registry.generate([], adapter="alpaca-lora") == []
    huge = "a gripping film " * 2000  # far beyond max_length: the prompt keeps its last tokens
    assert registry.generate([huge], adapter="alpaca-lora", max_new_tokens=4) == \
        registry.generate(["a gripping film " * 40], adapter="alpaca-lora", max_new_tokens=4)

    got = registry.generate(PROMPTS * 2, adapters=["alpaca-lora"] * 5 + ["rte-p-tuning"] * 5, max_new_tokens=12)
    assert got == alone["alpaca-lora"] + alone["rte-p-tuning"]


def test_gpt2_conv1d_base_serves_causal_adapters(tiny_gpt2, tmp_path):
    """GPT-2: Conv1D projections (x @ W + b, W stored (in, out)), absolute positions, no pad token."""
    from zoo.hub.local import LocalHub
    from zoo.serve.registry import Zoo

    specs = {"g-lora": "lora", "g-ia3": "ia3", "g-prompt-tuning": "prompt-tuning", "g-prefix-tuning": "prefix-tuning",
             "g-last-layers": "last-layers"}
    folders = {name: make_causal_adapter(tiny_gpt2, tmp_path / name, name=name, method=method, seed=k + 21,
                                         linears=["c_attn", "c_proj", "c_fc"], top=("transformer.h.1.", "transformer.ln_f."),
                                         conv1d=True)
               for k, (name, method) in enumerate(specs.items())}
    z = Zoo(str(tiny_gpt2), hub=LocalHub(tmp_path / "hub"))
    for folder in folders.values():
        z.add(folder=folder)
    prompts = PROMPTS[:4]
    got = z.generate([p for _ in specs for p in prompts], adapters=[n for n in specs for _ in prompts], max_new_tokens=8)
    texts = {}
    for k, name in enumerate(specs):
        texts[name] = got[k * len(prompts):(k + 1) * len(prompts)]
        assert texts[name] == reference(tiny_gpt2, folders[name], prompts, max_new_tokens=8), name
    assert len({tuple(t) for t in texts.values()}) == len(specs)  # five methods, five different answers
