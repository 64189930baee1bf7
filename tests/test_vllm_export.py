"""``zoo export vllm``: the command for vLLM's OpenAI server over the zoo's causal LoRA entries (as the CLI prints it),
and every entry vLLM cannot serve refused by name with its reason. vLLM itself is not needed here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.test_server import ZOO
from zoo.hub.backends import LocalBackend
from zoo.hub.local import LocalHub
from zoo.server.vllm import plans, vllm_rank


def variant(hub: LocalHub, source, name: str, **config) -> None:
    """A copy of a published causal LoRA under another name, its adapter_config.json changed."""
    folder = Path(tempfile.mkdtemp()) / name
    shutil.copytree(source, folder)
    record = json.loads((folder / "zoo.json").read_text())
    record["name"] = name
    (folder / "zoo.json").write_text(json.dumps(record))
    adapter = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**adapter, **config}))
    hub.push(folder)
    shutil.rmtree(folder)


def test_export_vllm_serves_lora_entries_and_refuses_the_rest_by_name(space_home, tmp_path, tiny_llama):
    home = tmp_path / "home"
    shutil.copytree(space_home, home, symlinks=True)
    hub = LocalHub(home / "hub")
    alpaca = hub.find(str(tiny_llama), "alpaca-lora")
    variant(hub, alpaca, "alpaca-dora", use_dora=True)
    variant(hub, alpaca, "alpaca-saves-head", modules_to_save=["lm_head"])
    variant(hub, alpaca, "alpaca-embeddings", target_modules=["embed_tokens"])

    [plan] = plans(LocalBackend(hub))
    assert plan.modules == {"alpaca-lora": str(alpaca)}
    assert plan.model == str(tiny_llama.resolve()) and plan.base.endswith(tiny_llama.name)
    rank = json.loads((alpaca / "adapter_config.json").read_text())["r"]
    assert plan.ranks == {"alpaca-lora": rank}
    assert "in-context" in plan.refused["sst2-zero-shot-icl"]
    assert "DoRA" in plan.refused["alpaca-dora"] and "modules_to_save" in plan.refused["alpaca-saves-head"]
    assert "embed_tokens" in plan.refused["alpaca-embeddings"]
    record = json.loads((alpaca / "zoo.json").read_text())
    assert plan.sampling["alpaca-lora"]["max_tokens"] == record["generation"]["max_new_tokens"]
    assert plan.sampling["alpaca-lora"]["temperature"] == 0.0  # greedy, as zoo generate

    command = plan.command(port=8123, python="/venv/bin/python")
    assert command[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--lora-modules") + 1] == f"alpaca-lora={alpaca}"
    assert command[command.index("--max-lora-rank") + 1] == str(vllm_rank(rank)) and "--enable-lora" in command

    out = subprocess.run([ZOO, "export", "vllm", "--hub", "local", "--port", "8123", "--python", "/venv/bin/python"],
                         env={**os.environ, "ZOO_HOME": str(home)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == plan.shell(port=8123, python="/venv/bin/python")
    assert "# not on vLLM: alpaca-dora: DoRA" in out.stderr and "sst2-lora" not in out.stderr


def test_vllm_ranks_round_up_to_what_vllm_takes():
    assert [vllm_rank(r) for r in (1, 2, 8, 9, 16, 33, 256)] == [1, 8, 8, 16, 16, 64, 256]
