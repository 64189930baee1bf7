"""Every shipped recipe trains a few steps on the tiny model: trainable weights move, frozen ones do not."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import TrainerCallback

from tests.conftest import CLASSIFIER_RECIPES, ROOT, quick_overrides
from zoo import apply_overrides, load_recipe, load_recipes
from zoo.training import train


class Snapshot(TrainerCallback):
    """Copies every parameter when training starts, split by whether it is trainable."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        self.frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize("path", CLASSIFIER_RECIPES, ids=[p.stem for p in CLASSIFIER_RECIPES])
def test_recipe_trains_a_few_steps(path, tiny_bert, shared_data, mnli_mirror, tmp_path):
    recipe = load_recipes(path)[0]  # a family's or a sweep's members differ by task or numbers only: the first
    data = mnli_mirror if recipe.task == "glue/mnli" else shared_data
    recipe = apply_overrides(recipe, quick_overrides(tiny_bert, data, steps=4))
    snap = Snapshot()
    result = train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(snap,))

    params = dict(result.model.named_parameters())
    assert snap.trainable, "nothing was trainable"
    unchanged = [n for n, before in snap.trainable.items() if torch.equal(before, params[n].detach())]
    assert not unchanged, f"trainable tensors that did not move: {unchanged}"
    moved = [n for n, before in snap.frozen.items() if not torch.equal(before, params[n].detach())]
    assert not moved, f"frozen tensors that changed: {moved}"
    if recipe.method_name != "full":
        assert snap.frozen, "a parameter-efficient method left nothing frozen"
    else:
        assert not snap.frozen

    folder = result.adapter_dir
    meta = json.loads((folder / "zoo.json").read_text())
    assert meta["name"] == recipe.name and meta["method"] == recipe.method_name
    assert meta["efficiency"]["trainable_params"] == result.efficiency["trainable_params"] > 0
    assert meta["efficiency"]["adapter_bytes"] == (folder / meta["weights"]).stat().st_size
    assert 0 <= meta["metrics"]["validation"]["accuracy"] <= 1
    assert (folder / meta["weights"]).is_file()
    assert not list(folder.glob("*.bin")), "weights must be safetensors only"
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == str(tiny_bert)
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == round(meta["metrics"]["validation"]["accuracy"], 4)
    assert recipe.name in card and f"{meta['efficiency']['trainable_params']:,}" in card


def test_last_layers_trains_only_top_layers_and_head(tiny_bert, shared_data, tmp_path):
    recipe = apply_overrides(load_recipe("recipes/sst2_last_layers.py"),
                             quick_overrides(tiny_bert, shared_data) + ["method.num_layers=1"])
    snap = Snapshot()
    train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(snap,))
    assert any(".layer.1." in n for n in snap.trainable)
    assert not any(".layer.0." in n for n in snap.trainable)
    assert any(n.startswith("classifier.") for n in snap.trainable)
    assert not any("embeddings" in n for n in snap.trainable)


class CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated crash")


def test_crash_leaves_no_adapter_and_resume_continues(tiny_bert, shared_data, tmp_path):
    recipe = apply_overrides(load_recipe("recipes/sst2_lora.py"),
                             quick_overrides(tiny_bert, shared_data) + ["train.eval_steps=2", "train.max_steps=6"])
    with pytest.raises(KeyboardInterrupt):
        train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(CrashAt(5),))
    assert not (tmp_path / "run" / "adapter").exists(), "a crashed run must not leave an adapter behind"
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-4").is_dir()

    clock = tmp_path / "run" / "checkpoints" / "checkpoint-4" / "zoo_train_clock.json"
    before = json.loads(clock.read_text())["train_seconds"]
    assert 0 < before < 600, "each checkpoint keeps the seconds trained up to it"
    clock.write_text(json.dumps({"train_seconds": 5000.0}))  # as if steps 1-4 had taken 5,000 s

    resumed = train(recipe, output_dir=tmp_path / "run", progress=False, resume=True)
    assert resumed.efficiency["steps"] == 6
    assert 5000.0 < resumed.efficiency["train_seconds"] < 5600.0, "a resumed run's time includes the time before it"
    history = json.loads((resumed.adapter_dir / "zoo.json").read_text())["history"]
    logged = [row["step"] for row in history if "loss" in row]
    assert logged == [1, 2, 3, 4, 5, 6], "steps 1-4 come from the checkpoint, 5-6 from the resumed run"

    fresh = train(recipe, output_dir=tmp_path / "fresh", progress=False)
    fresh_history = json.loads((fresh.adapter_dir / "zoo.json").read_text())["history"]
    assert [r["loss"] for r in fresh_history if "loss" in r][:4] == [r["loss"] for r in history if "loss" in r][:4]


