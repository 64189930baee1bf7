"""Alpaca instruction tuning with QLoRA (4-bit NF4 base + LoRA r=64) on SmolLM2, as in the QLoRA report."""
from peft import LoraConfig
from transformers import BitsAndBytesConfig

from zoo import GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="alpaca-qlora",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    task="tatsu-lab/alpaca",
    prompt=PromptFormat(template="{instruction}\n\n{input}", template_no_input="{instruction}"),
    # The report's settings: r=64, alpha=16, dropout 0.1 on the attention and MLP projections.
    method=LoraConfig(task_type="CAUSAL_LM", r=64, lora_alpha=16, lora_dropout=0.1,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    # The base in 4-bit NF4 with double quantization; bfloat16 compute (QLoRA paper defaults).
    quantization=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype="bfloat16"),
    # The report: lr 3e-5, batch 2 x 8 accumulation = 16 per step. 96 records / 16 = 6 steps on CPU;
    # all 302 with --set train.max_train_samples=None.
    train=TrainArgs(learning_rate=3e-5, epochs=1, batch_size=2, gradient_accumulation_steps=8, eval_batch_size=8,
                    max_length=256, max_train_samples=96, logging_steps=1, max_generate_samples=3),
    generation=GenerationArgs(max_new_tokens=96, repetition_penalty=1.1),
)
