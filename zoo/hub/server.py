"""A small Hugging Face Hub server: the subset of the Hub HTTP API that ``huggingface_hub`` uses to
create model repos, commit files, read model info and cards, list models and download files, and to manage
collections (``zoo.hub.collections``). Space repos can be created and committed to (stored, never run), so that
a collection can list a Space.

It lets a team share adapters with any Hugging Face tool over ``HF_ENDPOINT`` (``zoo hub serve``),
and lets the tests run the real ``huggingface_hub`` client over real HTTP. Storage is a folder of
repos with commits (``zoo.hub.repo_store``): a commit becomes visible only once it is whole, so a
client that dies mid-commit leaves the repo as it was. Tokens are compared, never logged or stored.

    ZOO_HUB_TOKEN="$TEAM_TOKEN" zoo hub serve --root ~/zoo-hub --port 8008 --user team   # the token: from the environment
    HF_ENDPOINT=http://127.0.0.1:8008 HF_TOKEN="$TEAM_TOKEN" zoo push runs/sst2-lora/adapter --hub hf

Every request is checked before anything is read or stored (``zoo.hub.requests``): a malformed one gets
a 4xx ``{"error": ...}`` reply, an unknown route 404, a wrong method 405, a fault of the server 500
(the traceback goes to the server's log, never to the client). Bodies are bounded and read only after
the token is checked: a commit body at most ``max_commit_bytes`` (256 MiB; it is held in memory), any
other body ``max_json_bytes`` (1 MiB), refused by their Content-Length before one byte is read; a client
that stops sending for ``read_timeout`` (30 s) is answered 408 and closed.
"""

from __future__ import annotations

import hmac
import re
import socket
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from zoo.hub import collections as coll
from zoo.hub import requests as rq
from zoo.hub.repo_store import BadCard, HttpReply, Store, card_metadata, card_tags
from zoo.hub.requests import bad, get, shown

LINGER_SECONDS, LINGER_IDLE, LINGER_BYTES = 1.0, 0.2, 4 * rq.MiB  # see Handler._linger
SPACE_SDKS = ("gradio", "docker", "static")
_CHUNK = rq.MiB


