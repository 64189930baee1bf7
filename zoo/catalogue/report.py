"""``zoo report``: the catalogue's comparison, written as files from the published records only.

``DIR/results.md`` (one section and table per task, the command that made it at the top),
``DIR/results/<task>.csv`` and ``DIR/results/<task>-quality.png`` (the task's metric against trainable
parameters on a log axis; the majority and in-context baselines as horizontal lines). A sweep (adapters
published by one ``zoo.Sweep``) is one row in the task's table, its best point, and a section of its own:
the metric over the grid as a table and as ``DIR/results/<sweep>-heatmap.png``, one cell per published point.

    from zoo.catalogue.report import write_report
    from zoo.hub.backends import get_hub
    write_report(get_hub("local").list(), "docs", command="zoo report --out docs")
"""

from __future__ import annotations

import itertools
import math
import shutil
from dataclasses import replace
from pathlib import Path

import matplotlib

from zoo.artifact.record import MAX_SWEEP_POINTS
from zoo.catalogue.table import LOWER_IS_BETTER, Row, markdown, task_tables, to_csv
from zoo.errors import ZooError
from zoo.hub.local import base_slug

matplotlib.use("Agg", force=True)  # files only, no display

from matplotlib.figure import Figure  # noqa: E402


def task_slug(task: str) -> str:
    """A file name for a task id (``tweet_eval/emotion`` -> ``tweet_eval-emotion``)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in task)


def quality_figure(title: str, rows: list[Row]) -> Figure:
    """The metric against trainable parameters (log x), one point per adapter coloured by method, the majority and
    in-context rows as horizontal lines. ``zoo report`` saves it per task; the demo's Results tab shows it."""
    fig = Figure(figsize=(7.0, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    points = [r for r in rows if r.kind == "adapter" and r.value is not None and r.trainable_params]
    if not points:
        ax.text(0.5, 0.5, "no published metrics to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    methods = sorted({r.method for r in points})
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for m in methods:
        mine = [r for r in points if r.method == m]
        ax.scatter([r.trainable_params for r in mine], [r.value for r in mine], label=m, color=colors[m], s=40,
                   zorder=3, edgecolors="black", linewidths=0.5)
    for r in points:
        ax.annotate(r.adapter, (r.trainable_params, r.value), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for r, style in [(r, ":" if r.kind == "majority" else "--") for r in rows if r.kind != "adapter" and r.value is not None]:
        ax.axhline(r.value, linestyle=style, color="grey", linewidth=1)
        ax.annotate(f"{r.method} ({r.adapter})" if r.adapter else r.method, (0.01, r.value), fontsize=7,
                    xycoords=("axes fraction", "data"), color="grey", xytext=(2, 2), textcoords="offset points")
    metrics = sorted({r.metric for r in points if r.metric}) or ["metric"]
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(" / ".join(metrics) + (" (lower is better)" if set(metrics) <= LOWER_IS_BETTER else "") + " (validation)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def quality_plot(task: str, rows: list[Row], path: Path) -> bool:
    """Save the task's :func:`quality_figure` as a PNG; False (writing nothing) when no adapter has both figures."""
    if not any(r.kind == "adapter" and r.value is not None and r.trainable_params for r in rows):
        return False
    quality_figure(f"{task}: quality against trainable parameters", rows).savefig(str(path), format="png")
    return True


def sweeps(rows: list[Row]) -> dict[str, list[Row]]:
    """Sweep name -> its published points (rows whose record carries a sweep), in the task's row order."""
    out: dict[str, list[Row]] = {}
    for r in rows:
        if r.kind == "adapter" and r.sweep:
            out.setdefault(r.sweep["family"], []).append(r)
    return out


def _best(points: list[Row]) -> Row | None:
    scored = [r for r in points if r.value is not None]
    if not scored:
        return None
    lower = (scored[0].metric or "") in LOWER_IS_BETTER
    return (min if lower else max)(scored, key=lambda r: r.value)


def collapse_sweeps(rows: list[Row]) -> list[Row]:
    """The task's rows with each sweep reduced to its best point, named as such (the plot's and table's view)."""
    families = sweeps(rows)
    best = {name: _best(points) for name, points in families.items()}
    out = []
    for r in rows:
        if r.kind == "adapter" and r.sweep:
            name = r.sweep["family"]
            if best[name] is r:
                out.append(replace(r, method=f"{r.method} (best of {len(families[name])}-point sweep {name})"))
            continue
        out.append(r)
    return out


def _grid(points: list[Row]) -> tuple[list[str], dict[str, list]]:
    """The sweep's keys and each key's values, from its records (their grids may differ if the file changed:
    the union, in first-seen order)."""
    keys: list[str] = []
    values: dict[str, list] = {}
    for r in points:
        for key, vals in r.sweep["grid"].items():
            if key not in values:
                keys.append(key)
                values[key] = []
            for v in [*vals, r.sweep["point"].get(key)]:
                if v not in values[key]:
                    values[key].append(v)
    return keys, values


def _cell_of(points: list[Row], fixed: dict) -> Row | None:
    for r in points:
        if all(r.sweep["point"].get(k) == v for k, v in fixed.items()):
            return r
    return None


def sweep_table(points: list[Row]) -> str:
    """The sweep's metric over its grid, as Markdown: rows = the first key's values, columns = the second's
    (the rest of the keys, if any, one table each); an unpublished point is a dash."""
    keys, values = _grid(points)
    row_key, col_key, rest = keys[0], (keys[1] if len(keys) > 1 else None), keys[2:]
    blocks = []
    for fixed in (dict(zip(rest, combo)) for combo in itertools.product(*(values[k] for k in rest))):
        cols = values[col_key] if col_key else [None]
        head = ([f"{row_key} \\ {col_key}"] + [str(c) for c in cols]) if col_key else [row_key, points[0].metric or "value"]
        lines = [", ".join(f"`{k}={v}`" for k, v in fixed.items()) + ":", ""] if fixed else []
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for rv in values[row_key]:
            cells = []
            for cv in cols:
                r = _cell_of(points, {**fixed, row_key: rv, **({col_key: cv} if col_key else {})})
                cells.append("—" if r is None or r.value is None else f"{r.value:.4f}")
            lines.append(f"| {rv} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def heatmap(name: str, points: list[Row], path: Path) -> int:
    """The sweep's metric over its grid as a heat map (first key down, second across, one panel per value
    of the other keys); a point not published is an empty cell. Returns how many cells hold a value."""
    keys, values = _grid(points)
    row_key, col_key, rest = keys[0], (keys[1] if len(keys) > 1 else None), keys[2:]
    panels = [dict(zip(rest, combo)) for combo in itertools.product(*(values[k] for k in rest))]
    cols = values[col_key] if col_key else [None]
    metric = next((r.metric for r in points if r.metric), "value")
    scored = [r.value for r in points if r.value is not None]
    low, high = (min(scored), max(scored)) if scored else (0.0, 1.0)
    width = min(4.8, 1.2 + 0.9 * len(cols))
    fig = Figure(figsize=(width * len(panels) + 1.2, 0.6 * len(values[row_key]) + 1.6), dpi=100)
    filled = 0
    for p, fixed in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        grid = [[math.nan] * len(cols) for _ in values[row_key]]
        for i, rv in enumerate(values[row_key]):
            for j, cv in enumerate(cols):
                r = _cell_of(points, {**fixed, row_key: rv, **({col_key: cv} if col_key else {})})
                if r is not None and r.value is not None:
                    grid[i][j] = r.value
                    filled += 1
                    ax.text(j, i, f"{r.value:.3f}", ha="center", va="center", fontsize=8, color="white"
                            if (r.value - low) < 0.6 * (high - low or 1) else "black")
        image = ax.imshow(grid, cmap="viridis_r" if metric in LOWER_IS_BETTER else "viridis", vmin=low, vmax=high,
                          aspect="auto")
        ax.set_yticks(range(len(values[row_key])), [str(v) for v in values[row_key]])
        ax.set_ylabel(row_key)
        ax.set_xticks(range(len(cols)), [str(c) for c in cols] if col_key else [""])
        if col_key:
            ax.set_xlabel(col_key)
        if fixed:
            ax.set_title(", ".join(f"{k}={v}" for k, v in fixed.items()), fontsize=9)
    fig.colorbar(image, ax=fig.axes, label=metric, shrink=0.9)
    fig.suptitle(f"sweep {name}: validation {metric}", fontsize=10)
    fig.savefig(str(path), format="png", bbox_inches="tight")
    return filled


def write_report(listing: list[dict], out: str | Path, *, task: str | None = None, base: str | None = None,
                 command: str = "zoo report", source: str = "") -> list[Path]:
    """Write the report of the published ``listing`` (a hub's ``list()``) under ``out``; returns the files."""
    out = Path(out)
    tables = task_tables(listing, task=task, base=base)
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    n = sum(1 for rows in tables.values() for r in rows if r.kind != "majority")
    lines = ["# Results", "",
             f"Generated by `{command}` from {n} published entries{f' on {source}' if source else ''}; "
             "do not edit by hand, run the command again. Validation split; *italic* rows are baselines "
             "(majority class, in-context prompting).", ""]
    for name, rows in tables.items():
        slug = task_slug(name)
        csv_path = folder / f"{slug}.csv"
        csv_path.write_text(to_csv(rows), encoding="utf-8")
        written.append(csv_path)
        metric = next((r.metric for r in rows if r.metric), "metric")
        shown = collapse_sweeps(rows)
        lines += [f"## {name}", "", f"Metric: {metric}.", "", markdown(shown)]
        png = folder / f"{slug}-quality.png"
        if quality_plot(name, shown, png):
            written.append(png)
            lines += [f"![{name}: {metric} against trainable parameters](results/{png.name})", ""]
        for family, points in sweeps(rows).items():
            keys, values = _grid(points)
            cells = math.prod(len(v) for v in values.values())
            if cells > MAX_SWEEP_POINTS:  # records of one family may each declare their own grid: the union is drawn
                lines += [f"### Sweep {family}", "", f"{len(points)} published points; their grids together have "
                          f"{cells:,} points, more than a table or heat map shows ({MAX_SWEEP_POINTS:,}).", ""]
                continue
            lines += [f"### Sweep {family}", "", f"{len(points)} published points over {', '.join(f'`{k}`' for k in keys)}; "
                      f"validation {metric} of each:", "", sweep_table(points)]
            heat = folder / f"{task_slug(family)}-heatmap.png"
            heatmap(family, points, heat)
            written.append(heat)
            lines += [f"![sweep {family}: {metric} over its grid](results/{heat.name})", ""]
    if not tables:
        lines += ["No published entries match; train some with `zoo train RECIPE --push`.", ""]
    md = out / "results.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    return [md, *written]


RECORD_FILES = ("zoo.json", "README.md")


def keep_records(listing: list[dict], folder: str | Path) -> int:
    """Copy the record and card of every entry in ``listing`` into ``folder``, laid out as a local hub without
    weights (``folder/hub/<base>/<name>/current/``), so ``ZOO_HOME=folder zoo report --hub local`` writes the same
    report after the weights are gone. Entries already kept are replaced and other kept entries stay: builds done
    in parts (other machines, other days) add up to one catalogue. Returns how many entries were kept."""
    if any("path" not in entry for entry in listing):
        raise ZooError("--keep-records copies zoo.json files from a local hub: use it with --hub local (a Hub listing "
                       "carries the cards' metadata, not the records)")
    kept = 0
    for entry in listing:
        source = Path(entry["path"])
        target = Path(folder) / "hub" / base_slug(entry["base_model"]) / entry["name"] / "current"
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
        kept += 1
    return kept
