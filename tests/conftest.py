"""Shared fixtures: a tiny BERT built here (never downloaded), the shared data mirror, small mirrors."""

from __future__ import annotations

import collections
import os
import re
from pathlib import Path

# Before transformers / peft / huggingface_hub are imported anywhere: the tests never reach a network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("ZOO_DATA_DIR", None)
# The suite runs on pytest-xdist workers, one per core (pyproject's addopts). Each torch then gets one thread:
# two OpenMP pools spinning on two cores made training 18-25x slower here. Subprocesses inherit this.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ZOO_TEST_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()
RECIPES = sorted((ROOT / "recipes").glob("*.py"))
# Recipes on causal LMs (generation, verbalizers, QLoRA, in-context baselines) train on tiny_llama / tiny_gpt2.
CAUSAL_STEMS = ("alpaca_", "imdb_", "cnn_dailymail_", "_icl", "llama3")
CAUSAL_RECIPES = [p for p in RECIPES if any(s in p.stem for s in CAUSAL_STEMS)]
CLASSIFIER_RECIPES = [p for p in RECIPES if p not in CAUSAL_RECIPES]


def pytest_configure(config):
    if not (SHARED_DATA / "sst2" / "train.tsv").is_file():
        raise pytest.UsageError(f"the shared data mirror is missing at {SHARED_DATA}; set ZOO_TEST_DATA_DIR")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with a word-level vocab from SST-2 and RTE text, saved as safetensors."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = collections.Counter()
    for path in (SHARED_DATA / "sst2" / "train.tsv", SHARED_DATA / "rte" / "train.tsv"):
        for line in path.read_text(encoding="utf-8").splitlines()[:3000]:
            words.update(re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]", line.lower()))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + [w for w, _ in words.most_common(1500)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder, safe_serialization=True)  # a bare encoder, as bases are
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def mnli_mirror(tmp_path_factory) -> Path:
    """A tiny MNLI-shaped mirror (3 labels) made from RTE sentence pairs, for the roberta-large recipes."""
    root = tmp_path_factory.mktemp("mnli-mirror")
    lines = (SHARED_DATA / "rte" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:121]
    (root / "mnli").mkdir()
    rows = []
    for i, line in enumerate(lines):
        s1, s2 = line.split("\t")[:2]
        rows.append(f"{s1}\t{s2}\t{i % 3}\t{i}")
    header = "sentence1\tsentence2\tlabel\tidx"
    (root / "mnli" / "train.tsv").write_text("\n".join([header, *rows[:90]]) + "\n", encoding="utf-8")
    (root / "mnli" / "dev_matched.tsv").write_text("\n".join([header, *rows[90:]]) + "\n", encoding="utf-8")
    return root


@pytest.fixture()
def zoo_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


def quick_overrides(tiny_bert: Path, data_dir: Path, steps: int = 3) -> list[str]:
    """Overrides that make any shipped recipe train a few steps on the tiny model."""
    return [
        f"base_model={tiny_bert}", f"data_dir={data_dir}", f"train.max_steps={steps}",
        "train.max_train_samples=48", "train.max_eval_samples=24", "train.batch_size=8", "train.eval_batch_size=16",
        "train.max_length=64", "train.logging_steps=1",
    ]


