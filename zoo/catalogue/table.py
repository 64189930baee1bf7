"""One comparison table per task, from published records (a hub listing): the rows every course report ends
with. Method, trainable parameters and their share, training time, examples/s, peak memory, adapter size
and the task's metric, with the majority-class and in-context baselines as rows of their own.

    >>> rows = task_tables([{"name": "sst2-lora", "task": "glue/sst2", "method": "lora", "base_model": "org/b",
    ...     "metrics": {"validation": {"accuracy": 0.9}}, "baseline": {"majority": {"accuracy": 0.51}},
    ...     "efficiency": {"trainable_params": 10, "total_params": 1000}}])["glue/sst2"]
    >>> [(r.method, r.value, r.trainable_pct) for r in rows]
    [('majority class', 0.51, None), ('LoRA', 0.9, 1.0)]
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields

from zoo.data.metrics import official_name
from zoo.data.tasks import TASKS
from zoo.data.untrusted import finite
from zoo.methods import METHODS

# The figure a row is judged by, in order of preference: the task's official metric, accuracy, ROUGE-L,
# answer perplexity (lower is better).
METRIC_KEYS = ("official", "accuracy", "rougeL", "perplexity")
LOWER_IS_BETTER = {"perplexity"}
COLUMNS = {  # field -> column title
    "method": "Method", "adapter": "Adapter", "base": "Base", "metric": "Metric", "value": "Value",
    "trainable_params": "Trainable params", "trainable_pct": "% trainable", "train_seconds": "Train time (s)",
    "examples_per_second": "Examples/s", "peak_memory_mib": "Peak memory (MiB)", "adapter_mib": "Adapter (MiB)",
}


@dataclass(frozen=True)
class Row:
    task: str
    method: str               # the method's title, or the baseline's name
    adapter: str              # the adapter's name ("" for the majority baseline)
    base: str
    metric: str | None        # the metric's name ("macro_f1", "accuracy"...)
    value: float | None
    trainable_params: int | None = None
    trainable_pct: float | None = None
    train_seconds: float | None = None
    examples_per_second: float | None = None
    peak_memory_mib: float | None = None
    adapter_mib: float | None = None
    kind: str = "adapter"     # "adapter", "in-context" or "majority"
    sweep: dict | None = None  # the grid values of a sweep run (zoo.json "sweep"), when there is one
    offsets: bool = False     # its head's bias holds offsets tuned for the metric (train.tune_offsets)

    @property
    def title(self) -> str:
        """How tables name the row's method: its title, marked when its figure includes tuned offsets."""
        return self.method + (" (tuned offsets)" if self.offsets else "")


def _number(value):
    """A figure of a published record as the table shows it, or None ("—"): every figure of a row (a metric, a
    count, seconds, bytes) is a finite number from 0 to 2**63; NaN, a negative count or a bool is no figure."""
    return value if finite(value) and value >= 0 else None


def _metric(record: dict) -> tuple[str | None, str | None, float | None]:
    """(key in the validation metrics, the metric's name, its value) of a record."""
    validation = (record.get("metrics") or {}).get("validation") or {}
    for key in METRIC_KEYS:
        value = _number(validation.get(key))
        if value is not None:
            name = _official_name(record) if key == "official" else key
            return key, name, float(value)
    return None, None, None


def _official_name(record: dict) -> str:
    """The official metric's name: the task's own (``zoo.data.metrics.official_name``) for a task the zoo knows,
    whoever published the record and whatever it says; the record's for a task it does not."""
    task = TASKS.get(record.get("task"))
    known = official_name(task) if task is not None else None
    return known or record.get("official_metric") or "official"


def row_of(record: dict) -> Row:
    """The table row of one published record (a local-hub zoo.json or a Hub listing row)."""
    eff = record.get("efficiency") or {}
    params, total = _number(eff.get("trainable_params")), _number(eff.get("total_params"))
    if record.get("method") == "icl":
        params = 0  # in-context learning trains nothing
    _, metric, value = _metric(record)
    method = METHODS.get(record.get("method"))
    size, peak = _number(eff.get("adapter_bytes")), _number(eff.get("peak_memory_bytes"))
    return Row(
        task=record["task"], method=method.title if method else str(record.get("method")), adapter=record["name"],
        base=record.get("base_model") or "", metric=metric, value=None if value is None else round(value, 4),
        trainable_params=params, trainable_pct=round(100 * params / total, 3) if params is not None and total else None,
        train_seconds=_number(eff.get("train_seconds")), examples_per_second=_number(eff.get("train_examples_per_second")),
        peak_memory_mib=round(peak / 2**20, 1) if peak is not None else None,
        adapter_mib=round(size / 2**20, 3) if size is not None else None,
        kind="in-context" if record.get("method") == "icl" else "adapter",
        sweep=record.get("sweep") if isinstance(record.get("sweep"), dict) else None,
        offsets=isinstance((record.get("metrics") or {}).get("offsets"), dict),
    )


def _majority(task: str, records: list[dict]) -> Row | None:
    """The majority-class baseline of a task, as the records measured it on their validation split."""
    for record in records:
        key, metric, _ = _metric(record)
        majority = ((record.get("baseline") or {}).get("majority") or {})
        value = _number(majority.get(key)) if key else None
        if value is not None:
            return Row(task=task, method="majority class", adapter="", base="", metric=metric,
                       value=round(float(value), 4), trainable_params=0, kind="majority")
    return None


def task_tables(listing: list[dict], *, task: str | None = None, base: str | None = None) -> dict[str, list[Row]]:
    """task -> its rows: the majority baseline, in-context rows, then trained adapters by trainable parameters
    (most first). Synthetic records (random weights from zoo.testing) are never results and are left out."""
    by_task: dict[str, list[dict]] = {}
    for record in listing:
        if record.get("synthetic") or (task and record.get("task") != task):
            continue
        if base and record.get("base_model") != base:
            continue
        by_task.setdefault(record["task"], []).append(record)
    out = {}
    for name in sorted(by_task):
        records = by_task[name]
        rows = [row_of(r) for r in records]
        rows.sort(key=lambda r: (r.kind != "in-context", -(r.trainable_params or 0), r.adapter))
        majority = _majority(name, records)
        out[name] = ([majority] if majority else []) + rows
    return out


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown(rows: list[Row]) -> str:
    """A Markdown table of a task's rows (the columns of :data:`COLUMNS`)."""
    keys = list(COLUMNS)
    lines = ["| " + " | ".join(COLUMNS[k] for k in keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        name = f"*{r.method}*" if r.kind != "adapter" else r.title
        values = {**asdict(r), "method": name}
        lines.append("| " + " | ".join(_cell(values[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Row]) -> str:
    """The rows as CSV (every field, the sweep's values as JSON-like text)."""
    buffer = io.StringIO()
    names = [f.name for f in fields(Row)]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return buffer.getvalue()
