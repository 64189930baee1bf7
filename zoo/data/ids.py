"""Identifiers that come from strangers: adapter names, base model ids, Hub repo ids and revisions.

They end up as folder names, URL paths and page text, so each is checked once, where it enters
(zoo.json, ``zoo.load``, ``Zoo.add``, a hub listing, the CLI), by allow-list: ASCII only (no
look-alike letters), bounded in length, and matched whole (``fullmatch``: no trailing newline).
The rules are the Hugging Face Hub's own for repo ids: letters, digits, ``_``, ``-`` and ``.``;
no ``--`` or ``..``; ``-`` and ``.`` neither start nor end a name; at most 96 characters. Since a Hub
id never holds ``--``, the local hub's folder name ``org--name`` stands for exactly one base.

    >>> name_problem("sst2-lora") is None, name_problem("../x") is not None, name_problem("a\\n") is not None
    (True, True, True)
    >>> base_problem("FacebookAI/roberta-large") is None, base_problem("org/model/") is not None
    (True, True)
    >>> base_problem("org--model") is not None, base_problem("/tmp/models/tiny") is None
    (True, True)
    >>> shown_text("negative"), shown_text("\\x1b[2Jred"), shown_text(""), shown_text(7)
    (True, False, False, False)
"""

from __future__ import annotations

import re

MAX_NAME = 96       # the Hub's limit on a repo name (and so on an adapter name, pushed as user/name)
MAX_PATH = 1024     # a local base folder's path
MAX_REVISION = 128
MAX_SHOWN = 200     # a task id, method name or label a stranger wrote, shown on pages and terminals

_SEGMENT = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,%d}[A-Za-z0-9_])?" % (MAX_NAME - 2), re.ASCII)
_PATH_PART = re.compile(r"[A-Za-z0-9_.+@=,-]{1,255}", re.ASCII)
_REVISION = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*", re.ASCII)


def shown_text(value) -> bool:
    """Whether ``value`` is text a stranger may put on a page or a terminal as a task, method or label name:
    1 to ``MAX_SHOWN`` characters, all printable (no control characters, line breaks or escape sequences)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SHOWN and value.isprintable()


def _shown(value) -> str:
    return repr(value[:80] if isinstance(value, str) else value)


def segment_problem(value) -> str | None:
    """Why ``value`` is not a Hub name (one segment of a repo id), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long (at most {MAX_NAME})"
    if not _SEGMENT.fullmatch(value):
        return "may hold only ASCII letters, digits, '_', '-' and '.', and may not start or end with '-' or '.'"
    if "--" in value or ".." in value:
        return "may not contain '--' or '..'"
    return None


def name_problem(value) -> str | None:
    """Why ``value`` is not a plain adapter name, or None."""
    problem = segment_problem(value)
    return f"is not a plain name: it {problem}" if problem else None


def repo_problem(value) -> str | None:
    """Why ``value`` is not a Hub repo id (``namespace/name``), or None."""
    if not isinstance(value, str) or value.count("/") != 1:
        return "must be NAMESPACE/NAME"
    for part in value.split("/"):
        problem = segment_problem(part)
        if problem:
            return f"part {part[:40]!r} {problem}"
    return None


def revision_problem(value) -> str | None:
    """Why ``value`` is not a revision (a commit sha, branch or tag), or None."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REVISION or not _REVISION.fullmatch(value):
        return f"must be 1 to {MAX_REVISION} ASCII letters, digits, '_', '-', '.' and '/'"
    if ".." in value:
        return "may not contain '..'"
    return None


def is_local_path(base: str) -> bool:
    return isinstance(base, str) and base.startswith("/")


def base_problem(value) -> str | None:
    """Why ``value`` is neither a Hub model id (``name`` or ``org/name``) nor an absolute local folder, or None."""
    problem = _base_problem(value)
    return f"is not a model id or a plain folder: it {problem}" if problem else None


def _base_problem(value) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if is_local_path(value):
        if len(value) > MAX_PATH:
            return f"is a path of {len(value)} characters (at most {MAX_PATH})"
        parts = value[1:].split("/")
        if any(p in (".", "..") or not _PATH_PART.fullmatch(p) for p in parts):
            return ("holds a '.' or '..' part, a double or trailing slash, or characters other than ASCII "
                    "letters, digits and '_.+@=,-'")
        return None
    if value.count("/") > 1:
        return "has more than one '/': a Hub id is NAME or ORG/NAME, a local folder an absolute path"
    for part in value.split("/"):
        problem = segment_problem(part)
        if problem:
            return f"part {part[:40]!r} {problem}" if "/" in value else problem
    return None


def check(problem: str | None, what: str, value, error: type[Exception]) -> None:
    """Raise ``error`` naming ``what`` and the value when there is a problem."""
    if problem:
        raise error(f"{what} {_shown(value)} {problem}")
