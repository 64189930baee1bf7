"""Reading JSON that strangers wrote (an adapter's zoo.json and adapter_config.json): bounded, and every number
in it a plain finite one.

Python's ``json`` reads ``NaN`` and ``Infinity``, ``1e400`` (as infinity), integers of thousands of digits
(``math.isfinite`` and ``float()`` then raise OverflowError) and arrays nested deeper than the interpreter's
stack (RecursionError). Each of these became a traceback, or a NaN answer, somewhere far from the file. Here
they are refused where the file is read, with the caller's error class.

    >>> number_problem({"metrics": {"validation": {"accuracy": 10 ** 400}}})
    'metrics.validation.accuracy is not a finite number below 2**63'
    >>> number_problem({"a": [1, 2.5, {"b": -3}]}) is None
    True
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 4 << 20  # a zoo.json with samples and history is ~100 KiB; adapter_config.json ~1 KiB
LARGEST = 1 << 63         # no count, size, step or metric of a real run is larger
MAX_DEPTH = 32            # records nest 4 levels deep; recipes a few more


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def load_json(text: str, where: str, error: type[Exception]) -> Any:
    """``json.loads`` that refuses NaN/Infinity, and raises ``error`` for anything it cannot read."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise error(f"{where} is nested too deeply to be a record") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, integers over Python's digit limit
        raise error(f"{where} is not valid JSON ({str(e)[:120]})") from None


def read_json(path: Path, where: str, error: type[Exception], limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON file ``path`` (at most ``limit`` bytes, UTF-8), every number in it finite and bounded."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(f"{where} is {size:,} bytes; a record is at most {limit:,}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{where} is not UTF-8 text (byte {e.start})") from None
    value = load_json(text, where, error)
    problem = number_problem(value)
    if problem:
        raise error(f"{where}: {problem}")
    return value


def finite(value) -> bool:
    """A number (not a bool) that is finite and below 2**63 in size; safe for integers of any size."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        return False
    return -LARGEST < value < LARGEST  # exact for ints of any size: no conversion to float


def number_problem(value: Any, path: str = "", depth: int = 0) -> str | None:
    """What is wrong with the first bad number anywhere in ``value`` (dicts, lists, tuples), or None.

    A number must be finite and below 2**63 in size (``finite``); nesting deeper than ``MAX_DEPTH`` is refused."""
    if depth > MAX_DEPTH:
        return f"{path or 'the value'} is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return None if finite(value) else f"{path or 'the value'} is not a finite number below 2**63"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        name = "".join(c if c.isprintable() else "?" for c in str(key)[:40])  # shown in messages: printable, short
        problem = number_problem(item, f"{path}.{name}" if path else name, depth + 1)
        if problem:
            return problem
    return None