def test_resume_from_a_checkpoint_without_a_clock_says_so(tiny_bert, shared_data, tmp_path, capsys):
    recipe = apply_overrides(load_recipe("recipes/sst2_lora.py"),
                             quick_overrides(tiny_bert, shared_data) + ["train.eval_steps=2", "train.max_steps=4"])
    with pytest.raises(KeyboardInterrupt):
        train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(CrashAt(3),))
    (tmp_path / "run" / "checkpoints" / "checkpoint-2" / "zoo_train_clock.json").write_text("{not json")
    resumed = train(recipe, output_dir=tmp_path / "run", progress=False, resume=True)
    assert resumed.efficiency["steps"] == 4
    assert "does not record the time trained before it" in capsys.readouterr().out


def test_resume_without_checkpoint_is_an_error(tiny_bert, shared_data, tmp_path):
    from zoo import ZooError

    recipe = apply_overrides(load_recipe("recipes/sst2_lora.py"), quick_overrides(tiny_bert, shared_data))
    with pytest.raises(ZooError, match="no checkpoint"):
        train(recipe, output_dir=tmp_path / "run", progress=False, resume=True)


def test_balanced_class_weights_weigh_every_class_the_same_in_total(tiny_bert, shared_data, tmp_path):
    """train.class_weights=balanced: class c's loss is weighted n / (k x count_c), so the rare class's rows pull as
    hard in total as the common class's; a run with it trains and records the setting."""
    from zoo.training.classifier import balanced_loss

    labels = [0] * 6 + [1] * 2
    loss = balanced_loss(labels, 2)
    assert torch.allclose(loss.weights, torch.tensor([8 / (2 * 6), 8 / (2 * 2)]))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([0, 1, 1])
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    want = (ce * loss.weights[target]).sum() / 3
    assert torch.allclose(loss({"logits": logits}, target), want)
    assert torch.allclose(loss({"logits": logits}, target, num_items_in_batch=6), want / 2)  # accumulated: / all items

    recipe = apply_overrides(load_recipe("recipes/tweet_emotion_lora.py"),
                             quick_overrides(tiny_bert, shared_data, steps=3) + ["train.class_weights=balanced"])
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    assert meta["recipe"]["train"]["class_weights"] == "balanced"
    with pytest.raises(Exception, match="'balanced' or None"):
        apply_overrides(recipe, ["train.class_weights=inverse"])
    with pytest.raises(Exception, match="class_weights is for classifiers"):
        apply_overrides(load_recipe("recipes/alpaca_lora.py"), ["train.class_weights=balanced"])


