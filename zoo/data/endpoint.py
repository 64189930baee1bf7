"""Where the Hugging Face Hub is (``HF_ENDPOINT``) and whether it answers now (one quick probe per process)."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@functools.lru_cache(maxsize=None)
def _reachable(endpoint: str) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=3):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """True when the Hub endpoint accepts a TCP connection (one quick probe per process), unless offline mode is set."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    return _reachable(hub_endpoint())


