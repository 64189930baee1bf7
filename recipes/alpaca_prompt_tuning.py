"""Alpaca instruction tuning with prompt tuning (20 soft tokens) on SmolLM2-135M-Instruct."""
from peft import PromptTuningConfig

from zoo import GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="alpaca-prompt-tuning",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    task="tatsu-lab/alpaca",
    prompt=PromptFormat(template="{instruction}\n\n{input}", template_no_input="{instruction}"),
    # 20 virtual tokens x 576 dims = 11,520 trainable weights. Random init: a TEXT init would make PEFT
    # fetch the tokenizer by Hub id, which fails offline.
    method=PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
    # Soft prompts want a large learning rate (0.03, as in the IMDB prompt-tuning report).
    # 96 of 302 training records / 4 = 24 steps: a CPU-sized budget (see alpaca_lora.py).
    train=TrainArgs(learning_rate=3e-2, epochs=1, batch_size=4, eval_batch_size=8, max_length=256,
                    max_train_samples=96, warmup_ratio=0.05, logging_steps=2, max_generate_samples=3),
    generation=GenerationArgs(max_new_tokens=96, repetition_penalty=1.1),
)