def test_bf16_autocast_trains_and_keeps_fp32_weights(tiny_bert, shared_data, tmp_path):
    """train.bf16: the Trainer's bfloat16 autocast (on CPU too); the trained weights stay float32 on disk."""
    from safetensors import safe_open

    recipe = apply_overrides(load_recipe("recipes/sst2_lora.py"),
                             quick_overrides(tiny_bert, shared_data, steps=3) + ["train.bf16=true"])
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    assert meta["recipe"]["train"]["bf16"] is True and 0 <= meta["metrics"]["validation"]["accuracy"] <= 1
    with safe_open(str(result.adapter_dir / meta["weights"]), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_threads_follow_the_cores_other_processes_leave_free(monkeypatch):
    """FollowFreeCores: another process busy on one of two cores -> one torch thread; it leaves -> two again; a
    user's OMP_NUM_THREADS is left alone. Fed samples of (wall s, (busy, all) jiffies, own CPU s) in order."""
    from zoo.training.threads import FollowFreeCores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    # 10 s windows on 2 cores = 2,000 jiffies: 1,900 busy of which our own 9.5 s -> 0.95 core elsewhere; then 1,000
    # busy, all ours (10 s of CPU, 1 thread): 0 elsewhere
    samples = iter([(0.0, (0, 0), 0.0), (10.0, (1900, 2000), 9.5), (20.0, (2900, 4000), 19.5), (21.0, (3000, 4200), 20.0)])
    follow = FollowFreeCores(every=5.0, cores=2, sampler=lambda: next(samples))
    try:
        torch.set_num_threads(2)
        follow.threads = 2
        follow.enabled = True  # on any machine (CUDA or not): the arithmetic is what is tested
        follow.on_train_begin(None, None, None)
        follow.on_step_end(None, None, None)
        assert torch.get_num_threads() == 1 and follow.threads == 1
        follow.on_step_end(None, None, None)
        assert torch.get_num_threads() == 2
        follow.on_step_end(None, None, None)  # 1 s later: too soon to look again
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert not FollowFreeCores().enabled
    finally:
        torch.set_num_threads(before)


def test_length_groups_of_the_chosen_size(tmp_path):
    """train.length_group_batches=N: the Trainer's length grouping sorts runs of N batches, not transformers' 50."""
    import datasets
    from transformers import TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from zoo.training.common import ZooTrainer, _GroupedSampler

    lengths = [int(x) for x in torch.randint(1, 60, (640,), generator=torch.Generator().manual_seed(0))]
    sampler = _GroupedSampler(8, lengths=lengths, generator=torch.Generator().manual_seed(1), groups=4)
    order = list(sampler)
    assert sorted(order) == list(range(640))
    for start in range(0, 640, 32):  # each group of 4 x 8 sorted, longest first (but its first example: transformers
        group = [lengths[i] for i in order[start:start + 32]]  # swaps the longest of all into the first group's front)
        assert group[1:] == sorted(group[1:], reverse=True)
    assert [lengths[i] for i in order[:32]] != sorted(lengths, reverse=True)[:32], "groups of 4 batches, not one sort"

    data = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in lengths], "labels": [0] * 640})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to="none",
                             train_sampling_strategy="group_by_length")
    model = torch.nn.Linear(2, 2)
    chosen = ZooTrainer(model=model, args=args, train_dataset=data, group_size=4)._get_train_sampler(data)
    assert isinstance(chosen, _GroupedSampler) and chosen.groups == 4 and chosen.batch_size == 8
    default = ZooTrainer(model=model, args=args, train_dataset=data, group_size=50)._get_train_sampler(data)
    assert type(default) is LengthGroupedSampler


def test_peak_memory_is_the_runs_own_not_the_processs():
    """A build trains many recipes in one process: each run's peak must not include a larger earlier one."""
    import resource

    from zoo.training.common import peak_memory, start_peak_memory

    earlier = b"\x01" * (600 * 2**20)  # 600 MiB, every page written
    del earlier
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start_peak_memory()
    run = bytearray(b"\x02" * (50 * 2**20))
    peak, kind = peak_memory()
    assert kind == "run_peak_rss"
    assert 50 * 2**20 < peak < process_peak - 400 * 2**20, (peak, process_peak)
    del run


def test_peak_memory_starts_from_what_earlier_runs_left_not_what_they_freed():
    """What an earlier run freed in small pieces stays in the process's RSS (glibc keeps a fragmented heap's free
    pages); a run's peak starts after that memory is handed back, so a recipe trained after a larger one in the
    same build does not report the larger one's leftovers as its own."""
    from zoo.training.common import peak_memory, start_peak_memory

    def rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    before = rss()
    pieces = [bytes([i % 251]) * 1000 for i in range(400_000)]  # ~400 MB of 1 kB pieces: glibc's heap, not mmap
    kept = pieces[::64]  # one piece in 64 stays alive, so the heap cannot shrink from its top
    del pieces
    held = rss()
    assert held - before > 250 * 2**20, (held, before)  # the freed pieces are still in the RSS
    start_peak_memory()
    peak, kind = peak_memory()
    assert kind == "run_peak_rss"
    assert peak < held - 250 * 2**20, (peak, held)
    del kept


