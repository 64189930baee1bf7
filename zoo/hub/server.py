"""A small Hugging Face Hub server: the subset of the Hub HTTP API that ``huggingface_hub`` uses to
create model repos, commit files, read model info and cards, list models and download files.

It lets a team share adapters with any Hugging Face tool over ``HF_ENDPOINT`` (``zoo hub serve``),
and lets the tests run the real ``huggingface_hub`` client over real HTTP. Storage is a folder of
repos with commits (``zoo.hub.repo_store``): a commit becomes visible only once it is whole, so a
client that dies mid-commit leaves the repo as it was. Tokens are compared, never logged or stored.

    ZOO_HUB_TOKEN="$TEAM_TOKEN" zoo hub serve --root ~/zoo-hub --port 8008 --user team   # the token: from the environment
    HF_ENDPOINT=http://127.0.0.1:8008 HF_TOKEN="$TEAM_TOKEN" zoo push runs/sst2-lora/adapter --hub hf
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from zoo.hub.repo_store import HttpReply, Store, card_data, card_tags


class HubServer(ThreadingHTTPServer):
    """``HubServer(("127.0.0.1", 0), root, tokens={"hf_...": "alice"})``; ``.endpoint`` is its URL."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root, tokens: dict[str, str] | None = None, quiet: bool = True):
        super().__init__(address, Handler)
        self.store = Store(root)
        self.tokens = dict(tokens or {})
        self.quiet = quiet
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


class Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the request line only: never headers, so never a token
        if not self.server.quiet:
            super().log_message(fmt, *args)

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(value).encode(), headers)

    def _error(self, e: HttpReply):
        body = json.dumps({"error": e.message}).encode()
        self._send(e.status, body, {"X-Error-Code": e.code, "X-Error-Message": e.message})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _user(self, required: bool = True) -> str | None:
        user = self.server.user_for(self.headers.get("Authorization"))
        if required and user is None:
            raise HttpReply(401, "Unauthorized", "Invalid credentials in Authorization header")
        return user

    def _readable(self, repo_id: str) -> dict:
        info = self.server.store.info(repo_id)
        if info.get("private") and self._user(required=False) is None:
            raise HttpReply(404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        return info

    def _dispatch(self):
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        try:
            for method, pattern, handler in ROUTES:
                if method != self.command and not (method == "GET" and self.command == "HEAD"):
                    continue
                match = re.fullmatch(pattern, path)
                if match:
                    return handler(self, query, **match.groupdict())
            raise HttpReply(404, "NotFound", f"no route for {self.command} {url.path}")
        except HttpReply as e:
            self._error(e)
        except (ConnectionError, BrokenPipeError):
            pass

    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = _dispatch

    # ---------------------------------------------------------------- routes
    def whoami(self, query):
        user = self._user()
        self._json({"type": "user", "name": user, "fullname": user, "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "zoo", "role": "write"}}})

    def create_repo(self, query):
        user = self._user()
        data = json.loads(self._body() or b"{}")
        if data.get("type") not in (None, "model"):
            raise HttpReply(400, "BadRequest", "this server holds model repos only")
        repo_id = f"{data.get('organization') or user}/{data.get('name')}"
        private = bool(data.get("private")) or data.get("visibility") == "private"
        created = self.server.store.create(repo_id, private, user)
        url = f"{self.server.endpoint}/{repo_id}"
        self._json({"url": url, "name": repo_id, "id": repo_id} if created else
                   {"url": url, "error": "You already created this model repo"}, 200 if created else 409)

    def delete_repo(self, query):
        self._user()
        data = json.loads(self._body() or b"{}")
        self.server.store.delete(f"{data.get('organization') or self._user()}/{data.get('name')}")
        self._json({})

    def validate_yaml(self, query):
        self._body()
        self._json({"errors": [], "warnings": []})

    def preupload(self, query, repo_id, rev):
        self._user()
        self._readable(repo_id)
        data = json.loads(self._body() or b"{}")
        self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                              for f in data.get("files", [])]})

    def commit(self, query, repo_id, rev):
        self._user()
        self._readable(repo_id)
        if rev != "main":
            raise HttpReply(400, "BadRequest", "commits go to main on this server")
        if self.server.fail_commits > 0:  # test hook: the server stops half-way through the body
            self.server.fail_commits -= 1
            self.rfile.read(max(1, int(self.headers.get("Content-Length") or 2) // 2))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        header, adds, deletes, folders = {}, {}, [], []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HttpReply(400, "BadRequest", "file content must be base64")
                adds[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deletes.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            elif key == "lfsFile":
                raise HttpReply(400, "BadRequest", "this server takes regular uploads only")
        for path in list(adds) + deletes:
            if path.startswith("/") or ".." in Path(path).parts:
                raise HttpReply(400, "BadRequest", f"invalid path {path!r}")
        sha = self.server.store.commit(repo_id, header.get("parentCommit"), header.get("summary") or "commit",
                                       adds, deletes, folders)
        self._json({"commitUrl": f"{self.server.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha,
                    "success": True, "pullRequestUrl": None})

    def _model_info(self, repo_id: str, revision: str = "main") -> dict:
        store = self.server.store
        info = self._readable(repo_id)
        sha = store.resolve(repo_id, revision)
        commit = store.commit_info(repo_id, sha)
        files = commit["files"]
        data = card_data(store.read(repo_id, files["README.md"]) if "README.md" in files else None)
        return {
            "_id": repo_id, "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha,
            "private": bool(info.get("private")), "disabled": False, "gated": False, "downloads": 0, "likes": 0,
            "tags": card_tags(data), "library_name": data.get("library_name"),
            "pipeline_tag": data.get("pipeline_tag"), "cardData": data,
            "siblings": [{"rfilename": p} for p in sorted(files)],
            "createdAt": info.get("createdAt"), "lastModified": commit["date"],
        }

    def model_info(self, query, repo_id, rev="main"):
        self._json(self._model_info(repo_id, rev))

    def list_models(self, query):
        author = (query.get("author") or [None])[0]
        search = (query.get("search") or [None])[0]
        filters = [f for value in query.get("filter", []) for f in value.split(",") if f]
        limit = int((query.get("limit") or [1000])[0])
        out = []
        for repo_id in self.server.store.repos():
            if author and repo_id.split("/")[0] != author:
                continue
            if search and search.lower() not in repo_id.lower():
                continue
            try:
                info = self._model_info(repo_id)
            except HttpReply:
                continue  # private to this caller
            if all(f in info["tags"] for f in filters):
                if not query.get("cardData") and not query.get("full"):
                    info.pop("cardData")
                out.append(info)
        self._json(out[:limit])

    def _entries(self, repo_id: str, sha: str, paths=None) -> list[dict]:
        store = self.server.store
        files = store.files(repo_id, sha)
        chosen = files if paths is None else {p: files[p] for p in paths if p in files}
        return [{"type": "file", "path": p, "size": store.size(repo_id, oid), "oid": oid}
                for p, oid in sorted(chosen.items())]

    def tree(self, query, repo_id, rev, sub=""):
        self._readable(repo_id)
        sha = self.server.store.resolve(repo_id, rev)
        sub = (sub or "").strip("/")
        entries = [e for e in self._entries(repo_id, sha) if not sub or e["path"].startswith(sub + "/")]
        if query.get("recursive", ["false"])[0].lower() not in ("true", "1"):
            shown, folders = [], set()
            for e in entries:
                rest = e["path"][len(sub) + 1:] if sub else e["path"]
                if "/" in rest:
                    folder = (sub + "/" if sub else "") + rest.split("/")[0]
                    if folder not in folders:
                        folders.add(folder)
                        shown.append({"type": "directory", "path": folder, "oid": "0" * 40, "size": 0})
                else:
                    shown.append(e)
            entries = shown
        self._json(entries)

    def paths_info(self, query, repo_id, rev):
        self._readable(repo_id)
        sha = self.server.store.resolve(repo_id, rev)
        raw = self._body()
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(raw or b"{}").get("paths", [])
        else:
            paths = parse_qs(raw.decode()).get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        self._json(self._entries(repo_id, sha, paths))

    def refs(self, query, repo_id):
        self._readable(repo_id)
        head = self.server.store.head(repo_id)
        self._json({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": head}],
                    "converts": [], "tags": []})

    def commits(self, query, repo_id, rev):
        self._readable(repo_id)
        store = self.server.store
        sha, out = store.resolve(repo_id, rev), []
        while sha:
            c = store.commit_info(repo_id, sha)
            out.append({"id": sha, "title": c["title"], "message": "", "date": c["date"], "authors": []})
            sha = c["parent"]
        self._json(out)

    def resolve(self, query, repo_id, rev, path):
        self._readable(repo_id)
        store = self.server.store
        sha = store.resolve(repo_id, rev)
        oid = store.files(repo_id, sha).get(path)
        if oid is None:
            raise HttpReply(404, "EntryNotFound", f"{path} does not exist at revision {rev}")
        data = store.read(repo_id, oid)
        self._send(200, data, {"ETag": f'"{oid}"', "X-Repo-Commit": sha, "Accept-Ranges": "none"},
                   content_type="application/octet-stream")


_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
ROUTES = [
    ("GET", r"/api/whoami-v2", Handler.whoami),
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("DELETE", r"/api/repos/delete", Handler.delete_repo),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("GET", r"/api/models", Handler.list_models),
    ("POST", rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", Handler.preupload),
    ("POST", rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", Handler.commit),
    ("POST", rf"/api/models/{_REPO}/paths-info/(?P<rev>[^/]+)", Handler.paths_info),
    ("GET", rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", Handler.tree),
    ("GET", rf"/api/models/{_REPO}/refs", Handler.refs),
    ("GET", rf"/api/models/{_REPO}/commits/(?P<rev>[^/]+)", Handler.commits),
    ("GET", rf"/api/models/{_REPO}/revision/(?P<rev>[^/]+)", Handler.model_info),
    ("GET", rf"/api/models/{_REPO}", Handler.model_info),
    ("GET", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", Handler.resolve),
]


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8008, tokens: dict[str, str] | None = None,
          quiet: bool = False) -> HubServer:
    """Start a server in a background thread; returns it (``.shutdown()`` to stop)."""
    server = HubServer((host, port), root, tokens=tokens, quiet=quiet)
    threading.Thread(target=server.serve_forever, daemon=True, name="zoo-hub-server").start()
    return server
