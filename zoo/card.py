"""Model cards: rendered from the Jinja template in model_cards/ out of an adapter's zoo.json.

The YAML front matter follows the Hub's model card metadata (base_model, library_name,
pipeline_tag, datasets, tags, model-index) so the Hub renders the evaluation results.

Example:
    >>> from zoo.card import render_card
    >>> text = render_card(json.load(open("runs/sst2-lora/adapter/zoo.json")))   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from .methods import is_causal

TEMPLATES = Path(__file__).resolve().parent.parent / "model_cards"
METRIC_NAMES = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "official": "Official", "loss": "Loss",
                "perplexity": "Answer perplexity", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                "no_answer_rate": "No-answer rate"}
CARD_EFFICIENCY = ("trainable_params", "total_params", "train_seconds", "adapter_bytes")
PIPELINES = {"text-classification": "Text Classification", "text-generation": "Text Generation",
             "summarization": "Summarization"}


def headline_metric(validation: dict) -> tuple[str, float] | None:
    """The one figure a catalogue shows per entry: the task's official metric (TweetEval's macro-F1...),
    else accuracy, else ROUGE-L, else answer perplexity."""
    for key, name in (("official", "official"), ("accuracy", "accuracy"), ("rougeL", "ROUGE-L"),
                      ("perplexity", "perplexity")):
        if isinstance(validation.get(key), (int, float)):
            return name, float(validation[key])
    return None


def card_metadata(meta: dict) -> dict:
    """The card's YAML front matter as a dict."""
    recipe = meta["recipe"]
    validation = meta["metrics"]["validation"]
    from .tasks import TASKS

    task = TASKS.get(meta["task"])
    hub_dataset = task.hub_dataset if task else None
    pipeline = task.pipeline_tag if task else "text-classification"
    if is_causal(meta) and pipeline == "text-classification":
        pipeline = "text-generation"  # labels read from generated words (verbalizer)
    metrics = [
        {"type": key, "value": round(float(validation[key]), 4), "name": f"{METRIC_NAMES[key]} (validation)"}
        for key in ("accuracy", "macro_f1", "official", "no_answer_rate", "rouge1", "rouge2", "rougeL", "perplexity")
        if key in validation
    ]
    return {
        "base_model": meta["base_model"],
        "library_name": "transformers" if meta["method"] in ("full", "icl") else "peft",
        "pipeline_tag": pipeline,
        "license": "apache-2.0",
        "datasets": [hub_dataset] if hub_dataset else [],
        "tags": ["adapter-zoo", meta["task"].replace("/", "-"), meta["method"]],
        "model-index": [{
            "name": meta["name"],
            "results": [{
                "task": {"type": pipeline, "name": PIPELINES[pipeline]},
                "dataset": {"name": meta["task"], "type": hub_dataset or meta["task"],
                            "config": task.hub_config if task else meta["task"].split("/")[-1],
                            "split": "validation"},
                "metrics": metrics,
            }],
        }],
        # what a catalogue needs without downloading the adapter (zoo list, the demo's results table)
        "zoo": {"name": meta["name"], "task": meta["task"], "method": meta["method"],
                "task_type": meta.get("task_type", "SEQ_CLS"), "labels": list(meta["labels"]),
                **{k: meta["efficiency"][k] for k in CARD_EFFICIENCY if k in meta["efficiency"]},
                "seed": recipe["seed"]},
    }


def plot_training_curve(history: list[dict], path: Path, title: str = "") -> bool:
    """Training loss (and validation loss / accuracy when logged) against steps, as a PNG.

    Returns False, writing nothing, when the history has no loss to plot."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r and "step" in r]
    evals = [(r["step"], r.get("eval_loss"), r.get("eval_accuracy")) for r in history if "eval_loss" in r]
    if not train and not evals:
        return False
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display: files only
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if train:
        ax.plot(*zip(*train), label="training loss", color="#1f77b4", linewidth=1.2)
    if evals:
        ax.plot([e[0] for e in evals], [e[1] for e in evals], "o-", label="validation loss", color="#d62728")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if evals and any(e[2] is not None for e in evals):
        acc = ax.twinx()
        acc.plot([e[0] for e in evals if e[2] is not None], [e[2] for e in evals if e[2] is not None], "s--",
                 label="validation accuracy", color="#2ca02c")
        acc.set_ylabel("accuracy")
        acc.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left" if evals else "upper right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
    return True


def render_card(meta: dict, template: str | None = None) -> str:
    if template is None:
        template = "causal_card.md.j2" if is_causal(meta) else "adapter_card.md.j2"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    env.filters["pct"] = lambda x: f"{100 * float(x):.2f}"
    env.filters["mib"] = lambda b: f"{int(b) / 2**20:.1f} MiB"
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    from .hub import card_yaml

    front = card_yaml(card_metadata(meta)).strip()
    return env.get_template(template).render(front_matter=front, m=meta, r=meta["recipe"])
