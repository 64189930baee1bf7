"""The `zoo` command: a thin layer over the library (train, eval, push, list)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from zoo.errors import RunFailed, ZooError

# Options several commands share, declared once.
HubOption = Annotated[Optional[str], typer.Option(
    "--hub", help="hf (Hugging Face Hub) or local; default: hf when a token is configured")]
RepoIdOption = Annotated[Optional[str], typer.Option(
    "--repo-id", help="Hub repo ORG/NAME (default <your user>/<adapter name>)")]
PrivateOption = Annotated[bool, typer.Option("--private", help="create the Hub repo private")]
DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="local data mirror (default $ZOO_DATA_DIR, else the Hub)")]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, publish, find and evaluate parameter-efficient adapters.")


def _fail(error: Exception) -> None:
    typer.echo(f"error: {type(error).__name__}: {error}", err=True)
    raise typer.Exit(code=2)


@app.command()
def train(
    recipes: List[Path] = typer.Argument(..., help="recipe files or folders of them, e.g. recipes/sst2_lora.py or recipes/"),
    set_: List[str] = typer.Option([], "--set", help="override a recipe field: KEY=VALUE, dotted (train.epochs=1)"),
    output_dir: Optional[Path] = typer.Option(None, help="run folder (default runs/<name>); with several recipes, "
                                              "the folder holding one run folder per recipe"),
    push: bool = typer.Option(False, "--push", help="publish the trained adapter (see --hub)"),
    hub: HubOption = None,
    repo_id: RepoIdOption = None,
    private: PrivateOption = False,
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's last checkpoint"),
    force: bool = typer.Option(False, "--force", help="with several recipes: train even those already built "
                               "(published with --push, else in their run folder) from the same recipe and data"),
    only: List[str] = typer.Option([], "--only", help="train only the recipe(s) of this name, from a family or sweep "
                                   "file (repeatable); `zoo recipe FILE` lists the names"),
    offline: bool = typer.Option(False, "--offline", help="train only the recipes whose base model and data are on "
                                 "this machine (the offline zoo); the others are listed as skipped, with the reason"),
    data_dir: DataDirOption = None,
    progress: bool = typer.Option(True, help="show progress bars"),
    outcome: Optional[Path] = typer.Option(None, "--outcome", hidden=True,
                                           help="(a build's own child process) write how the run ended here"),
):
    """Train adapters from recipes, evaluate each on validation, and optionally publish them.

    A file may define a family (`recipes = [...]`) or a sweep (`Sweep(recipe, grid=...)`): every recipe in it
    is trained, or those named with --only. Several recipes (or a folder) make a build: each recipe whose
    adapter is already built from the same recipe and data (the fingerprint in its zoo.json) is skipped, an
    interrupted one resumes from its last checkpoint, and the rest train one after the other, each in a process
    of its own (its peak memory is its own, and one killed by the system fails alone); one that fails is reported
    and the build goes on (exit status 1 at the end)."""
    from zoo.config.family import load_recipes
    from zoo.config.family import only as pick
    from zoo.config.recipe import run_fingerprint

    try:
        paths = _recipe_paths(recipes)
        sets = list(set_) + ([f"data_dir={data_dir}"] if data_dir else [])
        from_file = [(r, p) for p in paths for r in load_recipes(p, sets)]  # every recipe checked before any trains
        source = {r.name: p for r, p in from_file}  # the file a build's child process reads it from
        loaded = [r for r, _ in from_file]
        loaded = pick(loaded, only, ", ".join(map(str, recipes)))
        build = len(loaded) > 1  # a build (run folders per recipe, skips, [k/n]) even if --offline leaves one
        skipped = 0
        if offline:
            from zoo.training import needs_network

            reasons = {r.name: needs_network(r) for r in loaded}
            for name, why in reasons.items():
                if why:
                    typer.echo(f"skipped {name}: {why} (--offline)", err=True)
            loaded = [r for r in loaded if not reasons[r.name]]
            skipped = len(reasons) - len(loaded)
            if not loaded:
                raise ZooError("--offline: none of these recipes can train without the Hub")
        names = [r.name for r in loaded]
        if len(set(names)) != len(names):
            raise ZooError(f"two recipes are named {next(n for n in names if names.count(n) > 1)!r}; names must differ")
        if build and repo_id:
            raise ZooError("--repo-id names one repo; with several recipes leave it out (each goes to <user>/<name>)")
        children = build and _separate_processes()
        if not children:
            from zoo.training import train as run
        started, trained, built, failed = time.monotonic(), [], [], []
        for k, r in enumerate(loaded, 1):
            step = f"[{k}/{len(loaded)}] " if build else ""
            out = (output_dir / r.name if output_dir else Path("runs") / r.name) if build else output_dir
            fingerprint = run_fingerprint(r)
            if build and not force:
                where = _already_built(r, fingerprint, push, hub, out)
                if where:
                    typer.echo(f"{step}{r.name}: already built from the same recipe and data ({where}); skipped "
                               "(--force trains it again)", err=True)
                    built.append(r.name)
                    continue
            again = resume or (build and _interrupted(out, fingerprint))
            if outcome is None:  # (a build's child process: the build said it already)
                typer.echo(f"{step}training {r.name}: {r.method_name} on {r.base_model}, task {r.task}"
                           + (" (resuming from its last checkpoint)" if again and not resume else "")
                           + (f"; {len(loaded) - k} more after it" if build else ""), err=True)
            try:
                if build:
                    out.mkdir(parents=True, exist_ok=True)
                    (out / "fingerprint.json").write_text(json.dumps(fingerprint) + "\n")
                if children:
                    _train_in_child(source[r.name], r.name, sets, out, push=push, hub=hub, private=private,
                                    resume=again, progress=progress)
                    trained.append(r.name)
                    continue
                result = run(r, output_dir=out, resume=again, progress=progress)
                if result.processes > 1:
                    typer.echo(f"{r.name}: process {result.rank} of {result.processes} trained "
                               f"{result.efficiency.get('steps', 0)} steps together"
                               + ("; it writes and publishes" if result.main_process else "; process 0 publishes"),
                               err=True)
                if not result.main_process:  # the other ranks go on to the next recipe with process 0
                    continue
                _report_run(result)
                if push:
                    _publish(result.adapter_dir, hub, repo_id, private)
                trained.append(r.name)
                _write_outcome(outcome, None)
            except typer.Exit:  # the build was stopped
                raise
            except Exception as e:  # in a build, one recipe's failure is reported and the others still train
                if outcome is not None:  # a build's child: its parent reports it, in one line
                    _write_outcome(outcome, e)
                    raise typer.Exit(code=1) from None
                if not build:
                    raise
                failed.append(r.name)
                why = str(e) if isinstance(e, RunFailed) else f"{type(e).__name__}: {e}"
                typer.echo(f"{step}error: {r.name} failed, nothing of it published: {why}", err=True)
        if build:
            minutes = (time.monotonic() - started) / 60
            typer.echo(f"build: {len(trained)} trained, {len(built)} already built"
                       + (f", {skipped} skipped (--offline)" if skipped else "")
                       + (f", {len(failed)} failed ({', '.join(failed)})" if failed else "")
                       + f" in {int(minutes // 60)} h {minutes % 60:.0f} min", err=True)
            if failed:
                raise typer.Exit(code=1)
    except ZooError as e:
        if outcome is not None:
            _write_outcome(outcome, e)
        _fail(e)


def _separate_processes() -> bool:
    """A build trains each recipe in a process of its own, except under torchrun or accelerate launch, where
    every rank runs the build and the ranks' process group must train each recipe together."""
    from zoo.training.common import launched_processes

    return launched_processes() == 1


