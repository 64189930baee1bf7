"""Model cards: rendered from the Jinja templates in zoo/artifact/templates/ out of an adapter's zoo.json.

The YAML front matter follows the Hub's model card metadata (base_model, library_name,
pipeline_tag, datasets, tags, model-index) so the Hub renders the evaluation results.

Example:
    from zoo.artifact.card import render_card
    text = render_card(json.load(open("runs/sst2-lora/adapter/zoo.json")))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from zoo.artifact.record import AdapterRecord
from zoo.data.tasks import TASKS
from zoo.data.untrusted import finite

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: installed with the wheel
METRIC_NAMES = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "official": "Official", "loss": "Loss",
                "perplexity": "Answer perplexity", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                "no_answer_rate": "No-answer rate"}
@dataclass(frozen=True)
class MethodText:
    """What a card says about the method that made the adapter; each method module (``zoo.methods``) gives its own."""

    title: str    # "LoRA", "prefix tuning", ...
    summary: str  # one line: what it trains
    library: str  # the card's library_name: "peft", or "transformers" for whole models and baselines
    usage: str    # Markdown with code: loading it without adapter-zoo (a Jinja fragment over ``m``, the record)


CARD_EFFICIENCY = ("trainable_params", "total_params", "train_seconds", "adapter_bytes")
PIPELINES = {"text-classification": "Text Classification", "text-generation": "Text Generation",
             "summarization": "Summarization"}


def headline_metric(validation: dict) -> tuple[str, float] | None:
    """The one figure a catalogue shows per entry: the task's official metric (TweetEval's macro-F1...),
    else accuracy, else ROUGE-L, else answer perplexity."""
    for key, name in (("official", "official"), ("accuracy", "accuracy"), ("rougeL", "ROUGE-L"),
                      ("perplexity", "perplexity")):
        if finite(validation.get(key)):  # a stranger's 10**400 or true is no figure
            return name, float(validation[key])
    return None


def card_metadata(record: AdapterRecord, method: MethodText) -> dict:
    """The card's YAML front matter as a dict."""
    validation = record.validation

    task = TASKS.get(record.task)
    hub_dataset = task.hub_dataset if task else None
    pipeline = task.pipeline_tag if task else "text-classification"
    if record.causal and pipeline == "text-classification":
        pipeline = "text-generation"  # labels read from generated words (verbalizer)
    metrics = [
        {"type": key, "value": round(float(validation[key]), 4), "name": f"{METRIC_NAMES[key]} (validation)"}
        for key in ("accuracy", "macro_f1", "official", "no_answer_rate", "rouge1", "rouge2", "rougeL", "perplexity")
        if key in validation
    ]
    return {
        "base_model": record.base_model,
        "library_name": method.library,
        "pipeline_tag": pipeline,
        "license": "apache-2.0",
        "datasets": [hub_dataset] if hub_dataset else [],
        "tags": ["adapter-zoo", record.task.replace("/", "-"), record.method],
        "model-index": [{
            "name": record.name,
            "results": [{
                "task": {"type": pipeline, "name": PIPELINES[pipeline]},
                "dataset": {"name": record.task, "type": hub_dataset or record.task,
                            "config": task.hub_config if task else record.task.split("/")[-1],
                            "split": "validation"},
                "metrics": metrics,
            }],
        }],
        # what a catalogue needs without downloading the adapter (zoo list, the demo's results table)
        "zoo": {"name": record.name, "task": record.task, "method": record.method,
                "task_type": record.task_type, "labels": list(record.labels),
                **{k: record.efficiency[k] for k in CARD_EFFICIENCY if k in record.efficiency},
                "seed": record.recipe.get("seed")},
    }


def offsets_text(record: AdapterRecord) -> str | None:
    """The card's sentence on ``train.tune_offsets`` (zoo.json ``metrics.offsets``), None when there are none or
    they are not the numbers the zoo writes."""
    o = record.metrics.get("offsets")
    real = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if not (isinstance(o, dict) and type(o.get("n")) is int and real(o.get("before")) and real(o.get("after"))
            and isinstance(o.get("metric"), str) and len(o["metric"]) <= 60 and o["metric"].isprintable()):
        return None
    return (f"The head's bias holds per-class offsets tuned after training for {o['metric']} on {o['n']:,} "
            f"training examples (there {o['before']:.4f} -> {o['after']:.4f}), so the adapter predicts with them "
            "and the figures above include them; the validation split was not used to tune them (`offsets` in "
            "zoo.json).")


def render_card(record: AdapterRecord, method: MethodText, template: str | None = None) -> str:
    """The model card (README.md) of an adapter: YAML front matter for the Hub, then what it is, its
    results, how to load it with and without adapter-zoo (the method's own words), and how to reproduce it."""
    if template is None:
        template = "causal_card.md.j2" if record.causal else "adapter_card.md.j2"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    env.filters["pct"] = lambda x: f"{100 * float(x):.2f}"
    env.filters["mib"] = lambda b: f"{int(b) / 2**20:.1f} MiB"
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    front = card_yaml(card_metadata(record, method)).strip()
    m = record.to_dict()
    usage = env.from_string(method.usage).render(m=m) if method.usage else ""
    return env.get_template(template).render(front_matter=front, m=m, r=record.recipe, method=method, usage=usage,
                                             offsets=offsets_text(record))


def card_yaml(metadata: dict) -> str:
    """A card's YAML front matter written by huggingface_hub's own ``ModelCardData`` and ``EvalResult``
    (so the Hub, ``ModelCard.load`` and ``model_info().card_data.eval_results`` read back what we wrote).

    ``metadata`` is the dict of ``zoo.artifact.card.card_metadata``; its ``model-index`` becomes eval results."""
    from huggingface_hub import EvalResult, ModelCardData

    data = dict(metadata)
    index = data.pop("model-index", None) or []
    results = []
    for entry in index:
        for result in entry.get("results", []):
            task, dataset = result.get("task", {}), result.get("dataset", {})
            for metric in result.get("metrics", []):
                results.append(EvalResult(
                    task_type=task["type"], task_name=task.get("name"), dataset_type=dataset["type"],
                    dataset_name=dataset["name"], dataset_config=dataset.get("config"),
                    dataset_split=dataset.get("split"), metric_type=metric["type"], metric_value=metric["value"],
                    metric_name=metric.get("name"),
                ))
    card = ModelCardData(model_name=index[0]["name"] if index else None, eval_results=results or None, **data)
    return card.to_yaml()
