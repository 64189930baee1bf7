"""The Gradio app of the demo Space: try an adapter, all tasks at once, compare methods, results.

The page is a layout over ``zoo.demo.catalogue.Catalogue``; ``spaces/app.py`` (the Hugging Face Space) and
``zoo demo`` both call :func:`build_app`. Every tab is also an API endpoint (``/try``, ``/all_tasks``,
``/compare``, ``/results``, ``/status``, ``/refresh``) for ``gradio_client``. Every value a request sends is
checked once, by name, in ``Catalogue.check_inputs``; :func:`launch` refuses request bodies over a limit
(``BodyLimit``) before Gradio parses them.

    from zoo.demo.app import build_app, launch
    launch(build_app(hub="local"), host="127.0.0.1", port=7860)
"""

from __future__ import annotations

import functools
import html
import logging
import math
import os
import threading
import time

import gradio as gr
from starlette.middleware import Middleware

from zoo.catalogue.report import quality_figure
from zoo.demo.catalogue import Catalogue
from zoo.demo.entries import MAX_CHARS, MAX_NEW_TOKENS, METHOD_NAMES, Entry, kind_of
from zoo.demo.limits import BodyLimit, body_limit
from zoo.errors import BadInput, ZooError

log = logging.getLogger("zoo.demo.catalogue")

REFRESH_SECONDS = 10.0  # the Refresh button lists the hub at most this often, however often it is pressed
CONCURRENCY = 8  # requests computed at once; the registry routes each row to its adapter, so users never wait on each other's adapter
TABLE_COLUMNS = ["Adapter", "Task", "Method", "Base", "Prediction", "Confidence", "Probabilities / text", "ms", "Validation"]
TABLE_WIDTHS = ["14%", "12%", "9%", "10%", "9%", "7%", "27%", "5%", "7%"]
RESULTS_COLUMNS = ["Task", "Adapter", "Method", "Base", "Metric", "Value", "Trainable params", "% trainable",
                   "Train time (s)", "Adapter (MiB)"]
INTRO = """# adapter-zoo
Parameter-efficient adapters (LoRA, IA3, prompt tuning, P-tuning, prefix tuning, QLoRA), fully fine-tuned
baselines and in-context prompts, published with their measured results, served on **one shared frozen base
per base model**. Catalogue: {where}, {n} entries."""


def _handler(check, *fields: str):
    """An event handler whose raw values (events run with ``preprocess=False``: Gradio's components would turn a
    JSON object into text) are checked once by name, ``check(dict(zip(fields, values)))``, and passed to it by
    name. Errors a user can fix come back as a message on the page (gr.Error), never as a stack trace."""

    def wrap(fn):
        @functools.wraps(fn)
        def wrapper(*values):
            try:
                if len(values) != len(fields):
                    raise BadInput(f"this endpoint takes {len(fields)} values ({', '.join(fields)}), got {len(values)}")
                return fn(**check(dict(zip(fields, values)))) if fields else fn()
            except ZooError as e:  # the message is HTML on the page: a stranger's text must not become markup
                raise gr.Error(html.escape(str(e), quote=False), print_exception=False) from None
            except gr.Error:
                raise
            except Exception as e:  # unexpected: logged in full here, one line to the page
                log.exception("request failed")
                raise gr.Error(f"internal error ({type(e).__name__}); the server log has the details",
                               print_exception=False) from None

        return wrapper

    return wrap


class DemoBlocks(gr.Blocks):
    """gr.Blocks that answers a request with too few values with a message (Gradio's own check answers
    ``{"error": null}``); extra values are dropped by Gradio, as before."""

    def validate_inputs(self, block_fn, inputs):
        if not isinstance(inputs, list) or len(inputs) < len(block_fn.inputs):
            got = len(inputs) if isinstance(inputs, list) else kind_of(inputs)
            raise gr.Error(f"this endpoint takes {len(block_fn.inputs)} values, got {got}; the API page lists them",
                           print_exception=False)
        super().validate_inputs(block_fn, inputs)


