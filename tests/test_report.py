"""`zoo report`: the comparison tables and plots, from the published records only (a fixture zoo in a local
hub), through the CLI as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT
from zoo.artifact.record import AdapterRecord
from zoo.hub.local import LocalHub
from zoo.testing import make_adapter

ZOO = str(ROOT / ".venv" / "bin" / "zoo")
LABELS = ["negative", "positive"]


def published(folder, **record):
    data = json.loads((folder / "zoo.json").read_text())
    data.update(synthetic=False, **record)
    (folder / "zoo.json").write_text(json.dumps(data))
    return LocalHub().push(folder)


@pytest.fixture()
def fixture_zoo(tiny_bert, tmp_path, zoo_home):
    """Three SST-2 methods and an in-context row, two RTE adapters, and a synthetic adapter that must not show."""
    majority = {"majority": {"label": "positive", "accuracy": 0.509, "macro_f1": 0.337}}
    for i, (method, acc, params, task) in enumerate([("lora", 0.88, 676_610, "glue/sst2"), ("ia3", 0.84, 40_000, "glue/sst2"),
                                                    ("last-layers", 0.86, 3_000_000, "glue/sst2"),
                                                    ("lora", 0.61, 676_610, "glue/rte"), ("prompt-tuning", 0.55, 8_000, "glue/rte")]):
        short = task.split("/")[1]
        folder = make_adapter(str(tiny_bert), tmp_path / f"{short}-{method}", name=f"{short}-{method}", method=method,
                              labels=LABELS if short == "sst2" else ["entailment", "not_entailment"], task=task, seed=i)
        published(folder, metrics={"validation": {"accuracy": acc, "n": 872}},
                  baseline={"majority": {**majority["majority"], "accuracy": 0.509 if short == "sst2" else 0.527}},
                  efficiency={"trainable_params": params, "total_params": 22_700_000, "train_seconds": 100.0 + i,
                              "train_examples_per_second": 50.0, "peak_memory_bytes": 2**30, "adapter_bytes": 2**20 * (i + 1)})
    icl = tmp_path / "sst2-icl"
    icl.mkdir()
    AdapterRecord(name="sst2-icl", base_model=str(tiny_bert), task="glue/sst2", method="icl", labels=tuple(LABELS),
                  weights=None, task_type="CAUSAL_LM", metrics={"validation": {"accuracy": 0.7}}).write(icl)
    LocalHub().push(icl)
    make_adapter(str(tiny_bert), tmp_path / "synthetic", name="sst2-random", method="lora", labels=LABELS)
    LocalHub().push(tmp_path / "synthetic")
    return zoo_home


def test_report_writes_tables_and_plots_from_the_published_records(fixture_zoo, tmp_path):
    env = {**os.environ, "ZOO_HOME": str(fixture_zoo)}
    out = tmp_path / "docs"
    proc = subprocess.run([ZOO, "report", "--hub", "local", "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    md = (out / "results.md").read_text()
    assert md.startswith("# Results") and f"`ZOO_HOME={fixture_zoo} zoo report --hub local --out" in md
    assert "## glue/sst2" in md and "## glue/rte" in md and "sst2-random" not in md
    assert "| Method | Adapter | Base | Metric | Value | Trainable params | % trainable |" in md

    with open(out / "results" / "glue-sst2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["majority class", "in-context", "last layers", "LoRA", "IA3"]
    assert [r["kind"] for r in rows] == ["majority", "in-context", "adapter", "adapter", "adapter"]
    lora = rows[3]
    assert (lora["adapter"], float(lora["value"]), int(lora["trainable_params"])) == ("sst2-lora", 0.88, 676_610)
    assert float(lora["trainable_pct"]) == round(100 * 676_610 / 22_700_000, 3) and float(lora["peak_memory_mib"]) == 1024.0
    assert float(rows[0]["value"]) == 0.509 and rows[0]["adapter"] == ""
    with open(out / "results" / "glue-rte.csv", newline="") as f:
        assert [r["adapter"] for r in csv.DictReader(f)] == ["", "rte-lora", "rte-prompt-tuning"]

    for name in ("glue-sst2-quality.png", "glue-rte-quality.png"):
        with Image.open(out / "results" / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300
        assert f"results/{name}" in md
    listed = proc.stdout.split()
    assert str(out / "results.md") in listed and len(listed) == 5


def test_report_filters_by_task_and_says_when_nothing_matches(fixture_zoo, tmp_path):
    from zoo.catalogue.report import write_report

    written = write_report(LocalHub().list(), tmp_path / "only-rte", task="glue/rte")
    assert [p.name for p in written] == ["results.md", "glue-rte.csv", "glue-rte-quality.png"]
    empty = write_report(LocalHub().list(), tmp_path / "none", task="glue/mnli")
    assert "No published entries match" in empty[0].read_text()


def test_a_sweep_is_one_best_row_and_a_heat_map_with_one_cell_per_published_point(fixture_zoo, tiny_bert, tmp_path):
    """Five of a 3 x 2 grid published (one point failed or was never trained): the heat map and the grid table
    hold those five values in their cells and a gap for the sixth; the task table shows the best point once."""
    from zoo.catalogue.report import heatmap, sweeps
    from zoo.catalogue.table import task_tables
    from zoo.hub.local import LocalHub as Hub

    grid = {"method.r": [2, 8, 32], "train.learning_rate": [0.0003, 0.001]}
    points = [(r, lr) for r in grid["method.r"] for lr in grid["train.learning_rate"]]
    values = {}
    for k, (r, lr) in enumerate(points, 1):
        if (r, lr) == (32, 0.0003):
            continue  # never published
        name = f"sst2-rank-{k}-lora"
        values[(r, lr)] = round(0.80 + 0.01 * k, 4)
        folder = make_adapter(str(tiny_bert), tmp_path / name, name=name, method="lora", labels=LABELS, seed=k)
        published(folder, metrics={"validation": {"accuracy": values[(r, lr)], "n": 872}},
                  efficiency={"trainable_params": 1000 * r, "total_params": 22_700_000},
                  sweep={"family": "sst2-rank-lora", "grid": grid, "point": {"method.r": r, "train.learning_rate": lr}})
    env = {**os.environ, "ZOO_HOME": str(fixture_zoo)}
    out = tmp_path / "docs"
    proc = subprocess.run([ZOO, "report", "--hub", "local", "--out", str(out), "--task", "glue/sst2"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    md = (out / "results.md").read_text()
    assert "### Sweep sst2-rank-lora" in md and "5 published points over `method.r`, `train.learning_rate`" in md
    table = md.split("### Sweep sst2-rank-lora")[1]
    assert "| 2 | 0.8100 | 0.8200 |" in table and "| 8 | 0.8300 | 0.8400 |" in table and "| 32 | — | 0.8600 |" in table
    best = [line for line in md.splitlines() if "best of 5-point sweep sst2-rank-lora" in line]
    assert len(best) == 1 and "sst2-rank-6-lora" in best[0], "one row per sweep in the task table: its best point"
    assert "sst2-rank-1-lora" not in md.split("### Sweep")[0]
    with open(out / "results" / "glue-sst2.csv", newline="") as f:
        assert sum(1 for r in csv.DictReader(f) if r["adapter"].startswith("sst2-rank-")) == 5  # the CSV keeps them all
    with Image.open(out / "results" / "sst2-rank-lora-heatmap.png") as image:
        image.verify()
        assert image.format == "PNG"
    assert "results/sst2-rank-lora-heatmap.png" in md
    rows = task_tables(Hub().list(task="glue/sst2"))["glue/sst2"]
    assert heatmap("sst2-rank-lora", sweeps(rows)["sst2-rank-lora"], tmp_path / "h.png") == 5


def test_kept_records_write_the_same_report_after_the_weights_are_gone(fixture_zoo, tmp_path):
    """`--keep-records DIR` copies each entry's zoo.json and card into DIR as a weightless local hub; a report from
    DIR equals the report from the hub, and a second build's records add to the first's."""
    env = {**os.environ, "ZOO_HOME": str(fixture_zoo)}
    kept = tmp_path / "records"
    first = subprocess.run([ZOO, "report", "--hub", "local", "--out", str(tmp_path / "a"), "--task", "glue/rte",
                            "--keep-records", str(kept)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    assert "kept the records of 2 entries" in first.stdout
    second = subprocess.run([ZOO, "report", "--hub", "local", "--out", str(tmp_path / "a"), "--keep-records", str(kept)],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0 and "kept the records of 7 entries" in second.stdout, second.stderr
    assert not list(kept.rglob("*.safetensors")) and len(list(kept.rglob("zoo.json"))) == 7
    for entry in LocalHub().list():  # each record as published, its card beside it where it has one
        copy = LocalHub(kept / "hub").find(entry["base_model"], entry["name"])
        source = Path(entry["path"])
        assert (copy / "zoo.json").read_bytes() == (source / "zoo.json").read_bytes()
        assert (copy / "README.md").exists() == (source / "README.md").exists()

    again = subprocess.run([ZOO, "report", "--hub", "local", "--out", str(tmp_path / "b")],
                           env={**os.environ, "ZOO_HOME": str(kept)}, capture_output=True, text=True, timeout=300,
                           check=False)
    assert again.returncode == 0, again.stderr
    for csv_name in ("glue-sst2.csv", "glue-rte.csv"):
        assert (tmp_path / "b" / "results" / csv_name).read_text() == (tmp_path / "a" / "results" / csv_name).read_text()
    body = lambda p: p.read_text().split("\n", 3)[3]  # noqa: E731 (the header names the command and the source)
    assert body(tmp_path / "b" / "results.md") == body(tmp_path / "a" / "results.md")