def test_base_dropout_turns_off_the_bases_dropout_while_training_and_is_recorded(tiny_bert, shared_data, tmp_path):
    """train.base_dropout=0: every Dropout of the base is p=0 while it trains (the method's own lora_dropout stays);
    zoo.json records it; the adapter answers as the same weights on a base loaded the plain way (eval mode: dropout
    plays no part in serving)."""
    from transformers import TrainerCallback

    from zoo.serve.loading import load_folder

    seen = {}

    class Look(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            seen.setdefault("p", {(name.split(".")[-2] if "lora_dropout" in name else "base", m.p)
                                  for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)})

    recipe = apply_overrides(load_recipe("recipes/sst2_lora.py"),
                             quick_overrides(tiny_bert, shared_data, steps=2) + ["train.base_dropout=0", "method.lora_dropout=0.1"])
    result = train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(Look(),))
    assert ("base", 0.0) in seen["p"] and ("base", 0.1) not in seen["p"]
    assert {p for kind, p in seen["p"] if kind != "base"} == {0.1}  # lora_dropout: the method's, untouched
    meta = json.loads((result.adapter_dir / "zoo.json").read_text())
    assert meta["recipe"]["train"]["base_dropout"] == 0.0
    served = load_folder(result.adapter_dir, base=str(tiny_bert))
    assert {m.p for m in served.model.modules() if isinstance(m, torch.nn.Dropout)} >= {0.1}  # the base as it ships


def test_base_dropout_finds_each_architectures_own_names(tiny_bert, tiny_gpt2, tiny_llama):
    """The config's dropout probabilities, whatever they are called; None (BERT's classifier_dropout) left to follow."""
    from zoo.models.dropout import dropout_overrides

    assert dropout_overrides(str(tiny_bert), 0.0) == {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    assert set(dropout_overrides(str(tiny_gpt2), 0.05)) == {"attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout"}
    assert "attention_dropout" in dropout_overrides(str(tiny_llama), 0.0)
    assert dropout_overrides(str(tiny_bert), None) == {}


def test_a_setting_added_later_leaves_the_built_zoos_fingerprints_alone():
    """train.base_dropout at its default (None) is not hashed: the tweet-emotion-lora kept in docs/records, built
    before the setting existed, is still up to date (zoo train skips it); set, it changes the fingerprint."""
    from zoo.config.recipe import recipe_fingerprint
    from zoo.errors import RecipeError

    kept = ROOT / "docs/records/hub/sentence-transformers--all-MiniLM-L6-v2/tweet-emotion-lora/current/zoo.json"
    recipe = load_recipe(ROOT / "recipes/tweet_emotion_lora.py")
    assert recipe.train.base_dropout is None
    assert recipe_fingerprint(recipe) == json.loads(kept.read_text())["fingerprint"]["recipe"]
    assert recipe_fingerprint(recipe) != recipe_fingerprint(apply_overrides(recipe, ["train.base_dropout=0"]))
    assert recipe_fingerprint(apply_overrides(recipe, ["train.base_dropout=0"])) != \
        recipe_fingerprint(apply_overrides(recipe, ["train.base_dropout=0.1"]))
    with pytest.raises(RecipeError, match="base_dropout"):
        apply_overrides(recipe, ["train.base_dropout=1.5"])


class Evaluations(TrainerCallback):
    def __init__(self):
        self.seen = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.seen.append(dict(metrics))


def test_p_tuning_keeps_its_best_epoch_exactly(tiny_bert, shared_data, tmp_path):
    """early_stopping_patience restores the best epoch: P-tuning's published prompts and validation figures are that
    epoch's, not its saved prompts sent through the prompt encoder's MLP a second time (PEFT's checkpoints hold the
    encoder's output; the zoo's also hold the encoder)."""
    from zoo.training.common import PROMPT_ENCODER_FILE

    recipe = apply_overrides(load_recipe("recipes/tweet_emotion_p_tuning.py"),
                             quick_overrides(tiny_bert, shared_data) + ["train.max_steps=-1", "train.epochs=4"])
    evaluations = Evaluations()
    result = train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(evaluations,))
    epochs = [e for e in evaluations.seen if "eval_official" in e]
    assert len(epochs) >= 2
    best = max(epochs, key=lambda e: e["eval_official"])  # the first of equals, as the Trainer keeps it
    assert result.metrics["official"] == pytest.approx(best["eval_official"], abs=1e-9)
    assert result.metrics["loss"] == pytest.approx(best["eval_loss"], rel=1e-5)
    assert list((tmp_path / "run" / "checkpoints").glob(f"checkpoint-*/{PROMPT_ENCODER_FILE}"))


