"""Alpaca instruction tuning with LoRA on SmolLM2-135M-Instruct; the loss is on the response tokens only."""
from peft import LoraConfig

from zoo import GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="alpaca-lora",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    task="tatsu-lab/alpaca",
    # The chat template makes the instruction (and its input) the user turn; the response is the answer.
    prompt=PromptFormat(template="{instruction}\n\n{input}", template_no_input="{instruction}"),
    # r=16 on every projection of the 30 Llama blocks: 4.9M trainable weights (3.5 % of 134.5M).
    method=LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    # The mirror's 302 training records / 4 = 76 steps, about 4 s each on 2 CPU cores (5 minutes).
    # A quicker look: --set train.max_train_samples=48 (12 steps).
    train=TrainArgs(learning_rate=3e-4, epochs=1, batch_size=4, eval_batch_size=8, max_length=256,
                    warmup_ratio=0.05, logging_steps=2, max_generate_samples=3),
    generation=GenerationArgs(max_new_tokens=96, repetition_penalty=1.1),
)
