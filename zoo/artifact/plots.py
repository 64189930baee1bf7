"""The training curve published with each adapter (a PNG; matplotlib without a display)."""

from __future__ import annotations

from pathlib import Path


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


