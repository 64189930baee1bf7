"""`zoo push --all`: a fixture zoo in a local hub, published to the loopback Hub server (zoo.hub.server) with the
real huggingface_hub client over HTTP, and gathered with the Space into one Hugging Face Collection. Once through
the CLI as a user runs it (a subprocess), then in this process (zoo.catalogue.collection) for the later changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from zoo.hub.local import LocalHub
from zoo.hub.server import serve
from zoo.testing import make_adapter

ZOO = str(ROOT / ".venv" / "bin" / "zoo")
TOKEN = "hf_COLLECTIONtokenZOO1234567890SECRET"
USER = "zoo-tester"
SST2, RTE = ["negative", "positive"], ["entailment", "not_entailment"]
# name, method, task, labels, validation accuracy, trainable parameters
ADAPTERS = [("sst2-lora", "lora", "glue/sst2", SST2, 0.88, 676_610), ("sst2-ia3", "ia3", "glue/sst2", SST2, 0.84, 40_000),
            ("rte-lora", "lora", "glue/rte", RTE, 0.61, 676_610)]


def _real(folder, accuracy, params):
    """Mark a zoo.testing folder as a result (as tests/test_report.py does): metrics, efficiency, not synthetic."""
    data = json.loads((folder / "zoo.json").read_text())
    data.update(synthetic=False, metrics={"validation": {"accuracy": accuracy, "n": 872}},
                baseline={"majority": {"accuracy": 0.5}},
                efficiency={"trainable_params": params, "total_params": 22_700_000, "adapter_bytes": 2**20})
    (folder / "zoo.json").write_text(json.dumps(data))
    return folder


@pytest.fixture(scope="module")
def folders(tiny_bert, tmp_path_factory):
    """Adapter folders (random weights marked as results), and one left synthetic, which is never published."""
    root = tmp_path_factory.mktemp("collection-adapters")
    out = {}
    for seed, (name, method, task, labels, accuracy, params) in enumerate(ADAPTERS):
        folder = make_adapter(str(tiny_bert), root / name, name=name, method=method, labels=labels, task=task,
                              pair=task == "glue/rte", seed=seed)
        out[name] = _real(folder, accuracy, params)
    out["sst2-random"] = make_adapter(str(tiny_bert), root / "sst2-random", name="sst2-random", method="lora",
                                      labels=SST2, seed=9)
    return out


@pytest.fixture()
def zoo_hub(folders, tmp_path):
    """A ZOO_HOME whose local hub holds the fixture zoo."""
    home = tmp_path / "zoo-home"
    hub = LocalHub(home / "hub")
    for folder in folders.values():
        hub.push(folder)
    return home, hub


@pytest.fixture()
def server(tmp_path):
    srv = serve(tmp_path / "hub-server", port=0, tokens={TOKEN: USER}, quiet=True)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def hf(server, monkeypatch):
    """huggingface_hub in this process, allowed onto the loopback server (conftest sets HF_HUB_OFFLINE)."""
    from huggingface_hub import HfApi, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    return HfApi(endpoint=server.endpoint, token=TOKEN)


def publish_space(api, repo_id):
    """The repo's Gradio Space, published as a user would (the server stores it; it never runs it)."""
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    api.upload_folder(folder_path=str(ROOT / "spaces"), repo_id=repo_id, repo_type="space")


