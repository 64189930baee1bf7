"""Names, bases and pushes from strangers: nothing outside the hub is loaded, no base's folder is another's,
names are plain ASCII, a push publishes one allow-listed file set (local hub and Hub alike), makes the Hub
repo's head exactly that set, never publishes NaN, and cleans what killed pushes left behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from tests.conftest import ROOT
from zoo.errors import BadInput, UnsafeAdapter, ZooError
from zoo.hub.local import LocalHub, clean_leftovers
from zoo.hub.server import serve
from zoo.serve.registry import Zoo, clear_shared
from zoo.testing import make_adapter

LABELS = ["negative", "positive"]
TOKEN = "hf_HOSTILEtoken0123456789abcdef"
ZOO = str(ROOT / ".venv" / "bin" / "zoo")

BAD_NAMES = ["../../../somewhere/X", "../x", "..", ".", "a/../../b", "/etc/passwd", "sst2-lora\n", "sst2\x00lora",
             "ѕst2-lora", "sst2-lora\u200b", "x" * 300, "", " sst2-lora", "a--b", "-lead", "trail.", "a b",
             "C:\\x", "~root", "a/b/c", "org/x@../../y", "org/../x", "org/x@", 5, None, ["sst2-lora"]]
BAD_BASES = ["org/model/", "org--model", "/org/model/", "//org/model", "org/model\n", "оrg/model", "a/b/c",
             "/tmp/../etc", "/tmp/./x", "../model", "", "x" * 200, 3, "org/model@main"]


@pytest.fixture(scope="module")
def adapter(tiny_bert, tmp_path_factory):
    return make_adapter(str(tiny_bert), tmp_path_factory.mktemp("a") / "lora", name="sst2-lora", method="lora",
                        labels=LABELS)


def copy_as(src, dst, **record):
    shutil.copytree(src, dst)
    data = json.loads((dst / "zoo.json").read_text())
    data.update(record)
    (dst / "zoo.json").write_text(json.dumps(data))
    return dst


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------ names at load and add
@pytest.mark.parametrize("name", BAD_NAMES)
def test_load_and_add_refuse_names_that_are_not_plain(tiny_bert, adapter, zoo_home, tmp_path, name):
    LocalHub().push(adapter)
    outside = copy_as(adapter, tmp_path / "somewhere" / "X", name="X")  # what a traversal would reach
    assert outside.is_dir()
    z = Zoo(str(tiny_bert))
    try:
        with pytest.raises(BadInput, match="adapter|string|revision"):
            zoo.load(str(tiny_bert), adapter=name)
        with pytest.raises(BadInput, match="adapter|string|revision"):
            z.add(name)
        if name is not None:  # no alias: the adapter's own name
            with pytest.raises(BadInput, match="adapter|string|revision"):
                z.add(folder=adapter, alias=name)
        assert z.names == []
        assert zoo.load(str(tiny_bert), adapter="sst2-lora").predict(["fine"])[0]["label"] in LABELS
    finally:
        clear_shared()


@pytest.mark.parametrize("base", BAD_BASES)
def test_bases_that_are_not_ids_or_plain_folders_are_refused(adapter, zoo_home, tmp_path, base):
    with pytest.raises(BadInput, match="base model"):
        zoo.load(base, adapter="sst2-lora")
    folder = copy_as(adapter, tmp_path / "bad", base_model=base)
    with pytest.raises(UnsafeAdapter, match="base model"):
        LocalHub().push(folder)
    assert not (zoo_home / "hub").exists() or tree(zoo_home / "hub") == []


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if isinstance(n, str) and "/" not in n])
def test_push_refuses_a_record_whose_name_is_not_plain(adapter, zoo_home, tmp_path, name):
    folder = copy_as(adapter, tmp_path / "bad", name=name)
    with pytest.raises(UnsafeAdapter, match="adapter name"):
        LocalHub().push(folder)
    assert LocalHub().list() == []


def test_cli_push_of_a_bad_name_is_one_clear_line(adapter, zoo_home, tmp_path):
    folder = copy_as(adapter, tmp_path / "bad", name="sst2-lora\n")
    env = {**os.environ, "ZOO_HOME": str(zoo_home)}
    proc = subprocess.run([ZOO, "push", str(folder), "--hub", "local"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2  # the CLI's code for a refused input
    assert "adapter name 'sst2-lora\\n' is not a plain name: it may hold only ASCII" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    listed = subprocess.run([ZOO, "list", "--hub", "local"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr


# ------------------------------------------------------------------ one folder per base
def test_bases_that_differ_by_a_slash_or_dashes_never_share_a_folder(adapter, zoo_home, tmp_path):
    hub = LocalHub()
    first = hub.push(copy_as(adapter, tmp_path / "a", base_model="org/model"))
    second = hub.push(copy_as(adapter, tmp_path / "b", base_model="/org/model"))
    for other in ("org/model/", "org--model"):
        with pytest.raises(UnsafeAdapter, match="base model"):
            hub.push(copy_as(adapter, tmp_path / other.replace("/", "_"), base_model=other))
    assert first.path.parent.parent != second.path.parent.parent
    assert hub.find("org/model", "sst2-lora") == first.path.resolve()
    assert hub.find("/org/model", "sst2-lora") == second.path.resolve()
    assert sorted(e["base_model"] for e in hub.list()) == ["/org/model", "org/model"]


def test_a_record_moved_into_another_folder_is_not_listed(adapter, zoo_home, tmp_path):
    hub = LocalHub()
    p = hub.push(adapter)
    record = json.loads((p.path / "zoo.json").read_text())
    record["name"] = "impostor"
    (p.path / "zoo.json").write_text(json.dumps(record))
    assert [e["name"] for e in hub.list()] == []  # a folder holding another adapter's record is not where a push puts it


# ------------------------------------------------------------------ the published file set
def hostile_folder(adapter, tmp_path):
    folder = copy_as(adapter, tmp_path / "extras")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    (folder / "evil.pkl").write_bytes(b"pickle")
    (folder / ".env").write_text("HF_TOKEN=secret")
    (folder / "notes.py").write_text("import os")
    (folder / "other.safetensors").write_bytes((folder / "adapter_model.safetensors").read_bytes())
    (folder / "sub").mkdir()
    (folder / "sub" / "adapter_config.json").write_text("{}")
    return folder


PUBLISHED = ["README.md", "adapter_config.json", "adapter_model.safetensors", "zoo.json"]


def test_local_push_publishes_only_the_allow_listed_files(adapter, zoo_home, tmp_path):
    pushed = LocalHub().push(hostile_folder(adapter, tmp_path))
    assert tree(pushed.path) == PUBLISHED


def test_a_link_in_the_folder_is_refused(adapter, zoo_home, tmp_path):
    folder = copy_as(adapter, tmp_path / "link")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeAdapter, match="is a link"):
        LocalHub().push(folder)
    assert LocalHub().list() == []


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory):
    srv = serve(tmp_path_factory.mktemp("hub"), port=0, tokens={TOKEN: "alice"}, quiet=True)
    yield srv
    srv.shutdown()


def push_hf(folder, server, home, repo_id="alice/sst2-lora"):
    env = {**os.environ, "HF_ENDPOINT": server.endpoint, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(home / "hf"), "ZOO_HOME": str(home / "zoo")}
    return subprocess.run([ZOO, "push", str(folder), "--hub", "hf", "--repo-id", repo_id], env=env,
                          capture_output=True, text=True, timeout=300)


def hub_files(server, repo_id="alice/sst2-lora"):
    """The files at the repo's head, as the Hub API lists them (this process's huggingface_hub is offline)."""
    request = urllib.request.Request(f"{server.endpoint}/api/models/{repo_id}/tree/main?recursive=true",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return sorted(e["path"] for e in json.load(reply) if e["type"] == "file" and e["path"] != ".gitattributes")


def test_hub_push_publishes_the_same_set_and_its_head_is_exactly_that_set(adapter, hub_server, tmp_path, tiny_bert):
    proc = push_hf(hostile_folder(adapter, tmp_path), hub_server, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert hub_files(hub_server) == PUBLISHED
    # another method over the same repo: the LoRA files must not stay at head beside the new ones
    other = make_adapter(str(tiny_bert), tmp_path / "ll", name="sst2-lora", method="last-layers", labels=LABELS)
    proc = push_hf(other, hub_server, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert hub_files(hub_server) == ["trained_layers.safetensors", "zoo.json"]  # make_adapter writes no card


# ------------------------------------------------------------------ non-finite weights
def test_no_push_publishes_nan_weights(adapter, zoo_home, tmp_path, hub_server):
    hub = LocalHub()
    good = hub.push(adapter)
    folder = copy_as(adapter, tmp_path / "nan")
    state = load_file(str(folder / "adapter_model.safetensors"))
    key = sorted(state)[0]
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(folder / "adapter_model.safetensors"))
    with pytest.raises(UnsafeAdapter, match="NaN or infinite values .* nothing was published"):
        hub.push(folder)
    assert hub.find(adapter_base(adapter), "sst2-lora") == good.path.resolve()
    assert tree(good.path.parent) == [good.path.name] + [f"{good.path.name}/{f}" for f in PUBLISHED]
    proc = push_hf(folder, hub_server, tmp_path, repo_id="alice/nan-lora")
    assert proc.returncode == 2 and "NaN or infinite values" in proc.stderr and "Traceback" not in proc.stderr


def adapter_base(folder):
    return json.loads((folder / "zoo.json").read_text())["base_model"]


# ------------------------------------------------------------------ leftovers of killed pushes
def test_leftovers_of_killed_pushes_are_cleaned_and_a_live_push_is_not(adapter, zoo_home):
    hub = LocalHub()
    first = hub.push(adapter)
    entry = first.path.parent.parent
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (entry / "revisions" / f".tmp-{host}-pid{dead.pid}-r1").mkdir()
        (entry / "revisions" / f".tmp-{host}-pid{dead.pid}-r1" / "adapter_model.safetensors").write_bytes(b"x" * 1000)
        (entry / "revisions" / f".tmp-{host}-pid{alive.pid}-r2").mkdir()
        (entry / f".current-{host}-pid{dead.pid}-r1").symlink_to("revisions/r1")
        old = entry / "revisions" / ".tmp-20240101T000000-abcdef12"  # written before pids were in the name
        old.mkdir()
        os.utime(old, (0, 0))
        hub.push(adapter)
        left = sorted(p.name for p in list((entry / "revisions").glob(".tmp-*")) + list(entry.glob(".current-*")))
        assert left == [f".tmp-{host}-pid{alive.pid}-r2"]
    finally:
        alive.kill()
        alive.wait()
    assert clean_leftovers(entry) == [f".tmp-{host}-pid{alive.pid}-r2"]
    assert len(list((entry / "revisions").iterdir())) == 2 and hub.find(adapter_base(adapter), "sst2-lora")


def test_a_failed_local_push_leaves_nothing(adapter, zoo_home, tmp_path, monkeypatch):
    hub = LocalHub()
    good = hub.push(adapter)

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", broken)
    with pytest.raises(ZooError, match="nothing was published"):
        hub.push(adapter)
    entry = good.path.parent.parent
    assert sorted(p.name for p in (entry / "revisions").iterdir()) == [good.path.name]
    assert hub.find(adapter_base(adapter), "sst2-lora") == good.path.resolve()


# ------------------------------------------------------------------ strangers' metadata shown on terminals and pages
def test_control_characters_in_a_record_are_refused(adapter, zoo_home, tmp_path):
    for field, value in (("labels", ["\x1b[2Jnegative", "positive"]), ("task", "glue/sst2\x1b]0;owned\x07")):
        folder = copy_as(adapter, tmp_path / field, **{field: value})
        with pytest.raises(UnsafeAdapter, match=field):
            LocalHub().push(folder)
    assert LocalHub().list() == []


def test_hub_listing_skips_cards_whose_name_or_base_is_not_plain(adapter, hub_server, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub_server.endpoint, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "hf"), "ZOO_HOME": str(tmp_path / "zoo")}
    for i, (name, base) in enumerate((("good-name", "org/model"), ("evil\x1b[2J", "org/model"), ("fine-name", "../../etc"))):
        card = f"---\ntags: [adapter-zoo]\nbase_model: {json.dumps(base)}\nzoo:\n  name: {json.dumps(name)}\n  task: glue/sst2\n  method: lora\n---\n"
        code = ("import sys; from huggingface_hub import HfApi; api = HfApi(); "
                f"api.create_repo('alice/evil{i}', exist_ok=True); "
                f"api.upload_file(path_or_fileobj=sys.stdin.buffer.read(), path_in_repo='README.md', repo_id='alice/evil{i}')")
        proc = subprocess.run([sys.executable, "-c", code], input=card.encode(), env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    listed = subprocess.run([ZOO, "list", "--hub", "hf"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "good-name" in listed.stdout
    assert "\x1b" not in listed.stdout and "fine-name" not in listed.stdout


def _hf_env(server, home) -> dict:
    return {**os.environ, "HF_ENDPOINT": server.endpoint, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(home / "hf"), "ZOO_HOME": str(home / "zoo")}


def _upload(folder, repo_id, env) -> None:
    code = ("import sys; from huggingface_hub import HfApi; api = HfApi(); "
            f"api.create_repo({repo_id!r}, exist_ok=True); api.upload_folder(folder_path={str(folder)!r}, repo_id={repo_id!r})")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


PULL = ("import collections, json, os, shutil, sys; from zoo.hub.backends import HFHub\n"
            "from zoo.errors import ZooError\n"
            "if 'TEST_FREE_BYTES' in os.environ:\n"
            "    usage = collections.namedtuple('usage', 'total used free')\n"
            "    shutil.disk_usage = lambda p: usage(1 << 50, 0, int(os.environ['TEST_FREE_BYTES']))\n"
            "try:\n    folder = HFHub().pull(sys.argv[1], base=sys.argv[2] if sys.argv[2] != '-' else None)\n"
            "except ZooError as e:\n    print('refused:', type(e).__name__, e); sys.exit(3)\n"
            "print(json.dumps(sorted(os.listdir(folder))))")


def _pull_for(repo_id, base, env, **extra):
    proc = subprocess.run([sys.executable, "-c", PULL, repo_id, base or "-"], env={**env, **extra},
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr + proc.stdout  # stdout last: its last line is the listing


def _snapshots(env, repo_id):
    root = os.path.join(env["HF_HOME"], "hub", "models--" + repo_id.replace("/", "--"), "snapshots")
    return sorted(name for snap in os.listdir(root) for name in os.listdir(os.path.join(root, snap)))


def test_a_pull_fetches_exactly_the_files_a_push_publishes(adapter, hub_server, tmp_path):
    """A pattern like *.json matched files in subfolders too, and every *.safetensors came down: a stranger's repo
    could make a pull download anything of any size. Only the top-level allow-listed files come now, of the
    safetensors only the record's weights, each side file bounded."""
    env = _hf_env(hub_server, tmp_path)
    repo = tmp_path / "repo"
    shutil.copytree(adapter, repo)
    published = sorted(os.listdir(adapter))
    (repo / "deep" / "deeper").mkdir(parents=True)
    (repo / "deep" / "deeper" / "zoo.json").write_text("{}")
    (repo / "deep" / "huge.safetensors").write_bytes(b"\0" * 4096)
    shutil.copy(adapter / "adapter_model.safetensors", repo / "other.safetensors")
    (repo / "weights.bin").write_bytes(b"\x80\x04pickle")
    _upload(repo, "alice/pull-exact", env)
    rc, out = _pull_for("alice/pull-exact", None, env)
    assert rc == 0, out
    assert json.loads(out.splitlines()[-1]) == published

    (repo / "notes.json").write_text(" " * (17 << 20) + "{}")
    _upload(repo, "alice/pull-big", env)
    rc, out = _pull_for("alice/pull-big", None, env)
    assert rc == 3 and "notes.json is 17,825,794 bytes" in out, out


