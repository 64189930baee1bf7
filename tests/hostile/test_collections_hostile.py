"""The loopback Hub server's collection endpoints (zoo.hub.collections) against hostile clients: no token, another
user's collection, odd or oversized text, unknown item types, items that do not exist, malformed JSON. Each is a
4xx JSON error that says what is wrong, and the stored collections are exactly as they were. The normal paths run
the real huggingface_hub client over HTTP; the hostile requests are written by hand to control every byte."""

from __future__ import annotations

import json

import pytest

from tests.hostile.test_hub_server import refused, request
from zoo.hub.server import serve

ALICE, BOB = "hf_ALICEcollectionsZOO1234567890", "hf_BOBcollectionsZOO0987654321"
AS_ALICE, AS_BOB = {"Authorization": f"Bearer {ALICE}"}, {"Authorization": f"Bearer {BOB}"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A server with alice (a model repo, a Space, a public collection holding the model) and bob (a private
    collection); yields (server, alice's HfApi, the public slug, the private slug, the model item's object id)."""
    from huggingface_hub import HfApi, constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", False)
        server = serve(tmp_path_factory.mktemp("collections-hub"), port=0, tokens={ALICE: "alice", BOB: "bob"},
                       quiet=True)
        alice, bob = HfApi(endpoint=server.endpoint, token=ALICE), HfApi(endpoint=server.endpoint, token=BOB)
        alice.create_repo("alice/m")
        alice.create_repo("alice/s", repo_type="space", space_sdk="gradio")
        steady = alice.add_collection_item(alice.create_collection("steady", description="kept").slug, "alice/m",
                                           "model", note="the model")
        secret = bob.create_collection("bob secret", private=True)
        yield server, alice, steady.slug, secret.slug, steady.items[0].item_object_id
        server.shutdown()
        server.server_close()


def stored(server) -> dict:
    return {owner: server.collections.of_owner(owner) for owner in ("alice", "bob")}


def body(value) -> bytes:
    return json.dumps(value).encode()


ITEM = {"item": {"id": "alice/s", "type": "space"}}
HOSTILE = [  # (method, path under the slug ("" = /api/collections), body, headers, status, what the message says)
    ("POST", "", body({"title": "x"}), {}, 401, "Invalid credentials"),
    ("PATCH", "{slug}", body({"title": "x"}), {}, 401, "Invalid credentials"),
    ("POST", "{slug}/items", body(ITEM), {}, 401, "Invalid credentials"),
    ("DELETE", "{slug}/items/{item}", b"", {}, 401, "Invalid credentials"),
    ("DELETE", "{slug}", b"", {"Authorization": "Bearer hf_wrong"}, 401, "Invalid credentials"),
    ("PATCH", "{slug}", body({"title": "mine now"}), AS_BOB, 403, "only its owner may change it"),
    ("POST", "{slug}/items", body(ITEM), AS_BOB, 403, "only its owner may change it"),
    ("PATCH", "{slug}/items/{item}", body({"note": "x"}), AS_BOB, 403, "only its owner may change it"),
    ("DELETE", "{slug}/items/{item}", b"", AS_BOB, 403, "only its owner may change it"),
    ("DELETE", "{slug}", b"", AS_BOB, 403, "only its owner may change it"),
    ("GET", "{secret}", b"", AS_ALICE, 404, "not found"),
    ("GET", "{secret}", b"", {}, 404, "not found"),
    ("PATCH", "{secret}", body({"title": "x"}), AS_ALICE, 404, "not found"),
    ("POST", "", body({"title": "x", "namespace": "bob"}), AS_ALICE, 403, "in your own namespace only"),
    ("POST", "", body({"title": "t" * 61}), AS_ALICE, 400, "at most 60"),
    ("POST", "", body({"title": "\x1b[2Jcleared"}), AS_ALICE, 400, "must be printable"),
    ("POST", "", body({"title": "two\nlines"}), AS_ALICE, 400, "must be printable"),
    ("POST", "", body({"title": "   "}), AS_ALICE, 400, "must not be empty"),
    ("POST", "", body({"title": 7}), AS_ALICE, 400, "'title' must be a string"),
    ("POST", "", body({"description": "no title"}), AS_ALICE, 400, "'title' is required"),
    ("POST", "", body({"title": "x", "description": "d" * 151}), AS_ALICE, 400, "at most 150"),
    ("POST", "", body({"title": "x", "resourceGroupId": "0" * 24}), AS_ALICE, 400, "resource groups"),
    ("POST", "", body({"title": "x", "colour": "red"}), AS_ALICE, 400, "unknown field 'colour'"),
    ("POST", "", body({"title": "steady"}), AS_ALICE, 409, "already have a collection titled"),
    ("POST", "", b"{bad", AS_ALICE, 400, "not valid JSON"),
    ("POST", "", b'{"title": NaN}', AS_ALICE, 400, "not valid JSON"),
    ("POST", "", b"[1, 2]", AS_ALICE, 400, "must be a JSON object, got a list"),
    ("POST", "", b"\xff{}", AS_ALICE, 400, "not valid UTF-8"),
    ("PATCH", "{slug}", body({"title": "u" * 61}), AS_ALICE, 400, "at most 60"),
    ("PATCH", "{slug}", body({"description": "\x00"}), AS_ALICE, 400, "must be printable"),
    ("PATCH", "{slug}", body({"theme": "black"}), AS_ALICE, 400, "'theme' must be one of"),
    ("PATCH", "{slug}", body({"position": -1}), AS_ALICE, 400, "'position' must be from 0"),
    ("PATCH", "{slug}", body({"private": "yes"}), AS_ALICE, 400, "'private' must be true/false"),
    ("PATCH", "{slug}", body({"slug": "alice/other"}), AS_ALICE, 400, "unknown field 'slug'"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/s", "type": "bucket"}}), AS_ALICE, 400, "'type' must be one of"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/s", "type": 3}}), AS_ALICE, 400, "'type' must be a string"),
    ("POST", "{slug}/items", body({"item": "alice/s"}), AS_ALICE, 400, "'item' must be an object"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/s", "type": "space", "x": 1}}), AS_ALICE, 400, "unknown field"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/none", "type": "model"}}), AS_ALICE, 404, "no model 'alice/none'"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/m", "type": "space"}}), AS_ALICE, 404, "no space 'alice/m'"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/d", "type": "dataset"}}), AS_ALICE, 404, "no datasets or papers"),
    ("POST", "{slug}/items", body({"item": {"id": "2307.09288", "type": "paper"}}), AS_ALICE, 404, "no datasets or papers"),
    ("POST", "{slug}/items", body({"item": {"id": "../../etc", "type": "paper"}}), AS_ALICE, 400, "arXiv id"),
    ("POST", "{slug}/items", body({"item": {"id": "../m", "type": "model"}}), AS_ALICE, 400, "invalid repo id"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/x-" + "0" * 24, "type": "collection"}}), AS_ALICE, 404,
     "no collection"),
    ("POST", "{slug}/items", body({"item": {"id": "{slug}", "type": "collection"}}), AS_ALICE, 400, "cannot hold itself"),
    ("POST", "{slug}/items", body({"item": {"id": "alice/m", "type": "model"}}), AS_ALICE, 409, "already in this"),
    ("POST", "{slug}/items", body({**ITEM, "note": "n" * 501}), AS_ALICE, 400, "at most 500"),
    ("POST", "{slug}/items", body({**ITEM, "note": "\x1b]8;;http://evil\x07x"}), AS_ALICE, 400, "must be printable"),
    ("POST", "{slug}/items", b"{bad", AS_ALICE, 400, "not valid JSON"),
    ("PATCH", "{slug}/items/{item}", body({"position": 5}), AS_ALICE, 400, "'position' must be from 0 to 0"),
    ("PATCH", "{slug}/items/" + "f" * 24, body({"note": "x"}), AS_ALICE, 404, "no item"),
    ("DELETE", "{slug}/items/not-an-item", b"", AS_ALICE, 404, "no item"),
    ("GET", "alice/no-id-here", b"", {}, 404, "a slug is OWNER/TITLE-<24 hex id>"),
    ("GET", "alice/steady-" + "0" * 24, b"", {}, 404, "not found"),
    ("GET", "bad--owner/steady-" + "0" * 24, b"", {}, 400, "invalid collection owner"),
    ("GET", "?sort=best", b"", {}, 400, "'sort' must be"),
    ("GET", "?item=alice/m", b"", {}, 400, "'item' must be TYPE/ID"),
    ("GET", "?owner=..", b"", {}, 400, "invalid owner"),
    ("GET", "?limit=many", b"", {}, 400, "'limit' must be a whole number"),
]


@pytest.mark.parametrize("method, where, payload, headers, status, says", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_collection_requests_get_a_4xx_json_error_and_change_nothing(env, method, where, payload, headers,
                                                                           status, says):
    server, _, slug, secret, item = env
    path = "/api/collections" + (("/" if where[:1] not in ("", "?") else "") + where).format(slug=slug, secret=secret,
                                                                                            item=item)
    payload = payload.replace(b"{slug}", slug.encode())
    before = stored(server)
    message = refused(server, method, path, payload, headers, status=status)
    assert says in message, message
    assert stored(server) == before
    if status == 409 and method == "POST" and where == "":  # create_collection(exists_ok=True) reads the slug here
        assert request(server, method, path, payload, headers)[2]["slug"] == slug


def test_collection_routes_answer_the_real_client(env):
    """The routes `zoo push --all` does not need, through huggingface_hub: listing (with its filters), moving an
    item, a private collection seen by its owner only, deleting a collection; and the Space repos items name."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    server, alice, slug, secret, _ = env
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", False)
        bob = HfApi(endpoint=server.endpoint, token=BOB)
        assert [c.slug for c in bob.list_collections(owner="bob")] == [secret]
        assert list(HfApi(endpoint=server.endpoint, token=False).list_collections(owner="bob")) == []
        assert [c.slug for c in alice.list_collections(item="models/alice/m")] == [slug]
        assert list(alice.list_collections(item="spaces/alice/s")) == []

        scratch = alice.create_collection("scratch", description="to be deleted")
        for ident, kind in (("alice/m", "model"), ("alice/s", "space"), (slug, "collection")):
            scratch = alice.add_collection_item(scratch.slug, ident, kind)
        assert [(i.item_type, i.item_id, i.position) for i in scratch.items] == [
            ("model", "alice/m", 0), ("space", "alice/s", 1), ("collection", slug, 2)]
        alice.update_collection_item(scratch.slug, scratch.items[2].item_object_id, position=0, note="first")
        moved = alice.get_collection(scratch.slug)
        assert [(i.item_id, i.position, i.note) for i in moved.items] == [(slug, 0, "first"), ("alice/m", 1, None),
                                                                          ("alice/s", 2, None)]
        renamed = alice.update_collection_metadata(scratch.slug, title="scratch renamed", theme="pink")
        assert renamed.slug.endswith(scratch.slug.rsplit("-", 1)[1]) and renamed.slug != scratch.slug
        assert alice.get_collection(scratch.slug).title == "scratch renamed"  # the old slug still finds it by its id
        alice.delete_collection(renamed.slug)
        with pytest.raises(HfHubHTTPError) as e:
            alice.get_collection(renamed.slug)
        assert e.value.response.status_code == 404
        alice.delete_collection(renamed.slug, missing_ok=True)
        assert [c.slug for c in alice.list_collections(owner="alice")] == [slug]

        assert alice.space_info("alice/s").sdk == "gradio"
        status, _, data = request(server, "POST", "/api/repos/create", body({"name": "s2", "type": "space"}), AS_ALICE)
        assert status == 400 and "'sdk' is required" in data["error"]
        assert not server.spaces.exists("alice/s2")
