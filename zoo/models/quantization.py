"""QLoRA's 4-bit base: load a model with bitsandbytes NF4 weights that LoRA can train on, on CUDA or on CPU.

The recipe (Dettmers et al., 2023) is: base in 4-bit NF4 with double quantization, then
``peft.prepare_model_for_kbit_training``, then LoRA. On CUDA this module uses transformers' own path
unchanged, with two corrections that hold on every device (bitsandbytes 0.50, transformers 5.x):

- A fresh head (``classifier``, ``score``) is kept in full precision. transformers' default skip list
  takes the *last parameter* of the model and strips ``.weight``; BERT's last parameter is
  ``classifier.bias``, so its head became a ``Linear4bit`` that nothing ever quantized (it is not in
  the checkpoint, where quantization happens), and its first forward failed with "FP4 quantization
  state not initialized" and an ``AssertionError`` in ``fix_4bit_weight_quant_state_from_module``.
- On CPU, bitsandbytes repacks a ``Linear4bit``'s weight in place for an AVX512-BF16 inference kernel
  the first time it runs in eval mode without grad. The repacked layout has no backward (the next
  training step fails) and needs out_features % 32 == 0 (a 16-wide k_proj fails at once), so the
  CPU path switches that repacking off; training and inference then both use dequantize-then-matmul.

    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    model = load_4bit(AutoModelForCausalLM, "HuggingFaceTB/SmolLM2-135M", four_bit_config())
    model = prepare_model_for_kbit_training(model)
    lora = LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
"""

from __future__ import annotations

import copy
import functools

import torch
from transformers import AutoConfig, BitsAndBytesConfig

from zoo.errors import QuantizationUnavailable

INSTALL_HINT = "pip install 'bitsandbytes>=0.46'"


def _bitsandbytes():
    try:
        import bitsandbytes
    except ImportError as error:
        raise QuantizationUnavailable(
            f"QLoRA needs bitsandbytes, which is not installed ({error}): {INSTALL_HINT}, "
            "or train the plain LoRA recipe instead"
        ) from error
    return bitsandbytes


def four_bit_config(**overrides) -> BitsAndBytesConfig:
    """QLoRA's 4-bit settings: NF4, double quantization, compute in bfloat16 on a GPU that has it, float32 on CPU.

    float32 on CPU: bitsandbytes' CPU training path dequantizes, then multiplies in the compute dtype, and
    bfloat16 there was only ~10% faster (SmolLM2-135M LoRA steps) while rounding every activation it touches.

    four_bit_config().bnb_4bit_quant_type
    'nf4'
    four_bit_config(bnb_4bit_compute_dtype=torch.float16).bnb_4bit_compute_dtype
    torch.float16
    """
    if torch.cuda.is_available():
        compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        compute_dtype = torch.float32
    settings = dict(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,  # quantizes the per-block scales too: ~0.4 bit/parameter saved
        bnb_4bit_compute_dtype=compute_dtype,
    )
    settings.update(overrides)
    return BitsAndBytesConfig(**settings)


@functools.lru_cache(maxsize=1)
def cpu_4bit_status() -> tuple[bool, str]:
    """Whether bitsandbytes can quantize, run and backpropagate through an NF4 Linear on this CPU, and if not why.

    Quantizes one 64x64 Linear, checks its output against the dequantized weight, and that gradients reach the input.

    ok, reason = cpu_4bit_status()
    isinstance(ok, bool) and isinstance(reason, str)
    True
    """
    try:
        bnb = _bitsandbytes()
    except QuantizationUnavailable as error:
        return False, str(error)
    try:
        generator = torch.Generator().manual_seed(0)
        dense = torch.nn.Linear(64, 64)
        with torch.no_grad():
            dense.weight.copy_(torch.randn(64, 64, generator=generator) / 8)
        layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, compress_statistics=True, quant_type="nf4")
        layer.load_state_dict(dense.state_dict())
        layer = layer.to("cpu")  # Params4bit quantizes on its first move to a device
        layer.support_avx512bf16_for_cpu = False
        if layer.weight.dtype != torch.uint8:
            return False, f"bitsandbytes {bnb.__version__} left the CPU weight unquantized ({layer.weight.dtype})"
        x = torch.randn(4, 64, generator=generator, requires_grad=True)
        y = layer(x)
        y.sum().backward()
        reference = x.detach() @ bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).T
        reference = reference + dense.bias.detach()
        if x.grad is None or not torch.isfinite(x.grad).all():
            return False, f"bitsandbytes {bnb.__version__} gives no usable gradient through a CPU Linear4bit"
        if not torch.allclose(y.detach(), reference, atol=1e-4, rtol=1e-4):
            return False, f"bitsandbytes {bnb.__version__} CPU 4-bit matmul disagrees with its own dequantized weight"
    except Exception as error:  # any failure here means "not on this machine", with the reason
        return False, f"bitsandbytes {bnb.__version__} cannot run NF4 on this CPU: {type(error).__name__}: {error}"
    return True, f"bitsandbytes {bnb.__version__} runs NF4 forward and backward on CPU"


