"""adapter-zoo's demo Space: try every published adapter, ask all tasks at once, compare methods, see the results.

On a Hugging Face Space (SPACE_ID is set) the catalogue is the Hub's adapter-zoo adapters; elsewhere the
local hub, or the Hub when a token is configured; ZOO_HUB=hf|local chooses. Settings: ZOO_DEMO_MAX_CHARS
(longest text per field, default 2000), ZOO_DEMO_CONCURRENCY (requests computed at once, default 8),
ZOO_DEMO_MAX_BODY (largest request body read, in bytes; default from ZOO_DEMO_MAX_CHARS: 80,768 for 2000).

    python spaces/app.py        # or: zoo demo
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if (HERE.parent / "zoo" / "__init__.py").is_file():  # run from a checkout: its zoo/; a Space installs the wheel
    sys.path.insert(0, str(HERE.parent))

import zoo  # noqa: E402
from zoo.demo.app import CONCURRENCY, build_app, launch  # noqa: E402
from zoo.demo.catalogue import Catalogue  # noqa: E402
from zoo.demo.entries import MAX_CHARS  # noqa: E402

hub = None if os.environ.get("ZOO_HUB") else ("hf" if os.environ.get("SPACE_ID") else None)
max_chars = os.environ.get("ZOO_DEMO_MAX_CHARS", str(MAX_CHARS)).strip()
if not max_chars.isdigit() or int(max_chars) < 1:
    sys.exit(f"ZOO_DEMO_MAX_CHARS must be a whole number of characters, got {max_chars[:40]!r}")
catalogue = Catalogue(hub, max_chars=int(max_chars), strict=False)
demo = build_app(catalogue, concurrency=int(os.environ.get("ZOO_DEMO_CONCURRENCY", CONCURRENCY)))

if __name__ == "__main__":
    print(f"adapter-zoo demo: {len(catalogue.entries)} entries on {catalogue.describe()} "
          f"(adapter-zoo {zoo.__version__} from {Path(zoo.__file__).parent})", flush=True)
    launch(demo, host=None, port=None)  # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as a Space sets them
