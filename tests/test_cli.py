"""The `zoo` command as a user runs it: a subprocess, offline, against a temporary ZOO_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, quick_overrides

ZOO = str(Path(sys.executable).parent / "zoo")


def run(args, env_extra, cwd=ROOT, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env_extra}
    proc = subprocess.run([ZOO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture()
def env(tmp_path, shared_data):
    return {"ZOO_HOME": str(tmp_path / "home"), "ZOO_DATA_DIR": str(shared_data)}


def test_train_push_eval_list_and_load(tiny_bert, shared_data, tmp_path, env):
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=6) for a in ("--set", o)]
    out = run(["train", "recipes/sst2_lora.py", *sets, "--output-dir", str(tmp_path / "run"), "--push", "--no-progress"], env)
    assert "published sst2-lora" in out.stdout and "majority baseline" in out.stdout

    listing = run(["list", "--task", "glue/sst2"], env).stdout
    assert "sst2-lora" in listing and "lora" in listing

    result = run(["eval", "sst2-lora", "--base", str(tiny_bert), "--split", "validation", "--json"], env)
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"accuracy", "macro_f1", "loss", "n"} and metrics["n"] == 872
    meta = json.loads((tmp_path / "run" / "adapter" / "zoo.json").read_text())
    assert metrics["n"] != meta["metrics"]["validation"]["n"]  # training evaluated a 24-example sample

    sample = run(["eval", str(tmp_path / "run" / "adapter"), "--max-samples", "24", "--json"], env)
    assert json.loads(sample.stdout.strip().splitlines()[-1])["n"] == 24

    mirror = tmp_path / "mirror-with-test" / "sst2"  # e.g. the withheld test split, held by an evaluator
    mirror.mkdir(parents=True)
    (mirror / "test.tsv").write_text("".join((shared_data / "sst2" / "dev.tsv").read_text().splitlines(True)[:41]))
    test = run(["eval", "sst2-lora", "--base", str(tiny_bert), "--split", "test", "--data-dir", str(mirror.parent), "--json"], env)
    assert json.loads(test.stdout.strip().splitlines()[-1])["n"] == 40

    predicted = run(["predict", "a gripping film", "dull and far too long", "--base", str(tiny_bert),
                     "--adapter", "sst2-lora", "--json"], env)
    rows = json.loads(predicted.stdout.strip().splitlines()[-1])
    assert [r["input"] for r in rows] == ["a gripping film", "dull and far too long"]
    assert all(r["adapter"] == "sst2-lora" and set(r["scores"]) == {"negative", "positive"} for r in rows)
    missing = run(["predict", "x", "--base", str(tiny_bert), "--adapter", "nope"], env, check=False)
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr

    code = f"import zoo; print(zoo.load({str(tiny_bert)!r}, adapter='sst2-lora').predict(['a gripping film'])[0]['label'])"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] in ("negative", "positive")
    assert proc.stdout.strip().splitlines()[-1] == rows[0]["label"]


def test_tweeteval_eval_reports_official_metric(tiny_bert, shared_data, tmp_path, env):
    sets = [a for o in quick_overrides(tiny_bert, shared_data) for a in ("--set", o)]
    run(["train", "recipes/sst2_ia3.py", *sets, "--set", "task=tweet_eval/irony", "--set", "name=tweet-irony-ia3",
         "--output-dir", str(tmp_path / "run"), "--no-progress"], env)
    result = run(["eval", str(tmp_path / "run" / "adapter"), "--max-samples", "50", "--json"], env)
    assert "official" in json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["syntax", "no-recipe", "unknown-set", "unknown-base", "missing-split", "empty-train", "unknown-method"])
def test_bad_input_is_a_clear_error_and_writes_nothing(case, tiny_bert, shared_data, tmp_path, env):
    recipe = "recipes/sst2_lora.py"
    sets = quick_overrides(tiny_bert, shared_data)
    expect = {
        "syntax": "syntax error", "no-recipe": "defines no `recipe`", "unknown-set": "unknown key 'epochz'",
        "unknown-base": "base model 'nobody/nothing' not found", "missing-split": "no folder",
        "empty-train": "is empty", "unknown-method": "unknown method VeraConfig",
    }[case]
    if case == "syntax":
        recipe = tmp_path / "bad.py"
        recipe.write_text("recipe = (\n")
    elif case == "no-recipe":
        recipe = tmp_path / "bad.py"
        recipe.write_text("x = 1\n")
    elif case == "unknown-method":
        recipe = tmp_path / "vera.py"
        recipe.write_text("from peft import VeraConfig\nfrom zoo import Recipe\n"
                          "recipe = Recipe(name='sst2-vera', base_model='x', task='glue/sst2', method=VeraConfig())\n")
    elif case == "unknown-set":
        sets.append("train.epochz=1")
    elif case == "unknown-base":
        sets.append("base_model=nobody/nothing")
    elif case == "missing-split":
        (tmp_path / "mirror").mkdir()
        sets.append(f"data_dir={tmp_path / 'mirror'}")
    elif case == "empty-train":
        (tmp_path / "mirror" / "sst2").mkdir(parents=True)
        (tmp_path / "mirror" / "sst2" / "train.tsv").write_text("label\tsentence\n")
        (tmp_path / "mirror" / "sst2" / "dev.tsv").write_text("label\tsentence\n1\tfine\n")
        sets.append(f"data_dir={tmp_path / 'mirror'}")
    args = ["train", str(recipe), *[a for o in sets for a in ("--set", o)], "--output-dir", str(tmp_path / "run"), "--push"]
    proc = run(args, env, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expect in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists(), "a failed run leaves no output folder"
    assert not (tmp_path / "home").exists(), "and publishes nothing"


def test_causal_train_push_generate_predict_and_eval(tiny_llama, shared_data, tmp_path, env):
    """A causal adapter and an in-context entry, from the shell: train, publish, generate, predict, eval, list."""
    from tests.test_causal import quick

    sets = [a for o in quick(tiny_llama, shared_data, steps=2) for a in ("--set", o)]
    out = run(["train", "recipes/alpaca_lora.py", *sets, "--output-dir", str(tmp_path / "a"), "--push", "--no-progress"], env)
    assert "answer perplexity" in out.stdout and "base model" in out.stdout and "published alpaca-lora" in out.stdout
    out = run(["generate", "Name a colour.", "Add 2 and 3.", "--base", str(tiny_llama), "--adapter", "alpaca-lora",
               "--max-new-tokens", "4", "--json"], env)
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["input"] for r in rows] == ["Name a colour.", "Add 2 and 3."] and all(isinstance(r["text"], str) for r in rows)

    out = run(["train", "recipes/sst2_zero_shot_icl.py", *sets, "--output-dir", str(tmp_path / "i"), "--push",
               "--no-progress"], env)
    assert "no answer" in out.stdout
    out = run(["predict", "a gripping film", "--base", str(tiny_llama), "--adapter", "sst2-zero-shot-icl", "--json"], env)
    row = json.loads(out.stdout.strip().splitlines()[-1])[0]
    assert row["adapter"] == "sst2-zero-shot-icl" and row["label"] in (None, "negative", "positive") and "text" in row
    metrics = json.loads(run(["eval", "sst2-zero-shot-icl", "--base", str(tiny_llama), "--max-samples", "6", "--json"],
                             env).stdout.strip().splitlines()[-1])
    assert metrics["n"] == 6 and 0 <= metrics["no_answer_rate"] <= 1
    listing = run(["list", "--base", str(tiny_llama)], env).stdout
    assert "alpaca-lora" in listing and "perplexity" in listing and "sst2-zero-shot-icl" in listing
    failed = run(["generate", "x", "--base", str(tiny_llama), "--adapter", "alpaca-lora", "--num-beams", "0"], env, check=False)
    assert failed.returncode == 2 and "error" in failed.stderr and "Traceback" not in failed.stderr
