#!/usr/bin/env bash
# The main job on the embedded defaults, offline: train the SST-2 LoRA adapter on MiniLM with the
# full training set, publish it to the local hub, load it back by name and predict.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZOO_DATA_DIR=${ZOO_DATA_DIR:-../shared/data}
.venv/bin/zoo train recipes/sst2_lora.py --push --hub local "$@"
.venv/bin/python -c 'import zoo; print(zoo.load("sentence-transformers/all-MiniLM-L6-v2", adapter="sst2-lora").predict(["a gripping, beautifully acted film"]))'
