"""Tasks read the local mirror, carve validation where it is missing, and fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data.metrics import classification_metrics, majority_baseline
from zoo.data.tasks import TASKS, get_task, load_split
from zoo.errors import DataNotFound, EmptyDataset


def test_sst2_from_the_mirror(shared_data):
    task = get_task("glue/sst2")
    train = load_split(task, "train", data_dir=shared_data)
    validation = load_split(task, "validation", data_dir=shared_data)
    assert (train.num_rows, validation.num_rows) == (67349, 872)
    assert set(validation["label"]) == {0, 1}
    assert load_split(task, "train", data_dir=shared_data, max_samples=100, seed=1)["text"] == \
        load_split(task, "train", data_dir=shared_data, max_samples=100, seed=1)["text"]


def test_rte_validation_is_carved_from_train_the_same_way_every_time(shared_data):
    task = get_task("glue/rte")
    train = load_split(task, "train", data_dir=shared_data)
    validation = load_split(task, "validation", data_dir=shared_data)
    assert train.num_rows + validation.num_rows == 2490
    assert not set(zip(train["text"], train["text_pair"])) & set(zip(validation["text"], validation["text_pair"]))
    assert validation["text"] == load_split(task, "validation", data_dir=shared_data)["text"]


@pytest.mark.parametrize("name", [n for n in TASKS if n.startswith("tweet_eval/")])
def test_tweeteval_labels_match_the_mirror_mapping(name, shared_data):
    task = get_task(name)
    ds = load_split(task, "validation", data_dir=shared_data)
    assert ds.num_rows > 0 and max(ds["label"]) < len(task.labels)


def test_missing_split_folder_and_empty_train(shared_data, tmp_path):
    task = get_task("glue/sst2")
    with pytest.raises(DataNotFound, match="no 'test' split.*withheld"):
        load_split(task, "test", data_dir=shared_data)
    with pytest.raises(DataNotFound, match="no folder .*sst2"):
        load_split(task, "train", data_dir=tmp_path)
    with pytest.raises(DataNotFound, match="does not exist"):
        load_split(task, "train", data_dir=tmp_path / "nowhere")
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text("label\tsentence\n")
    (tmp_path / "sst2" / "dev.tsv").write_text("label\tsentence\n0\tok\n")
    with pytest.raises(EmptyDataset, match="'train' is empty"):
        load_split(task, "train", data_dir=tmp_path)
    (tmp_path / "sst2" / "train.tsv").write_text("label\tsentence\n7\tbad label\n")
    with pytest.raises(DataNotFound, match="label '7'"):
        load_split(task, "train", data_dir=tmp_path)


def test_no_mirror_and_no_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    with pytest.raises(DataNotFound, match="cannot be reached.*ZOO_DATA_DIR"):
        load_split(get_task("glue/sst2"), "train")


def test_official_metrics():
    irony, stance = get_task("tweet_eval/irony"), get_task("tweet_eval/stance_climate")
    labels = np.array([1, 1, 0, 0])
    logits = np.eye(2)[[1, 0, 0, 0]] * 3
    m = classification_metrics(logits, labels, irony)
    assert m["accuracy"] == 0.75 and m["official"] == pytest.approx(2 / 3)  # F1 of "irony": p=1, r=.5
    labels3 = np.array([0, 1, 2, 2])
    logits3 = np.eye(3)[[0, 1, 2, 1]]
    # against: p=.5 r=1 f1=2/3; favor: p=1 r=.5 f1=2/3; none excluded
    assert classification_metrics(logits3, labels3, stance)["official"] == pytest.approx(2 / 3)
    assert "official" not in classification_metrics(logits, labels, get_task("glue/sst2"))
    base = majority_baseline([0, 0, 1], [0, 1, 1, 1], get_task("glue/sst2"))
    assert base == {"label": "negative", "accuracy": 0.25, "macro_f1": pytest.approx(0.2)}


def test_official_metric_names_and_malformed_specs():
    import dataclasses

    from zoo.data.metrics import _scorer, official_metric, official_name
    stance, irony = get_task("tweet_eval/stance_climate"), get_task("tweet_eval/irony")
    assert official_name(stance) == "mean F1 of against and favor"
    assert official_name(irony) == "F1 of irony"
    assert official_name(get_task("tweet_eval/emoji")) == "macro-F1"
    assert official_name(get_task("glue/sst2")) is None
    labels, predictions = np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1])
    for spec in ("f1:nope", "mean_f1:", "f1:against,favor", "median:against", "macro_f1:against", "f1"):
        bad = dataclasses.replace(stance, official=spec)
        for use in (lambda: official_metric(bad, labels, predictions), lambda: official_name(bad),
                    lambda: _scorer(bad, labels)):
            with pytest.raises(ValueError, match="unknown official metric"):
                use()