def _write_outcome(path: Optional[Path], error: Optional[Exception]) -> None:
    if path is not None:
        path.write_text(json.dumps({"error": None if error is None else f"{type(error).__name__}: {error}"}) + "\n")


def _train_in_child(path: Path, name: str, sets: List[str], out: Path, *, push: bool, hub: Optional[str],
                    private: bool, resume: bool, progress: bool) -> None:
    """Train (and publish) one recipe of a build in a process of its own: ``zoo train FILE --only NAME``, its
    output on this terminal. Its peak memory is then its own, not what earlier recipes left in this process
    (after a SmolLM2 run a process keeps ~600 MB that no collection frees), and a run the system kills (the
    out-of-memory killer's SIGKILL) fails alone. Ctrl-C or SIGTERM stops the run and then the build; rerunning
    the build resumes the run from its last checkpoint."""
    import signal
    import subprocess

    outcome = out / "outcome.json"
    outcome.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "zoo", "train", str(path), "--only", name, "--output-dir", str(out),
           "--outcome", str(outcome), *[a for s in sets for a in ("--set", s)]]
    cmd += (["--push"] if push else []) + (["--hub", hub] if hub else []) + (["--private"] if private else [])
    cmd += (["--resume"] if resume else []) + ([] if progress else ["--no-progress"])
    proc = subprocess.Popen(cmd)
    stopped = []

    def stop(signum, frame):  # pass a stop on to the run, then end the build
        stopped.append(signum)
        proc.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the run as well (same process group): let it end, then stop
            proc.wait()
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped:
        typer.echo(f"build stopped (SIGTERM) while training {name}; run the same command again to resume", err=True)
        raise typer.Exit(code=128 + signal.SIGTERM)
    try:
        error = json.loads(outcome.read_text())["error"]
    except (OSError, ValueError, KeyError):
        error = None if code == 0 else "its process ended without saying why"
    if code < 0:
        sig = signal.Signals(-code).name
        raise RunFailed(f"its process was killed by {sig}"
                           + (" (the kernel's out-of-memory killer sends it: too little memory for this run?)"
                              if sig == "SIGKILL" else ""))
    if code != 0 or error:
        raise RunFailed(error or f"its process exited with status {code}")


