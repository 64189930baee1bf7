"""Building a zoo: `zoo train` over several recipes (or a folder) trains what is not yet built from the same
recipe and data, skips the rest, retrains a recipe that changed, and resumes an interrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, quick_overrides

ZOO = str(ROOT / ".venv" / "bin" / "zoo")


def zoo(args, env, check=True):
    proc = subprocess.run([ZOO, *args], cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                          capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def revisions(home, name):
    return sorted(p.name for p in home.glob(f"hub/*/{name}/revisions/*"))


def test_a_build_trains_what_is_missing_and_skips_what_is_built(tiny_bert, shared_data, tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    for stem in ("sst2_lora", "sst2_ia3"):
        shutil.copy(ROOT / "recipes" / f"{stem}.py", folder / f"{stem}.py")
    home, runs = tmp_path / "home", tmp_path / "runs"
    env = {"ZOO_HOME": str(home)}
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=3) for a in ("--set", o)]
    build = ["train", str(folder), *sets, "--output-dir", str(runs), "--no-progress"]

    first = zoo([*build, "--push"], env)
    assert "[1/2] training sst2-ia3" in first.stderr and "[2/2] training sst2-lora" in first.stderr
    assert "published sst2-ia3" in first.stdout and "published sst2-lora" in first.stdout
    record = json.loads((runs / "sst2-lora" / "adapter" / "zoo.json").read_text())
    assert set(record["fingerprint"]) == {"recipe", "data"}
    published = {n: revisions(home, n) for n in ("sst2-lora", "sst2-ia3")}
    assert all(len(v) == 1 for v in published.values())

    again = zoo([*build, "--push"], env)  # nothing changed: nothing trains, nothing is published
    assert again.stderr.count("already built from the same recipe and data") == 2 and "training" not in again.stderr
    assert {n: revisions(home, n) for n in published} == published

    text = (folder / "sst2_ia3.py").read_text()  # one recipe changes: only it trains again
    (folder / "sst2_ia3.py").write_text(text.replace("learning_rate=", "learning_rate=0.5 * ", 1))
    changed = zoo([*build, "--push"], env)
    assert "[1/2] training sst2-ia3" in changed.stderr and "sst2-lora: already built" in changed.stderr
    assert len(revisions(home, "sst2-ia3")) == 2 and revisions(home, "sst2-lora") == published["sst2-lora"]

    # an interrupted run (checkpoints, no adapter) of the same recipe resumes instead of starting over
    shutil.rmtree(runs / "sst2-lora" / "adapter")
    resumed = zoo(build, env)
    assert "training sst2-lora" in resumed.stderr and "resuming from its last checkpoint" in resumed.stderr
    assert "sst2-ia3: already built" in resumed.stderr
    assert json.loads((runs / "sst2-lora" / "adapter" / "zoo.json").read_text())["fingerprint"] == record["fingerprint"]


def test_a_build_checks_every_recipe_before_training_any(tiny_bert, shared_data, tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    shutil.copy(ROOT / "recipes" / "sst2_lora.py", folder / "a_sst2_lora.py")
    (folder / "b_broken.py").write_text("recipe = 5\n")
    proc = zoo(["train", str(folder), "--set", f"base_model={tiny_bert}", "--output-dir", str(tmp_path / "runs")],
               {"ZOO_HOME": str(tmp_path / "home"), "ZOO_DATA_DIR": str(shared_data)}, check=False)
    assert proc.returncode == 2 and "b_broken.py" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_offline_build_trains_what_this_machine_has_and_lists_the_rest(tiny_bert, shared_data, tmp_path):
    """--offline: a recipe whose base is only on the Hub, or whose task is not in the data mirror, is listed as
    skipped with the reason; the others train."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    text = (ROOT / "recipes" / "sst2_ia3.py").read_text()
    (folder / "sst2_ia3.py").write_text(text.replace('"sentence-transformers/all-MiniLM-L6-v2"', repr(str(tiny_bert))))
    (folder / "sst2_lora.py").write_text((ROOT / "recipes" / "sst2_lora.py").read_text().replace(
        '"sentence-transformers/all-MiniLM-L6-v2"', '"some-org/only-on-the-hub"'))
    (folder / "mnli_lora.py").write_text((ROOT / "recipes" / "mnli_lora.py").read_text().replace(
        '"FacebookAI/roberta-large"', repr(str(tiny_bert))))
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=2) if not o.startswith("base_model=")
            for a in ("--set", o)]
    out = zoo(["train", str(folder), "--offline", *sets, "--output-dir", str(tmp_path / "runs"), "--no-progress"],
              {"ZOO_HOME": str(tmp_path / "home")})
    assert "skipped sst2-lora: base model some-org/only-on-the-hub is not on this machine" in out.stderr
    assert "skipped mnli-lora: task glue/mnli is not in the data mirror" in out.stderr
    assert "training sst2-ia3" in out.stderr and (tmp_path / "runs" / "sst2-ia3" / "adapter" / "zoo.json").is_file()
    assert not (tmp_path / "runs" / "sst2-lora").exists() and not (tmp_path / "runs" / "mnli-lora").exists()