def test_p_tuning_resumes_where_it_stopped(tiny_bert, shared_data, tmp_path):
    """A P-tuning run resumed from a checkpoint trains the same prompts as one that was never interrupted; a checkpoint
    without the encoder (written before the zoo kept it) is refused with what to do."""
    from safetensors.torch import load_file

    from zoo.errors import ZooError
    from zoo.training.common import PROMPT_ENCODER_FILE

    recipe = apply_overrides(load_recipe("recipes/tweet_emotion_p_tuning.py"),
                             quick_overrides(tiny_bert, shared_data) + [
                                 "train.eval_steps=2", "train.max_steps=6", "train.base_dropout=0",
                                 "train.early_stopping_patience=null"])
    with pytest.raises(KeyboardInterrupt):
        train(recipe, output_dir=tmp_path / "run", progress=False, callbacks=(CrashAt(5),))
    resumed = train(recipe, output_dir=tmp_path / "run", progress=False, resume=True)
    fresh = train(recipe, output_dir=tmp_path / "fresh", progress=False)

    def prompts(result):
        meta = json.loads((result.adapter_dir / "zoo.json").read_text())
        return load_file(str(result.adapter_dir / meta["weights"]))["prompt_embeddings"]

    torch.testing.assert_close(prompts(resumed), prompts(fresh), rtol=1e-4, atol=1e-6)

    with pytest.raises(KeyboardInterrupt):
        train(recipe, output_dir=tmp_path / "old", progress=False, callbacks=(CrashAt(3),))
    (tmp_path / "old" / "checkpoints" / "checkpoint-2" / PROMPT_ENCODER_FILE).unlink()
    with pytest.raises(ZooError, match="cannot be restored exactly.*without --resume"):
        train(recipe, output_dir=tmp_path / "old", progress=False, resume=True)


def test_saves_ask_the_hub_nothing_about_the_bases_vocabulary(tiny_bert, shared_data, tmp_path, monkeypatch):
    """A base named by its Hub id but read from a local folder: neither a checkpoint nor the adapter's save asks
    the Hub whether the vocabulary was resized (PEFT's "auto" does, once per save; offline it warns each time)."""
    import peft.utils.save_and_load as peft_save

    asked = []
    monkeypatch.setattr(peft_save, "check_file_exists_on_hf_hub", lambda *a, **kw: asked.append(a))
    monkeypatch.setenv("ZOO_MODEL_PATHS", f"someone/tiny-bert={tiny_bert}")
    recipe = apply_overrides(load_recipe("recipes/sst2_lora.py"), quick_overrides(tiny_bert, shared_data)
                             + ["base_model=someone/tiny-bert", "train.eval_steps=2", "train.max_steps=4"])
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    assert list((tmp_path / "run" / "checkpoints").glob("checkpoint-*/adapter_model.safetensors")), "no checkpoint"
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "someone/tiny-bert"
    assert asked == [], f"PEFT asked the Hub about {asked}"

    # the check is live: PEFT's default save of the same kind of model asks; the zoo's save does not
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from zoo.methods import peft_common

    model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2),
                           LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query"]))
    model.peft_config["default"].base_model_name_or_path = "someone/tiny-bert"
    peft_common.save(model, None, tmp_path / "zoo-save", None)
    assert asked == []
    with pytest.warns(UserWarning, match="Could not find a config file"):  # what the recording check leads to
        model.save_pretrained(tmp_path / "peft-default")
    assert asked and asked[0][0] == "someone/tiny-bert"
