"""``zoo serve``: the registry behind HTTP, on Starlette under uvicorn.

    POST /v1/classify            {"adapter": NAME, "inputs": [text | [text, text_pair], ...]} (or "adapters": [...])
    POST /v1/completions         OpenAI's, ``model`` = a causal entry's name; "stream": true sends server-sent events
    POST /v1/chat/completions    OpenAI's, one user message (the zoo's adapters answer one instruction)
    GET  /v1/models              the servable entries
    GET  /health                 liveness and what is loaded (never needs the token)
    GET  /metrics                Prometheus text

Every error is a JSON body ``{"error": {"message", "type", "code"}}`` with its status (400 bad input, 401 token,
404 unknown name, 413 body too large, 429 queue full with Retry-After, 504 deadline); a traceback is never sent,
the log has it. The catalogue is listed again every ``refresh_seconds`` and whenever a request names an unknown
adapter, so pushes, new revisions and removals are served without a restart.

    from zoo.server.app import create_app
    app = create_app(Catalogue(hub="local"))   # then: uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from typing import Optional, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zoo.demo.catalogue import Catalogue
from zoo.demo.entries import MAX_CHARS
from zoo.demo.limits import BodyLimit
from zoo.errors import (BadInput, DeadlineExceeded, EntryFailed, EntryNotFound, NotAuthorized, ServerBusy,
                        UnsafeAdapter, ZooError)
from zoo.server.engine import Engine
from zoo.server.metrics import Metrics
from zoo.server.requests import MAX_INPUTS, classify_request, completion_request, parse_json
from zoo.server.streaming import start_stream

log = logging.getLogger("zoo.server")

STATUS = [(NotAuthorized, 401, "authentication_error"), (BadInput, 400, "invalid_request_error"),
          (EntryNotFound, 404, "not_found_error"), (ServerBusy, 429, "rate_limit_error"),
          (DeadlineExceeded, 504, "timeout_error"), (UnsafeAdapter, 422, "invalid_request_error"),
          (EntryFailed, 500, "server_error"), (ZooError, 500, "server_error")]


def error_response(status: int, message: str, kind: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)


def zoo_error(e: ZooError) -> JSONResponse:
    for cls, status, kind in STATUS:
        if isinstance(e, cls):
            return error_response(status, str(e), kind, {"Retry-After": "1"} if status == 429 else None)
    raise AssertionError("unreachable: ZooError is last")


class Server:
    """The app's state: the engine (catalogue, admission, metrics), the token and the limits."""

    def __init__(self, catalogue: Catalogue, *, token: Optional[str] = None, max_queue: int = 64,
                 timeout: float = 60.0, refresh_seconds: float = 10.0, max_chars: int = MAX_CHARS,
                 vllm_routes: Sequence = ()):
        self.metrics = Metrics()
        self.engine = Engine(catalogue, max_queue=max_queue, timeout=timeout, metrics=self.metrics)
        self.token, self.refresh_seconds, self.max_chars = token, refresh_seconds, max_chars
        self.routes = list(vllm_routes)  # zoo.server.vllm_engine.VllmRoute: causal LoRA entries answered by vLLM
        self.started = time.time()

    def route(self, entry):
        """The vLLM route that answers ``entry``, or None (the zoo's own engine answers)."""
        return next((r for r in self.routes if r.serves(entry)), None)

    # ------------------------------------------------------------------ plumbing
    def authorize(self, request: Request) -> None:
        if not self.token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            raise NotAuthorized("this server wants a token: send the header \"Authorization: Bearer <token>\"")

    async def answer(self, request: Request, endpoint: str, handler) -> Response:
        """Authorize, read, handle; count it; turn a ZooError into its status and anything else into a 500
        whose body says only that it failed (the log has the traceback)."""
        start, adapter = time.perf_counter(), "-"
        try:
            self.authorize(request)
            body = parse_json(await request.body()) if request.method == "POST" else {}
            response, adapter = await handler(body)
        except ZooError as e:
            response = zoo_error(e)
        except ClientDisconnect:  # the client left (or BodyLimit cut an oversized body): nobody to answer
            response = error_response(499, "the client closed the request", "invalid_request_error")
        except Exception:
            log.exception("%s failed", endpoint)
            response = error_response(500, "the server failed to answer this request; it is logged, and the "
                                           "server goes on serving", "server_error")
        self.metrics.requests.labels(endpoint, adapter, str(response.status_code)).inc()
        if response.status_code < 400:
            self.metrics.latency.labels(endpoint, adapter).observe(time.perf_counter() - start)
        return response

    # ------------------------------------------------------------------ endpoints
    async def classify(self, request: Request) -> Response:
        async def handle(body):
            req = classify_request(body, max_chars=self.max_chars)
            rows = await self.engine.run(self.engine.classify, req)
            names = {r["adapter"] for r in rows}
            results = [{k: r[k] for k in ("adapter", "entry", "label", "score", "scores", "text", "no_answer") if k in r}
                       for r in rows]
            return (JSONResponse({"object": "classification", "results": results}),
                    names.pop() if len(names) == 1 else "(mixed)")
        return await self.answer(request, "classify", handle)

    async def completions(self, request: Request, chat: bool = False) -> Response:
        endpoint = "chat.completions" if chat else "completions"

        async def handle(body):
            req = completion_request(body, max_chars=self.max_chars, chat=chat)
            entry = await asyncio.to_thread(self.engine.causal_entry, req.model)
            route = self.route(entry)
            if route is not None:
                return await self.forward(route, req, entry), entry.name
            if req.stream:
                return StreamingResponse(start_stream(self.engine, req, entry),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"}), entry.name
            rows = await self.engine.run(self.engine.complete, req, entry)
            return JSONResponse(completion_body(req, entry, rows)), entry.name
        return await self.answer(request, endpoint, handle)

    async def forward(self, route, req, entry) -> Response:
        """A completion answered by vLLM, admitted and timed like the zoo's own."""
        if req.stream:
            return StreamingResponse(await route.stream(req, entry, self.engine), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        self.engine.admit()
        try:
            rows = await asyncio.wait_for(route.complete(req, entry), self.engine.timeout)
        except asyncio.TimeoutError:
            self.metrics.rejected.labels("deadline").inc()
            raise DeadlineExceeded(f"no answer within the server's deadline of {self.engine.timeout:g} s") from None
        finally:
            self.engine._release()
        self.metrics.tokens.labels(entry.name).inc(sum(r["completion_tokens"] for r in rows))
        return JSONResponse(completion_body(req, entry, rows))

    async def chat(self, request: Request) -> Response:
        return await self.completions(request, chat=True)

    async def models(self, request: Request) -> Response:
        async def handle(body):
            listed = self.engine.models(engine_of=lambda e: "zoo" if self.route(e) is None else "vllm")
            return JSONResponse({"object": "list", "data": listed}), "-"
        return await self.answer(request, "models", handle)

    async def health(self, request: Request) -> Response:
        cat = self.engine.catalogue
        return JSONResponse({"status": "ok" if cat.problem is None else "degraded", "problem": cat.problem,
                             "entries": len(cat.entries), "queue": self.engine.inflight,
                             "max_queue": self.engine.max_queue, "uptime_s": round(time.time() - self.started, 1),
                             "loaded": await asyncio.to_thread(cat.loaded)})

    async def metrics_text(self, request: Request) -> Response:
        try:
            self.authorize(request)
        except NotAuthorized as e:
            return zoo_error(e)
        return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------------ the catalogue, kept current
    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await asyncio.to_thread(self.engine.refresh)
            except Exception:  # a listing that fails keeps what was listed (Catalogue.refresh strict=False)
                log.exception("listing the catalogue failed")


def completion_body(req, entry, rows: list[dict]) -> dict:
    """OpenAI's completion (or chat completion) object for the rows of one request."""
    created = int(time.time())
    usage = {"prompt_tokens": sum(r["prompt_tokens"] for r in rows),
             "completion_tokens": sum(r["completion_tokens"] for r in rows)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if req.chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": r["text"]}, "logprobs": None,
                    "finish_reason": r["finish_reason"]} for i, r in enumerate(rows)]
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": created,
                "model": req.model, "choices": choices, "usage": usage}
    choices = [{"index": i, "text": r["text"], "logprobs": None, "finish_reason": r["finish_reason"]}
               for i, r in enumerate(rows)]
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": created, "model": req.model,
            "choices": choices, "usage": usage}