class HubServer(ThreadingHTTPServer):
    """``HubServer(("127.0.0.1", 0), root, tokens={"hf_...": "alice"})``; ``.endpoint`` is its URL."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root, tokens: dict[str, str] | None = None, quiet: bool = True, *,
                 max_commit_bytes: int = rq.MAX_COMMIT_BYTES, max_json_bytes: int = rq.MAX_JSON_BYTES,
                 read_timeout: float = rq.READ_TIMEOUT):
        super().__init__(address, Handler)
        self.store = Store(root)
        self.spaces = Store(Path(root) / ".spaces")  # Space repos: stored, never run (a dot: no namespace clashes)
        self.collections = coll.CollectionStore(root)
        self.tokens = dict(tokens or {})
        self.quiet = quiet
        self.max_commit_bytes, self.max_json_bytes, self.read_timeout = max_commit_bytes, max_json_bytes, read_timeout
        self.fail_commits = 0  # tests: drop the connection in the middle of the next N commits

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def user_for(self, header: str | None) -> str | None:
        if not header or not header.startswith("Bearer "):
            return None
        given = header[len("Bearer "):].strip()
        for token, user in self.tokens.items():
            if hmac.compare_digest(token.encode(), given.encode()):
                return user
        return None


class Handler(coll.CollectionRoutes, BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # a request line without a version still gets a status line back
    _left = 0  # bytes of the request's body not read yet
    _replied = False  # the reply to the request has begun

    def setup(self):
        self.timeout = self.server.read_timeout  # every read and write on the socket
        super().setup()

    def log_message(self, fmt, *args):  # the request line only: never headers, so never a token
        if not self.server.quiet:
            super().log_message(fmt, *args)

    def handle_one_request(self):
        self._left, self._replied = 0, False  # per request, also for those http.server refuses itself
        self._repos = self.server.store  # model repos, unless the route or the body names Spaces
        super().handle_one_request()

    def handle_expect_100(self):  # "100 Continue" only once the body is wanted: see _body
        return True

    def parse_request(self):
        if not self.raw_requestline.strip():  # an empty line where the request line belongs
            self.command, self.requestline, self.request_version = "", "", "HTTP/1.0"
            self.send_error(400, "empty request line")
            return False
        return super().parse_request()

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (request line, headers, method, version), as JSON like every reply."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = 405, f"method {shown(self.command)} is not allowed"
        elif code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code, message = 400, "HTTP version not supported; use HTTP/1.1"
        self.close_connection = True
        self._error(HttpReply(code, HTTPStatus(code).phrase.replace(" ", ""), message or HTTPStatus(code).phrase))

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self._replied = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self._left or self.close_connection:  # an unread body: this connection cannot carry another request
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, status: int = 200, headers: dict | None = None):
        self._send(status, rq.json_bytes(value), headers)

    def _error(self, e: HttpReply):
        if self._replied:  # the reply has begun: all that is left is to close
            self.close_connection = True
            return
        header = re.sub(r"[^\x20-\x7e]", "?", e.message.encode("ascii", "backslashreplace").decode())[:300]
        try:
            self._send(e.status, rq.json_bytes({**e.extra, "error": e.message}),
                       {"X-Error-Code": e.code, "X-Error-Message": header})
        except OSError:
            self.close_connection = True

    def _admit(self, limit: int):
        if self._left > limit:  # refused by its announced length, before one byte of it is read
            raise HttpReply(413, "PayloadTooLarge", f"the body is {self._left} bytes; this endpoint takes at most {limit}")

    def _body(self, limit: int) -> bytes:
        """The whole body, read after the handler's checks (the token first)."""
        self._admit(limit)
        length = self._left
        if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            self.send_response_only(100)
            self.end_headers()
        body = bytearray()
        while self._left:
            chunk = self.rfile.read(min(_CHUNK, self._left))
            if not chunk:
                self._left, self.close_connection = 0, True
                raise bad(f"the body ended after {len(body)} of the {length} bytes its Content-Length announced")
            body += chunk
            self._left -= len(chunk)
        return body

    def _linger(self):
        """Drop what a client still sends of a refused body for a moment before closing: a close with
        unread data resets the connection, and the client, still sending, would lose the reply."""
        self.close_connection = True
        deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
        try:
            self.connection.settimeout(LINGER_IDLE)
            while self._left and dropped < LINGER_BYTES and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(_CHUNK, self._left))
                if not chunk:
                    break
                dropped += len(chunk)
                self._left -= len(chunk)
        except OSError:
            pass

    def _framed_length(self) -> int:
        try:
            return rq.content_length(self.headers)
        except HttpReply:
            self.close_connection = True  # where this body ends is unknown: nothing after it can be read
            raise

    def _user(self, required: bool = True) -> str | None:
        user = self.server.user_for(self.headers.get("Authorization"))
        if required and user is None:
            raise HttpReply(401, "Unauthorized", "Invalid credentials in Authorization header")
        return user

    def _readable(self, repo_id: str) -> dict:
        info = self._repos.info(repo_id)
        if info.get("private") and self._user(required=False) is None:
            raise HttpReply(404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        return info

    def _route(self, raw_path: str):
        allowed = []
        for method, pattern, handler in ROUTES:
            match = pattern.fullmatch(raw_path)
            if match is None:
                continue
            if method == self.command or (method == "GET" and self.command == "HEAD"):
                args = {k: rq.url_text(v, k) for k, v in match.groupdict().items() if v is not None}
                self._repos = self.server.spaces if args.pop("kind", "models") == "spaces" else self.server.store
                if "namespace" in args:
                    args["repo_id"] = rq.check_repo_id(f"{args.pop('namespace')}/{args.pop('name')}")
                return handler, args
            allowed.append(method)
        if allowed:
            raise HttpReply(405, "MethodNotAllowed", f"{shown(self.command)} is not allowed here; use {', '.join(allowed)}")
        raise HttpReply(404, "NotFound", f"no route for {self.command} {shown(raw_path)}")

    def _dispatch(self):
        try:
            self._left = self._framed_length()
            path, query = rq.split_target(self.path)
            handler, args = self._route(path)
            handler(self, rq.parse_query(query), **args)
        except HttpReply as e:
            self._error(e)
        except TimeoutError:
            self._left, self.close_connection = 0, True
            self._error(HttpReply(408, "RequestTimeout", f"no data from the client for {self.server.read_timeout} s"))
        except ConnectionError:
            self._left, self.close_connection = 0, True  # the client is gone
        except Exception:  # noqa: BLE001  (a fault of this server: the traceback to its log, a short reply)
            self.log_error("internal error on %s:\n%s", shown(self.requestline), traceback.format_exc())
            self._error(HttpReply(500, "InternalError", "internal server error; the server's log has the details"))
        finally:
            if self._left:
                self._linger()

    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    # ---------------------------------------------------------------- routes
    def whoami(self, query):
        user = self._user()
        self._json({"type": "user", "name": user, "fullname": user, "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "zoo", "role": "write"}}})

    def _repo_body(self, user: str, where: str) -> tuple[str, dict]:
        """The repo that a create/delete body names ({"name", "organization", "type"}), and the body; the type
        (a model, or a Space: stored, never run) chooses the store."""
        data = rq.json_object(self._body(self.server.max_json_bytes), where)
        kind = get(data, "type", str, where, choices=("model", "space")) or "model"
        self._repos = self.server.spaces if kind == "space" else self.server.store
        name = get(data, "name", str, where, required=True)
        return rq.check_repo_id(f"{get(data, 'organization', str, where) or user}/{name}"), data

    def create_repo(self, query):
        user, where = self._user(), "the create-repo body"
        repo_id, data = self._repo_body(user, where)
        private = bool(get(data, "private", bool, where))
        private |= get(data, "visibility", str, where, choices=("public", "private")) == "private"
        space = self._repos is self.server.spaces
        extra = {"sdk": get(data, "sdk", str, where, required=True, choices=SPACE_SDKS)} if space else {}
        created = self._repos.create(repo_id, private, user, **extra)
        url = f"{self.server.endpoint}/{'spaces/' if space else ''}{repo_id}"
        self._json({"url": url, "name": repo_id, "id": repo_id} if created else
                   {"url": url, "error": "You already created this model repo"}, 200 if created else 409)

    def delete_repo(self, query):
        repo_id, _ = self._repo_body(self._user(), "the delete-repo body")
        self._repos.delete(repo_id)
        self._json({})

    def validate_yaml(self, query):
        data = rq.json_object(self._body(self.server.max_json_bytes), "the validate-yaml body")
        try:
            card_metadata(get(data, "content", str, "the validate-yaml body", required=True).encode("utf-8", "replace"))
        except BadCard as e:  # huggingface_hub shows "errors" (create_commit checks a README here first)
            self._json({"error": str(e), "errors": [{"message": str(e)}], "warnings": []}, 400)
            return
        self._json({"errors": [], "warnings": []})

    def preupload(self, query, repo_id, rev):
        self._user()
        self._readable(repo_id)
        data = rq.json_object(self._body(self.server.max_json_bytes), "the preupload body")
        files = get(data, "files", list, "the preupload body") or []
        out = []
        for i, f in enumerate(files):
            where = f"preupload file {i}"
            if not isinstance(f, dict):
                raise bad(f"{where} must be a JSON object")
            get(f, "size", int, where)
            get(f, "sample", str, where)
            out.append({"path": rq.repo_path(f.get("path"), where), "uploadMode": "regular",
                        "shouldIgnore": False, "oid": None})
        self._json({"files": out})

    def commit(self, query, repo_id, rev):
        self._user()
        self._readable(repo_id)
        if rev != "main":
            raise bad("commits go to main on this server")
        if rq.query_flag(query, "create_pr"):
            raise bad("this server does not take pull requests; commit to main")
        self._admit(self.server.max_commit_bytes)
        if self.server.fail_commits > 0:  # test hook: the server stops half-way through the body
            self.server.fail_commits -= 1
            self.rfile.read(max(1, self._left // 2))
            self._left, self._replied, self.close_connection = 0, True, True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        commit = rq.parse_commit(self._body(self.server.max_commit_bytes))
        if "README.md" in commit.adds:
            try:
                card_metadata(commit.adds["README.md"])
            except BadCard as e:
                raise bad(f"README.md: {e}") from None
        sha = self._repos.commit(repo_id, commit.parent, commit.summary, commit.adds, commit.deletes, commit.folders)
        where = f"{self.server.endpoint}/{'spaces/' if self._repos is self.server.spaces else ''}{repo_id}"
        self._json({"commitUrl": f"{where}/commit/{sha}", "commitOid": sha,
                    "success": True, "pullRequestUrl": None})

    def _model_info(self, repo_id: str, revision: str = "main") -> dict:
        store = self._repos
        info = self._readable(repo_id)
        sha = store.resolve(repo_id, revision)
        commit = store.commit_info(repo_id, sha)
        files = commit["files"]
        data = store.card(repo_id, files)
        text = {k: data.get(k) if isinstance(data.get(k), str) else None for k in ("library_name", "pipeline_tag")}
        return {
            "_id": repo_id, "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha,
            "private": bool(info.get("private")), "disabled": False, "gated": False, "downloads": 0, "likes": 0,
            "tags": card_tags(data), **text, "cardData": data,
            "siblings": [{"rfilename": p} for p in sorted(files)],
            "createdAt": info.get("createdAt"), "lastModified": commit["date"],
            **({"sdk": info["sdk"]} if "sdk" in info else {}),
        }

    def model_info(self, query, repo_id, rev="main"):
        self._json(self._model_info(repo_id, rev))

    def list_models(self, query):
        author, search = rq.query_one(query, "author"), rq.query_one(query, "search")
        filters = [f for value in query.get("filter", []) for f in value.split(",") if f]
        limit = rq.query_int(query, "limit", rq.MAX_LIST_LIMIT)
        with_card = rq.query_flag(query, "cardData") or rq.query_flag(query, "full")
        out = []
        for repo_id in self.server.store.repos():
            if len(out) >= limit:
                break
            if author and repo_id.split("/")[0] != author:
                continue
            if search and search.lower() not in repo_id.lower():
                continue
            try:
                info = self._model_info(repo_id)
            except HttpReply:
                continue  # private to this caller
            if all(f in info["tags"] for f in filters):
                if not with_card:
                    info.pop("cardData")
                out.append(info)
        self._json(out)

    def _entries(self, repo_id: str, sha: str, paths=None) -> list[dict]:
        store = self._repos
        files = store.files(repo_id, sha)
        chosen = files if paths is None else {p: files[p] for p in paths if p in files}
        return [{"type": "file", "path": p, "size": store.size(repo_id, oid), "oid": oid}
                for p, oid in sorted(chosen.items())]

    def tree(self, query, repo_id, rev, sub=""):
        self._readable(repo_id)
        sha = self._repos.resolve(repo_id, rev)
        sub = sub.strip("/")
        entries = [e for e in self._entries(repo_id, sha) if not sub or e["path"].startswith(sub + "/")]
        if not rq.query_flag(query, "recursive"):
            listing, folders = [], set()
            for e in entries:
                rest = e["path"][len(sub) + 1:] if sub else e["path"]
                if "/" in rest:
                    folder = (sub + "/" if sub else "") + rest.split("/")[0]
                    if folder not in folders:
                        folders.add(folder)
                        listing.append({"type": "directory", "path": folder, "oid": "0" * 40, "size": 0})
                else:
                    listing.append(e)
            entries = listing
        self._json(entries)

    def paths_info(self, query, repo_id, rev):
        self._readable(repo_id)
        sha = self._repos.resolve(repo_id, rev)
        raw = self._body(self.server.max_json_bytes)
        if "json" in self.headers.get("Content-Type", ""):
            paths = get(rq.json_object(raw, "the paths-info body"), "paths", (list, str), "the paths-info body")
        else:
            form = rq.parse_query(rq.parse_text(raw, "the paths-info body"), "paths-info form")
            paths = form.get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths or []
        if not all(isinstance(p, str) for p in paths):
            raise bad("the paths-info body: 'paths' must be a list of strings")
        self._json(self._entries(repo_id, sha, paths))

    def refs(self, query, repo_id):
        self._readable(repo_id)
        head = self._repos.head(repo_id)
        self._json({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": head}],
                    "converts": [], "tags": []})

    def commits(self, query, repo_id, rev):
        self._readable(repo_id)
        store = self._repos
        sha, out = store.resolve(repo_id, rev), []
        while sha:
            c = store.commit_info(repo_id, sha)
            out.append({"id": sha, "title": c["title"], "message": "", "date": c["date"], "authors": []})
            sha = c["parent"]
        self._json(out)

    def resolve(self, query, repo_id, rev, path):
        self._readable(repo_id)
        store = self._repos
        sha = store.resolve(repo_id, rev)
        oid = store.files(repo_id, sha).get(path)
        if oid is None:
            raise HttpReply(404, "EntryNotFound", f"{shown(path)} does not exist at revision {shown(rev)}")
        data = store.read(repo_id, oid)
        self._send(200, data, {"ETag": f'"{oid}"', "X-Repo-Commit": sha, "Accept-Ranges": "none"},
                   content_type="application/octet-stream")


_REPO = r"(?P<namespace>[^/]+)/(?P<name>[^/]+)"  # percent-encoded: each part decoded, then checked
_KIND = r"(?P<kind>models|spaces)"  # a Space repo is stored and committed to like a model repo, never run
_SLUG = r"(?P<owner>[^/]+)/(?P<slug>[^/]+)"  # a collection: OWNER/TITLE-ID
ROUTES = [(method, re.compile(pattern), handler) for method, pattern, handler in [
    ("GET", r"/api/whoami-v2", Handler.whoami),
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("DELETE", r"/api/repos/delete", Handler.delete_repo),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("GET", r"/api/models", Handler.list_models),
    ("POST", rf"/api/{_KIND}/{_REPO}/preupload/(?P<rev>[^/]+)", Handler.preupload),
    ("POST", rf"/api/{_KIND}/{_REPO}/commit/(?P<rev>[^/]+)", Handler.commit),
    ("POST", rf"/api/{_KIND}/{_REPO}/paths-info/(?P<rev>[^/]+)", Handler.paths_info),
    ("GET", rf"/api/{_KIND}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", Handler.tree),
    ("GET", rf"/api/{_KIND}/{_REPO}/refs", Handler.refs),
    ("GET", rf"/api/{_KIND}/{_REPO}/commits/(?P<rev>[^/]+)", Handler.commits),
    ("GET", rf"/api/{_KIND}/{_REPO}/revision/(?P<rev>[^/]+)", Handler.model_info),
    ("GET", rf"/api/{_KIND}/{_REPO}", Handler.model_info),
    ("GET", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", Handler.resolve),
    ("GET", r"/api/collections", Handler.list_collections),
    ("POST", r"/api/collections", Handler.create_collection),
    ("GET", rf"/api/collections/{_SLUG}", Handler.get_collection),
    ("PATCH", rf"/api/collections/{_SLUG}", Handler.update_collection),
    ("DELETE", rf"/api/collections/{_SLUG}", Handler.delete_collection),
    ("POST", rf"/api/collections/{_SLUG}/items", Handler.add_collection_item),
    ("PATCH", rf"/api/collections/{_SLUG}/items/(?P<item>[^/]+)", Handler.update_collection_item),
    ("DELETE", rf"/api/collections/{_SLUG}/items/(?P<item>[^/]+)", Handler.delete_collection_item),
]]


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8008, tokens: dict[str, str] | None = None,
          quiet: bool = False, **limits) -> HubServer:
    """Start a server in a background thread; returns it (``.shutdown()`` to stop). ``limits``:
    ``max_commit_bytes``, ``max_json_bytes``, ``read_timeout`` (see ``HubServer``)."""
    server = HubServer((host, port), root, tokens=tokens, quiet=quiet, **limits)
    threading.Thread(target=server.serve_forever, daemon=True, name="zoo-hub-server").start()
    return server
