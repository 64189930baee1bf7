"""The demo app as users meet it: `zoo demo` started as a subprocess on loopback, its API driven with
gradio_client, its page with a real headless Chromium (Debian's, through Playwright), 20 concurrent clients."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import zoo
from tests.conftest import ROOT
from tests.test_space import BROKEN, SECOND, TEXT, item_for, reference
from zoo.hub.local import LocalHub

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("ZOO_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
# Chromium on a machine without a network: no background services, no sandbox (root), no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, log_path: Path, port: int, cwd=ROOT, timeout: float = 120):
    """Start an app server; returns (process, url, log) once it listens (the URL is in its log)."""
    log = open(log_path, "w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        if proc.poll() is not None:
            raise AssertionError(f"{cmd} exited with {proc.returncode}:\n{text}")
        if url in text:
            return proc, url + "/", log
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{cmd} did not start in {timeout} s")


def stop(proc, log) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def start_demo(home: Path, *args: str):
    env = dict(os.environ, ZOO_HOME=str(home), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               TOKENIZERS_PARALLELISM="false", HF_TOKEN="")
    port = free_port()
    cmd = [str(ROOT / ".venv" / "bin" / "zoo"), "demo", "--hub", "local", "--port", str(port), *args]
    return start(cmd, env, home / f"demo-{port}.log", port)


@pytest.fixture(scope="module")
def demo(space_home):
    proc, url, log = start_demo(space_home)
    yield url
    stop(proc, log)


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def try_args(entry):
    second = SECOND if entry.pair or entry.kind == "generate" else ""
    return entry.id, TEXT, second, 24


def test_try_returns_what_zoo_load_predicts(demo, space_cat, space_backend):
    c = client(demo)
    assert {"/try", "/all_tasks", "/compare", "/results", "/status", "/refresh"} <= set(
        c.view_api(return_format="dict", print_info=False)["named_endpoints"])
    for entry in space_cat.entries.values():
        if entry.name == BROKEN:
            continue
        label, text, timing, raw = c.predict(*try_args(entry), api_name="/try")
        want = reference(entry, space_backend, item_for(entry)) if entry.kind == "classify" else None
        assert "answered in" in timing and entry.name in timing
        if entry.kind == "classify":
            assert label["label"] == want["label"] == raw["label"], entry.name
            shown = {c["label"]: c["confidence"] for c in label["confidences"]}
            np.testing.assert_allclose([shown[k] for k in want["scores"]], list(want["scores"].values()), atol=1e-5)
        else:  # the app asked for 24 new tokens
            model = zoo.load(entry.base, adapter=entry.key, hub=space_backend)
            want_text = model.generate([item_for(entry)], max_new_tokens=24)[0]
            assert text == raw["text"] == want_text, entry.name
            if entry.kind == "verbalize":
                from zoo.config.prompts import answer

                assert raw["label"] == answer(model.record.label_words, want_text)["label"]


def test_all_tasks_and_compare_answer_as_zoo_load_does(demo, space_cat, space_backend):
    c = client(demo)
    base = space_cat.bases()[0]
    table, summary, raw = c.predict(base, TEXT, SECOND, api_name="/all_tasks")
    labelled = [e for e in space_cat.entries.values() if e.base == base and e.labelled]
    assert [r["adapter"] for r in raw] == [e.name for e in labelled]
    assert "in one mixed batch" in summary
    for e, row, r in zip(labelled, table["data"], raw):
        if e.name == BROKEN:
            assert row[4] == "—" and "could not be loaded" in row[6] and "Traceback" not in row[6]
            continue
        want = reference(e, space_backend, item_for(e))
        assert r["label"] == row[4] == want["label"], e.name
        np.testing.assert_allclose(list(r["scores"].values()), list(want["scores"].values()), atol=2e-3)

    table, summary, bars, raw = c.predict("glue/sst2", TEXT, "", 16, api_name="/compare")
    sst2 = [e for e in space_cat.entries.values() if e.task == "glue/sst2"]
    assert {r["method"] for r in raw} >= {"lora", "ia3", "prompt-tuning", "prefix-tuning", "full", "icl"}
    assert [r["adapter"] for r in raw] == [e.name for e in sst2]
    for e, r in zip(sst2, raw):
        if e.kind == "classify":
            want = reference(e, space_backend, TEXT)
            assert r["label"] == want["label"], e.name
            np.testing.assert_allclose(list(r["scores"].values()), list(want["scores"].values()), atol=2e-3)
        else:
            assert r["text"] == zoo.load(e.base, adapter=e.key, hub=space_backend).generate([TEXT], max_new_tokens=16)[0]
    plotted = {(a, lab) for a, lab, _ in bars["data"]}
    assert ("sst2-lora", "positive") in plotted and ("sst2-full", "negative") in plotted


def test_results_tab_is_the_cards_table(demo, space_cat):
    c = client(demo)
    table, plot = c.predict("all tasks", api_name="/results")
    assert table["headers"][:6] == ["Task", "Adapter", "Method", "Base", "Metric", "Value"]
    rows = {r[1]: r for r in table["data"]}
    for want in space_cat.results():
        got = rows[want["adapter"]]
        assert got[4:] == [want["metric"], want["value"], want["trainable_params"], want["trainable_pct"],
                           want["train_seconds"], want["adapter_mib"]], want["adapter"]
    assert plot and plot.get("type") == "matplotlib"
    table, _ = c.predict("glue/rte", api_name="/results")
    assert [r[1] for r in table["data"]] == ["rte-lora"]


def test_errors_are_messages_and_the_app_keeps_serving(demo, space_cat):
    from gradio_client.exceptions import AppError

    c = client(demo)
    good = space_cat.get("sst2-lora")
    before = c.predict(*try_args(good), api_name="/try")[3]
    cases = [((space_cat.get(BROKEN).id, TEXT, "", 8), "could not be loaded"),
             ((good.id, "x" * 2001, "", 8), "at most 2,000"),
             ((good.id, "", "", 8), "empty"),
             ((space_cat.get("rte-lora").id, TEXT, "", 8), "sentence-pair task"),
             (("no/such::thing", TEXT, "", 8), "no entry"),
             ((space_cat.get("alpaca-lora").id, TEXT, "", 100_000), "greater than maximum value 256")]
    for args, message in cases:
        with pytest.raises(AppError) as info:
            c.predict(*args, api_name="/try")
        assert message in str(info.value) and "Traceback" not in str(info.value) and 'File "' not in str(info.value)
    assert c.predict(*try_args(good), api_name="/try")[3]["scores"] == before["scores"]
    status = c.predict(api_name="/status")
    assert all(b["copies_in_memory"] == 1 for b in status["shared_bases"].values()), "one base per base model"
    assert good.base in status["shared_bases"] and "sst2-lora" in status["shared_bases"][good.base]["adapters"]
    assert BROKEN not in status["shared_bases"][good.base]["adapters"]


def test_twenty_concurrent_clients_get_their_own_answers(demo, space_cat):
    entries = [e for e in space_cat.entries.values() if e.name != BROKEN]
    c = client(demo)
    expected = {e.id: c.predict(*try_args(e), api_name="/try")[3] for e in entries}  # one at a time
    results, errors = [], []

    def user(k: int):
        try:
            mine = client(demo)
            order = entries[:]
            random.Random(k).shuffle(order)
            for e in order[:6]:
                results.append((e.id, mine.predict(*try_args(e), api_name="/try")[3]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=user, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    assert len(results) == 20 * 6
    assert any(r["batch"] > 1 for _, r in results), "requests that met were computed as one mixed batch"
    for entry_id, got in results:
        want = expected[entry_id]
        assert got["entry"] == entry_id and got.get("label") == want.get("label") and got.get("text") == want.get("text")
        if "scores" in want:
            np.testing.assert_allclose(list(got["scores"].values()), list(want["scores"].values()), atol=1e-5)


def test_reload_shows_a_new_push(space_home, tiny_bert, tmp_path):
    """In a demo of its own: a push made while it runs appears after "Reload the catalogue"."""
    import shutil as sh

    from zoo.testing import make_adapter

    home = tmp_path / "home"
    sh.copytree(space_home / "hub", home / "hub", symlinks=True)
    proc, url, log = start_demo(home)
    try:
        c = client(url)
        folder = make_adapter(str(tiny_bert), tmp_path / "new", name="tweet-irony-lora", method="lora",
                              labels=("non_irony", "irony"), task="tweet_eval/irony", seed=9)
        LocalHub(home / "hub").push(folder)
        new_id = f"{tiny_bert}::tweet-irony-lora"
        with pytest.raises(Exception, match="reload the catalogue"):
            c.predict(new_id, TEXT, "", 8, api_name="/try")
        c.predict(api_name="/refresh")
        raw = c.predict(new_id, TEXT, "", 8, api_name="/try")[3]
        assert raw["label"] in ("non_irony", "irony")
    finally:
        stop(proc, log)


def test_demo_command_rejects_bad_options(space_home):
    env = dict(os.environ, ZOO_HOME=str(space_home), HF_HUB_OFFLINE="1")
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "zoo"), "demo", "--hub", "local", "--max-chars", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--max-chars" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh --test installs it)")
def test_browser_try_shows_the_predicted_label(demo, space_cat, space_backend):
    from playwright.sync_api import sync_playwright

    entry = space_cat.get("sst2-lora")
    want = reference(entry, space_backend, TEXT)["label"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo, wait_until="networkidle")
            picker = page.locator("#try-entry input")
            picker.click()
            picker.fill("sst2-lora")
            page.locator("ul[role='listbox'] li", has_text="sst2-lora · LoRA").first.click()
            page.wait_for_function("document.querySelector('#try-about').innerText.includes('sst2-lora')")
            page.fill("#try-text textarea", TEXT)
            page.click("#try-run")
            page.locator("#try-latency", has_text="answered in").wait_for(timeout=60_000)
            shown = page.locator("#try-label [data-testid='label-output-value']").inner_text().strip()
            page.screenshot(path=str(ARTIFACTS / "space-try.png"), full_page=True)
            assert shown == want
            page.locator("#try-entry input").click()  # an error is a message on the page, not a trace
            page.locator("#try-entry input").fill(BROKEN)
            page.locator("ul[role='listbox'] li", has_text=BROKEN).first.click()
            page.click("#try-run")
            toast = page.locator(".toast-body", has_text="could not be loaded")
            toast.wait_for(timeout=60_000)
            assert "Traceback" not in toast.inner_text()
        finally:
            browser.close()
    assert (ARTIFACTS / "space-try.png").stat().st_size > 10_000


def test_space_folder_is_a_space_and_its_bundle_runs_on_its_own(space_home, space_cat, wheel_venv, tmp_path):
    """spaces/ has the Space front matter and requirements; the bundle (spaces/ + the adapter-zoo wheel, listed in
    requirements.txt) starts with `python app.py` as a Space does (GRADIO_SERVER_* from the environment), with
    the package installed from that wheel, as the Space installs it."""
    import gradio
    import tomllib
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(ROOT / "spaces" / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py" and card.data.title
    assert card.data.sdk_version.split(".")[0] == gradio.__version__.split(".")[0]
    assert "adapter-zoo" in card.data.tags
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [x for x in (ROOT / "spaces" / "requirements.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert lines == deps, "spaces/requirements.txt is pyproject's dependency list"

    out = tmp_path / "space"
    subprocess.run(["bash", str(ROOT / "scripts" / "space_bundle.sh"), str(out)], check=True, capture_output=True)
    assert {p.name for p in out.iterdir()} == {"app.py", "README.md", "requirements.txt", "wheels"}
    (wheel,) = (out / "wheels").glob("adapter_zoo-*.whl")
    assert (out / "requirements.txt").read_text().splitlines() == lines + [f"./wheels/{wheel.name}"]
    installed = subprocess.run([str(wheel_venv.python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                                "--force-reinstall", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    port = free_port()
    env = dict(os.environ, ZOO_HOME=str(space_home), ZOO_HUB="local", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), ZOO_DEMO_MAX_CHARS="50")
    env.pop("PYTHONPATH", None)
    proc, url, log = start([str(wheel_venv.python), "app.py"], env, tmp_path / "space.log", port, cwd=out)
    try:
        log.seek(0)
        assert f"from {wheel_venv.site / 'zoo'}" in log.read(), "the package installed from the bundle's wheel serves"
        c = client(url)
        entry = space_cat.get("sst2-lora")
        assert c.predict(*try_args(entry), api_name="/try")[3]["label"] == space_cat.answer(entry.id, TEXT)["label"]
        with pytest.raises(Exception, match="at most 50"):
            c.predict(entry.id, "x" * 51, "", 8, api_name="/try")
    finally:
        stop(proc, log)


def test_space_without_a_reachable_hub_starts_and_says_why(tmp_path):
    """On a Space (SPACE_ID set) the catalogue is the Hub's; when it cannot be listed the page says so and keeps running."""
    port = free_port()
    env = dict(os.environ, ZOO_HOME=str(tmp_path), SPACE_ID="someone/adapter-zoo", HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    env.pop("ZOO_HUB", None)
    proc, url, log = start([sys.executable, str(ROOT / "spaces" / "app.py")], env, tmp_path / "space.log", port)
    try:
        refreshed = client(url).predict(api_name="/refresh")
        assert "could not be listed" in refreshed[4] and "HF_HUB_OFFLINE" in refreshed[4]
    finally:
        stop(proc, log)


def test_refresh_lists_the_hub_at_most_every_few_seconds(demo):
    """Anyone may press Refresh (or call /refresh): each press listed the whole hub with the Space's token, which
    a stranger could turn into Hub rate limits for everyone. Presses within REFRESH_SECONDS of a listing reuse it."""
    c = client(demo)
    first = c.predict(api_name="/refresh")[-1]
    second = c.predict(api_name="/refresh")[-1]
    assert "entries on" in first and "listed again at most every 10 s" not in first
    assert "listed again at most every 10 s" in second
