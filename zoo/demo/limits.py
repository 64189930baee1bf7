"""The demo's bound on request bodies, enforced before Gradio parses anything (an ASGI middleware).

Gradio caps uploaded files only, and only after parsing; a JSON body it reads whole, so refused
oversized requests stayed resident (30 refused 50 MB requests left the demo at 2.3 GB).
"""

from __future__ import annotations


def body_limit(max_chars: int, *, texts: int = 2) -> int:
    """The largest request body the demo reads: ``texts`` fields of ``max_chars`` characters that JSON escapes
    to 12 bytes each (an emoji is "\\ud83d\\ude00"), plus 32 KiB for the ids and Gradio's envelope; at least 64 KiB.

    >>> body_limit(2000)  # 12 x 2 x 2,000 + 32,768
    80768
    """
    return max(64 * 1024, 12 * texts * max_chars + 32 * 1024)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with 413 before anything reads it.

    A declared Content-Length over the limit is refused unread; a body without one (chunked) is counted as it
    streams and refused once past the limit, so no more than the limit and one chunk is ever held. Gradio
    caps uploaded files only, after parsing; a JSON body it reads whole (30 refused 50 MB requests left the
    demo at 2.3 GB)."""

    def __init__(self, app, *, limit: int, refusal=None):
        self.app, self.limit = app, limit
        self.refusal = refusal  # limit -> the 413's JSON body (bytes); the demo's own by default

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(send)
        seen, refused, started = 0, False, False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # the app is told the client left; it stops reading and its answer is dropped
                    refused = True
                    if not started:
                        await self.refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def answer(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not refused:  # what the app raised when its body was cut short is ours, not a fault
                raise

    async def refuse(self, send):
        body = self.refusal(self.limit) if self.refusal else (
            f'{{"error": "request body over {self.limit:,} bytes: this demo reads at most that much per request '
            f'(set ZOO_DEMO_MAX_BODY to change it)"}}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