def _choices(cat: Catalogue) -> list[tuple[str, str]]:
    return [(e.title, e.id) for e in cat.entries.values()]


def _fields(entry: Entry | None) -> tuple[str, str, bool]:
    """Labels of the two text boxes for an entry, and whether the second one shows."""
    if entry is None:
        return "Text", "Second text", False
    if entry.pair:
        return "Premise (first sentence)", "Hypothesis (second sentence)", True
    if entry.causal and len(entry.fields) > 1:
        return f"{entry.fields[0].capitalize()}", f"{entry.fields[1].capitalize()} (optional)", True
    if entry.kind == "generate" and entry.fields == ("text",):
        return "Text (article, review...)", "Second text", False
    return "Text", "Second text", False


def _describe(entry: Entry | None) -> str:
    if entry is None:
        return "Nothing is published yet: `zoo train RECIPE --push`, then reload the catalogue."
    head = f"{entry.headline[0]} **{entry.headline[1]:.4f}** on validation" if entry.headline else "no validation metric"
    params = entry.efficiency.get("trainable_params")
    params = f"{params:,} trainable parameters" if isinstance(params, int) else "trainable parameters not recorded"
    what = {"classify": "label probabilities", "verbalize": "a generated answer, read as a label",
            "generate": "generated text"}[entry.kind]
    return (f"**`{entry.name}`**: {entry.method_name} on `{entry.base}`, task `{entry.task}`; {head}; {params}. "
            f"Answers with {what}.")


def _row(r: dict, entry: Entry | None) -> list:
    head = f"{entry.headline[0]} {entry.headline[1]:.3f}" if entry and entry.headline else ""
    who = [r["adapter"], r["task"], METHOD_NAMES.get(r["method"], r["method"]), r["base"].split("/")[-1]]
    if "error" in r:
        return [*who, "—", None, r["error"], None, head]
    if "scores" in r:
        detail = " · ".join(f"{k} {v:.3f}" for k, v in sorted(r["scores"].items(), key=lambda kv: -kv[1]))
        return [*who, r["label"], round(r["score"], 4), detail, r["latency_ms"], head]
    label = r.get("label") or ("(no answer)" if r.get("no_answer") else "")
    return [*who, label, None, r["text"].strip(), r["latency_ms"], head]


def results_plot(rows: list, title: str):
    """Quality against trainable parameters (log scale): ``zoo report``'s figure (``quality_figure``) of these rows."""
    return quality_figure(title, rows)