def _recipe_paths(given: List[Path]) -> List[Path]:
    """The recipe files named, folders expanded to their *.py files (sorted; files starting with _ skipped)."""
    out = []
    for path in given:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
            if not found:
                raise ZooError(f"{path} holds no recipe files (*.py)")
            out += found
        else:
            out.append(path)
    return out


def _already_built(recipe, fingerprint: dict, push: bool, hub: Optional[str], out: Path) -> Optional[str]:
    """Where the adapter of ``recipe`` is already built from the same recipe and data, or None."""
    from zoo.artifact.record import read_record

    try:
        if push:
            from zoo.hub.backends import get_hub

            backend = get_hub(hub)
            folder, where = backend.find(recipe.base_model, recipe.name), backend.describe()
        else:
            folder = where = out / "adapter"
        return str(where) if read_record(Path(folder)).fingerprint == fingerprint else None
    except ZooError:  # not built yet (or built by something unreadable): train it
        return None


def _interrupted(out: Path, fingerprint: dict) -> bool:
    """The run folder holds checkpoints of a run of this same recipe and data that did not finish."""
    try:
        same = json.loads((out / "fingerprint.json").read_text()) == fingerprint
    except (OSError, ValueError):
        return False
    return same and any((out / "checkpoints").glob("checkpoint-*")) and not (out / "adapter" / "zoo.json").is_file()


def _report_run(result) -> None:
    m, e = result.metrics, result.efficiency
    if "perplexity" in m:  # causal LMs: answer perplexity against the untouched base model
        typer.echo(f"validation: answer perplexity {m['perplexity']:.3f} "
                   f"(base model {result.baseline['base_model']['perplexity']:.3f})"
                   + (f", accuracy {m['accuracy']:.4f}, no answer {m['no_answer_rate']:.4f}" if "accuracy" in m else "")
                   + (f", ROUGE-1/2/L {m['rouge1']:.4f}/{m['rouge2']:.4f}/{m['rougeL']:.4f}" if "rouge1" in m else "")
                   + (f" (majority baseline accuracy {result.baseline['majority']['accuracy']:.4f})"
                      if "majority" in result.baseline and "accuracy" in m else ""))
    else:
        b = result.baseline["majority"]
        typer.echo(f"validation: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, loss {m['loss']:.4f}"
                   + (f", official {m['official']:.4f}" if "official" in m else "")
                   + f" (majority baseline accuracy {b['accuracy']:.4f})")
    typer.echo(f"trainable {e['trainable_params']:,} / {e['total_params']:,} params "
               f"({100 * e['trainable_ratio']:.2f} %), {e['train_seconds']:.1f} s, "
               f"{e['train_examples_per_second']:.1f} ex/s, adapter {e['adapter_bytes'] / 2**20:.2f} MiB")
    typer.echo(f"adapter written to {result.adapter_dir}")


def _publish(folder: Path, hub: Optional[str], repo_id: Optional[str], private: bool) -> None:
    from zoo.hub.backends import get_hub

    if hub is None and (repo_id or private):
        hub = "hf"  # a repo id or --private only make sense on the Hugging Face Hub
    backend = get_hub(hub)
    if (repo_id or private) and backend.kind != "hf":
        raise ZooError("--repo-id and --private are for the Hugging Face Hub; drop them or use --hub hf")
    typer.echo(f"publishing to {backend.describe()} ...", err=True)
    pushed = backend.push(folder, repo_id=repo_id, private=private)
    typer.echo(f"published {pushed.name} (revision {pushed.revision}) to {backend.describe()}: {pushed.location}")


@app.command()
def recipe(
    path: Path = typer.Argument(..., help="recipe file, e.g. recipes/sst2_lora.py"),
    set_: List[str] = typer.Option([], "--set", help="show the recipe with these overrides applied"),
    only: Optional[str] = typer.Option(None, "--only", help="the recipe of this name, from a family or sweep file"),
):
    """Show every key of a recipe that --set can change, with its value, type and help (a family or sweep
    file: the names of its recipes, and each sweep point's values)."""
    from zoo.config.family import load_recipes
    from zoo.config.family import only as pick
    from zoo.config.overrides import describe

    try:
        found = pick(load_recipes(path, list(set_)), [only] if only else [], str(path))
        from zoo.methods import of_recipe

        methods = [of_recipe(r) for r in found]  # a method the zoo does not know is said here, not after training
    except ZooError as e:
        _fail(e)
    if len(found) > 1:
        typer.echo(f"{path}: {len(found)} recipes (show one with --only NAME)")
        for r, method in zip(found, methods):
            point = ", ".join(f"{k}={v}" for k, v in r.sweep["point"].items()) if r.sweep else ""
            typer.echo(f"  {r.name:40} {method.title:16} {r.task:28} {point}")
        return
    r, method = found[0], methods[0]
    typer.echo(f"{r.name}: {r.description}")
    typer.echo(f"  method: {method.title} ({method.summary})")
    for key, value, kind, text in describe(r):
        typer.echo(f"  {key:34} = {value[:60]:40} {kind[:28]:28} {text[:70]}")