def test_a_build_goes_on_past_a_failing_recipe_and_says_so_at_the_end(tiny_bert, shared_data, tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    shutil.copy(ROOT / "recipes" / "sst2_ia3.py", folder / "sst2_ia3.py")
    (tmp_path / "empty").mkdir()
    text = (ROOT / "recipes" / "rte_lora.py").read_text()  # its data folder holds nothing: fails when it loads data
    (folder / "rte_lora.py").write_text(text.replace('task="glue/rte",', f'task="glue/rte", data_dir={str(tmp_path / "empty")!r},'))
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=2) if not o.startswith("data_dir=")
            for a in ("--set", o)]
    out = zoo(["train", str(folder), *sets, "--output-dir", str(tmp_path / "runs"), "--push", "--no-progress"],
              {"ZOO_HOME": str(tmp_path / "home"), "ZOO_DATA_DIR": str(shared_data)}, check=False)
    assert out.returncode == 1, out.stderr
    assert "[1/2] error: rte-lora failed, nothing of it published: DataNotFound" in out.stderr
    assert "published sst2-ia3" in out.stdout and "Traceback" not in out.stderr
    assert "build: 1 trained, 0 already built, 1 failed (rte-lora) in 0 h" in out.stderr
    assert revisions(tmp_path / "home", "sst2-ia3") and not revisions(tmp_path / "home", "rte-lora")


def _child_of(pid: int, timeout: float = 120.0) -> int:
    """The pid of a process whose parent is ``pid`` (read from /proc), once one exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            if int(fields[1]) == pid:
                return int(stat.parent.name)
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child in {timeout} s")


def test_each_recipe_of_a_build_runs_in_a_process_of_its_own(tiny_bert, shared_data, tmp_path):
    """A run the system kills (the out-of-memory killer's SIGKILL) fails alone: the build reports it and goes on,
    and the next build trains it. SIGTERM to the build stops the running recipe too, and then the build."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    for stem in ("sst2_lora", "sst2_ia3"):
        shutil.copy(ROOT / "recipes" / f"{stem}.py", folder / f"{stem}.py")
    home, runs = tmp_path / "home", tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ZOO_HOME": str(home)}
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=3) for a in ("--set", o)]
    build = ["train", str(folder), *sets, "--output-dir", str(runs), "--no-progress", "--push"]

    proc = subprocess.Popen([ZOO, *build], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.kill(_child_of(proc.pid), signal.SIGKILL)  # the first recipe's run (sst2-ia3), as the OOM killer would
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    assert "[1/2] error: sst2-ia3 failed, nothing of it published: its process was killed by SIGKILL" in err
    assert "build: 1 trained, 0 already built, 1 failed (sst2-ia3)" in err
    assert "published sst2-lora" in out and revisions(home, "sst2-lora") and not revisions(home, "sst2-ia3")

    proc = subprocess.Popen([ZOO, *build, "--force"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    child = _child_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "build stopped (SIGTERM) while training sst2-ia3; run the same command again to resume" in err
    assert not Path(f"/proc/{child}").exists() and "[2/2]" not in err  # the run ended with it; nothing more started

    again = zoo(build, {"ZOO_HOME": str(home)})
    assert "[1/2] training sst2-ia3" in again.stderr and "sst2-lora: already built" in again.stderr
    assert "published sst2-ia3" in again.stdout and len(revisions(home, "sst2-ia3")) == 1


def test_the_launchers_process_count_is_read_one_way_for_the_build_and_the_trainer(monkeypatch):
    """`WORLD_SIZE` decides both whether a build trains each recipe in a child and whether the Trainer is told the
    run is on CPUs; both read it through one function, so a value one of them took as a launch the other did too."""
    import torch

    from zoo.cli import _separate_processes
    from zoo.training.common import cpu_only, launched_processes

    accelerated = torch.cuda.is_available() or torch.backends.mps.is_available()
    for value, count in [(None, 1), ("1", 1), ("2", 2), ("8", 8), ("0", 1), ("-2", 1), ("two", 1), ("", 1)]:
        if value is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", value)
        assert launched_processes() == count, value
        assert _separate_processes() is (count == 1), value
        if not accelerated:
            assert cpu_only(bf16=False) is (count > 1), value


def test_the_built_zoos_records_match_todays_recipes():
    """docs/records holds the zoo.json of every adapter of the offline zoo as built: each offline recipe's fingerprint
    today is the one it was built with, so a setting added to the recipes' schema (at its default) or a change that
    only touches how runs compute does not make the README's build command train the zoo again."""
    from zoo.config.family import load_recipes
    from zoo.config.recipe import recipe_fingerprint

    built = {}
    for path in (ROOT / "docs" / "records" / "hub").glob("*/*/current/zoo.json"):
        record = json.loads(path.read_text())
        built[path.parent.parent.name] = record["fingerprint"]["recipe"]
    assert len(built) >= 60
    checked = 0
    for path in sorted((ROOT / "recipes").glob("*.py")):
        if path.name.startswith("_"):
            continue
        for recipe in load_recipes(path):
            if recipe.name in built:
                assert recipe_fingerprint(recipe) == built[recipe.name], f"{recipe.name} ({path.name}) would be trained again"
                checked += 1
    assert checked == len(built)
