"""The server's requests, checked once, here, by allow-list: every field is named, typed and bounded, and a
request that is not exactly what an endpoint takes is refused with a message naming the field and what it
must be. Nothing past this module sees a raw request body.

    >>> classify_request({"adapter": "sst2-lora", "inputs": ["a gripping film"]}, max_chars=2000)
    ClassifyRequest(adapters=['sst2-lora'], inputs=['a gripping film'])
    >>> completion_request({"model": "alpaca-lora", "prompt": "Name a colour.", "max_tokens": 8,
    ...                     "temperature": 0}, max_chars=2000).settings
    {'max_new_tokens': 8, 'do_sample': False}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from zoo.config.generation import MIN_TEMPERATURE
from zoo.data.untrusted import finite
from zoo.demo.entries import MAX_ID_CHARS, MAX_NEW_TOKENS, check_text, kind_of
from zoo.errors import BadInput

MAX_INPUTS = 64  # inputs (or prompts) in one request: larger jobs are several requests, which coalesce anyway


def parse_json(body: bytes) -> dict:
    """The body as a JSON object (UTF-8), or BadInput saying why not."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadInput("the request body is not UTF-8 text; send JSON") from None
    except (ValueError, RecursionError) as e:
        raise BadInput(f"the request body is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(value, dict):
        raise BadInput(f"the request body must be a JSON object, got {kind_of(value)}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _only(body: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:40] + "..."
        raise BadInput(f"{where}: unknown field {shown!r}; the fields are: {', '.join(sorted(allowed))}")


def _name(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{what} must be an adapter's name (text), got {kind_of(value)}; GET /v1/models lists them")
    return check_text(value, what, max_chars=MAX_ID_CHARS)


def _input(value, i: int, max_chars: int):
    """A text, a [text, text_pair] pair, or an {field: text} object (an instruction and its input)."""
    where = f"input {i}"
    if isinstance(value, str):
        return check_text(value, where, max_chars=max_chars)
    if isinstance(value, list):
        if len(value) != 2:
            raise BadInput(f"{where}: a pair is [text, text_pair], two texts; got a list of {len(value)}")
        return (check_text(value[0], f"{where}[0]", max_chars=max_chars),
                check_text(value[1], f"{where}[1]", max_chars=max_chars))
    if isinstance(value, dict):
        if not 1 <= len(value) <= 4:
            raise BadInput(f"{where}: an input object names 1 to 4 fields, e.g. {{\"instruction\": ..., \"input\": ...}}")
        return {check_text(k, f"{where}: a field name", max_chars=64): check_text(v, f"{where}.{k[:40]}", max_chars=max_chars,
                                                                               required=False)
                for k, v in value.items()}
    raise BadInput(f"{where} must be a text, a [text, text_pair] pair or an object of fields, got {kind_of(value)}")


def _inputs(value, what: str, max_chars: int) -> list:
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise BadInput(f"{what} must be a non-empty list of inputs, got {kind_of(value)}")
    if len(value) > MAX_INPUTS:
        raise BadInput(f"{what} holds {len(value)} inputs; at most {MAX_INPUTS} per request (send several requests)")
    return [_input(v, i, max_chars) for i, v in enumerate(value)]


@dataclass
class ClassifyRequest:
    adapters: list[str]  # one per input
    inputs: list


def classify_request(body: dict, *, max_chars: int) -> ClassifyRequest:
    """``{"adapter": NAME, "inputs": [...]}`` or ``{"adapters": [NAME per input], "inputs": [...]}``."""
    _only(body, {"adapter", "adapters", "inputs"}, "/v1/classify")
    inputs = _inputs(body.get("inputs"), "inputs", max_chars)
    if ("adapter" in body) == ("adapters" in body):
        raise BadInput("/v1/classify: give either \"adapter\" (one for every input) or \"adapters\" (one per input)")
    if "adapter" in body:
        return ClassifyRequest([_name(body["adapter"], "adapter")] * len(inputs), inputs)
    names = body["adapters"]
    if not isinstance(names, list) or len(names) != len(inputs):
        raise BadInput(f"adapters must be a list of one name per input ({len(inputs)}), got "
                       f"{kind_of(names) if not isinstance(names, list) else f'a list of {len(names)}'}")
    return ClassifyRequest([_name(n, f"adapters[{i}]") for i, n in enumerate(names)], inputs)


# OpenAI's fields that the zoo takes, and those it takes only at their neutral value (anything else is refused
# by name rather than silently ignored: a client asking for n=3 must not get one answer and believe it got three).
_SAMPLING = {"max_tokens", "temperature", "top_p", "stream", "stream_options", "user", "seed"}
_NEUTRAL = {"n": 1, "best_of": 1, "echo": False, "logprobs": None, "top_logprobs": None, "presence_penalty": 0,
            "frequency_penalty": 0, "stop": None, "suffix": None, "logit_bias": None}


@dataclass
class CompletionRequest:
    model: str
    inputs: list  # the prompts (completions) or the one user message (chat), as the entry's input
    settings: dict = field(default_factory=dict)  # registry generation settings
    stream: bool = False
    include_usage: bool = False
    chat: bool = False


def completion_request(body: dict, *, max_chars: int, chat: bool = False) -> CompletionRequest:
    """``/v1/completions`` or ``/v1/chat/completions``, as OpenAI's clients send them."""
    where = "/v1/chat/completions" if chat else "/v1/completions"
    own = {"model", "messages", "max_completion_tokens"} if chat else {"model", "prompt"}
    _only(body, own | _SAMPLING | set(_NEUTRAL), where)
    model = _name(body.get("model"), "model")
    for key, neutral in _NEUTRAL.items():
        value = body.get(key)
        if not (value is None or (value == neutral and isinstance(value, bool) == isinstance(neutral, bool))):
            raise BadInput(f"{where}: {key} is not supported by the zoo's server (only {json.dumps(neutral)}); "
                           f"leave it out")
    if chat:
        inputs = [_message(body.get("messages"), max_chars)]
    else:
        inputs = _inputs(body.get("prompt"), "prompt", max_chars)
    settings: dict = {}
    limit = body.get("max_completion_tokens") if chat and body.get("max_completion_tokens") is not None else body.get(
        "max_tokens")
    if limit is not None:
        settings["max_new_tokens"] = _whole(limit, "max_tokens", 1, MAX_NEW_TOKENS)
    temperature = body.get("temperature")
    if temperature is not None:  # OpenAI's 0 is greedy; unset keeps the entry's own settings (zoo.json)
        t = _number(temperature, "temperature", 0.0, 2.0)  # below MIN_TEMPERATURE: greedy, as vLLM does below 1e-5
        settings.update({"do_sample": False} if t < MIN_TEMPERATURE else {"do_sample": True, "temperature": t})
    top_p = body.get("top_p")
    if top_p is not None:
        p = _number(top_p, "top_p", 0.0, 1.0)
        if p <= 0:
            raise BadInput("top_p must be greater than 0 (1 keeps every token)")
        if settings.get("do_sample", True) and p < 1:
            settings.update(do_sample=True, top_p=p)
    if body.get("seed") is not None:
        _whole(body["seed"], "seed", 0, 2**63 - 1)  # taken for compatibility; sampling in a shared batch has no seed
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise BadInput(f"user must be text, got {kind_of(body['user'])}")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadInput(f"stream must be true or false, got {kind_of(stream)}")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage", "continuous_usage_stats"}:
        raise BadInput("stream_options takes {\"include_usage\": true|false} only")
    usage = options.get("include_usage", False)
    if not isinstance(usage, bool):
        raise BadInput(f"stream_options.include_usage must be true or false, got {kind_of(usage)}")
    return CompletionRequest(model, inputs, settings, stream, usage, chat)


def _message(messages, max_chars: int) -> str:
    """The one user message of a chat: the zoo's adapters answer one instruction, as they were trained."""
    if not isinstance(messages, list) or not messages:
        raise BadInput(f"messages must be a non-empty list of {{\"role\", \"content\"}} objects, got {kind_of(messages)}")
    if len(messages) != 1:
        raise BadInput(f"messages holds {len(messages)} messages; the zoo's adapters were trained on one instruction "
                       "each, without system prompts or earlier turns: send one {\"role\": \"user\", \"content\": ...}")
    m = messages[0]
    if not isinstance(m, dict) or set(m) - {"role", "content", "name"}:
        raise BadInput("a message is {\"role\": \"user\", \"content\": TEXT}")
    if m.get("role") != "user":
        raise BadInput("the message's role must be \"user\"")
    content = m.get("content")
    if isinstance(content, list):  # the content-parts form: text parts only
        if not all(isinstance(p, dict) and p.get("type") == "text" and set(p) <= {"type", "text"} for p in content):
            raise BadInput("message content parts must be {\"type\": \"text\", \"text\": ...}; images and audio "
                           "are not supported")
        content = "".join(p.get("text") if isinstance(p.get("text"), str) else "\0" for p in content)
        if "\0" in content:
            raise BadInput("a text part's text must be text")
    return check_text(content, "the message's content", max_chars=max_chars)


def _number(value, what: str, low: float, high: float) -> float:
    if not finite(value):  # NaN, infinity, 1e400, a bool, text; an integer of 400 digits (no float conversion)
        raise BadInput(f"{what} must be a number from {low:g} to {high:g}, got {kind_of(value)}")
    if not low <= value <= high:
        raise BadInput(f"{what} must be from {low:g} to {high:g}, got {str(value)[:24]}")
    return float(value)


def _whole(value, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise BadInput(f"{what} must be a whole number from {low} to {high}, got {kind_of(value)}")
    if not low <= value <= high:
        shown = f"{value:g}" if abs(value) < 1e12 else "a number of over 12 digits"
        raise BadInput(f"{what} must be from {low} to {high}, got {shown}")
    return int(value)