@app.command()
def push(
    folder: Optional[Path] = typer.Argument(None, help="an adapter folder written by `zoo train` (not with --all)"),
    hub: HubOption = None,
    repo_id: RepoIdOption = None,
    private: PrivateOption = False,
    all_: bool = typer.Option(False, "--all", help="publish every adapter of the local hub that the Hugging Face Hub "
                              "lacks or holds with other content, and gather them with the Space into a Collection"),
    space: Optional[str] = typer.Option(None, "--space", help="with --all: the demo Space OWNER/NAME to list in the "
                                        "collection (default <your user>/adapter-zoo)"),
    collection: Optional[str] = typer.Option(None, "--collection", help="with --all: the slug of the collection to "
                                             "update (default: yours titled 'adapter-zoo: ...', else a new one)"),
):
    """Publish an adapter folder: one commit on the Hugging Face Hub, or a new local-hub revision.

    With --all (and no FOLDER): the local hub's catalogue on the Hugging Face Hub. Each adapter goes to
    <user>/<name> unless the Hub's copy has the same files; then the adapters and the Space are gathered into one
    Collection, titled and described from the comparison table. Rerunning it pushes and changes only what differs."""
    try:
        if all_:
            if folder is not None or repo_id:
                raise ZooError("--all publishes the whole local hub, each adapter to <user>/<name>: "
                               "give no FOLDER and no --repo-id with it")
            if hub not in (None, "hf"):
                raise ZooError("--all publishes the local hub to the Hugging Face Hub; use --hub hf or leave --hub out")
            _push_all(space, collection, private)
        elif folder is None:
            raise ZooError("name an adapter folder to push (zoo push runs/sst2-lora/adapter), or use --all")
        elif space or collection:
            raise ZooError("--space and --collection go with --all")
        else:
            _publish(folder, hub, repo_id, private)
    except ZooError as e:
        _fail(e)


def _push_all(space: Optional[str], collection: Optional[str], private: bool) -> None:
    from zoo.catalogue.collection import HOW_TO_PUBLISH_SPACE, publish_catalogue
    from zoo.hub.backends import HFHub

    hub = HFHub()
    typer.echo(f"publishing the local hub to {hub.describe()} ...", err=True)

    def report(a) -> None:
        if a.status == "pushed":
            typer.echo(f"pushed        {a.name} -> {a.repo_id} (revision {a.revision})")
        elif a.status == "same":
            typer.echo(f"on the Hub    {a.name} -> {a.repo_id}: same files, skipped")
        else:
            typer.echo(f"skipped       {a.name}: {a.reason}")

    done = publish_catalogue(hub, space=space, collection=collection, private=private, report=report)
    c = done.collection
    if c.space_found:
        typer.echo(f"Space         {c.space}: in the collection")
    else:
        typer.echo(f"Space         {c.space} not found on {hub.describe()}: the collection lists the adapters only. "
                   f"Publish the Space with `{HOW_TO_PUBLISH_SPACE.format(space=c.space)}` (or pass --space OWNER/NAME), "
                   "then run `zoo push --all` again")
    pushed = sum(a.status == "pushed" for a in done.adapters)
    same = sum(a.status == "same" for a in done.adapters)
    typer.echo(f"adapters      {pushed} pushed, {same} already on the Hub")
    typer.echo(f"collection    {c.url} ({'created' if c.created else 'updated' if c.changed else 'unchanged'})")
    typer.echo(f"              title: {c.title}")
    typer.echo(f"              description: {c.description}")
    typer.echo(f"              items: {len(c.added)} added, {len(c.removed)} removed, {len(c.renoted)} with a new note, "
               f"{len(c.unchanged)} unchanged" + ("; title and description updated" if c.retitled else ""))
    for what, ids in (("added", c.added), ("removed", c.removed), ("new note", c.renoted)):
        for ident in ids:
            typer.echo(f"              {what}: {ident}")


