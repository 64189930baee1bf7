"""OpenAI-style streaming (server-sent events) of a completion: each row's new text is sent as its tokens are
generated, decoded as the whole answer is decoded, so the pieces add up to exactly the text a request without
``stream`` gets. A row's last piece carries its ``finish_reason``; ``stream_options.include_usage`` adds a
usage chunk; ``data: [DONE]`` ends the stream. An error after the stream started is sent as one
``data: {"error": ...}`` event (the status line has gone already).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from zoo.errors import ZooError

log = logging.getLogger("zoo.server")


def sse(value) -> str:
    return f"data: {json.dumps(value, ensure_ascii=False, separators=(',', ':'))}\n\n"


DONE = "data: [DONE]\n\n"


class Events:
    """The server-sent events of one completion request, in OpenAI's shapes (completion or chat chunks)."""

    def __init__(self, req):
        self.chat = req.chat
        self.head = {"id": f"{'chatcmpl' if req.chat else 'cmpl'}-{uuid.uuid4().hex}",
                     "object": "chat.completion.chunk" if req.chat else "text_completion",
                     "created": int(time.time()), "model": req.model}

    def opening(self, n: int) -> list[str]:
        """A chat stream starts each choice with the assistant's role."""
        if not self.chat:
            return []
        return [sse({**self.head, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                               "logprobs": None, "finish_reason": None}]}) for i in range(n)]

    def chunk(self, i: int, text: str, finish=None) -> str:
        if self.chat:
            choice = {"index": i, "delta": {"content": text} if text or finish is None else {}, "logprobs": None,
                      "finish_reason": finish}
        else:
            choice = {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
        return sse({**self.head, "choices": [choice]})

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        return sse({**self.head, "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                                          "completion_tokens": completion_tokens,
                                                          "total_tokens": prompt_tokens + completion_tokens}})

    @staticmethod
    def error(message: str, kind: str, code: int) -> str:
        return sse({"error": {"message": message, "type": kind, "code": code}})


class IncrementalText:
    """One row's text as its tokens arrive, each token costing a decode of a few tokens, not of the whole answer.

    The window decoded is the tokens since the last piece plus those of the piece before it (as vLLM and TGI
    do): a token's text depends on its neighbours (SentencePiece's leading space, WordPiece's ``##``), and the
    piece is what the window's text gained over the same window without the new tokens. ``push`` returns the
    new text, or "" while it is half a character or a merge that may still rewrite its end. Special tokens
    (``[UNK]``, end of turn) are left out, as the whole answer's decode leaves them out: kept, a run of them would
    decode to nothing and widen the window without end."""

    def __init__(self):
        self.ids: list[int] = []
        self.prefix = self.read = 0  # the window is ids[prefix:]; ids[prefix:read] were decoded already
        self.special: frozenset[int] | None = None

    def push(self, tokenizer, token: int) -> str:
        if tokenizer is None:  # not known yet: the token waits in the window
            self.ids.append(token)
            return ""
        if self.special is None:
            self.special = frozenset(tokenizer.all_special_ids)
        if token in self.special:
            return ""
        self.ids.append(token)
        before = tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        now = tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(now) <= len(before) or now.endswith("\ufffd") or not now.startswith(before):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return now[len(before):]


def start_stream(engine, req, entry):
    """Admit the request, start its rows, and return the generator of its events. The rows run (and give back
    their place in the queue) whether or not the events are ever read: a client that leaves costs nothing more."""
    engine.admit()  # refused here, before the 200 of a stream is sent
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    n = len(req.inputs)
    decoders: list = [None]

    def sender(i: int):
        return lambda token: loop.call_soon_threadsafe(queue.put_nowait, (i, token))

    def work():
        decoders[0] = engine.decoder(entry)  # loads the entry first if it is not yet resident
        return engine.complete(req, entry, streams={i: sender(i) for i in range(n)})

    try:
        future = engine.start(work)
    except BaseException:
        engine._release()  # admitted but never started (the server is shutting down)
        raise
    future.add_done_callback(lambda _: queue.put_nowait(None))
    return _events(engine, req, entry, queue, future, decoders)


async def _events(engine, req, entry, queue: asyncio.Queue, future, decoders: list):
    loop = asyncio.get_running_loop()
    n = len(req.inputs)
    events = Events(req)
    for opening in events.opening(n):
        yield opening
    texts = [IncrementalText() for _ in range(n)]
    sent = [""] * n
    deadline = loop.time() + engine.timeout
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            engine.metrics.rejected.labels("deadline").inc()
            yield events.error(f"no answer within the server's deadline of {engine.timeout:g} s", "timeout_error", 504)
            return
        if item is None:
            break
        i, token = item
        piece = texts[i].push(decoders[0] and decoders[0][0], token)
        if piece:
            sent[i] += piece
            yield events.chunk(i, piece)
    try:
        rows = future.result()
    except ZooError as e:
        yield events.error(str(e), "invalid_request_error", 400)
        return
    except Exception:
        log.exception("streaming %s failed", entry.name)
        yield events.error("the server failed to answer this request; it is logged", "server_error", 500)
        return
    for i, row in enumerate(rows):
        final = row["text"]
        rest = final[len(sent[i]):] if final.startswith(sent[i]) else ""
        if not final.startswith(sent[i]):  # cannot happen with a decoder that decodes prefixes as prefixes
            log.warning("stream of %s row %d diverged from its final text", entry.name, i)
        if rest:
            yield events.chunk(i, rest)
        yield events.chunk(i, "", row["finish_reason"])
    if req.include_usage:
        yield events.usage(sum(r["prompt_tokens"] for r in rows), sum(r["completion_tokens"] for r in rows))
    yield DONE
