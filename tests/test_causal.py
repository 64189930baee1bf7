"""Causal LMs: prompt masking, every causal recipe trains a few steps on a tiny decoder, perplexity
falls with training, in-context baselines publish and load, generation settings apply."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import AutoTokenizer, TrainerCallback

from tests.conftest import CAUSAL_RECIPES, SHARED_DATA
from zoo import apply_overrides, load_recipe
from zoo.config.prompts import PromptFormat, label_words, render, verbalize
from zoo.errors import BadInput, RecipeError
from zoo.training import train
from zoo.training.causal_data import collator, encode_example, rouge


class Snapshot(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        self.frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}


def quick(base, data, steps=3, extra=()):
    return [f"base_model={base}", f"data_dir={data}", f"train.max_steps={steps}", "train.max_train_samples=24",
            "train.max_eval_samples=8", "train.batch_size=4", "train.eval_batch_size=8", "train.max_length=96",
            "train.logging_steps=1", "train.max_generate_samples=6", "generation.max_new_tokens=6",
            "generation.num_beams=1", "train.eval_steps=None", "train.early_stopping_patience=None",
            "train.gradient_accumulation_steps=1", *extra]


def quantization_works() -> bool:
    from zoo.models.quantization import cpu_4bit_status

    return torch.cuda.is_available() or cpu_4bit_status()[0]


# ------------------------------------------------------------------------------------------- masking
def test_prompt_tokens_are_masked_exactly(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    fmt = PromptFormat(template="{instruction}\n\n{input}", template_no_input="{instruction}").to_dict()
    rows = [({"instruction": "Name a colour.", "input": ""}, "Blue."),
            ({"instruction": "Translate to French.", "input": "good morning"}, "Bonjour, comment allez-vous aujourd'hui?")]
    encoded = []
    for values, answer in rows:
        enc = encode_example(tokenizer, fmt, values, answer, max_length=128)
        prompt_ids = tokenizer(render(fmt, tokenizer, values))["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert enc["input_ids"] == prompt_ids + answer_ids
        assert enc["labels"] == [-100] * len(prompt_ids) + answer_ids  # -100 exactly on the prompt positions
        assert tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")  # the chat template was used
        encoded.append(enc)
    assert "### Input" not in render(fmt, tokenizer, rows[0][0]) and "good morning" in render(fmt, tokenizer, rows[1][0])

    batch = collator(tokenizer)(encoded)  # padding: inputs padded, labels -100 there, answers untouched
    for r, enc in enumerate(encoded):
        n = len(enc["input_ids"])
        assert batch["labels"][r, :n].tolist() == enc["labels"]
        assert (batch["labels"][r, n:] == -100).all() and (batch["attention_mask"][r, n:] == 0).all()

    long = encode_example(tokenizer, fmt, {"instruction": "word " * 300, "input": ""}, "Short answer.", max_length=64)
    assert len(long["input_ids"]) == 64  # the prompt lost its start; the answer survived whole
    answer_ids = tokenizer("Short answer.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert long["input_ids"][-len(answer_ids):] == answer_ids and long["labels"][-len(answer_ids):] == answer_ids
    assert long["labels"][:-len(answer_ids)] == [-100] * (64 - len(answer_ids))


def test_prompt_without_chat_template_and_k_shot(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    fmt = PromptFormat(template="Review: {text}\nSentiment:", answer_prefix=" ", system="You are a film critic.").to_dict()
    shots = [{"text": "a delight", "output": "positive"}, {"text": "a bore", "output": "negative"}]
    text = render(fmt, tokenizer, "dull and long", shots)
    assert text == ("You are a film critic.\n\nReview: a delight\nSentiment: positive\n\nReview: a bore\nSentiment: negative"
                    "\n\nReview: dull and long\nSentiment: ")
    with pytest.raises(BadInput):
        render(fmt, tokenizer, 42)


def test_verbalizer_reads_the_first_label_word():
    words = label_words(["entailment", "not_entailment"], {"entailment": ["yes"], "not_entailment": ["no"]})
    assert verbalize(words, " Yes, it follows.") == "entailment"
    assert verbalize(words, "No. yes?") == "not_entailment"
    assert verbalize(words, "noted, yesterday") is None  # whole words only
    assert verbalize(label_words(["negative", "positive"]), "It is positive, not negative") == "positive"
    assert verbalize(label_words(["negative", "positive"]), "I cannot tell.") is None


def test_rouge_is_computed_offline():
    scores = rouge(["the cat sat on the mat", "completely different"], ["a cat sat on a mat", "the cat sat on the mat"])
    # First pair: 4 shared unigrams of 6 and 6 -> F1 2/3; second pair: nothing shared.
    assert scores["rouge1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-6)
    assert 0 < scores["rouge2"] < scores["rouge1"] and scores["n"] == 2


def test_recipe_rules_for_causal_models():
    base = load_recipe("recipes/alpaca_lora.py")
    with pytest.raises(RecipeError, match="max_new_tokens"):
        apply_overrides(load_recipe("recipes/sst2_lora.py"), ["generation.max_new_tokens=0"])
    import dataclasses

    with pytest.raises(RecipeError, match="for causal LMs"):
        dataclasses.replace(load_recipe("recipes/sst2_lora.py"), prompt=PromptFormat(template="Review: {text}"))

    with pytest.raises(RecipeError, match="needs prompt"):
        dataclasses.replace(base, prompt=None)
    with pytest.raises(RecipeError, match="task tatsu-lab/alpaca has fields"):
        dataclasses.replace(base, prompt=PromptFormat(template="Review: {text}"))
    with pytest.raises(RecipeError, match="LoraConfig"):
        from peft import IA3Config

        dataclasses.replace(load_recipe("recipes/alpaca_qlora.py"), method=IA3Config(task_type="CAUSAL_LM"),
                            name="alpaca-ia3")


# ------------------------------------------------------------------------------------------- recipes
def _base_for(recipe, tiny_llama, tiny_gpt2):
    return tiny_gpt2 if "gpt2" in recipe.base_model else tiny_llama


@pytest.mark.parametrize("path", CAUSAL_RECIPES, ids=[p.stem for p in CAUSAL_RECIPES])
def test_causal_recipe_trains_a_few_steps(path, tiny_llama, tiny_gpt2, causal_mirror, mnli_mirror, tmp_path):
    from zoo.serve.loading import load_folder

    recipe = load_recipe(path)
    if recipe.quantization is not None and not quantization_works():
        pytest.skip("4-bit bitsandbytes needs CUDA here (see zoo/quantization.py cpu_4bit_status)")
    data = {"glue/mnli": mnli_mirror, "tatsu-lab/alpaca": SHARED_DATA, "glue/sst2": SHARED_DATA,
            "tweet_eval/emotion": SHARED_DATA}.get(recipe.task, causal_mirror)
    base = _base_for(recipe, tiny_llama, tiny_gpt2)
    recipe = apply_overrides(recipe, quick(base, data))
    snap = Snapshot()
    result = train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(snap,))
    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    assert meta["name"] == recipe.name and meta["method"] == recipe.method_name

    if recipe.method_name == "icl":
        assert meta["weights"] is None and meta["efficiency"]["trainable_params"] == 0
        assert len(meta["examples"]) == recipe.prompt.shots
    else:
        params = dict(result.model.named_parameters())
        unchanged = [n for n, before in snap.trainable.items() if torch.equal(before, params[n].detach().to(before.dtype))]
        assert snap.trainable and not unchanged, f"trainable tensors that did not move: {unchanged}"
        moved = [n for n, before in snap.frozen.items() if not torch.equal(before, params[n].detach())]
        assert snap.frozen and not moved, f"frozen tensors that changed: {moved}"
        assert (result.adapter_dir / meta["weights"]).is_file()
    front = yaml.safe_load((result.adapter_dir / "README.md").read_text().split("---")[1])
    assert front["base_model"] == str(base)

    if meta.get("task_type") != "CAUSAL_LM":  # QLoRA classification with a head (mnli-llama3-qlora)
        assert 0 <= meta["metrics"]["validation"]["accuracy"] <= 1
        return
    validation = meta["metrics"]["validation"]
    assert validation["perplexity"] > 1 and meta["baseline"]["base_model"]["perplexity"] > 1
    if recipe.task in ("glue/sst2", "stanfordnlp/imdb"):
        assert 0 <= validation["accuracy"] <= 1 - validation["no_answer_rate"] + 1e-9
    if recipe.task == "abisee/cnn_dailymail":
        assert {"rouge1", "rouge2", "rougeL"} <= set(validation)
    model = load_folder(result.adapter_dir)
    texts = model.generate([{f: "Say something." for f in meta["text_fields"]}], max_new_tokens=3)
    assert isinstance(texts[0], str)


def test_instruction_tuning_lowers_answer_perplexity(tiny_llama, tmp_path):
    recipe = apply_overrides(load_recipe("recipes/alpaca_lora.py"), quick(tiny_llama, SHARED_DATA, steps=30, extra=[
        "train.learning_rate=0.05", "train.max_train_samples=64", "train.warmup_ratio=0", "method.lora_dropout=0"]))
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    assert result.metrics["perplexity"] < 0.8 * result.baseline["base_model"]["perplexity"]


def test_in_context_entry_publishes_and_loads(tiny_llama, zoo_home, tmp_path):
    import zoo
    from zoo.hub.local import LocalHub

    recipe = apply_overrides(load_recipe("recipes/sst2_3_shot_icl.py"),
                             quick(tiny_llama, SHARED_DATA, extra=["prompt.system=You are an expert film critic."]))
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    v = meta["metrics"]["validation"]
    assert {"accuracy", "no_answer_rate"} <= set(v) and v["generated_n"] == 6
    assert sorted(p.name for p in result.adapter_dir.iterdir()) == ["README.md", "zoo.json"]
    LocalHub().push(result.adapter_dir)
    handle = zoo.load(str(tiny_llama), adapter="sst2-3-shot-icl")
    out = handle.predict(["a gripping film", "a dull film"])
    assert all(set(o) >= {"label", "text", "no_answer"} and o["no_answer"] == (o["label"] is None) for o in out)
    prompt = render(meta["prompt"], AutoTokenizer.from_pretrained(tiny_llama), "x", meta["examples"])
    assert "You are an expert film critic." in prompt
    assert all(ex["text"] in prompt and ex["output"] in ("negative", "positive") for ex in meta["examples"])


def test_generation_settings_apply(tiny_llama, tmp_path):
    from zoo.serve.loading import load_folder

    recipe = apply_overrides(load_recipe("recipes/alpaca_prompt_tuning.py"), quick(tiny_llama, SHARED_DATA, steps=1))
    model = load_folder(train(recipe, output_dir=tmp_path / "run", progress=False).adapter_dir)
    tok = model.tokenizer
    prompts = ["Name a colour.", {"instruction": "Add the numbers.", "input": "2 and 3"}]
    greedy = model.generate(prompts, max_new_tokens=5)
    assert greedy == model.generate(prompts, max_new_tokens=5)  # greedy is deterministic
    assert all(len(tok(t, add_special_tokens=False)["input_ids"]) <= 6 for t in greedy)
    beams = model.generate(prompts, max_new_tokens=5, num_beams=3)
    assert len(beams) == 2 and all(isinstance(b, str) for b in beams)
    torch.manual_seed(0)
    sampled = [model.generate(prompts[:1], max_new_tokens=8, do_sample=True, temperature=2.0, top_k=0)[0] for _ in range(4)]
    assert len(set(sampled)) > 1  # sampling at temperature 2 varies
    with pytest.raises(BadInput, match="allowed"):
        model.generate(prompts, beam_width=3)
    with pytest.raises(BadInput):
        model.generate("not a list")
    with pytest.raises(BadInput, match="generate"):
        model.logits(["x"])


def test_k_shot_examples_take_turns_over_labels():
    from zoo.data.tasks import get_task, load_split
    from zoo.training.causal import pick_shots

    task = get_task("glue/sst2")
    train_raw = load_split(task, "train", data_dir=SHARED_DATA, max_samples=200, seed=1)
    for seed in range(5):
        picked = pick_shots(train_raw, task, 3, seed)
        labels = [train_raw[i]["label"] for i in picked]
        assert len(set(picked)) == 3 and sorted(set(labels)) == [0, 1]  # never three of one label
        assert picked == pick_shots(train_raw, task, 3, seed)  # seeded: the published examples are reproducible
    alpaca = load_split(get_task("tatsu-lab/alpaca"), "train", data_dir=SHARED_DATA)
    assert len(pick_shots(alpaca, get_task("tatsu-lab/alpaca"), 2, 0)) == 2


@pytest.mark.parametrize("method", ["p-tuning", "prefix-tuning", "ia3"])
def test_other_peft_methods_train_on_a_causal_lm(method, tiny_llama, tmp_path):
    """P-tuning, prefix tuning and IA3 (no shipped causal recipe) go through the same path as LoRA."""
    import dataclasses

    from peft import IA3Config, PrefixTuningConfig, PromptEncoderConfig

    from zoo.serve.loading import load_folder

    config = {"p-tuning": PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, encoder_hidden_size=16),
              "prefix-tuning": PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
              "ia3": IA3Config(task_type="CAUSAL_LM")}[method]
    recipe = dataclasses.replace(load_recipe("recipes/alpaca_lora.py"), name=f"alpaca-{method}", method=config)
    recipe = apply_overrides(recipe, quick(tiny_llama, SHARED_DATA, steps=2))
    snap = Snapshot()
    result = train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(snap,))
    params = dict(result.model.named_parameters())
    assert snap.trainable and all(not torch.equal(b, params[n].detach()) for n, b in snap.trainable.items())
    assert all(torch.equal(b, params[n].detach()) for n, b in snap.frozen.items())
    assert result.metrics["perplexity"] > 1
    assert isinstance(load_folder(result.adapter_dir).generate(["Name a colour."], max_new_tokens=3)[0], str)
