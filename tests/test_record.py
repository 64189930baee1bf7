"""zoo.json is read and checked in one place, into a typed, frozen record with a schema version."""

from __future__ import annotations

import dataclasses
import json

import pytest

from zoo.artifact.record import FORMAT, AdapterRecord, read_record
from zoo.errors import UnsafeAdapter, UnsupportedFormat

GOOD = {"format": FORMAT, "name": "sst2-lora", "base_model": "org/base", "task": "glue/sst2", "method": "lora",
        "labels": ["negative", "positive"], "weights": "adapter_model.safetensors", "max_length": 64,
        "metrics": {"validation": {"accuracy": 0.9}}, "future_key": {"kept": True}}


def test_a_record_round_trips_through_its_file_and_is_frozen(tmp_path):
    record = AdapterRecord.from_dict(GOOD)
    assert record.labels == ("negative", "positive") and record.max_length == 64 and record.validation == {"accuracy": 0.9}
    assert not record.causal and not record.is_pair and record.text_fields == ("text",)
    record.write(tmp_path)
    again = read_record(tmp_path)
    assert again == record and again.extra == {"future_key": {"kept": True}}
    assert json.loads((tmp_path / "zoo.json").read_text()) == {**GOOD, **{k: v for k, v in record.to_dict().items()}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]


def test_a_newer_format_is_a_clear_error_naming_the_version_this_package_reads(tmp_path):
    (tmp_path / "zoo.json").write_text(json.dumps({**GOOD, "format": "adapter-zoo/2"}))
    with pytest.raises(UnsupportedFormat, match=r"'adapter-zoo/2' is not one this adapter-zoo reads \(it reads adapter-zoo/1\)"):
        read_record(tmp_path)


@pytest.mark.parametrize("key, value, message", [
    ("max_length", "abc", "max_length must be an integer"), ("max_length", None, "max_length"),
    ("max_length", -5, "max_length"), ("max_length", 0, "max_length"), ("max_length", True, "max_length"),
    ("max_length", 10**9, "max_length"), ("labels", "positive", "labels must be a list"),
    ("labels", ["a", "a"], "distinct"), ("weights", "adapter_model.bin", "weights must be"),
    ("task_type", "SEQ_2_SEQ_LM", "task_type"), ("text_fields", ["text", "../x"], "text_fields"),
    ("generation", {"num_beams": 0}, "num_beams"), ("generation", {"num_beams": 2000}, "num_beams"),
    ("name", "../../x", "not a plain name"), ("metrics", [], "metrics must be an object"),
    # read by every listing, the Space and the report: a split's figures are an object, not text or a number
    ("metrics", {"validation": "xy"}, "metrics must be an object of objects"),
    ("baseline", {"majority": 0.5}, "baseline must be an object of objects"),
    # a grid of 100**6 points made the report's heat map try to draw a panel for each
    ("sweep", {"family": "f", "grid": {k: list(range(100)) for k in "abcdef"}, "point": {k: 0 for k in "abcdef"}},
     "sweep must be"),
])
def test_bad_fields_are_refused_with_the_field_named(key, value, message, tmp_path):
    (tmp_path / "zoo.json").write_text(json.dumps({**GOOD, key: value}))
    with pytest.raises(UnsafeAdapter, match=message):
        read_record(tmp_path)


def test_missing_and_unreadable_records(tmp_path):
    with pytest.raises(UnsafeAdapter, match="no zoo.json"):
        read_record(tmp_path)
    (tmp_path / "zoo.json").write_text("{not json")
    with pytest.raises(UnsafeAdapter, match="not valid JSON"):
        read_record(tmp_path)
    (tmp_path / "zoo.json").write_text(json.dumps({k: v for k, v in GOOD.items() if k != "task"}))
    with pytest.raises(UnsafeAdapter, match="lacks 'task'"):
        read_record(tmp_path)