@pytest.fixture(scope="session")
def tiny_roberta(tiny_bert, tmp_path_factory) -> Path:
    """A 2-layer RoBERTa (no pooler, a two-Linear head) with tiny_bert's word-level tokenizer."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    folder = tmp_path_factory.mktemp("tiny-roberta")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=600, pad_token_id=tokenizer.pad_token_id,
                           type_vocab_size=2)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


CHAT_TEMPLATE = (  # SmolLM2's ChatML layout, so the tiny Llama exercises the chat-template path
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_bpe(folder: Path, specials: list[str], size: int = 1200):
    """A byte-level BPE trained here on mirror text (SST-2, RTE, Alpaca): round-trips any text, as real LM tokenizers do."""
    import json

    from tokenizers import ByteLevelBPETokenizer

    texts = []
    for path in (SHARED_DATA / "sst2" / "train.tsv", SHARED_DATA / "rte" / "train.tsv"):
        texts += path.read_text(encoding="utf-8").splitlines()[:2000]
    for row in json.loads((SHARED_DATA / "alpaca" / "alpaca_data.json").read_text(encoding="utf-8")):
        texts += [row["instruction"], row["input"], row["output"]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=size, min_frequency=2, special_tokens=specials)
    bpe.save(str(folder / "tokenizer.json"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer Llama (hidden 32, grouped-query attention) with a byte-level BPE and a ChatML chat template, like SmolLM2."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    _byte_bpe(folder, specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token="<|im_start|>",
                                        eos_token="<|im_end|>", unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
                         initializer_range=0.2)  # large enough that a few steps move the logits
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 (Conv1D projections, no chat template, no pad token) with a byte-level BPE."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    _byte_bpe(folder, ["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=1024,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def causal_mirror(tmp_path_factory) -> Path:
    """A mirror for the Hub-only causal tasks, from real mirror text: IMDB-shaped reviews (SST-2 sentences)
    and CNN/DailyMail-shaped articles (an Alpaca response as the article, its first sentence as the summary)."""
    import json

    root = tmp_path_factory.mktemp("causal-mirror")
    (root / "imdb").mkdir()
    lines = (SHARED_DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    (root / "imdb" / "train.tsv").write_text("\n".join(["label\ttext", *lines[1:161]]) + "\n", encoding="utf-8")
    (root / "cnn_dailymail").mkdir()
    records = json.loads((SHARED_DATA / "alpaca" / "alpaca_data.json").read_text(encoding="utf-8"))
    pairs = [{"article": r["output"], "highlights": r["output"].split(". ")[0]} for r in records if len(r["output"]) > 80]
    for split, chunk in (("train", pairs[:60]), ("validation", pairs[60:80])):
        text = "\n".join(json.dumps(p) for p in chunk) + "\n"
        (root / "cnn_dailymail" / f"{split}.jsonl").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def space_home(tmp_path_factory, tiny_bert, tiny_llama) -> Path:
    """A ZOO_HOME whose local hub holds what the demo shows: classifiers of several methods and label sets on
    tiny_bert (three trained a few steps, so their cards carry real metrics; the rest random), a fully fine-tuned
    model, two causal entries on tiny_llama (an Alpaca LoRA and a zero-shot SST-2 prompt), and one adapter whose
    weights were damaged after it was published."""
    from tests.test_causal import quick as causal_quick
    from zoo import apply_overrides, load_recipe
    from zoo.data.tasks import TASKS
    from zoo.hub.local import LocalHub
    from zoo.testing import make_adapter
    from zoo.training import train

    home = tmp_path_factory.mktemp("space-home")
    hub, runs = LocalHub(home / "hub"), home / "runs"
    trained = [(f, quick_overrides(tiny_bert, SHARED_DATA, steps=4)) for f in ("sst2_lora.py", "rte_lora.py", "sst2_full.py")]
    trained += [(f, causal_quick(tiny_llama, SHARED_DATA)) for f in ("alpaca_lora.py", "sst2_zero_shot_icl.py")]
    for name, overrides in trained:
        recipe = apply_overrides(load_recipe(ROOT / "recipes" / name), overrides)
        hub.push(train(recipe, output_dir=runs / recipe.name, progress=False).adapter_dir)
    random_ones = [("sst2-ia3", "ia3", "glue/sst2"), ("sst2-prompt-tuning", "prompt-tuning", "glue/sst2"),
                   ("sst2-prefix-tuning", "prefix-tuning", "glue/sst2"), ("tweet-emotion-lora", "lora", "tweet_eval/emotion"),
                   ("tweet-stance-climate-ia3", "ia3", "tweet_eval/stance_climate"), ("tweet-hate-lora", "lora", "tweet_eval/hate")]
    for seed, (name, method, task) in enumerate(random_ones):
        folder = make_adapter(str(tiny_bert), runs / name, name=name, method=method, labels=TASKS[task].labels, task=task,
                              seed=seed, scale=1.0)
        published = hub.push(folder)
    weights = published.path / "adapter_model.safetensors"  # tweet-hate-lora: damaged in the hub, after the push
    weights.write_bytes(weights.read_bytes()[:200])
    return home


@pytest.fixture(scope="module")
def space_backend(space_home):
    from zoo.hub.backends import LocalBackend
    from zoo.hub.local import LocalHub

    return LocalBackend(LocalHub(space_home / "hub"))


@pytest.fixture(scope="module")
def space_cat(space_backend):
    """The demo's catalogue of space_home's hub, in this process."""
    from zoo.demo.catalogue import Catalogue

    return Catalogue(space_backend)


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory):
    """A fresh virtual environment with adapter-zoo installed from a wheel built here, offline (no index).

    The wheel is built from a copy of the package's files only (no stale build/ folder can leak in); the
    new environment sees this one's dependencies (torch, transformers, ...) through a .pth line, and no
    file of this checkout: ``import zoo`` there is the wheel's."""
    import shutil
    import subprocess
    import sys
    import sysconfig
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "zoo", src / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    dist = root / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(dist), str(src)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(dist.glob("adapter_zoo-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zoo-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return SimpleNamespace(python=python, bin=venv / "bin", wheel=wheel, site=site)
