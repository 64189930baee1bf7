#!/usr/bin/env bash
# Assembles a folder that deploys as a Hugging Face Space as it is: spaces/{app.py,README.md}, the adapter-zoo
# wheel built from this checkout (wheels/), and requirements.txt = the dependencies plus that wheel, which the
# Space installs like any package.   bash scripts/space_bundle.sh OUT && hf upload ORG/SPACE OUT . --repo-type space
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/space_bundle.sh OUT_FOLDER}
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
rm -rf "$out.tmp" && mkdir -p "$out.tmp/wheels"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r pyproject.toml README.md zoo "$src/"  # a clean copy: no stale build/ folder can leak into the wheel
find "$src" -name __pycache__ -type d -prune -exec rm -rf {} +
"$python" -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$out.tmp/wheels" "$src"
wheel=$(cd "$out.tmp/wheels" && ls adapter_zoo-*.whl)
cp spaces/app.py spaces/README.md "$out.tmp/"
{ grep -v '^#' spaces/requirements.txt; echo "./wheels/$wheel"; } > "$out.tmp/requirements.txt"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "space bundle: $out (app.py, README.md, requirements.txt, wheels/$wheel); deploy with: hf upload ORG/SPACE $out . --repo-type space"