def test_a_pull_refuses_weights_larger_than_the_base_can_need_before_fetching_them(adapter, hub_server, tmp_path,
                                                                                    tiny_bert):
    """A weights file had no bound: a stranger's 'adapter' of any size came down whole before anything read it. Now
    its listed size is compared, before a byte of it is fetched, with twice its base's own weights plus a head (the
    base a local folder, or a Hub repo's listing), and with the disk's free space."""
    env = _hf_env(hub_server, tmp_path)
    base_repo = tmp_path / "base"
    base_repo.mkdir()
    shutil.copy(tiny_bert / "model.safetensors", base_repo / "model.safetensors")
    shutil.copy(tiny_bert / "config.json", base_repo / "config.json")
    _upload(base_repo, "bob/tiny-base", env)
    limit = 2 * (tiny_bert / "model.safetensors").stat().st_size + (16 << 20)

    fine = copy_as(adapter, tmp_path / "fine", base_model="bob/tiny-base")
    _upload(fine, "alice/fine", env)
    rc, out = _pull_for("alice/fine", None, env)
    assert rc == 0 and "adapter_model.safetensors" in json.loads(out.splitlines()[-1]), out

    for name, base, claimed in [("alice/huge-hub", None, "bob/tiny-base"), ("alice/huge-local", str(tiny_bert),
                                                                           str(tiny_bert))]:
        huge = copy_as(adapter, tmp_path / name.split("/")[1], base_model=claimed)
        (huge / "adapter_model.safetensors").write_bytes(b"\0" * (limit + 1))
        _upload(huge, name, env)
        rc, out = _pull_for(name, base, env)
        assert rc == 3 and "UnsafeAdapter" in out and f"its weights file is {limit + 1:,} bytes" in out, out
        assert f"needs at most {limit:,}" in out, out
        assert _snapshots(env, name) == ["zoo.json"]  # nothing but the record came down

    # the disk: a file the cache's disk cannot take with 1 GiB to spare is refused, whatever the base, unless the
    # cache already holds it
    _upload(fine, "alice/fine-disk", env)
    rc, out = _pull_for("alice/fine-disk", None, env, TEST_FREE_BYTES=str(1 << 30))
    assert rc == 3 and "HubError" in out and "free some space" in out, out
    assert _snapshots(env, "alice/fine-disk") == ["zoo.json"]
    rc, out = _pull_for("alice/fine", None, env, TEST_FREE_BYTES=str(1 << 30))
    assert rc == 0, out


