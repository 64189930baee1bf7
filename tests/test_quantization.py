"""QLoRA on a 4-bit NF4 base: load, train LoRA over frozen 4-bit weights, save a plain adapter, reload it densely."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from zoo.errors import QuantizationUnavailable
from zoo.models.quantization import (
    cpu_4bit_status,
    four_bit_config,
    is_quantized,
    load_4bit,
    quantized_bytes,
)

bnb = pytest.importorskip("bitsandbytes")
CAN_4BIT = torch.cuda.is_available() or cpu_4bit_status()[0]
needs_4bit = pytest.mark.skipif(not CAN_4BIT, reason=f"no CUDA and no CPU 4-bit here: {cpu_4bit_status()[1]}")
LORA = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")


def four_bit_snapshot(model) -> dict[str, torch.Tensor]:
    """The packed 4-bit values and block scales of every quantized weight."""
    snap = {}
    for name, param in model.named_parameters():
        if isinstance(param, bnb.nn.Params4bit):
            snap[name] = param.data.clone()
            snap[name + ".absmax"] = param.quant_state.absmax.clone()
    return snap


def train_steps(model, batch: dict, steps: int) -> list[float]:
    """Plain AdamW on one fixed batch, as the Trainer would, with an eval pass in the middle (as evaluation does)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for step in range(steps):
        model.train()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if step == steps // 2:
            model.eval()
            with torch.no_grad():
                model(**batch)  # on CPU this once repacked the 4-bit weights, and the next training step failed
    return losses