@app.command()
def pull(repo: str = typer.Argument(..., help="Hub repo ORG/NAME, optionally @REVISION")):
    """Download an adapter from the Hugging Face Hub into the local cache; prints its folder."""
    from zoo.artifact.record import read_record
    from zoo.hub.backends import HFHub, parse_repo

    try:
        parsed = parse_repo(repo)
        if parsed is None:
            raise ZooError(f"{repo!r} is not a repo id: use ORG/NAME or ORG/NAME@REVISION")
        folder = HFHub().pull(*parsed)
        record = read_record(folder)
        typer.echo(f"{record.name}: {record.method} on {record.base_model}, task {record.task}")
        typer.echo(str(folder))
    except ZooError as e:
        _fail(e)


@app.command("list")
def list_(
    base: Optional[str] = typer.Option(None, help="only adapters for this base model"),
    task: Optional[str] = typer.Option(None, help="only this task, e.g. glue/sst2"),
    method: Optional[str] = typer.Option(None, help="only this method, e.g. lora"),
    hub: HubOption = None,
):
    """List published adapters, filtered by base model, task and method."""
    from zoo.hub.backends import get_hub

    try:
        backend = get_hub(hub)
        rows = backend.list(base=base, task=task, method=method)
    except ZooError as e:
        _fail(e)
    typer.echo(f"{len(rows)} adapter(s) on {backend.describe()}", err=True)
    if not rows:
        typer.echo("no adapters published yet; run `zoo train RECIPE --push`")
        return
    from zoo.artifact.card import headline_metric

    typer.echo(f"{'name':28} {'method':14} {'task':28} {'headline metric':>22} {'trainable':>12}  base / where")
    for r in rows:
        headline = headline_metric(r["metrics"].get("validation", {}))
        acc_text = f"{headline[0]:>13} {headline[1]:8.4f}" if headline else f"{'-':>22}"
        params = r["efficiency"].get("trainable_params")
        params_text = f"{params:12,}" if isinstance(params, int) else f"{'-':>12}"
        where = r.get("repo_id") or r["base_model"]
        typer.echo(f"{r['name']:28} {r['method'] or '-':14} {r['task'] or '-':28} {acc_text} {params_text}  {r['base_model']}"
                   + (f"  ({where})" if r.get("repo_id") else ""))


@app.command()
def report(
    out: Path = typer.Option(..., "--out", help="folder to write results.md, results/<task>.csv and plots into"),
    task: Optional[str] = typer.Option(None, help="only this task, e.g. glue/sst2"),
    base: Optional[str] = typer.Option(None, help="only adapters for this base model"),
    hub: HubOption = None,
    keep_records: Optional[Path] = typer.Option(
        None, "--keep-records", help="also copy each reported entry's zoo.json and card into this folder, laid out as a "
        "local hub without weights: `ZOO_HOME=FOLDER zoo report --hub local` writes the report again without them"),
):
    """The comparison table per task (Markdown, CSV) and its plots, from the published records only."""
    import os
    import shlex

    from zoo.catalogue.report import keep_records as keep
    from zoo.catalogue.report import write_report
    from zoo.hub.backends import get_hub

    try:
        backend = get_hub(hub)
        listing = backend.list(base=base, task=task)
        command = "zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if os.environ.get("ZOO_HOME") and backend.describe().startswith("the local hub"):
            command = f"ZOO_HOME={shlex.quote(os.environ['ZOO_HOME'])} {command}"  # which local hub: part of the command
        written = write_report(listing, out, task=task, base=base, command=command, source=backend.describe())
        kept = keep(listing, keep_records) if keep_records is not None else None
    except ZooError as e:
        _fail(e)
    except OSError as e:
        _fail(ZooError(f"cannot write the report into {out} (or the records into {keep_records}): {e.strerror or e}"))
    for path in written:
        typer.echo(str(path))
    if kept is not None:
        typer.echo(f"kept the records of {kept} entries in {keep_records} "
                   f"(ZOO_HOME={keep_records} zoo report --hub local --out {out} writes this report again)")


@app.command("eval")
def eval_(
    adapter: str = typer.Argument(..., help="published adapter name, e.g. sst2-lora (or an adapter folder)"),
    base: Optional[str] = typer.Option(None, help="base model the adapter was published for"),
    split: str = typer.Option("validation", help="train, validation or test"),
    data_dir: DataDirOption = None,
    max_samples: Optional[int] = typer.Option(None, help="evaluate on a seeded sample of the split"),
    as_json: bool = typer.Option(False, "--json", help="end with one JSON line of metrics"),
    progress: bool = typer.Option(True, help="show a progress bar"),
):
    """Evaluate a published adapter on a split of its task's data."""
    from zoo.serve.loading import load, load_folder
    from zoo.training.evaluate import evaluate

    try:
        if Path(adapter).is_dir():
            handle = load_folder(adapter, base=base)
        elif base is None:
            raise ZooError("--base is required with an adapter name (or pass the adapter's folder)")
        else:
            handle = load(base, adapter=adapter)
        metrics = evaluate(handle, split, data_dir=data_dir, max_samples=max_samples, progress=progress)
    except ZooError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            typer.echo(f"{k:10} {v}")