def test_a_pull_for_another_base_stops_after_the_record(adapter, hub_server, tmp_path, tiny_bert):
    """An adapter found for one base but trained on another was refused only after its weights were downloaded."""
    env = _hf_env(hub_server, tmp_path)
    _upload(adapter, "alice/other-base", env)
    rc, out = _pull_for("alice/other-base", "org/another-model", env)
    assert rc == 3 and "AdapterBaseMismatch" in out and "not 'org/another-model'" in out, out
    assert _snapshots(env, "alice/other-base") == ["zoo.json"]
    rc, out = _pull_for("alice/other-base", str(tiny_bert), env)
    assert rc == 0, out


CATALOGUE = ("import json; from zoo.demo.catalogue import Catalogue\n"
             "cat = Catalogue('hf')\n"
             "print(json.dumps({'listed': sorted(e.name for e in cat.entries.values()), 'skipped': cat.skipped}))")


def test_a_hub_listing_cannot_make_a_catalogue_load_a_folder_of_this_machine(hub_server, tmp_path, tiny_bert):
    """A stranger's card naming a folder of the server's machine as its base (any absolute path passes the name
    rules) made the Space and `zoo serve --hub hf` load that folder, a model its operator never published, and answer
    with it. A Hub listing's entries now load Hub bases only, unless the operator allows bases with ZOO_BASES."""
    env = _hf_env(hub_server, tmp_path)
    for repo, name, base in (("alice/folder-base", "folder-base", str(tiny_bert)),
                             ("alice/hub-base", "hub-base", "bob/tiny-base")):
        card = (f"---\ntags: [adapter-zoo]\nbase_model: {json.dumps(base)}\nzoo:\n  name: {name}\n  task: glue/sst2\n"
                "  method: lora\n---\n")
        code = ("import sys; from huggingface_hub import HfApi; api = HfApi(); "
                f"api.create_repo({repo!r}, exist_ok=True); "
                f"api.upload_file(path_or_fileobj=sys.stdin.buffer.read(), path_in_repo='README.md', repo_id={repo!r})")
        proc = subprocess.run([sys.executable, "-c", code], input=card.encode(), env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr

    def catalogue(**extra):
        proc = subprocess.run([sys.executable, "-c", CATALOGUE], env={**env, **extra}, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    got = catalogue()
    assert "hub-base" in got["listed"] and "folder-base" not in got["listed"], got
    assert any("'folder-base'" in s and "folder of this machine" in s and "ZOO_BASES" in s for s in got["skipped"]), got
    allowed = catalogue(ZOO_BASES=f" {tiny_bert} ")  # the operator's word: only these bases, folders included
    assert "folder-base" in allowed["listed"] and "hub-base" not in allowed["listed"], allowed
    assert any("'hub-base'" in s and "not one of the bases this server loads" in s for s in allowed["skipped"]), allowed
    bad = subprocess.run([sys.executable, "-c", CATALOGUE], env={**env, "ZOO_BASES": "../etc"}, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "ZOO_BASES: base model '../etc'" in bad.stderr, bad.stderr


ANSWER = ("import json, sys; from zoo.demo.catalogue import Catalogue\n"
          "cat = Catalogue('hf'); out = {}\n"
          "for name in sys.argv[1:]:\n"
          "    try:\n"
          "        out[name] = cat.answer(name, 'a gripping film')['label']\n"
          "    except Exception as e:\n"
          "        out[name] = f'{type(e).__name__}: {e}'\n"
          "out['held'] = cat._base_bytes\n"
          "print(json.dumps(out))")


def test_a_hub_listing_s_bases_load_from_safetensors_within_a_budget(adapter, hub_server, tmp_path, tiny_bert):
    """Without ZOO_BASES any Hub id a stranger's card named as its base was downloaded on its entry's first use and
    kept in memory (shared bases are never unloaded): a 70B base, twenty bases, or a base in pickle (.bin) only.
    Now a listing's base is measured from its Hub listing before a byte comes down: model.safetensors (or its
    index) required, and all such bases together within ZOO_BASES_GIB; a failed load gives its share back."""
    env = _hf_env(hub_server, tmp_path)
    _upload(tiny_bert, "carol/tiny-base", env)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_bert / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"\0" * 1024)
    (pickled / "weights.safetensors").write_bytes(b"\0" * 1024)  # not the name transformers loads: .bin would be
    _upload(pickled, "carol/pickled-base", env)
    for name, base in (("fine", "carol/tiny-base"), ("pickled", "carol/pickled-base"), ("nowhere", "carol/no-base")):
        folder = copy_as(adapter, tmp_path / f"entry-{name}", base_model=base, name=name)
        config = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
        (folder / "README.md").write_text(f"---\ntags: [adapter-zoo]\nbase_model: {base}\nzoo:\n  name: {name}\n"
                                          "  task: glue/sst2\n  method: lora\n---\n")
        _upload(folder, f"alice/{name}", env)
    size = (tiny_bert / "model.safetensors").stat().st_size

    def answer(*names, **extra):
        proc = subprocess.run([sys.executable, "-c", ANSWER, *names], env={**env, **extra}, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    got = answer("nowhere", "pickled", "fine")
    assert got["fine"] in LABELS, got
    assert list(got["held"]) == ["carol/tiny-base"], (got, "the failed ones gave their share back")
    assert size < got["held"]["carol/tiny-base"] < size + (1 << 20), got  # the weights, config and vocabulary
    assert "EntryFailed" in got["pickled"] and "no model.safetensors" in got["pickled"], got
    assert "EntryFailed" in got["nowhere"] and "could not be listed" in got["nowhere"], got
    small = answer("fine", ZOO_BASES_GIB=str(size / 2 / 2**30))
    assert "EntryFailed" in small["fine"] and "ZOO_BASES_GIB" in small["fine"] and small["held"] == {}, small
    allowed = answer("fine", ZOO_BASES="carol/tiny-base", ZOO_BASES_GIB=str(size / 2 / 2**30))  # the operator's list
    assert allowed["fine"] in LABELS and allowed["held"] == {}, allowed
    bad = subprocess.run([sys.executable, "-c", ANSWER], env={**env, "ZOO_BASES_GIB": "nan"}, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "ZOO_BASES_GIB: 'nan' is not a number of GiB" in bad.stderr, bad.stderr