def qlora_round_trip(auto_class, base_path, tmp_path, batch, task_type, **load_kwargs):
    """Load 4-bit, train LoRA, save; returns what the assertions need."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    torch.manual_seed(0)  # the fresh classification head must come out the same on the dense base later
    model = load_4bit(auto_class, base_path, four_bit_config(), **load_kwargs)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    dense_bytes = sum(m.in_features * m.out_features * 4 for m in layers)
    model.eval()
    with torch.no_grad():
        base_logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(task_type=task_type, **LORA))
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    frozen_before = four_bit_snapshot(model)
    losses = train_steps(model, batch, steps=8)
    model.save_pretrained(tmp_path / "adapter")
    model.eval()
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return dict(model=model, layers=layers, dense_bytes=dense_bytes, losses=losses, lora_before=lora_before,
                frozen_before=frozen_before, logits=logits, base_logits=base_logits)


def assert_trained_lora_only(run):
    model = run["model"]
    assert run["losses"][-1] < run["losses"][0] - 0.05, run["losses"]
    lora_after = dict(model.named_parameters())
    assert all(p.dtype == torch.float32 for n, p in lora_after.items() if "lora_" in n)
    assert any(not torch.equal(lora_after[n].detach(), before) for n, before in run["lora_before"].items())
    frozen_after = four_bit_snapshot(model)
    assert frozen_after.keys() == run["frozen_before"].keys()
    assert all(torch.equal(frozen_after[n], run["frozen_before"][n]) for n in frozen_after)


def assert_adapter_transfers_to_dense_base(run, auto_class, base_path, tmp_path, batch, **load_kwargs):
    """The saved adapter is plain PEFT LoRA: it loads on the unquantized base and moves the logits the same way."""
    from peft import PeftModel

    folder = tmp_path / "adapter"
    assert sorted(p.name for p in folder.iterdir() if p.name != "README.md") == [
        "adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and "quantization_config" not in config
    torch.manual_seed(0)
    dense = auto_class.from_pretrained(base_path, **load_kwargs)
    dense.eval()
    with torch.no_grad():
        dense_base = dense(**batch)
    tuned = PeftModel.from_pretrained(dense, folder)
    tuned.eval()
    with torch.no_grad():
        dense_tuned = tuned(**batch)
    quant_delta = (run["logits"] - run["base_logits"]).flatten()
    dense_delta = (dense_tuned.logits - dense_base.logits).flatten()
    cosine = torch.nn.functional.cosine_similarity(quant_delta, dense_delta, dim=0).item()

    def relative(a, b):
        return ((a - b).norm() / b.norm()).item()

    rounding = relative(run["base_logits"], dense_base.logits)  # NF4 rounding alone, before any adapter
    after = relative(run["logits"], dense_tuned.logits)
    gain_quant, gain_dense = run["losses"][0] - run["losses"][-1], (dense_base.loss - dense_tuned.loss).item()
    print(f"{base_path.name}: logits relative difference 4-bit vs dense {rounding:.3f} before the adapter, "
          f"{after:.3f} with it; adapter delta cosine {cosine:.3f}; "
          f"loss gain on 4-bit {gain_quant:.3f}, on dense {gain_dense:.3f}")
    # What the adapter learned on the 4-bit base helps the dense base at least half as much.
    assert gain_dense > gain_quant / 2
    # It moves the logits the same way on both bases, and adds little to the gap NF4 rounding already made.
    assert cosine > 0.7 and after < 1.5 * rounding + 0.05


def test_four_bit_config_is_qlora_nf4_with_double_quant():
    config = four_bit_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    expected = torch.float32 if not torch.cuda.is_available() else (torch.bfloat16, torch.float16)
    assert config.bnb_4bit_compute_dtype in (expected if isinstance(expected, tuple) else (expected,))
    assert four_bit_config(bnb_4bit_quant_type="fp4").bnb_4bit_quant_type == "fp4"


def test_plain_models_are_not_quantized():
    assert not is_quantized(torch.nn.Linear(4, 4)) and quantized_bytes(torch.nn.Linear(4, 4)) == 0


def test_cpu_probe_reports_a_reason():
    ok, reason = cpu_4bit_status()
    assert isinstance(ok, bool) and "bitsandbytes" in reason


def test_load_4bit_without_cpu_support_says_to_train_lora(tiny_llama, monkeypatch):
    from transformers import AutoModelForCausalLM

    import zoo.models.quantization as quantization

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(quantization, "cpu_4bit_status", lambda: (False, "no CPU kernel in this build"))
    with pytest.raises(QuantizationUnavailable, match="no CPU kernel in this build.*LoRA recipe instead"):
        load_4bit(AutoModelForCausalLM, tiny_llama, four_bit_config())


def test_load_4bit_without_bitsandbytes_says_how_to_install(tiny_llama, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    with pytest.raises(QuantizationUnavailable, match="pip install 'bitsandbytes"):
        load_4bit(AutoModelForCausalLM, tiny_llama, four_bit_config())


def test_load_4bit_refuses_an_8bit_config(tiny_llama):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    with pytest.raises(QuantizationUnavailable, match="load_in_4bit=True"):
        load_4bit(AutoModelForCausalLM, tiny_llama, BitsAndBytesConfig(load_in_8bit=True))


@needs_4bit
def test_qlora_causal_lm_trains_lora_over_frozen_4bit_base(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    ids = torch.randint(5, 1200, (8, 24), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids}
    run = qlora_round_trip(AutoModelForCausalLM, tiny_llama, tmp_path, batch, "CAUSAL_LM")
    layers = run["layers"]
    assert len(layers) == 2 * 7  # q k v o gate up down in each of the 2 blocks
    assert all(m.weight.dtype == torch.uint8 and isinstance(m.weight, bnb.nn.Params4bit) for m in layers)
    base = run["model"].get_base_model()
    assert base.is_loaded_in_4bit and is_quantized(run["model"])
    assert type(base.lm_head) is torch.nn.Linear  # tied to the embeddings: stays dense
    assert quantized_bytes(base) < run["dense_bytes"] / 2  # values are 1/8; codebooks dominate at this tiny size
    assert_trained_lora_only(run)
    assert_adapter_transfers_to_dense_base(run, AutoModelForCausalLM, tiny_llama, tmp_path, batch)


@needs_4bit
def test_qlora_classifier_keeps_its_fresh_head_dense(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    ids = torch.randint(5, 1500, (8, 16), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1] * 4)}
    run = qlora_round_trip(AutoModelForSequenceClassification, tiny_bert, tmp_path, batch, "SEQ_CLS", num_labels=2)
    base = run["model"].get_base_model()
    # transformers' own default made BERT's classifier a Linear4bit that nothing quantized (its forward then failed)
    assert "classifier" in base.config.quantization_config.llm_int8_skip_modules
    assert type(base.classifier.original_module) is torch.nn.Linear
    assert base.classifier.original_module.weight.dtype == torch.float32
    assert len(run["layers"]) == 2 * 6 + 1  # q k v, attention output, intermediate, output; the pooler
    assert_trained_lora_only(run)
    assert_adapter_transfers_to_dense_base(run, AutoModelForSequenceClassification, tiny_bert, tmp_path, batch,
                                           num_labels=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the standard transformers CUDA path needs a CUDA GPU")
def test_qlora_on_cuda_takes_the_standard_path(tiny_llama):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    model = load_4bit(AutoModelForCausalLM, tiny_llama, four_bit_config())
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(m.support_avx512bf16_for_cpu == bnb.functional.has_avx512bf16()
               for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))  # untouched on CUDA
    model = get_peft_model(prepare_model_for_kbit_training(model), LoraConfig(task_type="CAUSAL_LM", **LORA))
    ids = torch.randint(5, 1200, (4, 24), device="cuda")
    losses = train_steps(model, {"input_ids": ids, "labels": ids}, steps=6)
    assert losses[-1] < losses[0]
