"""adapter-zoo installs like a package: a wheel built from the repo, installed into a fresh virtual environment
offline, trains, publishes, writes the card (its templates are package data) and loads, with no file of the
checkout on the path."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile

from tests.conftest import ROOT, quick_overrides


def test_the_wheel_carries_the_templates_and_py_typed(wheel_venv):
    names = set(zipfile.ZipFile(wheel_venv.wheel).namelist())
    assert {"zoo/py.typed", "zoo/artifact/templates/adapter_card.md.j2", "zoo/artifact/templates/causal_card.md.j2",
            "zoo/methods/lora.py", "zoo/serve/registry.py"} <= names
    assert not any(n.startswith(("tests/", "recipes/", "bench/")) for n in names)


def test_a_wheel_install_trains_publishes_and_loads_offline(wheel_venv, tiny_bert, shared_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_DATA_DIR")}
    env.update(ZOO_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", PATH=f"{wheel_venv.bin}:{env['PATH']}")
    sets = [a for o in quick_overrides(tiny_bert, shared_data, steps=4) for a in ("--set", o)]
    trained = subprocess.run([str(wheel_venv.bin / "zoo"), "train", str(ROOT / "recipes" / "sst2_lora.py"), *sets,
                              "--output-dir", str(tmp_path / "run"), "--push", "--no-progress"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "published sst2-lora" in trained.stdout
    card = (tmp_path / "run" / "adapter" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: peft" in card and "PeftModel.from_pretrained" in card
    code = ("import json, zoo\n"
            f"m = zoo.load({str(tiny_bert)!r}, adapter='sst2-lora')\n"
            "print(json.dumps([zoo.__file__, m.predict(['a gripping film'])[0]['label']]))\n")
    loaded = subprocess.run([str(wheel_venv.python), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    where, label = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert where.startswith(str(wheel_venv.site)), f"zoo came from {where}, not the wheel"
    assert label in ("negative", "positive")