@app.command()
def predict(
    texts: List[str] = typer.Argument(..., help="inputs; for a sentence-pair adapter write 'premise ||| hypothesis'"),
    base: str = typer.Option(..., help="the base model the adapters were trained on"),
    adapter: List[str] = typer.Option(..., "--adapter", help="adapter name or ORG/NAME[@REV]; repeat to compare"),
    as_json: bool = typer.Option(False, "--json", help="end with one JSON line: a list of predictions"),
):
    """Predict with one or more adapters on their shared base (one mixed batch for all of them)."""
    from zoo.serve.loading import load
    from zoo.serve.multi import predict_each

    try:
        out = predict_each([load(base, adapter=a) for a in adapter], list(texts))
    except ZooError as e:
        _fail(e)
    for row in out:
        if "score" in row:
            typer.echo(f"{row['adapter']:28} {row['label']:16} {row['score']:.3f}  {row['input'][:70]}")
        else:
            typer.echo(f"{row['adapter']:28} {str(row['label'] or ('(no answer)' if 'no_answer' in row else '')):16} "
                       f"{row['input'][:40]!r} -> {row['text'][:80]!r}")
    if as_json:
        typer.echo(json.dumps(out))


@app.command()
def generate(
    texts: List[str] = typer.Argument(..., help="inputs: instructions, articles, reviews (the adapter's prompt wraps them)"),
    base: str = typer.Option(..., help="the base model the adapter was trained on"),
    adapter: str = typer.Option(..., "--adapter", help="causal adapter name or ORG/NAME[@REV]"),
    max_new_tokens: Optional[int] = typer.Option(None, help="default: the adapter's recipe"),
    num_beams: Optional[int] = typer.Option(None, help="beam search width"),
    do_sample: Optional[bool] = typer.Option(None, "--sample/--greedy", help="sample instead of greedy/beam decoding"),
    temperature: Optional[float] = typer.Option(None),
    top_p: Optional[float] = typer.Option(None),
    top_k: Optional[int] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="end with one JSON line: the generated texts"),
):
    """Generate with a causal adapter (instruction tuning, summarization, in-context prompts)."""
    from zoo.serve.loading import load

    settings = {k: v for k, v in dict(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=do_sample,
                                      temperature=temperature, top_p=top_p, top_k=top_k).items() if v is not None}
    try:
        handle = load(base, adapter=adapter)
        if not handle.is_causal:
            raise ZooError(f"{adapter} is a classifier; use `zoo predict`")
        outputs = handle.generate(list(texts), **settings)
    except ZooError as e:
        _fail(e)
    for text, output in zip(texts, outputs):
        typer.echo(f"> {text}\n{output}\n")
    if as_json:
        typer.echo(json.dumps([{"input": t, "text": o} for t, o in zip(texts, outputs)]))


