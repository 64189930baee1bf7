"""What the benches share: the environment they run in (offline, quiet tokenizers, the data mirror beside the
checkout, this checkout importable), set when this module is imported, and starting `zoo serve` or `zoo demo` on a
loopback port.

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench._common import ROOT, start_zoo  # noqa: E402  (sets the environment)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if not os.environ.get("ZOO_DATA_DIR") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["ZOO_DATA_DIR"] = str(ROOT.parent / "shared" / "data")  # the mirror beside the checkout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_zoo(home: Path, command: str, *options: str, wait: float = 120.0, env: dict | None = None):
    """``zoo <command> --hub local --port P *options`` over the local hub in ``home``; returns (process, url) once
    it answers (serve: ``/health``; demo: its address printed), or exits with its log."""
    import httpx

    port = free_port()
    path = home / f"{command}-{port}.log"
    # The child appends (O_APPEND writes land at the end whatever the offset) and this process reads through a
    # handle of its own: with one shared handle, a seek here moved where the child's next line was written.
    with open(path, "ab") as sink:
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "zoo"), command, "--hub", "local", "--port", str(port),
                                 *options],
                                env={**os.environ, "ZOO_HOME": str(home), "HF_TOKEN": "", **(env or {})},
                                stdout=sink, stderr=subprocess.STDOUT)
    log = open(path, encoding="utf-8", errors="replace")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    seen = ""  # the log is read on from where the last look stopped (this handle's own offset), not from its start
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"zoo {command} {' '.join(options)} exited:\n{log.read()[-3000:]}")
        if command == "demo":
            seen = seen[-len(url):] + log.read()  # the address may straddle two looks
            if url in seen:
                return proc, url + "/"
        else:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"zoo {command} {' '.join(options)} did not start within {wait:g} s")