def zoo_push_all(server, home, *args):
    env = dict(os.environ, HF_ENDPOINT=server.endpoint, HF_TOKEN=TOKEN, HF_HUB_OFFLINE="0", ZOO_HOME=str(home),
               HF_HOME=str(home / "hf"))
    proc = subprocess.run([ZOO, "push", "--all", "--hub", "hf", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    return proc.stdout


def heads(server) -> dict[str, list[str]]:
    """repo -> its commits, newest first."""
    out = {}
    for repo in server.store.repos():
        sha, chain = server.store.head(repo), []
        while sha:
            chain.append(sha)
            sha = server.store.commit_info(repo, sha)["parent"]
        out[repo] = chain
    return out


def items_of(collection) -> list[tuple[str, str, int]]:
    return [(i.item_type, i.item_id, i.position) for i in collection.items]


def test_push_all_publishes_the_zoo_and_lists_each_adapter_and_the_space_once_and_a_rerun_changes_nothing(
        zoo_hub, server, hf, tiny_bert):
    home, local = zoo_hub
    publish_space(hf, f"{USER}/adapter-zoo")
    first = zoo_push_all(server, home)

    for name in ("sst2-lora", "sst2-ia3", "rte-lora"):
        assert f"pushed        {name} -> {USER}/{name} (revision " in first
        repo = f"{USER}/{name}"
        files = server.store.files(repo, server.store.head(repo))
        current = local.find(str(tiny_bert), name)
        assert set(files) == {p.name for p in current.iterdir()}
        for path, oid in files.items():  # byte for byte what the local hub holds
            assert server.store.read(repo, oid) == (current / path).read_bytes()
    assert "skipped       sst2-random: random weights" in first
    assert not server.store.exists(f"{USER}/sst2-random")
    assert f"Space         {USER}/adapter-zoo: in the collection" in first

    [listed] = hf.list_collections(owner=USER)
    collection = hf.get_collection(listed.slug)
    assert f"collection    {collection.url} (created)" in first
    assert items_of(collection) == [("space", f"{USER}/adapter-zoo", 0), ("model", f"{USER}/rte-lora", 1),
                                    ("model", f"{USER}/sst2-ia3", 2), ("model", f"{USER}/sst2-lora", 3)]
    assert collection.title == f"adapter-zoo: 3 adapters on {tiny_bert.name}" and len(collection.title) <= 60
    assert collection.description == "Best on validation: rte rte-lora 0.610, sst2 sst2-lora 0.880."
    notes = {i.item_id: i.note for i in collection.items}
    assert notes[f"{USER}/sst2-ia3"].startswith("IA3 on glue/sst2: accuracy 0.8400 (validation)")
    assert "demo Space" in notes[f"{USER}/adapter-zoo"]

    before_repos, before_collection = heads(server), server.collections.of_owner(USER)
    second = zoo_push_all(server, home)
    for name in ("sst2-lora", "sst2-ia3", "rte-lora"):
        assert f"on the Hub    {name} -> {USER}/{name}: same files, skipped" in second
    assert "pushed " not in second and "0 pushed, 3 already on the Hub" in second
    assert f"collection    {collection.url} (unchanged)" in second
    assert "items: 0 added, 0 removed, 0 with a new note, 4 unchanged" in second
    assert heads(server) == before_repos  # no new commit on any repo
    assert server.collections.of_owner(USER) == before_collection  # same items, positions, notes, lastUpdated


def test_a_changed_adapter_is_pushed_again_and_one_that_left_leaves_the_collection(zoo_hub, server, hf, folders,
                                                                                 tiny_bert, tmp_path):
    from zoo.catalogue.collection import publish_catalogue
    from zoo.hub.backends import HFHub

    home, local = zoo_hub
    publish_space(hf, f"{USER}/adapter-zoo")
    hub = HFHub(endpoint=server.endpoint, token=TOKEN)
    first = publish_catalogue(hub, local)
    assert [a.status for a in first.adapters] == ["pushed", "pushed", "pushed", "skipped"]
    slug = first.collection.slug
    positions = {i.item_id: i.position for i in hf.get_collection(slug).items}
    before = heads(server)

    # sst2-ia3 retrained (new weights, now the best on SST-2): a new local revision; rte-lora removed locally
    retrained = make_adapter(str(tiny_bert), tmp_path / "sst2-ia3", name="sst2-ia3", method="ia3", labels=SST2, seed=7)
    local.push(_real(retrained, 0.91, 40_000))
    shutil.rmtree(local.find(str(tiny_bert), "rte-lora").parent.parent)
    seen = []
    again = publish_catalogue(hub, local, report=seen.append)
    assert [(a.name, a.status) for a in seen] == [("sst2-ia3", "pushed"), ("sst2-lora", "same"),
                                                  ("sst2-random", "skipped")]
    after, ia3 = heads(server), f"{USER}/sst2-ia3"
    assert after[ia3][1:] == before[ia3]  # exactly one new commit
    assert {r: c for r, c in after.items() if r != ia3} == {r: c for r, c in before.items() if r != ia3}
    assert server.store.exists(f"{USER}/rte-lora")  # the repo stays; only the collection forgets it

    c = again.collection
    assert (c.slug.rsplit("-", 1)[1], c.created, c.retitled) == (slug.rsplit("-", 1)[1], False, True)
    assert (c.added, c.removed, c.renoted) == ((), (f"{USER}/rte-lora",), (f"{USER}/sst2-ia3",))
    collection = hf.get_collection(c.slug)
    ids = [i.item_id for i in collection.items]
    assert sorted(ids) == sorted(set(ids)) == [f"{USER}/adapter-zoo", f"{USER}/sst2-ia3", f"{USER}/sst2-lora"]
    assert {i.item_id: i.position for i in collection.items} == {  # the ones that stayed keep their order
        k: v - (v > positions[f"{USER}/rte-lora"]) for k, v in positions.items() if k != f"{USER}/rte-lora"}
    assert collection.title == f"adapter-zoo: 2 adapters on {tiny_bert.name}"
    assert collection.description == "Best on validation: sst2 sst2-ia3 0.910."
    assert "accuracy 0.9100" in next(i.note for i in collection.items if i.item_id == f"{USER}/sst2-ia3")
    assert [a.status for a in publish_catalogue(hub, local).adapters] == ["same", "same", "skipped"]


def test_without_the_space_the_collection_lists_the_adapters_and_says_how_to_publish_it(zoo_hub, server, hf,
                                                                                         monkeypatch):
    from typer.testing import CliRunner

    from zoo.cli import app

    home, _ = zoo_hub
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("ZOO_HOME", str(home))
    done = CliRunner().invoke(app, ["push", "--all", "--hub", "hf", "--space", f"{USER}/no-such-space"])  # in this process
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert f"Space         {USER}/no-such-space not found on the Hugging Face Hub at {server.endpoint}" in out
    assert f"hf upload {USER}/no-such-space build/space . --repo-type space" in out
    assert "scripts/space_bundle.sh" in out
    [listed] = hf.list_collections(owner=USER)
    assert [(t, i) for t, i, _ in items_of(hf.get_collection(listed.slug))] == [
        ("model", f"{USER}/rte-lora"), ("model", f"{USER}/sst2-ia3"), ("model", f"{USER}/sst2-lora")]


def test_the_title_and_description_keep_to_the_hubs_limits():
    from zoo.catalogue.collection import collection_description, collection_title
    from zoo.catalogue.table import Row

    assert collection_title(1, ["org/b"]) == "adapter-zoo: 1 adapter on b"
    assert collection_title(40, ["org/a", "org/b", "org/a"]) == "adapter-zoo: 40 adapters on 2 bases"
    long = collection_title(12, ["org/" + "x" * 80])
    assert len(long) == 60 and long.startswith("adapter-zoo: 12 adapters on xxx") and long.endswith("...")
    tables = {f"tweet_eval/task{i}": [Row(f"tweet_eval/task{i}", "LoRA", f"tweet-task{i}-lora", "b", "macro_f1", 0.5 + i / 100),
                                      Row(f"tweet_eval/task{i}", "majority class", "", "b", "macro_f1", 0.99, kind="majority")]
              for i in range(12)}
    text = collection_description(tables)
    assert len(text) <= 150 and text.startswith("Best on validation: task0 tweet-task0-lora 0.500, ")
    assert text.endswith("more tasks).") and "0.990" not in text  # the majority baseline is never "the best"
    perplexity = {"alpaca": [Row("alpaca", "LoRA", "a-lora", "b", "perplexity", 9.0),
                             Row("alpaca", "IA3", "a-ia3", "b", "perplexity", 7.0)]}
    assert collection_description(perplexity) == "Best on validation: alpaca a-ia3 7.000."  # lower is better