def build_app(catalogue: Catalogue | None = None, *, hub=None, concurrency: int = CONCURRENCY) -> gr.Blocks:
    """The demo page over ``catalogue`` (default: the catalogue of ``hub``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a demo must not phone home (nor hang offline)
    cat = catalogue or Catalogue(hub)

    def entry_or_none(entry_id):
        try:
            return cat.get(entry_id)
        except ZooError:
            return None

    def first(choices):
        """The entry a visitor sees first: a single-sentence classifier if there is one."""
        simple = [c for c in choices if (e := entry_or_none(c[1])) and e.kind == "classify" and not e.pair]
        return (simple or choices or [(None, None)])[0][1]

    # ------------------------------------------------------------------ handlers
    checked = functools.partial(_handler, cat.check_inputs)  # every value of every request: Catalogue.check_inputs

    @_handler(lambda values: values, "entry_id")  # checked below: an unknown id is described while one types
    def on_entry_value(entry_id):
        try:
            entry = cat.check_inputs({"entry": entry_id})["entry"]
            about = _describe(entry)
        except ZooError as e:
            entry, about = None, html.escape(str(e), quote=False)
        first_label, second_label, show_second = _fields(entry)
        causal = bool(entry and entry.causal)
        return (about, gr.Textbox(label=first_label), gr.Textbox(label=second_label, visible=show_second),
                gr.Slider(visible=causal), gr.Label(visible=not entry or entry.kind != "generate"),
                gr.Textbox(visible=causal))

    @checked("entry", "text", "second", "max_new_tokens")
    def run_try(entry, text, second, max_new_tokens):
        r = cat.answer(entry.id, text, second, max_new_tokens=max_new_tokens if entry.causal else None)
        if "scores" in r:
            label = r["scores"]
        elif entry.kind == "verbalize":
            label = r["label"] or "(no answer)"
        else:
            label = None
        timing = f"answered in **{r['latency_ms']:.0f} ms** by `{entry.name}` on `{entry.base}`"
        if r.get("batch", 1) > 1:
            timing += f", in one mixed batch with {r['batch'] - 1} other request(s)"
        return label, r.get("text", ""), timing, r

    def run_table(ids, text, second, max_new_tokens, what):
        rows = cat.answer_many(ids, text, second, max_new_tokens=max_new_tokens)
        table = [_row(r, entry_or_none(r["entry"])) for r in rows]
        answered = [r for r in rows if "error" not in r]
        batches = {}
        for r in answered:
            batches.setdefault(r["base"], r["batch"])
        mixed = [f"{n} rows in one mixed batch on `{b.split('/')[-1]}`" for b, n in batches.items() if n > 1]
        summary = "; ".join([f"{len(answered)} of {len(rows)} {what} answered", *mixed])
        return table, summary, rows

    @checked("base", "text", "second")
    def run_all_tasks(base, text, second):
        ids = [e.id for e in cat.entries.values() if e.base == base and e.labelled]
        if not ids:
            raise ZooError(f"no classification adapters for base {base!r}; pick another base")
        return run_table(ids, text, second, None, "classification entries")

    @checked("task", "text", "second", "max_new_tokens")
    def run_compare(task, text, second, max_new_tokens):
        ids = [e.id for e in cat.entries.values() if e.task == task]
        if not ids:
            raise ZooError(f"no entries for task {task!r}; pick another task")
        table, summary, rows = run_table(ids, text, second, max_new_tokens, "entries")
        return table, summary, _compare_bars(rows), rows

    @checked("results_task")
    def run_results(results_task):
        rows = cat.results(results_task)
        table = [[r["task"], r["adapter"], r["method"], r["base"], r["metric"], r["value"], r["trainable_params"],
                  r["trainable_pct"], r["train_seconds"], r["adapter_mib"]] for r in rows]
        title = f"{results_task or 'all tasks'}: validation quality against trainable parameters"
        return table, results_plot(cat.result_rows(results_task), title)

    @checked()
    def run_status():
        return cat.loaded()

    listed = {"at": -math.inf}
    listing = threading.Lock()

    @checked()
    def run_refresh():
        with listing:  # anyone may press it: the hub (and the Space's token) sees one listing per REFRESH_SECONDS
            ago = time.monotonic() - listed["at"]
            if ago >= REFRESH_SECONDS:
                listed["at"] = time.monotonic()
                cat.refresh(strict=False)
        choices = _choices(cat)
        tasks, bases = cat.tasks(), cat.bases()
        return (gr.Dropdown(choices=choices, value=first(choices)), gr.Dropdown(choices=bases, value=bases[0] if bases else None),
                gr.Dropdown(choices=tasks, value=tasks[0] if tasks else None),
                gr.Dropdown(choices=["all tasks", *tasks], value="all tasks"),
                cat.problem or f"{len(cat.entries)} entries on {cat.describe()}" + (
                    f" (listed {ago:.0f} s ago; listed again at most every {REFRESH_SECONDS:.0f} s)"
                    if ago < REFRESH_SECONDS else ""))

    # ------------------------------------------------------------------ layout
    choices = _choices(cat)
    tasks, bases = cat.tasks(), cat.bases()
    start = entry_or_none(first(choices))
    first_label, second_label, show_second = _fields(start)
    limit = {"concurrency_limit": concurrency, "preprocess": False}  # raw values go to Catalogue.check_inputs
    with DemoBlocks(title="adapter-zoo", analytics_enabled=False) as demo:
        gr.Markdown(INTRO.format(where=cat.describe(), n=len(cat.entries))
                    + (f"\n\n**{cat.problem}**; reload the catalogue below once it is back." if cat.problem else ""))
        with gr.Tab("Try", id="try"):
            entry = gr.Dropdown(choices=choices, value=first(choices), label="Adapter (task │ name · method · base · metric)",
                                allow_custom_value=True, elem_id="try-entry")
            about = gr.Markdown(_describe(start), elem_id="try-about")
            with gr.Row():
                text = gr.Textbox(label=first_label, lines=3, max_length=cat.max_chars, elem_id="try-text",
                                  placeholder="a gripping, beautifully acted film")
                second = gr.Textbox(label=second_label, lines=3, max_length=cat.max_chars, visible=show_second,
                                    elem_id="try-second")
            max_new = gr.Slider(1, MAX_NEW_TOKENS, value=48, step=1, label="Max new tokens",
                                visible=bool(start and start.causal))
            go = gr.Button("Predict", variant="primary", elem_id="try-run")
            with gr.Row():
                label_out = gr.Label(label="Prediction", num_top_classes=8, elem_id="try-label",
                                     visible=not start or start.kind != "generate")
                text_out = gr.Textbox(label="Generated text", lines=4, interactive=False, elem_id="try-generated",
                                      visible=bool(start and start.causal))
            timing = gr.Markdown(elem_id="try-latency")
            with gr.Accordion("Raw answer (JSON)", open=False):
                raw = gr.JSON()
            entry.change(on_entry_value, entry, [about, text, second, max_new, label_out, text_out], api_name=False,
                         preprocess=False)
            go.click(run_try, [entry, text, second, max_new], [label_out, text_out, timing, raw], api_name="try", **limit)
            text.submit(run_try, [entry, text, second, max_new], [label_out, text_out, timing, raw], api_name=False, **limit)

        with gr.Tab("All tasks at once", id="all"):
            gr.Markdown("One input, every classification entry on one base: the registry computes them as one "
                        "mixed batch (each row through its own adapter). Sentence-pair entries answer when the "
                        "second text is filled in.")
            base = gr.Dropdown(choices=bases, value=bases[0] if bases else None, label="Base model", allow_custom_value=True)
            with gr.Row():
                all_text = gr.Textbox(label="Text", lines=2, max_length=cat.max_chars, elem_id="all-text")
                all_second = gr.Textbox(label="Second text (for sentence-pair entries)", lines=2, max_length=cat.max_chars)
            all_go = gr.Button("Ask every adapter", variant="primary")
            all_table = gr.Dataframe(headers=TABLE_COLUMNS, label="Answers", wrap=True, interactive=False,
                                     column_widths=TABLE_WIDTHS)
            all_summary = gr.Markdown()
            with gr.Accordion("Raw answers (JSON)", open=False):
                all_raw = gr.JSON()
            all_go.click(run_all_tasks, [base, all_text, all_second], [all_table, all_summary, all_raw],
                         api_name="all_tasks", **limit)

        with gr.Tab("Compare methods", id="compare"):
            gr.Markdown("The same input through every entry of one task: LoRA against prompt tuning, IA3, full "
                        "fine-tuning, in-context prompting...")
            task = gr.Dropdown(choices=tasks, value=tasks[0] if tasks else None, label="Task", allow_custom_value=True)
            with gr.Row():
                cmp_text = gr.Textbox(label="Text (or premise, or instruction)", lines=2, max_length=cat.max_chars)
                cmp_second = gr.Textbox(label="Second text (hypothesis, or an instruction's input)", lines=2,
                                        max_length=cat.max_chars)
            cmp_new = gr.Slider(1, MAX_NEW_TOKENS, value=32, step=1, label="Max new tokens (generating entries)")
            cmp_go = gr.Button("Compare", variant="primary")
            cmp_table = gr.Dataframe(headers=TABLE_COLUMNS, label="Side by side", wrap=True, interactive=False,
                                     column_widths=TABLE_WIDTHS)
            cmp_summary = gr.Markdown()
            cmp_bars = gr.BarPlot(x="adapter", y="probability", color="label", label="Label probabilities per adapter",
                                  y_lim=[0, 1])
            with gr.Accordion("Raw answers (JSON)", open=False):
                cmp_raw = gr.JSON()
            cmp_go.click(run_compare, [task, cmp_text, cmp_second, cmp_new], [cmp_table, cmp_summary, cmp_bars, cmp_raw],
                         api_name="compare", **limit)

        with gr.Tab("Results", id="results"):
            gr.Markdown("From the published cards: validation metric, trainable parameters, training time and "
                        "adapter size of every entry.")
            res_task = gr.Dropdown(choices=["all tasks", *tasks], value="all tasks", label="Task")
            res_table = gr.Dataframe(headers=RESULTS_COLUMNS, label="Comparison table", wrap=True, interactive=False)
            res_plot = gr.Plot(label="Quality against trainable parameters")
            res_task.change(run_results, res_task, [res_table, res_plot], api_name="results", preprocess=False)
            demo.load(run_results, res_task, [res_table, res_plot], api_name=False, preprocess=False)

        with gr.Accordion("Catalogue and memory", open=False):
            status_line = gr.Markdown(f"{len(cat.entries)} entries on {cat.describe()}")
            with gr.Row():
                reload = gr.Button("Reload the catalogue")
                show = gr.Button("What is in memory")
            memory = gr.JSON(label="Shared bases and resident adapters")
            reload.click(run_refresh, None, [entry, base, task, res_task, status_line], api_name="refresh")
            show.click(run_status, None, memory, api_name="status")
    demo.queue(default_concurrency_limit=concurrency, max_size=256)
    demo.catalogue = cat
    return demo


def _compare_bars(rows: list[dict]):
    import pandas as pd

    data = [{"adapter": r["adapter"], "label": label, "probability": p}
            for r in rows if "scores" in r for label, p in r["scores"].items()]
    return pd.DataFrame(data, columns=["adapter", "label", "probability"]).astype({"probability": float})


def launch(demo: gr.Blocks, *, host: str | None = "127.0.0.1", port: int | None = 7860, quiet: bool = False,
           block: bool = True, max_body: int | None = None):
    """Start the app (no share link, no server-side rendering: neither works offline), refusing request bodies
    over ``max_body`` bytes (default: ZOO_DEMO_MAX_BODY, else :func:`body_limit` of the catalogue's max_chars).

    ``host`` / ``port`` None: Gradio's own settings (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as on a Space)."""
    if max_body is None:
        setting = os.environ.get("ZOO_DEMO_MAX_BODY", "").strip()
        if setting and not setting.isdigit():
            raise BadInput(f"ZOO_DEMO_MAX_BODY must be a whole number of bytes, got {setting[:40]!r}")
        max_chars = getattr(getattr(demo, "catalogue", None), "max_chars", MAX_CHARS)
        max_body = int(setting) if setting else body_limit(max_chars)
    if max_body < 1024:
        raise BadInput(f"the request body limit must be at least 1,024 bytes, got {max_body:,}; "
                       "raise ZOO_DEMO_MAX_BODY")
    middleware = [Middleware(BodyLimit, limit=max_body)]  # app_kwargs go to Gradio's FastAPI app, before its routes
    return demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False, quiet=quiet,
                       prevent_thread_lock=not block, footer_links=["api"], theme=gr.themes.Soft(),
                       app_kwargs={"middleware": middleware})