def _modules_to_keep_dense(auto_class, path, from_pretrained_kwargs: dict) -> list[str]:
    """transformers' default skip list (tied and output embeddings), corrected, plus the task head off the backbone."""
    from transformers.quantizers.base import get_keys_to_not_convert

    config_kwargs = {k: v for k, v in from_pretrained_kwargs.items()
                     if k in ("num_labels", "id2label", "label2id", "local_files_only", "revision", "trust_remote_code",
                              "cache_dir", "token", "subfolder")}
    config = AutoConfig.from_pretrained(path, **config_kwargs)
    with torch.device("meta"):  # a skeleton only: no memory, no weights read
        skeleton = auto_class.from_config(config)
    keep = {key.removesuffix(".weight").removesuffix(".bias") for key in get_keys_to_not_convert(skeleton)}
    prefix = skeleton.base_model_prefix
    for name, module in skeleton.named_modules():
        if isinstance(module, torch.nn.Linear) and name and prefix and not name.startswith(prefix + "."):
            keep.add(name)  # lm_head, score, classifier(.dense/.out_proj): trained or fresh, never frozen 4-bit
    return sorted(keep)


def _four_bit_layers(model):
    bnb = _bitsandbytes()
    return [(name, module) for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]


def load_4bit(auto_class, path, quantization: BitsAndBytesConfig, **from_pretrained_kwargs):
    """``auto_class.from_pretrained(path)`` with 4-bit bitsandbytes weights whose Linear layers train on this machine.

    CUDA: transformers' standard path. CPU: the same load (quantization happens as each weight is read),
    with bitsandbytes' eval-time weight repacking switched off so training still works after an evaluation.
    The task head stays in full precision unless ``quantization.llm_int8_skip_modules`` says otherwise.

    from transformers import AutoModelForSequenceClassification
    model = load_4bit(AutoModelForSequenceClassification, "bert-base-uncased", four_bit_config(),
                      num_labels=2)
    is_quantized(model), type(model.classifier).__name__
    # -> (True, 'Linear')
    """
    if not getattr(quantization, "load_in_4bit", False):
        raise QuantizationUnavailable("load_4bit needs BitsAndBytesConfig(load_in_4bit=True); use four_bit_config()")
    bnb = _bitsandbytes()
    on_cuda = torch.cuda.is_available()
    if not on_cuda:
        ok, reason = cpu_4bit_status()
        if not ok:
            raise QuantizationUnavailable(f"QLoRA needs a CUDA GPU or a CPU that bitsandbytes supports: {reason}. "
                                          "Train the LoRA recipe instead")
        from_pretrained_kwargs.setdefault("device_map", {"": "cpu"})
    quantization = copy.deepcopy(quantization)  # the caller's config is theirs; the skip list below is per model
    if quantization.llm_int8_skip_modules is None:
        quantization.llm_int8_skip_modules = _modules_to_keep_dense(auto_class, path, from_pretrained_kwargs)
    model = auto_class.from_pretrained(path, quantization_config=quantization, **from_pretrained_kwargs)

    layers = _four_bit_layers(model)
    unquantized = [name for name, module in layers
                   if not (isinstance(module.weight, bnb.nn.Params4bit) and module.weight.bnb_quantized)]
    if unquantized:  # weights missing from the checkpoint are initialized fresh, never quantized
        raise QuantizationUnavailable(
            f"{path}: {len(unquantized)} layer(s) were made 4-bit but have no weights in the checkpoint to quantize "
            f"({', '.join(unquantized[:4])}); add them to BitsAndBytesConfig(llm_int8_skip_modules=[...])"
        )
    if not layers:
        raise QuantizationUnavailable(f"{path}: no nn.Linear layer became 4-bit; train the LoRA recipe instead")
    for _, module in layers:
        if module.weight.device.type == "cpu":
            module.support_avx512bf16_for_cpu = False  # the repacked layout has no backward (see module docstring)
    return model


def is_quantized(model) -> bool:
    """Whether ``model`` (or the base under a PeftModel) holds bitsandbytes 4-bit weights.

    is_quantized(torch.nn.Linear(2, 2))
    False
    """
    try:
        from bitsandbytes.nn import Params4bit
    except ImportError:
        return False
    return any(isinstance(p, Params4bit) and p.bnb_quantized for p in model.parameters())


def quantized_bytes(model) -> int:
    """Bytes the 4-bit weights hold in memory: the packed values plus their quantization state (scales, codebooks).

    quantized_bytes(torch.nn.Linear(2, 2))
    0
    """
    try:
        from bitsandbytes.nn import Params4bit
    except ImportError:
        return 0
    seen: dict[int, int] = {}  # by storage address: a tensor shared between layers counts once
    for param in model.parameters():
        if isinstance(param, Params4bit) and param.bnb_quantized:
            state = param.quant_state
            tensors = [param.data, state.absmax, state.code, state.offset]
            if state.state2 is not None:  # double quantization: the 8-bit scales' own scales and codebook
                tensors += [state.state2.absmax, state.state2.code]
            for tensor in tensors:
                if isinstance(tensor, torch.Tensor):
                    seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
    return sum(seen.values())