def create_app(catalogue: Catalogue, **settings) -> Starlette:
    """The ASGI app over ``catalogue`` (settings: see :class:`Server`)."""
    server = Server(catalogue, **settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(server.refresh_forever()) if server.refresh_seconds > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            for route in server.routes:
                await route.close()
            server.engine.close()

    async def not_found(request, exc: HTTPException):
        return error_response(exc.status_code, f"{request.method} {request.url.path[:200]}: "
                              f"{'no such endpoint' if exc.status_code == 404 else exc.detail}; the endpoints are "
                              "/v1/classify, /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics",
                              "invalid_request_error")

    app = Starlette(routes=[
        Route("/v1/classify", server.classify, methods=["POST"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/metrics", server.metrics_text, methods=["GET"]),
    ], lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.state.server = server
    # JSON escapes a character to at most 12 bytes; every input may be a pair
    limit = 12 * 2 * MAX_INPUTS * server.max_chars + 64 * 1024
    wrapped = BodyLimit(app, limit=limit, refusal=lambda n: dumps({"error": {
        "message": f"request body over {n:,} bytes: the server reads at most that much per request (at most "
                   f"{MAX_INPUTS} inputs of {server.max_chars:,} characters; see --max-chars)",
        "type": "invalid_request_error", "code": 413}}).encode())
    wrapped.server = server  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
