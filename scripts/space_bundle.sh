#!/usr/bin/env bash
# Assembles a folder that deploys as a Hugging Face Space as it is: spaces/{app.py,README.md,requirements.txt}
# and the zoo package beside app.py.   bash scripts/space_bundle.sh OUT && hf upload ORG/SPACE OUT . --repo-type space
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/space_bundle.sh OUT_FOLDER}
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cp spaces/app.py spaces/README.md spaces/requirements.txt "$out.tmp/"
cp -r zoo "$out.tmp/zoo"
find "$out.tmp" -name __pycache__ -type d -prune -exec rm -rf {} +
rm -rf "$out" && mv "$out.tmp" "$out"
echo "space bundle: $out ($(find "$out" -type f | wc -l) files); deploy with: hf upload ORG/SPACE $out . --repo-type space"