@app.command()
def demo(
    hub: HubOption = None,
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to let others on the network in)"),
    port: int = typer.Option(7860, help="port to listen on"),
    max_chars: int = typer.Option(2000, help="longest text a request may send, per field"),
    concurrency: int = typer.Option(8, help="requests computed at the same time"),
    coalesce: bool = typer.Option(True, help="run concurrent requests to one base's classifiers as one mixed batch"),
):
    """Launch the demo Space locally: try every published adapter, all tasks at once, compare methods, results."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # the demo's one optional dependency: say how to get it
        _fail(ZooError("the demo needs gradio, which is not installed; install it with: pip install 'adapter-zoo[space]'"))
    try:
        from zoo.demo.catalogue import Catalogue

        if max_chars < 1 or concurrency < 1:
            raise ZooError("--max-chars and --concurrency must be at least 1")
        catalogue = Catalogue(hub, max_chars=max_chars, coalesce=coalesce)
    except ZooError as e:
        _fail(e)
    except ImportError as e:
        _fail(ZooError(f"the demo needs gradio ({e}); install it with: pip install 'adapter-zoo[space]'"))
    from zoo.demo.app import build_app, launch

    typer.echo(f"demo: {len(catalogue.entries)} entries on {catalogue.describe()}", err=True)
    try:
        launch(build_app(catalogue, concurrency=concurrency), host=host, port=port)
    except OSError as e:
        _fail(ZooError(f"cannot listen on {host}:{port} ({e}); pick another --port"))


@app.command()
def serve(
    hub: HubOption = None,
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to let others on the network in)"),
    port: int = typer.Option(8000, help="port to listen on"),
    token_env: Optional[str] = typer.Option(None, help="require 'Authorization: Bearer <token>', the token read "
                                                       "from this environment variable (never from the command line)"),
    max_queue: int = typer.Option(64, help="requests queued or running at once; one more is answered 429"),
    timeout: float = typer.Option(60.0, help="seconds a request may take before it is answered 504"),
    refresh_seconds: float = typer.Option(10.0, help="list the catalogue again this often (new pushes, removals); 0: never"),
    max_chars: int = typer.Option(2000, help="longest text an input may hold, per field"),
    coalesce: bool = typer.Option(True, help="run concurrent requests to one base as one mixed batch"),
    ray: bool = typer.Option(False, "--ray", help="deploy on Ray Serve (a local Ray cluster): several replicas, "
                                                  "adapters routed by Serve's model multiplexing; needs adapter-zoo[ray]"),
    replicas: int = typer.Option(2, help="with --ray: replicas, each holding one shared base per base model"),
    max_adapters_per_replica: int = typer.Option(8, help="with --ray: adapters a replica holds; Serve evicts the least "
                                                         "recently used past it"),
    engine: str = typer.Option("zoo", help="zoo: the zoo answers everything; vllm: causal LoRA and QLoRA entries are "
                                           "answered by vLLM's OpenAI server behind this one (the rest by the zoo)"),
    vllm_python: Optional[str] = typer.Option(None, help="with --engine vllm: the Python of vLLM's environment "
                                                         "(default: $ZOO_VLLM_PYTHON, else .venv-vllm from scripts/vllm_env.sh)"),
    vllm_port: int = typer.Option(8001, help="with --engine vllm: the loopback port of the first vLLM server started"),
    vllm_url: Optional[str] = typer.Option(None, help="with --engine vllm: a vLLM server already running (as `zoo "
                                                      "export vllm` prints it) instead of starting one"),
    vllm_start_timeout: float = typer.Option(600.0, help="with --engine vllm: seconds vLLM may take to start"),
):
    """Serve the catalogue over HTTP: /v1/classify, OpenAI-compatible /v1/completions and /v1/chat/completions
    (model = the adapter's name, streaming included), /v1/models, /health and /metrics (Prometheus)."""
    import importlib.util
    import os

    token = os.environ.get(token_env, "") if token_env else None
    if token_env and not token.strip():
        _fail(ZooError(f"--token-env {token_env}: that environment variable is empty or unset; export the token in it first"))
    if max_queue < 1 or timeout <= 0 or max_chars < 1 or refresh_seconds < 0:
        _fail(ZooError("--max-queue and --max-chars must be at least 1, --timeout positive, --refresh-seconds >= 0"))
    if ray:
        if importlib.util.find_spec("ray") is None:
            _fail(ZooError("--ray needs Ray Serve, which is not installed; install it with: "
                           "pip install 'adapter-zoo[ray]'"))
        from zoo.server.ray_serve import run as run_ray

        try:
            run_ray(host=host, port=port, hub=hub, replicas=replicas, max_adapters_per_replica=max_adapters_per_replica,
                    token_env=token_env, max_queue=max_queue, timeout=timeout, refresh_seconds=refresh_seconds,
                    max_chars=max_chars)
        except ZooError as e:
            _fail(e)
        return
    if engine not in ("zoo", "vllm"):
        _fail(ZooError(f"--engine {engine!r}: use zoo or vllm"))
    if engine == "vllm" and ray:
        _fail(ZooError("--engine vllm and --ray are two deployments: pick one"))
    processes: list = []
    try:
        from zoo.demo.catalogue import Catalogue
        from zoo.server.app import create_app

        catalogue = Catalogue(hub, max_chars=max_chars, coalesce=coalesce)
        routes = _vllm_routes(catalogue, processes, python=vllm_python, port=vllm_port, url=vllm_url,
                              wait=vllm_start_timeout, timeout=timeout) if engine == "vllm" else []
        asgi = create_app(catalogue, token=token, max_queue=max_queue, timeout=timeout,
                          refresh_seconds=refresh_seconds, max_chars=max_chars, vllm_routes=routes)
    except ZooError as e:
        for p in processes:
            p.stop()
        _fail(e)
    import uvicorn

    if processes:
        from zoo.server.vllm_engine import stop_on_signal

        stop_on_signal(processes)
    typer.echo(f"serve: {len(catalogue.entries)} entries on {catalogue.describe()} at http://{host}:{port}"
               f"{' (token required)' if token else ''}", err=True)
    try:
        uvicorn.run(asgi, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    except OSError as e:
        _fail(ZooError(f"cannot listen on {host}:{port} ({e}); pick another --port"))
    finally:
        for p in processes:
            p.stop()


def _vllm_routes(catalogue, processes: list, *, python, port, url, wait, timeout) -> list:
    """The vLLM routes of ``zoo serve --engine vllm``: a vLLM server per base with LoRA entries, started here
    (appended to ``processes``) or, with ``url``, the one already running. Says on stderr what goes where."""
    from zoo.data.sources import zoo_home
    from zoo.server.vllm import plans
    from zoo.server.vllm_engine import VllmProcess, VllmRoute, default_python

    every = plans(catalogue.backend)
    found = [p for p in every if p.modules]
    for plan in every:
        for name, why in plan.refused.items():
            typer.echo(f"serve: {name} ({plan.base}) is answered by the zoo, not vLLM: {why}", err=True)
    if not found:
        raise ZooError(f"--engine vllm: no causal LoRA or QLoRA entry on {catalogue.describe()} that vLLM can serve "
                       "(the reasons are above); serve without --engine vllm")
    if url and len(found) > 1:
        raise ZooError(f"--vllm-url names one vLLM server, and {len(found)} bases have LoRA entries; leave --vllm-url out "
                       "and the server starts one per base")
    routes = []
    for k, plan in enumerate(found):
        if url:
            target = url
        else:
            proc = VllmProcess(plan, python=python or default_python(), port=port + k,
                               log_path=zoo_home() / "logs" / f"vllm-{port + k}.log")
            typer.echo(f"serve: starting vLLM for {plan.base} ({len(plan.modules)} adapters) on {proc.url}; "
                       f"its log: {proc.log_path}", err=True)
            processes.append(proc)
            proc.start(wait=wait)
            target = proc.url
        route = VllmRoute(plan, target, timeout=timeout)
        route.tokenizer()  # loaded now, not on the first request
        routes.append(route)
        typer.echo(f"serve: vLLM at {target} answers {', '.join(route.names())}", err=True)
    return routes


export_app = typer.Typer(no_args_is_help=True, help="Serve the zoo's entries on other engines.")
app.add_typer(export_app, name="export")


@export_app.command("vllm")
def export_vllm(
    hub: HubOption = None,
    base: Optional[str] = typer.Option(None, help="only this base's entries (default: every base with causal entries)"),
    host: str = typer.Option("127.0.0.1", help="the address vLLM's server is to listen on"),
    port: int = typer.Option(8001, help="the port vLLM's server is to listen on"),
    python: str = typer.Option("python", help="the Python of vLLM's own environment (scripts/vllm_env.sh makes one)"),
    as_json: bool = typer.Option(False, "--json", help="print the plans (modules, ranks, sampling, refusals) as JSON"),
):
    """Print the command that serves the zoo's causal LoRA and QLoRA entries on vLLM's OpenAI server (one per
    base); entries vLLM cannot serve are listed with the reason, on stderr."""
    from zoo.hub.backends import get_hub
    from zoo.server.vllm import plans

    try:
        found = plans(get_hub(hub), base=base)
        if not found:
            raise ZooError(f"no causal entries{' for ' + base if base else ''} on {get_hub(hub).describe()}")
        for plan in found:
            for name, why in plan.refused.items():
                typer.echo(f"# not on vLLM: {name}: {why}", err=True)
            if as_json:
                typer.echo(json.dumps({"base": plan.base, "model": plan.model, "modules": plan.modules,
                                       "ranks": plan.ranks, "sampling": plan.sampling, "refused": plan.refused,
                                       "command": plan.command(host=host, port=port, python=python)
                                       if plan.modules else None}))
            elif plan.modules:
                typer.echo(plan.shell(host=host, port=port, python=python))
    except ZooError as e:
        _fail(e)


hub_app = typer.Typer(no_args_is_help=True, help="A Hugging Face Hub-compatible server for a team's adapters.")
app.add_typer(hub_app, name="hub")


@hub_app.command("serve")
def hub_serve(
    root: Path = typer.Option(..., help="folder holding the repos (created if missing)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8008, help="port to listen on"),
    user: str = typer.Option("zoo", help="the user name that the token (from $ZOO_HUB_TOKEN) acts as"),
):
    """Serve a Hub at http://HOST:PORT for any Hugging Face tool (HF_ENDPOINT=...). Writes need
    the token in $ZOO_HUB_TOKEN (read from the environment, never from the command line); without
    it the server is read-only."""
    import os

    from zoo.hub.server import serve

    token = os.environ.get("ZOO_HUB_TOKEN")
    try:
        server = serve(root, host=host, port=port, tokens={token: user} if token else {}, quiet=False)
    except OSError as e:
        _fail(ZooError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port"))
    typer.echo(f"serving {root} at {server.endpoint} ({'writes as ' + user if token else 'read-only: set ZOO_HUB_TOKEN'})")
    typer.echo(f"use it with: HF_ENDPOINT={server.endpoint} HF_TOKEN=<the token> zoo push FOLDER --hub hf", err=True)
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


def main() -> None:
    from zoo._quiet import quiet

    with quiet():  # the zoo's own process: known library notices are filtered for its whole length
        app()


if __name__ == "__main__":
    sys.exit(main())
